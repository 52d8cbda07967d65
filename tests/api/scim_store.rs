//! SCIM storage on both backends: the identity each User mirrors (leaver and returner signals
//! with their times), versions that move only on change, memberships, and the hash-chained
//! audit entries every change writes — including that tampering is detected.

use std::sync::Arc;

use chrono::Duration;
use idbridge::clock::{Clock, ManualClock};
use idbridge::domain::{IdentityStatus, SourceKind};
use idbridge::store::{ScimKind, Store, StoreError};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};

use crate::helpers::{Backend, TestDb, on_both_backends, start_time};

fn user(name: &str, active: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "active": active,
        "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
    })
}

on_both_backends!(scim_writes_keep_identities_versions_members_and_a_verifiable_audit_chain);

async fn scim_writes_keep_identities_versions_members_and_a_verifiable_audit_chain(
    backend: Backend,
) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(start_time()));
    let store = Store::connect(&db.config(), clock.clone()).await.unwrap();
    store.migrate().await.unwrap();
    let source = store
        .ensure_source("entra", SourceKind::Scim)
        .await
        .unwrap();
    let other = store.ensure_source("okta", SourceKind::Scim).await.unwrap();

    // A new User is an active identity of its source with the same id.
    let ada = store
        .scim_create(
            ScimKind::User,
            source.id,
            user("ada", true),
            "scim:aaaa1111",
        )
        .await
        .unwrap();
    let identity = store
        .identity_by_external_id(source.id, &ada.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.id.0, ada.id);
    assert_eq!(identity.status, IdentityStatus::Active);
    assert_eq!(identity.email.as_deref(), Some("ada@example.com"));
    assert_eq!(identity.display_name.as_deref(), Some("Ada Lovelace"));

    // Same userName (any case) in the same source is a conflict; in another source it is not.
    let dup = store
        .scim_create(
            ScimKind::User,
            source.id,
            user("ADA", true),
            "scim:aaaa1111",
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    store
        .scim_create(ScimKind::User, other.id, user("ada", true), "scim:bbbb2222")
        .await
        .unwrap();

    // Writing the same document changes nothing, not even the version.
    clock.advance(Duration::minutes(5));
    let same = store
        .scim_replace(
            ScimKind::User,
            source.id,
            ada.id,
            None,
            ada.document.clone(),
            "scim:aaaa1111",
            "replace",
        )
        .await
        .unwrap();
    assert_eq!(
        (same.version, same.updated_at),
        (ada.version, ada.updated_at)
    );

    // active=false is a leaver signal recorded at its time; true again is a returner signal.
    clock.advance(Duration::minutes(5));
    let left_at = clock.now();
    let left = store
        .scim_replace(
            ScimKind::User,
            source.id,
            ada.id,
            Some(ada.version),
            user("ada", false),
            "scim:aaaa1111",
            "patch",
        )
        .await
        .unwrap();
    assert_eq!(left.version, ada.version + 1);
    let identity = store
        .identity_by_external_id(source.id, &ada.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (identity.status, identity.status_changed_at),
        (IdentityStatus::Deprovisioned, left_at)
    );

    // A stale version is refused.
    let stale = store
        .scim_replace(
            ScimKind::User,
            source.id,
            ada.id,
            Some(ada.version),
            user("ada", true),
            "scim:aaaa1111",
            "patch",
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::VersionMismatch)),
        "{stale:?}"
    );

    clock.advance(Duration::minutes(5));
    let back_at = clock.now();
    store
        .scim_replace(
            ScimKind::User,
            source.id,
            ada.id,
            None,
            user("ada", true),
            "scim:aaaa1111",
            "patch",
        )
        .await
        .unwrap();
    let identity = store
        .identity_by_external_id(source.id, &ada.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (identity.status, identity.status_changed_at),
        (IdentityStatus::Active, back_at)
    );

    // Groups keep members that exist in the source; others are ignored.
    let grace = store
        .scim_create(
            ScimKind::User,
            source.id,
            user("grace", true),
            "scim:aaaa1111",
        )
        .await
        .unwrap();
    let foreign = store
        .scim_create(
            ScimKind::User,
            other.id,
            user("linus", true),
            "scim:bbbb2222",
        )
        .await
        .unwrap();
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engineering",
        "members": [
            {"value": ada.id.to_string(), "display": "ada"},
            {"value": grace.id.to_string()},
            {"value": foreign.id.to_string()},
            {"value": "not-an-id"},
        ],
    });
    let g = store
        .scim_create(ScimKind::Group, source.id, group, "scim:aaaa1111")
        .await
        .unwrap();
    let members = g.members.clone().unwrap();
    let mut ids: Vec<String> = members.iter().map(|m| m.value.clone()).collect();
    ids.sort();
    let mut expected = vec![ada.id.to_string(), grace.id.to_string()];
    expected.sort();
    assert_eq!(ids, expected);
    let read = store
        .scim_get(ScimKind::User, source.id, grace.id, false, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read.groups
            .unwrap()
            .iter()
            .map(|r| r.display_name.as_str())
            .collect::<Vec<_>>(),
        ["Engineering"]
    );

    // Deleting a User removes it from groups and marks its identity deleted.
    clock.advance(Duration::minutes(5));
    let deleted_at = clock.now();
    store
        .scim_delete(ScimKind::User, source.id, grace.id, None, "scim:aaaa1111")
        .await
        .unwrap();
    assert!(
        store
            .scim_get(ScimKind::User, source.id, grace.id, false, false)
            .await
            .unwrap()
            .is_none()
    );
    let g = store
        .scim_get(ScimKind::Group, source.id, g.id, true, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.members.unwrap().len(), 1);
    let identity = store
        .identity_by_external_id(source.id, &grace.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (identity.status, identity.status_changed_at),
        (IdentityStatus::Deleted, deleted_at)
    );
    let again = store
        .scim_delete(ScimKind::User, source.id, grace.id, None, "scim:aaaa1111")
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");

    // Every change is in the audit log, who and what, and the chain verifies.
    let entries = store.audit_entries(0, 100).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "scim.user.create",
            "scim.user.create",
            "scim.user.patch",
            "scim.user.patch",
            "scim.user.create",
            "scim.user.create",
            "scim.group.create",
            "scim.user.delete",
        ]
    );
    assert_eq!(entries[2].actor, "scim:aaaa1111");
    assert_eq!(entries[2].detail["before"]["active"], true);
    assert_eq!(entries[2].detail["after"]["active"], false);
    assert_eq!(entries[6].detail["members_ignored"]["count"], 2);
    assert_eq!(
        store.verify_audit_chain().await.unwrap().map_err(|e| e.seq),
        Ok(8)
    );

    // Editing a stored entry breaks the chain at that entry.
    let seq = entries[3].seq;
    let tamper = format!("update audit_log set actor = 'someone-else' where seq = {seq}");
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(AssertSqlSafe(tamper))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(AssertSqlSafe(tamper))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    let broken = store.verify_audit_chain().await.unwrap();
    assert_eq!(broken.map_err(|e| e.seq), Err(seq));
    store.close().await;
}
