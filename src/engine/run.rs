//! One reconciliation pass end to end, and the approval of a held one.
//!
//! A pass links identities to accounts, loads the planner's view from the store, plans
//! (a pure function of that view, the rules and the clock), checks the plan against the
//! safety budgets, and stores it — the plan and every action — before anything is written
//! to a target. Actions of rules in `enforce` mode form one run; actions of `dry_run` rules
//! (or of every rule under `--dry-run`) form another, carried out by the recording executor:
//! the same budgets, the same report, zero writes. A run over budget is held whole until a
//! second principal approves its hash; nothing of it runs before that.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::domain::{
    Explanation, Plan, PlannedAction, RuleMode, RunId, RunStatus, SourceState, TargetId,
    TargetState,
};
use crate::engine::execute::{self, ExecReport, ExecuteOptions};
use crate::engine::link;
use crate::engine::plan::{self, PlanInput, PlanSettings};
use crate::engine::safety::{self, BudgetHistory, BudgetInput, BudgetReport};
use crate::store::{ActionRecord, NewRun, PlannerInputs, RuleOrigin, RunKind, Store, StoreError};
use crate::targets::Connector;

/// Why a pass could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the rules are not valid: {}", .0.join("; "))]
    Rules(Vec<String>),
    #[error("planner.timezone: `{0}` is not an IANA time zone")]
    Timezone(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("target `{name}`: {detail}")]
    Target { name: String, detail: String },
    #[error(transparent)]
    Execute(#[from] execute::ExecuteError),
    #[error(transparent)]
    Approval(#[from] safety::ApprovalError),
    #[error("no run {0}")]
    NoSuchRun(RunId),
}

/// What to plan and how.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Rule names to plan; empty: every enabled rule.
    pub rules: Vec<String>,
    /// Record every rule's plan with zero writes, whatever its mode.
    pub dry_run: bool,
    /// Who starts the pass (a person, `scheduler`, `cli`).
    pub principal: String,
    /// Carry out what is within budget now (`false`: store the plan only).
    pub execute: bool,
}

/// How accounts were linked to identities in this pass.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LinkSummary {
    pub accounts: usize,
    pub linked: usize,
    pub unlinked: usize,
    pub conflicts: usize,
    /// Links stored by this pass.
    pub added: u64,
}

/// Everything planning produced, before anything is stored.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub links: LinkSummary,
    pub sources: Vec<SourceState>,
    pub targets: Vec<TargetState>,
    /// The plan of `enforce` rules (empty under `--dry-run`).
    pub enforce: Plan,
    /// The plan of `dry_run` rules.
    pub dry_run: Plan,
    pub enforce_budget: BudgetReport,
    pub dry_run_budget: BudgetReport,
    /// The rules planned (from the configuration and the store), in plan order.
    pub rules: Vec<String>,
    pub config_hash: String,
}

/// One stored run and what became of it.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub run: RunId,
    pub mode: RuleMode,
    pub status: RunStatus,
    pub plan_hash: String,
    pub actions: usize,
    pub budget: BudgetReport,
    pub executed: Option<ExecReport>,
}

/// The outcome of a pass.
#[derive(Debug, Serialize)]
pub struct RunOutcome {
    pub preview: Preview,
    pub runs: Vec<RunSummary>,
}

/// The planner's settings from the configuration.
pub fn settings(config: &Config) -> Result<PlanSettings, RunError> {
    let timezone = config
        .planner
        .timezone
        .parse::<chrono_tz::Tz>()
        .map_err(|_| RunError::Timezone(config.planner.timezone.clone()))?;
    Ok(PlanSettings {
        timezone,
        observation_floor_days: config.planner.observation_floor_days,
    })
}

/// A digest of everything that shapes a plan's decisions (rules, linking, planner and
/// safety settings), so that budgets tighten on the first run after a change.
pub fn config_hash(config: &Config, rules: &[String]) -> String {
    let selected: BTreeMap<&String, _> = config
        .rules
        .iter()
        .filter(|(name, _)| rules.is_empty() || rules.contains(name))
        .collect();
    let material = serde_json::json!({
        "rules": selected,
        "linking": config.linking,
        "planner": config.planner,
        "safety": config.safety,
        "admin_groups": config.targets.iter().map(|(n, t)| (n, &t.admin_groups)).collect::<BTreeMap<_, _>>(),
    });
    let digest = Sha256::digest(material.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Links, loads and plans; stores nothing but new links.
pub async fn preview(
    store: &Store,
    config: &Config,
    opts: &RunOptions,
    now: DateTime<Utc>,
) -> Result<Preview, RunError> {
    let (links, inputs, rules, settings) = load(store, config, opts).await?;
    let mode_of: HashMap<&str, RuleMode> = rules
        .iter()
        .map(|r| {
            let mode = if opts.dry_run {
                RuleMode::DryRun
            } else {
                r.mode
            };
            (r.name.as_str(), mode)
        })
        .collect();
    let whole = plan::plan(&PlanInput {
        people: &inputs.people,
        rules: &rules,
        sources: &inputs.sources,
        targets: &inputs.targets,
        settings: &settings,
        now,
    });
    let (enforce, dry_run) = split_by_mode(whole, |rule| {
        mode_of.get(rule).copied().unwrap_or(RuleMode::DryRun)
    });
    let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    let config_hash = config_hash(config, &names);
    let history = history(store, now).await?;
    let first_run = !store.has_enforced_run().await?;
    let changed = match store.last_enforced_config_hash(&names).await? {
        Some(previous) => previous != config_hash,
        None => false,
    };
    let budget = |plan: &Plan| {
        safety::check_budgets(&BudgetInput {
            plan,
            history: &history,
            first_run,
            changed,
            config: &config.safety,
        })
    };
    Ok(Preview {
        links,
        sources: inputs.sources,
        targets: inputs.targets,
        enforce_budget: budget(&enforce),
        dry_run_budget: budget(&dry_run),
        enforce,
        dry_run,
        rules: names,
        config_hash,
    })
}

/// Why the person named `user` is or is not touched, rule by rule.
pub async fn explain(
    store: &Store,
    config: &Config,
    opts: &RunOptions,
    user: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Explanation>, RunError> {
    let (_, inputs, rules, settings) = load(store, config, opts).await?;
    Ok(plan::explain(
        &PlanInput {
            people: &inputs.people,
            rules: &rules,
            sources: &inputs.sources,
            targets: &inputs.targets,
            settings: &settings,
            now,
        },
        user,
    ))
}

/// Plans, checks budgets, stores each non-empty plan as a run, and carries out what is
/// within budget (dry runs with the recording executor).
pub async fn run(
    store: &Store,
    config: &Config,
    opts: &RunOptions,
    now: DateTime<Utc>,
) -> Result<RunOutcome, RunError> {
    let preview = preview(store, config, opts, now).await?;
    let mut runs = Vec::new();
    for (mode, plan, budget) in [
        (RuleMode::Enforce, &preview.enforce, &preview.enforce_budget),
        (RuleMode::DryRun, &preview.dry_run, &preview.dry_run_budget),
    ] {
        if plan.actions.is_empty() {
            continue;
        }
        let StoredRun {
            id,
            status,
            plan_hash,
        } = store_run(
            store,
            RunToStore {
                kind: RunKind::Rule,
                mode,
                rules: preview.rules.clone(),
                started_by: &opts.principal,
                config_hash: preview.config_hash.clone(),
                actions: &plan.actions,
                budget,
            },
        )
        .await?;
        let (status, executed) =
            execute_if_planned(store, config, id, status, opts.execute).await?;
        runs.push(RunSummary {
            run: id,
            mode,
            status,
            plan_hash,
            actions: plan.actions.len(),
            budget: budget.clone(),
            executed,
        });
    }
    Ok(RunOutcome { preview, runs })
}

/// Approves a held run for `approver` (who must not be its starter), bound to the hash the
/// approver reviewed, and carries it out when `execute`.
pub async fn approve(
    store: &Store,
    config: &Config,
    run: RunId,
    approver: &str,
    presented_hash: Option<&str>,
    execute: bool,
    now: DateTime<Utc>,
) -> Result<RunSummary, RunError> {
    let record = store.run(run).await?.ok_or(RunError::NoSuchRun(run))?;
    let actions = store.run_actions(run).await?;
    // The plan hash covers ids, keys, usernames, kinds and rules, not target names.
    let planned: Vec<PlannedAction> = actions.iter().map(ActionRecord::planned).collect();
    let recomputed = safety::plan_hash(&planned);
    let ttl = config.safety.approval_ttl_hours;
    if let Err(e) = safety::check_approval(
        &record.started_by,
        record.status,
        &record.plan_hash,
        &recomputed,
        presented_hash,
        approver,
        now,
        record.created_at,
        ttl,
    ) {
        if matches!(e, safety::ApprovalError::Expired { .. }) {
            store
                .set_run_status(run, &[RunStatus::Held], RunStatus::Expired)
                .await?;
        }
        return Err(e.into());
    }
    store
        .approve_run(
            run,
            approver,
            now,
            Some(now + Duration::hours(i64::from(ttl))),
        )
        .await?;
    let executed = if execute {
        Some(execute_run(store, config, run).await?)
    } else {
        None
    };
    let record = store.run(run).await?.ok_or(RunError::NoSuchRun(run))?;
    Ok(RunSummary {
        run,
        mode: record.mode,
        status: record.status,
        plan_hash: record.plan_hash,
        actions: actions.len(),
        budget: serde_json::from_value(record.budget.clone()).unwrap_or_else(|_| budget_unknown()),
        executed,
    })
}

/// A plan about to be stored as a run.
pub struct RunToStore<'a> {
    pub kind: RunKind,
    pub mode: RuleMode,
    pub rules: Vec<String>,
    pub started_by: &'a str,
    pub config_hash: String,
    pub actions: &'a [PlannedAction],
    pub budget: &'a BudgetReport,
}

/// What [`store_run`] stored.
pub struct StoredRun {
    pub id: RunId,
    pub status: RunStatus,
    pub plan_hash: String,
}

/// Stores a plan as a run: an enforced plan over its budget is `Held` (nothing of it runs
/// until someone other than its starter approves it), anything else `Planned`.
pub async fn store_run(store: &Store, run: RunToStore<'_>) -> Result<StoredRun, RunError> {
    let plan_hash = safety::plan_hash(run.actions);
    let status = if run.budget.held && run.mode == RuleMode::Enforce {
        RunStatus::Held
    } else {
        RunStatus::Planned
    };
    let id = store
        .create_run(
            &NewRun {
                kind: run.kind,
                mode: run.mode,
                status,
                rules: run.rules,
                started_by: run.started_by.to_owned(),
                config_hash: run.config_hash,
                plan_hash: plan_hash.clone(),
                budget: serde_json::to_value(run.budget).unwrap_or_default(),
            },
            run.actions,
        )
        .await?;
    tracing::info!(run = %id, kind = run.kind.as_str(), mode = run.mode.as_str(), status = status.as_str(), actions = run.actions.len(), "run stored");
    Ok(StoredRun {
        id,
        status,
        plan_hash,
    })
}

/// Carries out stored run `id`, stored as `status`, when that is `Planned` and `execute`;
/// returns its status now and what the executor did.
pub async fn execute_if_planned(
    store: &Store,
    config: &Config,
    id: RunId,
    status: RunStatus,
    execute: bool,
) -> Result<(RunStatus, Option<ExecReport>), RunError> {
    let executed = if status == RunStatus::Planned && execute {
        Some(execute_run(store, config, id).await?)
    } else {
        None
    };
    let now = store.run(id).await?.map(|r| r.status).unwrap_or(status);
    Ok((now, executed))
}

/// Carries out one stored run against the configured targets.
pub async fn execute_run(
    store: &Store,
    config: &Config,
    run: RunId,
) -> Result<ExecReport, RunError> {
    let (connectors, admin_groups) = connectors(store, config).await?;
    let report = execute::execute(
        store,
        &connectors,
        &execute::RecordingNotifier,
        &config.executor,
        &ExecuteOptions {
            run: Some(run),
            executor_id: format!("run-{}", uuid::Uuid::new_v4().simple()),
            admin_groups,
        },
    )
    .await?;
    Ok(report)
}

/// A connector and the administrator groups of every configured target, by its stored id.
pub async fn connectors(
    store: &Store,
    config: &Config,
) -> Result<
    (
        BTreeMap<TargetId, Connector>,
        BTreeMap<TargetId, Vec<String>>,
    ),
    RunError,
> {
    let mut targets = BTreeMap::new();
    let mut admins = BTreeMap::new();
    for (name, cfg) in &config.targets {
        let record = store.ensure_target(name, cfg.kind, &cfg.base_url).await?;
        let connector = Connector::new(name, cfg).map_err(|e| RunError::Target {
            name: name.clone(),
            detail: e.to_string(),
        })?;
        targets.insert(record.id, connector);
        admins.insert(record.id, cfg.admin_groups.clone());
    }
    Ok((targets, admins))
}

async fn load(
    store: &Store,
    config: &Config,
    opts: &RunOptions,
) -> Result<
    (
        LinkSummary,
        PlannerInputs,
        Vec<crate::domain::Rule>,
        PlanSettings,
    ),
    RunError,
> {
    let settings = settings(config)?;
    let mut rules = crate::config::rules_from_config(config).map_err(RunError::Rules)?;
    store.mirror_config_rules(&rules, "config").await?;
    for stored in store.stored_rules().await? {
        if stored.origin == RuleOrigin::Store && stored.rule.enabled {
            rules.push(stored.rule);
        }
    }
    if !opts.rules.is_empty() {
        let unknown: Vec<String> = opts
            .rules
            .iter()
            .filter(|n| !rules.iter().any(|r| &r.name == *n))
            .map(|n| format!("no rule named `{n}`"))
            .collect();
        if !unknown.is_empty() {
            return Err(RunError::Rules(unknown));
        }
        rules.retain(|r| opts.rules.contains(&r.name));
    }
    let report = link::refresh_links(store, config).await?;
    let inputs = store.planner_inputs(config, &report).await?;
    let summary = LinkSummary {
        accounts: report.accounts,
        linked: report.linked,
        unlinked: report.unlinked,
        conflicts: report.conflicted,
        added: report.added,
    };
    Ok((summary, inputs, rules, settings))
}

async fn history(store: &Store, now: DateTime<Utc>) -> Result<BudgetHistory, RunError> {
    let (day, week) = store
        .budget_history(now - Duration::hours(24), now - Duration::days(7))
        .await?;
    Ok(BudgetHistory { day, week })
}

/// Splits a plan by the mode of the rule behind each action; both halves keep the notes,
/// conflicts and managed population.
fn split_by_mode(whole: Plan, mode_of: impl Fn(&str) -> RuleMode) -> (Plan, Plan) {
    let mut enforce = Plan {
        actions: Vec::new(),
        ..whole.clone()
    };
    let mut dry = Plan {
        actions: Vec::new(),
        ..whole.clone()
    };
    for a in whole.actions {
        match mode_of(&a.reason.rule) {
            RuleMode::Enforce => enforce.actions.push(a),
            RuleMode::DryRun => dry.actions.push(a),
        }
    }
    (enforce, dry)
}

/// A budget report for a stored run whose report cannot be read back.
fn budget_unknown() -> BudgetReport {
    BudgetReport {
        checks: Vec::new(),
        held: false,
        reasons: vec!["the stored budget report could not be read".into()],
        planned: BTreeMap::new(),
        factor: 1.0,
        managed_population: 0,
    }
}
