//! Wire tests: a tiny axum server under a `/confluence` context path answers with the wire
//! samples of `shared/specs/atlassian/wire-samples.json` (and the spec's shapes), and the
//! connector's answers are checked, together with the requests it made.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body as AxBody;
use axum::extract::Request;
use axum::response::Response as AxResponse;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::ConfluenceDc;
use crate::config::TargetConfig;
use crate::targets::{
    AccountRef, Capability, GroupRef, LastLoginSource, Member, NewRemoteAccount, Support, Target,
    TargetError, WriteOutcome,
};

const CTX: &str = "/confluence";

/// One request as the server saw it (path without the context path).
#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    query: String,
    body: String,
    auth: String,
}

impl Req {
    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }

    fn param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply_json(status: u16, v: Value) -> Reply {
    Reply {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: v.to_string(),
    }
}

fn reply_raw(status: u16, content_type: &str, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![("content-type", content_type.to_owned())],
        body: body.to_owned(),
    }
}

fn empty(status: u16) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: String::new(),
    }
}

fn not_found(message: &str) -> Reply {
    reply_json(
        404,
        json!({"statusCode":404,"data":{"authorized":false,"valid":true,"allowedInReadOnlyMode":true,"errors":[],"successful":false},"message":message,"reason":"Not Found"}),
    )
}

struct Server {
    base: String,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.is(method, path))
            .count()
    }
}

async fn serve(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let app = axum::Router::new().fallback({
        let log = log.clone();
        move |req: Request| {
            let log = log.clone();
            let handler = handler.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let full = parts.uri.path().to_owned();
                let r = Req {
                    method: parts.method.to_string(),
                    path: full.strip_prefix(CTX).unwrap_or(&full).to_owned(),
                    query: parts.uri.query().unwrap_or("").to_owned(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    auth: parts
                        .headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned(),
                };
                let reply = if full.starts_with(CTX) {
                    handler(&r)
                } else {
                    reply_raw(
                        404,
                        "text/html",
                        "<html><title>outside the context path</title></html>",
                    )
                };
                log.lock().unwrap().push(r);
                let mut b = AxResponse::builder().status(reply.status);
                for (k, v) in &reply.headers {
                    b = b.header(*k, v);
                }
                b.body(AxBody::from(reply.body)).unwrap()
            }
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        base: format!("http://{addr}{CTX}"),
        log,
    }
}

/// The probe's two calls, answered for `version`.
fn probe_routes(r: &Req, version: &str) -> Option<Reply> {
    if r.is("GET", "/rest/api/user/current") {
        return Some(reply_json(
            200,
            json!({"type":"known","username":"admin","userKey":"k-admin","displayName":"Admin"}),
        ));
    }
    if r.is("GET", "/rest/applinks/1.0/manifest") {
        return Some(reply_json(
            200,
            json!({"id":"x","name":"Confluence","typeId":"confluence","version":version,"buildNumber":9012,"applinksVersion":"9.0.0"}),
        ));
    }
    None
}

fn user(name: &str, key: &str, status: &str) -> Value {
    json!({"type":"known","username":name,"userKey":key,"displayName":name,"status":status})
}

fn cfg(base: &str, extra: &str) -> TargetConfig {
    toml::from_str(&format!(
        "kind = \"confluence_dc\"\nbase_url = \"{base}\"\n{extra}"
    ))
    .unwrap()
}

fn pat(base: &str, extra: &str) -> TargetConfig {
    cfg(
        base,
        &format!("token = \"pat-secret\"\nremote_api = \"off\"\n{extra}"),
    )
}

fn connector(c: &TargetConfig) -> ConfluenceDc {
    ConfluenceDc::new("wiki", c)
        .unwrap()
        .with_poll_interval(Duration::from_millis(10))
}

fn bob() -> AccountRef {
    AccountRef {
        key: "8a7f808a6f1b2c3d016f1b2c3d4e0001".into(),
        username: "bob".into(),
    }
}

/// `GET /rest/api/user?key=…` answering bob with `status`.
fn bob_route(r: &Req, status: &str) -> Option<Reply> {
    (r.is("GET", "/rest/api/user")
        && r.param("key").as_deref() == Some("8a7f808a6f1b2c3d016f1b2c3d4e0001"))
    .then(|| {
        reply_json(
            200,
            json!({"type":"known","username":"bob","userKey":"8a7f808a6f1b2c3d016f1b2c3d4e0001","displayName":"Bob Builder","status":status,"_links":{"base":"https://conf.example.com","context":""},"_expandable":{}}),
        )
    })
}

#[tokio::test]
async fn a_probe_of_9_3_reads_the_manifest_version_and_reports_the_9_3_capabilities() {
    let server = serve(|r| probe_routes(r, "9.3.2").unwrap_or_else(|| not_found("no"))).await;
    let dc = connector(&pat(&server.base, ""));
    let probe = dc.probe().await.unwrap();
    assert_eq!(probe.info.version.as_deref(), Some("9.3.2"));
    assert_eq!(probe.info.principal.as_deref(), Some("admin"));
    assert_eq!(probe.info.product, "Confluence Data Center");
    assert_eq!(probe.info.last_login, LastLoginSource::IdentityProviders);
    let caps = &probe.capabilities;
    assert_eq!(
        caps.get(Capability::ListAccounts),
        Support::via("REST GET /rest/api/user/list")
    );
    assert!(caps.get(Capability::NestedGroups).is_supported());
    assert!(!caps.get(Capability::Rename).is_supported());
    assert!(!caps.get(Capability::ChangeDirectory).is_supported());
    let reqs = server.requests();
    assert!(
        reqs.iter().all(|r| r.auth == "Bearer pat-secret"),
        "{reqs:?}"
    );
    // Cached: writes do not probe again.
    let before = server.count("GET", "/rest/api/user/current");
    let _ = dc.list_groups(None).await;
    assert_eq!(server.count("GET", "/rest/api/user/current"), before);
}

#[tokio::test]
async fn anonymous_answers_from_the_current_user_endpoint_are_a_credential_failure() {
    let server = serve(|r| {
        if r.is("GET", "/rest/api/user/current") {
            reply_json(200, json!({"type":"anonymous","displayName":"Anonymous"}))
        } else {
            probe_routes(r, "9.3.2").unwrap_or_else(|| not_found("no"))
        }
    })
    .await;
    let err = connector(&pat(&server.base, "")).probe().await.unwrap_err();
    assert!(
        matches!(&err, TargetError::Unauthorized { detail } if detail.contains("anonymous")),
        "{err}"
    );
}

#[tokio::test]
async fn without_a_manifest_the_configured_version_is_used_and_without_either_the_probe_says_so() {
    let server = serve(|r| {
        if r.is("GET", "/rest/applinks/1.0/manifest") {
            reply_raw(
                404,
                "text/html",
                "<html><title>Page Not Found</title></html>",
            )
        } else {
            probe_routes(r, "0").unwrap_or_else(|| not_found("no"))
        }
    })
    .await;
    let probe = connector(&pat(&server.base, "version = \"8.1.2\""))
        .probe()
        .await
        .unwrap();
    assert_eq!(probe.info.version.as_deref(), Some("8.1.2"));
    assert!(
        probe
            .info
            .notes
            .iter()
            .any(|n| n.contains("from configuration"))
    );
    assert!(
        probe
            .capabilities
            .get(Capability::Disable)
            .to_owned()
            .eq(&Support::not(
                "needs Confluence 8.2+ (REST PUT /rest/api/admin/user/{user}/disable), and the \
                 Remote API fallback is switched off (remote_api = \"off\")"
            ))
    );
    let err = connector(&pat(&server.base, "")).probe().await.unwrap_err();
    assert!(
        matches!(&err, TargetError::Config(m) if m.contains("set `version`")),
        "{err}"
    );
}

#[tokio::test]
async fn a_base_url_that_answers_as_another_product_is_refused() {
    let server = serve(|r| {
        if r.is("GET", "/rest/applinks/1.0/manifest") {
            reply_json(200, json!({"typeId":"jira","version":"9.12.0"}))
        } else {
            probe_routes(r, "0").unwrap_or_else(|| not_found("no"))
        }
    })
    .await;
    let err = connector(&pat(&server.base, "")).probe().await.unwrap_err();
    assert!(
        matches!(&err, TargetError::Config(m) if m.contains("`jira`")),
        "{err}"
    );
}

#[tokio::test]
async fn listing_follows_a_relative_next_link_under_the_context_path_and_keeps_expand_status() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "8.4.0") {
            return p;
        }
        if r.is("GET", "/rest/api/user/list") {
            let base = "https://conf.example.com";
            return match r.param("start").as_deref() {
                Some("0") | None => reply_json(
                    200,
                    // dc-list-users-page, verbatim.
                    json!({"results":[{"type":"known","username":"alice","userKey":"k1","displayName":"Alice","status":"current"},{"type":"known","username":"bob","userKey":"k2","displayName":"Bob","status":"deactivated"}],"start":0,"limit":2,"size":2,"_links":{"base":base,"context":"","self":"https://conf.example.com/rest/api/user/list?limit=2&start=0","next":"/rest/api/user/list?limit=2&start=2"}}),
                ),
                Some("2") => reply_json(
                    200,
                    json!({"results":[user("carol","k3","UNLICENSED"), user("dave", "k4", "externally_deleted")],"start":2,"limit":2,"size":2,"_links":{"context":""}}),
                ),
                _ => not_found("no page"),
            };
        }
        not_found("no")
    })
    .await;
    let dc = connector(&pat(&server.base, "page_size = 2"));
    let first = dc.list_accounts(None).await.unwrap();
    let names: Vec<(&str, bool)> = first
        .items
        .iter()
        .map(|a| (a.username.as_str(), a.active))
        .collect();
    assert_eq!(names, vec![("alice", true), ("bob", false)]);
    assert_eq!(first.items[1].raw_status, "deactivated");
    let next = first.next.clone().expect("a next page");
    let second = dc.list_accounts(Some(&next)).await.unwrap();
    let names: Vec<(&str, bool, Option<bool>)> = second
        .items
        .iter()
        .map(|a| (a.username.as_str(), a.active, a.licensed))
        .collect();
    assert_eq!(
        names,
        vec![("carol", true, Some(false)), ("dave", false, Some(false))]
    );
    assert_eq!(second.next, None);
    let lists: Vec<Req> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/rest/api/user/list")
        .collect();
    assert_eq!(lists.len(), 2);
    for r in &lists {
        assert_eq!(r.param("expand").as_deref(), Some("status"), "{r:?}");
    }
    assert_eq!(lists[1].param("start").as_deref(), Some("2"));
    // A cursor of another listing is refused.
    assert!(dc.list_accounts(Some("g:2")).await.is_err());
}

#[tokio::test]
async fn a_rate_limited_page_is_waited_out_and_then_read() {
    let hits = Arc::new(AtomicUsize::new(0));
    let server = serve({
        let hits = hits.clone();
        move |r| {
            if let Some(p) = probe_routes(r, "8.4.0") {
                return p;
            }
            if r.is("GET", "/rest/api/group") {
                if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                    // dc-rate-limited
                    return Reply {
                        status: 429,
                        headers: vec![
                            ("X-RateLimit-Limit", "20".into()),
                            ("X-RateLimit-Remaining", "0".into()),
                            ("X-RateLimit-Interval-Seconds", "1".into()),
                            ("X-RateLimit-FillRate", "5".into()),
                            ("Retry-After", "1".into()),
                        ],
                        body: String::new(),
                    };
                }
                return reply_json(
                    200,
                    json!({"results":[{"type":"group","name":"confluence-users"}],"start":0,"limit":200,"size":1,"_links":{"base":"x"}}),
                );
            }
            not_found("no")
        }
    })
    .await;
    let dc = connector(&pat(&server.base, ""));
    let started = std::time::Instant::now();
    let page = dc.list_groups(None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(page.items[0].name, "confluence-users");
    assert_eq!(page.next, None);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_html_login_page_or_a_truncated_body_is_an_unexpected_body_with_a_clear_detail() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "8.4.0") {
            return p;
        }
        if r.is("GET", "/rest/api/user/list") {
            return reply_raw(
                200,
                "text/html;charset=UTF-8",
                "<!DOCTYPE html><html><head><title>Log in - Confluence</title></head><body/></html>",
            );
        }
        if r.is("GET", "/rest/api/group") {
            return reply_raw(200, "application/json", r#"{"results":[{"type":"group","na"#);
        }
        not_found("no")
    })
    .await;
    let dc = connector(&pat(&server.base, ""));
    let err = dc.list_accounts(None).await.unwrap_err();
    assert!(
        matches!(&err, TargetError::UnexpectedBody { status: 200, detail } if detail.contains("HTML page") && detail.contains("Log in - Confluence")),
        "{err}"
    );
    let err = dc.list_groups(None).await.unwrap_err();
    assert!(
        matches!(&err, TargetError::UnexpectedBody { detail, .. } if detail.contains("truncated")),
        "{err}"
    );
}

/// A DC 9.3 that deletes bob through a long task finishing on the `finish_after`-th poll,
/// successfully or not.
async fn deleting_server(finish_after: usize, success: bool) -> Server {
    let polls = Arc::new(AtomicUsize::new(0));
    serve(move |r| {
        if let Some(p) = probe_routes(r, "9.3.2") {
            return p;
        }
        if let Some(p) = bob_route(r, "deactivated") {
            return p;
        }
        if r.is("DELETE", "/rest/api/admin/user/bob") {
            // dc-delete-user-async: links.status lacks the context path.
            return reply_json(
                202,
                json!({"id":"task-123","links":{"status":"/rest/api/longtask/task-123"}}),
            );
        }
        if r.is("GET", "/rest/api/longtask/task-123") {
            let n = polls.fetch_add(1, Ordering::SeqCst) + 1;
            if n < finish_after {
                return reply_json(
                    200,
                    json!({"id":"task-123","name":{"key":"com.atlassian.confluence.user.delete.task.name","args":["bob"]},"elapsedTime":420,"percentageComplete":40,"successful":false,"messages":[]}),
                );
            }
            return if success {
                reply_json(
                    200,
                    json!({"id":"task-123","elapsedTime":1530,"percentageComplete":100,"successful":true,"finished":true,"messages":[{"translation":"User bob deleted","args":[]}]}),
                )
            } else {
                reply_json(
                    200,
                    json!({"id":"task-123","elapsedTime":1530,"percentageComplete":100,"successful":false,"messages":[{"translation":"Could not remove bob: content in a locked space","args":[]}]}),
                )
            };
        }
        not_found("no")
    })
    .await
}

#[tokio::test]
async fn an_asynchronous_delete_polls_the_long_task_built_from_its_id_until_it_finishes() {
    let server = deleting_server(3, true).await;
    let dc = connector(&pat(&server.base, ""));
    assert_eq!(dc.delete(&bob()).await.unwrap(), WriteOutcome::Changed);
    assert_eq!(server.count("DELETE", "/rest/api/admin/user/bob"), 1);
    assert_eq!(server.count("GET", "/rest/api/longtask/task-123"), 3);
    // Every request stayed under the context path (links.status was not trusted).
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/rest/"))
    );
}

#[tokio::test]
async fn a_failed_deletion_task_is_an_error_carrying_its_messages() {
    let server = deleting_server(2, false).await;
    let err = connector(&pat(&server.base, ""))
        .delete(&bob())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TargetError::Rejected { detail, .. } if detail.contains("content in a locked space") && detail.contains("task-123")),
        "{err}"
    );
}

#[tokio::test]
async fn a_deletion_still_running_at_the_deadline_times_out() {
    let server = deleting_server(usize::MAX, true).await;
    let err = connector(&pat(&server.base, "delete_timeout_secs = 1"))
        .delete(&bob())
        .await
        .unwrap_err();
    assert_eq!(err, TargetError::Timeout(Duration::from_secs(1)));
    assert!(server.count("GET", "/rest/api/longtask/task-123") >= 2);
}

#[tokio::test]
async fn deleting_an_account_that_is_gone_changes_nothing() {
    let server =
        serve(|r| probe_routes(r, "9.3.2").unwrap_or_else(|| not_found("No user found"))).await;
    let dc = connector(&pat(&server.base, ""));
    assert_eq!(dc.delete(&bob()).await.unwrap(), WriteOutcome::AlreadyDone);
    assert_eq!(server.count("DELETE", "/rest/api/admin/user/bob"), 0);
}

#[tokio::test]
async fn disabling_reads_first_and_writes_only_when_the_account_is_active() {
    let status = Arc::new(Mutex::new("current".to_string()));
    let server = serve({
        let status = status.clone();
        move |r| {
            if let Some(p) = probe_routes(r, "8.2.0") {
                return p;
            }
            if let Some(p) = bob_route(r, &status.lock().unwrap()) {
                return p;
            }
            if r.is("PUT", "/rest/api/admin/user/bob/disable") {
                *status.lock().unwrap() = "deactivated".into();
                return empty(204);
            }
            not_found("no")
        }
    })
    .await;
    let dc = connector(&pat(&server.base, ""));
    assert_eq!(dc.disable(&bob()).await.unwrap(), WriteOutcome::Changed);
    assert_eq!(dc.disable(&bob()).await.unwrap(), WriteOutcome::AlreadyDone);
    assert_eq!(server.count("PUT", "/rest/api/admin/user/bob/disable"), 1);
    // Enabling a deactivated account on 8.2 goes to REST too.
    let err = dc.enable(&bob()).await.unwrap_err();
    assert!(matches!(err, TargetError::NotFound { .. }), "{err}");
    assert_eq!(server.count("PUT", "/rest/api/admin/user/bob/enable"), 1);
}

#[tokio::test]
async fn a_403_naming_a_read_only_directory_says_so_and_a_bare_403_is_a_permission_problem() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "9.3.2") {
            return p;
        }
        if let Some(p) = bob_route(r, "current") {
            return p;
        }
        if r.is("PUT", "/rest/api/admin/user/bob/disable") {
            return reply_json(
                403,
                json!({"statusCode":403,"data":{"authorized":false,"valid":true,"errors":[],"successful":false},"message":"Cannot deactivate user bob: the user directory is read-only","reason":"Forbidden"}),
            );
        }
        if r.is("PUT", "/rest/api/admin/user/bob") {
            return reply_json(
                403,
                json!({"statusCode":403,"message":"Not permitted","reason":"Forbidden"}),
            );
        }
        not_found("no")
    })
    .await;
    let dc = connector(&pat(&server.base, ""));
    let err = dc.disable(&bob()).await.unwrap_err();
    assert!(
        matches!(&err, TargetError::ManagedByIdp { detail } if detail.contains("read-only")),
        "{err}"
    );
    let err = dc
        .update_profile(&bob(), "bob@example.com", "Bob B.")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TargetError::Forbidden { detail } if detail.contains("insufficient permission")),
        "{err}"
    );
}

#[tokio::test]
async fn group_membership_writes_check_membership_first() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "9.3.2") {
            return p;
        }
        if let Some(p) = bob_route(r, "current") {
            return p;
        }
        if r.is("GET", "/rest/api/user/memberof") {
            assert_eq!(
                r.param("key").as_deref(),
                Some("8a7f808a6f1b2c3d016f1b2c3d4e0001")
            );
            return reply_json(
                200,
                json!({"results":[{"type":"group","name":"confluence-users"}],"start":0,"limit":200,"size":1,"_links":{}}),
            );
        }
        if r.method == "PUT" || r.method == "DELETE" {
            return empty(204);
        }
        not_found("no")
    })
    .await;
    let dc = connector(&pat(&server.base, ""));
    let users = GroupRef::named("Confluence-Users");
    let staff = GroupRef::named("staff & co");
    assert_eq!(
        dc.add_to_group(&bob(), &users).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    assert_eq!(
        dc.add_to_group(&bob(), &staff).await.unwrap(),
        WriteOutcome::Changed
    );
    assert_eq!(
        dc.remove_from_group(&bob(), &staff).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    assert_eq!(
        dc.remove_from_group(&bob(), &users).await.unwrap(),
        WriteOutcome::Changed
    );
    let writes: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.method != "POST")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        writes,
        vec![
            "PUT /rest/api/user/bob/group/staff%20&%20co",
            "DELETE /rest/api/user/bob/group/confluence-users",
        ]
    );
}

#[tokio::test]
async fn rename_goes_through_json_rpc_with_basic_auth_when_the_probe_finds_the_remote_api() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "9.3.2") {
            return p;
        }
        if let Some(p) = bob_route(r, "deactivated") {
            return p;
        }
        if r.is("POST", "/rpc/json-rpc/confluenceservice-v2/isActiveUser") {
            return reply_json(200, json!(true));
        }
        if r.is("POST", "/rpc/json-rpc/confluenceservice-v2/renameUser") {
            // dc-jsonrpc-rename
            assert_eq!(
                serde_json::from_str::<Value>(&r.body).unwrap(),
                json!(["bob", "bob_inactive_20261121"])
            );
            return reply_json(200, json!(true));
        }
        not_found("no")
    })
    .await;
    let dc = connector(&cfg(
        &server.base,
        "username = \"svc\"\npassword = \"pw-secret\"",
    ));
    let probe = dc.probe().await.unwrap();
    assert_eq!(
        probe.capabilities.get(Capability::Rename),
        Support::via("Remote API renameUser (JSON-RPC)")
    );
    assert_eq!(
        dc.rename(&bob(), "bob_inactive_20261121").await.unwrap(),
        WriteOutcome::Changed
    );
    assert_eq!(
        dc.rename(&bob(), "BOB").await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    let rpc: Vec<Req> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/rpc/"))
        .collect();
    assert_eq!(rpc.len(), 2);
    // Basic svc:pw-secret
    assert!(
        rpc.iter().all(|r| r.auth == "Basic c3ZjOnB3LXNlY3JldA=="),
        "{rpc:?}"
    );
}

#[tokio::test]
async fn rename_falls_back_to_xml_rpc_and_a_fault_becomes_a_conflict() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "8.5.4") {
            return p;
        }
        if let Some(p) = bob_route(r, "current") {
            return p;
        }
        if r.is("POST", "/rpc/xmlrpc") {
            if r.body.contains("<methodName>confluence2.login</methodName>") {
                assert!(r.body.contains("<string>svc</string><"), "{}", r.body);
                return reply_raw(
                    200,
                    "text/xml",
                    "<?xml version=\"1.0\"?><methodResponse><params><param><value><string>TOK&amp;1</string></value></param></params></methodResponse>",
                );
            }
            if r.body.contains("<methodName>confluence2.renameUser</methodName>") {
                assert!(
                    r.body.contains("<param><value><string>TOK&amp;1</string></value></param><param><value><string>bob</string></value></param><param><value><string>bob&lt;x&gt;</string></value></param>"),
                    "{}",
                    r.body
                );
                return reply_raw(
                    200,
                    "text/xml",
                    "<?xml version=\"1.0\"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>0</int></value></member><member><name>faultString</name><value><string>com.atlassian.confluence.rpc.RemoteException: User bob&lt;x&gt; already exists</string></value></member></struct></value></fault></methodResponse>",
                );
            }
        }
        // JSON-RPC is not installed: an HTML 404.
        reply_raw(404, "text/html", "<html><title>Page not found</title></html>")
    })
    .await;
    let dc = connector(&cfg(
        &server.base,
        "username = \"svc\"\npassword = \"pw-secret\"",
    ));
    let probe = dc.probe().await.unwrap();
    assert_eq!(
        probe.capabilities.get(Capability::Rename),
        Support::via("Remote API renameUser (XML-RPC)")
    );
    let err = dc.rename(&bob(), "bob<x>").await.unwrap_err();
    assert!(
        matches!(&err, TargetError::Conflict { detail } if detail.contains("already exists")),
        "{err}"
    );
    // Logged in once, at the probe.
    let logins = server
        .requests()
        .iter()
        .filter(|r| r.body.contains("confluence2.login"))
        .count();
    assert_eq!(logins, 1);
}

#[tokio::test]
async fn rename_goes_to_crowd_with_the_application_credentials_for_users_crowd_holds() {
    let crowd = serve(|r| {
        if r.is("GET", "/rest/usermanagement/1/user") {
            return match r.param("username").as_deref() {
                Some("bob") => reply_json(
                    200,
                    json!({"name":"bob","display-name":"Bob Builder","active":true}),
                ),
                _ => reply_json(
                    404,
                    json!({"reason":"USER_NOT_FOUND","message":"User <x> does not exist"}),
                ),
            };
        }
        if r.is("POST", "/rest/usermanagement/1/user/rename") {
            assert_eq!(r.param("username").as_deref(), Some("bob"));
            assert_eq!(
                serde_json::from_str::<Value>(&r.body).unwrap(),
                json!({"new-name":"bob_inactive_20261121"})
            );
            // crowd-rename
            return reply_json(
                200,
                json!({"name":"bob_inactive_20261121","first-name":"Bob","last-name":"Builder","display-name":"Bob Builder","email":"bob@example.com","active":false}),
            );
        }
        not_found("no")
    })
    .await;
    let server = serve(|r| {
        probe_routes(r, "9.3.2")
            .or_else(|| bob_route(r, "current"))
            .unwrap_or_else(|| not_found("no"))
    })
    .await;
    let dc = connector(&pat(
        &server.base,
        &format!(
            "[crowd]\nbase_url = \"{}\"\napplication = \"confluence-app\"\npassword = \"app-secret\"\ndirectory = \"Crowd Server\"",
            crowd.base
        ),
    ));
    let probe = dc.probe().await.unwrap();
    let via = match probe.capabilities.get(Capability::Rename) {
        Support::Supported { via } => via,
        other => panic!("{other:?}"),
    };
    assert!(
        via.contains("Crowd") && via.contains("`Crowd Server`"),
        "{via}"
    );
    assert_eq!(
        dc.rename(&bob(), "bob_inactive_20261121").await.unwrap(),
        WriteOutcome::Changed
    );
    assert_eq!(crowd.count("POST", "/rest/usermanagement/1/user/rename"), 1);
    // Basic confluence-app:app-secret
    assert!(
        crowd
            .requests()
            .iter()
            .all(|r| r.auth == "Basic Y29uZmx1ZW5jZS1hcHA6YXBwLXNlY3JldA=="),
    );
}

#[tokio::test]
async fn confluence_7_13_deactivates_through_the_remote_api_and_lists_partially() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "7.13.20") {
            return p;
        }
        if let Some(p) = bob_route(r, "current") {
            return p;
        }
        if r.is("GET", "/rest/api/user") && r.param("username").as_deref() == Some("alice") {
            return reply_json(200, user("alice", "k1", "current"));
        }
        match r.path.as_str() {
            "/rpc/json-rpc/confluenceservice-v2/isActiveUser" => reply_json(200, json!(true)),
            "/rpc/json-rpc/confluenceservice-v2/deactivateUser" => {
                assert_eq!(
                    serde_json::from_str::<Value>(&r.body).unwrap(),
                    json!(["bob"])
                );
                reply_json(200, json!({"result": true}))
            }
            "/rpc/json-rpc/confluenceservice-v2/getActiveUsers" => {
                reply_json(200, json!(["alice", "ghost"]))
            }
            _ => not_found("No user found"),
        }
    })
    .await;
    let dc = connector(&cfg(
        &server.base,
        "username = \"svc\"\npassword = \"pw\"\npage_size = 1",
    ));
    assert_eq!(dc.disable(&bob()).await.unwrap(), WriteOutcome::Changed);
    let first = dc.list_accounts(None).await.unwrap();
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].username, "alice");
    assert_eq!(first.total, Some(2));
    let second = dc.list_accounts(first.next.as_deref()).await.unwrap();
    assert!(second.items.is_empty(), "ghost is unknown to REST");
    assert_eq!(second.next, None);
    assert_eq!(
        server.count("POST", "/rpc/json-rpc/confluenceservice-v2/getActiveUsers"),
        1
    );
}

#[tokio::test]
async fn confluence_8_1_without_the_remote_api_refuses_writes_naming_the_version() {
    let server = serve(|r| probe_routes(r, "8.1.0").unwrap_or_else(|| not_found("no"))).await;
    let dc = connector(&pat(&server.base, ""));
    let err = dc.disable(&bob()).await.unwrap_err();
    assert!(
        matches!(&err, TargetError::Unsupported { capability: Capability::Disable, why } if why.contains("8.2+")),
        "{err}"
    );
    let err = dc.list_accounts(None).await.unwrap_err();
    assert!(
        matches!(&err, TargetError::Unsupported { why, .. } if why == "needs Confluence 8.4+ (GET /rest/api/user/list)"),
        "{err}"
    );
    let err = dc.change_directory(&bob(), "LDAP").await.unwrap_err();
    assert!(matches!(err, TargetError::Unsupported { .. }));
    // Nothing but the probe reached the instance.
    assert!(server.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn on_10_2_last_logins_merge_into_the_listing_from_one_walk() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "10.2.1") {
            return p;
        }
        if r.is("GET", "/rest/api/admin/users/list/active") {
            assert_eq!(r.param("expand").as_deref(), Some("lastLogin"));
            return match r.param("start").as_deref() {
                Some("0") => reply_json(
                    200,
                    // dc-admin-active-users, verbatim: `size` 25 with one result, and a next
                    // link on the instance's own base URL, another origin than idbridge's.
                    json!({"results":[{"type":"known","username":"alice","userKey":"k1","displayName":"Alice","email":"alice@example.com","lastLogin":"2026-11-02T09:14:03.000Z"}],"totalCount":2154,"start":0,"limit":25,"size":25,"_links":{"base":"http://localhost:8085/confluence","context":"confluence","self":"http://localhost:8085/rest/api/latest/..?limit=25&start=0","next":"http://localhost:8085/rest/api/latest/..?limit=25&start=25"}}),
                ),
                _ => reply_json(
                    200,
                    json!({"results":[{"type":"known","username":"carol","userKey":"k3","lastLogin":"2026-10-01T08:00:00Z"}],"totalCount":2,"start":1,"limit":1,"size":1,"_links":{}}),
                ),
            };
        }
        if r.is("GET", "/rest/api/user/list") {
            return match r.param("start").as_deref() {
                Some("0") => reply_json(
                    200,
                    json!({"results":[user("alice","k1","current"), user("bob","k2","current")],"start":0,"limit":2,"size":2,"_links":{"next":"/rest/api/user/list?limit=2&start=2"}}),
                ),
                _ => reply_json(
                    200,
                    json!({"results":[user("carol","k3","current")],"start":2,"limit":2,"size":1,"_links":{}}),
                ),
            };
        }
        not_found("no")
    })
    .await;
    let dc = connector(&pat(&server.base, "page_size = 2"));
    let first = dc.list_accounts(None).await.unwrap();
    let second = dc.list_accounts(first.next.as_deref()).await.unwrap();
    let logins: Vec<(String, Option<String>)> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|a| (a.username.clone(), a.last_login_at.map(|t| t.to_rfc3339())))
        .collect();
    assert_eq!(
        logins,
        vec![
            ("alice".into(), Some("2026-11-02T09:14:03+00:00".into())),
            ("bob".into(), None),
            ("carol".into(), Some("2026-10-01T08:00:00+00:00".into())),
        ]
    );
    let walks = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/admin/users/list/active"))
        .count();
    assert_eq!(
        walks, 2,
        "two pages of licensed users for two pages of accounts"
    );
    let starts: Vec<Option<String>> = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/admin/users/list/active"))
        .map(|r| r.param("start"))
        .collect();
    assert_eq!(starts, vec![Some("0".into()), Some("1".into())]);
    // A new listing walks the licensed users again (both pages).
    dc.list_accounts(None).await.unwrap();
    assert_eq!(server.count("GET", "/rest/api/admin/users/list/active"), 4);
}

#[tokio::test]
async fn licence_counters_treat_minus_one_as_unlimited_and_licence_groups_follow_the_version() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "9.3.2") {
            return p;
        }
        match r.path.as_str() {
            "/rest/license/1.0/license/maxUsers" => reply_json(200, json!({"count": -1})),
            "/rest/license/1.0/license/userCount" => reply_json(200, json!({"count": 452})),
            "/rest/api/permissions" => reply_json(
                200,
                json!([
                    {"operation":{"targetType":"application","operationKey":"use"},"subject":{"type":"group","name":"confluence-users","displayName":"confluence-users"}},
                    {"operation":{"targetType":"application","operationKey":"administer"},"subject":{"type":"group","name":"confluence-administrators"}},
                    {"operation":{"targetType":"space","operationKey":"create"},"subject":{"type":"group","name":"staff"}},
                    {"operation":{"targetType":"application","operationKey":"use"},"subject":{"type":"group","name":"Confluence-Users"}}
                ]),
            ),
            _ => not_found("no"),
        }
    })
    .await;
    let dc = connector(&pat(&server.base, ""));
    assert_eq!(dc.licence_counters().await.unwrap(), (None, Some(452)));
    assert_eq!(
        dc.licence_groups().await.unwrap(),
        vec!["confluence-administrators", "confluence-users"]
    );

    let old = serve(|r| probe_routes(r, "8.4.0").unwrap_or_else(|| not_found("no"))).await;
    let dc = connector(&pat(
        &old.base,
        "licence_groups = [\"confluence-users\", \"staff\"]",
    ));
    assert_eq!(
        dc.licence_groups().await.unwrap(),
        vec!["confluence-users", "staff"]
    );
    assert_eq!(old.count("GET", "/rest/api/permissions"), 0);
    // Counters the instance lacks read as unknown.
    assert_eq!(dc.licence_counters().await.unwrap(), (None, None));
}

#[tokio::test]
async fn group_members_list_users_then_nested_groups_on_9_x() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "9.3.2") {
            return p;
        }
        if r.is("GET", "/rest/api/group/confluence-users/member") {
            // dc-group-members
            return reply_json(
                200,
                json!({"results":[{"type":"known","username":"alice","userKey":"k1","displayName":"Alice"}],"start":0,"limit":200,"size":1,"_links":{"base":"https://conf.example.com","context":"","self":"https://conf.example.com/rest/api/group/confluence-users/member"}}),
            );
        }
        if r.is("GET", "/rest/api/group/confluence-users/groupmember") {
            return reply_json(
                200,
                json!({"results":[{"type":"group","name":"staff"}],"start":0,"limit":200,"size":1,"_links":{}}),
            );
        }
        not_found("no")
    })
    .await;
    let dc = connector(&pat(&server.base, ""));
    let g = GroupRef::named("confluence-users");
    let users = dc.group_members(&g, None).await.unwrap();
    assert_eq!(
        users.items,
        vec![Member::Account {
            key: "k1".into(),
            username: "alice".into()
        }]
    );
    let groups = dc.group_members(&g, users.next.as_deref()).await.unwrap();
    assert_eq!(
        groups.items,
        vec![Member::Group {
            name: "staff".into()
        }]
    );
    assert_eq!(groups.next, None);
}

#[tokio::test]
async fn unknown_accounts_read_as_none_but_an_html_404_is_an_error() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "9.3.2") {
            return p;
        }
        if r.is("GET", "/rest/api/user") && r.param("key").as_deref() == Some("html") {
            return reply_raw(404, "text/html", "<html><title>Proxy error</title></html>");
        }
        // dc-get-user-404
        not_found("No user found with username: ghost")
    })
    .await;
    let dc = connector(&pat(&server.base, ""));
    let ghost = AccountRef {
        key: String::new(),
        username: "ghost".into(),
    };
    assert_eq!(dc.get_account(&ghost).await.unwrap(), None);
    let html = AccountRef {
        key: "html".into(),
        username: "x".into(),
    };
    let err = dc.get_account(&html).await.unwrap_err();
    assert!(matches!(err, TargetError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("Proxy error"), "{err}");
}

#[tokio::test]
async fn creating_an_account_posts_the_spec_body_and_reads_the_new_user_back() {
    let server = serve(|r| {
        if let Some(p) = probe_routes(r, "8.4.0") {
            return p;
        }
        if r.is("POST", "/rest/api/admin/user") {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            if body["userName"] == "taken" {
                return reply_json(409, json!({"statusCode":409,"message":"User taken already exists"}));
            }
            assert_eq!(
                body,
                json!({"userName":"user1","fullName":"Some User","email":"someuser@example.com","notifyViaEmail":true})
            );
            return reply_json(201, json!({"userKey":"4028d6768851c8900188556ba6000014"}));
        }
        if r.is("GET", "/rest/api/user")
            && r.param("key").as_deref() == Some("4028d6768851c8900188556ba6000014")
        {
            return reply_json(200, user("user1", "4028d6768851c8900188556ba6000014", "current"));
        }
        not_found("no")
    })
    .await;
    let dc = connector(&pat(&server.base, ""));
    let created = dc
        .create_account(&NewRemoteAccount {
            username: "user1".into(),
            email: "someuser@example.com".into(),
            display_name: "Some User".into(),
        })
        .await
        .unwrap();
    assert_eq!(created.key, "4028d6768851c8900188556ba6000014");
    assert!(created.active);
    let err = dc
        .create_account(&NewRemoteAccount {
            username: "taken".into(),
            email: "t@example.com".into(),
            display_name: "T".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, TargetError::Conflict { .. }), "{err}");
}
