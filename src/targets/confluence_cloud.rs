//! Atlassian Cloud: the Confluence site's users and groups as the Organizations admin API
//! sees them.
//!
//! * Reads use Organizations API v2: `POST …/directories/{directoryId}/users/search` with
//!   `expand=productAccess,groups` (cursor paging through `links.next`), groups through
//!   `POST …/groups/search`, a group's members through a user search on `groupIds`. Each
//!   identity directory of the org is listed in turn, so every account carries its directory.
//! * Last activity is the Confluence `productAccess[].lastActiveTimestamp`; v1
//!   `last-active-dates` is the fallback when a user answer lacks product access.
//! * Disable and enable are v2 `suspend` and `restore` in the user's directory (org access;
//!   groups and roles are kept, the seat is freed). The user-management lifecycle
//!   `disable` deactivates the Atlassian account everywhere, which idbridge does not do.
//! * Memberships are v2 `…/groups/{groupId}/memberships`; delete is v2 removal from the
//!   directory.
//!
//! Users and groups synced from an identity provider are read-only here: writes to them fail
//! at once with [`TargetError::ManagedByIdp`] and send nothing. Every write reads the current
//! state first and changes nothing when it already holds.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use super::http::{Body, Credentials, HttpSettings, RemoteClient, Response, atlassian_error_code};
use super::{
    AccountRef, Capabilities, Capability, GroupRef, InstanceInfo, LastLoginSource, Member,
    NewRemoteAccount, Page, Probe, RemoteAccount, RemoteGroup, Support, Target, TargetError,
    WriteOutcome,
};
use crate::config::TargetConfig;
use crate::domain::TargetKind;

/// Why an account synced from an identity provider cannot be changed here.
pub const SYNCED_ACCOUNT: &str = "managed by an identity provider; change this in your IdP";
/// Why a group synced from an identity provider cannot be changed here.
pub const SYNCED_GROUP: &str = "synced from an identity provider; change its members in your IdP";

/// Largest page the connector asks for.
const MAX_PAGE: u32 = 1000;

/// An Atlassian Cloud organization.
#[derive(Debug)]
pub struct AtlassianCloud {
    name: String,
    client: RemoteClient,
    org_id: String,
    /// The configured directory; `None` for all (`-`).
    directory: Option<String>,
    site_id: Option<String>,
    page_size: u32,
    licence_groups: Vec<String>,
    licence_tier: Option<u64>,
    /// Directories of the org, learnt on first use.
    directories: Mutex<Option<Vec<Directory>>>,
    probe: Mutex<Option<Probe>>,
    /// Cursors seen in the running listing of each kind, to stop a server that loops.
    seen: Mutex<[HashSet<String>; 3]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Directory {
    id: String,
    name: String,
}

#[derive(Clone, Copy)]
enum Listing {
    Accounts = 0,
    Groups = 1,
    Members = 2,
}

// ---------------------------------------------------------------------------------------
// Wire shapes (Organizations API v2 and v1)

#[derive(Deserialize)]
struct WirePage<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    links: Option<WireLinks>,
}

#[derive(Deserialize)]
struct WireLinks {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDirectory {
    directory_id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUser {
    account_id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    account_status: Option<String>,
    #[serde(default)]
    membership_status: Option<String>,
    #[serde(default)]
    management_source: Option<String>,
    #[serde(default)]
    added_to_org: Option<String>,
    #[serde(default)]
    product_access: Option<Vec<WireProduct>>,
    #[serde(default)]
    groups: Option<Vec<WireGroupRef>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireProduct {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    last_active_timestamp: Option<String>,
}

#[derive(Deserialize)]
struct WireGroupRef {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireGroup {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    directory_id: Option<String>,
    #[serde(default)]
    external_synced: Option<bool>,
    #[serde(default)]
    managed_by: Option<String>,
}

impl WireGroup {
    fn synced(&self) -> bool {
        self.external_synced == Some(true) || self.managed_by.as_deref() == Some("external")
    }
}

#[derive(Deserialize)]
struct WireLastActive {
    data: WireLastActiveData,
}

#[derive(Deserialize)]
struct WireLastActiveData {
    #[serde(default)]
    product_access: Vec<WireLastActiveProduct>,
}

#[derive(Deserialize)]
struct WireLastActiveProduct {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    last_active: Option<String>,
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

impl WireUser {
    fn synced(&self) -> bool {
        self.management_source.as_deref() == Some("synced")
    }

    fn suspended(&self) -> bool {
        self.membership_status.as_deref() == Some("suspended")
            || self.status.as_deref() == Some("suspended")
    }
}

// ---------------------------------------------------------------------------------------

impl AtlassianCloud {
    /// A connector for the target `name` as configured: `base_url` is the admin API
    /// (`https://api.atlassian.com`), `token` the org API key, `org_id` the organization.
    pub fn new(name: &str, cfg: &TargetConfig) -> Result<Self, TargetError> {
        let credentials = Credentials::from_config(name, cfg)?;
        if !matches!(credentials, Credentials::Bearer(_)) {
            return Err(TargetError::Config(format!(
                "targets.{name}: Atlassian admin APIs take the organization API key as `token`"
            )));
        }
        let org_id = cfg
            .org_id
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .ok_or_else(|| {
                TargetError::Config(format!(
                    "targets.{name}: `org_id` is required for Atlassian Cloud (admin.atlassian.com \
                     > Settings > API keys shows it)"
                ))
            })?
            .to_owned();
        let client = RemoteClient::new(&cfg.base_url, credentials, HttpSettings::from_config(cfg))?;
        let directory = cfg
            .directory_id
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "-")
            .map(str::to_owned);
        Ok(Self {
            name: name.to_owned(),
            client,
            org_id,
            directory,
            site_id: cfg.site_id.clone().filter(|s| !s.trim().is_empty()),
            page_size: cfg.page_size.clamp(1, MAX_PAGE),
            licence_groups: cfg.licence_groups.clone(),
            licence_tier: cfg.licence_tier,
            directories: Mutex::new(None),
            probe: Mutex::new(None),
            seen: Mutex::new([HashSet::new(), HashSet::new(), HashSet::new()]),
        })
    }

    /// What this connector can do on any Atlassian Cloud organization.
    pub fn capabilities() -> Capabilities {
        let v2 = "Organizations API v2";
        let mut c = Capabilities::default();
        c.set(
            Capability::ListAccounts,
            Support::via(format!(
                "{v2} POST /admin/v2/orgs/{{orgId}}/directories/{{directoryId}}/users/search"
            )),
        );
        c.set(
            Capability::GetAccount,
            Support::via(format!("{v2} users/search by accountIds")),
        );
        c.set(
            Capability::ListGroups,
            Support::via(format!(
                "{v2} POST …/directories/{{directoryId}}/groups/search"
            )),
        );
        c.set(
            Capability::GroupMembers,
            Support::via(format!("{v2} users/search by groupIds")),
        );
        c.set(
            Capability::NestedGroups,
            Support::not("Atlassian Cloud groups do not nest"),
        );
        c.set(
            Capability::LicenceUsage,
            Support::via(
                "Confluence product access per user (expand=productAccess); the seat limit comes \
                 from `licence_tier`, as the admin API does not report it",
            ),
        );
        c.set(
            Capability::LastLogin,
            Support::via(
                "productAccess[].lastActiveTimestamp (v2), v1 last-active-dates as fallback",
            ),
        );
        c.set(
            Capability::Disable,
            Support::via(format!(
                "{v2} POST …/users/{{accountId}}/suspend (org access only; the Atlassian account \
                 stays active elsewhere, groups are kept, the seat is freed)"
            )),
        );
        c.set(
            Capability::Enable,
            Support::via(format!("{v2} POST …/users/{{accountId}}/restore")),
        );
        c.set(
            Capability::AddToGroup,
            Support::via(format!("{v2} POST …/groups/{{groupId}}/memberships")),
        );
        c.set(
            Capability::RemoveFromGroup,
            Support::via(format!(
                "{v2} DELETE …/groups/{{groupId}}/memberships/{{accountId}}"
            )),
        );
        c.set(
            Capability::Rename,
            Support::not("Atlassian account names are managed by the account holder or the IdP"),
        );
        c.set(
            Capability::ChangeDirectory,
            Support::not(
                "Atlassian Cloud has no API to move a user between identity directories; the \
                 IdP's provisioning decides the directory",
            ),
        );
        c.set(
            Capability::Delete,
            Support::via(format!(
                "{v2} DELETE …/directories/{{directoryId}}/users/{{accountId}} (removes the user \
                 from the directory; the Atlassian account itself remains)"
            )),
        );
        c.set(
            Capability::CreateAccount,
            Support::not(
                "Atlassian accounts are created by invitation or by IdP provisioning, not by the \
                 admin API; provision them through your IdP",
            ),
        );
        c.set(
            Capability::UpdateProfile,
            Support::not(
                "email and full name belong to the Atlassian account, not to the organization's \
                 directory; change them in your IdP or by the account holder",
            ),
        );
        c
    }

    fn org_path(&self, rest: &str) -> Result<Url, TargetError> {
        self.client.endpoint(&format!(
            "admin/v2/orgs/{}/{}",
            enc(&self.org_id),
            rest.trim_start_matches('/')
        ))
    }

    fn dir_path(&self, directory: &str, rest: &str) -> Result<Url, TargetError> {
        self.org_path(&format!(
            "directories/{}/{}",
            enc(directory),
            rest.trim_start_matches('/')
        ))
    }

    /// Refines the generic error for a failed answer with the admin API's codes.
    fn error(&self, resp: &Response, subject: &str) -> TargetError {
        let code = atlassian_error_code(&resp.body);
        let detail = resp.detail();
        match (resp.status.as_u16(), code.as_deref()) {
            (_, Some("ADMIN-UAM-409-3")) | (402, _) => TargetError::NoSeats { detail },
            (403, Some("ADMIN-403-5" | "ADMIN-UAM-403-1")) => TargetError::ManagedByIdp { detail },
            (404, Some("ADMIN-404-8")) => TargetError::NotFound {
                what: format!("user {subject} ({detail})"),
            },
            (404, Some("ADMIN-404-10")) => TargetError::NotFound {
                what: format!("group {subject} ({detail})"),
            },
            (404, Some("ADMIN-404-2")) => TargetError::Config(format!(
                "target `{}`: organization `{}` is unknown to this API key; check `org_id` \
                 ({detail})",
                self.name, self.org_id
            )),
            (400, Some("ADMIN-400-1")) => TargetError::Rejected {
                status: 400,
                detail: format!(
                    "the listing cursor is invalid or expired; start the listing again ({detail})"
                ),
            },
            (400, Some("ADMIN-UAM-400-2")) => TargetError::Conflict { detail },
            _ => resp.error(),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
        subject: &str,
    ) -> Result<T, TargetError> {
        let resp = self.client.send(method, url, body.map(Body::Json)).await?;
        if !resp.is_success() {
            return Err(self.error(&resp, subject));
        }
        resp.json()
    }

    /// Sends a write; any 2xx is success (bodies vary between 200 and 204).
    async fn write(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
        subject: &str,
    ) -> Result<(), TargetError> {
        let resp = self.client.send(method, url, body.map(Body::Json)).await?;
        if resp.is_success() {
            Ok(())
        } else {
            Err(self.error(&resp, subject))
        }
    }

    /// The directories to work in: the configured one, or every directory of the org.
    async fn directories(&self) -> Result<Vec<Directory>, TargetError> {
        if let Some(d) = self.lock_dirs().clone() {
            return Ok(d);
        }
        let url = self.org_path("directories")?;
        let page: WirePage<WireDirectory> = self.call(Method::GET, url, None, "").await?;
        let all: Vec<Directory> = page
            .data
            .into_iter()
            .map(|d| Directory {
                name: d.name.unwrap_or_else(|| d.directory_id.clone()),
                id: d.directory_id,
            })
            .collect();
        let chosen = match &self.directory {
            None => all,
            Some(id) => {
                let found: Vec<Directory> = all.into_iter().filter(|d| &d.id == id).collect();
                if found.is_empty() {
                    return Err(TargetError::Config(format!(
                        "target `{}`: directory `{id}` is not a directory of organization `{}`",
                        self.name, self.org_id
                    )));
                }
                found
            }
        };
        *self.lock_dirs() = Some(chosen.clone());
        Ok(chosen)
    }

    fn lock_dirs(&self) -> std::sync::MutexGuard<'_, Option<Vec<Directory>>> {
        self.directories.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Splits our cursor `"<directory index>|<server cursor>"`.
    fn split_cursor(cursor: Option<&str>) -> Result<(usize, Option<String>), TargetError> {
        let Some(c) = cursor else {
            return Ok((0, None));
        };
        let (idx, inner) = c.split_once('|').ok_or_else(|| {
            TargetError::Config(format!("`{c}` is not a cursor this connector handed out"))
        })?;
        let idx = idx.parse::<usize>().map_err(|_| {
            TargetError::Config(format!("`{c}` is not a cursor this connector handed out"))
        })?;
        Ok((idx, (!inner.is_empty()).then(|| inner.to_owned())))
    }

    /// Notes the server's next cursor, failing when it was seen before in this listing.
    fn check_cursor(
        &self,
        listing: Listing,
        sent: Option<&str>,
        next: &str,
    ) -> Result<(), TargetError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let set = &mut seen[listing as usize];
        if sent == Some(next) || !set.insert(next.to_owned()) {
            return Err(TargetError::UnexpectedBody {
                status: 200,
                detail: "the target returned a page cursor it had returned before; the listing \
                         would loop, so it was stopped"
                    .into(),
            });
        }
        Ok(())
    }

    fn reset_cursors(&self, listing: Listing) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())[listing as usize].clear();
    }

    /// One page of a search in one directory of a directory-by-directory listing.
    async fn search_page<T: DeserializeOwned>(
        &self,
        listing: Listing,
        what: &str,
        cursor: Option<&str>,
        body: Value,
        dirs: &[Directory],
    ) -> Result<(Vec<T>, usize, Option<String>), TargetError> {
        let (idx, inner) = Self::split_cursor(cursor)?;
        if cursor.is_none() {
            self.reset_cursors(listing);
        }
        let Some(dir) = dirs.get(idx) else {
            return Ok((Vec::new(), idx, None));
        };
        let mut body = body;
        if let (Some(c), Some(obj)) = (inner.as_deref(), body.as_object_mut()) {
            obj.insert("cursor".into(), json!(c));
        }
        let url = self.dir_path(&dir.id, what)?;
        let page: WirePage<T> = self.call(Method::POST, url, Some(body), "").await?;
        let server_next = page
            .links
            .and_then(|l| l.next)
            .map(|n| cursor_of(&n))
            .filter(|n| !n.is_empty());
        let next = match server_next {
            Some(n) => {
                self.check_cursor(listing, inner.as_deref(), &n)?;
                Some(format!("{idx}|{n}"))
            }
            None if idx + 1 < dirs.len() => Some(format!("{}|", idx + 1)),
            None => None,
        };
        Ok((page.data, idx, next))
    }

    fn account(&self, u: WireUser, directory: Option<&str>) -> RemoteAccount {
        let confluence = u.product_access.as_ref().map(|products| {
            products
                .iter()
                .filter(|p| p.key.as_deref() == Some("confluence"))
                .find(|p| {
                    self.site_id
                        .as_deref()
                        .is_none_or(|site| p.id.as_deref().is_none_or(|id| id == site))
                })
                .map(|p| p.last_active_timestamp.as_deref().and_then(parse_time))
        });
        let active = u.account_status.as_deref().is_none_or(|s| s == "active")
            && !u.suspended()
            && u.status.as_deref().is_none_or(|s| s == "active");
        let raw_status = u
            .status
            .clone()
            .or_else(|| u.account_status.clone())
            .unwrap_or_else(|| "unknown".into());
        RemoteAccount {
            username: u.email.clone().unwrap_or_else(|| u.account_id.clone()),
            email: u.email.clone(),
            display_name: u.name.clone(),
            active,
            raw_status,
            directory: directory.map(str::to_owned),
            last_login_at: confluence.flatten().flatten(),
            created_at: u.added_to_org.as_deref().and_then(parse_time),
            groups: u
                .groups
                .as_ref()
                .map(|gs| gs.iter().filter_map(|g| g.name.clone()).collect()),
            licensed: confluence.map(|c| c.is_some()),
            read_only: u.synced().then(|| SYNCED_ACCOUNT.to_owned()),
            key: u.account_id,
        }
    }

    fn group(g: WireGroup) -> RemoteGroup {
        RemoteGroup {
            read_only: g.synced().then(|| SYNCED_GROUP.to_owned()),
            name: g.name.clone().unwrap_or_else(|| g.id.clone()),
            directory: g.directory_id,
            id: Some(g.id),
        }
    }

    /// The user and the directory holding it, or `None`.
    async fn lookup(
        &self,
        account: &AccountRef,
    ) -> Result<Option<(String, WireUser)>, TargetError> {
        for dir in self.directories().await? {
            let url = self.dir_path(&dir.id, "users/search")?;
            let body = json!({
                "accountIds": [account.key],
                "expand": ["productAccess", "groups"],
                "limit": 1,
            });
            let page: WirePage<WireUser> = self
                .call(Method::POST, url, Some(body), &account.key)
                .await?;
            if let Some(u) = page.data.into_iter().find(|u| u.account_id == account.key) {
                return Ok(Some((dir.id, u)));
            }
        }
        Ok(None)
    }

    /// The user for a write, which must exist and not be synced from an IdP.
    async fn writable(&self, account: &AccountRef) -> Result<(String, WireUser), TargetError> {
        let (dir, user) = self
            .lookup(account)
            .await?
            .ok_or_else(|| TargetError::NotFound {
                what: format!("user {} ({})", account.username, account.key),
            })?;
        if user.synced() {
            return Err(TargetError::ManagedByIdp {
                detail: format!(
                    "{} is provisioned by an identity provider",
                    account.username
                ),
            });
        }
        Ok((dir, user))
    }

    /// A group by id or name in `directory` (or in any directory).
    async fn find_group(
        &self,
        group: &GroupRef,
        directory: Option<&str>,
    ) -> Result<WireGroup, TargetError> {
        let dirs: Vec<String> = match directory {
            Some(d) => vec![d.to_owned()],
            None => self
                .directories()
                .await?
                .into_iter()
                .map(|d| d.id)
                .collect(),
        };
        let filter = match &group.id {
            Some(id) => json!({"groupIds": [id], "limit": 10}),
            None => json!({"groupNames": [group.name], "limit": 10}),
        };
        for dir in dirs {
            let url = self.dir_path(&dir, "groups/search")?;
            let page: WirePage<WireGroup> = self
                .call(Method::POST, url, Some(filter.clone()), &group.name)
                .await?;
            let hit = page.data.into_iter().find(|g| match &group.id {
                Some(id) => &g.id == id,
                None => g.name.as_deref() == Some(group.name.as_str()),
            });
            if let Some(mut g) = hit {
                g.directory_id.get_or_insert(dir);
                return Ok(g);
            }
        }
        Err(TargetError::NotFound {
            what: format!("group {}", group.name),
        })
    }

    async fn last_active_v1(&self, account_id: &str) -> Result<Option<DateTime<Utc>>, TargetError> {
        let url = self.client.endpoint(&format!(
            "admin/v1/orgs/{}/directory/users/{}/last-active-dates",
            enc(&self.org_id),
            enc(account_id)
        ))?;
        let page: WireLastActive = self.call(Method::GET, url, None, account_id).await?;
        Ok(page
            .data
            .product_access
            .iter()
            .filter(|p| p.key.as_deref() == Some("confluence"))
            .filter(|p| {
                self.site_id
                    .as_deref()
                    .is_none_or(|site| p.id.as_deref().is_none_or(|id| id == site))
            })
            .filter_map(|p| p.last_active.as_deref().and_then(parse_time))
            .max())
    }

    async fn membership(
        &self,
        account: &AccountRef,
        group: &GroupRef,
        add: bool,
    ) -> Result<WriteOutcome, TargetError> {
        let cap = if add {
            Capability::AddToGroup
        } else {
            Capability::RemoveFromGroup
        };
        Self::capabilities().require(cap)?;
        let (dir, user) = self.writable(account).await?;
        let g = self.find_group(group, Some(&dir)).await?;
        if g.synced() {
            return Err(TargetError::ManagedByIdp {
                detail: format!("group {} is synced from an identity provider", group.name),
            });
        }
        let member = user
            .groups
            .as_ref()
            .map(|gs| gs.iter().any(|m| m.id.as_deref() == Some(g.id.as_str())));
        let member = match member {
            Some(m) => m,
            None => self
                .account_groups(account)
                .await?
                .iter()
                .any(|rg| rg.id.as_deref() == Some(g.id.as_str())),
        };
        if member == add {
            return Ok(WriteOutcome::AlreadyDone);
        }
        tracing::info!(
            target.name = %self.name,
            account = %account.key,
            group = %g.id,
            add,
            "changing a group membership in Atlassian Cloud"
        );
        if add {
            let url = self.dir_path(&dir, &format!("groups/{}/memberships", enc(&g.id)))?;
            self.write(
                Method::POST,
                url,
                Some(json!({"accountId": account.key})),
                &account.key,
            )
            .await?;
        } else {
            let url = self.dir_path(
                &dir,
                &format!("groups/{}/memberships/{}", enc(&g.id), enc(&account.key)),
            )?;
            self.write(Method::DELETE, url, None, &account.key).await?;
        }
        Ok(WriteOutcome::Changed)
    }
}

/// A path segment, percent-encoded.
fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The cursor in a `links.next`: a bare token, or the `cursor` parameter of a URL.
fn cursor_of(next: &str) -> String {
    let query = if let Ok(url) = Url::parse(next) {
        url.query().map(str::to_owned)
    } else if next.starts_with('/') || next.contains("cursor=") {
        next.split_once('?').map(|(_, q)| q.to_owned())
    } else {
        None
    };
    match query {
        Some(q) => url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "cursor")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default(),
        None => next.to_owned(),
    }
}

impl Target for AtlassianCloud {
    fn kind(&self) -> TargetKind {
        TargetKind::ConfluenceCloud
    }

    async fn probe(&self) -> Result<Probe, TargetError> {
        if let Some(p) = self.probe.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(p);
        }
        *self.lock_dirs() = None;
        let dirs = self.directories().await?;
        let mut notes = vec![format!(
            "directories: {}",
            dirs.iter()
                .map(|d| format!("{} ({})", d.name, d.id))
                .collect::<Vec<_>>()
                .join(", ")
        )];
        notes.push(
            "users and groups synced from an identity provider are read-only here; idbridge \
             changes them through the IdP"
                .into(),
        );
        if self.site_id.is_none() {
            notes.push(
                "no `site_id` set: Confluence activity of every site in the org is used".into(),
            );
        }
        let probe = Probe {
            info: InstanceInfo {
                product: "Atlassian Cloud organization".into(),
                version: Some("Organizations API v2".into()),
                principal: Some(format!("organization API key for org {}", self.org_id)),
                last_login: LastLoginSource::ProductActivity,
                notes,
            },
            capabilities: Self::capabilities(),
        };
        tracing::info!(target.name = %self.name, directories = dirs.len(), "probed Atlassian Cloud");
        *self.probe.lock().unwrap_or_else(|p| p.into_inner()) = Some(probe.clone());
        Ok(probe)
    }

    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<RemoteAccount>, TargetError> {
        let dirs = self.directories().await?;
        let body = json!({"limit": self.page_size, "expand": ["productAccess", "groups"]});
        let (users, idx, next) = self
            .search_page::<WireUser>(Listing::Accounts, "users/search", cursor, body, &dirs)
            .await?;
        let dir = dirs.get(idx).map(|d| d.id.as_str());
        Ok(Page {
            partial: None,
            items: users.into_iter().map(|u| self.account(u, dir)).collect(),
            next,
            total: None,
        })
    }

    async fn get_account(
        &self,
        account: &AccountRef,
    ) -> Result<Option<RemoteAccount>, TargetError> {
        let Some((dir, user)) = self.lookup(account).await? else {
            return Ok(None);
        };
        let no_products = user.product_access.is_none();
        let mut remote = self.account(user, Some(&dir));
        if no_products {
            remote.last_login_at = self.last_active_v1(&account.key).await?;
        }
        Ok(Some(remote))
    }

    async fn list_groups(&self, cursor: Option<&str>) -> Result<Page<RemoteGroup>, TargetError> {
        let dirs = self.directories().await?;
        let body = json!({"limit": self.page_size});
        let (groups, _, next) = self
            .search_page::<WireGroup>(Listing::Groups, "groups/search", cursor, body, &dirs)
            .await?;
        Ok(Page {
            partial: None,
            items: groups.into_iter().map(Self::group).collect(),
            next,
            total: None,
        })
    }

    async fn group_members(
        &self,
        group: &GroupRef,
        cursor: Option<&str>,
    ) -> Result<Page<Member>, TargetError> {
        let g = self.find_group(group, None).await?;
        let dir = Directory {
            id: g.directory_id.clone().unwrap_or_else(|| "-".into()),
            name: String::new(),
        };
        let body = json!({"limit": self.page_size, "groupIds": [g.id]});
        let (users, _, next) = self
            .search_page::<WireUser>(Listing::Members, "users/search", cursor, body, &[dir])
            .await?;
        Ok(Page {
            partial: None,
            items: users
                .into_iter()
                .map(|u| Member::Account {
                    username: u.email.unwrap_or_else(|| u.account_id.clone()),
                    key: u.account_id,
                })
                .collect(),
            next,
            total: None,
        })
    }

    async fn account_groups(&self, account: &AccountRef) -> Result<Vec<RemoteGroup>, TargetError> {
        let Some((dir, _)) = self.lookup(account).await? else {
            return Err(TargetError::NotFound {
                what: format!("user {} ({})", account.username, account.key),
            });
        };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = HashSet::new();
        loop {
            let mut body = json!({"accountIds": [account.key], "limit": MAX_PAGE});
            if let (Some(c), Some(obj)) = (&cursor, body.as_object_mut()) {
                obj.insert("cursor".into(), json!(c));
            }
            let url = self.dir_path(&dir, "groups/search")?;
            let page: WirePage<WireGroup> = self
                .call(Method::POST, url, Some(body), &account.key)
                .await?;
            out.extend(page.data.into_iter().map(Self::group));
            match page.links.and_then(|l| l.next).map(|n| cursor_of(&n)) {
                Some(n) if !n.is_empty() => {
                    if !seen.insert(n.clone()) {
                        return Err(TargetError::UnexpectedBody {
                            status: 200,
                            detail: "the target repeated a page cursor while listing groups".into(),
                        });
                    }
                    cursor = Some(n);
                }
                _ => return Ok(out),
            }
        }
    }

    async fn licence_groups(&self) -> Result<Vec<String>, TargetError> {
        // The admin API does not say which groups grant Confluence; licences per user come
        // from product access, and the configured groups name the granting ones.
        Ok(self.licence_groups.clone())
    }

    async fn licence_counters(&self) -> Result<(Option<u64>, Option<u64>), TargetError> {
        Ok((self.licence_tier, None))
    }

    async fn disable(&self, account: &AccountRef) -> Result<WriteOutcome, TargetError> {
        Self::capabilities().require(Capability::Disable)?;
        let (dir, user) = self.writable(account).await?;
        if user.suspended() {
            return Ok(WriteOutcome::AlreadyDone);
        }
        tracing::info!(target.name = %self.name, account = %account.key, directory = %dir, "suspending a user's access");
        let url = self.dir_path(&dir, &format!("users/{}/suspend", enc(&account.key)))?;
        self.write(Method::POST, url, None, &account.key).await?;
        Ok(WriteOutcome::Changed)
    }

    async fn enable(&self, account: &AccountRef) -> Result<WriteOutcome, TargetError> {
        Self::capabilities().require(Capability::Enable)?;
        let (dir, user) = self.writable(account).await?;
        if user
            .account_status
            .as_deref()
            .is_some_and(|s| s != "active")
        {
            return Err(TargetError::Conflict {
                detail: format!(
                    "the Atlassian account of {} is {} account-wide; restoring org access does \
                     not reactivate it (an org admin can, in admin.atlassian.com)",
                    account.username,
                    user.account_status.as_deref().unwrap_or("inactive")
                ),
            });
        }
        if !user.suspended() {
            return Ok(WriteOutcome::AlreadyDone);
        }
        tracing::info!(target.name = %self.name, account = %account.key, directory = %dir, "restoring a user's access");
        let url = self.dir_path(&dir, &format!("users/{}/restore", enc(&account.key)))?;
        self.write(Method::POST, url, None, &account.key).await?;
        Ok(WriteOutcome::Changed)
    }

    async fn add_to_group(
        &self,
        account: &AccountRef,
        group: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        self.membership(account, group, true).await
    }

    async fn remove_from_group(
        &self,
        account: &AccountRef,
        group: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        self.membership(account, group, false).await
    }

    async fn rename(&self, _a: &AccountRef, _n: &str) -> Result<WriteOutcome, TargetError> {
        Self::capabilities().require(Capability::Rename)?;
        Err(TargetError::Unsupported {
            capability: Capability::Rename,
            why: "not offered by this connector".into(),
        })
    }

    async fn change_directory(
        &self,
        _a: &AccountRef,
        _d: &str,
    ) -> Result<WriteOutcome, TargetError> {
        Self::capabilities().require(Capability::ChangeDirectory)?;
        Err(TargetError::Unsupported {
            capability: Capability::ChangeDirectory,
            why: "not offered by this connector".into(),
        })
    }

    async fn delete(&self, account: &AccountRef) -> Result<WriteOutcome, TargetError> {
        Self::capabilities().require(Capability::Delete)?;
        let Some((dir, user)) = self.lookup(account).await? else {
            return Ok(WriteOutcome::AlreadyDone);
        };
        if user.synced() {
            return Err(TargetError::ManagedByIdp {
                detail: format!(
                    "{} is provisioned by an identity provider",
                    account.username
                ),
            });
        }
        tracing::info!(target.name = %self.name, account = %account.key, directory = %dir, "removing a user from the directory");
        let url = self.dir_path(&dir, &format!("users/{}", enc(&account.key)))?;
        match self.write(Method::DELETE, url, None, &account.key).await {
            Ok(()) => Ok(WriteOutcome::Changed),
            Err(TargetError::NotFound { .. }) => Ok(WriteOutcome::AlreadyDone),
            Err(e) => Err(e),
        }
    }

    async fn create_account(&self, _n: &NewRemoteAccount) -> Result<RemoteAccount, TargetError> {
        Self::capabilities().require(Capability::CreateAccount)?;
        Err(TargetError::Unsupported {
            capability: Capability::CreateAccount,
            why: "not offered by this connector".into(),
        })
    }

    async fn update_profile(
        &self,
        _a: &AccountRef,
        _e: &str,
        _d: &str,
    ) -> Result<WriteOutcome, TargetError> {
        Self::capabilities().require(Capability::UpdateProfile)?;
        Err(TargetError::Unsupported {
            capability: Capability::UpdateProfile,
            why: "not offered by this connector".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_give_their_cursor_whether_bare_or_urls() {
        assert_eq!(cursor_of("abc123"), "abc123");
        assert_eq!(
            cursor_of("https://api.atlassian.com/admin/v1/orgs/o/users?cursor=xyz"),
            "xyz"
        );
        assert_eq!(cursor_of("/admin/v1/orgs/o/users?cursor=a%2Bb"), "a+b");
    }

    #[test]
    fn dates_and_timestamps_both_parse() {
        assert!(parse_time("2026-10-01T10:00:00.000Z").is_some());
        assert!(parse_time("2026-10-01").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn connector_cursors_must_be_ours() {
        assert_eq!(
            AtlassianCloud::split_cursor(Some("1|tok")).unwrap(),
            (1, Some("tok".into()))
        );
        assert_eq!(AtlassianCloud::split_cursor(Some("2|")).unwrap(), (2, None));
        assert!(AtlassianCloud::split_cursor(Some("garbage")).is_err());
    }
}
