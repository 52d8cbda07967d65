//! Plain data shared by every layer: identifiers, kinds, statuses and the records the store
//! keeps about sources, targets, identities, accounts and the links between them, and
//! [`schedule`]: cron schedules and when they fire in a named timezone.
//! No I/O and no async here.

mod ids;
mod kinds;
mod plan;
mod records;
mod rules;
pub mod schedule;

pub use ids::{AccountId, ActionId, IdentityId, LinkId, RunId, SnapshotId, SourceId, TargetId};
pub use kinds::{
    IdentityStatus, LinkMethod, ParseKindError, SnapshotStatus, SourceKind, TargetKind,
};
pub use plan::{
    AccountView, ActionKind, ActionPhase, BudgetKind, Cause, Explanation, IdentityView, LinkState,
    PersonView, Plan, PlannedAction, Reason, RuleVerdict, RunStatus, SourceState, TargetState,
};
pub use records::{
    Account, Identity, Link, NewAccount, NewIdentity, Snapshot, Source, Target, TargetGroup,
    normalise_key,
};
pub use rules::{
    ActionSpec, Criterion, Exemptions, GroupMatch, GroupSelection, LeaverSignal, Rule, RuleMode,
};
