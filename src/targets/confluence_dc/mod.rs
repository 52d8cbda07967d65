//! Confluence Data Center (and Server) 7.x to 10.x: REST per the version matrix, the legacy
//! Remote API where REST lacks a call, and Crowd for renames in Crowd-backed directories.
//!
//! [`ConfluenceDc::probe`] checks the credentials (`/rest/api/user/current` must answer a
//! `known` user), reads the version from `/rest/applinks/1.0/manifest` (else the configured
//! `version`), finds out whether the Remote API and Crowd are usable, and builds the
//! capability table ([`version::capability_table`]). The probe is cached; every write checks
//! its capability first and is idempotent by state (it reads the account before writing).
//!
//! Submodules: [`version`] (versions, capability table), [`rest`] (wire shapes, statuses,
//! cursors, errors), [`remote_api`] (XML-RPC / JSON-RPC), [`crowd`] (Crowd rename).

pub mod crowd;
pub mod remote_api;
pub mod rest;
pub mod version;

#[cfg(test)]
mod wire_tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use super::http::{Body, Credentials, HttpSettings, RemoteClient};
use super::{
    AccountRef, Capability, GroupRef, InstanceInfo, Member, NewRemoteAccount, Page, Probe,
    RemoteAccount, RemoteGroup, Target, TargetError, Write, WriteOutcome,
};
use crate::config::{RemoteApiMode, TargetConfig};
use crate::domain::TargetKind;
use crowd::CrowdClient;
use remote_api::{RpcClient, RpcValue};
use rest::{Cursor, DcGroup, DcPage, DcUser, Pos};
use version::{Crowd, Features, RemoteApi, Transport, V8_2, V8_4, V9_3, V10_2, Version};

/// Most pages one internal walk (memberships, last logins) reads before giving up.
const MAX_WALK_PAGES: usize = 100_000;

/// What the licensed-users listing (`/rest/api/admin/users/list/active`, 9.3+) says: the
/// keys of the users counting toward the licence, and (10.2+) their last logins.
#[derive(Debug, Default)]
struct ActiveUsers {
    licensed: HashSet<String>,
    /// userKey → last login.
    last_logins: HashMap<String, DateTime<Utc>>,
    /// The instance has no such listing; nothing is known.
    unavailable: bool,
}

/// What a probe found, kept for the writes.
#[derive(Debug)]
struct Detected {
    probe: Probe,
    version: Version,
    remote: RemoteApi,
    crowd: Crowd,
}

impl Detected {
    fn transport(&self) -> Option<Transport> {
        match self.remote {
            RemoteApi::Enabled(t) => Some(t),
            _ => None,
        }
    }
}

/// A status or membership change as both APIs spell it: the REST call (8.2 on) and the
/// Remote API method with its parameters (before).
struct Change<'a> {
    cap: Capability,
    action: &'static str,
    method: Method,
    segments: &'a [&'a str],
    what: String,
    rpc_method: &'static str,
    rpc_params: Vec<RpcValue>,
}

/// A Confluence Data Center instance.
pub struct ConfluenceDc {
    name: String,
    http: RemoteClient,
    rpc: Option<RpcClient>,
    crowd: Option<CrowdClient>,
    remote_mode: RemoteApiMode,
    configured_version: Option<(String, Version)>,
    licence_groups: Vec<String>,
    last_login_database: bool,
    page_size: u32,
    delete_timeout: Duration,
    poll_interval: Duration,
    state: Mutex<Option<Arc<Detected>>>,
    /// The licensed users and their last logins, from `/rest/api/admin/users/list/active`
    /// (9.3+, `expand=lastLogin` on 10.2+); rebuilt when a listing starts over.
    active_users: Mutex<Option<Arc<ActiveUsers>>>,
    /// Usernames from the Remote API `getActiveUsers`, for listings before 8.4.
    remote_users: Mutex<Option<Arc<Vec<String>>>>,
}

impl std::fmt::Debug for ConfluenceDc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfluenceDc")
            .field("name", &self.name)
            .field("http", &self.http)
            .field("remote_mode", &self.remote_mode)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn query_u64(url: &Url, key: &str) -> Option<u64> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// The last `n` segments of a URL path.
fn path_tail(path: &str, n: usize) -> Vec<&str> {
    let segs: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(n).collect();
    segs
}

/// Adds each `(key, value)` the URL does not already carry.
fn ensure_params(url: &mut Url, params: &[(&str, String)]) {
    let missing: Vec<(&str, &String)> = params
        .iter()
        .filter(|(k, _)| !url.query_pairs().any(|(q, _)| q == *k))
        .map(|(k, v)| (*k, v))
        .collect();
    if !missing.is_empty() {
        url.query_pairs_mut().extend_pairs(missing);
    }
}

impl ConfluenceDc {
    /// A connector for the target `name` as configured.
    pub fn new(name: &str, cfg: &TargetConfig) -> Result<Self, TargetError> {
        let credentials = Credentials::from_config(name, cfg)?;
        let settings = HttpSettings::from_config(cfg);
        let http = RemoteClient::new(&cfg.base_url, credentials.clone(), settings.clone())
            .map_err(|e| TargetError::Config(format!("targets.{name}.base_url: {e}")))?;
        let login = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            _ => None,
        };
        let rpc = match cfg.remote_api {
            RemoteApiMode::Off => None,
            RemoteApiMode::Auto | RemoteApiMode::On => {
                let rpc_credentials = match &login {
                    Some((user, password)) => Credentials::Basic {
                        user: user.clone(),
                        password: password.clone(),
                    },
                    None => credentials,
                };
                let client = RemoteClient::new(&cfg.base_url, rpc_credentials, settings.clone())?;
                Some(RpcClient::new(client, login))
            }
        };
        let crowd = cfg
            .crowd
            .as_ref()
            .map(|c| CrowdClient::new(c, settings.clone()))
            .transpose()
            .map_err(|e| TargetError::Config(format!("targets.{name}.crowd: {e}")))?;
        let configured_version = match &cfg.version {
            None => None,
            Some(text) => Some((
                text.clone(),
                Version::parse(text).ok_or_else(|| {
                    TargetError::Config(format!(
                        "targets.{name}.version: `{text}` is not a version such as `8.5.4`"
                    ))
                })?,
            )),
        };
        Ok(Self {
            name: name.to_owned(),
            http,
            rpc,
            crowd,
            remote_mode: cfg.remote_api,
            configured_version,
            licence_groups: cfg.licence_groups.clone(),
            last_login_database: cfg.last_login_database.is_some(),
            page_size: cfg.page_size.clamp(1, 1000),
            delete_timeout: Duration::from_secs(cfg.delete_timeout_secs),
            poll_interval: Duration::from_millis(500),
            state: Mutex::new(None),
            active_users: Mutex::new(None),
            remote_users: Mutex::new(None),
        })
    }

    /// Sets the first wait between polls of an asynchronous deletion (it doubles up to 5 s).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    // --------------------------------------------------------------------------------------
    // Probe

    async fn run_probe(&self) -> Result<Detected, TargetError> {
        let url = self.url(&["rest", "api", "user", "current"], &[])?;
        let resp = self.http.send(Method::GET, url, None).await?;
        if !resp.is_success() {
            return Err(rest::status_error(
                &resp,
                "checking credentials (GET /rest/api/user/current)",
            ));
        }
        let me: DcUser = resp.json()?;
        let kind = me.kind.as_deref().unwrap_or("");
        if !kind.eq_ignore_ascii_case("known") {
            return Err(TargetError::Unauthorized {
                detail: format!(
                    "GET /rest/api/user/current answered a user of type `{}`, not `known`: \
                     Confluence treated idbridge as anonymous, so the token or password was not \
                     accepted (anonymous access hides the refusal)",
                    if kind.is_empty() { "(none)" } else { kind }
                ),
            });
        }
        let principal = me.username.clone().unwrap_or_default();

        let (version, version_text, mut notes) = self.detect_version().await?;

        let remote = match (&self.rpc, self.remote_mode) {
            (None, _) | (_, RemoteApiMode::Off) => RemoteApi::Off,
            (Some(rpc), RemoteApiMode::Auto) => rpc.detect(&principal).await,
            (Some(rpc), RemoteApiMode::On) => match rpc.detect(&principal).await {
                RemoteApi::Enabled(t) => RemoteApi::Enabled(t),
                other => {
                    let why = match other {
                        RemoteApi::Unavailable(w) => w,
                        _ => String::new(),
                    };
                    notes.push(format!(
                        "remote_api = \"on\", but the probe could not use it ({why}); calls will \
                         be tried through JSON-RPC anyway"
                    ));
                    RemoteApi::Enabled(Transport::JsonRpc)
                }
            },
        };
        let crowd = match &self.crowd {
            None => Crowd::NotConfigured,
            Some(c) => c.check(&principal).await,
        };
        let table = version::capability_table(&Features {
            version,
            remote_api: remote.clone(),
            crowd: crowd.clone(),
            last_login_database: self.last_login_database,
        });
        notes.extend(table.notes);
        tracing::info!(
            target_name = %self.name,
            version = %version,
            principal = %principal,
            remote_api = ?remote,
            "probed Confluence Data Center"
        );
        Ok(Detected {
            probe: Probe {
                info: InstanceInfo {
                    product: "Confluence Data Center".into(),
                    version: Some(version_text),
                    principal: (!principal.is_empty()).then_some(principal),
                    last_login: table.last_login,
                    notes,
                },
                capabilities: table.capabilities,
            },
            version,
            remote,
            crowd,
        })
    }

    /// The version from the applinks manifest, else the configured one.
    async fn detect_version(&self) -> Result<(Version, String, Vec<String>), TargetError> {
        let mut notes = Vec::new();
        let manifest = self.read_manifest().await;
        match (manifest, &self.configured_version) {
            (Ok((v, text)), configured) => {
                if let Some((ctext, cv)) = configured
                    && *cv != v
                {
                    notes.push(format!(
                        "configured version {ctext} differs from the {text} the instance reports; \
                         using {text}"
                    ));
                }
                notes.push(format!("version {text} from /rest/applinks/1.0/manifest"));
                Ok((v, text, notes))
            }
            (Err(TargetError::Config(why)), _) => Err(TargetError::Config(why)),
            (Err(e), Some((ctext, cv))) => {
                notes.push(format!(
                    "version {ctext} from configuration (the instance did not say: {e})"
                ));
                Ok((*cv, ctext.clone(), notes))
            }
            (Err(e), None) => Err(TargetError::Config(format!(
                "target `{}`: cannot tell the Confluence version (GET /rest/applinks/1.0/manifest: \
                 {e}); set `version` in targets.{}",
                self.name, self.name
            ))),
        }
    }

    async fn read_manifest(&self) -> Result<(Version, String), TargetError> {
        let url = self.url(&["rest", "applinks", "1.0", "manifest"], &[])?;
        let resp = self.http.send(Method::GET, url, None).await?;
        if !resp.is_success() {
            return Err(rest::status_error(&resp, "GET /rest/applinks/1.0/manifest"));
        }
        let m: rest::Manifest = resp.json()?;
        if let Some(t) = m.type_id.as_deref()
            && !t.eq_ignore_ascii_case("confluence")
        {
            return Err(TargetError::Config(format!(
                "target `{}`: the base URL answers as `{t}`, not Confluence",
                self.name
            )));
        }
        let text = m.version.unwrap_or_default();
        let v = Version::parse(&text).ok_or_else(|| TargetError::UnexpectedBody {
            status: resp.status.as_u16(),
            detail: format!("the manifest's version `{text}` is not a version"),
        })?;
        Ok((v, text))
    }

    async fn detected(&self) -> Result<Arc<Detected>, TargetError> {
        if let Some(d) = lock(&self.state).clone() {
            return Ok(d);
        }
        let d = Arc::new(self.run_probe().await?);
        *lock(&self.state) = Some(d.clone());
        Ok(d)
    }

    async fn require(&self, cap: Capability) -> Result<Arc<Detected>, TargetError> {
        let d = self.detected().await?;
        d.probe.capabilities.require(cap)?;
        Ok(d)
    }

    // --------------------------------------------------------------------------------------
    // Plumbing

    /// `segments` under the base URL, each percent-encoded, plus `query`.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, TargetError> {
        let mut url = self.http.base().clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| {
                TargetError::Config(format!(
                    "target `{}`: base URL cannot take a path",
                    self.name
                ))
            })?;
            path.pop_if_empty();
            for s in segments {
                if s.is_empty() || *s == "." || *s == ".." {
                    return Err(TargetError::Rejected {
                        status: 400,
                        detail: format!("`{s}` cannot be used as a user or group name in a URL"),
                    });
                }
                path.push(s);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    /// The URL of the page at `pos` of a listing at `segments`, with `extra` parameters kept
    /// even on the instance's own next links.
    fn page_url(
        &self,
        segments: &[&str],
        pos: &Pos,
        extra: &[(&str, String)],
    ) -> Result<(Url, u64, u64), TargetError> {
        let limit = u64::from(self.page_size);
        match pos {
            Pos::Start(start) => {
                let mut q = vec![("start", start.to_string()), ("limit", limit.to_string())];
                q.extend(extra.iter().cloned());
                Ok((self.url(segments, &q)?, *start, limit))
            }
            Pos::Url(link) => {
                let mut url = self.http.resolve_link(link, None)?;
                let mut keep = vec![("limit", limit.to_string())];
                keep.extend(extra.iter().cloned());
                ensure_params(&mut url, &keep);
                let start = query_u64(&url, "start").unwrap_or(0);
                let limit = query_u64(&url, "limit").unwrap_or(limit);
                Ok((url, start, limit))
            }
        }
    }

    /// Fetches one page of a DC listing and works out the next position.
    async fn fetch_page<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        pos: &Pos,
        extra: &[(&str, String)],
        what: &str,
    ) -> Result<(DcPage<T>, Option<Pos>), TargetError> {
        let (url, start, limit) = self.page_url(segments, pos, extra)?;
        let resp = self.http.send(Method::GET, url, None).await?;
        if !resp.is_success() {
            return Err(rest::status_error(&resp, what));
        }
        let page: DcPage<T> = resp.json()?;
        // The instance's next link is followed only when it points at the same listing.
        let expected = self.url(segments, &[])?;
        let next = rest::next_pos(
            start,
            limit,
            page.start,
            page.size,
            page.results.len(),
            page.links.as_ref(),
            // Relative links are taken against idbridge's own base URL, not the instance's
            // `_links.base` (its configured base URL may be a host idbridge cannot reach).
            |link, _base| self.http.resolve_link(link, None),
        )?;
        let next = match next {
            Some(Pos::Url(u))
                if !Url::parse(&u)
                    .map(|p| path_tail(p.path(), 2) == path_tail(expected.path(), 2))
                    .unwrap_or(false) =>
            {
                let following = page
                    .start
                    .unwrap_or(start)
                    .saturating_add(page.results.len() as u64);
                tracing::debug!(
                    link.path = %u,
                    following,
                    "next-page link points at another path; using the offset"
                );
                Some(Pos::Start(following))
            }
            other => other,
        };
        Ok((page, next))
    }

    /// One DC user by key or username; `None` when the instance does not know it.
    async fn get_user(&self, by: &str, value: &str) -> Result<Option<DcUser>, TargetError> {
        let url = self.url(
            &["rest", "api", "user"],
            &[(by, value.to_owned()), ("expand", "status".into())],
        )?;
        let resp = self.http.send(Method::GET, url, None).await?;
        if rest::is_plain_not_found(&resp) {
            return Ok(None);
        }
        if !resp.is_success() {
            return Err(rest::status_error(&resp, &format!("user {by} `{value}`")));
        }
        Ok(Some(resp.json()?))
    }

    async fn lookup(&self, account: &AccountRef) -> Result<Option<RemoteAccount>, TargetError> {
        let user = if !account.key.is_empty() {
            self.get_user("key", &account.key).await?
        } else if !account.username.is_empty() {
            self.get_user("username", &account.username).await?
        } else {
            return Err(TargetError::Config(
                "an account reference needs a key or a username".into(),
            ));
        };
        match user {
            None => Ok(None),
            Some(u) => rest::to_account(&u)
                .map(Some)
                .ok_or_else(|| TargetError::UnexpectedBody {
                    status: 200,
                    detail: "the user came back without userKey or username".into(),
                }),
        }
    }

    /// The account as it is now; an error when the instance does not know it.
    async fn current(&self, account: &AccountRef) -> Result<RemoteAccount, TargetError> {
        self.lookup(account)
            .await?
            .ok_or_else(|| TargetError::NotFound {
                what: format!("user `{}` (key {})", account.username, account.key),
            })
    }

    /// Every direct group of the account with `key` (`username` only names it in errors),
    /// all pages.
    async fn groups_of(&self, key: &str, username: &str) -> Result<Vec<String>, TargetError> {
        let mut out = Vec::new();
        let mut pos = Pos::Start(0);
        for _ in 0..MAX_WALK_PAGES {
            let (page, next) = self
                .fetch_page::<DcGroup>(
                    &["rest", "api", "user", "memberof"],
                    &pos,
                    &[("key", key.to_owned())],
                    &format!("groups of user `{username}`"),
                )
                .await?;
            out.extend(page.results.into_iter().filter_map(|g| g.name));
            match next {
                Some(p) => pos = p,
                None => return Ok(out),
            }
        }
        Err(TargetError::UnexpectedBody {
            status: 200,
            detail: format!("group memberships of `{username}` never end"),
        })
    }

    async fn rpc_call(
        &self,
        d: &Detected,
        method: &str,
        params: Vec<RpcValue>,
        cap: Capability,
    ) -> Result<RpcValue, TargetError> {
        let (Some(rpc), Some(t)) = (&self.rpc, d.transport()) else {
            return Err(TargetError::Unsupported {
                capability: cap,
                why: "the Remote API is not available".into(),
            });
        };
        rpc.call(t, method, params).await
    }

    /// A Remote API call that answers a boolean; `false` is a refusal.
    async fn rpc_bool(
        &self,
        d: &Detected,
        method: &str,
        params: Vec<RpcValue>,
        cap: Capability,
    ) -> Result<(), TargetError> {
        let v = self.rpc_call(d, method, params, cap).await?;
        if v.as_bool() == Some(false) {
            return Err(TargetError::Rejected {
                status: 200,
                detail: format!("Remote API {method} answered false"),
            });
        }
        Ok(())
    }

    /// The email of `username` from the Remote API `getUser`, when the Remote API is usable;
    /// `None` when it is not or the answer carries none (the caller then writes anyway).
    async fn remote_email(&self, d: &Detected, username: &str) -> Option<String> {
        d.transport()?;
        match self
            .rpc_call(
                d,
                "getUser",
                vec![RpcValue::str(username)],
                Capability::UpdateProfile,
            )
            .await
        {
            Ok(RpcValue::Struct(members)) => members.into_iter().find_map(|(k, v)| match v {
                RpcValue::Str(e) if k == "email" && !e.is_empty() => Some(e),
                _ => None,
            }),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(
                    target_name = %self.name,
                    error = %e,
                    "Remote API getUser failed; the profile is written without comparing the email"
                );
                None
            }
        }
    }

    /// A REST write answering 204 (or any 2xx).
    async fn rest_write(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Value>,
        what: &str,
    ) -> Result<(), TargetError> {
        let url = self.url(segments, &[])?;
        let resp = self.http.send(method, url, body.map(Body::Json)).await?;
        if resp.is_success() {
            Ok(())
        } else {
            Err(rest::status_error(&resp, what))
        }
    }

    /// Logs a write's outcome and hands it back.
    fn log_write(
        &self,
        action: &str,
        account: &RemoteAccount,
        outcome: WriteOutcome,
    ) -> WriteOutcome {
        tracing::info!(
            target_name = %self.name,
            action,
            user.key = %account.key,
            user.name = %account.username,
            outcome = ?outcome,
            "Confluence DC write"
        );
        outcome
    }

    /// The write half of a status or membership change: the REST call from 8.2 on, the
    /// Remote API method before; then logs it as changed.
    async fn change(
        &self,
        d: &Detected,
        cur: &RemoteAccount,
        c: Change<'_>,
    ) -> Result<WriteOutcome, TargetError> {
        if d.version >= V8_2 {
            self.rest_write(c.method, c.segments, None, &c.what).await?;
        } else {
            self.rpc_bool(d, c.rpc_method, c.rpc_params, c.cap).await?;
        }
        Ok(self.log_write(c.action, cur, WriteOutcome::Changed))
    }

    /// The write of a status or membership change to `cur`, which the caller has read and
    /// found not yet changed; other writes go through their idempotent methods.
    async fn write_known(
        &self,
        d: &Detected,
        cur: &RemoteAccount,
        write: &Write,
    ) -> Result<WriteOutcome, TargetError> {
        let user = cur.username.as_str();
        let change = match write {
            Write::Disable => Change {
                cap: Capability::Disable,
                action: "disable",
                method: Method::PUT,
                segments: &["rest", "api", "admin", "user", user, "disable"],
                what: format!("disable `{user}`"),
                rpc_method: "deactivateUser",
                rpc_params: vec![RpcValue::str(user)],
            },
            Write::Enable => Change {
                cap: Capability::Enable,
                action: "enable",
                method: Method::PUT,
                segments: &["rest", "api", "admin", "user", user, "enable"],
                what: format!("enable `{user}`"),
                rpc_method: "reactivateUser",
                rpc_params: vec![RpcValue::str(user)],
            },
            Write::AddToGroup(g) => Change {
                cap: Capability::AddToGroup,
                action: "add to group",
                method: Method::PUT,
                segments: &["rest", "api", "user", user, "group", &g.name],
                what: format!("add `{user}` to group `{}`", g.name),
                rpc_method: "addUserToGroup",
                rpc_params: vec![RpcValue::str(user), RpcValue::str(&g.name)],
            },
            Write::RemoveFromGroup(g) => Change {
                cap: Capability::RemoveFromGroup,
                action: "remove from group",
                method: Method::DELETE,
                segments: &["rest", "api", "user", user, "group", &g.name],
                what: format!("remove `{user}` from group `{}`", g.name),
                rpc_method: "removeUserFromGroup",
                rpc_params: vec![RpcValue::str(user), RpcValue::str(&g.name)],
            },
            Write::Rename(to) => return self.rename(&AccountRef::of(cur), to).await,
            Write::ChangeDirectory(to) => {
                return self.change_directory(&AccountRef::of(cur), to).await;
            }
            Write::Delete => return self.delete(&AccountRef::of(cur)).await,
        };
        self.change(d, cur, change).await
    }

    // --------------------------------------------------------------------------------------
    // Listing helpers

    /// The licensed users (9.3+) and their last logins (10.2+) from the licensed-users
    /// listing, all pages.
    async fn load_active_users(&self, d: &Detected) -> Result<Arc<ActiveUsers>, TargetError> {
        let mut out = ActiveUsers::default();
        let with_logins = d.version >= V10_2;
        let extra: Vec<(&str, String)> = if with_logins {
            vec![("expand", "lastLogin".into())]
        } else {
            Vec::new()
        };
        let mut pos = Pos::Start(0);
        for _ in 0..MAX_WALK_PAGES {
            let (page, next) = self
                .fetch_page::<DcUser>(
                    &["rest", "api", "admin", "users", "list", "active"],
                    &pos,
                    &extra,
                    "licensed users (GET /rest/api/admin/users/list/active)",
                )
                .await?;
            for u in &page.results {
                let Some(k) = u.user_key.as_ref().filter(|k| !k.is_empty()) else {
                    continue;
                };
                out.licensed.insert(k.clone());
                if let Some(t) = u.last_login.as_ref().and_then(rest::parse_last_login) {
                    out.last_logins.insert(k.clone(), t);
                }
            }
            match next {
                Some(p) => pos = p,
                None => {
                    let out = Arc::new(out);
                    *lock(&self.active_users) = Some(out.clone());
                    return Ok(out);
                }
            }
        }
        Err(TargetError::UnexpectedBody {
            status: 200,
            detail: "the licensed-users listing never ends".into(),
        })
    }

    async fn list_rest_accounts(
        &self,
        d: &Detected,
        cursor: Option<&str>,
    ) -> Result<Page<RemoteAccount>, TargetError> {
        let cursor = match cursor {
            Some(c) => Cursor::decode(c, &['u'])?,
            None => Cursor::first('u'),
        };
        let starting = cursor.pos == Pos::Start(0);
        let (page, next) = self
            .fetch_page::<DcUser>(
                &["rest", "api", "user", "list"],
                &cursor.pos,
                &[("expand", "status".into())],
                "list users (GET /rest/api/user/list)",
            )
            .await?;
        let mut items: Vec<RemoteAccount> =
            page.results.iter().filter_map(rest::to_account).collect();
        if items.len() < page.results.len() {
            tracing::warn!(
                target_name = %self.name,
                skipped = page.results.len() - items.len(),
                "users without userKey or username skipped"
            );
        }
        if d.version >= V9_3 {
            // One walk of the licensed-users listing per listing (O(pages)), then a lookup
            // per account: who holds a licence by the instance's own count (direct user
            // grants included) and, from 10.2, when each last logged in.
            let cached = if starting {
                None
            } else {
                lock(&self.active_users).clone()
            };
            let active = match cached {
                Some(m) => m,
                None => match self.load_active_users(d).await {
                    Ok(m) => m,
                    // Without the listing (an instance that lacks it), licences are
                    // counted from the licence groups, as before 9.3.
                    Err(TargetError::NotFound { what }) if d.version < V10_2 => {
                        tracing::warn!(
                            target_name = %self.name,
                            what = %what,
                            "no licensed-users listing; licences counted from the licence groups"
                        );
                        let empty = Arc::new(ActiveUsers {
                            unavailable: true,
                            ..ActiveUsers::default()
                        });
                        *lock(&self.active_users) = Some(empty.clone());
                        empty
                    }
                    Err(e) => return Err(e),
                },
            };
            for a in &mut items {
                if a.last_login_at.is_none() {
                    a.last_login_at = active.last_logins.get(&a.key).copied();
                }
                if a.licensed.is_none() && !active.unavailable {
                    a.licensed = Some(active.licensed.contains(&a.key));
                }
            }
        }
        Ok(Page {
            partial: None,
            items,
            next: next.map(|pos| Cursor { phase: 'u', pos }.encode()),
            total: page.total_count,
        })
    }

    /// Before 8.4: usernames from the Remote API `getActiveUsers`, each read by REST.
    async fn list_remote_accounts(
        &self,
        d: &Detected,
        cursor: Option<&str>,
    ) -> Result<Page<RemoteAccount>, TargetError> {
        let offset = match cursor {
            None => 0,
            Some(c) => match Cursor::decode(c, &['r'])?.pos {
                Pos::Start(n) => n as usize,
                Pos::Url(_) => {
                    return Err(TargetError::Config(format!(
                        "cursor `{c}` was not issued by this listing"
                    )));
                }
            },
        };
        let cached = if offset == 0 {
            None
        } else {
            lock(&self.remote_users).clone()
        };
        let names = match cached {
            Some(n) => n,
            None => {
                let v = self
                    .rpc_call(
                        d,
                        "getActiveUsers",
                        vec![RpcValue::Bool(true)],
                        Capability::ListAccounts,
                    )
                    .await?;
                let names =
                    Arc::new(v.as_strings().ok_or_else(|| TargetError::UnexpectedBody {
                        status: 200,
                        detail: "Remote API getActiveUsers did not answer a list of names".into(),
                    })?);
                *lock(&self.remote_users) = Some(names.clone());
                names
            }
        };
        let end = offset
            .saturating_add(self.page_size as usize)
            .min(names.len());
        let mut items = Vec::new();
        for name in names.get(offset..end).unwrap_or_default() {
            if let Some(u) = self.get_user("username", name).await?
                && let Some(a) = rest::to_account(&u)
            {
                items.push(a);
            }
        }
        Ok(Page {
            partial: Some(
                "the Remote API lists active users only; deactivated accounts are missing".into(),
            ),
            items,
            next: (end < names.len()).then(|| {
                Cursor {
                    phase: 'r',
                    pos: Pos::Start(end as u64),
                }
                .encode()
            }),
            total: Some(names.len() as u64),
        })
    }

    // --------------------------------------------------------------------------------------
    // Deletion

    async fn wait_for_deletion(
        &self,
        task_id: &str,
        account: &RemoteAccount,
    ) -> Result<WriteOutcome, TargetError> {
        let deadline = Instant::now() + self.delete_timeout;
        let mut interval = self.poll_interval;
        loop {
            let url = self.url(&["rest", "api", "longtask", task_id], &[])?;
            let resp = self.http.send(Method::GET, url, None).await?;
            if rest::is_plain_not_found(&resp) {
                // Tasks expire; the account tells whether it went.
                return match self.lookup(&AccountRef::of(account)).await? {
                    None => Ok(WriteOutcome::Changed),
                    Some(_) => Err(TargetError::Rejected {
                        status: 404,
                        detail: format!(
                            "deletion task {task_id} of `{}` disappeared and the user still exists",
                            account.username
                        ),
                    }),
                };
            }
            if !resp.is_success() {
                return Err(rest::status_error(
                    &resp,
                    &format!("deletion task {task_id}"),
                ));
            }
            let status: rest::LongTaskStatus = resp.json()?;
            if status.is_done() {
                if status.succeeded() {
                    return Ok(WriteOutcome::Changed);
                }
                return Err(TargetError::Rejected {
                    status: resp.status.as_u16(),
                    detail: format!(
                        "deleting `{}` failed (task {task_id}): {}",
                        account.username,
                        status.messages_text()
                    ),
                });
            }
            if Instant::now() + interval > deadline {
                tracing::warn!(
                    target_name = %self.name,
                    task_id,
                    user.key = %account.key,
                    percentage = status.percentage_complete,
                    "deletion still running at the deadline"
                );
                return Err(TargetError::Timeout(self.delete_timeout));
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_secs(5));
        }
    }
}

impl Target for ConfluenceDc {
    fn kind(&self) -> TargetKind {
        TargetKind::ConfluenceDc
    }

    async fn probe(&self) -> Result<Probe, TargetError> {
        let d = Arc::new(self.run_probe().await?);
        *lock(&self.state) = Some(d.clone());
        Ok(d.probe.clone())
    }

    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<RemoteAccount>, TargetError> {
        let d = self.require(Capability::ListAccounts).await?;
        if d.version >= V8_4 {
            self.list_rest_accounts(&d, cursor).await
        } else {
            self.list_remote_accounts(&d, cursor).await
        }
    }

    async fn get_account(
        &self,
        account: &AccountRef,
    ) -> Result<Option<RemoteAccount>, TargetError> {
        self.require(Capability::GetAccount).await?;
        self.lookup(account).await
    }

    async fn list_groups(&self, cursor: Option<&str>) -> Result<Page<RemoteGroup>, TargetError> {
        self.require(Capability::ListGroups).await?;
        let cursor = match cursor {
            Some(c) => Cursor::decode(c, &['g'])?,
            None => Cursor::first('g'),
        };
        let (page, next) = self
            .fetch_page::<DcGroup>(
                &["rest", "api", "group"],
                &cursor.pos,
                &[],
                "list groups (GET /rest/api/group)",
            )
            .await?;
        Ok(Page {
            partial: None,
            items: page
                .results
                .into_iter()
                .filter_map(|g| g.name)
                .map(|name| RemoteGroup {
                    name,
                    ..RemoteGroup::default()
                })
                .collect(),
            next: next.map(|pos| Cursor { phase: 'g', pos }.encode()),
            total: page.total_count,
        })
    }

    async fn group_members(
        &self,
        group: &GroupRef,
        cursor: Option<&str>,
    ) -> Result<Page<Member>, TargetError> {
        let d = self.require(Capability::GroupMembers).await?;
        let nested = d
            .probe
            .capabilities
            .get(Capability::NestedGroups)
            .is_supported();
        let cursor = match cursor {
            Some(c) => Cursor::decode(c, &['m', 'n'])?,
            None => Cursor::first('m'),
        };
        let name = group.name.as_str();
        if cursor.phase == 'm' {
            let (page, next) = self
                .fetch_page::<DcUser>(
                    &["rest", "api", "group", name, "member"],
                    &cursor.pos,
                    &[],
                    &format!("members of group `{name}`"),
                )
                .await?;
            let items = page
                .results
                .iter()
                .filter_map(|u| {
                    Some(Member::Account {
                        key: u.user_key.clone().filter(|k| !k.is_empty())?,
                        username: u.username.clone().unwrap_or_default(),
                    })
                })
                .collect();
            let next = match next {
                Some(pos) => Some(Cursor { phase: 'm', pos }.encode()),
                None if nested => Some(Cursor::first('n').encode()),
                None => None,
            };
            return Ok(Page {
                partial: None,
                items,
                next,
                total: None,
            });
        }
        d.probe.capabilities.require(Capability::NestedGroups)?;
        let (page, next) = self
            .fetch_page::<DcGroup>(
                &["rest", "api", "group", name, "groupmember"],
                &cursor.pos,
                &[],
                &format!("groups nested in `{name}`"),
            )
            .await?;
        Ok(Page {
            partial: None,
            items: page
                .results
                .into_iter()
                .filter_map(|g| g.name)
                .map(|name| Member::Group { name })
                .collect(),
            next: next.map(|pos| Cursor { phase: 'n', pos }.encode()),
            total: None,
        })
    }

    async fn account_groups(&self, account: &AccountRef) -> Result<Vec<RemoteGroup>, TargetError> {
        self.require(Capability::GetAccount).await?;
        // The membership listing takes the key: with it, no lookup is needed first.
        let (key, username) = if account.key.is_empty() {
            let current = self.current(account).await?;
            (current.key, current.username)
        } else {
            (account.key.clone(), account.username.clone())
        };
        Ok(self
            .groups_of(&key, &username)
            .await?
            .into_iter()
            .map(|name| RemoteGroup {
                name,
                ..RemoteGroup::default()
            })
            .collect())
    }

    async fn licence_groups(&self) -> Result<Vec<String>, TargetError> {
        let d = self.detected().await?;
        if d.version < V9_3 {
            return Ok(self.licence_groups.clone());
        }
        let url = self.url(&["rest", "api", "permissions"], &[])?;
        let resp = self.http.send(Method::GET, url, None).await?;
        if rest::is_plain_not_found(&resp) {
            tracing::warn!(
                target_name = %self.name,
                version = %d.version,
                "no global-permission REST on this instance; using the configured licence groups"
            );
            return Ok(self.licence_groups.clone());
        }
        if !resp.is_success() {
            return Err(rest::status_error(
                &resp,
                "global permissions (GET /rest/api/permissions)",
            ));
        }
        let value: Value = resp.json()?;
        let list = match value {
            Value::Array(items) => items,
            Value::Object(mut o) => match o.remove("results") {
                Some(Value::Array(items)) => items,
                _ => {
                    return Err(TargetError::UnexpectedBody {
                        status: 200,
                        detail: "global permissions are neither a list nor a page".into(),
                    });
                }
            },
            _ => {
                return Err(TargetError::UnexpectedBody {
                    status: 200,
                    detail: "global permissions are not a list".into(),
                });
            }
        };
        let mut groups: BTreeMap<String, String> = BTreeMap::new();
        for item in list {
            let Ok(p) = serde_json::from_value::<rest::GlobalPermission>(item) else {
                continue;
            };
            if let Some(g) = p.licensing_group() {
                groups
                    .entry(g.to_lowercase())
                    .or_insert_with(|| g.to_owned());
            }
        }
        Ok(groups.into_values().collect())
    }

    async fn licence_counters(&self) -> Result<(Option<u64>, Option<u64>), TargetError> {
        self.detected().await?;
        let mut out = [None, None];
        for (i, which) in ["maxUsers", "userCount"].into_iter().enumerate() {
            let url = self.url(&["rest", "license", "1.0", "license", which], &[])?;
            let resp = self.http.send(Method::GET, url, None).await?;
            if rest::is_plain_not_found(&resp) {
                continue;
            }
            if !resp.is_success() {
                return Err(rest::status_error(
                    &resp,
                    &format!("licence counter {which}"),
                ));
            }
            out[i] = resp.json::<rest::Count>()?.value();
        }
        Ok((out[0], out[1]))
    }

    async fn disable(&self, account: &AccountRef) -> Result<WriteOutcome, TargetError> {
        let d = self.require(Capability::Disable).await?;
        let cur = self.current(account).await?;
        if rest::is_deactivated(&cur.raw_status) {
            return Ok(self.log_write("disable", &cur, WriteOutcome::AlreadyDone));
        }
        self.write_known(&d, &cur, &Write::Disable).await
    }

    async fn enable(&self, account: &AccountRef) -> Result<WriteOutcome, TargetError> {
        let d = self.require(Capability::Enable).await?;
        let cur = self.current(account).await?;
        if cur.active {
            return Ok(self.log_write("enable", &cur, WriteOutcome::AlreadyDone));
        }
        self.write_known(&d, &cur, &Write::Enable).await
    }

    async fn add_to_group(
        &self,
        account: &AccountRef,
        group: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        let d = self.require(Capability::AddToGroup).await?;
        let cur = self.current(account).await?;
        let groups = self.groups_of(&cur.key, &cur.username).await?;
        if groups.iter().any(|g| g.eq_ignore_ascii_case(&group.name)) {
            return Ok(self.log_write("add to group", &cur, WriteOutcome::AlreadyDone));
        }
        self.write_known(&d, &cur, &Write::AddToGroup(group.clone()))
            .await
    }

    async fn remove_from_group(
        &self,
        account: &AccountRef,
        group: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        let d = self.require(Capability::RemoveFromGroup).await?;
        let cur = self.current(account).await?;
        let groups = self.groups_of(&cur.key, &cur.username).await?;
        let Some(actual) = groups.iter().find(|g| g.eq_ignore_ascii_case(&group.name)) else {
            return Ok(self.log_write("remove from group", &cur, WriteOutcome::AlreadyDone));
        };
        self.write_known(&d, &cur, &Write::RemoveFromGroup(GroupRef::named(actual)))
            .await
    }

    async fn rename(
        &self,
        account: &AccountRef,
        new_username: &str,
    ) -> Result<WriteOutcome, TargetError> {
        let d = self.require(Capability::Rename).await?;
        let new = new_username.trim();
        if new.is_empty() {
            return Err(TargetError::Config(
                "cannot rename to an empty username".into(),
            ));
        }
        let cur = self.current(account).await?;
        if cur.username.eq_ignore_ascii_case(new) {
            return Ok(self.log_write("rename", &cur, WriteOutcome::AlreadyDone));
        }
        let mut crowd_why = None;
        if let (Some(crowd), Crowd::Ready { .. }) = (&self.crowd, &d.crowd) {
            if crowd.has_user(&cur.username).await? {
                crowd.rename(&cur.username, new).await?;
                tracing::info!(
                    target_name = %self.name,
                    user.key = %cur.key,
                    from = %cur.username,
                    to = %new,
                    "renamed in Crowd; Confluence follows at its next directory sync"
                );
                return Ok(WriteOutcome::Changed);
            }
            if crowd.has_user(new).await? {
                // Renamed in Crowd already; Confluence has not synchronised yet.
                tracing::info!(
                    target_name = %self.name,
                    user.key = %cur.key,
                    to = %new,
                    "Crowd already has the new name; waiting for Confluence's directory sync"
                );
                return Ok(WriteOutcome::AlreadyDone);
            }
            crowd_why = Some(format!("Crowd does not hold `{}`", cur.username));
        }
        if d.transport().is_some() {
            self.rpc_bool(
                &d,
                "renameUser",
                vec![RpcValue::str(&cur.username), RpcValue::str(new)],
                Capability::Rename,
            )
            .await?;
            tracing::info!(
                target_name = %self.name,
                user.key = %cur.key,
                from = %cur.username,
                to = %new,
                "renamed through the Remote API"
            );
            return Ok(WriteOutcome::Changed);
        }
        Err(TargetError::Unsupported {
            capability: Capability::Rename,
            why: format!(
                "{} and the Remote API is not available",
                crowd_why.unwrap_or_else(|| "Crowd is not usable".into())
            ),
        })
    }

    async fn change_directory(
        &self,
        _account: &AccountRef,
        _directory: &str,
    ) -> Result<WriteOutcome, TargetError> {
        Err(TargetError::Unsupported {
            capability: Capability::ChangeDirectory,
            why: "Confluence DC has no API to move an account to another user directory; \
                  create the account in the other directory instead"
                .into(),
        })
    }

    async fn delete(&self, account: &AccountRef) -> Result<WriteOutcome, TargetError> {
        self.require(Capability::Delete).await?;
        let Some(cur) = self.lookup(account).await? else {
            tracing::info!(target_name = %self.name, user.key = %account.key, "already deleted");
            return Ok(WriteOutcome::AlreadyDone);
        };
        let url = self.url(&["rest", "api", "admin", "user", &cur.username], &[])?;
        let resp = self.http.send(Method::DELETE, url, None).await?;
        let outcome = match resp.status.as_u16() {
            202 => {
                let submission: rest::LongTaskSubmission = resp.json()?;
                let id = match submission.id {
                    Some(Value::String(s)) if !s.is_empty() => s,
                    Some(Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(TargetError::UnexpectedBody {
                            status: 202,
                            detail: "the deletion was accepted without a task id".into(),
                        });
                    }
                };
                tracing::info!(target_name = %self.name, user.key = %cur.key, task_id = %id, "deletion running");
                self.wait_for_deletion(&id, &cur).await?
            }
            200..=299 => WriteOutcome::Changed,
            _ if rest::is_plain_not_found(&resp) => match self.lookup(account).await? {
                None => WriteOutcome::AlreadyDone,
                Some(_) => {
                    return Err(rest::status_error(
                        &resp,
                        &format!("delete `{}`", cur.username),
                    ));
                }
            },
            _ => {
                return Err(rest::status_error(
                    &resp,
                    &format!("delete `{}`", cur.username),
                ));
            }
        };
        self.log_write("delete", &cur, outcome);
        Ok(outcome)
    }

    async fn create_account(&self, new: &NewRemoteAccount) -> Result<RemoteAccount, TargetError> {
        self.require(Capability::CreateAccount).await?;
        let url = self.url(&["rest", "api", "admin", "user"], &[])?;
        // Without a password Confluence mails the user a link to set one.
        let body = json!({
            "userName": new.username,
            "fullName": new.display_name,
            "email": new.email,
            "notifyViaEmail": true,
        });
        let resp = self
            .http
            .send(Method::POST, url, Some(Body::Json(body)))
            .await?;
        if !resp.is_success() {
            return Err(rest::status_error(
                &resp,
                &format!("create `{}`", new.username),
            ));
        }
        #[derive(serde::Deserialize)]
        struct Created {
            #[serde(rename = "userKey")]
            user_key: Option<String>,
        }
        let created: Created = resp.json()?;
        let key = created.user_key.filter(|k| !k.is_empty()).ok_or_else(|| {
            TargetError::UnexpectedBody {
                status: resp.status.as_u16(),
                detail: "the created user came back without a userKey".into(),
            }
        })?;
        let account = match self.get_user("key", &key).await? {
            Some(u) => rest::to_account(&u),
            None => None,
        }
        .unwrap_or_else(|| RemoteAccount {
            key: key.clone(),
            username: new.username.clone(),
            email: Some(new.email.clone()),
            display_name: Some(new.display_name.clone()),
            active: true,
            raw_status: "current".into(),
            ..RemoteAccount::default()
        });
        self.log_write("create", &account, WriteOutcome::Changed);
        Ok(account)
    }

    async fn apply(
        &self,
        account: &RemoteAccount,
        write: &Write,
    ) -> Result<WriteOutcome, TargetError> {
        let cap = match write {
            Write::Disable => Capability::Disable,
            Write::Enable => Capability::Enable,
            Write::AddToGroup(_) => Capability::AddToGroup,
            Write::RemoveFromGroup(_) => Capability::RemoveFromGroup,
            Write::Rename(_) => Capability::Rename,
            Write::ChangeDirectory(_) => Capability::ChangeDirectory,
            Write::Delete => Capability::Delete,
        };
        let d = self.require(cap).await?;
        self.write_known(&d, account, write).await
    }

    async fn update_profile(
        &self,
        account: &AccountRef,
        email: &str,
        display_name: &str,
    ) -> Result<WriteOutcome, TargetError> {
        let d = self.require(Capability::UpdateProfile).await?;
        let cur = self.current(account).await?;
        let same_name = cur.display_name.as_deref() == Some(display_name);
        // `GET /rest/api/user` carries no email; the Remote API's getUser does.
        let known_email = match &cur.email {
            Some(e) => Some(e.clone()),
            None if same_name => self.remote_email(&d, &cur.username).await,
            None => None,
        };
        let same_email = known_email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(email));
        if same_name && same_email {
            return Ok(self.log_write("update profile", &cur, WriteOutcome::AlreadyDone));
        }
        self.rest_write(
            Method::PUT,
            &["rest", "api", "admin", "user", &cur.username],
            Some(json!({ "email": email, "fullName": display_name })),
            &format!("update the profile of `{}`", cur.username),
        )
        .await?;
        Ok(self.log_write("update profile", &cur, WriteOutcome::Changed))
    }
}
