//! The scheduler lease on both backends: of many concurrent takers exactly one wins (on a
//! fresh lease and on an expired one), a takeover after expiry bumps the epoch and the old
//! holder's epoch is refused, a renewal keeps the epoch, a release lets another holder in at
//! once, and on SQLite a second instance is refused the scheduler with a clear message.

use std::sync::Arc;

use chrono::Duration;
use idbridge::clock::ManualClock;
use idbridge::store::{LeaseError, SCHEDULER_LEASE, Store, StoreError};

use crate::helpers::{Backend, TestDb, on_both_backends, start_time};

const NAME: &str = "scheduler-test";

/// `n` stores (separate pools, as separate replicas would have) on one fresh database,
/// sharing one test clock.
async fn replicas(backend: Backend, n: usize) -> Option<(TestDb, Arc<ManualClock>, Vec<Store>)> {
    let db = TestDb::create(backend).await?;
    let clock = Arc::new(ManualClock::new(start_time()));
    let mut stores = Vec::new();
    for _ in 0..n {
        let store = Store::connect(&db.config(), clock.clone())
            .await
            .expect("connect");
        stores.push(store);
    }
    stores[0].migrate().await.expect("migrate");
    Some((db, clock, stores))
}

fn stale(e: StoreError) -> (i64, Option<i64>) {
    match e {
        StoreError::Lease(LeaseError::StaleEpoch { epoch, current, .. }) => (epoch, current),
        other => panic!("expected a stale epoch, got {other:?}"),
    }
}

/// Every holder races for lease `NAME` at once; returns the winners' (holder, epoch).
async fn race(stores: &[Store], holders: usize, ttl: Duration) -> Vec<(String, i64)> {
    let mut tasks = Vec::new();
    for i in 0..holders {
        let store = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let holder = format!("holder-{i}");
            store
                .acquire_lease(NAME, &holder, ttl)
                .await
                .expect("acquire")
                .map(|l| (holder, l.epoch))
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(w) = t.await.expect("task") {
            winners.push(w);
        }
    }
    winners
}

on_both_backends!(
    of_many_concurrent_takers_exactly_one_wins_a_fresh_lease_and_an_expired_one,
    a_takeover_after_expiry_bumps_the_epoch_and_the_old_epoch_is_refused,
    a_renewal_keeps_the_epoch_and_a_lapsed_term_does_not,
    a_release_lets_another_holder_in_at_once,
    a_second_instance_gets_the_scheduler_only_on_postgres,
    a_lease_needs_a_positive_time_to_live,
);

async fn of_many_concurrent_takers_exactly_one_wins_a_fresh_lease_and_an_expired_one(
    backend: Backend,
) {
    let Some((_db, clock, stores)) = replicas(backend, 3).await else {
        return;
    };
    let ttl = Duration::seconds(30);
    let winners = race(&stores, 24, ttl).await;
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (holder, epoch) = winners[0].clone();
    assert_eq!(epoch, 1);
    let stored = stores[1].lease(NAME).await.unwrap().expect("stored");
    assert_eq!(stored.holder, holder);
    assert_eq!(stored.epoch, 1);
    assert_eq!(stored.expires_at, start_time() + ttl);

    // The term lapses; everyone (the old holder included) races again.
    clock.advance(ttl + Duration::seconds(1));
    let winners = race(&stores, 24, ttl).await;
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].1, 2);
    let stored = stores[2].lease(NAME).await.unwrap().expect("stored");
    assert_eq!(stored.holder, winners[0].0);
    assert_eq!(stored.epoch, 2);
}

async fn a_takeover_after_expiry_bumps_the_epoch_and_the_old_epoch_is_refused(backend: Backend) {
    let Some((_db, clock, stores)) = replicas(backend, 2).await else {
        return;
    };
    let (a, b) = (&stores[0], &stores[1]);
    let ttl = Duration::seconds(10);
    let first = a
        .acquire_lease(NAME, "a", ttl)
        .await
        .unwrap()
        .expect("a takes it");
    assert_eq!(first.epoch, 1);
    a.check_epoch(NAME, 1).await.expect("a's epoch is live");
    assert_eq!(b.acquire_lease(NAME, "b", ttl).await.unwrap(), None);

    // One microsecond before expiry a still holds it; at expiry it is free.
    clock.advance(ttl - Duration::microseconds(1));
    assert_eq!(b.acquire_lease(NAME, "b", ttl).await.unwrap(), None);
    clock.advance(Duration::microseconds(1));
    // Expired but not yet taken over: a's writes are refused already.
    let (epoch, current) = stale(a.check_epoch(NAME, 1).await.unwrap_err());
    assert_eq!((epoch, current), (1, Some(1)));

    let taken = b
        .acquire_lease(NAME, "b", ttl)
        .await
        .unwrap()
        .expect("b takes over");
    assert_eq!(taken.epoch, 2);
    assert_eq!(taken.holder, "b");
    assert_eq!(taken.acquired_at, clock_now(&clock));

    // The old holder wakes up: its epoch is refused, with a message saying why, and it
    // cannot take the lease back while b's term is live.
    let err = a.check_epoch(NAME, 1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "lease `scheduler-test`: epoch 1 is stale (the current epoch is 2)"
    );
    assert_eq!(stale(err), (1, Some(2)));
    assert_eq!(a.acquire_lease(NAME, "a", ttl).await.unwrap(), None);
    b.check_epoch(NAME, 2).await.expect("b's epoch is live");
    // An epoch from the future or of a lease never taken is refused too.
    assert_eq!(
        stale(b.check_epoch(NAME, 3).await.unwrap_err()),
        (3, Some(2))
    );
    assert_eq!(
        stale(b.check_epoch("never-taken", 1).await.unwrap_err()),
        (1, None)
    );
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<chrono::Utc> {
    use idbridge::clock::Clock;
    clock.now()
}

async fn a_renewal_keeps_the_epoch_and_a_lapsed_term_does_not(backend: Backend) {
    let Some((_db, clock, stores)) = replicas(backend, 2).await else {
        return;
    };
    let (a, b) = (&stores[0], &stores[1]);
    let ttl = Duration::seconds(10);
    let first = a
        .acquire_lease(NAME, "a", ttl)
        .await
        .unwrap()
        .expect("taken");
    clock.advance(Duration::seconds(6));
    let renewed = a
        .acquire_lease(NAME, "a", ttl)
        .await
        .unwrap()
        .expect("renewed");
    assert_eq!(renewed.epoch, first.epoch);
    assert_eq!(renewed.acquired_at, first.acquired_at);
    assert_eq!(renewed.expires_at, clock_now(&clock) + ttl);
    // Past the first term's end the renewed term still holds.
    clock.advance(Duration::seconds(6));
    assert_eq!(b.acquire_lease(NAME, "b", ttl).await.unwrap(), None);
    a.check_epoch(NAME, first.epoch).await.expect("still live");

    // a lets its term lapse and takes the lease again: a new term, a new epoch, and work
    // stamped with the old one is refused.
    clock.advance(Duration::seconds(5));
    let again = a
        .acquire_lease(NAME, "a", ttl)
        .await
        .unwrap()
        .expect("retaken");
    assert_eq!(again.epoch, first.epoch + 1);
    assert_eq!(again.acquired_at, clock_now(&clock));
    assert_eq!(
        stale(a.check_epoch(NAME, first.epoch).await.unwrap_err()),
        (first.epoch, Some(again.epoch))
    );
}

async fn a_release_lets_another_holder_in_at_once(backend: Backend) {
    let Some((_db, _clock, stores)) = replicas(backend, 2).await else {
        return;
    };
    let (a, b) = (&stores[0], &stores[1]);
    let ttl = Duration::minutes(5);
    let first = a
        .acquire_lease(NAME, "a", ttl)
        .await
        .unwrap()
        .expect("taken");
    assert_eq!(b.acquire_lease(NAME, "b", ttl).await.unwrap(), None);
    // Only the holder can release.
    assert!(!b.release_lease(NAME, "b").await.unwrap());
    assert_eq!(b.acquire_lease(NAME, "b", ttl).await.unwrap(), None);
    assert!(a.release_lease(NAME, "a").await.unwrap());
    assert!(!a.release_lease(NAME, "a").await.unwrap(), "released once");
    // Same instant, no waiting for the term to run out.
    let taken = b
        .acquire_lease(NAME, "b", ttl)
        .await
        .unwrap()
        .expect("b takes it");
    assert_eq!(taken.epoch, first.epoch + 1);
    assert_eq!(
        stale(a.check_epoch(NAME, first.epoch).await.unwrap_err()).1,
        Some(taken.epoch)
    );
    // A released lease keeps its row and epoch: releasing and retaking never goes back.
    assert!(b.release_lease(NAME, "b").await.unwrap());
    let stored = a.lease(NAME).await.unwrap().expect("row kept");
    assert_eq!(stored.epoch, taken.epoch);
    let back = a
        .acquire_lease(NAME, "a", ttl)
        .await
        .unwrap()
        .expect("a again");
    assert_eq!(back.epoch, taken.epoch + 1);
}

async fn a_second_instance_gets_the_scheduler_only_on_postgres(backend: Backend) {
    let Some((_db, clock, stores)) = replicas(backend, 2).await else {
        return;
    };
    let (first, second) = (&stores[0], &stores[1]);
    let ttl = Duration::seconds(60);
    let lease = first
        .claim_scheduler("host-1/first", ttl)
        .await
        .unwrap()
        .expect("the first instance runs the scheduler");
    assert_eq!(lease.name, SCHEDULER_LEASE);
    assert_eq!(lease.pid, i64::from(std::process::id()));
    let refused = second.claim_scheduler("host-2/second", ttl).await;
    match backend {
        Backend::Postgres => {
            // A replica stands by.
            assert!(matches!(refused, Ok(None)), "{refused:?}");
        }
        Backend::Sqlite => {
            let err = refused.expect_err("a second instance on one SQLite file is refused");
            assert_eq!(
                err.to_string(),
                format!(
                    "another idbridge instance (holder host-1/first, pid {}) runs the scheduler \
                     on this database until {}; stop it or wait for its lease to expire",
                    std::process::id(),
                    lease.expires_at
                )
            );
        }
    }
    // The first one renews without trouble; once its lease lapses the second one runs.
    let renewed = first.claim_scheduler("host-1/first", ttl).await.unwrap();
    assert_eq!(renewed.map(|l| l.epoch), Some(lease.epoch));
    clock.advance(ttl + Duration::seconds(1));
    let taken = second
        .claim_scheduler("host-2/second", ttl)
        .await
        .unwrap()
        .expect("the second instance takes over");
    assert_eq!(taken.epoch, lease.epoch + 1);
}

async fn a_lease_needs_a_positive_time_to_live(backend: Backend) {
    let Some((_db, _clock, stores)) = replicas(backend, 1).await else {
        return;
    };
    for ttl in [Duration::zero(), Duration::seconds(-5)] {
        let err = stores[0].acquire_lease(NAME, "a", ttl).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Lease(LeaseError::BadTtl { .. })),
            "{err:?}"
        );
    }
    assert_eq!(stores[0].lease(NAME).await.unwrap(), None);
}
