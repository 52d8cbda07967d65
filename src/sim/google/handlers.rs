//! The Google simulator's product routes: the OAuth token endpoint (JWT-bearer grant with
//! domain-wide delegation), the Directory API users/groups/members listings and the Reports
//! API activity listing, with Google's v1 error JSON, page tokens and quota errors.

// Handlers answer early with a ready response; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::model::{MemberRef, SimUser, World};
use super::{GOOGLE_TOKEN_URI, IssuedToken, Shared};
use crate::clock::{Clock, SystemClock};

type St = State<Arc<Shared>>;
type Params = Query<HashMap<String, String>>;

const SCOPE_USER: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.user",
];
const SCOPE_GROUP: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group",
];
const SCOPE_MEMBER: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member",
];
const SCOPE_REPORTS: &[&str] = &["https://www.googleapis.com/auth/admin.reports.audit.readonly"];

/// The Reports API's application names (discovery enum).
const REPORT_APPS: &[&str] = &[
    "access_transparency",
    "admin",
    "calendar",
    "chat",
    "drive",
    "gcp",
    "gplus",
    "groups",
    "groups_enterprise",
    "jamboard",
    "login",
    "meet",
    "mobile",
    "rules",
    "saml",
    "token",
    "user_accounts",
    "context_aware_access",
    "chrome",
    "data_studio",
    "keep",
    "vault",
];

pub(super) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/admin/directory/v1/users", get(list_users))
        .route("/admin/directory/v1/users/{key}", get(get_user))
        .route("/admin/directory/v1/groups", get(list_groups))
        .route(
            "/admin/directory/v1/groups/{key}/members",
            get(list_members),
        )
        .route(
            "/admin/reports/v1/activity/users/{user_key}/applications/{app}",
            get(activities),
        )
        .with_state(shared)
}

/// Google's v1 error JSON.
pub(super) fn google_error(status: u16, reason: &str, message: &str) -> Response {
    let domain = match reason {
        "userRateLimitExceeded" | "quotaExceeded" | "rateLimitExceeded" => "usageLimits",
        _ => "global",
    };
    let status_text = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let mut err = json!({"message": message, "domain": domain, "reason": reason});
    if status == 401 {
        err["location"] = json!("Authorization");
        err["locationType"] = json!("header");
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        Json(json!({"error": {
            "code": status,
            "message": message,
            "errors": [err],
            "status": status_text,
        }})),
    )
        .into_response()
}

/// The status and message a quota reason is answered with.
pub(super) fn quota_answer(reason: &str) -> Response {
    match reason {
        "userRateLimitExceeded" => google_error(
            403,
            reason,
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'admin.googleapis.com'.",
        ),
        "quotaExceeded" => google_error(403, reason, "Quota exceeded (concurrent requests)."),
        "rateLimitExceeded" => google_error(429, reason, "Rate Limit Exceeded"),
        "backendError" => google_error(503, reason, "Service unavailable. Please try again"),
        _ => google_error(500, "internalError", "Internal error encountered."),
    }
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Default)]
struct TokenForm {
    grant_type: String,
    assertion: String,
}

impl TokenForm {
    fn parse(body: &[u8]) -> Self {
        let mut f = TokenForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match k.as_ref() {
                "grant_type" => f.grant_type = v.into_owned(),
                "assertion" => f.assertion = v.into_owned(),
                _ => {}
            }
        }
        f
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    aud: Value,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
}

const SHORT_LIVED: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";

/// `POST /token`: the JWT-bearer grant. Assertion times are checked against real time (the
/// connector signs with its own clock); the virtual clock only ages the data.
async fn token(State(s): St, body: Bytes) -> Response {
    let form = TokenForm::parse(&body);
    if form.grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return oauth_error("unsupported_grant_type", "Invalid grant_type: ");
    }
    let Ok(header) = jsonwebtoken::decode_header(&form.assertion) else {
        return oauth_error("invalid_grant", "Invalid JWT: malformed assertion.");
    };
    if header.alg != Algorithm::RS256 {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    if header.kid.as_deref() != Some(s.key_id.as_str()) {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims = Default::default();
    let claims = match jsonwebtoken::decode::<AssertionClaims>(
        &form.assertion,
        &s.public_key,
        &validation,
    ) {
        Ok(d) => d.claims,
        Err(_) => return oauth_error("invalid_grant", "Invalid JWT Signature."),
    };
    if claims.iss != s.client_email {
        return oauth_error("invalid_client", "The OAuth client was not found.");
    }
    let aud_ok = claims
        .aud
        .as_str()
        .is_some_and(|a| a == GOOGLE_TOKEN_URI || a == s.token_url());
    if !aud_ok {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Failed audience check. The right audience is https://oauth2.googleapis.com/token",
        );
    }
    let now = SystemClock.now().timestamp();
    let (Some(iat), Some(exp)) = (claims.iat, claims.exp) else {
        return oauth_error("invalid_grant", SHORT_LIVED);
    };
    if exp <= iat || exp - iat > 3600 || iat > now + 300 || exp < now - 300 {
        return oauth_error("invalid_grant", SHORT_LIVED);
    }
    let scopes: Vec<String> = claims.scope.split_whitespace().map(str::to_owned).collect();
    if scopes.is_empty() {
        return oauth_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let sub = claims.sub.filter(|x| !x.is_empty());
    if let Some(sub) = &sub {
        if s.read().user(sub).is_none() {
            return oauth_error("invalid_grant", "Invalid email or User ID");
        }
        let dwd = s.dwd_scopes.read().unwrap_or_else(|p| p.into_inner());
        if !scopes.iter().all(|sc| dwd.contains(sc)) {
            return oauth_error(
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
            );
        }
    }
    let mut guard = s.tokens.lock().unwrap_or_else(|p| p.into_inner());
    let (rng, map) = &mut *guard;
    if map.len() > 100_000 {
        let real_now = SystemClock.now();
        map.retain(|_, t| t.expires > real_now);
    }
    let access = format!("ya29.sim-{}", rng.hex(48));
    map.insert(
        access.clone(),
        IssuedToken {
            sub,
            scopes,
            expires: SystemClock.now() + chrono::Duration::seconds(3599),
        },
    );
    Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

/// Authentication, quota and authorisation for one API call.
async fn guard(s: &Shared, headers: &HeaderMap, any_of: &[&str]) -> Result<(), Response> {
    if !s.latency.is_zero() {
        tokio::time::sleep(s.latency).await;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let issued = {
        let guard = s.tokens.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.get(bearer).cloned()
    };
    let unauthenticated = || {
        google_error(
            401,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
    };
    let Some(token) = issued else {
        return Err(unauthenticated());
    };
    if token.expires <= SystemClock.now() {
        return Err(unauthenticated());
    }
    {
        let mut q = s.quota();
        if let Some(reason) = q.next.pop_front() {
            return Err(quota_answer(&reason));
        }
        q.counter += 1;
        if let Some((n, reason)) = q.every.clone()
            && q.counter.is_multiple_of(n)
        {
            return Err(quota_answer(&reason));
        }
        if let Some(b) = q.bucket.as_mut()
            && b.take().is_err()
        {
            return Err(quota_answer("userRateLimitExceeded"));
        }
    }
    if !token.scopes.iter().any(|sc| any_of.contains(&sc.as_str())) {
        return Err(google_error(
            403,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        ));
    }
    let admin = token.sub.as_deref().is_some_and(|sub| {
        let w = s.read();
        w.user(sub).is_some_and(|i| w.is_active_admin(i))
    });
    if !admin {
        return Err(google_error(
            403,
            "forbidden",
            "Not Authorized to access this resource/api",
        ));
    }
    Ok(())
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

fn invalid(message: &str) -> Response {
    google_error(400, "invalid", message)
}

/// `maxResults` within `1..=max` (default `default`); out of range is a 400.
fn max_results(p: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, Response> {
    match p.get("maxResults") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(invalid(&format!(
                "Invalid value '{v}'. Values must be within the range: [1, {max}]"
            ))),
        },
    }
}

fn encode_token(parts: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join("|"))
}

fn decode_token(token: &str, tag: &str, n: usize) -> Option<Vec<String>> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let parts: Vec<String> = text.split('|').map(str::to_owned).collect();
    (parts.len() == n && parts[0] == tag).then_some(parts)
}

/// Which users a listing covers: the account or one of its domains.
fn scope_domain(w: &World, p: &HashMap<String, String>) -> Result<Option<String>, Response> {
    if let Some(c) = p.get("customer") {
        if c == "my_customer" || *c == w.customer_id {
            return Ok(None);
        }
        return Err(google_error(400, "badRequest", "Bad Request"));
    }
    if let Some(d) = p.get("domain") {
        let d = d.to_lowercase();
        if d == w.domain || d == w.contractor_domain {
            return Ok(Some(d));
        }
        return Err(google_error(
            403,
            "forbidden",
            "Not Authorized to access this resource/api",
        ));
    }
    Err(google_error(400, "badRequest", "Bad Request"))
}

/// One clause of the users `query` subset.
#[derive(Clone, Debug)]
enum Clause {
    Suspended(bool),
    Archived(bool),
    Admin(bool),
    EmailPrefix(String),
    Email(String),
    OrgUnit(String),
}

fn parse_query(q: &str) -> Result<Vec<Clause>, Response> {
    let bad = || invalid("Invalid Input: query");
    let unquote = |v: &str| v.trim_matches('\'').trim_matches('"').to_owned();
    let boolean = |v: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad()),
    };
    let mut out = Vec::new();
    for clause in q.split_whitespace() {
        if let Some(v) = clause.strip_prefix("isSuspended=") {
            out.push(Clause::Suspended(boolean(v)?));
        } else if let Some(v) = clause.strip_prefix("isArchived=") {
            out.push(Clause::Archived(boolean(v)?));
        } else if let Some(v) = clause.strip_prefix("isAdmin=") {
            out.push(Clause::Admin(boolean(v)?));
        } else if let Some(v) = clause.strip_prefix("email:") {
            out.push(Clause::EmailPrefix(
                unquote(v).trim_end_matches('*').to_lowercase(),
            ));
        } else if let Some(v) = clause.strip_prefix("email=") {
            out.push(Clause::Email(unquote(v).to_lowercase()));
        } else if let Some(v) = clause.strip_prefix("orgUnitPath=") {
            out.push(Clause::OrgUnit(unquote(v)));
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

fn matches(u: &SimUser, clauses: &[Clause], domain: Option<&str>) -> bool {
    if let Some(d) = domain
        && !u.primary_email.to_lowercase().ends_with(&format!("@{d}"))
    {
        return false;
    }
    clauses.iter().all(|c| match c {
        Clause::Suspended(b) => u.suspended == *b,
        Clause::Archived(b) => u.archived == *b,
        Clause::Admin(b) => u.is_admin == *b,
        Clause::EmailPrefix(p) => {
            let e = u.primary_email.to_lowercase();
            e.starts_with(p.as_str())
                || e.split('@')
                    .next()
                    .is_some_and(|l| l.starts_with(p.as_str()))
        }
        Clause::Email(e) => u.primary_email.eq_ignore_ascii_case(e),
        Clause::OrgUnit(o) => u.org_unit_path == *o,
    })
}

/// Which custom schemas a user's JSON carries.
#[derive(Clone, Debug)]
enum Projection {
    Basic,
    Custom(Vec<String>),
    Full,
}

fn projection(p: &HashMap<String, String>) -> Result<Projection, Response> {
    match p.get("projection").map(String::as_str) {
        None | Some("basic") => Ok(Projection::Basic),
        Some("full") => Ok(Projection::Full),
        Some("custom") => match p.get("customFieldMask") {
            Some(m) if !m.trim().is_empty() => Ok(Projection::Custom(
                m.split(',').map(|x| x.trim().to_owned()).collect(),
            )),
            _ => Err(invalid(
                "Invalid Input: customFieldMask is required when projection=custom",
            )),
        },
        Some(other) => Err(invalid(&format!("Invalid value for projection: {other}"))),
    }
}

fn etag(seed: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"TN30oD80QTVK45AAxvl_wbzs4vs/{h:016x}\"")
}

/// A user as the Directory API answers it.
fn user_json(w: &World, u: &SimUser, proj: &Projection) -> Value {
    let never = "1970-01-01T00:00:00.000Z".to_owned();
    let mut emails = vec![json!({"address": u.primary_email, "primary": true})];
    for a in &u.aliases {
        emails.push(json!({"address": a}));
    }
    let mut m = Map::new();
    m.insert("kind".into(), json!("admin#directory#user"));
    m.insert("id".into(), json!(u.id));
    m.insert(
        "etag".into(),
        json!(etag(&format!(
            "{}{}{}{:?}",
            u.id, u.suspended, u.archived, u.deletion_time
        ))),
    );
    m.insert("primaryEmail".into(), json!(u.primary_email));
    m.insert(
        "name".into(),
        json!({"givenName": u.given_name, "familyName": u.family_name, "fullName": u.full_name()}),
    );
    m.insert("isAdmin".into(), json!(u.is_admin));
    m.insert("isDelegatedAdmin".into(), json!(false));
    m.insert(
        "lastLoginTime".into(),
        json!(u.last_login_time.map(rfc3339).unwrap_or(never)),
    );
    m.insert("creationTime".into(), json!(rfc3339(u.creation_time)));
    m.insert("agreedToTerms".into(), json!(u.last_login_time.is_some()));
    m.insert("suspended".into(), json!(u.suspended));
    if u.suspended
        && let Some(r) = &u.suspension_reason
    {
        m.insert("suspensionReason".into(), json!(r));
    }
    m.insert("archived".into(), json!(u.archived));
    m.insert("changePasswordAtNextLogin".into(), json!(false));
    m.insert("ipWhitelisted".into(), json!(false));
    m.insert("emails".into(), json!(emails));
    if !u.aliases.is_empty() {
        m.insert("aliases".into(), json!(u.aliases));
    }
    if let Some(e) = &u.employee_id {
        m.insert(
            "externalIds".into(),
            json!([{"value": e, "type": "organization"}]),
        );
    }
    m.insert("customerId".into(), json!(w.customer_id));
    m.insert("orgUnitPath".into(), json!(u.org_unit_path));
    m.insert("isMailboxSetup".into(), json!(true));
    m.insert("isEnrolledIn2Sv".into(), json!(u.is_admin));
    m.insert("isEnforcedIn2Sv".into(), json!(false));
    m.insert("includeInGlobalAddressList".into(), json!(true));
    if let Some(t) = u.deletion_time {
        m.insert("deletionTime".into(), json!(rfc3339(t)));
    }
    let wants_employment = match proj {
        Projection::Basic => false,
        Projection::Full => true,
        Projection::Custom(names) => names.iter().any(|n| n == "Employment"),
    };
    if wants_employment {
        let mut emp = Map::new();
        if let Some(c) = &u.cost_center {
            emp.insert("costCenter".into(), json!(c));
        }
        if let Some(t) = &u.employee_type {
            emp.insert("employeeType".into(), json!(t));
        }
        if !emp.is_empty() {
            m.insert("customSchemas".into(), json!({"Employment": emp}));
        }
    }
    Value::Object(m)
}

/// `GET /admin/directory/v1/users`.
async fn list_users(State(s): St, headers: HeaderMap, Query(p): Params) -> Response {
    tri!(guard(&s, &headers, SCOPE_USER).await);
    let now = s.core.clock.now();
    let w = s.read();
    let domain = tri!(scope_domain(&w, &p));
    let limit = tri!(max_results(&p, 100, 500));
    let proj = tri!(projection(&p));
    let clauses = tri!(parse_query(p.get("query").map_or("", String::as_str)));
    if p.contains_key("orderBy") {
        return invalid("Invalid Input: orderBy is not supported by the simulator");
    }
    let deleted = p.get("showDeleted").is_some_and(|v| v == "true");
    let (started, after) = match p.get("pageToken").filter(|t| !t.is_empty()) {
        None => (now.timestamp_millis(), None),
        Some(t) => {
            let Some(parts) = decode_token(t, "u1", 4) else {
                return invalid("Invalid Input: pageToken");
            };
            let (Ok(started), Ok(after)) = (parts[1].parse::<i64>(), parts[3].parse::<usize>())
            else {
                return invalid("Invalid Input: pageToken");
            };
            if parts[2] != deleted.to_string() {
                return invalid("Invalid Input: pageToken");
            }
            if now.timestamp_millis() - started > s.page_token_ttl.num_milliseconds() {
                return google_error(503, "backendError", "Service unavailable. Please try again");
            }
            (started, Some(after))
        }
    };
    let set = if deleted { &w.deleted } else { &w.live };
    let range = match after {
        Some(a) => set.range(a + 1..),
        None => set.range(0..),
    };
    let mut users = Vec::with_capacity(limit);
    let mut last = None;
    let mut more = false;
    for &i in range {
        if !matches(&w.users[i], &clauses, domain.as_deref()) {
            continue;
        }
        if users.len() == limit {
            more = true;
            break;
        }
        users.push(user_json(&w, &w.users[i], &proj));
        last = Some(i);
    }
    let mut body =
        json!({"kind": "admin#directory#users", "etag": etag(&format!("users{started}{after:?}"))});
    if !users.is_empty() {
        body["users"] = Value::Array(users);
    }
    if more && let Some(l) = last {
        body["nextPageToken"] = json!(encode_token(&[
            "u1".into(),
            started.to_string(),
            deleted.to_string(),
            l.to_string()
        ]));
    }
    Json(body).into_response()
}

/// `GET /admin/directory/v1/users/{userKey}`: deleted users are not found.
async fn get_user(
    State(s): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(p): Params,
) -> Response {
    tri!(guard(&s, &headers, SCOPE_USER).await);
    let proj = tri!(projection(&p));
    let w = s.read();
    match w.user(&key) {
        Some(i) if w.users[i].deletion_time.is_none() => {
            Json(user_json(&w, &w.users[i], &proj)).into_response()
        }
        _ => google_error(404, "notFound", "Resource Not Found: userKey"),
    }
}

/// `GET /admin/directory/v1/groups`.
async fn list_groups(State(s): St, headers: HeaderMap, Query(p): Params) -> Response {
    tri!(guard(&s, &headers, SCOPE_GROUP).await);
    let w = s.read();
    if p.contains_key("customer") || p.contains_key("domain") {
        tri!(scope_domain(&w, &p));
    } else if !p.contains_key("userKey") {
        return google_error(400, "badRequest", "Bad Request");
    }
    let limit = match p.get("maxResults").map(|v| v.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if n >= 1 => n.min(200),
        Some(_) => return invalid("Invalid value for maxResults"),
    };
    let offset = match p.get("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match decode_token(t, "g1", 2).and_then(|x| x[1].parse::<usize>().ok()) {
            Some(o) => o,
            None => return invalid("Invalid Input: pageToken"),
        },
    };
    let of_user = match p.get("userKey") {
        Some(k) => match w.user(k) {
            Some(i) => Some(i),
            None => return google_error(404, "notFound", "Resource Not Found: userKey"),
        },
        None => None,
    };
    let candidates: Vec<usize> = match of_user {
        Some(u) => (0..w.groups.len())
            .filter(|&g| {
                w.groups[g]
                    .members
                    .iter()
                    .any(|m| m.member == MemberRef::User(u))
            })
            .collect(),
        None => (0..w.groups.len()).collect(),
    };
    let candidates: Vec<usize> = candidates
        .into_iter()
        .filter(|&g| !w.groups[g].deleted)
        .collect();
    let page: Vec<Value> = candidates
        .iter()
        .skip(offset)
        .take(limit)
        .map(|&g| {
            let grp = &w.groups[g];
            json!({
                "kind": "admin#directory#group",
                "id": grp.id,
                "etag": etag(&grp.id),
                "email": grp.email,
                "name": grp.name,
                "directMembersCount": grp.members.len().to_string(),
                "description": grp.description,
                "adminCreated": true,
                "nonEditableAliases": [format!("{}.test-google-a.com", grp.email.split('@').next().unwrap_or(""))],
            })
        })
        .collect();
    let mut body = json!({"kind": "admin#directory#groups", "etag": etag("groups")});
    if !page.is_empty() {
        body["groups"] = Value::Array(page);
    }
    if offset + limit < candidates.len() {
        body["nextPageToken"] = json!(encode_token(&["g1".into(), (offset + limit).to_string()]));
    }
    Json(body).into_response()
}

/// `GET /admin/directory/v1/groups/{groupKey}/members`.
async fn list_members(
    State(s): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(p): Params,
) -> Response {
    tri!(guard(&s, &headers, SCOPE_MEMBER).await);
    let w = s.read();
    let Some(g) = w.group(&key) else {
        return google_error(404, "notFound", "Resource Not Found: groupKey");
    };
    let limit = match p.get("maxResults").map(|v| v.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if n >= 1 => n.min(200),
        Some(_) => return invalid("Invalid value for maxResults"),
    };
    let offset = match p.get("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match decode_token(t, "m1", 3) {
            Some(x) if x[1] == w.groups[g].id => match x[2].parse::<usize>() {
                Ok(o) => o,
                Err(_) => return invalid("Invalid Input: pageToken"),
            },
            _ => return invalid("Invalid Input: pageToken"),
        },
    };
    let roles: Option<BTreeSet<String>> = p
        .get("roles")
        .map(|r| r.split(',').map(|x| x.trim().to_uppercase()).collect());
    let derived = p
        .get("includeDerivedMembership")
        .is_some_and(|v| v == "true");
    // Direct members (a slice: O(page)), or, with `roles` or derived membership, the
    // filtered list (derived: the users reached through nested groups, once each).
    let direct = &w.groups[g].members;
    let (chosen, total): (Vec<(MemberRef, &'static str)>, usize) = if !derived && roles.is_none() {
        let from = offset.min(direct.len());
        let to = offset.saturating_add(limit).min(direct.len());
        (
            direct[from..to]
                .iter()
                .map(|m| (m.member, m.role))
                .collect(),
            direct.len(),
        )
    } else {
        let mut list: Vec<(MemberRef, &'static str)> = Vec::new();
        if derived {
            let mut seen_users = BTreeSet::new();
            let mut seen_groups = BTreeSet::from([g]);
            let mut stack = vec![g];
            while let Some(cur) = stack.pop() {
                for m in &w.groups[cur].members {
                    match m.member {
                        MemberRef::User(u) => {
                            if seen_users.insert(u) {
                                list.push((m.member, m.role));
                            }
                        }
                        MemberRef::Group(n) => {
                            if seen_groups.insert(n) {
                                stack.push(n);
                            }
                        }
                        MemberRef::Customer => list.push((m.member, m.role)),
                    }
                }
            }
        } else {
            list.extend(direct.iter().map(|m| (m.member, m.role)));
        }
        list.retain(|(_, role)| roles.as_ref().is_none_or(|r| r.contains(*role)));
        let total = list.len();
        (list.into_iter().skip(offset).take(limit).collect(), total)
    };
    let page: Vec<Value> = chosen
        .iter()
        .filter_map(|(m, role)| match *m {
            MemberRef::User(u) => {
                let user = &w.users[u];
                if user.deletion_time.is_some() {
                    return None;
                }
                let status = if user.suspended || user.archived {
                    "SUSPENDED"
                } else {
                    "ACTIVE"
                };
                Some(json!({
                    "kind": "admin#directory#member",
                    "etag": etag(&format!("{}{}", w.groups[g].id, user.id)),
                    "id": user.id,
                    "email": user.primary_email,
                    "role": role,
                    "type": "USER",
                    "status": status,
                    "delivery_settings": "ALL_MAIL",
                }))
            }
            MemberRef::Group(n) => Some(json!({
                "kind": "admin#directory#member",
                "etag": etag(&format!("{}{}", w.groups[g].id, w.groups[n].id)),
                "id": w.groups[n].id,
                "email": w.groups[n].email,
                "role": role,
                "type": "GROUP",
                "status": "ACTIVE",
            })),
            MemberRef::Customer => Some(json!({
                "kind": "admin#directory#member",
                "etag": etag(&format!("{}customer", w.groups[g].id)),
                "id": w.customer_id,
                "role": role,
                "type": "CUSTOMER",
            })),
        })
        .collect();
    let mut body = json!({"kind": "admin#directory#members", "etag": etag(&w.groups[g].id)});
    if !page.is_empty() {
        body["members"] = Value::Array(page);
    }
    if offset.saturating_add(limit) < total {
        body["nextPageToken"] = json!(encode_token(&[
            "m1".into(),
            w.groups[g].id.clone(),
            (offset + limit).to_string()
        ]));
    }
    Json(body).into_response()
}

fn parse_time(v: &str, name: &str) -> Result<DateTime<Utc>, Response> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid(&format!("Invalid value '{v}' for parameter {name}.")))
}

/// One `param==value` or `param<>value` condition of `filters`.
struct Filter {
    name: String,
    equal: bool,
    value: String,
}

fn parse_filters(v: &str) -> Result<Vec<Filter>, Response> {
    let mut out = Vec::new();
    for part in v.split(',').filter(|x| !x.trim().is_empty()) {
        let (name, equal, value) = if let Some((n, val)) = part.split_once("==") {
            (n, true, val)
        } else if let Some((n, val)) = part.split_once("<>") {
            (n, false, val)
        } else {
            return Err(invalid(&format!(
                "Invalid value '{v}' for parameter filters."
            )));
        };
        out.push(Filter {
            name: name.trim().to_owned(),
            equal,
            value: value.to_owned(),
        });
    }
    Ok(out)
}

/// `GET /admin/reports/v1/activity/users/{userKey|all}/applications/{app}`.
async fn activities(
    State(s): St,
    headers: HeaderMap,
    Path((user_key, app)): Path<(String, String)>,
    Query(p): Params,
) -> Response {
    tri!(guard(&s, &headers, SCOPE_REPORTS).await);
    if !REPORT_APPS.contains(&app.as_str()) {
        return invalid(&format!(
            "Invalid value '{app}' for parameter applicationName."
        ));
    }
    let now = s.core.clock.now();
    let lag = *s.report_lag.read().unwrap_or_else(|p| p.into_inner());
    let limit = tri!(max_results(&p, 1000, 1000));
    let start = match p.get("startTime") {
        Some(v) => Some(tri!(parse_time(v, "startTime"))),
        None => None,
    };
    let end = match p.get("endTime") {
        Some(v) => Some(tri!(parse_time(v, "endTime"))),
        None => None,
    };
    if let Some(st) = start {
        if st < now - chrono::Duration::days(180) {
            return invalid(&format!(
                "Start time ({}) is more than 180 days in the past.",
                rfc3339(st)
            ));
        }
        if st > now {
            return invalid("Start time can not be in the future.");
        }
    }
    if let (Some(st), Some(en)) = (start, end)
        && st > en
    {
        return invalid("Start time can not be greater than the end time.");
    }
    let filters = tri!(parse_filters(p.get("filters").map_or("", String::as_str)));
    let names: Option<Vec<&str>> = p.get("eventName").map(|n| n.split(',').collect());
    let w = s.read();
    let only_user = if user_key == "all" {
        None
    } else {
        match w.user(&user_key) {
            Some(i) => Some(i),
            None => return google_error(404, "notFound", "Resource Not Found: userKey"),
        }
    };
    let mut body = json!({"kind": "admin#reports#activities", "etag": etag("activities")});
    if app != "saml" {
        return Json(body).into_response();
    }
    let visible_until = (now - lag).min(end.unwrap_or(now)).timestamp_millis();
    let from = start
        .unwrap_or(now - chrono::Duration::days(180))
        .timestamp_millis();
    // Newest first: walk backwards from the page token's position (or the window's end).
    let mut hi = w
        .events
        .partition_point(|e| e.time.timestamp_millis() <= visible_until);
    if let Some(t) = p.get("pageToken").filter(|t| !t.is_empty()) {
        let Some(parts) = decode_token(t, "a1", 3) else {
            return invalid("Invalid Input: pageToken");
        };
        let (Ok(ms), Ok(q)) = (parts[1].parse::<i64>(), parts[2].parse::<i64>()) else {
            return invalid("Invalid Input: pageToken");
        };
        hi = hi.min(w.events.partition_point(|e| e.key() < (ms, q)));
    }
    let mut items = Vec::new();
    let mut last_key = None;
    let mut more = false;
    let mut i = hi;
    while i > 0 {
        i -= 1;
        let e = &w.events[i];
        if e.time.timestamp_millis() < from {
            break;
        }
        if only_user.is_some_and(|u| u != e.user) {
            continue;
        }
        if names
            .as_ref()
            .is_some_and(|n| !n.contains(&e.name.as_str()))
        {
            continue;
        }
        let param = |name: &str| -> Option<&str> {
            match name {
                "application_name" => Some(&e.app_name),
                "initiated_by" => Some(e.initiated_by),
                "orgunit_path" => Some(&w.users[e.user].org_unit_path),
                _ => None,
            }
        };
        if !filters.iter().all(|f| {
            let v = param(&f.name);
            if f.equal {
                v == Some(f.value.as_str())
            } else {
                v != Some(f.value.as_str())
            }
        }) {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        let user = &w.users[e.user];
        let mut params = vec![
            json!({"name": "application_name", "value": e.app_name}),
            json!({"name": "initiated_by", "value": e.initiated_by}),
            json!({"name": "orgunit_path", "value": user.org_unit_path}),
        ];
        if let Some(f) = &e.failure_type {
            params.push(json!({"name": "failure_type", "value": f}));
            params.push(json!({"name": "saml_status_code", "value": "REQUESTER"}));
        } else {
            params.push(json!({"name": "saml_status_code", "value": "SUCCESS_URI"}));
        }
        items.push(json!({
            "kind": "admin#reports#activity",
            "id": {
                "time": rfc3339(e.time),
                "uniqueQualifier": e.unique_qualifier.to_string(),
                "applicationName": "saml",
                "customerId": w.customer_id,
            },
            "etag": etag(&format!("{}{}", e.time.timestamp_millis(), e.unique_qualifier)),
            "actor": {"callerType": "USER", "email": user.primary_email, "profileId": user.id},
            "ipAddress": format!("203.0.113.{}", e.user % 250 + 1),
            "events": [{"type": "login", "name": e.name, "parameters": params}],
        }));
        last_key = Some(e.key());
    }
    if !items.is_empty() {
        body["items"] = Value::Array(items);
    }
    if more && let Some((ms, q)) = last_key {
        body["nextPageToken"] = json!(encode_token(&["a1".into(), ms.to_string(), q.to_string()]));
    }
    Json(body).into_response()
}
