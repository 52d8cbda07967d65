//! The Atlassian Cloud simulator's own `/__sim/` routes, beside the shared ones for the
//! request log, faults and clock:
//!
//! * `GET /__sim/state`: a summary (org, site, directories, user counts by status, seats).
//! * `POST /__sim/users/{accountId}`: change a user mid-run: `accountStatus`,
//!   `membershipStatus`, `managementSource` (`invited`|`synced`), `lastActive` (a time or
//!   `null`), `removed`.
//! * `POST /__sim/activity` `{accountId, at?}`: a Confluence visit (default: now).
//! * `POST /__sim/seats` `{seats}`: the Confluence seat limit (`null`: unlimited).
//! * `POST /__sim/rate-limit` `{perMinute}`: the per-org rate limit (`null`: off).
//! * `POST /__sim/cursors/expire`: expires every cursor handed out.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use super::model::{AccountStatus, MembershipStatus};

pub(super) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/__sim/state", get(state))
        .route("/__sim/users/{account_id}", post(change_user))
        .route("/__sim/activity", post(activity))
        .route("/__sim/seats", post(seats))
        .route("/__sim/rate-limit", post(rate_limit))
        .route(
            "/__sim/cursors/expire",
            post(|State(s): State<Arc<Shared>>| async move {
                s.expire_cursors();
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(shared)
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    let w = s.read();
    let present = || w.users.iter().filter(|u| !u.removed);
    let count = |f: &dyn Fn(&super::SimUser) -> bool| present().filter(|u| f(u)).count();
    let limiter = s
        .limiter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|(n, _)| *n);
    Json(json!({
        "orgId": w.org_id,
        "siteId": w.site_id,
        "directories": w.directories,
        "users": {
            "total": present().count(),
            "active": count(&|u| u.account_status == AccountStatus::Active
                && u.membership_status == MembershipStatus::Active),
            "suspended": count(&|u| u.membership_status == MembershipStatus::Suspended),
            "inactive": count(&|u| u.account_status == AccountStatus::Inactive),
            "closed": count(&|u| u.account_status == AccountStatus::Closed),
            "synced": count(&|u| u.synced),
            "neverActive": count(&|u| u.last_active.is_none()),
        },
        "groups": w.groups.len(),
        "seats": w.seats,
        "billable": w.billable_count(),
        "rateLimitPerMinute": limiter,
    }))
    .into_response()
}

fn bad(detail: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": detail.into()})),
    )
        .into_response()
}

/// A field that may be absent (leave), `null` (clear) or set.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserChange {
    #[serde(default)]
    account_status: Option<String>,
    #[serde(default)]
    membership_status: Option<String>,
    #[serde(default)]
    management_source: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    last_active: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    removed: Option<bool>,
}

async fn change_user(
    State(s): State<Arc<Shared>>,
    Path(account_id): Path<String>,
    Json(change): Json<UserChange>,
) -> Response {
    let account_status = match change.account_status.as_deref().map(AccountStatus::parse) {
        Some(None) => return bad("accountStatus must be active, inactive or closed"),
        other => other.flatten(),
    };
    let membership_status = match change
        .membership_status
        .as_deref()
        .map(MembershipStatus::parse)
    {
        Some(None) => return bad("membershipStatus must be active or suspended"),
        other => other.flatten(),
    };
    let synced = match change.management_source.as_deref() {
        None => None,
        Some("synced") => Some(true),
        Some("invited") => Some(false),
        Some(_) => return bad("managementSource must be invited or synced"),
    };
    let mut w = s.write();
    let Some(u) = w.user_index.get(&account_id).copied() else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such user"})),
        )
            .into_response();
    };
    let user = &mut w.users[u];
    if let Some(a) = account_status {
        user.account_status = a;
    }
    if let Some(m) = membership_status {
        user.membership_status = m;
    }
    if let Some(synced) = synced {
        user.synced = synced;
    }
    if let Some(t) = change.last_active {
        user.last_active = t;
    }
    if let Some(r) = change.removed {
        user.removed = r;
    }
    Json(json!(user)).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activity {
    account_id: String,
    #[serde(default)]
    at: Option<DateTime<Utc>>,
}

async fn activity(State(s): State<Arc<Shared>>, Json(a): Json<Activity>) -> Response {
    let at = a.at.unwrap_or_else(|| s.core.clock.now());
    let mut w = s.write();
    let Some(u) = w.user(&a.account_id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such user"})),
        )
            .into_response();
    };
    let user = &mut w.users[u];
    user.last_active = Some(user.last_active.map_or(at, |t| t.max(at)));
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Seats {
    seats: Option<u64>,
}

async fn seats(State(s): State<Arc<Shared>>, Json(body): Json<Seats>) -> Response {
    s.write().seats = body.seats;
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RateLimit {
    per_minute: Option<u64>,
}

async fn rate_limit(State(s): State<Arc<Shared>>, Json(body): Json<RateLimit>) -> Response {
    s.set_rate_limit(body.per_minute);
    StatusCode::NO_CONTENT.into_response()
}
