//! Execution benchmark: the crash-safe executor carrying out deactivations against an
//! in-process Confluence DC simulator, with the store on SQLite (and PostgreSQL when
//! `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` names a server). Two runs: no rate limit
//! (`BENCH_ACTIONS`, default 5,000 actions; goal ≥ 1,000 actions/s), and the simulator
//! limited to 50 requests per second (`BENCH_RATE_ACTIONS`, default 150; goal ≥ 90 % of the
//! limit, zero failed actions). Every action reads the account and its groups, stores its
//! pre-image, writes and confirms, so each counts several requests: both requests/s and
//! actions/s are printed. `BENCH_CONCURRENCY` sets the executor's concurrency for the
//! unlimited runs (default 16). Run with `cargo bench --bench execute`; prints Markdown rows.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use common::{env_or, fresh_database, postgres_admin, psql};
use idbridge::clock::SystemClock;
use idbridge::config::{DatabaseConfig, DatabaseUrl, ExecutorConfig, Secret, TargetConfig};
use idbridge::domain::{
    ActionKind, ActionPhase, NewAccount, PlannedAction, Reason, RuleMode, RunStatus, TargetKind,
};
use idbridge::engine::execute::{ExecuteOptions, RecordingNotifier, execute};
use idbridge::sim::confluence_dc::{DcSimOptions, start};
use idbridge::store::{NewRun, RunKind, Store};
use idbridge::targets::{Connector, Target};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let n: usize = env_or("BENCH_ACTIONS", 5_000);
    let rated: usize = env_or("BENCH_RATE_ACTIONS", 150);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();
    let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    rows.push(rt.block_on(bench("SQLite", &sqlite("a.db"), n, None)));
    rows.push(rt.block_on(bench("SQLite", &sqlite("b.db"), rated, Some(50))));
    if let Some(admin) = postgres_admin() {
        for (name, count, limit) in [
            ("idbridge_bench_exec_a", n, None),
            ("idbridge_bench_exec_b", rated, Some(50)),
        ] {
            let url = fresh_database(&admin, name);
            rows.push(rt.block_on(bench("PostgreSQL", &url, count, limit)));
            psql(
                &admin,
                &format!("drop database if exists {name} with (force)"),
            );
        }
    }
    println!("| run | actions | requests | seconds | actions/s | requests/s | failed |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}

async fn bench(backend: &str, url: &str, n: usize, rate_limit: Option<u64>) -> String {
    let sim = start(
        DcSimOptions {
            product_version: "9.3".parse().expect("version"),
            users: n * 2 + 50,
            rate_limit,
            ..DcSimOptions::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("simulator");
    let db = DatabaseConfig {
        url: DatabaseUrl::new(url.to_owned()),
        max_connections: 8,
        ..DatabaseConfig::default()
    };
    let store = Store::connect(&db, Arc::new(SystemClock))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let mut cfg = TargetConfig::new(TargetKind::ConfluenceDc, sim.base_url());
    cfg.token = Some(Secret::new(sim.pat()));
    cfg.page_size = 1000;
    cfg.max_rate_limit_wait_secs = 60;
    let target = store
        .ensure_target("wiki", TargetKind::ConfluenceDc, &sim.base_url())
        .await
        .expect("target")
        .id;
    let connector = Connector::new("wiki", &cfg).expect("connector");
    // The active accounts, read through the connector (not timed).
    let mut accounts = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = connector
            .list_accounts(cursor.as_deref())
            .await
            .expect("list");
        // Active accounts idbridge may change: the internal directory (the population also
        // holds read-only LDAP and Crowd accounts, whose deactivation fails for good).
        accounts.extend(page.items.into_iter().filter(|a| {
            a.active
                && sim
                    .user(&a.username)
                    .is_some_and(|u| u.directory == "Confluence Internal Directory")
        }));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    accounts.retain(|a| a.username != "admin" && a.username != "sysadmin");
    accounts.truncate(n);
    let mut planned = Vec::with_capacity(accounts.len());
    for a in &accounts {
        let acc = store
            .upsert_account(&NewAccount {
                target_id: target,
                account_key: a.key.clone(),
                user_name: a.username.clone(),
                email: a.email.clone(),
                display_name: None,
                active: true,
                last_login_at: None,
                remote_created_at: None,
                managed: true,
                attributes: json!({}),
            })
            .await
            .expect("account");
        planned.push(PlannedAction {
            account_id: acc.id,
            target_id: target,
            target: "wiki".into(),
            account_key: a.key.clone(),
            username: a.username.clone(),
            identity_id: None,
            kind: ActionKind::Deactivate,
            reason: Reason {
                rule: "bench".into(),
                because: vec!["benchmark".into()],
                cause: Default::default(),
            },
        });
    }
    let run = store
        .create_run(
            &NewRun {
                kind: RunKind::Bulk,
                mode: RuleMode::Enforce,
                status: RunStatus::Planned,
                rules: vec!["bench".into()],
                started_by: "bench".into(),
                config_hash: "-".into(),
                plan_hash: "-".into(),
                budget: json!({}),
            },
            &planned,
        )
        .await
        .expect("run");
    let targets = BTreeMap::from([(target, connector)]);
    let exec = ExecutorConfig {
        concurrency: if rate_limit.is_some() {
            4
        } else {
            env_or("BENCH_CONCURRENCY", 16)
        },
        ..ExecutorConfig::default()
    };
    let opts = ExecuteOptions {
        run: Some(run),
        executor_id: "bench".into(),
        admin_groups: BTreeMap::from([(target, vec!["confluence-administrators".into()])]),
    };
    let before = sim.core().requests().len();
    let started = Instant::now();
    let report = execute(&store, &targets, &RecordingNotifier, &exec, &opts)
        .await
        .expect("execute");
    let secs = started.elapsed().as_secs_f64();
    let requests = sim.core().requests().len() - before;
    let done = report.count(ActionPhase::Confirmed) + report.count(ActionPhase::Skipped);
    let failed = report.count(ActionPhase::Failed) + report.count(ActionPhase::Poisoned);
    store.close().await;
    sim.stop().await;
    let limit = rate_limit.map_or(
        format!("no rate limit, concurrency {}", exec.concurrency),
        |l| format!("limited to {l} req/s"),
    );
    format!(
        "| deactivate, {backend}, {limit} | {done} | {requests} | {secs:.1} | {:.0} | {:.1} | {failed} |",
        done as f64 / secs,
        requests as f64 / secs
    )
}
