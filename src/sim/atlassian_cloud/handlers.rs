//! The product routes of the simulated Atlassian Cloud admin APIs, with the key check and the
//! per-org rate limit in front of them.

// Helpers return the ready answer for a failed lookup as their error; one per request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{AccountStatus, MembershipStatus, STAFF_DOMAIN, World};
use super::{CursorKind, CursorState, Shared};

type St = State<Arc<Shared>>;

/// The value of a helper's `Ok`, or return its ready answer.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// Page size when the request names none, and the largest honoured.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub(super) fn routes(shared: Arc<Shared>) -> Router {
    let v2 = "/admin/v2/orgs/{org_id}/directories";
    Router::new()
        .route(v2, get(list_directories))
        .route(&format!("{v2}/{{dir}}/users"), get(list_users_get))
        .route(&format!("{v2}/{{dir}}/users/search"), post(search_users))
        .route(&format!("{v2}/{{dir}}/users/count"), get(count_users))
        .route(
            &format!("{v2}/{{dir}}/users/{{account_id}}"),
            get(get_user).delete(remove_user),
        )
        .route(
            &format!("{v2}/{{dir}}/users/{{account_id}}/suspend"),
            post(suspend_v2),
        )
        .route(
            &format!("{v2}/{{dir}}/users/{{account_id}}/restore"),
            post(restore_v2),
        )
        .route(&format!("{v2}/{{dir}}/groups"), get(list_groups_get))
        .route(&format!("{v2}/{{dir}}/groups/search"), post(search_groups))
        .route(&format!("{v2}/{{dir}}/groups/{{group_id}}"), get(get_group))
        .route(
            &format!("{v2}/{{dir}}/groups/{{group_id}}/memberships"),
            post(add_member_v2),
        )
        .route(
            &format!("{v2}/{{dir}}/groups/{{group_id}}/memberships/{{account_id}}"),
            axum::routing::delete(remove_member_v2),
        )
        .route("/admin/v1/orgs", get(list_orgs))
        .route("/admin/v1/orgs/{org_id}", get(get_org))
        .route("/admin/v1/orgs/{org_id}/users", get(list_users_v1))
        .route(
            "/admin/v1/orgs/{org_id}/directory/users/{account_id}",
            axum::routing::delete(remove_user_v1),
        )
        .route(
            "/admin/v1/orgs/{org_id}/directory/users/{account_id}/last-active-dates",
            get(last_active_dates),
        )
        .route(
            "/admin/v1/orgs/{org_id}/directory/users/{account_id}/suspend-access",
            post(suspend_v1),
        )
        .route(
            "/admin/v1/orgs/{org_id}/directory/users/{account_id}/restore-access",
            post(restore_v1),
        )
        .route(
            "/admin/v1/orgs/{org_id}/directory/groups/{group_id}/memberships",
            post(add_member_v1),
        )
        .route(
            "/admin/v1/orgs/{org_id}/directory/groups/{group_id}/memberships/{account_id}",
            axum::routing::delete(remove_member_v1),
        )
        .route("/users/{account_id}/manage", get(manage_permissions))
        .route(
            "/users/{account_id}/manage/lifecycle/disable",
            post(lifecycle_disable),
        )
        .route(
            "/users/{account_id}/manage/lifecycle/enable",
            post(lifecycle_enable),
        )
        .layer(axum::middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------
// Auth and rate limit

/// Checks the key (401), refuses scoped keys on user management (403), applies the rate
/// limit (429) and adds `X-RateLimit-*` to answers while a limit is on.
async fn guard(State(s): St, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let user_mgmt = path.starts_with("/users/");
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let scoped = match presented {
        Some(k) if k == s.api_key => false,
        Some(k) if k == s.scoped_key => true,
        _ => {
            return if user_mgmt {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"key": "unauthorized"})),
                )
                    .into_response()
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"code": 401, "message": "Unauthorized"})),
                )
                    .into_response()
            };
        }
    };
    if scoped && user_mgmt {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"key": "forbidden"})),
        )
            .into_response();
    }
    let limit = {
        let mut guard = s.limiter.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_mut()
            .map(|(per_minute, bucket)| (*per_minute, bucket.take()))
    };
    let now = s.core.clock.now();
    match limit {
        None => next.run(req).await,
        Some((per_minute, Err(wait))) => {
            let wait = wait.min(std::time::Duration::from_secs(3600));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let reset = now + chrono::Duration::seconds(secs as i64);
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"code": 429, "message": "Too many requests"})),
            )
                .into_response();
            let h = resp.headers_mut();
            set_header(h, "x-ratelimit-limit", &per_minute.to_string());
            set_header(h, "x-ratelimit-remaining", "0");
            set_header(
                h,
                "x-ratelimit-reset",
                &reset.to_rfc3339_opts(SecondsFormat::Secs, true),
            );
            set_header(h, "retry-after", &secs.to_string());
            resp
        }
        Some((per_minute, Ok(remaining))) => {
            let mut resp = next.run(req).await;
            let h = resp.headers_mut();
            set_header(h, "x-ratelimit-limit", &per_minute.to_string());
            set_header(h, "x-ratelimit-remaining", &remaining.to_string());
            let reset = now + chrono::Duration::seconds(60);
            set_header(
                h,
                "x-ratelimit-reset",
                &reset.to_rfc3339_opts(SecondsFormat::Secs, true),
            );
            resp
        }
    }
}

fn set_header(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

// ---------------------------------------------------------------------------------------
// Errors

/// The admin API error envelope `{"errors":[{id,status,code,title,detail}]}`.
fn admin_error(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Response {
    let body = json!({
        "errors": [{
            "id": uuid::Uuid::new_v4().to_string(),
            "status": status.as_u16().to_string(),
            "code": code,
            "title": title,
            "detail": detail.into(),
        }]
    });
    (status, axum::Json(body)).into_response()
}

fn org_not_found(org: &str) -> Response {
    admin_error(
        StatusCode::NOT_FOUND,
        "ADMIN-404-2",
        "Organization not found",
        format!("No organization with id {org} is managed by this API key"),
    )
}

fn user_not_found(account_id: &str) -> Response {
    admin_error(
        StatusCode::NOT_FOUND,
        "ADMIN-404-8",
        "User not found",
        format!("User {account_id} was not found in this directory"),
    )
}

fn group_not_found(group_id: &str) -> Response {
    admin_error(
        StatusCode::NOT_FOUND,
        "ADMIN-404-10",
        "Group not found",
        format!("Group {group_id} was not found in this directory"),
    )
}

fn bad_cursor() -> Response {
    admin_error(
        StatusCode::BAD_REQUEST,
        "ADMIN-400-1",
        "Invalid page cursor",
        "The cursor is invalid or has expired; start the listing again without a cursor",
    )
}

fn bad_body(detail: impl Into<String>) -> Response {
    admin_error(
        StatusCode::BAD_REQUEST,
        "ADMIN-400-24",
        "Invalid request body",
        detail,
    )
}

fn synced_user(account_id: &str) -> Response {
    admin_error(
        StatusCode::FORBIDDEN,
        "ADMIN-UAM-403-1",
        "Forbidden",
        format!(
            "User {account_id} is managed by an external identity provider (SCIM); change it there"
        ),
    )
}

fn synced_group(group_id: &str) -> Response {
    admin_error(
        StatusCode::FORBIDDEN,
        "ADMIN-403-5",
        "Not allowed to manage the group",
        format!(
            "Group {group_id} is synced from an external identity provider; its memberships \
             are managed there"
        ),
    )
}

fn no_seats() -> Response {
    admin_error(
        StatusCode::CONFLICT,
        "ADMIN-UAM-409-3",
        "Product licence limit exceeded",
        "Confluence has no free seats; free a seat or raise the user limit first",
    )
}

// ---------------------------------------------------------------------------------------
// Wire shapes

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Serialize)]
struct V2ProductAccess<'a> {
    key: &'static str,
    id: &'a str,
    #[serde(
        rename = "lastActiveTimestamp",
        skip_serializing_if = "Option::is_none"
    )]
    last_active: Option<String>,
}

#[derive(Serialize)]
struct V2GroupRef<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2User<'a> {
    account_id: &'a str,
    account_type: &'static str,
    status: &'static str,
    account_status: &'static str,
    membership_status: &'static str,
    added_to_org: String,
    name: &'a str,
    nickname: &'a str,
    email: &'a str,
    email_verified: bool,
    claim_status: &'static str,
    management_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_access: Option<Vec<V2ProductAccess<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<V2GroupRef<'a>>>,
}

fn v2_user(w: &World, u: usize, products: bool, groups: bool) -> V2User<'_> {
    let user = &w.users[u];
    V2User {
        account_id: &user.account_id,
        account_type: "atlassian",
        status: w.v2_status(u),
        account_status: user.account_status.as_str(),
        membership_status: user.membership_status.as_str(),
        added_to_org: ts(user.added_to_org),
        name: &user.name,
        nickname: &user.nickname,
        email: &user.email,
        email_verified: true,
        claim_status: claim_status(&user.email),
        management_source: if user.synced { "synced" } else { "invited" },
        product_access: products.then(|| {
            if w.has_confluence(u) {
                vec![V2ProductAccess {
                    key: "confluence",
                    id: &w.site_id,
                    last_active: user.last_active.map(ts),
                }]
            } else {
                Vec::new()
            }
        }),
        groups: groups.then(|| {
            user.groups
                .iter()
                .map(|&g| V2GroupRef {
                    id: &w.groups[g].id,
                    name: &w.groups[g].name,
                })
                .collect()
        }),
    }
}

fn claim_status(email: &str) -> &'static str {
    if email.ends_with(&format!("@{STAFF_DOMAIN}")) {
        "managed"
    } else {
        "unmanaged"
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Group<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    directory_id: &'a str,
    external_synced: bool,
    managed_by: &'static str,
}

fn v2_group(w: &World, g: usize) -> V2Group<'_> {
    let group = &w.groups[g];
    V2Group {
        id: &group.id,
        name: &group.name,
        description: &group.description,
        directory_id: &w.directories[group.directory].id,
        external_synced: group.synced,
        managed_by: if group.synced { "external" } else { "admins" },
    }
}

#[derive(Serialize)]
struct Links {
    #[serde(rename = "self")]
    self_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[derive(Serialize)]
struct PageOut<T> {
    data: Vec<T>,
    links: Links,
}

// ---------------------------------------------------------------------------------------
// Query parsing and filters

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Values of a repeated (or comma-separated) query parameter.
fn many(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key || k.strip_suffix("[]") == Some(key))
        .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect()
}

fn one(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The user filters of `GET …/users` and `POST …/users/search`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct UserFilter {
    account_ids: Vec<String>,
    directory_ids: Vec<String>,
    resource_ids: Vec<String>,
    group_ids: Vec<String>,
    claim_status: Option<String>,
    status: Vec<String>,
    account_status: Vec<String>,
    membership_status: Vec<String>,
    email_domains: Vec<String>,
    search_term: Option<String>,
    emails: Vec<String>,
    expand: Vec<String>,
}

impl UserFilter {
    fn from_query(pairs: &[(String, String)]) -> Self {
        UserFilter {
            account_ids: many(pairs, "accountIds"),
            directory_ids: many(pairs, "directoryIds"),
            resource_ids: many(pairs, "resourceIds"),
            group_ids: many(pairs, "groupIds"),
            claim_status: one(pairs, "claimStatus"),
            status: many(pairs, "status"),
            account_status: many(pairs, "accountStatus"),
            membership_status: many(pairs, "membershipStatus"),
            email_domains: many(pairs, "emailDomains"),
            search_term: one(pairs, "searchTerm"),
            emails: many(pairs, "emails"),
            expand: many(pairs, "expand"),
        }
    }

    fn expands(&self, what: &str) -> bool {
        self.expand.iter().any(|e| e == what)
    }

    fn matches(&self, w: &World, u: usize) -> bool {
        let user = &w.users[u];
        if user.removed {
            return false;
        }
        let any = |list: &[String], value: &str| list.is_empty() || list.iter().any(|x| x == value);
        any(&self.account_ids, &user.account_id)
            && any(&self.directory_ids, &w.directories[user.directory].id)
            && any(&self.status, w.v2_status(u))
            && any(&self.account_status, user.account_status.as_str())
            && any(&self.membership_status, user.membership_status.as_str())
            && self
                .claim_status
                .as_deref()
                .is_none_or(|c| c == claim_status(&user.email))
            && (self.resource_ids.is_empty()
                || (w.has_confluence(u) && self.resource_ids.contains(&w.site_id)))
            && (self.group_ids.is_empty()
                || user
                    .groups
                    .iter()
                    .any(|&g| self.group_ids.iter().any(|id| *id == w.groups[g].id)))
            && (self.email_domains.is_empty()
                || self.email_domains.iter().any(|d| {
                    user.email
                        .rsplit_once('@')
                        .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(d))
                }))
            && (self.emails.is_empty()
                || self
                    .emails
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(&user.email)))
            && self.search_term.as_deref().is_none_or(|t| {
                let t = t.to_lowercase();
                user.name.to_lowercase().contains(&t) || user.email.to_lowercase().contains(&t)
            })
    }
}

/// The group filters of `GET …/groups` and `POST …/groups/search`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct GroupFilter {
    account_ids: Vec<String>,
    search_term: Option<String>,
    group_ids: Vec<String>,
    group_names: Vec<String>,
}

impl GroupFilter {
    fn matches(&self, w: &World, g: usize) -> bool {
        let group = &w.groups[g];
        (self.group_ids.is_empty() || self.group_ids.contains(&group.id))
            && (self.group_names.is_empty() || self.group_names.contains(&group.name))
            && self
                .search_term
                .as_deref()
                .is_none_or(|t| group.name.to_lowercase().contains(&t.to_lowercase()))
            && (self.account_ids.is_empty()
                || self
                    .account_ids
                    .iter()
                    .any(|a| w.user(a).is_some_and(|u| group.members.contains(&u))))
    }
}

/// The directory scope of `directoryId` (`-`: all), or the 404 for an unknown one.
fn scope(w: &World, org: &str, dir: &str) -> Result<Option<usize>, Response> {
    if org != w.org_id {
        return Err(org_not_found(org));
    }
    if dir == "-" {
        return Ok(None);
    }
    match w.directories.iter().position(|d| d.id == dir) {
        Some(d) => Ok(Some(d)),
        None => Err(admin_error(
            StatusCode::NOT_FOUND,
            "ADMIN-404-1",
            "Unknown resource",
            format!("Directory {dir} was not found in this organization"),
        )),
    }
}

fn limit_of(raw: Option<i64>) -> Result<usize, Response> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if n >= 1 => Ok((n as usize).min(MAX_LIMIT)),
        Some(n) => Err(bad_body(format!("limit must be at least 1, not {n}"))),
    }
}

/// Walks `0..len` from `offset`, taking up to `limit` matches; returns them and where a next
/// page would start, if any match remains.
fn walk(
    len: usize,
    offset: usize,
    limit: usize,
    mut matches: impl FnMut(usize) -> bool,
) -> (Vec<usize>, Option<usize>) {
    let mut out = Vec::with_capacity(limit.min(len));
    let mut i = offset;
    while i < len {
        if matches(i) {
            if out.len() == limit {
                return (out, Some(i));
            }
            out.push(i);
        }
        i += 1;
    }
    (out, None)
}

// ---------------------------------------------------------------------------------------
// v2 directories and users

async fn list_directories(State(s): St, Path(org): Path<String>) -> Response {
    let w = s.read();
    if org != w.org_id {
        return org_not_found(&org);
    }
    let data: Vec<Value> = w
        .directories
        .iter()
        .map(|d| json!({"directoryId": d.id, "name": d.name}))
        .collect();
    axum::Json(json!({
        "data": data,
        "links": {"self": format!("/admin/v2/orgs/{org}/directories")},
    }))
    .into_response()
}

async fn list_users_get(
    State(s): St,
    Path((org, dir)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    let limit = match one(&pairs, "limit").map(|l| l.parse::<i64>()) {
        Some(Err(_)) => return bad_body("limit must be a number"),
        Some(Ok(n)) => Some(n),
        None => None,
    };
    let filter = UserFilter::from_query(&pairs);
    list_users(&s, &org, &dir, one(&pairs, "cursor"), limit, filter)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody<F> {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(flatten)]
    filter: F,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &body[..]
    };
    serde_json::from_slice(text).map_err(|e| bad_body(format!("The request body is invalid: {e}")))
}

async fn search_users(
    State(s): St,
    Path((org, dir)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: SearchBody<UserFilter> = tri!(parse_body(&body));
    if body.filter.search_term.is_some() && !body.filter.emails.is_empty() {
        return bad_body("searchTerm and emails cannot be used together");
    }
    list_users(&s, &org, &dir, body.cursor, body.limit, body.filter)
}

fn list_users(
    s: &Shared,
    org: &str,
    dir: &str,
    cursor: Option<String>,
    limit: Option<i64>,
    filter: UserFilter,
) -> Response {
    let limit = tri!(limit_of(limit));
    let w = s.read();
    let directory = tri!(scope(&w, org, dir));
    // With a cursor, the filters it was issued for apply and the request's are ignored.
    let (directory, filter, offset) = match cursor.as_deref().filter(|c| !c.is_empty()) {
        None => (directory, filter, 0),
        Some(token) => match s.cursor(token) {
            Some(CursorState {
                kind:
                    CursorKind::UsersV2 {
                        directory: d,
                        filter: f,
                    },
                offset,
            }) if d == directory => (d, f, offset),
            _ => return bad_cursor(),
        },
    };
    let (rows, next) = walk(w.users.len(), offset, limit, |u| {
        directory.is_none_or(|d| w.users[u].directory == d) && filter.matches(&w, u)
    });
    let products = filter.expands("productAccess");
    let groups = filter.expands("groups");
    let data: Vec<V2User<'_>> = rows
        .iter()
        .map(|&u| v2_user(&w, u, products, groups))
        .collect();
    let next = next.map(|offset| {
        s.issue_cursor(CursorState {
            kind: CursorKind::UsersV2 {
                directory,
                filter: filter.clone(),
            },
            offset,
        })
    });
    axum::Json(PageOut {
        data,
        links: Links {
            self_: format!("/admin/v2/orgs/{org}/directories/{dir}/users"),
            next,
        },
    })
    .into_response()
}

async fn count_users(State(s): St, Path((org, dir)): Path<(String, String)>) -> Response {
    let w = s.read();
    let directory = tri!(scope(&w, &org, &dir));
    let count = w
        .users
        .iter()
        .filter(|u| !u.removed && directory.is_none_or(|d| u.directory == d))
        .count();
    axum::Json(json!({"data": {"count": count}})).into_response()
}

/// The user `account_id` within the directory scope, or the 404.
fn find_user(w: &World, directory: Option<usize>, account_id: &str) -> Result<usize, Response> {
    w.user(account_id)
        .filter(|&u| directory.is_none_or(|d| w.users[u].directory == d))
        .ok_or_else(|| user_not_found(account_id))
}

async fn get_user(
    State(s): St,
    Path((org, dir, account_id)): Path<(String, String, String)>,
) -> Response {
    let w = s.read();
    let u = tri!(scope(&w, &org, &dir).and_then(|d| find_user(&w, d, &account_id)));
    axum::Json(json!({"data": v2_user(&w, u, true, false)})).into_response()
}

/// What a state change did, for the answer of each API version.
enum Change {
    Done,
    Failed(Response),
}

fn suspend(s: &Shared, org: &str, dir: &str, account_id: &str) -> Change {
    let mut w = s.write();
    let u = match scope(&w, org, dir).and_then(|d| find_user(&w, d, account_id)) {
        Ok(u) => u,
        Err(r) => return Change::Failed(r),
    };
    if w.users[u].synced {
        return Change::Failed(synced_user(account_id));
    }
    // Suspended users keep their groups and roles; they no longer take a seat.
    w.users[u].membership_status = MembershipStatus::Suspended;
    Change::Done
}

fn restore(s: &Shared, org: &str, dir: &str, account_id: &str) -> Change {
    let mut w = s.write();
    let u = match scope(&w, org, dir).and_then(|d| find_user(&w, d, account_id)) {
        Ok(u) => u,
        Err(r) => return Change::Failed(r),
    };
    if w.users[u].synced {
        return Change::Failed(synced_user(account_id));
    }
    if w.users[u].membership_status == MembershipStatus::Active {
        return Change::Done;
    }
    let takes_seat = w.users[u].account_status == AccountStatus::Active && w.has_confluence(u);
    if takes_seat && !w.seat_free() {
        return Change::Failed(no_seats());
    }
    w.users[u].membership_status = MembershipStatus::Active;
    Change::Done
}

fn remove(s: &Shared, org: &str, dir: &str, account_id: &str) -> Change {
    let mut w = s.write();
    let u = match scope(&w, org, dir).and_then(|d| find_user(&w, d, account_id)) {
        Ok(u) => u,
        Err(r) => return Change::Failed(r),
    };
    if w.users[u].synced {
        return Change::Failed(synced_user(account_id));
    }
    // Removal drops roles and groups; re-adding needs a new invitation.
    let groups: Vec<usize> = w.users[u].groups.iter().copied().collect();
    for g in groups {
        w.groups[g].members.remove(&u);
    }
    let user = &mut w.users[u];
    user.groups.clear();
    user.removed = true;
    Change::Done
}

fn no_content(change: Change) -> Response {
    match change {
        Change::Done => StatusCode::NO_CONTENT.into_response(),
        Change::Failed(r) => r,
    }
}

fn message(change: Change, text: String) -> Response {
    match change {
        Change::Done => axum::Json(json!({"message": text})).into_response(),
        Change::Failed(r) => r,
    }
}

async fn suspend_v2(
    State(s): St,
    Path((org, dir, account_id)): Path<(String, String, String)>,
) -> Response {
    no_content(suspend(&s, &org, &dir, &account_id))
}

async fn restore_v2(
    State(s): St,
    Path((org, dir, account_id)): Path<(String, String, String)>,
) -> Response {
    no_content(restore(&s, &org, &dir, &account_id))
}

async fn remove_user(
    State(s): St,
    Path((org, dir, account_id)): Path<(String, String, String)>,
) -> Response {
    no_content(remove(&s, &org, &dir, &account_id))
}

// ---------------------------------------------------------------------------------------
// v2 groups and memberships

async fn list_groups_get(
    State(s): St,
    Path((org, dir)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    let limit = match one(&pairs, "limit").map(|l| l.parse::<i64>()) {
        Some(Err(_)) => return bad_body("limit must be a number"),
        Some(Ok(n)) => Some(n),
        None => None,
    };
    let filter = GroupFilter {
        search_term: one(&pairs, "searchTerm"),
        ..GroupFilter::default()
    };
    list_groups(&s, &org, &dir, one(&pairs, "cursor"), limit, filter)
}

async fn search_groups(
    State(s): St,
    Path((org, dir)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: SearchBody<GroupFilter> = tri!(parse_body(&body));
    list_groups(&s, &org, &dir, body.cursor, body.limit, body.filter)
}

fn list_groups(
    s: &Shared,
    org: &str,
    dir: &str,
    cursor: Option<String>,
    limit: Option<i64>,
    filter: GroupFilter,
) -> Response {
    let limit = tri!(limit_of(limit));
    let w = s.read();
    let directory = tri!(scope(&w, org, dir));
    let (directory, filter, offset) = match cursor.as_deref().filter(|c| !c.is_empty()) {
        None => (directory, filter, 0),
        Some(token) => match s.cursor(token) {
            Some(CursorState {
                kind:
                    CursorKind::GroupsV2 {
                        directory: d,
                        filter: f,
                    },
                offset,
            }) if d == directory => (d, f, offset),
            _ => return bad_cursor(),
        },
    };
    let (rows, next) = walk(w.groups.len(), offset, limit, |g| {
        directory.is_none_or(|d| w.groups[g].directory == d) && filter.matches(&w, g)
    });
    let data: Vec<V2Group<'_>> = rows.iter().map(|&g| v2_group(&w, g)).collect();
    let next = next.map(|offset| {
        s.issue_cursor(CursorState {
            kind: CursorKind::GroupsV2 {
                directory,
                filter: filter.clone(),
            },
            offset,
        })
    });
    axum::Json(PageOut {
        data,
        links: Links {
            self_: format!("/admin/v2/orgs/{org}/directories/{dir}/groups"),
            next,
        },
    })
    .into_response()
}

fn find_group(w: &World, directory: Option<usize>, group_id: &str) -> Result<usize, Response> {
    w.group_index
        .get(group_id)
        .copied()
        .filter(|&g| directory.is_none_or(|d| w.groups[g].directory == d))
        .ok_or_else(|| group_not_found(group_id))
}

async fn get_group(
    State(s): St,
    Path((org, dir, group_id)): Path<(String, String, String)>,
) -> Response {
    let w = s.read();
    let g = tri!(scope(&w, &org, &dir).and_then(|d| find_group(&w, d, &group_id)));
    axum::Json(json!({"data": v2_group(&w, g)})).into_response()
}

fn add_member(s: &Shared, org: &str, dir: &str, group_id: &str, account_id: &str) -> Change {
    let mut w = s.write();
    let directory = match scope(&w, org, dir) {
        Ok(d) => d,
        Err(r) => return Change::Failed(r),
    };
    let g = match find_group(&w, directory, group_id) {
        Ok(g) => g,
        Err(r) => return Change::Failed(r),
    };
    let u = match find_user(&w, directory, account_id) {
        Ok(u) => u,
        Err(r) => return Change::Failed(r),
    };
    if w.groups[g].synced {
        return Change::Failed(synced_group(group_id));
    }
    if w.users[u].synced {
        return Change::Failed(synced_user(account_id));
    }
    if w.groups[g].directory != w.users[u].directory {
        return Change::Failed(admin_error(
            StatusCode::BAD_REQUEST,
            "ADMIN-400-4",
            "Invalid resource",
            "The user and the group are in different directories",
        ));
    }
    if w.groups[g].members.contains(&u) {
        return Change::Done;
    }
    let would_take_seat = w.groups[g].grants_confluence
        && !w.has_confluence(u)
        && w.users[u].account_status == AccountStatus::Active
        && w.users[u].membership_status == MembershipStatus::Active;
    if would_take_seat && !w.seat_free() {
        return Change::Failed(no_seats());
    }
    w.groups[g].members.insert(u);
    w.users[u].groups.insert(g);
    Change::Done
}

fn remove_member(s: &Shared, org: &str, dir: &str, group_id: &str, account_id: &str) -> Change {
    let mut w = s.write();
    let directory = match scope(&w, org, dir) {
        Ok(d) => d,
        Err(r) => return Change::Failed(r),
    };
    let g = match find_group(&w, directory, group_id) {
        Ok(g) => g,
        Err(r) => return Change::Failed(r),
    };
    let u = match find_user(&w, directory, account_id) {
        Ok(u) => u,
        Err(r) => return Change::Failed(r),
    };
    if w.groups[g].synced {
        return Change::Failed(synced_group(group_id));
    }
    if !w.groups[g].members.contains(&u) {
        return Change::Failed(admin_error(
            StatusCode::NOT_FOUND,
            "ADMIN-404-8",
            "User not found",
            format!("User {account_id} is not a member of group {group_id}"),
        ));
    }
    w.groups[g].members.remove(&u);
    w.users[u].groups.remove(&g);
    Change::Done
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MembershipV2 {
    account_id: String,
}

async fn add_member_v2(
    State(s): St,
    Path((org, dir, group_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let body: MembershipV2 = tri!(parse_body(&body));
    match add_member(&s, &org, &dir, &group_id, &body.account_id) {
        Change::Done => StatusCode::OK.into_response(),
        Change::Failed(r) => r,
    }
}

async fn remove_member_v2(
    State(s): St,
    Path((org, dir, group_id, account_id)): Path<(String, String, String, String)>,
) -> Response {
    match remove_member(&s, &org, &dir, &group_id, &account_id) {
        Change::Done => StatusCode::OK.into_response(),
        Change::Failed(r) => r,
    }
}

// ---------------------------------------------------------------------------------------
// v1

fn v1_org(w: &World) -> Value {
    let org = &w.org_id;
    json!({
        "id": org,
        "type": "orgs",
        "attributes": {"name": w.org_name},
        "relationships": {
            "domains": {"links": {"related": format!("/admin/v1/orgs/{org}/domains")}},
            "users": {"links": {"related": format!("/admin/v1/orgs/{org}/users")}},
        },
        "links": {"self": format!("/admin/v1/orgs/{org}")},
    })
}

async fn list_orgs(State(s): St) -> Response {
    let w = s.read();
    axum::Json(json!({"data": [v1_org(&w)], "links": {"self": "/admin/v1/orgs"}})).into_response()
}

async fn get_org(State(s): St, Path(org): Path<String>) -> Response {
    let w = s.read();
    if org != w.org_id {
        return org_not_found(&org);
    }
    axum::Json(json!({"data": v1_org(&w)})).into_response()
}

#[derive(Serialize)]
struct V1Product<'a> {
    key: &'static str,
    name: &'static str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_active: Option<String>,
}

#[derive(Serialize)]
struct V1User<'a> {
    account_id: &'a str,
    account_type: &'static str,
    account_status: &'static str,
    name: &'a str,
    picture: String,
    email: &'a str,
    access_billable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_active: Option<String>,
    product_access: Vec<V1Product<'a>>,
    links: V1SelfLink,
}

#[derive(Serialize)]
struct V1SelfLink {
    #[serde(rename = "self")]
    self_: String,
}

#[derive(Serialize)]
struct V1Page<'a> {
    data: Vec<V1User<'a>>,
    meta: V1Meta,
    links: Links,
}

#[derive(Serialize)]
struct V1Meta {
    total: usize,
}

async fn list_users_v1(State(s): St, Path(org): Path<String>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let w = s.read();
    if org != w.org_id {
        return org_not_found(&org);
    }
    let offset = match one(&pairs, "cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(token) => match s.cursor(&token) {
            Some(CursorState {
                kind: CursorKind::UsersV1,
                offset,
            }) => offset,
            _ => return bad_cursor(),
        },
    };
    let (rows, next) = walk(w.users.len(), offset, DEFAULT_LIMIT, |u| {
        !w.users[u].removed
    });
    let data = rows
        .iter()
        .map(|&u| {
            let user = &w.users[u];
            let licensed = w.has_confluence(u);
            V1User {
                account_id: &user.account_id,
                account_type: "atlassian",
                account_status: user.account_status.as_str(),
                name: &user.name,
                picture: format!("https://avatar-management.example/{}", user.account_id),
                email: &user.email,
                access_billable: w.billable(u),
                last_active: user.last_active.map(ts),
                product_access: if licensed {
                    vec![V1Product {
                        key: "confluence",
                        name: "Confluence",
                        url: &w.site_url,
                        last_active: user.last_active.map(ts),
                    }]
                } else {
                    Vec::new()
                },
                links: V1SelfLink {
                    self_: format!("/users/{}/manage", user.account_id),
                },
            }
        })
        .collect();
    let total = w.users.iter().filter(|u| !u.removed).count();
    let next = next.map(|offset| {
        let token = s.issue_cursor(CursorState {
            kind: CursorKind::UsersV1,
            offset,
        });
        format!("/admin/v1/orgs/{org}/users?cursor={token}")
    });
    axum::Json(V1Page {
        data,
        meta: V1Meta { total },
        links: Links {
            self_: format!("/admin/v1/orgs/{org}/users"),
            next,
        },
    })
    .into_response()
}

async fn last_active_dates(
    State(s): St,
    Path((org, account_id)): Path<(String, String)>,
) -> Response {
    let w = s.read();
    if org != w.org_id {
        return org_not_found(&org);
    }
    let Some(u) = w.user(&account_id) else {
        return user_not_found(&account_id);
    };
    let user = &w.users[u];
    let mut products = Vec::new();
    if w.has_confluence(u)
        && let Some(t) = user.last_active
    {
        products.push(json!({
            "id": w.site_id,
            "key": "confluence",
            "last_active": t.format("%Y-%m-%d").to_string(),
        }));
    }
    axum::Json(json!({
        "data": {
            "product_access": products,
            "added_to_org": user.added_to_org.format("%Y-%m-%d").to_string(),
        },
        "links": {},
    }))
    .into_response()
}

async fn suspend_v1(State(s): St, Path((org, account_id)): Path<(String, String)>) -> Response {
    let text = format!("Access to organization {org} was suspended for user {account_id}");
    message(suspend(&s, &org, "-", &account_id), text)
}

async fn restore_v1(State(s): St, Path((org, account_id)): Path<(String, String)>) -> Response {
    let text = format!("Access to organization {org} was restored for user {account_id}");
    message(restore(&s, &org, "-", &account_id), text)
}

async fn remove_user_v1(State(s): St, Path((org, account_id)): Path<(String, String)>) -> Response {
    no_content(remove(&s, &org, "-", &account_id))
}

#[derive(Deserialize)]
struct MembershipV1 {
    account_id: String,
}

async fn add_member_v1(
    State(s): St,
    Path((org, group_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: MembershipV1 = tri!(parse_body(&body));
    let text = format!("User {} was added to group {group_id}", body.account_id);
    message(add_member(&s, &org, "-", &group_id, &body.account_id), text)
}

async fn remove_member_v1(
    State(s): St,
    Path((org, group_id, account_id)): Path<(String, String, String)>,
) -> Response {
    let text = format!("User {account_id} was removed from group {group_id}");
    message(remove_member(&s, &org, "-", &group_id, &account_id), text)
}

// ---------------------------------------------------------------------------------------
// User management

fn account_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"key": "accountNotFound"})),
    )
        .into_response()
}

/// Why the org may not manage this account here, as a user-management restriction reason.
fn restriction(w: &World, u: usize) -> Option<&'static str> {
    let user = &w.users[u];
    if user.synced {
        Some("externalDirectory.scim")
    } else if claim_status(&user.email) != "managed" {
        Some("managedAccount")
    } else {
        None
    }
}

async fn manage_permissions(State(s): St, Path(account_id): Path<String>) -> Response {
    let w = s.read();
    let Some(u) = w.user(&account_id) else {
        return account_not_found();
    };
    let rule = match restriction(&w, u) {
        None => json!({"allowed": true}),
        Some(reason) => json!({"allowed": false, "reason": {"key": reason}}),
    };
    axum::Json(json!({
        "profile.read": {"allowed": true},
        "email.set": rule,
        "lifecycle.enablement": rule,
        "lifecycle.delete": rule,
    }))
    .into_response()
}

fn lifecycle(s: &Shared, account_id: &str, to: AccountStatus) -> Response {
    let mut w = s.write();
    let Some(u) = w.user(account_id) else {
        return account_not_found();
    };
    if let Some(reason) = restriction(&w, u) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({
                "key": "forbidden.action",
                "context": {"allowed": false, "reason": {"key": reason}},
            })),
        )
            .into_response();
    }
    if w.users[u].account_status == AccountStatus::Closed {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"key": "forbidden"})),
        )
            .into_response();
    }
    w.users[u].account_status = to;
    StatusCode::NO_CONTENT.into_response()
}

async fn lifecycle_disable(State(s): St, Path(account_id): Path<String>) -> Response {
    lifecycle(&s, &account_id, AccountStatus::Inactive)
}

async fn lifecycle_enable(State(s): St, Path(account_id): Path<String>) -> Response {
    lifecycle(&s, &account_id, AccountStatus::Active)
}
