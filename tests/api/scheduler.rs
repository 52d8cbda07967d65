//! The scheduler with two instances on one database and a shared test clock: on PostgreSQL
//! exactly one holds the lease and each tick runs once; when the holder stops renewing, the
//! standby takes over within one lease period and runs the next tick, and the deposed
//! holder's epoch can no longer claim a tick. On SQLite the second instance is refused with
//! a message naming the holder. Schedules that never fired wait for their first tick, and
//! several missed ticks fire once.

use std::sync::Arc;

use chrono::Duration;
use idbridge::clock::{Clock, ManualClock};
use idbridge::config::{Config, RuleConfig};
use idbridge::engine::scheduler::{Job, Round, Scheduler};
use idbridge::store::{LeaseError, Store, StoreError};

use crate::helpers::{Backend, TestDb, start_time};

/// Two stores (as two replicas would have) on one fresh database, sharing one clock set to
/// a whole minute.
async fn replicas(backend: Backend) -> Option<(TestDb, Arc<ManualClock>, Store, Store)> {
    let db = TestDb::create(backend).await?;
    let t0 = start_time()
        .with_timezone(&chrono::Utc)
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .expect("noon")
        .and_utc();
    let clock = Arc::new(ManualClock::new(t0));
    let a = Store::connect(&db.config(), clock.clone()).await.ok()?;
    a.migrate().await.expect("migrate");
    let b = Store::connect(&db.config(), clock.clone()).await.ok()?;
    Some((db, clock, a, b))
}

/// A configuration with one rule on `schedule` (it selects a user nobody has, so each run
/// plans nothing) and the regrant pass off.
fn config(schedule: &str) -> Config {
    let mut config = Config::default();
    config.scheduler.regrant_schedule = String::new();
    let rule: RuleConfig = toml::from_str(&format!(
        "schedule = \"{schedule}\"\nwhen = {{ users = [\"nobody-has-this-name\"] }}\n\
         actions = [\"deactivate\"]\n"
    ))
    .expect("rule");
    config.rules.insert("nightly".into(), rule);
    config
}

fn ran(round: &Round) -> Vec<(Job, chrono::DateTime<chrono::Utc>)> {
    round
        .ran
        .iter()
        .map(|r| {
            assert!(r.outcome.is_ok(), "{:?}", r.outcome);
            (r.job.clone(), r.tick)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_one_instance_runs_each_tick_and_the_standby_takes_over_when_it_stops() {
    let Some((_db, clock, a_store, b_store)) = replicas(Backend::Postgres).await else {
        return;
    };
    let config = config("* * * * *");
    let a = Scheduler::new(&a_store, &config, "replica-a").expect("scheduler a");
    let b = Scheduler::new(&b_store, &config, "replica-b").expect("scheduler b");
    let t0 = clock.now();
    let rule = Job::Rule("nightly".into());

    // At start nothing is due: a schedule that never fired waits for its first tick.
    let first = a.round().await.expect("round");
    assert!(first.lease.is_some() && first.ran.is_empty(), "{first:?}");
    let standby = b.round().await.expect("round");
    assert!(
        standby.lease.is_none() && standby.ran.is_empty(),
        "{standby:?}"
    );

    // The next minute: the holder runs the tick once; the standby runs nothing.
    clock.advance(Duration::seconds(61));
    let tick = t0 + Duration::seconds(60);
    assert_eq!(ran(&a.round().await.unwrap()), vec![(rule.clone(), tick)]);
    assert!(b.round().await.unwrap().ran.is_empty());
    assert!(a.round().await.unwrap().ran.is_empty(), "a tick runs once");
    let epoch_a = a_store
        .lease(idbridge::store::SCHEDULER_LEASE)
        .await
        .unwrap()
        .expect("lease")
        .epoch;

    // The holder dies (stops renewing). Within the lease period the standby waits…
    clock.advance(Duration::seconds(20));
    assert!(b.round().await.unwrap().lease.is_none());
    // …after it, it takes over with a new epoch and runs the tick that is due, once.
    clock.advance(Duration::seconds(40)); // t0 + 121 s
    let taken = b.round().await.unwrap();
    let lease = taken.lease.clone().expect("the standby took over");
    assert_eq!(lease.holder, "replica-b");
    assert!(lease.epoch > epoch_a);
    assert_eq!(
        ran(&taken),
        vec![(rule.clone(), t0 + Duration::seconds(120))]
    );
    // The old holder, back from the dead, neither gets the lease nor can claim a tick.
    assert!(a.round().await.unwrap().lease.is_none());
    let refused = a_store
        .claim_tick(&rule.key(), t0 + Duration::seconds(180), epoch_a)
        .await
        .expect_err("a stale epoch claims nothing");
    assert!(
        matches!(refused, StoreError::Lease(LeaseError::StaleEpoch { .. })),
        "{refused:?}"
    );

    // Ten minutes without any instance: the missed ticks fire once, at the latest.
    clock.advance(Duration::minutes(10));
    let late = b.round().await.unwrap();
    assert_eq!(ran(&late), vec![(rule, t0 + Duration::seconds(720))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_second_instance_is_refused_the_scheduler_with_the_holder_named() {
    let Some((_db, _clock, a_store, b_store)) = replicas(Backend::Sqlite).await else {
        return;
    };
    let config = config("*/5 * * * *");
    let a = Scheduler::new(&a_store, &config, "first").expect("scheduler");
    let b = Scheduler::new(&b_store, &config, "second").expect("scheduler");
    assert!(a.round().await.unwrap().lease.is_some());
    let refused = b.round().await.expect_err("the second instance is refused");
    let text = refused.to_string();
    assert!(
        text.contains("another idbridge instance") && text.contains("first"),
        "{text}"
    );
}

#[test]
fn every_schedule_is_checked_with_the_configuration_naming_its_key() {
    let mut config = config("61 * * * *");
    config.scheduler.timezone = Some("Mars/Olympus".into());
    let problems = config.validate().expect_err("invalid").join("\n");
    assert!(problems.contains("rules.nightly.schedule"), "{problems}");
    assert!(problems.contains("scheduler.timezone"), "{problems}");
    let fine = config_ok();
    assert!(fine.validate().is_ok());
}

fn config_ok() -> Config {
    let mut c = config("0 3 * * *");
    c.scheduler.timezone = Some("Europe/Berlin".into());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_a_scheduled_rule_when_its_tick_comes_and_gives_the_lease_up_on_shutdown() {
    let base = config("* * * * *");
    let Some(app) = crate::helpers::TestApp::builder(Backend::Sqlite)
        .config(|c| {
            c.rules = base.rules.clone();
            c.scheduler.enabled = true;
            c.scheduler.lease_ttl_secs = 3;
            c.scheduler.regrant_schedule = String::new();
        })
        .spawn()
        .await
    else {
        return;
    };
    let store = app.store.clone();
    let job = Job::Rule("nightly".into()).key();
    // The scheduler takes the lease; nothing is due before the next minute.
    let mut held = None;
    for _ in 0..50 {
        held = store.lease(idbridge::store::SCHEDULER_LEASE).await.unwrap();
        if held.as_ref().is_some_and(|l| l.is_live(app.clock.now())) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(held.is_some(), "the scheduler never took the lease");
    assert_eq!(store.last_fired(&job).await.unwrap(), None);
    app.clock.advance(Duration::seconds(61));
    let mut fired = None;
    for _ in 0..60 {
        fired = store.last_fired(&job).await.unwrap();
        if fired.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(fired.is_some(), "the rule's tick never ran");
    let clock = app.clock.clone();
    let (result, db) = app.stop().await;
    result.expect("clean stop");
    // Shutdown gave the lease up: it is no longer live.
    let after = Store::connect(&db.config(), clock.clone())
        .await
        .expect("connect");
    let lease = after
        .lease(idbridge::store::SCHEDULER_LEASE)
        .await
        .unwrap()
        .expect("lease row");
    assert!(!lease.is_live(clock.now()), "{lease:?}");
}

/// A job that outlasts the lease period (a slow Okta sync here) keeps the lease: the holder
/// renews it while the job runs, so a standby asking after the first term would have ended
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_holder_renews_the_lease_while_a_long_job_runs() {
    use idbridge::config::{Secret, SourceConfig};
    use idbridge::domain::SourceKind;
    use idbridge::sim::okta::{self, OktaSimOptions};
    let Some((_db, clock, a, b)) = replicas(Backend::Postgres).await else {
        return;
    };
    // Every Okta answer takes a second: the sync takes several, the lease lasts three.
    let okta = okta::start(
        OktaSimOptions {
            users: 5,
            latency_ms: 1_000,
            rate_limit: Some(1_000_000),
            ..OktaSimOptions::default()
        },
        crate::engine_world::any_addr(),
    )
    .await
    .unwrap();
    let mut config = Config::default();
    config.scheduler.regrant_schedule = String::new();
    config.scheduler.lease_ttl_secs = 3;
    let mut src = SourceConfig::new(SourceKind::Okta);
    src.base_url = Some(okta.base_url());
    src.token = Some(Secret::new(okta.ssws_token()));
    src.app_id = Some(okta.app_id().to_owned());
    src.schedule = Some("* * * * * *".into());
    config.sources.insert("okta".into(), src);
    let first = Scheduler::new(&a, &config, "a").unwrap();
    let standby = Scheduler::new(&b, &config, "b").unwrap();
    clock.advance(Duration::seconds(1));
    let t0 = clock.now();
    let watch = async {
        // Within the first term, then past its end: each time after a renewal had a chance.
        for _ in 0..2 {
            tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
            clock.advance(Duration::seconds(2));
            let round = standby.round().await.unwrap();
            assert!(
                round.lease.is_none(),
                "the standby took the lease {:?} after {}",
                round.lease,
                clock.now() - t0
            );
        }
    };
    let (round, ()) = tokio::join!(first.round(), watch);
    let round = round.unwrap();
    assert_eq!(round.ran.len(), 1);
    assert!(round.ran[0].outcome.is_ok(), "{:?}", round.ran[0].outcome);
    okta.stop().await;
}

#[test]
fn polled_sources_default_to_five_minutes_the_regrant_pass_comes_last_and_an_empty_schedule_is_off()
{
    use idbridge::config::SourceConfig;
    use idbridge::domain::SourceKind;
    use idbridge::engine::scheduler::scheduled;
    let mut config = config("0 3 * * *");
    let mut src = SourceConfig::new(SourceKind::Okta);
    src.schedule = Some("*/5 * * * *".into());
    config.sources.insert("okta".into(), src);
    config.scheduler.regrant_schedule = "*/5 * * * *".into();
    let jobs: Vec<Job> = scheduled(&config)
        .unwrap()
        .into_iter()
        .map(|s| s.job)
        .collect();
    assert_eq!(
        jobs,
        [
            Job::Source("okta".into()),
            Job::Rule("nightly".into()),
            Job::Regrant
        ]
    );
    // A polled source without a schedule is read every five minutes; an empty one is off.
    let mut ldap = SourceConfig::new(SourceKind::Ldap);
    ldap.schedule = None;
    config.sources.insert("ldap".into(), ldap);
    let mut csv = SourceConfig::new(SourceKind::Csv);
    csv.schedule = Some(String::new());
    config.sources.insert("csv".into(), csv);
    config
        .sources
        .insert("push".into(), SourceConfig::new(SourceKind::Scim));
    let sources: Vec<(Job, String)> = scheduled(&config)
        .unwrap()
        .into_iter()
        .filter(|s| matches!(s.job, Job::Source(_)))
        .map(|s| (s.job, s.schedule.to_string()))
        .collect();
    assert_eq!(
        sources,
        [
            (Job::Source("ldap".into()), "*/5 * * * *".to_owned()),
            (Job::Source("okta".into()), "*/5 * * * *".to_owned())
        ]
    );
    // Nothing about these schedules is a configuration problem.
    let problems = config.validate().err().unwrap_or_default();
    assert!(
        !problems.iter().any(|p| p.contains("schedule")),
        "{problems:?}"
    );
    config.scheduler.regrant_schedule = " ".into();
    let jobs: Vec<Job> = scheduled(&config)
        .unwrap()
        .into_iter()
        .map(|s| s.job)
        .collect();
    assert!(!jobs.contains(&Job::Regrant), "{jobs:?}");
}
