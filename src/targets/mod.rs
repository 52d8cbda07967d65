//! Confluence targets: what idbridge can read from and do to one Confluence instance.
//!
//! [`Target`] is the one interface the rest of idbridge uses. Each connector
//! ([`confluence_dc`], [`confluence_cloud`]) discovers what its instance can do
//! ([`Capabilities`]) and answers an action the instance cannot do with
//! [`TargetError::Unsupported`] naming why; nothing is ever faked. Wire DTOs stay private to
//! the connectors; this module holds the product-neutral shapes they return.
//! [`http`] is the shared HTTP layer (auth, body limits, bounded waits on rate limits, error
//! bodies that are HTML, empty or truncated). [`licence`] counts licences from an inventory.

pub mod confluence_cloud;
pub mod confluence_dc;
mod connector;
pub mod http;
pub mod licence;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::TargetKind;

pub use connector::Connector;

/// Something a target may or may not be able to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Page through every account, including deactivated and unlicensed ones.
    ListAccounts,
    /// Read one account.
    GetAccount,
    /// Page through groups.
    ListGroups,
    /// Read a group's direct members.
    GroupMembers,
    /// Read groups nested in groups.
    NestedGroups,
    /// Report licence usage.
    LicenceUsage,
    /// Tell when each account last logged in.
    LastLogin,
    /// Deactivate an account.
    Disable,
    /// Reactivate an account.
    Enable,
    /// Add an account to a group.
    AddToGroup,
    /// Remove an account from a group.
    RemoveFromGroup,
    /// Change an account's username.
    Rename,
    /// Move an account to another user directory.
    ChangeDirectory,
    /// Delete an account.
    Delete,
    /// Create an account.
    CreateAccount,
    /// Change an account's email address and full name.
    UpdateProfile,
}

impl Capability {
    /// Every capability, in the order reports list them.
    pub const ALL: &'static [Capability] = &[
        Capability::ListAccounts,
        Capability::GetAccount,
        Capability::ListGroups,
        Capability::GroupMembers,
        Capability::NestedGroups,
        Capability::LicenceUsage,
        Capability::LastLogin,
        Capability::Disable,
        Capability::Enable,
        Capability::AddToGroup,
        Capability::RemoveFromGroup,
        Capability::Rename,
        Capability::ChangeDirectory,
        Capability::Delete,
        Capability::CreateAccount,
        Capability::UpdateProfile,
    ];

    /// The name used in reports and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::ListAccounts => "list accounts",
            Capability::GetAccount => "get account",
            Capability::ListGroups => "list groups",
            Capability::GroupMembers => "group members",
            Capability::NestedGroups => "nested groups",
            Capability::LicenceUsage => "licence usage",
            Capability::LastLogin => "last login",
            Capability::Disable => "disable",
            Capability::Enable => "enable",
            Capability::AddToGroup => "add to group",
            Capability::RemoveFromGroup => "remove from group",
            Capability::Rename => "rename",
            Capability::ChangeDirectory => "change directory",
            Capability::Delete => "delete",
            Capability::CreateAccount => "create account",
            Capability::UpdateProfile => "update email and full name",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an instance can do something, and how or why not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "support", rename_all = "snake_case")]
pub enum Support {
    /// It can; `via` names the API used (e.g. `REST /rest/api/admin/user/{u}/disable`).
    Supported { via: String },
    /// It cannot; `why` says so in words an admin can act on.
    Unsupported { why: String },
}

impl Support {
    /// Supported through `via`.
    pub fn via(via: impl Into<String>) -> Self {
        Support::Supported { via: via.into() }
    }

    /// Unsupported because `why`.
    pub fn not(why: impl Into<String>) -> Self {
        Support::Unsupported { why: why.into() }
    }

    /// Whether the capability is there.
    pub fn is_supported(&self) -> bool {
        matches!(self, Support::Supported { .. })
    }
}

/// What one instance can do, capability by capability.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities(BTreeMap<Capability, Support>);

impl Capabilities {
    /// Records how `cap` is supported.
    pub fn set(&mut self, cap: Capability, support: Support) {
        self.0.insert(cap, support);
    }

    /// How `cap` is supported; a capability never set is unsupported.
    pub fn get(&self, cap: Capability) -> Support {
        self.0
            .get(&cap)
            .cloned()
            .unwrap_or_else(|| Support::not("not offered by this connector"))
    }

    /// `Ok` when `cap` is supported, else the error an action reports.
    pub fn require(&self, cap: Capability) -> Result<(), TargetError> {
        match self.get(cap) {
            Support::Supported { .. } => Ok(()),
            Support::Unsupported { why } => Err(TargetError::Unsupported {
                capability: cap,
                why,
            }),
        }
    }

    /// Every capability with its support, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (Capability, Support)> + '_ {
        Capability::ALL.iter().map(|c| (*c, self.get(*c)))
    }
}

/// Where an instance's last-login times come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LastLoginSource {
    /// The product's REST API (Confluence DC 10.2+ `expand=lastLogin`).
    Rest,
    /// A read-only connection to Confluence's own database.
    Database,
    /// Atlassian Cloud's last-active dates per product.
    ProductActivity,
    /// Nothing on the target; idbridge relies on the identity providers' sign-in signals.
    IdentityProviders,
}

impl LastLoginSource {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LastLoginSource::Rest => "REST (lastLogin)",
            LastLoginSource::Database => "Confluence database (read-only)",
            LastLoginSource::ProductActivity => "product last-active dates",
            LastLoginSource::IdentityProviders => "identity providers only",
        }
    }
}

/// What a probe learnt about the instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// What answered, e.g. `Confluence Data Center` or `Atlassian Cloud organization`.
    pub product: String,
    /// The version as the instance reports it, when it does.
    pub version: Option<String>,
    /// Whom idbridge is authenticated as.
    pub principal: Option<String>,
    /// Where last-login times come from.
    pub last_login: LastLoginSource,
    /// Anything an admin should know (e.g. "Remote API disabled: rename unavailable").
    pub notes: Vec<String>,
}

/// The result of probing an instance: who it is and what it can do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub info: InstanceInfo,
    pub capabilities: Capabilities,
}

/// An account as a target reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoteAccount {
    /// The immutable key: Confluence DC `userKey`, Atlassian `accountId`.
    pub key: String,
    /// The current username (DC) or email (Cloud); mutable.
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// Whether the account can log in.
    pub active: bool,
    /// The status as the target spells it (`current`, `deactivated`, `suspended`, …).
    pub raw_status: String,
    /// The user directory (DC) or identity directory (Cloud) holding the account.
    pub directory: Option<String>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    /// Direct group memberships, by group name, when the listing includes them.
    pub groups: Option<Vec<String>>,
    /// Whether the target says the account holds a licence, when it says.
    pub licensed: Option<bool>,
    /// Why idbridge may not change this account there, if it may not (read-only directory,
    /// managed by an identity provider).
    pub read_only: Option<String>,
}

/// A group as a target reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteGroup {
    /// Cloud group id; DC groups are known by name only.
    pub id: Option<String>,
    pub name: String,
    pub directory: Option<String>,
    /// Why its memberships cannot be changed here, if they cannot.
    pub read_only: Option<String>,
}

/// A direct member of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Member {
    /// An account, by its immutable key and username.
    Account { key: String, username: String },
    /// A nested group, by name.
    Group { name: String },
}

/// One page of a listing; `next` is an opaque cursor for the following page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the terminal page.
    pub next: Option<String>,
    /// The total the target announces, when it announces one.
    pub total: Option<u64>,
    /// Why this page cannot be the whole truth, when it cannot (e.g. a fallback API that
    /// lists active users only). An inventory with such a page is never complete.
    #[serde(default)]
    pub partial: Option<String>,
}

/// Names an account for a write: both keys, because DC writes take the username and Cloud
/// writes take the account id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    pub key: String,
    pub username: String,
}

impl AccountRef {
    /// The reference for `account`.
    pub fn of(account: &RemoteAccount) -> Self {
        AccountRef {
            key: account.key.clone(),
            username: account.username.clone(),
        }
    }
}

/// A group to write to: name (DC) and id (Cloud).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub name: String,
    pub id: Option<String>,
}

impl GroupRef {
    /// A group known by name only.
    pub fn named(name: impl Into<String>) -> Self {
        GroupRef {
            name: name.into(),
            id: None,
        }
    }
}

/// One change to an account that the caller has just read and found not yet changed, for
/// [`Target::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Disable,
    Enable,
    AddToGroup(GroupRef),
    /// The group as the account's membership spells it.
    RemoveFromGroup(GroupRef),
    Rename(String),
    ChangeDirectory(String),
    Delete,
}

/// An account to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRemoteAccount {
    pub username: String,
    pub email: String,
    pub display_name: String,
}

/// What a write found and did. Writes are idempotent by state: one that finds the account
/// already as asked changes nothing and says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    /// The target changed.
    Changed,
    /// The account was already in the asked-for state.
    AlreadyDone,
}

/// Licence usage of one user directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUsage {
    pub licensed: u64,
    pub active: u64,
    pub deactivated: u64,
    pub never_logged_in: u64,
}

/// Licence usage of an instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceUsage {
    /// Seats the licence allows; `None` means unlimited or unknown.
    pub max_users: Option<u64>,
    /// The configured tier the instance is measured against.
    pub tier: Option<u64>,
    /// Distinct active accounts holding a licence, each counted once.
    pub licensed: u64,
    pub active: u64,
    pub deactivated: u64,
    /// Licensed accounts that never logged in; 0 when the target's last-login times are
    /// unknown (see `last_login_known`).
    pub never_logged_in: u64,
    /// Whether last-login times were known, so that `never_logged_in` means something.
    pub last_login_known: bool,
    /// What the target itself reports as used seats, when it reports it.
    pub reported_in_use: Option<u64>,
    pub per_directory: BTreeMap<String, DirectoryUsage>,
    /// How the figures were obtained, e.g. `global permissions (9.3+)`.
    pub basis: String,
}

/// Why a call to a target failed. Every variant reads as a sentence an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{capability} is unsupported on this instance ({why})")]
    Unsupported { capability: Capability, why: String },
    #[error("the target rejected idbridge's credentials (401): {detail}")]
    Unauthorized { detail: String },
    #[error("idbridge's account lacks permission for this (403): {detail}")]
    Forbidden { detail: String },
    #[error(
        "this account or group is managed by an identity provider; change this in your IdP ({detail})"
    )]
    ManagedByIdp { detail: String },
    #[error("not found: {what}")]
    NotFound { what: String },
    #[error("conflict: {detail}")]
    Conflict { detail: String },
    #[error("no licence seats left: {detail}")]
    NoSeats { detail: String },
    #[error("the request was refused ({status}): {detail}")]
    Rejected { status: u16, detail: String },
    #[error(
        "rate limited; still limited after waiting {waited:?} (next try allowed in {retry_after:?})"
    )]
    RateLimited {
        waited: Duration,
        retry_after: Duration,
    },
    #[error("the target is unavailable ({status}) after {attempts} attempts: {detail}")]
    Unavailable {
        status: u16,
        attempts: u32,
        detail: String,
    },
    #[error("unexpected response ({status}): {detail}")]
    UnexpectedBody { status: u16, detail: String },
    #[error("could not reach the target: {detail}")]
    Transport { detail: String },
    #[error("the target did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Config(String),
}

impl TargetError {
    /// Whether trying again later may succeed (the executor retries these).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TargetError::RateLimited { .. }
                | TargetError::Unavailable { .. }
                | TargetError::Transport { .. }
                | TargetError::Timeout(_)
        )
    }
}

/// One Confluence instance. Implemented by each connector; the engine and the inventory
/// sync are written against this trait only.
///
/// Listing methods take the cursor the previous page returned (`None` for the first page).
/// Write methods check the capability first and are idempotent by state.
pub trait Target: Send + Sync {
    /// Which kind of target this is.
    fn kind(&self) -> TargetKind;

    /// Checks connectivity and credentials, detects the version, and discovers capabilities.
    /// Connectors cache the result; writes consult it.
    fn probe(&self) -> impl Future<Output = Result<Probe, TargetError>> + Send;

    /// One page of accounts, including deactivated and unlicensed ones.
    fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<RemoteAccount>, TargetError>> + Send;

    /// One account by its immutable key; `None` when the target does not know it.
    fn get_account(
        &self,
        account: &AccountRef,
    ) -> impl Future<Output = Result<Option<RemoteAccount>, TargetError>> + Send;

    /// One page of groups.
    fn list_groups(
        &self,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<RemoteGroup>, TargetError>> + Send;

    /// One page of a group's direct members (accounts and, where supported, nested groups).
    fn group_members(
        &self,
        group: &GroupRef,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Member>, TargetError>> + Send;

    /// The groups an account belongs to directly.
    fn account_groups(
        &self,
        account: &AccountRef,
    ) -> impl Future<Output = Result<Vec<RemoteGroup>, TargetError>> + Send;

    /// Which groups (by name) grant a licence, as the instance says (DC 9.3+ global
    /// permissions) or as configured.
    fn licence_groups(&self) -> impl Future<Output = Result<Vec<String>, TargetError>> + Send;

    /// Seats the instance reports: `(max_users, in_use)`; `None` where it does not say.
    fn licence_counters(
        &self,
    ) -> impl Future<Output = Result<(Option<u64>, Option<u64>), TargetError>> + Send;

    /// Deactivates the account.
    fn disable(
        &self,
        account: &AccountRef,
    ) -> impl Future<Output = Result<WriteOutcome, TargetError>> + Send;

    /// Reactivates the account.
    fn enable(
        &self,
        account: &AccountRef,
    ) -> impl Future<Output = Result<WriteOutcome, TargetError>> + Send;

    /// Adds the account to a group.
    fn add_to_group(
        &self,
        account: &AccountRef,
        group: &GroupRef,
    ) -> impl Future<Output = Result<WriteOutcome, TargetError>> + Send;

    /// Removes the account from a group.
    fn remove_from_group(
        &self,
        account: &AccountRef,
        group: &GroupRef,
    ) -> impl Future<Output = Result<WriteOutcome, TargetError>> + Send;

    /// Changes the account's username; the key stays.
    fn rename(
        &self,
        account: &AccountRef,
        new_username: &str,
    ) -> impl Future<Output = Result<WriteOutcome, TargetError>> + Send;

    /// Moves the account to another user directory.
    fn change_directory(
        &self,
        account: &AccountRef,
        directory: &str,
    ) -> impl Future<Output = Result<WriteOutcome, TargetError>> + Send;

    /// Deletes the account, waiting (boundedly) for an asynchronous deletion to finish.
    fn delete(
        &self,
        account: &AccountRef,
    ) -> impl Future<Output = Result<WriteOutcome, TargetError>> + Send;

    /// Creates an account and returns it.
    fn create_account(
        &self,
        new: &NewRemoteAccount,
    ) -> impl Future<Output = Result<RemoteAccount, TargetError>> + Send;

    /// Changes email address and full name.
    fn update_profile(
        &self,
        account: &AccountRef,
        email: &str,
        display_name: &str,
    ) -> impl Future<Output = Result<WriteOutcome, TargetError>> + Send;

    /// Carries out `write` on `account` as the caller has just read it and found it not yet
    /// in the post-state (the executor's read → compare → write). A connector whose
    /// idempotent write methods read the account again first may skip that read here; the
    /// default calls those methods, so it is as safe as they are.
    fn apply(
        &self,
        account: &RemoteAccount,
        write: &Write,
    ) -> impl Future<Output = Result<WriteOutcome, TargetError>> + Send {
        async move {
            let a = AccountRef::of(account);
            match write {
                Write::Disable => self.disable(&a).await,
                Write::Enable => self.enable(&a).await,
                Write::AddToGroup(g) => self.add_to_group(&a, g).await,
                Write::RemoveFromGroup(g) => self.remove_from_group(&a, g).await,
                Write::Rename(to) => self.rename(&a, to).await,
                Write::ChangeDirectory(to) => self.change_directory(&a, to).await,
                Write::Delete => self.delete(&a).await,
            }
        }
    }
}
