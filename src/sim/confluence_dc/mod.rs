//! A simulated Confluence Data Center instance (versions 7.13 to 10.2), with Crowd and the
//! legacy Remote API: options ([`DcSimOptions`]), start-up ([`start`]), the handle tests
//! use ([`DcSim`]), authentication (Basic and PAT) and per-user rate limiting. The data and
//! its rules live in [`model`], the REST surface in [`rest`], XML-RPC/JSON-RPC in [`rpc`],
//! Crowd in [`crowd`] and the `/__sim/` hooks in [`control`].
//!
//! Version discovery: the derived spec lists no version endpoint, so the simulator serves
//! `GET /rest/applinks/1.0/manifest` (XML, or JSON when asked) with `version`,
//! `buildNumber` and `typeId: "confluence"`, which real DC has on every version.
//! Endpoints a version lacks answer 404 with the error envelope (`null for uri: …`), as
//! Jersey does for unknown resources.

/// The value of a helper's `Ok`, or return its boxed early answer (`rest::Reject`).
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

pub mod control;
pub mod crowd;
pub mod model;
pub mod rest;
pub mod rpc;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::sim::common::{LoggedRequest, SimCore, SimServer, TokenBucket, serve};
use model::{PopulationSpec, State, VIEWER};

/// The admin PAT when none is given.
pub const DEFAULT_PAT: &str = "NjQ4MjE2OTc0MDQ1OmRjc2ltLWRlbW8tYWRtaW4tcGF0";

/// A Confluence version such as `9.3` or `8.5.16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DcVersion(pub u32, pub u32, pub u32);

impl DcVersion {
    pub const V8_2: DcVersion = DcVersion(8, 2, 0);
    pub const V8_4: DcVersion = DcVersion(8, 4, 0);
    pub const V9_0: DcVersion = DcVersion(9, 0, 0);
    pub const V9_3: DcVersion = DcVersion(9, 3, 0);
    pub const V9_4: DcVersion = DcVersion(9, 4, 0);
    pub const V10_2: DcVersion = DcVersion(10, 2, 0);

    /// Whether this version has a feature introduced in `since`.
    pub fn has(self, since: DcVersion) -> bool {
        self >= since
    }

    /// A plausible build number for the manifest.
    pub fn build_number(self) -> u64 {
        u64::from(self.0) * 1000 + u64::from(self.1) * 10 + u64::from(self.2.min(9))
    }
}

impl FromStr for DcVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(format!("`{s}` is not a version like 9.3 or 8.5.16"));
        }
        let num = |p: Option<&&str>| -> Result<u32, String> {
            p.map_or(Ok(0), |x| {
                x.parse::<u32>()
                    .map_err(|_| format!("`{s}` is not a version like 9.3 or 8.5.16"))
            })
        };
        Ok(DcVersion(
            num(parts.first())?,
            num(parts.get(1))?,
            num(parts.get(2))?,
        ))
    }
}

impl fmt::Display for DcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// How to run the simulator; embeddable in the CLI with `#[command(flatten)]`.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DcSimOptions {
    /// Confluence version to behave as (7.13, 8.1, 8.2, 8.4, 9.3, 10.2 or any x.y.z).
    #[arg(long = "version", default_value = "9.3")]
    pub product_version: DcVersion,
    /// Users to seed (the three built-in accounts admin, sysadmin and viewer included).
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Seed of the population; the same seed and options give byte-identical answers.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Context path, `""` for none.
    #[arg(long, default_value = "/confluence")]
    pub context_path: String,
    /// Enable the legacy Remote API (XML-RPC and JSON-RPC).
    #[arg(long)]
    pub remote_api: bool,
    /// Add a Crowd directory and serve Crowd REST under `/crowd/rest/usermanagement/1`.
    #[arg(long)]
    pub crowd: bool,
    /// Licence seats; absent: twice `--users`; `-1`: unlimited.
    #[arg(long, allow_negative_numbers = true)]
    pub max_users: Option<i64>,
    /// Rate limit: requests per second per user (token bucket); absent: off.
    #[arg(long)]
    pub rate_limit: Option<u64>,
    /// Bucket size for the rate limit; absent: the rate itself.
    #[arg(long)]
    pub rate_limit_burst: Option<u64>,
    /// `_links.next` relative to `_links.base` (true) or absolute (false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub relative_links: bool,
    /// Largest `limit` honoured by user lists.
    #[arg(long, default_value_t = 1000)]
    pub page_cap: usize,
    /// Largest `limit` honoured by group lists.
    #[arg(long, default_value_t = 200)]
    pub group_page_cap: usize,
    /// Administrator username.
    #[arg(long, default_value = "admin")]
    pub admin_user: String,
    /// Administrator password.
    #[arg(long, default_value = "admin")]
    pub admin_password: String,
    /// Administrator personal access token.
    #[arg(long, default_value = DEFAULT_PAT)]
    pub pat: String,
    /// How long an asynchronous user deletion takes, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    pub delete_task_ms: u64,
    /// The base URL links use; absent: `http://<listen address>` plus the context path.
    #[arg(long)]
    pub base_url: Option<String>,
    /// The instant the population's dates are relative to (RFC 3339); absent: the start of
    /// the current UTC day.
    #[arg(long)]
    pub epoch: Option<DateTime<Utc>>,
    /// Crowd application name (Basic auth for Crowd REST).
    #[arg(long, default_value = "idbridge")]
    pub crowd_app: String,
    /// Crowd application password.
    #[arg(long, default_value = "crowd-secret")]
    pub crowd_app_password: String,
}

impl Default for DcSimOptions {
    fn default() -> Self {
        Self {
            product_version: DcVersion(9, 3, 0),
            users: 1000,
            seed: 42,
            context_path: "/confluence".into(),
            remote_api: false,
            crowd: false,
            max_users: None,
            rate_limit: None,
            rate_limit_burst: None,
            relative_links: true,
            page_cap: 1000,
            group_page_cap: 200,
            admin_user: "admin".into(),
            admin_password: "admin".into(),
            pat: DEFAULT_PAT.into(),
            delete_task_ms: 1500,
            base_url: None,
            epoch: None,
            crowd_app: "idbridge".into(),
            crowd_app_password: "crowd-secret".into(),
        }
    }
}

impl DcSimOptions {
    fn context(&self) -> String {
        let c = self.context_path.trim().trim_end_matches('/');
        if c.is_empty() {
            String::new()
        } else if c.starts_with('/') {
            c.to_owned()
        } else {
            format!("/{c}")
        }
    }

    fn population(&self, seed: u64, users: usize) -> PopulationSpec {
        let epoch = self.epoch.unwrap_or_else(|| {
            let now = SystemClock.now();
            Utc.timestamp_opt(now.timestamp() - now.timestamp().rem_euclid(86_400), 0)
                .single()
                .unwrap_or(now)
        });
        PopulationSpec {
            users,
            seed,
            crowd: self.crowd,
            max_users: self.max_users.unwrap_or((users as i64).saturating_mul(2)),
            epoch_ms: epoch.timestamp_millis(),
            admin_user: self.admin_user.clone(),
            admin_password: self.admin_password.clone(),
            admin_pat: self.pat.clone(),
        }
    }
}

/// Rate-limit settings the control API can change.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateSettings {
    pub enabled: bool,
    pub limit: u64,
    pub fill_rate: u64,
    pub interval_seconds: u64,
    /// Usernames that get 429 with `Retry-After: 9223372036854775807`.
    pub blocked: HashSet<String>,
    /// Usernames never limited.
    pub exempt: HashSet<String>,
}

/// Switches the control API can flip.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub relative_links: bool,
    pub remote_api: bool,
    pub anonymous: bool,
    pub delete_task_ms: u64,
    /// When set, user deletions fail with this reason.
    pub delete_task_failure: Option<String>,
}

/// The shared state behind every handler.
#[derive(Debug)]
pub struct Inner {
    pub opts: DcSimOptions,
    pub version: DcVersion,
    pub core: SimCore,
    /// Root URL (scheme, host, port) without the context path; set once listening.
    pub root_cell: std::sync::OnceLock<String>,
    /// The context path, `""` or `/confluence`.
    pub context: String,
    pub state: RwLock<State>,
    pub settings: Mutex<Settings>,
    pub rate: Mutex<RateSettings>,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    /// XML-RPC session tokens → user key.
    pub sessions: Mutex<HashMap<String, String>>,
    /// Cached orderings keyed by the state generation.
    pub list_cache: Mutex<Option<Generational>>,
    pub active_cache: Mutex<Option<Generational>>,
    /// Direct members of each group, in list order, keyed by the state generation.
    pub members_cache: Mutex<HashMap<String, Generational>>,
}

/// User slots in some order, valid for one state generation.
pub type Generational = (u64, Arc<Vec<usize>>);

/// The handle handlers share.
pub type Sim = Arc<Inner>;

impl Inner {
    /// The base URL including the context path, no trailing slash.
    pub fn base(&self) -> String {
        format!("{}{}", self.root(), self.context)
    }

    /// Scheme, host and port, without the context path.
    pub fn root(&self) -> &str {
        self.root_cell
            .get()
            .map_or("http://localhost", String::as_str)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn now_ms(&self) -> i64 {
        self.core.clock.now().timestamp_millis()
    }

    /// Replaces the population (reset / reseed).
    pub fn reset(&self, seed: u64, users: usize) {
        let st = State::populate(&self.opts.population(seed, users));
        *self.write() = st;
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Forgets every bucket (after the settings changed).
    pub fn clear_buckets(&self) {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller {
    pub slot: usize,
    pub key: String,
    pub username: String,
    pub admin: bool,
    pub licensed: bool,
}

/// Credentials that match no active user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadCredentials;

/// Resolves `Authorization` against the users: `Ok(None)` for no credentials,
/// `Err(BadCredentials)` for bad ones.
pub fn authenticate(sim: &Inner, headers: &HeaderMap) -> Result<Option<Caller>, BadCredentials> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| BadCredentials)?.trim();
    let st = sim.read();
    let slot = if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        st.by_pat(token.trim()).filter(|s| !st.is_shadowed(*s))
    } else if let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let (user, pass) = decode_basic(b64.trim()).ok_or(BadCredentials)?;
        st.by_username(&user)
            .filter(|s| st.get(*s).and_then(|u| u.password.as_deref()) == Some(pass.as_str()))
    } else {
        None
    };
    let slot = slot.ok_or(BadCredentials)?;
    let user = st.get(slot).ok_or(BadCredentials)?;
    if !user.active {
        return Err(BadCredentials);
    }
    let g = st.granting_groups();
    let u = st.granting_users();
    Ok(Some(Caller {
        slot,
        key: user.key.clone(),
        username: user.username.clone(),
        admin: st.is_admin(slot),
        licensed: st.licensed(slot, &g, &u),
    }))
}

/// Decodes `base64(user:password)`.
pub fn decode_basic(b64: &str) -> Option<(String, String)> {
    let bytes = base64_decode(b64)?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Standard-alphabet base64 that accepts input with or without padding (as DC's Basic-auth
/// parsing does), encodes with padding.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes standard base64 (padding optional; at most 4096 characters).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() > 4096 {
        return None;
    }
    base64::Engine::decode(&BASE64, s).ok()
}

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    base64::Engine::encode(&BASE64, data)
}

/// The 401 DC sends for bad credentials: an HTML page and Seraph's reason header.
pub fn unauthorized_bad_credentials() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::CONTENT_TYPE, "text/html;charset=UTF-8"),
            (
                header::HeaderName::from_static("x-seraph-loginreason"),
                "AUTHENTICATED_FAILED",
            ),
            (header::WWW_AUTHENTICATE, "Basic realm=\"Confluence\""),
        ],
        "<!DOCTYPE html><html><head><title>Unauthorized (401)</title></head>\
         <body><h1>Unauthorized (401)</h1><p>Basic authentication failed.</p></body></html>",
    )
        .into_response()
}

/// The 401 DC sends when credentials are missing: an empty body.
pub fn unauthorized_anonymous() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"Confluence\"")],
    )
        .into_response()
}

/// Middleware on the product routes: authenticates, rate-limits `/rest/` calls per user and
/// stamps the `X-RateLimit-*` headers.
async fn auth_layer(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let caller = match authenticate(&sim, req.headers()) {
        Ok(c) => c,
        Err(BadCredentials) => {
            tracing::debug!(path = %req.uri().path(), "dcsim: bad credentials");
            return unauthorized_bad_credentials();
        }
    };
    let rest = req
        .uri()
        .path()
        .strip_prefix(sim.context.as_str())
        .is_some_and(|p| p.starts_with("/rest/"));
    let mut headers: Option<[(&'static str, String); 5]> = None;
    if let (Some(c), true) = (&caller, rest) {
        let rs = sim.rate.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if rs.blocked.contains(&c.username) {
            tracing::debug!(user = %c.username, "dcsim: blocked user");
            return rate_headers(
                StatusCode::TOO_MANY_REQUESTS.into_response(),
                &[
                    ("X-RateLimit-Limit", "0".into()),
                    ("X-RateLimit-Remaining", "0".into()),
                    ("X-RateLimit-Interval-Seconds", "1".into()),
                    ("X-RateLimit-FillRate", "0".into()),
                    ("Retry-After", i64::MAX.to_string()),
                ],
            );
        }
        if rs.enabled && !rs.exempt.contains(&c.username) {
            let taken = {
                let mut buckets = sim.buckets.lock().unwrap_or_else(|p| p.into_inner());
                buckets
                    .entry(c.key.clone())
                    .or_insert_with(|| {
                        TokenBucket::new(
                            rs.limit,
                            rs.fill_rate,
                            Duration::from_secs(rs.interval_seconds.max(1)),
                        )
                    })
                    .take()
            };
            let base = |remaining: u64, retry: String| {
                [
                    ("X-RateLimit-Limit", rs.limit.to_string()),
                    ("X-RateLimit-Remaining", remaining.to_string()),
                    (
                        "X-RateLimit-Interval-Seconds",
                        rs.interval_seconds.to_string(),
                    ),
                    ("X-RateLimit-FillRate", rs.fill_rate.to_string()),
                    ("Retry-After", retry),
                ]
            };
            match taken {
                Ok(remaining) => headers = Some(base(remaining, "0".into())),
                Err(wait) => {
                    let secs = if wait == Duration::MAX {
                        i64::MAX.to_string()
                    } else {
                        wait.as_secs_f64().ceil().max(1.0).to_string()
                    };
                    tracing::debug!(user = %c.username, retry_after = %secs, "dcsim: rate limited");
                    return rate_headers(
                        StatusCode::TOO_MANY_REQUESTS.into_response(),
                        &base(0, secs),
                    );
                }
            }
        }
    }
    req.extensions_mut().insert(caller);
    let resp = next.run(req).await;
    match headers {
        Some(h) => rate_headers(resp, &h),
        None => resp,
    }
}

fn rate_headers(mut resp: Response, headers: &[(&'static str, String)]) -> Response {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut()
                .insert(header::HeaderName::from_static(lower(name)), v);
        }
    }
    resp
}

fn lower(name: &'static str) -> &'static str {
    match name {
        "X-RateLimit-Limit" => "x-ratelimit-limit",
        "X-RateLimit-Remaining" => "x-ratelimit-remaining",
        "X-RateLimit-Interval-Seconds" => "x-ratelimit-interval-seconds",
        "X-RateLimit-FillRate" => "x-ratelimit-fillrate",
        _ => "retry-after",
    }
}

/// A read-only view of one user, for tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimUserView {
    pub user_key: String,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub directory: String,
    pub active: bool,
    pub licensed: bool,
    pub shadowed: bool,
    pub groups: Vec<String>,
    pub last_authenticated: Option<i64>,
    pub login_info: model::LoginInfo,
}

/// Builds the view of `slot`.
pub fn view(st: &State, slot: usize) -> Option<SimUserView> {
    let u = st.get(slot)?;
    let g = st.granting_groups();
    let k = st.granting_users();
    Some(SimUserView {
        user_key: u.key.clone(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        email: u.email.clone(),
        directory: st
            .dirs
            .get(u.dir)
            .map(|d| d.name.clone())
            .unwrap_or_default(),
        active: u.active,
        licensed: st.licensed(slot, &g, &k),
        shadowed: st.is_shadowed(slot),
        groups: u.groups.clone(),
        last_authenticated: u.last_auth_ms,
        login_info: u.login.clone(),
    })
}

/// A running simulator.
#[derive(Debug)]
pub struct DcSim {
    sim: Sim,
    server: SimServer,
}

/// Starts a simulator on `addr` (port 0 picks a free one).
pub async fn start(opts: DcSimOptions, addr: SocketAddr) -> std::io::Result<DcSim> {
    let context = opts.context();
    let started = std::time::Instant::now();
    let state = State::populate(&opts.population(opts.seed, opts.users));
    let rate = RateSettings {
        enabled: opts.rate_limit.is_some(),
        limit: opts
            .rate_limit_burst
            .or(opts.rate_limit)
            .unwrap_or_default(),
        fill_rate: opts.rate_limit.unwrap_or_default(),
        interval_seconds: 1,
        blocked: HashSet::new(),
        exempt: HashSet::new(),
    };
    let settings = Settings {
        relative_links: opts.relative_links,
        remote_api: opts.remote_api,
        anonymous: false,
        delete_task_ms: opts.delete_task_ms,
        delete_task_failure: None,
    };
    let sim: Sim = Arc::new(Inner {
        version: opts.product_version,
        opts,
        core: SimCore::default(),
        root_cell: std::sync::OnceLock::new(),
        context,
        state: RwLock::new(state),
        settings: Mutex::new(settings),
        rate: Mutex::new(rate),
        buckets: Mutex::new(HashMap::new()),
        sessions: Mutex::new(HashMap::new()),
        list_cache: Mutex::new(None),
        active_cache: Mutex::new(None),
        members_cache: Mutex::new(HashMap::new()),
    });
    let app = router(sim.clone());
    let server = serve(app, sim.core.clone(), addr).await?;
    let root = match &sim.opts.base_url {
        Some(b) => {
            let b = b.trim_end_matches('/');
            b.strip_suffix(sim.context.as_str()).unwrap_or(b).to_owned()
        }
        None => {
            let local = server.addr;
            let host = if local.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                local.ip()
            };
            format!("http://{}", SocketAddr::new(host, local.port()))
        }
    };
    let _ = sim.root_cell.set(root);
    tracing::info!(
        version = %sim.version,
        users = sim.opts.users,
        url = %sim.base(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Confluence DC simulator listening"
    );
    Ok(DcSim { sim, server })
}

fn router(sim: Sim) -> Router {
    let product = rest::routes().merge(rpc::routes());
    let product = if sim.context.is_empty() {
        product
    } else {
        Router::new().nest(&sim.context, product)
    };
    let product = product
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            auth_layer,
        ))
        .with_state(sim.clone());
    let mut app = product.merge(control::routes(sim.clone()));
    if sim.opts.crowd {
        app = app.merge(crowd::routes(sim.clone()));
    }
    let fallback_sim = sim.clone();
    app.fallback(move |req: Request| {
        let sim = fallback_sim.clone();
        async move { rest::not_found_uri(&sim, req.uri()) }
    })
}

impl DcSim {
    /// Root URL plus context path, no trailing slash.
    pub fn base_url(&self) -> String {
        self.sim.base()
    }

    /// Root URL without the context path (where `/__sim/` and `/crowd/` live).
    pub fn root_url(&self) -> String {
        self.sim.root().to_owned()
    }

    /// Crowd REST base: `<root>/crowd/rest/usermanagement/1`.
    pub fn crowd_url(&self) -> String {
        format!("{}/crowd/rest/usermanagement/1", self.sim.root())
    }

    /// Crowd application name and password.
    pub fn crowd_app(&self) -> (String, String) {
        (
            self.sim.opts.crowd_app.clone(),
            self.sim.opts.crowd_app_password.clone(),
        )
    }

    /// The admin's personal access token.
    pub fn pat(&self) -> &str {
        &self.sim.opts.pat
    }

    /// The admin's username.
    pub fn admin_user(&self) -> &str {
        &self.sim.opts.admin_user
    }

    /// The admin's password.
    pub fn admin_password(&self) -> &str {
        &self.sim.opts.admin_password
    }

    /// The built-in non-admin account: (username, password, PAT).
    pub fn viewer(&self) -> (&'static str, &'static str, &'static str) {
        VIEWER
    }

    /// The version it behaves as.
    pub fn version(&self) -> DcVersion {
        self.sim.version
    }

    /// The request log, faults and clock.
    pub fn core(&self) -> &SimCore {
        &self.sim.core
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The effective user called `username`.
    pub fn user(&self, username: &str) -> Option<SimUserView> {
        let st = self.sim.read();
        st.by_username(username).and_then(|s| view(&st, s))
    }

    /// The user with `key`.
    pub fn user_by_key(&self, key: &str) -> Option<SimUserView> {
        let st = self.sim.read();
        st.by_key(key).and_then(|s| view(&st, s))
    }

    /// Sets a user's active flag directly (ignores directory modes); false if unknown.
    pub fn set_active(&self, username: &str, active: bool) -> bool {
        let mut st = self.sim.write();
        match st.by_username(username) {
            Some(slot) => st.with_user(slot, |u| u.active = active).is_some(),
            None => false,
        }
    }

    /// Records a login at `at`; `Some(true)` success, `Some(false)` a failed attempt
    /// (deactivated or no "can use"), `None` unknown user.
    pub fn login(&self, username: &str, at: DateTime<Utc>) -> Option<bool> {
        let mut st = self.sim.write();
        let slot = st.by_username(username)?;
        Some(st.login(slot, at.timestamp_millis()))
    }

    /// Adds a local group; fails when it exists.
    pub fn add_group(&self, name: &str) -> Result<(), String> {
        self.sim.write().create_group(name).map_err(|f| f.message())
    }

    /// Whether a group of this name (case-insensitive) exists.
    pub fn has_group(&self, name: &str) -> bool {
        self.sim
            .read()
            .groups
            .contains_key(&name.trim().to_lowercase())
    }

    /// Adds a user in the first writable directory, created `created` and last seen logging
    /// in at `last_login` (if ever), in `groups`; returns its key, or why it cannot.
    pub fn add_user(
        &self,
        username: &str,
        email: &str,
        groups: &[&str],
        created: DateTime<Utc>,
        last_login: Option<DateTime<Utc>>,
    ) -> Result<String, String> {
        let mut st = self.sim.write();
        let slot = st
            .create_user(model::NewUser {
                username: username.to_owned(),
                display_name: username.to_owned(),
                email: email.to_owned(),
                password: None,
                active: true,
                groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
                dir: None,
                created_ms: created.timestamp_millis(),
                check_seats: false,
            })
            .map_err(|f| f.message())?;
        if let Some(at) = last_login {
            st.login(slot, at.timestamp_millis());
        }
        Ok(st.get(slot).map(|u| u.key.clone()).unwrap_or_default())
    }

    /// Users counting toward the licence.
    pub fn licensed_count(&self) -> usize {
        self.sim.read().licensed_count()
    }

    /// Logged requests that changed state.
    pub fn mutations(&self) -> Vec<LoggedRequest> {
        self.sim.core.mutations()
    }

    /// The `/__sim/state` summary.
    pub fn summary(&self) -> serde_json::Value {
        control::summary(&self.sim)
    }
}

crate::sim::common::sim_lifecycle!(DcSim);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        o: DcSimOptions,
    }

    #[test]
    fn defaults_match_the_command_line_defaults() {
        let parsed = Wrap::try_parse_from(["dcsim"]).map(|w| w.o);
        assert_eq!(parsed.ok(), Some(DcSimOptions::default()));
        let parsed = Wrap::try_parse_from([
            "dcsim",
            "--version",
            "8.5.16",
            "--max-users",
            "-1",
            "--relative-links",
            "false",
            "--context-path",
            "",
        ])
        .map(|w| w.o);
        let o = parsed.ok();
        assert_eq!(
            o.as_ref().map(|o| o.product_version),
            Some(DcVersion(8, 5, 16))
        );
        assert_eq!(o.as_ref().and_then(|o| o.max_users), Some(-1));
        assert_eq!(o.as_ref().map(|o| o.relative_links), Some(false));
        assert_eq!(o.map(|o| o.context()), Some(String::new()));
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!("9.3".parse::<DcVersion>(), Ok(DcVersion(9, 3, 0)));
        assert!(
            "10.2"
                .parse::<DcVersion>()
                .is_ok_and(|v| v.has(DcVersion::V9_3))
        );
        assert!(
            "8.2"
                .parse::<DcVersion>()
                .is_ok_and(|v| !v.has(DcVersion::V8_4))
        );
        assert!("9".parse::<DcVersion>().is_err());
        assert!("x.y".parse::<DcVersion>().is_err());
    }

    #[test]
    fn base64_round_trips() {
        let enc = base64_encode(b"admin:s3cr:et");
        assert_eq!(decode_basic(&enc), Some(("admin".into(), "s3cr:et".into())));
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert!(base64_decode("!!").is_none());
    }
}
