//! A simulated Atlassian Cloud organization: the admin APIs idbridge uses, answered as the
//! published OpenAPI files describe them.
//!
//! * Organizations v2: directories, users (list, search, count, detail, suspend, restore,
//!   remove), groups (list, search, detail) and group memberships; cursor paging with
//!   `links.next`; `directoryId = "-"` for all directories.
//! * Organizations v1: orgs, users (cursor, `meta.total`, `links.next` as a URL), last-active
//!   dates, suspend-access and restore-access, user removal, group memberships.
//! * User management: `GET /users/{id}/manage`, lifecycle `disable` and `enable`.
//!
//! Auth is `Authorization: Bearer <org API key>`; a second, scoped key is refused on the
//! user-management API as Atlassian documents. Users and groups synced from an identity
//! provider are read-only (403). Seats: restoring a user or adding one to a licence group
//! when all Confluence seats are taken fails with `ADMIN-UAM-409-3`. An optional per-org rate
//! limit answers 429 with `X-RateLimit-*` and `Retry-After`. The population is seeded and
//! reproducible. [`control`] adds `/__sim/` routes to change state mid-run.

mod control;
mod handlers;
pub mod model;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Timelike, Utc};

use super::common::{SimCore, SimRng, SimServer, TokenBucket, serve};
pub use model::{AccountStatus, MembershipStatus, SimDirectory, SimGroup, SimUser, World};

/// The org API key the simulator accepts unless told otherwise.
pub const DEMO_API_KEY: &str = "idbridge-demo-org-api-key";
/// The scoped key the simulator accepts unless told otherwise (403 on `/users/{id}/manage`).
pub const DEMO_SCOPED_KEY: &str = "idbridge-demo-scoped-api-key";

/// How to run a simulated Atlassian Cloud organization.
#[derive(clap::Args, Clone, Debug)]
pub struct CloudSimOptions {
    /// Users in the seeded population.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Seed of the population (same seed, same users).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The organization id (default: derived from the seed).
    #[arg(long)]
    pub org_id: Option<String>,
    /// The org API key accepted as `Authorization: Bearer <key>`.
    #[arg(long, default_value = DEMO_API_KEY)]
    pub api_key: String,
    /// A scoped API key: works on the org API, 403 on `/users/{id}/manage/*`.
    #[arg(long, default_value = DEMO_SCOPED_KEY)]
    pub scoped_key: String,
    /// Requests per minute per org before 429 (absent: no limit).
    #[arg(long)]
    pub rate_limit_per_minute: Option<u64>,
    /// Confluence seats (absent: unlimited).
    #[arg(long)]
    pub seats: Option<u64>,
    /// Share of users (0.0 to 1.0) synced from an identity provider, hence read-only.
    #[arg(long, default_value_t = 0.2)]
    pub idp_managed_share: f64,
}

impl Default for CloudSimOptions {
    fn default() -> Self {
        Self {
            users: 1000,
            seed: 42,
            org_id: None,
            api_key: DEMO_API_KEY.into(),
            scoped_key: DEMO_SCOPED_KEY.into(),
            rate_limit_per_minute: None,
            seats: None,
            idp_managed_share: 0.2,
        }
    }
}

/// Cursors handed out and not yet expired, at most this many.
const CURSOR_CAP: usize = 200_000;

/// What a cursor continues.
#[derive(Clone, Debug)]
pub(crate) enum CursorKind {
    UsersV2 {
        directory: Option<usize>,
        filter: handlers::UserFilter,
    },
    GroupsV2 {
        directory: Option<usize>,
        filter: handlers::GroupFilter,
    },
    UsersV1,
}

/// A cursor's state: what it lists and where it stands.
#[derive(Clone, Debug)]
pub(crate) struct CursorState {
    pub kind: CursorKind,
    pub offset: usize,
}

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub core: SimCore,
    pub api_key: String,
    pub scoped_key: String,
    pub world: RwLock<World>,
    pub limiter: Mutex<Option<(u64, TokenBucket)>>,
    pub cursors: Mutex<(SimRng, HashMap<String, CursorState>)>,
}

impl Shared {
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a cursor and returns its opaque token.
    pub fn issue_cursor(&self, state: CursorState) -> String {
        let mut guard = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        let (rng, map) = &mut *guard;
        if map.len() >= CURSOR_CAP {
            map.clear();
        }
        let token = rng.hex(40);
        map.insert(token.clone(), state);
        token
    }

    /// The state of a cursor token, if it is one handed out and not expired.
    pub fn cursor(&self, token: &str) -> Option<CursorState> {
        let guard = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.get(token).cloned()
    }

    /// Expires every cursor handed out.
    pub fn expire_cursors(&self) {
        self.cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clear();
    }

    pub fn set_rate_limit(&self, per_minute: Option<u64>) {
        *self.limiter.lock().unwrap_or_else(|p| p.into_inner()) = per_minute
            .filter(|n| *n > 0)
            .map(|n| (n, TokenBucket::new(n, n, Duration::from_secs(60))));
    }
}

/// A running simulated Atlassian Cloud organization.
#[derive(Debug)]
pub struct CloudSim {
    server: SimServer,
    shared: Arc<Shared>,
}

/// Starts the simulator on `addr` (port 0 picks a free port).
pub async fn start(opts: CloudSimOptions, addr: SocketAddr) -> std::io::Result<CloudSim> {
    let core = SimCore::default();
    let now = core.clock.now();
    // Anchored at midnight so that two runs with one seed on one day agree to the second.
    let anchor = now
        .with_hour(0)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let world = World::seeded(
        opts.seed,
        opts.users,
        opts.org_id.as_deref(),
        opts.idp_managed_share.clamp(0.0, 1.0),
        opts.seats,
        anchor,
    );
    let shared = Arc::new(Shared {
        core: core.clone(),
        api_key: opts.api_key.clone(),
        scoped_key: opts.scoped_key.clone(),
        world: RwLock::new(world),
        limiter: Mutex::new(None),
        cursors: Mutex::new((SimRng::new(opts.seed ^ 0xC0_550E), HashMap::new())),
    });
    shared.set_rate_limit(opts.rate_limit_per_minute);
    let app: Router = handlers::routes(shared.clone()).merge(control::routes(shared.clone()));
    let server = serve(app, core, addr).await?;
    tracing::info!(
        sim = "atlassian_cloud",
        addr = %server.addr,
        users = opts.users,
        seed = opts.seed,
        "simulated Atlassian Cloud organization listening"
    );
    Ok(CloudSim { server, shared })
}

impl CloudSim {
    /// `http://<addr>`: stands in for `https://api.atlassian.com`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The organization id.
    pub fn org_id(&self) -> String {
        self.shared.read().org_id.clone()
    }

    /// The org API key it accepts.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// The scoped API key it accepts (refused on `/users/{id}/manage`).
    pub fn scoped_key(&self) -> &str {
        &self.shared.scoped_key
    }

    /// The Confluence site's ARI (`ari:cloud:confluence::site/<cloudId>`).
    pub fn site_id(&self) -> String {
        self.shared.read().site_id.clone()
    }

    /// The shared simulator core: request log, faults, clock.
    pub fn core(&self) -> &SimCore {
        &self.shared.core
    }

    /// The directories: local first, then the identity provider's.
    pub fn directories(&self) -> Vec<SimDirectory> {
        self.shared.read().directories.clone()
    }

    /// Every present user, in listing order.
    pub fn users(&self) -> Vec<SimUser> {
        self.shared
            .read()
            .users
            .iter()
            .filter(|u| !u.removed)
            .cloned()
            .collect()
    }

    /// One user by account id.
    pub fn user(&self, account_id: &str) -> Option<SimUser> {
        let w = self.shared.read();
        w.user(account_id).map(|i| w.users[i].clone())
    }

    /// Every group.
    pub fn groups(&self) -> Vec<SimGroup> {
        self.shared.read().groups.clone()
    }

    /// One group by name.
    pub fn group_by_name(&self, name: &str) -> Option<SimGroup> {
        let w = self.shared.read();
        w.group_index_by_name(name).map(|g| w.groups[g].clone())
    }

    /// Names of the groups a user belongs to.
    pub fn user_group_names(&self, account_id: &str) -> Vec<String> {
        let w = self.shared.read();
        w.user(account_id)
            .map(|u| {
                w.users[u]
                    .groups
                    .iter()
                    .map(|&g| w.groups[g].name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the user takes a Confluence seat.
    pub fn is_billable(&self, account_id: &str) -> bool {
        let w = self.shared.read();
        w.user(account_id).is_some_and(|u| w.billable(u))
    }

    /// Seats in use.
    pub fn billable_count(&self) -> u64 {
        self.shared.read().billable_count()
    }

    /// Sets the Confluence seat limit (`None`: unlimited).
    pub fn set_seats(&self, seats: Option<u64>) {
        self.shared.write().seats = seats;
    }

    /// Sets the per-org rate limit (`None`: off).
    pub fn set_rate_limit_per_minute(&self, per_minute: Option<u64>) {
        self.shared.set_rate_limit(per_minute);
    }

    /// Changes a user in place; false when there is no such user.
    pub fn update_user(&self, account_id: &str, change: impl FnOnce(&mut SimUser)) -> bool {
        let mut w = self.shared.write();
        match w.user(account_id) {
            Some(i) => {
                change(&mut w.users[i]);
                true
            }
            None => false,
        }
    }

    /// Records a Confluence visit.
    pub fn record_activity(&self, account_id: &str, at: DateTime<Utc>) -> bool {
        self.update_user(account_id, |u| {
            u.last_active = Some(u.last_active.map_or(at, |t| t.max(at)));
        })
    }

    /// Expires every cursor handed out so far (their next use answers `ADMIN-400-1`).
    pub fn expire_cursors(&self) {
        self.shared.expire_cursors();
    }
}

crate::sim::common::sim_lifecycle!(CloudSim);
