//! The Entra simulator's own `/__sim/` routes, beside the shared ones for the request log,
//! faults (`/__sim/faults`) and clock:
//!
//! * `GET /__sim/state`: tenant, credentials' public parts, counts, premium, roles.
//! * `POST /__sim/users` `{userPrincipalName, displayName?, mail?, accountEnabled?}`: adds a
//!   user (returns it).
//! * `POST /__sim/users/{id|upn}` `{accountEnabled?, userPrincipalName?, delete?, purge?,
//!   restore?, lastSuccessfulSignIn?}`: changes a user (recorded for delta).
//! * `POST /__sim/sign-ins` `{user, appId?, at?, errorCode?}`: adds a sign-in event.
//! * `POST /__sim/delta/expire` `{how: "gone"|"syncStateNotFound"|"resyncRequired"}`.
//! * `POST /__sim/premium` `{premium}`; `POST /__sim/roles` `{roles: [...]}`.
//! * `POST /__sim/throttle` (a [`super::ThrottleRule`]); `POST /__sim/canned` (a
//!   [`super::Canned`]); `POST /__sim/tokens/revoke`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::model::{Activity, Persona, SimSignIn, SimUser};
use super::{Canned, DeltaExpiry, Shared, ThrottleRule};

pub(super) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/__sim/state", get(state))
        .route("/__sim/users", post(add_user))
        .route("/__sim/users/{key}", post(change_user))
        .route("/__sim/sign-ins", post(add_sign_in))
        .route("/__sim/delta/expire", post(expire_delta))
        .route("/__sim/premium", post(premium))
        .route("/__sim/roles", post(roles))
        .route("/__sim/throttle", post(throttle))
        .route("/__sim/canned", post(canned))
        .route(
            "/__sim/tokens/revoke",
            post(|State(s): State<Arc<Shared>>| async move {
                s.token_generation.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(shared)
}

fn bad(detail: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": detail.into()})),
    )
        .into_response()
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    let w = s.read();
    let present = w.users.iter().filter(|u| u.present());
    let enabled = present.clone().filter(|u| u.account_enabled).count();
    Json(json!({
        "tenantId": w.tenant_id,
        "domain": w.domain,
        "clientId": s.client_id,
        "appId": s.app_id,
        "premium": s.premium(),
        "roles": s.roles(),
        "users": {
            "present": present.count(),
            "enabled": enabled,
            "softDeleted": w.deleted.len(),
            "purged": w.users.iter().filter(|u| u.purged).count(),
        },
        "groups": w.groups.len(),
        "signIns": w.sign_ins.len(),
        "changes": w.seq,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewUser {
    user_principal_name: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default = "yes")]
    account_enabled: bool,
}

fn yes() -> bool {
    true
}

async fn add_user(State(s): State<Arc<Shared>>, Json(n): Json<NewUser>) -> Response {
    let now = s.core.clock.now();
    let mut w = s.write();
    if w.by_upn.contains_key(&n.user_principal_name.to_lowercase()) {
        return bad("a user with this userPrincipalName exists");
    }
    let user = SimUser {
        id: String::new(),
        user_principal_name: n.user_principal_name.clone(),
        mail: n.mail.or(Some(n.user_principal_name.clone())),
        other_mails: Vec::new(),
        given_name: None,
        surname: None,
        display_name: n.display_name.unwrap_or(n.user_principal_name),
        account_enabled: n.account_enabled,
        created: now,
        employee_id: None,
        employee_type: Some("Employee".into()),
        user_type: "Member".into(),
        department: None,
        job_title: None,
        company_name: None,
        activity: Activity::Absent,
        last_sign_in: None,
        last_success: None,
        deleted: None,
        purged: false,
        persona: Persona::NeverSignedIn,
    };
    let i = w.add_user(user);
    Json(json!(w.users[i])).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserChange {
    #[serde(default)]
    account_enabled: Option<bool>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    delete: bool,
    #[serde(default)]
    purge: bool,
    #[serde(default)]
    restore: bool,
    #[serde(default)]
    last_successful_sign_in: Option<DateTime<Utc>>,
}

async fn change_user(
    State(s): State<Arc<Shared>>,
    Path(key): Path<String>,
    Json(c): Json<UserChange>,
) -> Response {
    let now = s.core.clock.now();
    let mut w = s.write();
    let Some(i) = w.find(&key) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such user"})),
        )
            .into_response();
    };
    if let Some(b) = c.account_enabled {
        w.users[i].account_enabled = b;
        w.touch(i);
    }
    if let Some(upn) = c.user_principal_name {
        w.rename(i, &upn);
    }
    if let Some(t) = c.last_successful_sign_in {
        let u = &mut w.users[i];
        u.activity = Activity::Present;
        u.last_success = Some(t);
        u.last_sign_in = Some(u.last_sign_in.map_or(t, |x| x.max(t)));
    }
    if c.restore {
        w.restore(i);
    }
    if c.delete {
        w.soft_delete(i, now);
    }
    if c.purge {
        w.purge(i);
    }
    Json(json!(w.users[i])).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSignIn {
    user: String,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    at: Option<DateTime<Utc>>,
    #[serde(default)]
    error_code: i64,
}

async fn add_sign_in(State(s): State<Arc<Shared>>, Json(n): Json<NewSignIn>) -> Response {
    let at = n.at.unwrap_or_else(|| s.core.clock.now());
    let mut w = s.write();
    let Some(i) = w.find(&n.user) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such user"})),
        )
            .into_response();
    };
    let id = w.new_id();
    let event = SimSignIn {
        id: id.clone(),
        created: at,
        user: i,
        app_id: n.app_id.unwrap_or_else(|| s.app_id.clone()),
        app_display_name: super::model::APP_NAME.to_owned(),
        error_code: n.error_code,
    };
    w.add_sign_in(event);
    if n.error_code == 0 {
        let u = &mut w.users[i];
        u.activity = Activity::Present;
        u.last_success = Some(u.last_success.map_or(at, |x| x.max(at)));
    }
    Json(json!({"id": id})).into_response()
}

#[derive(Deserialize)]
struct Expire {
    how: DeltaExpiry,
}

async fn expire_delta(State(s): State<Arc<Shared>>, Json(e): Json<Expire>) -> Response {
    *s.delta_expiry.lock().unwrap_or_else(|p| p.into_inner()) = e.how;
    s.delta_epoch.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Premium {
    premium: bool,
}

async fn premium(State(s): State<Arc<Shared>>, Json(p): Json<Premium>) -> Response {
    s.premium.store(p.premium, Ordering::Relaxed);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Roles {
    roles: Vec<String>,
}

async fn roles(State(s): State<Arc<Shared>>, Json(r): Json<Roles>) -> Response {
    *s.roles.write().unwrap_or_else(|p| p.into_inner()) = r.roles;
    StatusCode::NO_CONTENT.into_response()
}

async fn throttle(State(s): State<Arc<Shared>>, Json(r): Json<ThrottleRule>) -> Response {
    if !matches!(r.status, 429 | 503 | 504) {
        return bad("status must be 429, 503 or 504");
    }
    *s.throttle.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    StatusCode::NO_CONTENT.into_response()
}

async fn canned(State(s): State<Arc<Shared>>, Json(c): Json<Canned>) -> Response {
    s.canned.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    StatusCode::NO_CONTENT.into_response()
}
