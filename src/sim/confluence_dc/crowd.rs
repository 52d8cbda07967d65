//! Crowd's usermanagement REST API (v1 subset) for the Crowd directory, under
//! `/crowd/rest/usermanagement/1` (and `/latest`): users, rename, attributes and group
//! memberships, authenticated with the application's name and password, errors as
//! `{"reason","message"}`. It works on the same data as Confluence, so a rename here is
//! what Confluence sees (same `userKey`, new username) at once.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::model::{DirKind, DirMode, Fail, State as Db};
use super::{Sim, decode_basic};
use crate::sim::confluence_dc::rest;

/// The Crowd routes (at the server root, not below the Confluence context path).
pub fn routes(sim: Sim) -> Router {
    let api = Router::new()
        .route("/user", get(get_user).put(update_user))
        .route("/user/rename", post(rename))
        .route("/user/attribute", get(attributes))
        .route(
            "/user/group/direct",
            get(direct_groups).post(add_group).delete(remove_group),
        )
        .route("/user/group/nested", get(nested_groups))
        .route("/group/user/direct", get(group_members))
        .layer(axum::middleware::from_fn_with_state(sim.clone(), app_auth))
        .with_state(sim);
    Router::new()
        .nest("/crowd/rest/usermanagement/1", api.clone())
        .nest("/crowd/rest/usermanagement/latest", api)
}

fn err(status: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    rest::json(
        status,
        &json!({"reason": reason, "message": message.into()}),
    )
}

async fn app_auth(State(sim): State<Sim>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| decode_basic(b.trim()))
        .is_some_and(|(app, pw)| app == sim.opts.crowd_app && pw == sim.opts.crowd_app_password);
    if !ok {
        let mut r = err(
            StatusCode::UNAUTHORIZED,
            "APPLICATION_ACCESS_DENIED",
            "Application failed to authenticate",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"Crowd REST Service\""),
        );
        return r;
    }
    next.run(req).await
}

fn query(uri: &Uri, name: &str) -> Option<String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .take(64)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn crowd_dir(st: &Db) -> Option<usize> {
    st.dirs.iter().position(|d| d.kind == DirKind::Crowd)
}

/// A string field of a JSON request body.
fn body_field(body: &Bytes, field: &str) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get(field).and_then(|n| n.as_str()).map(str::to_owned))
}

/// `value`, or Crowd's `ILLEGAL_ARGUMENT` answer saying `what` is required.
fn required(value: Option<String>, what: &str) -> Result<String, Box<Response>> {
    value.ok_or_else(|| {
        Box::new(err(
            StatusCode::BAD_REQUEST,
            "ILLEGAL_ARGUMENT",
            format!("{what} is required"),
        ))
    })
}

/// The Crowd-directory user named by `username=`.
fn find(st: &Db, uri: &Uri) -> Result<usize, Box<Response>> {
    let Some(name) = query(uri, "username") else {
        return Err(Box::new(err(
            StatusCode::BAD_REQUEST,
            "ILLEGAL_ARGUMENT",
            "username query parameter is required",
        )));
    };
    let dir = crowd_dir(st);
    st.all_slots()
        .find(|s| {
            st.get(*s)
                .is_some_and(|u| Some(u.dir) == dir && u.username == name.to_lowercase())
        })
        .ok_or_else(|| {
            Box::new(err(
                StatusCode::NOT_FOUND,
                "USER_NOT_FOUND",
                format!("User <{name}> does not exist"),
            ))
        })
}

fn user_json(st: &Db, slot: usize) -> serde_json::Value {
    let Some(u) = st.get(slot) else {
        return json!({});
    };
    let (first, last) = u
        .display_name
        .split_once(' ')
        .unwrap_or((u.display_name.as_str(), ""));
    json!({
        "name": u.username,
        "first-name": first,
        "last-name": last,
        "display-name": u.display_name,
        "email": u.email,
        "active": u.active,
    })
}

fn writable(st: &Db) -> bool {
    crowd_dir(st)
        .and_then(|d| st.dirs.get(d))
        .is_some_and(|d| d.mode == DirMode::ReadWrite)
}

fn denied() -> Response {
    err(
        StatusCode::FORBIDDEN,
        "APPLICATION_PERMISSION_DENIED",
        "The directory does not allow this operation",
    )
}

async fn get_user(State(sim): State<Sim>, uri: Uri) -> Response {
    let st = sim.read();
    let slot = tri!(find(&st, &uri));
    let mut body = user_json(&st, slot);
    if query(&uri, "expand").is_some_and(|e| e.contains("attributes")) {
        body["attributes"] = attributes_json(&st, slot);
    }
    rest::json(StatusCode::OK, &body)
}

fn attributes_json(st: &Db, slot: usize) -> serde_json::Value {
    let mut attrs = Vec::new();
    if let Some(ms) = st.get(slot).and_then(|u| u.last_auth_ms) {
        attrs.push(json!({"name": "lastAuthenticated", "values": [ms.to_string()]}));
    }
    attrs.push(json!({"name": "requiresPasswordChange", "values": ["false"]}));
    json!({ "attributes": attrs })
}

async fn attributes(State(sim): State<Sim>, uri: Uri) -> Response {
    let st = sim.read();
    match find(&st, &uri) {
        Ok(slot) => rest::json(StatusCode::OK, &attributes_json(&st, slot)),
        Err(r) => *r,
    }
}

async fn update_user(State(sim): State<Sim>, uri: Uri, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "INVALID_USER", "Invalid user body");
    };
    let mut st = sim.write();
    let slot = tri!(find(&st, &uri));
    if !writable(&st) {
        return denied();
    }
    if v.get("name")
        .and_then(|n| n.as_str())
        .is_some_and(|n| Some(n.to_lowercase()) != st.get(slot).map(|u| u.username.clone()))
    {
        return err(
            StatusCode::BAD_REQUEST,
            "INVALID_USER",
            "User name in the body does not match the username parameter",
        );
    }
    let email = v.get("email").and_then(|e| e.as_str()).map(str::to_owned);
    let display = v
        .get("display-name")
        .and_then(|e| e.as_str())
        .map(str::to_owned);
    let active = v.get("active").and_then(serde_json::Value::as_bool);
    st.with_user(slot, |u| {
        if let Some(e) = email {
            u.email = e;
        }
        if let Some(d) = display {
            u.display_name = d;
        }
        if let Some(a) = active {
            u.active = a;
        }
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn rename(State(sim): State<Sim>, uri: Uri, body: Bytes) -> Response {
    let new = tri!(required(body_field(&body, "new-name"), "new-name"));
    let mut st = sim.write();
    let slot = tri!(find(&st, &uri));
    if !writable(&st) {
        return denied();
    }
    match st.rename(slot, &new) {
        Ok(()) => {
            tracing::info!(new = %new, "dcsim: Crowd rename");
            rest::json(StatusCode::OK, &user_json(&st, slot))
        }
        Err(Fail::ReadOnly(_)) => denied(),
        Err(f) => err(StatusCode::BAD_REQUEST, "INVALID_USER", f.message()),
    }
}

fn groups_json(names: &[String]) -> serde_json::Value {
    json!({"groups": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()})
}

async fn direct_groups(State(sim): State<Sim>, uri: Uri) -> Response {
    let st = sim.read();
    let slot = tri!(find(&st, &uri));
    let groups = st.get(slot).map(|u| u.groups.clone()).unwrap_or_default();
    if let Some(g) = query(&uri, "groupname") {
        return if groups.contains(&g.to_lowercase()) {
            rest::json(StatusCode::OK, &json!({"name": g.to_lowercase()}))
        } else {
            err(
                StatusCode::NOT_FOUND,
                "MEMBERSHIP_NOT_FOUND",
                format!("The user is not a direct member of group <{g}>"),
            )
        };
    }
    rest::json(StatusCode::OK, &groups_json(&groups))
}

async fn nested_groups(State(sim): State<Sim>, uri: Uri) -> Response {
    let st = sim.read();
    let slot = tri!(find(&st, &uri));
    let mut all: Vec<String> = Vec::new();
    for g in st.get(slot).map(|u| u.groups.clone()).unwrap_or_default() {
        all.extend(st.ancestors(&g));
        all.push(g);
    }
    all.sort();
    all.dedup();
    rest::json(StatusCode::OK, &groups_json(&all))
}

async fn add_group(State(sim): State<Sim>, uri: Uri, body: Bytes) -> Response {
    let name = tri!(required(body_field(&body, "name"), "name"));
    let mut st = sim.write();
    let slot = tri!(find(&st, &uri));
    if !writable(&st) {
        return denied();
    }
    let already = st
        .get(slot)
        .is_some_and(|u| u.groups.contains(&name.to_lowercase()));
    match st.add_member(slot, &name) {
        Ok(()) if already => StatusCode::NO_CONTENT.into_response(),
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(Fail::NotFound(_)) => err(
            StatusCode::BAD_REQUEST,
            "GROUP_NOT_FOUND",
            format!("Group <{name}> does not exist"),
        ),
        Err(_) => denied(),
    }
}

async fn remove_group(State(sim): State<Sim>, uri: Uri) -> Response {
    let group = tri!(required(query(&uri, "groupname"), "groupname"));
    let mut st = sim.write();
    let slot = tri!(find(&st, &uri));
    if !writable(&st) {
        return denied();
    }
    if !st
        .get(slot)
        .is_some_and(|u| u.groups.contains(&group.to_lowercase()))
    {
        return err(
            StatusCode::NOT_FOUND,
            "MEMBERSHIP_NOT_FOUND",
            format!("The user is not a direct member of group <{group}>"),
        );
    }
    match st.remove_member(slot, &group) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => denied(),
    }
}

async fn group_members(State(sim): State<Sim>, uri: Uri) -> Response {
    let group = tri!(required(query(&uri, "groupname"), "groupname"));
    let start: usize = query(&uri, "start-index")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let max: usize = query(&uri, "max-results")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
        .min(10_000);
    let st = sim.read();
    let lower = group.to_lowercase();
    if !st.groups.contains_key(&lower) {
        return err(
            StatusCode::NOT_FOUND,
            "GROUP_NOT_FOUND",
            format!("Group <{group}> does not exist"),
        );
    }
    let dir = crowd_dir(&st);
    let users: Vec<serde_json::Value> = st
        .all_slots()
        .filter(|s| {
            st.get(*s)
                .is_some_and(|u| Some(u.dir) == dir && u.groups.contains(&lower))
        })
        .skip(start)
        .take(max)
        .filter_map(|s| st.get(s).map(|u| json!({"name": u.username})))
        .collect();
    rest::json(StatusCode::OK, &json!({ "users": users }))
}
