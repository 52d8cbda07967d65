//! Closed sets of names stored as text: source and target kinds, identity statuses and how a
//! link was made. Each converts to and from its stored spelling.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A stored name that is not one of the known values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct ParseKindError {
    /// Which set was being parsed.
    pub what: &'static str,
    /// The offending text.
    pub value: String,
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseKindError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(ParseKindError { what: $what, value: other.to_owned() }),
                }
            }
        }
    };
}

text_enum!(
    /// Where identities come from.
    SourceKind, "source kind" {
        /// Pushed to idbridge's SCIM 2.0 endpoint.
        Scim = "scim",
        /// Polled from Okta.
        Okta = "okta",
        /// Polled from Microsoft Entra ID through Graph.
        Entra = "entra",
        /// Polled from Google Workspace.
        Google = "google",
        /// Polled from an LDAP directory or Active Directory.
        Ldap = "ldap",
        /// Imported from a CSV file.
        Csv = "csv",
    }
);

text_enum!(
    /// What kind of Confluence a target is.
    TargetKind, "target kind" {
        /// Confluence Data Center (or Server).
        ConfluenceDc = "confluence_dc",
        /// Confluence Cloud administered through the Atlassian organisation.
        ConfluenceCloud = "confluence_cloud",
    }
);

text_enum!(
    /// A person's status as their source reports it. Only `Suspended`, `Deprovisioned` and
    /// `Deleted` are leaver signals; a person missing from a snapshot has no status change.
    IdentityStatus, "identity status" {
        /// Can sign in.
        Active = "active",
        /// Created but not yet activated in the IdP.
        Staged = "staged",
        /// Temporarily blocked in the IdP.
        Suspended = "suspended",
        /// Deactivated in the IdP (SCIM `active=false`, Okta DEPROVISIONED, Entra disabled).
        Deprovisioned = "deprovisioned",
        /// Deleted in the IdP (SCIM DELETE, Google deleted user).
        Deleted = "deleted",
        /// A status idbridge has no mapping for. Never a leaver signal.
        Unknown = "unknown",
    }
);

text_enum!(
    /// How a pass over a source or target ended. Removals are planned only from complete ones.
    SnapshotStatus, "snapshot status" {
        /// Still being read.
        Running = "running",
        /// Read to a terminal page, no repeats, a plausible count.
        Complete = "complete",
        /// Read, but not provably whole; `detail.reason` says why.
        Incomplete = "incomplete",
        /// Could not be read at all.
        Failed = "failed",
    }
);

text_enum!(
    /// How an identity was matched to an account.
    LinkMethod, "link method" {
        /// On an immutable identifier attribute.
        ImmutableId = "immutable_id",
        /// On a case-insensitive email address.
        Email = "email",
        /// On a case-insensitive username.
        Username = "username",
        /// By an administrator.
        Manual = "manual",
    }
);

impl IdentityStatus {
    /// Whether this status is a positive signal that the person has left. Suspension counts
    /// only where the source is configured so (`suspended_is_leaver`); `Unknown`, `Staged`
    /// and `Active` never do.
    pub fn is_leaver(self, suspended_is_leaver: bool) -> bool {
        match self {
            Self::Deprovisioned | Self::Deleted => true,
            Self::Suspended => suspended_is_leaver,
            Self::Active | Self::Staged | Self::Unknown => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_stored_spelling() {
        for k in SourceKind::ALL {
            assert_eq!(k.as_str().parse::<SourceKind>(), Ok(*k));
        }
        for k in TargetKind::ALL {
            assert_eq!(k.as_str().parse::<TargetKind>(), Ok(*k));
        }
        for k in IdentityStatus::ALL {
            assert_eq!(k.as_str().parse::<IdentityStatus>(), Ok(*k));
        }
        for k in LinkMethod::ALL {
            assert_eq!(k.as_str().parse::<LinkMethod>(), Ok(*k));
        }
    }

    #[test]
    fn unknown_spelling_is_an_error_naming_the_set() {
        let err = "okta2".parse::<SourceKind>().unwrap_err();
        assert_eq!(err.to_string(), "unknown source kind `okta2`");
    }

    #[test]
    fn suspended_is_a_leaver_only_where_configured_and_unknown_never_is() {
        let leavers = |suspended: bool| -> Vec<IdentityStatus> {
            IdentityStatus::ALL
                .iter()
                .copied()
                .filter(|s| s.is_leaver(suspended))
                .collect()
        };
        assert_eq!(
            leavers(false),
            [IdentityStatus::Deprovisioned, IdentityStatus::Deleted]
        );
        assert_eq!(
            leavers(true),
            [
                IdentityStatus::Suspended,
                IdentityStatus::Deprovisioned,
                IdentityStatus::Deleted
            ]
        );
    }
}
