//! SCIM 2.0 over HTTP at `/scim/v2/{source}`: authentication with the source's bearer token,
//! request parsing with limits, media types, ETags and error bodies (RFC 7644 §3.12). The
//! protocol itself lives in `crate::scim`, storage in `crate::store`.

mod bulk;
mod discovery;
mod resources;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use serde_json::Value;

use super::AppState;
use crate::auth::{AuthError, ScimPrincipal};
use crate::scim::ScimError;
use crate::store::StoreError;

/// The SCIM media type.
pub const SCIM_JSON: &str = "application/scim+json";

/// Deepest JSON nesting accepted in a request body.
const MAX_JSON_DEPTH: usize = 32;

/// The SCIM routes, to be merged into the main router.
pub(super) fn router(state: AppState) -> Router {
    let users = "/scim/v2/{source}/Users";
    let groups = "/scim/v2/{source}/Groups";
    Router::new()
        .route(
            users,
            scim(get(resources::list_users).post(resources::create_user)),
        )
        .route(
            "/scim/v2/{source}/Users/{id}",
            scim(
                get(resources::get_user)
                    .put(resources::replace_user)
                    .patch(resources::patch_user)
                    .delete(resources::delete_user),
            ),
        )
        .route(
            "/scim/v2/{source}/Users/.search",
            scim(post(resources::search_users)),
        )
        .route(
            groups,
            scim(get(resources::list_groups).post(resources::create_group)),
        )
        .route(
            "/scim/v2/{source}/Groups/{id}",
            scim(
                get(resources::get_group)
                    .put(resources::replace_group)
                    .patch(resources::patch_group)
                    .delete(resources::delete_group),
            ),
        )
        .route(
            "/scim/v2/{source}/Groups/.search",
            scim(post(resources::search_groups)),
        )
        .route(
            "/scim/v2/{source}/.search",
            scim(post(resources::search_root)),
        )
        .route("/scim/v2/{source}/Bulk", scim(post(bulk::bulk)))
        .route(
            "/scim/v2/{source}/ServiceProviderConfig",
            scim(get(discovery::service_provider_config)),
        )
        .route(
            "/scim/v2/{source}/ResourceTypes",
            scim(get(discovery::resource_types)),
        )
        .route(
            "/scim/v2/{source}/ResourceTypes/{name}",
            scim(get(discovery::resource_type)),
        )
        .route("/scim/v2/{source}/Schemas", scim(get(discovery::schemas)))
        .route(
            "/scim/v2/{source}/Schemas/{id}",
            scim(get(discovery::schema)),
        )
        .route("/scim/v2/{source}/Me", any(me))
        .route("/scim/v2/{source}", any(not_found))
        .route("/scim/v2/{source}/{*rest}", any(not_found))
        .with_state(state)
}

/// Gives SCIM clients a SCIM error body for the answers the shared middleware produces
/// before a SCIM handler runs (413 for an oversized body, 408 for a timeout).
pub(super) async fn scim_error_bodies(req: Request, next: axum::middleware::Next) -> Response {
    let is_scim = req.uri().path().starts_with("/scim/");
    let response = next.run(req).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|ct| ct.as_bytes() != SCIM_JSON.as_bytes());
    if is_scim && plain && matches!(status.as_u16(), 408 | 413) {
        let detail = if status.as_u16() == 413 {
            "the request body is too large"
        } else {
            "the request took too long"
        };
        return ScimReply::from(ScimError::new(status.as_u16(), None, detail)).into_response();
    }
    response
}

/// Answers methods a route does not have with a SCIM 405.
fn scim(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.fallback(method_not_allowed)
}

async fn method_not_allowed(_ctx: Ctx) -> ScimReply {
    ScimReply::from(ScimError::new(
        405,
        None,
        "method not allowed on this endpoint",
    ))
}

async fn not_found(_ctx: Ctx) -> ScimReply {
    ScimReply::from(ScimError::not_found("no such SCIM endpoint"))
}

async fn me(_ctx: Ctx) -> ScimReply {
    ScimReply::from(ScimError::new(
        501,
        None,
        "/Me is not supported: SCIM clients here authenticate as a provisioning source, not a user",
    ))
}

/// An authenticated SCIM request: who is calling and the base URL of their source.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub principal: ScimPrincipal,
    /// `https://host/scim/v2/<source>`.
    pub base: String,
    /// `scim:<token prefix>`, for the audit log.
    pub actor: String,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ScimReply;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimReply> {
        let source = parts
            .uri
            .path()
            .strip_prefix("/scim/v2/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("")
            .to_owned();
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let principal = state
            .authenticator
            .authenticate(&source, authorization)
            .await
            .map_err(ScimReply::from)?;
        let root = match &state.config.server.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
                    .unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        Ok(Ctx {
            base: format!("{root}/scim/v2/{}", principal.source_name),
            actor: format!("scim:{}", principal.token_prefix),
            principal,
        })
    }
}

/// A SCIM response: a JSON body with the SCIM media type, a status and extra headers.
#[derive(Debug)]
pub(crate) struct ScimReply {
    status: StatusCode,
    body: Option<Value>,
    headers: HeaderMap,
}

impl ScimReply {
    /// A JSON body with `status`.
    pub fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            headers: HeaderMap::new(),
        }
    }

    /// No body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: None,
            headers: HeaderMap::new(),
        }
    }

    /// Adds a header; values that are not valid header text are dropped.
    pub fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}

impl IntoResponse for ScimReply {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => {
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                let mut r = (self.status, bytes).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
                r
            }
            None => self.status.into_response(),
        };
        response.headers_mut().extend(self.headers);
        response
    }
}

impl From<ScimError> for ScimReply {
    fn from(e: ScimError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        ScimReply::json(status, e.to_json())
    }
}

impl From<AuthError> for ScimReply {
    fn from(e: AuthError) -> Self {
        let status = e.status();
        if let AuthError::Store(inner) = &e {
            tracing::error!(error = %inner, "SCIM authentication could not reach the store");
        }
        let detail = e.to_string();
        let reply = ScimReply::from(ScimError::new(status.as_u16(), None, detail));
        match e {
            AuthError::RateLimited { retry_after_secs } => {
                reply.header(header::RETRY_AFTER, &retry_after_secs.to_string())
            }
            AuthError::WrongSource | AuthError::Store(_) => reply,
            _ => reply.header(header::WWW_AUTHENTICATE, "Bearer realm=\"idbridge SCIM\""),
        }
    }
}

/// The SCIM error a store failure deserves; unexpected ones are logged and answered opaquely.
pub(crate) fn store_error(e: StoreError) -> ScimError {
    match e {
        StoreError::Conflict(detail) => ScimError::uniqueness(detail),
        StoreError::NotFound(what) => ScimError::not_found(format!("{what} not found")),
        StoreError::VersionMismatch => ScimError::new(
            412,
            None,
            "the resource has changed since the given version",
        ),
        StoreError::MissingReference(detail) => ScimError::invalid_value(detail),
        StoreError::Invalid(e) => e,
        other => {
            tracing::error!(error = %other, "SCIM request failed in the store");
            ScimError::new(500, None, "internal error; the request was not applied")
        }
    }
}

/// Reads a request body as strict JSON with the SCIM or plain JSON media type.
pub(crate) async fn read_json(req: Request) -> Result<Value, ScimError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if let Some(ct) = content_type
        && ct != SCIM_JSON
        && ct != "application/json"
    {
        return Err(ScimError::new(
            415,
            None,
            format!("send {SCIM_JSON} or application/json, not `{}`", short(&ct)),
        ));
    }
    let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .map_err(|_| ScimError::new(413, None, "the request body is too large"))?;
    crate::http::json::parse_strict(&bytes, MAX_JSON_DEPTH)
        .map_err(|e| ScimError::invalid_syntax(e.to_string()))
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The version an `If-Match` / `If-None-Match` header names: `None` for `*`, `Some(None)` for
/// a tag idbridge never issued.
pub(crate) fn etag_versions(
    headers: &HeaderMap,
    name: header::HeaderName,
) -> Option<Vec<Option<i64>>> {
    let raw = headers.get(name)?.to_str().ok()?;
    Some(
        raw.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                if t == "*" {
                    None
                } else {
                    Some(
                        t.trim_start_matches("W/")
                            .trim_matches('"')
                            .parse::<i64>()
                            .unwrap_or(-1),
                    )
                }
            })
            .collect(),
    )
}

/// The weak ETag of a version.
pub(crate) fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}
