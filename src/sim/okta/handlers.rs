//! The Okta simulator's API routes: the org token endpoint, users, groups, group members and
//! the System Log, with Okta's authentication, scope checks, rate-limit headers, link headers
//! and error bodies.

// Handlers answer early with a ready response; boxing every early answer buys nothing here.
#![allow(clippy::result_large_err)]

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Duration;
use serde_json::{Value, json};

use super::model::{Filter, FilterError, Grammar, SimEvent, parse_time};
use super::{Issued, RateUse, Shared, Window, lock};
use crate::clock::{Clock, SystemClock};

pub(super) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth2/v1/token", post(token))
        .route("/api/v1/users", get(list_users))
        .route("/api/v1/users/{id}", get(get_user))
        .route("/api/v1/users/{id}/groups", get(user_groups))
        .route("/api/v1/groups", get(list_groups))
        .route("/api/v1/groups/{id}", get(get_group))
        .route("/api/v1/groups/{id}/users", get(group_users))
        .route("/api/v1/logs", get(list_logs))
        .with_state(shared)
}

/// An Okta error body with its status.
pub(super) fn okta_error(s: &Shared, status: StatusCode, code: &str, summary: &str) -> Response {
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    let body = json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": format!("oae{n:020x}"),
        "errorCauses": [],
    });
    (status, Json(body)).into_response()
}

fn validation_error(s: &Shared, summary: &str, cause: &str) -> Response {
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    let body = json!({
        "errorCode": "E0000001",
        "errorSummary": format!("Api validation failed: {summary}"),
        "errorLink": "E0000001",
        "errorId": format!("oae{n:020x}"),
        "errorCauses": [ { "errorSummary": cause } ],
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn base_of(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn params(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn link(base: &str, path: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let q = ser.finish();
    if q.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{q}")
    }
}

/// Adds the separate `link` headers Okta sends.
fn add_links(resp: &mut Response, self_link: &str, next: Option<&str>) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("<{self_link}>; rel=\"self\"")) {
        h.append(header::LINK, v);
    }
    if let Some(n) = next
        && let Ok(v) = HeaderValue::from_str(&format!("<{n}>; rel=\"next\""))
    {
        h.append(header::LINK, v);
    }
}

/// The rate-limit bucket of a path and Okta's Workforce default for it.
fn bucket(path: &str) -> (&'static str, u64) {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["oauth2", "v1", "token"] => ("/oauth2/v1/token", 600),
        ["api", "v1", "users"] => ("/api/v1/users", 600),
        ["api", "v1", "users", ..] => ("/api/v1/users/{id}", 2000),
        ["api", "v1", "groups"] => ("/api/v1/groups", 500),
        ["api", "v1", "groups", ..] => ("/api/v1/groups/{id}", 1000),
        ["api", "v1", "logs"] => ("/api/v1/logs", 120),
        _ => ("/api/v1", 1200),
    }
}

/// Takes one request from the bucket of `path`: the rate headers, or a 429.
fn take_rate(s: &Shared, path: &str) -> Result<[(HeaderName, String); 3], Response> {
    let (name, default) = bucket(path);
    let now_ms = SystemClock.now().timestamp_millis();
    let mut r = lock(&s.rate);
    let limit = r.limit.unwrap_or(default);
    let window_ms = r.window_secs as i64 * 1000;
    let w = r.windows.entry(name).or_insert(Window {
        start_ms: now_ms,
        used: 0,
    });
    if now_ms >= w.start_ms + window_ms {
        *w = Window {
            start_ms: now_ms,
            used: 0,
        };
    }
    let limited = w.used >= limit;
    if !limited {
        w.used += 1;
    }
    let remaining = limit.saturating_sub(w.used);
    // Okta's reset is whole epoch seconds, rounded up.
    let reset = (w.start_ms + window_ms + 999) / 1000;
    let start_ms = w.start_ms;
    r.log.push(RateUse {
        bucket: name.to_owned(),
        window_start_ms: start_ms,
        limit,
        remaining,
        limited,
    });
    let headers = [
        (
            HeaderName::from_static("x-rate-limit-limit"),
            limit.to_string(),
        ),
        (
            HeaderName::from_static("x-rate-limit-remaining"),
            remaining.to_string(),
        ),
        (
            HeaderName::from_static("x-rate-limit-reset"),
            reset.to_string(),
        ),
    ];
    drop(r);
    if limited {
        let mut resp = okta_error(
            s,
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        );
        decorate(&mut resp, &headers, s);
        return Err(resp);
    }
    Ok(headers)
}

fn decorate(resp: &mut Response, rate: &[(HeaderName, String); 3], s: &Shared) {
    let h = resp.headers_mut();
    for (k, v) in rate {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k.clone(), v);
        }
    }
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = HeaderValue::from_str(&format!("sim{n:016x}")) {
        h.insert(HeaderName::from_static("x-okta-request-id"), v);
    }
}

/// Authenticates an API call needing `scope`.
fn authorize(s: &Shared, headers: &HeaderMap, scope: &str, resource: &str) -> Result<(), Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(tok) = auth.strip_prefix("SSWS ") {
        if lock(&s.ssws).iter().any(|t| t == tok.trim()) {
            return Ok(());
        }
        return Err(okta_error(
            s,
            StatusCode::UNAUTHORIZED,
            "E0000011",
            "Invalid token provided",
        ));
    }
    if let Some(tok) = auth.strip_prefix("Bearer ") {
        let now = s.core.clock.now();
        let issued = lock(&s.tokens).get(tok.trim()).cloned();
        let Some(Issued { scopes, expires }) = issued else {
            return Err(bearer_401(s));
        };
        if expires <= now {
            return Err(bearer_401(s));
        }
        if !scopes.iter().any(|g| g == scope) {
            let www = format!(
                "Bearer authorization_uri=\"{base}/oauth2/v1/authorize\", realm=\"{base}\", scope=\"{scope}\", error=\"insufficient_scope\", error_description=\"The access token provided does not contain the required scopes.\", resource=\"{resource}\"",
                base = base_of(headers)
            );
            let mut resp = StatusCode::FORBIDDEN.into_response();
            if let Ok(v) = HeaderValue::from_str(&www) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return Err(resp);
        }
        return Ok(());
    }
    Err(okta_error(
        s,
        StatusCode::UNAUTHORIZED,
        "E0000011",
        "Invalid token provided",
    ))
}

fn bearer_401(s: &Shared) -> Response {
    let mut resp = okta_error(
        s,
        StatusCode::UNAUTHORIZED,
        "E0000011",
        "Invalid token provided",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer error=\"invalid_token\", error_description=\"The token is not valid as it was issued in the future or has expired.\"",
        ),
    );
    resp
}

/// Rate, latency and authentication in front of every API handler.
async fn gate(
    s: &Shared,
    headers: &HeaderMap,
    path: &str,
    scope: &str,
) -> Result<[(HeaderName, String); 3], Response> {
    if s.latency_ms > 0 {
        tokio::time::sleep(StdDuration::from_millis(s.latency_ms)).await;
    }
    let rate = take_rate(s, path)?;
    if let Err(mut resp) = authorize(s, headers, scope, path) {
        decorate(&mut resp, &rate, s);
        return Err(resp);
    }
    Ok(rate)
}

fn finish(mut resp: Response, rate: &[(HeaderName, String); 3], s: &Shared) -> Response {
    decorate(&mut resp, rate, s);
    resp
}

macro_rules! gated {
    ($s:expr, $headers:expr, $path:expr, $scope:expr) => {
        match gate(&$s, &$headers, $path, $scope).await {
            Ok(rate) => rate,
            Err(resp) => return resp,
        }
    };
}

fn filter_error(s: &Shared, e: FilterError, logs: bool) -> Response {
    match e {
        FilterError::Syntax(_) if logs => okta_error(
            s,
            StatusCode::BAD_REQUEST,
            "E0000053",
            "Invalid SCIM filter.",
        ),
        _ => okta_error(
            s,
            StatusCode::BAD_REQUEST,
            "E0000031",
            "Invalid search criteria.",
        ),
    }
}

fn limit_param(p: &[(String, String)], default: u64, cap: u64) -> Result<u64, String> {
    match param(p, "limit") {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("limit: '{v}' is not a number"))
            .and_then(|n| {
                if n < 0 {
                    Err("limit: must not be negative".to_owned())
                } else {
                    Ok((n as u64).min(cap))
                }
            }),
    }
}

async fn list_users(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let rate = gated!(s, headers, "/api/v1/users", "okta.users.read");
    let base = base_of(&headers);
    let p = params(&q);
    let resp = users_page(&s, &base, &p);
    finish(resp, &rate, &s)
}

fn users_page(s: &Shared, base: &str, p: &[(String, String)]) -> Response {
    let limit = match limit_param(p, 200, 200) {
        Ok(l) => l.max(1) as usize,
        Err(e) => return validation_error(s, "limit", &e),
    };
    let after = param(p, "after").map(str::to_owned);
    let filter_text = param(p, "filter").or(param(p, "search"));
    let filter = match filter_text.map(|f| Filter::parse(f, Grammar::Users)) {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return filter_error(s, e, false),
        None => None,
    };
    let w = s.read();
    if let Some(qtext) = param(p, "q") {
        let qtext = qtext.to_lowercase();
        let limit = match param(p, "limit") {
            None => 10,
            Some(_) => limit,
        };
        let items: Vec<Value> = w
            .users
            .values()
            .filter(|u| u.status != "DEPROVISIONED")
            .filter(|u| {
                u.first_name.to_lowercase().starts_with(&qtext)
                    || u.last_name.to_lowercase().starts_with(&qtext)
                    || u.email.to_lowercase().starts_with(&qtext)
            })
            .take(limit)
            .map(|u| u.to_json(base))
            .collect();
        let mut resp = Json(items).into_response();
        let pairs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        add_links(&mut resp, &link(base, "/api/v1/users", &pairs), None);
        return resp;
    }
    let range = match &after {
        Some(a) => w
            .users
            .range::<String, _>((Bound::Excluded(a.clone()), Bound::Unbounded)),
        None => w.users.range::<String, _>(..),
    };
    let matches = |u: &&super::SimUser| match &filter {
        Some(f) => f.user(u),
        None => u.status != "DEPROVISIONED",
    };
    let mut it = range.map(|(_, u)| u).filter(matches);
    let page: Vec<&super::SimUser> = it.by_ref().take(limit).collect();
    let more = it.next().is_some();
    let items: Vec<Value> = page.iter().map(|u| u.to_json(base)).collect();
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(a) = &after {
        pairs.push(("after", a.clone()));
    }
    pairs.push(("limit", limit.to_string()));
    if let Some(f) = param(p, "filter") {
        pairs.push(("filter", f.to_owned()));
    }
    if let Some(f) = param(p, "search") {
        pairs.push(("search", f.to_owned()));
    }
    let self_pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let self_link = link(base, "/api/v1/users", &self_pairs);
    let glitch = *lock(&s.glitch);
    let next = (more && !page.is_empty()).then(|| {
        let last = match glitch {
            Some(super::Glitch::RepeatCursor) if after.is_some() => {
                after.clone().unwrap_or_default()
            }
            Some(super::Glitch::Overlap) if page.len() >= 2 => page[page.len() - 2].id.clone(),
            _ => page.last().map(|u| u.id.clone()).unwrap_or_default(),
        };
        let mut np: Vec<(&str, &str)> = vec![("after", last.as_str())];
        np.extend(self_pairs.iter().filter(|(k, _)| *k != "after").cloned());
        link(base, "/api/v1/users", &np)
    });
    drop(w);
    let mut resp = Json(items).into_response();
    add_links(&mut resp, &self_link, next.as_deref());
    resp
}

async fn get_user(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let rate = gated!(s, headers, "/api/v1/users/x", "okta.users.read");
    let base = base_of(&headers);
    let resp = match s.read().user(&id) {
        Some(u) => Json(u.to_json(&base)).into_response(),
        None => okta_error(
            &s,
            StatusCode::NOT_FOUND,
            "E0000007",
            &format!("Not found: Resource not found: {id} (User)"),
        ),
    };
    finish(resp, &rate, &s)
}

async fn user_groups(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let rate = gated!(s, headers, "/api/v1/users/x/groups", "okta.users.read");
    let base = base_of(&headers);
    let w = s.read();
    let resp = match w.user(&id) {
        Some(u) => {
            let items: Vec<Value> = w
                .groups
                .values()
                .filter(|g| g.members.binary_search(&u.id).is_ok())
                .map(|g| g.to_json(&base, false))
                .collect();
            Json(items).into_response()
        }
        None => okta_error(
            &s,
            StatusCode::NOT_FOUND,
            "E0000007",
            &format!("Not found: Resource not found: {id} (User)"),
        ),
    };
    drop(w);
    finish(resp, &rate, &s)
}

async fn list_groups(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let rate = gated!(s, headers, "/api/v1/groups", "okta.groups.read");
    let base = base_of(&headers);
    let p = params(&q);
    let limit = match limit_param(&p, 10_000, 10_000) {
        Ok(l) => l.max(1) as usize,
        Err(e) => return finish(validation_error(&s, "limit", &e), &rate, &s),
    };
    let filter = match param(&p, "filter").map(|f| Filter::parse(f, Grammar::Groups)) {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return finish(filter_error(&s, e, false), &rate, &s),
        None => None,
    };
    let stats = param(&p, "expand") == Some("stats");
    let qtext = param(&p, "q").map(str::to_lowercase);
    let after = param(&p, "after").map(str::to_owned);
    let w = s.read();
    let range = match &after {
        Some(a) => w
            .groups
            .range::<String, _>((Bound::Excluded(a.clone()), Bound::Unbounded)),
        None => w.groups.range::<String, _>(..),
    };
    let mut it = range.map(|(_, g)| g).filter(|g| {
        filter.as_ref().is_none_or(|f| f.group(g))
            && qtext
                .as_ref()
                .is_none_or(|q| g.name.to_lowercase().starts_with(q))
    });
    let page: Vec<&super::SimGroup> = it.by_ref().take(limit).collect();
    let more = qtext.is_none() && it.next().is_some();
    let items: Vec<Value> = page.iter().map(|g| g.to_json(&base, stats)).collect();
    let keep: Vec<(&str, &str)> = p
        .iter()
        .filter(|(k, _)| k != "after")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut self_pairs = keep.clone();
    if let Some(a) = &after {
        self_pairs.insert(0, ("after", a.as_str()));
    }
    let self_link = link(&base, "/api/v1/groups", &self_pairs);
    let next = (more && !page.is_empty()).then(|| {
        let last = page.last().map(|g| g.id.clone()).unwrap_or_default();
        let mut np = vec![("after", last.as_str())];
        np.extend(keep.iter().cloned());
        link(&base, "/api/v1/groups", &np)
    });
    drop(w);
    let mut resp = Json(items).into_response();
    add_links(&mut resp, &self_link, next.as_deref());
    finish(resp, &rate, &s)
}

async fn get_group(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let rate = gated!(s, headers, "/api/v1/groups/x", "okta.groups.read");
    let base = base_of(&headers);
    let resp = match s.read().groups.get(&id) {
        Some(g) => Json(g.to_json(&base, false)).into_response(),
        None => okta_error(
            &s,
            StatusCode::NOT_FOUND,
            "E0000007",
            &format!("Not found: Resource not found: {id} (UserGroup)"),
        ),
    };
    finish(resp, &rate, &s)
}

async fn group_users(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let rate = gated!(s, headers, "/api/v1/groups/x/users", "okta.groups.read");
    let base = base_of(&headers);
    let p = params(&q);
    let limit = match limit_param(&p, 1000, 1000) {
        Ok(l) => l.max(1) as usize,
        Err(e) => return finish(validation_error(&s, "limit", &e), &rate, &s),
    };
    let after = param(&p, "after").map(str::to_owned);
    let w = s.read();
    let Some(g) = w.groups.get(&id) else {
        let resp = okta_error(
            &s,
            StatusCode::NOT_FOUND,
            "E0000007",
            &format!("Not found: Resource not found: {id} (UserGroup)"),
        );
        return finish(resp, &rate, &s);
    };
    let start = match &after {
        Some(a) => g.members.partition_point(|m| m <= a),
        None => 0,
    };
    let mut items = Vec::with_capacity(limit.min(g.members.len()));
    let mut last = None;
    let mut i = start;
    while i < g.members.len() && items.len() < limit {
        if let Some(u) = w.users.get(&g.members[i]) {
            items.push(u.to_json(&base));
        }
        last = Some(g.members[i].clone());
        i += 1;
    }
    let more = i < g.members.len();
    let path = format!("/api/v1/groups/{id}/users");
    let limit_s = limit.to_string();
    let mut self_pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &after {
        self_pairs.push(("after", a));
    }
    self_pairs.push(("limit", &limit_s));
    let self_link = link(&base, &path, &self_pairs);
    let next = match (&last, more) {
        (Some(l), true) => Some(link(&base, &path, &[("after", l), ("limit", &limit_s)])),
        _ => None,
    };
    drop(w);
    let mut resp = Json(items).into_response();
    add_links(&mut resp, &self_link, next.as_deref());
    finish(resp, &rate, &s)
}

fn encode_log_cursor(seq: u64) -> String {
    B64.encode(format!(
        "poll:{seq}:{}",
        seq.wrapping_mul(2_654_435_761) % 997
    ))
}

fn decode_log_cursor(c: &str) -> Option<u64> {
    let raw = B64.decode(c.as_bytes()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.strip_prefix("poll:")?.split(':');
    let seq: u64 = parts.next()?.parse().ok()?;
    let check: u64 = parts.next()?.parse().ok()?;
    (check == seq.wrapping_mul(2_654_435_761) % 997).then_some(seq)
}

async fn list_logs(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let rate = gated!(s, headers, "/api/v1/logs", "okta.logs.read");
    let base = base_of(&headers);
    let p = params(&q);
    finish(logs_page(&s, &base, &p), &rate, &s)
}

fn logs_page(s: &Shared, base: &str, p: &[(String, String)]) -> Response {
    let now = s.core.clock.now();
    let limit = match limit_param(p, 100, u64::MAX) {
        Ok(l) if l <= 1000 => l as usize,
        Ok(_) => return validation_error(s, "limit", "limit: must be between 0 and 1000"),
        Err(e) => return validation_error(s, "limit", &e),
    };
    let since_raw = param(p, "since");
    let until_raw = param(p, "until");
    let after = param(p, "after");
    if since_raw.is_some() && after.is_some() {
        return validation_error(
            s,
            "since",
            "since: 'since' and 'after' are mutually exclusive",
        );
    }
    let parse = |name: &str, v: Option<&str>| match v {
        None => Ok(None),
        Some(v) => parse_time(v)
            .map(Some)
            .ok_or_else(|| validation_error(s, name, &format!("{name}: invalid date '{v}'"))),
    };
    let since = match parse("since", since_raw) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let until = match parse("until", until_raw) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(t) = since
        && now - t > Duration::days(180)
    {
        return validation_error(
            s,
            "since",
            "since: The since parameter is over 180 days prior to the current day.",
        );
    }
    let filter = match param(p, "filter").map(|f| Filter::parse(f, Grammar::Logs)) {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return filter_error(s, e, true),
        None => None,
    };
    let ascending = match param(p, "sortOrder") {
        None | Some("ASCENDING") => true,
        Some("DESCENDING") => false,
        Some(o) => {
            return validation_error(s, "sortOrder", &format!("sortOrder: invalid value '{o}'"));
        }
    };
    let keep: Vec<(&str, &str)> = p
        .iter()
        .filter(|(k, _)| k != "after" && k != "since")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let w = s.read();
    let matches = |e: &SimEvent| filter.as_ref().is_none_or(|f| f.event(e));
    if until.is_none() && ascending {
        // Polling: persistence order, endless next link.
        let start_seq = match after {
            Some(a) => match decode_log_cursor(a) {
                Some(seq) => seq,
                None => {
                    return validation_error(s, "after", "after: the cursor is not valid");
                }
            },
            None => {
                let since = since.unwrap_or(now - Duration::days(7));
                let i = w.events.partition_point(|e| e.persisted < since);
                if i == 0 { 0 } else { w.events[i - 1].seq }
            }
        };
        let first = w.events.partition_point(|e| e.seq <= start_seq);
        let mut items = Vec::new();
        let mut last_seq = start_seq;
        for e in &w.events[first..] {
            if items.len() >= limit {
                break;
            }
            last_seq = e.seq;
            if matches(e) {
                items.push(e.to_json(&w.org));
            }
        }
        let mut self_pairs = keep.clone();
        let after_s;
        if let Some(a) = after {
            after_s = a.to_owned();
            self_pairs.push(("after", &after_s));
        }
        if let Some(sv) = since_raw {
            self_pairs.push(("since", sv));
        }
        let self_link = link(base, "/api/v1/logs", &self_pairs);
        let cursor = encode_log_cursor(last_seq);
        let mut np = keep.clone();
        np.push(("after", &cursor));
        let next = link(base, "/api/v1/logs", &np);
        drop(w);
        let mut resp = Json(items).into_response();
        add_links(&mut resp, &self_link, Some(&next));
        return resp;
    }
    // Bounded (or descending): by published, finite.
    let until = until.unwrap_or(now);
    let since = since.unwrap_or(until - Duration::days(7));
    let mut all: Vec<&SimEvent> = w
        .events
        .iter()
        .filter(|e| e.published >= since && e.published < until && matches(e))
        .collect();
    all.sort_by_key(|e| (e.published, e.seq));
    if !ascending {
        all.reverse();
    }
    let offset = match after {
        Some(a) => match a
            .strip_prefix("bounded-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => n,
            None => return validation_error(s, "after", "after: the cursor is not valid"),
        },
        None => 0,
    };
    let items: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| e.to_json(&w.org))
        .collect();
    let more = offset + items.len() < all.len() && !items.is_empty();
    let mut self_pairs = keep.clone();
    if let Some(sv) = since_raw {
        self_pairs.push(("since", sv));
    }
    let self_link = link(base, "/api/v1/logs", &self_pairs);
    let cursor = format!("bounded-{}", offset + items.len());
    let next = more.then(|| {
        let mut np = keep.clone();
        np.push(("after", &cursor));
        link(base, "/api/v1/logs", &np)
    });
    drop(w);
    let mut resp = Json(items).into_response();
    add_links(&mut resp, &self_link, next.as_deref());
    resp
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    jti: Option<String>,
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let rate = match take_rate(&s, "/oauth2/v1/token") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let resp = token_answer(&s, &headers, &body);
    finish(resp, &rate, &s)
}

fn token_answer(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| param(&form, k);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("basic "));
    let assertion = get("client_assertion");
    if basic && (assertion.is_some() || get("client_secret").is_some()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Cannot supply multiple client credentials. Use one of the following: credentials in the Authorization header, credentials in the post body, or a client_assertion in the post body.",
        );
    }
    if get("grant_type") != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials].",
        );
    }
    let Some(assertion) = assertion else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed. Either the client or the client credentials are invalid.",
        );
    };
    if get("client_assertion_type")
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The client_assertion_type is invalid.",
        );
    }
    let invalid_client = |why: &str| {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("The client_assertion token is invalid: {why}"),
        )
    };
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) => h,
        Err(_) => return invalid_client("it is not a JWT"),
    };
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return invalid_client("the signing algorithm is not the registered key's");
    }
    let key = match jsonwebtoken::DecodingKey::from_rsa_pem(s.public_key_pem.as_bytes()) {
        Ok(k) => k,
        Err(_) => return invalid_client("the app has no usable public key"),
    };
    let base = base_of(headers);
    let aud = format!("{base}/oauth2/v1/token");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[aud.as_str()]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    v.leeway = 30;
    let claims = match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::InvalidSignature => "the signature does not verify".to_owned(),
                ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                ErrorKind::InvalidAudience => format!("the audience must be {aud}"),
                ErrorKind::MissingRequiredClaim(c) => format!("the claim {c} is missing"),
                other => format!("{other:?}"),
            };
            return invalid_client(&why);
        }
    };
    if claims.iss.as_deref() != Some(&s.client_id) || claims.sub.as_deref() != Some(&s.client_id) {
        return invalid_client("iss and sub must be the client id");
    }
    let now_real = SystemClock.now().timestamp();
    if claims.exp.unwrap_or(0) > now_real + 3600 + 30 {
        return invalid_client("the expiration time must be at most one hour in the future");
    }
    let Some(jti) = claims.jti else {
        return invalid_client("the jti claim is missing");
    };
    if !lock(&s.jtis).insert(jti) {
        return invalid_client("the jti has already been used");
    }
    let requested: Vec<String> = get("scope")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if requested.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        );
    }
    let granted = lock(&s.granted).clone();
    let refused: Vec<&String> = requested.iter().filter(|r| !granted.contains(r)).collect();
    if !refused.is_empty() {
        let list: Vec<&str> = refused.iter().map(|r| r.as_str()).collect();
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("The following scopes are not allowed: {}", list.join(", ")),
        );
    }
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    let access = format!("eyJsim.{n:016x}.{}", lock(&s.jtis).len());
    lock(&s.tokens).insert(
        access.clone(),
        Issued {
            scopes: requested.clone(),
            expires: s.core.clock.now() + Duration::seconds(3600),
        },
    );
    let mut resp = Json(json!({
        "token_type": "Bearer",
        "expires_in": 3600,
        "access_token": access,
        "scope": requested.join(" "),
    }))
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_cursors_round_trip_and_forged_ones_are_refused() {
        for seq in [0, 1, 42, 123_456] {
            assert_eq!(decode_log_cursor(&encode_log_cursor(seq)), Some(seq));
        }
        assert_eq!(decode_log_cursor("cG9sbDo1OjE="), None);
        assert_eq!(decode_log_cursor("%2B"), None);
    }

    #[test]
    fn paths_fall_into_okta_rate_limit_buckets() {
        assert_eq!(bucket("/api/v1/users").0, "/api/v1/users");
        assert_eq!(bucket("/api/v1/users/00u1").0, "/api/v1/users/{id}");
        assert_eq!(bucket("/api/v1/groups/00g1/users").0, "/api/v1/groups/{id}");
        assert_eq!(bucket("/api/v1/logs").1, 120);
    }
}
