//! Okta as a SCIM 2.0 client over real HTTP: the 12 steps of Okta's SCIM 2.0 SPEC test in
//! order, then the requests Okta's provisioning sends in production — profile update by GET
//! and PUT of the whole object, deactivation and reactivation by PATCH in both shapes Okta
//! uses, import paging, and group push — with the mirrored identity checked in the store.

use chrono::Duration;
use idbridge::clock::Clock;
use idbridge::domain::IdentityStatus;
use serde_json::{Value, json};

use crate::helpers::{Backend, on_both_backends};
use crate::scim_support::{
    GROUP_SCHEMA, OKTA, ScimClient, USER_SCHEMA, filter, id_of, member_values, random, sorted, user,
};

on_both_backends!(
    oktas_spec_test_passes_all_twelve_steps_in_order,
    oktas_profile_update_puts_back_the_whole_fetched_user_and_gets_the_change,
    deactivating_with_a_pathless_replace_returns_the_full_inactive_user_and_deprovisions_its_identity_now,
    deactivating_with_path_active_and_reactivating_moves_the_identity_between_deprovisioned_and_active,
    deleting_a_user_answers_204_then_404_and_marks_its_identity_deleted_now,
    oktas_import_pages_through_every_user_and_group_in_a_stable_order_without_duplicates,
    oktas_group_push_creates_renames_changes_replaces_members_and_deletes_the_group,
);

async fn okta(backend: Backend) -> Option<ScimClient> {
    ScimClient::start(backend, "okta", OKTA).await
}

/// The user Okta creates when an app is assigned (Okta's SCIM 2.0 reference, "Create the
/// user"), with Okta's always-sent `password` and read-only `groups`.
fn okta_user(user_name: &str, given: &str, family: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": format!("00u{}", random()),
        "groups": [],
        "password": "1mz050nq",
        "active": true,
    })
}

/// What Okta's SPEC test checks on a user resource (R1, R2).
#[track_caller]
fn assert_okta_user_fields(u: &Value) {
    assert!(u["id"].as_str().is_some_and(|s| !s.is_empty()), "id: {u}");
    assert!(u["name"]["familyName"].is_string(), "name.familyName: {u}");
    assert!(u["name"]["givenName"].is_string(), "name.givenName: {u}");
    assert!(u["userName"].is_string(), "userName: {u}");
    assert!(u["active"].is_boolean(), "active: {u}");
    assert!(u["emails"][0]["value"].is_string(), "emails[0].value: {u}");
}

async fn oktas_spec_test_passes_all_twelve_steps_in_order(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    // R1 needs a user that exists before the test starts.
    let existing = c
        .create_user(&okta_user(
            &format!("existing.{}@okta.local", random()),
            "Existing",
            "Person",
        ))
        .await;

    // R1: the first user, one per page.
    let r1 = c.get("/Users?count=1&startIndex=1").await;
    r1.expect_status(200, "R1").assert_list_response();
    assert_eq!(r1.body["startIndex"], 1, "R1 startIndex: {}", r1.text);
    assert_eq!(r1.body["itemsPerPage"], 1, "R1 itemsPerPage: {}", r1.text);
    assert!(r1.total() >= 1, "R1 totalResults: {}", r1.text);
    let first = &r1.resources()[0];
    assert_okta_user_fields(first);
    let first_id = id_of(first);
    assert_eq!(first_id, id_of(&existing));

    // R2: that user by id.
    let r2 = c.get(&format!("/Users/{first_id}")).await;
    r2.expect_status(200, "R2");
    assert_okta_user_fields(&r2.body);
    assert_eq!(id_of(&r2.body), first_id, "R2 ids equal");

    // R3: a userName nobody has.
    let invalid_email = format!("{}@example.com", random());
    let r3 = c
        .get(&format!(
            "/Users{}&startIndex=1&count=100",
            filter(&format!("userName eq \"{invalid_email}\""))
        ))
        .await;
    r3.expect_status(200, "R3").assert_list_response();
    assert_eq!(r3.total(), 0, "R3: {}", r3.text);

    // R4: an id that does not exist (and is no UUID).
    c.get("/Users/010101001010101011001010101011")
        .await
        .assert_scim_error(404, None);

    // R5: the user about to be created does not exist yet.
    let given = format!("Given{}", random());
    let family = format!("Family{}", random());
    let user_name = format!("{}.{}@okta.local", given.to_lowercase(), random());
    let r5 = c
        .get(&format!(
            "/Users{}",
            filter(&format!("userName eq \"{user_name}\""))
        ))
        .await;
    r5.expect_status(200, "R5").assert_list_response();
    assert_eq!(r5.total(), 0, "R5: {}", r5.text);

    // R6: create it.
    let body = okta_user(&user_name, &given, &family);
    let r6 = c.post("/Users", &body).await;
    r6.expect_status(201, "R6");
    assert_eq!(r6.body["active"], true, "R6 active: {}", r6.text);
    let id_user_one = id_of(&r6.body);
    assert_eq!(r6.body["name"]["givenName"], given.as_str());
    assert_eq!(r6.body["name"]["familyName"], family.as_str());
    assert_eq!(r6.body["userName"], user_name.as_str());
    assert!(
        r6.body["schemas"]
            .as_array()
            .is_some_and(|s| s.contains(&json!(USER_SCHEMA))),
        "R6 core schema: {}",
        r6.text
    );
    assert!(
        r6.body.get("password").is_none(),
        "password is never returned: {}",
        r6.text
    );

    // R7: read it back.
    let r7 = c.get(&format!("/Users/{id_user_one}")).await;
    r7.expect_status(200, "R7");
    assert_eq!(r7.body["userName"], user_name.as_str());
    assert_eq!(r7.body["name"]["givenName"], given.as_str());
    assert_eq!(r7.body["name"]["familyName"], family.as_str());

    // R8: the same POST again conflicts.
    c.post("/Users", &body)
        .await
        .assert_scim_error(409, Some("uniqueness"));

    // R9: userName in capitals still finds it.
    let r9 = c
        .get(&format!(
            "/Users{}",
            filter(&format!("userName eq \"{}\"", user_name.to_uppercase()))
        ))
        .await;
    r9.expect_status(200, "R9").assert_list_response();
    assert_eq!(r9.total(), 1, "R9: {}", r9.text);
    assert_eq!(r9.ids(), [id_user_one.as_str()]);

    // R10: groups list.
    c.get("/Groups")
        .await
        .expect_status(200, "R10")
        .assert_list_response();

    // R11: a bad token.
    let bad = c
        .send(c.request_to(
            reqwest::Method::GET,
            c.url("/Users"),
            Some("not-a-valid-token"),
        ))
        .await;
    bad.assert_scim_error(401, None);

    // R12: another id that does not exist.
    c.get("/Users/00919288221112222")
        .await
        .assert_scim_error(404, None);
}

async fn oktas_profile_update_puts_back_the_whole_fetched_user_and_gets_the_change(
    backend: Backend,
) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let user_name = format!("test.user.{}@okta.local", random());
    let created = c.create_user(&okta_user(&user_name, "Test", "User")).await;
    let id = id_of(&created);

    let fetched = c.get(&format!("/Users/{id}")).await;
    fetched.expect_status(200, "GET before PUT");
    let mut whole = fetched.body.clone();
    whole["name"] = json!({"givenName": "Another", "middleName": "Excited", "familyName": "User"});
    whole["emails"] = json!([{
        "primary": true, "value": user_name, "type": "work", "display": user_name
    }]);
    whole["groups"] = json!([]);
    assert!(
        whole.get("meta").is_some() && whole.get("id").is_some(),
        "{whole}"
    );

    let put = c.put(&format!("/Users/{id}"), &whole).await;
    put.expect_status(200, "PUT of the whole object");
    assert_eq!(id_of(&put.body), id);
    assert_eq!(put.body["name"]["givenName"], "Another", "{}", put.text);
    assert_eq!(put.body["name"]["middleName"], "Excited", "{}", put.text);
    assert_eq!(put.body["userName"], user_name.as_str());
    assert_eq!(put.body["active"], true);

    let again = c.get(&format!("/Users/{id}")).await;
    again.expect_status(200, "GET after PUT");
    assert_eq!(again.body["name"]["givenName"], "Another");
    assert_eq!(again.body["name"]["middleName"], "Excited");
    assert_eq!(again.body["emails"][0]["value"], user_name.as_str());
    assert_ne!(
        again.body["meta"]["version"], created["meta"]["version"],
        "the version moves on a change"
    );
}

async fn deactivating_with_a_pathless_replace_returns_the_full_inactive_user_and_deprovisions_its_identity_now(
    backend: Backend,
) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let user_name = format!("leaver.{}@okta.local", random());
    let created = c.create_user(&okta_user(&user_name, "Leo", "Leaver")).await;
    let id = id_of(&created);
    let identity = c
        .app
        .store
        .identity_by_external_id(c.source_id, &id)
        .await
        .expect("store answers")
        .expect("a SCIM user is mirrored as an identity");
    assert_eq!(identity.status, IdentityStatus::Active);

    c.app.clock.advance(Duration::hours(3));
    let patched = c
        .patch_ops(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await;
    patched.expect_status(200, "deactivate");
    assert_eq!(patched.body["active"], false, "{}", patched.text);
    assert_eq!(id_of(&patched.body), id);
    assert_eq!(patched.body["userName"], user_name.as_str());
    assert_eq!(patched.body["name"]["familyName"], "Leaver");
    assert_eq!(patched.body["emails"][0]["value"], user_name.as_str());

    let identity = c
        .app
        .store
        .identity_by_external_id(c.source_id, &id)
        .await
        .expect("store answers")
        .expect("identity kept");
    assert_eq!(identity.status, IdentityStatus::Deprovisioned);
    assert_eq!(identity.status_changed_at, c.app.clock.now());

    // Inactive users stay visible to GET and to filters.
    let got = c.get(&format!("/Users/{id}")).await;
    got.expect_status(200, "GET inactive");
    assert_eq!(got.body["active"], false);
    let listed = c
        .get(&format!(
            "/Users{}",
            filter(&format!("userName eq \"{user_name}\""))
        ))
        .await;
    listed.expect_status(200, "filter inactive");
    assert_eq!(listed.ids(), [id.as_str()]);
    assert_eq!(listed.resources()[0]["active"], false);
}

async fn deactivating_with_path_active_and_reactivating_moves_the_identity_between_deprovisioned_and_active(
    backend: Backend,
) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let user_name = format!("mover.{}@okta.local", random());
    let id = id_of(&c.create_user(&okta_user(&user_name, "Mo", "Mover")).await);
    let status = || async {
        let i = c
            .app
            .store
            .identity_by_external_id(c.source_id, &id)
            .await
            .expect("store answers")
            .expect("identity kept");
        (i.status, i.status_changed_at)
    };

    c.app.clock.advance(Duration::minutes(10));
    let off = c
        .patch_ops(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await;
    off.expect_status(200, "deactivate with path");
    assert_eq!(off.body["active"], false, "{}", off.text);
    assert_eq!(off.body["userName"], user_name.as_str());
    assert_eq!(
        status().await,
        (IdentityStatus::Deprovisioned, c.app.clock.now())
    );

    c.app.clock.advance(Duration::days(2));
    let on = c
        .patch_ops(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"active": true}}]),
        )
        .await;
    on.expect_status(200, "reactivate");
    assert_eq!(on.body["active"], true, "{}", on.text);
    assert_eq!(status().await, (IdentityStatus::Active, c.app.clock.now()));

    // A second deactivation with the path form, then the same again: the change time stays.
    c.app.clock.advance(Duration::hours(1));
    let deactivate = json!([{"op": "replace", "path": "active", "value": false}]);
    c.patch_ops(&format!("/Users/{id}"), deactivate.clone())
        .await
        .expect_status(200, "deactivate again");
    let changed_at = c.app.clock.now();
    c.app.clock.advance(Duration::hours(1));
    c.patch_ops(&format!("/Users/{id}"), deactivate)
        .await
        .expect_status(200, "deactivate an inactive user");
    assert_eq!(
        status().await,
        (IdentityStatus::Deprovisioned, changed_at),
        "status_changed_at is when the status last changed"
    );
}

async fn deleting_a_user_answers_204_then_404_and_marks_its_identity_deleted_now(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let id = id_of(
        &c.create_user(&okta_user(
            &format!("gone.{}@okta.local", random()),
            "Gus",
            "Gone",
        ))
        .await,
    );
    c.app.clock.advance(Duration::hours(5));
    let deleted = c.delete(&format!("/Users/{id}")).await;
    deleted.expect_status(204, "DELETE user");
    assert!(deleted.text.is_empty(), "204 has no body: {}", deleted.text);
    c.get(&format!("/Users/{id}"))
        .await
        .assert_scim_error(404, None);
    let identity = c
        .app
        .store
        .identity_by_external_id(c.source_id, &id)
        .await
        .expect("store answers")
        .expect("a deleted user's identity stays as a leaver signal");
    assert_eq!(identity.status, IdentityStatus::Deleted);
    assert_eq!(identity.status_changed_at, c.app.clock.now());
}

/// Walks `/{endpoint}` with Okta's import paging and returns every id in the order served.
async fn import_all(c: &ScimClient, endpoint: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut start = 1;
    loop {
        let page = c
            .get(&format!("/{endpoint}?startIndex={start}&count={count}"))
            .await;
        page.expect_status(200, "import page")
            .assert_list_response();
        assert_eq!(
            page.body["startIndex"], start,
            "startIndex echo: {}",
            page.text
        );
        let n = page.resources().len();
        assert!(n <= count, "at most count per page: {}", page.text);
        let total = usize::try_from(page.total()).expect("non-negative total");
        ids.extend(page.ids());
        start += n;
        if start > total || n == 0 {
            assert_eq!(ids.len(), total, "the walk covers totalResults exactly");
            return ids;
        }
    }
}

async fn oktas_import_pages_through_every_user_and_group_in_a_stable_order_without_duplicates(
    backend: Backend,
) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let mut created = Vec::new();
    for i in 0..7 {
        let u = c
            .create_user(&okta_user(
                &format!("import{i}.{}@okta.local", random()),
                "Imp",
                "Ort",
            ))
            .await;
        created.push(id_of(&u));
        // Distinct timestamps, in case ordering leans on them.
        c.app.clock.advance(Duration::seconds(1));
    }
    let first = import_all(&c, "Users", 2).await;
    let mut unique = first.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), first.len(), "no duplicates: {first:?}");
    created.sort();
    assert_eq!(unique, created, "every user imported");
    assert_eq!(
        import_all(&c, "Users", 2).await,
        first,
        "the same order on a second import"
    );
    assert_eq!(
        import_all(&c, "Users", 3).await,
        first,
        "the same order whatever the page size"
    );

    let mut groups = Vec::new();
    for i in 0..3 {
        let g = c
            .create_group(&json!({
                "schemas": [GROUP_SCHEMA],
                "displayName": format!("Import {i} {}", random()),
                "members": [],
            }))
            .await;
        groups.push(id_of(&g));
    }
    let mut imported = import_all(&c, "Groups", 2).await;
    imported.sort();
    groups.sort();
    assert_eq!(imported, groups, "every group imported once");
}

async fn oktas_group_push_creates_renames_changes_replaces_members_and_deletes_the_group(
    backend: Backend,
) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let mut users = Vec::new();
    for name in ["ann", "bob", "cy"] {
        let user_name = format!("{name}.{}@okta.local", random());
        let id = id_of(&c.create_user(&user(&user_name)).await);
        users.push((id, user_name));
    }
    let member = |i: usize| json!({"value": users[i].0, "display": users[i].1});
    let (u0, u1, u2) = (
        users[0].0.as_str(),
        users[1].0.as_str(),
        users[2].0.as_str(),
    );

    let name = format!("Test SCIMv2 {}", random());
    let created = c
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": []}),
        )
        .await;
    created.expect_status(201, "POST group");
    let gid = id_of(&created.body);
    assert_eq!(created.body["displayName"], name.as_str());
    assert!(member_values(&created.body).is_empty(), "{}", created.text);
    let group = format!("/Groups/{gid}");

    // Rename, with the unchanged id in the value as Okta sends it.
    let renamed = format!("{name} renamed");
    let rename = c
        .patch_ops(
            &group,
            json!([{"op": "replace", "value": {"id": gid, "displayName": renamed}}]),
        )
        .await;
    rename.expect_status(200, "rename with the same id");
    assert_eq!(
        rename.body["displayName"],
        renamed.as_str(),
        "{}",
        rename.text
    );
    assert_eq!(id_of(&rename.body), gid);

    // Two members to start with.
    c.patch_ops(
        &group,
        json!([{"op": "add", "path": "members", "value": [member(0), member(1)]}]),
    )
    .await
    .expect_status(200, "add members");
    let got = c.get(&group).await;
    got.expect_status(200, "GET group");
    assert_eq!(member_values(&got.body), sorted(&[u0, u1]));

    // Delta: remove one by filter, add another with its display.
    let delta = c
        .patch_ops(
            &group,
            json!([
                {"op": "remove", "path": format!("members[value eq \"{u0}\"]")},
                {"op": "add", "path": "members", "value": [member(2)]},
            ]),
        )
        .await;
    delta.expect_status(200, "membership delta");
    let got = c.get(&group).await;
    assert_eq!(member_values(&got.body), sorted(&[u1, u2]), "{}", got.text);
    assert_eq!(got.body["displayName"], renamed.as_str());

    // The user side shows the membership.
    let member_user = c.get(&format!("/Users/{u2}")).await;
    member_user.expect_status(200, "GET member");
    assert!(
        member_user.body["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["value"] == gid.as_str())),
        "the user's groups include the group: {}",
        member_user.text
    );

    // Full push: exactly these members.
    let push = c
        .patch_ops(
            &group,
            json!([{"op": "replace", "path": "members", "value": [member(0), member(2)]}]),
        )
        .await;
    push.expect_status(200, "full push");
    let got = c.get(&group).await;
    assert_eq!(member_values(&got.body), sorted(&[u0, u2]), "{}", got.text);

    // Unlink: delete.
    let deleted = c.delete(&group).await;
    deleted.expect_status(204, "DELETE group");
    c.get(&group).await.assert_scim_error(404, None);
    let former = c.get(&format!("/Users/{u0}")).await;
    former.expect_status(200, "former member");
    assert!(
        !former.body["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["value"] == gid.as_str())),
        "a deleted group is gone from its members' groups: {}",
        former.text
    );
}
