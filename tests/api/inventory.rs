//! Inventory sync on both backends, against an in-memory target whose listings can be made to
//! misbehave: a complete inventory is stored as complete, and every way a listing can fall
//! short (a repeated cursor or key, a broken page, a count that disagrees with the announced
//! total or with the last complete inventory) is stored as incomplete with the reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use idbridge::clock::ManualClock;
use idbridge::domain::{SnapshotStatus, TargetKind};
use idbridge::engine::inventory::{InventoryOptions, sync_target};
use idbridge::store::Store;
use idbridge::targets::{
    AccountRef, Capabilities, Capability, GroupRef, InstanceInfo, LastLoginSource, Member,
    NewRemoteAccount, Page, Probe, RemoteAccount, RemoteGroup, Support, Target, TargetError,
    WriteOutcome,
};

use crate::helpers::{Backend, TestDb, on_both_backends, start_time};

/// How the fake target's account listing misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    None,
    RepeatedCursor,
    RepeatedKey,
    BrokenSecondPage,
    WrongTotal,
    Partial,
}

struct FakeTarget {
    accounts: Vec<RemoteAccount>,
    page_size: usize,
    flaw: Flaw,
    calls: Mutex<u32>,
}

fn account(i: usize, active: bool) -> RemoteAccount {
    RemoteAccount {
        key: format!("key{i:05}"),
        username: format!("user{i:05}"),
        email: Some(format!("user{i:05}@example.com")),
        display_name: Some(format!("User {i}")),
        active,
        raw_status: if active { "current" } else { "deactivated" }.into(),
        directory: Some("Confluence Internal Directory".into()),
        ..RemoteAccount::default()
    }
}

impl FakeTarget {
    fn new(n: usize, flaw: Flaw) -> Self {
        Self {
            accounts: (0..n).map(|i| account(i, i % 10 != 0)).collect(),
            page_size: 7,
            flaw,
            calls: Mutex::new(0),
        }
    }
}

impl Target for FakeTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::ConfluenceDc
    }
    async fn probe(&self) -> Result<Probe, TargetError> {
        let mut caps = Capabilities::default();
        for c in [
            Capability::ListAccounts,
            Capability::ListGroups,
            Capability::GroupMembers,
            Capability::NestedGroups,
            Capability::LicenceUsage,
            Capability::Delete,
        ] {
            caps.set(c, Support::via("fake"));
        }
        Ok(Probe {
            info: InstanceInfo {
                product: "fake".into(),
                version: Some("9.3.0".into()),
                principal: None,
                last_login: LastLoginSource::IdentityProviders,
                notes: vec![],
            },
            capabilities: caps,
        })
    }
    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<RemoteAccount>, TargetError> {
        *self.calls.lock().unwrap() += 1;
        let start: usize = cursor.map_or(0, |c| c.parse().unwrap());
        if self.flaw == Flaw::BrokenSecondPage && start > 0 {
            return Err(TargetError::UnexpectedBody {
                status: 200,
                detail: "JSON body is truncated".into(),
            });
        }
        let end = (start + self.page_size).min(self.accounts.len());
        let mut items = self.accounts[start..end].to_vec();
        if self.flaw == Flaw::RepeatedKey && start > 0 {
            items[0] = self.accounts[0].clone();
        }
        let next = if end < self.accounts.len() {
            if self.flaw == Flaw::RepeatedCursor && start >= self.page_size {
                Some(self.page_size.to_string())
            } else {
                Some(end.to_string())
            }
        } else {
            None
        };
        let total = match self.flaw {
            Flaw::WrongTotal => Some(self.accounts.len() as u64 + 5),
            _ => Some(self.accounts.len() as u64),
        };
        Ok(Page {
            partial: (self.flaw == Flaw::Partial).then(|| "active users only".to_string()),
            items,
            next,
            total,
        })
    }
    async fn get_account(&self, _a: &AccountRef) -> Result<Option<RemoteAccount>, TargetError> {
        Ok(None)
    }
    async fn list_groups(&self, _c: Option<&str>) -> Result<Page<RemoteGroup>, TargetError> {
        let g = |n: &str| RemoteGroup {
            name: n.into(),
            ..RemoteGroup::default()
        };
        Ok(Page {
            partial: None,
            items: vec![g("confluence-users"), g("staff"), g("marketing")],
            next: None,
            total: None,
        })
    }
    async fn group_members(
        &self,
        g: &GroupRef,
        _c: Option<&str>,
    ) -> Result<Page<Member>, TargetError> {
        let member = |a: &RemoteAccount| Member::Account {
            key: a.key.clone(),
            username: a.username.clone(),
        };
        let items = match g.name.as_str() {
            // confluence-users holds the even accounts directly and `staff` as a nested group.
            "confluence-users" => self
                .accounts
                .iter()
                .step_by(2)
                .map(member)
                .chain([Member::Group {
                    name: "staff".into(),
                }])
                .collect(),
            "staff" => self
                .accounts
                .iter()
                .skip(1)
                .step_by(4)
                .map(member)
                .collect(),
            _ => self
                .accounts
                .iter()
                .skip(3)
                .step_by(4)
                .map(member)
                .collect(),
        };
        Ok(Page {
            partial: None,
            items,
            next: None,
            total: None,
        })
    }
    async fn account_groups(&self, _a: &AccountRef) -> Result<Vec<RemoteGroup>, TargetError> {
        Ok(vec![])
    }
    async fn licence_groups(&self) -> Result<Vec<String>, TargetError> {
        Ok(vec!["confluence-users".into()])
    }
    async fn licence_counters(&self) -> Result<(Option<u64>, Option<u64>), TargetError> {
        Ok((Some(500), None))
    }
    async fn disable(&self, _a: &AccountRef) -> Result<WriteOutcome, TargetError> {
        unreachable!("inventory never writes")
    }
    async fn enable(&self, _a: &AccountRef) -> Result<WriteOutcome, TargetError> {
        unreachable!("inventory never writes")
    }
    async fn add_to_group(
        &self,
        _a: &AccountRef,
        _g: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        unreachable!("inventory never writes")
    }
    async fn remove_from_group(
        &self,
        _a: &AccountRef,
        _g: &GroupRef,
    ) -> Result<WriteOutcome, TargetError> {
        unreachable!("inventory never writes")
    }
    async fn rename(&self, _a: &AccountRef, _n: &str) -> Result<WriteOutcome, TargetError> {
        unreachable!("inventory never writes")
    }
    async fn change_directory(
        &self,
        _a: &AccountRef,
        _d: &str,
    ) -> Result<WriteOutcome, TargetError> {
        unreachable!("inventory never writes")
    }
    async fn delete(&self, _a: &AccountRef) -> Result<WriteOutcome, TargetError> {
        unreachable!("inventory never writes")
    }
    async fn create_account(&self, _n: &NewRemoteAccount) -> Result<RemoteAccount, TargetError> {
        unreachable!("inventory never writes")
    }
    async fn update_profile(
        &self,
        _a: &AccountRef,
        _e: &str,
        _d: &str,
    ) -> Result<WriteOutcome, TargetError> {
        unreachable!("inventory never writes")
    }
}

async fn store_for(backend: Backend) -> Option<(TestDb, Store, Arc<ManualClock>)> {
    let db = TestDb::create(backend).await?;
    let clock = Arc::new(ManualClock::new(start_time()));
    let store = Store::connect(&db.config(), clock.clone()).await.unwrap();
    store.migrate().await.unwrap();
    Some((db, store, clock))
}

on_both_backends!(
    a_whole_listing_is_stored_as_a_complete_snapshot_with_groups_and_licences,
    every_way_a_listing_falls_short_is_stored_as_incomplete_with_its_reason,
    a_count_far_below_the_last_complete_inventory_is_not_plausible,
    last_logins_from_outside_the_api_fill_in_and_never_go_back_in_time,
    what_the_instance_cannot_do_reaches_the_planner_from_its_latest_inventory,
);

async fn what_the_instance_cannot_do_reaches_the_planner_from_its_latest_inventory(
    backend: Backend,
) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let record = store
        .ensure_target("wiki", TargetKind::ConfluenceDc, "http://wiki.test")
        .await
        .unwrap();
    let mut config = idbridge::config::Config::default();
    config.targets.insert(
        "wiki".into(),
        idbridge::config::TargetConfig::new(TargetKind::ConfluenceDc, "http://wiki.test"),
    );
    let links = idbridge::store::StoredLinks;
    // Before any inventory nothing is known, so nothing is ruled out.
    let before = store.planner_inputs(&config, &links).await.unwrap();
    assert_eq!(before.targets[0].cannot_rename, None);
    let fake = FakeTarget::new(10, Flaw::None);
    sync_target(&store, &record, &fake, &InventoryOptions::default())
        .await
        .unwrap();
    let after = store.planner_inputs(&config, &links).await.unwrap();
    let wiki = &after.targets[0];
    assert_eq!(
        wiki.cannot_rename.as_deref(),
        Some("not offered by this connector")
    );
    assert_eq!(
        wiki.cannot_change_directory.as_deref(),
        Some("not offered by this connector")
    );
    assert_eq!(wiki.cannot_delete, None, "the fake target can delete");
}

async fn a_whole_listing_is_stored_as_a_complete_snapshot_with_groups_and_licences(
    backend: Backend,
) {
    let Some((_db, store, clock)) = store_for(backend).await else {
        return;
    };
    let record = store
        .ensure_target("wiki", TargetKind::ConfluenceDc, "http://wiki.test")
        .await
        .unwrap();
    let fake = FakeTarget::new(40, Flaw::None);
    let report = sync_target(&store, &record, &fake, &InventoryOptions::default())
        .await
        .unwrap();
    assert!(report.is_complete(), "{:?}", report.reason);
    assert_eq!(report.accounts, 40);
    assert_eq!(report.snapshot.item_count, 40);
    assert_eq!(*fake.calls.lock().unwrap(), 6, "40 accounts in pages of 7");

    // Licence: even accounts directly, and 1, 5, 9, … through the nested `staff` group;
    // deactivated ones (every tenth) never count.
    let expected = (0..40usize)
        .filter(|i| i % 10 != 0 && (i % 2 == 0 || i % 4 == 1))
        .count() as u64;
    let licence = report.licence.clone().unwrap();
    assert_eq!(licence.licensed, expected);
    assert_eq!(licence.deactivated, 4);
    assert_eq!(licence.max_users, Some(500));

    let accounts = store.target_accounts(record.id).await.unwrap();
    assert_eq!(accounts.len(), 40);
    let a1 = accounts
        .iter()
        .find(|a| a.account_key == "key00001")
        .unwrap();
    assert_eq!(a1.attributes["groups"], serde_json::json!(["staff"]));
    assert_eq!(a1.attributes["licensed"], true);
    let a3 = accounts
        .iter()
        .find(|a| a.account_key == "key00003")
        .unwrap();
    assert_eq!(a3.attributes["licensed"], false, "marketing grants nothing");

    let groups = store.target_groups(record.id).await.unwrap();
    let staff = groups.iter().find(|g| g.name == "staff").unwrap();
    assert!(staff.grants_licence, "nested in confluence-users");
    assert!(
        !groups
            .iter()
            .find(|g| g.name == "marketing")
            .unwrap()
            .grants_licence
    );
    let cu = groups
        .iter()
        .find(|g| g.name == "confluence-users")
        .unwrap();
    assert_eq!(cu.nested, vec!["staff".to_string()]);
    assert_eq!(cu.member_count, 20);

    // A second, unchanged inventory bumps no account's version and sees every account.
    clock.advance(Duration::hours(1));
    let again = sync_target(&store, &record, &fake, &InventoryOptions::default())
        .await
        .unwrap();
    assert!(again.is_complete(), "{:?}", again.reason);
    let after = store.target_accounts(record.id).await.unwrap();
    let before: std::collections::HashMap<_, _> = accounts
        .iter()
        .map(|a| (a.account_key.clone(), a.clone()))
        .collect();
    for a in &after {
        let b = &before[&a.account_key];
        assert_eq!(a.version, 1, "nothing changed: {b:?} -> {a:?}");
    }
    assert_eq!(
        store
            .accounts_not_in_snapshot(record.id, again.snapshot.id)
            .await
            .unwrap(),
        0
    );
    let latest = store
        .latest_target_snapshot(record.id, Some(SnapshotStatus::Complete))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.id, again.snapshot.id);
}

async fn every_way_a_listing_falls_short_is_stored_as_incomplete_with_its_reason(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    for (i, (flaw, expected)) in [
        (Flaw::RepeatedCursor, "pagination loop"),
        (Flaw::RepeatedKey, "listed twice"),
        (Flaw::BrokenSecondPage, "truncated"),
        (Flaw::WrongTotal, "announced 45 accounts but listed 40"),
        (Flaw::Partial, "the listing is partial: active users only"),
    ]
    .into_iter()
    .enumerate()
    {
        let record = store
            .ensure_target(
                &format!("wiki{i}"),
                TargetKind::ConfluenceDc,
                "http://wiki.test",
            )
            .await
            .unwrap();
        let report = sync_target(
            &store,
            &record,
            &FakeTarget::new(40, flaw),
            &InventoryOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            report.snapshot.status,
            SnapshotStatus::Incomplete,
            "{flaw:?}"
        );
        let reason = report.reason.clone().unwrap_or_default();
        assert!(reason.contains(expected), "{flaw:?}: {reason}");
        assert_eq!(
            report.snapshot.detail["reason"].as_str(),
            Some(reason.as_str()),
            "the stored snapshot says why"
        );
        assert!(
            store
                .latest_target_snapshot(record.id, Some(SnapshotStatus::Complete))
                .await
                .unwrap()
                .is_none(),
            "{flaw:?}: no complete snapshot to plan removals from"
        );
    }
}

async fn a_count_far_below_the_last_complete_inventory_is_not_plausible(backend: Backend) {
    let Some((_db, store, clock)) = store_for(backend).await else {
        return;
    };
    let record = store
        .ensure_target("wiki", TargetKind::ConfluenceDc, "http://wiki.test")
        .await
        .unwrap();
    let full = sync_target(
        &store,
        &record,
        &FakeTarget::new(100, Flaw::None),
        &InventoryOptions::default(),
    )
    .await
    .unwrap();
    assert!(full.is_complete());
    clock.advance(Duration::hours(1));
    let shrunk = sync_target(
        &store,
        &record,
        &FakeTarget::new(60, Flaw::None),
        &InventoryOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(shrunk.snapshot.status, SnapshotStatus::Incomplete);
    let reason = shrunk.reason.unwrap();
    assert!(reason.contains("60 listed against 100"), "{reason}");
    assert_eq!(
        store
            .accounts_not_in_snapshot(record.id, shrunk.snapshot.id)
            .await
            .unwrap(),
        40,
        "the accounts it did not see are still known, marked by their older snapshot"
    );
    // A looser threshold accepts the same drop.
    clock.advance(Duration::hours(1));
    let loose = InventoryOptions {
        plausible_change_percent: 50.0,
        ..InventoryOptions::default()
    };
    let ok = sync_target(&store, &record, &FakeTarget::new(60, Flaw::None), &loose)
        .await
        .unwrap();
    assert!(ok.is_complete(), "{:?}", ok.reason);
}

async fn last_logins_from_outside_the_api_fill_in_and_never_go_back_in_time(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let record = store
        .ensure_target("wiki", TargetKind::ConfluenceDc, "http://wiki.test")
        .await
        .unwrap();
    let mut fake = FakeTarget::new(3, Flaw::None);
    let api_time = start_time() - Duration::days(1);
    fake.accounts[1].last_login_at = Some(api_time);
    let db_time = start_time() - Duration::days(30);
    let opts = InventoryOptions {
        last_logins: Some(HashMap::from([
            ("key00002".to_string(), db_time),
            ("key00001".to_string(), db_time),
        ])),
        ..InventoryOptions::default()
    };
    let report = sync_target(&store, &record, &fake, &opts).await.unwrap();
    assert!(report.is_complete(), "{:?}", report.reason);
    let accounts = store.target_accounts(record.id).await.unwrap();
    let by_key = |k: &str| accounts.iter().find(|a| a.account_key == k).unwrap();
    assert_eq!(by_key("key00000").last_login_at, None);
    assert_eq!(
        by_key("key00001").last_login_at,
        Some(api_time),
        "the later one wins"
    );
    assert_eq!(by_key("key00002").last_login_at, Some(db_time));
}

/// Confluence's own tables, as far as last-login reading needs them.
const CONFLUENCE_SCHEMA: &[&str] = &[
    "create table user_mapping (user_key varchar(255) primary key, username varchar(255), \
     lower_username varchar(255))",
    "create table cwd_user (id bigint primary key, user_name varchar(255), \
     lower_user_name varchar(255), directory_id bigint)",
    "create table cwd_user_attribute (id bigint primary key, user_id bigint, directory_id bigint, \
     attribute_name varchar(255), attribute_value varchar(255), attribute_lower_value varchar(255))",
    "create table logininfo (id bigint primary key, username varchar(255), curfailed integer, \
     totalfailed integer, successdate timestamp, prevsuccessdate timestamp, faileddate timestamp)",
    "insert into user_mapping values ('k-ada', 'ada', 'ada'), ('k-bob', 'Bob', 'bob'), \
     ('k-cy', 'cy', 'cy'), ('k-dee', 'dee', 'dee')",
    "insert into cwd_user values (1, 'ada', 'ada', 1), (2, 'Bob', 'bob', 1), (3, 'cy', 'cy', 1), \
     (4, 'dee', 'dee', 1)",
    // ada: 2026-01-10 in the Crowd attribute, later than her logininfo row.
    "insert into cwd_user_attribute values (1, 1, 1, 'lastAuthenticated', '1768003200000', \
     '1768003200000'), (2, 2, 1, 'someOtherAttribute', 'x', 'x'), \
     (3, 4, 1, 'lastAuthenticated', 'not-a-number', 'not-a-number')",
    "insert into logininfo values (1, 'k-ada', 0, 0, '2025-12-01 08:00:00', null, null), \
     (2, 'k-bob', 0, 0, '2026-02-03 04:05:06', null, null), \
     (3, 'k-cy', 2, 2, null, null, '2026-02-01 00:00:00')",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_logins_are_read_from_confluences_own_database() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    for sql in CONFLUENCE_SCHEMA {
        sqlx::query(*sql).execute(&mut conn).await.unwrap();
    }
    let url = idbridge::config::DatabaseUrl::new(db.url.clone());
    let logins = idbridge::store::confluence_last_logins(&url).await.unwrap();
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    assert_eq!(
        logins.get("k-ada"),
        Some(&at("2026-01-10T00:00:00Z")),
        "the later source wins"
    );
    assert_eq!(logins.get("k-bob"), Some(&at("2026-02-03T04:05:06Z")));
    assert_eq!(logins.get("k-cy"), None, "failed logins are not logins");
    assert_eq!(
        logins.get("k-dee"),
        None,
        "an unreadable attribute is ignored"
    );

    let sqlite = idbridge::config::DatabaseUrl::new("sqlite://x.db".to_string());
    assert!(
        idbridge::store::confluence_last_logins(&sqlite)
            .await
            .is_err()
    );
}
