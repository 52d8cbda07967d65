//! No secret ever reaches a log line, an error message or `check-config`: the binary runs
//! with secrets configured and the most verbose logging, and its output is searched for them.

use reqwest::StatusCode;

use crate::helpers::{Backend, ServeProcess, TestDb, binary, postgres_admin_url};

const METRICS_TOKEN: &str = "metrics-token-TOPSECRET-4242";
const DB_PASSWORD: &str = "db-password-TOPSECRET-1717";

fn assert_no_secret(output: &str) {
    for secret in [METRICS_TOKEN, DB_PASSWORD, "TOPSECRET"] {
        assert!(
            !output.contains(secret),
            "secret `{secret}` leaked:\n{output}"
        );
    }
}

/// A database URL carrying [`DB_PASSWORD`]: on PostgreSQL (trust auth ignores it) when
/// available, otherwise SQLite, where the password can only sit in a query parameter that is
/// not used.
async fn database_with_password(backend: Backend) -> Option<(TestDb, String)> {
    let db = TestDb::create(backend).await?;
    let url = match backend {
        Backend::Postgres => {
            let mut url = url::Url::parse(&db.url).unwrap();
            if url.username().is_empty() {
                url.set_username("postgres").unwrap();
            }
            url.set_password(Some(DB_PASSWORD)).unwrap();
            url.to_string()
        }
        Backend::Sqlite => db.url.clone(),
    };
    Some((db, url))
}

async fn serve_logs_no_secret(backend: Backend) {
    let Some((db, url)) = database_with_password(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, format!("{METRICS_TOKEN}\n")).unwrap();

    for format in ["text", "json"] {
        let mut cmd = binary();
        cmd.arg("serve")
            .env("IDBRIDGE_DATABASE__URL", &url)
            .env("IDBRIDGE_SERVER__METRICS_TOKEN_FILE", &token_file)
            .env("IDBRIDGE_LOG__FILTER", "trace")
            .env("IDBRIDGE_LOG__FORMAT", format);
        let mut process = ServeProcess::start(cmd);
        let client = reqwest::Client::new();
        let base = format!("http://{}", process.addr);
        let ok = client
            .get(format!("{base}/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let wrong = client
            .get(format!("{base}/metrics"))
            .bearer_auth(format!("{METRICS_TOKEN}-wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let status = process.terminate();
        assert!(status.success(), "{}", process.output());
        let output = process.output();
        assert!(
            output.len() > 1000,
            "trace logging produced output:\n{output}"
        );
        assert_no_secret(&output);
    }
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_trace_logging_prints_no_secret_on_sqlite() {
    serve_logs_no_secret(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_trace_logging_prints_no_secret_on_postgres() {
    if postgres_admin_url().is_some() {
        serve_logs_no_secret(Backend::Postgres).await;
    }
}

#[test]
fn check_config_and_startup_errors_print_no_secret() {
    let out = binary()
        .env(
            "IDBRIDGE_DATABASE__URL",
            format!("postgres://idb:{DB_PASSWORD}@127.0.0.1:1/x?password={DB_PASSWORD}"),
        )
        .env("IDBRIDGE_SERVER__METRICS_TOKEN", METRICS_TOKEN)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("metrics_token = \"***\""), "{text}");
    assert_no_secret(&text);

    let out = binary()
        .env(
            "IDBRIDGE_DATABASE__URL",
            format!("postgres://idb:{DB_PASSWORD}@127.0.0.1:1/x"),
        )
        .env("IDBRIDGE_DATABASE__CONNECT_TIMEOUT_SECS", "1")
        .env("IDBRIDGE_SERVER__METRICS_TOKEN", METRICS_TOKEN)
        .env("IDBRIDGE_LOG__FILTER", "trace")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("cannot connect to database"), "{text}");
    assert_no_secret(&text);
}
