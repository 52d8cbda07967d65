//! What the planner reads and what it writes: a view of each Confluence account with the
//! identities linked to it, and the actions planned for it with their reasons. Plain data;
//! the store assembles the views, `engine::plan` turns them into a [`Plan`], the executor
//! carries the actions out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AccountId, IdentityId, IdentityStatus, LinkMethod, SourceKind, TargetId};

/// A Confluence account as the planner sees it (from the target's latest inventory).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: AccountId,
    pub target_id: TargetId,
    /// The target's configured name.
    pub target: String,
    /// Immutable key (`userKey`, `accountId`).
    pub key: String,
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    pub directory: Option<String>,
    /// Direct groups, as listed.
    pub groups: Vec<String>,
    /// Whether the account holds a licence.
    pub licensed: bool,
    /// Member of one of the target's administrator groups.
    pub admin: bool,
    /// Whether idbridge may change it (writable directory, not IdP-managed, in scope).
    pub managed: bool,
    /// Why not, when it is not managed.
    pub unmanaged_reason: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// Confluence's own last login, when known.
    pub last_login_at: Option<DateTime<Utc>>,
    /// When idbridge first saw the account.
    pub first_seen_at: DateTime<Utc>,
}

/// An identity linked to an account, as the planner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdentityView {
    pub id: IdentityId,
    /// The source's configured name.
    pub source: String,
    pub source_kind: SourceKind,
    pub external_id: String,
    pub user_name: String,
    pub email: Option<String>,
    pub status: IdentityStatus,
    /// The status as the IdP spells it (e.g. `DEPROVISIONED`, SCIM `active=false`).
    pub raw_status: Option<String>,
    /// Whether this source treats suspension as leaving.
    pub suspended_is_leaver: bool,
    /// Whether this identity's status may be trusted for removals: its source's latest
    /// snapshot is complete (always true for SCIM sources, which are pushed).
    pub from_complete_snapshot: bool,
    pub created_at: Option<DateTime<Utc>>,
    /// Last successful login the IdP reports.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Latest successful sign-in event to the Confluence app seen in the IdP's log.
    pub last_sign_in_event_at: Option<DateTime<Utc>>,
    /// Number of successful sign-in events known.
    pub sign_in_events: u32,
    /// IdP group names.
    pub groups: Vec<String>,
    /// Custom attributes kept from the IdP.
    pub attributes: Value,
    pub status_changed_at: DateTime<Utc>,
    pub first_seen_at: DateTime<Utc>,
}

/// How an account's identities were found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum LinkState {
    /// Linked to one identity per source (at most), merged by source precedence.
    Linked {
        methods: Vec<(IdentityId, LinkMethod)>,
    },
    /// No identity matches.
    Unlinked,
    /// Ambiguous or many-to-one: never acted on.
    Conflict { reason: String },
}

/// One account with everything the planner needs to decide about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonView {
    pub account: AccountView,
    /// Linked identities, highest precedence first.
    pub identities: Vec<IdentityView>,
    pub link: LinkState,
    /// Consecutive complete snapshots, of every source, that lacked this person
    /// (the minimum over sources); 0 when seen in the latest complete one.
    pub absent_syncs: u32,
    /// When each rule last notified this person (confirmed notify actions).
    pub notified: BTreeMap<String, DateTime<Utc>>,
    /// Whether an earlier run still has unfinished actions for this account.
    pub pending_actions: bool,
    /// Whether an enforced run changed this account since its target's latest complete
    /// inventory began: what is stored is the state before that change, so no rule plans
    /// for it until the next inventory reads it again.
    pub changed_since_inventory: bool,
    /// When idbridge last gave this account its licence back (a confirmed regrant):
    /// inactivity counts from it at the earliest, so a returner whose signal the activity
    /// sources do not carry (a SCIM `active=true`) is not removed again at once.
    #[serde(default)]
    pub regranted_at: Option<DateTime<Utc>>,
}

/// What the planner knows about a source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    pub name: String,
    pub kind: SourceKind,
    /// The latest snapshot is complete (SCIM sources: always).
    pub complete: bool,
    /// Why not, when it is not.
    pub incomplete_reason: Option<String>,
    /// When idbridge first completed a snapshot of it.
    pub observed_since: Option<DateTime<Utc>>,
}

/// What the planner knows about a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    pub name: String,
    pub id: TargetId,
    /// The latest inventory is complete.
    pub complete: bool,
    pub incomplete_reason: Option<String>,
    /// Groups that grant a licence (names).
    pub licence_groups: Vec<String>,
    /// Why rename is impossible on this instance, when it is.
    pub cannot_rename: Option<String>,
    /// Why changing directory is impossible, when it is.
    pub cannot_change_directory: Option<String>,
    /// Why delete is impossible, when it is.
    pub cannot_delete: Option<String>,
}

/// What one action does. Parameters are fixed at plan time (e.g. the rename target).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ActionKind {
    /// Email the person.
    Notify,
    /// Remove the account from one group.
    RemoveFromGroup { group: String, licence: bool },
    /// Deactivate.
    Deactivate,
    /// Rename `from` → `to`.
    Rename { from: String, to: String },
    /// Add the account to one group.
    AddToGroup { group: String },
    /// Move to another directory.
    ChangeDirectory { from: Option<String>, to: String },
    /// Delete the account.
    Delete,
    /// Reactivate (undo, licence back on login).
    Reactivate,
}

impl ActionKind {
    /// The budget an action counts against.
    pub fn budget(&self) -> BudgetKind {
        match self {
            ActionKind::Notify => BudgetKind::Notify,
            ActionKind::RemoveFromGroup { licence: true, .. } => BudgetKind::RemoveLicence,
            ActionKind::RemoveFromGroup { licence: false, .. } => BudgetKind::RemoveGroups,
            ActionKind::Deactivate => BudgetKind::Deactivate,
            ActionKind::Rename { .. } => BudgetKind::Rename,
            ActionKind::AddToGroup { .. } | ActionKind::Reactivate => BudgetKind::Grant,
            ActionKind::ChangeDirectory { .. } => BudgetKind::ChangeDirectory,
            ActionKind::Delete => BudgetKind::Delete,
        }
    }

    /// The stored spelling of the kind alone.
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::Notify => "notify",
            ActionKind::RemoveFromGroup { .. } => "remove_from_group",
            ActionKind::Deactivate => "deactivate",
            ActionKind::Rename { .. } => "rename",
            ActionKind::AddToGroup { .. } => "add_to_group",
            ActionKind::ChangeDirectory { .. } => "change_directory",
            ActionKind::Delete => "delete",
            ActionKind::Reactivate => "reactivate",
        }
    }
}

/// What budgets count: one per kind of harm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    Notify,
    RemoveLicence,
    RemoveGroups,
    Deactivate,
    Rename,
    ChangeDirectory,
    Delete,
    Grant,
}

impl BudgetKind {
    pub const ALL: &'static [BudgetKind] = &[
        BudgetKind::Notify,
        BudgetKind::RemoveLicence,
        BudgetKind::RemoveGroups,
        BudgetKind::Deactivate,
        BudgetKind::Rename,
        BudgetKind::ChangeDirectory,
        BudgetKind::Delete,
        BudgetKind::Grant,
    ];

    /// The spelling used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::Notify => "notify",
            BudgetKind::RemoveLicence => "remove_licence",
            BudgetKind::RemoveGroups => "remove_groups",
            BudgetKind::Deactivate => "deactivate",
            BudgetKind::Rename => "rename",
            BudgetKind::ChangeDirectory => "change_directory",
            BudgetKind::Delete => "delete",
            BudgetKind::Grant => "grant",
        }
    }
}

/// Why an action is planned: the rule, and each criterion with the values that met it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub rule: String,
    /// One line per criterion, e.g. `inactive 132 days ≥ 90 (last activity 2026-07-12)`.
    pub because: Vec<String>,
    /// What kind of removal the rule makes; decides whether a later sign-in gives the
    /// licence back. Rows stored before it existed read as [`Cause::Other`].
    #[serde(default)]
    pub cause: Cause,
}

/// Why a rule takes something away, derived from its criteria: a leaver is never given
/// the licence back on sign-in, an inactive person is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The rule names a leaver signal (`status`) or absence from the sources
    /// (`absent_syncs`).
    Leaver,
    /// The rule selects by inactivity (`inactive_days`, `never_logged_in`,
    /// `logged_in_once`) and names no leaver signal.
    Inactivity,
    /// Anything else (group, directory, list, attribute selections; undo; regrant).
    #[default]
    Other,
}

impl Cause {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Leaver => "leaver",
            Cause::Inactivity => "inactivity",
            Cause::Other => "other",
        }
    }
}

/// One action in a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    pub account_id: AccountId,
    pub target_id: TargetId,
    pub target: String,
    pub account_key: String,
    /// The username at plan time (the executor's precondition for renames).
    pub username: String,
    /// The primary linked identity, if any.
    pub identity_id: Option<IdentityId>,
    pub kind: ActionKind,
    pub reason: Reason,
}

/// Why a person is or is not touched by one rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleVerdict {
    pub rule: String,
    /// Whether the rule selected the person.
    pub selected: bool,
    /// Each criterion with whether it held and the values seen.
    pub criteria: Vec<(String, bool)>,
    /// Why nothing is planned despite selection (protected, exempt, incomplete snapshot,
    /// observation floor, grace period, already done, shadowed by an earlier rule).
    pub held_back: Vec<String>,
    /// What the rule plans for the person.
    pub actions: Vec<ActionKind>,
}

/// The planner's answer for one person, rule by rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub target: String,
    pub username: String,
    /// Link state and protection, in words.
    pub facts: Vec<String>,
    pub rules: Vec<RuleVerdict>,
}

/// A plan: every action in execution order, and what was left out and why.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<PlannedAction>,
    /// Link conflicts seen (never acted on), as `target/username: reason`.
    pub conflicts: Vec<String>,
    /// Whole-plan notes, e.g. "source okta incomplete: no removals from it".
    pub notes: Vec<String>,
    /// Accounts in scope (managed), the base of percentage budgets.
    pub managed_population: u64,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Stored, within budget, not yet executed.
    Planned,
    /// Over a budget: nothing of it runs until approved.
    Held,
    /// Approved by a second principal, bound to the plan hash.
    Approved,
    Running,
    /// Every action confirmed or skipped.
    Succeeded,
    /// Finished with failed or poisoned actions.
    Failed,
    Cancelled,
    /// Held and not approved in time.
    Expired,
    /// A dry run, recorded with zero writes.
    Recorded,
}

impl RunStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Planned => "planned",
            RunStatus::Held => "held",
            RunStatus::Approved => "approved",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Expired => "expired",
            RunStatus::Recorded => "recorded",
        }
    }
}

/// Where one action stands: planned → claimed → sent → confirmed | failed | skipped |
/// poisoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionPhase {
    Planned,
    /// An executor holds it until its claim expires.
    Claimed,
    /// The pre-image is stored and the write may have reached the target.
    Sent,
    /// The target is in the action's post-state (changed now or found so).
    Confirmed,
    /// Failed for good (a permanent error).
    Failed,
    /// Not carried out: stale precondition, protected, or an earlier rung failed.
    Skipped,
    /// Failed `max_attempts` times; kept visible, never retried.
    Poisoned,
}

impl ActionPhase {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionPhase::Planned => "planned",
            ActionPhase::Claimed => "claimed",
            ActionPhase::Sent => "sent",
            ActionPhase::Confirmed => "confirmed",
            ActionPhase::Failed => "failed",
            ActionPhase::Skipped => "skipped",
            ActionPhase::Poisoned => "poisoned",
        }
    }

    /// Whether the action is finished.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            ActionPhase::Planned | ActionPhase::Claimed | ActionPhase::Sent
        )
    }
}
