//! The Confluence DC REST surface: users, groups, memberships, admin user/group calls, long
//! tasks, global permissions, licence counters and the applinks manifest, each gated by the
//! version it appeared in, with DC's paging envelope and error envelope.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::model::{
    Fail, NewUser, State as Db, Subject, Task, validate_email, validate_full_name,
    validate_username,
};
use super::{Caller, DcVersion, Generational, Sim, unauthorized_anonymous};

type Who = Extension<Option<Caller>>;

/// An early answer from a helper (boxed: responses are large).
pub type Reject = Box<Response>;

/// The product routes below the context path.
pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/rest/api/user", get(get_user))
        .route("/rest/api/user/current", get(current_user))
        .route("/rest/api/user/memberof", get(member_of))
        .route("/rest/api/user/list", get(list_users))
        .route(
            "/rest/api/user/{username}/group/{group}",
            put(add_membership).delete(remove_membership),
        )
        .route("/rest/api/group", get(list_groups))
        .route("/rest/api/group/{group}", get(get_group))
        .route("/rest/api/group/{group}/member", get(group_members))
        .route("/rest/api/group/{group}/groupmember", get(group_children))
        .route(
            "/rest/api/group/{group}/groupancestor",
            get(group_ancestors),
        )
        .route("/rest/api/admin/group", post(create_group))
        .route(
            "/rest/api/admin/group/{group}",
            axum::routing::delete(delete_group),
        )
        .route("/rest/api/admin/user", post(create_user))
        .route(
            "/rest/api/admin/user/{username}",
            put(update_user).delete(delete_user),
        )
        .route("/rest/api/admin/user/{username}/disable", put(disable_user))
        .route("/rest/api/admin/user/{username}/enable", put(enable_user))
        .route(
            "/rest/api/admin/user/{username}/password",
            post(set_password),
        )
        .route("/rest/api/admin/users/list/active", get(active_users))
        .route("/rest/api/longtask", get(list_tasks))
        .route("/rest/api/longtask/{id}", get(get_task))
        .route("/rest/api/permissions", get(all_permissions))
        .route(
            "/rest/api/permissions/group/{group}",
            get(group_permissions),
        )
        .route("/rest/api/permissions/user/{user}", get(user_permissions))
        .route(
            "/rest/api/permissions/unlicensed",
            get(unlicensed_permissions),
        )
        .route(
            "/rest/api/permissions/anonymous",
            get(anonymous_permissions),
        )
        .route("/rest/license/1.0/license/{counter}", get(licence_counter))
        .route("/rest/applinks/1.0/manifest", get(manifest))
}

// ---------------------------------------------------------------------------------------
// Wire shapes

/// A JSON response with DC's content type.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dcsim: could not serialise a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorData {
    authorized: bool,
    valid: bool,
    allowed_in_read_only_mode: bool,
    errors: Vec<serde_json::Value>,
    successful: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    status_code: u16,
    data: ErrorData,
    message: String,
    reason: &'static str,
}

/// DC's error envelope.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    let invalid = matches!(status.as_u16(), 400 | 409);
    let errors = if invalid {
        vec![serde_json::json!({"message": {"key": message, "args": []}})]
    } else {
        Vec::new()
    };
    json(
        status,
        &ErrorBody {
            status_code: status.as_u16(),
            data: ErrorData {
                authorized: false,
                valid: !invalid,
                allowed_in_read_only_mode: true,
                errors,
                successful: false,
            },
            message,
            reason: status.canonical_reason().unwrap_or("Error"),
        },
    )
}

/// What Jersey answers for a resource this version does not have.
pub fn not_found_uri(sim: &Sim, uri: &Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("null for uri: {}{}", sim.root(), uri),
    )
}

fn fail(f: &Fail) -> Response {
    let status = match f {
        Fail::NotFound(_) => StatusCode::NOT_FOUND,
        Fail::ReadOnly(_) => StatusCode::FORBIDDEN,
        Fail::Conflict(_) => StatusCode::CONFLICT,
        Fail::Invalid(_) => StatusCode::BAD_REQUEST,
        Fail::NoSeats => StatusCode::PAYMENT_REQUIRED,
    };
    error(status, f.message())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Icon<'a> {
    path: &'a str,
    width: u32,
    height: u32,
    is_default: bool,
}

#[derive(Serialize)]
struct Links<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a str>,
    #[serde(rename = "self")]
    self_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    username: &'a str,
    user_key: &'a str,
    profile_picture: Icon<'a>,
    display_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_login: Option<String>,
    #[serde(rename = "_links")]
    links: Links<'a>,
    #[serde(rename = "_expandable")]
    expandable: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct GroupJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    #[serde(rename = "_links")]
    links: Links<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageJson<'a, T> {
    results: Vec<T>,
    start: usize,
    limit: usize,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_count: Option<usize>,
    #[serde(rename = "_links")]
    links: Links<'a>,
}

/// Per-request rendering context: base URL, licence sets, expansions.
struct Render<'a> {
    base: String,
    context: &'a str,
    icon: String,
    groups: HashSet<&'a str>,
    users: HashSet<&'a str>,
    status: bool,
    last_login: bool,
    relative: bool,
}

impl<'a> Render<'a> {
    fn new(sim: &'a Sim, st: &'a Db, expand: &str) -> Self {
        let exp: Vec<&str> = expand.split(',').map(str::trim).collect();
        Render {
            base: sim.base(),
            context: sim.context.as_str(),
            icon: format!("{}/images/icons/profilepics/default.svg", sim.context),
            groups: st.granting_groups(),
            users: st.granting_users(),
            status: exp.contains(&"status"),
            // Only `/rest/api/admin/users/list/active` expands lastLogin (see `active_users`).
            last_login: false,
            relative: sim.settings().relative_links,
        }
    }

    fn user<'s>(&'s self, st: &'s Db, slot: usize, full_links: bool) -> Option<UserJson<'s>> {
        let u = st.get(slot)?;
        let mut expandable = serde_json::Map::new();
        if !self.status {
            expandable.insert("status".into(), serde_json::Value::String(String::new()));
        }
        Some(UserJson {
            kind: "known",
            username: &u.username,
            user_key: &u.key,
            profile_picture: Icon {
                path: &self.icon,
                width: 48,
                height: 48,
                is_default: true,
            },
            display_name: &u.display_name,
            email: self.last_login.then_some(u.email.as_str()),
            status: self
                .status
                .then(|| st.status(slot, &self.groups, &self.users)),
            last_login: if self.last_login {
                u.last_auth_ms.and_then(iso_ms)
            } else {
                None
            },
            links: Links {
                base: full_links.then_some(self.base.as_str()),
                context: full_links.then_some(self.context),
                self_: format!("{}/rest/api/user?key={}", self.base, u.key),
                next: None,
                prev: None,
            },
            expandable,
        })
    }

    fn page_at<'s>(&'s self, path: &'s str, q: &'s Query) -> PageAt<'s> {
        PageAt {
            relative: self.relative,
            base: &self.base,
            context: self.context,
            path,
            expand: q.get("expand"),
        }
    }

    fn group<'s>(&'s self, name: &'s str) -> GroupJson<'s> {
        GroupJson {
            kind: "group",
            name,
            links: Links {
                base: None,
                context: None,
                self_: format!("{}/rest/api/group/{}", self.base, name),
                next: None,
                prev: None,
            },
        }
    }
}

/// ISO-8601 with milliseconds and `Z`.
pub fn iso_ms(ms: i64) -> Option<String> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

// ---------------------------------------------------------------------------------------
// Request helpers

/// Query parameters, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn of(uri: &Uri) -> Self {
        Query(
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .take(64)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn int(&self, name: &str) -> Result<Option<i64>, Reject> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                Box::new(error(
                    StatusCode::BAD_REQUEST,
                    format!("For input string: \"{v}\""),
                ))
            }),
        }
    }

    /// `start` and `limit`, defaulted and capped.
    fn page(&self, default_limit: usize, cap: usize) -> Result<(usize, usize), Reject> {
        let start = self.int("start")?.unwrap_or(0).max(0) as usize;
        let limit = self
            .int("limit")?
            .map_or(default_limit, |l| l.max(1) as usize)
            .min(cap.max(1));
        Ok((start, limit))
    }
}

fn need_user(who: &Option<Caller>) -> Result<&Caller, Reject> {
    who.as_ref()
        .ok_or_else(|| Box::new(unauthorized_anonymous()))
}

fn need_admin(who: &Option<Caller>) -> Result<&Caller, Reject> {
    let c = need_user(who)?;
    if c.admin {
        Ok(c)
    } else {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            format!(
                "User {} is not permitted to perform this operation",
                c.username
            ),
        )))
    }
}

fn need_licensed(who: &Option<Caller>) -> Result<&Caller, Reject> {
    let c = need_user(who)?;
    if c.licensed || c.admin {
        Ok(c)
    } else {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            format!("Not permitted to use confluence : {}", c.username),
        )))
    }
}

fn gate(sim: &Sim, since: DcVersion, uri: &Uri) -> Result<(), Reject> {
    if sim.version.has(since) {
        Ok(())
    } else {
        Err(Box::new(not_found_uri(sim, uri)))
    }
}

/// The gate for admin calls: the resource exists in this version and the caller is an admin.
fn admin_since<'w>(
    sim: &Sim,
    who: &'w Option<Caller>,
    since: DcVersion,
    uri: &Uri,
) -> Result<&'w Caller, Reject> {
    gate(sim, since, uri)?;
    need_admin(who)
}

/// Where a page lives: what its `_links` are built from.
struct PageAt<'a> {
    relative: bool,
    base: &'a str,
    context: &'a str,
    path: &'a str,
    expand: Option<&'a str>,
}

/// A page of `results` (from `start`, at most `limit`) out of `total`, in DC's envelope;
/// `totalCount` only when `total_count`.
fn page_json<T: Serialize>(
    at: &PageAt<'_>,
    results: Vec<T>,
    (start, limit): (usize, usize),
    total: usize,
    total_count: bool,
) -> Response {
    let size = results.len();
    let links = page_links(at, (start, limit, size, total));
    json(
        StatusCode::OK,
        &PageJson {
            results,
            start,
            limit,
            size,
            total_count: total_count.then_some(total),
            links,
        },
    )
}

/// Builds `_links` for a page: `self`, and `next` when more remain (relative to `base`
/// or absolute, per the settings).
fn page_links<'a>(
    at: &PageAt<'a>,
    (start, limit, size, total): (usize, usize, usize, usize),
) -> Links<'a> {
    let PageAt {
        relative,
        base,
        context,
        path,
        expand,
    } = *at;
    let q = |s: usize| match expand {
        Some(e) if !e.is_empty() => format!(
            "{path}?expand={}&limit={limit}&start={s}",
            url::form_urlencoded::byte_serialize(e.as_bytes()).collect::<String>()
        ),
        _ => format!("{path}?limit={limit}&start={s}"),
    };
    let abs_or_rel = |p: String| if relative { p } else { format!("{base}{p}") };
    Links {
        base: Some(base),
        context: Some(context),
        self_: format!("{base}{}", q(start)),
        next: (start + size < total).then(|| abs_or_rel(q(start + size))),
        prev: (start > 0).then(|| abs_or_rel(q(start.saturating_sub(limit)))),
    }
}

fn user_page(
    st: &Db,
    r: &Render<'_>,
    slots: &[usize],
    path: &str,
    q: &Query,
    (start, limit): (usize, usize),
    total_count: bool,
) -> Response {
    let window = slots.get(start.min(slots.len())..).unwrap_or(&[]);
    let results: Vec<UserJson<'_>> = window
        .iter()
        .take(limit)
        .filter_map(|s| r.user(st, *s, false))
        .collect();
    page_json(
        &r.page_at(path, q),
        results,
        (start, limit),
        slots.len(),
        total_count,
    )
}

fn group_page(
    r: &Render<'_>,
    names: &[&str],
    path: &str,
    q: &Query,
    (start, limit): (usize, usize),
) -> Response {
    let window = names.get(start.min(names.len())..).unwrap_or(&[]);
    let results: Vec<GroupJson<'_>> = window.iter().take(limit).map(|n| r.group(n)).collect();
    page_json(
        &r.page_at(path, q),
        results,
        (start, limit),
        names.len(),
        false,
    )
}

/// The user a `username=` or `key=` query names.
fn find_user(st: &Db, q: &Query) -> Result<usize, Reject> {
    if let Some(key) = q.get("key") {
        return st
            .by_key(key)
            .filter(|s| !st.is_shadowed(*s))
            .ok_or_else(|| {
                Box::new(error(
                    StatusCode::NOT_FOUND,
                    format!("No user found with key: {key}"),
                ))
            });
    }
    match q.get("username") {
        Some(name) => st.by_username(name).ok_or_else(|| {
            Box::new(error(
                StatusCode::NOT_FOUND,
                format!("No user found with username: {name}"),
            ))
        }),
        None => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "A username or key must be provided",
        ))),
    }
}

fn user_by_path(st: &Db, username: &str) -> Result<usize, Reject> {
    st.by_username(username).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("No user found with username: {username}"),
        ))
    })
}

fn group_exists(st: &Db, name: &str) -> Result<String, Reject> {
    let lower = name.to_lowercase();
    if st.groups.contains_key(&lower) {
        Ok(lower)
    } else {
        Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("Group not found: {name}"),
        )))
    }
}

/// Orders every visible user by key, once per state generation.
fn list_order(sim: &Sim, st: &Db) -> Arc<Vec<usize>> {
    memo(&sim.list_cache, st.generation, || {
        let mut slots: Vec<usize> = st.effective_slots().collect();
        slots.sort_by(|a, b| {
            let ka = st.get(*a).map(|u| u.key.as_str());
            let kb = st.get(*b).map(|u| u.key.as_str());
            ka.cmp(&kb)
        });
        slots
    })
}

/// The cached ordering in `cache` if it is of this state `generation`, else `build`'s
/// (and cached).
fn memo(
    cache: &Mutex<Option<Generational>>,
    generation: u64,
    build: impl FnOnce() -> Vec<usize>,
) -> Arc<Vec<usize>> {
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((g, v)) = cache.as_ref()
        && *g == generation
    {
        return v.clone();
    }
    let v = Arc::new(build());
    *cache = Some((generation, v.clone()));
    v
}

/// The direct members of `group` in list order, once per state generation (paging through a
/// large group must not rescan every user per page).
fn group_member_order(sim: &Sim, st: &Db, group: &str) -> Arc<Vec<usize>> {
    let mut cache = sim.members_cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((g, v)) = cache.get(group)
        && *g == st.generation
    {
        return v.clone();
    }
    let members: Vec<usize> = list_order(sim, st)
        .iter()
        .copied()
        .filter(|s| {
            st.get(*s)
                .is_some_and(|u| u.groups.iter().any(|g| g == group))
        })
        .collect();
    let v = Arc::new(members);
    cache.insert(group.to_owned(), (st.generation, v.clone()));
    v
}

/// Licensed users, longest-since-login first (never logged in before everyone), once per
/// state generation.
fn active_order(sim: &Sim, st: &Db) -> Arc<Vec<usize>> {
    memo(&sim.active_cache, st.generation, || {
        let groups = st.granting_groups();
        let users = st.granting_users();
        let mut slots: Vec<usize> = st
            .all_slots()
            .filter(|s| st.licensed(*s, &groups, &users))
            .collect();
        slots.sort_by(|a, b| {
            let ua = st.get(*a).map(|u| (u.last_auth_ms, u.key.as_str()));
            let ub = st.get(*b).map(|u| (u.last_auth_ms, u.key.as_str()));
            ua.cmp(&ub)
        });
        slots
    })
}

// ---------------------------------------------------------------------------------------
// Users

async fn get_user(State(sim): State<Sim>, Extension(who): Who, uri: Uri) -> Response {
    tri!(need_user(&who));
    let q = Query::of(&uri);
    let st = sim.read();
    let slot = tri!(find_user(&st, &q));
    let r = Render::new(&sim, &st, q.get("expand").unwrap_or(""));
    match r.user(&st, slot, true) {
        Some(u) => json(StatusCode::OK, &u),
        None => error(StatusCode::NOT_FOUND, "No user found"),
    }
}

async fn current_user(State(sim): State<Sim>, Extension(who): Who, uri: Uri) -> Response {
    let Some(c) = who else {
        if sim.settings().anonymous {
            return json(
                StatusCode::OK,
                &serde_json::json!({
                    "type": "anonymous",
                    "profilePicture": {"path": format!("{}/images/icons/profilepics/anonymous.svg", sim.context), "width": 48, "height": 48, "isDefault": true},
                    "displayName": "Anonymous",
                    "_links": {"base": sim.base(), "context": sim.context, "self": format!("{}/rest/api/user/anonymous", sim.base())},
                    "_expandable": {"status": ""}
                }),
            );
        }
        return unauthorized_anonymous();
    };
    let q = Query::of(&uri);
    let st = sim.read();
    let r = Render::new(&sim, &st, q.get("expand").unwrap_or(""));
    match r.user(&st, c.slot, true) {
        Some(u) => json(StatusCode::OK, &u),
        None => unauthorized_anonymous(),
    }
}

async fn member_of(State(sim): State<Sim>, Extension(who): Who, uri: Uri) -> Response {
    tri!(need_user(&who));
    let q = Query::of(&uri);
    let page = tri!(q.page(200, sim.opts.group_page_cap));
    let st = sim.read();
    let slot = tri!(find_user(&st, &q));
    let names: Vec<&str> = st
        .get(slot)
        .map(|u| u.groups.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let r = Render::new(&sim, &st, "");
    group_page(&r, &names, "/rest/api/user/memberof", &q, page)
}

async fn list_users(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    uri: Uri,
) -> Response {
    tri!(gate(&sim, DcVersion::V8_4, &orig));
    tri!(need_licensed(&who));
    let q = Query::of(&uri);
    let page = tri!(q.page(200, sim.opts.page_cap));
    let st = sim.read();
    let order = list_order(&sim, &st);
    let r = Render::new(&sim, &st, q.get("expand").unwrap_or(""));
    user_page(&st, &r, &order, "/rest/api/user/list", &q, page, false)
}

async fn active_users(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    uri: Uri,
) -> Response {
    tri!(gate(&sim, DcVersion::V9_3, &orig));
    tri!(need_licensed(&who));
    let q = Query::of(&uri);
    let page = tri!(q.page(200, sim.opts.page_cap));
    let st = sim.read();
    let order = active_order(&sim, &st);
    let expand = q.get("expand").unwrap_or("");
    let mut r = Render::new(&sim, &st, expand);
    r.last_login =
        sim.version.has(DcVersion::V10_2) && expand.split(',').any(|e| e.trim() == "lastLogin");
    user_page(
        &st,
        &r,
        &order,
        "/rest/api/admin/users/list/active",
        &q,
        page,
        true,
    )
}

async fn add_membership(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path((username, group)): Path<(String, String)>,
) -> Response {
    set_membership(&sim, &who, &orig, &username, &group, true)
}

async fn remove_membership(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path((username, group)): Path<(String, String)>,
) -> Response {
    set_membership(&sim, &who, &orig, &username, &group, false)
}

/// Adds (`add`) or removes a user's direct membership of a group.
fn set_membership(
    sim: &Sim,
    who: &Option<Caller>,
    orig: &Uri,
    username: &str,
    group: &str,
    add: bool,
) -> Response {
    tri!(admin_since(sim, who, DcVersion::V8_2, orig));
    let mut st = sim.write();
    let slot = tri!(user_by_path(&st, username));
    let g = tri!(group_exists(&st, group));
    let (done, what) = if add {
        (st.add_member(slot, &g), "added")
    } else {
        (st.remove_member(slot, &g), "removed")
    };
    match done {
        Ok(()) => {
            tracing::info!(user = %username, group = %g, "dcsim: membership {what}");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(f) => fail(&f),
    }
}

async fn set_active(
    sim: &Sim,
    who: &Option<Caller>,
    orig: &Uri,
    username: &str,
    active: bool,
) -> Response {
    tri!(admin_since(sim, who, DcVersion::V8_2, orig));
    let mut st = sim.write();
    let slot = tri!(user_by_path(&st, username));
    match st.set_active(slot, active) {
        Ok(()) => {
            tracing::info!(user = %username, active, "dcsim: user status set");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(f) => fail(&f),
    }
}

async fn disable_user(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(username): Path<String>,
) -> Response {
    set_active(&sim, &who, &orig, &username, false).await
}

async fn enable_user(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(username): Path<String>,
) -> Response {
    set_active(&sim, &who, &orig, &username, true).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateUser {
    user_name: Option<String>,
    full_name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    #[serde(default)]
    notify_via_email: bool,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("Could not parse the request body: {e}"),
        ))
    })
}

async fn create_user(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    body: Bytes,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V8_4, &orig));
    let req: CreateUser = tri!(parse_body(&body));
    let username = req.user_name.unwrap_or_default();
    let full_name = req.full_name.unwrap_or_default();
    let email = req.email.unwrap_or_default();
    let checks = validate_username(&username)
        .and_then(|()| validate_full_name(&full_name))
        .and_then(|()| validate_email(&email));
    if let Err(f) = checks {
        return fail(&f);
    }
    let password = req.password.filter(|p| !p.is_empty());
    match (req.notify_via_email, &password) {
        (false, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Password is required when notifyViaEmail is false",
            );
        }
        (true, Some(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Password must not be set when notifyViaEmail is true",
            );
        }
        _ => {}
    }
    let now = sim.now_ms();
    let mut st = sim.write();
    let created = st.create_user(NewUser {
        username: username.clone(),
        display_name: full_name,
        email,
        password,
        active: true,
        groups: None,
        dir: None,
        created_ms: now,
        check_seats: true,
    });
    match created.map(|slot| st.get(slot).map(|u| u.key.clone()).unwrap_or_default()) {
        Ok(key) => {
            tracing::info!(user = %username, key = %key, "dcsim: user created");
            json(StatusCode::CREATED, &serde_json::json!({ "userKey": key }))
        }
        Err(f) => fail(&f),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateUser {
    email: Option<String>,
    full_name: Option<String>,
}

async fn update_user(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(username): Path<String>,
    body: Bytes,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V9_0, &orig));
    let req: UpdateUser = tri!(parse_body(&body));
    if let Some(e) = &req.email
        && let Err(f) = validate_email(e)
    {
        return fail(&f);
    }
    if let Some(n) = &req.full_name
        && let Err(f) = validate_full_name(n)
    {
        return fail(&f);
    }
    let mut st = sim.write();
    let slot = tri!(user_by_path(&st, &username));
    match st.update_profile(slot, req.email, req.full_name) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => fail(&f),
    }
}

#[derive(Deserialize)]
struct Password {
    password: Option<String>,
}

async fn set_password(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(username): Path<String>,
    body: Bytes,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V8_4, &orig));
    let req: Password = tri!(parse_body(&body));
    let Some(pw) = req.password.filter(|p| !p.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "Password cannot be blank");
    };
    let mut st = sim.write();
    let slot = tri!(user_by_path(&st, &username));
    st.with_user(slot, |u| u.password = Some(pw));
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_user(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(username): Path<String>,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V8_2, &orig));
    let settings = sim.settings();
    let (id, key) = {
        let mut st = sim.write();
        let slot = tri!(user_by_path(&st, &username));
        if !st.user_writable(slot) {
            return error(
                StatusCode::FORBIDDEN,
                format!("User '{username}' belongs to a read-only directory and cannot be deleted"),
            );
        }
        let key = st.get(slot).map(|u| u.key.clone()).unwrap_or_default();
        let id = st.rng.uuid();
        st.tasks.insert(
            id.clone(),
            Task {
                id: id.clone(),
                username: username.to_lowercase(),
                user_key: key.clone(),
                started: std::time::Instant::now(),
                duration_ms: settings.delete_task_ms,
                fail: settings.delete_task_failure.clone(),
                outcome: None,
            },
        );
        (id, key)
    };
    tracing::info!(user = %username, key = %key, task = %id, "dcsim: user deletion started");
    let bg = sim.clone();
    let task_id = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(settings.delete_task_ms)).await;
        finish_task(&bg, &task_id);
    });
    json(
        StatusCode::ACCEPTED,
        &serde_json::json!({"id": id, "links": {"status": format!("/rest/api/longtask/{id}")}}),
    )
}

/// Applies a deletion's outcome once its time is up.
fn finish_task(sim: &Sim, id: &str) {
    let mut st = sim.write();
    let Some(task) = st.tasks.get(id).cloned() else {
        return;
    };
    if task.outcome.is_some() || task.started.elapsed() < Duration::from_millis(task.duration_ms) {
        return;
    }
    let ok = task.fail.is_none();
    if ok && let Some(slot) = st.by_key(&task.user_key) {
        st.delete_user(slot);
        tracing::info!(user = %task.username, task = %id, "dcsim: user deleted");
    }
    if let Some(t) = st.tasks.get_mut(id) {
        t.outcome = Some(ok);
    }
}

// ---------------------------------------------------------------------------------------
// Long tasks

fn task_json(base: &str, context: &str, t: &Task) -> serde_json::Value {
    let elapsed = t.started.elapsed().as_millis() as u64;
    let pct = match t.outcome {
        Some(_) => 100,
        None => (elapsed * 100 / t.duration_ms.max(1)).min(99),
    };
    let mut v = serde_json::json!({
        "id": t.id,
        "name": {"key": "com.atlassian.confluence.user.delete.task.name", "args": [t.username]},
        "elapsedTime": if t.outcome.is_some() { t.duration_ms } else { elapsed.min(t.duration_ms) },
        "percentageComplete": pct,
        "successful": t.outcome == Some(true),
        "messages": [],
        "_links": {"base": base, "context": context, "self": format!("{base}/rest/api/longtask/{}", t.id)},
    });
    if let Some(ok) = t.outcome {
        v["finished"] = serde_json::Value::Bool(true);
        v["messages"] = if ok {
            serde_json::json!([{"translation": format!("User {} deleted", t.username), "args": []}])
        } else {
            serde_json::json!([{
                "translation": format!("Failed to delete user {}: {}", t.username, t.fail.clone().unwrap_or_default()),
                "key": "com.atlassian.confluence.user.delete.task.failed",
                "args": [t.username]
            }])
        };
    }
    v
}

async fn get_task(State(sim): State<Sim>, Extension(who): Who, Path(id): Path<String>) -> Response {
    tri!(need_user(&who));
    finish_task(&sim, &id);
    let st = sim.read();
    match st.tasks.get(&id) {
        Some(t) => json(StatusCode::OK, &task_json(&sim.base(), &sim.context, t)),
        None => error(
            StatusCode::NOT_FOUND,
            format!("No long running task found with id: {id}"),
        ),
    }
}

async fn list_tasks(State(sim): State<Sim>, Extension(who): Who, uri: Uri) -> Response {
    tri!(need_user(&who));
    let q = Query::of(&uri);
    let (start, limit) = tri!(q.page(100, 1000));
    let ids: Vec<String> = sim.read().tasks.keys().cloned().collect();
    for id in &ids {
        finish_task(&sim, id);
    }
    let st = sim.read();
    let mut tasks: Vec<&Task> = st.tasks.values().collect();
    tasks.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    let base = sim.base();
    let results: Vec<serde_json::Value> = tasks
        .iter()
        .skip(start)
        .take(limit)
        .map(|t| task_json(&base, &sim.context, t))
        .collect();
    let at = PageAt {
        relative: sim.settings().relative_links,
        base: &base,
        context: &sim.context,
        path: "/rest/api/longtask",
        expand: None,
    };
    page_json(&at, results, (start, limit), tasks.len(), false)
}

// ---------------------------------------------------------------------------------------
// Groups

async fn list_groups(State(sim): State<Sim>, Extension(who): Who, uri: Uri) -> Response {
    tri!(need_user(&who));
    let q = Query::of(&uri);
    let page = tri!(q.page(200, sim.opts.group_page_cap));
    let st = sim.read();
    let names: Vec<&str> = st.groups.keys().map(String::as_str).collect();
    let r = Render::new(&sim, &st, "");
    group_page(&r, &names, "/rest/api/group", &q, page)
}

async fn get_group(
    State(sim): State<Sim>,
    Extension(who): Who,
    Path(group): Path<String>,
) -> Response {
    tri!(need_user(&who));
    let st = sim.read();
    let name = tri!(group_exists(&st, &group));
    let r = Render::new(&sim, &st, "");
    let mut g = r.group(&name);
    g.links.base = Some(&r.base);
    g.links.context = Some(r.context);
    json(StatusCode::OK, &g)
}

async fn group_members(
    State(sim): State<Sim>,
    Extension(who): Who,
    Path(group): Path<String>,
    uri: Uri,
) -> Response {
    tri!(need_user(&who));
    let q = Query::of(&uri);
    let page = tri!(q.page(200, sim.opts.group_page_cap));
    let st = sim.read();
    let name = tri!(group_exists(&st, &group));
    let members = group_member_order(&sim, &st, &name);
    let r = Render::new(&sim, &st, q.get("expand").unwrap_or(""));
    let path = format!("/rest/api/group/{name}/member");
    user_page(&st, &r, &members, &path, &q, page, false)
}

async fn group_children(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(group): Path<String>,
    uri: Uri,
) -> Response {
    tri!(gate(&sim, DcVersion::V9_0, &orig));
    tri!(need_user(&who));
    let q = Query::of(&uri);
    let page = tri!(q.page(200, sim.opts.group_page_cap));
    let st = sim.read();
    let name = tri!(group_exists(&st, &group));
    let mut children: Vec<&str> = st
        .groups
        .get(&name)
        .map(|g| g.children.iter().map(String::as_str).collect())
        .unwrap_or_default();
    children.sort_unstable();
    let r = Render::new(&sim, &st, "");
    let path = format!("/rest/api/group/{name}/groupmember");
    group_page(&r, &children, &path, &q, page)
}

async fn group_ancestors(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(group): Path<String>,
    uri: Uri,
) -> Response {
    tri!(gate(&sim, DcVersion::V9_4, &orig));
    tri!(need_user(&who));
    let q = Query::of(&uri);
    let page = tri!(q.page(200, sim.opts.group_page_cap));
    let st = sim.read();
    let name = tri!(group_exists(&st, &group));
    let ancestors = st.ancestors(&name);
    let names: Vec<&str> = ancestors.iter().map(String::as_str).collect();
    let r = Render::new(&sim, &st, "");
    let path = format!("/rest/api/group/{name}/groupancestor");
    group_page(&r, &names, &path, &q, page)
}

#[derive(Deserialize)]
struct NewGroup {
    name: Option<String>,
}

async fn create_group(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    body: Bytes,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V8_2, &orig));
    let req: NewGroup = tri!(parse_body(&body));
    let Some(name) = req.name.filter(|n| !n.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "Group name cannot be blank");
    };
    let mut st = sim.write();
    if let Err(f) = st.create_group(&name) {
        return fail(&f);
    }
    let lower = name.trim().to_lowercase();
    let r = Render::new(&sim, &st, "");
    json(StatusCode::OK, &r.group(&lower))
}

async fn delete_group(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(group): Path<String>,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V8_2, &orig));
    match sim.write().delete_group(&group) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => fail(&f),
    }
}

// ---------------------------------------------------------------------------------------
// Permissions, licence, manifest

fn perm_json(st: &Db, subject: &Subject, target: &str, op: &str) -> Option<serde_json::Value> {
    let subject = match subject {
        Subject::Group(g) => serde_json::json!({"type": "group", "name": g, "displayName": g}),
        Subject::User(k) => {
            let u = st.by_key(k).and_then(|s| st.get(s))?;
            serde_json::json!({"type": "user", "name": u.username, "displayName": u.display_name})
        }
        Subject::Anonymous => serde_json::json!({"type": "anonymous"}),
        Subject::Unlicensed => return None,
    };
    Some(serde_json::json!({
        "operation": {"targetType": target, "operationKey": op},
        "subject": subject,
    }))
}

/// The global permissions whose subject `keep` accepts, as a JSON list.
fn perm_list(st: &Db, keep: impl Fn(&Subject) -> bool) -> Response {
    let list: Vec<_> = st
        .perms
        .iter()
        .filter(|p| keep(&p.subject))
        .filter_map(|p| perm_json(st, &p.subject, p.target, p.op))
        .collect();
    json(StatusCode::OK, &list)
}

async fn all_permissions(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V9_3, &orig));
    perm_list(&sim.read(), |_| true)
}

async fn group_permissions(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(group): Path<String>,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V9_3, &orig));
    let st = sim.read();
    let name = tri!(group_exists(&st, &group));
    perm_list(&st, |s| matches!(s, Subject::Group(g) if *g == name))
}

async fn user_permissions(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(user): Path<String>,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V9_3, &orig));
    let st = sim.read();
    let Some(slot) = st.by_key(&user).or_else(|| st.by_username(&user)) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("No user found with key or username: {user}"),
        );
    };
    let key = st.get(slot).map(|u| u.key.clone()).unwrap_or_default();
    perm_list(&st, |s| matches!(s, Subject::User(k) if *k == key))
}

async fn unlicensed_permissions(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V9_3, &orig));
    let st = sim.read();
    let list: Vec<_> = st
        .perms
        .iter()
        .filter(|p| p.subject == Subject::Unlicensed)
        .map(|p| serde_json::json!({"operation": {"targetType": p.target, "operationKey": p.op}}))
        .collect();
    json(StatusCode::OK, &list)
}

async fn anonymous_permissions(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
) -> Response {
    tri!(admin_since(&sim, &who, DcVersion::V9_3, &orig));
    perm_list(&sim.read(), |s| *s == Subject::Anonymous)
}

async fn licence_counter(
    State(sim): State<Sim>,
    Extension(who): Who,
    OriginalUri(orig): OriginalUri,
    Path(counter): Path<String>,
) -> Response {
    tri!(need_admin(&who));
    let st = sim.read();
    let count = match counter.as_str() {
        "userCount" => st.licensed_count() as i64,
        "remainingSeats" => st.remaining_seats(),
        "maxUsers" => st.max_users,
        _ => return not_found_uri(&sim, &orig),
    };
    json(StatusCode::OK, &serde_json::json!({ "count": count }))
}

async fn manifest(State(sim): State<Sim>, headers: HeaderMap) -> Response {
    let id = crate::sim::common::SimRng::new(sim.opts.seed ^ 0x6170_706c_696e_6b73).uuid();
    let version = sim.version.to_string();
    let build = sim.version.build_number();
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json"));
    if wants_json {
        json(
            StatusCode::OK,
            &serde_json::json!({
                "id": id,
                "name": "Confluence",
                "typeId": "confluence",
                "version": version,
                "buildNumber": build,
                "applinksVersion": "9.0.0",
                "inboundAuthenticationTypes": ["com.atlassian.applinks.api.auth.types.OAuthAuthenticationProvider"],
                "outboundAuthenticationTypes": ["com.atlassian.applinks.api.auth.types.OAuthAuthenticationProvider"],
                "publicSignup": false,
                "url": sim.base(),
                "iconUrl": format!("{}/images/logo/confluence_16_white.png", sim.base()),
            }),
        )
    } else {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><manifest><id>{id}</id>\
             <name>Confluence</name><typeId>confluence</typeId><version>{version}</version>\
             <buildNumber>{build}</buildNumber><applinksVersion>9.0.0</applinksVersion>\
             <publicSignup>false</publicSignup><url>{}</url></manifest>",
            sim.base()
        );
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/xml;charset=UTF-8")],
            body,
        )
            .into_response()
    }
}
