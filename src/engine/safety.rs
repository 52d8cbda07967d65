//! Safety: blast-radius budgets and the approval policy for held plans. Pure functions of
//! the plan, the recent history, the configuration and the clock's reading: no I/O.
//!
//! Budgets count *distinct accounts* per [`BudgetKind`] (removing three licence groups of one
//! person counts once), as an absolute count and as a percentage of the managed population,
//! per run and over rolling 24-hour and 7-day windows. Any limit exceeded holds the whole
//! plan; nothing of it runs until a second principal approves it by its [`plan_hash`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Budget, SafetyConfig};
use crate::domain::{AccountId, ActionKind, BudgetKind, Plan, PlannedAction, RunStatus};

/// Distinct accounts already acted on by enforced runs, per budget kind, in the rolling
/// windows that end now. The store computes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetHistory {
    /// The last 24 hours.
    pub day: BTreeMap<BudgetKind, u64>,
    /// The last 7 days.
    pub week: BTreeMap<BudgetKind, u64>,
}

/// What [`check_budgets`] weighs.
#[derive(Clone, Copy, Debug)]
pub struct BudgetInput<'a> {
    pub plan: &'a Plan,
    pub history: &'a BudgetHistory,
    /// The first enforced run of the rule(s): limits × `first_run_factor`.
    pub first_run: bool,
    /// The rule or the configuration changed since the last enforced run: limits ×
    /// `change_factor`.
    pub changed: bool,
    pub config: &'a SafetyConfig,
}

/// The span a limit covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetWindow {
    /// This plan alone.
    Run,
    /// The rolling 24 hours ending now, this plan included.
    Day,
    /// The rolling 7 days ending now, this plan included.
    Week,
}

impl BudgetWindow {
    fn words(self) -> &'static str {
        match self {
            BudgetWindow::Run => "per-run",
            BudgetWindow::Day => "24-hour",
            BudgetWindow::Week => "7-day",
        }
    }
}

/// Whether a limit was configured as a count or as a percentage.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "basis", content = "configured")]
pub enum LimitBasis {
    /// An absolute number of accounts.
    Count(u64),
    /// A percentage of the managed population.
    Percent(f64),
}

/// One limit weighed against the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetCheck {
    pub kind: BudgetKind,
    pub window: BudgetWindow,
    /// What was configured.
    #[serde(flatten)]
    pub basis: LimitBasis,
    /// The limit in accounts, after the percentage and the factors.
    pub limit: u64,
    /// Distinct accounts of this kind in the plan.
    pub planned: u64,
    /// Distinct accounts of this kind already acted on in the window (0 for `run`).
    pub already: u64,
    /// `already + planned`.
    pub would_be: u64,
    /// The plan adds accounts of this kind and `would_be` is over `limit`.
    pub exceeded: bool,
}

/// The verdict on a plan: every limit weighed, and whether the plan is held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    /// Every configured limit that applies, kind by kind, run/day/week, count before percent.
    pub checks: Vec<BudgetCheck>,
    /// Some limit is exceeded: the whole plan waits for approval.
    pub held: bool,
    /// Why it is held, one sentence per exceeded limit; empty when it is not.
    pub reasons: Vec<String>,
    /// Distinct accounts per kind in the plan.
    pub planned: BTreeMap<BudgetKind, u64>,
    /// The product of the factors applied to every limit (1 when none).
    pub factor: f64,
    /// The base of the percentage limits.
    pub managed_population: u64,
}

/// Weighs a plan against every configured budget. A kind without a configured budget (by
/// default `notify` and `grant`) has no limit. A limit the history alone already exceeds
/// does not hold a plan that adds nothing of that kind.
pub fn check_budgets(input: &BudgetInput<'_>) -> BudgetReport {
    let planned = distinct_accounts(&input.plan.actions);
    let factor = combined_factor(input);
    let population = input.plan.managed_population;
    let mut checks = Vec::new();
    for (&kind, budget) in &input.config.budgets {
        let planned_here = planned.get(&kind).copied().unwrap_or(0);
        for (window, count, percent) in windows(budget) {
            let already = match window {
                BudgetWindow::Run => 0,
                BudgetWindow::Day => input.history.day.get(&kind).copied().unwrap_or(0),
                BudgetWindow::Week => input.history.week.get(&kind).copied().unwrap_or(0),
            };
            let mut push = |basis: LimitBasis, base: u64| {
                let limit = apply_factor(base, factor);
                let would_be = already.saturating_add(planned_here);
                checks.push(BudgetCheck {
                    kind,
                    window,
                    basis,
                    limit,
                    planned: planned_here,
                    already,
                    would_be,
                    exceeded: planned_here > 0 && would_be > limit,
                });
            };
            if let Some(n) = count {
                push(LimitBasis::Count(n), n);
            }
            if let Some(p) = percent
                && population > 0
            {
                push(LimitBasis::Percent(p), percent_of(p, population));
            }
        }
    }
    let reasons: Vec<String> = checks
        .iter()
        .filter(|c| c.exceeded)
        .map(|c| reason(c, factor, input, population))
        .collect();
    BudgetReport {
        held: !reasons.is_empty(),
        checks,
        reasons,
        planned,
        factor,
        managed_population: population,
    }
}

/// Distinct accounts per budget kind.
fn distinct_accounts(actions: &[PlannedAction]) -> BTreeMap<BudgetKind, u64> {
    let mut sets: BTreeMap<BudgetKind, BTreeSet<AccountId>> = BTreeMap::new();
    for a in actions {
        sets.entry(a.kind.budget())
            .or_default()
            .insert(a.account_id);
    }
    sets.into_iter()
        .map(|(k, s)| (k, u64::try_from(s.len()).unwrap_or(u64::MAX)))
        .collect()
}

fn windows(b: &Budget) -> [(BudgetWindow, Option<u64>, Option<f64>); 3] {
    [
        (BudgetWindow::Run, b.per_run, b.per_run_percent),
        (BudgetWindow::Day, b.per_day, b.per_day_percent),
        (BudgetWindow::Week, b.per_week, b.per_week_percent),
    ]
}

/// A factor that is not a finite non-negative number counts as 0: the strictest reading.
fn sane(f: f64) -> f64 {
    if f.is_finite() && f > 0.0 { f } else { 0.0 }
}

fn combined_factor(input: &BudgetInput<'_>) -> f64 {
    let mut factor = 1.0;
    if input.first_run {
        factor *= sane(input.config.first_run_factor);
    }
    if input.changed {
        factor *= sane(input.config.change_factor);
    }
    factor
}

/// `floor(limit × factor)`, at least 0. A factor of exactly 1 leaves the limit alone.
fn apply_factor(limit: u64, factor: f64) -> u64 {
    if factor == 1.0 {
        return limit;
    }
    let scaled = (limit as f64 * factor).floor();
    if scaled.is_nan() || scaled <= 0.0 {
        0
    } else if scaled >= u64::MAX as f64 {
        u64::MAX
    } else {
        scaled as u64
    }
}

/// `ceil(percent % of population)`, ignoring floating-point noise just above a whole number
/// (5 % of 100 is 5, not 6). A percentage that is not a finite non-negative number is 0.
fn percent_of(percent: f64, population: u64) -> u64 {
    if !percent.is_finite() || percent <= 0.0 {
        return 0;
    }
    let exact = percent * population as f64 / 100.0;
    let nearest = exact.round();
    let value = if (exact - nearest).abs() <= 1e-9 * nearest.max(1.0) {
        nearest
    } else {
        exact.ceil()
    };
    if value >= u64::MAX as f64 {
        u64::MAX
    } else {
        value as u64
    }
}

fn reason(c: &BudgetCheck, factor: f64, input: &BudgetInput<'_>, population: u64) -> String {
    let configured = match c.basis {
        LimitBasis::Count(n) => format!("{n}"),
        LimitBasis::Percent(p) => format!("{p}% of {population} managed accounts"),
    };
    let mut how = configured;
    if factor != 1.0 {
        let mut why = Vec::new();
        if input.first_run {
            why.push(format!(
                "first-run factor {}",
                input.config.first_run_factor
            ));
        }
        if input.changed {
            why.push(format!("change factor {}", input.config.change_factor));
        }
        how = format!("{how} × {}", why.join(" × "));
    }
    let what = c.kind.as_str();
    match c.window {
        BudgetWindow::Run => format!(
            "{what}: {} accounts in this plan exceed the per-run limit of {} ({how})",
            c.planned, c.limit
        ),
        window => format!(
            "{what}: {} accounts already in the last {} plus {} in this plan make {}, over the \
             {} limit of {} ({how})",
            c.already,
            if window == BudgetWindow::Day {
                "24 hours"
            } else {
                "7 days"
            },
            c.planned,
            c.would_be,
            window.words(),
            c.limit
        ),
    }
}

/// The plan's fingerprint: SHA-256 (hex) over a canonical, length-prefixed encoding of each
/// action in order — account id and key, target id, username, kind with its parameters, and
/// the rule. The free-text reasons are not covered. The store can recompute it from the
/// stored actions, so an approval binds to exactly the actions that were reviewed.
pub fn plan_hash(actions: &[PlannedAction]) -> String {
    let mut h = Sha256::new();
    field(&mut h, "idbridge-plan-v1");
    field(&mut h, &actions.len().to_string());
    for a in actions {
        field(&mut h, "action");
        field(&mut h, &a.account_id.to_string());
        field(&mut h, &a.account_key);
        field(&mut h, &a.target_id.to_string());
        field(&mut h, &a.username);
        field(&mut h, a.kind.name());
        match &a.kind {
            ActionKind::Notify
            | ActionKind::Deactivate
            | ActionKind::Delete
            | ActionKind::Reactivate => {}
            ActionKind::RemoveFromGroup { group, licence } => {
                field(&mut h, group);
                field(&mut h, if *licence { "licence" } else { "group" });
            }
            ActionKind::Rename { from, to } => {
                field(&mut h, from);
                field(&mut h, to);
            }
            ActionKind::AddToGroup { group } => field(&mut h, group),
            ActionKind::ChangeDirectory { from, to } => {
                match from {
                    Some(f) => {
                        field(&mut h, "some");
                        field(&mut h, f);
                    }
                    None => field(&mut h, "none"),
                }
                field(&mut h, to);
            }
        }
        field(&mut h, &a.reason.rule);
    }
    hex(&h.finalize())
}

fn field(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Why an approval is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// No approver named.
    #[error("an approval needs the approver's name")]
    NoApprover,
    /// Four eyes: the approver started the run.
    #[error("`{0}` started this run and cannot approve it; another principal must")]
    SelfApproval(String),
    /// Only a held run waits for approval.
    #[error("the run is {0}, not held; only a held run can be approved")]
    NotHeld(StatusName),
    /// The stored actions no longer hash to the stored plan hash.
    #[error(
        "the stored actions no longer match the plan hash {stored} (they hash to {recomputed}): \
         the plan was changed after it was held"
    )]
    Tampered { stored: String, recomputed: String },
    /// The approver reviewed a different plan.
    #[error("the plan hash given ({presented}) is not this run's ({stored}): review it again")]
    HashMismatch { presented: String, stored: String },
    /// The hold expired before anyone approved it.
    #[error("the hold expired at {0}; plan again")]
    Expired(DateTime<Utc>),
}

/// A run status as shown in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusName(pub RunStatus);

impl fmt::Display for StatusName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Whether `approver` may approve a held run now: someone other than the starter
/// (case-insensitive, trimmed, not empty), the run still held, its stored actions still
/// hashing to the stored hash, the hash the approver reviewed (when given) being that hash,
/// and the hold not expired (`run_created_at + ttl_hours`).
#[allow(clippy::too_many_arguments)]
pub fn check_approval(
    run_started_by: &str,
    run_status: RunStatus,
    stored_hash: &str,
    recomputed_hash: &str,
    presented_hash: Option<&str>,
    approver: &str,
    now: DateTime<Utc>,
    run_created_at: DateTime<Utc>,
    ttl_hours: u32,
) -> Result<(), ApprovalError> {
    let approver = approver.trim();
    if approver.is_empty() {
        return Err(ApprovalError::NoApprover);
    }
    if approver.to_lowercase() == run_started_by.trim().to_lowercase() {
        return Err(ApprovalError::SelfApproval(approver.to_owned()));
    }
    if run_status != RunStatus::Held {
        return Err(ApprovalError::NotHeld(StatusName(run_status)));
    }
    if !stored_hash.eq_ignore_ascii_case(recomputed_hash) {
        return Err(ApprovalError::Tampered {
            stored: stored_hash.to_owned(),
            recomputed: recomputed_hash.to_owned(),
        });
    }
    if let Some(presented) = presented_hash.map(str::trim)
        && !presented.eq_ignore_ascii_case(stored_hash)
    {
        return Err(ApprovalError::HashMismatch {
            presented: presented.chars().take(64).collect(),
            stored: stored_hash.to_owned(),
        });
    }
    let expires = approval_expires(run_created_at, ttl_hours);
    if now >= expires {
        return Err(ApprovalError::Expired(expires));
    }
    Ok(())
}

/// When an approval (or a hold) given at `at` stops being valid.
pub fn approval_expires(at: DateTime<Utc>, ttl_hours: u32) -> DateTime<Utc> {
    at.checked_add_signed(Duration::hours(i64::from(ttl_hours)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::{Reason, TargetId};

    fn action(account: u128, kind: ActionKind) -> PlannedAction {
        PlannedAction {
            account_id: AccountId(uuid::Uuid::from_u128(account)),
            target_id: TargetId(uuid::Uuid::from_u128(7)),
            target: "wiki".into(),
            account_key: format!("key{account}"),
            username: format!("user{account}"),
            identity_id: None,
            kind,
            reason: Reason {
                rule: "leavers".into(),
                because: vec!["deprovisioned in okta".into()],
                cause: Default::default(),
            },
        }
    }

    fn licence(account: u128, group: &str) -> PlannedAction {
        action(
            account,
            ActionKind::RemoveFromGroup {
                group: group.into(),
                licence: true,
            },
        )
    }

    fn plan(actions: Vec<PlannedAction>, population: u64) -> Plan {
        Plan {
            actions,
            managed_population: population,
            ..Plan::default()
        }
    }

    fn only(kind: BudgetKind, budget: Budget) -> SafetyConfig {
        SafetyConfig {
            budgets: BTreeMap::from([(kind, budget)]),
            first_run_factor: 0.5,
            change_factor: 0.5,
            approval_ttl_hours: 24,
        }
    }

    fn report(plan: &Plan, history: &BudgetHistory, config: &SafetyConfig) -> BudgetReport {
        check_budgets(&BudgetInput {
            plan,
            history,
            first_run: false,
            changed: false,
            config,
        })
    }

    #[test]
    fn accounts_are_counted_once_per_kind_however_many_actions_they_have() {
        let p = plan(
            vec![
                licence(1, "confluence-users"),
                licence(1, "confluence-admins-lite"),
                licence(1, "wiki-users"),
                licence(2, "confluence-users"),
                action(1, ActionKind::Deactivate),
            ],
            1000,
        );
        let config = only(
            BudgetKind::RemoveLicence,
            Budget {
                per_run: Some(2),
                ..Budget::default()
            },
        );
        let r = report(&p, &BudgetHistory::default(), &config);
        assert_eq!(r.planned[&BudgetKind::RemoveLicence], 2);
        assert_eq!(r.planned[&BudgetKind::Deactivate], 1);
        assert!(!r.held, "{:?}", r.reasons);
        assert_eq!(r.checks.len(), 1);
        assert_eq!((r.checks[0].limit, r.checks[0].would_be), (2, 2));
    }

    #[test]
    fn one_account_over_the_run_count_holds_the_whole_plan_and_says_why() {
        let p = plan(
            (1..=3).map(|i| action(i, ActionKind::Deactivate)).collect(),
            0,
        );
        let config = only(
            BudgetKind::Deactivate,
            Budget {
                per_run: Some(2),
                ..Budget::default()
            },
        );
        let r = report(&p, &BudgetHistory::default(), &config);
        assert!(r.held);
        assert_eq!(r.reasons.len(), 1);
        assert!(
            r.reasons[0].contains("deactivate") && r.reasons[0].contains("per-run limit of 2"),
            "{}",
            r.reasons[0]
        );
    }

    #[test]
    fn percent_limits_round_up_against_the_managed_population() {
        let config = only(
            BudgetKind::Deactivate,
            Budget {
                per_run_percent: Some(5.0),
                ..Budget::default()
            },
        );
        // 5 % of 100 is exactly 5; of 101 it is 5.05, which rounds up to 6.
        let five = plan(
            (1..=5).map(|i| action(i, ActionKind::Deactivate)).collect(),
            100,
        );
        let r = report(&five, &BudgetHistory::default(), &config);
        assert_eq!(r.checks[0].limit, 5);
        assert!(!r.held);
        let six = plan(
            (1..=6).map(|i| action(i, ActionKind::Deactivate)).collect(),
            100,
        );
        assert!(report(&six, &BudgetHistory::default(), &config).held);
        let six_of_101 = plan(six.actions.clone(), 101);
        let r = report(&six_of_101, &BudgetHistory::default(), &config);
        assert_eq!(r.checks[0].limit, 6);
        assert!(!r.held);
    }

    #[test]
    fn with_no_managed_population_percent_limits_do_not_apply_but_counts_do() {
        let config = only(
            BudgetKind::Deactivate,
            Budget {
                per_run: Some(3),
                per_run_percent: Some(1.0),
                ..Budget::default()
            },
        );
        let p = plan(
            (1..=3).map(|i| action(i, ActionKind::Deactivate)).collect(),
            0,
        );
        let r = report(&p, &BudgetHistory::default(), &config);
        assert_eq!(r.checks.len(), 1);
        assert_eq!(r.checks[0].basis, LimitBasis::Count(3));
        assert!(!r.held);
        let p = plan(
            (1..=4).map(|i| action(i, ActionKind::Deactivate)).collect(),
            0,
        );
        assert!(report(&p, &BudgetHistory::default(), &config).held);
    }

    #[test]
    fn rolling_windows_add_the_history_to_the_plan() {
        let config = only(
            BudgetKind::Deactivate,
            Budget {
                per_run: Some(100),
                per_day: Some(10),
                per_week: Some(30),
                ..Budget::default()
            },
        );
        let p = plan(
            (1..=4).map(|i| action(i, ActionKind::Deactivate)).collect(),
            0,
        );
        let mut history = BudgetHistory::default();
        history.day.insert(BudgetKind::Deactivate, 6);
        history.week.insert(BudgetKind::Deactivate, 26);
        let r = report(&p, &history, &config);
        assert!(!r.held, "{:?}", r.reasons);
        history.day.insert(BudgetKind::Deactivate, 7);
        let r = report(&p, &history, &config);
        assert!(r.held);
        assert!(r.reasons[0].contains("24 hours"), "{:?}", r.reasons);
        history.day.insert(BudgetKind::Deactivate, 0);
        history.week.insert(BudgetKind::Deactivate, 27);
        let r = report(&p, &history, &config);
        assert!(r.held);
        assert!(
            r.reasons[0].contains("7-day limit of 30"),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn a_history_already_over_a_limit_does_not_hold_a_plan_without_that_kind() {
        let config = only(
            BudgetKind::Deactivate,
            Budget {
                per_day: Some(10),
                ..Budget::default()
            },
        );
        let mut history = BudgetHistory::default();
        history.day.insert(BudgetKind::Deactivate, 50);
        let p = plan(vec![action(1, ActionKind::Notify)], 0);
        assert!(!report(&p, &history, &config).held);
        let p = plan(vec![action(1, ActionKind::Deactivate)], 0);
        assert!(report(&p, &history, &config).held);
    }

    #[test]
    fn first_run_and_change_factors_multiply_every_limit_and_round_down() {
        let config = only(
            BudgetKind::Deactivate,
            Budget {
                per_run: Some(10),
                per_run_percent: Some(10.0),
                per_day: Some(9),
                ..Budget::default()
            },
        );
        let p = plan(vec![action(1, ActionKind::Deactivate)], 100);
        let limits = |first_run, changed| {
            check_budgets(&BudgetInput {
                plan: &p,
                history: &BudgetHistory::default(),
                first_run,
                changed,
                config: &config,
            })
            .checks
            .iter()
            .map(|c| c.limit)
            .collect::<Vec<_>>()
        };
        assert_eq!(limits(false, false), [10, 10, 9]);
        assert_eq!(limits(true, false), [5, 5, 4]);
        assert_eq!(limits(false, true), [5, 5, 4]);
        assert_eq!(limits(true, true), [2, 2, 2]);
        let mut zero = config.clone();
        zero.first_run_factor = 0.0;
        let r = check_budgets(&BudgetInput {
            plan: &p,
            history: &BudgetHistory::default(),
            first_run: true,
            changed: false,
            config: &zero,
        });
        assert!(r.checks.iter().all(|c| c.limit == 0));
        assert!(r.held);
        assert!(
            r.reasons[0].contains("first-run factor 0"),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn notify_and_grant_have_no_limit_unless_configured() {
        let config = SafetyConfig::default();
        let p = plan(
            (1..=500)
                .flat_map(|i| {
                    [
                        action(i, ActionKind::Notify),
                        action(i, ActionKind::Reactivate),
                    ]
                })
                .collect(),
            500,
        );
        let r = report(&p, &BudgetHistory::default(), &config);
        assert!(!r.held, "{:?}", r.reasons);
        let limited = only(
            BudgetKind::Grant,
            Budget {
                per_run: Some(499),
                ..Budget::default()
            },
        );
        assert!(report(&p, &BudgetHistory::default(), &limited).held);
    }

    #[test]
    fn the_default_budgets_hold_a_mass_deactivation() {
        let config = SafetyConfig::default();
        let p = plan(
            (1..=60)
                .map(|i| action(i, ActionKind::Deactivate))
                .collect(),
            1000,
        );
        // 5 % of 1000 = 50 per run.
        let r = report(&p, &BudgetHistory::default(), &config);
        assert!(r.held);
        assert!(
            r.reasons.iter().any(|m| m.contains("5% of 1000")),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn the_plan_hash_is_deterministic_order_sensitive_and_covers_parameters_and_rule() {
        let a = vec![
            licence(1, "confluence-users"),
            action(2, ActionKind::Deactivate),
        ];
        let h = plan_hash(&a);
        assert_eq!(h.len(), 64);
        assert_eq!(h, plan_hash(&a.clone()));
        let mut other_reason = a.clone();
        other_reason[0].reason.because = vec!["something else".into()];
        assert_eq!(
            h,
            plan_hash(&other_reason),
            "free-text reasons are not covered"
        );
        let reversed: Vec<_> = a.iter().rev().cloned().collect();
        assert_ne!(h, plan_hash(&reversed));
        let mut group = a.clone();
        group[0] = licence(1, "confluence-user");
        assert_ne!(h, plan_hash(&group));
        let mut rule = a.clone();
        rule[1].reason.rule = "inactive".into();
        assert_ne!(h, plan_hash(&rule));
        let mut account = a.clone();
        account[1].account_id = AccountId(uuid::Uuid::from_u128(3));
        assert_ne!(h, plan_hash(&account));
        // Field boundaries are framed: moving a character between fields changes the hash.
        let r1 = action(
            1,
            ActionKind::Rename {
                from: "ab".into(),
                to: "c".into(),
            },
        );
        let r2 = action(
            1,
            ActionKind::Rename {
                from: "a".into(),
                to: "bc".into(),
            },
        );
        assert_ne!(plan_hash(&[r1]), plan_hash(&[r2]));
        assert_ne!(plan_hash(&[]), h);
    }

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, h, 0, 0).single().unwrap()
    }

    fn approve(
        starter: &str,
        status: RunStatus,
        recomputed: &str,
        presented: Option<&str>,
        approver: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApprovalError> {
        check_approval(
            starter,
            status,
            "abc123",
            recomputed,
            presented,
            approver,
            now,
            at(0),
            12,
        )
    }

    #[test]
    fn a_second_principal_approves_a_held_untampered_unexpired_plan() {
        assert_eq!(
            approve(
                "alice",
                RunStatus::Held,
                "abc123",
                Some("ABC123"),
                "bob",
                at(11)
            ),
            Ok(())
        );
        assert_eq!(
            approve("alice", RunStatus::Held, "abc123", None, "bob", at(1)),
            Ok(())
        );
    }

    #[test]
    fn the_starter_cannot_approve_in_any_case_or_spacing_and_an_approver_is_needed() {
        for me in ["alice", " Alice ", "ALICE"] {
            assert!(matches!(
                approve("alice", RunStatus::Held, "abc123", None, me, at(1)),
                Err(ApprovalError::SelfApproval(_))
            ));
        }
        assert_eq!(
            approve("alice", RunStatus::Held, "abc123", None, "  ", at(1)),
            Err(ApprovalError::NoApprover)
        );
    }

    #[test]
    fn only_a_held_run_can_be_approved() {
        for status in [
            RunStatus::Planned,
            RunStatus::Approved,
            RunStatus::Running,
            RunStatus::Expired,
            RunStatus::Recorded,
        ] {
            let e = approve("alice", status, "abc123", None, "bob", at(1)).unwrap_err();
            assert_eq!(e, ApprovalError::NotHeld(StatusName(status)));
            assert!(e.to_string().contains(status.as_str()), "{e}");
        }
    }

    #[test]
    fn stored_actions_that_no_longer_match_the_stored_hash_are_refused() {
        assert!(matches!(
            approve("alice", RunStatus::Held, "ffff", None, "bob", at(1)),
            Err(ApprovalError::Tampered { .. })
        ));
    }

    #[test]
    fn an_approval_is_bound_to_the_hash_the_approver_reviewed() {
        assert!(matches!(
            approve(
                "alice",
                RunStatus::Held,
                "abc123",
                Some("abc124"),
                "bob",
                at(1)
            ),
            Err(ApprovalError::HashMismatch { .. })
        ));
    }

    #[test]
    fn a_hold_expires_after_its_ttl() {
        assert_eq!(
            approve("alice", RunStatus::Held, "abc123", None, "bob", at(12)),
            Err(ApprovalError::Expired(at(12)))
        );
        assert_eq!(approval_expires(at(3), 5), at(8));
        assert_eq!(
            approval_expires(DateTime::<Utc>::MAX_UTC, 5),
            DateTime::<Utc>::MAX_UTC
        );
    }

    fn kind_strategy() -> impl Strategy<Value = ActionKind> {
        prop_oneof![
            Just(ActionKind::Notify),
            "[a-c]".prop_map(|g| ActionKind::RemoveFromGroup {
                group: g,
                licence: true
            }),
            "[a-c]".prop_map(|g| ActionKind::RemoveFromGroup {
                group: g,
                licence: false
            }),
            Just(ActionKind::Deactivate),
            Just(ActionKind::Rename {
                from: "u".into(),
                to: "u_inactive".into()
            }),
            Just(ActionKind::Delete),
            Just(ActionKind::Reactivate),
        ]
    }

    fn budget_strategy() -> impl Strategy<Value = Budget> {
        let count = proptest::option::of(0u64..40);
        let pct = proptest::option::of(0.0f64..60.0);
        (
            count.clone(),
            pct.clone(),
            count.clone(),
            pct.clone(),
            count,
            pct,
        )
            .prop_map(|(a, b, c, d, e, f)| Budget {
                per_run: a,
                per_run_percent: b,
                per_day: c,
                per_day_percent: d,
                per_week: e,
                per_week_percent: f,
            })
    }

    fn kinds() -> impl Strategy<Value = BudgetKind> {
        proptest::sample::select(BudgetKind::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn a_plan_that_is_not_held_keeps_every_limit(
            actions in proptest::collection::vec((0u128..50, kind_strategy()), 0..120),
            population in 0u64..400,
            budgets in proptest::collection::btree_map(kinds(), budget_strategy(), 0..8),
            day in proptest::collection::btree_map(kinds(), 0u64..40, 0..8),
            week in proptest::collection::btree_map(kinds(), 0u64..80, 0..8),
            first_run in any::<bool>(),
            changed in any::<bool>(),
            first_run_factor in 0.0f64..1.0,
            change_factor in 0.0f64..1.0,
        ) {
            let p = plan(actions.into_iter().map(|(a, k)| action(a, k)).collect(), population);
            let history = BudgetHistory { day, week };
            let config = SafetyConfig { budgets, first_run_factor, change_factor, approval_ttl_hours: 1 };
            let r = check_budgets(&BudgetInput { plan: &p, history: &history, first_run, changed, config: &config });
            // Recount independently: distinct accounts per kind.
            let mut seen: BTreeMap<BudgetKind, BTreeSet<AccountId>> = BTreeMap::new();
            for a in &p.actions {
                seen.entry(a.kind.budget()).or_default().insert(a.account_id);
            }
            if !r.held {
                prop_assert!(r.reasons.is_empty());
                for (kind, budget) in &config.budgets {
                    let planned = seen.get(kind).map_or(0, |s| s.len() as u64);
                    if planned == 0 {
                        continue;
                    }
                    let mut factor = 1.0;
                    if first_run { factor *= first_run_factor; }
                    if changed { factor *= change_factor; }
                    for (window, count, pct) in windows(budget) {
                        let already = match window {
                            BudgetWindow::Run => 0,
                            BudgetWindow::Day => history.day.get(kind).copied().unwrap_or(0),
                            BudgetWindow::Week => history.week.get(kind).copied().unwrap_or(0),
                        };
                        let total = (already + planned) as f64;
                        if let Some(n) = count {
                            prop_assert!(total <= (n as f64 * factor).floor() + 1e-9,
                                "{kind:?} {window:?} count {n}: {total}");
                        }
                        if let Some(pc) = pct && population > 0 {
                            let base = (pc * population as f64 / 100.0 - 1e-9).ceil();
                            prop_assert!(total <= (base * factor).floor() + 1e-9,
                                "{kind:?} {window:?} {pc}% of {population}: {total}");
                        }
                    }
                }
            } else {
                prop_assert!(r.checks.iter().any(|c| c.exceeded && c.would_be > c.limit));
            }
        }
    }
}
