//! A simulated Microsoft Entra ID tenant behind Microsoft Graph v1.0 and the Microsoft
//! identity platform token endpoint, answered as `shared/reference/idp-apis.md` §2 and §6.2
//! and the Graph identity OpenAPI subset describe them.
//!
//! * `POST /{tenant}/oauth2/v2.0/token`: client credentials with a client secret (form or
//!   Basic) or a certificate assertion (PS256/RS256, `x5t#S256`, `aud`, `iss`=`sub`, time
//!   window, `jti` not reused); `scope` must be `https://graph.microsoft.com/.default`; AADSTS
//!   error JSON; the access token is a JWT whose `roles` are the app's permissions.
//! * `GET /v1.0/users` (`$select` with Graph's default set, `$filter` subset, `$top` caps
//!   999/500, `$count` with `ConsistencyLevel: eventual`, opaque `$skiptoken` next links),
//!   `signInActivity` only with `AuditLog.Read.All` in a premium tenant;
//!   `GET /v1.0/users/{id|upn}`, `/users/$count`, `PATCH`/`DELETE /users/{id}`;
//!   `GET /v1.0/users/delta` (pages, `@odata.deltaLink`, `$deltatoken=latest`, `@removed`,
//!   tokens that expire as 410 Gone or `syncStateNotFound`).
//! * `GET /v1.0/groups`, `/groups/{id}`, `/groups/{id}/members[/microsoft.graph.user]`.
//! * `GET /v1.0/directory/deletedItems/microsoft.graph.user`, `/directory/deletedItems/{id}`,
//!   `POST …/{id}/restore`.
//! * `GET /v1.0/auditLogs/signIns` (`$filter` on `appId`, `userId`, `createdDateTime`,
//!   `status/errorCode`), newest first, pages of up to 1000.
//! * Throttling: 429 + `Retry-After` + `x-ms-throttle-*`, 503 `serviceNotAvailable`, and an
//!   optional resource-unit budget per 10 s.
//!
//! [`control`] adds `/__sim/` routes to change the tenant mid-run.

mod control;
mod handlers;
pub mod model;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::common::{Fault, FaultKind, SimCore, SimServer, TokenBucket, serve};
pub use model::{Activity, Persona, SimGroup, SimSignIn, SimUser, World};

/// The application (client) id the simulator accepts unless told otherwise.
pub const DEMO_CLIENT_ID: &str = "5b0c1f7e-2a43-4c52-9d1e-1d0b6f1e0a11";
/// The client secret it accepts unless told otherwise.
pub const DEMO_CLIENT_SECRET: &str = "idbridge-demo-graph-client-secret";
/// The Confluence enterprise application's `appId` in the sign-in log.
pub const DEMO_APP_ID: &str = "c8a7e3b4-6d1f-4f0b-9e55-0d2b8f1a7c11";
/// The only scope the client-credentials grant takes.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// How to run a simulated Entra tenant.
#[derive(clap::Args, Clone, Debug)]
pub struct EntraSimOptions {
    /// Users in the seeded population.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Seed of the population (same seed, same tenant).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The tenant id (default: derived from the seed).
    #[arg(long)]
    pub tenant: Option<String>,
    /// The application (client) id idbridge signs in as.
    #[arg(long, default_value = DEMO_CLIENT_ID)]
    pub client_id: String,
    /// Its client secret.
    #[arg(long, default_value = DEMO_CLIENT_SECRET)]
    pub client_secret: String,
    /// The Confluence application's appId in the sign-in log.
    #[arg(long, default_value = DEMO_APP_ID)]
    pub app_id: String,
    /// Whether the tenant has Entra ID P1/P2 (signInActivity and sign-in logs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub premium: bool,
    /// Application permissions granted to the app (the token's `roles`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "User.Read.All,GroupMember.Read.All,AuditLog.Read.All"
    )]
    pub roles: Vec<String>,
    /// A PEM certificate registered on the app (its SHA-256 thumbprint is the `x5t#S256`).
    #[arg(long)]
    pub certificate: Option<PathBuf>,
    /// The PEM public key of that certificate (verifies client assertions).
    #[arg(long)]
    pub certificate_public_key: Option<PathBuf>,
    /// Resource units per app per 10 s before 429 (absent: unlimited).
    #[arg(long)]
    pub resource_units_per_10s: Option<u64>,
    /// Delay added to every Graph and token answer.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

impl Default for EntraSimOptions {
    fn default() -> Self {
        Self {
            users: 1000,
            seed: 42,
            tenant: None,
            client_id: DEMO_CLIENT_ID.into(),
            client_secret: DEMO_CLIENT_SECRET.into(),
            app_id: DEMO_APP_ID.into(),
            premium: true,
            roles: vec![
                "User.Read.All".into(),
                "GroupMember.Read.All".into(),
                "AuditLog.Read.All".into(),
            ],
            certificate: None,
            certificate_public_key: None,
            resource_units_per_10s: None,
            latency_ms: 0,
        }
    }
}

/// How an expired delta token answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeltaExpiry {
    /// `410 Gone` with a `Location` header naming a fresh delta URL.
    Gone,
    /// `400` with code `syncStateNotFound`.
    SyncStateNotFound,
    /// `400` with code `resyncRequired`.
    ResyncRequired,
}

/// Throttling the next requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleRule {
    /// 429 (TooManyRequests) or 503 (serviceNotAvailable).
    #[serde(default = "default_throttle_status")]
    pub status: u16,
    /// `Retry-After` seconds; absent: no header.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// How many requests get it.
    pub times: u32,
    /// Only paths starting with this (e.g. `/v1.0/users`).
    #[serde(default)]
    pub path_prefix: Option<String>,
}

fn default_throttle_status() -> u16 {
    429
}

/// A canned answer for the next matching requests (bad bodies, odd links, duplicates).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Canned {
    pub path_prefix: String,
    /// Match the path exactly rather than as a prefix.
    #[serde(default)]
    pub exact: bool,
    #[serde(default = "default_canned_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: String,
    /// How many requests get it (absent: all).
    #[serde(default)]
    pub times: Option<u32>,
}

fn default_canned_status() -> u16 {
    200
}

/// The registered certificate.
pub(crate) struct Certificate {
    pub thumbprint_s256: String,
    pub key: jsonwebtoken::DecodingKey,
}

/// State shared by every handler.
pub(crate) struct Shared {
    pub core: SimCore,
    pub client_id: String,
    pub client_secret: RwLock<String>,
    pub app_id: String,
    pub roles: RwLock<Vec<String>>,
    pub premium: AtomicBool,
    pub certificate: RwLock<Option<Certificate>>,
    pub signing_key: Vec<u8>,
    pub token_generation: AtomicU64,
    pub world: RwLock<World>,
    pub delta_epoch: AtomicU64,
    pub delta_expiry: Mutex<DeltaExpiry>,
    pub throttle: Mutex<Option<ThrottleRule>>,
    pub canned: Mutex<Vec<Canned>>,
    pub budget: Mutex<Option<TokenBucket>>,
    pub requests: AtomicU64,
    pub used_jti: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn roles(&self) -> Vec<String> {
        self.roles.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn premium(&self) -> bool {
        self.premium.load(Ordering::Relaxed)
    }

    /// A fresh request id (UUID-shaped, counter-based).
    pub fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{:08x}-5e1d-4000-8000-{:012x}", n >> 16, n)
    }
}

/// Reads a PEM certificate and its public key into the registration the token endpoint
/// checks assertions against.
pub fn load_certificate(
    cert_pem: &str,
    public_key_pem: &str,
) -> Result<(String, jsonwebtoken::DecodingKey), String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let b64: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    let thumb = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&der));
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
        .map_err(|e| format!("the public key cannot be read: {e}"))?;
    Ok((thumb, key))
}

/// A running simulated Entra tenant.
#[derive(Debug)]
pub struct EntraSim {
    server: SimServer,
    shared: Arc<Shared>,
}

/// Starts the simulator on `addr` (port 0 picks a free port).
pub async fn start(opts: EntraSimOptions, addr: SocketAddr) -> std::io::Result<EntraSim> {
    let core = SimCore::default();
    let now = core.clock.now();
    let anchor = now
        .with_hour(0)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let world = World::seeded(
        opts.seed,
        opts.users,
        opts.tenant.as_deref(),
        &opts.app_id,
        anchor,
    );
    let certificate = match (&opts.certificate, &opts.certificate_public_key) {
        (Some(cert), Some(key)) => {
            let cert = std::fs::read_to_string(cert)?;
            let key = std::fs::read_to_string(key)?;
            let (thumbprint_s256, key) = load_certificate(&cert, &key)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            Some(Certificate {
                thumbprint_s256,
                key,
            })
        }
        _ => None,
    };
    let mut signing_key = [0u8; 32];
    let _ = getrandom::fill(&mut signing_key);
    let shared = Arc::new(Shared {
        core: core.clone(),
        client_id: opts.client_id.clone(),
        client_secret: RwLock::new(opts.client_secret.clone()),
        app_id: opts.app_id.clone(),
        roles: RwLock::new(opts.roles.clone()),
        premium: AtomicBool::new(opts.premium),
        certificate: RwLock::new(certificate),
        signing_key: signing_key.to_vec(),
        token_generation: AtomicU64::new(1),
        world: RwLock::new(world),
        delta_epoch: AtomicU64::new(1),
        delta_expiry: Mutex::new(DeltaExpiry::Gone),
        throttle: Mutex::new(None),
        canned: Mutex::new(Vec::new()),
        budget: Mutex::new(
            opts.resource_units_per_10s
                .map(|n| TokenBucket::new(n, n, Duration::from_secs(10))),
        ),
        requests: AtomicU64::new(0),
        used_jti: Mutex::new(HashSet::new()),
    });
    if opts.latency_ms > 0 {
        core.add_fault(Fault {
            method: None,
            path_prefix: None,
            kind: FaultKind::Latency {
                ms: opts.latency_ms,
            },
            times: None,
        });
    }
    let app: Router = handlers::routes(shared.clone()).merge(control::routes(shared.clone()));
    let server = serve(app, core, addr).await?;
    tracing::info!(
        sim = "entra",
        addr = %server.addr,
        users = opts.users,
        seed = opts.seed,
        "simulated Entra tenant listening"
    );
    Ok(EntraSim { server, shared })
}

impl EntraSim {
    /// `http://<addr>`: stands in for both `https://graph.microsoft.com` and
    /// `https://login.microsoftonline.com`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> String {
        self.shared.read().tenant_id.clone()
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.base_url(), self.tenant_id())
    }

    /// The client id it accepts.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The client secret it accepts.
    pub fn client_secret(&self) -> String {
        self.shared
            .client_secret
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The Confluence application's appId.
    pub fn app_id(&self) -> &str {
        &self.shared.app_id
    }

    /// The shared simulator core: request log, faults, clock.
    pub fn core(&self) -> &SimCore {
        &self.shared.core
    }

    /// Every user ever created (soft-deleted and purged included), in listing order.
    pub fn users(&self) -> Vec<SimUser> {
        self.shared.read().users.clone()
    }

    /// One user by id or UPN.
    pub fn user(&self, key: &str) -> Option<SimUser> {
        let w = self.shared.read();
        w.find(key).map(|i| w.users[i].clone())
    }

    /// Every group.
    pub fn groups(&self) -> Vec<SimGroup> {
        self.shared.read().groups.clone()
    }

    /// The sign-in log, oldest first.
    pub fn sign_ins(&self) -> Vec<SimSignIn> {
        self.shared.read().sign_ins.clone()
    }

    /// Changes a user in place (recorded for the delta query); false when there is none.
    pub fn update_user(&self, key: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        let mut w = self.shared.write();
        match w.find(key) {
            Some(i) => {
                change(&mut w.users[i]);
                w.touch(i);
                true
            }
            None => false,
        }
    }

    /// Soft-deletes a user.
    pub fn delete_user(&self, key: &str) -> bool {
        let now = self.shared.core.clock.now();
        let mut w = self.shared.write();
        match w.find(key) {
            Some(i) => {
                w.soft_delete(i, now);
                true
            }
            None => false,
        }
    }

    /// Deletes a user for good.
    pub fn purge_user(&self, key: &str) -> bool {
        let mut w = self.shared.write();
        match w.find(key) {
            Some(i) => {
                w.purge(i);
                true
            }
            None => false,
        }
    }

    /// Adds a sign-in event for `user` to `app_id` at `at` (`error_code` 0 = success).
    pub fn add_sign_in(&self, user: &str, app_id: &str, at: DateTime<Utc>, error_code: i64) {
        let mut w = self.shared.write();
        if let Some(i) = w.find(user) {
            let id = w.new_id();
            w.add_sign_in(SimSignIn {
                id,
                created: at,
                user: i,
                app_id: app_id.to_owned(),
                app_display_name: model::APP_NAME.to_owned(),
                error_code,
            });
        }
    }

    /// Whether the tenant is premium (signInActivity, sign-in logs).
    pub fn set_premium(&self, premium: bool) {
        self.shared.premium.store(premium, Ordering::Relaxed);
    }

    /// The app's permissions (tokens issued afterwards carry them).
    pub fn set_roles(&self, roles: &[&str]) {
        *self.shared.roles.write().unwrap_or_else(|p| p.into_inner()) =
            roles.iter().map(|r| (*r).to_owned()).collect();
    }

    /// Registers a certificate (PEM) and its public key for client assertions.
    pub fn register_certificate(&self, cert_pem: &str, public_key_pem: &str) -> Result<(), String> {
        let (thumbprint_s256, key) = load_certificate(cert_pem, public_key_pem)?;
        *self
            .shared
            .certificate
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Certificate {
            thumbprint_s256,
            key,
        });
        Ok(())
    }

    /// Makes every delta token handed out so far expire, answering as `how`.
    pub fn expire_delta_tokens(&self, how: DeltaExpiry) {
        *self
            .shared
            .delta_expiry
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = how;
        self.shared.delta_epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Throttles the next requests.
    pub fn throttle(&self, rule: ThrottleRule) {
        *self
            .shared
            .throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(rule);
    }

    /// Answers the next matching requests with a canned response.
    pub fn can(&self, canned: Canned) {
        self.shared
            .canned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(canned);
    }

    /// Invalidates every access token issued so far (the next call gets 401).
    pub fn revoke_tokens(&self) {
        self.shared.token_generation.fetch_add(1, Ordering::Relaxed);
    }
}

crate::sim::common::sim_lifecycle!(EntraSim);
