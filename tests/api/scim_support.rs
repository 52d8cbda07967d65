//! Shared helpers for the SCIM client tests: a [`ScimClient`] that starts idbridge with one
//! configured `scim` source, issues a bearer token for it, and speaks to `/scim/v2/<source>`
//! with the headers a real identity provider sends; a [`ScimResponse`] with assertions for
//! SCIM error bodies and ListResponses; and request bodies both IdPs use.

use idbridge::auth::issue_token;
use idbridge::config::{Config, SourceConfig};
use idbridge::domain::{SourceId, SourceKind};
use reqwest::Method;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

/// The SCIM core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The SCIM core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The PatchOp message schema.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The ListResponse message schema.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The Error message schema.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `User-Agent` Okta's SCIM client sends.
pub const OKTA: &str = "Okta SCIM Client 1.0.0";
/// A `User-Agent` standing for Microsoft Entra ID's provisioning service (idbridge does not
/// look at it; it only makes server logs of these tests read like real traffic).
pub const ENTRA: &str = "Microsoft Entra ID SCIM provisioning (idbridge test)";

/// An idbridge with one configured SCIM source and a live token for it.
pub struct ScimClient {
    pub app: TestApp,
    /// The source name, as in `/scim/v2/<source>`.
    pub source: String,
    pub source_id: SourceId,
    token: String,
    user_agent: &'static str,
}

/// What a SCIM request got back.
#[derive(Debug)]
pub struct ScimResponse {
    pub status: u16,
    pub headers: HeaderMap,
    /// The raw body.
    pub text: String,
    /// The body as JSON; `Value::Null` when empty or not JSON.
    pub body: Value,
}

impl ScimClient {
    /// Starts idbridge on `backend` with the SCIM source `source`, speaking as `user_agent`.
    pub async fn start(
        backend: Backend,
        source: &str,
        user_agent: &'static str,
    ) -> Option<ScimClient> {
        Self::start_with(backend, &[source], user_agent, |_| {}).await
    }

    /// Like [`Self::start`], with more SCIM sources (the client speaks for the first) and
    /// further configuration.
    pub async fn start_with(
        backend: Backend,
        sources: &[&str],
        user_agent: &'static str,
        configure: impl FnOnce(&mut Config),
    ) -> Option<ScimClient> {
        let app = TestApp::builder(backend)
            .config(|c| {
                for name in sources {
                    c.sources
                        .insert((*name).into(), SourceConfig::new(SourceKind::Scim));
                }
                configure(c);
            })
            .spawn()
            .await?;
        let source = sources[0].to_owned();
        let (source_id, token) = token_for(&app, &source).await;
        Some(ScimClient {
            app,
            source,
            source_id,
            token,
            user_agent,
        })
    }

    /// The same app and client, speaking for `source` with a fresh token of it.
    pub async fn for_source(&self, source: &str) -> (SourceId, String) {
        token_for(&self.app, source).await
    }

    /// The bearer token in use.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `http://…/scim/v2/<source><rel>`.
    pub fn url(&self, rel: &str) -> String {
        self.url_for(&self.source, rel)
    }

    /// `http://…/scim/v2/<source><rel>` for any source.
    pub fn url_for(&self, source: &str, rel: &str) -> String {
        self.app.url(&format!("/scim/v2/{source}{rel}"))
    }

    /// A request with the IdP's headers (bearer token, SCIM media types, user agent).
    pub fn request(&self, method: Method, rel: &str) -> reqwest::RequestBuilder {
        self.request_to(method, self.url(rel), Some(&self.token))
    }

    /// A request to any `url` with the IdP's headers and `token` (none: no `Authorization`).
    pub fn request_to(
        &self,
        method: Method,
        url: String,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let req = self
            .app
            .client
            .request(method, url)
            .header(header::ACCEPT, "application/scim+json")
            .header(header::USER_AGENT, self.user_agent);
        match token {
            Some(t) => req.header(header::AUTHORIZATION, format!("Bearer {t}")),
            None => req,
        }
    }

    /// Sends a prepared request.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> ScimResponse {
        ScimResponse::read(req.send().await.expect("request sent")).await
    }

    /// `method rel` with a JSON body sent as `application/scim+json; charset=utf-8`.
    pub async fn with_body(&self, method: Method, rel: &str, body: &Value) -> ScimResponse {
        self.send(self.json_request(method, rel, body.to_string()))
            .await
    }

    /// A request carrying `raw` as an `application/scim+json; charset=utf-8` body.
    pub fn json_request(
        &self,
        method: Method,
        rel: &str,
        raw: impl Into<reqwest::Body>,
    ) -> reqwest::RequestBuilder {
        self.request(method, rel)
            .header(header::CONTENT_TYPE, "application/scim+json; charset=utf-8")
            .body(raw)
    }

    pub async fn get(&self, rel: &str) -> ScimResponse {
        self.send(self.request(Method::GET, rel)).await
    }

    pub async fn post(&self, rel: &str, body: &Value) -> ScimResponse {
        self.with_body(Method::POST, rel, body).await
    }

    pub async fn put(&self, rel: &str, body: &Value) -> ScimResponse {
        self.with_body(Method::PUT, rel, body).await
    }

    pub async fn patch(&self, rel: &str, body: &Value) -> ScimResponse {
        self.with_body(Method::PATCH, rel, body).await
    }

    pub async fn delete(&self, rel: &str) -> ScimResponse {
        self.send(self.request(Method::DELETE, rel)).await
    }

    /// `PATCH rel` with a PatchOp made of `operations`.
    pub async fn patch_ops(&self, rel: &str, operations: Value) -> ScimResponse {
        self.patch(rel, &patch_op(operations)).await
    }

    /// Creates a user and returns its body; panics unless the server answers 201.
    pub async fn create_user(&self, body: &Value) -> Value {
        self.post("/Users", body)
            .await
            .expect_status(201, "create user")
            .body
            .clone()
    }

    /// Creates a group and returns its body; panics unless the server answers 201.
    pub async fn create_group(&self, body: &Value) -> Value {
        self.post("/Groups", body)
            .await
            .expect_status(201, "create group")
            .body
            .clone()
    }

    /// Asserts the server still answers a plain list with 200.
    pub async fn assert_alive(&self) {
        self.get("/Users?count=1")
            .await
            .expect_status(200, "the server keeps answering")
            .assert_list_response();
    }
}

/// Looks `source` up and issues a token for it.
async fn token_for(app: &TestApp, source: &str) -> (SourceId, String) {
    let found = app
        .store
        .source_by_name(source)
        .await
        .expect("store answers")
        .unwrap_or_else(|| panic!("source {source} is configured and registered at start"));
    let (token, _) = issue_token(&app.store, found.id, Some(format!("{source} test")), None)
        .await
        .expect("token issued");
    (found.id, token.expose().to_owned())
}

impl ScimResponse {
    async fn read(response: reqwest::Response) -> ScimResponse {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        ScimResponse {
            status,
            headers,
            text,
            body,
        }
    }

    /// Panics with the body unless the status is `expected`.
    #[track_caller]
    pub fn expect_status(&self, expected: u16, what: &str) -> &Self {
        assert_eq!(
            self.status, expected,
            "{what}: expected HTTP {expected}, got {} with body {}",
            self.status, self.text
        );
        self
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a SCIM error (RFC 7644 §3.12): the status, the SCIM media type, the Error
    /// schema, `status` as a string, a non-empty `detail` and, when given, the `scimType`.
    #[track_caller]
    pub fn assert_scim_error(&self, status: u16, scim_type: Option<&str>) -> &Self {
        self.expect_status(status, "SCIM error");
        assert!(
            self.header("content-type")
                .is_some_and(|ct| ct.starts_with("application/scim+json")),
            "an error is application/scim+json, got {:?}: {}",
            self.header("content-type"),
            self.text
        );
        assert_eq!(
            self.body["schemas"],
            json!([ERROR_SCHEMA]),
            "Error schema: {}",
            self.text
        );
        assert_eq!(
            self.body["status"],
            Value::from(status.to_string()),
            "`status` is the HTTP status as a string: {}",
            self.text
        );
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "non-empty detail: {}",
            self.text
        );
        if let Some(t) = scim_type {
            assert_eq!(self.body["scimType"], t, "scimType: {}", self.text);
        }
        self
    }

    /// Asserts a ListResponse whose counters are JSON integers and whose `itemsPerPage` is
    /// the number of `Resources`.
    #[track_caller]
    pub fn assert_list_response(&self) -> &Self {
        assert_eq!(
            self.body["schemas"],
            json!([LIST_RESPONSE]),
            "ListResponse schema: {}",
            self.text
        );
        for key in ["totalResults", "startIndex", "itemsPerPage"] {
            assert!(
                self.body[key].is_i64() || self.body[key].is_u64(),
                "`{key}` is a JSON integer: {}",
                self.text
            );
        }
        assert_eq!(
            self.body["itemsPerPage"].as_u64(),
            Some(self.resources().len() as u64),
            "itemsPerPage counts Resources: {}",
            self.text
        );
        self
    }

    /// `totalResults`.
    #[track_caller]
    pub fn total(&self) -> i64 {
        self.body["totalResults"]
            .as_i64()
            .unwrap_or_else(|| panic!("totalResults is an integer: {}", self.text))
    }

    /// `Resources`, empty when absent.
    pub fn resources(&self) -> &[Value] {
        self.body["Resources"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The `id` of every resource, in order.
    pub fn ids(&self) -> Vec<String> {
        self.resources()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// Percent-encodes a query parameter value (so `+`, `&`, `"` and spaces survive).
pub fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `?filter=<encoded filter>`.
pub fn filter(f: &str) -> String {
    format!("?filter={}", enc(f))
}

/// A PatchOp request body.
pub fn patch_op(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

/// A short random hex string, so tests never collide on names.
pub fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A minimal core user named `user_name`.
pub fn user(user_name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "active": true,
    })
}

/// A body's `id`.
#[track_caller]
pub fn id_of(body: &Value) -> String {
    body["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| panic!("resource has an id: {body}"))
        .to_owned()
}

/// The `value` of every member of a group body, sorted.
pub fn member_values(group: &Value) -> Vec<String> {
    let mut values: Vec<String> = group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|v| v["value"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    values.sort();
    values
}

/// `ids`, sorted.
pub fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}
