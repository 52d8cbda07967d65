//! The Atlassian Cloud simulator over HTTP: every admin endpoint idbridge uses, their error
//! bodies and headers, and a check of every captured response against Atlassian's own
//! OpenAPI files with `openapi-core` (`tests/tools/validate_atlassian_openapi.py`, run by the
//! Python in `SCIM_TOOLS_BIN`; skipped without it, except under CI).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use idbridge::sim::atlassian_cloud::{self, CloudSim, CloudSimOptions, MembershipStatus};
use reqwest::Method;
use serde_json::{Value, json};

async fn start(opts: CloudSimOptions) -> CloudSim {
    atlassian_cloud::start(opts, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("start the Cloud simulator")
}

fn small() -> CloudSimOptions {
    CloudSimOptions {
        users: 300,
        ..CloudSimOptions::default()
    }
}

/// One answered request, as the validator reads it.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Drives the simulator and records every exchange.
struct Driver {
    http: reqwest::Client,
    base: String,
    key: String,
    captured: Vec<Value>,
}

impl Driver {
    fn new(sim: &CloudSim) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            key: sim.api_key().to_owned(),
            captured: Vec::new(),
        }
    }

    async fn send_as(
        &mut self,
        name: &str,
        key: &str,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path_and_query}", self.base))
            .bearer_auth(key);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut hdrs = serde_json::Map::new();
        for (k, v) in &headers {
            if let Ok(v) = v.to_str() {
                hdrs.insert(k.as_str().to_owned(), json!(v));
            }
        }
        self.captured.push(json!({
            "name": name,
            "method": method.as_str(),
            "path": path,
            "query": query,
            "status": status,
            "headers": hdrs,
            "body": text,
        }));
        Answer {
            status,
            headers,
            text,
        }
    }

    async fn send(
        &mut self,
        name: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let key = self.key.clone();
        self.send_as(name, &key, method, path, body).await
    }
}

/// The Python that has openapi-core, or `None` (skip) outside CI.
fn validator_python() -> Option<PathBuf> {
    match std::env::var("SCIM_TOOLS_BIN") {
        Ok(dir) if !dir.trim().is_empty() => Some(PathBuf::from(dir).join("python")),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "SCIM_TOOLS_BIN is not set: under CI the OpenAPI validation may not be skipped"
            );
            eprintln!("skipped: SCIM_TOOLS_BIN is not set (run .ci/test to install openapi-core)");
            None
        }
    }
}

fn spec_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for candidate in [
        root.join("../shared/specs/atlassian"),
        root.join("shared/specs/atlassian"),
        PathBuf::from("/work/shared/specs/atlassian"),
    ] {
        if candidate.join("wire-samples.json").exists() {
            return candidate;
        }
    }
    panic!("the Atlassian OpenAPI files (shared/specs/atlassian) are not beside the repository");
}

/// Runs the validator on `exchanges`; returns (success, output).
fn validate(python: &PathBuf, exchanges: &[Value]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("exchanges.json");
    std::fs::write(&file, serde_json::to_vec_pretty(exchanges).unwrap()).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tools/validate_atlassian_openapi.py");
    let out = Command::new(python)
        .arg(script)
        .arg(spec_dir())
        .arg(&file)
        .output()
        .expect("run the OpenAPI validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn local_and_idp(sim: &CloudSim) -> (String, String) {
    let d = sim.directories();
    (d[0].id.clone(), d[1].id.clone())
}

/// A local, active, licensed, non-admin user that is not suspended.
fn plain_user(sim: &CloudSim) -> String {
    sim.users()
        .into_iter()
        .find(|u| {
            !u.synced
                && !u.admin
                && u.membership_status == MembershipStatus::Active
                && u.account_status == atlassian_cloud::AccountStatus::Active
                && u.email.ends_with("@example.com")
                && sim.is_billable(&u.account_id)
        })
        .expect("a plain user")
        .account_id
}

fn synced_user(sim: &CloudSim) -> String {
    sim.users()
        .into_iter()
        .find(|u| u.synced)
        .expect("a synced user")
        .account_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_of_every_endpoint_validates_against_atlassians_openapi_files() {
    let sim = start(small()).await;
    let org = sim.org_id();
    let (local, idp) = local_and_idp(&sim);
    let user = plain_user(&sim);
    let synced = synced_user(&sim);
    let engineering = sim.group_by_name("engineering").unwrap().id;
    let okta_group = sim.group_by_name("okta-all-staff").unwrap().id;
    let v2 = format!("/admin/v2/orgs/{org}/directories");
    let v1 = format!("/admin/v1/orgs/{org}");
    let mut d = Driver::new(&sim);

    // v2 reads
    d.send("directories", Method::GET, &v2, None).await;
    let first = d
        .send(
            "users GET",
            Method::GET,
            &format!("{v2}/-/users?limit=50"),
            None,
        )
        .await;
    let next = first.json()["links"]["next"].as_str().unwrap().to_owned();
    d.send(
        "users GET next",
        Method::GET,
        &format!("{v2}/-/users?cursor={next}"),
        None,
    )
    .await;
    let search = json!({"limit": 20, "expand": ["productAccess", "groups"], "status": ["active", "suspended"]});
    d.send(
        "users search",
        Method::POST,
        &format!("{v2}/{local}/users/search"),
        Some(search),
    )
    .await;
    d.send(
        "users count",
        Method::GET,
        &format!("{v2}/{idp}/users/count"),
        None,
    )
    .await;
    d.send(
        "user detail",
        Method::GET,
        &format!("{v2}/-/users/{user}"),
        None,
    )
    .await;
    d.send("groups GET", Method::GET, &format!("{v2}/-/groups"), None)
        .await;
    d.send(
        "groups search",
        Method::POST,
        &format!("{v2}/-/groups/search"),
        Some(json!({"searchTerm": "okta"})),
    )
    .await;
    d.send(
        "group detail",
        Method::GET,
        &format!("{v2}/{local}/groups/{engineering}"),
        None,
    )
    .await;
    // v2 writes
    d.send(
        "suspend",
        Method::POST,
        &format!("{v2}/{local}/users/{user}/suspend"),
        None,
    )
    .await;
    d.send(
        "restore",
        Method::POST,
        &format!("{v2}/{local}/users/{user}/restore"),
        None,
    )
    .await;
    let member = sim
        .user_group_names(&user)
        .contains(&"engineering".to_owned());
    if member {
        d.send(
            "remove membership",
            Method::DELETE,
            &format!("{v2}/{local}/groups/{engineering}/memberships/{user}"),
            None,
        )
        .await;
    }
    d.send(
        "add membership",
        Method::POST,
        &format!("{v2}/{local}/groups/{engineering}/memberships"),
        Some(json!({"accountId": user})),
    )
    .await;
    // v2 errors
    d.send(
        "v2 synced user suspend",
        Method::POST,
        &format!("{v2}/{idp}/users/{synced}/suspend"),
        None,
    )
    .await;
    d.send(
        "v2 synced group membership",
        Method::POST,
        &format!("{v2}/{idp}/groups/{okta_group}/memberships"),
        Some(json!({"accountId": synced})),
    )
    .await;
    d.send(
        "v2 unknown user",
        Method::GET,
        &format!("{v2}/-/users/nobody"),
        None,
    )
    .await;
    d.send(
        "v2 bad cursor",
        Method::GET,
        &format!("{v2}/-/users?cursor=forged"),
        None,
    )
    .await;
    d.send_as("v2 bad key", "wrong", Method::GET, &v2, None)
        .await;
    // v1
    d.send("orgs", Method::GET, "/admin/v1/orgs", None).await;
    d.send("org", Method::GET, &v1, None).await;
    let page = d
        .send("v1 users", Method::GET, &format!("{v1}/users"), None)
        .await;
    let next = page.json()["links"]["next"].as_str().unwrap().to_owned();
    d.send("v1 users next", Method::GET, &next, None).await;
    d.send(
        "last-active-dates",
        Method::GET,
        &format!("{v1}/directory/users/{user}/last-active-dates"),
        None,
    )
    .await;
    d.send(
        "suspend-access",
        Method::POST,
        &format!("{v1}/directory/users/{user}/suspend-access"),
        None,
    )
    .await;
    d.send(
        "restore-access",
        Method::POST,
        &format!("{v1}/directory/users/{user}/restore-access"),
        None,
    )
    .await;
    d.send(
        "v1 remove membership",
        Method::DELETE,
        &format!("{v1}/directory/groups/{engineering}/memberships/{user}"),
        None,
    )
    .await;
    d.send(
        "v1 add membership",
        Method::POST,
        &format!("{v1}/directory/groups/{engineering}/memberships"),
        Some(json!({"account_id": user})),
    )
    .await;
    d.send(
        "v1 synced group",
        Method::POST,
        &format!("{v1}/directory/groups/{okta_group}/memberships"),
        Some(json!({"account_id": synced})),
    )
    .await;
    d.send(
        "v1 unknown user",
        Method::POST,
        &format!("{v1}/directory/users/nobody/suspend-access"),
        None,
    )
    .await;
    d.send(
        "v1 unknown group",
        Method::POST,
        &format!("{v1}/directory/groups/nogroup/memberships"),
        Some(json!({"account_id": user})),
    )
    .await;
    d.send_as(
        "v1 bad key",
        "wrong",
        Method::GET,
        &format!("{v1}/users"),
        None,
    )
    .await;
    d.send(
        "v1 bad cursor",
        Method::GET,
        &format!("{v1}/users?cursor=forged"),
        None,
    )
    .await;
    // user management
    d.send(
        "manage",
        Method::GET,
        &format!("/users/{user}/manage"),
        None,
    )
    .await;
    d.send(
        "manage synced",
        Method::GET,
        &format!("/users/{synced}/manage"),
        None,
    )
    .await;
    d.send(
        "lifecycle disable",
        Method::POST,
        &format!("/users/{user}/manage/lifecycle/disable"),
        Some(json!({"message": "Left the company"})),
    )
    .await;
    d.send(
        "lifecycle enable",
        Method::POST,
        &format!("/users/{user}/manage/lifecycle/enable"),
        None,
    )
    .await;
    d.send(
        "lifecycle synced",
        Method::POST,
        &format!("/users/{synced}/manage/lifecycle/disable"),
        Some(json!({})),
    )
    .await;
    d.send(
        "lifecycle unknown",
        Method::POST,
        "/users/nobody/manage/lifecycle/enable",
        None,
    )
    .await;
    d.send_as(
        "manage bad key",
        "wrong",
        Method::GET,
        &format!("/users/{user}/manage"),
        None,
    )
    .await;
    let scoped = sim.scoped_key().to_owned();
    d.send_as(
        "manage scoped key",
        &scoped,
        Method::GET,
        &format!("/users/{user}/manage"),
        None,
    )
    .await;
    // 429 on v1 (documented there) and v2
    sim.set_rate_limit_per_minute(Some(1));
    d.send("v1 within limit", Method::GET, &format!("{v1}/users"), None)
        .await;
    let limited = d
        .send(
            "v1 rate limited",
            Method::GET,
            &format!("{v1}/directory/users/{user}/last-active-dates"),
            None,
        )
        .await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    d.send("v2 rate limited", Method::GET, &v2, None).await;
    sim.set_rate_limit_per_minute(None);

    let statuses: Vec<u64> = d
        .captured
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    for expected in [200, 204, 400, 401, 403, 404, 429] {
        assert!(
            statuses.contains(&expected),
            "no {expected} captured: {statuses:?}"
        );
    }

    // Negative controls: wrong bodies the validator must reject.
    let mut controls = d.captured.clone();
    let mutate = |name: &str, f: &dyn Fn(&mut Value)| -> Value {
        let mut e = d
            .captured
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone();
        f(&mut e);
        e["name"] = json!(format!("negative control: {name}"));
        e["expect"] = json!("invalid");
        e
    };
    let rebody = |e: &mut Value, f: &dyn Fn(&mut Value)| {
        let mut body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
        f(&mut body);
        e["body"] = json!(body.to_string());
    };
    controls.push(mutate("users search", &|e| {
        rebody(e, &|b| b["data"][0]["accountStatus"] = json!("sleeping"))
    }));
    controls.push(mutate("v1 users", &|e| {
        rebody(e, &|b| {
            b["data"][0].as_object_mut().unwrap().remove("account_id");
        })
    }));
    controls.push(mutate("last-active-dates", &|e| {
        rebody(e, &|b| b["links"]["next"] = Value::Null)
    }));
    controls.push(mutate("suspend-access", &|e| {
        rebody(e, &|b| b["message"] = json!(42))
    }));
    controls.push(mutate("manage bad key", &|e| {
        e["body"] = json!(r#"{"code":401,"message":"Unauthorized"}"#)
    }));
    controls.push(mutate("v2 unknown user", &|e| {
        rebody(e, &|b| b["errors"][0]["status"] = json!(404))
    }));
    controls.push(mutate("suspend", &|e| e["status"] = json!(201)));

    let Some(python) = validator_python() else {
        return;
    };
    let (ok, out) = validate(&python, &controls);
    assert!(ok, "OpenAPI validation failed:\n{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("ok   negative control"))
            .count(),
        7,
        "{out}"
    );
    // And a control that is marked valid but is not must fail the run.
    let mut wrong = controls.last().unwrap().clone();
    wrong["expect"] = json!("valid");
    let (ok, out) = validate(&python, &[wrong]);
    assert!(!ok, "a wrong exchange passed the validator:\n{out}");
    assert!(out.contains("1 failed"), "{out}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_gets_401_and_a_scoped_key_403_on_user_management() {
    let sim = start(small()).await;
    let org = sim.org_id();
    let user = plain_user(&sim);
    let mut d = Driver::new(&sim);
    let a = d
        .send_as(
            "bad",
            "not-the-key",
            Method::GET,
            &format!("/admin/v2/orgs/{org}/directories"),
            None,
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json(), json!({"code": 401, "message": "Unauthorized"}));
    let scoped = sim.scoped_key().to_owned();
    let ok = d
        .send_as(
            "scoped org",
            &scoped,
            Method::GET,
            &format!("/admin/v2/orgs/{org}/directories"),
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "scoped keys work on the org API");
    let refused = d
        .send_as(
            "scoped manage",
            &scoped,
            Method::POST,
            &format!("/users/{user}/manage/lifecycle/disable"),
            Some(json!({})),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["key"], "forbidden");
    assert_eq!(
        sim.user(&user).unwrap().account_status,
        atlassian_cloud::AccountStatus::Active
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_users_and_groups_are_read_only_and_unknown_ones_are_404_with_admin_codes() {
    let sim = start(small()).await;
    let org = sim.org_id();
    let (local, idp) = local_and_idp(&sim);
    let synced = synced_user(&sim);
    let okta = sim.group_by_name("okta-engineering").unwrap().id;
    let engineering = sim.group_by_name("engineering").unwrap().id;
    let v2 = format!("/admin/v2/orgs/{org}/directories");
    let mut d = Driver::new(&sim);
    let a = d
        .send(
            "",
            Method::POST,
            &format!("{v2}/{idp}/users/{synced}/suspend"),
            None,
        )
        .await;
    assert_eq!((a.status, a.code().as_str()), (403, "ADMIN-UAM-403-1"));
    assert_eq!(
        sim.user(&synced).unwrap().membership_status,
        MembershipStatus::Active
    );
    let g = d
        .send(
            "",
            Method::DELETE,
            &format!("{v2}/{idp}/groups/{okta}/memberships/{synced}"),
            None,
        )
        .await;
    assert_eq!((g.status, g.code().as_str()), (403, "ADMIN-403-5"));
    let body = g.json();
    let err = &body["errors"][0];
    for field in ["id", "status", "code", "title", "detail"] {
        assert!(err[field].is_string(), "{field} missing: {body}");
    }
    let u = d
        .send("", Method::GET, &format!("{v2}/-/users/no-such-user"), None)
        .await;
    assert_eq!((u.status, u.code().as_str()), (404, "ADMIN-404-8"));
    let gr = d
        .send(
            "",
            Method::POST,
            &format!("{v2}/{local}/groups/no-such-group/memberships"),
            Some(json!({"accountId": synced})),
        )
        .await;
    assert_eq!((gr.status, gr.code().as_str()), (404, "ADMIN-404-10"));
    let o = d
        .send(
            "",
            Method::GET,
            &format!("/admin/v2/orgs/other-org/directories/{local}/groups/{engineering}"),
            None,
        )
        .await;
    assert_eq!((o.status, o.code().as_str()), (404, "ADMIN-404-2"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_expired_cursor_is_400_admin_400_1_and_cursors_hold_their_filters() {
    let sim = start(small()).await;
    let org = sim.org_id();
    let v2 = format!("/admin/v2/orgs/{org}/directories/-/users");
    let mut d = Driver::new(&sim);
    let forged = d
        .send("", Method::GET, &format!("{v2}?cursor=AAAA"), None)
        .await;
    assert_eq!(
        (forged.status, forged.code().as_str()),
        (400, "ADMIN-400-1")
    );
    let first = d
        .send(
            "",
            Method::POST,
            &format!("{v2}/search"),
            Some(json!({"limit": 5, "status": ["suspended"]})),
        )
        .await
        .json();
    let next = first["links"]["next"].as_str().unwrap().to_owned();
    // Filters in a request with a cursor are ignored: the cursor's own apply.
    let second = d
        .send(
            "",
            Method::POST,
            &format!("{v2}/search"),
            Some(json!({"cursor": next, "status": ["active"]})),
        )
        .await
        .json();
    for u in second["data"].as_array().unwrap() {
        assert_eq!(u["status"], "suspended", "{u}");
    }
    sim.expire_cursors();
    let expired = d
        .send(
            "",
            Method::POST,
            &format!("{v2}/search"),
            Some(json!({"cursor": next})),
        )
        .await;
    assert_eq!(
        (expired.status, expired.code().as_str()),
        (400, "ADMIN-400-1")
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_with_ratelimit_headers_and_retry_after() {
    let sim = start(CloudSimOptions {
        rate_limit_per_minute: Some(3),
        ..small()
    })
    .await;
    let org = sim.org_id();
    let mut d = Driver::new(&sim);
    let path = format!("/admin/v2/orgs/{org}/directories");
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(d.send("", Method::GET, &path, None).await);
    }
    assert!(answers[..3].iter().all(|a| a.status == 200));
    assert_eq!(answers[0].header("x-ratelimit-limit"), Some("3"));
    let limited = &answers[3];
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.json(),
        json!({"code": 429, "message": "Too many requests"})
    );
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    let reset = limited.header("x-ratelimit-reset").expect("reset header");
    let reset = chrono::DateTime::parse_from_rfc3339(reset).expect("ISO-8601 reset");
    assert!(reset > chrono::Utc::now());
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_population_and_another_seed_another() {
    let a = start(small()).await;
    let b = start(small()).await;
    let c = start(CloudSimOptions { seed: 7, ..small() }).await;
    assert_eq!(a.users(), b.users());
    assert_eq!(a.groups(), b.groups());
    assert_eq!(a.org_id(), b.org_id());
    assert_ne!(a.users()[0].account_id, c.users()[0].account_id);
    let users = a.users();
    let long_inactive = users
        .iter()
        .filter(|u| {
            u.last_active
                .is_some_and(|t| chrono::Utc::now() - t > chrono::Duration::days(180))
        })
        .count();
    let never = users.iter().filter(|u| u.last_active.is_none()).count();
    let suspended = users
        .iter()
        .filter(|u| u.membership_status == MembershipStatus::Suspended)
        .count();
    let contractors = users
        .iter()
        .filter(|u| u.email.ends_with("@contractors.example.net"))
        .count();
    let admins = users.iter().filter(|u| u.admin).count();
    let synced = users.iter().filter(|u| u.synced).count();
    for (what, n) in [
        ("long inactive", long_inactive),
        ("never active", never),
        ("suspended", suspended),
        ("contractors", contractors),
        ("admins", admins),
        ("synced", synced),
    ] {
        assert!(n > 0, "no {what} users in the population");
    }
    for s in [a, b, c] {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_users_keep_their_groups_and_free_their_seat() {
    let sim = start(small()).await;
    let org = sim.org_id();
    let user = plain_user(&sim);
    let groups = sim.user_group_names(&user);
    let seats_before = sim.billable_count();
    let mut d = Driver::new(&sim);
    let a = d
        .send(
            "",
            Method::POST,
            &format!("/admin/v2/orgs/{org}/directories/-/users/{user}/suspend"),
            None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(sim.user_group_names(&user), groups);
    assert!(!sim.is_billable(&user));
    assert_eq!(sim.billable_count(), seats_before - 1);
    let detail = d
        .send(
            "",
            Method::GET,
            &format!("/admin/v2/orgs/{org}/directories/-/users/{user}"),
            None,
        )
        .await
        .json();
    assert_eq!(detail["data"]["status"], "suspended");
    assert_eq!(detail["data"]["membershipStatus"], "suspended");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_without_a_free_seat_fails_with_admin_uam_409_3() {
    let sim = start(small()).await;
    let org = sim.org_id();
    let user = plain_user(&sim);
    let mut d = Driver::new(&sim);
    let base = format!("/admin/v2/orgs/{org}/directories/-/users/{user}");
    assert_eq!(
        d.send("", Method::POST, &format!("{base}/suspend"), None)
            .await
            .status,
        204
    );
    // Through the control API: every seat is taken now.
    let used = sim.billable_count();
    let r = reqwest::Client::new()
        .post(format!("{}/__sim/seats", sim.base_url()))
        .json(&json!({"seats": used}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let refused = d
        .send("", Method::POST, &format!("{base}/restore"), None)
        .await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (409, "ADMIN-UAM-409-3"),
        "{}",
        refused.text
    );
    assert_eq!(
        sim.user(&user).unwrap().membership_status,
        MembershipStatus::Suspended
    );
    sim.set_seats(Some(used + 1));
    assert_eq!(
        d.send("", Method::POST, &format!("{base}/restore"), None)
            .await
            .status,
        204
    );
    assert!(sim.is_billable(&user));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_records_visits_changes_users_and_summarises_state() {
    let sim = start(small()).await;
    let org = sim.org_id();
    let user = plain_user(&sim);
    let http = reqwest::Client::new();
    let at = "2030-01-02T03:04:05Z";
    let r = http
        .post(format!("{}/__sim/activity", sim.base_url()))
        .json(&json!({"accountId": user, "at": at}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .post(format!("{}/__sim/users/{user}", sim.base_url()))
        .json(&json!({"managementSource": "synced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut d = Driver::new(&sim);
    let detail = d
        .send(
            "",
            Method::GET,
            &format!("/admin/v2/orgs/{org}/directories/-/users/{user}"),
            None,
        )
        .await
        .json();
    assert_eq!(
        detail["data"]["productAccess"][0]["lastActiveTimestamp"],
        "2030-01-02T03:04:05.000Z"
    );
    assert_eq!(detail["data"]["managementSource"], "synced");
    let state: Value = http
        .get(format!("{}/__sim/state", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["users"]["total"], 300);
    assert_eq!(state["orgId"], json!(org));
    // The shared control routes still answer beside these.
    let log = http
        .get(format!("{}/__sim/requests", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), 200);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_100000_users_in_pages_is_fast() {
    let started = Instant::now();
    let sim = start(CloudSimOptions {
        users: 100_000,
        ..CloudSimOptions::default()
    })
    .await;
    let org = sim.org_id();
    let built = started.elapsed();
    let http = reqwest::Client::new();
    let url = format!(
        "{}/admin/v2/orgs/{org}/directories/-/users/search",
        sim.base_url()
    );
    let listing = Instant::now();
    let mut cursor: Option<String> = None;
    let mut seen = 0usize;
    loop {
        let mut body = json!({"limit": 1000, "expand": ["productAccess", "groups"]});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let page: Value = http
            .post(&url)
            .bearer_auth(sim.api_key())
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen += page["data"].as_array().unwrap().len();
        match page["links"]["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 100_000);
    let took = listing.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "listing 100,000 users took {took:?} (population built in {built:?})"
    );
    sim.stop().await;
}
