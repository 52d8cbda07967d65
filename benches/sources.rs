//! Source benchmark: full syncs of 100,000 people into SQLite and PostgreSQL through the sync
//! engine, first from an in-memory source (the store's ceiling), then from each IdP simulator
//! (`idbridge sync source`, the release binary as a child process, the simulator in this
//! process) with the syncing process's peak resident memory; the same with 100 ms of latency per
//! page; and an incremental sync after 1 % of the people changed.
//!
//! Run with `cargo bench --bench sources`. PostgreSQL figures need `BENCH_DATABASE_URL` (or
//! `TEST_DATABASE_URL`). `BENCH_USERS` changes the population (default 100,000). Prints a
//! Markdown table for `docs/benchmarks.md`.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use common::{env_or, fresh_database, postgres_admin, psql, run_measured};

use idbridge::clock::SystemClock;
use idbridge::config::{DatabaseConfig, DatabaseUrl};
use idbridge::domain::{IdentityStatus, SourceKind};
use idbridge::engine::sources::{SourceSyncOptions, sync_source};
use idbridge::sim::{entra, google, okta};
use idbridge::sources::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
};
use idbridge::store::Store;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let users: usize = env_or("BENCH_USERS", 100_000);
    let latency_users: usize = env_or("BENCH_LATENCY_USERS", users);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows: Vec<(String, String)> = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("sources.db").display());
    let pg = postgres_admin();
    let pg_url = pg
        .as_ref()
        .map(|admin| fresh_database(admin, "idbridge_bench_sources"));

    let mut backends = vec![("SQLite", sqlite.clone())];
    if let Some(u) = &pg_url {
        backends.push(("PostgreSQL", u.clone()));
    }
    for (label, url) in &backends {
        for pass in ["all new", "unchanged"] {
            let took = rt.block_on(in_memory(url, users));
            push(
                &mut rows,
                (
                    format!("{users} people from an in-memory source into {label}, {pass}"),
                    format!("{:.2} s, {:.0} people/s", took, users as f64 / took),
                ),
            );
        }
    }
    if pg.is_none() {
        push(
            &mut rows,
            (
                "PostgreSQL".into(),
                "skipped: set BENCH_DATABASE_URL".into(),
            ),
        );
    }

    let only: Option<String> = std::env::var("BENCH_SOURCES").ok();
    for kind in [Idp::Okta, Idp::Entra, Idp::Google] {
        if only.as_deref().is_some_and(|o| !o.contains(kind.name())) {
            continue;
        }
        // No latency: throughput and memory into each backend, then an incremental sync
        // after 1 % of the people changed.
        let sim = rt.block_on(Sim::start(kind, users, 0));
        for (label, url) in &backends {
            for pass in ["all new", "unchanged"] {
                let r = sim.sync(url, false);
                push(
                    &mut rows,
                    (
                        format!("{} {users} people into {label}, {pass}", kind.name()),
                        format!(
                            "{:.2} s, {:.0} people/s, {} requests; peak RSS {:.1} MB",
                            r.seconds,
                            users as f64 / r.seconds,
                            r.requests,
                            r.peak_rss_mb
                        ),
                    ),
                );
            }
        }
        let full = sim.sync(&sqlite, false);
        match sim.churn(users / 100) {
            Some(changed) => {
                let inc = sim.sync(&sqlite, true);
                push(
                    &mut rows,
                    (
                        format!(
                            "{} incremental sync after {changed} of {users} changed (SQLite)",
                            kind.name()
                        ),
                        format!(
                            "{:.2} s = {:.1} % of a full sync ({:.2} s); {} requests",
                            inc.seconds,
                            inc.seconds / full.seconds * 100.0,
                            full.seconds,
                            inc.requests
                        ),
                    ),
                );
            }
            None => push(
                &mut rows,
                (
                    format!("{} incremental sync", kind.name()),
                    "not applicable: the Directory API has no changed-since listing for users; \
                 every sync is a full scan"
                        .into(),
                ),
            ),
        }
        rt.block_on(sim.stop());

        // 100 ms per request. Groups and people are listed side by side, so the floor is
        // the longer of the two request chains × latency.
        let sim = rt.block_on(Sim::start(kind, latency_users, 100));
        let before = sim.requests();
        // Its own store: a 20,000-person run against a 100,000-person snapshot is (rightly)
        // not plausible.
        let fresh = format!(
            "sqlite://{}",
            dir.path()
                .join(format!("latency-{}.db", kind.name()))
                .display()
        );
        let r = sim.sync(&fresh, false);
        let (groups, others) = sim.requests_since(before);
        let floor = groups.max(others) as f64 * 0.1;
        push(
            &mut rows,
            (
                format!(
                    "{} {latency_users} people, 100 ms per request (SQLite)",
                    kind.name()
                ),
                format!(
                    "{:.1} s for {} requests ({groups} for groups, {others} for people and \
                     sign-ins, side by side): {:+.1} % against the longer chain × latency \
                     ({floor:.1} s)",
                    r.seconds,
                    r.requests,
                    (r.seconds / floor - 1.0) * 100.0
                ),
            ),
        );
        rt.block_on(sim.stop());
    }

    println!("| measure | result |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    if let Some(admin) = &pg {
        psql(
            admin,
            "drop database if exists idbridge_bench_sources with (force)",
        );
    }
}

/// A source that makes its people up, page by page, as fast as it can.
struct Synthetic {
    users: usize,
    page: usize,
}

impl Source for Synthetic {
    fn kind(&self) -> SourceKind {
        SourceKind::Okta
    }
    async fn check(&self) -> Result<SourceCheck, SourceError> {
        Err(SourceError::Config("unused".into()))
    }
    async fn list_identities(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceIdentity>, SourceError> {
        let start: usize = cursor.map_or(0, |c| c.parse().unwrap_or(0));
        let end = (start + self.page).min(self.users);
        let items = (start..end)
            .map(|i| {
                let mut p = SourceIdentity::new(
                    format!("00u{i:010}"),
                    format!("person{i}@example.com"),
                    IdentityStatus::Active,
                    "ACTIVE",
                );
                p.emails = vec![format!("person{i}@example.com")];
                p.display_name = Some(format!("Person {i}"));
                p
            })
            .collect();
        Ok(SourcePage {
            items,
            next: (end < self.users).then(|| end.to_string()),
            total: None,
            checkpoint: None,
        })
    }
    async fn list_groups(
        &self,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<SourceGroup>, SourceError> {
        Ok(SourcePage::last(Vec::new()))
    }
    async fn list_changes(
        &self,
        _checkpoint: &str,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<Change>, SourceError> {
        Ok(SourcePage::last(Vec::new()))
    }
    async fn sign_ins(
        &self,
        _checkpoint: Option<&str>,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<SignIn>, SourceError> {
        Ok(SourcePage::last(Vec::new()))
    }
}

/// One full sync from the synthetic source; returns seconds.
async fn in_memory(url: &str, users: usize) -> f64 {
    let cfg = DatabaseConfig {
        url: DatabaseUrl::new(url.to_owned()),
        ..DatabaseConfig::default()
    };
    let store = Store::connect(&cfg, Arc::new(SystemClock))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    let record = store
        .ensure_source("synthetic", SourceKind::Okta)
        .await
        .expect("source");
    let started = Instant::now();
    let report = sync_source(
        &store,
        &record,
        &Synthetic { users, page: 1000 },
        &SourceSyncOptions::default(),
    )
    .await
    .expect("sync");
    let took = started.elapsed().as_secs_f64();
    assert!(report.is_complete(), "{:?}", report.reason);
    store.close().await;
    took
}

#[derive(Clone, Copy, PartialEq)]
enum Idp {
    Okta,
    Entra,
    Google,
}

impl Idp {
    fn name(self) -> &'static str {
        match self {
            Idp::Okta => "okta",
            Idp::Entra => "entra",
            Idp::Google => "google",
        }
    }
}

/// A simulator running in this process.
enum Running {
    Okta(okta::OktaSim),
    Entra(entra::EntraSim),
    Google(google::GoogleSim),
}

/// A simulator and the environment that points idbridge at it.
struct Sim {
    kind: Idp,
    running: Running,
    env: Vec<(String, String)>,
}

/// One `idbridge sync source` run.
struct Run {
    seconds: f64,
    requests: usize,
    peak_rss_mb: f64,
}

impl Sim {
    async fn start(kind: Idp, users: usize, latency_ms: u64) -> Sim {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let key = |k: &str| format!("IDBRIDGE_SOURCES__{}__{k}", kind.name().to_uppercase());
        let mut env = vec![
            (key("KIND"), kind.name().to_owned()),
            (key("PAGE_SIZE"), "1000".to_owned()),
        ];
        let running = match kind {
            Idp::Okta => {
                let sim = okta::start(
                    okta::OktaSimOptions {
                        users,
                        latency_ms,
                        rate_limit: Some(1_000_000_000),
                        ..okta::OktaSimOptions::default()
                    },
                    addr,
                )
                .await
                .expect("okta simulator");
                env.push((key("BASE_URL"), sim.base_url()));
                env.push((key("TOKEN"), sim.ssws_token()));
                env.push((key("APP_ID"), sim.app_id().to_owned()));
                Running::Okta(sim)
            }
            Idp::Entra => {
                let sim = entra::start(
                    entra::EntraSimOptions {
                        users,
                        latency_ms,
                        ..entra::EntraSimOptions::default()
                    },
                    addr,
                )
                .await
                .expect("entra simulator");
                env.push((key("BASE_URL"), sim.base_url()));
                env.push((key("TOKEN_URL"), sim.token_url()));
                env.push((key("TENANT_ID"), sim.tenant_id()));
                env.push((key("CLIENT_ID"), sim.client_id().to_owned()));
                env.push((key("CLIENT_SECRET"), sim.client_secret()));
                env.push((key("APP_ID"), sim.app_id().to_owned()));
                Running::Entra(sim)
            }
            Idp::Google => {
                let sim = google::start(
                    google::GoogleSimOptions {
                        users,
                        latency_ms,
                        ..google::GoogleSimOptions::default()
                    },
                    addr,
                )
                .await
                .expect("google simulator");
                env.push((key("BASE_URL"), sim.base_url()));
                env.push((key("TOKEN_URL"), sim.token_url()));
                env.push((key("SERVICE_ACCOUNT_KEY"), sim.service_account_key_json()));
                env.push((key("ADMIN_SUBJECT"), sim.admin_subject()));
                env.push((key("APP_NAME"), "Atlassian Cloud".to_owned()));
                Running::Google(sim)
            }
        };
        Sim { kind, running, env }
    }

    fn requests(&self) -> usize {
        match &self.running {
            Running::Okta(s) => s.core().requests().len(),
            Running::Entra(s) => s.core().requests().len(),
            Running::Google(s) => s.core().requests().len(),
        }
    }

    /// Requests logged since `before`: (to group endpoints, to the rest).
    fn requests_since(&self, before: usize) -> (usize, usize) {
        let log = match &self.running {
            Running::Okta(s) => s.core().requests(),
            Running::Entra(s) => s.core().requests(),
            Running::Google(s) => s.core().requests(),
        };
        let during = &log[before.min(log.len())..];
        let groups = during.iter().filter(|r| r.path.contains("/groups")).count();
        (groups, during.len() - groups)
    }

    /// Runs `idbridge sync source <kind> [--incremental] --json` into `database_url`.
    fn sync(&self, database_url: &str, incremental: bool) -> Run {
        let before = self.requests();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_idbridge"));
        cmd.args(["sync", "source", self.kind.name(), "--json"])
            .env("IDBRIDGE_DATABASE__URL", database_url)
            .env("IDBRIDGE_LOG__FILTER", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if incremental {
            cmd.arg("--incremental");
        }
        let run = run_measured(cmd);
        let stdout = String::from_utf8_lossy(&run.output.stdout);
        assert!(
            run.output.status.success(),
            "{} sync failed: {stdout}{}",
            self.kind.name(),
            String::from_utf8_lossy(&run.output.stderr)
        );
        Run {
            seconds: run.seconds,
            requests: self.requests() - before,
            peak_rss_mb: run.peak_rss_mb,
        }
    }

    /// Changes `n` people where the IdP can list changes; `None` where it cannot.
    fn churn(&self, n: usize) -> Option<usize> {
        match &self.running {
            Running::Okta(s) => {
                let ids: Vec<String> = s.users().into_iter().take(n).map(|u| u.id).collect();
                for id in &ids {
                    s.update_user(id, |u| u.first_name.push('x'));
                }
                Some(ids.len())
            }
            Running::Entra(s) => {
                let ids: Vec<String> = s.users().into_iter().take(n).map(|u| u.id).collect();
                for id in &ids {
                    s.update_user(id, |u| u.display_name.push('x'));
                }
                Some(ids.len())
            }
            Running::Google(_) => None,
        }
    }

    async fn stop(self) {
        match self.running {
            Running::Okta(s) => s.stop().await,
            Running::Entra(s) => s.stop().await,
            Running::Google(s) => s.stop().await,
        }
    }
}

/// Records a result row, and shows it at once (a long run keeps what it measured).
fn push(rows: &mut Vec<(String, String)>, row: (String, String)) {
    eprintln!("| {} | {} |", row.0, row.1);
    rows.push(row);
}
