//! The binary's command line: bad input ends in one clear line and a non-zero status, never a
//! panic; `migrate`, `check-config` and `version` do what they say.

use crate::helpers::{Backend, TestDb, binary, one_error_line, postgres_admin_url, stderr, stdout};

#[test]
fn malformed_config_file_is_one_line_naming_the_file_and_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "[server\nlisten = ").unwrap();
    let out = binary()
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .output()
        .unwrap();
    let line = one_error_line(&out, 2);
    assert!(
        line.contains("broken.toml") && line.contains("TOML"),
        "{line}"
    );
}

#[test]
fn unknown_key_is_named_with_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idbridge.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\nbody_limit = 5\n",
    )
    .unwrap();
    let out = binary()
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    let line = one_error_line(&out, 2);
    assert!(line.contains("`server.body_limit`: unknown key"), "{line}");
    assert!(line.contains("idbridge.toml"), "{line}");

    let out = binary()
        .env("IDBRIDGE_SERVER__LISTN", "127.0.0.1:0")
        .arg("check-config")
        .output()
        .unwrap();
    let line = one_error_line(&out, 2);
    assert!(
        line.contains("environment variable IDBRIDGE_SERVER__LISTN"),
        "{line}"
    );
}

#[test]
fn missing_config_file_is_reported() {
    let out = binary()
        .args(["--config", "/nonexistent/idbridge.toml", "serve"])
        .output()
        .unwrap();
    let line = one_error_line(&out, 2);
    assert!(
        line.contains("/nonexistent/idbridge.toml does not exist"),
        "{line}"
    );
}

#[test]
fn unknown_database_scheme_is_refused() {
    let out = binary()
        .env(
            "IDBRIDGE_DATABASE__URL",
            "mysql://root:pw@localhost/idbridge",
        )
        .arg("serve")
        .output()
        .unwrap();
    let line = one_error_line(&out, 2);
    assert!(line.contains("unsupported scheme `mysql`"), "{line}");
}

#[test]
fn unreachable_database_is_one_line_without_the_password() {
    let out = binary()
        .env(
            "IDBRIDGE_DATABASE__URL",
            "postgres://idb:do-not-print@127.0.0.1:1/idbridge",
        )
        .env("IDBRIDGE_DATABASE__CONNECT_TIMEOUT_SECS", "2")
        .arg("serve")
        .output()
        .unwrap();
    let line = one_error_line(&out, 1);
    assert!(
        line.contains("cannot connect to database postgres://idb:***@127.0.0.1:1/idbridge"),
        "{line}"
    );
    assert!(line.contains("refused"), "{line}");
    assert!(!stderr(&out).contains("do-not-print") && !stdout(&out).contains("do-not-print"));
}

#[test]
fn sqlite_file_in_a_missing_directory_is_reported() {
    let out = binary()
        .env(
            "IDBRIDGE_DATABASE__URL",
            "sqlite:///nonexistent/dir/idbridge.db",
        )
        .arg("migrate")
        .output()
        .unwrap();
    let line = one_error_line(&out, 1);
    assert!(line.contains("/nonexistent/dir/idbridge.db"), "{line}");
}

#[tokio::test]
async fn port_in_use_is_reported_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let out = binary()
        .env("IDBRIDGE_DATABASE__URL", &db.url)
        .env("IDBRIDGE_SERVER__LISTEN", addr.to_string())
        .arg("serve")
        .output()
        .unwrap();
    let line = one_error_line(&out, 1);
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert!(line.to_lowercase().contains("in use"), "{line}");
}

async fn migrate_applies_once(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let first = binary()
        .env("IDBRIDGE_DATABASE__URL", &db.url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert!(
        stdout(&first).starts_with(&format!("applied {migrations} migration(s)")),
        "{}",
        stdout(&first)
    );
    let second = binary()
        .env("IDBRIDGE_DATABASE__URL", &db.url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).starts_with("applied 0 migration(s)"),
        "{}",
        stdout(&second)
    );
}

#[tokio::test]
async fn migrate_command_applies_migrations_once_on_sqlite() {
    migrate_applies_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn migrate_command_applies_migrations_once_on_postgres() {
    if postgres_admin_url().is_some() {
        migrate_applies_once(Backend::Postgres).await;
    }
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let out = binary()
        .env("IDBRIDGE_SERVER__REQUEST_TIMEOUT_SECS", "12")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let parsed: toml::Value = toml::from_str(&text).expect("output is TOML");
    assert_eq!(
        parsed["server"]["request_timeout_secs"].as_integer(),
        Some(12)
    );
    assert_eq!(
        parsed["database"]["url"].as_str(),
        Some("sqlite://idbridge.db")
    );
}

#[test]
fn version_prints_the_crate_version() {
    let out = binary().arg("version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("idbridge {}", env!("CARGO_PKG_VERSION"))
    );
}
