//! The Confluence Data Center connector against the DC simulator, version by version: the
//! capability table the probe reports, every supported write checked on the simulator's own
//! state (and idempotent: a repeat sends nothing), reads, inventories on both backends, and
//! bad input (wrong or weak credentials, read-only directories, HTML and truncated bodies,
//! 503s, rate limits and blocked users).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use idbridge::clock::ManualClock;
use idbridge::config::{CrowdConfig, RemoteApiMode, Secret, TargetConfig};
use idbridge::domain::{SnapshotStatus, TargetKind};
use idbridge::engine::inventory::{InventoryOptions, InventoryReport, sync_target};
use idbridge::sim::common::{Fault, FaultKind};
use idbridge::sim::confluence_dc::{self, DcSim, DcSimOptions, DcVersion};
use idbridge::store::Store;
use idbridge::targets::confluence_dc::ConfluenceDc;
use idbridge::targets::{
    AccountRef, Capability, GroupRef, LastLoginSource, Member, NewRemoteAccount, RemoteAccount,
    Support, Target, TargetError, WriteOutcome,
};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestDb, on_both_backends, start_time};

const VERSIONS: [&str; 6] = ["7.13", "8.1", "8.2", "8.4", "9.3", "10.2"];

// ------------------------------------------------------------------------------------------
// Harness

#[derive(Clone, Copy)]
struct SimSpec {
    version: &'static str,
    users: usize,
    remote_api: bool,
    crowd: bool,
}

impl SimSpec {
    fn new(version: &'static str) -> Self {
        Self {
            version,
            users: 30,
            remote_api: false,
            crowd: false,
        }
    }

    fn remote(mut self, on: bool) -> Self {
        self.remote_api = on;
        self
    }

    fn crowd(mut self, on: bool) -> Self {
        self.crowd = on;
        self
    }

    fn users(mut self, n: usize) -> Self {
        self.users = n;
        self
    }

    fn options(self) -> DcSimOptions {
        DcSimOptions {
            product_version: self.version.parse().expect("a version"),
            users: self.users,
            remote_api: self.remote_api,
            crowd: self.crowd,
            delete_task_ms: 60,
            ..DcSimOptions::default()
        }
    }
}

async fn start_with(opts: DcSimOptions) -> DcSim {
    confluence_dc::start(opts, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("start the DC simulator")
}

async fn start(spec: SimSpec) -> DcSim {
    start_with(spec.options()).await
}

/// The admin's PAT for REST and the admin's password for the Remote API; Crowd when the
/// simulator has it.
fn config(sim: &DcSim, crowd: bool) -> TargetConfig {
    let mut cfg = TargetConfig::new(TargetKind::ConfluenceDc, sim.base_url());
    cfg.token = Some(Secret::new(sim.pat()));
    cfg.username = Some(sim.admin_user().to_owned());
    cfg.password = Some(Secret::new(sim.admin_password()));
    cfg.page_size = 25;
    cfg.max_rate_limit_wait_secs = 10;
    cfg.delete_timeout_secs = 10;
    if crowd {
        let (app, password) = sim.crowd_app();
        cfg.crowd = Some(CrowdConfig {
            base_url: format!("{}/crowd", sim.root_url()),
            application: app,
            password: Secret::new(password),
            directory: Some("Crowd".into()),
        });
    }
    cfg
}

fn connector(cfg: &TargetConfig) -> ConfluenceDc {
    ConfluenceDc::new("wiki", cfg)
        .expect("connector")
        .with_poll_interval(Duration::from_millis(20))
}

/// A call to the simulator's `/__sim/` control API.
async fn control(sim: &DcSim, method: reqwest::Method, path: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.root_url()))
        .json(&body)
        .send()
        .await
        .expect("control call");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A fresh user in `directory` (internal when `None`) with `groups`.
async fn make_user(
    sim: &DcSim,
    username: &str,
    directory: Option<&str>,
    groups: &[&str],
) -> AccountRef {
    let mut body = json!({
        "username": username,
        "displayName": format!("Test {username}"),
        "email": format!("{username}@example.com"),
        "groups": groups,
    });
    if let Some(d) = directory {
        body["directory"] = json!(d);
    }
    let v = control(sim, reqwest::Method::POST, "/__sim/users", body).await;
    AccountRef {
        key: v["userKey"].as_str().expect("userKey").to_owned(),
        username: username.to_owned(),
    }
}

fn fault(sim: &DcSim, method: Option<&str>, path: &str, kind: FaultKind, times: Option<u32>) {
    sim.core().add_fault(Fault {
        method: method.map(str::to_owned),
        path_prefix: Some(format!("/confluence{path}")),
        kind,
        times,
    });
}

fn dc_version(text: &str) -> DcVersion {
    text.parse().expect("a version")
}

async fn list_all(t: &ConfluenceDc) -> Vec<RemoteAccount> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let page = t.list_accounts(cursor.as_deref()).await.expect("a page");
        out.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
    panic!("the listing never ends");
}

fn effective_users(sim: &DcSim) -> u64 {
    sim.summary()["users"].as_u64().expect("users")
}

// ------------------------------------------------------------------------------------------
// 1. Capability table per version

/// What the version matrix says each combination supports.
fn expected(v: DcVersion, remote: bool, crowd: bool) -> BTreeMap<Capability, bool> {
    let at_least = |x: &str| v >= dc_version(x);
    let mut m = BTreeMap::new();
    m.insert(Capability::ListAccounts, at_least("8.4") || remote);
    m.insert(Capability::GetAccount, true);
    m.insert(Capability::ListGroups, true);
    m.insert(Capability::GroupMembers, true);
    m.insert(Capability::NestedGroups, at_least("9.0"));
    m.insert(Capability::LicenceUsage, true);
    m.insert(Capability::LastLogin, at_least("10.2"));
    for c in [
        Capability::Disable,
        Capability::Enable,
        Capability::AddToGroup,
        Capability::RemoveFromGroup,
    ] {
        m.insert(c, at_least("8.2") || remote);
    }
    m.insert(Capability::Rename, remote || crowd);
    m.insert(Capability::ChangeDirectory, false);
    m.insert(Capability::Delete, at_least("8.2"));
    m.insert(Capability::CreateAccount, at_least("8.4"));
    m.insert(Capability::UpdateProfile, at_least("9.0"));
    m
}

fn why(s: Support) -> String {
    match s {
        Support::Unsupported { why } => why,
        Support::Supported { via } => panic!("supported via {via}"),
    }
}

fn via(s: Support) -> String {
    match s {
        Support::Supported { via } => via,
        Support::Unsupported { why } => panic!("unsupported: {why}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_reports_exactly_the_version_matrix_for_every_version_remote_api_and_crowd() {
    for version in VERSIONS {
        for remote in [false, true] {
            for crowd in [false, true] {
                let sim = start(SimSpec::new(version).users(10).remote(remote).crowd(crowd)).await;
                let t = connector(&config(&sim, crowd));
                let probe = t.probe().await.expect("probe");
                let case = format!("{version} remote_api={remote} crowd={crowd}");
                let reported = probe.info.version.clone().expect("a version");
                assert_eq!(dc_version(&reported), sim.version(), "{case}");
                assert_eq!(probe.info.product, "Confluence Data Center", "{case}");
                assert_eq!(probe.info.principal.as_deref(), Some("admin"), "{case}");

                let want = expected(sim.version(), remote, crowd);
                let got: BTreeMap<Capability, bool> = probe
                    .capabilities
                    .iter()
                    .map(|(c, s)| (c, s.is_supported()))
                    .collect();
                assert_eq!(got, want, "{case}: {:#?}", probe.capabilities);

                let caps = &probe.capabilities;
                let v = sim.version();
                if v < DcVersion::V8_2 {
                    let w = caps.get(Capability::Disable);
                    if remote {
                        assert!(via(w).contains("Remote API deactivateUser"), "{case}");
                    } else {
                        assert!(why(w).contains("8.2"), "{case}");
                    }
                    assert!(why(caps.get(Capability::Delete)).contains("8.2"), "{case}");
                } else {
                    assert!(
                        via(caps.get(Capability::Disable)).starts_with("REST"),
                        "{case}"
                    );
                }
                if v < DcVersion::V8_4 {
                    assert!(
                        why(caps.get(Capability::CreateAccount)).contains("8.4"),
                        "{case}"
                    );
                    if !remote {
                        assert!(
                            why(caps.get(Capability::ListAccounts)).contains("8.4"),
                            "{case}"
                        );
                    } else {
                        assert!(
                            via(caps.get(Capability::ListAccounts)).contains("partial"),
                            "{case}: the Remote API listing says it is partial"
                        );
                    }
                }
                if v < DcVersion::V9_0 {
                    assert!(
                        why(caps.get(Capability::NestedGroups)).contains("9."),
                        "{case}"
                    );
                }
                if v >= DcVersion::V10_2 {
                    assert_eq!(probe.info.last_login, LastLoginSource::Rest, "{case}");
                } else {
                    assert_eq!(
                        probe.info.last_login,
                        LastLoginSource::IdentityProviders,
                        "{case}"
                    );
                    assert!(
                        why(caps.get(Capability::LastLogin)).contains("10.2"),
                        "{case}"
                    );
                }
                match (remote, crowd) {
                    (false, false) => {
                        let w = why(caps.get(Capability::Rename));
                        assert!(
                            w.contains("Remote API") && w.contains("Crowd"),
                            "{case}: rename names how to enable it: {w}"
                        );
                    }
                    (_, true) => {
                        assert!(
                            via(caps.get(Capability::Rename)).contains("Crowd"),
                            "{case}"
                        )
                    }
                    (true, false) => assert!(
                        via(caps.get(Capability::Rename)).contains("renameUser"),
                        "{case}"
                    ),
                }
                assert!(
                    why(caps.get(Capability::ChangeDirectory)).contains("no API"),
                    "{case}"
                );
                assert!(
                    sim.mutations()
                        .iter()
                        .all(|r| r.path.contains("/rpc/") || r.path.contains("/crowd/")),
                    "{case}: the probe changes nothing: {:?}",
                    sim.mutations()
                );
                sim.stop().await;
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// 2. Every supported capability works, on the simulator's state

/// Runs `write` twice: the first changes the simulator, the second finds it done and sends
/// no write.
/// Requests that may change state: every non-GET except JSON-RPC reads.
fn writes(sim: &DcSim) -> Vec<idbridge::sim::common::LoggedRequest> {
    const READS: [&str; 5] = [
        "/getUser",
        "/hasUser",
        "/isActiveUser",
        "/getUserGroups",
        "/getActiveUsers",
    ];
    sim.mutations()
        .into_iter()
        .filter(|r| {
            !(r.path.contains("/rpc/json-rpc/") && READS.iter().any(|m| r.path.ends_with(m)))
        })
        .collect()
}

async fn twice<F, Fut>(sim: &DcSim, what: &str, write: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<WriteOutcome, TargetError>>,
{
    let before = writes(sim).len();
    assert_eq!(
        write().await.unwrap_or_else(|e| panic!("{what}: {e}")),
        WriteOutcome::Changed,
        "{what}"
    );
    assert!(writes(sim).len() > before, "{what} sent a write");
    let after = writes(sim).len();
    assert_eq!(
        write()
            .await
            .unwrap_or_else(|e| panic!("{what} again: {e}")),
        WriteOutcome::AlreadyDone,
        "{what} again"
    );
    assert_eq!(
        writes(sim).len(),
        after,
        "{what} again sent a write: {:?}",
        &writes(sim)[after..]
    );
}

/// Asserts `result` is `Unsupported` for `cap` and nothing was written.
fn unsupported<T: std::fmt::Debug>(
    sim: &DcSim,
    before: usize,
    cap: Capability,
    result: Result<T, TargetError>,
    case: &str,
) {
    match result {
        Err(TargetError::Unsupported { capability, .. }) => assert_eq!(capability, cap, "{case}"),
        other => panic!("{case}: {cap} should be unsupported, got {other:?}"),
    }
    assert_eq!(
        sim.mutations().len(),
        before,
        "{case}: an unsupported {cap} sent a write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_enable_and_membership_writes_change_the_simulator_once_on_every_version() {
    for version in VERSIONS {
        for remote in [false, true] {
            let v = dc_version(version);
            if remote && v >= DcVersion::V8_4 {
                continue; // REST does it; the Remote API is not used
            }
            let case = format!("{version} remote_api={remote}");
            let sim = start(SimSpec::new(version).users(12).remote(remote)).await;
            let t = connector(&config(&sim, false));
            t.probe().await.expect("probe");
            let bob = make_user(&sim, "it.bob", None, &["confluence-users"]).await;
            let contractors = GroupRef::named("contractors");

            if v < DcVersion::V8_2 && !remote {
                let before = sim.mutations().len();
                unsupported(
                    &sim,
                    before,
                    Capability::Disable,
                    t.disable(&bob).await,
                    &case,
                );
                unsupported(
                    &sim,
                    before,
                    Capability::Enable,
                    t.enable(&bob).await,
                    &case,
                );
                unsupported(
                    &sim,
                    before,
                    Capability::AddToGroup,
                    t.add_to_group(&bob, &contractors).await,
                    &case,
                );
                unsupported(
                    &sim,
                    before,
                    Capability::RemoveFromGroup,
                    t.remove_from_group(&bob, &GroupRef::named("confluence-users"))
                        .await,
                    &case,
                );
                assert!(sim.user("it.bob").unwrap().active, "{case}");
                sim.stop().await;
                continue;
            }

            twice(&sim, &format!("{case}: disable"), || t.disable(&bob)).await;
            assert!(!sim.user("it.bob").unwrap().active, "{case}: deactivated");
            twice(&sim, &format!("{case}: enable"), || t.enable(&bob)).await;
            assert!(sim.user("it.bob").unwrap().active, "{case}: reactivated");
            twice(&sim, &format!("{case}: add to group"), || {
                t.add_to_group(&bob, &contractors)
            })
            .await;
            assert!(
                sim.user("it.bob")
                    .unwrap()
                    .groups
                    .contains(&"contractors".to_owned()),
                "{case}: added"
            );
            twice(&sim, &format!("{case}: remove from group"), || {
                t.remove_from_group(&bob, &contractors)
            })
            .await;
            assert!(
                !sim.user("it.bob")
                    .unwrap()
                    .groups
                    .contains(&"contractors".to_owned()),
                "{case}: removed"
            );
            let paths: Vec<String> = sim.mutations().iter().map(|r| r.path.clone()).collect();
            if v >= DcVersion::V8_2 {
                assert!(
                    paths
                        .iter()
                        .any(|p| p.ends_with("/rest/api/admin/user/it.bob/disable")),
                    "{case}: REST disable used: {paths:?}"
                );
            } else {
                assert!(
                    paths.iter().any(|p| p.contains("/rpc/")),
                    "{case}: the Remote API used: {paths:?}"
                );
                assert!(
                    !paths.iter().any(|p| p.contains("/rest/api/admin/")),
                    "{case}: no REST write before 8.2: {paths:?}"
                );
            }
            sim.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_through_the_remote_api_json_rpc_and_xml_rpc_keeps_the_user_key() {
    for (version, xml) in [
        ("7.13", false),
        ("7.13", true),
        ("8.1", true),
        ("9.3", false),
        ("10.2", true),
    ] {
        let case = format!("{version} xml_rpc={xml}");
        let sim = start(SimSpec::new(version).users(12).remote(true)).await;
        if xml {
            // JSON-RPC answers 404 for ever: the connector must fall back to XML-RPC.
            fault(
                &sim,
                None,
                "/rpc/json-rpc",
                FaultKind::Status { status: 404 },
                None,
            );
        }
        let t = connector(&config(&sim, false));
        let probe = t.probe().await.expect("probe");
        let rename_via = via(probe.capabilities.get(Capability::Rename));
        assert!(
            rename_via.contains(if xml { "XML-RPC" } else { "JSON-RPC" }),
            "{case}: {rename_via}"
        );
        let carol = make_user(&sim, "it.carol", None, &["confluence-users"]).await;
        twice(&sim, &format!("{case}: rename"), || {
            t.rename(&carol, "it.carol.renamed")
        })
        .await;
        assert!(sim.user("it.carol").is_none(), "{case}: old name gone");
        let renamed = sim.user("it.carol.renamed").expect("renamed");
        assert_eq!(renamed.user_key, carol.key, "{case}: userKey stays");
        let paths: Vec<String> = sim.mutations().iter().map(|r| r.path.clone()).collect();
        let rpc_path = if xml { "/rpc/xmlrpc" } else { "/rpc/json-rpc" };
        assert!(
            paths.iter().any(|p| p.contains(rpc_path)),
            "{case}: {paths:?}"
        );
        // A rename onto a taken name is refused, not faked.
        let _ = make_user(&sim, "it.taken", None, &[]).await;
        let err = t.rename(&carol, "it.taken").await.unwrap_err();
        assert!(
            matches!(
                err,
                TargetError::Conflict { .. } | TargetError::Rejected { .. }
            ),
            "{case}: {err:?}"
        );
        assert_eq!(
            sim.user_by_key(&carol.key).unwrap().username,
            "it.carol.renamed"
        );
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_of_a_crowd_user_goes_through_crowd_and_keeps_the_user_key() {
    for version in ["8.1", "9.3", "10.2"] {
        let sim = start(SimSpec::new(version).users(12).crowd(true)).await;
        let mut cfg = config(&sim, true);
        cfg.remote_api = RemoteApiMode::Off;
        let t = connector(&cfg);
        t.probe().await.expect("probe");
        let dan = make_user(&sim, "it.dan", Some("Crowd"), &["confluence-users"]).await;
        twice(&sim, &format!("{version}: crowd rename"), || {
            t.rename(&dan, "it.dan.crowd")
        })
        .await;
        let u = sim.user_by_key(&dan.key).expect("still there");
        assert_eq!(u.username, "it.dan.crowd", "{version}");
        assert_eq!(u.directory, "Crowd", "{version}");
        assert!(
            sim.mutations()
                .iter()
                .any(|r| r.path.contains("/crowd/") && r.path.ends_with("/user/rename")),
            "{version}: {:?}",
            sim.mutations()
        );
        // An internal-directory user is not in Crowd and there is no Remote API: refused.
        let erin = make_user(&sim, "it.erin", None, &[]).await;
        let before = sim.mutations().len();
        let err = t.rename(&erin, "it.erin.x").await.unwrap_err();
        assert!(
            matches!(
                err,
                TargetError::Unsupported {
                    capability: Capability::Rename,
                    ..
                }
            ),
            "{version}: {err:?}"
        );
        assert_eq!(sim.mutations().len(), before);
        assert!(sim.user("it.erin").is_some());
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_without_the_remote_api_or_crowd_is_unsupported_and_sends_nothing() {
    let sim = start(SimSpec::new("9.3").users(10)).await;
    let t = connector(&config(&sim, false));
    t.probe().await.expect("probe");
    let fay = make_user(&sim, "it.fay", None, &[]).await;
    let before = sim.mutations().len();
    unsupported(
        &sim,
        before,
        Capability::Rename,
        t.rename(&fay, "it.fay.x").await,
        "9.3",
    );
    unsupported(
        &sim,
        before,
        Capability::ChangeDirectory,
        t.change_directory(&fay, "Corporate LDAP").await,
        "9.3",
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_the_long_task_and_the_user_is_gone_afterwards() {
    for version in VERSIONS {
        let sim = start(SimSpec::new(version).users(10)).await;
        let t = connector(&config(&sim, false));
        t.probe().await.expect("probe");
        let gil = make_user(&sim, "it.gil", None, &["confluence-users"]).await;
        if dc_version(version) < DcVersion::V8_2 {
            let before = sim.mutations().len();
            unsupported(
                &sim,
                before,
                Capability::Delete,
                t.delete(&gil).await,
                version,
            );
            assert!(sim.user("it.gil").is_some());
        } else {
            twice(&sim, &format!("{version}: delete"), || t.delete(&gil)).await;
            assert!(sim.user_by_key(&gil.key).is_none(), "{version}: deleted");
            assert!(sim.user("it.gil").is_none(), "{version}: deleted");
            assert!(
                sim.core()
                    .requests()
                    .iter()
                    .any(|r| r.method == "GET" && r.path.contains("/rest/api/longtask/")),
                "{version}: the task was polled"
            );
            assert_eq!(t.get_account(&gil).await.unwrap(), None, "{version}");
        }
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_task_that_fails_is_an_error_naming_the_reason_and_the_user_stays() {
    let sim = start(SimSpec::new("9.3").users(10)).await;
    control(
        &sim,
        reqwest::Method::PUT,
        "/__sim/settings",
        json!({"deleteTaskFailure": "the user owns content that cannot be reassigned"}),
    )
    .await;
    let t = connector(&config(&sim, false));
    let pat = make_user(&sim, "it.pat", None, &[]).await;
    let err = t.delete(&pat).await.unwrap_err();
    match &err {
        TargetError::Rejected { detail, .. } => {
            assert!(detail.contains("cannot be reassigned"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert!(sim.user_by_key(&pat.key).is_some(), "the user stays");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_update_profile_work_where_the_version_has_them() {
    for version in VERSIONS {
        let v = dc_version(version);
        let sim = start(SimSpec::new(version).users(10)).await;
        let t = connector(&config(&sim, false));
        t.probe().await.expect("probe");
        let new = NewRemoteAccount {
            username: "it.hal".into(),
            email: "hal@example.com".into(),
            display_name: "Hal Ninethousand".into(),
        };
        let before = sim.mutations().len();
        if v < DcVersion::V8_4 {
            unsupported(
                &sim,
                before,
                Capability::CreateAccount,
                t.create_account(&new).await,
                version,
            );
            assert!(sim.user("it.hal").is_none());
        } else {
            let created = t.create_account(&new).await.expect("create");
            let u = sim
                .user_by_key(&created.key)
                .expect("created in the simulator");
            assert_eq!(u.username, "it.hal", "{version}");
            assert_eq!(u.email, "hal@example.com", "{version}");
            assert_eq!(u.display_name, "Hal Ninethousand", "{version}");
            assert!(u.active, "{version}");
            assert_eq!(created.username, "it.hal");
            assert!(created.active);
            let again = t.create_account(&new).await.unwrap_err();
            assert!(matches!(again, TargetError::Conflict { .. }), "{again:?}");
        }

        let ivy = make_user(&sim, "it.ivy", None, &[]).await;
        let before = sim.mutations().len();
        if v < DcVersion::V9_0 {
            unsupported(
                &sim,
                before,
                Capability::UpdateProfile,
                t.update_profile(&ivy, "ivy@new.example.com", "Ivy New")
                    .await,
                version,
            );
        } else {
            // REST shows no email for one user, so a repeat cannot be recognised and the
            // (idempotent) PUT is sent again; the state stays as asked.
            for round in 0..2 {
                let before = writes(&sim).len();
                assert_eq!(
                    t.update_profile(&ivy, "ivy@new.example.com", "Ivy New")
                        .await
                        .unwrap(),
                    WriteOutcome::Changed,
                    "{version} round {round}"
                );
                assert_eq!(writes(&sim).len(), before + 1, "{version} round {round}");
                let u = sim.user("it.ivy").unwrap();
                assert_eq!(u.email, "ivy@new.example.com", "{version}");
                assert_eq!(u.display_name, "Ivy New", "{version}");
            }
        }
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_profile_with_the_remote_api_reads_the_email_and_writes_once() {
    for version in ["9.3", "10.2"] {
        let sim = start(SimSpec::new(version).users(10).remote(true)).await;
        let t = connector(&config(&sim, false));
        t.probe().await.expect("probe");
        let ivy = make_user(&sim, "it.ivy", None, &[]).await;
        twice(&sim, &format!("{version}: update profile"), || {
            t.update_profile(&ivy, "ivy@new.example.com", "Ivy New")
        })
        .await;
        let u = sim.user("it.ivy").unwrap();
        assert_eq!(u.email, "ivy@new.example.com", "{version}");
        assert_eq!(u.display_name, "Ivy New", "{version}");
        // Only the email differs: still seen, still written once.
        twice(&sim, &format!("{version}: update email"), || {
            t.update_profile(&ivy, "ivy@other.example.com", "Ivy New")
        })
        .await;
        assert_eq!(sim.user("it.ivy").unwrap().email, "ivy@other.example.com");
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_match_the_simulator_on_every_version() {
    for version in VERSIONS {
        let v = dc_version(version);
        let sim = start(SimSpec::new(version).users(40)).await;
        let t = connector(&config(&sim, false));
        t.probe().await.expect("probe");
        let jo = make_user(&sim, "it.jo", None, &["engineering", "contractors"]).await;
        sim.set_active("it.jo", false);

        // One account, by key and by username.
        let a = t.get_account(&jo).await.unwrap().expect("found");
        let view = sim.user("it.jo").unwrap();
        assert_eq!(a.key, view.user_key, "{version}");
        assert_eq!(a.username, "it.jo");
        assert_eq!(a.display_name.as_deref(), Some(view.display_name.as_str()));
        assert!(!a.active, "{version}: deactivated");
        assert_eq!(a.raw_status.to_lowercase(), "deactivated", "{version}");
        let by_name = AccountRef {
            key: String::new(),
            username: "it.jo".into(),
        };
        assert_eq!(
            t.get_account(&by_name).await.unwrap().map(|a| a.key),
            Some(view.user_key.clone())
        );
        let nobody = AccountRef {
            key: "0123456789abcdef0123456789abcdef".into(),
            username: "nobody".into(),
        };
        assert_eq!(t.get_account(&nobody).await.unwrap(), None, "{version}");

        // Direct groups.
        let groups: BTreeSet<String> = t
            .account_groups(&jo)
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        let want: BTreeSet<String> = view.groups.iter().cloned().collect();
        assert_eq!(groups, want, "{version}");

        // Every group, and the members of `staff` (users, and `engineering` nested from 9.x).
        let mut all_groups = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = t.list_groups(cursor.as_deref()).await.unwrap();
            all_groups.extend(page.items.into_iter().map(|g| g.name));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        for g in ["confluence-users", "staff", "engineering", "contractors"] {
            assert!(all_groups.iter().any(|n| n == g), "{version}: {g}");
        }
        let mut members = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = t
                .group_members(&GroupRef::named("staff"), cursor.as_deref())
                .await
                .unwrap();
            members.extend(page.items);
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let nested: Vec<&str> = members
            .iter()
            .filter_map(|m| match m {
                Member::Group { name } => Some(name.as_str()),
                Member::Account { .. } => None,
            })
            .collect();
        if v >= DcVersion::V9_0 {
            assert_eq!(nested, vec!["engineering"], "{version}");
        } else {
            assert!(nested.is_empty(), "{version}");
        }
        let accounts: Vec<&String> = members
            .iter()
            .filter_map(|m| match m {
                Member::Account { key, .. } => Some(key),
                Member::Group { .. } => None,
            })
            .collect();
        assert!(!accounts.is_empty(), "{version}: staff has direct members");
        for key in accounts {
            let u = sim.user_by_key(key).expect("a member exists");
            assert!(u.groups.contains(&"staff".to_owned()), "{version}: {key}");
        }

        // Licence groups and counters.
        let lg: BTreeSet<String> = t.licence_groups().await.unwrap().into_iter().collect();
        if v >= DcVersion::V9_3 {
            let want: BTreeSet<String> = [
                "confluence-administrators",
                "confluence-users",
                "ldap-confluence",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect();
            assert_eq!(lg, want, "{version}: from global permissions");
        } else {
            assert_eq!(
                lg,
                BTreeSet::from(["confluence-users".to_owned()]),
                "{version}: configured"
            );
        }
        let (max, used) = t.licence_counters().await.unwrap();
        assert_eq!(max, Some(80), "{version}: twice the users by default");
        assert_eq!(used, Some(sim.licensed_count() as u64), "{version}");
        sim.stop().await;
    }
}

// ------------------------------------------------------------------------------------------
// 3. Inventory on both backends

async fn store_for(backend: Backend) -> Option<(TestDb, Store)> {
    let db = TestDb::create(backend).await?;
    let clock = std::sync::Arc::new(ManualClock::new(start_time()));
    let store = Store::connect(&db.config(), clock).await.unwrap();
    store.migrate().await.unwrap();
    Some((db, store))
}

async fn inventory(store: &Store, name: &str, t: &ConfluenceDc) -> InventoryReport {
    let record = store
        .ensure_target(name, TargetKind::ConfluenceDc, "http://wiki.test")
        .await
        .unwrap();
    sync_target(store, &record, t, &InventoryOptions::default())
        .await
        .expect("inventory recorded")
}

on_both_backends!(
    an_inventory_of_every_listing_version_is_complete_and_counts_as_the_simulator_does,
    an_inventory_before_8_4_without_the_remote_api_fails_naming_8_4,
    absolute_and_relative_next_links_both_give_complete_inventories,
    an_inventory_hit_by_html_or_truncated_bodies_is_stored_incomplete_with_the_reason,
);

async fn an_inventory_of_every_listing_version_is_complete_and_counts_as_the_simulator_does(
    backend: Backend,
) {
    let Some((_db, store)) = store_for(backend).await else {
        return;
    };
    for version in ["8.4", "9.3", "10.2"] {
        let sim = start(SimSpec::new(version).users(60)).await;
        let mut cfg = config(&sim, false);
        if dc_version(version) < DcVersion::V9_3 {
            // No global-permission REST: the admin names every licence-granting group,
            // the nested ones included (their nesting is not readable before 9.x).
            cfg.licence_groups = [
                "confluence-users",
                "confluence-administrators",
                "ldap-confluence",
                "staff",
                "engineering",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect();
        }
        let t = connector(&cfg);
        let report = inventory(&store, &format!("wiki-{version}"), &t).await;
        assert!(report.is_complete(), "{version}: {:?}", report.reason);
        assert_eq!(report.accounts, effective_users(&sim), "{version}");
        assert_eq!(
            report.snapshot.item_count as u64,
            effective_users(&sim),
            "{version}"
        );
        let licence = report.licence.clone().expect("licence usage");
        let sysadmin = sim.user("sysadmin").expect("the built-in sysadmin");
        assert!(sysadmin.licensed && sysadmin.groups.is_empty());
        if dc_version(version) < DcVersion::V9_3 {
            // Before 9.3 only groups can be configured: `sysadmin`, licensed through a
            // permission granted to the user directly, cannot be seen.
            assert_eq!(
                licence.licensed,
                sim.licensed_count() as u64 - 1,
                "{version}: {licence:?}"
            );
        } else {
            assert_eq!(
                licence.licensed,
                sim.licensed_count() as u64,
                "{version}: {licence:?}"
            );
        }
        assert_eq!(
            licence.reported_in_use,
            Some(sim.licensed_count() as u64),
            "{version}"
        );
        let record = store
            .ensure_target(
                &format!("wiki-{version}"),
                TargetKind::ConfluenceDc,
                "http://wiki.test",
            )
            .await
            .unwrap();
        let stored = store.target_accounts(record.id).await.unwrap();
        assert_eq!(stored.len() as u64, effective_users(&sim), "{version}");
        let with_login: Vec<_> = stored
            .iter()
            .filter(|a| a.last_login_at.is_some())
            .collect();
        if version == "10.2" {
            assert!(!with_login.is_empty(), "10.2: last logins come through");
            for a in &with_login {
                let u = sim.user_by_key(&a.account_key).unwrap();
                assert_eq!(
                    a.last_login_at.map(|t| t.timestamp_millis() / 1000),
                    u.login_info.success_ms.map(|ms| ms / 1000),
                    "10.2: last login of {}",
                    a.user_name
                );
            }
        } else {
            assert!(with_login.is_empty(), "{version}: no last-login source");
        }
        sim.stop().await;
    }

    // 7.13 with the Remote API: the connector offers a partial fallback (usernames from
    // getActiveUsers), which the simulator answers with active users only.
    let sim = start(SimSpec::new("7.13").users(60).remote(true)).await;
    let t = connector(&config(&sim, false));
    let report = inventory(&store, "wiki-7.13", &t).await;
    let probe = report.probe.clone().expect("probe");
    assert!(
        via(probe.capabilities.get(Capability::ListAccounts))
            .contains("deactivated accounts may be missing"),
        "the fallback says it is partial"
    );
    let active = sim.summary()["active"].as_u64().unwrap();
    assert_eq!(report.accounts, active, "7.13: the active users, each once");
    assert!(report.accounts < effective_users(&sim));
    assert_eq!(
        report.snapshot.status,
        SnapshotStatus::Incomplete,
        "a listing without deactivated accounts must never count as complete"
    );
    let reason = report.reason.clone().unwrap();
    assert!(reason.contains("active users only"), "{reason}");
    sim.stop().await;
}

async fn an_inventory_before_8_4_without_the_remote_api_fails_naming_8_4(backend: Backend) {
    let Some((_db, store)) = store_for(backend).await else {
        return;
    };
    let sim = start(SimSpec::new("8.2").users(20)).await;
    let t = connector(&config(&sim, false));
    let report = inventory(&store, "wiki", &t).await;
    assert_eq!(report.snapshot.status, SnapshotStatus::Failed);
    let reason = report.reason.clone().unwrap();
    assert!(reason.contains("8.4"), "{reason}");
    assert_eq!(
        report.snapshot.detail["reason"].as_str(),
        Some(reason.as_str())
    );
    sim.stop().await;
}

async fn absolute_and_relative_next_links_both_give_complete_inventories(backend: Backend) {
    let Some((_db, store)) = store_for(backend).await else {
        return;
    };
    let mut opts = SimSpec::new("10.2").users(70).options();
    opts.relative_links = false;
    let sim = start_with(opts).await;
    for relative in [false, true] {
        if relative {
            control(
                &sim,
                reqwest::Method::PUT,
                "/__sim/settings",
                json!({"relativeLinks": true}),
            )
            .await;
        }
        let mut cfg = config(&sim, false);
        cfg.page_size = 9;
        let t = connector(&cfg);
        let report = inventory(&store, &format!("wiki-{relative}"), &t).await;
        assert!(
            report.is_complete(),
            "relative={relative}: {:?}",
            report.reason
        );
        assert_eq!(
            report.accounts,
            effective_users(&sim),
            "relative={relative}"
        );
        let listed = list_all(&t).await;
        let keys: BTreeSet<&str> = listed.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys.len(), listed.len(), "relative={relative}: no repeats");
        assert_eq!(keys.len() as u64, effective_users(&sim));
        // The pages really followed the links the simulator gave.
        let pages = sim
            .core()
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/rest/api/user/list"))
            .count();
        assert!(pages >= 70 / 9, "relative={relative}: {pages} pages");
    }
    sim.stop().await;
}

async fn an_inventory_hit_by_html_or_truncated_bodies_is_stored_incomplete_with_the_reason(
    backend: Backend,
) {
    let Some((_db, store)) = store_for(backend).await else {
        return;
    };
    for (kind, word) in [
        (FaultKind::Html, "HTML"),
        (FaultKind::Truncate, "truncated"),
    ] {
        let sim = start(SimSpec::new("9.3").users(60)).await;
        let mut cfg = config(&sim, false);
        cfg.page_size = 20;
        let t = connector(&cfg);
        t.probe().await.expect("probe");
        // The account listing breaks.
        fault(&sim, Some("GET"), "/rest/api/user/list", kind.clone(), None);
        let report = inventory(&store, &format!("wiki-{word}"), &t).await;
        assert_ne!(report.snapshot.status, SnapshotStatus::Complete, "{word}");
        let reason = report.reason.clone().unwrap_or_default();
        assert!(
            reason.to_lowercase().contains(&word.to_lowercase()),
            "{word}: {reason}"
        );
        assert_eq!(
            report.snapshot.detail["reason"].as_str(),
            Some(reason.as_str())
        );
        sim.stop().await;
    }
}

// ------------------------------------------------------------------------------------------
// 4. Bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pat_is_unauthorized_and_the_viewer_is_forbidden_on_admin_writes() {
    let sim = start(SimSpec::new("9.3").users(10)).await;
    let mut cfg = config(&sim, false);
    cfg.token = Some(Secret::new("not-the-pat"));
    cfg.username = None;
    cfg.password = None;
    let err = connector(&cfg).probe().await.unwrap_err();
    assert!(matches!(err, TargetError::Unauthorized { .. }), "{err:?}");

    let (viewer, _password, viewer_pat) = sim.viewer();
    let mut cfg = config(&sim, false);
    cfg.token = Some(Secret::new(viewer_pat));
    cfg.username = None;
    cfg.password = None;
    let t = connector(&cfg);
    let probe = t.probe().await.expect("the viewer can probe");
    assert_eq!(probe.info.principal.as_deref(), Some(viewer));
    let kim = make_user(&sim, "it.kim", None, &["confluence-users"]).await;
    let before = sim.mutations().len();
    let err = t.disable(&kim).await.unwrap_err();
    assert!(matches!(err, TargetError::Forbidden { .. }), "{err:?}");
    let err = t.delete(&kim).await.unwrap_err();
    assert!(matches!(err, TargetError::Forbidden { .. }), "{err:?}");
    assert!(sim.user("it.kim").unwrap().active);
    assert!(
        sim.mutations()[before..].iter().all(|r| r.status == 403),
        "{:?}",
        &sim.mutations()[before..]
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_read_only_ldap_user_fail_with_a_403_that_says_read_only() {
    let sim = start(SimSpec::new("9.3").users(10)).await;
    let t = connector(&config(&sim, false));
    t.probe().await.expect("probe");
    let lee = make_user(&sim, "it.lee", Some("Corporate LDAP"), &["ldap-confluence"]).await;
    // A read-only directory is not a permission problem of idbridge's: the change belongs
    // in the directory that owns the account, so it is reported as managed elsewhere.
    let read_only_403 = |err: &TargetError| match err {
        TargetError::ManagedByIdp { detail } => {
            detail.to_lowercase().contains("read-only") && detail.contains("403")
        }
        _ => false,
    };
    let err = t.disable(&lee).await.unwrap_err();
    assert!(read_only_403(&err), "{err:?}");
    let err = t
        .remove_from_group(&lee, &GroupRef::named("ldap-confluence"))
        .await
        .unwrap_err();
    assert!(read_only_403(&err), "{err:?}");
    assert!(sim.user("it.lee").unwrap().active);
    // Local groups stay writable for a READ_ONLY_LOCAL_GROUPS directory.
    assert_eq!(
        t.add_to_group(&lee, &GroupRef::named("contractors"))
            .await
            .unwrap(),
        WriteOutcome::Changed
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_login_pages_and_truncated_json_are_unexpected_bodies_not_panics() {
    let sim = start(SimSpec::new("9.3").users(20)).await;
    let t = connector(&config(&sim, false));
    t.probe().await.expect("probe");
    let mo = make_user(&sim, "it.mo", None, &[]).await;
    for (kind, word) in [
        (FaultKind::Html, "html"),
        (FaultKind::Truncate, "truncated"),
    ] {
        fault(&sim, Some("GET"), "/rest/api/user", kind.clone(), Some(1));
        let err = t.get_account(&mo).await.unwrap_err();
        match &err {
            TargetError::UnexpectedBody { detail, .. } => {
                assert!(detail.to_lowercase().contains(word), "{word}: {detail}")
            }
            other => panic!("{word}: {other:?}"),
        }
        fault(&sim, Some("GET"), "/rest/api/user/list", kind, Some(1));
        let err = t.list_accounts(None).await.unwrap_err();
        assert!(
            matches!(err, TargetError::UnexpectedBody { .. }),
            "{word}: {err:?}"
        );
    }
    // A probe that gets the login page fails clearly too.
    fault(
        &sim,
        Some("GET"),
        "/rest/api/user/current",
        FaultKind::Html,
        Some(1),
    );
    let err = connector(&config(&sim, false)).probe().await.unwrap_err();
    assert!(
        matches!(&err, TargetError::UnexpectedBody { detail, .. } if detail.to_lowercase().contains("html")),
        "{err:?}"
    );
    // Nothing lingers: the next call works.
    assert!(t.get_account(&mo).await.unwrap().is_some());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_too_old_for_an_action_is_unsupported_without_a_request() {
    let sim = start(SimSpec::new("7.13").users(10)).await;
    let t = connector(&config(&sim, false));
    t.probe().await.expect("probe");
    let ned = make_user(&sim, "it.ned", None, &["confluence-users"]).await;
    let requests = sim.core().requests().len();
    for (cap, result) in [
        (Capability::Disable, t.disable(&ned).await),
        (Capability::Delete, t.delete(&ned).await),
    ] {
        match result {
            Err(TargetError::Unsupported { capability, why }) => {
                assert_eq!(capability, cap);
                assert!(why.contains("8.2"), "{why}");
            }
            other => panic!("{cap}: {other:?}"),
        }
    }
    let err = t.list_accounts(None).await.unwrap_err();
    assert!(
        matches!(&err, TargetError::Unsupported { capability: Capability::ListAccounts, why } if why.contains("8.4")),
        "{err:?}"
    );
    assert_eq!(sim.core().requests().len(), requests, "nothing was sent");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_503_is_retried() {
    let sim = start(SimSpec::new("9.3").users(20)).await;
    let t = connector(&config(&sim, false));
    t.probe().await.expect("probe");
    fault(
        &sim,
        Some("GET"),
        "/rest/api/user/list",
        FaultKind::Status { status: 503 },
        Some(1),
    );
    let page = t.list_accounts(None).await.expect("retried");
    assert!(!page.items.is_empty());
    let statuses: Vec<u16> = sim
        .core()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/rest/api/user/list"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![503, 200]);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_calls_wait_and_succeed_and_a_blocked_user_fails_within_the_bound() {
    let mut opts = SimSpec::new("9.3").users(20).options();
    opts.rate_limit = Some(4);
    opts.rate_limit_burst = Some(4);
    let sim = start_with(opts).await;
    let mut cfg = config(&sim, false);
    cfg.max_rate_limit_wait_secs = 10;
    let t = connector(&cfg);
    t.probe().await.expect("probe");
    let oz = make_user(&sim, "it.oz", None, &[]).await;
    let started = Instant::now();
    for i in 0..14 {
        let a = t
            .get_account(&oz)
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert!(a.is_some());
    }
    // 4 requests a second with a bucket of 4: the calls had to wait, and none failed.
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(1500) && waited < Duration::from_secs(20),
        "{waited:?}"
    );
    assert!(
        sim.core().requests().iter().any(|r| r.status == 429)
            || waited > Duration::from_millis(2000),
        "the connector either honoured 429s or paced itself on X-RateLimit-Remaining"
    );

    // Blocked: 429 with Retry-After of i64::MAX; the connector gives up within its bound.
    control(
        &sim,
        reqwest::Method::PUT,
        "/__sim/rate-limit",
        json!({"blocked": [sim.admin_user()]}),
    )
    .await;
    let mut cfg = config(&sim, false);
    cfg.max_rate_limit_wait_secs = 1;
    let t = connector(&cfg);
    let started = Instant::now();
    let err = t.probe().await.unwrap_err();
    assert!(matches!(err, TargetError::RateLimited { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    sim.stop().await;
}
