//! Identity sources idbridge polls: the [`Source`] trait every connector implements (Okta,
//! Entra ID through Graph, Google Workspace, LDAP/AD, CSV), the records they yield, and the
//! errors they report. The sync engine (`engine::sources`) is written against this trait only;
//! it decides completeness, connectors only report what they saw.
//!
//! Listing methods take the cursor the previous page returned (`None` for the first page) and
//! never loop internally over pages, so the engine can detect repeated cursors, count pages
//! and stop a runaway listing.

pub mod auth;
pub mod connector;
pub mod csv;
pub mod entra;
pub mod google;
pub mod http;
pub mod ldap;
pub mod okta;
pub mod status;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{IdentityStatus, SourceKind};

pub use connector::SourceConnector;

/// A person as one source reports them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// The source's immutable id (Okta `id`, Graph `id`, Google `id`, AD `objectGUID`,
    /// OpenLDAP `entryUUID`, the CSV `id` column).
    pub external_id: String,
    /// Sign-in name: Okta `profile.login`, Graph `userPrincipalName`, Google `primaryEmail`,
    /// LDAP `sAMAccountName`/`uid`.
    pub login: String,
    /// Email addresses, the primary one first.
    pub emails: Vec<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    /// The normalised status (see [`status`]).
    pub status: IdentityStatus,
    /// The status exactly as the source spells it (e.g. `LOCKED_OUT`, `suspended:ADMIN`,
    /// `accountEnabled=false`, `userAccountControl=514`).
    pub raw_status: String,
    /// When the source created the person.
    pub created_at: Option<DateTime<Utc>>,
    /// Last *successful* sign-in as the source records it; never-logged-in sentinels
    /// (`1970-01-01`, `0001-01-01`, FILETIME 0) are `None`.
    pub last_login_at: Option<DateTime<Utc>>,
    /// When the source last changed the record (Okta `lastUpdated`), for incremental sync.
    pub updated_at: Option<DateTime<Utc>>,
    /// Group external ids, when the listing carries them (LDAP `memberOf`, CSV).
    pub groups: Vec<String>,
    /// The configured custom attributes that the record carries.
    pub attributes: BTreeMap<String, String>,
}

impl SourceIdentity {
    /// A record with only the required fields set; connectors fill in the rest.
    pub fn new(
        external_id: impl Into<String>,
        login: impl Into<String>,
        status: IdentityStatus,
        raw_status: impl Into<String>,
    ) -> Self {
        SourceIdentity {
            external_id: external_id.into(),
            login: login.into(),
            emails: Vec::new(),
            given_name: None,
            family_name: None,
            display_name: None,
            status,
            raw_status: raw_status.into(),
            created_at: None,
            last_login_at: None,
            updated_at: None,
            groups: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    /// The primary email, if any.
    pub fn email(&self) -> Option<&str> {
        self.emails.first().map(String::as_str)
    }
}

/// A group as a source reports it, with its direct members' external ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGroup {
    pub external_id: String,
    pub name: String,
    pub members: Vec<String>,
}

/// One change from an incremental listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// The person as they are now (new or changed).
    Upsert(Box<SourceIdentity>),
    /// The person is gone from the source (Graph `@removed` deleted, Okta 404). Their status
    /// becomes `deleted`; `reason` is what the source said.
    Removed { external_id: String, reason: String },
}

/// A successful sign-in to the Confluence application, from the IdP's event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// The event's own id (Okta `uuid`, Graph sign-in `id`, Google `id.time`+`uniqueQualifier`),
    /// so overlapping polls record each event once.
    pub event_id: String,
    /// The person's external id in this source, when the event names it.
    pub external_id: Option<String>,
    /// The person's login or email, when the event names it.
    pub login: Option<String>,
    pub at: DateTime<Utc>,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourcePage<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the terminal page.
    pub next: Option<String>,
    /// The total the source announces, when it announces one.
    pub total: Option<u64>,
    /// On the terminal page: where an incremental listing (or the next event poll) picks up
    /// (Graph `@odata.deltaLink`, Okta's System Log `next` link, a timestamp watermark).
    pub checkpoint: Option<String>,
}

impl<T> SourcePage<T> {
    /// A terminal page holding `items`.
    pub fn last(items: Vec<T>) -> Self {
        SourcePage {
            items,
            next: None,
            total: None,
            checkpoint: None,
        }
    }
}

/// What a source can tell idbridge, as found by [`Source::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceCheck {
    pub kind: SourceKind,
    /// Who idbridge is at the source (client id, bind DN, service account and subject).
    pub principal: String,
    /// Scopes, roles or permissions the credentials carry, as the source reports them.
    pub granted: Vec<String>,
    /// Permissions idbridge wants and does not have, each with what is lost without it.
    pub missing: Vec<String>,
    /// People the source holds, when it can say cheaply.
    pub people: Option<u64>,
    /// Where last-login data comes from (or why there is none).
    pub last_login: String,
    /// Where sign-in events for the Confluence app come from (or why there are none).
    pub sign_ins: String,
    /// Whether changes can be read incrementally, and how.
    pub incremental: String,
    /// Anything else the admin should know (e.g. "signInActivity needs Entra ID P1").
    pub notes: Vec<String>,
}

/// Why a source call failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the source rejected idbridge's credentials: {detail}")]
    Unauthorized { detail: String },
    #[error("idbridge lacks permission for this: {detail}")]
    Forbidden { detail: String },
    #[error("not found: {what}")]
    NotFound { what: String },
    #[error("{what} is not available from this source ({why})")]
    Unsupported { what: String, why: String },
    #[error("the incremental checkpoint is no longer valid ({detail}); a full sync is needed")]
    CheckpointExpired { detail: String },
    #[error("the request was refused ({status}): {detail}")]
    Rejected { status: u16, detail: String },
    #[error(
        "rate limited; still limited after waiting {waited:?} (next try allowed in {retry_after:?})"
    )]
    RateLimited {
        waited: Duration,
        retry_after: Duration,
    },
    #[error("the source is unavailable ({status}) after {attempts} attempts: {detail}")]
    Unavailable {
        status: u16,
        attempts: u32,
        detail: String,
    },
    #[error("unexpected response ({status}): {detail}")]
    UnexpectedBody { status: u16, detail: String },
    #[error("a record cannot be read: {detail}")]
    InvalidRecord { detail: String },
    #[error("could not reach the source: {detail}")]
    Transport { detail: String },
    #[error("the source did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Config(String),
}

impl SourceError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::RateLimited { .. }
                | SourceError::Unavailable { .. }
                | SourceError::Transport { .. }
                | SourceError::Timeout(_)
        )
    }
}

/// One identity provider, read-only. Implemented by each connector.
pub trait Source: Send + Sync {
    /// Which kind of source this is.
    fn kind(&self) -> SourceKind;

    /// Authenticates and finds out what the credentials may read and what login data exists.
    fn check(&self) -> impl Future<Output = Result<SourceCheck, SourceError>> + Send;

    /// One page of every person the source holds, leavers included (e.g. Okta DEPROVISIONED,
    /// Google deleted users, Entra soft-deleted users are listed with their status). The
    /// terminal page may carry a checkpoint for [`Source::list_changes`].
    fn list_identities(
        &self,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<SourcePage<SourceIdentity>, SourceError>> + Send;

    /// One page of groups with their direct members. A large group may come as several
    /// items with the same id, each carrying a part of its members; the engine joins them.
    fn list_groups(
        &self,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<SourcePage<SourceGroup>, SourceError>> + Send;

    /// One page of changes since `checkpoint` (from a previous full or incremental listing).
    /// [`SourceError::CheckpointExpired`] asks for a full sync; [`SourceError::Unsupported`]
    /// says the source has no incremental listing.
    fn list_changes(
        &self,
        checkpoint: &str,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<SourcePage<Change>, SourceError>> + Send;

    /// One page of successful sign-ins to the Confluence application since `checkpoint`
    /// (`None`: from the source's own default look-back). Failed sign-ins are never returned.
    fn sign_ins(
        &self,
        checkpoint: Option<&str>,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<SourcePage<SignIn>, SourceError>> + Send;
}
