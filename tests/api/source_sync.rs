//! Source sync on both backends, against an in-memory source whose listings can be made to
//! misbehave: a whole listing is stored as a complete snapshot (people, statuses, groups,
//! checkpoint), every way a listing can fall short is stored as incomplete (or failed) with
//! the reason and never turns anyone into a leaver, incremental changes and sign-ins are
//! applied once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use idbridge::clock::ManualClock;
use idbridge::domain::{IdentityStatus, SnapshotStatus, SourceKind};
use idbridge::engine::sources::{
    SourceSyncOptions, poll_sign_ins, sync_source, sync_source_changes,
};
use idbridge::sources::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
    status,
};
use idbridge::store::{Store, Stream};

use crate::helpers::{Backend, TestApp, TestDb, on_both_backends, start_time};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    None,
    RepeatedCursor,
    DuplicateId,
    BrokenSecondPage,
    BrokenFirstPage,
    WrongTotal,
    MissingLogin,
    BrokenGroups,
    Empty,
    ExpiredCheckpoint,
}

struct FakeSource {
    people: Vec<SourceIdentity>,
    page_size: usize,
    flaw: Flaw,
    changes: Vec<Change>,
    sign_ins: Vec<SignIn>,
    calls: Mutex<u32>,
}

const RAW: [&str; 6] = [
    "ACTIVE",
    "LOCKED_OUT",
    "DEPROVISIONED",
    "SUSPENDED",
    "ACTIVE",
    "SDK_UNKNOWN",
];

fn person(i: usize) -> SourceIdentity {
    let raw = RAW[i % RAW.len()];
    let mut p = SourceIdentity::new(
        format!("00u{i:05}"),
        format!("user{i:05}@example.com"),
        status::normalise(SourceKind::Okta, raw),
        raw,
    );
    p.emails = vec![format!("user{i:05}@example.com")];
    p.display_name = Some(format!("User {i}"));
    p.last_login_at = (!i.is_multiple_of(4)).then(|| start_time() - Duration::days(i as i64));
    p
}

impl FakeSource {
    fn new(n: usize, flaw: Flaw) -> Self {
        FakeSource {
            people: (0..n).map(person).collect(),
            page_size: 7,
            flaw,
            changes: Vec::new(),
            sign_ins: Vec::new(),
            calls: Mutex::new(0),
        }
    }
}

impl Source for FakeSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Okta
    }

    async fn check(&self) -> Result<SourceCheck, SourceError> {
        Err(SourceError::Config("not used".into()))
    }

    async fn list_identities(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceIdentity>, SourceError> {
        *self.calls.lock().unwrap() += 1;
        let start: usize = cursor.map_or(0, |c| c.parse().unwrap());
        if self.flaw == Flaw::Empty {
            return Ok(SourcePage::last(Vec::new()));
        }
        if self.flaw == Flaw::BrokenFirstPage || (self.flaw == Flaw::BrokenSecondPage && start > 0)
        {
            return Err(SourceError::Unavailable {
                status: 503,
                attempts: 5,
                detail: "backendError".into(),
            });
        }
        let end = (start + self.page_size).min(self.people.len());
        let mut items = self.people[start..end].to_vec();
        if self.flaw == Flaw::DuplicateId && start > 0 {
            items[0] = self.people[0].clone();
        }
        if self.flaw == Flaw::MissingLogin && start == 0 {
            items[1].login = String::new();
        }
        let next = match self.flaw {
            Flaw::RepeatedCursor if start >= 14 => Some("7".to_owned()),
            _ => (end < self.people.len()).then(|| end.to_string()),
        };
        Ok(SourcePage {
            items,
            total: match self.flaw {
                Flaw::WrongTotal => Some(self.people.len() as u64 + 3),
                _ => Some(self.people.len() as u64),
            },
            checkpoint: next.is_none().then(|| "2026-11-21T00:00:00Z".to_owned()),
            next,
        })
    }

    async fn list_groups(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceGroup>, SourceError> {
        match cursor {
            None => Ok(SourcePage {
                items: vec![SourceGroup {
                    external_id: "00g1".into(),
                    name: "Engineering".into(),
                    members: vec!["00u00001".into(), "00u00002".into()],
                }],
                next: Some("g2".into()),
                total: None,
                checkpoint: None,
            }),
            Some(_) if self.flaw == Flaw::BrokenGroups => Err(SourceError::Forbidden {
                detail: "the token lacks the scope `okta.groups.read`".into(),
            }),
            Some(_) => Ok(SourcePage::last(vec![
                // The rest of Engineering's members, as a large group arrives in parts.
                SourceGroup {
                    external_id: "00g1".into(),
                    name: "Engineering".into(),
                    members: vec!["00u00002".into(), "00u00003".into()],
                },
                SourceGroup {
                    external_id: "00g2".into(),
                    name: "Contractors".into(),
                    members: vec!["00u00002".into()],
                },
            ])),
        }
    }

    async fn list_changes(
        &self,
        checkpoint: &str,
        cursor: Option<&str>,
    ) -> Result<SourcePage<Change>, SourceError> {
        assert_eq!(checkpoint, "2026-11-21T00:00:00Z");
        if self.flaw == Flaw::ExpiredCheckpoint {
            return Err(SourceError::CheckpointExpired {
                detail: "410 Gone".into(),
            });
        }
        match cursor {
            None => Ok(SourcePage {
                items: self.changes[..1].to_vec(),
                next: Some("c2".into()),
                total: None,
                checkpoint: None,
            }),
            Some(_) => Ok(SourcePage {
                items: self.changes[1..].to_vec(),
                next: None,
                total: None,
                checkpoint: Some("2026-11-22T00:00:00Z".into()),
            }),
        }
    }

    async fn sign_ins(
        &self,
        checkpoint: Option<&str>,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<SignIn>, SourceError> {
        if self.sign_ins.is_empty() {
            return Err(SourceError::Unsupported {
                what: "sign-in events".into(),
                why: "no app configured".into(),
            });
        }
        // Overlapping polls: every poll returns everything at or after the checkpoint.
        let from = checkpoint.map(|c| c.parse::<chrono::DateTime<Utc>>().unwrap());
        let items: Vec<SignIn> = self
            .sign_ins
            .iter()
            .filter(|s| from.is_none_or(|f| s.at >= f))
            .cloned()
            .collect();
        let newest = items.iter().map(|s| s.at).max();
        Ok(SourcePage {
            items,
            next: None,
            total: None,
            checkpoint: newest.map(|n| n.to_rfc3339()),
        })
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
    a_whole_listing_is_stored_as_a_complete_snapshot_with_statuses_groups_and_a_checkpoint,
    every_way_a_listing_falls_short_is_stored_as_incomplete_and_nobody_becomes_a_leaver,
    a_source_that_cannot_list_its_first_page_is_a_failed_snapshot,
    a_count_far_from_the_last_complete_snapshot_is_not_plausible,
    incremental_changes_update_people_and_mark_removed_ones_deleted,
    an_expired_checkpoint_asks_for_a_full_sync_and_is_forgotten,
    overlapping_sign_in_polls_record_each_event_once,
    upgrading_a_store_keeps_identities_and_links_and_admits_unknown_statuses,
    readiness_detail_and_metrics_name_a_source_whose_latest_snapshot_is_incomplete,
);

async fn a_whole_listing_is_stored_as_a_complete_snapshot_with_statuses_groups_and_a_checkpoint(
    backend: Backend,
) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let record = store.ensure_source("okta", SourceKind::Okta).await.unwrap();
    let fake = FakeSource::new(40, Flaw::None);
    let report = sync_source(&store, &record, &fake, &SourceSyncOptions::default())
        .await
        .unwrap();
    assert!(report.is_complete(), "{:?}", report.reason);
    assert_eq!(report.identities, 40);
    assert_eq!(report.snapshot.item_count, 40);
    assert_eq!(report.groups, 2);
    assert_eq!(*fake.calls.lock().unwrap(), 6, "40 people in pages of 7");
    // ACTIVE and LOCKED_OUT are active; SDK_UNKNOWN is unknown and said so.
    let expected: BTreeMap<String, u64> = [
        ("active".to_owned(), 20),
        ("deprovisioned".to_owned(), 7),
        ("suspended".to_owned(), 7),
        ("unknown".to_owned(), 6),
    ]
    .into();
    assert_eq!(report.statuses, expected);
    assert_eq!(report.unknown_statuses.get("SDK_UNKNOWN"), Some(&6));
    assert!(report.notes.iter().any(|n| n.contains("SDK_UNKNOWN")));
    assert_eq!(report.with_last_login, 30);

    let people = store.source_identities(record.id).await.unwrap();
    assert_eq!(people.len(), 40);
    let p2 = people.iter().find(|p| p.external_id == "00u00002").unwrap();
    assert_eq!(p2.status, IdentityStatus::Deprovisioned);
    assert_eq!(p2.attributes["raw_status"], "DEPROVISIONED");
    let p1 = people.iter().find(|p| p.external_id == "00u00001").unwrap();
    assert_eq!(
        p1.status,
        IdentityStatus::Active,
        "LOCKED_OUT is not a leaver"
    );
    assert_eq!(p1.email.as_deref(), Some("user00001@example.com"));
    let groups = store.source_groups(record.id).await.unwrap();
    assert_eq!(groups.len(), 2);
    let engineering = groups.iter().find(|g| g.name == "Engineering").unwrap();
    assert_eq!(
        engineering.members,
        ["00u00001", "00u00002", "00u00003"],
        "members joined across parts, each once"
    );
    let contractors = groups.iter().find(|g| g.name == "Contractors").unwrap();
    assert_eq!(contractors.members, ["00u00002"]);
    assert_eq!(
        store
            .source_checkpoint(record.id, Stream::Changes)
            .await
            .unwrap()
            .as_deref(),
        Some("2026-11-21T00:00:00Z")
    );
    assert!(report.notes.iter().any(|n| n.contains("sign-ins")));
}

async fn every_way_a_listing_falls_short_is_stored_as_incomplete_and_nobody_becomes_a_leaver(
    backend: Backend,
) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    for (flaw, expected) in [
        (Flaw::RepeatedCursor, "returned before"),
        (Flaw::DuplicateId, "listed twice"),
        (Flaw::BrokenSecondPage, "listing stopped after 7"),
        (Flaw::WrongTotal, "announced 43 but listed 40"),
        (Flaw::MissingLogin, "without a login"),
        (Flaw::BrokenGroups, "okta.groups.read"),
        (Flaw::Empty, "listed nobody"),
    ] {
        let name = format!("okta-{flaw:?}").to_lowercase();
        let record = store.ensure_source(&name, SourceKind::Okta).await.unwrap();
        let report = sync_source(
            &store,
            &record,
            &FakeSource::new(40, flaw),
            &SourceSyncOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            report.snapshot.status,
            SnapshotStatus::Incomplete,
            "{flaw:?}"
        );
        let reason = report.reason.clone().unwrap();
        assert!(reason.contains(expected), "{flaw:?}: {reason}");
        assert_eq!(report.snapshot.detail["reason"], reason.as_str());
        assert_eq!(
            store
                .source_checkpoint(record.id, Stream::Changes)
                .await
                .unwrap(),
            None,
            "{flaw:?}: an incomplete snapshot sets no checkpoint"
        );
    }

    // A complete snapshot, then one that stops early: the people it did not reach keep
    // their status, and the latest complete snapshot is still the first one.
    let record = store.ensure_source("okta", SourceKind::Okta).await.unwrap();
    let good = sync_source(
        &store,
        &record,
        &FakeSource::new(40, Flaw::None),
        &SourceSyncOptions::default(),
    )
    .await
    .unwrap();
    assert!(good.is_complete());
    let before = store.source_identities(record.id).await.unwrap();
    let bad = sync_source(
        &store,
        &record,
        &FakeSource::new(40, Flaw::BrokenSecondPage),
        &SourceSyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(bad.snapshot.status, SnapshotStatus::Incomplete);
    let after = store.source_identities(record.id).await.unwrap();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.status, a.status, "{}", b.external_id);
        assert_eq!(b.version, a.version, "{}", b.external_id);
    }
    assert_eq!(
        store
            .identities_not_in_snapshot(record.id, bad.snapshot.id)
            .await
            .unwrap(),
        33
    );
    let latest = store
        .latest_source_snapshot(record.id, Some(SnapshotStatus::Complete))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.id, good.snapshot.id);
}

async fn a_source_that_cannot_list_its_first_page_is_a_failed_snapshot(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let record = store.ensure_source("okta", SourceKind::Okta).await.unwrap();
    let report = sync_source(
        &store,
        &record,
        &FakeSource::new(40, Flaw::BrokenFirstPage),
        &SourceSyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.snapshot.status, SnapshotStatus::Failed);
    assert!(report.reason.unwrap().contains("backendError"));
    assert!(store.source_identities(record.id).await.unwrap().is_empty());
}

async fn a_count_far_from_the_last_complete_snapshot_is_not_plausible(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let record = store.ensure_source("okta", SourceKind::Okta).await.unwrap();
    let opts = SourceSyncOptions::default();
    let first = sync_source(&store, &record, &FakeSource::new(40, Flaw::None), &opts)
        .await
        .unwrap();
    assert!(first.is_complete());
    // 38 of 40 is within 10 %; 30 of 40 is not.
    let close = sync_source(&store, &record, &FakeSource::new(38, Flaw::None), &opts)
        .await
        .unwrap();
    assert!(close.is_complete(), "{:?}", close.reason);
    let far = sync_source(&store, &record, &FakeSource::new(30, Flaw::None), &opts)
        .await
        .unwrap();
    assert_eq!(far.snapshot.status, SnapshotStatus::Incomplete);
    assert!(far.reason.unwrap().contains("-21.1 %"));
}

async fn incremental_changes_update_people_and_mark_removed_ones_deleted(backend: Backend) {
    let Some((_db, store, clock)) = store_for(backend).await else {
        return;
    };
    let record = store.ensure_source("okta", SourceKind::Okta).await.unwrap();
    let opts = SourceSyncOptions::default();
    let mut fake = FakeSource::new(20, Flaw::None);
    assert!(
        sync_source(&store, &record, &fake, &opts)
            .await
            .unwrap()
            .is_complete()
    );
    clock.advance(Duration::hours(1));
    let mut changed = person(0);
    changed.status = IdentityStatus::Deprovisioned;
    changed.raw_status = "DEPROVISIONED".into();
    let newcomer = person(99);
    // A change that does not report a last login (Graph delta) keeps the known one.
    let mut renamed = person(1);
    renamed.login = "renamed@example.com".into();
    renamed.last_login_at = None;
    fake.changes = vec![
        Change::Upsert(Box::new(changed)),
        Change::Upsert(Box::new(renamed)),
        Change::Upsert(Box::new(newcomer)),
        Change::Removed {
            external_id: "00u00004".into(),
            reason: "deleted".into(),
        },
        Change::Removed {
            external_id: "00u-never-seen".into(),
            reason: "deleted".into(),
        },
    ];
    let r = sync_source_changes(&store, &record, &fake, &opts)
        .await
        .unwrap()
        .expect("a checkpoint exists");
    assert!(r.finished);
    assert_eq!((r.upserted, r.removed, r.pages), (3, 1, 2));
    let people = store.source_identities(record.id).await.unwrap();
    assert_eq!(people.len(), 21);
    let p0 = people.iter().find(|p| p.external_id == "00u00000").unwrap();
    assert_eq!(p0.status, IdentityStatus::Deprovisioned);
    assert_eq!(p0.status_changed_at, start_time() + Duration::hours(1));
    let p1 = people.iter().find(|p| p.external_id == "00u00001").unwrap();
    assert_eq!(p1.user_name, "renamed@example.com");
    assert_eq!(p1.last_login_at, person(1).last_login_at);
    assert!(p1.last_login_at.is_some());
    let p4 = people.iter().find(|p| p.external_id == "00u00004").unwrap();
    assert_eq!(p4.status, IdentityStatus::Deleted);
    assert_eq!(p4.attributes["raw_status"], "removed: deleted");
    assert_eq!(
        store
            .source_checkpoint(record.id, Stream::Changes)
            .await
            .unwrap()
            .as_deref(),
        Some("2026-11-22T00:00:00Z")
    );
}

async fn an_expired_checkpoint_asks_for_a_full_sync_and_is_forgotten(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let record = store
        .ensure_source("entra", SourceKind::Entra)
        .await
        .unwrap();
    let opts = SourceSyncOptions::default();
    // No checkpoint yet: a full sync is needed.
    let fake = FakeSource::new(10, Flaw::ExpiredCheckpoint);
    assert!(
        sync_source_changes(&store, &record, &fake, &opts)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        sync_source(&store, &record, &fake, &opts)
            .await
            .unwrap()
            .is_complete()
    );
    assert!(
        store
            .source_checkpoint(record.id, Stream::Changes)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        sync_source_changes(&store, &record, &fake, &opts)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .source_checkpoint(record.id, Stream::Changes)
            .await
            .unwrap(),
        None
    );
}

async fn overlapping_sign_in_polls_record_each_event_once(backend: Backend) {
    let Some((_db, store, _clock)) = store_for(backend).await else {
        return;
    };
    let record = store.ensure_source("okta", SourceKind::Okta).await.unwrap();
    let at = |h: u32| Utc.with_ymd_and_hms(2026, 11, 20, h, 0, 0).unwrap();
    let mut fake = FakeSource::new(5, Flaw::None);
    fake.sign_ins = vec![
        SignIn {
            event_id: "e1".into(),
            external_id: Some("00u00001".into()),
            login: None,
            at: at(8),
        },
        SignIn {
            event_id: "e2".into(),
            external_id: Some("00u00001".into()),
            login: None,
            at: at(9),
        },
        SignIn {
            event_id: "e3".into(),
            external_id: None,
            login: Some("user00003@example.com".into()),
            at: at(10),
        },
    ];
    let opts = SourceSyncOptions::default();
    let first = poll_sign_ins(&store, &record, &fake, &opts).await.unwrap();
    assert_eq!((first.read, first.new), (3, 3));
    // The next poll starts at the newest event seen and reads it again; it is not new.
    let second = poll_sign_ins(&store, &record, &fake, &opts).await.unwrap();
    assert_eq!((second.read, second.new), (1, 0));
    let latest = store.latest_sign_ins(record.id).await.unwrap();
    assert_eq!(
        latest,
        vec![
            ("00u00001".to_owned(), at(9)),
            ("user00003@example.com".to_owned(), at(10)),
        ]
    );
}

/// One source, identity, target, account and link, written the way 0001–0003 store them.
macro_rules! seed_v3 {
    ($pool:expr) => {{
        let pool = $pool;
        let now = start_time();
        let id = uuid::Uuid::from_u128;
        sqlx::query(
            "insert into sources (id, name, kind, created_at, updated_at) \
             values ($1, 'okta', 'okta', $2, $2)",
        )
        .bind(id(1))
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "insert into identities (id, source_id, external_id, user_name, user_name_lower, \
               status, status_changed_at, first_seen_at, last_seen_at, updated_at) \
             values ($1, $2, '00u1', 'Ann', 'ann', 'deprovisioned', $3, $3, $3, $3)",
        )
        .bind(id(2))
        .bind(id(1))
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "insert into targets (id, name, kind, base_url, created_at, updated_at) \
             values ($1, 'wiki', 'confluence_dc', 'http://wiki.test', $2, $2)",
        )
        .bind(id(3))
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "insert into accounts (id, target_id, account_key, user_name, user_name_lower, \
               active, first_seen_at, last_seen_at, updated_at) \
             values ($1, $2, 'k1', 'ann', 'ann', true, $3, $3, $3)",
        )
        .bind(id(4))
        .bind(id(3))
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "insert into links (id, identity_id, account_id, method, created_at) \
             values ($1, $2, $3, 'email', $4)",
        )
        .bind(id(5))
        .bind(id(2))
        .bind(id(4))
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    }};
}

/// Runs the migrations before 0004 on a database, so an upgrade can be exercised.
async fn migrate_to_v3(url: &str, backend: Backend) {
    use sqlx::migrate::Migrator;
    let dir = tempfile::tempdir().unwrap();
    let from = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0004" {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    let migrator = Migrator::new(dir.path()).await.unwrap();
    match backend {
        Backend::Sqlite => {
            let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
            let pool =
                sqlx::SqlitePool::connect_with(opts.create_if_missing(true).foreign_keys(true))
                    .await
                    .unwrap();
            migrator.run(&pool).await.unwrap();
            seed_v3!(&pool);
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            seed_v3!(&pool);
            pool.close().await;
        }
    }
}

/// Counts rows with `sql` on whichever backend `url` names.
async fn count(url: &str, backend: Backend, sql: &str) -> i64 {
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            n
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            n
        }
    }
}

async fn upgrading_a_store_keeps_identities_and_links_and_admits_unknown_statuses(
    backend: Backend,
) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    migrate_to_v3(&db.url, backend).await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let store = Store::connect(&db.config(), clock.clone()).await.unwrap();
    store.migrate().await.unwrap();
    let source = store.source_by_name("okta").await.unwrap().unwrap();
    let people = store.source_identities(source.id).await.unwrap();
    assert_eq!(people.len(), 1);
    assert_eq!(people[0].status, IdentityStatus::Deprovisioned);
    // The rebuilt table still answers to links' foreign key, and the link survived.
    assert_eq!(
        count(&db.url, backend, "select count(*) from links").await,
        1
    );
    // An unknown status is now storable.
    let mut odd = person(5);
    odd.external_id = "00u-odd".into();
    let fake = FakeSource {
        people: vec![odd],
        ..FakeSource::new(0, Flaw::None)
    };
    let report = sync_source(
        &store,
        &source,
        &fake,
        &SourceSyncOptions {
            groups: false,
            ..SourceSyncOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.statuses.get("unknown"), Some(&1));
    store.close().await;
    // Deleting the identity still cascades to its link: the foreign key points at the new
    // table.
    assert_eq!(
        count(
            &db.url,
            backend,
            "select count(*) from identities where status = 'unknown'"
        )
        .await,
        1
    );
    if backend == Backend::Sqlite {
        let pool = sqlx::SqlitePool::connect_with(
            db.url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap()
                .foreign_keys(true),
        )
        .await
        .unwrap();
        let broken: Vec<(String,)> =
            sqlx::query_as("select \"table\" from pragma_foreign_key_check")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        sqlx::query("delete from identities where external_id = '00u1'")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert_eq!(
            count(&db.url, backend, "select count(*) from links").await,
            0
        );
    }
}

async fn readiness_detail_and_metrics_name_a_source_whose_latest_snapshot_is_incomplete(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let opts = SourceSyncOptions::default();
    let good = app
        .store
        .ensure_source("google", SourceKind::Google)
        .await
        .unwrap();
    assert!(
        sync_source(&app.store, &good, &FakeSource::new(12, Flaw::None), &opts)
            .await
            .unwrap()
            .is_complete()
    );
    let bad = app
        .store
        .ensure_source("okta", SourceKind::Okta)
        .await
        .unwrap();
    sync_source(
        &app.store,
        &bad,
        &FakeSource::new(40, Flaw::RepeatedCursor),
        &opts,
    )
    .await
    .unwrap();

    // A source that gives no last-login times at all is complete, with a note saying so.
    let quiet = app
        .store
        .ensure_source("entra", SourceKind::Entra)
        .await
        .unwrap();
    let mut no_logins = FakeSource::new(12, Flaw::None);
    for p in &mut no_logins.people {
        p.last_login_at = None;
    }
    assert!(
        sync_source(&app.store, &quiet, &no_logins, &opts)
            .await
            .unwrap()
            .is_complete()
    );
    let res = app.get("/readyz").await;
    assert_eq!(
        res.status(),
        reqwest::StatusCode::OK,
        "an incomplete snapshot is not unreadiness"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["incomplete"], serde_json::json!(["source okta"]));
    assert_eq!(body["sources"]["okta"]["snapshot"], "incomplete");
    assert!(
        body["sources"]["okta"]["reason"]
            .as_str()
            .unwrap()
            .contains("returned before")
    );
    assert_eq!(
        body["sources"]["okta"]["last_complete_at"],
        serde_json::Value::Null
    );
    assert_eq!(body["sources"]["entra"]["snapshot"], "complete");
    assert!(
        body["sources"]["entra"]["notes"][0]
            .as_str()
            .unwrap()
            .contains("no last-login time came from this source"),
        "{body}"
    );
    assert!(
        !body["sources"]["google"]["notes"]
            .to_string()
            .contains("no last-login time")
    );
    assert_eq!(body["sources"]["google"]["snapshot"], "complete");
    assert_eq!(body["sources"]["google"]["items"], 12);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("idbridge_snapshot_complete{kind=\"source\",name=\"okta\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("idbridge_snapshot_complete{kind=\"source\",name=\"google\"} 1"));
    assert!(metrics.contains("idbridge_snapshot_items{kind=\"source\",name=\"google\"} 12"));
}
