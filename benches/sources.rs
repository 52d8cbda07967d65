//! Source benchmark: full syncs of 100,000 people into SQLite and PostgreSQL through the sync
//! engine, first from an in-memory source (the store's ceiling), then from each IdP simulator
//! (`idbridge sync source`, the release binary as a child process, the simulator in this
//! process) with the syncing process's peak resident memory; the same with 100 ms of latency per
//! page; and an incremental sync after 1 % of the people changed.
//!
//! Run with `cargo bench --bench sources`. PostgreSQL figures need `BENCH_DATABASE_URL` (or
//! `TEST_DATABASE_URL`). `BENCH_USERS` changes the population (default 100,000). Prints a
//! Markdown table for `docs/benchmarks.md`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use idbridge::clock::SystemClock;
use idbridge::config::{DatabaseConfig, DatabaseUrl};
use idbridge::domain::{IdentityStatus, SourceKind};
use idbridge::engine::sources::{SourceSyncOptions, sync_source};
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows: Vec<(String, String)> = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("sources.db").display());
    let pg = std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .ok();
    let pg_url = pg.as_ref().map(|admin| {
        let name = "idbridge_bench_sources";
        psql(
            admin,
            &format!("drop database if exists {name} with (force)"),
        );
        psql(admin, &format!("create database {name}"));
        let mut url = url::Url::parse(admin).expect("database URL");
        url.set_path(name);
        url.to_string()
    });

    let mut backends = vec![("SQLite", sqlite.clone())];
    if let Some(u) = &pg_url {
        backends.push(("PostgreSQL", u.clone()));
    }
    for (label, url) in &backends {
        for pass in ["all new", "unchanged"] {
            let took = rt.block_on(in_memory(url, users));
            rows.push((
                format!("{users} people from an in-memory source into {label}, {pass}"),
                format!("{:.2} s, {:.0} people/s", took, users as f64 / took),
            ));
        }
    }
    if pg.is_none() {
        rows.push((
            "PostgreSQL".into(),
            "skipped: set BENCH_DATABASE_URL".into(),
        ));
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

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
        .ensure_source("bench", SourceKind::Okta)
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

fn psql(url: &str, sql: &str) {
    let status = Command::new("psql")
        .args([url, "-qtAc", sql])
        .stdout(Stdio::null())
        .status()
        .expect("run psql");
    assert!(status.success(), "psql failed: {sql}");
}
