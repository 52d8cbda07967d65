//! `POST /Bulk`: operations in order, `bulkId` references between them (including one that
//! comes later in the request), `failOnErrors`, and the advertised limits.

use serde_json::{Value, json};

use crate::helpers::{Backend, on_both_backends};
use crate::scim_support::{GROUP_SCHEMA, OKTA, ScimClient, USER_SCHEMA};

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

fn user(name: &str) -> Value {
    json!({"schemas": [USER_SCHEMA], "userName": name, "active": true})
}

on_both_backends!(
    bulk_runs_operations_and_resolves_bulk_ids,
    bulk_stops_after_fail_on_errors
);

async fn bulk_runs_operations_and_resolves_bulk_ids(backend: Backend) {
    let Some(scim) = ScimClient::start(backend, "okta", OKTA).await else {
        return;
    };
    // The group refers to a user whose POST comes after it.
    let request = json!({
        "schemas": [BULK],
        "Operations": [
            {"method": "POST", "bulkId": "g1", "path": "/Groups",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "Bulk group",
                      "members": [{"type": "User", "value": "bulkId:u1"}, {"value": "bulkId:u2"}]}},
            {"method": "POST", "bulkId": "u1", "path": "/Users", "data": user("bulk.one")},
            {"method": "POST", "bulkId": "u2", "path": "/Users", "data": user("bulk.two")},
            {"method": "PATCH", "path": "/Users/bulkId:u2",
             "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "active", "value": false}]}},
            {"method": "POST", "bulkId": "dup", "path": "/Users", "data": user("BULK.ONE")},
        ],
    });
    let res = scim.post("/Bulk", &request).await;
    res.expect_status(200, "bulk");
    let ops = res.body["Operations"].as_array().unwrap().clone();
    assert_eq!(ops.len(), 5, "{}", res.text);
    let status = |bulk_id: &str| {
        ops.iter()
            .find(|o| o["bulkId"] == bulk_id)
            .map(|o| o["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("u1").as_deref(), Some("201"));
    assert_eq!(status("g1").as_deref(), Some("201"));
    assert_eq!(
        status("dup").as_deref(),
        Some("409"),
        "duplicate userName fails alone"
    );
    assert!(
        ops.iter()
            .any(|o| o["method"] == "PATCH" && o["status"] == "200"),
        "{}",
        res.text
    );

    let location = ops.iter().find(|o| o["bulkId"] == "g1").unwrap()["location"]
        .as_str()
        .unwrap()
        .to_owned();
    let group_id = location.rsplit('/').next().unwrap();
    let group = scim.get(&format!("/Groups/{group_id}")).await;
    group.expect_status(200, "group");
    let members: Vec<&str> = group.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 2, "{}", group.text);
    let two = ops.iter().find(|o| o["bulkId"] == "u2").unwrap()["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(members.contains(&two.as_str()));
    let two = scim.get(&format!("/Users/{two}")).await;
    assert_eq!(two.body["active"], false);
}

async fn bulk_stops_after_fail_on_errors(backend: Backend) {
    let Some(scim) = ScimClient::start(backend, "okta", OKTA).await else {
        return;
    };
    let request = json!({
        "schemas": [BULK],
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "bulkId": "a", "path": "/Users", "data": {"schemas": [USER_SCHEMA]}},
            {"method": "POST", "bulkId": "b", "path": "/Users", "data": user("never.created")},
        ],
    });
    let res = scim.post("/Bulk", &request).await;
    res.expect_status(200, "bulk");
    let ops = res.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{}", res.text);
    assert_eq!(ops[0]["status"], "400");
    assert_eq!(ops[0]["response"]["scimType"], "invalidValue");
    let list = scim
        .get("/Users?filter=userName%20eq%20%22never.created%22")
        .await;
    assert_eq!(list.total(), 0);

    // Unresolvable and circular references fail those operations only.
    let request = json!({
        "schemas": [BULK],
        "Operations": [
            {"method": "POST", "bulkId": "x", "path": "/Groups",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "X", "members": [{"value": "bulkId:y"}]}},
            {"method": "POST", "bulkId": "y", "path": "/Groups",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "Y", "members": [{"value": "bulkId:x"}]}},
            {"method": "POST", "bulkId": "z", "path": "/Users", "data": user("fine")},
        ],
    });
    let res = scim.post("/Bulk", &request).await;
    let ops = res.body["Operations"].as_array().unwrap();
    let by = |id: &str| ops.iter().find(|o| o["bulkId"] == id).unwrap()["status"].clone();
    assert_eq!(
        (by("x"), by("y"), by("z")),
        (json!("409"), json!("409"), json!("201"))
    );
}

#[tokio::test]
async fn bulk_requests_over_the_advertised_limits_are_refused_with_413() {
    let Some(scim) = ScimClient::start_with(Backend::Sqlite, &["okta"], OKTA, |c| {
        c.scim.bulk_max_operations = 2;
        c.scim.bulk_max_payload_bytes = 2048;
    })
    .await
    else {
        return;
    };
    let spc = scim.get("/ServiceProviderConfig").await;
    assert_eq!(spc.body["bulk"]["maxOperations"], 2);
    assert_eq!(spc.body["bulk"]["maxPayloadSize"], 2048);
    let three: Vec<Value> = (0..3)
        .map(|i| json!({"method": "POST", "bulkId": format!("b{i}"), "path": "/Users", "data": user(&format!("u{i}"))}))
        .collect();
    let res = scim
        .post("/Bulk", &json!({"schemas": [BULK], "Operations": three}))
        .await;
    res.assert_scim_error(413, None);
    let big = json!({"schemas": [BULK], "Operations": [
        {"method": "POST", "bulkId": "b", "path": "/Users", "data": {"schemas": [USER_SCHEMA], "userName": "x".repeat(3000)}}
    ]});
    let res = scim.post("/Bulk", &big).await;
    res.assert_scim_error(413, None);
}
