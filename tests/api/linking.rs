//! Linking identities to accounts, and the planner's read model, on both backends: keys in
//! order (immutable id, email, username), ambiguity and many-to-one as conflicts that store
//! nothing, several sources merged by precedence, stored links that outlive email changes,
//! Unicode-insensitive keys, and every field the planner reads.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use idbridge::clock::ManualClock;
use idbridge::config::{Config, LinkingConfig, SourceConfig, TargetConfig};
use idbridge::domain::{
    AccountId, IdentityId, IdentityStatus, LinkMethod, LinkState, NewAccount, NewIdentity,
    SnapshotStatus, SourceId, SourceKind, TargetGroup, TargetId, TargetKind,
};
use idbridge::engine::link::refresh_links;
use idbridge::store::{NewSignIn, NewSourceGroup, Store};
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

use crate::helpers::{Backend, TestDb, on_both_backends, start_time};

async fn store_for(backend: Backend) -> Option<(TestDb, Store, Arc<ManualClock>)> {
    let db = TestDb::create(backend).await?;
    let clock = Arc::new(ManualClock::new(start_time()));
    let store = Store::connect(&db.config(), clock.clone()).await.unwrap();
    store.migrate().await.unwrap();
    Some((db, store, clock))
}

fn config(sources: &[(&str, SourceKind)], targets: &[&str]) -> Config {
    let mut c = Config::default();
    for (name, kind) in sources {
        c.sources.insert((*name).into(), SourceConfig::new(*kind));
    }
    for name in targets {
        c.targets.insert(
            (*name).into(),
            TargetConfig::new(TargetKind::ConfluenceDc, "http://wiki.test"),
        );
    }
    c
}

fn person(source: SourceId, ext: &str, user: &str, email: Option<&str>) -> NewIdentity {
    NewIdentity {
        source_id: source,
        external_id: ext.into(),
        user_name: user.into(),
        email: email.map(str::to_owned),
        display_name: None,
        status: IdentityStatus::Active,
        idp_created_at: None,
        last_login_at: None,
        attributes: json!({ "raw_status": "ACTIVE" }),
    }
}

fn account(target: TargetId, key: &str, user: &str, email: Option<&str>) -> NewAccount {
    NewAccount {
        target_id: target,
        account_key: key.into(),
        user_name: user.into(),
        email: email.map(str::to_owned),
        display_name: None,
        active: true,
        last_login_at: None,
        remote_created_at: None,
        managed: true,
        attributes: json!({ "status": "current", "licensed": true, "groups": ["confluence-users"] }),
    }
}

/// A whole, complete listing of `people` (and `groups`) as one snapshot of `source`.
async fn sync(
    store: &Store,
    source: SourceId,
    people: &[NewIdentity],
    groups: &[NewSourceGroup],
) -> DateTime<Utc> {
    let snap = store.begin_source_snapshot(source).await.unwrap();
    store
        .record_source_identities(source, Some(snap.id), people)
        .await
        .unwrap();
    store
        .record_source_groups(source, snap.id, groups)
        .await
        .unwrap();
    let done = store
        .finish_snapshot(
            snap.id,
            SnapshotStatus::Complete,
            people.len() as i64,
            &json!({}),
        )
        .await
        .unwrap();
    done.finished_at.unwrap()
}

async fn source(store: &Store, name: &str, kind: SourceKind) -> SourceId {
    store.ensure_source(name, kind).await.unwrap().id
}

async fn target(store: &Store, name: &str) -> TargetId {
    store
        .ensure_target(name, TargetKind::ConfluenceDc, "http://wiki.test")
        .await
        .unwrap()
        .id
}

/// A complete inventory of `accounts`; returns their ids by position.
async fn inventory(store: &Store, target: TargetId, accounts: &[NewAccount]) -> Vec<AccountId> {
    let snap = store.begin_target_snapshot(target).await.unwrap();
    store
        .record_inventory_accounts(target, snap.id, accounts)
        .await
        .unwrap();
    store
        .finish_snapshot(
            snap.id,
            SnapshotStatus::Complete,
            accounts.len() as i64,
            &json!({}),
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for a in accounts {
        ids.push(
            store
                .account_by_key(target, &a.account_key)
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }
    ids
}

async fn identity_id(store: &Store, source: SourceId, ext: &str) -> IdentityId {
    store
        .identity_by_external_id(source, ext)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn stored(store: &Store, account: AccountId) -> Vec<(IdentityId, LinkMethod)> {
    store
        .links_for_account(account)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.identity_id, l.method))
        .collect()
}

on_both_backends!(
    links_are_made_by_immutable_id_before_email_before_username,
    an_email_two_identities_of_one_source_share_is_a_conflict_and_stores_no_link,
    one_identity_matching_two_accounts_makes_both_conflicts,
    okta_and_google_identities_of_one_person_link_in_precedence_order,
    a_stored_manual_link_survives_an_email_change,
    keys_match_across_letter_case_and_unicode_forms,
    planner_inputs_carry_admin_managed_licence_groups_sign_ins_absence_notices_and_pending_work,
);

async fn links_are_made_by_immutable_id_before_email_before_username(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let okta = source(&store, "okta", SourceKind::Okta).await;
    let wiki = target(&store, "wiki").await;
    sync(
        &store,
        okta,
        &[
            // Its id is one account's key; its email another's.
            person(okta, "key-ann", "ann@x.org", Some("ben@x.org")),
            person(okta, "00ub", "benjamin@x.org", Some("bob@x.org")),
            person(okta, "00uc", "cat@corp.example", Some("cathy@x.org")),
        ],
        &[],
    )
    .await;
    let ids = inventory(
        &store,
        wiki,
        &[
            account(wiki, "key-ann", "ann", Some("ben@x.org")),
            account(wiki, "key-bob", "bob", Some("BOB@x.org")),
            account(wiki, "key-cat", "Cat", None),
        ],
    )
    .await;
    let cfg = config(&[("okta", SourceKind::Okta)], &["wiki"]);

    let report = refresh_links(&store, &cfg).await.unwrap();
    assert_eq!((report.linked, report.added, report.conflicted), (3, 3, 0));
    assert_eq!(
        stored(&store, ids[0]).await,
        vec![(
            identity_id(&store, okta, "key-ann").await,
            LinkMethod::ImmutableId
        )]
    );
    assert_eq!(
        stored(&store, ids[1]).await,
        vec![(identity_id(&store, okta, "00ub").await, LinkMethod::Email)]
    );
    assert_eq!(
        stored(&store, ids[2]).await,
        vec![(
            identity_id(&store, okta, "00uc").await,
            LinkMethod::Username
        )]
    );

    // A second refresh keeps what is stored and adds nothing.
    let again = refresh_links(&store, &cfg).await.unwrap();
    assert_eq!((again.linked, again.added, again.kept), (3, 0, 3));
}

async fn an_email_two_identities_of_one_source_share_is_a_conflict_and_stores_no_link(
    backend: Backend,
) {
    let Some((_db, store, clock)) = store_for(backend).await else {
        return;
    };
    let okta = source(&store, "okta", SourceKind::Okta).await;
    let wiki = target(&store, "wiki").await;
    let people = [
        person(okta, "00u1", "eve1", Some("eve@x.org")),
        person(okta, "00u2", "eve2", Some("Eve@X.org")),
    ];
    sync(&store, okta, &people, &[]).await;
    let ids = inventory(
        &store,
        wiki,
        &[account(wiki, "k", "eve", Some("eve@x.org"))],
    )
    .await;
    let cfg = config(&[("okta", SourceKind::Okta)], &["wiki"]);

    let report = refresh_links(&store, &cfg).await.unwrap();
    assert_eq!((report.conflicted, report.added), (1, 0));
    let LinkState::Conflict { reason } = report.state(ids[0]) else {
        panic!("expected a conflict: {:?}", report.state(ids[0]));
    };
    assert!(reason.contains("email"), "{reason}");
    assert!(
        reason.contains("00u1") && reason.contains("00u2"),
        "{reason}"
    );
    assert!(stored(&store, ids[0]).await.is_empty());

    // Both are listed again later: a conflicted account is never counted absent.
    clock.advance(Duration::days(1));
    sync(&store, okta, &people, &[]).await;
    let inputs = store.planner_inputs(&cfg, &report).await.unwrap();
    assert!(matches!(inputs.people[0].link, LinkState::Conflict { .. }));
    assert!(inputs.people[0].identities.is_empty());
    assert_eq!(inputs.people[0].absent_syncs, 0);
}

async fn one_identity_matching_two_accounts_makes_both_conflicts(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let okta = source(&store, "okta", SourceKind::Okta).await;
    let wiki = target(&store, "wiki").await;
    sync(
        &store,
        okta,
        &[person(okta, "00u1", "sam", Some("sam@x.org"))],
        &[],
    )
    .await;
    let ids = inventory(
        &store,
        wiki,
        &[
            account(wiki, "k1", "sam.smith", Some("sam@x.org")),
            account(wiki, "k2", "sam-admin", Some("sam@x.org")),
        ],
    )
    .await;
    let cfg = config(&[("okta", SourceKind::Okta)], &["wiki"]);

    let report = refresh_links(&store, &cfg).await.unwrap();
    assert_eq!((report.conflicted, report.added), (2, 0));
    for id in &ids {
        assert!(matches!(report.state(*id), LinkState::Conflict { .. }));
        assert!(stored(&store, *id).await.is_empty());
    }
}

async fn okta_and_google_identities_of_one_person_link_in_precedence_order(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let okta = source(&store, "okta", SourceKind::Okta).await;
    let google = source(&store, "google", SourceKind::Google).await;
    let wiki = target(&store, "wiki").await;
    sync(
        &store,
        okta,
        &[person(okta, "00u1", "dana@x.org", Some("dana@x.org"))],
        &[],
    )
    .await;
    sync(
        &store,
        google,
        &[person(google, "1077", "dana@x.org", Some("dana@x.org"))],
        &[],
    )
    .await;
    let ids = inventory(
        &store,
        wiki,
        &[account(wiki, "k", "dana", Some("dana@x.org"))],
    )
    .await;
    let mut cfg = config(
        &[("okta", SourceKind::Okta), ("google", SourceKind::Google)],
        &["wiki"],
    );
    cfg.linking = LinkingConfig {
        precedence: vec!["okta".into()],
        ..LinkingConfig::default()
    };

    let report = refresh_links(&store, &cfg).await.unwrap();
    let okta_id = identity_id(&store, okta, "00u1").await;
    let google_id = identity_id(&store, google, "1077").await;
    assert_eq!(
        report.state(ids[0]),
        LinkState::Linked {
            methods: vec![(okta_id, LinkMethod::Email), (google_id, LinkMethod::Email)]
        }
    );
    assert_eq!(stored(&store, ids[0]).await.len(), 2);

    let inputs = store.planner_inputs(&cfg, &report).await.unwrap();
    let sources: Vec<&str> = inputs.people[0]
        .identities
        .iter()
        .map(|i| i.source.as_str())
        .collect();
    assert_eq!(sources, ["okta", "google"]);
}

async fn a_stored_manual_link_survives_an_email_change(backend: Backend) {
    let Some((_db, store, clock)) = store_for(backend).await else {
        return;
    };
    let okta = source(&store, "okta", SourceKind::Okta).await;
    let wiki = target(&store, "wiki").await;
    sync(
        &store,
        okta,
        &[person(okta, "00u1", "fay", Some("fay@x.org"))],
        &[],
    )
    .await;
    let ids = inventory(
        &store,
        wiki,
        &[account(wiki, "k", "f.jones", Some("fay@x.org"))],
    )
    .await;
    let fay = identity_id(&store, okta, "00u1").await;
    store.link(fay, ids[0], LinkMethod::Manual).await.unwrap();
    let cfg = config(&[("okta", SourceKind::Okta)], &["wiki"]);

    // Fay changes her email; a newcomer is given her old one.
    clock.advance(Duration::days(1));
    sync(
        &store,
        okta,
        &[
            person(okta, "00u1", "fay", Some("fay.jones@x.org")),
            person(okta, "00u2", "fay2", Some("fay@x.org")),
        ],
        &[],
    )
    .await;
    let report = refresh_links(&store, &cfg).await.unwrap();
    assert_eq!(
        report.state(ids[0]),
        LinkState::Linked {
            methods: vec![(fay, LinkMethod::Manual)]
        }
    );
    assert_eq!(report.added, 0);
    assert_eq!(
        stored(&store, ids[0]).await,
        vec![(fay, LinkMethod::Manual)]
    );

    // Read from the stored links alone, the same.
    let inputs = store
        .planner_inputs(&cfg, &idbridge::store::StoredLinks)
        .await
        .unwrap();
    assert_eq!(inputs.people[0].identities[0].id, fay);
}

async fn keys_match_across_letter_case_and_unicode_forms(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let okta = source(&store, "okta", SourceKind::Okta).await;
    let wiki = target(&store, "wiki").await;
    sync(
        &store,
        okta,
        &[
            person(okta, "00u1", "gerd", Some("strauß@x.org")),
            // NFC é
            person(okta, "00u2", "ren\u{e9}@corp.example", None),
        ],
        &[],
    )
    .await;
    let ids = inventory(
        &store,
        wiki,
        &[
            account(wiki, "k1", "g", Some("STRAUẞ@X.ORG")),
            // NFD é
            account(wiki, "k2", "RENE\u{301}", None),
        ],
    )
    .await;
    let cfg = config(&[("okta", SourceKind::Okta)], &["wiki"]);
    refresh_links(&store, &cfg).await.unwrap();
    assert_eq!(
        stored(&store, ids[0]).await,
        vec![(identity_id(&store, okta, "00u1").await, LinkMethod::Email)]
    );
    assert_eq!(
        stored(&store, ids[1]).await,
        vec![(
            identity_id(&store, okta, "00u2").await,
            LinkMethod::Username
        )]
    );
}

/// Inserts a run and one action of it, as the executor would leave them.
#[allow(clippy::too_many_arguments)]
async fn seed_action(
    db: &TestDb,
    backend: Backend,
    (mode, run_status): (&str, &str),
    target: TargetId,
    account: AccountId,
    kind: &str,
    phase: &str,
    rule: &str,
    finished_at: Option<DateTime<Utc>>,
) {
    const RUN: &str = "insert into runs (id, kind, mode, status, started_by, config_hash, \
         plan_hash, created_at) values ($1, 'rule', $2, $3, 'test', 'c', 'p', $4)";
    const ACTION: &str = "insert into actions (id, run_id, seq, target_id, account_id, \
         account_key, username, kind, params, budget_kind, rule, reason, phase, updated_at, \
         finished_at) values ($1, $2, 0, $3, $4, 'k', 'u', $5, '{}', $5, $6, '{}', $7, $8, $9)";
    let run = Uuid::now_v7();
    let now = start_time();
    macro_rules! go {
        ($conn:expr) => {{
            let mut conn = $conn;
            sqlx::query(RUN)
                .bind(run)
                .bind(mode)
                .bind(run_status)
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(ACTION)
                .bind(Uuid::now_v7())
                .bind(run)
                .bind(target.0)
                .bind(account.0)
                .bind(kind)
                .bind(rule)
                .bind(phase)
                .bind(now)
                .bind(finished_at)
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }};
    }
    match backend {
        Backend::Sqlite => go!(sqlx::SqliteConnection::connect(&db.url).await.unwrap()),
        Backend::Postgres => go!(sqlx::PgConnection::connect(&db.url).await.unwrap()),
    }
}

async fn planner_inputs_carry_admin_managed_licence_groups_sign_ins_absence_notices_and_pending_work(
    backend: Backend,
) {
    let Some((db, store, clock)) = store_for(backend).await else {
        return;
    };
    let okta = source(&store, "okta", SourceKind::Okta).await;
    let push = source(&store, "push", SourceKind::Scim).await;
    let wiki = target(&store, "wiki").await;
    let old = target(&store, "old").await;
    let t0 = start_time();

    let alice = person(okta, "00ua", "alice@x.org", Some("alice@x.org"));
    let mut bob = person(okta, "00ub", "bob@x.org", Some("bob@x.org"));
    bob.status = IdentityStatus::Deprovisioned;
    bob.attributes = json!({ "raw_status": "DEPROVISIONED" });
    let first_done = sync(
        &store,
        okta,
        &[alice.clone(), bob],
        &[NewSourceGroup {
            external_id: "g1".into(),
            name: "engineering".into(),
            members: vec!["00ua".into()],
        }],
    )
    .await;
    let mut dave = person(push, "scim-dave", "dave@x.org", Some("dave@x.org"));
    dave.attributes = json!({ "active": true, "userName": "dave@x.org" });
    store.upsert_identity(&dave).await.unwrap();
    store
        .record_sign_ins(
            okta,
            &[
                NewSignIn {
                    event_id: "e1".into(),
                    external_id: Some("00ua".into()),
                    login: None,
                    occurred_at: t0 - Duration::days(3),
                },
                NewSignIn {
                    event_id: "e2".into(),
                    external_id: Some("00ua".into()),
                    login: Some("alice@x.org".into()),
                    occurred_at: t0 - Duration::days(1),
                },
                NewSignIn {
                    event_id: "e3".into(),
                    external_id: None,
                    login: Some("BOB@x.org".into()),
                    occurred_at: t0 - Duration::days(2),
                },
            ],
        )
        .await
        .unwrap();

    let mut alice_acct = account(wiki, "ka", "alice", Some("alice@x.org"));
    alice_acct.attributes = json!({
        "status": "current", "licensed": true, "directory": "Internal",
        "groups": ["confluence-users", "Confluence-Administrators"],
    });
    let bob_acct = account(wiki, "kb", "bob", Some("bob@x.org"));
    let mut carol_acct = account(wiki, "kc", "carol", Some("carol@x.org"));
    carol_acct.managed = false;
    carol_acct.attributes = json!({
        "status": "current", "licensed": false, "groups": [],
        "read_only": "directory `Corporate LDAP` is read-only",
    });
    let dave_acct = account(wiki, "kd", "dave", Some("dave@x.org"));
    let ids = inventory(&store, wiki, &[alice_acct, bob_acct, carol_acct, dave_acct]).await;
    store
        .record_target_groups(
            wiki,
            store
                .latest_target_snapshot(wiki, None)
                .await
                .unwrap()
                .unwrap()
                .id,
            &[TargetGroup {
                name: "confluence-users".into(),
                remote_id: None,
                directory: None,
                read_only: None,
                grants_licence: true,
                nested: vec![],
                member_count: 3,
            }],
        )
        .await
        .unwrap();
    let old_ids = inventory(&store, old, &[account(old, "ko", "olga", None)]).await;

    // Two more complete listings without Bob.
    for _ in 0..2 {
        clock.advance(Duration::days(1));
        sync(&store, okta, std::slice::from_ref(&alice), &[]).await;
    }

    let notified_at = t0 + Duration::hours(5);
    seed_action(
        &db,
        backend,
        ("enforce", "succeeded"),
        wiki,
        ids[0],
        "notify",
        "confirmed",
        "inactive",
        Some(notified_at),
    )
    .await;
    // A dry run's notice is no notice.
    seed_action(
        &db,
        backend,
        ("dry_run", "recorded"),
        wiki,
        ids[0],
        "notify",
        "confirmed",
        "other",
        Some(notified_at),
    )
    .await;
    seed_action(
        &db,
        backend,
        ("enforce", "held"),
        wiki,
        ids[1],
        "deactivate",
        "planned",
        "leavers",
        None,
    )
    .await;

    let mut cfg = config(
        &[("okta", SourceKind::Okta), ("push", SourceKind::Scim)],
        &["wiki"],
    );
    cfg.sources.get_mut("okta").unwrap().suspended_is_leaver = true;
    let outcome = refresh_links(&store, &cfg).await.unwrap();
    let inputs = store.planner_inputs(&cfg, &outcome).await.unwrap();

    let find = |id: AccountId| {
        inputs
            .people
            .iter()
            .find(|p| p.account.id == id)
            .unwrap_or_else(|| panic!("no person for {id:?}"))
    };

    let a = find(ids[0]);
    assert!(a.account.admin && a.account.managed && a.account.licensed);
    assert_eq!(a.account.target, "wiki");
    assert_eq!(a.account.directory.as_deref(), Some("Internal"));
    assert_eq!(a.account.first_seen_at, t0);
    let ai = &a.identities[0];
    assert_eq!(ai.source, "okta");
    assert_eq!(ai.groups, ["engineering"]);
    assert_eq!(ai.sign_in_events, 2);
    assert_eq!(ai.last_sign_in_event_at, Some(t0 - Duration::days(1)));
    assert_eq!(ai.raw_status.as_deref(), Some("ACTIVE"));
    assert!(ai.suspended_is_leaver);
    assert!(ai.from_complete_snapshot);
    assert_eq!(a.absent_syncs, 0);
    assert_eq!(a.notified.get("inactive"), Some(&notified_at));
    assert!(!a.notified.contains_key("other"));
    assert!(!a.pending_actions);

    let b = find(ids[1]);
    assert!(!b.account.admin && b.account.managed);
    let bi = &b.identities[0];
    assert_eq!(bi.status, IdentityStatus::Deprovisioned);
    assert_eq!(bi.raw_status.as_deref(), Some("DEPROVISIONED"));
    assert_eq!(bi.sign_in_events, 1);
    assert!(
        !bi.from_complete_snapshot,
        "Bob was not in the latest complete snapshot"
    );
    assert_eq!(b.absent_syncs, 2);
    assert!(b.pending_actions);
    assert!(b.notified.is_empty());

    let c = find(ids[2]);
    assert_eq!(c.link, LinkState::Unlinked);
    assert!(!c.account.managed);
    assert!(
        c.account
            .unmanaged_reason
            .as_deref()
            .is_some_and(|r| r.contains("read-only")),
        "{:?}",
        c.account.unmanaged_reason
    );
    assert_eq!(c.absent_syncs, 2);

    let d = find(ids[3]);
    assert_eq!(d.identities[0].source, "push");
    assert_eq!(d.identities[0].raw_status.as_deref(), Some("active=true"));
    assert!(d.identities[0].from_complete_snapshot);
    assert_eq!(d.absent_syncs, 0, "present in a SCIM source");

    let o = find(old_ids[0]);
    assert!(!o.account.managed);
    assert!(
        o.account
            .unmanaged_reason
            .as_deref()
            .is_some_and(|r| r.contains("not configured"))
    );

    assert_eq!(inputs.targets.len(), 1);
    let wt = &inputs.targets[0];
    assert_eq!((wt.name.as_str(), wt.id, wt.complete), ("wiki", wiki, true));
    assert_eq!(wt.licence_groups, ["confluence-users"]);
    assert_eq!(wt.cannot_rename, None);

    let okta_state = inputs.sources.iter().find(|s| s.name == "okta").unwrap();
    assert!(okta_state.complete);
    assert_eq!(okta_state.observed_since, Some(first_done));
    let push_state = inputs.sources.iter().find(|s| s.name == "push").unwrap();
    assert!(push_state.complete);
    assert_eq!(push_state.kind, SourceKind::Scim);

    // An attribute the person's record carries reaches the planner.
    assert_eq!(
        d.identities[0].attributes.get("active"),
        Some(&Value::Bool(true))
    );
}

/// Scale: 100,000 identities and 100,000 accounts on SQLite. Ignored by default; run with
/// `cargo nextest run --run-ignored only linking::a_hundred_thousand` (figures printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark"]
async fn a_hundred_thousand_people_link_and_load_in_seconds() {
    let n: usize = std::env::var("LINK_BENCH_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let Some((_db, store, _clock)) = store_for(Backend::Sqlite).await else {
        return;
    };
    let okta = source(&store, "okta", SourceKind::Okta).await;
    let wiki = target(&store, "wiki").await;
    let seeding = std::time::Instant::now();
    let people: Vec<NewIdentity> = (0..n)
        .map(|i| {
            let mut p = person(
                okta,
                &format!("00u{i:07}"),
                &format!("user{i:07}@x.org"),
                Some(&format!("user{i:07}@x.org")),
            );
            p.attributes = json!({ "raw_status": "ACTIVE", "custom": { "department": "Sales" } });
            p
        })
        .collect();
    let snap = store.begin_source_snapshot(okta).await.unwrap();
    for page in people.chunks(1000) {
        store
            .record_source_identities(okta, Some(snap.id), page)
            .await
            .unwrap();
    }
    store
        .finish_snapshot(snap.id, SnapshotStatus::Complete, n as i64, &json!({}))
        .await
        .unwrap();
    let accounts: Vec<NewAccount> = (0..n)
        .map(|i| {
            // A third by key, a third by email, a third by username.
            let key = if i % 3 == 0 {
                format!("00u{i:07}")
            } else {
                format!("key{i:07}")
            };
            let email = (i % 3 != 2).then(|| format!("USER{i:07}@x.org"));
            account(wiki, &key, &format!("user{i:07}"), email.as_deref())
        })
        .collect();
    let snap = store.begin_target_snapshot(wiki).await.unwrap();
    for page in accounts.chunks(1000) {
        store
            .record_inventory_accounts(wiki, snap.id, page)
            .await
            .unwrap();
    }
    store
        .finish_snapshot(snap.id, SnapshotStatus::Complete, n as i64, &json!({}))
        .await
        .unwrap();
    let seeded = seeding.elapsed();
    let cfg = config(&[("okta", SourceKind::Okta)], &["wiki"]);

    let t = std::time::Instant::now();
    let first = refresh_links(&store, &cfg).await.unwrap();
    let first_ms = t.elapsed().as_millis();
    assert_eq!((first.linked, first.added as usize), (n, n));
    let t = std::time::Instant::now();
    let again = refresh_links(&store, &cfg).await.unwrap();
    let again_ms = t.elapsed().as_millis();
    assert_eq!(again.added, 0);
    let t = std::time::Instant::now();
    let inputs = store.planner_inputs(&cfg, &again).await.unwrap();
    let inputs_ms = t.elapsed().as_millis();
    assert_eq!(inputs.people.len(), n);
    assert!(inputs.people.iter().all(|p| p.identities.len() == 1));
    println!(
        "{n} people: seeded in {:.1} s; first refresh_links {first_ms} ms (stores {n} links), \
         second {again_ms} ms, planner_inputs {inputs_ms} ms",
        seeded.as_secs_f64()
    );
}
