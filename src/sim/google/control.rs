//! The Google simulator's own `/__sim/` routes, beside the shared ones for the request log,
//! faults and clock:
//!
//! * `GET /__sim/state`: a summary (customer, domains, user counts by status, groups, events).
//! * `POST /__sim/users` `{primaryEmail, givenName?, familyName?, isAdmin?, orgUnitPath?}`:
//!   adds a user (answers its id).
//! * `POST /__sim/users/{userKey}` `{action: suspend|unsuspend|archive|unarchive|delete|
//!   undelete, reason?}` or `{lastLoginTime: <time>|null}`: changes a user.
//! * `POST /__sim/saml-events` `{user, name?, applicationName?, at?}`: a SAML sign-in event
//!   (default `login_success` to `Atlassian Cloud`, now).
//! * `POST /__sim/quota` `{next?: [reason…], every?: n, reason?}`: quota errors to answer.
//! * `POST /__sim/dwd` `{scopes: […]}`: the scopes authorised for domain-wide delegation.
//! * `POST /__sim/report-lag` `{seconds}`: how long events take to show in the Reports API.
//! * `POST /__sim/tokens/revoke`: forgets every access token handed out (next calls: 401).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::model::{CONFLUENCE_APP, SamlEvent, SimUser};

pub(super) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/__sim/state", get(state))
        .route("/__sim/users", post(add_user))
        .route("/__sim/users/{key}", post(change_user))
        .route("/__sim/saml-events", post(add_event))
        .route("/__sim/quota", post(quota))
        .route("/__sim/dwd", post(dwd))
        .route("/__sim/report-lag", post(report_lag))
        .route(
            "/__sim/tokens/revoke",
            post(|State(s): State<Arc<Shared>>| async move {
                s.revoke_tokens();
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
    let live = || w.live.iter().map(|&i| &w.users[i]);
    Json(json!({
        "customerId": w.customer_id,
        "domain": w.domain,
        "contractorDomain": w.contractor_domain,
        "users": {
            "live": w.live.len(),
            "deleted": w.deleted.len(),
            "suspended": live().filter(|u| u.suspended).count(),
            "archived": live().filter(|u| u.archived).count(),
            "neverLoggedIn": live().filter(|u| u.last_login_time.is_none()).count(),
            "admins": live().filter(|u| u.is_admin).count(),
        },
        "groups": w.groups.len(),
        "samlEvents": w.events.len(),
        "admin": w.users.first().map(|u| u.primary_email.clone()),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewUser {
    primary_email: String,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    family_name: Option<String>,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    org_unit_path: Option<String>,
}

async fn add_user(State(s): State<Arc<Shared>>, Json(n): Json<NewUser>) -> Response {
    let now = s.core.clock.now();
    let mut w = s.write();
    if w.user(&n.primary_email).is_some() {
        return bad("a user with that email exists");
    }
    let i = w.insert(SimUser {
        id: String::new(),
        primary_email: n.primary_email,
        aliases: Vec::new(),
        given_name: n.given_name.unwrap_or_else(|| "New".into()),
        family_name: n.family_name.unwrap_or_else(|| "Starter".into()),
        is_admin: n.is_admin,
        suspended: false,
        suspension_reason: None,
        archived: false,
        deletion_time: None,
        creation_time: now,
        last_login_time: None,
        org_unit_path: n.org_unit_path.unwrap_or_else(|| "/".into()),
        employee_id: None,
        cost_center: None,
        employee_type: None,
    });
    Json(json!({"id": w.users[i].id})).into_response()
}

async fn change_user(
    State(s): State<Arc<Shared>>,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let now = s.core.clock.now();
    let mut w = s.write();
    let Some(i) = w.user(&key) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such user"})),
        )
            .into_response();
    };
    if let Some(action) = body.get("action").and_then(Value::as_str) {
        let reason = body
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("ADMIN")
            .to_owned();
        match action {
            "suspend" => {
                w.users[i].suspended = true;
                w.users[i].suspension_reason = Some(reason);
            }
            "unsuspend" => {
                w.users[i].suspended = false;
                w.users[i].suspension_reason = None;
            }
            "archive" => w.users[i].archived = true,
            "unarchive" => w.users[i].archived = false,
            "delete" => w.set_deleted(i, Some(now)),
            "undelete" => w.set_deleted(i, None),
            other => return bad(format!("unknown action `{other}`")),
        }
    }
    if let Some(v) = body.get("lastLoginTime") {
        w.users[i].last_login_time = match v {
            Value::Null => None,
            Value::String(t) => match DateTime::parse_from_rfc3339(t) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => return bad(format!("lastLoginTime: {e}")),
            },
            _ => return bad("lastLoginTime must be a time or null"),
        };
    }
    Json(json!({"id": w.users[i].id})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewEvent {
    user: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    application_name: Option<String>,
    #[serde(default)]
    at: Option<DateTime<Utc>>,
}

async fn add_event(State(s): State<Arc<Shared>>, Json(n): Json<NewEvent>) -> Response {
    let at = n.at.unwrap_or_else(|| s.core.clock.now());
    let at = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
    let mut w = s.write();
    let Some(user) = w.user(&n.user) else {
        return bad("no such user");
    };
    let name = n.name.unwrap_or_else(|| "login_success".into());
    let q = w.new_qualifier();
    w.add_event(SamlEvent {
        time: at,
        unique_qualifier: q,
        user,
        failure_type: (name == "login_failure")
            .then(|| "failure_app_not_configured_for_user".to_owned()),
        name,
        app_name: n.application_name.unwrap_or_else(|| CONFLUENCE_APP.into()),
        initiated_by: "sp",
    });
    Json(json!({"time": at, "uniqueQualifier": q.to_string()})).into_response()
}

#[derive(Deserialize)]
struct QuotaBody {
    #[serde(default)]
    next: Vec<String>,
    #[serde(default)]
    every: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
}

async fn quota(State(s): State<Arc<Shared>>, Json(b): Json<QuotaBody>) -> Response {
    let mut q = s.quota();
    q.next.extend(b.next);
    if let Some(n) = b.every {
        q.every = (n > 0).then(|| {
            (
                n,
                b.reason
                    .clone()
                    .unwrap_or_else(|| "userRateLimitExceeded".into()),
            )
        });
        q.counter = 0;
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct DwdBody {
    scopes: Vec<String>,
}

async fn dwd(State(s): State<Arc<Shared>>, Json(b): Json<DwdBody>) -> Response {
    *s.dwd_scopes.write().unwrap_or_else(|p| p.into_inner()) = b.scopes;
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct LagBody {
    seconds: i64,
}

async fn report_lag(State(s): State<Arc<Shared>>, Json(b): Json<LagBody>) -> Response {
    *s.report_lag.write().unwrap_or_else(|p| p.into_inner()) =
        chrono::Duration::seconds(b.seconds.max(0));
    StatusCode::NO_CONTENT.into_response()
}
