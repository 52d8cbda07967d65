//! The scheduler of `serve`: runs each polled source's sync, each target's inventory and each
//! rule on its cron schedule, in the configured time zone, on exactly one instance.
//!
//! Every round the instance takes or renews the scheduler lease ([`Store::claim_scheduler`]).
//! The holder claims each due tick under the lease's epoch ([`Store::claim_tick`], fenced: a
//! deposed holder's claim is refused) before running the job, so a tick runs at most once
//! however many instances share the database; a standby takes over within one lease period
//! after the holder dies. On SQLite a second instance is refused with a message naming the
//! holder. A job that has never fired waits for its first tick after the scheduler started
//! (no burst of old ticks on a first start), and one that missed several ticks while no
//! instance ran fires once. [`executor_loop`] runs on every instance and carries out stored
//! actions whoever planned them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::domain::SourceKind;
use crate::domain::schedule::Schedule;
use crate::engine::inventory::sync_configured_target;
use crate::engine::run::{self, RunOptions};
use crate::engine::sources::{configured_source, sync_source};
use crate::store::{Lease, Store, StoreError};

/// What a scheduled job does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Job {
    /// A full sync of a polled source.
    Source(String),
    /// An inventory of a target.
    Target(String),
    /// One pass of a rule: plan, budgets, store, carry out.
    Rule(String),
    /// Licences back to people removed for inactivity who signed in again.
    Regrant,
}

impl Job {
    /// The job's key in the tick table: `source:<name>`, `target:<name>`, `rule:<name>`.
    pub fn key(&self) -> String {
        match self {
            Job::Source(n) => format!("source:{n}"),
            Job::Target(n) => format!("target:{n}"),
            Job::Rule(n) => format!("rule:{n}"),
            Job::Regrant => "regrant".to_owned(),
        }
    }
}

/// A job with its schedule.
#[derive(Clone, Debug)]
pub struct Scheduled {
    pub job: Job,
    pub schedule: Schedule,
}

/// Why the scheduler cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(String),
}

/// How often `serve` polls an identity source that sets no `schedule` (an empty one turns
/// polling off): the regrant pass's default too, so a sign-in counts within five minutes.
pub const DEFAULT_SOURCE_POLL: &str = "*/5 * * * *";

/// Every scheduled job of `config`: polled sources, targets and enabled rules with a
/// `schedule`, then the regrant pass, in that order (syncs before what reads them).
pub fn scheduled(config: &Config) -> Result<Vec<Scheduled>, SchedulerError> {
    let mut out = Vec::new();
    let mut add = |job: Job, expr: &Option<String>, key: String| match expr {
        None => Ok(()),
        // An empty schedule turns a job off.
        Some(e) if e.trim().is_empty() => Ok(()),
        Some(e) => Schedule::parse(e)
            .map(|schedule| out.push(Scheduled { job, schedule }))
            .map_err(|err| SchedulerError::Config(format!("{key}.schedule: {err}"))),
    };
    for (name, cfg) in &config.sources {
        if cfg.kind != SourceKind::Scim {
            add(
                Job::Source(name.clone()),
                &Some(
                    cfg.schedule
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SOURCE_POLL.to_owned()),
                ),
                format!("sources.{name}"),
            )?;
        }
    }
    for (name, cfg) in &config.targets {
        add(
            Job::Target(name.clone()),
            &cfg.schedule,
            format!("targets.{name}"),
        )?;
    }
    for (name, cfg) in &config.rules {
        if cfg.enabled {
            add(
                Job::Rule(name.clone()),
                &cfg.schedule,
                format!("rules.{name}"),
            )?;
        }
    }
    // Last: it reads the sign-ins the syncs of the same tick brought in.
    let regrant = config.scheduler.regrant_schedule.trim();
    if !regrant.is_empty() {
        add(
            Job::Regrant,
            &Some(regrant.to_owned()),
            "scheduler.regrant".to_owned(),
        )?;
    }
    Ok(out)
}

/// One job run by a round.
#[derive(Clone, Debug, Serialize)]
pub struct Ran {
    pub job: Job,
    /// The tick it ran for.
    pub tick: DateTime<Utc>,
    /// What it did, or why it failed.
    pub outcome: Result<String, String>,
}

/// What one round did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Round {
    /// The lease, when this instance holds it.
    pub lease: Option<Lease>,
    pub ran: Vec<Ran>,
}

/// The scheduler of one instance.
pub struct Scheduler<'a> {
    store: &'a Store,
    config: &'a Config,
    holder: String,
    tz: Tz,
    jobs: Vec<Scheduled>,
    ttl: chrono::Duration,
    /// Jobs that never fired wait for a tick after this.
    started: DateTime<Utc>,
}

impl<'a> Scheduler<'a> {
    /// A scheduler for `config`'s jobs, holding the lease as `holder` (unique per process).
    pub fn new(store: &'a Store, config: &'a Config, holder: &str) -> Result<Self, SchedulerError> {
        let zone = config.schedule_timezone();
        let tz = zone.parse::<Tz>().map_err(|_| {
            SchedulerError::Config(format!("scheduler.timezone: `{zone}` is not a time zone"))
        })?;
        let ttl = chrono::Duration::seconds(
            i64::try_from(config.scheduler.lease_ttl_secs.max(3)).unwrap_or(30),
        );
        Ok(Scheduler {
            store,
            config,
            holder: holder.to_owned(),
            tz,
            jobs: scheduled(config)?,
            ttl,
            started: store.clock.now(),
        })
    }

    /// The jobs this scheduler runs.
    pub fn jobs(&self) -> &[Scheduled] {
        &self.jobs
    }

    /// Takes or renews the lease; when held, claims and runs each due tick, jobs in order.
    /// A job's failure is reported in its [`Ran`], not as an error of the round. On SQLite,
    /// another live holder is an error ([`StoreError::Lease`]).
    pub async fn round(&self) -> Result<Round, SchedulerError> {
        let Some(lease) = self.store.claim_scheduler(&self.holder, self.ttl).await? else {
            return Ok(Round::default());
        };
        let mut ran = Vec::new();
        for s in &self.jobs {
            let key = s.job.key();
            let now = self.store.clock.now();
            let floor = self.store.last_fired(&key).await?.unwrap_or(self.started);
            let Some(tick) = s.schedule.due(Some(floor), now, self.tz) else {
                continue;
            };
            if !self.store.claim_tick(&key, tick, lease.epoch).await? {
                continue;
            }
            tracing::info!(job = %key, tick = %tick, epoch = lease.epoch, "scheduled job starts");
            let outcome = self.run_renewing(&s.job, lease.epoch).await;
            match &outcome {
                Ok(what) => tracing::info!(job = %key, outcome = %what, "scheduled job done"),
                Err(why) => tracing::warn!(job = %key, error = %why, "scheduled job failed"),
            }
            ran.push(Ran {
                job: s.job.clone(),
                tick,
                outcome,
            });
        }
        Ok(Round {
            lease: Some(lease),
            ran,
        })
    }

    /// When the next round is due: the earliest next tick, or the lease renewal (a third
    /// of its period), whichever comes first.
    pub fn next_round(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let renew = now + self.ttl / 3;
        self.jobs
            .iter()
            .filter_map(|s| s.schedule.next_after(now, self.tz))
            .fold(renew, DateTime::min)
    }

    /// Runs rounds until `shutdown`, then gives the lease up. Returns early (after logging
    /// it) when another instance holds the lease on SQLite.
    pub async fn run(&self, shutdown: CancellationToken) {
        if self.jobs.is_empty() {
            tracing::info!("no scheduled jobs; the scheduler is idle");
            return;
        }
        tracing::info!(jobs = self.jobs.len(), timezone = %self.tz, holder = %self.holder, "scheduler started");
        loop {
            match self.round().await {
                Ok(_) => {}
                Err(SchedulerError::Store(StoreError::Lease(e))) => {
                    tracing::error!(error = %e, "the scheduler does not start");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "scheduler round failed; trying again"),
            }
            let now = self.store.clock.now();
            let wait = (self.next_round(now) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(200), Duration::from_secs(60));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        match self
            .store
            .release_lease(crate::store::SCHEDULER_LEASE, &self.holder)
            .await
        {
            Ok(_) => tracing::info!("scheduler stopped; lease released"),
            Err(e) => {
                tracing::warn!(error = %e, "scheduler stopped; the lease could not be released")
            }
        }
    }

    /// Runs `job`, renewing the lease every third of its period meanwhile: a long job (a big
    /// inventory, a long run) must not let the lease lapse under it and hand the schedules to
    /// a second instance while this one still works.
    async fn run_renewing(&self, job: &Job, epoch: i64) -> Result<String, String> {
        let every = (self.ttl / 3)
            .to_std()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(200));
        let work = self.run_job(job);
        tokio::pin!(work);
        loop {
            tokio::select! {
                outcome = &mut work => return outcome,
                () = tokio::time::sleep(every) => {
                    match self.store.claim_scheduler(&self.holder, self.ttl).await {
                        Ok(Some(l)) if l.epoch == epoch => {}
                        Ok(_) => tracing::warn!(
                            job = %job.key(),
                            "the scheduler lease passed to another instance during this job; \
                             the job finishes, no further tick runs here"
                        ),
                        Err(e) => tracing::warn!(
                            job = %job.key(),
                            error = %e,
                            "cannot renew the scheduler lease during this job"
                        ),
                    }
                }
            }
        }
    }

    async fn run_job(&self, job: &Job) -> Result<String, String> {
        let store = self.store;
        match job {
            Job::Source(name) => {
                let cfg = self
                    .config
                    .sources
                    .get(name)
                    .ok_or_else(|| format!("source `{name}` is not configured"))?;
                let (record, connector, opts) = configured_source(store, name, cfg)
                    .await
                    .map_err(|e| e.to_string())?;
                let report = sync_source(store, &record, &connector, &opts)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "snapshot {}: {} people",
                    report.snapshot.status.as_str(),
                    report.snapshot.item_count
                ))
            }
            Job::Target(name) => {
                let cfg = self
                    .config
                    .targets
                    .get(name)
                    .ok_or_else(|| format!("target `{name}` is not configured"))?;
                let report = sync_configured_target(store, name, cfg)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "inventory {}: {} accounts",
                    report.snapshot.status.as_str(),
                    report.accounts
                ))
            }
            Job::Regrant => {
                let outcome = crate::engine::regrant::regrant(
                    store,
                    self.config,
                    &crate::engine::regrant::RegrantOptions { dry_run: false },
                    store.clock.now(),
                )
                .await
                .map_err(|e| e.to_string())?;
                Ok(format!(
                    "{} actions, {} alerts raised",
                    outcome.plan.actions.len(),
                    outcome.alerts_raised
                ))
            }
            Job::Rule(name) => {
                let opts = RunOptions {
                    rules: vec![name.clone()],
                    dry_run: false,
                    principal: "scheduler".into(),
                    execute: true,
                };
                let outcome = run::run(store, self.config, &opts, store.clock.now())
                    .await
                    .map_err(|e| e.to_string())?;
                let runs: Vec<String> = outcome
                    .runs
                    .iter()
                    .map(|r| format!("run {} {}", r.run, r.status.as_str()))
                    .collect();
                Ok(if runs.is_empty() {
                    "nothing to do".to_owned()
                } else {
                    runs.join(", ")
                })
            }
        }
    }
}

/// Carries out stored actions every `scheduler.executor_interval_secs` until `shutdown`, on
/// every instance: claims keep two instances off the same action.
pub async fn executor_loop(
    store: &Store,
    config: &Config,
    holder: &str,
    shutdown: CancellationToken,
) {
    let every = Duration::from_secs(config.scheduler.executor_interval_secs.max(1));
    let pause = || async {
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(every) => true,
        }
    };
    // The connectors (and their probe caches) are built once, not on every pass.
    let (targets, admin_groups) = loop {
        match run::connectors(store, config).await {
            Ok(built) => break built,
            Err(e) => tracing::warn!(error = %e, "executor cannot build the target connectors"),
        }
        if !pause().await {
            return;
        }
    };
    let opts = crate::engine::execute::ExecuteOptions {
        run: None,
        executor_id: format!("{holder}-executor"),
        admin_groups,
    };
    loop {
        let pass = crate::engine::execute::execute(
            store,
            &targets,
            &crate::engine::execute::RecordingNotifier,
            &config.executor,
            &opts,
        )
        .await;
        match pass {
            Ok(report) if report.claimed > 0 => {
                tracing::info!(claimed = report.claimed, phases = ?report.phases, "executor pass")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "executor pass failed"),
        }
        if !pause().await {
            return;
        }
    }
}
