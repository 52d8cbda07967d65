//! The small company the engine scenarios run against: a Confluence Data Center simulator and
//! an Okta simulator seeded with the same people (and, for what only Cloud shows, a small
//! Atlassian Cloud organization), a store on either backend with a clock the
//! scenario moves, the configuration that joins them (no rules: each scenario brings its
//! own), and helpers to sync, run and read back what the simulators were asked to change.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use idbridge::clock::ManualClock;
use idbridge::config::{Config, RuleConfig, Secret, SourceConfig, TargetConfig, WhenConfig};
use idbridge::domain::{RuleMode, RunStatus, SourceKind, TargetKind};
use idbridge::engine::inventory::{InventoryOptions, sync_target};
use idbridge::engine::run::{RunOptions, RunOutcome};
use idbridge::engine::sources::{SourceSyncOptions, SourceSyncReport, sync_source};
use idbridge::sim::atlassian_cloud::{
    self, AccountStatus, CloudSim, CloudSimOptions, MembershipStatus, SimUser as CloudUser,
};
use idbridge::sim::common::LoggedRequest;
use idbridge::sim::confluence_dc::{self, DcSim, DcSimOptions};
use idbridge::sim::okta::{self, OktaSim};
use idbridge::sources::SourceConnector;
use idbridge::store::{ActionRecord, Store};
use idbridge::targets::Connector;

use crate::helpers::{Backend, TestDb, start_time};

pub const LICENCE: &str = "confluence-users";
pub const ADMINS: &str = "confluence-administrators";

pub fn any_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn now() -> DateTime<Utc> {
    start_time()
}

pub fn days_ago(d: i64) -> DateTime<Utc> {
    now() - Duration::days(d)
}

/// One person of the seeded company: their Confluence account and their Okta record.
pub struct Person {
    pub username: &'static str,
    pub groups: &'static [&'static str],
    /// Okta status; `None`: not in Okta at all.
    pub okta_status: Option<&'static str>,
    pub created_days_ago: i64,
    /// Last login (Okta and Confluence) in days ago; `None`: never.
    pub last_login_days_ago: Option<i64>,
    pub department: &'static str,
    pub domain: &'static str,
}

const fn p(
    username: &'static str,
    groups: &'static [&'static str],
    okta_status: Option<&'static str>,
    created_days_ago: i64,
    last_login_days_ago: Option<i64>,
) -> Person {
    Person {
        username,
        groups,
        okta_status,
        created_days_ago,
        last_login_days_ago,
        department: "Engineering",
        domain: "example.com",
    }
}

pub fn company() -> Vec<Person> {
    vec![
        // A leaver: deprovisioned in Okta.
        p(
            "alice",
            &[LICENCE, "wiki-editors"],
            Some("DEPROVISIONED"),
            900,
            Some(3),
        ),
        // Long inactive, still employed.
        p(
            "bob",
            &[LICENCE, "wiki-editors"],
            Some("ACTIVE"),
            900,
            Some(200),
        ),
        // Active and recent, joined a little over a year ago.
        p("carol", &[LICENCE, "staff"], Some("ACTIVE"), 400, Some(1)),
        // Suspended: not a leaver under a rule that names deprovisioned only.
        p("dave", &[LICENCE], Some("SUSPENDED"), 500, Some(2)),
        // An administrator who left: protected, never touched.
        p(
            "erin",
            &[LICENCE, ADMINS],
            Some("DEPROVISIONED"),
            900,
            Some(5),
        ),
        // Never logged in, created 60 days ago.
        p("frank", &[LICENCE], Some("ACTIVE"), 60, None),
        // Inactive but exempt through a group.
        p(
            "grace",
            &[LICENCE, "service-accounts"],
            Some("ACTIVE"),
            900,
            Some(300),
        ),
        // Locked out is not a leaver.
        p("heidi", &[LICENCE], Some("LOCKED_OUT"), 900, Some(4)),
        // A contractor, inactive 120 days.
        Person {
            domain: "contractor.example.net",
            ..p("ivan", &[LICENCE, "staff"], Some("ACTIVE"), 900, Some(120))
        },
        // Sales, inactive 100 days.
        Person {
            department: "Sales",
            ..p("judy", &[LICENCE], Some("ACTIVE"), 900, Some(100))
        },
        // In Confluence but not in Okta at all: unlinked, so unmanaged.
        p("mallory", &[LICENCE], None, 900, Some(10)),
    ]
}

/// The renamed form of `user` as the rules name it today.
pub fn renamed(user: &str) -> String {
    let date = now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y%m%d")
        .to_string();
    format!("{user}_inactive_{date}")
}

/// The seeded groups of `user`, sorted.
pub fn seeded(user: &str) -> Vec<String> {
    let person = company()
        .into_iter()
        .find(|p| p.username == user)
        .expect("in the company");
    let mut g: Vec<String> = person.groups.iter().map(|g| (*g).to_owned()).collect();
    g.sort();
    g
}

pub struct World {
    _db: TestDb,
    pub store: Store,
    /// The store's clock (also the executor's).
    pub clock: Arc<ManualClock>,
    pub dc: DcSim,
    pub okta: OktaSim,
    pub config: Config,
    /// Confluence user keys by original username.
    pub keys: HashMap<&'static str, String>,
    /// Okta user ids by username, for those in Okta.
    pub okta_ids: HashMap<&'static str, String>,
}

/// A migrated store on a fresh database, with its clock at [`now`].
async fn store(backend: Backend) -> Option<(TestDb, Arc<ManualClock>, Store)> {
    let db = TestDb::create(backend).await?;
    let clock = Arc::new(ManualClock::new(now()));
    let store = Store::connect(&db.config(), clock.clone()).await.unwrap();
    store.migrate().await.unwrap();
    Some((db, clock, store))
}

/// The company on both simulators and a migrated store; the configuration has no rules.
pub async fn world(backend: Backend) -> Option<World> {
    let (db, clock, store) = store(backend).await?;

    let dc = confluence_dc::start(
        DcSimOptions {
            users: 0,
            remote_api: true,
            ..DcSimOptions::default()
        },
        any_addr(),
    )
    .await
    .expect("DC simulator");
    for g in ["service-accounts", "former-sales", "wiki-editors"] {
        dc.add_group(g).expect("group");
    }
    let okta = okta::start(
        okta::OktaSimOptions {
            users: 0,
            rate_limit: Some(1_000_000),
            ..okta::OktaSimOptions::default()
        },
        any_addr(),
    )
    .await
    .expect("okta simulator");
    // The simulated Okta lives on the world's clock, like the store and the connectors.
    {
        use idbridge::clock::Clock;
        okta.core()
            .clock
            .advance(now() - idbridge::clock::SystemClock.now());
    }
    let mut keys = HashMap::new();
    let mut okta_ids = HashMap::new();
    for person in company() {
        let email = format!("{}@{}", person.username, person.domain);
        let last_login = person.last_login_days_ago.map(days_ago);
        let key = dc
            .add_user(
                person.username,
                &email,
                person.groups,
                days_ago(person.created_days_ago),
                last_login,
            )
            .expect("DC user");
        keys.insert(person.username, key);
        if let Some(status) = person.okta_status {
            let id = okta.add_user(&email, person.username, "Example");
            okta.update_user(&id, |u| {
                u.status = status.to_owned();
                u.created = days_ago(person.created_days_ago);
                u.last_login = last_login;
                u.extra
                    .insert("department".into(), person.department.to_owned());
            });
            okta_ids.insert(person.username, id);
        }
    }

    let mut config = Config::default();
    let mut src = SourceConfig::new(SourceKind::Okta);
    src.base_url = Some(okta.base_url());
    src.token = Some(Secret::new(okta.ssws_token()));
    src.app_id = Some(okta.app_id().to_owned());
    src.custom_attributes = vec!["department".into()];
    config.sources.insert("okta".into(), src);
    let mut target = TargetConfig::new(TargetKind::ConfluenceDc, dc.base_url());
    target.token = Some(Secret::new(dc.pat()));
    config.targets.insert("wiki".into(), target);
    config.planner.observation_floor_days = 0;
    config.planner.timezone = "Europe/Berlin".into();
    // Generous budgets: these scenarios are about rules; budgets have their own test.
    for budget in config.safety.budgets.values_mut() {
        *budget = Default::default();
    }
    Some(World {
        _db: db,
        store,
        clock,
        dc,
        okta,
        config,
        keys,
        okta_ids,
    })
}

impl World {
    /// The store's database URL, for the binary.
    pub fn db_url(&self) -> &str {
        &self._db.url
    }

    pub async fn stop(self) {
        self.dc.stop().await;
        self.okta.stop().await;
    }

    /// A configuration file in `dir` for the binary: the world's database, Okta and wiki
    /// and planner settings (secrets come from the environment).
    pub fn config_file(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("idbridge.toml");
        std::fs::write(
            &path,
            format!(
                "[database]\nurl = \"{}\"\n\n\
                 [sources.okta]\nkind = \"okta\"\nbase_url = \"{}\"\napp_id = \"{}\"\n\
                 custom_attributes = [\"department\"]\n\n\
                 [targets.wiki]\nkind = \"confluence_dc\"\nbase_url = \"{}\"\n\n\
                 [planner]\nobservation_floor_days = 0\ntimezone = \"Europe/Berlin\"\n",
                self.db_url(),
                self.okta.base_url(),
                self.okta.app_id(),
                self.dc.base_url(),
            ),
        )
        .expect("write config");
        path
    }
}

/// An enabled rule sparing the `service-accounts` group, with the ladder written as in the
/// configuration file.
pub fn rule(
    mode: RuleMode,
    priority: i32,
    when: WhenConfig,
    actions: serde_json::Value,
) -> RuleConfig {
    let actions: Vec<toml::Value> = serde_json::from_value(actions).expect("actions");
    RuleConfig {
        mode,
        enabled: true,
        priority,
        targets: Vec::new(),
        schedule: None,
        allow_delete: false,
        exempt_users: Vec::new(),
        exempt_groups: vec!["service-accounts".into()],
        when,
        actions,
    }
}

/// One full sync of the Okta simulator, complete or not.
pub async fn sync_okta(w: &World) -> SourceSyncReport {
    let cfg = &w.config.sources["okta"];
    let record = w.store.ensure_source("okta", cfg.kind).await.unwrap();
    let connector = SourceConnector::from_config("okta", cfg)
        .expect("connector")
        .with_clock(w.clock.clone());
    sync_source(
        &w.store,
        &record,
        &connector,
        &SourceSyncOptions::from_config(cfg),
    )
    .await
    .unwrap()
}

/// A complete sync of Okta and a complete inventory of the wiki.
pub async fn sync_all(w: &World) {
    let report = sync_okta(w).await;
    assert!(report.is_complete(), "okta: {:?}", report.reason);
    inventory(&w.store, "wiki", &w.config.targets["wiki"]).await;
}

/// A complete inventory of the target `name`.
pub async fn inventory(store: &Store, name: &str, t: &TargetConfig) {
    let record = store
        .ensure_target(name, t.kind, &t.base_url)
        .await
        .unwrap();
    let connector = Connector::new(name, t).unwrap();
    let report = sync_target(
        store,
        &record,
        &connector,
        &InventoryOptions {
            configured_licence_groups: t.licence_groups.clone(),
            ..InventoryOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(report.reason.is_none(), "{name}: {:?}", report.reason);
}

pub fn opts(principal: &str) -> RunOptions {
    RunOptions {
        rules: Vec::new(),
        dry_run: false,
        principal: principal.into(),
        execute: true,
    }
}

/// The enforced run of a pass: its status and its actions.
pub struct Enforced {
    pub status: RunStatus,
    pub actions: Vec<ActionRecord>,
}

/// The enforced run of an outcome, if one was stored.
pub async fn enforced(store: &Store, outcome: &RunOutcome) -> Option<Enforced> {
    let summary = outcome.runs.iter().find(|r| r.mode == RuleMode::Enforce)?;
    Some(Enforced {
        status: summary.status,
        actions: store.run_actions(summary.run).await.unwrap(),
    })
}

pub fn groups_of(dc: &DcSim, username: &str) -> Vec<String> {
    let mut g = dc.user(username).expect("user").groups;
    g.sort();
    g
}

/// Requests that may have changed something: not GET, and not a read-only Remote API call
/// (`isActiveUser`, `getUser`, `hasUser`, which the connector's probe makes).
pub fn writes(dc: &DcSim) -> Vec<LoggedRequest> {
    dc.mutations()
        .into_iter()
        .filter(|r| {
            let method = r.path.rsplit('/').next().unwrap_or("");
            !(r.path.contains("/rpc/")
                && (method.starts_with("is")
                    || method.starts_with("get")
                    || method.starts_with("has")))
        })
        .collect()
}

/// Requests that changed something in the simulator and mention `username`.
pub fn writes_about(dc: &DcSim, username: &str) -> usize {
    writes(dc)
        .iter()
        .filter(|r| {
            r.path.contains(username) || r.query.as_deref().is_some_and(|q| q.contains(username))
        })
        .count()
}

/// The users the simulator's writes were about, read from REST paths
/// (`/rest/api/user/<name>/…`, `/rest/api/admin/user/<name>…`). Panics on a write it cannot
/// attribute (a Remote API call carries the name in its body), so that "nobody else was
/// written to" cannot pass by missing a write.
pub fn written_users(dc: &DcSim) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in writes(dc) {
        let segments: Vec<&str> = r.path.split('/').collect();
        let user = segments
            .windows(2)
            .find(|w| w[0] == "user" && !w[1].is_empty() && w[1] != "group")
            .map(|w| w[1].to_owned());
        match user {
            Some(u) => {
                out.insert(u);
            }
            None => panic!("a write names no user in its path: {r:?}"),
        }
    }
    out
}

/// Asserts that every person of the company outside `touched` still has their Confluence
/// account as seeded (active, same name, same groups) and that no write was about them.
pub fn assert_untouched_except(w: &World, touched: &[&str]) {
    let written = written_users(&w.dc);
    for person in company() {
        if touched.contains(&person.username) {
            continue;
        }
        assert!(
            !written.contains(person.username),
            "{} was written to: {:?}",
            person.username,
            writes(&w.dc)
        );
        let u =
            w.dc.user_by_key(&w.keys[person.username])
                .unwrap_or_else(|| panic!("{} is gone", person.username));
        assert_eq!(u.username, person.username);
        assert!(u.active, "{} deactivated", person.username);
        let mut seeded: Vec<String> = person.groups.iter().map(|g| (*g).to_owned()).collect();
        seeded.sort();
        assert_eq!(
            groups_of(&w.dc, person.username),
            seeded,
            "{}",
            person.username
        );
    }
}

/// An Atlassian Cloud organization of a dozen local accounts with no identity source (so its
/// own accounts are managed), and a store on either backend; no rules.
pub struct CloudWorld {
    _db: TestDb,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub sim: CloudSim,
    pub config: Config,
}

pub async fn cloud_world(backend: Backend) -> Option<CloudWorld> {
    let (db, clock, store) = store(backend).await?;
    let sim = atlassian_cloud::start(
        CloudSimOptions {
            users: 12,
            idp_managed_share: 0.0,
            ..CloudSimOptions::default()
        },
        any_addr(),
    )
    .await
    .expect("Cloud simulator");
    let mut config = Config::default();
    let mut target = TargetConfig::new(TargetKind::ConfluenceCloud, sim.base_url());
    target.token = Some(Secret::new(sim.api_key().to_owned()));
    target.org_id = Some(sim.org_id());
    target.site_id = Some(sim.site_id());
    target.manage_unlinked = true;
    target.admin_groups = vec!["site-admins".into()];
    config.targets.insert("cloud".into(), target);
    config.planner.observation_floor_days = 0;
    for budget in config.safety.budgets.values_mut() {
        *budget = Default::default();
    }
    Some(CloudWorld {
        _db: db,
        store,
        clock,
        sim,
        config,
    })
}

impl CloudWorld {
    /// A complete inventory of the organization.
    pub async fn sync(&self) {
        inventory(&self.store, "cloud", &self.config.targets["cloud"]).await;
    }

    /// Active accounts that are not administrators, in listing order.
    pub fn writable(&self) -> Vec<CloudUser> {
        self.sim
            .users()
            .into_iter()
            .filter(|u| {
                !u.admin
                    && u.account_status == AccountStatus::Active
                    && u.membership_status == MembershipStatus::Active
            })
            .collect()
    }

    /// Requests that changed something and name `account_id` in their path (searches are
    /// POSTs that change nothing).
    pub fn writes_about(&self, account_id: &str) -> usize {
        self.sim
            .core()
            .mutations()
            .into_iter()
            .filter(|r| !r.path.ends_with("/search") && r.path.contains(account_id))
            .count()
    }

    /// Asserts that every account of `before` outside `touched` is as it was and was not
    /// written to.
    pub fn assert_untouched_except(&self, before: &[CloudUser], touched: &[String]) {
        for u in before.iter().filter(|u| !touched.contains(&u.account_id)) {
            assert_eq!(
                self.sim.user(&u.account_id).as_ref(),
                Some(u),
                "{} changed",
                u.email
            );
            assert_eq!(
                self.writes_about(&u.account_id),
                0,
                "{} was written to",
                u.email
            );
        }
    }
}

/// Sets the simulated instance's licence seats (`-1`: unlimited) through its control API.
pub async fn set_dc_max_users(dc: &DcSim, seats: i64) {
    let resp = reqwest::Client::new()
        .put(format!("{}/__sim/settings", dc.root_url()))
        .json(&serde_json::json!({ "maxUsers": seats }))
        .send()
        .await
        .expect("DC control API");
    assert!(resp.status().is_success(), "{}", resp.status());
}
