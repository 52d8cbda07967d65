//! Configuration of the reconciliation engine: rules (schemes), linking, planning, safety
//! budgets, execution and the audit log's key and checkpoint. Each section validates itself
//! (`problems`) and names the key at fault.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::domain::{BudgetKind, RuleMode};

/// One rule (scheme) as written in the configuration file under `[rules.<name>]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `dry_run` (default: plan and report only) or `enforce`.
    #[serde(default)]
    pub mode: RuleMode,
    /// A disabled rule is neither planned nor scheduled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Lower runs first; a person selected by several rules gets the first one's actions.
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// Target names; empty: every target.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Cron expression (seconds field first) for the scheduler.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Whether the `delete` action may be planned.
    #[serde(default)]
    pub allow_delete: bool,
    /// Usernames or emails this rule never touches.
    #[serde(default)]
    pub exempt_users: Vec<String>,
    /// Groups whose members this rule never touches.
    #[serde(default)]
    pub exempt_groups: Vec<String>,
    /// The selector: every key given must hold.
    #[serde(default)]
    pub when: WhenConfig,
    /// The action ladder, in order: `"notify"`, `"remove_licence_groups"`, `"deactivate"`,
    /// `"rename"`, `"delete"`, or a table: `{ notify = { grace_days = 14 } }`,
    /// `{ remove_groups = "all" }`, `{ remove_groups = ["a", "b"] }`,
    /// `{ add_groups = ["former-staff"] }`, `{ change_directory = "Disabled users" }`.
    pub actions: Vec<toml::Value>,
}

/// A rule's selector as written in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhenConfig {
    /// Leaver signals: `deprovisioned`, `suspended`, `deleted`, `scim_inactive`.
    pub status: Vec<String>,
    /// Inactive for at least this many days.
    pub inactive_days: Option<u32>,
    /// Never logged in and created at least this many days ago.
    pub never_logged_in_days: Option<u32>,
    /// Logged in exactly once.
    pub logged_in_once: Option<bool>,
    pub member_of_any: Vec<String>,
    pub member_of_all: Vec<String>,
    pub member_of_none: Vec<String>,
    /// Confluence user directories.
    pub directory: Vec<String>,
    /// Email domains (e.g. a contractor domain).
    pub email_domain: Vec<String>,
    /// Email domains the person must not be in.
    pub not_email_domain: Vec<String>,
    /// RFC 3339 instant or `yyyy-mm-dd`.
    pub created_before: Option<String>,
    /// RFC 3339 instant or `yyyy-mm-dd`.
    pub created_after: Option<String>,
    /// A custom IdP attribute: `{ name = "department", any_of = ["Sales"] }`.
    pub attribute: Option<AttributeCondition>,
    /// An explicit list of usernames or emails.
    pub users: Vec<String>,
    /// A CSV file with a `username` or `email` column (relative to the working directory).
    pub users_csv: Option<PathBuf>,
    /// Absent from every complete source snapshot for this many consecutive syncs.
    pub absent_syncs: Option<u32>,
}

/// A custom attribute condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeCondition {
    pub name: String,
    pub any_of: Vec<String>,
}

/// How identities are matched to Confluence accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkingConfig {
    /// Keys tried in order: `immutable_id`, `email`, `username`.
    pub keys: Vec<LinkKey>,
    /// Source names, most trusted first, for people seen in several sources; sources not
    /// named follow in name order.
    pub precedence: Vec<String>,
}

impl Default for LinkingConfig {
    fn default() -> Self {
        Self {
            keys: vec![LinkKey::ImmutableId, LinkKey::Email, LinkKey::Username],
            precedence: Vec::new(),
        }
    }
}

/// One linking key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKey {
    /// The IdP's immutable id equals the account's key or its `external_id` attribute.
    ImmutableId,
    /// Email addresses, case-insensitive and Unicode-normalised.
    Email,
    /// The account's username equals the identity's username or its UPN/email local part.
    Username,
}

/// Planning settings shared by every rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerConfig {
    /// IANA zone for the date in `<username>_inactive_yyyyMMdd`.
    pub timezone: String,
    /// No inactivity action before idbridge has watched an account this many days.
    pub observation_floor_days: u32,
    /// Grace period after a notice when a rule's `notify` gives none.
    pub default_grace_days: u32,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            observation_floor_days: 30,
            default_grace_days: 14,
        }
    }
}

/// Limits on one kind of action. A limit left unset does not apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Most accounts per run.
    pub per_run: Option<u64>,
    /// Most accounts per run, as a percentage of the managed population.
    pub per_run_percent: Option<f64>,
    /// Most accounts over any rolling 24 hours.
    pub per_day: Option<u64>,
    pub per_day_percent: Option<f64>,
    /// Most accounts over any rolling 7 days.
    pub per_week: Option<u64>,
    pub per_week_percent: Option<f64>,
}

/// Blast-radius limits and approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyConfig {
    /// Budgets by action kind: `notify`, `remove_licence`, `remove_groups`, `deactivate`,
    /// `rename`, `change_directory`, `delete`, `grant`.
    pub budgets: BTreeMap<BudgetKind, Budget>,
    /// Limits are multiplied by this on the first enforced run of a rule.
    pub first_run_factor: f64,
    /// … and on the first run after the rule or the configuration changed.
    pub change_factor: f64,
    /// How long an approval stays valid.
    pub approval_ttl_hours: u32,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        let removal = Budget {
            per_run: Some(100),
            per_run_percent: Some(5.0),
            per_day: Some(250),
            per_day_percent: Some(10.0),
            per_week: Some(1000),
            per_week_percent: Some(25.0),
        };
        let mut budgets = BTreeMap::new();
        for kind in [
            BudgetKind::RemoveLicence,
            BudgetKind::RemoveGroups,
            BudgetKind::Deactivate,
            BudgetKind::Rename,
            BudgetKind::ChangeDirectory,
        ] {
            budgets.insert(kind, removal.clone());
        }
        budgets.insert(
            BudgetKind::Delete,
            Budget {
                per_run: Some(10),
                per_run_percent: Some(1.0),
                per_day: Some(20),
                per_day_percent: Some(1.0),
                per_week: Some(50),
                per_week_percent: Some(2.0),
            },
        );
        Self {
            budgets,
            first_run_factor: 0.5,
            change_factor: 0.5,
            approval_ttl_hours: 24,
        }
    }
}

/// How planned actions are carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Accounts worked on at once (actions of one account always run in order).
    pub concurrency: usize,
    /// Attempts before an action is marked poisoned.
    pub max_attempts: u32,
    /// How long a claim holds before another executor may take the action over.
    pub claim_ttl_secs: u64,
    /// First retry delay; doubles per attempt, with jitter.
    pub retry_base_ms: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            max_attempts: 5,
            claim_ttl_secs: 300,
            retry_base_ms: 500,
        }
    }
}

/// The audit log's authentication key and its checkpoint outside the database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The HMAC key (at least 32 characters). Never stored in the database.
    pub key: Option<Secret>,
    /// A file holding the key, created (mode 0600) with a random key when missing. (The
    /// `IDBRIDGE_AUDIT__KEY_FILE` variable instead reads `key` from a mounted secret.)
    pub key_path: Option<PathBuf>,
    /// Where the signed checkpoint of the newest entry is kept.
    pub checkpoint_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

fn default_priority() -> i32 {
    100
}
