//! Plain data shared by every layer: identifiers, kinds, statuses and the records the store
//! keeps about sources, targets, identities, accounts and the links between them.
//! No I/O and no async here.

mod ids;
mod kinds;
mod records;

pub use ids::{AccountId, IdentityId, LinkId, SnapshotId, SourceId, TargetId};
pub use kinds::{
    IdentityStatus, LinkMethod, ParseKindError, SnapshotStatus, SourceKind, TargetKind,
};
pub use records::{
    Account, Identity, Link, NewAccount, NewIdentity, Snapshot, Source, Target, TargetGroup,
    normalise_key,
};
