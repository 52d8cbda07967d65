//! Listing and searching: `sortBy`/`sortOrder` (case-insensitive ordering, missing values
//! last), `.search` per type and at the root, and attribute projection on lists.

use serde_json::{Value, json};

use crate::helpers::{Backend, on_both_backends};
use crate::scim_support::{GROUP_SCHEMA, OKTA, ScimClient, USER_SCHEMA};

const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

async fn seed(scim: &ScimClient) {
    for (user, display) in [
        ("u1", Some("bob")),
        ("u2", Some("Alice")),
        ("u3", None),
        ("u4", Some("carol")),
    ] {
        let mut body = json!({"schemas": [USER_SCHEMA], "userName": user,
            "emails": [{"value": format!("{user}@example.com"), "type": "work"}]});
        if let Some(d) = display {
            body["displayName"] = Value::from(d);
        }
        scim.create_user(&body).await;
    }
    scim.create_group(&json!({"schemas": [GROUP_SCHEMA], "displayName": "Admins"}))
        .await;
}

fn user_names(body: &Value) -> Vec<String> {
    body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap_or("").to_owned())
        .collect()
}

on_both_backends!(
    lists_sort_without_case_and_put_missing_values_last,
    searches_filter_page_and_project_per_type_and_at_the_root,
);

async fn lists_sort_without_case_and_put_missing_values_last(backend: Backend) {
    let Some(scim) = ScimClient::start(backend, "okta", OKTA).await else {
        return;
    };
    seed(&scim).await;
    let asc = scim.get("/Users?sortBy=displayName").await;
    asc.expect_status(200, "sort ascending");
    assert_eq!(user_names(&asc.body), ["u2", "u1", "u4", "u3"]);
    let desc = scim
        .get("/Users?sortBy=DISPLAYNAME&sortOrder=descending")
        .await;
    assert_eq!(user_names(&desc.body), ["u4", "u1", "u2", "u3"]);
    let by_email = scim
        .get("/Users?sortBy=emails.value&sortOrder=descending&count=2")
        .await;
    assert_eq!(user_names(&by_email.body), ["u4", "u3"]);
    assert_eq!(by_email.body["totalResults"], 4);
    let bad = scim.get("/Users?sortBy=shoeSize").await;
    bad.assert_scim_error(400, Some("invalidValue"));
    let bad = scim
        .get("/Users?sortBy=displayName&sortOrder=sideways")
        .await;
    bad.assert_scim_error(400, Some("invalidValue"));
}

async fn searches_filter_page_and_project_per_type_and_at_the_root(backend: Backend) {
    let Some(scim) = ScimClient::start(backend, "okta", OKTA).await else {
        return;
    };
    seed(&scim).await;
    let res = scim
        .post(
            "/Users/.search",
            &json!({"schemas": [SEARCH], "filter": "emails[type eq \"work\"] and not (displayName pr)",
                    "attributes": ["userName"], "startIndex": 1, "count": 10}),
        )
        .await;
    res.expect_status(200, "search");
    assert_eq!(res.body["totalResults"], 1);
    let only = &res.body["Resources"][0];
    assert_eq!(only["userName"], "u3");
    let mut keys: Vec<&str> = only
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "schemas", "userName"], "{only}");

    let res = scim
        .post("/.search", &json!({"schemas": [SEARCH], "filter": "displayName sw \"a\"", "sortBy": "displayName"}))
        .await;
    res.expect_status(200, "root search");
    assert_eq!(res.body["totalResults"], 2, "{}", res.text);
    let types: Vec<&str> = res.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["User", "Group"]);
    let paged = scim
        .post("/.search", &json!({"schemas": [SEARCH], "filter": "displayName sw \"a\"", "startIndex": 2, "count": 1}))
        .await;
    assert_eq!(paged.body["itemsPerPage"], 1);
    assert_eq!(paged.body["Resources"][0]["displayName"], "Admins");
    let not_search = scim
        .post("/Users/.search", &json!({"filter": "userName pr"}))
        .await;
    not_search.assert_scim_error(400, Some("invalidSyntax"));

    let listed = scim
        .get("/Users?excludedAttributes=emails,meta&count=1")
        .await;
    let first = &listed.body["Resources"][0];
    assert!(
        first.get("emails").is_none() && first.get("meta").is_none() && first.get("id").is_some(),
        "{first}"
    );
}
