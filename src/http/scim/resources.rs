//! Users and Groups: list, search, create, read, replace, patch and delete (RFC 7644 §3.3–3.6),
//! with pagination, sorting, attribute projection and ETags.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Ctx, ScimReply, etag, etag_versions, read_json, store_error};
use crate::config::ScimConfig;
use crate::http::AppState;
use crate::scim::ScimError;
use crate::scim::ast::AttrPath;
use crate::scim::filter::{self, Limits};
use crate::scim::resource::{self, Meta, Mode};
use crate::scim::schema::ResourceTypeDef;
use crate::scim::{eval, patch};
use crate::store::{ScimKind, ScimQuery, ScimRecord, StoreError};

const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// How many times a PATCH re-reads and re-applies when another write got there first.
const PATCH_ATTEMPTS: usize = 5;

fn done(result: Result<ScimReply, ScimError>) -> ScimReply {
    result.unwrap_or_else(ScimReply::from)
}

/// A list or search request, from query parameters or a SearchRequest body.
#[derive(Debug, Default)]
pub(super) struct ListRequest {
    filter: Option<String>,
    start_index: Option<i128>,
    count: Option<i128>,
    sort_by: Option<String>,
    descending: bool,
    attributes: Vec<AttrPath>,
    excluded: Vec<AttrPath>,
}

fn int_param(name: &str, value: &str) -> Result<i128, ScimError> {
    value
        .trim()
        .parse::<i128>()
        .or_else(|_| {
            // Longer than i128: only the sign matters once clamped.
            let digits = value.trim().trim_start_matches(['-', '+']);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                Ok(if value.trim().starts_with('-') {
                    i128::MIN
                } else {
                    i128::MAX
                })
            } else {
                Err(())
            }
        })
        .map_err(|()| ScimError::invalid_value(format!("`{name}` must be an integer")))
}

fn sort_order(value: &str) -> Result<bool, ScimError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "ascending" | "" => Ok(false),
        "descending" => Ok(true),
        _ => Err(ScimError::invalid_value(
            "`sortOrder` is `ascending` or `descending`",
        )),
    }
}

/// Projection parameters alone (`attributes`, `excludedAttributes`), for single resources.
fn projection(uri: &Uri) -> Result<(Vec<AttrPath>, Vec<AttrPath>), ScimError> {
    let req = ListRequest::from_query(uri)?;
    Ok((req.attributes, req.excluded))
}

impl ListRequest {
    /// The effective 1-based start index and page size (RFC 7644 §3.4.2.4): a start below 1 is
    /// 1, a negative count is 0, and a count above `max_page_size` is cut to it.
    fn paging(&self, scim: &ScimConfig) -> (i64, i64) {
        let max = i128::try_from(scim.max_page_size).unwrap_or(i128::MAX);
        let default = i128::try_from(scim.default_page_size).unwrap_or(100);
        let start = self.start_index.unwrap_or(1).clamp(1, i128::from(i64::MAX));
        let count = self.count.unwrap_or(default).clamp(0, max);
        (
            i64::try_from(start).unwrap_or(i64::MAX),
            i64::try_from(count).unwrap_or(i64::MAX),
        )
    }

    fn from_query(uri: &Uri) -> Result<Self, ScimError> {
        let mut req = ListRequest::default();
        let query = uri.query().unwrap_or("");
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.to_ascii_lowercase().as_str() {
                "filter" => req.filter = Some(value.into_owned()),
                "startindex" => req.start_index = Some(int_param("startIndex", &value)?),
                "count" => req.count = Some(int_param("count", &value)?),
                "sortby" => req.sort_by = Some(value.into_owned()).filter(|s| !s.is_empty()),
                "sortorder" => req.descending = sort_order(&value)?,
                "attributes" if !value.trim().is_empty() => {
                    req.attributes = filter::parse_attr_list(&value)?;
                }
                "excludedattributes" if !value.trim().is_empty() => {
                    req.excluded = filter::parse_attr_list(&value)?;
                }
                _ => {}
            }
        }
        Ok(req)
    }

    fn from_body(body: &Value) -> Result<Self, ScimError> {
        let Some(obj) = body.as_object() else {
            return Err(ScimError::invalid_syntax(
                "a SearchRequest is a JSON object",
            ));
        };
        let field = |name: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
                .filter(|v| !v.is_null())
        };
        let is_search = field("schemas").and_then(Value::as_array).is_some_and(|s| {
            s.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(SEARCH_REQUEST))
            })
        });
        if !is_search {
            return Err(ScimError::invalid_syntax(format!(
                "`schemas` must contain {SEARCH_REQUEST}"
            )));
        }
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match field(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "`{name}` must be a string"
                ))),
            }
        };
        let int = |name: &str| -> Result<Option<i128>, ScimError> {
            match field(name) {
                None => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128))
                    .map(Some)
                    .ok_or_else(|| {
                        ScimError::invalid_value(format!("`{name}` must be an integer"))
                    }),
                Some(Value::String(s)) => int_param(name, s).map(Some),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "`{name}` must be an integer"
                ))),
            }
        };
        let list = |name: &str| -> Result<Vec<AttrPath>, ScimError> {
            match field(name) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .ok_or_else(|| {
                                ScimError::invalid_value(format!("`{name}` lists strings"))
                            })
                            .and_then(filter::parse_attr_path)
                    })
                    .collect(),
                Some(Value::String(s)) => filter::parse_attr_list(s),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "`{name}` must be an array"
                ))),
            }
        };
        Ok(ListRequest {
            filter: text("filter")?,
            start_index: int("startIndex")?,
            count: int("count")?,
            sort_by: text("sortBy")?.filter(|s| !s.is_empty()),
            descending: match text("sortOrder")? {
                Some(s) => sort_order(&s)?,
                None => false,
            },
            attributes: list("attributes")?,
            excluded: list("excludedAttributes")?,
        })
    }
}

/// Whether the projection keeps the attribute `name` (so it is worth loading).
fn wants(name: &str, attributes: &[AttrPath], excluded: &[AttrPath]) -> bool {
    let named = |p: &AttrPath| p.name.eq_ignore_ascii_case(name) && p.urn.is_none();
    if !attributes.is_empty() {
        return attributes.iter().any(named);
    }
    !excluded.iter().any(|p| named(p) && p.sub.is_none())
}

/// The full representation of a stored record.
fn render(ctx: &Ctx, record: &ScimRecord) -> Value {
    let rt = record.kind.resource_type();
    let mut doc = record.document.clone();
    if let Some(obj) = doc.as_object_mut() {
        if let Some(members) = &record.members {
            let list: Vec<Value> = members
                .iter()
                .map(|m| {
                    let mut v = json!({
                        "value": m.value,
                        "type": m.kind.as_str(),
                        "$ref": format!("{}/{}s/{}", ctx.base, m.kind.as_str(), m.value),
                    });
                    if let Some(d) = &m.display {
                        v["display"] = Value::from(d.as_str());
                    }
                    v
                })
                .collect();
            if !list.is_empty() {
                obj.insert("members".into(), Value::Array(list));
            }
        }
        if let Some(groups) = record.groups.as_ref().filter(|g| !g.is_empty()) {
            let list: Vec<Value> = groups
                .iter()
                .map(|g| {
                    json!({
                        "value": g.id.to_string(),
                        "display": g.display_name,
                        "type": "direct",
                        "$ref": format!("{}/Groups/{}", ctx.base, g.id),
                    })
                })
                .collect();
            obj.insert("groups".into(), Value::Array(list));
        }
    }
    let meta = Meta {
        resource_type: rt.name,
        created: record.created_at,
        last_modified: record.updated_at,
        location: location(ctx, record.kind, record.id),
        version: etag(record.version),
    };
    resource::render(&record.id.to_string(), &doc, &meta)
}

pub(super) fn location(ctx: &Ctx, kind: ScimKind, id: Uuid) -> String {
    format!("{}{}/{id}", ctx.base, kind.resource_type().endpoint)
}

/// Runs a list or search for one resource type and returns the ListResponse.
async fn run_list(
    state: &AppState,
    ctx: &Ctx,
    kind: ScimKind,
    req: &ListRequest,
) -> Result<ScimReply, ScimError> {
    let (total, resources, start) = page(state, ctx, kind, req, None).await?;
    Ok(list_response(total, start, resources))
}

fn list_response(total: i64, start: i64, resources: Vec<Value>) -> ScimReply {
    ScimReply::json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

/// One page: total matches, rendered resources and the effective start index. `window`
/// overrides the offset and limit (for root searches spanning types).
async fn page(
    state: &AppState,
    ctx: &Ctx,
    kind: ScimKind,
    req: &ListRequest,
    window: Option<(i64, i64)>,
) -> Result<(i64, Vec<Value>, i64), ScimError> {
    let rt: &'static ResourceTypeDef = kind.resource_type();
    let scim = &state.config.scim;
    let limits = Limits {
        max_length: scim.max_filter_length,
        ..Limits::default()
    };
    let filter = match req.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(text) => {
            let f = filter::parse_filter(text, &limits)?;
            eval::validate(rt, &f)?;
            Some(f)
        }
        None => None,
    };
    let sort = match &req.sort_by {
        Some(s) => {
            let path = filter::parse_attr_path(s)?;
            let resolved = rt
                .resolve(&path)
                .map_err(|e| ScimError::invalid_value(format!("sortBy: {}", e.detail)))?;
            Some((resolved, req.descending))
        }
        None => None,
    };
    let (start, count) = req.paging(scim);
    let (offset, limit) = window.unwrap_or((start - 1, count));
    let query = ScimQuery {
        filter: filter.as_ref(),
        sort,
        offset,
        limit,
        with_members: kind == ScimKind::Group && wants("members", &req.attributes, &req.excluded),
        with_groups: kind == ScimKind::User && wants("groups", &req.attributes, &req.excluded),
    };
    let (total, records) = state
        .store
        .scim_list(kind, ctx.principal.source_id, &query)
        .await
        .map_err(store_error)?;
    let resources = records
        .iter()
        .map(|r| resource::project(rt, &render(ctx, r), &req.attributes, &req.excluded))
        .collect();
    Ok((total, resources, start))
}

async fn list(state: AppState, ctx: Ctx, kind: ScimKind, uri: Uri) -> ScimReply {
    done(
        async {
            let req = ListRequest::from_query(&uri)?;
            run_list(&state, &ctx, kind, &req).await
        }
        .await,
    )
}

async fn search(state: AppState, ctx: Ctx, kind: ScimKind, req: Request) -> ScimReply {
    done(
        async {
            let body = read_json(req).await?;
            let req = ListRequest::from_body(&body)?;
            run_list(&state, &ctx, kind, &req).await
        }
        .await,
    )
}

/// `POST /.search` at the root: Users then Groups, paged as one list. A filter that names an
/// attribute only one type has matches nothing of the other type.
pub(super) async fn search_root(
    State(state): State<AppState>,
    ctx: Ctx,
    req: Request,
) -> ScimReply {
    done(
        async {
            let body = read_json(req).await?;
            let req = ListRequest::from_body(&body)?;
            let scim = &state.config.scim;
            let (start, count) = req.paging(scim);
            let mut total = 0;
            let mut resources = Vec::new();
            let mut any_valid = false;
            let mut offset = start - 1;
            let mut first_error = None;
            for kind in [ScimKind::User, ScimKind::Group] {
                let remaining = count - i64::try_from(resources.len()).unwrap_or(0);
                match page(
                    &state,
                    &ctx,
                    kind,
                    &req,
                    Some((offset.max(0), remaining.max(0))),
                )
                .await
                {
                    Ok((n, mut page, _)) => {
                        any_valid = true;
                        total += n;
                        offset = (offset - n).max(0);
                        resources.append(&mut page);
                    }
                    Err(e) if e.status == 400 => first_error = first_error.or(Some(e)),
                    Err(e) => return Err(e),
                }
            }
            if !any_valid {
                return Err(
                    first_error.unwrap_or_else(|| ScimError::invalid_filter("invalid filter"))
                );
            }
            Ok(list_response(total, start, resources))
        }
        .await,
    )
}

pub(super) fn parse_id(kind: ScimKind, id: &str) -> Result<Uuid, ScimError> {
    Uuid::parse_str(id).map_err(|_| {
        ScimError::not_found(format!(
            "{} {} not found",
            kind.resource_type().name,
            short(id)
        ))
    })
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

fn not_found(kind: ScimKind, id: Uuid) -> ScimError {
    ScimError::not_found(format!("{} {id} not found", kind.resource_type().name))
}

/// A resource response with `ETag` (and `Location` on 201).
fn resource_reply(
    ctx: &Ctx,
    status: StatusCode,
    record: &ScimRecord,
    uri: &Uri,
) -> Result<ScimReply, ScimError> {
    let (attributes, excluded) = projection(uri)?;
    let rt = record.kind.resource_type();
    let body = resource::project(rt, &render(ctx, record), &attributes, &excluded);
    let mut reply = ScimReply::json(status, body).header(header::ETAG, &etag(record.version));
    if status == StatusCode::CREATED {
        reply = reply.header(header::LOCATION, &location(ctx, record.kind, record.id));
    }
    Ok(reply)
}

/// The version `If-Match` requires, if any; `Err` when no listed tag matches `current`.
pub(super) fn if_match(
    headers: &HeaderMap,
    current: Option<i64>,
) -> Result<Option<i64>, ScimError> {
    let Some(tags) = etag_versions(headers, header::IF_MATCH) else {
        return Ok(None);
    };
    if tags.iter().any(Option::is_none) {
        return Ok(None);
    }
    match current {
        Some(v) if tags.contains(&Some(v)) => Ok(Some(v)),
        Some(_) => Err(ScimError::new(
            412,
            None,
            "the resource has changed since the given version",
        )),
        // Unknown yet: the store compares the first listed tag.
        None => Ok(tags.first().copied().flatten()),
    }
}

/// POST: creates a resource from a request body.
pub(super) async fn create_record(
    state: &AppState,
    ctx: &Ctx,
    kind: ScimKind,
    body: &Value,
) -> Result<ScimRecord, ScimError> {
    let doc = resource::normalize(kind.resource_type(), body, Mode::Create)?;
    state
        .store
        .scim_create(kind, ctx.principal.source_id, doc, &ctx.actor)
        .await
        .map_err(store_error)
}

/// PUT: replaces a resource; `required` is the version `If-Match` names.
pub(super) async fn replace_record(
    state: &AppState,
    ctx: &Ctx,
    kind: ScimKind,
    id: Uuid,
    required: Option<i64>,
    body: &Value,
) -> Result<ScimRecord, ScimError> {
    let doc = resource::normalize(kind.resource_type(), body, Mode::Replace)?;
    let record = state
        .store
        .scim_replace(
            kind,
            ctx.principal.source_id,
            id,
            required,
            doc,
            &ctx.actor,
            "replace",
        )
        .await
        .map_err(store_error)?;
    reload(state, ctx, kind, record).await
}

/// PATCH: applies operations, re-reading and re-applying if another write got there first
/// (unless `If-Match` pinned a version).
pub(super) async fn patch_record(
    state: &AppState,
    ctx: &Ctx,
    kind: ScimKind,
    id: Uuid,
    headers: &HeaderMap,
    body: &Value,
) -> Result<ScimRecord, ScimError> {
    let scim = &state.config.scim;
    let ops = patch::parse_request(body, scim.max_patch_operations)?;
    if patch::member_values(&ops) > scim.max_members_per_patch {
        return Err(ScimError::invalid_value(format!(
            "one PATCH may change at most {} members",
            scim.max_members_per_patch
        )));
    }
    let rt = kind.resource_type();
    let pinned = etag_versions(headers, header::IF_MATCH).is_some();
    for _ in 0..PATCH_ATTEMPTS {
        let current = state
            .store
            .scim_get(
                kind,
                ctx.principal.source_id,
                id,
                kind == ScimKind::Group,
                false,
            )
            .await
            .map_err(store_error)?
            .ok_or_else(|| not_found(kind, id))?;
        let version = if_match(headers, Some(current.version))?.unwrap_or(current.version);
        let new_doc = patch::apply(rt, &id.to_string(), &patch_input(&current), &ops)?;
        match state
            .store
            .scim_replace(
                kind,
                ctx.principal.source_id,
                id,
                Some(version),
                new_doc,
                &ctx.actor,
                "patch",
            )
            .await
        {
            Ok(record) => return reload(state, ctx, kind, record).await,
            Err(StoreError::VersionMismatch) if !pinned => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(ScimError::new(
        409,
        None,
        "the resource is being changed concurrently; retry",
    ))
}

/// DELETE.
pub(super) async fn delete_record(
    state: &AppState,
    ctx: &Ctx,
    kind: ScimKind,
    id: Uuid,
    required: Option<i64>,
) -> Result<(), ScimError> {
    state
        .store
        .scim_delete(kind, ctx.principal.source_id, id, required, &ctx.actor)
        .await
        .map_err(store_error)
}

async fn create(state: AppState, ctx: Ctx, kind: ScimKind, req: Request) -> ScimReply {
    done(
        async {
            let uri = req.uri().clone();
            let body = read_json(req).await?;
            let record = create_record(&state, &ctx, kind, &body).await?;
            let record = reload(&state, &ctx, kind, record).await?;
            resource_reply(&ctx, StatusCode::CREATED, &record, &uri)
        }
        .await,
    )
}

async fn get_one(
    state: AppState,
    ctx: Ctx,
    kind: ScimKind,
    id: String,
    uri: Uri,
    headers: HeaderMap,
) -> ScimReply {
    done(
        async {
            let id = parse_id(kind, &id)?;
            let (attributes, excluded) = projection(&uri)?;
            let record = state
                .store
                .scim_get(
                    kind,
                    ctx.principal.source_id,
                    id,
                    kind == ScimKind::Group && wants("members", &attributes, &excluded),
                    kind == ScimKind::User && wants("groups", &attributes, &excluded),
                )
                .await
                .map_err(store_error)?
                .ok_or_else(|| not_found(kind, id))?;
            if let Some(tags) = etag_versions(&headers, header::IF_NONE_MATCH)
                && tags
                    .iter()
                    .any(|t| t.is_none() || *t == Some(record.version))
            {
                return Ok(ScimReply::empty(StatusCode::NOT_MODIFIED)
                    .header(header::ETAG, &etag(record.version)));
            }
            resource_reply(&ctx, StatusCode::OK, &record, &uri)
        }
        .await,
    )
}

async fn replace(state: AppState, ctx: Ctx, kind: ScimKind, id: String, req: Request) -> ScimReply {
    done(
        async {
            let id = parse_id(kind, &id)?;
            let uri = req.uri().clone();
            let required = if_match(req.headers(), None)?;
            let body = read_json(req).await?;
            let record = replace_record(&state, &ctx, kind, id, required, &body).await?;
            resource_reply(&ctx, StatusCode::OK, &record, &uri)
        }
        .await,
    )
}

/// Re-reads a record with the members or groups a response shows.
pub(super) async fn reload(
    state: &AppState,
    ctx: &Ctx,
    kind: ScimKind,
    record: ScimRecord,
) -> Result<ScimRecord, ScimError> {
    if kind == ScimKind::Group && record.members.is_some() {
        return Ok(record);
    }
    if kind == ScimKind::User && record.groups.is_some() {
        return Ok(record);
    }
    if kind == ScimKind::User {
        let mut records = [record];
        state
            .store
            .attach_groups(&mut records)
            .await
            .map_err(store_error)?;
        let [record] = records;
        return Ok(record);
    }
    state
        .store
        .scim_get(
            kind,
            ctx.principal.source_id,
            record.id,
            kind == ScimKind::Group,
            kind == ScimKind::User,
        )
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(kind, record.id))
}

/// The canonical document a PATCH works on: for groups, with `members`.
fn patch_input(record: &ScimRecord) -> Value {
    let mut doc = record.document.clone();
    if let (Some(members), Some(obj)) = (&record.members, doc.as_object_mut())
        && !members.is_empty()
    {
        let list: Vec<Value> = members
            .iter()
            .map(|m| {
                let mut v = Map::new();
                v.insert("value".into(), Value::from(m.value.as_str()));
                v.insert("type".into(), Value::from(m.kind.as_str()));
                if let Some(d) = &m.display {
                    v.insert("display".into(), Value::from(d.as_str()));
                }
                Value::Object(v)
            })
            .collect();
        obj.insert("members".into(), Value::Array(list));
    }
    doc
}

async fn patch_one(
    state: AppState,
    ctx: Ctx,
    kind: ScimKind,
    id: String,
    req: Request,
) -> ScimReply {
    done(
        async {
            let id = parse_id(kind, &id)?;
            let uri = req.uri().clone();
            let headers = req.headers().clone();
            let body = read_json(req).await?;
            let record = patch_record(&state, &ctx, kind, id, &headers, &body).await?;
            resource_reply(&ctx, StatusCode::OK, &record, &uri)
        }
        .await,
    )
}

async fn delete(
    state: AppState,
    ctx: Ctx,
    kind: ScimKind,
    id: String,
    headers: HeaderMap,
) -> ScimReply {
    done(
        async {
            let id = parse_id(kind, &id)?;
            let required = if_match(&headers, None)?;
            delete_record(&state, &ctx, kind, id, required).await?;
            Ok(ScimReply::empty(StatusCode::NO_CONTENT))
        }
        .await,
    )
}

macro_rules! handlers {
    ($kind:expr, $list:ident, $search:ident, $create:ident, $get:ident, $replace:ident, $patch:ident, $delete:ident) => {
        pub(super) async fn $list(State(state): State<AppState>, ctx: Ctx, uri: Uri) -> ScimReply {
            list(state, ctx, $kind, uri).await
        }
        pub(super) async fn $search(
            State(state): State<AppState>,
            ctx: Ctx,
            req: Request,
        ) -> ScimReply {
            search(state, ctx, $kind, req).await
        }
        pub(super) async fn $create(
            State(state): State<AppState>,
            ctx: Ctx,
            req: Request,
        ) -> ScimReply {
            create(state, ctx, $kind, req).await
        }
        pub(super) async fn $get(
            State(state): State<AppState>,
            ctx: Ctx,
            Path((_, id)): Path<(String, String)>,
            uri: Uri,
            headers: HeaderMap,
        ) -> ScimReply {
            get_one(state, ctx, $kind, id, uri, headers).await
        }
        pub(super) async fn $replace(
            State(state): State<AppState>,
            ctx: Ctx,
            Path((_, id)): Path<(String, String)>,
            req: Request,
        ) -> ScimReply {
            replace(state, ctx, $kind, id, req).await
        }
        pub(super) async fn $patch(
            State(state): State<AppState>,
            ctx: Ctx,
            Path((_, id)): Path<(String, String)>,
            req: Request,
        ) -> ScimReply {
            patch_one(state, ctx, $kind, id, req).await
        }
        pub(super) async fn $delete(
            State(state): State<AppState>,
            ctx: Ctx,
            Path((_, id)): Path<(String, String)>,
            headers: HeaderMap,
        ) -> ScimReply {
            delete(state, ctx, $kind, id, headers).await
        }
    };
}

handlers!(
    ScimKind::User,
    list_users,
    search_users,
    create_user,
    get_user,
    replace_user,
    patch_user,
    delete_user
);
handlers!(
    ScimKind::Group,
    list_groups,
    search_groups,
    create_group,
    get_group,
    replace_group,
    patch_group,
    delete_group
);
