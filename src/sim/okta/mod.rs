//! A simulated Okta org: the management API endpoints idbridge reads, answered as Okta's
//! OpenAPI file and developer docs describe them.
//!
//! * `POST /oauth2/v1/token`: `client_credentials` with `private_key_jwt` only (RS256
//!   signature checked against the service app's public key, `aud` = the token URL,
//!   `iss` = `sub` = client id, `exp` at most an hour ahead, `jti` never reused); Basic auth
//!   beside an assertion is refused; scopes must be granted to the app; tokens live 3600 s.
//! * `Authorization: SSWS <token>` API tokens (401 `E0000011` otherwise); bearer tokens
//!   without the endpoint's scope get 403 with `www-authenticate: … error="insufficient_scope"`
//!   and an empty body.
//! * Users (`filter` grammar, default exclusion of DEPROVISIONED, `limit` capped at 200,
//!   `after`, separate `self`/`next` link headers with absolute URLs), a user by id or login
//!   (404 `E0000007`), groups and group members, the System Log (polling requests with an
//!   endless `next`, bounded requests, `since`/`after` exclusion, the 180-day limit).
//! * `X-Rate-Limit-*` on every response from per-bucket windows; 429 `E0000047` without
//!   `Retry-After`.
//!
//! [`control`] adds `/__sim/` routes to change the org mid-run.

mod control;
mod handlers;
pub mod model;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use chrono::{DateTime, Duration, Timelike, Utc};
use serde::Serialize;

use super::common::{SimCore, SimServer, serve};
pub use model::{SimEvent, SimGroup, SimUser, World};

/// The SSWS API token the simulator accepts unless told otherwise.
pub const DEMO_SSWS_TOKEN: &str = "00idbridge-demo-ssws-token";
/// The service app's client id unless told otherwise.
pub const DEMO_CLIENT_ID: &str = "0oaidbridgeserviceapp";
/// The `kid` of the test key.
pub const DEMO_KEY_ID: &str = "idbridge-test-key";
/// The Confluence app instance id unless told otherwise.
pub const DEMO_APP_ID: &str = "0oaconfluence0000app";
/// Where the test service app's private key lives in the repository (test-only key).
pub const TEST_PRIVATE_KEY_PATH: &str = "tests/fixtures/okta/service-app-key.pem";
/// The public half the simulator trusts by default (test-only key).
pub const TEST_PUBLIC_KEY: &str =
    include_str!("../../../tests/fixtures/okta/service-app-public.pem");

/// Scopes granted to the simulated service app unless told otherwise.
pub const DEFAULT_SCOPES: &[&str] = &[
    "okta.users.read",
    "okta.groups.read",
    "okta.logs.read",
    "okta.apps.read",
];

/// How to run a simulated Okta org.
#[derive(clap::Args, Clone, Debug)]
pub struct OktaSimOptions {
    /// Users in the seeded population.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Seed of the population (same seed, same users).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The Confluence app instance id sign-in events target.
    #[arg(long, default_value = DEMO_APP_ID)]
    pub app_id: String,
    /// The SSWS API token accepted as `Authorization: SSWS <token>`.
    #[arg(long, default_value = DEMO_SSWS_TOKEN)]
    pub ssws_token: String,
    /// The OAuth service app's client id.
    #[arg(long, default_value = DEMO_CLIENT_ID)]
    pub client_id: String,
    /// PEM public key of the service app (default: the repository's test key).
    #[arg(long)]
    pub public_key: Option<std::path::PathBuf>,
    /// Scopes granted to the service app (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SCOPES.iter().map(|s| s.to_string()))]
    pub scopes: Vec<String>,
    /// Requests per window in every rate-limit bucket (default: Okta's Workforce table:
    /// users 600, users/{id} 2000, groups 500, groups/{id} 1000, logs 120, other 1200).
    #[arg(long)]
    pub rate_limit: Option<u64>,
    /// Length of a rate-limit window in seconds (real time).
    #[arg(long, default_value_t = 60)]
    pub rate_window_secs: u64,
    /// Delay added to every API answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

impl Default for OktaSimOptions {
    fn default() -> Self {
        Self {
            users: 1000,
            seed: 42,
            app_id: DEMO_APP_ID.into(),
            ssws_token: DEMO_SSWS_TOKEN.into(),
            client_id: DEMO_CLIENT_ID.into(),
            public_key: None,
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            rate_limit: None,
            rate_window_secs: 60,
            latency_ms: 0,
        }
    }
}

/// One rate-limit bucket's current window.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    /// Real-time epoch milliseconds when the window started.
    start_ms: i64,
    used: u64,
}

/// One request's effect on a bucket, for tests that check idbridge kept to its share.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateUse {
    pub bucket: String,
    pub window_start_ms: i64,
    pub limit: u64,
    pub remaining: u64,
    pub limited: bool,
}

#[derive(Debug)]
pub(crate) struct RateState {
    pub limit: Option<u64>,
    pub window_secs: u64,
    pub windows: HashMap<&'static str, Window>,
    pub log: Vec<RateUse>,
}

/// An access token handed out.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub scopes: Vec<String>,
    pub expires: DateTime<Utc>,
}

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub core: SimCore,
    pub world: RwLock<World>,
    pub ssws: Mutex<Vec<String>>,
    pub client_id: String,
    pub public_key_pem: String,
    pub granted: Mutex<Vec<String>>,
    pub tokens: Mutex<HashMap<String, Issued>>,
    pub jtis: Mutex<HashSet<String>>,
    pub rate: Mutex<RateState>,
    pub latency_ms: u64,
    pub counter: AtomicU64,
    pub glitch: Mutex<Option<Glitch>>,
}

/// A deliberate paging bug, for testing how idbridge copes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Glitch {
    /// User pages after the first hand back the `after` cursor they were given.
    RepeatCursor,
    /// Each user page's next link starts at its second-to-last user, so one user is listed
    /// on two pages.
    Overlap,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulated Okta org.
#[derive(Debug)]
pub struct OktaSim {
    server: SimServer,
    shared: Arc<Shared>,
    app_id: String,
}

/// Starts the simulator on `addr` (port 0 picks a free port).
pub async fn start(opts: OktaSimOptions, addr: SocketAddr) -> std::io::Result<OktaSim> {
    let core = SimCore::default();
    let now = core.clock.now();
    // Anchored at the start of the hour so two runs with one seed agree.
    let anchor = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let public_key_pem = match &opts.public_key {
        Some(p) => std::fs::read_to_string(p)?,
        None => TEST_PUBLIC_KEY.to_owned(),
    };
    let world = World::seeded(opts.seed, opts.users, &opts.app_id, anchor);
    let shared = Arc::new(Shared {
        core: core.clone(),
        world: RwLock::new(world),
        ssws: Mutex::new(vec![opts.ssws_token.clone()]),
        client_id: opts.client_id.clone(),
        public_key_pem,
        granted: Mutex::new(opts.scopes.clone()),
        tokens: Mutex::new(HashMap::new()),
        jtis: Mutex::new(HashSet::new()),
        rate: Mutex::new(RateState {
            limit: opts.rate_limit,
            window_secs: opts.rate_window_secs.max(1),
            windows: HashMap::new(),
            log: Vec::new(),
        }),
        latency_ms: opts.latency_ms,
        counter: AtomicU64::new(1),
        glitch: Mutex::new(None),
    });
    let app: Router = handlers::routes(shared.clone()).merge(control::routes(shared.clone()));
    let server = serve(app, core, addr).await?;
    tracing::info!(
        sim = "okta",
        addr = %server.addr,
        users = opts.users,
        seed = opts.seed,
        "simulated Okta org listening"
    );
    Ok(OktaSim {
        server,
        shared,
        app_id: opts.app_id,
    })
}

impl OktaSim {
    /// `http://<addr>`: stands in for `https://acme.okta.com`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v1/token", self.server.url())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The first SSWS token it accepts.
    pub fn ssws_token(&self) -> String {
        lock(&self.shared.ssws).first().cloned().unwrap_or_default()
    }

    /// The service app's client id.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The Confluence app instance id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The shared simulator core: request log, faults, clock.
    pub fn core(&self) -> &SimCore {
        &self.shared.core
    }

    /// Every present user, in id order.
    pub fn users(&self) -> Vec<SimUser> {
        self.shared.read().users.values().cloned().collect()
    }

    /// One user by id or login.
    pub fn user(&self, id_or_login: &str) -> Option<SimUser> {
        self.shared.read().user(id_or_login).cloned()
    }

    /// Every group, in id order.
    pub fn groups(&self) -> Vec<SimGroup> {
        self.shared.read().groups.values().cloned().collect()
    }

    /// Changes a user in place and stamps `lastUpdated` with the simulator's now; false when
    /// there is no such user.
    pub fn update_user(&self, id: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        let now = self.shared.core.clock.now();
        let mut w = self.shared.write();
        match w.users.get_mut(id) {
            Some(u) => {
                let before = u.status.clone();
                change(u);
                if u.status != before {
                    u.status_changed = Some(now);
                }
                u.last_updated = now;
                true
            }
            None => false,
        }
    }

    /// Adds an ACTIVE user with `login`; returns their id.
    pub fn add_user(&self, login: &str, first: &str, last: &str) -> String {
        let now = self.shared.core.clock.now();
        let mut w = self.shared.write();
        let id = w.new_user_id();
        w.add_user(control::new_user(id.clone(), login, first, last, now));
        id
    }

    /// Deletes a user (404 from now on, a `user.lifecycle.delete.initiated` event in the
    /// System Log); false when there is no such user.
    pub fn delete_user(&self, id: &str) -> bool {
        let now = self.shared.core.clock.now();
        self.shared.write().delete_user(id, now)
    }

    /// Appends an SSO event for the Confluence app (`result` `SUCCESS` or `FAILURE`),
    /// published at `published` (default: now) and persisted now; returns its uuid.
    pub fn add_sso_event(
        &self,
        user_id: &str,
        result: &str,
        published: Option<DateTime<Utc>>,
    ) -> Option<String> {
        let now = self.shared.core.clock.now();
        let mut w = self.shared.write();
        let app = w.app_id.clone();
        let e = control::sso_event(&w, user_id, &app, result, published.unwrap_or(now), now)?;
        Some(w.append_event(e).uuid)
    }

    /// Sets the requests per window of every bucket (`None`: Okta's defaults) and the window.
    pub fn set_rate_limit(&self, limit: Option<u64>, window_secs: u64) {
        let mut r = lock(&self.shared.rate);
        r.limit = limit;
        r.window_secs = window_secs.max(1);
        r.windows.clear();
    }

    /// Every request's effect on its rate-limit bucket so far.
    pub fn rate_usage(&self) -> Vec<RateUse> {
        lock(&self.shared.rate).log.clone()
    }

    /// Sets the scopes granted to the service app.
    pub fn set_granted_scopes(&self, scopes: &[&str]) {
        *lock(&self.shared.granted) = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// Revokes every access token handed out and every SSWS token (401 `E0000011` after).
    pub fn revoke_tokens(&self) {
        lock(&self.shared.tokens).clear();
        lock(&self.shared.ssws).clear();
    }

    /// Expires every access token handed out (as an hour passing would).
    pub fn expire_access_tokens(&self) {
        for t in lock(&self.shared.tokens).values_mut() {
            t.expires = self.shared.core.clock.now() - Duration::seconds(1);
        }
    }

    /// Turns a paging bug on (`Some`) or off.
    pub fn set_glitch(&self, glitch: Option<Glitch>) {
        *lock(&self.shared.glitch) = glitch;
    }

    /// Access tokens handed out so far (live or not).
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared.tokens).len()
    }
}

crate::sim::common::sim_lifecycle!(OktaSim);
