//! Target benchmark: a whole inventory (`idbridge sync target`, the release binary as a child
//! process) of 100,000 accounts from the Confluence DC simulator (`idbridge sim confluence-dc`,
//! another child process) into SQLite and PostgreSQL, with the syncing process's peak resident
//! memory; and write calls through the DC connector against an in-process simulator
//! rate-limited to 50 requests per second.
//!
//! Run with `cargo bench --bench inventory`. PostgreSQL figures need `BENCH_DATABASE_URL` (or
//! `TEST_DATABASE_URL`) naming a server where databases may be created. `BENCH_USERS`
//! changes the population (default 100,000); `BENCH_WRITE_SECS` the length of the write run
//! (default 20). Prints a Markdown table for `docs/benchmarks.md`.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{env_or, fresh_database, postgres_admin, psql, run_measured};

use idbridge::config::{Secret, TargetConfig};
use idbridge::domain::TargetKind;
use idbridge::sim::confluence_dc::{DcSimOptions, start};
use idbridge::targets::confluence_dc::ConfluenceDc;
use idbridge::targets::{AccountRef, Target};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let users: usize = env_or("BENCH_USERS", 100_000);
    let write_secs: u64 = env_or("BENCH_WRITE_SECS", 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows: Vec<(String, String)> = Vec::new();

    // The simulator runs as its own process, as a real Confluence would.
    let seeding = Instant::now();
    let sim = SimProcess::start(users);
    rows.push((
        format!("simulator start with {users} users (Confluence DC 10.2)"),
        format!("{:.0} ms", seeding.elapsed().as_secs_f64() * 1000.0),
    ));

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("inventory.db").display());
    for pass in ["first inventory (all new)", "second inventory (unchanged)"] {
        rows.push((
            format!("{users} accounts into SQLite, {pass}"),
            sync(&sim, &sqlite, users),
        ));
    }
    match postgres_admin() {
        Some(admin) => {
            let name = "idbridge_bench_inventory";
            let url = fresh_database(&admin, name);
            for pass in ["first inventory (all new)", "second inventory (unchanged)"] {
                rows.push((
                    format!("{users} accounts into PostgreSQL, {pass}"),
                    sync(&sim, &url, users),
                ));
            }
            psql(
                &admin,
                &format!("drop database if exists {name} with (force)"),
            );
        }
        None => rows.push((
            "PostgreSQL".into(),
            "skipped: set BENCH_DATABASE_URL".into(),
        )),
    }
    drop(sim);

    rows.push((
        format!("write calls against a simulator limited to 50 req/s ({write_secs} s)"),
        rt.block_on(writes(Duration::from_secs(write_secs))),
    ));

    println!("| measure | result |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
}

/// `idbridge sim confluence-dc` as a child process; stopped when dropped.
struct SimProcess {
    child: std::process::Child,
    base_url: String,
    pat: String,
}

impl SimProcess {
    fn start(users: usize) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_idbridge"))
            .args([
                "sim",
                "confluence-dc",
                "--version",
                "10.2",
                "--port",
                "0",
                "--users",
            ])
            .arg(users.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the simulator");
        let stdout = child.stdout.take().expect("stdout");
        let (mut base_url, mut pat) = (String::new(), String::new());
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("simulator output");
            if let Some(url) = line.trim().strip_prefix("base URL:") {
                base_url = url.trim().to_owned();
            }
            if let Some((_, token)) = line.split_once("Bearer ") {
                pat = token.trim().to_owned();
            }
            if line.contains("press Ctrl-C") {
                break;
            }
        }
        assert!(
            !base_url.is_empty() && !pat.is_empty(),
            "simulator did not start"
        );
        Self {
            child,
            base_url,
            pat,
        }
    }

    fn base_url(&self) -> String {
        self.base_url.clone()
    }

    fn pat(&self) -> &str {
        &self.pat
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Runs `idbridge sync target bench` once and reports its throughput and peak memory.
fn sync(sim: &SimProcess, database_url: &str, users: usize) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idbridge"));
    cmd.args(["sync", "target", "bench"])
        .env("IDBRIDGE_DATABASE__URL", database_url)
        .env("IDBRIDGE_LOG__FILTER", "warn")
        .env("IDBRIDGE_TARGETS__BENCH__KIND", "confluence_dc")
        .env("IDBRIDGE_TARGETS__BENCH__BASE_URL", sim.base_url())
        .env("IDBRIDGE_TARGETS__BENCH__TOKEN", sim.pat())
        .env("IDBRIDGE_TARGETS__BENCH__PAGE_SIZE", "1000");
    let run = run_measured(cmd);
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(
        run.output.status.success() && stdout.contains(&format!("complete — {users} accounts")),
        "sync failed: {stdout}{}",
        String::from_utf8_lossy(&run.output.stderr)
    );
    format!(
        "{:.2} s end to end, {:.0} accounts/s; peak RSS {:.1} MB",
        run.seconds,
        users as f64 / run.seconds,
        run.peak_rss_mb
    )
}

/// Disables and re-enables accounts for `length` against a simulator that allows 50
/// requests per second (bucket of 10), through the connector's rate-limit handling.
async fn writes(length: Duration) -> String {
    let sim = start(
        DcSimOptions {
            product_version: "9.3".parse().expect("version"),
            users: 2_000,
            rate_limit: Some(50),
            rate_limit_burst: Some(10),
            ..DcSimOptions::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("simulator starts");
    let mut cfg = TargetConfig::new(TargetKind::ConfluenceDc, sim.base_url());
    cfg.token = Some(Secret::new(sim.pat()));
    cfg.max_rate_limit_wait_secs = 30;
    let dc = ConfluenceDc::new("bench", &cfg).expect("connector");
    dc.probe().await.expect("probe");
    // Ordinary active accounts of the internal directory (admins and read-only LDAP
    // accounts left alone).
    let mut targets = Vec::new();
    let mut cursor: Option<String> = None;
    while targets.len() < 200 {
        let page = dc.list_accounts(cursor.as_deref()).await.expect("list");
        targets.extend(page.items.into_iter().filter(|a| {
            a.active
                && !["admin", "sysadmin", "viewer"].contains(&a.username.as_str())
                && sim.user(&a.username).is_some_and(|u| {
                    u.directory.contains("Internal")
                        && !u.groups.iter().any(|g| g.contains("admin"))
                })
        }));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let before = sim.core().requests().len();
    let started = Instant::now();
    let (mut ok, mut failed, mut calls) = (0u64, 0u64, 0u64);
    let mut i = 0usize;
    while started.elapsed() < length {
        let a = AccountRef::of(&targets[i % targets.len()]);
        let result = if (i / targets.len()).is_multiple_of(2) {
            dc.disable(&a).await
        } else {
            dc.enable(&a).await
        };
        calls += 1;
        match result {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                eprintln!("write failed: {e}");
            }
        }
        i += 1;
    }
    let took = started.elapsed().as_secs_f64();
    let log = sim.core().requests();
    let during = &log[before.min(log.len())..];
    let limited = during.iter().filter(|r| r.status == 429).count();
    let requests = during.len();
    sim.stop().await;
    format!(
        "{:.1} HTTP requests/s sustained ({requests} in {took:.1} s, {limited} answered 429 and \
         waited out); {:.1} write calls/s (each reads, then writes); {ok} succeeded, {failed} \
         failed of {calls}",
        requests as f64 / took,
        calls as f64 / took
    )
}
