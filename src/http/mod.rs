//! The HTTP surface: one axum router with the cross-cutting middleware every route shares.
//!
//! Layers, outermost first: request id (set from `x-request-id` or a fresh UUID), trace span
//! (method, path, request id, route), request-id propagation to the response, metrics,
//! timeout (408), body-size limit (413). Routes: `/healthz`, `/readyz`, `/metrics`, and SCIM
//! 2.0 under `/scim/v2/{source}`.

mod health;
pub mod json;
pub mod metrics;
mod scim;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::middleware;
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::ScimAuthenticator;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::Store;
pub use metrics::Metrics;

/// The request id header, set on every request and echoed on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub authenticator: ScimAuthenticator,
}

/// The full router: idbridge's routes plus `extra` (used by embedders and tests), behind the
/// shared middleware.
pub fn router(state: AppState, extra: Router) -> Router {
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .with_state(state.clone())
        .merge(scim::router(state.clone()))
        .merge(extra)
        .route_layer(middleware::from_fn(metrics::remember_route));

    let server = &state.config.server;
    // `Router::layer` wraps from the inside out: the last layer added runs first.
    routes
        .layer(RequestBodyLimitLayer::new(server.body_limit_bytes))
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            server.request_timeout(),
        ))
        .layer(middleware::from_fn(scim::scim_error_bodies))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let request_id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = %request_id,
                    route = tracing::field::Empty,
                )
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
