//! Configuration of the reconciliation engine: rules (schemes), linking, planning, safety
//! budgets, execution and the audit log's key and checkpoint. Each section validates itself
//! (`problems`) and names the key at fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Secret;
use crate::domain::{
    ActionSpec, BudgetKind, Criterion, Exemptions, GroupMatch, GroupSelection, LeaverSignal, Rule,
    RuleMode,
};

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

/// The scheduler of `serve`: one instance (the lease holder) runs the scheduled syncs and
/// rules; every instance carries out stored actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Whether `serve` runs the schedules and carries out stored actions in the background.
    pub enabled: bool,
    /// The zone schedules are read in; default: `planner.timezone`.
    pub timezone: Option<String>,
    /// How long the scheduler lease lasts without renewal; another instance takes over
    /// within this after the holder dies.
    pub lease_ttl_secs: u64,
    /// How often every instance looks for stored actions to carry out.
    pub executor_interval_secs: u64,
    /// When licences are given back to people who signed in again (cron); `""`: never.
    pub regrant_schedule: String,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            timezone: None,
            lease_ttl_secs: 30,
            executor_interval_secs: 10,
            regrant_schedule: "*/5 * * * *".into(),
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

/// Largest `users_csv` file read (bytes).
pub const USERS_CSV_MAX_BYTES: u64 = 5 * 1024 * 1024;
/// Most rows read from a `users_csv` file.
pub const USERS_CSV_MAX_ROWS: usize = 100_000;

/// The action names a rule's ladder may use, for error messages.
const ACTION_NAMES: &str = "notify, remove_licence_groups, deactivate, rename, delete, \
                            { notify = { grace_days = N } }, { remove_groups = \"all\" | [..] }, \
                            { add_groups = [..] }, { change_directory = \"..\" }";

impl PlannerConfig {
    /// The configured timezone, or why it is not one.
    pub fn tz(&self) -> Result<chrono_tz::Tz, String> {
        self.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
            format!(
                "planner.timezone: `{}` is not an IANA timezone (e.g. `UTC`, `Europe/Berlin`)",
                self.timezone
            )
        })
    }

    /// What is wrong with this section.
    pub fn problems(&self) -> Vec<String> {
        self.tz().err().into_iter().collect()
    }
}

impl RuleConfig {
    /// The rule as the planner sees it, or every problem with it, each naming its key
    /// (`rules.<name>.…`). Reads `when.users_csv` from disk.
    pub fn to_rule(&self, name: &str, planner: &PlannerConfig) -> Result<Rule, Vec<String>> {
        let mut problems = Vec::new();
        let criteria = self.when.to_criteria(name, &mut problems);
        if criteria.is_empty() && problems.is_empty() {
            problems.push(format!(
                "rules.{name}.when: a rule needs at least one criterion (none would select \
                 everyone)"
            ));
        }
        let mut actions = Vec::new();
        if self.actions.is_empty() {
            problems.push(format!(
                "rules.{name}.actions: a rule needs at least one action"
            ));
        }
        for (i, value) in self.actions.iter().enumerate() {
            match parse_action(value, planner) {
                Ok(a) => actions.push(a),
                Err(e) => problems.push(format!("rules.{name}.actions[{i}]: {e}")),
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in actions.iter().enumerate() {
            let repeatable = matches!(
                a,
                ActionSpec::RemoveGroups { .. } | ActionSpec::AddGroups { .. }
            );
            if !repeatable && !seen.insert(std::mem::discriminant(a)) {
                problems.push(format!(
                    "rules.{name}.actions[{i}]: this action is already in the ladder (each \
                     appears once; `notify` has one grace period per rule)"
                ));
            }
        }
        if let Some(i) = actions.iter().position(|a| *a == ActionSpec::Delete) {
            if !self.allow_delete {
                problems.push(format!(
                    "rules.{name}.actions[{i}]: `delete` needs `allow_delete = true` on the rule"
                ));
            }
            if i + 1 < actions.len() {
                problems.push(format!(
                    "rules.{name}.actions[{i}]: `delete` must be the last action"
                ));
            }
        }
        for (key, list) in [
            ("exempt_users", &self.exempt_users),
            ("exempt_groups", &self.exempt_groups),
        ] {
            if list.iter().any(|s| s.trim().is_empty()) {
                problems.push(format!("rules.{name}.{key}: empty entry"));
            }
        }
        if problems.is_empty() {
            Ok(Rule {
                name: name.to_owned(),
                enabled: self.enabled,
                mode: self.mode,
                priority: self.priority,
                targets: self.targets.clone(),
                criteria,
                exempt: Exemptions {
                    users: self.exempt_users.clone(),
                    groups: self.exempt_groups.clone(),
                },
                actions,
                allow_delete: self.allow_delete,
                schedule: self.schedule.clone(),
            })
        } else {
            Err(problems)
        }
    }
}

impl WhenConfig {
    /// One criterion per key given; problems are pushed naming `rules.<rule>.when.<key>`.
    fn to_criteria(&self, rule: &str, problems: &mut Vec<String>) -> Vec<Criterion> {
        let key = |k: &str| format!("rules.{rule}.when.{k}");
        let mut out = Vec::new();
        if !self.status.is_empty() {
            let mut any_of = Vec::new();
            for s in &self.status {
                match s.trim().to_ascii_lowercase().as_str() {
                    "deprovisioned" => any_of.push(LeaverSignal::Deprovisioned),
                    "suspended" => any_of.push(LeaverSignal::Suspended),
                    "deleted" => any_of.push(LeaverSignal::Deleted),
                    "scim_inactive" => any_of.push(LeaverSignal::ScimInactive),
                    _ => problems.push(format!(
                        "{}: unknown status \"{s}\" (expected one of deprovisioned, suspended, \
                         deleted, scim_inactive)",
                        key("status")
                    )),
                }
            }
            any_of.sort();
            any_of.dedup();
            out.push(Criterion::Status { any_of });
        }
        if let Some(days) = self.inactive_days {
            if days == 0 {
                problems.push(format!(
                    "{}: must be at least 1 (0 would select everyone)",
                    key("inactive_days")
                ));
            }
            out.push(Criterion::InactiveDays { days });
        }
        if let Some(days) = self.never_logged_in_days {
            out.push(Criterion::NeverLoggedIn { days });
        }
        match self.logged_in_once {
            Some(true) => out.push(Criterion::LoggedInOnce),
            Some(false) => problems.push(format!(
                "{}: only `true` is meaningful (leave the key out otherwise)",
                key("logged_in_once")
            )),
            None => {}
        }
        for (k, groups, how) in [
            ("member_of_any", &self.member_of_any, GroupMatch::Any),
            ("member_of_all", &self.member_of_all, GroupMatch::All),
            ("member_of_none", &self.member_of_none, GroupMatch::None),
        ] {
            if !groups.is_empty() {
                if groups.iter().any(|g| g.trim().is_empty()) {
                    problems.push(format!("{}: empty group name", key(k)));
                }
                out.push(Criterion::MemberOf {
                    groups: groups.clone(),
                    how,
                });
            }
        }
        if !self.directory.is_empty() {
            out.push(Criterion::Directory {
                any_of: self.directory.clone(),
            });
        }
        for (k, domains, negate) in [
            ("email_domain", &self.email_domain, false),
            ("not_email_domain", &self.not_email_domain, true),
        ] {
            if !domains.is_empty() {
                let domains: Vec<String> = domains
                    .iter()
                    .map(|d| d.trim().trim_start_matches('@').to_owned())
                    .collect();
                if domains.iter().any(|d| d.is_empty() || d.contains('@')) {
                    problems.push(format!("{}: a domain is like `example.com`", key(k)));
                }
                out.push(Criterion::EmailDomain { domains, negate });
            }
        }
        for (k, text, before) in [
            ("created_before", &self.created_before, true),
            ("created_after", &self.created_after, false),
        ] {
            if let Some(text) = text {
                match parse_instant(text) {
                    Some(at) if before => out.push(Criterion::CreatedBefore { at }),
                    Some(at) => out.push(Criterion::CreatedAfter { at }),
                    None => problems.push(format!(
                        "{}: `{text}` is neither an RFC 3339 instant nor yyyy-mm-dd",
                        key(k)
                    )),
                }
            }
        }
        if let Some(attr) = &self.attribute {
            if attr.name.trim().is_empty() || attr.any_of.is_empty() {
                problems.push(format!(
                    "{}: needs a `name` and at least one value in `any_of`",
                    key("attribute")
                ));
            }
            out.push(Criterion::Attribute {
                name: attr.name.clone(),
                any_of: attr.any_of.clone(),
            });
        }
        if !self.users.is_empty() {
            out.push(Criterion::Listed {
                names: self.users.clone(),
            });
        }
        if let Some(path) = &self.users_csv {
            match read_users_csv(path) {
                Ok(names) => out.push(Criterion::Listed { names }),
                Err(e) => problems.push(format!("{}: {e}", key("users_csv"))),
            }
        }
        if let Some(syncs) = self.absent_syncs {
            if syncs == 0 {
                problems.push(format!(
                    "{}: must be at least 1 (0 would select everyone)",
                    key("absent_syncs")
                ));
            }
            out.push(Criterion::AbsentSyncs { syncs });
        }
        out
    }
}

/// An RFC 3339 instant, or `yyyy-mm-dd` as midnight UTC.
fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// One ladder rung from its configured form.
fn parse_action(value: &toml::Value, planner: &PlannerConfig) -> Result<ActionSpec, String> {
    let unknown =
        |what: &str| format!("unknown action \"{what}\" (expected one of {ACTION_NAMES})");
    match value {
        toml::Value::String(s) => match s.as_str() {
            "notify" => Ok(ActionSpec::Notify {
                grace_days: planner.default_grace_days,
            }),
            "remove_licence_groups" => Ok(ActionSpec::RemoveLicenceGroups),
            "deactivate" => Ok(ActionSpec::Deactivate),
            "rename" => Ok(ActionSpec::Rename),
            "delete" => Ok(ActionSpec::Delete),
            "remove_groups" | "add_groups" | "change_directory" => {
                Err(format!("`{s}` needs a value, e.g. {{ {s} = … }}"))
            }
            other => Err(unknown(other)),
        },
        toml::Value::Table(t) => {
            let mut entries = t.iter();
            let (Some((key, v)), None) = (entries.next(), entries.next()) else {
                return Err(format!(
                    "a table action has exactly one key (expected one of {ACTION_NAMES})"
                ));
            };
            match key.as_str() {
                "notify" => {
                    let toml::Value::Table(opts) = v else {
                        return Err("notify takes `{ grace_days = N }`".into());
                    };
                    let mut grace_days = planner.default_grace_days;
                    for (k, v) in opts {
                        match (k.as_str(), v) {
                            ("grace_days", toml::Value::Integer(n)) => {
                                grace_days = u32::try_from(*n).map_err(|_| {
                                    format!("notify.grace_days: {n} is not 0 to {}", u32::MAX)
                                })?;
                            }
                            ("grace_days", _) => {
                                return Err("notify.grace_days: must be a whole number".into());
                            }
                            (other, _) => {
                                return Err(format!(
                                    "notify: unknown key `{other}` (expected grace_days)"
                                ));
                            }
                        }
                    }
                    Ok(ActionSpec::Notify { grace_days })
                }
                "remove_groups" => match v {
                    toml::Value::String(s) if s == "all" => Ok(ActionSpec::RemoveGroups {
                        groups: GroupSelection::All,
                    }),
                    toml::Value::Array(_) => Ok(ActionSpec::RemoveGroups {
                        groups: GroupSelection::Named(string_list(v, "remove_groups")?),
                    }),
                    _ => Err("remove_groups takes \"all\" or a list of group names".into()),
                },
                "add_groups" => Ok(ActionSpec::AddGroups {
                    groups: string_list(v, "add_groups")?,
                }),
                "change_directory" => match v {
                    toml::Value::String(s) if !s.trim().is_empty() => {
                        Ok(ActionSpec::ChangeDirectory {
                            directory: s.clone(),
                        })
                    }
                    _ => Err("change_directory takes a directory name".into()),
                },
                other => Err(unknown(other)),
            }
        }
        other => Err(format!(
            "an action is a name or a table, not {} (expected one of {ACTION_NAMES})",
            other.type_str()
        )),
    }
}

/// A non-empty list of non-empty strings.
fn string_list(value: &toml::Value, what: &str) -> Result<Vec<String>, String> {
    let toml::Value::Array(items) = value else {
        return Err(format!("{what} takes a list of group names"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            toml::Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
            _ => return Err(format!("{what}: every entry is a non-empty group name")),
        }
    }
    if out.is_empty() {
        return Err(format!("{what}: the list is empty"));
    }
    Ok(out)
}

/// The names in a CSV file with a header row naming a `username` or `email` column (both
/// are read when both are present). Blank cells are skipped.
pub fn read_users_csv(path: &Path) -> Result<Vec<String>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if meta.len() > USERS_CSV_MAX_BYTES {
        return Err(format!(
            "{shown}: {} bytes is over the {USERS_CSV_MAX_BYTES}-byte limit",
            meta.len()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::Read::take(file, USERS_CSV_MAX_BYTES + 1));
    let headers = reader
        .headers()
        .map_err(|e| format!("{shown} line 1: {e}"))?
        .clone();
    let columns: Vec<usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            let h = h.trim_start_matches('\u{feff}');
            h.eq_ignore_ascii_case("username") || h.eq_ignore_ascii_case("email")
        })
        .map(|(i, _)| i)
        .collect();
    if columns.is_empty() {
        return Err(format!(
            "{shown} line 1: the header row names no `username` or `email` column"
        ));
    }
    let mut names = Vec::new();
    for (row, record) in reader.records().enumerate() {
        if row >= USERS_CSV_MAX_ROWS {
            return Err(format!("{shown}: more than {USERS_CSV_MAX_ROWS} rows"));
        }
        let record = record.map_err(|e| {
            let line = e.position().map_or(row as u64 + 2, |p| p.line());
            format!("{shown} line {line}: {e}")
        })?;
        for &c in &columns {
            if let Some(v) = record.get(c).filter(|v| !v.is_empty()) {
                names.push(v.to_owned());
            }
        }
    }
    if names.is_empty() {
        return Err(format!("{shown}: no names in the file"));
    }
    Ok(names)
}

/// Every rule of the configuration as the planner sees it, or every problem with the rules
/// and the planner section (unknown targets, bad criteria, bad actions, bad timezone).
pub fn rules_from_config(config: &super::Config) -> Result<Vec<Rule>, Vec<String>> {
    let mut problems = config.planner.problems();
    let mut rules = Vec::new();
    for (name, rc) in &config.rules {
        for t in &rc.targets {
            if !config.targets.contains_key(t) {
                problems.push(format!(
                    "rules.{name}.targets: unknown target `{t}` (configured: {})",
                    config
                        .targets
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        match rc.to_rule(name, &config.planner) {
            Ok(rule) => rules.push(rule),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(problems)
    }
}

/// The shortest audit key accepted, in bytes (HMAC-SHA-256 wants at least its output size).
pub const MIN_AUDIT_KEY_BYTES: usize = 32;

impl SafetyConfig {
    /// What is wrong with a `[safety]` section, one message per problem, naming the key.
    pub fn problems(&self) -> Vec<String> {
        let config = self;
        let mut problems = Vec::new();
        for (name, value) in [
            ("first_run_factor", config.first_run_factor),
            ("change_factor", config.change_factor),
        ] {
            if !value.is_finite() || !(0.0..=1.0).contains(&value) {
                problems.push(format!(
                    "safety.{name}: must be between 0 and 1 (it makes limits stricter), not {value}"
                ));
            }
        }
        if config.approval_ttl_hours == 0 {
            problems.push("safety.approval_ttl_hours: must be at least 1".into());
        }
        for (kind, budget) in &config.budgets {
            for (key, value) in [
                ("per_run_percent", budget.per_run_percent),
                ("per_day_percent", budget.per_day_percent),
                ("per_week_percent", budget.per_week_percent),
            ] {
                if let Some(p) = value
                    && (!p.is_finite() || !(0.0..=100.0).contains(&p))
                {
                    problems.push(format!(
                        "safety.budgets.{}.{key}: must be between 0 and 100, not {p}",
                        kind.as_str()
                    ));
                }
            }
            let ordered = |a: Option<u64>, b: Option<u64>| match (a, b) {
                (Some(a), Some(b)) => a <= b,
                _ => true,
            };
            if !ordered(budget.per_run, budget.per_day) || !ordered(budget.per_day, budget.per_week)
            {
                problems.push(format!(
                    "safety.budgets.{}: per_run ≤ per_day ≤ per_week is expected (a longer window \
                     with a smaller limit makes the shorter one pointless)",
                    kind.as_str()
                ));
            }
        }
        problems
    }
}

impl AuditConfig {
    /// What is wrong with an `[audit]` section, one message per problem, naming the key.
    pub fn problems(&self) -> Vec<String> {
        let config = self;
        let mut problems = Vec::new();
        if let Some(key) = &config.key {
            let len = key.expose().len();
            if len < MIN_AUDIT_KEY_BYTES {
                problems.push(format!(
                    "audit.key: must be at least {MIN_AUDIT_KEY_BYTES} bytes, not {len}"
                ));
            }
            if config.key_path.is_some() {
                problems.push("audit.key and audit.key_path: set one, not both".into());
            }
        }
        if config.checkpoint_file.is_some() && config.key.is_none() && config.key_path.is_none() {
            problems.push(
                "audit.checkpoint_file: a checkpoint is signed with the audit key; set audit.key \
                 or audit.key_path"
                    .into(),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn safety_problems_name_the_key_at_fault() {
        assert!(SafetyConfig::default().problems().is_empty());
        let mut c = SafetyConfig {
            first_run_factor: 2.0,
            approval_ttl_hours: 0,
            ..SafetyConfig::default()
        };
        c.budgets.insert(
            BudgetKind::Rename,
            Budget {
                per_run: Some(10),
                per_day: Some(5),
                per_run_percent: Some(150.0),
                ..Budget::default()
            },
        );
        let p = c.problems().join("\n");
        assert!(p.contains("safety.first_run_factor"), "{p}");
        assert!(p.contains("safety.approval_ttl_hours"), "{p}");
        assert!(p.contains("safety.budgets.rename.per_run_percent"), "{p}");
        assert!(
            p.contains("safety.budgets.rename: per_run ≤ per_day"),
            "{p}"
        );
    }

    fn rule_config(toml_text: &str) -> RuleConfig {
        toml::from_str(toml_text).expect("rule parses")
    }

    fn to_rule(toml_text: &str) -> Result<Rule, Vec<String>> {
        rule_config(toml_text).to_rule("leavers", &PlannerConfig::default())
    }

    #[test]
    fn every_selector_key_becomes_one_criterion_and_every_action_form_one_rung() {
        let rule = to_rule(
            r#"
            mode = "enforce"
            allow_delete = true
            exempt_users = ["ceo@example.com"]
            actions = [
                "notify",
                { notify = { grace_days = 3 } },
                "remove_licence_groups",
                "deactivate",
                "rename",
                { remove_groups = "all" },
                { remove_groups = ["a"] },
                { add_groups = ["former-staff"] },
                { change_directory = "Disabled" },
                "delete",
            ]
            [when]
            status = ["deprovisioned", "SCIM_INACTIVE"]
            inactive_days = 90
            never_logged_in_days = 30
            logged_in_once = true
            member_of_any = ["contractors"]
            member_of_none = ["board"]
            directory = ["Corp LDAP"]
            not_email_domain = ["@example.com"]
            created_before = "2024-01-31"
            created_after = "2020-01-01T12:00:00+02:00"
            attribute = { name = "department", any_of = ["Sales"] }
            users = ["bob"]
            absent_syncs = 3
            "#,
        );
        let problems = rule.clone().err().unwrap_or_default();
        assert_eq!(
            problems,
            [
                "rules.leavers.actions[1]: this action is already in the ladder (each appears \
              once; `notify` has one grace period per rule)"
            ]
        );
        let rule = to_rule(
            r#"
            allow_delete = true
            actions = [{ notify = { grace_days = 3 } }, "deactivate", { remove_groups = "all" },
                       { remove_groups = ["a"] }, { add_groups = ["x"] },
                       { change_directory = "Disabled" }, "delete"]
            [when]
            status = ["deprovisioned", "SCIM_INACTIVE"]
            not_email_domain = ["@example.com"]
            created_before = "2024-01-31"
            created_after = "2020-01-01T12:00:00+02:00"
            "#,
        )
        .expect("valid rule");
        assert_eq!(
            rule.criteria,
            [
                Criterion::Status {
                    any_of: vec![LeaverSignal::Deprovisioned, LeaverSignal::ScimInactive]
                },
                Criterion::EmailDomain {
                    domains: vec!["example.com".into()],
                    negate: true
                },
                Criterion::CreatedBefore {
                    at: "2024-01-31T00:00:00Z".parse().expect("instant")
                },
                Criterion::CreatedAfter {
                    at: "2020-01-01T10:00:00Z".parse().expect("instant")
                },
            ]
        );
        assert_eq!(rule.actions[0], ActionSpec::Notify { grace_days: 3 });
        assert_eq!(
            rule.actions[2],
            ActionSpec::RemoveGroups {
                groups: GroupSelection::All
            }
        );
        assert_eq!(rule.actions.last(), Some(&ActionSpec::Delete));
    }

    #[test]
    fn a_plain_notify_takes_the_default_grace_period() {
        let planner = PlannerConfig {
            default_grace_days: 21,
            ..PlannerConfig::default()
        };
        let rule = rule_config(
            r#"
            actions = ["notify", "deactivate"]
            when = { inactive_days = 90 }
            "#,
        )
        .to_rule("idle", &planner)
        .expect("valid");
        assert_eq!(rule.actions[0], ActionSpec::Notify { grace_days: 21 });
    }

    #[test]
    fn a_misspelt_action_is_named_with_its_index_and_the_expected_names() {
        let problems = to_rule(
            r#"
            actions = ["notify", "remove_licence_groups", "deactivat"]
            when = { status = ["deprovisioned"] }
            "#,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with(
                "rules.leavers.actions[2]: unknown action \"deactivat\" (expected one of notify, "
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn rules_that_would_select_everyone_delete_without_leave_or_do_nothing_are_refused() {
        let problems = to_rule(r#"actions = ["deactivate"]"#).unwrap_err();
        assert!(
            problems[0].contains("at least one criterion"),
            "{problems:?}"
        );
        let problems = to_rule(
            r#"
            actions = ["delete", "deactivate"]
            when = { status = ["deleted"] }
            "#,
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "rules.leavers.actions[0]: `delete` needs `allow_delete = true` on the rule",
                "rules.leavers.actions[0]: `delete` must be the last action",
            ]
        );
        let problems = to_rule(
            r#"
            actions = []
            when = { status = ["gone"], inactive_days = 0, created_after = "last tuesday" }
            "#,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("rules.leavers.when.status: unknown status \"gone\""));
        assert!(problems[1].contains("rules.leavers.when.inactive_days: must be at least 1"));
        assert!(problems[2].contains("rules.leavers.when.created_after: `last tuesday`"));
        assert!(problems[3].contains("rules.leavers.actions: a rule needs at least one action"));
    }

    #[test]
    fn users_csv_reads_the_username_and_email_columns_and_names_the_file_and_line_at_fault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = dir.path().join("ok.csv");
        std::fs::write(&ok, "Email,name,username\nann@example.com,Ann,ann\n,,bob\n")
            .expect("write");
        assert_eq!(
            read_users_csv(&ok).expect("reads"),
            ["ann@example.com", "ann", "bob"]
        );
        let no_column = dir.path().join("none.csv");
        std::fs::write(&no_column, "login\nann\n").expect("write");
        let err = read_users_csv(&no_column).unwrap_err();
        assert!(
            err.ends_with("none.csv line 1: the header row names no `username` or `email` column"),
            "{err}"
        );
        let broken = dir.path().join("broken.csv");
        std::fs::write(&broken, b"username\nann\nb\xffb\n").expect("write");
        let err = read_users_csv(&broken).unwrap_err();
        assert!(err.contains("broken.csv line 3"), "{err}");
        let big = dir.path().join("big.csv");
        std::fs::write(
            &big,
            format!("username\n{}", "u\n".repeat(USERS_CSV_MAX_ROWS + 1)),
        )
        .expect("write");
        assert!(
            read_users_csv(&big)
                .unwrap_err()
                .contains("more than 100000 rows")
        );
        let rule = to_rule(&format!(
            "actions = [\"deactivate\"]\nwhen = {{ users_csv = {:?} }}",
            ok.display().to_string()
        ))
        .expect("valid");
        assert_eq!(rule.criteria.len(), 1);
        let problems = to_rule(
            "actions = [\"deactivate\"]\nwhen = { users_csv = \"/nonexistent/users.csv\" }",
        )
        .unwrap_err();
        assert!(problems[0].starts_with("rules.leavers.when.users_csv: /nonexistent/users.csv: "));
    }

    #[test]
    fn check_config_reports_unknown_targets_bad_rules_and_a_bad_timezone() {
        let mut config = Config::default();
        config.planner.timezone = "Europe/Atlantis".into();
        config.rules.insert(
            "leavers".into(),
            rule_config(
                r#"
                targets = ["wiki"]
                actions = ["deactivat"]
                when = { status = ["deprovisioned"] }
                "#,
            ),
        );
        let problems = config.validate().unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("planner.timezone: `Europe/Atlantis`")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("rules.leavers.targets: unknown target `wiki`")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("rules.leavers.actions[0]: unknown action")),
            "{problems:?}"
        );
        config.rules.clear();
        config.planner.timezone = "Europe/Berlin".into();
        assert_eq!(rules_from_config(&config), Ok(Vec::new()));
    }
}
