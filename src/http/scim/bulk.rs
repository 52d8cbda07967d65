//! `POST /Bulk` (RFC 7644 §3.7): many operations in one request, with `bulkId` references
//! between them, `failOnErrors`, and the advertised `maxOperations` / `maxPayloadSize`.
//! Operations run one by one through the same code as single requests; an operation that
//! refers to a `bulkId` waits until the operation that creates it has run.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::resources::{
    create_record, delete_record, location, parse_id, patch_record, replace_record,
};
use super::{Ctx, ScimReply, etag, read_json};
use crate::http::AppState;
use crate::scim::ScimError;
use crate::store::ScimKind;

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// One operation as sent.
struct Op {
    method: String,
    bulk_id: Option<String>,
    version: Option<String>,
    path: String,
    data: Option<Value>,
}

fn field<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn parse(body: &Value, max_operations: usize) -> Result<(Vec<Op>, Option<usize>), ScimError> {
    let Some(obj) = body.as_object() else {
        return Err(ScimError::invalid_syntax("a BulkRequest is a JSON object"));
    };
    let is_bulk = field(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(BULK_REQUEST))
            })
        });
    if !is_bulk {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must contain {BULK_REQUEST}"
        )));
    }
    let fail_on_errors = match field(obj, "failOnErrors") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| ScimError::invalid_value("`failOnErrors` is a positive integer"))?,
        ),
    };
    let ops = field(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("`Operations` must be an array"))?;
    if ops.len() > max_operations {
        return Err(ScimError::new(
            413,
            None,
            format!("a Bulk request may hold at most {max_operations} operations"),
        ));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let Some(o) = op.as_object() else {
            return Err(ScimError::invalid_syntax(format!(
                "operation {i} is not an object"
            )));
        };
        let text = |name: &str| field(o, name).and_then(Value::as_str).map(str::to_owned);
        let method = text("method")
            .ok_or_else(|| ScimError::invalid_syntax(format!("operation {i} has no method")))?
            .to_ascii_uppercase();
        let path = text("path")
            .ok_or_else(|| ScimError::invalid_syntax(format!("operation {i} has no path")))?;
        let bulk_id = text("bulkId");
        if method == "POST" && bulk_id.is_none() {
            return Err(ScimError::invalid_syntax(format!(
                "operation {i}: POST needs a bulkId"
            )));
        }
        out.push(Op {
            method,
            bulk_id,
            version: text("version"),
            path,
            data: field(o, "data").cloned(),
        });
    }
    Ok((out, fail_on_errors))
}

/// Every `bulkId:<id>` a value refers to.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:") {
                out.push(id.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        Value::Object(map) => map.values().for_each(|v| references(v, out)),
        _ => {}
    }
}

fn op_references(op: &Op) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(data) = &op.data {
        references(data, &mut out);
    }
    for segment in op.path.split('/') {
        if let Some(id) = segment.strip_prefix("bulkId:") {
            out.push(id.to_owned());
        }
    }
    out
}

fn substitute(value: &mut Value, ids: &HashMap<String, String>) {
    match value {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, ids)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, ids)),
        _ => {}
    }
}

/// `/Users`, `/Groups/<id>` → the kind and optional id.
fn target(path: &str) -> Result<(ScimKind, Option<&str>), ScimError> {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let kind = match parts.next() {
        Some("Users") => ScimKind::User,
        Some("Groups") => ScimKind::Group,
        _ => {
            return Err(ScimError::invalid_path(format!(
                "unknown bulk path `{}`",
                path.chars().take(60).collect::<String>()
            )));
        }
    };
    Ok((kind, parts.next().filter(|s| !s.is_empty())))
}

/// The result of one operation, as a BulkResponse entry.
async fn run(
    state: &AppState,
    ctx: &Ctx,
    op: &Op,
    path: &str,
    data: Option<Value>,
) -> Result<(StatusCode, Option<String>, Option<i64>), ScimError> {
    let (kind, id) = target(path)?;
    let mut headers = HeaderMap::new();
    if let Some(v) = op
        .version
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(header::IF_MATCH, v);
    }
    let required = super::resources::if_match(&headers, None)?;
    let body = || {
        data.clone()
            .ok_or_else(|| ScimError::invalid_syntax("the operation needs `data`"))
    };
    match (op.method.as_str(), id) {
        ("POST", None) => {
            let r = create_record(state, ctx, kind, &body()?).await?;
            Ok((
                StatusCode::CREATED,
                Some(location(ctx, kind, r.id)),
                Some(r.version),
            ))
        }
        ("PUT", Some(id)) => {
            let id = parse_id(kind, id)?;
            let r = replace_record(state, ctx, kind, id, required, &body()?).await?;
            Ok((
                StatusCode::OK,
                Some(location(ctx, kind, r.id)),
                Some(r.version),
            ))
        }
        ("PATCH", Some(id)) => {
            let id = parse_id(kind, id)?;
            let r = patch_record(state, ctx, kind, id, &headers, &body()?).await?;
            Ok((
                StatusCode::OK,
                Some(location(ctx, kind, r.id)),
                Some(r.version),
            ))
        }
        ("DELETE", Some(id)) => {
            let id = parse_id(kind, id)?;
            delete_record(state, ctx, kind, id, required).await?;
            Ok((StatusCode::NO_CONTENT, Some(location(ctx, kind, id)), None))
        }
        (m, _) => Err(ScimError::invalid_syntax(format!(
            "`{m}` is not allowed on `{path}`"
        ))),
    }
}

pub(super) async fn bulk(State(state): State<AppState>, ctx: Ctx, req: Request) -> ScimReply {
    let scim = &state.config.scim;
    let too_big = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > scim.bulk_max_payload_bytes);
    if too_big {
        return ScimError::new(
            413,
            None,
            format!(
                "a Bulk request may be at most {} bytes",
                scim.bulk_max_payload_bytes
            ),
        )
        .into();
    }
    let body = match read_json(req).await {
        Ok(b) => b,
        Err(e) => return e.into(),
    };
    let (ops, fail_on_errors) = match parse(&body, scim.bulk_max_operations) {
        Ok(v) => v,
        Err(e) => return e.into(),
    };
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut errors = 0usize;
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    'passes: while !pending.is_empty() {
        let mut next = Vec::new();
        let mut progressed = false;
        for i in pending {
            let op = &ops[i];
            let unresolved = op_references(op).into_iter().any(|r| !ids.contains_key(&r));
            if unresolved {
                next.push(i);
                continue;
            }
            progressed = true;
            let mut data = op.data.clone();
            if let Some(d) = data.as_mut() {
                substitute(d, &ids);
            }
            let mut path = op.path.clone();
            for (bulk_id, id) in &ids {
                path = path.replace(&format!("bulkId:{bulk_id}"), id);
            }
            let mut entry = json!({ "method": op.method });
            if let Some(b) = &op.bulk_id {
                entry["bulkId"] = Value::from(b.as_str());
            }
            match run(&state, &ctx, op, &path, data).await {
                Ok((status, loc, version)) => {
                    if let (Some(b), Some(l)) = (&op.bulk_id, &loc)
                        && let Some(id) = l.rsplit('/').next()
                    {
                        ids.insert(b.clone(), id.to_owned());
                    }
                    entry["status"] = Value::from(status.as_u16().to_string());
                    if let Some(l) = loc {
                        entry["location"] = Value::from(l);
                    }
                    if let Some(v) = version {
                        entry["version"] = Value::from(etag(v));
                    }
                }
                Err(e) => {
                    errors += 1;
                    entry["status"] = Value::from(e.status.to_string());
                    entry["response"] = e.to_json();
                }
            }
            results[i] = Some(entry);
            if fail_on_errors.is_some_and(|n| errors >= n) {
                break 'passes;
            }
        }
        if !progressed {
            // What is left refers to bulkIds that never resolve: missing or circular.
            for i in next {
                let op = &ops[i];
                let e = ScimError::new(
                    409,
                    None,
                    "the operation refers to a bulkId that cannot be resolved",
                );
                let mut entry =
                    json!({ "method": op.method, "status": "409", "response": e.to_json() });
                if let Some(b) = &op.bulk_id {
                    entry["bulkId"] = Value::from(b.as_str());
                }
                results[i] = Some(entry);
            }
            break;
        }
        pending = next;
    }
    let operations: Vec<Value> = results.into_iter().flatten().collect();
    ScimReply::json(
        StatusCode::OK,
        json!({ "schemas": [BULK_RESPONSE], "Operations": operations }),
    )
}
