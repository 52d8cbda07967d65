//! The simulator-only hooks under `/__sim/` (no auth): reset/reseed, a state summary,
//! creating and changing users and groups, recording logins, directory modes, switches
//! (links, Remote API, anonymous access, deletion tasks, seats), rate-limit settings with
//! blocked and exempt users, and the DB-like last-login view. The request log, faults and
//! clock routes come from `sim::common`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{DirMode, NewUser, Perm, Subject};
use super::{Sim, view};

/// The control routes.
pub fn routes(sim: Sim) -> Router {
    Router::new()
        .route("/__sim/reset", post(reset))
        .route("/__sim/state", get(state))
        .route("/__sim/users", post(create_user))
        .route("/__sim/users/{username}", get(get_user).patch(patch_user))
        .route("/__sim/groups", post(create_group))
        .route("/__sim/login", post(login))
        .route("/__sim/directories/{dir}", put(set_directory))
        .route("/__sim/settings", put(settings))
        .route("/__sim/rate-limit", put(rate_limit))
        .route("/__sim/db/last-logins", get(last_logins))
        .with_state(sim)
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

fn not_found(msg: impl Into<String>) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": msg.into()}))).into_response()
}

/// The state summary `GET /__sim/state` returns.
pub fn summary(sim: &Sim) -> Value {
    let st = sim.read();
    let effective: Vec<usize> = st.effective_slots().collect();
    let active = effective
        .iter()
        .filter(|s| st.get(**s).is_some_and(|u| u.active))
        .count();
    let licensed = st.licensed_count();
    let pending = st.tasks.values().filter(|t| t.outcome.is_none()).count();
    json!({
        "version": sim.version.to_string(),
        "baseUrl": sim.base(),
        "users": effective.len(),
        "rows": st.all_slots().count(),
        "active": active,
        "licensed": licensed,
        "seats": st.max_users,
        "remainingSeats": st.remaining_seats(),
        "readOnlyMode": st.max_users >= 0 && licensed as i64 > st.max_users,
        "groups": st.groups.len(),
        "directories": st.dirs,
        "pendingTasks": pending,
        "settings": sim.settings(),
        "rateLimit": *sim.rate.lock().unwrap_or_else(|p| p.into_inner()),
    })
}

#[derive(Deserialize, Default)]
struct Reset {
    seed: Option<u64>,
    users: Option<usize>,
}

async fn reset(State(sim): State<Sim>, body: Option<Json<Reset>>) -> Response {
    let r = body.map(|Json(r)| r).unwrap_or_default();
    let seed = r.seed.unwrap_or(sim.opts.seed);
    let users = r.users.unwrap_or(sim.opts.users).min(2_000_000);
    sim.reset(seed, users);
    tracing::info!(seed, users, "dcsim: reset");
    Json(summary(&sim)).into_response()
}

async fn state(State(sim): State<Sim>) -> Response {
    Json(summary(&sim)).into_response()
}

async fn get_user(State(sim): State<Sim>, Path(username): Path<String>) -> Response {
    let st = sim.read();
    match st.by_username(&username).and_then(|s| view(&st, s)) {
        Some(v) => Json(v).into_response(),
        None => not_found(format!("no user {username}")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateUser {
    username: String,
    display_name: Option<String>,
    email: Option<String>,
    active: Option<bool>,
    groups: Option<Vec<String>>,
    directory: Option<String>,
    password: Option<String>,
    pat: Option<String>,
}

async fn create_user(State(sim): State<Sim>, Json(req): Json<CreateUser>) -> Response {
    let now = sim.now_ms();
    let mut st = sim.write();
    let dir = match req.directory.as_deref() {
        Some(d) => match st.find_dir(d) {
            Some(i) => Some(i),
            None => return bad(format!("no directory {d}")),
        },
        None => None,
    };
    let username = req.username.to_lowercase();
    // Allowed to shadow: a user of the same name in another directory.
    let shadows = st.by_username(&username).is_some();
    let created = if shadows {
        let Some(d) = dir else {
            return (
                StatusCode::CONFLICT,
                Json(json!({"error": "user exists; give another directory to shadow it"})),
            )
                .into_response();
        };
        if st.all_slots().any(|s| {
            st.get(s)
                .is_some_and(|u| u.username == username && u.dir == d)
        }) {
            return (
                StatusCode::CONFLICT,
                Json(json!({"error": "user exists in that directory"})),
            )
                .into_response();
        }
        // Create under a placeholder name, then give it the shared name.
        let placeholder = format!("__shadow_{}", st.rng.hex(8));
        st.create_user(NewUser {
            username: placeholder,
            display_name: req.display_name.clone().unwrap_or_else(|| username.clone()),
            email: req
                .email
                .clone()
                .unwrap_or_else(|| format!("{username}@example.com")),
            password: req.password.clone(),
            active: req.active.unwrap_or(true),
            groups: Some(req.groups.clone().unwrap_or_default()),
            dir: Some(d),
            created_ms: now,
            check_seats: false,
        })
        .inspect(|slot| st.force_rename(*slot, &username))
    } else {
        st.create_user(NewUser {
            username: username.clone(),
            display_name: req.display_name.unwrap_or_else(|| username.clone()),
            email: req
                .email
                .unwrap_or_else(|| format!("{username}@example.com")),
            password: req.password,
            active: req.active.unwrap_or(true),
            groups: req.groups,
            dir,
            created_ms: now,
            check_seats: false,
        })
    };
    match created {
        Ok(slot) => {
            if let Some(p) = req.pat {
                st.set_pat(slot, &p);
            }
            match view(&st, slot) {
                Some(v) => (StatusCode::CREATED, Json(v)).into_response(),
                None => bad("user vanished"),
            }
        }
        Err(f) => bad(f.message()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchUser {
    active: Option<bool>,
    email: Option<String>,
    display_name: Option<String>,
    /// Replaces the direct groups.
    groups: Option<Vec<String>>,
    directory: Option<String>,
    externally_deleted: Option<bool>,
    /// Renames (the admin UI's "Edit details").
    username: Option<String>,
    password: Option<String>,
    pat: Option<String>,
    last_authenticated: Option<i64>,
}

async fn patch_user(
    State(sim): State<Sim>,
    Path(username): Path<String>,
    Json(req): Json<PatchUser>,
) -> Response {
    let mut st = sim.write();
    let Some(slot) = st.by_username(&username) else {
        return not_found(format!("no user {username}"));
    };
    if let Some(groups) = &req.groups
        && let Some(missing) = groups.iter().find(|g| !st.groups.contains_key(*g))
    {
        return bad(format!("no group {missing}"));
    }
    if let Some(d) = req.directory.as_deref() {
        let Some(i) = st.find_dir(d) else {
            return bad(format!("no directory {d}"));
        };
        if let Err(f) = st.move_user(slot, i) {
            return bad(f.message());
        }
    }
    if let Some(new) = req.username.as_deref()
        && let Err(f) = st.rename(slot, new)
    {
        return bad(f.message());
    }
    if let Some(p) = req.pat.as_deref() {
        st.set_pat(slot, p);
    }
    st.with_user(slot, |u| {
        if let Some(a) = req.active {
            u.active = a;
        }
        if let Some(e) = req.email {
            u.email = e;
        }
        if let Some(d) = req.display_name {
            u.display_name = d;
        }
        if let Some(mut g) = req.groups {
            g.sort();
            g.dedup();
            u.groups = g;
        }
        if let Some(x) = req.externally_deleted {
            u.externally_deleted = x;
        }
        if let Some(p) = req.password {
            u.password = Some(p);
        }
        if let Some(ms) = req.last_authenticated {
            u.last_auth_ms = Some(ms);
            u.login.success_ms = Some(ms);
        }
    });
    match view(&st, slot) {
        Some(v) => Json(v).into_response(),
        None => not_found("user vanished"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewGroup {
    name: String,
    /// Groups this one is nested in.
    #[serde(default)]
    parents: Vec<String>,
    directory: Option<String>,
    local: Option<bool>,
    /// Global permissions for the group: `use`, `administer`, `sysadmin`.
    #[serde(default)]
    grants: Vec<String>,
}

async fn create_group(State(sim): State<Sim>, Json(req): Json<NewGroup>) -> Response {
    let mut st = sim.write();
    let name = req.name.trim().to_lowercase();
    if let Err(f) = st.create_group(&name) {
        return bad(f.message());
    }
    if let Some(d) = req.directory.as_deref() {
        let Some(i) = st.find_dir(d) else {
            return bad(format!("no directory {d}"));
        };
        if let Some(g) = st.groups.get_mut(&name) {
            g.dir = i;
        }
    }
    if let Some(local) = req.local
        && let Some(g) = st.groups.get_mut(&name)
    {
        g.local = local;
    }
    for p in &req.parents {
        // Refuse cycles: the parent may not be nested (transitively) in the new group.
        match st.groups.get_mut(&p.to_lowercase()) {
            Some(parent) if parent.name != name => parent.children.push(name.clone()),
            _ => return bad(format!("no parent group {p}")),
        }
    }
    for g in &req.grants {
        let (target, op) = match g.as_str() {
            "use" => ("application", "use"),
            "administer" => ("application", "administer"),
            "sysadmin" => ("system", "administer"),
            other => return bad(format!("unknown grant {other}")),
        };
        st.perms.push(Perm {
            subject: Subject::Group(name.clone()),
            target,
            op,
        });
    }
    st.generation += 1;
    (StatusCode::CREATED, Json(json!({"name": name}))).into_response()
}

#[derive(Deserialize)]
struct Login {
    username: String,
    at: Option<DateTime<Utc>>,
}

async fn login(State(sim): State<Sim>, Json(req): Json<Login>) -> Response {
    let at = req.at.unwrap_or_else(|| sim.core.clock.now());
    let mut st = sim.write();
    let Some(slot) = st.by_username(&req.username) else {
        return not_found(format!("no user {}", req.username));
    };
    let ok = st.login(slot, at.timestamp_millis());
    tracing::info!(user = %req.username, ok, "dcsim: login recorded");
    Json(json!({"success": ok, "user": view(&st, slot)})).into_response()
}

#[derive(Deserialize)]
struct DirMode_ {
    mode: DirMode,
}

async fn set_directory(
    State(sim): State<Sim>,
    Path(dir): Path<String>,
    Json(req): Json<DirMode_>,
) -> Response {
    let mut st = sim.write();
    let Some(i) = st.find_dir(&dir) else {
        return not_found(format!("no directory {dir}"));
    };
    if let Some(d) = st.dirs.get_mut(i) {
        d.mode = req.mode;
    }
    st.generation += 1;
    StatusCode::NO_CONTENT.into_response()
}

async fn settings(State(sim): State<Sim>, Json(req): Json<Value>) -> Response {
    {
        let mut s = sim.settings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = req.get("relativeLinks").and_then(Value::as_bool) {
            s.relative_links = b;
        }
        if let Some(b) = req.get("remoteApi").and_then(Value::as_bool) {
            s.remote_api = b;
        }
        if let Some(b) = req.get("anonymous").and_then(Value::as_bool) {
            s.anonymous = b;
        }
        if let Some(ms) = req.get("deleteTaskMs").and_then(Value::as_u64) {
            s.delete_task_ms = ms;
        }
        if let Some(f) = req.get("deleteTaskFailure") {
            s.delete_task_failure = f.as_str().map(str::to_owned);
        }
    }
    if let Some(m) = req.get("maxUsers").and_then(Value::as_i64) {
        let mut st = sim.write();
        st.max_users = m.max(-1);
        st.generation += 1;
    }
    Json(summary(&sim)).into_response()
}

fn names(v: &Value) -> Option<std::collections::HashSet<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect()
    })
}

async fn rate_limit(State(sim): State<Sim>, Json(req): Json<Value>) -> Response {
    {
        let mut r = sim.rate.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = req.get("enabled").and_then(Value::as_bool) {
            r.enabled = b;
        }
        if let Some(n) = req.get("limit").and_then(Value::as_u64) {
            r.limit = n;
        }
        if let Some(n) = req.get("fillRate").and_then(Value::as_u64) {
            r.fill_rate = n;
        }
        if let Some(n) = req.get("intervalSeconds").and_then(Value::as_u64) {
            r.interval_seconds = n.max(1);
        }
        if let Some(b) = req.get("blocked").and_then(names) {
            r.blocked = b;
        }
        if let Some(e) = req.get("exempt").and_then(names) {
            r.exempt = e;
        }
    }
    sim.clear_buckets();
    let r = sim.rate.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(json!(r)).into_response()
}

async fn last_logins(State(sim): State<Sim>) -> Response {
    let st = sim.read();
    let rows: Vec<Value> = st
        .all_slots()
        .filter_map(|s| st.get(s))
        .map(|u| {
            json!({
                "user_key": u.key,
                "username": u.username,
                "lastAuthenticated": u.last_auth_ms,
                "successdate": u.login.success_ms.and_then(super::rest::iso_ms),
                "prevsuccessdate": u.login.prev_success_ms.and_then(super::rest::iso_ms),
                "faileddate": u.login.failed_ms.and_then(super::rest::iso_ms),
                "failedcount": u.login.failed_count,
            })
        })
        .collect();
    Json(rows).into_response()
}
