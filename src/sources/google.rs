//! The Google Workspace connector: people from the Admin SDK Directory API (live users, then
//! deleted users, as one listing), groups with their direct user members, and successful
//! SAML sign-ins to the Confluence application from the Reports API. Authenticates as a
//! service account with domain-wide delegation (RFC 7523 JWT-bearer grant, `sub` = the
//! configured admin), read-only scopes.
//!
//! Cursors (opaque to the engine):
//! * identities: `live:<pageToken>`, then `deleted:` and `deleted:<pageToken>`: the live
//!   listing first, then `showDeleted=true`.
//! * groups: base64url JSON holding the next groups page token, the groups of the current
//!   page not yet finished, and the member page token of the first of them. A group is
//!   yielded once, with all its direct `USER` members, when its last member page is read;
//!   member pages before that are kept in memory, keyed by group, and pages in between carry
//!   no items.
//! * sign-ins: base64url JSON holding the start time, the newest event time seen, and the
//!   Reports page token.
//!
//! Groups are named by their email address (unique, and what admins type); members are the
//! direct members of `type: USER` (nested groups and `CUSTOMER` entries are not people). A
//! group deleted between its groups page and its members is left out.
//!
//! An empty answer: Google omits `users` when a page has none. On a later page of the live
//! listing or anywhere in the deleted listing that is a legal (terminal) page. On the first
//! page of the live listing it cannot be true, since the admin idbridge acts as is a user of
//! the account, so it is an error rather than an empty directory (which would make everyone
//! look like a leaver).
//!
//! Custom attributes (`custom_attributes`) are named as follows:
//! * a top-level scalar field of the user, e.g. `orgUnitPath`, `isAdmin`, `recoveryEmail`;
//! * `externalIds.<type>` (e.g. `externalIds.organization`; `customType` for `custom`);
//! * `customSchemas.<Schema>.<field>` (asks for `projection=custom` with that schema in
//!   `customFieldMask`); a multi-valued field's values are joined with `, `.
//!
//! Google has no modified-since filter on users, so there is no incremental listing: every
//! sync reads the whole directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::auth::{Auth, FormBuilder, SigningKey, TokenCache, epoch_now, one_line};
use super::http::{IdpClient, IdpSettings, Vendor, http_client};
use super::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
    status,
};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Secret, SourceConfig};
use crate::domain::{IdentityStatus, SourceKind};

/// Google's Admin SDK.
pub const DEFAULT_BASE_URL: &str = "https://admin.googleapis.com";
/// Directory users, read-only.
pub const SCOPE_USERS: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
/// Directory groups (and members), read-only.
pub const SCOPE_GROUPS: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
/// Reports API audit logs, read-only.
pub const SCOPE_REPORTS: &str = "https://www.googleapis.com/auth/admin.reports.audit.readonly";
/// Users per page Google allows at most.
pub const MAX_USERS_PAGE: u32 = 500;
/// Groups or members per page Google allows at most.
pub const MAX_GROUPS_PAGE: u32 = 200;
/// Reports events per page Google allows at most.
pub const MAX_EVENTS_PAGE: u32 = 1000;
/// How far back the Reports API looks.
pub const REPORTS_LOOKBACK_DAYS: i64 = 180;
/// `lastLoginTime` of someone who never signed in.
const NEVER: i64 = 0;

/// The service account key file's fields idbridge uses.
#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: String,
    private_key_id: String,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A Google Workspace source.
pub struct GoogleSource {
    name: String,
    client: IdpClient,
    client_email: String,
    subject: String,
    scopes: Vec<String>,
    customer: String,
    page_size: u32,
    app_name: Option<String>,
    attributes: Vec<String>,
    /// Schemas named by `customSchemas.*` attributes (`projection=custom`).
    custom_schemas: Vec<String>,
    clock: SharedClock,
    /// Member ids read so far of groups whose members span several pages.
    partial_members: Mutex<HashMap<String, Vec<String>>>,
}

impl std::fmt::Debug for GoogleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleSource")
            .field("name", &self.name)
            .field("client", &self.client)
            .field("client_email", &self.client_email)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl GoogleSource {
    /// The connector for source `name`.
    pub fn from_config(name: &str, cfg: &SourceConfig) -> Result<Self, SourceError> {
        Self::with_settings(name, cfg, IdpSettings::from_config(cfg))
    }

    /// The connector with explicit HTTP settings (tests use a short back-off).
    pub fn with_settings(
        name: &str,
        cfg: &SourceConfig,
        settings: IdpSettings,
    ) -> Result<Self, SourceError> {
        let cfg_err =
            |key: &str, what: String| SourceError::Config(format!("sources.{name}.{key}: {what}"));
        let key_secret = cfg.service_account_key.as_ref().ok_or_else(|| {
            cfg_err(
                "service_account_key",
                "required for Google Workspace".into(),
            )
        })?;
        // Never echo the key's content: serde's message names the position and the problem.
        let key: ServiceAccountKey = serde_json::from_str(key_secret.expose()).map_err(|e| {
            cfg_err(
                "service_account_key",
                format!(
                    "not a service account key JSON with client_email, private_key and private_key_id ({} problem at line {} column {})",
                    match e.classify() {
                        serde_json::error::Category::Io => "read",
                        serde_json::error::Category::Syntax => "syntax",
                        serde_json::error::Category::Data => "missing or mistyped field",
                        serde_json::error::Category::Eof => "truncated JSON",
                    },
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if key.client_email.trim().is_empty() || key.private_key_id.trim().is_empty() {
            return Err(cfg_err(
                "service_account_key",
                "client_email and private_key_id must not be empty".into(),
            ));
        }
        let signer = SigningKey::from_pem(&Secret::new(key.private_key.clone()), Algorithm::RS256)
            .map_err(|e| cfg_err("service_account_key", format!("private_key: {e}")))?;
        let subject = cfg
            .admin_subject
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                cfg_err(
                    "admin_subject",
                    "required for Google Workspace (the admin to act as)".into(),
                )
            })?;
        let token_url = cfg
            .token_url
            .clone()
            .or_else(|| key.token_uri.clone())
            .ok_or_else(|| {
                cfg_err(
                    "token_url",
                    "required when the service account key has no token_uri".into(),
                )
            })?;
        let token_url = Url::parse(&token_url)
            .map_err(|e| cfg_err("token_url", format!("`{token_url}` is not a URL: {e}")))?;
        // The assertion's audience is Google's token endpoint as the key names it.
        let audience = key
            .token_uri
            .clone()
            .unwrap_or_else(|| token_url.to_string());
        let scopes: Vec<String> = if cfg.scopes.is_empty() {
            vec![
                SCOPE_USERS.into(),
                SCOPE_GROUPS.into(),
                SCOPE_REPORTS.into(),
            ]
        } else {
            cfg.scopes.clone()
        };
        let form: FormBuilder = {
            let iss = key.client_email.clone();
            let kid = key.private_key_id.clone();
            let sub = subject.clone();
            let scope = scopes.join(" ");
            Box::new(move || {
                let iat = epoch_now();
                let claims = json!({
                    "iss": iss,
                    "sub": sub,
                    "scope": scope,
                    "aud": audience,
                    "iat": iat,
                    "exp": iat + 3600,
                });
                let assertion = signer.sign(&claims, Some(&kid), None)?;
                Ok(vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                    ),
                    ("assertion", assertion),
                ])
            })
        };
        let http = http_client(&settings)?;
        let cache = Arc::new(TokenCache::new(http.clone(), token_url, form));
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let client = IdpClient::new(http, base, Auth::OAuth(cache), Vendor::Google, settings)?;
        let custom_schemas: Vec<String> = {
            let mut v: Vec<String> = cfg
                .custom_attributes
                .iter()
                .filter_map(|a| a.strip_prefix("customSchemas."))
                .filter_map(|rest| rest.split('.').next())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            v.sort();
            v.dedup();
            v
        };
        Ok(GoogleSource {
            name: name.to_owned(),
            client,
            client_email: key.client_email,
            subject,
            scopes,
            customer: cfg
                .customer
                .clone()
                .filter(|c| !c.trim().is_empty())
                .unwrap_or_else(|| "my_customer".into()),
            page_size: cfg
                .page_size
                .unwrap_or(MAX_USERS_PAGE)
                .clamp(1, MAX_USERS_PAGE),
            app_name: cfg.app_name.clone().filter(|a| !a.trim().is_empty()),
            attributes: cfg.custom_attributes.clone(),
            custom_schemas,
            clock: Arc::new(SystemClock),
            partial_members: Mutex::new(HashMap::new()),
        })
    }

    /// The same connector reading the time from `clock` (the sign-in look-back clamp).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, SourceError> {
        let mut url = self.client.endpoint(path)?;
        url.query_pairs_mut().extend_pairs(query);
        Ok(url)
    }

    /// Adds what an admin can do about an error Google's answer means.
    fn explain(&self, e: SourceError) -> SourceError {
        let scopes = self.scopes.join(", ");
        match e {
            SourceError::Forbidden { detail } if detail.contains("unauthorized_client") => {
                SourceError::Forbidden {
                    detail: format!(
                        "{detail} (domain-wide delegation: in the Admin console, Security → API controls → Domain-wide delegation, authorise the client id of {} for: {scopes})",
                        self.client_email
                    ),
                }
            }
            SourceError::Unauthorized { detail } if detail.contains("Invalid email or User ID") => {
                SourceError::Unauthorized {
                    detail: format!(
                        "{detail} (sources.{}.admin_subject `{}` is not a user of this Workspace account)",
                        self.name, self.subject
                    ),
                }
            }
            SourceError::Unauthorized { detail } if detail.contains("Invalid JWT Signature") => {
                SourceError::Unauthorized {
                    detail: format!(
                        "{detail} (the service account key was not accepted: deleted or rotated key, or a key of another service account)"
                    ),
                }
            }
            SourceError::Forbidden { detail }
                if detail.contains("Not Authorized to access this resource/api") =>
            {
                SourceError::Forbidden {
                    detail: format!(
                        "{detail} (sources.{}.admin_subject `{}` must be an active admin allowed to read users, groups and reports)",
                        self.name, self.subject
                    ),
                }
            }
            SourceError::Forbidden { detail } if detail.contains("insufficientPermissions") => {
                SourceError::Forbidden {
                    detail: format!(
                        "{detail} (the token lacks a scope this call needs; idbridge asked for: {scopes})"
                    ),
                }
            }
            other => other,
        }
    }

    async fn get_json(&self, url: Url) -> Result<Value, SourceError> {
        self.client
            .get_json::<Value>(url, &[])
            .await
            .map(|(v, _)| v)
            .map_err(|e| self.explain(e))
    }

    fn parse_user(&self, v: &Value, deleted_phase: bool) -> Result<SourceIdentity, SourceError> {
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let id =
            s("id")
                .filter(|x| !x.trim().is_empty())
                .ok_or_else(|| SourceError::InvalidRecord {
                    detail: format!(
                        "a Google user without an id (primaryEmail {})",
                        s("primaryEmail")
                            .map_or("absent".into(), |e| format!("`{}`", one_line(e, 100)))
                    ),
                })?;
        let email = s("primaryEmail")
            .filter(|x| !x.trim().is_empty())
            .ok_or_else(|| SourceError::InvalidRecord {
                detail: format!("Google user {} has no primaryEmail", one_line(id, 40)),
            })?;
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        let raw = if deleted_phase || v.get("deletionTime").is_some() {
            "deleted".to_owned()
        } else if flag("archived") {
            "archived".to_owned()
        } else if flag("suspended") {
            match s("suspensionReason").filter(|r| !r.is_empty()) {
                Some(r) => format!("suspended:{r}"),
                None => "suspended".to_owned(),
            }
        } else {
            "active".to_owned()
        };
        let mut normalised = status::normalise(SourceKind::Google, &raw);
        if normalised == IdentityStatus::Unknown && raw.starts_with("suspended:") {
            // A suspension reason Google added after the table was written: still suspended.
            normalised = IdentityStatus::Suspended;
        }
        let mut out = SourceIdentity::new(id, email, normalised, raw);
        let mut seen = HashSet::new();
        seen.insert(email.to_lowercase());
        out.emails.push(email.to_owned());
        if let Some(list) = v.get("emails").and_then(Value::as_array) {
            for e in list {
                if let Some(addr) = e.get("address").and_then(Value::as_str)
                    && !addr.is_empty()
                    && seen.insert(addr.to_lowercase())
                {
                    out.emails.push(addr.to_owned());
                }
            }
        }
        if let Some(name) = v.get("name") {
            let n = |k: &str| {
                name.get(k)
                    .and_then(Value::as_str)
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
            };
            out.given_name = n("givenName");
            out.family_name = n("familyName");
            out.display_name = n("fullName").or_else(|| n("displayName"));
        }
        let time = |k: &str| -> Result<Option<DateTime<Utc>>, SourceError> {
            match s(k) {
                None | Some("") => Ok(None),
                Some(t) => DateTime::parse_from_rfc3339(t)
                    .map(|d| Some(d.with_timezone(&Utc)))
                    .map_err(|e| SourceError::InvalidRecord {
                        detail: format!(
                            "Google user {}: {k} `{}` is not a time ({e})",
                            one_line(id, 40),
                            one_line(t, 40)
                        ),
                    }),
            }
        };
        out.created_at = time("creationTime")?;
        out.last_login_at = time("lastLoginTime")?.filter(|t| t.timestamp() > NEVER);
        out.attributes = self.attributes_of(v);
        Ok(out)
    }

    fn attributes_of(&self, v: &Value) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let scalar = |x: &Value| -> Option<String> {
            match x {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                Value::Array(items) => {
                    let vals: Vec<String> = items
                        .iter()
                        .filter_map(|i| match i {
                            Value::Object(_) => i.get("value").and_then(|x| match x {
                                Value::String(s) => Some(s.clone()),
                                Value::Null => None,
                                other => Some(other.to_string()),
                            }),
                            Value::String(s) => Some(s.clone()),
                            Value::Null => None,
                            other => Some(other.to_string()),
                        })
                        .collect();
                    (!vals.is_empty()).then(|| vals.join(", "))
                }
                _ => None,
            }
        };
        for attr in &self.attributes {
            let value = if let Some(kind) = attr.strip_prefix("externalIds.") {
                v.get("externalIds")
                    .and_then(Value::as_array)
                    .and_then(|ids| {
                        ids.iter().find_map(|e| {
                            let t = e.get("type").and_then(Value::as_str).unwrap_or("");
                            let ct = e.get("customType").and_then(Value::as_str).unwrap_or("");
                            let hit = t == kind || (t == "custom" && ct == kind);
                            hit.then(|| e.get("value").and_then(Value::as_str).map(str::to_owned))
                                .flatten()
                        })
                    })
            } else if let Some(rest) = attr.strip_prefix("customSchemas.") {
                rest.split_once('.').and_then(|(schema, field)| {
                    v.get("customSchemas")
                        .and_then(|c| c.get(schema))
                        .and_then(|s| s.get(field))
                        .and_then(scalar)
                })
            } else {
                v.get(attr.as_str()).and_then(scalar)
            };
            if let Some(val) = value {
                out.insert(attr.clone(), val);
            }
        }
        out
    }

    fn users_url(&self, deleted: bool, token: Option<&str>) -> Result<Url, SourceError> {
        let size = self.page_size.to_string();
        let mask = self.custom_schemas.join(",");
        let mut q: Vec<(&str, &str)> = vec![("customer", &self.customer), ("maxResults", &size)];
        if self.custom_schemas.is_empty() {
            q.push(("projection", "basic"));
        } else {
            q.push(("projection", "custom"));
            q.push(("customFieldMask", &mask));
        }
        if deleted {
            q.push(("showDeleted", "true"));
        }
        if let Some(t) = token {
            q.push(("pageToken", t));
        }
        self.url("admin/directory/v1/users", &q)
    }

    fn reports_url(
        &self,
        app: &str,
        start: &str,
        max: u32,
        token: Option<&str>,
    ) -> Result<Url, SourceError> {
        let filters = format!("application_name=={app}");
        let max = max.to_string();
        let mut q: Vec<(&str, &str)> = vec![
            ("eventName", "login_success"),
            ("startTime", start),
            ("filters", &filters),
            ("maxResults", &max),
        ];
        if let Some(t) = token {
            q.push(("pageToken", t));
        }
        self.url("admin/reports/v1/activity/users/all/applications/saml", &q)
    }

    /// The earliest start time the Reports API accepts, with an hour to spare.
    fn oldest_start(&self) -> DateTime<Utc> {
        self.clock.now() - chrono::Duration::days(REPORTS_LOOKBACK_DAYS)
            + chrono::Duration::hours(1)
    }
}

/// Whether a page answer carries a next page token (an empty string is none).
fn next_token(v: &Value) -> Result<Option<String>, SourceError> {
    match v.get("nextPageToken") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(SourceError::UnexpectedBody {
            status: 200,
            detail: format!(
                "nextPageToken is not a string: {}",
                one_line(&other.to_string(), 80)
            ),
        }),
    }
}

/// The array under `key`: absent means none (Google omits empty lists); anything else but an
/// array is an error.
fn items<'a>(v: &'a Value, key: &str, kind: &str) -> Result<&'a [Value], SourceError> {
    if !v.is_object() {
        return Err(SourceError::UnexpectedBody {
            status: 200,
            detail: format!(
                "expected a {kind} object, got {}",
                one_line(&v.to_string(), 80)
            ),
        });
    }
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(SourceError::UnexpectedBody {
            status: 200,
            detail: format!("`{key}` in a {kind} answer is not a list"),
        }),
    }
}

fn encode<T: Serialize>(v: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default())
}

fn decode<T: for<'de> Deserialize<'de>>(cursor: &str, what: &str) -> Result<T, SourceError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            SourceError::Config(format!(
                "the {what} cursor `{}` is not one this connector handed out",
                one_line(cursor, 60)
            ))
        })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct GroupCursor {
    /// The page token of the groups page after the current one (`None`: current is last).
    #[serde(rename = "g")]
    groups_token: Option<String>,
    /// Groups of the current page not yet finished: `(id, name)`, the first in progress.
    #[serde(rename = "p")]
    pending: Vec<(String, String)>,
    /// The member page token of the first pending group (`None`: its first page).
    #[serde(rename = "m")]
    members_token: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SignInCursor {
    #[serde(rename = "s")]
    start: String,
    /// The newest event time seen so far in this poll.
    #[serde(rename = "n")]
    newest: Option<String>,
    #[serde(rename = "t")]
    token: String,
}

impl Source for GoogleSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Google
    }

    async fn check(&self) -> Result<SourceCheck, SourceError> {
        let Auth::OAuth(cache) = self.client.auth() else {
            return Err(SourceError::Config(
                "the Google client has no token source".into(),
            ));
        };
        let token = cache.token().await.map_err(|e| self.explain(e))?;
        let mut missing = Vec::new();
        let mut notes = Vec::new();
        let mut granted: Vec<String> = if token.scopes.is_empty() {
            self.scopes.clone()
        } else {
            token.scopes.clone()
        };
        // Users: the admin subject must be allowed to read them.
        let url = self.url(
            "admin/directory/v1/users",
            &[
                ("customer", &self.customer),
                ("maxResults", "1"),
                ("projection", "basic"),
            ],
        )?;
        let users = self.get_json(url).await?;
        let first = items(&users, "users", "users")?;
        let last_login = match first.first() {
            Some(u) if u.get("lastLoginTime").is_some() => {
                "Directory `lastLoginTime` (last Google account sign-in, any application; 1970-01-01 means never)".to_owned()
            }
            Some(_) => {
                notes.push("users carry no lastLoginTime; last sign-ins come from the Reports API only".into());
                "not in the user records".to_owned()
            }
            None => {
                notes.push("the user listing came back empty; a Workspace account always holds at least its admin".into());
                "unknown (no users listed)".to_owned()
            }
        };
        // Groups.
        let url = self.url(
            "admin/directory/v1/groups",
            &[("customer", &self.customer), ("maxResults", "1")],
        )?;
        match self.get_json(url).await {
            Ok(_) => {}
            Err(SourceError::Forbidden { detail }) => {
                granted.retain(|s| s != SCOPE_GROUPS);
                missing.push(format!(
                    "{SCOPE_GROUPS}: group memberships are not read ({detail})"
                ));
            }
            Err(e) => return Err(e),
        }
        // Reports.
        let sign_ins = match &self.app_name {
            None => {
                "not configured: set app_name to the SAML app's name as the Reports API shows it (e.g. `Atlassian Cloud`)".to_owned()
            }
            Some(app) => {
                let start = self
                    .oldest_start()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let url = self.reports_url(app, &start, 1, None)?;
                match self.get_json(url).await {
                    Ok(v) => {
                        let seen = items(&v, "items", "activities")?.len();
                        if seen == 0 {
                            notes.push(format!(
                                "no SAML login_success to `{app}` in the last {REPORTS_LOOKBACK_DAYS} days: check that app_name matches the application_name the Reports API shows"
                            ));
                        }
                        format!(
                            "Reports API, SAML login_success events with application_name `{app}` (up to {REPORTS_LOOKBACK_DAYS} days back)"
                        )
                    }
                    Err(SourceError::Forbidden { detail }) => {
                        granted.retain(|s| s != SCOPE_REPORTS);
                        missing.push(format!(
                            "{SCOPE_REPORTS}: sign-ins to `{app}` are not read ({detail})"
                        ));
                        "unavailable (the Reports API refused)".to_owned()
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        notes.push("Google does not announce a user count; a full listing counts everyone".into());
        Ok(SourceCheck {
            kind: SourceKind::Google,
            principal: format!("{} acting as {}", self.client_email, self.subject),
            granted,
            missing,
            people: None,
            last_login,
            sign_ins,
            incremental: "none: the Directory API has no modified-since filter for users, so every sync is a full scan".into(),
            notes,
        })
    }

    async fn list_identities(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceIdentity>, SourceError> {
        let (deleted, token) = match cursor {
            None => (false, None),
            Some(c) => match c.split_once(':') {
                Some(("live", t)) if !t.is_empty() => (false, Some(t)),
                Some(("deleted", "")) => (true, None),
                Some(("deleted", t)) => (true, Some(t)),
                _ => {
                    return Err(SourceError::Config(format!(
                        "the identities cursor `{}` is not one this connector handed out",
                        one_line(c, 60)
                    )));
                }
            },
        };
        let url = self.users_url(deleted, token)?;
        let page = match self.get_json(url).await {
            Err(SourceError::Unavailable {
                status,
                attempts,
                detail,
            }) if token.is_some() && detail.starts_with("backendError") => {
                return Err(SourceError::Unavailable {
                    status,
                    attempts,
                    detail: format!(
                        "{detail} (on a later page Google answers this once paging has taken over an hour and its page tokens have expired; the listing must start again)"
                    ),
                });
            }
            other => other?,
        };
        let users = items(&page, "users", "users")?;
        let next_tok = next_token(&page)?;
        if !deleted && token.is_none() && users.is_empty() {
            // The admin idbridge acts as is a user of the account, so a first page without
            // users is not an empty directory but a wrong answer (or a wrong customer).
            return Err(SourceError::UnexpectedBody {
                status: 200,
                detail: format!(
                    "Google listed no users for customer `{}`, though admin {} is one; refusing to report an empty directory",
                    self.customer, self.subject
                ),
            });
        }
        let items = users
            .iter()
            .map(|u| self.parse_user(u, deleted))
            .collect::<Result<Vec<_>, _>>()?;
        let next = match (deleted, next_tok) {
            (false, Some(t)) => Some(format!("live:{t}")),
            (false, None) => Some("deleted:".to_owned()),
            (true, Some(t)) => Some(format!("deleted:{t}")),
            (true, None) => None,
        };
        Ok(SourcePage {
            items,
            next,
            total: None,
            checkpoint: None,
        })
    }

    async fn list_groups(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceGroup>, SourceError> {
        let size = MAX_GROUPS_PAGE.min(self.page_size.max(1)).to_string();
        let mut state = match cursor {
            Some(c) => decode::<GroupCursor>(c, "groups")?,
            None => GroupCursor {
                groups_token: Some(String::new()),
                pending: Vec::new(),
                members_token: None,
            },
        };
        if state.pending.is_empty() {
            // Read the next page of groups; `Some("")` is the first.
            let Some(tok) = state.groups_token.take() else {
                return Ok(SourcePage::last(Vec::new()));
            };
            let mut q: Vec<(&str, &str)> =
                vec![("customer", &self.customer), ("maxResults", &size)];
            if !tok.is_empty() {
                q.push(("pageToken", &tok));
            }
            let page = self
                .get_json(self.url("admin/directory/v1/groups", &q)?)
                .await?;
            let mut pending = Vec::new();
            for g in items(&page, "groups", "groups")? {
                let id = g
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|x| !x.is_empty())
                    .ok_or_else(|| SourceError::InvalidRecord {
                        detail: "a Google group without an id".into(),
                    })?;
                let name = g
                    .get("email")
                    .or_else(|| g.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or(id);
                pending.push((id.to_owned(), name.to_owned()));
            }
            let next = GroupCursor {
                groups_token: next_token(&page)?,
                pending,
                members_token: None,
            };
            let done = next.pending.is_empty() && next.groups_token.is_none();
            return Ok(SourcePage {
                items: Vec::new(),
                next: (!done).then(|| encode(&next)),
                total: None,
                checkpoint: None,
            });
        }
        let (gid, gname) = state.pending[0].clone();
        let buffers = || {
            self.partial_members
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if state.members_token.is_some() && !buffers().contains_key(&gid) {
            // The members read before are gone (a restart): read this group again.
            state.members_token = None;
            return Ok(SourcePage {
                items: Vec::new(),
                next: Some(encode(&state)),
                total: None,
                checkpoint: None,
            });
        }
        let mut q: Vec<(&str, &str)> = vec![("maxResults", &size)];
        if let Some(t) = &state.members_token {
            q.push(("pageToken", t));
        }
        let path = format!(
            "admin/directory/v1/groups/{}/members",
            url::form_urlencoded::byte_serialize(gid.as_bytes()).collect::<String>()
        );
        let page = match self.get_json(self.url(&path, &q)?).await {
            Ok(p) => p,
            Err(SourceError::NotFound { what }) => {
                // Deleted since its groups page was read: it is simply not there any more.
                tracing::info!(source = %self.name, group = %gid, detail = %what, "group vanished while listing");
                buffers().remove(&gid);
                state.pending.remove(0);
                state.members_token = None;
                let done = state.pending.is_empty() && state.groups_token.is_none();
                return Ok(SourcePage {
                    items: Vec::new(),
                    next: (!done).then(|| encode(&state)),
                    total: None,
                    checkpoint: None,
                });
            }
            Err(e) => return Err(e),
        };
        let mut ids: Vec<String> = items(&page, "members", "members")?
            .iter()
            .filter(|m| m.get("type").and_then(Value::as_str) == Some("USER"))
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let members_next = next_token(&page)?;
        let first_page = state.members_token.is_none();
        let mut out = Vec::new();
        {
            let mut buf = buffers();
            if first_page {
                buf.remove(&gid);
            }
            match members_next {
                Some(t) => {
                    buf.entry(gid.clone()).or_default().append(&mut ids);
                    state.members_token = Some(t);
                }
                None => {
                    let mut all = buf.remove(&gid).unwrap_or_default();
                    all.append(&mut ids);
                    let mut seen = HashSet::new();
                    all.retain(|id| seen.insert(id.clone()));
                    out.push(SourceGroup {
                        external_id: gid,
                        name: gname,
                        members: all,
                    });
                    state.pending.remove(0);
                    state.members_token = None;
                }
            }
        }
        let done = state.pending.is_empty() && state.groups_token.is_none();
        Ok(SourcePage {
            items: out,
            next: (!done).then(|| encode(&state)),
            total: None,
            checkpoint: None,
        })
    }

    async fn list_changes(
        &self,
        _checkpoint: &str,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<Change>, SourceError> {
        Err(SourceError::Unsupported {
            what: "an incremental listing of Google users".into(),
            why: "the Directory API has no modified-since filter for users; every sync reads the whole directory".into(),
        })
    }

    async fn sign_ins(
        &self,
        checkpoint: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SignIn>, SourceError> {
        let Some(app) = &self.app_name else {
            return Err(SourceError::Unsupported {
                what: "sign-ins to Confluence".into(),
                why: format!(
                    "sources.{}.app_name is not set (the SAML app's name as the Reports API shows it)",
                    self.name
                ),
            });
        };
        let state = match cursor {
            Some(c) => decode::<SignInCursor>(c, "sign-ins")?,
            None => {
                let oldest = self.oldest_start();
                let start = match checkpoint {
                    None => oldest,
                    Some(cp) => DateTime::parse_from_rfc3339(cp)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| SourceError::CheckpointExpired {
                            detail: format!("`{}` is not a time: {e}", one_line(cp, 60)),
                        })?
                        .max(oldest),
                };
                SignInCursor {
                    start: start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    newest: None,
                    token: String::new(),
                }
            }
        };
        let token = (!state.token.is_empty()).then_some(state.token.as_str());
        let url = self.reports_url(app, &state.start, MAX_EVENTS_PAGE, token)?;
        let page = self.get_json(url).await?;
        let mut newest = state
            .newest
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let mut out = Vec::new();
        for item in items(&page, "items", "activities")? {
            let id = item.get("id");
            let time = id.and_then(|i| i.get("time")).and_then(Value::as_str);
            let uq = id.and_then(|i| i.get("uniqueQualifier")).and_then(|q| {
                q.as_str()
                    .map(str::to_owned)
                    .or_else(|| q.as_i64().map(|n| n.to_string()))
            });
            let (Some(time), Some(uq)) = (time, uq) else {
                return Err(SourceError::InvalidRecord {
                    detail: "a Reports activity without id.time and id.uniqueQualifier".into(),
                });
            };
            let at = DateTime::parse_from_rfc3339(time)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| SourceError::InvalidRecord {
                    detail: format!("activity time `{}`: {e}", one_line(time, 40)),
                })?;
            newest = Some(newest.map_or(at, |n| n.max(at)));
            let events = item.get("events").and_then(Value::as_array);
            let success = events.is_some_and(|evs| {
                evs.iter().any(|e| {
                    e.get("name").and_then(Value::as_str) == Some("login_success")
                        && e.get("parameters")
                            .and_then(Value::as_array)
                            .is_some_and(|ps| {
                                ps.iter().any(|p| {
                                    p.get("name").and_then(Value::as_str)
                                        == Some("application_name")
                                        && p.get("value").and_then(Value::as_str)
                                            == Some(app.as_str())
                                })
                            })
                })
            });
            if !success {
                continue;
            }
            let actor = item.get("actor");
            let a = |k: &str| {
                actor
                    .and_then(|x| x.get(k))
                    .and_then(Value::as_str)
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
            };
            out.push(SignIn {
                event_id: format!("{time}/{uq}"),
                external_id: a("profileId"),
                login: a("email"),
                at,
            });
        }
        let newest_text = newest.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        match next_token(&page)? {
            Some(t) => Ok(SourcePage {
                items: out,
                next: Some(encode(&SignInCursor {
                    start: state.start,
                    newest: newest_text,
                    token: t,
                })),
                total: None,
                checkpoint: None,
            }),
            None => Ok(SourcePage {
                items: out,
                next: None,
                total: None,
                // Nothing new: keep where this poll started.
                checkpoint: Some(newest_text.unwrap_or(state.start)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(attrs: &[&str]) -> GoogleSource {
        let mut cfg = SourceConfig::new(SourceKind::Google);
        let key = json!({
            "client_email": "reader@p.iam.gserviceaccount.com",
            "private_key": include_str!("../../tests/fixtures/google/demo-service-account.pem"),
            "private_key_id": "k1",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        cfg.service_account_key = Some(Secret::new(key.to_string()));
        cfg.admin_subject = Some("admin@example.com".into());
        cfg.custom_attributes = attrs.iter().map(|s| (*s).to_owned()).collect();
        GoogleSource::from_config("g", &cfg).expect("config")
    }

    #[test]
    fn statuses_spell_google_table_keys_and_unknown_reasons_stay_suspended() {
        let s = source(&[]);
        let base = json!({"id": "1", "primaryEmail": "a@example.com"});
        let with = |extra: Value| {
            let mut v = base.clone();
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            s.parse_user(&v, false).unwrap()
        };
        let u = with(json!({"suspended": false}));
        assert_eq!(
            (u.raw_status.as_str(), u.status),
            ("active", IdentityStatus::Active)
        );
        let u = with(json!({"suspended": true, "suspensionReason": "ADMIN"}));
        assert_eq!(u.raw_status, "suspended:ADMIN");
        assert_eq!(u.status, IdentityStatus::Suspended);
        let u = with(json!({"suspended": true, "suspensionReason": "SOMETHING_NEW"}));
        assert_eq!(u.raw_status, "suspended:SOMETHING_NEW");
        assert_eq!(u.status, IdentityStatus::Suspended);
        let u = with(json!({"archived": true}));
        assert_eq!(u.status, IdentityStatus::Deprovisioned);
        let u = s.parse_user(&base, true).unwrap();
        assert_eq!(
            (u.raw_status.as_str(), u.status),
            ("deleted", IdentityStatus::Deleted)
        );
    }

    #[test]
    fn the_1970_last_login_means_never_and_a_bad_time_is_an_error() {
        let s = source(&[]);
        let u = s
            .parse_user(
                &json!({"id": "1", "primaryEmail": "a@x", "lastLoginTime": "1970-01-01T00:00:00.000Z"}),
                false,
            )
            .unwrap();
        assert_eq!(u.last_login_at, None);
        let err = s
            .parse_user(
                &json!({"id": "1", "primaryEmail": "a@x", "lastLoginTime": "yesterday"}),
                false,
            )
            .unwrap_err();
        assert!(err.to_string().contains("lastLoginTime"), "{err}");
    }

    #[test]
    fn custom_attributes_read_top_level_fields_external_ids_and_custom_schemas() {
        let s = source(&[
            "orgUnitPath",
            "externalIds.organization",
            "externalIds.badge",
            "customSchemas.Employment.costCenter",
            "customSchemas.Employment.projects",
            "customSchemas.Missing.field",
        ]);
        assert_eq!(s.custom_schemas, vec!["Employment", "Missing"]);
        let u = s
            .parse_user(
                &json!({
                    "id": "1", "primaryEmail": "a@x", "orgUnitPath": "/Eng",
                    "externalIds": [{"value": "E-1", "type": "organization"},
                                    {"value": "B-7", "type": "custom", "customType": "badge"}],
                    "customSchemas": {"Employment": {"costCenter": "CC-1",
                        "projects": [{"value": "wiki"}, {"value": "sso"}]}}
                }),
                false,
            )
            .unwrap();
        let got: Vec<(&str, &str)> = u
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("customSchemas.Employment.costCenter", "CC-1"),
                ("customSchemas.Employment.projects", "wiki, sso"),
                ("externalIds.badge", "B-7"),
                ("externalIds.organization", "E-1"),
                ("orgUnitPath", "/Eng"),
            ]
        );
    }

    #[test]
    fn a_key_that_is_not_json_is_a_configuration_error_that_does_not_echo_it() {
        let mut cfg = SourceConfig::new(SourceKind::Google);
        cfg.service_account_key = Some(Secret::new("-----BEGIN PRIVATE KEY----- secret"));
        cfg.admin_subject = Some("admin@example.com".into());
        let err = GoogleSource::from_config("g", &cfg).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sources.g.service_account_key"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
