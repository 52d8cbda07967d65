//! The demo loop benchmark (`cargo bench --bench demo`), two measures:
//!
//! 1. The end-to-end loop `idbridge demo` runs on its seeded company (`BENCH_PEOPLE`, default
//!    3,000): a full Okta sync and a complete Confluence inventory, the dry-run plan, the
//!    enforced run (held by the budget, approved, executed) and the inventory after it.
//!    `BENCH_RUNS` repetitions (default 3) on SQLite, one on PostgreSQL when
//!    `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` names a server. Goal: < 10 s.
//! 2. A returner's latency under `serve`: idbridge runs with its scheduler reading Okta and
//!    making the regrant pass every `BENCH_POLL_SECS` (default 15) seconds; returners sign in
//!    at spread-out moments and the clock runs until the simulator shows their licence group
//!    again. Goal: ≤ one poll interval + 5 s.
//!
//! Prints Markdown rows.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{env_or, fresh_database, postgres_admin, psql};
use idbridge::app::App;
use idbridge::clock::SystemClock;
use idbridge::config::{Config, DatabaseUrl};
use idbridge::demo::{Demo, DemoOptions};
use idbridge::sim::company::{CompanyOptions, LICENCE_GROUP, Role};
use idbridge::store::Store;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let people: usize = env_or("BENCH_PEOPLE", 3_000);
    let runs: usize = env_or("BENCH_RUNS", 3);
    let poll: u64 = env_or("BENCH_POLL_SECS", 15);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    println!("| run | people | start + seed s | sync s | plan s | enforce s | loop s | actions |");
    println!("|---|---|---|---|---|---|---|---|");
    for i in 0..runs {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("loop{i}.db")).display()
        );
        rt.block_on(demo_loop("SQLite", &url, people));
    }
    if let Some(admin) = postgres_admin() {
        let name = "idbridge_bench_demo";
        let url = fresh_database(&admin, name);
        rt.block_on(demo_loop("PostgreSQL", &url, people));
        psql(
            &admin,
            &format!("drop database if exists {name} with (force)"),
        );
    }
    println!();
    let url = format!("sqlite://{}", dir.path().join("serve.db").display());
    rt.block_on(returner_latency(&url, people, poll));
}

fn base(url: &str) -> Config {
    let mut c = Config::default();
    c.database.url = DatabaseUrl::new(url.to_owned());
    c.server.listen = "127.0.0.1:0".parse().expect("address");
    c.log.filter = "warn".into();
    c
}

async fn open(config: &Config) -> Store {
    let store = Store::connect(&config.database, Arc::new(SystemClock))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    store
}

async fn demo_loop(backend: &str, url: &str, people: usize) {
    let t0 = Instant::now();
    let opts = DemoOptions {
        company: CompanyOptions {
            people,
            ..CompanyOptions::default()
        },
        ..DemoOptions::default()
    };
    let demo = Demo::start(&opts, base(url), Utc::now())
        .await
        .expect("demo starts");
    let store = open(&demo.config).await;
    let start_s = t0.elapsed().as_secs_f64();
    let t = Instant::now();
    demo.sync(&store).await.expect("sync");
    let sync_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let preview = demo.preview(&store, Utc::now()).await.expect("plan");
    let plan_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let enforced = demo.enforce(&store, Utc::now()).await.expect("enforce");
    let enforce_s = t.elapsed().as_secs_f64();
    let actions: usize = enforced.outcome.runs.iter().map(|r| r.actions).sum();
    assert_eq!(
        actions,
        preview.dry_run.actions.len(),
        "the runs stored other actions than the dry run showed"
    );
    println!(
        "| loop, {backend} | {people} | {start_s:.2} | {sync_s:.2} | {plan_s:.2} | {enforce_s:.2} | {:.2} | {actions} |",
        sync_s + plan_s + enforce_s
    );
    store.close().await;
    demo.stop().await;
}

async fn returner_latency(url: &str, people: usize, poll: u64) {
    let opts = DemoOptions {
        company: CompanyOptions {
            people,
            ..CompanyOptions::default()
        },
        ..DemoOptions::default()
    };
    let mut demo = Demo::start(&opts, base(url), Utc::now())
        .await
        .expect("demo starts");
    let every = format!("*/{poll} * * * * *");
    for s in demo.config.sources.values_mut() {
        s.schedule = Some(every.clone());
    }
    for t in demo.config.targets.values_mut() {
        t.schedule = None;
    }
    demo.config.scheduler.regrant_schedule = every;
    let store = open(&demo.config).await;
    demo.sync(&store).await.expect("sync");
    demo.enforce(&store, Utc::now()).await.expect("enforce");
    store.close().await;
    // People who lost the licence for inactivity, as returners.
    let returners: Vec<_> = demo
        .members
        .iter()
        .filter(|m| matches!(m.role, Role::Returner | Role::LongInactive))
        .take(5)
        .cloned()
        .collect();
    let mut log = demo.config.log.clone();
    log.filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let _ = idbridge::telemetry::init(&log);
    let app = App::builder(demo.config.clone())
        .build()
        .await
        .expect("app builds");
    let shutdown = app.shutdown_token();
    let served = tokio::spawn(app.run());
    println!("| returner | poll s | signed in at s of the poll period | licence back after s |");
    println!("|---|---|---|---|");
    let mut worst: f64 = 0.0;
    for (i, m) in returners.iter().enumerate() {
        // Spread the sign-ins over the poll period.
        let offset = Duration::from_millis(poll * 1000 * (i as u64 * 2 + 1) / 10);
        let period_ms = poll * 1000;
        let into = (Utc::now().timestamp_millis() as u64) % period_ms;
        let wait = (offset.as_millis() as u64 + period_ms - into) % period_ms;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let t = Instant::now();
        let phase = (Utc::now().timestamp_millis() as u64 % period_ms) as f64 / 1000.0;
        assert!(demo.sign_in(m, Utc::now()), "{} is in Okta", m.username);
        loop {
            let back = demo
                .dc
                .user(&m.username)
                .is_some_and(|u| u.groups.iter().any(|g| g == LICENCE_GROUP));
            if back {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(poll * 3 + 30),
                "{} never got the licence back",
                m.username
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let secs = t.elapsed().as_secs_f64();
        worst = worst.max(secs);
        println!("| {} | {poll} | {phase:.1} | {secs:.2} |", m.username);
    }
    println!(
        "\nworst {worst:.2} s against a goal of {} s (poll interval + 5 s)",
        poll + 5
    );
    shutdown.cancel();
    let _ = served.await;
    demo.stop().await;
}
