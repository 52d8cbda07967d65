//! The Entra simulator's wire surface: the identity platform token endpoint and the Graph
//! v1.0 routes idbridge reads, with Graph's OData conventions (`$select`, `$filter`, `$top`,
//! `@odata.nextLink` with an opaque `$skiptoken`, `@odata.deltaLink`), its error envelope
//! `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`,
//! its permission and licence checks, and its throttling answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::model::{Activity, SimUser, World};
use super::{DeltaExpiry, GRAPH_DEFAULT_SCOPE, Shared};
use crate::clock::{Clock, SystemClock};

type Q = Vec<(String, String)>;

pub(super) fn routes(shared: Arc<Shared>) -> Router {
    let graph = Router::new()
        .route("/v1.0/users", get(list_users))
        .route("/v1.0/users/delta", get(users_delta))
        .route(
            "/v1.0/users/{key}",
            get(get_user).patch(patch_user).delete(delete_user),
        )
        .route("/v1.0/groups", get(list_groups))
        .route("/v1.0/groups/{id}", get(get_group))
        .route("/v1.0/groups/{id}/members", get(members_any))
        .route(
            "/v1.0/groups/{id}/members/microsoft.graph.user",
            get(members_users),
        )
        .route(
            "/v1.0/directory/deletedItems/microsoft.graph.user",
            get(list_deleted),
        )
        .route("/v1.0/directory/deletedItems/{id}", get(get_deleted))
        .route(
            "/v1.0/directory/deletedItems/{id}/restore",
            post(restore_deleted),
        )
        .route("/v1.0/auditLogs/signIns", get(list_sign_ins))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared.clone());
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .with_state(shared)
        .merge(graph)
}

// ---------------------------------------------------------------------------------------
// Envelopes

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A Graph error answer.
fn graph_error(s: &Shared, status: StatusCode, code: &str, message: &str) -> Response {
    let rid = s.request_id();
    let body = json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": s.core.clock.now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": rid,
            "client-request-id": rid,
        }
    }});
    let mut resp = (status, axum::Json(body)).into_response();
    set_ids(resp.headers_mut(), &rid);
    resp
}

fn set_ids(h: &mut HeaderMap, rid: &str) {
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("request-id", v.clone());
        h.insert("client-request-id", v);
    }
}

/// A Graph JSON answer.
fn graph_ok(s: &Shared, body: Value) -> Response {
    let rid = s.request_id();
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        ),
    );
    set_ids(resp.headers_mut(), &rid);
    resp
}

fn bad_request(s: &Shared, message: &str) -> Response {
    graph_error(s, StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

fn unsupported_query(s: &Shared, message: &str) -> Response {
    graph_error(
        s,
        StatusCode::BAD_REQUEST,
        "Request_UnsupportedQuery",
        message,
    )
}

fn denied(s: &Shared) -> Response {
    graph_error(
        s,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn not_premium(s: &Shared) -> Response {
    graph_error(
        s,
        StatusCode::FORBIDDEN,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        "Neither tenant is B2C or tenant doesn't have premium license",
    )
}

fn not_found(s: &Shared, key: &str) -> Response {
    graph_error(
        s,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Query strings and links

fn parse_query(raw: Option<String>) -> Q {
    raw.map(|r| {
        url::form_urlencoded::parse(r.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// `$name` (or `name`: the dollar is optional in v1.0).
fn q_get<'a>(q: &'a Q, name: &str) -> Option<&'a str> {
    let bare = name.trim_start_matches('$');
    q.iter()
        .find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case(bare))
        .map(|(_, v)| v.as_str())
}

fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// `path?<q without $skiptoken/$deltatoken>&<extra>=<token>` on this simulator.
fn link(headers: &HeaderMap, path: &str, q: &Q, extra: (&str, &str)) -> String {
    let mut out = format!("{}{path}?", origin(headers));
    let mut first = true;
    let mut push = |k: &str, v: &str| {
        if !first {
            out.push('&');
        }
        first = false;
        out.push_str(k);
        out.push('=');
        out.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
    };
    for (k, v) in q {
        let bare = k.trim_start_matches('$').to_ascii_lowercase();
        if bare == "skiptoken" || bare == "deltatoken" {
            continue;
        }
        push(k, v);
    }
    push(extra.0, extra.1);
    out
}

fn encode_token<T: Serialize>(t: &T) -> String {
    let json = serde_json::to_vec(t).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_token<T: for<'de> Deserialize<'de>>(t: &str) -> Option<T> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn bad_skiptoken(s: &Shared) -> Response {
    bad_request(
        s,
        "The specified page token value has expired and can no longer be included in your request.",
    )
}

/// `$top` within 1..=cap (larger values are silently capped, as Graph does).
#[allow(clippy::result_large_err)]
fn parse_top(s: &Shared, q: &Q, default: usize, cap: usize) -> Result<usize, Response> {
    match q_get(q, "$top") {
        None => Ok(default.min(cap)),
        Some(t) => match t.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(cap)),
            _ => Err(bad_request(
                s,
                &format!("Invalid value '{t}' for query parameter $top."),
            )),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Authentication

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    aud: String,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    appid: String,
    tid: String,
    oid: String,
    sub: String,
    idtyp: String,
    ver: String,
    roles: Vec<String>,
    /// Simulator-only: tokens of an older generation are revoked.
    #[serde(rename = "xms_simgen")]
    generation: u64,
}

#[allow(clippy::result_large_err)]
fn authorize(s: &Shared, headers: &HeaderMap) -> Result<AccessClaims, Response> {
    let unauthorized = |msg: &str| {
        let mut r = graph_error(
            s,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            msg,
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"\", error=\"invalid_token\""),
        );
        r
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return Err(unauthorized("Access token is empty."));
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_secret(&s.signing_key);
    let claims = match jsonwebtoken::decode::<AccessClaims>(token.trim(), &key, &v) {
        Ok(d) => d.claims,
        Err(_) => return Err(unauthorized("IDX14100: JWT is not well formed.")),
    };
    if claims.exp <= SystemClock.now().timestamp()
        || claims.generation != s.token_generation.load(Ordering::Relaxed)
    {
        return Err(unauthorized(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    Ok(claims)
}

fn has_any(c: &AccessClaims, roles: &[&str]) -> bool {
    c.roles.iter().any(|r| roles.contains(&r.as_str()))
}

const READ_USERS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const READ_GROUPS: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const WRITE_USERS: &[&str] = &[
    "User.ReadWrite.All",
    "User.EnableDisableAccount.All",
    "Directory.ReadWrite.All",
];

/// The AADSTS error JSON of the token endpoint.
fn aadsts(s: &Shared, status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let now = s.core.clock.now();
    let trace = s.request_id();
    let ts = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {trace} Timestamp: {ts}"
            ),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": trace,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })),
    )
        .into_response()
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn token(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Q = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (tenant_id, domain) = {
        let w = s.read();
        (w.tenant_id.clone(), w.domain.clone())
    };
    if !tenant.eq_ignore_ascii_case(&tenant_id) && !tenant.eq_ignore_ascii_case(&domain) {
        return aadsts(
            &s,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    if field("grant_type") != Some("client_credentials") {
        return aadsts(
            &s,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    // Basic client authentication, if used.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let dec = |x: &str| {
                url::form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((dec(id), dec(secret)))
        });
    let client_id = field("client_id")
        .map(str::to_owned)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()));
    let Some(client_id) = client_id else {
        return aadsts(
            &s,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    if client_id != s.client_id {
        return aadsts(
            &s,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    }
    let secret = field("client_secret")
        .map(str::to_owned)
        .or_else(|| basic.as_ref().map(|(_, s)| s.clone()));
    let assertion = field("client_assertion");
    match (secret, assertion) {
        (Some(_), Some(_)) => {
            return aadsts(
                &s,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                "Only one client credential may be presented.",
            );
        }
        (Some(secret), None) => {
            let expected = s
                .client_secret
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if secret != expected {
                return aadsts(
                    &s,
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                );
            }
        }
        (None, Some(assertion)) => {
            if field("client_assertion_type") != Some(ASSERTION_TYPE) {
                return aadsts(
                    &s,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    50027,
                    "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                );
            }
            if let Err(resp) = check_assertion(&s, &headers, &tenant, &client_id, assertion) {
                return resp;
            }
        }
        (None, None) => {
            return aadsts(
                &s,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            );
        }
    }
    let scope = field("scope").unwrap_or("");
    if scope != GRAPH_DEFAULT_SCOPE {
        return aadsts(
            &s,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let now = SystemClock.now().timestamp();
    let claims = AccessClaims {
        aud: "https://graph.microsoft.com".into(),
        iss: format!("https://sts.windows.net/{tenant_id}/"),
        iat: now,
        nbf: now,
        exp: now + 3599,
        appid: client_id.clone(),
        tid: tenant_id,
        oid: client_id.clone(),
        sub: client_id,
        idtyp: "app".into(),
        ver: "1.0".into(),
        roles: s.roles(),
        generation: s.token_generation.load(Ordering::Relaxed),
    };
    let mut hdr = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hdr.typ = Some("JWT".into());
    let token = match jsonwebtoken::encode(
        &hdr,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&s.signing_key),
    ) {
        Ok(t) => t,
        Err(_) => {
            return aadsts(
                &s,
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            );
        }
    };
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": token,
    }))
    .into_response()
}

#[allow(clippy::result_large_err)]
fn check_assertion(
    s: &Shared,
    headers: &HeaderMap,
    tenant: &str,
    client_id: &str,
    assertion: &str,
) -> Result<(), Response> {
    let fail = |code: u32, text: &str| {
        Err(aadsts(
            s,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            text,
        ))
    };
    let Ok(hdr) = jsonwebtoken::decode_header(assertion) else {
        return fail(50027, "JWT token is invalid or malformed.");
    };
    if !matches!(
        hdr.alg,
        jsonwebtoken::Algorithm::PS256 | jsonwebtoken::Algorithm::RS256
    ) {
        return fail(
            700027,
            "Client assertion failed signature validation (unsupported algorithm).",
        );
    }
    let cert = s.certificate.read().unwrap_or_else(|p| p.into_inner());
    let Some(cert) = cert.as_ref() else {
        return fail(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application.",
        );
    };
    if hdr.x5t_s256.as_deref() != Some(cert.thumbprint_s256.as_str()) {
        return fail(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application.",
        );
    }
    let mut v = jsonwebtoken::Validation::new(hdr.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<Value>(assertion, &cert.key, &v) {
        Ok(d) => d.claims,
        Err(_) => return fail(700027, "Client assertion failed signature validation."),
    };
    let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    let num = |k: &str| claims.get(k).and_then(Value::as_i64);
    let own = format!("{}/{tenant}/oauth2/v2.0/token", origin(headers));
    let public = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token");
    if text("aud") != own && text("aud") != public {
        return fail(
            700023,
            "Client assertion audience claim does not match Realm issuer.",
        );
    }
    if text("iss") != client_id || text("sub") != client_id {
        return fail(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        );
    }
    let now = SystemClock.now().timestamp();
    let (Some(exp), Some(nbf)) = (num("exp"), num("nbf").or(num("iat"))) else {
        return fail(
            700024,
            "Client assertion is not within its valid time range.",
        );
    };
    if exp <= now || nbf > now + 300 || exp - nbf > 3600 {
        return fail(
            700024,
            "Client assertion is not within its valid time range.",
        );
    }
    let jti = text("jti");
    if jti.is_empty() {
        return fail(50027, "JWT token is invalid or malformed (no jti).");
    }
    let mut used = s.used_jti.lock().unwrap_or_else(|p| p.into_inner());
    if !used.insert(jti.to_owned()) {
        return fail(
            50013,
            "Assertion failed signature validation: the jti has already been used.",
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The gate: canned answers, throttling and resource units before any Graph handler

async fn gate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let canned = {
        let mut list = s.canned.lock().unwrap_or_else(|p| p.into_inner());
        let hit = list
            .iter_mut()
            .find(|c| {
                let hit = if c.exact {
                    path == c.path_prefix
                } else {
                    path.starts_with(&c.path_prefix)
                };
                hit && c.times != Some(0)
            })
            .map(|c| {
                if let Some(t) = c.times.as_mut() {
                    *t -= 1;
                }
                c.clone()
            });
        list.retain(|c| c.times != Some(0));
        hit
    };
    if let Some(c) = canned {
        let status = StatusCode::from_u16(c.status).unwrap_or(StatusCode::OK);
        let mut resp = (status, c.body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (k, v) in &c.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        return resp;
    }
    let rule = {
        let mut t = s.throttle.lock().unwrap_or_else(|p| p.into_inner());
        let hit = t.as_mut().and_then(|r| {
            let matches = r.path_prefix.as_deref().is_none_or(|p| path.starts_with(p));
            (matches && r.times > 0).then(|| {
                r.times -= 1;
                r.clone()
            })
        });
        if t.as_ref().is_some_and(|r| r.times == 0) {
            *t = None;
        }
        hit
    };
    if let Some(rule) = rule {
        return throttled(&s, rule.status, rule.retry_after);
    }
    let cost = resource_units(&path, req.uri().query().unwrap_or(""));
    // Resource units: a 429 once the budget is spent; above 80 % used, successful answers
    // say how close the app is (`x-ms-throttle-limit-percentage`, 0.8 to 1.8).
    let (over, used) = {
        let mut b = s.budget.lock().unwrap_or_else(|p| p.into_inner());
        match b.as_mut() {
            None => (None, None),
            Some(bucket) => {
                let mut remaining = bucket.capacity;
                let over = (0..cost).find_map(|_| match bucket.take() {
                    Ok(r) => {
                        remaining = r;
                        None
                    }
                    Err(wait) => Some(wait),
                });
                let used = 1.0 - remaining as f64 / bucket.capacity.max(1) as f64;
                (over, Some(used))
            }
        }
    };
    if let Some(wait) = over {
        let secs = wait.as_secs_f64().ceil().clamp(1.0, 3600.0) as u64;
        return throttled(&s, 429, Some(secs));
    }
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&cost.to_string()) {
        resp.headers_mut().insert("x-ms-resource-unit", v);
    }
    if let Some(used) = used.filter(|u| *u >= 0.8)
        && let Ok(v) = HeaderValue::from_str(&format!("{:.1}", used.min(1.8)))
    {
        resp.headers_mut()
            .insert("x-ms-throttle-limit-percentage", v);
    }
    resp
}

/// Graph's resource-unit cost of a request (users 2, members 3, others 1; `$select` −1).
fn resource_units(path: &str, query: &str) -> u64 {
    let base: u64 = if path.ends_with("/members") || path.contains("/members/") {
        3
    } else if path.starts_with("/v1.0/users") {
        2
    } else {
        1
    };
    let select = query.contains("select=");
    base.saturating_sub(u64::from(select)).max(1)
}

fn throttled(s: &Shared, status: u16, retry_after: Option<u64>) -> Response {
    let mut resp = if status == 503 {
        graph_error(
            s,
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Retry after the time in the Retry-After header.",
        )
    } else {
        let mut r = graph_error(
            s,
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests.",
        );
        let tenant = s.read().tenant_id.clone();
        if let Ok(v) =
            HeaderValue::from_str(&format!("Tenant_Application/Read/{}/{tenant}", s.client_id))
        {
            r.headers_mut().insert("x-ms-throttle-scope", v);
        }
        r.headers_mut().insert(
            "x-ms-throttle-information",
            HeaderValue::from_static("ResourceUnitLimitExceeded"),
        );
        r
    };
    if let Some(secs) = retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

// ---------------------------------------------------------------------------------------
// Users

const USER_PROPS: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "otherMails",
    "givenName",
    "surname",
    "displayName",
    "accountEnabled",
    "createdDateTime",
    "deletedDateTime",
    "employeeId",
    "employeeType",
    "userType",
    "department",
    "jobTitle",
    "companyName",
    "signInActivity",
    "businessPhones",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
];

/// Graph's default property set for users: `accountEnabled` is not in it.
const DEFAULT_USER: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

#[allow(clippy::result_large_err)]
fn parse_select(
    s: &Shared,
    raw: Option<&str>,
    known: &'static [&'static str],
    default: &'static [&'static str],
    type_name: &str,
) -> Result<Vec<&'static str>, Response> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(default.to_vec());
    };
    let mut out = Vec::new();
    for p in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match known.iter().find(|k| k.eq_ignore_ascii_case(p)) {
            Some(k) => {
                if !out.contains(k) {
                    out.push(*k);
                }
            }
            None => {
                return Err(bad_request(
                    s,
                    &format!("Could not find a property named '{p}' on type '{type_name}'."),
                ));
            }
        }
    }
    if !out.contains(&"id") {
        out.insert(0, "id");
    }
    Ok(out)
}

const SENTINEL: &str = "0001-01-01T00:00:00Z";

fn user_json(u: &SimUser, props: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    for p in props {
        let v = match *p {
            "id" => Value::String(u.id.clone()),
            "userPrincipalName" => Value::String(u.shown_upn()),
            "mail" => opt(&u.mail),
            "otherMails" => json!(u.other_mails),
            "givenName" => opt(&u.given_name),
            "surname" => opt(&u.surname),
            "displayName" => Value::String(u.display_name.clone()),
            "accountEnabled" => Value::Bool(u.account_enabled),
            "createdDateTime" => Value::String(fmt_time(u.created)),
            "deletedDateTime" => u
                .deleted
                .filter(|_| u.soft_deleted())
                .map_or(Value::Null, |t| Value::String(fmt_time(t))),
            "employeeId" => opt(&u.employee_id),
            "employeeType" => opt(&u.employee_type),
            "userType" => Value::String(u.user_type.clone()),
            "department" => opt(&u.department),
            "jobTitle" => opt(&u.job_title),
            "companyName" => opt(&u.company_name),
            "businessPhones" => json!([]),
            "mobilePhone" | "officeLocation" | "preferredLanguage" => Value::Null,
            "signInActivity" => match u.activity {
                Activity::Absent => continue,
                Activity::Sentinel => json!({
                    "lastSignInDateTime": SENTINEL,
                    "lastSignInRequestId": "",
                    "lastNonInteractiveSignInDateTime": SENTINEL,
                    "lastNonInteractiveSignInRequestId": "",
                    "lastSuccessfulSignInDateTime": SENTINEL,
                    "lastSuccessfulSignInRequestId": "",
                }),
                Activity::Present => {
                    let t =
                        |x: Option<DateTime<Utc>>| x.map_or(Value::Null, |t| json!(fmt_time(t)));
                    let rid = |x: Option<DateTime<Utc>>| {
                        x.map_or(Value::Null, |t| {
                            json!(format!("{:08x}-4c36-4775-ad59-7d1e6a171f00", t.timestamp()))
                        })
                    };
                    json!({
                        "lastSignInDateTime": t(u.last_sign_in),
                        "lastSignInRequestId": rid(u.last_sign_in),
                        "lastNonInteractiveSignInDateTime": SENTINEL,
                        "lastNonInteractiveSignInRequestId": "",
                        "lastSuccessfulSignInDateTime": t(u.last_success),
                        "lastSuccessfulSignInRequestId": rid(u.last_success),
                    })
                }
            },
            _ => continue,
        };
        m.insert((*p).to_owned(), v);
    }
    m
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

#[derive(Clone, Debug)]
enum Pred {
    Bool(Cmp, bool),
    Str(&'static str, Cmp, String),
    StartsWith(&'static str, String),
    EndsWith(&'static str, String),
    Date(&'static str, Cmp, DateTime<Utc>),
}

fn odata_string(v: &str) -> Option<String> {
    let v = v.trim();
    let inner = v.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

fn split_and(filter: &str) -> Vec<String> {
    let lower = filter.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_str = false;
    let bytes = filter.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            in_str = !in_str;
        } else if !in_str && lower.as_bytes()[i..].starts_with(b" and ") {
            out.push(filter[start..i].trim().to_owned());
            i += 5;
            start = i;
            continue;
        }
        i += 1;
    }
    out.push(filter[start..].trim().to_owned());
    out
}

fn parse_cmp(op: &str) -> Option<Cmp> {
    Some(match op.to_ascii_lowercase().as_str() {
        "eq" => Cmp::Eq,
        "ne" => Cmp::Ne,
        "ge" => Cmp::Ge,
        "le" => Cmp::Le,
        "gt" => Cmp::Gt,
        "lt" => Cmp::Lt,
        _ => return None,
    })
}

fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

const STRING_PROPS: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "userType",
    "employeeId",
];
const DATE_PROPS: &[&str] = &[
    "createdDateTime",
    "signInActivity/lastSignInDateTime",
    "signInActivity/lastSuccessfulSignInDateTime",
];

/// The `$filter` subset on users; `advanced` when `ConsistencyLevel: eventual` and
/// `$count=true` came with it.
fn parse_user_filter(filter: &str, advanced: bool) -> Result<Vec<Pred>, String> {
    let mut preds = Vec::new();
    let unsupported = |c: &str| {
        format!(
            "Unsupported or invalid query filter clause specified for property '{c}' of resource 'User'."
        )
    };
    if filter.to_ascii_lowercase().contains(" or ") || filter.trim_start().starts_with("not(") {
        return Err(unsupported(filter));
    }
    for clause in split_and(filter) {
        let lc = clause.to_ascii_lowercase();
        for (prefix, starts) in [("startswith(", true), ("endswith(", false)] {
            if let Some(rest) = lc.strip_prefix(prefix) {
                if !starts && !advanced {
                    return Err(unsupported(&clause));
                }
                let args = &clause[prefix.len()..clause.len() - usize::from(rest.ends_with(')'))];
                let (prop, val) = args.split_once(',').ok_or_else(|| unsupported(&clause))?;
                let prop = STRING_PROPS
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(prop.trim()))
                    .ok_or_else(|| unsupported(&clause))?;
                let val = odata_string(val).ok_or_else(|| unsupported(&clause))?;
                preds.push(if starts {
                    Pred::StartsWith(prop, val)
                } else {
                    Pred::EndsWith(prop, val)
                });
            }
        }
        if lc.starts_with("startswith(") || lc.starts_with("endswith(") {
            continue;
        }
        let mut parts = clause.splitn(3, ' ');
        let (Some(prop), Some(op), Some(val)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(unsupported(&clause));
        };
        let op = parse_cmp(op).ok_or_else(|| unsupported(&clause))?;
        if op == Cmp::Ne && !advanced {
            return Err(unsupported(&clause));
        }
        if prop.eq_ignore_ascii_case("accountEnabled") {
            let v = match val.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(unsupported(&clause)),
            };
            if !matches!(op, Cmp::Eq | Cmp::Ne) {
                return Err(unsupported(&clause));
            }
            preds.push(Pred::Bool(op, v));
        } else if let Some(p) = DATE_PROPS.iter().find(|p| p.eq_ignore_ascii_case(prop)) {
            let t = parse_time(val).ok_or_else(|| unsupported(&clause))?;
            preds.push(Pred::Date(p, op, t));
        } else if let Some(p) = STRING_PROPS.iter().find(|p| p.eq_ignore_ascii_case(prop)) {
            if !matches!(op, Cmp::Eq | Cmp::Ne) {
                return Err(unsupported(&clause));
            }
            let v = odata_string(val).ok_or_else(|| unsupported(&clause))?;
            preds.push(Pred::Str(p, op, v));
        } else {
            return Err(unsupported(&clause));
        }
    }
    let sia = preds
        .iter()
        .any(|p| matches!(p, Pred::Date(n, _, _) if n.starts_with("signInActivity")));
    if sia && preds.len() > 1 {
        return Err(
            "signInActivity filters cannot be combined with filters on other properties.".into(),
        );
    }
    Ok(preds)
}

fn cmp_ok<T: PartialOrd>(a: &T, op: Cmp, b: &T) -> bool {
    match op {
        Cmp::Eq => a == b,
        Cmp::Ne => a != b,
        Cmp::Ge => a >= b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Lt => a < b,
    }
}

fn user_str(u: &SimUser, prop: &str) -> Option<String> {
    match prop {
        "id" => Some(u.id.clone()),
        "userPrincipalName" => Some(u.shown_upn()),
        "mail" => u.mail.clone(),
        "displayName" => Some(u.display_name.clone()),
        "givenName" => u.given_name.clone(),
        "surname" => u.surname.clone(),
        "userType" => Some(u.user_type.clone()),
        "employeeId" => u.employee_id.clone(),
        _ => None,
    }
}

fn matches(u: &SimUser, preds: &[Pred]) -> bool {
    preds.iter().all(|p| match p {
        Pred::Bool(op, v) => cmp_ok(&u.account_enabled, *op, v),
        Pred::Str(prop, op, v) => {
            let have = user_str(u, prop).unwrap_or_default().to_lowercase();
            cmp_ok(&have, *op, &v.to_lowercase())
        }
        Pred::StartsWith(prop, v) => {
            user_str(u, prop).is_some_and(|h| h.to_lowercase().starts_with(&v.to_lowercase()))
        }
        Pred::EndsWith(prop, v) => {
            user_str(u, prop).is_some_and(|h| h.to_lowercase().ends_with(&v.to_lowercase()))
        }
        Pred::Date(prop, op, v) => {
            let have = match *prop {
                "createdDateTime" => Some(u.created),
                _ if u.activity != Activity::Present => None,
                "signInActivity/lastSignInDateTime" => u.last_sign_in,
                _ => u.last_success,
            };
            have.is_some_and(|h| cmp_ok(&h, *op, v))
        }
    })
}

#[derive(Serialize, Deserialize)]
struct Skip {
    k: String,
    o: usize,
}

/// Checks what selecting or filtering on `signInActivity` needs.
#[allow(clippy::result_large_err)]
fn check_sign_in_activity(s: &Shared, c: &AccessClaims) -> Result<(), Response> {
    if !s.premium() {
        return Err(not_premium(s));
    }
    if !has_any(c, &["AuditLog.Read.All"]) {
        return Err(denied(s));
    }
    Ok(())
}

fn consistency_eventual(headers: &HeaderMap) -> bool {
    headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

fn context(headers: &HeaderMap, what: &str) -> String {
    format!("{}/v1.0/$metadata#{what}", origin(headers))
}

/// One page of `items` (positions into some ordering) from `offset`: the chosen positions
/// and where the next page starts, if anything may follow.
fn page_positions(
    len: usize,
    offset: usize,
    top: usize,
    mut keep: impl FnMut(usize) -> bool,
) -> (Vec<usize>, Option<usize>) {
    let mut out = Vec::with_capacity(top.min(1024));
    let mut pos = offset;
    while pos < len && out.len() < top {
        if keep(pos) {
            out.push(pos);
        }
        pos += 1;
    }
    // Look a little ahead so the last page usually carries no next link.
    let mut peek = pos;
    while peek < len && peek < pos + 2000 {
        if keep(peek) {
            return (out, Some(pos));
        }
        peek += 1;
    }
    (out, (peek < len).then_some(pos))
}

async fn list_users(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, READ_USERS) {
        return denied(&s);
    }
    let q = parse_query(raw);
    let select = match parse_select(
        &s,
        q_get(&q, "$select"),
        USER_PROPS,
        DEFAULT_USER,
        "microsoft.graph.user",
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let filter_text = q_get(&q, "$filter").unwrap_or("");
    let sia = select.contains(&"signInActivity")
        || filter_text.to_ascii_lowercase().contains("signinactivity");
    if sia && let Err(r) = check_sign_in_activity(&s, &claims) {
        return r;
    }
    let top = match parse_top(&s, &q, 100, if sia { 500 } else { 999 }) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let count = q_get(&q, "$count").is_some_and(|c| c.eq_ignore_ascii_case("true"));
    let advanced = consistency_eventual(&headers) && count;
    if !advanced && (q_get(&q, "$search").is_some() || q_get(&q, "$orderby").is_some()) {
        return unsupported_query(
            &s,
            "This query requires the ConsistencyLevel header set to 'eventual' and $count=true.",
        );
    }
    if count && !consistency_eventual(&headers) {
        return bad_request(&s, "$count is not currently supported.");
    }
    if q_get(&q, "$search").is_some() {
        return unsupported_query(&s, "$search is not supported by this simulator.");
    }
    let preds = if filter_text.trim().is_empty() {
        Vec::new()
    } else {
        match parse_user_filter(filter_text, advanced) {
            Ok(p) => p,
            Err(m) => return unsupported_query(&s, &m),
        }
    };
    let offset = match q_get(&q, "$skiptoken") {
        None => 0,
        Some(t) => match decode_token::<Skip>(t) {
            Some(sk) if sk.k == "u" => sk.o,
            _ => return bad_skiptoken(&s),
        },
    };
    let w = s.read();
    let keep = |i: usize| w.users[i].present() && matches(&w.users[i], &preds);
    let (positions, next) = page_positions(w.users.len(), offset, top, keep);
    let value: Vec<Value> = positions
        .iter()
        .map(|&i| Value::Object(user_json(&w.users[i], &select)))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(&headers, &format!("users({})", select.join(",")))),
    );
    if count {
        let n = w
            .users
            .iter()
            .filter(|u| u.present() && matches(u, &preds))
            .count();
        body.insert("@odata.count".into(), json!(n));
    }
    if let Some(o) = next {
        let tok = encode_token(&Skip { k: "u".into(), o });
        body.insert(
            "@odata.nextLink".into(),
            json!(link(&headers, "/v1.0/users", &q, ("$skiptoken", &tok))),
        );
    }
    body.insert("value".into(), Value::Array(value));
    drop(w);
    graph_ok(&s, Value::Object(body))
}

async fn get_user(
    State(s): State<Arc<Shared>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, READ_USERS) {
        return denied(&s);
    }
    if key == "$count" {
        if !consistency_eventual(&headers) {
            return bad_request(&s, "$count is not currently supported.");
        }
        let n = s.read().present_count();
        let rid = s.request_id();
        let mut resp = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
            n.to_string(),
        )
            .into_response();
        set_ids(resp.headers_mut(), &rid);
        return resp;
    }
    let q = parse_query(raw);
    let select = match parse_select(
        &s,
        q_get(&q, "$select"),
        USER_PROPS,
        DEFAULT_USER,
        "microsoft.graph.user",
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if select.contains(&"signInActivity")
        && let Err(r) = check_sign_in_activity(&s, &claims)
    {
        return r;
    }
    let w = s.read();
    match w.find(&key).filter(|&i| w.users[i].present()) {
        Some(i) => {
            let mut body = user_json(&w.users[i], &select);
            body.insert(
                "@odata.context".into(),
                json!(context(&headers, "users/$entity")),
            );
            drop(w);
            graph_ok(&s, Value::Object(body))
        }
        None => {
            drop(w);
            not_found(&s, &key)
        }
    }
}

async fn patch_user(
    State(s): State<Arc<Shared>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, WRITE_USERS) {
        return denied(&s);
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request(&s, "Invalid JSON in the request body.");
    };
    let mut w = s.write();
    let Some(i) = w.find(&key).filter(|&i| w.users[i].present()) else {
        drop(w);
        return not_found(&s, &key);
    };
    if let Some(b) = v.get("accountEnabled").and_then(Value::as_bool) {
        w.users[i].account_enabled = b;
    }
    w.touch(i);
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_user(
    State(s): State<Arc<Shared>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, &["User.ReadWrite.All", "Directory.ReadWrite.All"]) {
        return denied(&s);
    }
    let now = s.core.clock.now();
    let mut w = s.write();
    let Some(i) = w.find(&key).filter(|&i| w.users[i].present()) else {
        drop(w);
        return not_found(&s, &key);
    };
    w.soft_delete(i, now);
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------------------
// Delta

/// What a delta or skip token of `/users/delta` carries.
#[derive(Serialize, Deserialize)]
struct DeltaState {
    /// `di` initial enumeration, `dc` a change round, `dl` a delta link.
    k: String,
    /// The token epoch (expiring tokens bumps it).
    e: u64,
    /// Initial: the change counter at the start; change round: changes after this.
    s: u64,
    /// Change round: up to this change.
    #[serde(default)]
    to: u64,
    /// Position (user index or change-log index).
    #[serde(default)]
    o: usize,
    /// Issued at (epoch seconds, simulator clock).
    t: i64,
    /// The `$select` of the first call.
    sel: Vec<String>,
}

fn delta_expired(s: &Shared, headers: &HeaderMap) -> Response {
    let how = *s.delta_expiry.lock().unwrap_or_else(|p| p.into_inner());
    match how {
        DeltaExpiry::Gone => {
            let mut r = graph_error(
                s,
                StatusCode::GONE,
                "resyncRequired",
                "Resync required. Replace any local cached copies of the collection with the results of a full synchronization.",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("{}/v1.0/users/delta", origin(headers))) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        DeltaExpiry::SyncStateNotFound => graph_error(
            s,
            StatusCode::BAD_REQUEST,
            "syncStateNotFound",
            "The sync state generation is not found. Please restart the sync from the beginning.",
        ),
        DeltaExpiry::ResyncRequired => graph_error(
            s,
            StatusCode::BAD_REQUEST,
            "resyncRequired",
            "Resync required. Replace any local cached copies of the collection with the results of a full synchronization.",
        ),
    }
}

fn page_size_from_prefer(headers: &HeaderMap, default: usize) -> usize {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("odata.maxpagesize="))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(default, |n| n.clamp(1, 999))
}

async fn users_delta(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    s.write().sweep(s.core.clock.now());
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, READ_USERS) {
        return denied(&s);
    }
    let q = parse_query(raw);
    let epoch = s.delta_epoch.load(Ordering::Relaxed);
    let now = s.core.clock.now();
    let page = page_size_from_prefer(&headers, 200);
    let dl_path = "/v1.0/users/delta";
    let delta_link = |st: &DeltaState| {
        format!(
            "{}{dl_path}?$deltatoken={}",
            origin(&headers),
            encode_token(st)
        )
    };
    let skip_link = |st: &DeltaState| {
        format!(
            "{}{dl_path}?$skiptoken={}",
            origin(&headers),
            encode_token(st)
        )
    };
    let fresh = |sel: Vec<String>, seq: u64| DeltaState {
        k: "dl".into(),
        e: epoch,
        s: seq,
        to: 0,
        o: 0,
        t: now.timestamp(),
        sel,
    };
    let state = if let Some(dt) = q_get(&q, "$deltatoken") {
        if dt == "latest" {
            let sel = match parse_select(
                &s,
                q_get(&q, "$select"),
                USER_PROPS,
                DEFAULT_USER,
                "microsoft.graph.user",
            ) {
                Ok(p) => p.into_iter().map(str::to_owned).collect(),
                Err(r) => return r,
            };
            let seq = s.read().seq;
            return graph_ok(
                &s,
                json!({
                    "@odata.context": context(&headers, "users"),
                    "@odata.deltaLink": delta_link(&fresh(sel, seq)),
                    "value": [],
                }),
            );
        }
        match decode_token::<DeltaState>(dt) {
            Some(st) if st.k == "dl" => {
                if st.e != epoch || now.timestamp() - st.t > 7 * 86_400 {
                    return delta_expired(&s, &headers);
                }
                let to = s.read().seq;
                DeltaState {
                    k: "dc".into(),
                    to,
                    o: {
                        let w = s.read();
                        w.changes.partition_point(|(seq, _)| *seq <= st.s)
                    },
                    ..st
                }
            }
            _ => return delta_expired(&s, &headers),
        }
    } else if let Some(sk) = q_get(&q, "$skiptoken") {
        match decode_token::<DeltaState>(sk) {
            Some(st) if st.k == "di" || st.k == "dc" => {
                if st.e != epoch {
                    return delta_expired(&s, &headers);
                }
                st
            }
            _ => return bad_skiptoken(&s),
        }
    } else {
        let sel: Vec<String> = match parse_select(
            &s,
            q_get(&q, "$select"),
            USER_PROPS,
            DEFAULT_USER,
            "microsoft.graph.user",
        ) {
            Ok(p) => p.into_iter().map(str::to_owned).collect(),
            Err(r) => return r,
        };
        if sel.iter().any(|p| p == "signInActivity") {
            return bad_request(
                &s,
                "Property 'signInActivity' is not supported for delta query.",
            );
        }
        let seq = s.read().seq;
        DeltaState {
            k: "di".into(),
            e: epoch,
            s: seq,
            to: 0,
            o: 0,
            t: now.timestamp(),
            sel,
        }
    };
    let sel: Vec<&str> = state
        .sel
        .iter()
        .filter_map(|p| USER_PROPS.iter().find(|k| **k == p.as_str()).copied())
        .collect();
    let w = s.read();
    let mut value = Vec::new();
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(context(&headers, "users")));
    if state.k == "di" {
        let (positions, next) =
            page_positions(w.users.len(), state.o, page, |i| w.users[i].present());
        for i in positions {
            value.push(Value::Object(user_json(&w.users[i], &sel)));
        }
        match next {
            Some(o) => {
                body.insert(
                    "@odata.nextLink".into(),
                    json!(skip_link(&DeltaState { o, ..state })),
                );
            }
            None => {
                body.insert(
                    "@odata.deltaLink".into(),
                    json!(delta_link(&fresh(state.sel.clone(), state.s))),
                );
            }
        }
    } else {
        let mut pos = state.o;
        while pos < w.changes.len() && value.len() < page {
            let (seq, i) = w.changes[pos];
            if seq > state.to {
                break;
            }
            value.push(delta_item(&w, i, &sel));
            pos += 1;
        }
        let more = pos < w.changes.len() && w.changes[pos].0 <= state.to;
        if more {
            body.insert(
                "@odata.nextLink".into(),
                json!(skip_link(&DeltaState { o: pos, ..state })),
            );
        } else {
            body.insert(
                "@odata.deltaLink".into(),
                json!(delta_link(&fresh(state.sel.clone(), state.to))),
            );
        }
    }
    body.insert("value".into(), Value::Array(value));
    drop(w);
    graph_ok(&s, Value::Object(body))
}

fn delta_item(w: &World, i: usize, sel: &[&str]) -> Value {
    let u = &w.users[i];
    if u.purged {
        json!({"id": u.id, "@removed": {"reason": "deleted"}})
    } else if u.soft_deleted() {
        json!({"id": u.id, "@removed": {"reason": "changed"}})
    } else {
        Value::Object(user_json(u, sel))
    }
}

// ---------------------------------------------------------------------------------------
// Groups

const GROUP_PROPS: &[&str] = &[
    "id",
    "displayName",
    "description",
    "securityEnabled",
    "mailEnabled",
    "groupTypes",
    "mail",
    "createdDateTime",
];

fn group_json(g: &super::SimGroup, props: &[&str]) -> Value {
    let mut m = Map::new();
    for p in props {
        let v = match *p {
            "id" => json!(g.id),
            "displayName" => json!(g.display_name),
            "description" => json!(g.description),
            "securityEnabled" => json!(g.security_enabled),
            "mailEnabled" => json!(false),
            "groupTypes" => json!([]),
            "mail" | "createdDateTime" => Value::Null,
            _ => continue,
        };
        m.insert((*p).to_owned(), v);
    }
    Value::Object(m)
}

async fn list_groups(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, READ_GROUPS) {
        return denied(&s);
    }
    let q = parse_query(raw);
    let select = match parse_select(
        &s,
        q_get(&q, "$select"),
        GROUP_PROPS,
        GROUP_PROPS,
        "microsoft.graph.group",
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if q_get(&q, "$filter").is_some() {
        return unsupported_query(&s, "Filters on groups are not supported by this simulator.");
    }
    let top = match parse_top(&s, &q, 100, 999) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match q_get(&q, "$skiptoken") {
        None => 0,
        Some(t) => match decode_token::<Skip>(t) {
            Some(sk) if sk.k == "g" => sk.o,
            _ => return bad_skiptoken(&s),
        },
    };
    let w = s.read();
    let (positions, next) = page_positions(w.groups.len(), offset, top, |_| true);
    let value: Vec<Value> = positions
        .iter()
        .map(|&i| group_json(&w.groups[i], &select))
        .collect();
    let mut body = json!({
        "@odata.context": context(&headers, "groups"),
        "value": value,
    });
    if let Some(o) = next {
        body["@odata.nextLink"] = json!(link(
            &headers,
            "/v1.0/groups",
            &q,
            ("$skiptoken", &encode_token(&Skip { k: "g".into(), o }))
        ));
    }
    drop(w);
    graph_ok(&s, body)
}

async fn get_group(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, READ_GROUPS) {
        return denied(&s);
    }
    let w = s.read();
    match w.group_by_id.get(&id) {
        Some(&g) => {
            let body = group_json(&w.groups[g], GROUP_PROPS);
            drop(w);
            graph_ok(&s, body)
        }
        None => {
            drop(w);
            not_found(&s, &id)
        }
    }
}

async fn members_any(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    members(s, id, headers, raw, false).await
}

async fn members_users(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    members(s, id, headers, raw, true).await
}

async fn members(
    s: Arc<Shared>,
    id: String,
    headers: HeaderMap,
    raw: Option<String>,
    cast: bool,
) -> Response {
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, READ_GROUPS) {
        return denied(&s);
    }
    let q = parse_query(raw);
    let select = match parse_select(
        &s,
        q_get(&q, "$select"),
        USER_PROPS,
        DEFAULT_USER,
        "microsoft.graph.user",
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if select.contains(&"signInActivity") {
        return bad_request(
            &s,
            "Property 'signInActivity' is not available on group members.",
        );
    }
    let top = match parse_top(&s, &q, 100, 999) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match q_get(&q, "$skiptoken") {
        None => 0,
        Some(t) => match decode_token::<Skip>(t) {
            Some(sk) if sk.k == "m" => sk.o,
            _ => return bad_skiptoken(&s),
        },
    };
    let w = s.read();
    let Some(&g) = w.group_by_id.get(&id) else {
        drop(w);
        return not_found(&s, &id);
    };
    let members = &w.groups[g].members;
    let (positions, next) = page_positions(members.len(), offset, top, |p| {
        w.users[members[p]].present()
    });
    let value: Vec<Value> = positions
        .iter()
        .map(|&p| {
            let mut m = user_json(&w.users[members[p]], &select);
            if !cast {
                m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            }
            Value::Object(m)
        })
        .collect();
    let path = if cast {
        format!("/v1.0/groups/{id}/members/microsoft.graph.user")
    } else {
        format!("/v1.0/groups/{id}/members")
    };
    let mut body = json!({
        "@odata.context": context(&headers, if cast { "users" } else { "directoryObjects" }),
        "value": value,
    });
    if let Some(o) = next {
        body["@odata.nextLink"] = json!(link(
            &headers,
            &path,
            &q,
            ("$skiptoken", &encode_token(&Skip { k: "m".into(), o }))
        ));
    }
    drop(w);
    graph_ok(&s, body)
}

// ---------------------------------------------------------------------------------------
// Deleted items

async fn list_deleted(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    s.write().sweep(s.core.clock.now());
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, READ_USERS) {
        return denied(&s);
    }
    let q = parse_query(raw);
    let select = match parse_select(
        &s,
        q_get(&q, "$select"),
        USER_PROPS,
        DEFAULT_USER,
        "microsoft.graph.user",
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let top = match parse_top(&s, &q, 100, 999) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match q_get(&q, "$skiptoken") {
        None => 0,
        Some(t) => match decode_token::<Skip>(t) {
            Some(sk) if sk.k == "x" => sk.o,
            _ => return bad_skiptoken(&s),
        },
    };
    let w = s.read();
    let (positions, next) = page_positions(w.deleted.len(), offset, top, |_| true);
    let value: Vec<Value> = positions
        .iter()
        .map(|&p| Value::Object(user_json(&w.users[w.deleted[p]], &select)))
        .collect();
    let mut body = json!({
        "@odata.context": context(&headers, "directoryObjects/microsoft.graph.user"),
        "value": value,
    });
    if let Some(o) = next {
        body["@odata.nextLink"] = json!(link(
            &headers,
            "/v1.0/directory/deletedItems/microsoft.graph.user",
            &q,
            ("$skiptoken", &encode_token(&Skip { k: "x".into(), o }))
        ));
    }
    drop(w);
    graph_ok(&s, body)
}

async fn get_deleted(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    s.write().sweep(s.core.clock.now());
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, READ_USERS) {
        return denied(&s);
    }
    let q = parse_query(raw);
    let select = match parse_select(
        &s,
        q_get(&q, "$select"),
        USER_PROPS,
        DEFAULT_USER,
        "microsoft.graph.user",
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let w = s.read();
    match w
        .by_id
        .get(&id)
        .copied()
        .filter(|&i| w.users[i].soft_deleted())
    {
        Some(i) => {
            let mut m = user_json(&w.users[i], &select);
            m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            drop(w);
            graph_ok(&s, Value::Object(m))
        }
        None => {
            drop(w);
            not_found(&s, &id)
        }
    }
}

async fn restore_deleted(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !has_any(&claims, &["User.ReadWrite.All", "Directory.ReadWrite.All"]) {
        return denied(&s);
    }
    let mut w = s.write();
    match w
        .by_id
        .get(&id)
        .copied()
        .filter(|&i| w.users[i].soft_deleted())
    {
        Some(i) => {
            w.restore(i);
            let m = user_json(&w.users[i], DEFAULT_USER);
            drop(w);
            graph_ok(&s, Value::Object(m))
        }
        None => {
            drop(w);
            not_found(&s, &id)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sign-in log

#[derive(Default)]
struct SignInFilter {
    app_id: Option<String>,
    user_id: Option<String>,
    upn: Option<String>,
    error_code: Option<i64>,
    ge: Option<DateTime<Utc>>,
    le: Option<DateTime<Utc>>,
}

fn parse_sign_in_filter(filter: &str) -> Result<SignInFilter, String> {
    let mut f = SignInFilter::default();
    let bad = |c: &str| format!("Invalid filter clause: {c}");
    if filter.trim().is_empty() {
        return Ok(f);
    }
    for clause in split_and(filter) {
        let mut parts = clause.splitn(3, ' ');
        let (Some(prop), Some(op), Some(val)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(&clause));
        };
        let op = parse_cmp(op).ok_or_else(|| bad(&clause))?;
        match (prop.to_ascii_lowercase().as_str(), op) {
            ("appid", Cmp::Eq) => f.app_id = Some(odata_string(val).ok_or_else(|| bad(&clause))?),
            ("userid", Cmp::Eq) => f.user_id = Some(odata_string(val).ok_or_else(|| bad(&clause))?),
            ("userprincipalname", Cmp::Eq) => {
                f.upn = Some(odata_string(val).ok_or_else(|| bad(&clause))?)
            }
            ("status/errorcode", Cmp::Eq) => {
                f.error_code = Some(val.trim().parse().map_err(|_| bad(&clause))?)
            }
            ("createddatetime", Cmp::Ge | Cmp::Gt) => {
                f.ge = Some(parse_time(val).ok_or_else(|| bad(&clause))?)
            }
            ("createddatetime", Cmp::Le | Cmp::Lt) => {
                f.le = Some(parse_time(val).ok_or_else(|| bad(&clause))?)
            }
            _ => return Err(bad(&clause)),
        }
    }
    Ok(f)
}

fn sign_in_json(w: &World, e: &super::SimSignIn) -> Value {
    let u = &w.users[e.user];
    let ok = e.error_code == 0;
    json!({
        "id": e.id,
        "createdDateTime": fmt_time(e.created),
        "userDisplayName": u.display_name,
        "userPrincipalName": u.user_principal_name,
        "userId": u.id,
        "appId": e.app_id,
        "appDisplayName": e.app_display_name,
        "ipAddress": "131.107.159.37",
        "clientAppUsed": "Browser",
        "correlationId": e.id,
        "conditionalAccessStatus": if ok { "success" } else { "notApplied" },
        "isInteractive": true,
        "riskDetail": "none",
        "riskLevelAggregated": "none",
        "riskLevelDuringSignIn": "none",
        "riskState": "none",
        "riskEventTypes_v2": [],
        "resourceDisplayName": e.app_display_name,
        "resourceId": e.app_id,
        "status": if ok {
            json!({"errorCode": 0, "failureReason": null, "additionalDetails": null})
        } else {
            json!({"errorCode": e.error_code, "failureReason": "Invalid username or password or Invalid on-premise username or password.", "additionalDetails": null})
        },
        "appliedConditionalAccessPolicies": [],
    })
}

#[derive(Serialize, Deserialize)]
struct SignInSkip {
    k: String,
    /// Exclusive upper index into the ascending log.
    p: usize,
}

async fn list_sign_ins(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let claims = match authorize(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !s.premium() {
        return not_premium(&s);
    }
    if !has_any(&claims, &["AuditLog.Read.All"]) {
        return denied(&s);
    }
    let q = parse_query(raw);
    let f = match parse_sign_in_filter(q_get(&q, "$filter").unwrap_or("")) {
        Ok(f) => f,
        Err(m) => return unsupported_query(&s, &m),
    };
    let top = match parse_top(&s, &q, 1000, 1000) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let w = s.read();
    let upper = match q_get(&q, "$skiptoken") {
        None => w.sign_ins.len(),
        Some(t) => match decode_token::<SignInSkip>(t) {
            Some(sk) if sk.k == "s" => sk.p.min(w.sign_ins.len()),
            _ => {
                drop(w);
                return bad_skiptoken(&s);
            }
        },
    };
    // Retention: 30 days.
    let retention = s.core.clock.now() - Duration::days(30);
    let floor = f.ge.map_or(retention, |g| g.max(retention));
    let lower = w.sign_ins.partition_point(|e| e.created < floor);
    let mut value = Vec::new();
    let mut i = upper;
    while i > lower && value.len() < top {
        i -= 1;
        let e = &w.sign_ins[i];
        let u = &w.users[e.user];
        let keep = f
            .app_id
            .as_ref()
            .is_none_or(|a| a.eq_ignore_ascii_case(&e.app_id))
            && f.user_id.as_ref().is_none_or(|x| *x == u.id)
            && f.upn
                .as_ref()
                .is_none_or(|x| x.eq_ignore_ascii_case(&u.user_principal_name))
            && f.error_code.is_none_or(|c| c == e.error_code)
            && f.le.is_none_or(|le| e.created <= le);
        if keep {
            value.push(sign_in_json(&w, e));
        }
    }
    let mut body = json!({
        "@odata.context": context(&headers, "auditLogs/signIns"),
        "value": value,
    });
    if i > lower {
        body["@odata.nextLink"] = json!(link(
            &headers,
            "/v1.0/auditLogs/signIns",
            &q,
            (
                "$skiptoken",
                &encode_token(&SignInSkip {
                    k: "s".into(),
                    p: i
                })
            )
        ));
    }
    drop(w);
    graph_ok(&s, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_split_on_and_outside_quotes_and_refuse_what_graph_refuses() {
        assert_eq!(
            split_and("displayName eq 'Tom and Jerry' and accountEnabled eq true"),
            vec!["displayName eq 'Tom and Jerry'", "accountEnabled eq true"]
        );
        assert_eq!(
            split_and("displayName eq 'Zoë Ærø' and mail eq 'é'"),
            vec!["displayName eq 'Zoë Ærø'", "mail eq 'é'"]
        );
        assert!(parse_user_filter("startswith(displayName,'Jürgen')", false).is_ok());
        assert!(parse_user_filter("ä eq 'ö'", false).is_err());
        assert!(parse_user_filter("accountEnabled eq false", false).is_ok());
        assert!(parse_user_filter("accountEnabled ne false", false).is_err());
        assert!(parse_user_filter("accountEnabled ne false", true).is_ok());
        assert!(
            parse_user_filter(
                "signInActivity/lastSignInDateTime le 2025-01-01T00:00:00Z and accountEnabled eq true",
                true
            )
            .is_err()
        );
        assert!(parse_user_filter("startswith(userPrincipalName,'ad')", false).is_ok());
        assert!(parse_user_filter("endswith(mail,'@x.example')", false).is_err());
        assert!(parse_user_filter("city eq 'Paris'", false).is_err());
    }

    #[test]
    fn resource_units_follow_the_published_costs() {
        assert_eq!(resource_units("/v1.0/users", ""), 2);
        assert_eq!(resource_units("/v1.0/users", "$select=id"), 1);
        assert_eq!(resource_units("/v1.0/groups/x/members", ""), 3);
        assert_eq!(resource_units("/v1.0/auditLogs/signIns", ""), 1);
    }
}
