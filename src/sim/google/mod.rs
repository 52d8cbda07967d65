//! A simulated Google Workspace account: the Admin SDK Directory API (users, groups, members),
//! the Reports API (SAML sign-in activity) and the OAuth token endpoint with the JWT-bearer
//! grant and domain-wide delegation, answered as Google's discovery documents describe them.
//!
//! * `POST /token`: verifies the RS256 assertion against the service account's public key
//!   (`kid`, `iss`, `aud`, a lifetime of at most an hour), delegates to `sub` (unknown user →
//!   `invalid_grant`, not an admin → a token whose API calls answer 403), and grants only the
//!   scopes authorised for domain-wide delegation (else `unauthorized_client`).
//! * `GET /admin/directory/v1/users` (`customer`/`domain`, `maxResults` 1..500, `pageToken`,
//!   `showDeleted`, `query` subset, `projection`/`customFieldMask`); page tokens of a listing
//!   that has run for over 60 virtual minutes answer 503 `backendError`. `users/{userKey}`.
//! * `GET /admin/directory/v1/groups` and `groups/{groupKey}/members` (`maxResults` ≤ 200).
//! * `GET /admin/reports/v1/activity/users/{userKey|all}/applications/{app}`: SAML
//!   `login_success`/`login_failure` events, newest first, `startTime`/`endTime`/`eventName`/
//!   `filters`/`maxResults` ≤ 1000/`pageToken`, the 180-day limit (400), an ingest lag knob.
//! * Quota errors in Google's v1 error JSON without rate headers: queued, every Nth request,
//!   or a per-minute bucket.
//!
//! [`control`] adds `/__sim/` routes to change the account mid-run.

mod control;
mod handlers;
pub mod model;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Timelike, Utc};
use jsonwebtoken::DecodingKey;
use serde_json::json;

use super::common::{SimCore, SimRng, SimServer, TokenBucket, serve};
pub use model::{MemberRef, SamlEvent, SimGroup, SimMember, SimUser, World};

/// The test-only service account key the simulator trusts unless told otherwise.
pub const DEMO_PRIVATE_KEY: &str =
    include_str!("../../../tests/fixtures/google/demo-service-account.pem");
/// Its public half.
pub const DEMO_PUBLIC_KEY: &str =
    include_str!("../../../tests/fixtures/google/demo-service-account.pub.pem");
/// The demo service account's email.
pub const DEMO_CLIENT_EMAIL: &str = "idbridge-reader@idbridge-sim.iam.gserviceaccount.com";
/// The demo key's id.
pub const DEMO_KEY_ID: &str = "5f3c0d6d2b1e4a8c9d7f6e5d4c3b2a1908f7e6d5";
/// Google's real token endpoint, accepted as `aud` beside the simulator's own.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The read-only scopes idbridge asks for.
pub const READONLY_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.reports.audit.readonly",
];

/// How to run a simulated Google Workspace account.
#[derive(clap::Args, Clone, Debug)]
pub struct GoogleSimOptions {
    /// Users in the seeded population.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Seed of the population (same seed, same account).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The primary domain.
    #[arg(long, default_value = "example.com")]
    pub domain: String,
    /// PEM public key of the service account (default: the built-in test-only demo key).
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// The service account's `client_email` (`iss` of its assertions).
    #[arg(long, default_value = DEMO_CLIENT_EMAIL)]
    pub client_email: String,
    /// The key's id (`kid` of its assertions).
    #[arg(long, default_value = DEMO_KEY_ID)]
    pub key_id: String,
    /// Scopes authorised for domain-wide delegation (default: the three read-only ones).
    #[arg(long = "dwd-scope")]
    pub dwd_scopes: Vec<String>,
    /// Minutes a listing's page tokens work (Google: about 60).
    #[arg(long, default_value_t = 60)]
    pub page_token_minutes: i64,
    /// Seconds before a sign-in shows in the Reports API.
    #[arg(long, default_value_t = 0)]
    pub report_lag_secs: i64,
    /// Queries per minute before 403 `userRateLimitExceeded` (absent: no limit).
    #[arg(long)]
    pub queries_per_minute: Option<u64>,
    /// Delay every API answer by this many milliseconds (for benchmarks).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Write the service account key JSON (with the demo private key) to this file.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

impl Default for GoogleSimOptions {
    fn default() -> Self {
        Self {
            users: 1000,
            seed: 42,
            domain: "example.com".into(),
            public_key: None,
            client_email: DEMO_CLIENT_EMAIL.into(),
            key_id: DEMO_KEY_ID.into(),
            dwd_scopes: Vec::new(),
            page_token_minutes: 60,
            report_lag_secs: 0,
            queries_per_minute: None,
            latency_ms: 0,
            key_file: None,
        }
    }
}

/// An access token the simulator handed out.
#[derive(Clone, Debug)]
pub(crate) struct IssuedToken {
    /// The delegated admin (`sub`); `None` when the service account acts as itself.
    pub sub: Option<String>,
    pub scopes: Vec<String>,
    /// Real time (the connector's clock), not the virtual one.
    pub expires: DateTime<Utc>,
}

/// Quota errors to answer.
#[derive(Debug, Default)]
pub(crate) struct Quota {
    /// Reasons to answer the next requests with, one each.
    pub next: VecDeque<String>,
    /// Every Nth API request answers this reason.
    pub every: Option<(u64, String)>,
    pub counter: u64,
    pub bucket: Option<TokenBucket>,
}

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub core: SimCore,
    pub world: RwLock<World>,
    pub client_email: String,
    pub key_id: String,
    pub public_key: DecodingKey,
    pub dwd_scopes: RwLock<Vec<String>>,
    pub tokens: Mutex<(SimRng, HashMap<String, IssuedToken>)>,
    pub quota: Mutex<Quota>,
    pub page_token_ttl: chrono::Duration,
    pub report_lag: RwLock<chrono::Duration>,
    pub latency: Duration,
    pub addr: OnceLock<SocketAddr>,
}

impl Shared {
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn quota(&self) -> std::sync::MutexGuard<'_, Quota> {
        self.quota.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every access token handed out.
    pub fn revoke_tokens(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clear();
    }

    /// The simulator's own token endpoint URL.
    pub fn token_url(&self) -> String {
        match self.addr.get() {
            Some(a) => format!("http://{a}/token"),
            None => String::new(),
        }
    }
}

/// A running simulated Google Workspace account.
#[derive(Debug)]
pub struct GoogleSim {
    server: SimServer,
    shared: Arc<Shared>,
}

/// Starts the simulator on `addr` (port 0 picks a free port).
pub async fn start(opts: GoogleSimOptions, addr: SocketAddr) -> std::io::Result<GoogleSim> {
    let pem = match &opts.public_key {
        Some(path) => std::fs::read(path)?,
        None => DEMO_PUBLIC_KEY.as_bytes().to_vec(),
    };
    let public_key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the service account public key cannot be read: {e}"),
        )
    })?;
    let core = SimCore::default();
    let now = core.clock.now();
    // Anchored at midnight so that two runs with one seed on one day agree to the second.
    let anchor = now
        .with_hour(0)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let world = World::seeded(opts.seed, opts.users, &opts.domain, anchor);
    let dwd = if opts.dwd_scopes.is_empty() {
        READONLY_SCOPES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        opts.dwd_scopes.clone()
    };
    let shared = Arc::new(Shared {
        core: core.clone(),
        world: RwLock::new(world),
        client_email: opts.client_email.clone(),
        key_id: opts.key_id.clone(),
        public_key,
        dwd_scopes: RwLock::new(dwd),
        tokens: Mutex::new((SimRng::new(opts.seed ^ 0x70_4E), HashMap::new())),
        quota: Mutex::new(Quota {
            bucket: opts
                .queries_per_minute
                .filter(|n| *n > 0)
                .map(|n| TokenBucket::new(n, n, Duration::from_secs(60))),
            ..Quota::default()
        }),
        page_token_ttl: chrono::Duration::minutes(opts.page_token_minutes.max(1)),
        report_lag: RwLock::new(chrono::Duration::seconds(opts.report_lag_secs.max(0))),
        latency: Duration::from_millis(opts.latency_ms),
        addr: OnceLock::new(),
    });
    let app: Router = handlers::routes(shared.clone()).merge(control::routes(shared.clone()));
    let server = serve(app, core, addr).await?;
    let _ = shared.addr.set(server.addr);
    let sim = GoogleSim { server, shared };
    if let Some(path) = &opts.key_file {
        std::fs::write(path, sim.service_account_key_json())?;
    }
    tracing::info!(
        sim = "google",
        addr = %sim.server.addr,
        users = opts.users,
        seed = opts.seed,
        "simulated Google Workspace account listening"
    );
    Ok(sim)
}

impl GoogleSim {
    /// `http://<addr>`: stands in for `https://admin.googleapis.com`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// The token endpoint (stands in for `https://oauth2.googleapis.com/token`).
    pub fn token_url(&self) -> String {
        self.shared.token_url()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// A service account key JSON for the demo key, with `token_uri` pointing here. Only
    /// valid when the simulator runs with the demo public key.
    pub fn service_account_key_json(&self) -> String {
        let key = json!({
            "type": "service_account",
            "project_id": "idbridge-sim",
            "private_key_id": self.shared.key_id,
            "private_key": DEMO_PRIVATE_KEY,
            "client_email": self.shared.client_email,
            "client_id": "104729384756102938475",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_url(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        });
        serde_json::to_string_pretty(&key).unwrap_or_default()
    }

    /// The super admin seeded first (`admin@<domain>`), a valid `sub`.
    pub fn admin_subject(&self) -> String {
        self.shared.read().users[0].primary_email.clone()
    }

    /// The shared simulator core: request log, faults, clock.
    pub fn core(&self) -> &SimCore {
        &self.shared.core
    }

    /// A snapshot of the account.
    pub fn world(&self) -> World {
        self.shared.read().clone()
    }

    /// Users that are not deleted, in id order.
    pub fn live_users(&self) -> Vec<SimUser> {
        let w = self.shared.read();
        w.live.iter().map(|&i| w.users[i].clone()).collect()
    }

    /// Deleted users, in id order.
    pub fn deleted_users(&self) -> Vec<SimUser> {
        let w = self.shared.read();
        w.deleted.iter().map(|&i| w.users[i].clone()).collect()
    }

    /// Changes a user (by id or email) in place; false when there is no such user. Use
    /// [`GoogleSim::set_deleted`] to delete.
    pub fn update_user(&self, key: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        let mut w = self.shared.write();
        match w.user(key) {
            Some(i) => {
                change(&mut w.users[i]);
                true
            }
            None => false,
        }
    }

    /// Deletes (`true`) or undeletes a user; false when there is no such user.
    pub fn set_deleted(&self, key: &str, deleted: bool) -> bool {
        let now = self.shared.core.clock.now();
        let mut w = self.shared.write();
        match w.user(key) {
            Some(i) => {
                w.set_deleted(i, deleted.then_some(now));
                true
            }
            None => false,
        }
    }

    /// Deletes a group (by id or email); false when there is no such group.
    pub fn delete_group(&self, key: &str) -> bool {
        let mut w = self.shared.write();
        match w.group(key) {
            Some(g) => {
                w.groups[g].deleted = true;
                true
            }
            None => false,
        }
    }

    /// Adds a user and returns its id.
    pub fn add_user(&self, user: SimUser) -> String {
        let mut w = self.shared.write();
        let i = w.insert(user);
        w.users[i].id.clone()
    }

    /// Records a SAML event for the user `key` and returns its `(time, uniqueQualifier)`.
    pub fn add_saml_event(
        &self,
        key: &str,
        name: &str,
        app_name: &str,
        at: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, i64)> {
        let mut w = self.shared.write();
        let user = w.user(key)?;
        let q = w.new_qualifier();
        let time = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
        w.add_event(SamlEvent {
            time,
            unique_qualifier: q,
            user,
            name: name.to_owned(),
            app_name: app_name.to_owned(),
            initiated_by: "sp",
            failure_type: (name == "login_failure")
                .then(|| "failure_app_not_configured_for_user".to_owned()),
        });
        Some((time, q))
    }

    /// Answers the next API requests with these quota reasons, one each
    /// (`userRateLimitExceeded`, `quotaExceeded`, `rateLimitExceeded`, `backendError`,
    /// `internalError`).
    pub fn queue_quota_errors(&self, reasons: &[&str]) {
        self.shared
            .quota()
            .next
            .extend(reasons.iter().map(|r| (*r).to_owned()));
    }

    /// Answers every `n`th API request with `reason` (`None`: off).
    pub fn quota_every(&self, every: Option<(u64, &str)>) {
        let mut q = self.shared.quota();
        q.every = every
            .filter(|(n, _)| *n > 0)
            .map(|(n, r)| (n, r.to_owned()));
        q.counter = 0;
    }

    /// Sets the scopes authorised for domain-wide delegation.
    pub fn set_dwd_scopes(&self, scopes: &[&str]) {
        *self
            .shared
            .dwd_scopes
            .write()
            .unwrap_or_else(|p| p.into_inner()) = scopes.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Forgets every access token handed out (their next use answers 401 `authError`).
    pub fn revoke_tokens(&self) {
        self.shared.revoke_tokens();
    }

    /// Sets how long events take to show in the Reports API.
    pub fn set_report_lag(&self, lag: chrono::Duration) {
        *self
            .shared
            .report_lag
            .write()
            .unwrap_or_else(|p| p.into_inner()) = lag;
    }
}

crate::sim::common::sim_lifecycle!(GoogleSim);
