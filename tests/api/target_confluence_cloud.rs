//! The Atlassian Cloud connector against the Cloud simulator: probe and capabilities, full
//! listings, idempotent writes, IdP-managed users and groups, rate limits, broken bodies and
//! page cursors that loop.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::{get, post};
use idbridge::config::TargetConfig;
use idbridge::sim::atlassian_cloud::{self, CloudSim, CloudSimOptions, MembershipStatus};
use idbridge::sim::common::{Fault, FaultKind};
use idbridge::targets::confluence_cloud::{AtlassianCloud, SYNCED_ACCOUNT};
use idbridge::targets::{
    AccountRef, Capability, GroupRef, LastLoginSource, Member, NewRemoteAccount, RemoteAccount,
    Target, TargetError, WriteOutcome,
};
use serde_json::{Value, json};

async fn start(users: usize) -> CloudSim {
    atlassian_cloud::start(
        CloudSimOptions {
            users,
            ..CloudSimOptions::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("start the Cloud simulator")
}

fn config(sim: &CloudSim, extra: Value) -> TargetConfig {
    let mut cfg = json!({
        "kind": "confluence_cloud",
        "base_url": sim.base_url(),
        "token": sim.api_key(),
        "org_id": sim.org_id(),
        "site_id": sim.site_id(),
        "page_size": 100,
        "max_rate_limit_wait_secs": 10,
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(cfg).expect("target config")
}

fn connector(sim: &CloudSim) -> AtlassianCloud {
    AtlassianCloud::new("cloud", &config(sim, json!({}))).expect("connector")
}

fn account(sim: &CloudSim, id: &str) -> AccountRef {
    let u = sim.user(id).expect("user");
    AccountRef {
        key: u.account_id,
        username: u.email,
    }
}

fn plain_user(sim: &CloudSim) -> String {
    sim.users()
        .into_iter()
        .find(|u| {
            !u.synced
                && !u.admin
                && u.membership_status == MembershipStatus::Active
                && u.account_status == atlassian_cloud::AccountStatus::Active
                && sim.is_billable(&u.account_id)
                && !sim
                    .user_group_names(&u.account_id)
                    .contains(&"marketing".into())
        })
        .expect("a plain user")
        .account_id
}

async fn list_all(t: &AtlassianCloud) -> Vec<RemoteAccount> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = t.list_accounts(cursor.as_deref()).await.expect("page");
        out.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
    panic!("the listing did not end");
}

/// Requests to paths ending in `suffix` the simulator saw.
fn sent(sim: &CloudSim, suffix: &str) -> usize {
    sim.core()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(suffix) || r.path.contains(suffix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_checks_key_and_org_and_reports_what_cloud_can_and_cannot_do() {
    let sim = start(50).await;
    let t = connector(&sim);
    let probe = t.probe().await.expect("probe");
    assert_eq!(probe.info.product, "Atlassian Cloud organization");
    assert_eq!(probe.info.last_login, LastLoginSource::ProductActivity);
    let caps = &probe.capabilities;
    for cap in [
        Capability::ListAccounts,
        Capability::GetAccount,
        Capability::ListGroups,
        Capability::GroupMembers,
        Capability::LicenceUsage,
        Capability::LastLogin,
        Capability::Disable,
        Capability::Enable,
        Capability::AddToGroup,
        Capability::RemoveFromGroup,
        Capability::Delete,
    ] {
        assert!(caps.get(cap).is_supported(), "{cap} should be supported");
    }
    let why = |cap| match caps.get(cap) {
        idbridge::targets::Support::Unsupported { why } => why,
        other => panic!("{cap} should be unsupported: {other:?}"),
    };
    assert!(why(Capability::NestedGroups).contains("do not nest"));
    assert!(why(Capability::Rename).contains("account holder or the IdP"));
    assert!(!why(Capability::ChangeDirectory).is_empty());
    assert!(!why(Capability::CreateAccount).is_empty());
    assert!(!why(Capability::UpdateProfile).is_empty());
    match caps.get(Capability::Disable) {
        idbridge::targets::Support::Supported { via } => assert!(via.contains("suspend"), "{via}"),
        other => panic!("{other:?}"),
    }

    let bad_key = AtlassianCloud::new("cloud", &config(&sim, json!({"token": "wrong"}))).unwrap();
    assert!(matches!(
        bad_key.probe().await,
        Err(TargetError::Unauthorized { .. })
    ));
    let bad_org = AtlassianCloud::new("cloud", &config(&sim, json!({"org_id": "nope"}))).unwrap();
    let err = bad_org.probe().await.unwrap_err();
    assert!(err.to_string().contains("org_id"), "{err}");
    let bad_dir =
        AtlassianCloud::new("cloud", &config(&sim, json!({"directory_id": "nope"}))).unwrap();
    assert!(matches!(bad_dir.probe().await, Err(TargetError::Config(_))));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_every_page_gives_exactly_the_simulators_population() {
    let sim = start(1000).await;
    let t = connector(&sim);
    let accounts = list_all(&t).await;
    let users = sim.users();
    assert_eq!(accounts.len(), users.len());
    let by_key: BTreeMap<&str, &RemoteAccount> =
        accounts.iter().map(|a| (a.key.as_str(), a)).collect();
    assert_eq!(by_key.len(), users.len(), "an account was listed twice");
    let dirs = sim.directories();
    for u in &users {
        let a = by_key
            .get(u.account_id.as_str())
            .unwrap_or_else(|| panic!("{} missing", u.account_id));
        assert_eq!(a.username, u.email);
        assert_eq!(a.display_name.as_deref(), Some(u.name.as_str()));
        assert_eq!(a.directory.as_deref(), Some(dirs[u.directory].id.as_str()));
        assert_eq!(
            a.active,
            u.membership_status == MembershipStatus::Active
                && u.account_status == atlassian_cloud::AccountStatus::Active
        );
        let licensed = sim
            .user_group_names(&u.account_id)
            .iter()
            .any(|g| g.ends_with("confluence-users") || g == "site-admins");
        assert_eq!(a.licensed, Some(licensed), "{}", u.account_id);
        let expected_login = if licensed { u.last_active } else { None };
        assert_eq!(a.last_login_at, expected_login, "{}", u.account_id);
        assert_eq!(
            a.read_only.as_deref(),
            u.synced.then_some(SYNCED_ACCOUNT),
            "{}",
            u.account_id
        );
        let mut groups = a.groups.clone().unwrap_or_default();
        groups.sort();
        let mut expected = sim.user_group_names(&u.account_id);
        expected.sort();
        assert_eq!(groups, expected);
    }
    assert!(accounts.iter().any(|a| a.read_only.is_some()));
    assert!(accounts.iter().any(|a| a.raw_status == "suspended"));

    let mut groups = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = t.list_groups(cursor.as_deref()).await.unwrap();
        groups.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let names: BTreeSet<String> = groups.iter().map(|g| g.name.clone()).collect();
    let expected: BTreeSet<String> = sim.groups().into_iter().map(|g| g.name).collect();
    assert_eq!(names, expected);
    let okta = groups.iter().find(|g| g.name == "okta-all-staff").unwrap();
    assert!(okta.read_only.is_some());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_and_enable_suspend_and_restore_and_are_idempotent_by_state() {
    let sim = start(100).await;
    let t = connector(&sim);
    let id = plain_user(&sim);
    let who = account(&sim, &id);
    let groups = sim.user_group_names(&id);
    assert_eq!(t.disable(&who).await.unwrap(), WriteOutcome::Changed);
    assert_eq!(
        sim.user(&id).unwrap().membership_status,
        MembershipStatus::Suspended
    );
    assert_eq!(sim.user_group_names(&id), groups, "suspend keeps groups");
    assert_eq!(t.disable(&who).await.unwrap(), WriteOutcome::AlreadyDone);
    assert_eq!(sent(&sim, "/suspend"), 1, "the second disable sent nothing");
    let got = t.get_account(&who).await.unwrap().unwrap();
    assert!(!got.active);
    assert_eq!(got.raw_status, "suspended");
    assert_eq!(t.enable(&who).await.unwrap(), WriteOutcome::Changed);
    assert_eq!(t.enable(&who).await.unwrap(), WriteOutcome::AlreadyDone);
    assert_eq!(sent(&sim, "/restore"), 1);
    assert!(sim.is_billable(&id));

    // No seat left: restoring is refused with a precise error.
    t.disable(&who).await.unwrap();
    sim.set_seats(Some(sim.billable_count()));
    let err = t.enable(&who).await.unwrap_err();
    assert!(matches!(err, TargetError::NoSeats { .. }), "{err}");
    assert!(err.to_string().contains("ADMIN-UAM-409-3"), "{err}");

    let ghost = AccountRef {
        key: "no-such-account".into(),
        username: "ghost@example.com".into(),
    };
    assert!(t.get_account(&ghost).await.unwrap().is_none());
    assert!(matches!(
        t.disable(&ghost).await,
        Err(TargetError::NotFound { .. })
    ));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_are_added_and_removed_once_and_members_read_back() {
    let sim = start(100).await;
    let t = connector(&sim);
    let id = plain_user(&sim);
    let who = account(&sim, &id);
    let marketing = GroupRef::named("marketing");
    assert_eq!(
        t.add_to_group(&who, &marketing).await.unwrap(),
        WriteOutcome::Changed
    );
    assert!(sim.user_group_names(&id).contains(&"marketing".to_owned()));
    assert_eq!(
        t.add_to_group(&who, &marketing).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    let mut members = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = t
            .group_members(&marketing, cursor.as_deref())
            .await
            .unwrap();
        members.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let expected = sim.group_by_name("marketing").unwrap().members.len();
    assert_eq!(members.len(), expected);
    assert!(members.contains(&Member::Account {
        key: id.clone(),
        username: who.username.clone()
    }));
    let groups = t.account_groups(&who).await.unwrap();
    assert!(groups.iter().any(|g| g.name == "marketing"));
    let by_id = GroupRef {
        name: "marketing".into(),
        id: Some(sim.group_by_name("marketing").unwrap().id),
    };
    assert_eq!(
        t.remove_from_group(&who, &by_id).await.unwrap(),
        WriteOutcome::Changed
    );
    assert_eq!(
        t.remove_from_group(&who, &by_id).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    assert!(!sim.user_group_names(&id).contains(&"marketing".to_owned()));
    assert_eq!(sent(&sim, "/memberships"), 2, "one add and one remove sent");
    let missing = t
        .add_to_group(&who, &GroupRef::named("no-such-group"))
        .await
        .unwrap_err();
    assert!(matches!(missing, TargetError::NotFound { .. }), "{missing}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_idp_managed_users_and_groups_fail_at_once_and_send_nothing() {
    let sim = start(200).await;
    let t = connector(&sim);
    let synced = sim
        .users()
        .into_iter()
        .find(|u| u.synced)
        .expect("a synced user");
    let who = account(&sim, &synced.account_id);
    let plain = account(&sim, &plain_user(&sim));
    sim.core().clear_faults();
    let before = sim.core().requests().len();
    for result in [
        t.disable(&who).await,
        t.enable(&who).await,
        t.delete(&who).await,
        t.add_to_group(&who, &GroupRef::named("okta-engineering"))
            .await,
        t.remove_from_group(&who, &GroupRef::named("okta-all-staff"))
            .await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, TargetError::ManagedByIdp { .. }), "{err}");
        assert!(!err.is_transient());
    }
    // A local user and an IdP-synced group live in different directories: refused too.
    let err = t
        .add_to_group(&plain, &GroupRef::named("okta-engineering"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TargetError::ManagedByIdp { .. } | TargetError::NotFound { .. }
        ),
        "{err}"
    );
    let writes: Vec<_> = sim.core().requests()[before..]
        .iter()
        .filter(|r| !r.path.ends_with("/search") && r.method != "GET")
        .cloned()
        .collect();
    assert!(writes.is_empty(), "writes were sent: {writes:?}");
    // The synced user's own errors are ManagedByIdp, not a generic refusal.
    assert!(matches!(
        t.disable(&who).await,
        Err(TargetError::ManagedByIdp { .. })
    ));
    assert_eq!(
        sim.user(&synced.account_id).unwrap().membership_status,
        MembershipStatus::Active
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_call_waits_boundedly_then_succeeds() {
    let sim = start(50).await;
    let t = connector(&sim);
    t.probe().await.unwrap();
    sim.set_rate_limit_per_minute(Some(60));
    let http = reqwest::Client::new();
    let org = sim.org_id();
    // Use up the bucket.
    loop {
        let r = http
            .get(format!(
                "{}/admin/v2/orgs/{org}/directories",
                sim.base_url()
            ))
            .bearer_auth(sim.api_key())
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            break;
        }
    }
    let started = Instant::now();
    let page = t.list_accounts(None).await.expect("succeeds after waiting");
    assert!(!page.items.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(500));
    let limited = sim
        .core()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/users/search") && r.status == 429)
        .count();
    assert!(limited >= 1, "the connector never met the limit");

    // With no patience left, the limit is reported, not waited out.
    let impatient = AtlassianCloud::new(
        "cloud",
        &config(&sim, json!({"max_rate_limit_wait_secs": 0})),
    )
    .unwrap();
    loop {
        let r = http
            .get(format!(
                "{}/admin/v2/orgs/{org}/directories",
                sim.base_url()
            ))
            .bearer_auth(sim.api_key())
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            break;
        }
    }
    let err = impatient.list_accounts(None).await.unwrap_err();
    assert!(matches!(err, TargetError::RateLimited { .. }), "{err}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_and_truncated_bodies_give_clear_errors() {
    let sim = start(50).await;
    let t = connector(&sim);
    t.probe().await.unwrap();
    sim.core().add_fault(Fault {
        method: None,
        path_prefix: Some("/admin/v2".into()),
        kind: FaultKind::Html,
        times: Some(1),
    });
    let err = t.list_accounts(None).await.unwrap_err();
    assert!(err.to_string().contains("HTML page"), "{err}");
    sim.core().add_fault(Fault {
        method: None,
        path_prefix: Some("/admin/v2".into()),
        kind: FaultKind::Truncate,
        times: Some(1),
    });
    let err = t.list_accounts(None).await.unwrap_err();
    assert!(matches!(err, TargetError::UnexpectedBody { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("truncated") || text.contains("cut off"),
        "{text}"
    );
    // And after the faults, it works again.
    assert!(t.list_accounts(None).await.is_ok());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_actions_say_why_without_calling_the_target() {
    let sim = start(20).await;
    let t = connector(&sim);
    let who = account(&sim, &plain_user(&sim));
    let before = sim.core().requests().len();
    let err = t.rename(&who, "new@example.com").await.unwrap_err();
    match &err {
        TargetError::Unsupported { capability, why } => {
            assert_eq!(*capability, Capability::Rename);
            assert!(why.contains("account holder or the IdP"), "{why}");
        }
        other => panic!("{other}"),
    }
    assert!(matches!(
        t.change_directory(&who, "x").await,
        Err(TargetError::Unsupported { .. })
    ));
    assert!(matches!(
        t.create_account(&NewRemoteAccount {
            username: "a".into(),
            email: "a@example.com".into(),
            display_name: "A".into()
        })
        .await,
        Err(TargetError::Unsupported { .. })
    ));
    assert!(matches!(
        t.update_profile(&who, "a@example.com", "A").await,
        Err(TargetError::Unsupported { .. })
    ));
    assert_eq!(sim.core().requests().len(), before);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_removes_from_the_directory_once() {
    let sim = start(50).await;
    let t = connector(&sim);
    let id = plain_user(&sim);
    let who = account(&sim, &id);
    assert_eq!(t.delete(&who).await.unwrap(), WriteOutcome::Changed);
    assert!(sim.user(&id).is_none());
    assert_eq!(t.delete(&who).await.unwrap(), WriteOutcome::AlreadyDone);
    sim.stop().await;
}

/// A server that hands out the same next cursor for ever.
async fn looping_server() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route(
            "/admin/v2/orgs/{org}/directories",
            get(|| async { Json(json!({"data": [{"directoryId": "d1", "name": "Local"}]})) }),
        )
        .route(
            "/admin/v2/orgs/{org}/directories/{dir}/users/search",
            post(|| async {
                Json(json!({
                    "data": [{"accountId": "a1", "email": "a@example.com", "status": "active"}],
                    "links": {"next": "same-cursor"},
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_the_target_repeats_stops_the_listing_with_an_error() {
    let (base, task) = looping_server().await;
    let cfg: TargetConfig = serde_json::from_value(json!({
        "kind": "confluence_cloud",
        "base_url": base,
        "token": "k",
        "org_id": "o",
    }))
    .unwrap();
    let t = AtlassianCloud::new("loop", &cfg).unwrap();
    let first = t.list_accounts(None).await.unwrap();
    let next = first.next.expect("a next page");
    let err = t.list_accounts(Some(&next)).await.unwrap_err();
    assert!(err.to_string().contains("loop"), "{err}");
    task.abort();
}

crate::helpers::on_both_backends!(a_cloud_inventory_is_complete_and_counts_licences_once);

/// The whole organization read into the store: every account once, licences from product
/// access, IdP-managed accounts kept but marked unmanaged.
async fn a_cloud_inventory_is_complete_and_counts_licences_once(backend: crate::helpers::Backend) {
    use idbridge::domain::{SnapshotStatus, TargetKind};
    use idbridge::engine::inventory::{InventoryOptions, sync_target};

    let Some(db) = crate::helpers::TestDb::create(backend).await else {
        return;
    };
    let clock = std::sync::Arc::new(idbridge::clock::ManualClock::new(
        crate::helpers::start_time(),
    ));
    let store = idbridge::store::Store::connect(&db.config(), clock)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let sim = start(300).await;
    let t = connector(&sim);
    let record = store
        .ensure_target("cloud", TargetKind::ConfluenceCloud, &sim.base_url())
        .await
        .unwrap();
    let report = sync_target(&store, &record, &t, &InventoryOptions::default())
        .await
        .unwrap();
    assert_eq!(
        report.snapshot.status,
        SnapshotStatus::Complete,
        "{:?}",
        report.reason
    );
    let users = sim.users();
    assert_eq!(report.accounts, users.len() as u64);
    let listed = list_all(&t).await;
    let licensed = listed
        .iter()
        .filter(|a| a.active && a.licensed == Some(true))
        .count() as u64;
    assert!(licensed > 0);
    assert_eq!(report.licence.as_ref().unwrap().licensed, licensed);
    let stored = store.target_accounts(record.id).await.unwrap();
    assert_eq!(stored.len(), users.len());
    let synced = users.iter().filter(|u| u.synced).count();
    assert!(synced > 0);
    assert_eq!(
        stored.iter().filter(|a| !a.managed).count(),
        synced,
        "IdP-managed accounts are kept but not managed here"
    );
    sim.stop().await;
}
