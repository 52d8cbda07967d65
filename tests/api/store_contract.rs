//! One story through every store method, run on SQLite and on PostgreSQL: both backends must
//! behave the same.

use chrono::Duration;
use idbridge::clock::Clock;
use idbridge::domain::{
    AccountId, IdentityStatus, LinkMethod, NewAccount, NewIdentity, SourceKind, TargetKind,
};
use idbridge::store::{Store, StoreError};
use serde_json::json;
use std::sync::Arc;

use crate::helpers::{Backend, TestDb, on_both_backends, start_time};

on_both_backends!(store_keeps_the_same_story_on_every_backend);

async fn store_keeps_the_same_story_on_every_backend(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let clock = Arc::new(idbridge::clock::ManualClock::new(start_time()));
    let store = Store::connect(&db.config(), clock.clone())
        .await
        .expect("connects");

    // A fresh database is not ready until migrated; migrating twice applies nothing new.
    assert!(store.readiness().await.is_err());
    assert!(store.migrate().await.expect("migrates") >= 1);
    assert_eq!(store.migrate().await.expect("migrates again"), 0);
    store.readiness().await.expect("ready after migration");

    // Sources and targets are registered once; a name never changes kind.
    let okta = store
        .ensure_source("okta-prod", SourceKind::Okta)
        .await
        .unwrap();
    assert_eq!(
        okta.created_at,
        start_time(),
        "timestamps round-trip to the microsecond"
    );
    clock.advance(Duration::minutes(1));
    let again = store
        .ensure_source("okta-prod", SourceKind::Okta)
        .await
        .unwrap();
    assert_eq!(again, okta);
    let clash = store.ensure_source("okta-prod", SourceKind::Google).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let scim = store
        .ensure_source("entra-push", SourceKind::Scim)
        .await
        .unwrap();
    let names: Vec<_> = store
        .sources()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["entra-push", "okta-prod"]);
    assert_eq!(store.source_by_name("nope").await.unwrap(), None);

    let wiki = store
        .ensure_target(
            "wiki",
            TargetKind::ConfluenceDc,
            "https://wiki.example.com/confluence",
        )
        .await
        .unwrap();
    let moved = store
        .ensure_target(
            "wiki",
            TargetKind::ConfluenceDc,
            "https://wiki2.example.com",
        )
        .await
        .unwrap();
    assert_eq!(
        (moved.id, moved.base_url.as_str()),
        (wiki.id, "https://wiki2.example.com")
    );
    assert!(matches!(
        store
            .ensure_target("wiki", TargetKind::ConfluenceCloud, "x")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.target_by_name("wiki").await.unwrap().unwrap().id,
        wiki.id
    );

    // Identities are keyed by the source's immutable id.
    let mut ada = NewIdentity {
        source_id: okta.id,
        external_id: "00u1abcd".into(),
        user_name: "Ada.Lovelace@Example.com".into(),
        email: Some("Ada.Lovelace@Example.com".into()),
        display_name: Some("Ada Lovelace".into()),
        status: IdentityStatus::Active,
        idp_created_at: Some(start_time() - Duration::days(400)),
        last_login_at: Some(start_time() - Duration::days(2)),
        attributes: json!({ "department": "Engineering", "tags": ["a", "b"] }),
    };
    let first = store.upsert_identity(&ada).await.unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.attributes, ada.attributes);
    assert_eq!(first.first_seen_at, clock.now());

    clock.advance(Duration::hours(1));
    let seen_again = store.upsert_identity(&ada).await.unwrap();
    assert_eq!(seen_again.id, first.id);
    assert_eq!(
        seen_again.version, 1,
        "nothing changed, so the version holds"
    );
    assert_eq!(seen_again.updated_at, first.updated_at);
    assert_eq!(seen_again.last_seen_at, clock.now());

    clock.advance(Duration::hours(1));
    ada.status = IdentityStatus::Deprovisioned;
    let left = store.upsert_identity(&ada).await.unwrap();
    assert_eq!(left.version, 2);
    assert_eq!(left.status, IdentityStatus::Deprovisioned);
    assert_eq!(left.status_changed_at, clock.now());

    clock.advance(Duration::hours(1));
    ada.display_name = Some("Ada King".into());
    let renamed = store.upsert_identity(&ada).await.unwrap();
    assert_eq!(renamed.version, 3);
    assert_eq!(
        renamed.status_changed_at, left.status_changed_at,
        "status did not change"
    );

    let found = store
        .identity_by_external_id(okta.id, "00u1abcd")
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&renamed));
    assert_eq!(
        store
            .identity_by_external_id(scim.id, "00u1abcd")
            .await
            .unwrap(),
        None
    );
    let by_name = store
        .identities_by_user_name(okta.id, "  ada.lovelace@example.COM")
        .await
        .unwrap();
    assert_eq!(by_name.len(), 1);

    // The same external id in another source is another identity.
    let other = store
        .upsert_identity(&NewIdentity {
            source_id: scim.id,
            ..ada.clone()
        })
        .await
        .unwrap();
    assert_ne!(other.id, renamed.id);

    // Accounts are keyed by the target's immutable key.
    let account = NewAccount {
        target_id: wiki.id,
        account_key: "8a7f808a7b1c2d3e".into(),
        user_name: "alovelace".into(),
        email: Some("ADA.LOVELACE@example.com".into()),
        display_name: Some("Ada Lovelace".into()),
        active: true,
        last_login_at: None,
        remote_created_at: Some(start_time() - Duration::days(300)),
        managed: true,
        attributes: json!({ "directory": "Confluence Internal Directory" }),
    };
    let acc = store.upsert_account(&account).await.unwrap();
    assert!(acc.active && acc.managed);
    assert_eq!(acc.version, 1);
    let deactivated = store
        .upsert_account(&NewAccount {
            active: false,
            ..account.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        (deactivated.id, deactivated.version, deactivated.active),
        (acc.id, 2, false)
    );
    let by_email = store
        .accounts_by_email(wiki.id, "ada.lovelace@EXAMPLE.com")
        .await
        .unwrap();
    assert_eq!(by_email.iter().map(|a| a.id).collect::<Vec<_>>(), [acc.id]);
    assert_eq!(
        store
            .account_by_key(wiki.id, "8a7f808a7b1c2d3e")
            .await
            .unwrap()
            .map(|a| a.id),
        Some(acc.id)
    );

    // Links are made once per pair and must point at rows that exist.
    let link = store
        .link(renamed.id, acc.id, LinkMethod::Email)
        .await
        .unwrap();
    let relinked = store
        .link(renamed.id, acc.id, LinkMethod::Manual)
        .await
        .unwrap();
    assert_eq!(relinked, link, "the first link stands");
    let dangling = store
        .link(renamed.id, AccountId::new(), LinkMethod::Manual)
        .await;
    assert!(
        matches!(dangling, Err(StoreError::MissingReference(_))),
        "{dangling:?}"
    );
    let links = store.links_for_account(acc.id).await.unwrap();
    assert_eq!(links, [link]);

    // Settings hold JSON values by key.
    assert_eq!(store.setting("dashboard.tier").await.unwrap(), None);
    store
        .put_setting("dashboard.tier", &json!({ "seats": 500 }))
        .await
        .unwrap();
    store
        .put_setting("dashboard.tier", &json!({ "seats": 1000 }))
        .await
        .unwrap();
    assert_eq!(
        store.setting("dashboard.tier").await.unwrap(),
        Some(json!({ "seats": 1000 }))
    );

    store.close().await;
}
