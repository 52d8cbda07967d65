//! The test harness: a real idbridge on port 0 against a temporary SQLite file or a fresh
//! PostgreSQL database, a clock the test controls, and helpers for running the binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use axum::Router;
use chrono::TimeZone;
use idbridge::app::{App, AppError};
use idbridge::clock::ManualClock;
use idbridge::config::{Config, DatabaseConfig, DatabaseUrl};
use idbridge::store::Store;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an `async fn(Backend)` test once per backend, as `<name>::on_sqlite` and
/// `<name>::on_postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    super::$name(crate::helpers::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    super::$name(crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

/// The PostgreSQL server tests may create databases on, from `TEST_DATABASE_URL`. Without
/// it the PostgreSQL tests are skipped, except under CI, where skipping is a failure.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "TEST_DATABASE_URL is not set: under CI the PostgreSQL tests may not be skipped"
            );
            eprintln!("skipped: TEST_DATABASE_URL is not set, so this PostgreSQL test did not run");
            None
        }
    }
}

/// A database for one test: a temporary SQLite file, or a fresh PostgreSQL database dropped
/// when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A new, empty database; `None` when the backend is not available here.
    pub async fn create(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("idbridge.db").display());
                Some(TestDb {
                    url,
                    _dir: Some(dir),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let name = format!("idbridge_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&admin)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                sqlx::query(AssertSqlSafe(format!("create database {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL parses");
                url.set_path(&name);
                Some(TestDb {
                    url: url.to_string(),
                    _dir: None,
                    postgres: Some((admin, name)),
                })
            }
        }
    }

    /// Database settings pointing at this database.
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: DatabaseUrl::new(self.url.clone()),
            connect_timeout_secs: 2,
            ..DatabaseConfig::default()
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let sql = format!("drop database if exists {name} with (force)");
                    let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// A fixed starting instant for the test clock.
pub fn start_time() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
        .single()
        .expect("valid date")
        + chrono::Duration::microseconds(123_456)
}

/// A running idbridge.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub store: Store,
    pub db: TestDb,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), AppError>>,
}

/// Builds a [`TestApp`].
pub struct TestAppBuilder {
    backend: Backend,
    config: Config,
    database: Option<TestDb>,
    database_url: Option<String>,
    routes: Router,
}

impl TestAppBuilder {
    /// Connects through `url` (e.g. a proxy) instead of the test database's own URL.
    pub fn database_url(mut self, url: String) -> Self {
        self.database_url = Some(url);
        self
    }

    /// Adjusts the configuration before start.
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Serves extra routes beside idbridge's own.
    pub fn routes(mut self, routes: Router) -> Self {
        self.routes = routes;
        self
    }

    /// Uses an existing database instead of a fresh one.
    pub fn database(mut self, db: TestDb) -> Self {
        self.database = Some(db);
        self
    }

    /// Starts the app; `None` when the backend is not available here.
    pub async fn spawn(self) -> Option<TestApp> {
        let db = match self.database {
            Some(db) => db,
            None => TestDb::create(self.backend).await?,
        };
        let mut config = self.config;
        config.database = DatabaseConfig {
            migrate_on_start: config.database.migrate_on_start,
            ..db.config()
        };
        if let Some(url) = self.database_url {
            config.database.url = DatabaseUrl::new(url);
        }
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let clock = Arc::new(ManualClock::new(start_time()));
        let app = App::builder(config)
            .clock(clock.clone())
            .routes(self.routes)
            .build()
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let store = app.store().clone();
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run());
        Some(TestApp {
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            clock,
            store,
            db,
            shutdown,
            task,
        })
    }
}

impl TestApp {
    /// Starts building an app on `backend`.
    pub fn builder(backend: Backend) -> TestAppBuilder {
        // No background scheduler or executor: tests drive the engine themselves and would
        // race with it (a test that wants them turns `scheduler.enabled` back on).
        let mut config = Config::default();
        config.scheduler.enabled = false;
        TestAppBuilder {
            backend,
            config,
            database: None,
            database_url: None,
            routes: Router::new(),
        }
    }

    /// An app with the default configuration; `None` when the backend is not available.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::builder(backend).spawn().await
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Shuts down gracefully and returns how the server ended.
    pub async fn stop(self) -> (Result<(), AppError>, TestDb) {
        self.shutdown.cancel();
        let result = self.task.await.expect("server task did not panic");
        (result, self.db)
    }
}

/// The idbridge binary built for these tests.
pub fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idbridge"));
    // Start from a clean slate: no configuration leaks in from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("IDBRIDGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// A running `idbridge serve` process whose stderr is collected line by line.
pub struct ServeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl ServeProcess {
    /// Starts `cmd` (which must run `serve` on port 0) and waits until it says where it listens.
    pub fn start(mut cmd: Command) -> ServeProcess {
        cmd.env("IDBRIDGE_SERVER__LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn idbridge");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut seen = Vec::new();
        let addr = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!("idbridge did not report its address; output: {seen:#?}")
                });
            let found = line.split("listening on http://").nth(1).and_then(|rest| {
                rest.split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            });
            seen.push(line);
            if let Some(addr) = found {
                break addr;
            }
        };
        ServeProcess {
            child,
            addr,
            lines,
            seen,
        }
    }

    /// Sends SIGTERM, waits for exit, and returns whether it exited successfully.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let exit = self.child.wait().expect("wait for idbridge");
        // Collect whatever the process printed before it ended.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        exit
    }

    /// Everything printed so far, one line per entry.
    pub fn output(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished process's stderr as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A finished process's stdout as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the run failed with `code` and exactly one `error:` line on stderr, without a
/// panic, and returns that line.
pub fn one_error_line(out: &std::process::Output, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    lines[0].to_owned()
}
