//! The Okta connector: people from `GET /api/v1/users` (with a `lastUpdated` filter, because
//! the unfiltered list hides DEPROVISIONED users), groups and their members, incremental
//! changes through `filter=lastUpdated gt …`, and successful SSO sign-ins to the Confluence
//! app from System Log polling requests. Authenticates with an SSWS API token or an OAuth
//! service app (`client_credentials` with a `private_key_jwt` assertion, no Basic auth), and
//! keeps to its configured share of each Okta rate-limit bucket.
//!
//! Incremental listings end with deletions read from the System Log
//! (`user.lifecycle.delete.initiated`), since deleted users simply vanish from user lists.
//!
//! Cursors it returns are the `Link rel="next"` URLs Okta sent (followed as given, never
//! rebuilt, so an opaque `after` is passed through unchanged); user listings wrap the link in
//! a small JSON object that also carries the sync start for the terminal checkpoint.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::auth::{Auth, FormBuilder, SigningKey, TokenCache, epoch_now, one_line, random_jti};
use super::http::{IdpClient, IdpSettings, Response, Vendor, http_client};
use super::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
    status,
};
use std::sync::Arc;

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{Secret, SourceConfig};
use crate::domain::SourceKind;

/// The scopes asked for unless the configuration names others.
pub const DEFAULT_SCOPES: &[&str] = &["okta.users.read", "okta.groups.read", "okta.logs.read"];

/// A group member as far as a membership listing needs it.
#[derive(serde::Deserialize)]
struct MemberRef {
    #[serde(default)]
    id: Option<String>,
}

/// Okta's largest user page.
const MAX_USER_PAGE: u32 = 200;
/// Groups per groups page (each group's members are read in full on the same call).
const GROUP_PAGE: u32 = 100;
/// Members per group-members page: Okta's default and largest for this call (its docs
/// recommend 200 for latency; a sync reads whole groups, so fewer round trips win).
const MEMBER_PAGE: u32 = 1000;
/// System Log events per page (Okta's maximum).
const LOG_PAGE: u32 = 1000;
/// Member pages of one group before the listing is declared a runaway.
const MAX_MEMBER_PAGES: usize = 100_000;
/// How far before a checkpoint an incremental listing starts, for clock skew and for
/// records committed out of order.
const SKEW: chrono::Duration = chrono::Duration::minutes(5);
/// First sign-in poll without a checkpoint: Okta's own default look-back.
const DEFAULT_LOOKBACK: chrono::Duration = chrono::Duration::days(7);
/// How long Okta keeps System Log events: an incremental listing from an older checkpoint
/// cannot see every deletion.
const LOG_RETENTION: chrono::Duration = chrono::Duration::days(90);
/// Okta refuses `since` more than 180 days back; stay a day inside.
const MAX_LOOKBACK: chrono::Duration = chrono::Duration::days(179);

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Okta org as an identity source.
#[derive(Debug)]
pub struct OktaSource {
    name: String,
    client: IdpClient,
    app_id: Option<String>,
    page_size: u32,
    custom_attributes: Vec<String>,
    /// The service app's client id, when OAuth is used.
    client_id: Option<String>,
    scopes: Vec<String>,
    /// Where "now" comes from (sign-in look-back windows, checkpoint age).
    clock: SharedClock,
}

/// Where a user listing stands: Okta's next link and when the listing began (Okta's clock).
#[derive(Debug, Serialize, Deserialize)]
struct UsersCursor {
    next: String,
    start: String,
    /// An incremental listing past its user pages, reading deletions from the System Log.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deletions: bool,
}

impl OktaSource {
    /// The connector for source `name`.
    pub fn from_config(name: &str, cfg: &SourceConfig) -> Result<Self, SourceError> {
        Self::from_config_with(name, cfg, IdpSettings::from_config(cfg))
    }

    /// The connector for source `name` with explicit HTTP settings (tests shorten back-offs);
    /// the budget share always comes from `rate_limit_share`.
    pub fn from_config_with(
        name: &str,
        cfg: &SourceConfig,
        mut settings: IdpSettings,
    ) -> Result<Self, SourceError> {
        let base = cfg.base_url.as_deref().ok_or_else(|| {
            SourceError::Config(format!("sources.{name}.base_url: required for Okta"))
        })?;
        let base_url = Url::parse(base)
            .map_err(|e| SourceError::Config(format!("sources.{name}.base_url: {e}")))?;
        if !(cfg.rate_limit_share > 0.0 && cfg.rate_limit_share <= 1.0) {
            return Err(SourceError::Config(format!(
                "sources.{name}.rate_limit_share: must be above 0 and at most 1"
            )));
        }
        settings.budget_share = Some(cfg.rate_limit_share);
        let http = http_client(&settings)?;
        let scopes: Vec<String> = if cfg.scopes.is_empty() {
            DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
        } else {
            cfg.scopes.clone()
        };
        let (auth, client_id) = match (&cfg.client_id, &cfg.private_key, &cfg.token) {
            (Some(client_id), Some(pem), _) => {
                let key = signing_key(pem)
                    .map_err(|e| SourceError::Config(format!("sources.{name}.private_key: {e}")))?;
                let token_url = match &cfg.token_url {
                    Some(t) => Url::parse(t).map_err(|e| {
                        SourceError::Config(format!("sources.{name}.token_url: {e}"))
                    })?,
                    None => base_url.join("/oauth2/v1/token").map_err(|e| {
                        SourceError::Config(format!("sources.{name}.base_url: {e}"))
                    })?,
                };
                let form = assertion_form(
                    key,
                    client_id.clone(),
                    cfg.key_id.clone(),
                    token_url.to_string(),
                    scopes.join(" "),
                );
                let cache = TokenCache::new(http.clone(), token_url, form);
                (
                    Auth::OAuth(std::sync::Arc::new(cache)),
                    Some(client_id.clone()),
                )
            }
            (_, _, Some(token)) => {
                let raw = token.expose().trim();
                let raw = raw.strip_prefix("SSWS ").unwrap_or(raw).trim();
                if raw.is_empty() {
                    return Err(SourceError::Config(format!("sources.{name}.token: empty")));
                }
                (Auth::Header(Secret::new(format!("SSWS {raw}"))), None)
            }
            _ => {
                return Err(SourceError::Config(format!(
                    "sources.{name}: Okta needs a token (SSWS) or client_id and private_key"
                )));
            }
        };
        let client = IdpClient::new(http, base, auth, Vendor::Okta, settings)?;
        Ok(OktaSource {
            name: name.to_owned(),
            client,
            app_id: cfg.app_id.clone().filter(|a| !a.trim().is_empty()),
            page_size: cfg
                .page_size
                .unwrap_or(MAX_USER_PAGE)
                .clamp(1, MAX_USER_PAGE),
            custom_attributes: cfg.custom_attributes.clone(),
            client_id,
            scopes,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same connector reading the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn users_url(&self, since: Option<DateTime<Utc>>) -> Result<Url, SourceError> {
        let since = since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let mut url = self.client.endpoint("api/v1/users")?;
        url.query_pairs_mut()
            .append_pair("limit", &self.page_size.to_string())
            .append_pair(
                "filter",
                &format!("lastUpdated gt \"{}\"", okta_time(since)),
            );
        Ok(url)
    }

    fn parse_cursor(&self, c: &str) -> Result<UsersCursor, SourceError> {
        serde_json::from_str(c).map_err(|e| SourceError::InvalidRecord {
            detail: format!(
                "sources.{}: the cursor `{}` is not one this connector made: {e}",
                self.name,
                one_line(c, 120)
            ),
        })
    }

    /// One page of deletions (`user.lifecycle.delete.initiated`) from the System Log, the
    /// last part of an incremental listing. Without `okta.logs.read` the listing ends here
    /// (the next full sync finds who is gone).
    async fn deletions_page(&self, c: UsersCursor) -> Result<SourcePage<Change>, SourceError> {
        let url = self.client.follow(&c.next)?;
        let resp = self.client.get(url, &[]).await?;
        let done = |items: Vec<Change>, start: String| SourcePage {
            items,
            next: None,
            total: None,
            checkpoint: Some(start),
        };
        if resp.status == 403 {
            tracing::warn!(source = %self.name, "no okta.logs.read: deletions are not read incrementally; the next full sync finds them");
            return Ok(done(Vec::new(), c.start));
        }
        if !(200..300).contains(&resp.status) {
            return Err(self.client.error_for(&resp));
        }
        let raw: Vec<Value> = resp.json()?;
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for e in &raw {
            let deleted = e.get("eventType").and_then(Value::as_str)
                == Some("user.lifecycle.delete.initiated")
                && e.pointer("/outcome/result").and_then(Value::as_str) == Some("SUCCESS");
            if !deleted {
                continue;
            }
            let targets = e.get("target").and_then(Value::as_array);
            let user = targets.and_then(|ts| {
                ts.iter()
                    .find(|t| t.get("type").and_then(Value::as_str) == Some("User"))
                    .and_then(|t| text(t, "id"))
            });
            if let Some(id) = user
                && seen.insert(id.clone())
            {
                let when = text(e, "published").unwrap_or_default();
                items.push(Change::Removed {
                    external_id: id,
                    reason: format!(
                        "deleted in Okta (System Log user.lifecycle.delete.initiated {when})"
                    ),
                });
            }
        }
        match next_link(&resp) {
            Some(n) if !raw.is_empty() => {
                let cursor = serde_json::to_string(&UsersCursor {
                    next: n,
                    start: c.start,
                    deletions: true,
                })
                .map_err(|e| SourceError::Config(format!("cannot write a cursor: {e}")))?;
                Ok(SourcePage {
                    items,
                    next: Some(cursor),
                    total: None,
                    checkpoint: None,
                })
            }
            _ => Ok(done(items, c.start)),
        }
    }

    /// One page of users: the first from `first`, later ones from the cursor.
    async fn users_page(
        &self,
        cursor: Option<&str>,
        first: impl FnOnce() -> Result<Url, SourceError>,
    ) -> Result<(Vec<SourceIdentity>, Option<String>, String), SourceError> {
        let (url, start) = match cursor {
            Some(c) => {
                let c = self.parse_cursor(c)?;
                (self.client.follow(&c.next)?, Some(c.start))
            }
            None => (first()?, None),
        };
        let (raw, resp): (Vec<Value>, Response) = self.client.get_json(url, &[]).await?;
        let start = start.unwrap_or_else(|| okta_time(server_now(&resp)));
        let mut seen = HashSet::new();
        let mut items = Vec::with_capacity(raw.len());
        for v in &raw {
            let person = map_user(v, &self.custom_attributes)?;
            if seen.insert(person.external_id.clone()) {
                items.push(person);
            } else {
                tracing::warn!(source = %self.name, user.id = %person.external_id, "Okta listed a user twice on one page; kept once");
            }
        }
        let next = next_link(&resp)
            .map(|n| {
                serde_json::to_string(&UsersCursor {
                    next: n,
                    start: start.clone(),
                    deletions: false,
                })
            })
            .transpose()
            .map_err(|e| SourceError::Config(format!("cannot write a cursor: {e}")))?;
        Ok((items, next, start))
    }

    /// Members of one group, every page.
    async fn members(&self, group_id: &str) -> Result<Vec<String>, SourceError> {
        let mut url = self
            .client
            .endpoint(&format!("api/v1/groups/{}/users", enc(group_id)))?;
        url.query_pairs_mut()
            .append_pair("limit", &MEMBER_PAGE.to_string());
        let mut links = HashSet::new();
        let mut members = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_MEMBER_PAGES {
            // Only the ids are read; serde skips the rest of each (full) user object.
            let (raw, resp): (Vec<MemberRef>, Response) = self.client.get_json(url, &[]).await?;
            for v in &raw {
                let id = v.id.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
                    SourceError::InvalidRecord {
                        detail: format!("a member of group {group_id} has no id"),
                    }
                })?;
                if seen.insert(id.to_owned()) {
                    members.push(id.to_owned());
                }
            }
            match next_link(&resp) {
                None => return Ok(members),
                Some(n) => {
                    if !links.insert(n.clone()) {
                        return Err(SourceError::UnexpectedBody {
                            status: resp.status,
                            detail: format!(
                                "the members of group {group_id} repeat a next link; stopped"
                            ),
                        });
                    }
                    url = self.client.follow(&n)?;
                }
            }
        }
        Err(SourceError::UnexpectedBody {
            status: 200,
            detail: format!(
                "the members of group {group_id} did not end after {MAX_MEMBER_PAGES} pages"
            ),
        })
    }

    /// GET `url`; a 403 is `Ok(None)` (a missing permission to report), other failures errors.
    async fn probe(&self, url: Url) -> Result<Option<Response>, SourceError> {
        let resp = self.client.get(url, &[]).await?;
        match resp.status {
            200..=299 => Ok(Some(resp)),
            403 => Ok(None),
            _ => Err(self.client.error_for(&resp)),
        }
    }

    fn logs_url(&self, app_id: &str, since: DateTime<Utc>) -> Result<Url, SourceError> {
        let mut url = self.client.endpoint("api/v1/logs")?;
        url.query_pairs_mut()
            .append_pair(
                "filter",
                &format!(
                    "eventType eq \"user.authentication.sso\" and target.id eq \"{}\"",
                    app_id.replace('"', "")
                ),
            )
            .append_pair("sortOrder", "ASCENDING")
            .append_pair("since", &okta_time(since))
            .append_pair("limit", &LOG_PAGE.to_string());
        Ok(url)
    }
}

fn signing_key(pem: &Secret) -> Result<SigningKey, SourceError> {
    SigningKey::from_pem(pem, Algorithm::RS256)
        .or_else(|_| SigningKey::from_pem(pem, Algorithm::ES256))
}

/// A fresh `private_key_jwt` token request each time: `aud` the token URL, `iss` = `sub` =
/// client id, five minutes to live, a new `jti`.
fn assertion_form(
    key: SigningKey,
    client_id: String,
    kid: Option<String>,
    aud: String,
    scope: String,
) -> FormBuilder {
    Box::new(move || {
        let now = epoch_now();
        let claims = json!({
            "aud": aud,
            "iss": client_id,
            "sub": client_id,
            "iat": now,
            "exp": now + 300,
            "jti": random_jti(),
        });
        let assertion = key.sign(&claims, kid.as_deref(), None)?;
        Ok(vec![
            ("grant_type", "client_credentials".to_owned()),
            ("scope", scope.clone()),
            ("client_assertion_type", ASSERTION_TYPE.to_owned()),
            ("client_assertion", assertion),
        ])
    })
}

fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Okta's timestamp format, `2025-06-01T00:00:00.000Z`.
fn okta_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The server's clock from the `Date` header, else ours.
fn server_now(resp: &Response) -> DateTime<Utc> {
    resp.header("date")
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| SystemClock.now())
}

/// The `rel="next"` target among the response's `Link` headers (Okta sends `self` and `next`
/// as separate headers; several links in one header, unquoted or multi-valued `rel` and odd
/// spacing are read too).
pub fn next_link(resp: &Response) -> Option<String> {
    resp.headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(next_in_header)
}

fn next_in_header(value: &str) -> Option<String> {
    let mut rest = value;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = rest[open + 1..close].trim();
        let after = &rest[close + 1..];
        let end = after.find('<').unwrap_or(after.len());
        let params = &after[..end];
        let is_next = params.split(';').any(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next && !target.is_empty() {
            return Some(target.to_owned());
        }
        rest = &after[end..];
    }
}

fn time_field(v: &Value, field: &str, id: &str) -> Result<Option<DateTime<Utc>>, SourceError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| SourceError::InvalidRecord {
                detail: format!(
                    "user {id}: `{field}` `{}` is not a timestamp: {e}",
                    one_line(s, 60)
                ),
            }),
        Some(other) => Err(SourceError::InvalidRecord {
            detail: format!("user {id}: `{field}` is {other} rather than a timestamp"),
        }),
    }
}

fn text(v: &Value, field: &str) -> Option<String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One Okta `User` as a [`SourceIdentity`].
pub fn map_user(v: &Value, custom: &[String]) -> Result<SourceIdentity, SourceError> {
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| SourceError::InvalidRecord {
            detail: format!("a user has no id: {}", one_line(&v.to_string(), 200)),
        })?;
    let raw_status = match v.get("status") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    let profile = v.get("profile").cloned().unwrap_or(Value::Null);
    let login = text(&profile, "login")
        .or_else(|| text(&profile, "email"))
        .ok_or_else(|| SourceError::InvalidRecord {
            detail: format!("user {id} has no profile.login"),
        })?;
    let mut person = SourceIdentity::new(
        id,
        login,
        status::normalise(SourceKind::Okta, &raw_status),
        raw_status,
    );
    for field in ["email", "secondEmail"] {
        if let Some(e) = text(&profile, field)
            && !person.emails.iter().any(|x| x.eq_ignore_ascii_case(&e))
        {
            person.emails.push(e);
        }
    }
    person.given_name = text(&profile, "firstName");
    person.family_name = text(&profile, "lastName");
    person.display_name =
        text(&profile, "displayName").or_else(|| match (&person.given_name, &person.family_name) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (Some(n), None) | (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        });
    person.created_at = time_field(v, "created", id)?;
    person.last_login_at =
        time_field(v, "lastLogin", id)?.filter(|t| *t > DateTime::<Utc>::UNIX_EPOCH);
    person.updated_at = time_field(v, "lastUpdated", id)?;
    for attr in custom {
        let key = attr.strip_prefix("profile.").unwrap_or(attr);
        let value = match profile.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            Some(other) => other.to_string(),
        };
        person.attributes.insert(attr.clone(), value);
    }
    Ok(person)
}

impl Source for OktaSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Okta
    }

    async fn check(&self) -> Result<SourceCheck, SourceError> {
        let mut granted = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        let mut notes = Vec::new();
        let principal = match (&self.client_id, self.client.auth()) {
            (Some(id), super::auth::Auth::OAuth(cache)) => {
                let token = cache.token().await?;
                granted = token.scopes.clone();
                if !granted.is_empty() {
                    for s in &self.scopes {
                        if !granted.contains(s) {
                            missing.push(format!("{s} (not granted to the token)"));
                        }
                    }
                }
                format!("OAuth service app {id} (private_key_jwt)")
            }
            _ => {
                notes.push(
                    "an SSWS API token acts with the privileges of the admin who created it and \
                     expires after 30 days unused; an OAuth service app with read-only scopes is \
                     safer"
                        .into(),
                );
                "SSWS API token".into()
            }
        };
        let mut want = |scope: &str, lost: &str| {
            if !missing.iter().any(|m| m.starts_with(scope)) {
                missing.push(format!("{scope} ({lost})"));
            }
        };
        let mut url = self.client.endpoint("api/v1/users")?;
        url.query_pairs_mut().append_pair("limit", "1").append_pair(
            "filter",
            &format!(
                "lastUpdated gt \"{}\"",
                okta_time(DateTime::<Utc>::UNIX_EPOCH)
            ),
        );
        if self.probe(url).await?.is_none() {
            want("okta.users.read", "people cannot be listed");
        }
        let mut url = self.client.endpoint("api/v1/groups")?;
        url.query_pairs_mut()
            .append_pair("filter", "type eq \"BUILT_IN\"")
            .append_pair("expand", "stats")
            .append_pair("limit", "1");
        let mut people = None;
        match self.probe(url).await? {
            None => want(
                "okta.groups.read",
                "groups and the people count cannot be read",
            ),
            Some(resp) => {
                let groups: Vec<Value> = resp.json()?;
                people = groups
                    .first()
                    .and_then(|g| g.pointer("/_embedded/stats/usersCount"))
                    .and_then(Value::as_u64);
            }
        }
        let mut last_login = "Okta lastLogin (Okta sign-in, not per app)".to_owned();
        let sign_ins = match &self.app_id {
            Some(app) => {
                let since = self.clock.now() - chrono::Duration::hours(1);
                let mut url = self.logs_url(app, since)?;
                url.query_pairs_mut().append_pair("limit", "1");
                if self.probe(url).await?.is_none() {
                    want("okta.logs.read", "sign-ins to Confluence cannot be read");
                }
                last_login.push_str(&format!(
                    "; System Log user.authentication.sso for app {app}"
                ));
                format!(
                    "System Log user.authentication.sso events for app {app} (successful only), polled with next links"
                )
            }
            None => "none: set app_id (the Confluence app's Okta id) to read sign-ins to Confluence from the System Log".into(),
        };
        if people.is_some() {
            notes
                .push("people counted from the Everyone group (_embedded.stats.usersCount)".into());
        }
        Ok(SourceCheck {
            kind: SourceKind::Okta,
            principal,
            granted,
            missing,
            people,
            last_login,
            sign_ins,
            incremental: format!(
                "lastUpdated filter (filter=lastUpdated gt <checkpoint - {} min>); deleted users are not listed (404)",
                SKEW.num_minutes()
            ),
            notes,
        })
    }

    async fn list_identities(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceIdentity>, SourceError> {
        let (items, next, start) = self.users_page(cursor, || self.users_url(None)).await?;
        let checkpoint = next.is_none().then_some(start);
        Ok(SourcePage {
            items,
            next,
            total: None,
            checkpoint,
        })
    }

    async fn list_groups(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceGroup>, SourceError> {
        let url = match cursor {
            Some(c) => self.client.follow(c)?,
            None => {
                let mut u = self.client.endpoint("api/v1/groups")?;
                u.query_pairs_mut()
                    .append_pair("limit", &GROUP_PAGE.to_string());
                u
            }
        };
        let (raw, resp): (Vec<Value>, Response) = self.client.get_json(url, &[]).await?;
        let mut items = Vec::with_capacity(raw.len());
        let mut seen = HashSet::new();
        for g in &raw {
            let id = g
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| SourceError::InvalidRecord {
                    detail: format!("a group has no id: {}", one_line(&g.to_string(), 200)),
                })?;
            if !seen.insert(id.to_owned()) {
                continue;
            }
            let name = g
                .pointer("/profile/name")
                .and_then(Value::as_str)
                .unwrap_or(id)
                .to_owned();
            let members = self.members(id).await?;
            items.push(SourceGroup {
                external_id: id.to_owned(),
                name,
                members,
            });
        }
        Ok(SourcePage {
            items,
            next: next_link(&resp),
            total: None,
            checkpoint: None,
        })
    }

    async fn list_changes(
        &self,
        checkpoint: &str,
        cursor: Option<&str>,
    ) -> Result<SourcePage<Change>, SourceError> {
        let since = DateTime::parse_from_rfc3339(checkpoint.trim())
            .map_err(|e| SourceError::CheckpointExpired {
                detail: format!(
                    "`{}` is not a timestamp this connector wrote: {e}",
                    one_line(checkpoint, 80)
                ),
            })?
            .with_timezone(&Utc);
        if self.clock.now() - since > LOG_RETENTION {
            return Err(SourceError::CheckpointExpired {
                detail: format!(
                    "the checkpoint {} is older than the System Log's {} days, so deletions since then cannot be read",
                    okta_time(since),
                    LOG_RETENTION.num_days()
                ),
            });
        }
        if let Some(c) = cursor {
            let parsed = self.parse_cursor(c)?;
            if parsed.deletions {
                return self.deletions_page(parsed).await;
            }
        }
        let (people, next, start) = self
            .users_page(cursor, || self.users_url(Some(since - SKEW)))
            .await?;
        let next = match next {
            Some(n) => n,
            None => {
                // The people are done; deletions come from the System Log.
                let mut url = self.client.endpoint("api/v1/logs")?;
                url.query_pairs_mut()
                    .append_pair("filter", "eventType eq \"user.lifecycle.delete.initiated\"")
                    .append_pair("sortOrder", "ASCENDING")
                    .append_pair("since", &okta_time(since - SKEW))
                    .append_pair("limit", &LOG_PAGE.to_string());
                serde_json::to_string(&UsersCursor {
                    next: url.to_string(),
                    start,
                    deletions: true,
                })
                .map_err(|e| SourceError::Config(format!("cannot write a cursor: {e}")))?
            }
        };
        Ok(SourcePage {
            items: people
                .into_iter()
                .map(|p| Change::Upsert(Box::new(p)))
                .collect(),
            next: Some(next),
            total: None,
            checkpoint: None,
        })
    }

    async fn sign_ins(
        &self,
        checkpoint: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SignIn>, SourceError> {
        let Some(app) = &self.app_id else {
            return Err(SourceError::Unsupported {
                what: "sign-ins to Confluence".into(),
                why: format!("sources.{}.app_id is not set", self.name),
            });
        };
        let now = self.clock.now();
        let url = match (cursor, checkpoint) {
            (Some(c), _) => self.client.follow(c)?,
            (None, Some(cp)) if cp.starts_with("http") || cp.starts_with('/') => {
                self.client.follow(cp)?
            }
            (None, Some(cp)) => {
                let t = DateTime::parse_from_rfc3339(cp.trim())
                    .map_err(|e| SourceError::CheckpointExpired {
                        detail: format!(
                            "`{}` is neither a System Log link nor a timestamp: {e}",
                            one_line(cp, 80)
                        ),
                    })?
                    .with_timezone(&Utc);
                self.logs_url(app, t.max(now - MAX_LOOKBACK))?
            }
            (None, None) => self.logs_url(app, now - DEFAULT_LOOKBACK)?,
        };
        let requested = url.to_string();
        let from_link =
            cursor.is_none() && checkpoint.is_some_and(|cp| !cp.starts_with(char::is_numeric));
        let resp = self.client.get(url, &[]).await?;
        if !(200..300).contains(&resp.status) {
            // A stored System Log link Okta no longer accepts: poll again from a timestamp.
            if from_link && resp.status == 400 {
                return Err(SourceError::CheckpointExpired {
                    detail: format!(
                        "Okta refused the stored System Log link: {}",
                        super::http::describe_error(&resp.body)
                    ),
                });
            }
            return Err(self.client.error_for(&resp));
        }
        let raw: Vec<Value> = resp.json()?;
        let mut items = Vec::new();
        for e in &raw {
            let successful =
                e.pointer("/outcome/result").and_then(Value::as_str) == Some("SUCCESS");
            let sso = e.get("eventType").and_then(Value::as_str) == Some("user.authentication.sso");
            let to_app = e.get("target").and_then(Value::as_array).is_some_and(|ts| {
                ts.iter()
                    .any(|t| t.get("id").and_then(Value::as_str) == Some(app))
            });
            if !(successful && sso && to_app) {
                continue;
            }
            let uuid = text(e, "uuid").ok_or_else(|| SourceError::InvalidRecord {
                detail: format!(
                    "a System Log event has no uuid: {}",
                    one_line(&e.to_string(), 200)
                ),
            })?;
            let at = text(e, "published")
                .and_then(|p| DateTime::parse_from_rfc3339(&p).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| SourceError::InvalidRecord {
                    detail: format!("System Log event {uuid} has no readable `published`"),
                })?;
            let actor = e.get("actor").cloned().unwrap_or(Value::Null);
            items.push(SignIn {
                event_id: uuid,
                external_id: text(&actor, "id"),
                login: text(&actor, "alternateId"),
                at,
            });
        }
        let next = next_link(&resp);
        // A polling request never ends: an empty page means "caught up for now".
        if raw.is_empty() || next.is_none() {
            return Ok(SourcePage {
                items,
                next: None,
                total: None,
                checkpoint: Some(next.unwrap_or(requested)),
            });
        }
        Ok(SourcePage {
            items,
            next,
            total: None,
            checkpoint: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IdentityStatus;

    #[test]
    fn each_token_request_carries_a_fresh_short_lived_assertion_and_no_client_secret() {
        use base64::Engine;
        let pem = Secret::new(include_str!(
            "../../tests/fixtures/okta/service-app-key.pem"
        ));
        let form = assertion_form(
            signing_key(&pem).unwrap(),
            "0oaclient".into(),
            Some("kid-1".into()),
            "https://acme.okta.com/oauth2/v1/token".into(),
            "okta.users.read okta.logs.read".into(),
        );
        let claims = |fields: &[(&'static str, String)]| -> (Value, Value) {
            let jwt = &fields
                .iter()
                .find(|(k, _)| *k == "client_assertion")
                .unwrap()
                .1;
            let mut parts = jwt.split('.');
            let dec = |p: &str| -> Value {
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .unwrap();
                serde_json::from_slice(&bytes).unwrap()
            };
            let header = dec(parts.next().unwrap());
            (header, dec(parts.next().unwrap()))
        };
        let first = form().unwrap();
        let second = form().unwrap();
        let keys: Vec<&str> = first.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            vec![
                "grant_type",
                "scope",
                "client_assertion_type",
                "client_assertion"
            ]
        );
        assert!(!keys.contains(&"client_secret") && !keys.contains(&"client_id"));
        let (h1, c1) = claims(&first);
        let (_, c2) = claims(&second);
        assert_eq!(h1["alg"], "RS256");
        assert_eq!(h1["kid"], "kid-1");
        assert_eq!(c1["aud"], "https://acme.okta.com/oauth2/v1/token");
        assert_eq!(c1["iss"], "0oaclient");
        assert_eq!(c1["sub"], "0oaclient");
        let life = c1["exp"].as_i64().unwrap() - c1["iat"].as_i64().unwrap();
        assert!(life > 0 && life <= 300, "{life}");
        assert_ne!(c1["jti"], c2["jti"]);
        assert_eq!(first[1].1, "okta.users.read okta.logs.read");
    }

    #[test]
    fn next_links_are_found_however_okta_spells_the_header() {
        assert_eq!(
            next_in_header(r#"<https://a.okta.com/api/v1/users?after=00u1&limit=2>; rel="next""#),
            Some("https://a.okta.com/api/v1/users?after=00u1&limit=2".into())
        );
        assert_eq!(next_in_header(r#"<https://a/x?limit=2>; rel="self""#), None);
        assert_eq!(
            next_in_header(r#"<https://a/s>; rel="self", <https://a/n?after=a%2Cb>;rel=next"#),
            Some("https://a/n?after=a%2Cb".into())
        );
        assert_eq!(
            next_in_header(r#"< https://a/n >; REL = "prev next""#),
            Some("https://a/n".into())
        );
        assert_eq!(next_in_header("garbage"), None);
        assert_eq!(next_in_header("<unterminated; rel=next"), None);
    }

    #[test]
    fn an_okta_user_maps_with_raw_status_logins_and_custom_attributes() {
        let v = json!({
            "id": "00u1", "status": "LOCKED_OUT",
            "created": "2023-02-14T09:12:44.000Z", "lastLogin": null,
            "lastUpdated": "2025-06-02T16:02:19.000Z",
            "profile": {"login": "ann@example.com", "email": "ann@example.com",
                        "secondEmail": "ann@home.example", "firstName": "Ann", "lastName": "Lee",
                        "costCenter": "CC-1", "tags": ["a", "b"], "level": 3}
        });
        let custom = vec![
            "costCenter".to_owned(),
            "profile.tags".to_owned(),
            "level".to_owned(),
            "absent".to_owned(),
        ];
        let p = map_user(&v, &custom).unwrap();
        assert_eq!(p.status, IdentityStatus::Active);
        assert_eq!(p.raw_status, "LOCKED_OUT");
        assert_eq!(p.emails, vec!["ann@example.com", "ann@home.example"]);
        assert_eq!(p.display_name.as_deref(), Some("Ann Lee"));
        assert_eq!(p.last_login_at, None);
        assert!(p.updated_at.is_some());
        assert_eq!(
            p.attributes.get("costCenter").map(String::as_str),
            Some("CC-1")
        );
        assert_eq!(
            p.attributes.get("profile.tags").map(String::as_str),
            Some("a,b")
        );
        assert_eq!(p.attributes.get("level").map(String::as_str), Some("3"));
        assert!(!p.attributes.contains_key("absent"));
    }

    #[test]
    fn unknown_statuses_are_unknown_and_broken_records_are_errors_not_panics() {
        let v = json!({"id": "00u2", "status": "SDK_UNKNOWN", "profile": {"login": "x@y"}});
        let p = map_user(&v, &[]).unwrap();
        assert_eq!(p.status, IdentityStatus::Unknown);
        assert!(map_user(&json!({"status": "ACTIVE"}), &[]).is_err());
        assert!(map_user(&json!({"id": "00u3", "profile": {}}), &[]).is_err());
        assert!(
            map_user(
                &json!({"id": "00u3", "profile": {"login": "a"}, "lastLogin": 5}),
                &[]
            )
            .is_err()
        );
        assert!(map_user(&json!([1, 2]), &[]).is_err());
        let sentinel = json!({"id": "00u4", "status": "ACTIVE", "profile": {"login": "a"},
            "lastLogin": "1970-01-01T00:00:00.000Z"});
        assert_eq!(map_user(&sentinel, &[]).unwrap().last_login_at, None);
    }
}
