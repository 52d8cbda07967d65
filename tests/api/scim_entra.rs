//! Microsoft Entra ID as a SCIM 2.0 client over real HTTP: Test Connection, matching by
//! `userName` and `externalId` (quoted and unquoted), the user bodies Entra POSTs, its PATCH
//! dialect (`Replace`/`Add` ops, `"False"` strings, dotted and URN keys, three manager
//! shapes), group provisioning with legacy and filtered member removal, and the Microsoft SCIM
//! validator's checks on case, deletes, paging and ETags.

use reqwest::Method;
use reqwest::header;
use serde_json::{Value, json};

use crate::helpers::{Backend, on_both_backends};
use crate::scim_support::{
    ENTERPRISE, ENTRA, GROUP_SCHEMA, ScimClient, USER_SCHEMA, enc, filter, id_of, member_values,
    random, sorted, user,
};

on_both_backends!(
    entras_test_connection_query_for_a_random_guid_answers_200_with_no_results,
    external_id_filters_match_quoted_and_unquoted_values_case_exactly,
    entras_user_bodies_with_meta_empty_roles_and_nulls_are_created_without_echoing_nulls,
    entras_capitalised_replace_ops_change_the_work_email_and_the_family_name,
    users_are_found_by_entras_work_email_filter_in_any_case,
    disabling_with_the_string_false_makes_the_user_inactive,
    entras_add_of_nick_name_and_replace_of_employee_number_by_urn_path_are_stored,
    a_pathless_replace_with_dotted_and_urn_keys_updates_the_nested_attributes,
    a_manager_is_set_in_each_of_entras_three_shapes_and_removed_by_an_empty_replace,
    entras_manager_check_by_id_and_manager_finds_the_user_only_while_the_manager_is_set,
    entras_group_lifecycle_renames_adds_and_removes_only_the_named_members,
    a_group_whose_display_name_differs_only_in_case_is_refused_and_found_by_either_case,
    filtering_users_by_user_name_in_another_case_finds_the_user,
    deleting_a_missing_resource_is_404_and_deleting_twice_is_204_then_404,
    paging_eleven_users_five_at_a_time_echoes_start_index_and_items_per_page,
    etags_equal_meta_version_give_304_on_if_none_match_and_412_on_a_stale_if_match,
);

async fn entra(backend: Backend) -> Option<ScimClient> {
    ScimClient::start(backend, "entra", ENTRA).await
}

/// The user Entra POSTs (tutorial "Create User" request).
fn entra_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": format!("{user_name}@testuser.com")}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
    })
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn test_user_name() -> String {
    format!("Test_User_{}", guid())
}

async fn users_matching(c: &ScimClient, f: &str) -> Vec<String> {
    let r = c.get(&format!("/Users{}", filter(f))).await;
    r.expect_status(200, f).assert_list_response();
    r.ids()
}

async fn entras_test_connection_query_for_a_random_guid_answers_200_with_no_results(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    // Some user exists, so an unfiltered answer would be caught.
    c.create_user(&entra_user(&test_user_name(), &guid())).await;
    let r = c
        .get(&format!(
            "/Users{}",
            filter(&format!("userName eq \"{}\"", guid()))
        ))
        .await;
    r.expect_status(200, "Test Connection")
        .assert_list_response();
    assert_eq!(r.total(), 0, "{}", r.text);
    assert!(r.resources().is_empty());
    assert!(
        r.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/scim+json")),
        "{:?}",
        r.header("content-type")
    );
}

async fn external_id_filters_match_quoted_and_unquoted_values_case_exactly(backend: Backend) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let external_id = guid();
    let id = id_of(
        &c.create_user(&entra_user(&test_user_name(), &external_id))
            .await,
    );
    c.create_user(&entra_user(&test_user_name(), &guid())).await;

    assert_eq!(
        users_matching(&c, &format!("externalId eq \"{external_id}\"")).await,
        [id.as_str()],
        "quoted"
    );
    assert_eq!(
        users_matching(&c, &format!("externalId eq {external_id}")).await,
        [id.as_str()],
        "unquoted, as in Entra's documentation"
    );
    assert_eq!(
        users_matching(
            &c,
            &format!("externalId eq \"{}\"", external_id.to_uppercase())
        )
        .await,
        Vec::<String>::new(),
        "externalId is caseExact"
    );
}

async fn entras_user_bodies_with_meta_empty_roles_and_nulls_are_created_without_echoing_nulls(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let user_name = test_user_name();
    let created = c.post("/Users", &entra_user(&user_name, &guid())).await;
    created.expect_status(201, "Entra's current create body");
    assert_eq!(created.body["userName"], user_name.as_str());
    assert_eq!(created.body["meta"]["resourceType"], "User");
    assert!(
        created.body["meta"]["created"].is_string(),
        "server-set meta replaces the client's: {}",
        created.text
    );
    assert_eq!(
        created.header("location"),
        created.body["meta"]["location"].as_str(),
        "Location is meta.location"
    );

    let older_name = test_user_name();
    let mut older = entra_user(&older_name, &guid());
    for key in [
        "addresses",
        "phoneNumbers",
        "title",
        "department",
        "manager",
    ] {
        older[key] = Value::Null;
    }
    let older_created = c.post("/Users", &older).await;
    older_created.expect_status(201, "Entra's older create body with nulls");
    assert_eq!(older_created.body["userName"], older_name.as_str());
    let body = older_created.body.as_object().expect("object");
    for key in [
        "addresses",
        "phoneNumbers",
        "title",
        "department",
        "manager",
    ] {
        assert!(
            body.keys().all(|k| !k.eq_ignore_ascii_case(key)),
            "unassigned `{key}` is not echoed: {}",
            older_created.text
        );
    }
    assert!(
        !older_created.text.contains("null"),
        "no nulls in the response: {}",
        older_created.text
    );
    let fetched = c
        .get(&format!("/Users/{}", id_of(&older_created.body)))
        .await;
    fetched.expect_status(200, "GET older");
    assert_eq!(fetched.body["userName"], older_name.as_str());
}

async fn entras_capitalised_replace_ops_change_the_work_email_and_the_family_name(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let id = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    let r = c
        .patch_ops(
            &format!("/Users/{id}"),
            json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            ]),
        )
        .await;
    r.expect_status(200, "PATCH with Replace");
    let got = c.get(&format!("/Users/{id}")).await;
    let emails = got.body["emails"].as_array().expect("emails");
    assert_eq!(emails.len(), 1, "{}", got.text);
    assert_eq!(emails[0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(emails[0]["type"], "work");
    assert_eq!(got.body["name"]["familyName"], "updatedFamilyName");
    assert_eq!(got.body["name"]["givenName"], "givenName", "untouched");
}

async fn users_are_found_by_entras_work_email_filter_in_any_case(backend: Backend) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let user_name = test_user_name();
    let id = id_of(&c.create_user(&entra_user(&user_name, &guid())).await);
    c.create_user(&entra_user(&test_user_name(), &guid())).await;
    let email = format!("{user_name}@testuser.com");
    assert_eq!(
        users_matching(
            &c,
            &format!("emails[type eq \"work\" and value eq \"{email}\"]")
        )
        .await,
        [id.as_str()],
        "the RFC value-path form"
    );
    assert_eq!(
        users_matching(
            &c,
            &format!(
                "emails[type eq \"work\"].value eq \"{}\"",
                email.to_uppercase()
            )
        )
        .await,
        [id.as_str()],
        "the form Entra sends for a work-email matching attribute"
    );
}

async fn disabling_with_the_string_false_makes_the_user_inactive(backend: Backend) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let id = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    let r = c
        .patch_ops(
            &format!("/Users/{id}"),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .await;
    r.expect_status(200, "disable");
    assert_eq!(r.body["active"], json!(false), "a JSON boolean: {}", r.text);
    let got = c.get(&format!("/Users/{id}")).await;
    assert_eq!(got.body["active"], json!(false));
    let identity = c
        .app
        .store
        .identity_by_external_id(c.source_id, &id)
        .await
        .expect("store answers")
        .expect("identity");
    assert_eq!(
        identity.status,
        idbridge::domain::IdentityStatus::Deprovisioned
    );

    c.patch_ops(
        &format!("/Users/{id}"),
        json!([{"op": "Replace", "path": "active", "value": "True"}]),
    )
    .await
    .expect_status(200, "enable");
    assert_eq!(
        c.get(&format!("/Users/{id}")).await.body["active"],
        json!(true)
    );
}

async fn entras_add_of_nick_name_and_replace_of_employee_number_by_urn_path_are_stored(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let id = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    c.patch_ops(
        &format!("/Users/{id}"),
        json!([{"op": "Add", "path": "nickName", "value": "Babs"}]),
    )
    .await
    .expect_status(200, "Add nickName");
    c.patch_ops(
        &format!("/Users/{id}"),
        json!([{"op": "Replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "Eqpj"}]),
    )
    .await
    .expect_status(200, "Replace employeeNumber");
    let got = c.get(&format!("/Users/{id}")).await;
    assert_eq!(got.body["nickName"], "Babs", "{}", got.text);
    assert_eq!(
        got.body[ENTERPRISE]["employeeNumber"], "Eqpj",
        "{}",
        got.text
    );
    assert!(
        got.body["schemas"]
            .as_array()
            .is_some_and(|s| s.contains(&json!(ENTERPRISE))),
        "the extension URN is listed: {}",
        got.text
    );
    assert_eq!(
        users_matching(&c, &format!("{ENTERPRISE}:employeeNumber eq \"Eqpj\"")).await,
        [id.as_str()]
    );
}

async fn a_pathless_replace_with_dotted_and_urn_keys_updates_the_nested_attributes(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let id = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    let r = c
        .patch_ops(
            &format!("/Users/{id}"),
            json!([
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
                {"op": "replace", "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    format!("{ENTERPRISE}:employeeNumber"): "Aklq",
                }},
            ]),
        )
        .await;
    r.expect_status(200, "aadOptscim062020 PATCH");
    let got = c.get(&format!("/Users/{id}")).await;
    let b = &got.body;
    assert_eq!(b["displayName"], "Bjfe", "{}", got.text);
    assert_eq!(b["name"]["givenName"], "Kkom", "{}", got.text);
    assert_eq!(b["name"]["familyName"], "Unua", "{}", got.text);
    assert_eq!(b["name"]["formatted"], "givenName familyName", "untouched");
    assert_eq!(b[ENTERPRISE]["employeeNumber"], "Aklq", "{}", got.text);
    assert_eq!(b["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
    let keys: Vec<&String> = b.as_object().expect("object").keys().collect();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("name.") || k.ends_with(":employeeNumber")),
        "no literal dotted or URN keys: {keys:?}"
    );
}

async fn a_manager_is_set_in_each_of_entras_three_shapes_and_removed_by_an_empty_replace(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let manager = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    let other = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    let id = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    let path = format!("{ENTERPRISE}:manager");
    let user_url = format!("/Users/{id}");
    let manager_of = || async {
        let got = c.get(&user_url).await;
        got.expect_status(200, "GET managed user");
        got.body[ENTERPRISE]["manager"]["value"]
            .as_str()
            .map(str::to_owned)
    };
    let shapes = [
        // Tutorial example: array with $ref, short path.
        json!({"op": "Add", "path": "manager", "value": [{
            "$ref": c.url(&format!("/Users/{manager}")), "value": manager,
        }]}),
        // A bare string (seen from Entra, SCIM-SDK#686).
        json!({"op": "add", "path": path, "value": other}),
        // An object (Microsoft SCIM validator).
        json!({"op": "add", "path": path, "value": {"value": manager}}),
    ];
    let expected = [&manager, &other, &manager];
    for (op, want) in shapes.into_iter().zip(expected) {
        let r = c.patch_ops(&user_url, json!([op.clone()])).await;
        r.expect_status(200, &format!("manager {op}"));
        assert_eq!(
            manager_of().await.as_deref(),
            Some(want.as_str()),
            "after {op}"
        );
    }

    c.patch_ops(
        &user_url,
        json!([{"op": "Replace", "path": path, "value": ""}]),
    )
    .await
    .expect_status(200, "replace manager with empty");
    assert_eq!(manager_of().await, None, "an empty replace removes it");
}

async fn entras_manager_check_by_id_and_manager_finds_the_user_only_while_the_manager_is_set(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let manager = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    let id = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    let path = format!("{ENTERPRISE}:manager");
    c.patch_ops(
        &format!("/Users/{id}"),
        json!([{"op": "add", "path": path, "value": {"value": manager}}]),
    )
    .await
    .expect_status(200, "set manager");
    assert_eq!(
        users_matching(&c, &format!("manager.value eq \"{manager}\"")).await,
        [id.as_str()],
        "the sub-attribute form"
    );
    // Entra's check: GET /Users?filter=id eq … and manager eq …&attributes=id
    let check = |mgr: String| {
        let f = format!("id eq \"{id}\" and manager eq \"{mgr}\"");
        let c = &c;
        async move {
            let r = c.get(&format!("/Users{}&attributes=id", filter(&f))).await;
            r.expect_status(200, &f).assert_list_response();
            r.ids()
        }
    };
    assert_eq!(check(manager.clone()).await, [id.as_str()], "manager set");
    assert_eq!(check(guid()).await, Vec::<String>::new(), "another manager");
    c.patch_ops(
        &format!("/Users/{id}"),
        json!([{"op": "Remove", "path": path}]),
    )
    .await
    .expect_status(200, "remove manager");
    assert_eq!(
        check(manager).await,
        Vec::<String>::new(),
        "manager removed"
    );
}

/// Group PATCH: Entra's tutorial expects 204, the Microsoft validator 200; both are fine.
#[track_caller]
fn assert_group_patched(r: &crate::scim_support::ScimResponse, what: &str) {
    assert!(
        r.status == 200 || r.status == 204,
        "{what}: expected 200 or 204, got {} {}",
        r.status,
        r.text
    );
}

async fn is_member(c: &ScimClient, gid: &str, uid: &str) -> i64 {
    let f = format!("id eq \"{gid}\" and members[value eq \"{uid}\"]");
    let r = c
        .get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            enc(&f)
        ))
        .await;
    r.expect_status(200, "membership check")
        .assert_list_response();
    for g in r.resources() {
        assert!(g.get("members").is_none(), "members excluded: {}", r.text);
    }
    r.total()
}

async fn entras_group_lifecycle_renames_adds_and_removes_only_the_named_members(backend: Backend) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let mut uids = Vec::new();
    for _ in 0..3 {
        uids.push(id_of(
            &c.create_user(&entra_user(&test_user_name(), &guid())).await,
        ));
    }
    let (u0, u1, u2) = (uids[0].as_str(), uids[1].as_str(), uids[2].as_str());

    let name = format!("Group_{}", guid());
    let created = c
        .post(
            "/Groups",
            &json!({
                "schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": guid(),
                "displayName": name,
                "meta": {"resourceType": "Group"},
            }),
        )
        .await;
    created.expect_status(201, "POST group with the ADSCIM schema");
    let gid = id_of(&created.body);
    let group = format!("/Groups/{gid}");
    assert_eq!(created.body["displayName"], name.as_str());

    let add = c
        .patch_ops(
            &group,
            json!([{"op": "Add", "path": "members", "value": [
                {"$ref": null, "value": u0},
                {"$ref": null, "value": u1},
                {"$ref": null, "value": u2},
            ]}]),
        )
        .await;
    assert_group_patched(&add, "Add members with $ref null");
    assert_eq!(
        member_values(&c.get(&group).await.body),
        sorted(&[u0, u1, u2])
    );

    // Entra's lookup of a group by name, without members.
    let found = c
        .get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            enc(&format!("displayName eq \"{name}\""))
        ))
        .await;
    found
        .expect_status(200, "group by displayName")
        .assert_list_response();
    assert_eq!(found.ids(), [gid.as_str()]);
    assert!(
        found.resources()[0].get("members").is_none(),
        "members excluded: {}",
        found.text
    );
    let single = c.get(&format!("{group}?excludedAttributes=members")).await;
    single.expect_status(200, "GET group without members");
    assert!(single.body.get("members").is_none(), "{}", single.text);

    let renamed = format!("{name}updatedDisplayName");
    let rename = c
        .patch_ops(
            &group,
            json!([{"op": "Replace", "path": "displayName", "value": renamed}]),
        )
        .await;
    assert_group_patched(&rename, "Replace displayName");
    assert_eq!(c.get(&group).await.body["displayName"], renamed.as_str());

    assert_eq!(is_member(&c, &gid, u0).await, 1);

    // Legacy removal with a value list removes only those members.
    let legacy = c
        .patch_ops(
            &group,
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": u0}]}]),
        )
        .await;
    assert_group_patched(&legacy, "legacy Remove members");
    let got = c.get(&group).await;
    assert_eq!(member_values(&got.body), sorted(&[u1, u2]), "{}", got.text);
    assert_eq!(is_member(&c, &gid, u0).await, 0);
    assert_eq!(is_member(&c, &gid, u1).await, 1);

    // Filtered removal (aadOptscim062020).
    let filtered = c
        .patch_ops(
            &group,
            json!([{"op": "remove", "path": format!("members[value eq \"{u1}\"]")}]),
        )
        .await;
    assert_group_patched(&filtered, "filtered remove");
    let got = c.get(&group).await;
    assert_eq!(member_values(&got.body), sorted(&[u2]), "{}", got.text);
    assert_eq!(is_member(&c, &gid, u1).await, 0);
    assert_eq!(is_member(&c, &gid, u2).await, 1);

    c.delete(&group).await.expect_status(204, "DELETE group");
    assert_eq!(is_member(&c, &gid, u2).await, 0);
}

async fn a_group_whose_display_name_differs_only_in_case_is_refused_and_found_by_either_case(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let name = format!("Sales Team {}", random());
    let gid = id_of(
        &c.create_group(&json!({"schemas": [GROUP_SCHEMA], "displayName": name}))
            .await,
    );
    c.post(
        "/Groups",
        &json!({"schemas": [GROUP_SCHEMA], "displayName": name.to_uppercase()}),
    )
    .await
    .assert_scim_error(409, Some("uniqueness"));
    let r = c
        .get(&format!(
            "/Groups{}",
            filter(&format!("displayName eq \"{}\"", name.to_lowercase()))
        ))
        .await;
    r.expect_status(200, "group filter in another case")
        .assert_list_response();
    assert_eq!(r.ids(), [gid]);
}

async fn filtering_users_by_user_name_in_another_case_finds_the_user(backend: Backend) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let user_name = format!("Ford_Purdy_{}@example.com", random());
    let id = id_of(&c.create_user(&user(&user_name)).await);
    c.create_user(&user(&format!("someone.else.{}", random())))
        .await;
    assert_eq!(
        users_matching(&c, &format!("userName eq \"{}\"", user_name.to_uppercase())).await,
        [id.as_str()]
    );
    assert_eq!(
        users_matching(&c, &format!("USERNAME EQ \"{}\"", user_name.to_lowercase())).await,
        [id.as_str()],
        "attribute names and operators are case-insensitive too"
    );
}

async fn deleting_a_missing_resource_is_404_and_deleting_twice_is_204_then_404(backend: Backend) {
    let Some(c) = entra(backend).await else {
        return;
    };
    c.delete(&format!("/Users/{}", guid()))
        .await
        .assert_scim_error(404, None);
    c.delete(&format!("/Groups/{}", guid()))
        .await
        .assert_scim_error(404, None);

    let uid = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    c.delete(&format!("/Users/{uid}"))
        .await
        .expect_status(204, "first user DELETE");
    c.delete(&format!("/Users/{uid}"))
        .await
        .assert_scim_error(404, None);

    let gid = id_of(
        &c.create_group(&json!({"schemas": [GROUP_SCHEMA], "displayName": guid()}))
            .await,
    );
    c.delete(&format!("/Groups/{gid}"))
        .await
        .expect_status(204, "first group DELETE");
    c.delete(&format!("/Groups/{gid}"))
        .await
        .assert_scim_error(404, None);
}

async fn paging_eleven_users_five_at_a_time_echoes_start_index_and_items_per_page(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let mut created = Vec::new();
    for _ in 0..11 {
        created.push(id_of(
            &c.create_user(&entra_user(&test_user_name(), &guid())).await,
        ));
    }
    let mut seen = Vec::new();
    for (page, expected_items) in [(0, 5), (1, 5), (2, 1)] {
        let start = page * 5 + 1;
        let r = c.get(&format!("/Users?startIndex={start}&count=5")).await;
        r.expect_status(200, "page").assert_list_response();
        assert_eq!(r.body["startIndex"], start, "{}", r.text);
        assert_eq!(r.body["itemsPerPage"], expected_items, "{}", r.text);
        assert_eq!(r.total(), 11);
        seen.extend(r.ids());
    }
    seen.sort();
    created.sort();
    assert_eq!(seen, created, "three pages cover every user exactly once");
}

async fn etags_equal_meta_version_give_304_on_if_none_match_and_412_on_a_stale_if_match(
    backend: Backend,
) {
    let Some(c) = entra(backend).await else {
        return;
    };
    let id = id_of(&c.create_user(&entra_user(&test_user_name(), &guid())).await);
    let url = format!("/Users/{id}");
    let got = c.get(&url).await;
    got.expect_status(200, "GET");
    let etag = got.header("etag").expect("ETag header").to_owned();
    assert_eq!(
        got.body["meta"]["version"].as_str(),
        Some(etag.as_str()),
        "ETag is meta.version"
    );

    let not_modified = c
        .send(
            c.request(Method::GET, &url)
                .header(header::IF_NONE_MATCH, &etag),
        )
        .await;
    not_modified.expect_status(304, "If-None-Match with the current version");
    assert!(not_modified.text.is_empty());

    let changed = c
        .send(
            c.json_request(
                Method::PATCH,
                &url,
                crate::scim_support::patch_op(
                    json!([{"op": "Add", "path": "nickName", "value": "First"}]),
                )
                .to_string(),
            )
            .header(header::IF_MATCH, &etag),
        )
        .await;
    changed.expect_status(200, "PATCH with the current If-Match");
    let new_etag = changed.header("etag").expect("ETag on PATCH").to_owned();
    assert_ne!(new_etag, etag, "the version moved");
    assert_eq!(
        changed.body["meta"]["version"].as_str(),
        Some(new_etag.as_str())
    );

    let stale = c
        .send(
            c.json_request(
                Method::PATCH,
                &url,
                crate::scim_support::patch_op(
                    json!([{"op": "Add", "path": "nickName", "value": "Second"}]),
                )
                .to_string(),
            )
            .header(header::IF_MATCH, &etag),
        )
        .await;
    stale.assert_scim_error(412, None);
    assert_eq!(
        c.get(&url).await.body["nickName"],
        "First",
        "a refused PATCH changes nothing"
    );
    c.send(
        c.request(Method::GET, &url)
            .header(header::IF_NONE_MATCH, &etag),
    )
    .await
    .expect_status(200, "If-None-Match with an old version gets the resource");
}
