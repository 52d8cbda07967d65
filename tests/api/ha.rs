//! Two `idbridge serve` processes against one PostgreSQL database, as two replicas: one holds
//! the scheduler lease and plans each tick once; both executors carry out the actions; when
//! the lease holder is killed mid-run the other takes the lease over and finishes, and every
//! action reaches Confluence exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use idbridge::clock::SystemClock;
use idbridge::config::{Config, Secret, SourceConfig, TargetConfig};
use idbridge::domain::{RunStatus, SourceKind, TargetKind};
use idbridge::engine::inventory::sync_configured_target;
use idbridge::engine::sources::{configured_source, sync_source};
use idbridge::sim::confluence_dc::{self, DcSimOptions};
use idbridge::sim::okta::{self, OktaSimOptions};
use idbridge::store::{SCHEDULER_LEASE, Store};

use crate::engine_world::any_addr;
use crate::helpers::{Backend, ServeProcess, TestDb, binary};

const LEAVERS: usize = 40;
const STAYERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_plan_each_tick_once_and_the_survivor_finishes_when_the_lease_holder_is_killed()
 {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    // Confluence answers 12 requests a second: the run (3 requests an action) takes seconds,
    // long enough to kill its executor halfway.
    let dc = confluence_dc::start(
        DcSimOptions {
            users: 0,
            remote_api: true,
            rate_limit: Some(12),
            ..DcSimOptions::default()
        },
        any_addr(),
    )
    .await
    .unwrap();
    let okta = okta::start(
        OktaSimOptions {
            users: 0,
            rate_limit: Some(1_000_000),
            ..OktaSimOptions::default()
        },
        any_addr(),
    )
    .await
    .unwrap();
    let now = Utc::now();
    let mut leavers = Vec::new();
    for i in 0..LEAVERS + STAYERS {
        let name = format!("person{i:03}");
        let email = format!("{name}@example.com");
        dc.add_user(
            &name,
            &email,
            &["confluence-users"],
            now - chrono::Duration::days(400),
            Some(now - chrono::Duration::days(3)),
        )
        .unwrap();
        let id = okta.add_user(&email, &name, "Example");
        if i < LEAVERS {
            okta.update_user(&id, |u| u.status = "DEPROVISIONED".into());
            leavers.push(name);
        }
    }

    let mut config = Config::default();
    let mut src = SourceConfig::new(SourceKind::Okta);
    src.base_url = Some(okta.base_url());
    src.token = Some(Secret::new(okta.ssws_token()));
    src.app_id = Some(okta.app_id().to_owned());
    config.sources.insert("okta".into(), src);
    let mut target = TargetConfig::new(TargetKind::ConfluenceDc, dc.base_url());
    target.token = Some(Secret::new(dc.pat()));
    config.targets.insert("wiki".into(), target);
    config.database = db.config();
    let store = Store::connect(&config.database, Arc::new(SystemClock))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let (record, connector, opts) = configured_source(&store, "okta", &config.sources["okta"])
        .await
        .unwrap();
    assert!(
        sync_source(&store, &record, &connector, &opts)
            .await
            .unwrap()
            .is_complete()
    );
    let inventory = sync_configured_target(&store, "wiki", &config.targets["wiki"])
        .await
        .unwrap();
    assert!(inventory.reason.is_none(), "{:?}", inventory.reason);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("idbridge.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[database]
url = "{db}"

[scheduler]
lease_ttl_secs = 3
executor_interval_secs = 1
regrant_schedule = ""

[executor]
claim_ttl_secs = 3
concurrency = 4

[sources.okta]
kind = "okta"
base_url = "{okta}"
token = "{okta_token}"
app_id = "{app}"

[targets.wiki]
kind = "confluence_dc"
base_url = "{wiki}"
token = "{wiki_token}"

[safety.budgets.deactivate]
per_run = 1000

[rules.leavers]
mode = "enforce"
schedule = "*/2 * * * * *"
when = {{ status = ["deprovisioned"] }}
actions = ["deactivate"]
"#,
            db = db.url,
            okta = okta.base_url(),
            okta_token = okta.ssws_token(),
            app = okta.app_id(),
            wiki = dc.base_url(),
            wiki_token = dc.pat(),
        ),
    )
    .unwrap();
    let replica = || {
        let mut cmd = binary();
        cmd.arg("serve").env("IDBRIDGE_CONFIG", &file);
        ServeProcess::start(cmd)
    };
    let mut first = replica();
    let started = Instant::now();
    let lease = loop {
        if let Some(l) = store.lease(SCHEDULER_LEASE).await.unwrap() {
            break l;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nobody took the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(lease.pid, i64::from(first.child.id()));
    let mut second = replica();

    let disables = |dc: &confluence_dc::DcSim| -> HashMap<String, usize> {
        let mut n = HashMap::new();
        // Requests Confluence carried out (a 429 changed nothing).
        for m in dc
            .mutations()
            .iter()
            .filter(|m| (200..300).contains(&m.status))
        {
            if let Some(user) = m
                .path
                .strip_prefix("/confluence/rest/api/admin/user/")
                .and_then(|rest| rest.strip_suffix("/disable"))
            {
                *n.entry(user.to_owned()).or_insert(0) += 1;
            }
        }
        n
    };
    // Kill the lease holder once a few of the leavers are done.
    let started = Instant::now();
    while disables(&dc).len() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never started: {}",
            first.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = disables(&dc).len();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(killed_at < LEAVERS, "the run finished before the kill");

    // The survivor takes the lease over and finishes the run.
    let started = Instant::now();
    loop {
        let gone: usize = leavers
            .iter()
            .filter(|u| dc.user(u).is_some_and(|v| !v.active))
            .count();
        if gone == LEAVERS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "only {gone} of {LEAVERS} leavers deactivated; survivor said:\n{}",
            second.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lease_now = store.lease(SCHEDULER_LEASE).await.unwrap().unwrap();
    assert_eq!(lease_now.pid, i64::from(second.child.id()));
    assert!(lease_now.epoch > lease.epoch);

    // Ticks kept coming every two seconds; give the survivor a few more of them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let counts = disables(&dc);
    for u in &leavers {
        assert_eq!(
            counts.get(u),
            Some(&1),
            "{u} was disabled {:?} times",
            counts.get(u)
        );
    }
    assert_eq!(counts.len(), LEAVERS, "{counts:?}");
    for i in LEAVERS..LEAVERS + STAYERS {
        assert!(dc.user(&format!("person{i:03}")).unwrap().active);
    }
    // One plan: exactly one run holds actions, and every action of it was confirmed.
    let runs = store.runs(100).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let actions = store.run_actions(runs[0].id).await.unwrap();
    assert_eq!(actions.len(), LEAVERS);
    let started = Instant::now();
    while store.run(runs[0].id).await.unwrap().unwrap().status != RunStatus::Succeeded {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:#?}",
            store.run(runs[0].id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(second.terminate().success(), "{}", second.output());
    store.close().await;
    dc.stop().await;
    okta.stop().await;
}
