//! The Confluence Data Center simulator over real HTTP: endpoints per version, the paging
//! and error envelopes, idempotent writes, read-only directories, asynchronous deletion,
//! the legacy Remote API, Crowd renames, auth failures, rate limiting, reproducibility and
//! licence counting.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use idbridge::sim::confluence_dc::{DcSim, DcSimOptions, start};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

const LOCAL: &str = "127.0.0.1:0";

fn opts(version: &str, users: usize) -> DcSimOptions {
    DcSimOptions {
        product_version: version.parse().expect("version"),
        users,
        epoch: Some("2026-11-01T00:00:00Z".parse().expect("epoch")),
        ..DcSimOptions::default()
    }
}

async fn sim(o: DcSimOptions) -> DcSim {
    start(o, LOCAL.parse::<SocketAddr>().expect("addr"))
        .await
        .expect("simulator starts")
}

struct Api {
    http: Client,
    base: String,
    user: String,
    password: String,
}

impl Api {
    fn admin(s: &DcSim) -> Api {
        Api {
            http: Client::new(),
            base: s.base_url(),
            user: s.admin_user().to_owned(),
            password: s.admin_password().to_owned(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self
            .http
            .request(method, url)
            .basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    async fn get(&self, path: &str) -> Response {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get(path).await;
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn put(&self, path: &str) -> StatusCode {
        self.send(reqwest::Method::PUT, path, None).await.status()
    }

    async fn delete(&self, path: &str) -> Response {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

async fn control(s: &DcSim, method: reqwest::Method, path: &str, body: Value) -> Value {
    Client::new()
        .request(method, format!("{}{path}", s.root_url()))
        .json(&body)
        .send()
        .await
        .expect("control call")
        .json()
        .await
        .unwrap_or(Value::Null)
}

fn assert_error_envelope(body: &Value, status: u16) {
    assert_eq!(body["statusCode"], status, "{body}");
    for key in ["authorized", "valid", "allowedInReadOnlyMode", "successful"] {
        assert!(body["data"][key].is_boolean(), "data.{key} in {body}");
    }
    assert!(body["data"]["errors"].is_array(), "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["reason"].is_string(), "{body}");
}

/// A user of the seeded population matching `pred`, via the admin list (8.4+).
async fn find_user(api: &Api, pred: impl Fn(&Value) -> bool) -> Value {
    let (_, page) = api
        .json("/rest/api/user/list?limit=1000&expand=status")
        .await;
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|u| pred(u))
        .cloned()
        .expect("a matching user")
}

#[tokio::test]
async fn endpoints_appear_and_disappear_with_the_version() {
    let old = sim(opts("8.2", 30)).await;
    let api = Api::admin(&old);
    let (status, body) = api.json("/rest/api/user/list").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&body, 404);
    assert_eq!(api.put("/rest/api/admin/user/viewer/disable").await, 204);
    let (status, _) = api.json("/rest/api/group/staff/groupmember").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let manifest = api
        .http
        .get(format!("{}/rest/applinks/1.0/manifest", api.base))
        .header("Accept", "application/json")
        .send()
        .await
        .expect("manifest");
    let manifest: Value = manifest.json().await.expect("json");
    assert_eq!(manifest["version"], "8.2.0");
    assert_eq!(manifest["typeId"], "confluence");
    old.stop().await;

    let mid = sim(opts("8.4", 30)).await;
    let api = Api::admin(&mid);
    assert_eq!(api.json("/rest/api/user/list").await.0, StatusCode::OK);
    let (status, body) = api.json("/rest/api/admin/users/list/active").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_envelope(&body, 404);
    mid.stop().await;

    let v93 = sim(opts("9.3", 30)).await;
    let api = Api::admin(&v93);
    let (status, body) = api
        .json("/rest/api/admin/users/list/active?expand=lastLogin")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["totalCount"].is_u64());
    let first = &body["results"][0];
    assert!(first.get("lastLogin").is_none() && first.get("email").is_none());
    assert_eq!(
        api.json("/rest/api/permissions/group/confluence-users")
            .await
            .1[0]["operation"],
        json!({"targetType": "application", "operationKey": "use"})
    );
    v93.stop().await;

    let v102 = sim(opts("10.2", 30)).await;
    let api = Api::admin(&v102);
    let (_, body) = api
        .json("/rest/api/admin/users/list/active?expand=lastLogin&limit=200")
        .await;
    let results = body["results"].as_array().expect("results");
    assert!(results.iter().all(|u| u["email"].is_string()));
    let logins: Vec<&str> = results
        .iter()
        .filter_map(|u| u["lastLogin"].as_str())
        .collect();
    assert!(!logins.is_empty());
    assert!(
        logins.iter().all(|l| l.ends_with('Z') && l.len() == 24),
        "{logins:?}"
    );
    let mut sorted = logins.clone();
    sorted.sort();
    assert_eq!(logins, sorted, "sorted by last login, oldest first");
    assert_eq!(
        api.json("/rest/api/group/staff/groupmember").await.1["results"][0]["name"],
        "engineering"
    );
    v102.stop().await;
}

#[tokio::test]
async fn the_user_list_pages_with_the_dc_envelope_and_relative_or_absolute_next() {
    let s = sim(DcSimOptions {
        page_cap: 40,
        ..opts("9.3", 95)
    })
    .await;
    let api = Api::admin(&s);
    let (_, first) = api
        .json("/rest/api/user/list?limit=500&expand=status")
        .await;
    assert_eq!(first["limit"], 40, "limit capped");
    assert_eq!(first["start"], 0);
    assert_eq!(first["size"], 40);
    assert_eq!(first["_links"]["base"], s.base_url());
    assert_eq!(first["_links"]["context"], "/confluence");
    assert_eq!(
        first["_links"]["next"],
        "/rest/api/user/list?expand=status&limit=40&start=40"
    );
    let u = &first["results"][0];
    assert_eq!(u["type"], "known");
    assert_eq!(u["userKey"].as_str().map(str::len), Some(32));
    assert!(u["status"].is_string() && u["profilePicture"]["isDefault"] == true);

    let mut seen = Vec::new();
    let mut next = Some("/rest/api/user/list?limit=40".to_owned());
    while let Some(path) = next {
        let (status, page) = api.json(&path).await;
        assert_eq!(status, StatusCode::OK);
        for u in page["results"].as_array().expect("results") {
            seen.push(u["userKey"].as_str().unwrap_or("").to_owned());
        }
        next = page["_links"]["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 95);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 95, "no user twice");

    control(
        &s,
        reqwest::Method::PUT,
        "/__sim/settings",
        json!({"relativeLinks": false}),
    )
    .await;
    let (_, page) = api.json("/rest/api/user/list?limit=40&start=40").await;
    assert_eq!(
        page["_links"]["next"],
        format!("{}/rest/api/user/list?limit=40&start=80", s.base_url())
    );
    let (_, last) = api.json("/rest/api/user/list?limit=40&start=80").await;
    assert_eq!(last["size"], 15);
    assert!(last["_links"].get("next").is_none());
    s.stop().await;
}

#[tokio::test]
async fn writes_are_idempotent_204s_and_read_only_directories_refuse_with_403() {
    let s = sim(opts("9.3", 80)).await;
    let api = Api::admin(&s);
    for _ in 0..2 {
        assert_eq!(api.put("/rest/api/user/viewer/group/staff").await, 204);
    }
    assert!(
        s.user("viewer")
            .is_some_and(|u| u.groups.contains(&"staff".to_owned()))
    );
    for _ in 0..2 {
        let r = api.delete("/rest/api/user/viewer/group/staff").await;
        assert_eq!(r.status(), 204);
    }
    for _ in 0..2 {
        assert_eq!(api.put("/rest/api/admin/user/viewer/disable").await, 204);
    }
    assert!(s.user("viewer").is_some_and(|u| !u.active));
    for _ in 0..2 {
        assert_eq!(api.put("/rest/api/admin/user/viewer/enable").await, 204);
    }
    let r = api
        .send(
            reqwest::Method::PUT,
            "/rest/api/user/viewer/group/nope",
            None,
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_error_envelope(&r.json().await.expect("json"), 404);
    assert_eq!(api.put("/rest/api/user/ghost/group/staff").await, 404);

    // An LDAP (read-only with local groups) user: status and LDAP groups are read-only,
    // local groups are not.
    let ldap = control(
        &s,
        reqwest::Method::POST,
        "/__sim/users",
        json!({"username": "ldapuser", "directory": "Corporate LDAP", "groups": ["ldap-confluence"]}),
    )
    .await;
    assert_eq!(ldap["directory"], "Corporate LDAP");
    let r = api
        .send(
            reqwest::Method::PUT,
            "/rest/api/admin/user/ldapuser/disable",
            None,
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_error_envelope(&r.json().await.expect("json"), 403);
    let r = api
        .delete("/rest/api/user/ldapuser/group/ldap-confluence")
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(api.put("/rest/api/user/ldapuser/group/staff").await, 204);
    control(
        &s,
        reqwest::Method::PUT,
        "/__sim/directories/Corporate LDAP",
        json!({"mode": "READ_ONLY"}),
    )
    .await;
    assert_eq!(
        api.put("/rest/api/user/ldapuser/group/confluence-users")
            .await,
        403
    );
    s.stop().await;
}

#[tokio::test]
async fn an_async_delete_returns_a_long_task_and_the_user_goes_when_it_completes() {
    let s = sim(DcSimOptions {
        delete_task_ms: 300,
        ..opts("9.3", 40)
    })
    .await;
    let api = Api::admin(&s);
    let r = api.delete("/rest/api/admin/user/viewer").await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.expect("json");
    let id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(body["links"]["status"], format!("/rest/api/longtask/{id}"));
    let (_, running) = api.json(&format!("/rest/api/longtask/{id}")).await;
    assert_eq!(running["successful"], false);
    assert!(running["percentageComplete"].as_u64() < Some(100));
    assert!(running.get("finished").is_none());
    assert!(
        s.user("viewer").is_some(),
        "still there while the task runs"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let done = loop {
        let (_, t) = api.json(&format!("/rest/api/longtask/{id}")).await;
        if t["percentageComplete"] == 100 || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["successful"], true);
    assert_eq!(done["finished"], true);
    assert_eq!(api.json("/rest/api/user?username=viewer").await.0, 404);
    assert_eq!(
        api.delete("/rest/api/admin/user/viewer").await.status(),
        404
    );

    control(
        &s,
        reqwest::Method::PUT,
        "/__sim/settings",
        json!({"deleteTaskFailure": "user owns content", "deleteTaskMs": 10}),
    )
    .await;
    let body: Value = api
        .delete("/rest/api/admin/user/sysadmin")
        .await
        .json()
        .await
        .expect("json");
    tokio::time::sleep(Duration::from_millis(60)).await;
    let (_, failed) = api
        .json(&format!(
            "/rest/api/longtask/{}",
            body["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(failed["percentageComplete"], 100);
    assert_eq!(failed["successful"], false);
    assert!(
        failed["messages"][0]["translation"]
            .as_str()
            .is_some_and(|m| m.contains("user owns content"))
    );
    assert!(s.user("sysadmin").is_some());
    s.stop().await;
}

fn xml_call(method: &str, params: &[&str]) -> String {
    let ps: String = params
        .iter()
        .map(|p| format!("<param><value><string>{p}</string></value></param>"))
        .collect();
    format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>{ps}</params></methodCall>"
    )
}

async fn xmlrpc(s: &DcSim, body: String) -> String {
    Client::new()
        .post(format!("{}/rpc/xmlrpc", s.base_url()))
        .header("Content-Type", "text/xml")
        .body(body)
        .send()
        .await
        .expect("xmlrpc")
        .text()
        .await
        .unwrap_or_default()
}

#[tokio::test]
async fn the_remote_api_renames_over_xml_rpc_and_json_rpc_keeping_the_user_key() {
    let s = sim(DcSimOptions {
        remote_api: true,
        ..opts("9.3", 40)
    })
    .await;
    let key = s.user("viewer").map(|u| u.user_key).expect("viewer");
    let login = xmlrpc(&s, xml_call("confluence2.login", &["admin", "admin"])).await;
    let token = login
        .split("<string>")
        .nth(1)
        .and_then(|t| t.split("</string>").next())
        .expect("token")
        .to_owned();
    let renamed = xmlrpc(
        &s,
        xml_call(
            "confluence2.renameUser",
            &[&token, "viewer", "viewer_inactive_20261121"],
        ),
    )
    .await;
    assert_eq!(
        renamed,
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><boolean>1</boolean></value></param></params></methodResponse>"
    );
    assert_eq!(
        s.user("viewer_inactive_20261121").map(|u| u.user_key),
        Some(key.clone())
    );
    let clash = xmlrpc(
        &s,
        xml_call(
            "confluence2.renameUser",
            &[&token, "viewer_inactive_20261121", "admin"],
        ),
    )
    .await;
    assert!(
        clash.contains("<fault>") && clash.contains("faultString"),
        "{clash}"
    );
    let bad_token = xmlrpc(
        &s,
        xml_call("confluence2.deactivateUser", &["nope", "admin"]),
    )
    .await;
    assert!(bad_token.contains("InvalidSessionException"), "{bad_token}");
    let garbage = xmlrpc(&s, "<methodCall><oops>".into()).await;
    assert!(garbage.contains("<fault>"));

    let api = Api::admin(&s);
    let r = api
        .send(
            reqwest::Method::POST,
            "/rpc/json-rpc/confluenceservice-v2/renameUser",
            Some(json!(["viewer_inactive_20261121", "viewer"])),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json"), json!(true));
    assert_eq!(s.user("viewer").map(|u| u.user_key), Some(key));
    let r = api
        .send(
            reqwest::Method::POST,
            "/rpc/json-rpc/confluenceservice-v2/renameUser",
            Some(json!(["ghost", "ghost2"])),
        )
        .await;
    let err: Value = r.json().await.expect("json");
    assert!(err["error"]["message"].is_string(), "{err}");

    control(
        &s,
        reqwest::Method::PUT,
        "/__sim/settings",
        json!({"remoteApi": false}),
    )
    .await;
    let off = xmlrpc(&s, xml_call("confluence2.login", &["admin", "admin"])).await;
    assert!(
        off.contains("<fault>") && off.contains("Remote API is disabled"),
        "{off}"
    );
    let r = api
        .send(
            reqwest::Method::POST,
            "/rpc/json-rpc/confluenceservice-v2/renameUser",
            Some(json!(["viewer", "x"])),
        )
        .await;
    assert_eq!(r.status(), 403);
    s.stop().await;
}

#[tokio::test]
async fn a_crowd_rename_is_reflected_in_confluence_with_the_same_user_key() {
    let s = sim(DcSimOptions {
        crowd: true,
        ..opts("9.3", 200)
    })
    .await;
    let created = control(
        &s,
        reqwest::Method::POST,
        "/__sim/users",
        json!({"username": "bob", "displayName": "Bob Builder", "directory": "Crowd"}),
    )
    .await;
    let key = created["userKey"].as_str().expect("key").to_owned();
    let (app, pw) = s.crowd_app();
    let crowd = Client::new();
    let r = crowd
        .post(format!("{}/user/rename?username=bob", s.crowd_url()))
        .basic_auth(&app, Some(&pw))
        .json(&json!({"new-name": "bob_inactive_20261121"}))
        .send()
        .await
        .expect("rename");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["name"], "bob_inactive_20261121");
    assert_eq!(body["display-name"], "Bob Builder");
    let api = Api::admin(&s);
    let (status, user) = api
        .json("/rest/api/user?username=bob_inactive_20261121")
        .await;
    assert_eq!(status, 200);
    assert_eq!(user["userKey"], key);

    let r = crowd
        .post(format!(
            "{}/user/rename?username=bob_inactive_20261121",
            s.crowd_url()
        ))
        .basic_auth(&app, Some(&pw))
        .json(&json!({"new-name": "admin"}))
        .send()
        .await
        .expect("rename");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["reason"],
        "INVALID_USER"
    );
    let r = crowd
        .get(format!("{}/user?username=hoge", s.crowd_url()))
        .basic_auth(&app, Some(&pw))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"reason": "USER_NOT_FOUND", "message": "User <hoge> does not exist"})
    );
    let r = crowd
        .get(format!(
            "{}/user?username=bob_inactive_20261121",
            s.crowd_url()
        ))
        .basic_auth(&app, Some("wrong"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    control(
        &s,
        reqwest::Method::PUT,
        "/__sim/directories/Crowd",
        json!({"mode": "READ_ONLY"}),
    )
    .await;
    let r = crowd
        .post(format!(
            "{}/user/rename?username=bob_inactive_20261121",
            s.crowd_url()
        ))
        .basic_auth(&app, Some(&pw))
        .json(&json!({"new-name": "bob2"}))
        .send()
        .await
        .expect("rename");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json")["reason"],
        "APPLICATION_PERMISSION_DENIED"
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_credentials_get_401_without_json_and_non_admins_get_a_403_envelope() {
    let s = sim(opts("9.3", 30)).await;
    let http = Client::new();
    let url = format!("{}/rest/api/user/current", s.base_url());
    let r = http
        .get(&url)
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    let r = http.get(&url).send().await.expect("get");
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap_or_default().is_empty());
    let r = http
        .get(&url)
        .bearer_auth(s.pat())
        .send()
        .await
        .expect("get");
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["type"], "known");
    assert_eq!(me["username"], "admin");

    let (viewer, password, pat) = s.viewer();
    let r = http
        .put(format!(
            "{}/rest/api/admin/user/admin/disable",
            s.base_url()
        ))
        .basic_auth(viewer, Some(password))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 403);
    assert_error_envelope(&r.json().await.expect("json"), 403);
    let r = http
        .get(format!("{}/rest/api/user?username=admin", s.base_url()))
        .bearer_auth(pat)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert!(
        s.mutations().iter().all(|m| m.status >= 400),
        "nothing changed"
    );
    s.stop().await;
}

#[tokio::test]
async fn rate_limiting_sends_the_headers_then_429_with_retry_after_and_blocks_users() {
    let s = sim(DcSimOptions {
        rate_limit: Some(1),
        rate_limit_burst: Some(3),
        ..opts("9.3", 30)
    })
    .await;
    let api = Api::admin(&s);
    let r = api.get("/rest/api/user/current").await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["x-ratelimit-limit"], "3");
    assert_eq!(h["x-ratelimit-remaining"], "2");
    assert_eq!(h["x-ratelimit-interval-seconds"], "1");
    assert_eq!(h["x-ratelimit-fillrate"], "1");
    assert_eq!(h["retry-after"], "0");
    api.get("/rest/api/user/current").await;
    api.get("/rest/api/user/current").await;
    let r = api.get("/rest/api/user/current").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(r.headers()["retry-after"], "1");

    control(
        &s,
        reqwest::Method::PUT,
        "/__sim/rate-limit",
        json!({"blocked": ["admin"]}),
    )
    .await;
    let r = api.get("/rest/api/user/current").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-limit"], "0");
    assert_eq!(r.headers()["x-ratelimit-fillrate"], "0");
    assert_eq!(r.headers()["retry-after"], "9223372036854775807");
    s.stop().await;
}

#[tokio::test]
async fn the_same_seed_gives_an_identical_listing() {
    let a = sim(opts("10.2", 150)).await;
    let b = sim(opts("10.2", 150)).await;
    let c = sim(DcSimOptions {
        seed: 7,
        ..opts("10.2", 150)
    })
    .await;
    let path = "/rest/api/admin/users/list/active?limit=1000&expand=lastLogin,status";
    let body = |s: &DcSim| {
        let api = Api::admin(s);
        let base = s.base_url();
        async move {
            let text = api.get(path).await.text().await.unwrap_or_default();
            text.replace(&base, "BASE")
        }
    };
    let (ta, tb, tc) = (body(&a).await, body(&b).await, body(&c).await);
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
    for s in [a, b, c] {
        s.stop().await;
    }
}

#[tokio::test]
async fn licence_counters_count_nested_groups_once_and_never_deactivated_users() {
    let s = sim(DcSimOptions {
        max_users: Some(100),
        ..opts("9.3", 40)
    })
    .await;
    let api = Api::admin(&s);
    let count = |v: Value| v["count"].as_i64().unwrap_or(-99);
    let before = count(api.json("/rest/rest/license/1.0/license/userCount").await.1);
    assert_eq!(
        before, -99,
        "unknown path answers the envelope, not a count"
    );
    let before = count(api.json("/rest/license/1.0/license/userCount").await.1);
    assert_eq!(before as usize, s.licensed_count());
    assert_eq!(
        count(api.json("/rest/license/1.0/license/maxUsers").await.1),
        100
    );
    assert_eq!(
        count(api.json("/rest/license/1.0/license/remainingSeats").await.1),
        100 - before
    );
    // Nested twice over (engineering ⊂ staff ⊂ confluence-users) plus direct: one seat.
    control(
        &s,
        reqwest::Method::POST,
        "/__sim/users",
        json!({"username": "nested", "groups": ["engineering", "staff", "confluence-users"]}),
    )
    .await;
    assert_eq!(
        count(api.json("/rest/license/1.0/license/userCount").await.1),
        before + 1
    );
    assert_eq!(api.put("/rest/api/admin/user/nested/disable").await, 204);
    assert_eq!(
        count(api.json("/rest/license/1.0/license/userCount").await.1),
        before
    );
    // Unlicensed active users exist and do not count; a shadowed duplicate does not either.
    let unlicensed = find_user(&api, |u| u["status"] == "unlicensed").await;
    assert!(
        s.user(unlicensed["username"].as_str().unwrap_or(""))
            .is_some_and(|u| !u.licensed)
    );
    let deactivated = find_user(&api, |u| u["status"] == "deactivated").await;
    let name = deactivated["username"].as_str().unwrap_or("").to_owned();
    let login = control(
        &s,
        reqwest::Method::POST,
        "/__sim/login",
        json!({"username": name}),
    )
    .await;
    assert_eq!(login["success"], false);
    assert_eq!(login["user"]["loginInfo"]["failed_count"], 1);

    let when = "2026-11-20T10:00:00Z";
    let ok = control(
        &s,
        reqwest::Method::POST,
        "/__sim/login",
        json!({"username": "viewer", "at": when}),
    )
    .await;
    assert_eq!(ok["success"], true);
    let rows: Vec<Value> = Client::new()
        .get(format!("{}/__sim/db/last-logins", s.root_url()))
        .send()
        .await
        .expect("db view")
        .json()
        .await
        .expect("json");
    let row = rows
        .iter()
        .find(|r| r["username"] == "viewer")
        .expect("row");
    assert_eq!(row["lastAuthenticated"], 1_795_168_800_000_i64);
    assert_eq!(row["successdate"], "2026-11-20T10:00:00.000Z");
    s.stop().await;
}

#[tokio::test]
async fn creating_users_follows_the_validation_rules_and_the_seat_limit() {
    let s = sim(DcSimOptions {
        max_users: Some(0),
        ..opts("8.4", 20)
    })
    .await;
    let api = Api::admin(&s);
    let post = |body: Value| {
        let api = &api;
        async move {
            api.send(reqwest::Method::POST, "/rest/api/admin/user", Some(body))
                .await
        }
    };
    let ok = json!({"userName": "user1", "fullName": "Some User", "email": "someuser@example.com", "password": "S3cret!", "notifyViaEmail": false});
    let r = post(ok.clone()).await;
    assert_eq!(r.status(), 402, "no seats left");
    assert_error_envelope(&r.json().await.expect("json"), 402);
    control(
        &s,
        reqwest::Method::PUT,
        "/__sim/settings",
        json!({"maxUsers": -1}),
    )
    .await;
    let r = post(ok.clone()).await;
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.expect("json")["userKey"]
        .as_str()
        .map(str::len);
    assert_eq!(key, Some(32));
    assert_eq!(post(ok.clone()).await.status(), 409);
    for bad in [
        json!({"userName": "Upper", "fullName": "X", "email": "x@example.com", "password": "p"}),
        json!({"userName": "a b", "fullName": "X", "email": "x@example.com", "password": "p"}),
        json!({"userName": "anonymous", "fullName": "X", "email": "x@example.com", "password": "p"}),
        json!({"userName": "ok2", "fullName": "<b>", "email": "x@example.com", "password": "p"}),
        json!({"userName": "ok2", "fullName": "X", "email": "nope", "password": "p"}),
        json!({"userName": "ok2", "fullName": "X", "email": "x@example.com"}),
        json!({"userName": "ok2", "fullName": "X", "email": "x@example.com", "password": "p", "notifyViaEmail": true}),
    ] {
        let r = post(bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_error_envelope(&r.json().await.expect("json"), 400);
    }
    let r = api
        .http
        .post(format!("{}/rest/api/admin/user", api.base))
        .basic_auth("admin", Some("admin"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    s.stop().await;
}

#[tokio::test]
async fn a_hundred_thousand_users_start_and_list_quickly() {
    let t = Instant::now();
    let s = sim(opts("10.2", 100_000)).await;
    let started = t.elapsed();
    let api = Api::admin(&s);
    let t = Instant::now();
    let mut total = 0;
    let mut next = Some("/rest/api/user/list?limit=1000".to_owned());
    while let Some(path) = next {
        let (status, page) = api.json(&path).await;
        assert_eq!(status, 200);
        total += page["size"].as_u64().unwrap_or(0);
        next = page["_links"]["next"].as_str().map(str::to_owned);
    }
    let listed = t.elapsed();
    assert_eq!(total, 100_000);
    eprintln!(
        "100k users: start {started:?}, full listing {listed:?} (debug build, client included)"
    );
    // Generous bounds: tests run unoptimised on shared cores.
    assert!(started < Duration::from_secs(10), "{started:?}");
    assert!(listed < Duration::from_secs(60), "{listed:?}");
    s.stop().await;
}
