//! Liveness and readiness. `/healthz` says the process answers; `/readyz` says the database
//! answers and carries every migration this build knows, and gives the reason when not; when
//! ready, it also lists each source's and target's latest snapshot and names the ones that are
//! not complete.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::domain::SnapshotStatus;
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
        Ok(()) => {
            // Readiness is about serving; a source or target whose latest snapshot is not
            // complete does not make idbridge unready, but the detail says so, because no
            // removal is planned from it.
            let snapshots =
                match tokio::time::timeout(READINESS_TIMEOUT, state.store.latest_snapshots()).await
                {
                    Ok(Ok(list)) => list,
                    _ => Vec::new(),
                };
            let mut sources = serde_json::Map::new();
            let mut targets = serde_json::Map::new();
            let mut degraded = Vec::new();
            for s in snapshots {
                if s.status != SnapshotStatus::Complete {
                    degraded.push(format!("{} {}", s.kind, s.name));
                }
                let entry = json!({
                    "snapshot": s.status,
                    "items": s.items,
                    "finished_at": s.finished_at,
                    "reason": s.reason,
                    "last_complete_at": s.last_complete_at,
                    "notes": s.notes,
                });
                if s.kind == "source" {
                    sources.insert(s.name, entry);
                } else {
                    targets.insert(s.name, entry);
                }
            }
            Json(json!({
                "status": "ready",
                "sources": sources,
                "targets": targets,
                "incomplete": degraded,
            }))
            .into_response()
        }
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
