//! Prometheus metrics: the registry, the middleware that counts and times every request by
//! route and status, the snapshot gauges (is each source's and target's latest snapshot
//! complete, how many items, when the last complete one finished), and the `/metrics` handler
//! (OpenMetrics text, which Prometheus scrapes natively).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

use super::AppState;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SnapshotLabels {
    kind: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// The route template a request matched, carried from the inner router to the outer
/// middleware in the response extensions. Requests that match no route count as `unmatched`.
#[derive(Clone, Debug)]
struct MatchedRoute(Arc<str>);

/// Every metric idbridge exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram, fn() -> Histogram>,
    snapshot_complete: Family<SnapshotLabels, Gauge>,
    snapshot_items: Family<SnapshotLabels, Gauge>,
    snapshot_last_complete: Family<SnapshotLabels, Gauge>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    /// A registry with the HTTP metrics and `idbridge_build_info`.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "idbridge_http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let latency: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "idbridge_http_request_duration_seconds",
            "Time from request to response head, by method, route template and status",
            latency.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("idbridge_build_info", "Build of the running binary", build);
        let snapshot_complete = Family::<SnapshotLabels, Gauge>::default();
        registry.register(
            "idbridge_snapshot_complete",
            "1 when the latest snapshot of a source or target is complete, 0 when it is \
             incomplete or failed (no removals are planned from it)",
            snapshot_complete.clone(),
        );
        let snapshot_items = Family::<SnapshotLabels, Gauge>::default();
        registry.register(
            "idbridge_snapshot_items",
            "People or accounts in the latest snapshot of a source or target",
            snapshot_items.clone(),
        );
        let snapshot_last_complete = Family::<SnapshotLabels, Gauge>::default();
        registry.register(
            "idbridge_snapshot_last_complete_timestamp_seconds",
            "When the last complete snapshot of a source or target finished (Unix time)",
            snapshot_last_complete.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            snapshot_complete,
            snapshot_items,
            snapshot_last_complete,
        }
    }

    /// Sets the snapshot gauges from the latest snapshot of each source and target.
    pub fn observe_snapshots(&self, snapshots: &[crate::store::SnapshotSummary]) {
        for s in snapshots {
            let labels = SnapshotLabels {
                kind: s.kind.clone(),
                name: s.name.clone(),
            };
            self.snapshot_complete.get_or_create(&labels).set(i64::from(
                s.status == crate::domain::SnapshotStatus::Complete,
            ));
            self.snapshot_items.get_or_create(&labels).set(s.items);
            if let Some(at) = s.last_complete_at {
                self.snapshot_last_complete
                    .get_or_create(&labels)
                    .set(at.timestamp());
            }
        }
    }

    fn observe(&self, method: &str, route: &str, status: StatusCode, seconds: f64) {
        let labels = HttpLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status: status.as_u16().to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Outer middleware: times the request and counts it once the response head is ready.
pub(super) async fn track(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let route = response
        .extensions()
        .get::<MatchedRoute>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| Arc::from("unmatched"));
    metrics.observe(
        &method,
        &route,
        response.status(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// Inner (route) middleware: remembers the matched route template for [`track`] and the
/// trace span.
pub(super) async fn remember_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| Arc::<str>::from(p.as_str()));
    if let Some(route) = &route {
        tracing::Span::current().record("route", route.as_ref());
    }
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(MatchedRoute(route));
    }
    response
}

/// `GET /metrics`.
pub(super) async fn render(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.server.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = presented.as_bytes().ct_eq(token.expose().as_bytes()).into();
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"metrics\""),
                )],
                "metrics require a bearer token\n",
            )
                .into_response();
        }
    }
    if let Ok(Ok(snapshots)) = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.store.latest_snapshots(),
    )
    .await
    {
        state.metrics.observe_snapshots(&snapshots);
    }
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        state.metrics.render(),
    )
        .into_response()
}
