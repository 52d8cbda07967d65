//! The discovery endpoints: `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas`
//! (RFC 7644 §4). They take no filter (403, as RFC 7644 §4 advises) and only GET (405).

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use serde_json::{Value, json};

use super::{Ctx, ScimReply};
use crate::http::AppState;
use crate::scim::ScimError;
use crate::scim::discovery::{self, Capabilities};

const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn refuse_filter(uri: &Uri) -> Result<(), ScimError> {
    let has_filter = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .any(|(k, _)| k.eq_ignore_ascii_case("filter"));
    if has_filter {
        Err(ScimError::new(
            403,
            None,
            "discovery endpoints do not support filtering",
        ))
    } else {
        Ok(())
    }
}

fn listing(items: Vec<Value>) -> ScimReply {
    ScimReply::json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": items.len(),
            "startIndex": 1,
            "itemsPerPage": items.len(),
            "Resources": items,
        }),
    )
}

pub(super) async fn service_provider_config(
    State(state): State<AppState>,
    ctx: Ctx,
    uri: Uri,
) -> ScimReply {
    if let Err(e) = refuse_filter(&uri) {
        return e.into();
    }
    let scim = &state.config.scim;
    let caps = Capabilities {
        max_results: scim.max_page_size,
        bulk_max_operations: scim.bulk_max_operations,
        bulk_max_payload_bytes: scim.bulk_max_payload_bytes,
        documentation_uri: None,
    };
    ScimReply::json(
        StatusCode::OK,
        discovery::service_provider_config(&ctx.base, &caps),
    )
}

pub(super) async fn resource_types(ctx: Ctx, uri: Uri) -> ScimReply {
    match refuse_filter(&uri) {
        Ok(()) => listing(discovery::resource_types(&ctx.base)),
        Err(e) => e.into(),
    }
}

pub(super) async fn resource_type(ctx: Ctx, Path((_, name)): Path<(String, String)>) -> ScimReply {
    match discovery::resource_type(&ctx.base, &name) {
        Some(v) => ScimReply::json(StatusCode::OK, v),
        None => ScimError::not_found("no such resource type").into(),
    }
}

pub(super) async fn schemas(ctx: Ctx, uri: Uri) -> ScimReply {
    match refuse_filter(&uri) {
        Ok(()) => listing(discovery::schemas(&ctx.base)),
        Err(e) => e.into(),
    }
}

pub(super) async fn schema(ctx: Ctx, Path((_, id)): Path<(String, String)>) -> ScimReply {
    match discovery::schema(&ctx.base, &id) {
        Some(v) => ScimReply::json(StatusCode::OK, v),
        None => ScimError::not_found("no such schema").into(),
    }
}
