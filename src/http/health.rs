//! Liveness and readiness. `/healthz` says the process answers; `/readyz` says the database
//! answers and carries every migration this build knows, and gives the reason when not.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::store::NotReady;

/// How long the readiness check may wait on the database.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`.
pub(super) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let verdict = match tokio::time::timeout(READINESS_TIMEOUT, state.store.readiness()).await {
        Ok(v) => v,
        Err(_) => Err(NotReady::Unreachable(format!(
            "no answer within {} ms",
            READINESS_TIMEOUT.as_millis()
        ))),
    };
    match verdict {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reason) => {
            tracing::warn!(reason = %reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "reason": reason.to_string() })),
            )
                .into_response()
        }
    }
}
