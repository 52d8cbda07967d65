//! Typed identifiers. Each is a UUID v7 (time-ordered) minted by idbridge; identifiers that
//! come from outside (Okta ids, Confluence user keys) are plain strings on the records.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A configured identity source (an IdP or a SCIM push endpoint).
    SourceId
);
id_type!(
    /// A configured Confluence instance.
    TargetId
);
id_type!(
    /// A person as one source knows them.
    IdentityId
);
id_type!(
    /// A user account in one target.
    AccountId
);
id_type!(
    /// A link between an identity and an account.
    LinkId
);
id_type!(
    /// One pass over a source or a target.
    SnapshotId
);
id_type!(
    /// A planning pass and its plan.
    RunId
);
id_type!(
    /// One stored action of a run.
    ActionId
);
