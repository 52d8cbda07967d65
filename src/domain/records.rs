//! The records idbridge keeps: what it knows of each source, target, identity and account,
//! and the links between identities and accounts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AccountId, IdentityId, IdentityStatus, LinkId, LinkMethod, SnapshotId, SnapshotStatus,
    SourceId, SourceKind, TargetId, TargetKind,
};

/// The case-folded form under which usernames and email addresses are compared.
/// Usernames and emails are mutable and reusable, so they only ever help find a match;
/// identity rests on immutable ids.
pub fn normalise_key(value: &str) -> String {
    value.trim().to_lowercase()
}

/// A configured identity source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: SourceId,
    pub name: String,
    pub kind: SourceKind,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A configured Confluence instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub id: TargetId,
    pub name: String,
    pub kind: TargetKind,
    pub base_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a source says about one person, as handed to the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewIdentity {
    pub source_id: SourceId,
    /// The source's immutable id for the person (Okta `id`, Entra object id, SCIM `id`).
    pub external_id: String,
    pub user_name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub status: IdentityStatus,
    pub idp_created_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// Source-specific attributes kept verbatim for rules and explanations.
    pub attributes: Value,
}

/// A person as one source knows them, with idbridge's bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub id: IdentityId,
    pub source_id: SourceId,
    pub external_id: String,
    pub user_name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub status: IdentityStatus,
    /// When idbridge first saw the current status.
    pub status_changed_at: DateTime<Utc>,
    pub idp_created_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub attributes: Value,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Bumped on every change; the basis of SCIM ETags and optimistic checks.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// What a target says about one account, as handed to the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAccount {
    pub target_id: TargetId,
    /// The target's immutable key (Confluence DC `userKey`, Atlassian `accountId`).
    pub account_key: String,
    pub user_name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub remote_created_at: Option<DateTime<Utc>>,
    /// Whether idbridge may act on this account at all.
    pub managed: bool,
    pub attributes: Value,
}

/// A user account in one target, with idbridge's bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub target_id: TargetId,
    pub account_key: String,
    pub user_name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub remote_created_at: Option<DateTime<Utc>>,
    pub managed: bool,
    pub attributes: Value,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// One pass over a source or a target, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: SnapshotId,
    pub source_id: Option<SourceId>,
    pub target_id: Option<TargetId>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: SnapshotStatus,
    pub item_count: i64,
    /// Why it is incomplete, licence figures, page counts.
    pub detail: Value,
}

/// A group as a target's latest inventory reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub name: String,
    pub remote_id: Option<String>,
    pub directory: Option<String>,
    /// Why its memberships cannot be changed, if they cannot.
    pub read_only: Option<String>,
    /// Whether membership grants a licence (directly or as a nested group).
    pub grants_licence: bool,
    /// Names of the groups nested in it.
    pub nested: Vec<String>,
    pub member_count: i64,
}

/// An identity matched to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub id: LinkId,
    pub identity_id: IdentityId,
    pub account_id: AccountId,
    pub method: LinkMethod,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::normalise_key;

    #[test]
    fn keys_compare_without_case_or_surrounding_space() {
        assert_eq!(
            normalise_key("  Ada.Lovelace@Example.COM "),
            "ada.lovelace@example.com"
        );
        assert_eq!(normalise_key("ÅSA"), "åsa");
    }
}
