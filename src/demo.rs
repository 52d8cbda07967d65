//! The loop `idbridge demo` shows, as library steps its command and its benchmark share: start
//! the Okta and Confluence Data Center simulators with a seeded company, configure idbridge
//! for them with example rules, then sync, plan, enforce (through the safety budget and a
//! second person's approval) and give a returner their licence back.
//!
//! Every step goes through the same engine calls the real commands use; only the systems at
//! the other end are simulated.

use std::net::SocketAddr;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};

use crate::config::{Config, RuleConfig, Secret, SourceConfig, TargetConfig};
use crate::domain::{RunStatus, SourceKind, TargetKind};
use crate::engine::inventory::{InventoryError, InventoryReport, sync_configured_target};
use crate::engine::regrant::{RegrantError, RegrantOptions, RegrantOutcome, regrant};
use crate::engine::run::{self, Preview, RunError, RunOptions, RunOutcome, RunSummary};
use crate::engine::sources::{SourceSyncError, SourceSyncReport, configured_source, sync_source};
use crate::sim::company::{self, CompanyOptions, Member, Role, Seeded};
use crate::sim::confluence_dc::{self, DcSim, DcSimOptions};
use crate::sim::okta::{self, OktaSim, OktaSimOptions};
use crate::store::{Store, StoreError};

/// The source's name in the demo's configuration.
pub const SOURCE: &str = "okta";
/// The target's name in the demo's configuration.
pub const TARGET: &str = "wiki";
/// Who starts the demo's enforced run.
pub const OPERATOR: &str = "demo-operator";
/// The second person who approves it when it is over budget.
pub const APPROVER: &str = "security-lead";

/// The demo's rules, as an administrator would write them in the configuration file.
pub const RULES_TOML: &str = r#"
[rules.leavers]
mode = "enforce"
priority = 10
when = { status = ["deprovisioned", "deleted"] }
actions = ["remove_licence_groups", "deactivate", "rename"]

[rules.inactive_90_days]
mode = "enforce"
priority = 20
exempt_groups = ["service-accounts"]
when = { inactive_days = 90 }
actions = ["remove_licence_groups"]

[rules.never_logged_in]
mode = "enforce"
priority = 30
exempt_groups = ["service-accounts"]
when = { never_logged_in_days = 30 }
actions = ["remove_licence_groups"]

[rules.idle_contractors]
mode = "dry_run"
priority = 40
when = { email_domain = ["contractor.example.net"], inactive_days = 30 }
actions = [{ notify = { grace_days = 14 } }, "remove_licence_groups"]
"#;

/// Why a demo step failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the {what} simulator: {source}")]
    Simulator {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot seed the simulators: {0}")]
    Seed(String),
    #[error("the demo's rules do not parse: {0}")]
    Rules(String),
    #[error(transparent)]
    Source(#[from] SourceSyncError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Regrant(#[from] RegrantError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Incomplete(String),
}

/// The demo's shape.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub company: CompanyOptions,
    /// Where the Okta simulator listens (port 0: any free port).
    pub okta_addr: SocketAddr,
    /// Where the Confluence simulator listens (port 0: any free port).
    pub confluence_addr: SocketAddr,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            company: CompanyOptions::default(),
            okta_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            confluence_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// The running simulators, the company in them, and idbridge's configuration for them.
pub struct Demo {
    pub okta: OktaSim,
    pub dc: DcSim,
    pub members: Vec<Member>,
    pub seeded: Seeded,
    /// `base` with the source, the target, the rules and the demo's planner settings.
    pub config: Config,
    /// Seats of the simulated Confluence licence.
    pub tier: usize,
}

/// A full sync of the source and a complete inventory of the target.
#[derive(Debug)]
pub struct Synced {
    pub source: SourceSyncReport,
    pub target: InventoryReport,
}

/// The enforced pass: the runs it stored and, for a held run, the approval that released it.
#[derive(Debug)]
pub struct Enforced {
    pub outcome: RunOutcome,
    /// Held runs approved by [`APPROVER`] and carried out.
    pub approved: Vec<RunSummary>,
    /// Licensed users in the simulator before and after.
    pub licensed_before: usize,
    pub licensed_after: usize,
    /// The wiki's inventory read after the run (a regrant waits for one).
    pub inventory: InventoryReport,
}

/// A returner's sign-in and what idbridge did about it.
#[derive(Debug)]
pub struct Returned {
    pub username: String,
    pub signed_in_at: DateTime<Utc>,
    pub source: SourceSyncReport,
    pub outcome: RegrantOutcome,
    /// Whether the simulator shows the licence group on the account again.
    pub licensed_again: bool,
    /// From the sign-in to the licence group back in the simulator.
    pub latency: StdDuration,
}

impl Demo {
    /// Starts both simulators, seeds the company as of `now` and configures idbridge for
    /// them on top of `base` (whose database, server and logging settings are kept).
    pub async fn start(
        opts: &DemoOptions,
        base: Config,
        now: DateTime<Utc>,
    ) -> Result<Demo, DemoError> {
        let members = company::generate(&opts.company, now);
        let tier = (members.len() / 500 + 1) * 500;
        let dc = confluence_dc::start(
            DcSimOptions {
                users: 0,
                remote_api: true,
                max_users: Some(i64::try_from(tier).unwrap_or(i64::MAX)),
                ..DcSimOptions::default()
            },
            opts.confluence_addr,
        )
        .await
        .map_err(|source| DemoError::Simulator {
            what: "Confluence",
            source,
        })?;
        let okta = match okta::start(
            OktaSimOptions {
                users: 0,
                rate_limit: Some(1_000_000),
                ..OktaSimOptions::default()
            },
            opts.okta_addr,
        )
        .await
        {
            Ok(o) => o,
            Err(source) => {
                dc.stop().await;
                return Err(DemoError::Simulator {
                    what: "Okta",
                    source,
                });
            }
        };
        let ready = company::seed(&members, &dc, &okta)
            .map_err(DemoError::Seed)
            .and_then(|seeded| Ok((seeded, configure(base, &okta, &dc)?)));
        let (seeded, config) = match ready {
            Ok(r) => r,
            Err(e) => {
                dc.stop().await;
                okta.stop().await;
                return Err(e);
            }
        };
        Ok(Demo {
            okta,
            dc,
            members,
            seeded,
            config,
            tier,
        })
    }

    /// A full sync of Okta and a complete inventory of the wiki.
    pub async fn sync(&self, store: &Store) -> Result<Synced, DemoError> {
        let source = self.sync_source(store).await?;
        let target = self.inventory(store).await?;
        Ok(Synced { source, target })
    }

    /// A complete inventory of the wiki.
    pub async fn inventory(&self, store: &Store) -> Result<InventoryReport, DemoError> {
        let report = sync_configured_target(store, TARGET, &self.config.targets[TARGET]).await?;
        if let Some(why) = &report.reason {
            return Err(DemoError::Incomplete(format!(
                "the inventory of {TARGET} is not complete: {why}"
            )));
        }
        Ok(report)
    }

    async fn sync_source(&self, store: &Store) -> Result<SourceSyncReport, DemoError> {
        let (record, connector, opts) =
            configured_source(store, SOURCE, &self.config.sources[SOURCE]).await?;
        let report = sync_source(store, &record, &connector, &opts).await?;
        if let Some(why) = &report.reason {
            return Err(DemoError::Incomplete(format!(
                "the snapshot of {SOURCE} is not complete: {why}"
            )));
        }
        Ok(report)
    }

    /// What every rule would do now, with nothing changed anywhere.
    pub async fn preview(&self, store: &Store, now: DateTime<Utc>) -> Result<Preview, DemoError> {
        let opts = RunOptions {
            dry_run: true,
            principal: OPERATOR.into(),
            ..RunOptions::default()
        };
        Ok(run::preview(store, &self.config, &opts, now).await?)
    }

    /// Runs the rules for real; a run held by the safety budget is approved by a second
    /// person ([`APPROVER`]) against the plan hash they reviewed, then carried out.
    pub async fn enforce(&self, store: &Store, now: DateTime<Utc>) -> Result<Enforced, DemoError> {
        let licensed_before = self.dc.licensed_count();
        let opts = RunOptions {
            principal: OPERATOR.into(),
            execute: true,
            ..RunOptions::default()
        };
        let outcome = run::run(store, &self.config, &opts, now).await?;
        let mut approved = Vec::new();
        for r in &outcome.runs {
            if r.status == RunStatus::Held {
                approved.push(
                    run::approve(
                        store,
                        &self.config,
                        r.run,
                        APPROVER,
                        Some(&r.plan_hash),
                        true,
                        now,
                    )
                    .await?,
                );
            }
        }
        let licensed_after = self.dc.licensed_count();
        let inventory = self.inventory(store).await?;
        Ok(Enforced {
            outcome,
            approved,
            licensed_before,
            licensed_after,
            inventory,
        })
    }

    /// The first returner whose licence the enforced run removed.
    pub fn returner(&self) -> Option<&Member> {
        self.members.iter().find(|m| {
            m.role == Role::Returner
                && self
                    .dc
                    .user(&m.username)
                    .is_some_and(|u| !u.groups.iter().any(|g| g == company::LICENCE_GROUP))
        })
    }

    /// A leaver (deprovisioned in Okta), for the sign-in that must raise an alert.
    pub fn leaver(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.role == Role::Leaver)
    }

    /// Records a successful sign-in of `member` in Okta now: the user's `lastLogin` and an
    /// SSO event in the System Log.
    pub fn sign_in(&self, member: &Member, at: DateTime<Utc>) -> bool {
        let Some(id) = self.seeded.okta_ids.get(&member.username) else {
            return false;
        };
        self.okta.update_user(id, |u| u.last_login = Some(at));
        self.okta.add_sso_event(id, "SUCCESS", Some(at)).is_some()
    }

    /// Signs `returner` (and, when given, a leaver) in, syncs Okta and makes a regrant pass:
    /// the returner's licence comes back; the leaver's sign-in raises an alert.
    pub async fn return_one(
        &self,
        store: &Store,
        returner: &Member,
        leaver: Option<&Member>,
        now: impl Fn() -> DateTime<Utc>,
    ) -> Result<Returned, DemoError> {
        let started = Instant::now();
        let signed_in_at = now();
        self.sign_in(returner, signed_in_at);
        if let Some(l) = leaver {
            self.sign_in(l, signed_in_at);
        }
        let source = self.sync_source(store).await?;
        let outcome = regrant(store, &self.config, &RegrantOptions::default(), now()).await?;
        let licensed_again = self
            .dc
            .user(&returner.username)
            .is_some_and(|u| u.groups.iter().any(|g| g == company::LICENCE_GROUP));
        Ok(Returned {
            username: returner.username.clone(),
            signed_in_at,
            source,
            outcome,
            licensed_again,
            latency: started.elapsed(),
        })
    }

    pub async fn stop(self) {
        self.dc.stop().await;
        self.okta.stop().await;
    }
}

/// `base` with the demo's source, target, rules and planner settings.
fn configure(mut base: Config, okta: &OktaSim, dc: &DcSim) -> Result<Config, DemoError> {
    let mut src = SourceConfig::new(SourceKind::Okta);
    src.base_url = Some(okta.base_url());
    src.token = Some(Secret::new(okta.ssws_token()));
    src.app_id = Some(okta.app_id().to_owned());
    src.custom_attributes = vec!["department".into()];
    // In `serve`, the scheduler reads Okta every minute and the wiki every five.
    src.schedule = Some("* * * * *".into());
    base.sources.insert(SOURCE.into(), src);
    let mut target = TargetConfig::new(TargetKind::ConfluenceDc, dc.base_url());
    target.token = Some(Secret::new(dc.pat()));
    target.schedule = Some("*/5 * * * *".into());
    base.targets.insert(TARGET.into(), target);
    base.scheduler.regrant_schedule = "* * * * *".into();
    // A fresh install waits 30 days before its first inactivity action; the demo's history
    // comes from the simulators, so it does not.
    base.planner.observation_floor_days = 0;
    #[derive(serde::Deserialize)]
    struct Rules {
        rules: std::collections::BTreeMap<String, RuleConfig>,
    }
    let rules: Rules = toml::from_str(RULES_TOML).map_err(|e| DemoError::Rules(e.to_string()))?;
    base.rules.extend(rules.rules);
    Ok(base)
}
