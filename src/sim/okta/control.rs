//! The Okta simulator's own `/__sim/` routes, beside the shared ones for the request log,
//! faults and clock:
//!
//! * `GET /__sim/state`: a summary (org, app, users by status, deleted, groups, events).
//! * `POST /__sim/users` `{login, firstName?, lastName?, status?}`: adds a user.
//! * `POST /__sim/users/{id}` `{status?, lastLogin?, firstName?, lastName?, email?}`: changes
//!   a user (stamps `lastUpdated`).
//! * `DELETE /__sim/users/{id}`: deletes a user (404 from then on).
//! * `POST /__sim/logs/sso` `{userId, result?, published?, appId?}`: an SSO event (success
//!   or failure; `published` in the past makes a late arrival).
//! * `POST /__sim/rate-limit` `{limit, windowSecs?}`: requests per window in every bucket
//!   (`null`: Okta's defaults). `GET /__sim/rate-usage`: each request's bucket use.
//! * `POST /__sim/scopes` `{granted: [...]}`: the service app's granted scopes.
//! * `POST /__sim/glitch` `"repeat-cursor"|"overlap"|null`: a deliberate paging bug.
//! * `POST /__sim/tokens/revoke`: revokes every access token and SSWS token.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::model::{SimEvent, SimUser, World};
use super::{Shared, lock};

pub(super) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/__sim/state", get(state))
        .route("/__sim/users", post(add_user))
        .route("/__sim/users/{id}", post(change_user).delete(delete_user))
        .route("/__sim/logs/sso", post(add_sso))
        .route("/__sim/rate-limit", post(rate_limit))
        .route(
            "/__sim/rate-usage",
            get(|State(s): State<Arc<Shared>>| async move {
                Json(lock(&s.rate).log.clone()).into_response()
            }),
        )
        .route("/__sim/scopes", post(scopes))
        .route(
            "/__sim/glitch",
            post(
                |State(s): State<Arc<Shared>>, Json(g): Json<Option<super::Glitch>>| async move {
                    *lock(&s.glitch) = g;
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/__sim/tokens/revoke",
            post(|State(s): State<Arc<Shared>>| async move {
                lock(&s.tokens).clear();
                lock(&s.ssws).clear();
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(shared)
}

/// A new ACTIVE user.
pub(super) fn new_user(
    id: String,
    login: &str,
    first: &str,
    last: &str,
    now: DateTime<Utc>,
) -> SimUser {
    SimUser {
        id,
        status: "ACTIVE".into(),
        created: now,
        activated: Some(now),
        status_changed: Some(now),
        last_login: None,
        last_updated: now,
        password_changed: Some(now),
        login: login.to_owned(),
        email: login.to_owned(),
        second_email: None,
        first_name: first.to_owned(),
        last_name: last.to_owned(),
        display_name: Some(format!("{first} {last}")),
        extra: BTreeMap::new(),
    }
}

/// An SSO event by `user_id` into `app_id`, or `None` when there is no such user.
pub(super) fn sso_event(
    w: &World,
    user_id: &str,
    app_id: &str,
    result: &str,
    published: DateTime<Utc>,
    persisted: DateTime<Utc>,
) -> Option<SimEvent> {
    let u = w.user(user_id)?;
    Some(SimEvent {
        seq: 0,
        uuid: String::new(),
        published,
        persisted,
        event_type: "user.authentication.sso".into(),
        actor_id: u.id.clone(),
        actor_login: u.login.clone(),
        actor_name: format!("{} {}", u.first_name, u.last_name),
        app_id: Some(app_id.to_owned()),
        app_name: if app_id == w.app_id {
            "Confluence".into()
        } else {
            "Other app".into()
        },
        result: result.to_owned(),
        target_user: None,
    })
}

fn bad(detail: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": detail.into()})),
    )
        .into_response()
}

fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    let w = s.read();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for u in w.users.values() {
        *by_status.entry(u.status.as_str()).or_default() += 1;
    }
    Json(json!({
        "org": w.org,
        "appId": w.app_id,
        "users": w.users.len(),
        "byStatus": by_status,
        "deleted": w.deleted.len(),
        "neverLoggedIn": w.users.values().filter(|u| u.last_login.is_none()).count(),
        "groups": w.groups.len(),
        "events": w.events.len(),
        "grantedScopes": lock(&s.granted).clone(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewUser {
    login: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

async fn add_user(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(n): Json<NewUser>,
) -> Response {
    let now = s.core.clock.now();
    let mut w = s.write();
    if w.user(&n.login).is_some() {
        return bad("login already exists");
    }
    let id = w.new_user_id();
    let mut u = new_user(
        id,
        &n.login,
        n.first_name.as_deref().unwrap_or("New"),
        n.last_name.as_deref().unwrap_or("Person"),
        now,
    );
    if let Some(st) = n.status {
        u.status = st;
    }
    let out = u.to_json(&base(&headers));
    w.add_user(u);
    (StatusCode::CREATED, Json(out)).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Change {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, with = "double_option")]
    last_login: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

mod double_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<DateTime<Utc>>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}

async fn change_user(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(c): Json<Change>,
) -> Response {
    let now = s.core.clock.now();
    let mut w = s.write();
    let Some(u) = w.users.get_mut(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such user"})),
        )
            .into_response();
    };
    if let Some(st) = c.status {
        if st != u.status {
            u.status_changed = Some(now);
        }
        u.status = st;
    }
    if let Some(ll) = c.last_login {
        u.last_login = ll;
    }
    if let Some(f) = c.first_name {
        u.first_name = f;
    }
    if let Some(l) = c.last_name {
        u.last_name = l;
    }
    if let Some(e) = c.email {
        u.email = e;
    }
    u.last_updated = now;
    Json(u.to_json(&base(&headers))).into_response()
}

async fn delete_user(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let now = s.core.clock.now();
    if s.write().delete_user(&id, now) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such user"})),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sso {
    user_id: String,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    published: Option<DateTime<Utc>>,
    #[serde(default)]
    app_id: Option<String>,
}

async fn add_sso(State(s): State<Arc<Shared>>, Json(e): Json<Sso>) -> Response {
    let now = s.core.clock.now();
    let mut w = s.write();
    let app = e.app_id.unwrap_or_else(|| w.app_id.clone());
    let result = e.result.unwrap_or_else(|| "SUCCESS".into());
    match sso_event(
        &w,
        &e.user_id,
        &app,
        &result,
        e.published.unwrap_or(now),
        now,
    ) {
        Some(ev) => {
            let ev = w.append_event(ev);
            (StatusCode::CREATED, Json(json!({"uuid": ev.uuid}))).into_response()
        }
        None => bad("no such user"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RateLimit {
    limit: Option<u64>,
    #[serde(default)]
    window_secs: Option<u64>,
}

async fn rate_limit(State(s): State<Arc<Shared>>, Json(r): Json<RateLimit>) -> Response {
    let mut st = lock(&s.rate);
    st.limit = r.limit;
    if let Some(w) = r.window_secs {
        st.window_secs = w.max(1);
    }
    st.windows.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Scopes {
    granted: Vec<String>,
}

async fn scopes(State(s): State<Arc<Shared>>, Json(sc): Json<Scopes>) -> Response {
    *lock(&s.granted) = sc.granted;
    StatusCode::NO_CONTENT.into_response()
}
