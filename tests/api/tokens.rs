//! SCIM bearer tokens end to end: the store keeps them the same on SQLite and PostgreSQL, the
//! authenticator accepts only a live token of the right source within its rate limit, and
//! `idbridge token create|list|revoke` issue, show and revoke them without ever showing a
//! secret twice.

use std::process::Output;
use std::sync::Arc;

use chrono::Duration;
use idbridge::auth::{self, AuthError, NewScimToken, ScimAuthenticator, SecretHash, TokenStatus};
use idbridge::clock::{Clock, ManualClock};
use idbridge::domain::{Source, SourceKind};
use idbridge::store::{Store, StoreError};

use crate::helpers::{
    Backend, TestDb, binary, on_both_backends, one_error_line, start_time, stderr, stdout,
};

on_both_backends!(
    store_keeps_tokens_by_prefix_lists_newest_first_revokes_once_and_only_moves_last_used_forward,
    a_valid_token_for_its_own_source_yields_its_principal,
    a_valid_token_presented_to_another_source_is_wrong_source,
    garbled_unknown_and_mismatched_tokens_are_refused_without_a_principal,
    a_revoked_token_is_refused_once_the_cache_entry_is_older_than_five_seconds,
    a_token_is_refused_as_expired_once_the_clock_reaches_its_expiry,
    a_token_with_burst_three_is_rate_limited_on_its_fourth_request,
    last_used_is_written_on_first_use_and_then_at_most_once_a_minute,
);

/// A migrated store on `backend` with a clock the test moves.
async fn store(backend: Backend) -> Option<(TestDb, Store, Arc<ManualClock>)> {
    let db = TestDb::create(backend).await?;
    let clock = Arc::new(ManualClock::new(start_time()));
    let store = Store::connect(&db.config(), clock.clone())
        .await
        .expect("connects");
    store.migrate().await.expect("migrates");
    Some((db, store, clock))
}

/// A SCIM source and a fresh token for it.
async fn source_with_token(
    store: &Store,
    name: &str,
    expires_in: Option<Duration>,
    clock: &ManualClock,
) -> (Source, auth::IssuedToken, auth::ScimToken) {
    let source = store
        .ensure_source(name, SourceKind::Scim)
        .await
        .expect("source");
    let (token, record) = auth::issue_token(
        store,
        source.id,
        Some(format!("{name} app")),
        expires_in.map(|d| clock.now() + d),
    )
    .await
    .expect("issues");
    (source, token, record)
}

fn bearer(token: &auth::IssuedToken) -> String {
    format!("Bearer {}", token.expose())
}

async fn store_keeps_tokens_by_prefix_lists_newest_first_revokes_once_and_only_moves_last_used_forward(
    backend: Backend,
) {
    let Some((_db, store, clock)) = store(backend).await else {
        return;
    };
    let entra = store
        .ensure_source("entra", SourceKind::Scim)
        .await
        .unwrap();
    let okta = store.ensure_source("okta", SourceKind::Scim).await.unwrap();
    let new = NewScimToken {
        source_id: entra.id,
        prefix: "0123abcd".into(),
        secret_hash: SecretHash::of(&"a".repeat(64)),
        label: Some("Entra production".into()),
        expires_at: Some(start_time() + Duration::days(90)),
    };
    let first = store.insert_scim_token(&new).await.unwrap();
    assert_eq!(
        (
            first.source_id,
            first.prefix.as_str(),
            first.label.as_deref()
        ),
        (entra.id, "0123abcd", Some("Entra production"))
    );
    assert_eq!(first.secret_hash, new.secret_hash);
    assert_eq!(
        first.created_at,
        start_time(),
        "issued at the store clock's now"
    );
    assert_eq!(first.expires_at, new.expires_at);
    assert_eq!((first.last_used_at, first.revoked_at), (None, None));

    // A prefix is unique; an unknown source is refused.
    let again = store.insert_scim_token(&new).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let orphan = store
        .insert_scim_token(&NewScimToken {
            source_id: idbridge::domain::SourceId::new(),
            prefix: "99999999".into(),
            ..new.clone()
        })
        .await;
    assert!(
        matches!(orphan, Err(StoreError::MissingReference(_))),
        "{orphan:?}"
    );

    clock.advance(Duration::minutes(1));
    let second = store
        .insert_scim_token(&NewScimToken {
            source_id: okta.id,
            prefix: "fedc9876".into(),
            label: None,
            expires_at: None,
            ..new.clone()
        })
        .await
        .unwrap();
    clock.advance(Duration::minutes(1));
    let third = store
        .insert_scim_token(&NewScimToken {
            prefix: "00000001".into(),
            ..new.clone()
        })
        .await
        .unwrap();

    assert_eq!(
        store.scim_token_by_prefix("0123abcd").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.scim_token_by_prefix("ffffffff").await.unwrap(), None);
    let prefixes = |tokens: Vec<auth::ScimToken>| -> Vec<String> {
        tokens.into_iter().map(|t| t.prefix).collect()
    };
    assert_eq!(
        prefixes(store.scim_tokens(None).await.unwrap()),
        ["00000001", "fedc9876", "0123abcd"],
        "newest first"
    );
    assert_eq!(
        prefixes(store.scim_tokens(Some(entra.id)).await.unwrap()),
        ["00000001", "0123abcd"]
    );
    assert_eq!(
        prefixes(store.scim_tokens(Some(okta.id)).await.unwrap()),
        ["fedc9876"]
    );

    // Revocation happens once and is stamped with the clock.
    clock.advance(Duration::minutes(1));
    assert!(store.revoke_scim_token("fedc9876").await.unwrap());
    let revoked_at = clock.now();
    clock.advance(Duration::minutes(1));
    assert!(!store.revoke_scim_token("fedc9876").await.unwrap());
    assert!(!store.revoke_scim_token("ffffffff").await.unwrap());
    let revoked = store
        .scim_token_by_prefix("fedc9876")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(revoked_at));
    assert_eq!(revoked.status(clock.now()), TokenStatus::Revoked);
    assert_eq!(
        store
            .scim_token_by_prefix("00000001")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None,
        "only the named token is revoked"
    );

    // last_used_at takes the latest of what it had and what it is told.
    let t1 = start_time() + Duration::hours(1) + Duration::microseconds(5);
    store.touch_scim_token(third.id, t1).await.unwrap();
    let used = |store: Store| async move {
        store
            .scim_token_by_prefix("00000001")
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };
    assert_eq!(used(store.clone()).await, Some(t1));
    store
        .touch_scim_token(third.id, t1 - Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(used(store.clone()).await, Some(t1), "never moves back");
    // Whole seconds sort after fractional ones of the same second only if later.
    let t2 = start_time() + Duration::hours(1) + Duration::seconds(1);
    store.touch_scim_token(third.id, t2).await.unwrap();
    assert_eq!(used(store.clone()).await, Some(t2));
    assert_eq!(
        store
            .scim_token_by_prefix("0123abcd")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        None,
        "only the named token is touched"
    );
    assert_eq!(second.last_used_at, None);
}

async fn a_valid_token_for_its_own_source_yields_its_principal(backend: Backend) {
    let Some((_db, store, clock)) = store(backend).await else {
        return;
    };
    let (source, token, record) =
        source_with_token(&store, "entra", Some(Duration::days(1)), &clock).await;
    let auth = ScimAuthenticator::new(store.clone(), clock.clone(), 50, 200);
    let principal = auth
        .authenticate("entra", Some(&bearer(&token)))
        .await
        .expect("authenticated");
    assert_eq!(principal.source_id, source.id);
    assert_eq!(principal.source_name, "entra");
    assert_eq!(principal.token_id, record.id);
    assert_eq!(principal.token_prefix, record.prefix);
    // The scheme is case-insensitive and surrounding space is ignored.
    let lower = format!("bearer  {} ", token.expose());
    assert_eq!(
        auth.authenticate("entra", Some(&lower)).await.unwrap(),
        principal
    );
    // A fresh authenticator (no cache) agrees.
    let fresh = ScimAuthenticator::new(store.clone(), clock.clone(), 50, 200);
    assert_eq!(
        fresh
            .authenticate("entra", Some(&bearer(&token)))
            .await
            .unwrap(),
        principal
    );
}

async fn a_valid_token_presented_to_another_source_is_wrong_source(backend: Backend) {
    let Some((_db, store, clock)) = store(backend).await else {
        return;
    };
    let (_, entra_token, _) = source_with_token(&store, "entra", None, &clock).await;
    let (_, okta_token, _) = source_with_token(&store, "okta", None, &clock).await;
    let auth = ScimAuthenticator::new(store.clone(), clock.clone(), 50, 200);
    for (path, token) in [
        ("okta", &entra_token),
        ("entra", &okta_token),
        ("nowhere", &entra_token),
    ] {
        let result = auth.authenticate(path, Some(&bearer(token))).await;
        assert!(
            matches!(result, Err(AuthError::WrongSource)),
            "{path}: {result:?}"
        );
        assert_eq!(
            result.unwrap_err().status(),
            axum::http::StatusCode::NOT_FOUND
        );
    }
    auth.authenticate("okta", Some(&bearer(&okta_token)))
        .await
        .expect("its own source still works");
}

async fn garbled_unknown_and_mismatched_tokens_are_refused_without_a_principal(backend: Backend) {
    let Some((_db, store, clock)) = store(backend).await else {
        return;
    };
    let (_, token, record) = source_with_token(&store, "entra", None, &clock).await;
    let auth = ScimAuthenticator::new(store.clone(), clock.clone(), 50, 200);
    let secret = &token.expose()[13..];
    let flipped = {
        let mut s = token.expose().to_owned();
        let last = if s.ends_with('0') { "1" } else { "0" };
        s.replace_range(s.len() - 1.., last);
        s
    };
    let unknown_prefix = format!(
        "idb_{}_{secret}",
        if record.prefix == "00000000" {
            "00000001"
        } else {
            "00000000"
        }
    );
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing"),
        (Some("   ".into()), "missing"),
        (Some(token.expose().to_owned()), "malformed"),
        (Some(format!("Basic {}", token.expose())), "malformed"),
        (Some("Bearer".into()), "malformed"),
        (Some("Bearer idb_zz".into()), "malformed"),
        (Some(format!("Bearer {}é", token.expose())), "malformed"),
        (Some(format!("Bearer {flipped}")), "unknown"),
        (Some(format!("Bearer {unknown_prefix}")), "unknown"),
    ];
    for (header, expected) in cases {
        let result = auth.authenticate("entra", header.as_deref()).await;
        let ok = match expected {
            "missing" => matches!(result, Err(AuthError::Missing)),
            "malformed" => matches!(result, Err(AuthError::Malformed)),
            _ => matches!(result, Err(AuthError::Unknown)),
        };
        assert!(ok, "{header:?}: expected {expected}, got {result:?}");
        let message = result.unwrap_err().to_string();
        assert!(!message.contains(secret), "{message}");
    }
}

async fn a_revoked_token_is_refused_once_the_cache_entry_is_older_than_five_seconds(
    backend: Backend,
) {
    let Some((_db, store, clock)) = store(backend).await else {
        return;
    };
    let (_, token, record) = source_with_token(&store, "entra", None, &clock).await;
    let auth = ScimAuthenticator::new(store.clone(), clock.clone(), 50, 200);
    let header = bearer(&token);
    auth.authenticate("entra", Some(&header))
        .await
        .expect("live token");
    assert!(store.revoke_scim_token(&record.prefix).await.unwrap());

    // A fresh authenticator sees the revocation at once.
    let fresh = ScimAuthenticator::new(store.clone(), clock.clone(), 50, 200);
    let result = fresh.authenticate("entra", Some(&header)).await;
    assert!(matches!(result, Err(AuthError::Revoked)), "{result:?}");

    // The warm one may serve its cached entry for under five seconds, then must re-read.
    clock.advance(Duration::seconds(4));
    assert!(
        auth.authenticate("entra", Some(&header)).await.is_ok(),
        "within the cache lifetime the earlier lookup is reused"
    );
    clock.advance(Duration::seconds(1));
    let result = auth.authenticate("entra", Some(&header)).await;
    assert!(matches!(result, Err(AuthError::Revoked)), "{result:?}");
}

async fn a_token_is_refused_as_expired_once_the_clock_reaches_its_expiry(backend: Backend) {
    let Some((_db, store, clock)) = store(backend).await else {
        return;
    };
    let (_, token, record) =
        source_with_token(&store, "entra", Some(Duration::hours(1)), &clock).await;
    let auth = ScimAuthenticator::new(store.clone(), clock.clone(), 50, 200);
    let header = bearer(&token);
    clock.advance(Duration::minutes(59));
    auth.authenticate("entra", Some(&header))
        .await
        .expect("not yet expired");
    clock.set(record.expires_at.expect("has an expiry"));
    let result = auth.authenticate("entra", Some(&header)).await;
    assert!(matches!(result, Err(AuthError::Expired)), "{result:?}");
    clock.advance(Duration::days(1));
    let result = auth.authenticate("entra", Some(&header)).await;
    assert!(matches!(result, Err(AuthError::Expired)), "{result:?}");
}

async fn a_token_with_burst_three_is_rate_limited_on_its_fourth_request(backend: Backend) {
    let Some((_db, store, clock)) = store(backend).await else {
        return;
    };
    let (_, token, _) = source_with_token(&store, "entra", None, &clock).await;
    let (_, other, _) = source_with_token(&store, "okta", None, &clock).await;
    let auth = ScimAuthenticator::new(store.clone(), clock.clone(), 1, 3);
    let header = bearer(&token);
    // Warm the cache first so the four counted requests follow each other closely.
    let warm = ScimAuthenticator::new(store.clone(), clock.clone(), 1, 3);
    warm.authenticate("entra", Some(&header)).await.unwrap();
    for i in 1..=3 {
        auth.authenticate("entra", Some(&header))
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e:?}"));
    }
    match auth.authenticate("entra", Some(&header)).await {
        Err(AuthError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
        other => panic!("fourth request: {other:?}"),
    }
    // Clones share the limit; another token has its own.
    let clone = auth.clone();
    assert!(matches!(
        clone.authenticate("entra", Some(&header)).await,
        Err(AuthError::RateLimited { .. })
    ));
    clone
        .authenticate("okta", Some(&bearer(&other)))
        .await
        .expect("another token's bucket is full");
}

async fn last_used_is_written_on_first_use_and_then_at_most_once_a_minute(backend: Backend) {
    let Some((_db, store, clock)) = store(backend).await else {
        return;
    };
    let (_, token, record) = source_with_token(&store, "entra", None, &clock).await;
    let auth = ScimAuthenticator::new(store.clone(), clock.clone(), 50, 200);
    let header = bearer(&token);
    let last_used = || async {
        store
            .scim_token_by_prefix(&record.prefix)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };
    assert_eq!(last_used().await, None);
    let first = clock.now();
    auth.authenticate("entra", Some(&header)).await.unwrap();
    assert_eq!(last_used().await, Some(first));
    clock.advance(Duration::seconds(30));
    auth.authenticate("entra", Some(&header)).await.unwrap();
    assert_eq!(last_used().await, Some(first), "not again within a minute");
    clock.advance(Duration::seconds(30));
    auth.authenticate("entra", Some(&header)).await.unwrap();
    assert_eq!(last_used().await, Some(clock.now()));
    // Refused requests are not uses.
    clock.advance(Duration::minutes(5));
    let _ = auth.authenticate("okta", Some(&header)).await;
    assert_eq!(last_used().await, Some(clock.now() - Duration::minutes(5)));
}

/// Whether `got` is `wanted` give or take the few milliseconds between the CLI reading the
/// clock for the expiry and the store stamping the creation time.
fn about(got: Duration, wanted: Duration) -> bool {
    (got - wanted).abs() < Duration::seconds(5)
}

/// Runs the binary with a configured SCIM source `entra`, a polled source `okta`, and the
/// database at `url`.
fn idbridge(url: &str, args: &[&str]) -> Output {
    binary()
        .env("IDBRIDGE_DATABASE__URL", url)
        .env("IDBRIDGE_SOURCES__ENTRA__KIND", "scim")
        .env("IDBRIDGE_SOURCES__OKTA__KIND", "okta")
        .env("IDBRIDGE_SOURCES__OKTA__BASE_URL", "https://acme.okta.com")
        .env("IDBRIDGE_SOURCES__OKTA__TOKEN", "polled-not-pushed")
        .args(args)
        .output()
        .expect("runs idbridge")
}

#[test]
fn token_create_for_a_source_not_configured_for_scim_is_one_line_and_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("idbridge.db").display());
    for source in ["nowhere", "okta"] {
        let out = idbridge(&url, &["token", "create", "--source", source]);
        let line = one_error_line(&out, 2);
        assert!(
            line.contains(&format!("`{source}`"))
                && line.contains("configured SCIM sources: entra"),
            "{line}"
        );
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    }
    assert!(
        !dir.path().join("idbridge.db").exists(),
        "nothing is written when the command is refused"
    );
}

#[tokio::test]
async fn token_create_prints_the_token_once_list_never_shows_it_and_revoke_marks_it_revoked() {
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");

    let out = idbridge(
        &db.url,
        &[
            "token",
            "create",
            "--source",
            "entra",
            "--label",
            "Entra prod",
            "--expires",
            "90d",
        ],
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let printed = stdout(&out);
    let tokens: Vec<&str> = printed
        .split_whitespace()
        .filter(|w| auth::token::parse(w).is_some())
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "the token appears exactly once:\n{printed}"
    );
    let token = tokens[0];
    let (prefix, secret) = auth::token::parse(token).unwrap();
    assert!(printed.contains("cannot be shown again"), "{printed}");
    assert!(printed.contains("/scim/v2/entra"), "{printed}");

    // The stored row holds only the hash and the requested expiry.
    let clock = Arc::new(idbridge::clock::SystemClock);
    let store = Store::connect(&db.config(), clock.clone()).await.unwrap();
    let row = store.scim_token_by_prefix(prefix).await.unwrap().unwrap();
    assert!(row.secret_hash.matches(secret));
    assert_ne!(row.secret_hash.as_stored(), secret);
    let lifetime = row.expires_at.unwrap() - row.created_at;
    assert!(about(lifetime, Duration::days(90)), "{lifetime:?}");
    assert_eq!(row.label.as_deref(), Some("Entra prod"));
    let auth = ScimAuthenticator::new(store.clone(), clock.clone(), 50, 200);
    auth.authenticate("entra", Some(&format!("Bearer {token}")))
        .await
        .expect("the printed token authenticates");

    let out = idbridge(&db.url, &["token", "list"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let listed = stdout(&out);
    let line = listed
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("prefix {prefix} listed:\n{listed}"));
    assert!(
        line.contains("entra") && line.contains("Entra prod"),
        "{line}"
    );
    assert!(line.trim_end().ends_with("active"), "{line}");
    assert!(!listed.contains(secret), "{listed}");
    assert!(!listed.contains(row.secret_hash.as_stored()), "{listed}");
    assert!(listed.starts_with("PREFIX"), "{listed}");

    let out = idbridge(&db.url, &["token", "revoke", prefix]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("revoked token {prefix}")),
        "{}",
        stdout(&out)
    );

    let out = idbridge(&db.url, &["token", "list", "--source", "entra"]);
    let listed = stdout(&out);
    let line = listed
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("prefix {prefix} listed:\n{listed}"));
    assert!(line.trim_end().ends_with("revoked"), "{line}");

    // Revoking again, or a prefix nobody holds, is one line and a failure; the whole token
    // is accepted in place of its prefix and never echoed.
    let out = idbridge(&db.url, &["token", "revoke", token]);
    let line = one_error_line(&out, 1);
    assert!(line.contains("already revoked"), "{line}");
    assert!(!line.contains(secret), "{line}");
    let out = idbridge(&db.url, &["token", "revoke", "ffffffff"]);
    let line = one_error_line(&out, 1);
    assert!(line.contains("no token with prefix ffffffff"), "{line}");
    store.close().await;
}

#[tokio::test]
async fn token_create_without_expires_lasts_365_days_and_never_means_no_expiry() {
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    for (args, expected) in [
        (vec![], Some(Duration::days(365))),
        (vec!["--expires", "never"], None),
    ] {
        let mut full = vec!["token", "create", "--source", "entra"];
        full.extend(args);
        let out = idbridge(&db.url, &full);
        assert!(out.status.success(), "stderr: {}", stderr(&out));
        let printed = stdout(&out);
        let token = printed
            .split_whitespace()
            .find(|w| auth::token::parse(w).is_some())
            .expect("a token is printed");
        let prefix = auth::token::parse(token).unwrap().0.to_owned();
        let store = Store::connect(&db.config(), Arc::new(idbridge::clock::SystemClock))
            .await
            .unwrap();
        let row = store.scim_token_by_prefix(&prefix).await.unwrap().unwrap();
        let lifetime = row.expires_at.map(|at| at - row.created_at);
        match (lifetime, expected) {
            (Some(got), Some(wanted)) => assert!(about(got, wanted), "{got:?}"),
            (got, wanted) => assert_eq!(got, wanted),
        }
        store.close().await;
    }
    let out = idbridge(
        &db.url,
        &["token", "create", "--source", "entra", "--expires", "0d"],
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
}
