//! Hostile and broken SCIM input over real HTTP: malformed, mistyped, oversized and deeply
//! nested bodies, garbled and injected filters, extreme paging parameters, wrong media types,
//! unknown paths and methods, tokens of other sources, missing tokens and rate limits. Each
//! gets the right status with a SCIM error body (never a 500), and idbridge keeps answering.

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header;
use serde_json::{Value, json};

use crate::helpers::{Backend, on_both_backends};
use crate::scim_support::{
    OKTA, ScimClient, USER_SCHEMA, enc, filter, id_of, patch_op, random, user,
};

on_both_backends!(
    invalid_json_is_400_invalid_syntax,
    a_json_array_body_is_400_invalid_syntax,
    a_body_with_an_unknown_core_schema_is_400,
    a_user_without_user_name_is_400_invalid_value,
    attributes_of_the_wrong_json_type_are_400_invalid_value,
    a_body_with_a_duplicate_key_is_400,
    a_filter_nested_ten_thousand_parentheses_deep_is_400_invalid_filter_quickly,
    a_body_nested_ten_thousand_levels_deep_is_400,
    a_huge_count_is_capped_at_the_advertised_max_results,
    a_start_index_below_one_is_treated_as_one,
    count_zero_or_below_returns_only_the_total,
    garbled_or_unsupported_filters_are_400_invalid_filter_never_an_unfiltered_list,
    injection_attempts_in_filter_sort_by_and_attributes_do_no_harm,
    a_body_over_the_configured_limit_is_413,
    a_text_plain_body_is_415,
    a_patch_with_an_unknown_op_is_400,
    a_remove_without_a_path_is_400_no_target,
    an_id_that_is_not_a_uuid_is_404_with_a_scim_error,
    me_is_501_not_implemented,
    writing_to_a_discovery_endpoint_is_405,
    a_405_names_the_allowed_methods,
    a_filter_on_a_discovery_endpoint_is_403,
    an_unknown_path_under_the_source_is_404_with_a_scim_error,
    a_token_of_one_source_is_404_on_another_and_sees_none_of_its_users,
    a_request_without_a_token_is_401_with_www_authenticate,
    the_fourth_quick_request_with_a_burst_of_three_is_429_with_retry_after,
);

async fn okta(backend: Backend) -> Option<ScimClient> {
    ScimClient::start(backend, "okta", OKTA).await
}

/// POSTs `raw` to `/Users` as `application/scim+json`.
async fn post_raw(
    c: &ScimClient,
    raw: impl Into<reqwest::Body>,
) -> crate::scim_support::ScimResponse {
    c.send(c.json_request(Method::POST, "/Users", raw)).await
}

async fn invalid_json_is_400_invalid_syntax(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    for raw in [
        r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "#,
        "not json at all",
        r#"{"userName": "a",}"#,
        "",
    ] {
        post_raw(&c, raw)
            .await
            .assert_scim_error(400, Some("invalidSyntax"));
    }
    c.assert_alive().await;
}

async fn a_json_array_body_is_400_invalid_syntax(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    post_raw(&c, json!([user("array@example.com")]).to_string())
        .await
        .assert_scim_error(400, Some("invalidSyntax"));
    c.assert_alive().await;
}

async fn a_body_with_an_unknown_core_schema_is_400(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let mut body = user("robot@example.com");
    body["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Robot"]);
    c.post("/Users", &body).await.assert_scim_error(400, None);
    body["schemas"] = json!([]);
    c.post("/Users", &body).await.assert_scim_error(400, None);
    let users = c
        .get(&format!(
            "/Users{}",
            filter("userName eq \"robot@example.com\"")
        ))
        .await;
    assert_eq!(users.total(), 0, "nothing was created: {}", users.text);
    c.assert_alive().await;
}

async fn a_user_without_user_name_is_400_invalid_value(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let mut body = user("x@example.com");
    body.as_object_mut().expect("object").remove("userName");
    c.post("/Users", &body)
        .await
        .assert_scim_error(400, Some("invalidValue"));
    body["userName"] = json!("");
    c.post("/Users", &body)
        .await
        .assert_scim_error(400, Some("invalidValue"));
    c.assert_alive().await;
}

async fn attributes_of_the_wrong_json_type_are_400_invalid_value(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let mut active = user("typed@example.com");
    active["active"] = json!(3);
    c.post("/Users", &active)
        .await
        .assert_scim_error(400, Some("invalidValue"));
    let mut name = user("typed@example.com");
    name["userName"] = json!(5);
    c.post("/Users", &name)
        .await
        .assert_scim_error(400, Some("invalidValue"));
    let mut emails = user("typed@example.com");
    emails["emails"] = json!([{"value": 7}]);
    c.post("/Users", &emails)
        .await
        .assert_scim_error(400, Some("invalidValue"));
    c.assert_alive().await;
}

async fn a_body_with_a_duplicate_key_is_400(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let raw = format!(
        r#"{{"schemas":["{USER_SCHEMA}"],"userName":"first@example.com","active":true,"userName":"second@example.com"}}"#
    );
    post_raw(&c, raw).await.assert_scim_error(400, None);
    let list = c.get("/Users").await;
    assert_eq!(list.total(), 0, "nothing was created: {}", list.text);
    c.assert_alive().await;
}

async fn a_filter_nested_ten_thousand_parentheses_deep_is_400_invalid_filter_quickly(
    backend: Backend,
) {
    // A long filter is allowed here, so that nesting alone is what is refused.
    let Some(c) = ScimClient::start_with(backend, &["okta"], OKTA, |c| {
        c.scim.max_filter_length = 1_000_000;
    })
    .await
    else {
        return;
    };
    c.create_user(&user("deep@example.com")).await;
    c.create_user(&user("other@example.com")).await;
    // Moderate nesting is an ordinary filter.
    let shallow = c
        .get(&format!(
            "/Users?filter={}{}{}",
            "(".repeat(30),
            enc("userName eq \"deep@example.com\""),
            ")".repeat(30)
        ))
        .await;
    shallow.expect_status(200, "30 levels");
    assert_eq!(shallow.total(), 1, "{}", shallow.text);
    let depth = 10_000;
    let query = format!(
        "?filter={}{}{}",
        "(".repeat(depth),
        enc("userName eq \"deep@example.com\""),
        ")".repeat(depth)
    );
    let started = Instant::now();
    let r = c.get(&format!("/Users{query}")).await;
    let took = started.elapsed();
    r.assert_scim_error(400, Some("invalidFilter"));
    assert!(took < Duration::from_secs(2), "answered in {took:?}");

    // Unbalanced: only openers.
    let r = c.get(&format!("/Users?filter={}", "(".repeat(depth))).await;
    r.assert_scim_error(400, Some("invalidFilter"));
    // Nested `not(` (kept unencoded so the URL stays under the 64 KiB URI limit).
    let r = c
        .get(&format!(
            "/Users?filter={}{}{}",
            "not(".repeat(depth),
            enc("userName eq \"a\""),
            ")".repeat(depth)
        ))
        .await;
    r.assert_scim_error(400, Some("invalidFilter"));
    c.assert_alive().await;
}

async fn a_body_nested_ten_thousand_levels_deep_is_400(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let depth = 10_000;
    let objects = format!(
        r#"{{"schemas":["{USER_SCHEMA}"],"userName":"nested@example.com","name":{}1{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    let started = Instant::now();
    post_raw(&c, objects).await.assert_scim_error(400, None);
    let arrays = format!(
        r#"{{"schemas":["{USER_SCHEMA}"],"userName":"nested@example.com","emails":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    post_raw(&c, arrays).await.assert_scim_error(400, None);
    let patch = format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"add","value":{}1{}}}]}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    let id = id_of(&c.create_user(&user("nested@example.com")).await);
    c.send(c.json_request(Method::PATCH, &format!("/Users/{id}"), patch))
        .await
        .assert_scim_error(400, None);
    assert!(started.elapsed() < Duration::from_secs(5));
    c.assert_alive().await;
}

async fn a_huge_count_is_capped_at_the_advertised_max_results(backend: Backend) {
    let Some(c) = ScimClient::start_with(backend, &["okta"], OKTA, |c| {
        c.scim.max_page_size = 3;
        c.scim.default_page_size = 2;
    })
    .await
    else {
        return;
    };
    for i in 0..5 {
        c.create_user(&user(&format!("many{i}@example.com"))).await;
    }
    let spc = c.get("/ServiceProviderConfig").await;
    spc.expect_status(200, "SPC");
    let max = spc.body["filter"]["maxResults"]
        .as_u64()
        .expect("filter.maxResults");
    assert_eq!(max, 3, "{}", spc.text);

    for count in ["99999999999999999999999", "4", "9223372036854775808"] {
        let r = c.get(&format!("/Users?count={count}")).await;
        r.expect_status(200, count).assert_list_response();
        assert_eq!(r.resources().len() as u64, max, "count={count}: {}", r.text);
        assert_eq!(r.total(), 5);
    }
    let r = c
        .get("/Users?startIndex=99999999999999999999999&count=99999999999999999999999")
        .await;
    r.expect_status(200, "huge startIndex")
        .assert_list_response();
    assert!(r.resources().is_empty(), "{}", r.text);
    assert_eq!(r.total(), 5);
    c.assert_alive().await;
}

async fn a_start_index_below_one_is_treated_as_one(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    for i in 0..3 {
        c.create_user(&user(&format!("start{i}@example.com"))).await;
    }
    let first = c.get("/Users?startIndex=1&count=2").await;
    first.expect_status(200, "startIndex=1");
    assert_eq!(first.ids().len(), 2);
    for start in ["-5", "0", "-99999999999999999999999"] {
        let r = c.get(&format!("/Users?startIndex={start}&count=2")).await;
        r.expect_status(200, start).assert_list_response();
        assert_eq!(r.body["startIndex"], 1, "startIndex={start}: {}", r.text);
        assert_eq!(r.ids(), first.ids(), "startIndex={start}");
    }
    c.assert_alive().await;
}

async fn count_zero_or_below_returns_only_the_total(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    for i in 0..3 {
        c.create_user(&user(&format!("zero{i}@example.com"))).await;
    }
    for count in ["0", "-5"] {
        let r = c.get(&format!("/Users?count={count}")).await;
        r.expect_status(200, count).assert_list_response();
        assert_eq!(r.total(), 3, "count={count}: {}", r.text);
        assert_eq!(r.body["itemsPerPage"], 0);
        assert!(r.resources().is_empty(), "count={count}: {}", r.text);
    }
    c.assert_alive().await;
}

async fn garbled_or_unsupported_filters_are_400_invalid_filter_never_an_unfiltered_list(
    backend: Backend,
) {
    let Some(c) = okta(backend).await else {
        return;
    };
    c.create_user(&user("a@example.com")).await;
    for f in [
        "userName xx \"a\"",
        "userName eq",
        "(userName eq \"a\"",
        "userName eq \"a\")",
        "userName eq \"a\" and",
        "userName eq \"unterminated",
        "active gt true",
        "emails[type eq \"work\"",
        "userName eq \"a\" garbage",
    ] {
        let r = c.get(&format!("/Users{}", filter(f))).await;
        assert!(
            r.resources().is_empty(),
            "`{f}` never answers a list: {}",
            r.text
        );
        r.assert_scim_error(400, Some("invalidFilter"));
        let r = c.get(&format!("/Groups{}", filter(f))).await;
        r.assert_scim_error(400, Some("invalidFilter"));
    }
    c.assert_alive().await;
}

async fn injection_attempts_in_filter_sort_by_and_attributes_do_no_harm(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let mut ids = Vec::new();
    for name in ["o'brien@example.com", "plain@example.com"] {
        ids.push(id_of(&c.create_user(&user(name)).await));
    }

    for f in [
        "userName eq \"x' or 1=1 --\"",
        "userName eq \"x' or '1'='1\"",
        "userName eq \"x\\\" or \\\"1\\\"=\\\"1\"",
        "userName co \"%\"",
        "userName sw \"_\"",
        "userName eq \"'; drop table scim_users; --\"",
    ] {
        let r = c.get(&format!("/Users{}", filter(f))).await;
        r.expect_status(200, f).assert_list_response();
        assert_eq!(r.total(), 0, "`{f}` matches nothing: {}", r.text);
    }
    let quote = c
        .get(&format!(
            "/Users{}",
            filter("userName eq \"O'Brien@example.com\"")
        ))
        .await;
    quote.expect_status(200, "a real quote");
    assert_eq!(
        quote.ids(),
        [ids[0].as_str()],
        "a quote in a value is just a character"
    );

    let sort = c
        .get(&format!(
            "/Users?sortBy={}",
            enc("userName; drop table scim_users")
        ))
        .await;
    sort.assert_scim_error(400, None);
    let sort = c
        .get(&format!(
            "/Users?sortBy={}",
            enc("userName desc, (select 1)")
        ))
        .await;
    sort.assert_scim_error(400, None);

    let attrs = c
        .get(&format!("/Users?attributes={}", enc("userName,\"; drop")))
        .await;
    assert!(
        attrs.status == 400 || attrs.status == 200,
        "attributes injection: {} {}",
        attrs.status,
        attrs.text
    );
    if attrs.status == 400 {
        attrs.assert_scim_error(400, None);
    }

    let all = c.get("/Users").await;
    all.expect_status(200, "users after the attempts");
    let mut listed = all.ids();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids, "every user is still there");
    for id in &ids {
        c.get(&format!("/Users/{id}"))
            .await
            .expect_status(200, "each user still readable");
    }
}

async fn a_body_over_the_configured_limit_is_413(backend: Backend) {
    let Some(c) = ScimClient::start_with(backend, &["okta"], OKTA, |c| {
        c.server.body_limit_bytes = 4096;
    })
    .await
    else {
        return;
    };
    let mut big = user("big@example.com");
    big["displayName"] = Value::from("x".repeat(8192));
    c.post("/Users", &big).await.assert_scim_error(413, None);
    // Without a Content-Length (chunked), the limit still holds.
    let (status, head, body) = chunked_post(&c, "/Users", big.to_string()).await;
    assert_eq!(status, 413, "chunked: {head}\n{body}");
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(
        parsed["schemas"],
        json!([crate::scim_support::ERROR_SCHEMA]),
        "chunked 413 has a SCIM error body: {head}\n{body}"
    );
    // A body under the limit is fine.
    c.create_user(&user("small@example.com")).await;
    c.assert_alive().await;
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no `Content-Length`) over a plain socket;
/// returns the status, the response head and the response body (de-chunked).
async fn chunked_post(c: &ScimClient, rel: &str, body: String) -> (u16, String, String) {
    use std::io::{Read, Write};
    let addr = c.app.addr;
    let path = format!("/scim/v2/{}{rel}", c.source);
    let token = c.token().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n"
        );
        for chunk in body.as_bytes().chunks(1000) {
            req.push_str(&format!("{:x}\r\n", chunk.len()));
            req.push_str(std::str::from_utf8(chunk).expect("ascii body"));
            req.push_str("\r\n");
        }
        req.push_str("0\r\n\r\n");
        // The server may answer and close before it has read everything.
        let _ = stream.write_all(req.as_bytes());
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_owned()
        };
        (status, head.to_owned(), body)
    })
    .await
    .expect("socket task")
}

/// Joins the chunks of a chunked body.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

async fn a_text_plain_body_is_415(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let r = c
        .send(
            c.request(Method::POST, "/Users")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(user("plain@example.com").to_string()),
        )
        .await;
    r.assert_scim_error(415, None);
    c.send(
        c.request(Method::POST, "/Users")
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(user("json@example.com").to_string()),
    )
    .await
    .expect_status(201, "application/json is accepted too");
    c.assert_alive().await;
}

async fn a_patch_with_an_unknown_op_is_400(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let id = id_of(&c.create_user(&user("op@example.com")).await);
    for op in ["frobnicate", "", "delete"] {
        c.patch_ops(
            &format!("/Users/{id}"),
            json!([{"op": op, "path": "nickName", "value": "x"}]),
        )
        .await
        .assert_scim_error(400, None);
    }
    c.patch(
        &format!("/Users/{id}"),
        &json!({"schemas": [USER_SCHEMA], "Operations": []}),
    )
    .await
    .assert_scim_error(400, None);
    let got = c.get(&format!("/Users/{id}")).await;
    assert!(got.body.get("nickName").is_none(), "{}", got.text);
    c.assert_alive().await;
}

async fn a_remove_without_a_path_is_400_no_target(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let id = id_of(&c.create_user(&user("remove@example.com")).await);
    c.patch_ops(&format!("/Users/{id}"), json!([{"op": "remove"}]))
        .await
        .assert_scim_error(400, Some("noTarget"));
    let got = c.get(&format!("/Users/{id}")).await;
    assert_eq!(got.body["userName"], "remove@example.com", "unchanged");
    c.assert_alive().await;
}

async fn an_id_that_is_not_a_uuid_is_404_with_a_scim_error(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    for rel in [
        "/Users/not-a-uuid",
        "/Groups/not-a-uuid",
        "/Users/%00%27%22",
        "/Users/bulkId:abc",
    ] {
        c.get(rel).await.assert_scim_error(404, None);
    }
    c.put("/Users/not-a-uuid", &user("put@example.com"))
        .await
        .assert_scim_error(404, None);
    c.patch_ops(
        "/Users/not-a-uuid",
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .await
    .assert_scim_error(404, None);
    c.delete("/Users/not-a-uuid")
        .await
        .assert_scim_error(404, None);
    c.assert_alive().await;
}

async fn me_is_501_not_implemented(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    c.get("/Me").await.assert_scim_error(501, None);
    c.assert_alive().await;
}

async fn writing_to_a_discovery_endpoint_is_405(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    c.post("/ServiceProviderConfig", &json!({}))
        .await
        .assert_scim_error(405, None);
    c.put("/Schemas", &json!({}))
        .await
        .assert_scim_error(405, None);
    c.delete("/ResourceTypes/User")
        .await
        .assert_scim_error(405, None);
    c.patch(
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
        &patch_op(json!([])),
    )
    .await
    .assert_scim_error(405, None);
    c.assert_alive().await;
}

async fn a_405_names_the_allowed_methods(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    let r = c.post("/ServiceProviderConfig", &json!({})).await;
    r.assert_scim_error(405, None);
    let allow = r.header("allow").unwrap_or_default().to_ascii_uppercase();
    assert!(
        allow.contains("GET") && !allow.contains("POST"),
        "RFC 9110 §15.5.6: a 405 carries Allow; got {:?}",
        r.header("allow")
    );
    c.assert_alive().await;
}

async fn a_filter_on_a_discovery_endpoint_is_403(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    for endpoint in ["/Schemas", "/ResourceTypes", "/ServiceProviderConfig"] {
        c.get(&format!("{endpoint}{}", filter("id eq \"User\"")))
            .await
            .assert_scim_error(403, None);
    }
    c.assert_alive().await;
}

async fn an_unknown_path_under_the_source_is_404_with_a_scim_error(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    for rel in [
        format!("/{}", uuid::Uuid::new_v4()),
        "/Users/x/y".to_owned(),
        "/Robots".to_owned(),
        String::new(),
    ] {
        c.get(&rel).await.assert_scim_error(404, None);
    }
    c.get("/Schemas/urn:example:nope")
        .await
        .assert_scim_error(404, None);
    c.get("/ResourceTypes/Robot")
        .await
        .assert_scim_error(404, None);
    c.assert_alive().await;
}

async fn a_token_of_one_source_is_404_on_another_and_sees_none_of_its_users(backend: Backend) {
    let Some(a) = ScimClient::start_with(backend, &["okta", "entra"], OKTA, |_| {}).await else {
        return;
    };
    let user_name = format!("a.{}@example.com", random());
    let a_user = id_of(&a.create_user(&user(&user_name)).await);
    let (b_source, b_token) = a.for_source("entra").await;
    assert_ne!(b_source, a.source_id);

    // A's token on B's endpoints.
    for rel in [
        "/Users".to_owned(),
        format!("/Users/{a_user}"),
        "/ServiceProviderConfig".to_owned(),
    ] {
        a.send(a.request_to(Method::GET, a.url_for("entra", &rel), Some(a.token())))
            .await
            .assert_scim_error(404, None);
    }
    // B's token sees nothing of A.
    let b_get =
        |rel: String| a.send(a.request_to(Method::GET, a.url_for("entra", &rel), Some(&b_token)));
    let list = b_get("/Users".to_owned()).await;
    list.expect_status(200, "B lists its own users")
        .assert_list_response();
    assert_eq!(list.total(), 0, "{}", list.text);
    let by_name = b_get(format!(
        "/Users{}",
        filter(&format!("userName eq \"{user_name}\""))
    ))
    .await;
    by_name.expect_status(200, "B filters");
    assert_eq!(by_name.total(), 0, "{}", by_name.text);
    b_get(format!("/Users/{a_user}"))
        .await
        .assert_scim_error(404, None);
    // B's token on A's endpoints.
    a.send(a.request_to(
        Method::DELETE,
        a.url_for("okta", &format!("/Users/{a_user}")),
        Some(&b_token),
    ))
    .await
    .assert_scim_error(404, None);
    a.get(&format!("/Users/{a_user}"))
        .await
        .expect_status(200, "A's user is untouched");
}

async fn a_request_without_a_token_is_401_with_www_authenticate(backend: Backend) {
    let Some(c) = okta(backend).await else {
        return;
    };
    for rel in ["/Users", "/ServiceProviderConfig", "/Me", "/nope"] {
        let r = c.send(c.request_to(Method::GET, c.url(rel), None)).await;
        r.assert_scim_error(401, None);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer")),
            "{rel}: {:?}",
            r.header("www-authenticate")
        );
    }
    let r = c
        .send(
            c.request_to(Method::POST, c.url("/Users"), None)
                .body(user("anon@example.com").to_string()),
        )
        .await;
    r.assert_scim_error(401, None);
    c.assert_alive().await;
}

async fn the_fourth_quick_request_with_a_burst_of_three_is_429_with_retry_after(backend: Backend) {
    let Some(c) = ScimClient::start_with(backend, &["okta"], OKTA, |c| {
        c.scim.rate_limit_per_second = 1;
        c.scim.rate_limit_burst = 3;
    })
    .await
    else {
        return;
    };
    for i in 1..=3 {
        c.get("/Users")
            .await
            .expect_status(200, &format!("request {i} of the burst"));
    }
    let limited = c.get("/Users").await;
    limited.assert_scim_error(429, None);
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    c.get("/Users")
        .await
        .expect_status(200, "answered again after Retry-After");
}
