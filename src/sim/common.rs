//! What every simulator shares: a seeded random source for reproducible populations, a
//! virtual clock, a request log, fault injection (latency, status codes, HTML, empty or
//! truncated bodies) applied as middleware, a token bucket, and the `/__sim/` control routes
//! for the log, the faults and the clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use tokio_util::sync::CancellationToken;

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same population.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `p` (0.0 to 1.0).
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` lower-case hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(n);
        s
    }

    /// A random UUID-shaped string (`8-4-4-4-12` lower-case hex digits).
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// A simulator's clock: real time shifted by an offset the control API can advance, so
/// tests can make "90 days pass".
#[derive(Clone, Debug, Default)]
pub struct SimClock(Arc<Mutex<chrono::Duration>>);

impl SimClock {
    /// Now, as the simulator sees it.
    pub fn now(&self) -> DateTime<Utc> {
        SystemClock.now() + *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
}

/// One request the simulator answered.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
}

/// What a fault does to a matching request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Delay the answer.
    Latency { ms: u64 },
    /// Answer with this status and the product's usual empty error page.
    Status { status: u16 },
    /// Answer 200 with an HTML login page instead of JSON.
    Html,
    /// Answer with an empty body and the given status.
    Empty { status: u16 },
    /// Answer the real response cut off halfway through its body.
    Truncate,
}

/// A fault rule: requests whose method and path match get the fault, `times` times (or
/// for ever when `times` is absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// `GET`, `PUT`, …; absent: any method.
    #[serde(default)]
    pub method: Option<String>,
    /// A path prefix below the simulator's root (context path included), e.g.
    /// `/rest/api/user/list`; absent: every path except `/__sim/`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default)]
    pub times: Option<u32>,
}

/// The shared core of one simulator instance.
#[derive(Clone, Debug, Default)]
pub struct SimCore {
    pub clock: SimClock,
    log: Arc<Mutex<VecDeque<LoggedRequest>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

/// Entries kept in the request log; older ones are dropped.
const LOG_CAP: usize = 200_000;

impl SimCore {
    /// Every logged request, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Logged requests that changed state (anything but GET/HEAD/OPTIONS).
    pub fn mutations(&self) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| !matches!(r.method.as_str(), "GET" | "HEAD" | "OPTIONS"))
            .collect()
    }

    /// Adds a fault rule.
    pub fn add_fault(&self, fault: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn record(&self, entry: LoggedRequest) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == LOG_CAP {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// The first fault matching, consuming one of its `times`.
    fn take_fault(&self, method: &str, path: &str) -> Vec<FaultKind> {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let mut hit = Vec::new();
        for f in faults.iter_mut() {
            let method_ok = f
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method));
            let path_ok = f.path_prefix.as_deref().is_none_or(|p| path.starts_with(p));
            if method_ok && path_ok && f.times != Some(0) {
                if let Some(t) = f.times.as_mut() {
                    *t -= 1;
                }
                hit.push(f.kind.clone());
            }
        }
        faults.retain(|f| f.times != Some(0));
        hit
    }
}

/// An HTML page such as a login redirect or proxy error returns.
pub const LOGIN_PAGE: &str = "<!DOCTYPE html><html><head><title>Log in - Confluence</title></head>\
<body><form id=\"loginform\" action=\"dologin.action\" method=\"post\"></form></body></html>";

/// Middleware: applies faults, then logs the request with the status it got. Control
/// routes (`/__sim/`) are neither faulted nor logged.
pub async fn fault_and_log(State(core): State<SimCore>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    if path.starts_with("/__sim/") {
        return next.run(req).await;
    }
    let faults = core.take_fault(&method, &path);
    let mut truncate = false;
    let mut early: Option<Response> = None;
    for f in faults {
        match f {
            FaultKind::Latency { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            FaultKind::Status { status } if early.is_none() => {
                let code =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                early = Some(
                    (
                        code,
                        [(header::CONTENT_TYPE, "text/html")],
                        "<html><head><title>Service Unavailable</title></head></html>",
                    )
                        .into_response(),
                );
            }
            FaultKind::Html if early.is_none() => {
                early = Some(
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
                        LOGIN_PAGE,
                    )
                        .into_response(),
                );
            }
            FaultKind::Empty { status } if early.is_none() => {
                let code =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                early = Some(code.into_response());
            }
            FaultKind::Truncate => truncate = true,
            _ => {}
        }
    }
    let resp = match early {
        Some(r) => r,
        None => next.run(req).await,
    };
    let resp = if truncate {
        truncate_body(resp).await
    } else {
        resp
    };
    core.record(LoggedRequest {
        at: core.clock.now(),
        method,
        path,
        query,
        status: resp.status().as_u16(),
    });
    resp
}

async fn truncate_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 256 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let cut = bytes.slice(..bytes.len() / 2);
    parts.headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from_str(&cut.len().to_string()).unwrap_or(HeaderValue::from_static("0")),
    );
    Response::from_parts(parts, Body::from(cut))
}

/// A token bucket: `capacity` tokens, refilled by `fill_rate` every `interval`.
#[derive(Debug)]
pub struct TokenBucket {
    pub capacity: u64,
    pub fill_rate: u64,
    pub interval: Duration,
    tokens: f64,
    last: std::time::Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: u64, fill_rate: u64, interval: Duration) -> Self {
        Self {
            capacity,
            fill_rate,
            interval,
            tokens: capacity as f64,
            last: std::time::Instant::now(),
        }
    }

    /// Takes a token: `Ok(remaining)` or `Err(wait until one is back)`.
    pub fn take(&mut self) -> Result<u64, Duration> {
        let now = std::time::Instant::now();
        let per_sec = if self.interval.is_zero() {
            0.0
        } else {
            self.fill_rate as f64 / self.interval.as_secs_f64()
        };
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * per_sec)
            .min(self.capacity as f64);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(self.tokens.floor() as u64)
        } else if per_sec == 0.0 {
            Err(Duration::MAX)
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_sec))
        }
    }
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

/// The shared control routes, under `/__sim/`: `GET|DELETE /__sim/requests`,
/// `POST|DELETE /__sim/faults`, `GET /__sim/clock`, `POST /__sim/clock/advance`.
pub fn control_routes(core: SimCore) -> Router {
    Router::new()
        .route(
            "/__sim/requests",
            get(|State(c): State<SimCore>| async move { Json(c.requests()) }).delete(
                |State(c): State<SimCore>| async move {
                    c.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/__sim/faults",
            post(
                |State(c): State<SimCore>, Json(f): Json<Fault>| async move {
                    c.add_fault(f);
                    StatusCode::NO_CONTENT
                },
            )
            .delete(|State(c): State<SimCore>| async move {
                c.clear_faults();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/__sim/clock",
            get(|State(c): State<SimCore>| async move {
                Json(serde_json::json!({ "now": c.clock.now() }))
            }),
        )
        .route(
            "/__sim/clock/advance",
            post(
                |State(c): State<SimCore>, Json(a): Json<Advance>| async move {
                    c.clock.advance(chrono::Duration::seconds(a.seconds));
                    Json(serde_json::json!({ "now": c.clock.now() }))
                },
            ),
        )
        .with_state(core)
}

/// A running simulator.
#[derive(Debug)]
pub struct SimServer {
    /// Where it listens.
    pub addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it and waits until it has.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }

    /// Runs until `cancel` fires (e.g. on Ctrl-C).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// The token that stops it.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Gives a simulator handle (a struct with a `server: SimServer` field) its lifecycle methods:
/// `stop`, `wait` and `cancel_token`.
macro_rules! sim_lifecycle {
    ($handle:ty) => {
        impl $handle {
            /// Stops it and waits until it has.
            pub async fn stop(self) {
                self.server.stop().await;
            }

            /// Runs until stopped (e.g. by Ctrl-C through the cancel token).
            pub async fn wait(self) {
                self.server.wait().await;
            }

            /// The token that stops it.
            pub fn cancel_token(&self) -> tokio_util::sync::CancellationToken {
                self.server.cancel_token()
            }
        }
    };
}
pub(crate) use sim_lifecycle;

/// Serves `app` (product routes) with the control routes and the fault/log middleware on
/// `addr` (port 0 picks a free one).
pub async fn serve(app: Router, core: SimCore, addr: SocketAddr) -> std::io::Result<SimServer> {
    let router = app
        .merge(control_routes(core.clone()))
        .layer(axum::middleware::from_fn_with_state(core, fault_and_log));
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Ok(SimServer { addr, cancel, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mut a = SimRng::new(7);
        let mut b = SimRng::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(SimRng::new(8).next_u64(), xs[0]);
        assert_eq!(a.hex(32).len(), 32);
    }

    #[test]
    fn a_token_bucket_runs_dry_and_says_how_long_to_wait() {
        let mut b = TokenBucket::new(2, 1, Duration::from_secs(1));
        assert_eq!(b.take(), Ok(1));
        assert_eq!(b.take(), Ok(0));
        let wait = b.take().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        let mut blocked = TokenBucket::new(0, 0, Duration::from_secs(1));
        assert_eq!(blocked.take(), Err(Duration::MAX));
    }

    #[test]
    fn faults_fire_the_given_number_of_times_on_matching_paths() {
        let core = SimCore::default();
        core.add_fault(Fault {
            method: Some("GET".into()),
            path_prefix: Some("/rest/api/user".into()),
            kind: FaultKind::Status { status: 503 },
            times: Some(1),
        });
        assert!(core.take_fault("PUT", "/rest/api/user/list").is_empty());
        assert!(core.take_fault("GET", "/rest/api/group").is_empty());
        assert_eq!(
            core.take_fault("GET", "/rest/api/user/list"),
            vec![FaultKind::Status { status: 503 }]
        );
        assert!(core.take_fault("GET", "/rest/api/user/list").is_empty());
    }
}
