//! SCIM PATCH (RFC 7644 §3.5.2): parsing a PatchOp request and applying its operations, in
//! order and atomically, to a canonical resource document, with the quirks of Okta and
//! Microsoft Entra ID (case-insensitive `op`, string booleans, dotted and URN-qualified keys in
//! path-less values, legacy member removal with a `value` list, the manager shapes, value-path
//! replaces that create the element they do not find). No I/O.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::ast::{CompValue, CompareOp, Filter, PatchPath};
use super::error::ScimError;
use super::eval::{matches_element, validate_element};
use super::filter::{Limits, parse_patch_path};
use super::resource::{
    self, Mode, container, container_mut, is_members, is_urn, normalize_value, object_mut,
    resolve_key, resolved_name,
};
use super::schema::{AttrDef, AttrType, Mutability, Resolved, ResourceTypeDef, display};

type Object = Map<String, Value>;

/// The PatchOp message schema URN.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    /// Present for `add` and `replace` (possibly `null`); for `remove` only when a non-null
    /// value was sent (Entra's legacy member removal).
    pub value: Option<Value>,
}

/// The operation kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

/// Parses an RFC 7644 §3.5.2 PatchOp body. Keys and `op` values match case-insensitively; an
/// empty `path` counts as none. Errors: 400 `invalidSyntax` for the envelope and unknown ops,
/// 400 `invalidPath` for paths, 400 `invalidValue` for more than `max_operations` operations.
pub fn parse_request(body: &Value, max_operations: usize) -> Result<Vec<PatchOp>, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    let is_patch = get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .any(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
        });
    if !is_patch {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` must be an array containing `{PATCH_OP_SCHEMA}`"
        )));
    }
    let ops = match get_ci(body, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        _ => {
            return Err(ScimError::invalid_syntax(
                "`Operations` must be a non-empty array",
            ));
        }
    };
    if ops.len() > max_operations {
        return Err(ScimError::invalid_value(format!(
            "too many operations: {}, the limit is {max_operations}",
            ops.len()
        )));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_op(op).map_err(|e| numbered(i, e)))
        .collect()
}

fn parse_op(op: &Value) -> Result<PatchOp, ScimError> {
    let Value::Object(op) = op else {
        return Err(ScimError::invalid_syntax(
            "an operation must be a JSON object",
        ));
    };
    let kind = match get_ci(op, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => OpKind::Add,
        Some(s) if s.eq_ignore_ascii_case("replace") => OpKind::Replace,
        Some(s) if s.eq_ignore_ascii_case("remove") => OpKind::Remove,
        _ => {
            return Err(ScimError::invalid_syntax(
                "`op` must be \"add\", \"replace\" or \"remove\"",
            ));
        }
    };
    let path = match get_ci(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_patch_path(s, &Limits::default())?),
        Some(_) => return Err(ScimError::invalid_path("`path` must be a string")),
    };
    let value = get_ci(op, "value").cloned();
    let value = match kind {
        OpKind::Add | OpKind::Replace if value.is_none() => {
            return Err(ScimError::invalid_syntax(
                "`value` is required for add and replace",
            ));
        }
        OpKind::Remove => value.filter(|v| !v.is_null()),
        OpKind::Add | OpKind::Replace => value,
    };
    Ok(PatchOp {
        op: kind,
        path,
        value,
    })
}

/// Applies `ops` in order to the canonical document `doc` of the resource `id` and returns the
/// new canonical document; on any error nothing is applied.
///
/// A path-less value may carry `id` (Okta's group rename): equal to `id` it is ignored,
/// otherwise 400 `mutability`; `meta` and `schemas` keys are ignored. Operations on `password`
/// (write-only) are accepted and ignored: idbridge never stores passwords. The result is run
/// through [`resource::normalize`]; its errors (e.g. removing `userName`) become 400
/// `invalidValue`. Compare the result with `doc` to tell a no-op PATCH (RFC 7644 §3.5.2.1).
pub fn apply(
    rt: &'static ResourceTypeDef,
    id: &str,
    doc: &Value,
    ops: &[PatchOp],
) -> Result<Value, ScimError> {
    let mut work = doc.as_object().cloned().unwrap_or_default();
    for (i, op) in ops.iter().enumerate() {
        apply_op(rt, id, &mut work, op).map_err(|e| numbered(i, e))?;
    }
    work.insert("schemas".into(), json!([rt.schema.id]));
    resource::normalize(rt, &Value::Object(work), Mode::Replace)
        .map_err(|e| ScimError::invalid_value(e.detail))
}

/// How many member values the operations name: the elements of `members` values added,
/// replaced or removed, and the `value eq "…"` terms of `members[…]` paths. For counts and
/// limits; to learn which members actually changed, compare `members` before and after
/// [`apply`] with [`member_changes`].
pub fn member_values(ops: &[PatchOp]) -> usize {
    ops.iter().map(op_member_values).sum()
}

/// The member ids `after` has and `before` has not, and those `before` has and `after` has not
/// (both canonical Group documents).
pub fn member_changes(before: &Value, after: &Value) -> (Vec<String>, Vec<String>) {
    let ids = |doc: &Value| -> Vec<String> {
        doc.get("members")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(member_id).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let (old, new) = (ids(before), ids(after));
    let (old_set, new_set): (HashSet<&str>, HashSet<&str>) = (
        old.iter().map(String::as_str).collect(),
        new.iter().map(String::as_str).collect(),
    );
    let added = new
        .iter()
        .filter(|m| !old_set.contains(m.as_str()))
        .cloned()
        .collect();
    let removed = old
        .iter()
        .filter(|m| !new_set.contains(m.as_str()))
        .cloned()
        .collect();
    (added, removed)
}

fn op_member_values(op: &PatchOp) -> usize {
    let count_elements = |v: &Value| match v {
        Value::Array(items) => items.iter().filter(|i| i.get("value").is_some()).count(),
        Value::Object(m) if m.contains_key("value") => 1,
        _ => 0,
    };
    match &op.path {
        Some(path) if path.attr.name.eq_ignore_ascii_case("members") && path.attr.sub.is_none() => {
            let in_filter = path.filter.as_ref().map_or(0, count_value_terms);
            let in_value = match (&path.filter, &op.value) {
                (None, Some(v)) => count_elements(v),
                _ => 0,
            };
            in_filter + in_value
        }
        Some(_) => 0,
        None => match &op.value {
            Some(Value::Object(fields)) => get_ci(fields, "members").map_or(0, count_elements),
            _ => 0,
        },
    }
}

fn count_value_terms(f: &Filter) -> usize {
    match f {
        Filter::Compare(p, CompareOp::Eq, CompValue::String(_))
            if p.name.eq_ignore_ascii_case("value") =>
        {
            1
        }
        Filter::And(a, b) | Filter::Or(a, b) => count_value_terms(a) + count_value_terms(b),
        _ => 0,
    }
}

fn member_id(m: &Value) -> Option<&str> {
    m.get("value").and_then(Value::as_str)
}

fn numbered(i: usize, mut e: ScimError) -> ScimError {
    e.detail = format!("operation {}: {}", i + 1, e.detail);
    e
}

/// `obj[key]`, the key matched without case. Unlike `index::get_ci` it keeps a `null`, which
/// PATCH must tell from an absent `value` (Entra clears attributes with `"value": null`).
fn get_ci<'a>(obj: &'a Object, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

// ---------------------------------------------------------------------------------------------
// Applying one operation

fn apply_op(
    rt: &'static ResourceTypeDef,
    id: &str,
    work: &mut Object,
    op: &PatchOp,
) -> Result<(), ScimError> {
    let value = op.value.as_ref();
    match (&op.path, op.op) {
        (None, OpKind::Remove) => Err(ScimError::no_target("remove needs a `path`")),
        (None, kind) => path_less(rt, id, work, kind, value.unwrap_or(&Value::Null)),
        (Some(path), kind) => {
            // A whole extension, e.g. `urn:…:enterprise:2.0:User` (parsed as URN `…:2.0`, name
            // `User`): its value is an object of the extension's attributes.
            if path.filter.is_none()
                && let Some((ext, true)) = rt.schema_by_urn(&display(&path.attr))
            {
                return match kind {
                    OpKind::Remove => {
                        work.remove(ext.id);
                        Ok(())
                    }
                    _ => {
                        let mut fields = Object::new();
                        fields.insert(ext.id.into(), value.cloned().unwrap_or(Value::Null));
                        path_less(rt, id, work, kind, &Value::Object(fields))
                    }
                };
            }
            let mut r = rt.resolve(&path.attr)?;
            let elem_sub = match &path.sub {
                Some(name) => Some(r.attr.sub(name).ok_or_else(|| {
                    ScimError::invalid_path(format!(
                        "`{}` has no sub-attribute `{name}`",
                        resolved_name(&r)
                    ))
                })?),
                None => None,
            };
            let Some(filter) = &path.filter else {
                r.sub = r.sub.or(elem_sub);
                return if may_change(&r)? {
                    plain(work, &r, kind, value)
                } else {
                    Ok(())
                };
            };
            if !r.attr.multi_valued || r.attr.ty != AttrType::Complex || r.sub.is_some() {
                return Err(ScimError::invalid_path(format!(
                    "`{}` is not a multi-valued complex attribute; a value filter cannot select \
                     its values",
                    resolved_name(&r)
                )));
            }
            if !may_change(&Resolved { sub: elem_sub, ..r })? {
                return Ok(());
            }
            filtered(work, &r, filter, elem_sub, kind, value)
        }
    }
}

/// Whether an operation on `r` does anything: `Ok(false)` for write-only attributes (accepted,
/// never stored), 400 `mutability` for read-only ones.
fn may_change(r: &Resolved) -> Result<bool, ScimError> {
    let write_only = r.attr.mutability == Mutability::WriteOnly
        || r.sub.is_some_and(|s| s.mutability == Mutability::WriteOnly);
    if write_only {
        Ok(false)
    } else if resource::writable(r) {
        Ok(true)
    } else {
        Err(ScimError::mutability(format!(
            "`{}` is read-only",
            resolved_name(r)
        )))
    }
}

/// `add` / `replace` without a path: `value` is an object whose keys are attribute paths.
fn path_less(
    rt: &'static ResourceTypeDef,
    id: &str,
    work: &mut Object,
    kind: OpKind,
    value: &Value,
) -> Result<(), ScimError> {
    let Value::Object(fields) = value else {
        return Err(ScimError::invalid_value(
            "without a `path`, `value` must be an object of attributes",
        ));
    };
    for (key, v) in fields {
        if key.eq_ignore_ascii_case("id") {
            if v.as_str() == Some(id) {
                continue;
            }
            return Err(ScimError::mutability("`id` cannot be changed"));
        }
        if key.eq_ignore_ascii_case("meta") || key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some((ext, true)) = rt.schema_by_urn(key) {
            match v {
                Value::Object(attrs) => {
                    // Clients that model an extension as a resource send its `schemas` too.
                    let attrs = attrs
                        .iter()
                        .filter(|(name, _)| !name.eq_ignore_ascii_case("schemas"));
                    for (name, av) in attrs {
                        let key = format!("{}:{name}", ext.id);
                        match resolve_key(rt, &key) {
                            Some(r) => {
                                if may_change(&r)? {
                                    plain(work, &r, kind, Some(av))?;
                                }
                            }
                            None if av.is_null() => {}
                            None => {
                                return Err(ScimError::invalid_path(format!(
                                    "unknown attribute `{key}`"
                                )));
                            }
                        }
                    }
                }
                Value::Null if kind == OpKind::Replace => {
                    work.remove(ext.id);
                }
                Value::Null => {}
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "`{}` must be an object of extension attributes",
                        ext.id
                    )));
                }
            }
            continue;
        }
        match resolve_key(rt, key) {
            Some(r) => {
                if may_change(&r)? {
                    plain(work, &r, kind, Some(v))?;
                }
            }
            None if v.is_null() || is_urn(key) => {}
            None => {
                return Err(ScimError::invalid_path(format!(
                    "unknown attribute `{key}`"
                )));
            }
        }
    }
    Ok(())
}

/// An operation on an attribute or sub-attribute without a value filter.
fn plain(
    work: &mut Object,
    r: &Resolved,
    kind: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let attr = r.attr;
    match (r.sub, attr.multi_valued) {
        (Some(sub), false) => {
            let v = match (kind, value) {
                (OpKind::Remove, _) | (_, None) => Value::Null,
                (_, Some(v)) => normalize_value(r, v, true)?,
            };
            set_sub(container_mut(work, r), attr.name, sub.name, v);
        }
        (Some(sub), true) => {
            // `emails.value`: every element.
            let v = match (kind, value) {
                (OpKind::Remove, _) | (_, None) => Value::Null,
                (_, Some(v)) => normalize_value(r, v, true)?,
            };
            let holder = container_mut(work, r);
            match holder.get_mut(attr.name) {
                Some(Value::Array(items)) if !items.is_empty() => {
                    for item in items.iter_mut() {
                        set_field(object_mut(item), sub.name, v.clone());
                    }
                }
                _ if !v.is_null() => {
                    holder.insert(attr.name.into(), json!([{ sub.name: v }]));
                }
                _ => {}
            }
        }
        (None, false) => {
            let holder = container_mut(work, r);
            match (kind, value) {
                (OpKind::Remove, _) | (_, None) => {
                    holder.remove(attr.name);
                }
                // RFC 7644 §3.5.2.1/3: sub-attributes not given are left unchanged. Manager-like
                // attributes (with a `value`) are references and are replaced whole.
                (_, Some(Value::Object(fields)))
                    if attr.ty == AttrType::Complex && attr.sub("value").is_none() =>
                {
                    merge_subs(holder, r, fields)?;
                }
                (_, Some(v)) => {
                    let v = normalize_value(r, v, true)?;
                    set_field(holder, attr.name, v);
                }
            }
        }
        (None, true) => multi_plain(container_mut(work, r), r, kind, value)?,
    }
    Ok(())
}

/// Sets the sub-attributes given in `fields` on the singular complex attribute of `r`.
fn merge_subs(holder: &mut Object, r: &Resolved, fields: &Object) -> Result<(), ScimError> {
    for (key, v) in fields {
        let Some(sub) = r.attr.sub(key) else {
            if v.is_null() {
                continue;
            }
            return Err(ScimError::invalid_syntax(format!(
                "unknown sub-attribute `{}.{key}`",
                resolved_name(r)
            )));
        };
        let rs = Resolved {
            sub: Some(sub),
            ..*r
        };
        if !resource::writable(&rs) {
            continue;
        }
        let v = normalize_value(&rs, v, true)?;
        set_sub(holder, r.attr.name, sub.name, v);
    }
    Ok(())
}

/// An operation on a whole multi-valued attribute (no filter).
fn multi_plain(
    holder: &mut Object,
    r: &Resolved,
    kind: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let name = r.attr.name;
    let given = match value {
        Some(v) => normalize_value(r, v, true)?,
        None => Value::Null,
    };
    let given = match given {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    match kind {
        OpKind::Replace => {
            set_field(holder, name, Value::Array(given));
        }
        OpKind::Add => {
            if given.is_empty() {
                return Ok(());
            }
            let items = array_mut(holder, name);
            let members = is_members(r.attr);
            let mut known: HashSet<String> = items.iter().map(|i| identity(i, members)).collect();
            let first_new = items.len();
            for item in given {
                if known.insert(identity(&item, members)) {
                    items.push(item);
                }
            }
            let added: Vec<usize> = (first_new..items.len()).collect();
            primary_wins(items, &added);
        }
        // Without a value, everything goes. With one (Entra's legacy member removal, D2), only
        // the elements that match one of the given ones do.
        OpKind::Remove if value.is_none() => {
            holder.remove(name);
        }
        OpKind::Remove => {
            let Some(Value::Array(items)) = holder.get_mut(name) else {
                return Ok(());
            };
            if is_members(r.attr) {
                // Members are matched on their id alone: `display` and `type` may differ.
                let ids: HashSet<&str> = given.iter().filter_map(member_id).collect();
                items.retain(|item| member_id(item).is_none_or(|id| !ids.contains(id)));
            } else {
                items.retain(|item| !given.iter().any(|pattern| contains(item, pattern)));
            }
        }
    }
    Ok(())
}

/// What makes two elements the same for `add`: a member's id, otherwise the whole element.
fn identity(item: &Value, members: bool) -> String {
    match (members, member_id(item)) {
        (true, Some(id)) => id.to_owned(),
        _ => item.to_string(),
    }
}

/// Whether every field of `pattern` is in `item` with the same value.
fn contains(item: &Value, pattern: &Value) -> bool {
    match (item, pattern) {
        (Value::Object(item), Value::Object(pattern)) => {
            pattern.iter().all(|(k, v)| item.get(k) == Some(v))
        }
        _ => item == pattern,
    }
}

/// An operation on the elements of a multi-valued complex attribute selected by `filter`.
fn filtered(
    work: &mut Object,
    r: &Resolved,
    filter: &Filter,
    elem_sub: Option<&'static AttrDef>,
    kind: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let attr = r.attr;
    validate_element(attr, filter)?;
    let matched: Vec<usize> = match container(work, r).and_then(|h| h.get(attr.name)) {
        Some(Value::Array(items)) => {
            let mut matched = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if matches_element(attr, filter, item)? {
                    matched.push(i);
                }
            }
            matched
        }
        _ => Vec::new(),
    };
    let v = match (kind, value, elem_sub) {
        (OpKind::Remove, _, _) | (_, None, _) => Value::Null,
        (_, Some(v), Some(sub)) => normalize_value(
            &Resolved {
                sub: Some(sub),
                ..*r
            },
            v,
            true,
        )?,
        (_, Some(v), None) => normalize_value(r, v, false)?,
    };
    if matched.is_empty() {
        if kind == OpKind::Remove || v.is_null() {
            // Nothing to remove (Okta removes members that may be gone already): success.
            return Ok(());
        }
        // D1: Entra expects the element it names to be created.
        let mut element = element_from_filter(attr, filter).ok_or_else(|| {
            ScimError::no_target(format!(
                "no value of `{}` matches the filter, and it does not say what to create",
                resolved_name(r)
            ))
        })?;
        match (elem_sub, v) {
            (Some(sub), v) => {
                element.insert(sub.name.into(), v);
            }
            (None, Value::Object(fields)) => element.extend(fields),
            (None, _) => {}
        }
        let element = normalize_value(r, &Value::Object(element), false)?;
        if element.is_null() {
            return Ok(());
        }
        let items = array_mut(container_mut(work, r), attr.name);
        items.push(element);
        let added = [items.len() - 1];
        primary_wins(items, &added);
        return Ok(());
    }
    let items = array_mut(container_mut(work, r), attr.name);
    match elem_sub {
        Some(sub) => {
            for &i in &matched {
                if let Some(item) = items.get_mut(i) {
                    set_field(object_mut(item), sub.name, v.clone());
                }
            }
        }
        None => {
            for &i in &matched {
                if let Some(item) = items.get_mut(i) {
                    *item = v.clone();
                }
            }
        }
    }
    primary_wins(items, &matched);
    // Elements replaced by nothing, or left empty, go.
    items.retain(|item| item.as_object().is_some_and(|m| !m.is_empty()));
    Ok(())
}

/// The element a value filter of `attr="literal"` terms joined by `and` describes, e.g.
/// `{"type":"work"}` for `emails[type eq "work"]`; `None` for any other filter.
fn element_from_filter(attr: &AttrDef, filter: &Filter) -> Option<Object> {
    fn terms(attr: &AttrDef, f: &Filter, out: &mut Object) -> bool {
        match f {
            Filter::And(a, b) => terms(attr, a, out) && terms(attr, b, out),
            Filter::Compare(path, CompareOp::Eq, literal) if path.urn.is_none() => {
                let name = match &path.sub {
                    None => path.name.as_str(),
                    Some(sub) if path.name.eq_ignore_ascii_case(attr.name) => sub.as_str(),
                    Some(_) => return false,
                };
                let Some(sub) = attr.sub(name) else {
                    return false;
                };
                let v = match literal {
                    CompValue::String(s) => Value::from(s.as_str()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Number(n) => Value::Number(n.clone()),
                    CompValue::Null => return false,
                };
                match out.get(sub.name) {
                    Some(existing) => *existing == v,
                    None => {
                        out.insert(sub.name.into(), v);
                        true
                    }
                }
            }
            _ => false,
        }
    }
    let mut out = Object::new();
    terms(attr, filter, &mut out).then_some(out)
}

/// When one of `chosen` is now `primary: true`, the other elements stop being primary
/// (RFC 7644 §3.5.2).
fn primary_wins(items: &mut [Value], chosen: &[usize]) {
    let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    let Some(&winner) = chosen
        .iter()
        .find(|&&i| items.get(i).is_some_and(is_primary))
    else {
        return;
    };
    for (i, item) in items.iter_mut().enumerate() {
        if i != winner
            && let Some(p) = item.get_mut("primary").filter(|p| **p == Value::Bool(true))
        {
            *p = Value::Bool(false);
        }
    }
}

/// Sets `key` to `v`, or removes it when `v` is null.
fn set_field(obj: &mut Object, key: &str, v: Value) {
    if v.is_null() {
        obj.remove(key);
    } else {
        obj.insert(key.into(), v);
    }
}

/// Sets (or, with null, removes) `attr.sub` in `holder`, creating `attr` as needed.
fn set_sub(holder: &mut Object, attr: &str, sub: &str, v: Value) {
    if v.is_null() {
        if let Some(Value::Object(m)) = holder.get_mut(attr) {
            m.remove(sub);
        }
    } else {
        set_field(
            object_mut(holder.entry(attr).or_insert(Value::Null)),
            sub,
            v,
        );
    }
}

/// The array at `key`, created (or replacing a non-array) as needed.
fn array_mut<'a>(holder: &'a mut Object, key: &str) -> &'a mut Vec<Value> {
    as_array(holder.entry(key).or_insert(Value::Null))
}

fn as_array(slot: &mut Value) -> &mut Vec<Value> {
    match slot {
        Value::Array(items) => items,
        other => {
            *other = Value::Array(Vec::new());
            as_array(other)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ScimType;
    use crate::scim::schema::{
        ENTERPRISE_USER_SCHEMA as ENT, GROUP_SCHEMA, GROUP_TYPE, USER_SCHEMA, USER_TYPE,
    };

    const BOB: &str = "89bb1940-b905-4575-9e7f-6f887cfb368e";

    fn user_doc() -> Value {
        json!({
            "schemas":[USER_SCHEMA, ENT],
            "userName":"ada@example.com","externalId":"00u1","active":true,
            "name":{"givenName":"Ada","familyName":"Lovelace"},
            "emails":[{"value":"ada@example.com","type":"work","primary":true},{"value":"ada@home.example","type":"home"}],
            ENT:{"employeeNumber":"701984","department":"R&D","manager":{"value":"m1"}}
        })
    }

    fn group_doc() -> Value {
        json!({
            "schemas":[GROUP_SCHEMA],"displayName":"Engineering",
            "members":[{"value":"u1","display":"ada"},{"value":BOB,"display":"bob"}]
        })
    }

    fn body(ops: Value) -> Value {
        json!({"schemas":[PATCH_OP_SCHEMA],"Operations":ops})
    }

    fn patch(rt: &'static ResourceTypeDef, doc: &Value, ops: Value) -> Result<Value, ScimError> {
        let ops = parse_request(&body(ops), 100)?;
        apply(rt, "id-1", doc, &ops)
    }

    fn user(ops: Value) -> Result<Value, ScimError> {
        patch(&USER_TYPE, &user_doc(), ops)
    }

    fn group(ops: Value) -> Result<Value, ScimError> {
        patch(&GROUP_TYPE, &group_doc(), ops)
    }

    fn member_ids(doc: &Value) -> Vec<&str> {
        doc["members"]
            .as_array()
            .map_or(Vec::new(), |m| m.iter().filter_map(member_id).collect())
    }

    fn kind(r: Result<Value, ScimError>) -> Option<ScimType> {
        r.unwrap_err().scim_type
    }

    #[test]
    fn okta_deactivation_by_path_less_replace_sets_active_false_and_nothing_else() {
        let out = user(json!([{"op":"replace","value":{"active":false}}])).unwrap();
        let mut expected = user_doc();
        expected["active"] = json!(false);
        assert_eq!(out, expected);
    }

    #[test]
    fn okta_group_rename_carrying_the_same_id_renames_and_another_id_is_mutability() {
        let out = patch(
            &GROUP_TYPE,
            &group_doc(),
            json!([{"op":"replace","value":{"id":"id-1","displayName":"Test SCIMv2"}}]),
        )
        .unwrap();
        assert_eq!(out["displayName"], "Test SCIMv2");
        assert_eq!(out["members"], group_doc()["members"]);
        let e = group(json!([{"op":"replace","value":{"id":"other","displayName":"X"}}]));
        assert_eq!(kind(e), Some(ScimType::Mutability));
    }

    #[test]
    fn okta_membership_delta_removes_by_filter_and_adds_with_display() {
        let out = group(json!([
            {"op":"remove","path":format!("members[value eq \"{BOB}\"]")},
            {"op":"add","path":"members","value":[{"value":"23a35c27","display":"test.user@okta.local"}]}
        ]))
        .unwrap();
        assert_eq!(
            out["members"],
            json!([{"value":"u1","display":"ada"},{"value":"23a35c27","display":"test.user@okta.local"}])
        );
    }

    #[test]
    fn okta_full_push_replaces_the_member_set() {
        let out = group(json!([{"op":"replace","path":"members","value":[
            {"value":"23a35c27","display":"test.user"},{"value":BOB,"display":"bob"}]}]))
        .unwrap();
        assert_eq!(member_ids(&out), vec!["23a35c27", BOB]);
        let out = group(json!([{"op":"replace","path":"members","value":[]}])).unwrap();
        assert!(out.get("members").is_none());
    }

    #[test]
    fn entra_replaces_the_work_email_by_value_path_and_the_family_name() {
        let out = user(json!([
            {"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
            {"op":"Replace","path":"name.familyName","value":"updatedFamilyName"}
        ]))
        .unwrap();
        assert_eq!(
            out["emails"],
            json!([{"value":"updatedEmail@microsoft.com","type":"work","primary":true},{"value":"ada@home.example","type":"home"}])
        );
        assert_eq!(
            out["name"],
            json!({"givenName":"Ada","familyName":"updatedFamilyName"})
        );
    }

    #[test]
    fn entras_string_false_disables_the_user() {
        let out = user(json!([{"op":"Replace","path":"active","value":"False"}])).unwrap();
        assert_eq!(out["active"], false);
        let out = user(json!([{"op":"replace","value":{"active":"False"}}])).unwrap();
        assert_eq!(out["active"], false);
    }

    #[test]
    fn entras_path_less_replace_with_dotted_and_urn_keys_updates_nested_attributes() {
        let out = user(json!([
            {"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},
            {"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}
        ]))
        .unwrap();
        assert_eq!(out["displayName"], "Bjfe");
        assert_eq!(out["name"], json!({"givenName":"Kkom","familyName":"Unua"}));
        assert_eq!(
            out[ENT],
            json!({"employeeNumber":"Aklq","department":"R&D","manager":{"value":"m1"}})
        );
        assert_eq!(out["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
        assert!(out.get("name.givenName").is_none());
    }

    #[test]
    fn entras_add_nick_name_and_urn_path_replace_of_employee_number_apply() {
        let out = user(json!([
            {"op":"Add","path":"nickName","value":"Babs"},
            {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"}
        ]))
        .unwrap();
        assert_eq!(out["nickName"], "Babs");
        assert_eq!(out[ENT]["employeeNumber"], "Eqpj");
    }

    #[test]
    fn path_less_replace_of_name_keeps_the_sub_attributes_not_given() {
        let out = user(json!([{"op":"replace","value":{"name":{"givenName":"Augusta"}}}])).unwrap();
        assert_eq!(
            out["name"],
            json!({"givenName":"Augusta","familyName":"Lovelace"})
        );
        let out = user(json!([{"op":"replace","path":"name","value":{"familyName":""}}])).unwrap();
        assert_eq!(out["name"], json!({"givenName":"Ada"}));
    }

    #[test]
    fn entras_add_members_with_null_ref_appends_and_repeats_are_no_ops() {
        let ops = json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}]);
        let out = group(ops.clone()).unwrap();
        assert_eq!(member_ids(&out), vec!["u1", BOB, "f648f8d5ea4e4cd38e9c"]);
        assert_eq!(out["members"][2], json!({"value":"f648f8d5ea4e4cd38e9c"}));
        assert_eq!(patch(&GROUP_TYPE, &out, ops).unwrap(), out);
        let again = group(
            json!([{"op":"add","path":"members","value":[{"value":"u1","display":"renamed"}]}]),
        )
        .unwrap();
        assert_eq!(again, group_doc());
    }

    #[test]
    fn entras_legacy_remove_with_a_value_list_removes_only_those_members() {
        let out =
            group(json!([{"op":"Remove","path":"members","value":[{"$ref":null,"value":BOB}]}]))
                .unwrap();
        assert_eq!(member_ids(&out), vec!["u1"]);
        let out =
            group(json!([{"op":"Remove","path":"members","value":[{"value":"gone"}]}])).unwrap();
        assert_eq!(out, group_doc());
        let out = group(json!([{"op":"Remove","path":"members","value":[{"value":"u1","display":"stale","type":"User"}]}])).unwrap();
        assert_eq!(member_ids(&out), vec![BOB]);
        let out = group(json!([{"op":"remove","path":"members"}])).unwrap();
        assert!(out.get("members").is_none());
    }

    #[test]
    fn entras_filtered_member_remove_removes_the_member_and_a_missing_one_is_fine() {
        let out = group(json!([{"op":"remove","path":"members[value eq \"u1\"]"}])).unwrap();
        assert_eq!(member_ids(&out), vec![BOB]);
        let out = group(json!([{"op":"remove","path":"members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}])).unwrap();
        assert_eq!(out, group_doc());
    }

    #[test]
    fn every_manager_shape_sets_the_manager_and_an_empty_replace_removes_it() {
        let mgr = |ops: Value| user(ops).unwrap()[ENT].get("manager").cloned();
        assert_eq!(
            mgr(
                json!([{"op":"Add","path":"manager","value":[{"$ref":"http://x/scim/Users/00aa","value":"00aa"}]}])
            ),
            Some(json!({"$ref":"http://x/scim/Users/00aa","value":"00aa"}))
        );
        let urn_path = format!("{ENT}:manager");
        assert_eq!(
            mgr(json!([{"op":"add","path":urn_path,"value":"2c2f6fb8"}])),
            Some(json!({"value":"2c2f6fb8"}))
        );
        assert_eq!(
            mgr(json!([{"op":"replace","path":urn_path,"value":{"value":"AXTKDLNRKMKT"}}])),
            Some(json!({"value":"AXTKDLNRKMKT"}))
        );
        for empty in [json!(""), json!({"value":""}), json!(null)] {
            assert_eq!(
                mgr(json!([{"op":"replace","path":urn_path,"value":empty}])),
                None,
                "{empty}"
            );
        }
        assert_eq!(mgr(json!([{"op":"remove","path":urn_path}])), None);
        assert_eq!(
            mgr(json!([{"op":"replace","path":"manager.value","value":"m2"}])),
            Some(json!({"value":"m2"}))
        );
    }

    #[test]
    fn a_path_naming_the_whole_extension_sets_merges_and_removes_it() {
        let out = user(json!([{"op":"replace","path":ENT,"value":{"department":"Ops","costCenter":"7","shoe":null}}])).unwrap();
        assert_eq!(
            out[ENT],
            json!({"employeeNumber":"701984","department":"Ops","costCenter":"7","manager":{"value":"m1"}})
        );
        let out = user(json!([{"op":"remove","path":ENT}])).unwrap();
        assert!(out.get(ENT).is_none());
        assert_eq!(out["schemas"], json!([USER_SCHEMA]));
        let e = user(json!([{"op":"add","path":ENT,"value":{"shoe":"44"}}]));
        assert_eq!(kind(e), Some(ScimType::InvalidPath));
    }

    #[test]
    fn microsoft_validator_path_less_updates_of_group_external_id_and_user_name_apply() {
        let out = group(json!([{"op":"replace","value":{"externalId":"ext-9"}}])).unwrap();
        assert_eq!(out["externalId"], "ext-9");
        let out = user(json!([{"op":"replace","value":{"userName":"new@example.com"}}])).unwrap();
        assert_eq!(out["userName"], "new@example.com");
    }

    #[test]
    fn removing_every_extension_attribute_drops_the_extension_urn() {
        let out = user(
            json!([{"op":"remove","path":"employeeNumber"},{"op":"remove","path":"department"},
            {"op":"remove","path":"manager"}]),
        )
        .unwrap();
        assert_eq!(out["schemas"], json!([USER_SCHEMA]));
        assert!(out.get(ENT).is_none());
    }

    #[test]
    fn a_value_path_replace_that_matches_nothing_creates_the_element_d1() {
        let doc = json!({"schemas":[USER_SCHEMA],"userName":"a","emails":[{"value":"h@x","type":"home"}]});
        let out = patch(
            &USER_TYPE,
            &doc,
            json!([{"op":"replace","path":"emails[type eq \"work\"].value","value":"w@x"}]),
        )
        .unwrap();
        assert_eq!(
            out["emails"],
            json!([{"value":"h@x","type":"home"},{"type":"work","value":"w@x"}])
        );
        let out = patch(
            &USER_TYPE,
            &doc,
            json!([{"op":"add","path":"addresses[type eq \"work\" and primary eq true]",
            "value":{"locality":"Leeds"}}]),
        )
        .unwrap();
        assert_eq!(
            out["addresses"],
            json!([{"type":"work","primary":true,"locality":"Leeds"}])
        );
        let e = patch(
            &USER_TYPE,
            &doc,
            json!([{"op":"replace","path":"emails[type eq \"work\" or type eq \"other\"].value","value":"w@x"}]),
        );
        assert_eq!(kind(e), Some(ScimType::NoTarget));
        let e = patch(
            &USER_TYPE,
            &doc,
            json!([{"op":"replace","path":"emails[value co \"@x\" and type eq \"work\"].value","value":"w@x"}]),
        );
        assert_eq!(kind(e), Some(ScimType::NoTarget));
    }

    #[test]
    fn a_value_path_replace_without_sub_attribute_replaces_the_matching_elements() {
        let out = user(json!([{"op":"replace","path":"emails[type eq \"home\"]","value":{"value":"new@home","type":"home"}}])).unwrap();
        assert_eq!(out["emails"][1], json!({"value":"new@home","type":"home"}));
        assert_eq!(out["emails"][0]["value"], "ada@example.com");
    }

    #[test]
    fn setting_primary_on_one_email_clears_it_on_the_others() {
        let out = user(
            json!([{"op":"replace","path":"emails[type eq \"home\"].primary","value":"True"}]),
        )
        .unwrap();
        assert_eq!(out["emails"][0]["primary"], false);
        assert_eq!(out["emails"][1]["primary"], true);
        let out =
            user(json!([{"op":"add","path":"emails","value":{"value":"new@x","primary":true}}]))
                .unwrap();
        assert_eq!(out["emails"][0]["primary"], false);
        assert_eq!(out["emails"][2], json!({"value":"new@x","primary":true}));
    }

    #[test]
    fn remove_without_a_path_is_no_target() {
        assert_eq!(
            kind(user(json!([{"op":"remove"}]))),
            Some(ScimType::NoTarget)
        );
    }

    #[test]
    fn read_only_paths_are_mutability_errors() {
        for path in [
            "id",
            "meta",
            "meta.created",
            "groups",
            "schemas",
            "manager.displayName",
        ] {
            let e = user(json!([{"op":"replace","path":path,"value":"x"}]));
            assert_eq!(kind(e), Some(ScimType::Mutability), "{path}");
        }
        assert_eq!(
            kind(user(json!([{"op":"remove","path":"groups"}]))),
            Some(ScimType::Mutability)
        );
        assert_eq!(
            kind(user(
                json!([{"op":"add","value":{"groups":[{"value":"g"}]}}])
            )),
            Some(ScimType::Mutability)
        );
    }

    #[test]
    fn unknown_attributes_are_invalid_path_and_wrong_types_invalid_value() {
        assert_eq!(
            kind(user(json!([{"op":"add","path":"shoeSize","value":"44"}]))),
            Some(ScimType::InvalidPath)
        );
        assert_eq!(
            kind(user(json!([{"op":"add","path":"name.nick","value":"x"}]))),
            Some(ScimType::InvalidPath)
        );
        assert_eq!(
            kind(user(json!([{"op":"add","value":{"shoeSize":"44"}}]))),
            Some(ScimType::InvalidPath)
        );
        assert_eq!(
            kind(user(
                json!([{"op":"replace","path":"active","value":"maybe"}])
            )),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            kind(user(json!([{"op":"replace","value":"not an object"}]))),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            kind(user(
                json!([{"op":"replace","path":"userName[value eq \"x\"]","value":"x"}])
            )),
            Some(ScimType::InvalidPath)
        );
        assert_eq!(
            kind(user(
                json!([{"op":"replace","path":"roles[shoe eq \"x\"].value","value":"x"}])
            )),
            Some(ScimType::InvalidFilter)
        );
        // Unknown extensions and null unknowns in a path-less value are ignored.
        assert_eq!(
            user(json!([{"op":"add","value":{"urn:okta:custom":{"x":1},"shoeSize":null}}]))
                .unwrap(),
            user_doc()
        );
    }

    #[test]
    fn removing_a_required_attribute_is_invalid_value() {
        let e = user(json!([{"op":"remove","path":"userName"}])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.contains("userName"));
    }

    #[test]
    fn a_failing_operation_applies_nothing_and_names_its_position() {
        let doc = user_doc();
        let ops = parse_request(
            &body(json!([{"op":"replace","path":"displayName","value":"X"},{"op":"replace","path":"userName","value":7}])),
            10,
        )
        .unwrap();
        let e = apply(&USER_TYPE, "id-1", &doc, &ops).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.starts_with("operation 2:"), "{}", e.detail);
        assert_eq!(doc, user_doc());
    }

    #[test]
    fn operations_apply_in_order() {
        let out = user(json!([
            {"op":"replace","path":"title","value":"First"},
            {"op":"replace","path":"title","value":"Second"},
            {"op":"remove","path":"nickName"},
            {"op":"add","path":"nickName","value":"Nick"}
        ]))
        .unwrap();
        assert_eq!(
            (&out["title"], &out["nickName"]),
            (&json!("Second"), &json!("Nick"))
        );
    }

    #[test]
    fn entras_null_update_clears_with_empty_strings_and_nulls() {
        let out = user(json!([{"op":"Replace","path":"title","value":"T"},{"op":"Replace","path":"title","value":""}])).unwrap();
        assert!(out.get("title").is_none());
        let out = user(json!([{"op":"Replace","path":"externalId","value":null},
            {"op":"Replace","path":"department","value":null}]))
        .unwrap();
        assert!(out.get("externalId").is_none());
        assert!(out[ENT].get("department").is_none());
    }

    #[test]
    fn password_operations_are_accepted_and_never_stored() {
        let out = user(json!([{"op":"replace","value":{"password":"s3cret"}},{"op":"replace","path":"password","value":"x"}])).unwrap();
        assert_eq!(out, user_doc());
    }

    #[test]
    fn parse_request_checks_the_envelope_ops_and_paths() {
        let ok = parse_request(
            &json!({"schemas":["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"],"operations":[
                {"op":"Add","path":"members","value":[]},{"OP":"REPLACE","value":{}},{"op":"remove","path":"title","value":null}]}),
            10,
        )
        .unwrap();
        assert_eq!(
            ok.iter().map(|o| o.op).collect::<Vec<_>>(),
            vec![OpKind::Add, OpKind::Replace, OpKind::Remove]
        );
        assert_eq!(ok[2].value, None);
        assert_eq!(ok[0].path.as_ref().unwrap().attr.name, "members");
        let bad = |b: Value| parse_request(&b, 2).unwrap_err().scim_type;
        assert_eq!(
            bad(json!({"Operations":[{"op":"add","value":{}}]})),
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(bad(body(json!([]))), Some(ScimType::InvalidSyntax));
        assert_eq!(
            bad(body(json!([{"op":"merge","value":{}}]))),
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(
            bad(body(json!([{"op":"add","path":"title"}]))),
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(
            bad(body(
                json!([{"op":"add","path":"emails[type eq","value":"x"}])
            )),
            Some(ScimType::InvalidPath)
        );
        assert_eq!(
            bad(body(json!([{"op":"remove","path":5}]))),
            Some(ScimType::InvalidPath)
        );
        assert_eq!(
            bad(body(
                json!([{"op":"remove","path":"a"},{"op":"remove","path":"b"},{"op":"remove","path":"c"}])
            )),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(bad(json!("nope")), Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn member_values_counts_the_members_operations_name() {
        let ops = parse_request(
            &body(json!([
                {"op":"remove","path":format!("members[value eq \"{BOB}\"]")},
                {"op":"add","path":"members","value":[{"value":"a"},{"value":"b"}]},
                {"op":"Remove","path":"members","value":[{"value":"c"}]},
                {"op":"replace","value":{"displayName":"X","members":[{"value":"d"}]}},
                {"op":"replace","path":"displayName","value":"Y"}
            ])),
            10,
        )
        .unwrap();
        assert_eq!(member_values(&ops), 5);
    }

    #[test]
    fn member_changes_lists_added_and_removed_ids() {
        let after = group(json!([
            {"op":"remove","path":"members[value eq \"u1\"]"},
            {"op":"add","path":"members","value":[{"value":"u9"}]}
        ]))
        .unwrap();
        assert_eq!(
            member_changes(&group_doc(), &after),
            (vec!["u9".to_owned()], vec!["u1".to_owned()])
        );
    }
}
