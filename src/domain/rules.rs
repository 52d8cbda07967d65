//! Rules (schemes): which people a rule selects, whom it spares, and the ladder of actions
//! it takes on them. Plain data, built from the configuration file or the store; the planner
//! (`engine::plan`) evaluates it. No I/O here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether a rule's plans are only reported or also carried out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    /// Plan, check budgets, report; write nothing.
    #[default]
    DryRun,
    /// Plan, check budgets, and carry the plan out.
    Enforce,
}

impl RuleMode {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleMode::DryRun => "dry_run",
            RuleMode::Enforce => "enforce",
        }
    }
}

/// A positive signal from a source that a person has left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaverSignal {
    /// The IdP says `DEPROVISIONED` (or the LDAP/AD account is disabled).
    Deprovisioned,
    /// The IdP says suspended. Counted whatever the source's `suspended_is_leaver` says,
    /// because the rule names it.
    Suspended,
    /// The IdP deleted the person (Okta deletion event, Entra deleted item, Google deleted
    /// user, SCIM `DELETE`).
    Deleted,
    /// A SCIM source pushed `active=false`.
    ScimInactive,
}

/// How a set of groups must relate to a person's groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMatch {
    /// In at least one of them.
    Any,
    /// In every one of them.
    All,
    /// In none of them.
    None,
}

/// One condition of a rule's selector. A rule selects a person when every criterion holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "criterion")]
pub enum Criterion {
    /// A linked identity from a complete snapshot (or a SCIM push) carries one of these
    /// signals.
    Status { any_of: Vec<LeaverSignal> },
    /// No activity for at least `days` (activity = max(created, last successful login)).
    InactiveDays { days: u32 },
    /// Never logged in anywhere, and created at least `days` ago.
    NeverLoggedIn { days: u32 },
    /// Exactly one successful sign-in is known.
    LoggedInOnce,
    /// Confluence or IdP group membership (names compared case-insensitively).
    MemberOf {
        groups: Vec<String>,
        how: GroupMatch,
    },
    /// The Confluence account lives in one of these user directories.
    Directory { any_of: Vec<String> },
    /// The email domain is (or with `negate`, is not) one of these.
    EmailDomain { domains: Vec<String>, negate: bool },
    /// Created (earliest known creation) before this instant.
    CreatedBefore { at: DateTime<Utc> },
    /// Created (earliest known creation) after this instant.
    CreatedAfter { at: DateTime<Utc> },
    /// A custom IdP attribute equals one of these values (case-insensitive).
    Attribute { name: String, any_of: Vec<String> },
    /// The account's username or email is on this list (from the config or a CSV file).
    Listed { names: Vec<String> },
    /// Absent from every complete source snapshot for at least `syncs` consecutive syncs.
    AbsentSyncs { syncs: u32 },
}

/// Groups to remove: every group, or the named ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "which", content = "names")]
pub enum GroupSelection {
    All,
    Named(Vec<String>),
}

/// One rung of a rule's action ladder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum ActionSpec {
    /// Email the person; later rungs wait `grace_days` after the notice.
    Notify { grace_days: u32 },
    /// Remove the groups that grant a licence.
    RemoveLicenceGroups,
    /// Deactivate the account.
    Deactivate,
    /// Rename to `<username>_inactive_yyyyMMdd`.
    Rename,
    /// Remove every group or the named ones.
    RemoveGroups { groups: GroupSelection },
    /// Add the named groups.
    AddGroups { groups: Vec<String> },
    /// Move the account to another user directory.
    ChangeDirectory { directory: String },
    /// Delete the account; only planned when the rule sets `allow_delete`.
    Delete,
}

/// Whom a rule never touches, besides the always-protected principals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemptions {
    /// Usernames or emails (case-insensitive).
    pub users: Vec<String>,
    /// Confluence or IdP group names (case-insensitive).
    pub groups: Vec<String>,
}

/// A rule (scheme).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub enabled: bool,
    pub mode: RuleMode,
    /// Lower runs first; a person selected by several rules gets the first one's actions.
    pub priority: i32,
    /// Target names the rule applies to; empty means every target.
    pub targets: Vec<String>,
    /// Every criterion must hold.
    pub criteria: Vec<Criterion>,
    pub exempt: Exemptions,
    /// The ladder, in order.
    pub actions: Vec<ActionSpec>,
    /// Whether `Delete` may be planned.
    pub allow_delete: bool,
    /// A cron expression, for the scheduler.
    pub schedule: Option<String>,
}
