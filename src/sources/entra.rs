//! The Microsoft Entra ID connector: reads people, groups, changes and Confluence sign-ins
//! from Microsoft Graph v1.0 with an app-only token (client credentials, a client secret or a
//! certificate assertion with `x5t#S256`).
//!
//! * People: `/users` with `$select` (Graph's default set lacks `accountEnabled`) and
//!   `signInActivity` when the tenant is premium and the app has `AuditLog.Read.All`; without
//!   them the listing is retried without `signInActivity` and goes on (last login then comes
//!   from sign-in logs or nowhere, and [`Source::check`] says so). Then soft-deleted users from
//!   `/directory/deletedItems/microsoft.graph.user`, raw status `deleted`. The cursor is JSON
//!   naming the phase and the `@odata.nextLink` to follow verbatim. The first page also takes a
//!   `/users/delta?$deltatoken=latest` link, handed back as the terminal page's checkpoint.
//! * Last login: `signInActivity.lastSuccessfulSignInDateTime` (never `lastSignInDateTime`,
//!   which counts failed attempts); missing or `0001-01-01T00:00:00Z` is never.
//! * Changes: the checkpoint is a delta link; pages follow `@odata.nextLink` and the terminal
//!   page returns the new `@odata.deltaLink`. `@removed: deleted` (permanently deleted) is
//!   [`Change::Removed`]; `@removed: changed` (soft-deleted, restorable) is re-fetched from
//!   `deletedItems` and returned as an upsert with raw status `deleted` (or as `Removed` when
//!   it is in neither place). Delta items carry no `signInActivity`, so their
//!   `last_login_at` is `None` ("not reported"). 410 Gone and `syncStateNotFound` /
//!   `resyncRequired` are [`SourceError::CheckpointExpired`].
//! * Groups: `/groups` pages, then each group's `/members/microsoft.graph.user` pages; a
//!   group is returned once all its member pages are read (the cursor carries the members
//!   read so far).
//! * Sign-ins: `/auditLogs/signIns` filtered on the Confluence `appId`, `createdDateTime ge`
//!   the checkpoint and `status/errorCode eq 0` (checked again client-side); the checkpoint is
//!   the newest `createdDateTime` seen.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::Algorithm;
use reqwest::header::HeaderName;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::auth::{Auth, FormBuilder, SigningKey, TokenCache, epoch_now, one_line, random_jti};
use super::http::{IdpClient, IdpSettings, Response, Vendor, describe_error, http_client};
use super::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
    status,
};
use crate::clock::{SharedClock, SystemClock};
use crate::config::SourceConfig;
use crate::domain::{IdentityStatus, SourceKind};

/// The only scope an app-only Graph token can ask for.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Properties read for each person (custom attributes are added).
const USER_SELECT: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "otherMails",
    "givenName",
    "surname",
    "displayName",
    "accountEnabled",
    "createdDateTime",
    "employeeId",
    "userType",
];
/// Groups of member pages read per call at most.
const GROUPS_PER_CALL: usize = 50;
/// Default look-back of the first sign-in poll (Graph keeps 30 days).
const SIGN_IN_LOOKBACK_DAYS: i64 = 30;

/// An Entra ID source.
pub struct EntraSource {
    name: String,
    client: IdpClient,
    client_id: String,
    app_id: Option<String>,
    page_size: u32,
    custom: Vec<String>,
    /// Why `signInActivity` could not be read in the last listing, if it could not.
    sign_in_activity_problem: Mutex<Option<String>>,
    /// Where "now" comes from (sign-in look-back windows, checkpoint age).
    clock: SharedClock,
}

impl std::fmt::Debug for EntraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraSource")
            .field("name", &self.name)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// A certificate thumbprint (hex or base64url SHA-256) as the base64url `x5t#S256` wants.
pub fn thumbprint_s256(text: &str) -> Result<String, String> {
    let t = text.trim().replace(':', "");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        return Ok(b64.encode(bytes));
    }
    let trimmed = t.trim_end_matches('=');
    match b64.decode(trimmed) {
        Ok(bytes) if bytes.len() == 32 => Ok(trimmed.to_owned()),
        Ok(bytes) if bytes.len() == 20 => Err(
            "certificate_thumbprint looks like a SHA-1 thumbprint; Entra wants the SHA-256 one (x5t#S256)"
                .into(),
        ),
        _ => Err("certificate_thumbprint is neither 64 hex digits nor base64url of a SHA-256 digest".into()),
    }
}

impl EntraSource {
    /// The connector for source `name`.
    pub fn from_config(name: &str, cfg: &SourceConfig) -> Result<Self, SourceError> {
        let need = |v: &Option<String>, key: &str| {
            v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                SourceError::Config(format!("sources.{name}.{key}: required for Entra ID"))
            })
        };
        let tenant = need(&cfg.tenant_id, "tenant_id")?;
        let client_id = need(&cfg.client_id, "client_id")?;
        let settings = IdpSettings::from_config(cfg);
        let http = http_client(&settings)?;
        let token_url = cfg.token_url.clone().unwrap_or_else(|| {
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
        });
        let token_url = Url::parse(&token_url)
            .map_err(|e| SourceError::Config(format!("sources.{name}.token_url: {e}")))?;
        let form: FormBuilder = match (&cfg.client_secret, &cfg.private_key) {
            (Some(secret), _) => {
                let secret = secret.clone();
                let id = client_id.clone();
                Box::new(move || {
                    Ok(vec![
                        ("grant_type", "client_credentials".to_owned()),
                        ("client_id", id.clone()),
                        ("client_secret", secret.expose().to_owned()),
                        ("scope", GRAPH_SCOPE.to_owned()),
                    ])
                })
            }
            (None, Some(key)) => {
                let thumb = cfg.certificate_thumbprint.as_deref().ok_or_else(|| {
                    SourceError::Config(format!(
                        "sources.{name}.certificate_thumbprint: required with a certificate private_key"
                    ))
                })?;
                let x5t = thumbprint_s256(thumb)
                    .map_err(|e| SourceError::Config(format!("sources.{name}: {e}")))?;
                let signer = SigningKey::from_pem(key, Algorithm::PS256)?;
                let id = client_id.clone();
                let aud = token_url.to_string();
                Box::new(move || {
                    let now = epoch_now();
                    let claims = json!({
                        "aud": aud,
                        "iss": id,
                        "sub": id,
                        "jti": random_jti(),
                        "nbf": now,
                        "iat": now,
                        "exp": now + 600,
                    });
                    let assertion = signer.sign(&claims, None, Some(&x5t))?;
                    Ok(vec![
                        ("grant_type", "client_credentials".to_owned()),
                        ("client_id", id.clone()),
                        ("client_assertion_type", ASSERTION_TYPE.to_owned()),
                        ("client_assertion", assertion),
                        ("scope", GRAPH_SCOPE.to_owned()),
                    ])
                })
            }
            (None, None) => {
                return Err(SourceError::Config(format!(
                    "sources.{name}.client_secret: required for Entra ID (or private_key with certificate_thumbprint)"
                )));
            }
        };
        let cache = Arc::new(TokenCache::new(http.clone(), token_url, form));
        let base = cfg
            .base_url
            .clone()
            .unwrap_or_else(|| "https://graph.microsoft.com".to_owned());
        let base = base.trim_end_matches('/');
        let base = if base.ends_with("/v1.0") {
            base.to_owned()
        } else {
            format!("{base}/v1.0")
        };
        let client = IdpClient::new(http, &base, Auth::OAuth(cache), Vendor::Graph, settings)?;
        Ok(EntraSource {
            name: name.to_owned(),
            client,
            client_id,
            app_id: cfg.app_id.clone().filter(|a| !a.trim().is_empty()),
            page_size: cfg.page_size.unwrap_or(999).clamp(1, 999),
            custom: cfg.custom_attributes.clone(),
            sign_in_activity_problem: Mutex::new(None),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same connector reading the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn select(&self, sign_in_activity: bool) -> String {
        let mut props: Vec<&str> = USER_SELECT.to_vec();
        for c in &self.custom {
            if !props.contains(&c.as_str()) {
                props.push(c);
            }
        }
        if sign_in_activity {
            props.push("signInActivity");
        }
        props.join(",")
    }

    fn url(&self, path: &str, params: &[(&str, &str)]) -> Result<Url, SourceError> {
        let mut url = self.client.endpoint(path)?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn users_url(&self, sign_in_activity: bool) -> Result<Url, SourceError> {
        let cap = if sign_in_activity { 500 } else { 999 };
        let top = self.page_size.min(cap).to_string();
        self.url(
            "users",
            &[("$select", &self.select(sign_in_activity)), ("$top", &top)],
        )
    }

    fn deleted_url(&self) -> Result<Url, SourceError> {
        let top = self.page_size.min(999).to_string();
        self.url(
            "directory/deletedItems/microsoft.graph.user",
            &[("$select", &self.select(false)), ("$top", &top)],
        )
    }

    /// GET `url` as a Graph collection page.
    async fn page(&self, url: Url) -> Result<GraphPage, SourceError> {
        let resp = self.client.get(url, &[]).await?;
        if !(200..300).contains(&resp.status) {
            return Err(self.error_for(&resp));
        }
        parse_page(&resp)
    }

    /// Like `IdpClient::error_for`, with Graph's delta and licence codes made plain.
    fn error_for(&self, resp: &Response) -> SourceError {
        let code = graph_code(&resp.body).unwrap_or_default();
        if code.eq_ignore_ascii_case("Authentication_RequestFromNonPremiumTenantOrB2CTenant") {
            return SourceError::Forbidden {
                detail: format!(
                    "{} (this needs an Entra ID P1 or P2 licence in the tenant)",
                    describe_error(&resp.body)
                ),
            };
        }
        if code.eq_ignore_ascii_case("Authorization_RequestDenied") {
            return SourceError::Forbidden {
                detail: format!(
                    "{} (check the app's Graph application permissions and admin consent)",
                    describe_error(&resp.body)
                ),
            };
        }
        self.client.error_for(resp)
    }

    /// One page of the `users` phase; a 403 about `signInActivity` retries the page without it.
    async fn users_page(&self, cur: &ListCursor) -> Result<(GraphPage, bool), SourceError> {
        if let Some(next) = &cur.next {
            return Ok((self.page(self.client.follow(next)?).await?, cur.sia));
        }
        let url = self.users_url(true)?;
        let resp = self.client.get(url, &[]).await?;
        if (200..300).contains(&resp.status) {
            *self.lock_problem() = None;
            return Ok((parse_page(&resp)?, true));
        }
        let code = graph_code(&resp.body).unwrap_or_default();
        if resp.status == 403
            && (code.eq_ignore_ascii_case("Authentication_RequestFromNonPremiumTenantOrB2CTenant")
                || code.eq_ignore_ascii_case("Authorization_RequestDenied"))
        {
            let why = if code.starts_with("Authentication_") {
                "the tenant has no Entra ID P1/P2 licence, so Graph has no signInActivity"
                    .to_owned()
            } else {
                "the app lacks AuditLog.Read.All, so Graph withholds signInActivity".to_owned()
            };
            tracing::warn!(
                source = %self.name,
                graph.code = %code,
                "listing users without signInActivity: {why}"
            );
            *self.lock_problem() = Some(why);
            return Ok((self.page(self.users_url(false)?).await?, false));
        }
        Err(self.error_for(&resp))
    }

    fn lock_problem(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.sign_in_activity_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A delta link that starts tracking now (`$deltatoken=latest`), or `None` when Graph
    /// will not give one (the listing goes on without a checkpoint).
    async fn latest_delta_link(&self) -> Result<Option<String>, SourceError> {
        let url = self.url(
            "users/delta",
            &[("$select", &self.select(false)), ("$deltatoken", "latest")],
        )?;
        let resp = self.client.get(url, &[]).await?;
        if !(200..300).contains(&resp.status) {
            let err = self.error_for(&resp);
            if err.is_transient() {
                return Err(err);
            }
            tracing::warn!(source = %self.name, error = %err, "no delta link; incremental sync unavailable");
            return Ok(None);
        }
        let page = parse_page(&resp)?;
        Ok(page.delta_link)
    }

    fn identity(&self, v: &Value, deleted: bool) -> Result<SourceIdentity, SourceError> {
        user_identity(v, deleted, &self.custom)
    }

    async fn refetch_soft_deleted(&self, id: &str) -> Result<Option<SourceIdentity>, SourceError> {
        let path = format!("directory/deletedItems/{}", url_segment(id));
        let url = self.url(&path, &[("$select", &self.select(false))])?;
        let resp = self.client.get(url, &[]).await?;
        match resp.status {
            200..=299 => {
                let v: Value = resp.json()?;
                Ok(Some(self.identity(&v, true)?))
            }
            404 => {
                // Restored between the change and now: it is an ordinary user again.
                let path = format!("users/{}", url_segment(id));
                let url = self.url(&path, &[("$select", &self.select(false))])?;
                let resp = self.client.get(url, &[]).await?;
                match resp.status {
                    200..=299 => {
                        let v: Value = resp.json()?;
                        Ok(Some(self.identity(&v, false)?))
                    }
                    404 => Ok(None),
                    _ => Err(self.error_for(&resp)),
                }
            }
            _ => Err(self.error_for(&resp)),
        }
    }

    async fn roles(&self) -> Result<Vec<String>, SourceError> {
        let Auth::OAuth(cache) = self.client.auth() else {
            return Ok(Vec::new());
        };
        let token = cache.token().await?;
        Ok(token_roles(token.secret.expose()))
    }
}

fn url_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The `roles` claim of an access token, read without verifying it (only to report).
pub fn token_roles(token: &str) -> Vec<String> {
    let Some(payload) = token.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return Vec::new();
    };
    v.get("roles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Graph's `error.code`, if the body is a Graph error.
fn graph_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/error/code")?.as_str().map(str::to_owned)
}

/// One Graph collection page.
#[derive(Debug)]
struct GraphPage {
    value: Vec<Value>,
    next_link: Option<String>,
    delta_link: Option<String>,
}

fn parse_page(resp: &Response) -> Result<GraphPage, SourceError> {
    let v: Value = resp.json()?;
    let Value::Object(mut obj) = v else {
        return Err(SourceError::UnexpectedBody {
            status: resp.status,
            detail: "the page is not a JSON object".into(),
        });
    };
    let value = match obj.remove("value") {
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(SourceError::UnexpectedBody {
                status: resp.status,
                detail: "`value` is not an array".into(),
            });
        }
        None => {
            return Err(SourceError::UnexpectedBody {
                status: resp.status,
                detail: "the page has no `value` array".into(),
            });
        }
    };
    let link = |k: &str| -> Result<Option<String>, SourceError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(SourceError::UnexpectedBody {
                status: resp.status,
                detail: format!("`{k}` is not a link"),
            }),
        }
    };
    Ok(GraphPage {
        value,
        next_link: link("@odata.nextLink")?,
        delta_link: link("@odata.deltaLink")?,
    })
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(v?.as_str()?).ok()?;
    let t = t.with_timezone(&Utc);
    // 0001-01-01T00:00:00Z and similar sentinels mean "never".
    (t.timestamp() > 0).then_some(t)
}

/// A Graph user object as a [`SourceIdentity`].
fn user_identity(
    v: &Value,
    deleted: bool,
    custom: &[String],
) -> Result<SourceIdentity, SourceError> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let id =
        s("id")
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| SourceError::InvalidRecord {
                detail: format!("a user without an id: {}", one_line(&v.to_string(), 200)),
            })?;
    let mut login = s("userPrincipalName")
        .or_else(|| s("mail"))
        .unwrap_or_else(|| id.clone());
    if deleted {
        // Entra prefixes a soft-deleted user's UPN with the object id (no hyphens).
        let prefix = id.replace('-', "");
        if let Some(rest) = login.strip_prefix(&prefix).filter(|r| !r.is_empty()) {
            login = rest.to_owned();
        }
    }
    let raw = if deleted {
        "deleted".to_owned()
    } else {
        match v.get("accountEnabled") {
            Some(Value::Bool(true)) => "accountEnabled=true".to_owned(),
            Some(Value::Bool(false)) => "accountEnabled=false".to_owned(),
            _ => "accountEnabled=unknown".to_owned(),
        }
    };
    let status = status::normalise(SourceKind::Entra, &raw);
    let mut p = SourceIdentity::new(id, login, status, raw);
    let mut emails: Vec<String> = Vec::new();
    let mut push = |e: &str| {
        let e = e.trim();
        if !e.is_empty() && !emails.iter().any(|x| x.eq_ignore_ascii_case(e)) {
            emails.push(e.to_owned());
        }
    };
    if let Some(m) = v.get("mail").and_then(Value::as_str) {
        push(m);
    }
    if let Some(others) = v.get("otherMails").and_then(Value::as_array) {
        for o in others.iter().filter_map(Value::as_str) {
            push(o);
        }
    }
    p.emails = emails;
    p.given_name = s("givenName");
    p.family_name = s("surname");
    p.display_name = s("displayName");
    p.created_at = parse_time(v.get("createdDateTime"));
    p.last_login_at = parse_time(v.pointer("/signInActivity/lastSuccessfulSignInDateTime"));
    let mut attrs = BTreeMap::new();
    for key in ["employeeId", "userType"]
        .into_iter()
        .chain(custom.iter().map(String::as_str))
    {
        let text = match v.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            Some(other) => other.to_string(),
        };
        attrs.insert(key.to_owned(), text);
    }
    p.attributes = attrs;
    if p.status == IdentityStatus::Unknown {
        tracing::debug!(external_id = %p.external_id, raw = %p.raw_status, "Entra user without accountEnabled");
    }
    Ok(p)
}

/// Drops repeated ids within one page (Graph's replication can repeat an object), keeping
/// the last copy.
fn dedupe<T>(items: Vec<T>, id: impl Fn(&T) -> &str) -> Vec<T> {
    let mut seen = std::collections::HashMap::new();
    let mut out: Vec<Option<T>> = Vec::with_capacity(items.len());
    for item in items {
        let key = id(&item).to_owned();
        if let Some(&at) = seen.get(&key) {
            tracing::warn!(external_id = %key, "the same id twice on one page; keeping the later copy");
            out[at] = None;
        }
        seen.insert(key, out.len());
        out.push(Some(item));
    }
    out.into_iter().flatten().collect()
}

/// Where a people listing stands.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ListCursor {
    /// `users` or `deleted`.
    phase: String,
    /// The next link to follow verbatim (absent: the phase's first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// Whether this listing selects `signInActivity`.
    #[serde(default)]
    sia: bool,
    /// The delta link taken when the listing began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delta: Option<String>,
}

fn bad_cursor(what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Config(format!("the {what} cursor cannot be read: {e}"))
}

fn encode<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Where a group listing stands.
#[derive(Debug, Default, Serialize, Deserialize)]
struct GroupCursor {
    /// The next `/groups` page (absent with an empty queue: the first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    groups_next: Option<String>,
    /// Groups of the current page not yet returned: (id, name).
    #[serde(default)]
    queue: Vec<(String, String)>,
    /// The next member page of `queue[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    members_next: Option<String>,
    /// Whether the first `/groups` page was read.
    #[serde(default)]
    started: bool,
}

/// Where a sign-in poll stands.
#[derive(Debug, Serialize, Deserialize)]
struct SignInCursor {
    next: String,
    /// The newest `createdDateTime` seen in this poll (or the checkpoint it started from).
    newest: DateTime<Utc>,
}

impl Source for EntraSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Entra
    }

    async fn check(&self) -> Result<SourceCheck, SourceError> {
        let roles = self.roles().await?;
        let has = |names: &[&str]| roles.iter().any(|r| names.contains(&r.as_str()));
        let mut missing = Vec::new();
        let mut notes = Vec::new();
        let read_users = has(&[
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ]);
        if !read_users {
            missing.push("User.Read.All: people cannot be listed at all".to_owned());
        }
        let audit = has(&["AuditLog.Read.All"]);
        if !audit {
            missing.push(
                "AuditLog.Read.All: no signInActivity (last login) and no sign-in logs".to_owned(),
            );
        }
        if !has(&[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ]) {
            missing
                .push("GroupMember.Read.All: groups and their members cannot be read".to_owned());
        }
        // signInActivity: premium tenant and AuditLog.Read.All.
        let probe = self.url("users", &[("$select", "id,signInActivity"), ("$top", "1")])?;
        let resp = self.client.get(probe, &[]).await?;
        let last_login = if (200..300).contains(&resp.status) {
            "signInActivity.lastSuccessfulSignInDateTime (Entra ID P1/P2)".to_owned()
        } else if resp.status == 403 {
            let code = graph_code(&resp.body).unwrap_or_default();
            if code.eq_ignore_ascii_case("Authentication_RequestFromNonPremiumTenantOrB2CTenant") {
                notes.push("signInActivity needs Entra ID P1 or P2; the tenant has neither, so people are listed without last login".to_owned());
                "none: the tenant is not premium (signInActivity needs Entra ID P1/P2)".to_owned()
            } else {
                notes.push("signInActivity is withheld (AuditLog.Read.All missing); people are listed without last login".to_owned());
                "none: AuditLog.Read.All is missing".to_owned()
            }
        } else {
            return Err(self.error_for(&resp));
        };
        // How many people.
        let count_url = self.client.endpoint("users/$count")?;
        let consistency = HeaderName::from_static("consistencylevel");
        let people = match self
            .client
            .get(count_url, &[(consistency, "eventual")])
            .await
        {
            Ok(r) if (200..300).contains(&r.status) => String::from_utf8_lossy(&r.body)
                .trim()
                .trim_start_matches('\u{feff}')
                .parse()
                .ok(),
            Ok(r) => {
                if r.status == 403 && read_users {
                    notes.push(format!(
                        "counting users failed: {}",
                        describe_error(&r.body)
                    ));
                }
                None
            }
            Err(e) => {
                notes.push(format!("counting users failed: {e}"));
                None
            }
        };
        let incremental = match self.latest_delta_link().await? {
            Some(_) => {
                "Graph delta query (/users/delta deltaLink; tokens last about 7 days)".to_owned()
            }
            None => "none: /users/delta refused; every sync is a full listing".to_owned(),
        };
        let sign_ins = match &self.app_id {
            None => {
                "none: app_id (the Confluence enterprise app's appId) is not configured".to_owned()
            }
            Some(app) => {
                let filter = format!("appId eq '{}'", app.replace('\'', "''"));
                let url = self.url("auditLogs/signIns", &[("$filter", &filter), ("$top", "1")])?;
                let r = self.client.get(url, &[]).await?;
                if (200..300).contains(&r.status) {
                    format!("/auditLogs/signIns for appId {app}")
                } else if r.status == 403 {
                    let why = describe_error(&r.body);
                    notes.push(format!("sign-in logs are not readable: {why}"));
                    format!("none: {why}")
                } else {
                    return Err(self.error_for(&r));
                }
            }
        };
        Ok(SourceCheck {
            kind: SourceKind::Entra,
            principal: format!("application {}", self.client_id),
            granted: roles,
            missing,
            people,
            last_login,
            sign_ins,
            incremental,
            notes,
        })
    }

    async fn list_identities(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceIdentity>, SourceError> {
        let mut cur: ListCursor = match cursor {
            None => ListCursor {
                phase: "users".into(),
                delta: self.latest_delta_link().await?,
                ..ListCursor::default()
            },
            Some(c) => serde_json::from_str(c).map_err(|e| bad_cursor("people", e))?,
        };
        let (page, deleted) = match cur.phase.as_str() {
            "users" => {
                let (page, sia) = self.users_page(&cur).await?;
                cur.sia = sia;
                (page, false)
            }
            "deleted" => {
                let url = match &cur.next {
                    Some(n) => self.client.follow(n)?,
                    None => self.deleted_url()?,
                };
                (self.page(url).await?, true)
            }
            other => return Err(bad_cursor("people", format!("unknown phase `{other}`"))),
        };
        let items = page
            .value
            .iter()
            .map(|v| self.identity(v, deleted))
            .collect::<Result<Vec<_>, _>>()?;
        let items = dedupe(items, |p| p.external_id.as_str());
        let next = match (page.next_link, deleted) {
            (Some(link), _) => Some(ListCursor {
                next: Some(link),
                ..cur
            }),
            (None, false) => Some(ListCursor {
                phase: "deleted".into(),
                next: None,
                ..cur
            }),
            (None, true) => {
                return Ok(SourcePage {
                    items,
                    next: None,
                    total: None,
                    checkpoint: cur.delta,
                });
            }
        };
        Ok(SourcePage {
            items,
            next: next.map(|c| encode(&c)),
            total: None,
            checkpoint: None,
        })
    }

    async fn list_groups(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceGroup>, SourceError> {
        let mut cur: GroupCursor = match cursor {
            None => GroupCursor::default(),
            Some(c) => serde_json::from_str(c).map_err(|e| bad_cursor("group", e))?,
        };
        let mut items = Vec::new();
        if cur.queue.is_empty() {
            let url = match (&cur.groups_next, cur.started) {
                (Some(n), _) => self.client.follow(n)?,
                (None, false) => self.url(
                    "groups",
                    &[
                        ("$select", "id,displayName"),
                        ("$top", &self.page_size.min(999).to_string()),
                    ],
                )?,
                (None, true) => return Ok(SourcePage::last(Vec::new())),
            };
            let page = self.page(url).await?;
            cur.started = true;
            cur.groups_next = page.next_link;
            for g in &page.value {
                let id = g
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|i| !i.is_empty())
                    .ok_or_else(|| SourceError::InvalidRecord {
                        detail: format!("a group without an id: {}", one_line(&g.to_string(), 200)),
                    })?;
                let name = g.get("displayName").and_then(Value::as_str).unwrap_or(id);
                if !cur.queue.iter().any(|(q, _)| q == id) {
                    cur.queue.push((id.to_owned(), name.to_owned()));
                }
            }
        }
        let mut done = 0;
        while let Some((gid, gname)) = cur.queue.first().cloned() {
            if done >= GROUPS_PER_CALL {
                break;
            }
            let url = match &cur.members_next {
                Some(n) => self.client.follow(n)?,
                None => self.url(
                    &format!("groups/{}/members/microsoft.graph.user", url_segment(&gid)),
                    &[("$select", "id"), ("$top", "999")],
                )?,
            };
            let page = self.page(url).await?;
            let mut seen = std::collections::HashSet::new();
            let members: Vec<String> = page
                .value
                .iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str))
                .filter(|id| seen.insert(*id))
                .map(str::to_owned)
                .collect();
            // Each member page is handed back as it comes, as a part of its group; the engine
            // joins the parts. Nothing of a group's membership rides in the cursor.
            items.push(SourceGroup {
                external_id: gid,
                name: gname,
                members,
            });
            match page.next_link {
                Some(n) => {
                    cur.members_next = Some(n);
                    break;
                }
                None => {
                    cur.members_next = None;
                    cur.queue.remove(0);
                    done += 1;
                }
            }
        }
        let finished = cur.queue.is_empty() && cur.groups_next.is_none();
        Ok(SourcePage {
            items,
            next: (!finished).then(|| encode(&cur)),
            total: None,
            checkpoint: None,
        })
    }

    async fn list_changes(
        &self,
        checkpoint: &str,
        cursor: Option<&str>,
    ) -> Result<SourcePage<Change>, SourceError> {
        let link = cursor.unwrap_or(checkpoint);
        if link.trim().is_empty() {
            return Err(SourceError::CheckpointExpired {
                detail: "the checkpoint is empty".into(),
            });
        }
        let url = self.client.follow(link)?;
        let resp = self.client.get(url, &[]).await?;
        if !(200..300).contains(&resp.status) {
            let code = graph_code(&resp.body)
                .unwrap_or_default()
                .to_ascii_lowercase();
            if resp.status == 410
                || (matches!(resp.status, 400 | 404 | 409)
                    && matches!(
                        code.as_str(),
                        "syncstatenotfound" | "resyncrequired" | "syncstateinvalid"
                    ))
            {
                return Err(SourceError::CheckpointExpired {
                    detail: format!(
                        "Graph answered {}: {}",
                        resp.status,
                        describe_error(&resp.body)
                    ),
                });
            }
            return Err(self.error_for(&resp));
        }
        let page = parse_page(&resp)?;
        let mut changes = Vec::with_capacity(page.value.len());
        for v in &page.value {
            if let Some(removed) = v.get("@removed") {
                let id = v
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|i| !i.is_empty())
                    .ok_or_else(|| SourceError::InvalidRecord {
                        detail: format!(
                            "a removed item without an id: {}",
                            one_line(&v.to_string(), 200)
                        ),
                    })?;
                let reason = removed
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("deleted");
                if reason == "changed" {
                    match self.refetch_soft_deleted(id).await? {
                        Some(p) => changes.push(Change::Upsert(Box::new(p))),
                        None => changes.push(Change::Removed {
                            external_id: id.to_owned(),
                            reason: "changed (soft-deleted, no longer found)".into(),
                        }),
                    }
                } else {
                    changes.push(Change::Removed {
                        external_id: id.to_owned(),
                        reason: reason.to_owned(),
                    });
                }
            } else {
                changes.push(Change::Upsert(Box::new(self.identity(v, false)?)));
            }
        }
        match (page.next_link, page.delta_link) {
            (Some(next), _) => Ok(SourcePage {
                items: changes,
                next: Some(next),
                total: None,
                checkpoint: None,
            }),
            (None, Some(delta)) => Ok(SourcePage {
                items: changes,
                next: None,
                total: None,
                checkpoint: Some(delta),
            }),
            (None, None) => Err(SourceError::UnexpectedBody {
                status: resp.status,
                detail: "a delta page with neither @odata.nextLink nor @odata.deltaLink".into(),
            }),
        }
    }

    async fn sign_ins(
        &self,
        checkpoint: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SignIn>, SourceError> {
        let Some(app) = &self.app_id else {
            return Err(SourceError::Unsupported {
                what: "sign-ins".into(),
                why: format!(
                    "sources.{}.app_id (the Confluence app's appId) is not set",
                    self.name
                ),
            });
        };
        let since = match checkpoint {
            Some(c) => DateTime::parse_from_rfc3339(c.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| SourceError::CheckpointExpired {
                    detail: format!(
                        "the sign-in checkpoint `{}` is not a time: {e}",
                        one_line(c, 60)
                    ),
                })?,
            None => self.clock.now() - chrono::Duration::days(SIGN_IN_LOOKBACK_DAYS),
        };
        let (url, mut newest) = match cursor {
            Some(c) => {
                let cur: SignInCursor =
                    serde_json::from_str(c).map_err(|e| bad_cursor("sign-in", e))?;
                (self.client.follow(&cur.next)?, cur.newest)
            }
            None => {
                let filter = format!(
                    "appId eq '{}' and createdDateTime ge {} and status/errorCode eq 0",
                    app.replace('\'', "''"),
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                (
                    self.url(
                        "auditLogs/signIns",
                        &[("$filter", &filter), ("$top", "1000")],
                    )?,
                    since,
                )
            }
        };
        let page = self.page(url).await?;
        let mut items = Vec::new();
        for v in &page.value {
            let ok = v.pointer("/status/errorCode").and_then(Value::as_i64) == Some(0);
            let same_app = v
                .get("appId")
                .and_then(Value::as_str)
                .is_some_and(|a| a.eq_ignore_ascii_case(app));
            let Some(at) = parse_time(v.get("createdDateTime")) else {
                return Err(SourceError::InvalidRecord {
                    detail: format!(
                        "a sign-in without createdDateTime: {}",
                        one_line(&v.to_string(), 200)
                    ),
                });
            };
            let Some(id) = v
                .get("id")
                .and_then(Value::as_str)
                .filter(|i| !i.is_empty())
            else {
                return Err(SourceError::InvalidRecord {
                    detail: format!("a sign-in without an id: {}", one_line(&v.to_string(), 200)),
                });
            };
            if !ok || !same_app || at < since {
                continue;
            }
            newest = newest.max(at);
            items.push(SignIn {
                event_id: id.to_owned(),
                external_id: v.get("userId").and_then(Value::as_str).map(str::to_owned),
                login: v
                    .get("userPrincipalName")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                at,
            });
        }
        let items = dedupe(items, |s| s.event_id.as_str());
        let stamp = newest.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        Ok(match page.next_link {
            Some(next) => SourcePage {
                items,
                next: Some(encode(&SignInCursor { next, newest })),
                total: None,
                checkpoint: None,
            },
            None => SourcePage {
                items,
                next: None,
                total: None,
                checkpoint: Some(stamp),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_in_hex_or_base64url_become_x5t_s256() {
        let hex = "8a6f2d776608fd6a724e17c5152c2dd47e3a5a9abbce4f0361162c63657766e8";
        let b64 = "im8td2YI_WpyThfFFSwt1H46Wpq7zk8DYRYsY2V3Zug";
        assert_eq!(thumbprint_s256(hex).unwrap(), b64);
        assert_eq!(thumbprint_s256(&hex.to_uppercase()).unwrap(), b64);
        assert_eq!(thumbprint_s256(b64).unwrap(), b64);
        assert!(thumbprint_s256("A1B2C3D4E5F60718293A4B5C6D7E8F9012345678").is_err());
        assert!(thumbprint_s256("not a thumbprint").is_err());
    }

    #[test]
    fn last_login_is_the_last_successful_sign_in_and_sentinels_mean_never() {
        let v = json!({"id": "1", "userPrincipalName": "a@x", "accountEnabled": true,
            "signInActivity": {"lastSignInDateTime": "2025-06-17T16:41:33Z",
                "lastSuccessfulSignInDateTime": "2025-01-02T03:04:05Z"}});
        let p = user_identity(&v, false, &[]).unwrap();
        assert_eq!(
            p.last_login_at.unwrap().to_rfc3339(),
            "2025-01-02T03:04:05+00:00"
        );
        assert_eq!(p.status, IdentityStatus::Active);
        let never = json!({"id": "2", "userPrincipalName": "b@x", "accountEnabled": false,
            "signInActivity": {"lastSignInDateTime": "0001-01-01T00:00:00Z",
                "lastSuccessfulSignInDateTime": "0001-01-01T00:00:00Z"}});
        let p = user_identity(&never, false, &[]).unwrap();
        assert_eq!(p.last_login_at, None);
        assert_eq!(p.raw_status, "accountEnabled=false");
        let no_status = json!({"id": "3", "userPrincipalName": "c@x"});
        assert_eq!(
            user_identity(&no_status, false, &[]).unwrap().status,
            IdentityStatus::Unknown
        );
        assert!(user_identity(&json!({"userPrincipalName": "d@x"}), false, &[]).is_err());
    }

    #[test]
    fn a_soft_deleted_users_upn_loses_the_id_prefix() {
        let v = json!({"id": "4c3f-11", "userPrincipalName": "4c3f11alice@contoso.example"});
        let p = user_identity(&v, true, &[]).unwrap();
        assert_eq!(p.login, "alice@contoso.example");
        assert_eq!(p.status, IdentityStatus::Deleted);
    }

    #[test]
    fn roles_are_read_from_the_token_payload_without_verifying() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"roles":["User.Read.All","AuditLog.Read.All"]}"#);
        assert_eq!(
            token_roles(&format!("x.{payload}.y")),
            vec!["User.Read.All", "AuditLog.Read.All"]
        );
        assert!(token_roles("garbage").is_empty());
    }

    #[test]
    fn a_repeated_id_on_one_page_is_kept_once() {
        let items = vec![("a", 1), ("b", 2), ("a", 3)];
        let out = dedupe(items, |x| x.0);
        assert_eq!(out, vec![("b", 2), ("a", 3)]);
    }
}
