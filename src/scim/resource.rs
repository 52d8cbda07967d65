//! SCIM resource documents (RFC 7643 §2–§4): validating and canonicalising the User and Group
//! bodies clients send (POST, PUT, and PATCH values), with the Okta and Entra quirks folded in;
//! rendering a stored canonical document with `id` and `meta`; and projecting a representation
//! through `attributes` / `excludedAttributes` and the `returned` rules (RFC 7644 §3.9).
//!
//! The *canonical document* is what the store keeps: an object with `schemas` and every
//! assigned attribute under its schema spelling, extension attributes nested under their URN,
//! without `id`, `meta`, `password`, nulls, empty values or read-only attributes (except Group
//! `members[].display`, which is kept to show names). No I/O.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::ast::AttrPath;
use super::error::ScimError;
use super::schema::{
    AttrDef, AttrType, COMMON, GROUP, Mutability, Resolved, ResourceTypeDef, Returned,
};

type Object = Map<String, Value>;

/// Why a body is being normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// POST: a new resource.
    Create,
    /// PUT (and the result of a PATCH): the whole resource is replaced.
    Replace,
}

/// Validates and canonicalises a client-supplied User or Group body (POST or PUT).
///
/// Errors: not an object, or `schemas` without the core URN → 400 `invalidSyntax`; an unknown
/// attribute with a value → 400 `invalidSyntax`; a value of the wrong type or a missing
/// required attribute → 400 `invalidValue`. Both modes behave the same today: immutability
/// against the stored document is the caller's check.
pub fn normalize(
    rt: &'static ResourceTypeDef,
    body: &Value,
    _mode: Mode,
) -> Result<Value, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    check_schemas(rt, body)?;
    let mut out = Object::new();
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some((ext, true)) = rt.schema_by_urn(key) {
            match value {
                Value::Null => {}
                Value::Object(attrs) => {
                    for (name, v) in attrs {
                        match rt.resolve(&split_key(Some(ext.id), name)) {
                            Ok(r) => place(&mut out, &r, v)?,
                            Err(_) if v.is_null() => {}
                            Err(_) => {
                                return Err(ScimError::invalid_syntax(format!(
                                    "unknown attribute `{}:{name}`",
                                    ext.id
                                )));
                            }
                        }
                    }
                }
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "`{}` must be an object of extension attributes",
                        ext.id
                    )));
                }
            }
            continue;
        }
        match resolve_key(rt, key) {
            Some(r) => place(&mut out, &r, value)?,
            // Unknown extensions (`urn:okta:…`) and unknown attributes without a value are dropped.
            None if value.is_null() || is_urn(key) => {}
            None => {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown attribute `{key}`"
                )));
            }
        }
    }
    check_required(rt, &out)?;
    let schemas = schemas_for(rt, &out);
    out.insert("schemas".into(), schemas);
    Ok(Value::Object(out))
}

/// Canonicalises a single attribute value for `resolved` (used by PATCH for `value`s).
///
/// With `resolved.sub`, `value` is the sub-attribute's value. For a multi-valued attribute,
/// `whole_multi` says whether `value` is the whole set (an array, or a single value that is
/// wrapped) or one element. Returns `Value::Null` when the value is unassigned (null, empty
/// string, empty array or object). Does not check mutability.
pub fn normalize_value(
    resolved: &Resolved,
    value: &Value,
    whole_multi: bool,
) -> Result<Value, ScimError> {
    let name = resolved_name(resolved);
    match resolved.sub {
        Some(sub) => scalar(sub, Some(resolved.attr), value, &name),
        None if resolved.attr.multi_valued && whole_multi => multi(resolved.attr, value, &name),
        None => single(resolved.attr, value, &name),
    }
}

/// What the store keeps beside a canonical document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// `User` or `Group`.
    pub resource_type: &'static str,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    /// The absolute URI of the resource.
    pub location: String,
    /// The weak ETag, e.g. `W/"3"`.
    pub version: String,
}

/// The full representation: the canonical document plus `id` and `meta`.
pub fn render(id: &str, doc: &Value, meta: &Meta) -> Value {
    let mut out = doc.as_object().cloned().unwrap_or_default();
    out.insert("id".into(), Value::from(id));
    out.insert(
        "meta".into(),
        json!({
            "resourceType": meta.resource_type,
            "created": meta.created.to_rfc3339_opts(SecondsFormat::Millis, true),
            "lastModified": meta.last_modified.to_rfc3339_opts(SecondsFormat::Millis, true),
            "location": meta.location,
            "version": meta.version,
        }),
    );
    Value::Object(out)
}

/// Applies RFC 7644 §3.9 `attributes` / `excludedAttributes` and the `returned` rules to a
/// rendered resource. `attributes` wins when both are given; `returned: always` attributes
/// (`id`, `schemas`) are always kept, `returned: never` ones never shown, `returned: request`
/// ones only when listed. Unknown names are ignored.
pub fn project(
    rt: &'static ResourceTypeDef,
    rendered: &Value,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> Value {
    let Value::Object(src) = rendered else {
        return rendered.clone();
    };
    let mut out = if attributes.is_empty() {
        let mut out = src.clone();
        for target in excluded.iter().filter_map(|p| target(rt, p)) {
            exclude(&mut out, target);
        }
        out
    } else {
        include(rt, src, attributes)
    };
    for (schema, extension) in rt.schemas().chain(std::iter::once((&COMMON, false))) {
        for a in schema.attributes {
            let hide = match a.returned {
                Returned::Never => true,
                Returned::Request => attributes.is_empty(),
                Returned::Always | Returned::Default => false,
            };
            if hide {
                remove_at(&mut out, Loc::new(extension.then_some(schema.id), a.name));
            }
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// Keys and places

/// Resolves a body key: a plain attribute name, a dotted `attr.sub`, or a URN-qualified
/// `urn:…:attr[.sub]` (the URN is matched against the type's schemas, so its `2.0` is safe).
/// `None` for anything unknown.
pub(crate) fn resolve_key(rt: &'static ResourceTypeDef, key: &str) -> Option<Resolved> {
    let path = match rt.schemas().find_map(|(s, _)| {
        strip_prefix_ci(key, s.id)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|rest| (s.id, rest))
    }) {
        Some((urn, rest)) => split_key(Some(urn), rest),
        None if is_urn(key) => return None,
        None => split_key(None, key),
    };
    rt.resolve(&path).ok()
}

fn split_key(urn: Option<&str>, key: &str) -> AttrPath {
    let (name, sub) = match key.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (key, None),
    };
    AttrPath {
        urn: urn.map(str::to_owned),
        name: name.to_owned(),
        sub: sub.map(str::to_owned),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Whether `key` starts with `urn:` (any case).
pub(crate) fn is_urn(key: &str) -> bool {
    strip_prefix_ci(key, "urn:").is_some()
}

/// The path of a resolved attribute as written in messages.
pub(crate) fn resolved_name(r: &Resolved) -> String {
    let mut s = String::new();
    if r.extension {
        s.push_str(r.schema.id);
        s.push(':');
    }
    s.push_str(r.attr.name);
    if let Some(sub) = r.sub {
        s.push('.');
        s.push_str(sub.name);
    }
    s
}

/// Group `members`, whose read-only `display` is kept.
pub(crate) fn is_members(attr: &AttrDef) -> bool {
    GROUP.attr("members").is_some_and(|m| std::ptr::eq(m, attr))
}

/// Whether a client may set what `r` names. Read-only and write-only attributes are not
/// stored (they are ignored on POST/PUT); Group `members.display` is the exception.
pub(crate) fn writable(r: &Resolved) -> bool {
    let attr_ok = matches!(
        r.attr.mutability,
        Mutability::ReadWrite | Mutability::Immutable
    );
    attr_ok && r.sub.is_none_or(|sub| sub_writable(r.attr, sub))
}

fn sub_writable(parent: &AttrDef, sub: &AttrDef) -> bool {
    match sub.mutability {
        Mutability::ReadWrite | Mutability::Immutable => true,
        Mutability::WriteOnly => false,
        Mutability::ReadOnly => is_members(parent) && sub.name == "display",
    }
}

/// The object holding `r`'s attribute: the document, or its extension object (created).
pub(crate) fn container_mut<'a>(doc: &'a mut Object, r: &Resolved) -> &'a mut Object {
    if !r.extension {
        return doc;
    }
    object_mut(
        doc.entry(r.schema.id)
            .or_insert_with(|| Value::Object(Object::new())),
    )
}

/// The object holding `r`'s attribute, if there is one.
pub(crate) fn container<'a>(doc: &'a Object, r: &Resolved) -> Option<&'a Object> {
    if r.extension {
        doc.get(r.schema.id)?.as_object()
    } else {
        Some(doc)
    }
}

/// `slot` as an object, replacing whatever else it held.
pub(crate) fn object_mut(slot: &mut Value) -> &mut Object {
    match slot {
        Value::Object(m) => m,
        other => {
            *other = Value::Object(Object::new());
            object_mut(other)
        }
    }
}

/// Puts a client value for `r` into `out`, ignoring what clients may not set.
fn place(out: &mut Object, r: &Resolved, value: &Value) -> Result<(), ScimError> {
    if !writable(r) {
        return Ok(());
    }
    if r.sub.is_some() && r.attr.multi_valued {
        return Err(ScimError::invalid_syntax(format!(
            "`{}` must be given as a list of values",
            resolved_name(&Resolved { sub: None, ..*r })
        )));
    }
    let v = normalize_value(r, value, true)?;
    if v.is_null() {
        return Ok(());
    }
    let slot = container_mut(out, r)
        .entry(r.attr.name)
        .or_insert(Value::Null);
    match (r.sub, v) {
        (Some(sub), v) => {
            object_mut(slot).insert(sub.name.into(), v);
        }
        // The same complex attribute given twice (`name` and `name.givenName`): merge.
        (None, Value::Object(new)) if slot.is_object() => object_mut(slot).extend(new),
        (None, v) => *slot = v,
    }
    Ok(())
}

fn check_schemas(rt: &ResourceTypeDef, body: &Object) -> Result<(), ScimError> {
    let schemas = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v);
    let has_core = match schemas {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|s| s.eq_ignore_ascii_case(rt.schema.id)),
        _ => false,
    };
    if has_core {
        Ok(())
    } else {
        Err(ScimError::invalid_syntax(format!(
            "`schemas` must be an array containing `{}`",
            rt.schema.id
        )))
    }
}

fn check_required(rt: &ResourceTypeDef, out: &Object) -> Result<(), ScimError> {
    for (schema, extension) in rt.schemas() {
        let holder = if extension {
            out.get(schema.id).and_then(Value::as_object)
        } else {
            Some(out)
        };
        for a in schema.attributes.iter().filter(|a| a.required) {
            if holder.and_then(|h| h.get(a.name)).is_none() {
                return Err(ScimError::invalid_value(format!(
                    "`{}` is required",
                    a.name
                )));
            }
        }
    }
    Ok(())
}

/// The core URN plus each extension URN that has an assigned attribute.
fn schemas_for(rt: &ResourceTypeDef, out: &Object) -> Value {
    let mut schemas = vec![Value::from(rt.schema.id)];
    for (schema, extension) in rt.schemas() {
        if extension
            && out
                .get(schema.id)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        {
            schemas.push(Value::from(schema.id));
        }
    }
    Value::Array(schemas)
}

// ---------------------------------------------------------------------------------------------
// Values

/// A whole multi-valued attribute: an array, or a single value that is wrapped (SCIM-SDK#47).
fn multi(attr: &'static AttrDef, value: &Value, name: &str) -> Result<Value, ScimError> {
    let items: &[Value] = match value {
        Value::Null => return Ok(Value::Null),
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    };
    let mut out = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        if item.is_array() {
            return Err(ScimError::invalid_value(format!(
                "`{name}` must be a list of values, not a list of lists"
            )));
        }
        let v = single(attr, item, name)?;
        if !v.is_null() && seen.insert(v.to_string()) {
            out.push(v);
        }
    }
    one_primary(&mut out);
    Ok(if out.is_empty() {
        Value::Null
    } else {
        Value::Array(out)
    })
}

/// Keeps the first `primary: true` and sets the others to false (RFC 7643 §2.4).
pub(crate) fn one_primary(items: &mut [Value]) {
    let mut seen = false;
    for item in items {
        if let Some(p) = item.get_mut("primary").filter(|p| **p == Value::Bool(true)) {
            if seen {
                *p = Value::Bool(false);
            }
            seen = true;
        }
    }
}

/// One value of `attr` (the attribute's value if singular, one element if multi-valued).
fn single(attr: &'static AttrDef, value: &Value, name: &str) -> Result<Value, ScimError> {
    if attr.ty != AttrType::Complex {
        return scalar(attr, None, value, name);
    }
    match value {
        Value::Null => Ok(Value::Null),
        Value::Object(fields) => complex(attr, fields, name),
        // A singular complex attribute sent as a one-element list (Entra's manager).
        Value::Array(items) if !attr.multi_valued => match items.as_slice() {
            [] => Ok(Value::Null),
            [Value::Object(fields)] => complex(attr, fields, name),
            [Value::Null] => Ok(Value::Null),
            [v @ (Value::String(_) | Value::Bool(_) | Value::Number(_))] => {
                bare_value(attr, v, name)
            }
            _ => Err(ScimError::invalid_value(format!(
                "`{name}` takes a single value"
            ))),
        },
        Value::Array(_) => Err(ScimError::invalid_value(format!(
            "an element of `{name}` must be an object"
        ))),
        // A bare value for a complex attribute with a `value` sub-attribute (Entra's manager
        // as a string, `"emails": "a@b"`).
        scalar_value => bare_value(attr, scalar_value, name),
    }
}

fn bare_value(attr: &'static AttrDef, value: &Value, name: &str) -> Result<Value, ScimError> {
    if attr.sub("value").is_none() {
        return Err(ScimError::invalid_value(format!(
            "`{name}` must be an object"
        )));
    }
    let mut fields = Object::new();
    fields.insert("value".into(), value.clone());
    complex(attr, &fields, name)
}

fn complex(attr: &'static AttrDef, fields: &Object, name: &str) -> Result<Value, ScimError> {
    let mut out = Object::new();
    for (key, v) in fields {
        let Some(sub) = attr.sub(key) else {
            if v.is_null() {
                continue;
            }
            return Err(ScimError::invalid_syntax(format!(
                "unknown sub-attribute `{name}.{key}`"
            )));
        };
        if !sub_writable(attr, sub) {
            continue;
        }
        let v = scalar(sub, Some(attr), v, &format!("{name}.{}", sub.name))?;
        if !v.is_null() {
            out.insert(sub.name.into(), v);
        }
    }
    if out.is_empty() {
        return Ok(Value::Null);
    }
    if is_members(attr) && !out.contains_key("value") {
        return Err(ScimError::invalid_value(format!(
            "each element of `{name}` needs a `value`"
        )));
    }
    Ok(Value::Object(out))
}

/// A non-complex value, coerced to its type; `Value::Null` when unassigned.
fn scalar(
    def: &'static AttrDef,
    parent: Option<&'static AttrDef>,
    value: &Value,
    name: &str,
) -> Result<Value, ScimError> {
    let wrong = |what: &str| ScimError::invalid_value(format!("`{name}` must be {what}"));
    if value.is_null() {
        return Ok(Value::Null);
    }
    match def.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            let s = value.as_str().ok_or_else(|| wrong("a string"))?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            // Member types are interpreted by idbridge, so only the canonical ones are accepted.
            if parent.is_some_and(is_members) && def.name == "type" {
                let canonical = def
                    .canonical_values
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(s))
                    .ok_or_else(|| wrong("`User` or `Group`"))?;
                return Ok(Value::from(*canonical));
            }
            Ok(Value::from(s))
        }
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            // Entra sends "True" / "False" (reference §0.2).
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            Value::String(s) if s.is_empty() => Ok(Value::Null),
            _ => Err(wrong("a boolean")),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            _ => Err(wrong("an integer")),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(value.clone()),
            _ => Err(wrong("a number")),
        },
        AttrType::DateTime => {
            let s = value
                .as_str()
                .ok_or_else(|| wrong("an RFC 3339 date-time string"))?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            DateTime::parse_from_rfc3339(s).map_err(|_| wrong("an RFC 3339 date-time string"))?;
            Ok(Value::from(s))
        }
        AttrType::Complex => Err(wrong("a simple value")),
    }
}

// ---------------------------------------------------------------------------------------------
// Projection

/// Where a top-level attribute sits in a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Loc {
    /// The extension URN holding it, for extension attributes.
    ext: Option<&'static str>,
    name: &'static str,
}

impl Loc {
    fn new(ext: Option<&'static str>, name: &'static str) -> Self {
        Self { ext, name }
    }
}

/// What an `attributes` / `excludedAttributes` entry names.
enum Target {
    Attr {
        loc: Loc,
        def: &'static AttrDef,
        sub: Option<&'static AttrDef>,
    },
    /// A whole extension, named by its URN alone.
    Extension(&'static str),
}

fn target(rt: &'static ResourceTypeDef, path: &AttrPath) -> Option<Target> {
    match rt.resolve(path) {
        Ok(r) => Some(Target::Attr {
            loc: Loc::new(r.extension.then_some(r.schema.id), r.attr.name),
            def: r.attr,
            sub: r.sub,
        }),
        Err(_) => {
            // A bare URN parses as `urn:…:2.0` + name `User`; compare it whole.
            let written = super::schema::display(path);
            rt.extensions
                .iter()
                .find(|(s, _)| s.id.eq_ignore_ascii_case(&written))
                .map(|(s, _)| Target::Extension(s.id))
        }
    }
}

fn get_at(src: &Object, loc: Loc) -> Option<&Value> {
    match loc.ext {
        Some(urn) => src.get(urn)?.get(loc.name),
        None => src.get(loc.name),
    }
}

fn put_at(out: &mut Object, loc: Loc, v: Value) {
    let holder = match loc.ext {
        Some(urn) => object_mut(out.entry(urn).or_insert(Value::Null)),
        None => out,
    };
    holder.insert(loc.name.into(), v);
}

fn remove_at(out: &mut Object, loc: Loc) {
    match loc.ext {
        Some(urn) => {
            if let Some(Value::Object(ext)) = out.get_mut(urn) {
                ext.remove(loc.name);
                if ext.is_empty() {
                    out.remove(urn);
                }
            }
        }
        None => {
            out.remove(loc.name);
        }
    }
}

fn include(rt: &'static ResourceTypeDef, src: &Object, attributes: &[AttrPath]) -> Object {
    let mut out = Object::new();
    for a in COMMON.attributes.iter().chain(rt.schema.attributes) {
        if a.returned == Returned::Always
            && let Some(v) = src.get(a.name)
        {
            out.insert(a.name.into(), v.clone());
        }
    }
    // Per attribute: `None` for the whole attribute, or the sub-attributes asked for.
    let mut wanted: BTreeMap<Loc, Option<BTreeSet<&'static str>>> = BTreeMap::new();
    let mut whole_extensions = Vec::new();
    for t in attributes.iter().filter_map(|p| target(rt, p)) {
        match t {
            Target::Attr { loc, sub: None, .. } => {
                wanted.insert(loc, None);
            }
            Target::Attr {
                loc,
                sub: Some(sub),
                ..
            } => {
                if let Some(subs) = wanted.entry(loc).or_insert_with(|| Some(BTreeSet::new())) {
                    subs.insert(sub.name);
                }
            }
            Target::Extension(urn) => whole_extensions.push(urn),
        }
    }
    for (loc, subs) in wanted {
        let Some(v) = get_at(src, loc) else { continue };
        let v = match subs {
            None => Some(v.clone()),
            Some(subs) => keep_subs(v, &subs),
        };
        if let Some(v) = v {
            put_at(&mut out, loc, v);
        }
    }
    for urn in whole_extensions {
        if let Some(v) = src.get(urn) {
            out.insert(urn.into(), v.clone());
        }
    }
    out
}

/// `v` (an object, or an array of objects) restricted to `subs`; `None` if nothing is left.
fn keep_subs(v: &Value, subs: &BTreeSet<&'static str>) -> Option<Value> {
    let keep = |m: &Object| {
        let kept: Object = m
            .iter()
            .filter(|(k, _)| subs.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!kept.is_empty()).then_some(Value::Object(kept))
    };
    match v {
        Value::Object(m) => keep(m),
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(Value::as_object)
                .filter_map(keep)
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

fn exclude(out: &mut Object, t: Target) {
    match t {
        Target::Attr { def, .. } if def.returned == Returned::Always => {}
        Target::Attr { loc, sub: None, .. } => remove_at(out, loc),
        Target::Attr {
            loc,
            sub: Some(sub),
            ..
        } => {
            if sub.returned == Returned::Always {
                return;
            }
            let Some(v) = get_at(out, loc) else { return };
            let rest = match v {
                Value::Object(m) => {
                    let mut m = m.clone();
                    m.remove(sub.name);
                    (!m.is_empty()).then_some(Value::Object(m))
                }
                Value::Array(items) => {
                    let rest: Vec<Value> = items
                        .iter()
                        .filter_map(|item| {
                            let mut m = item.as_object()?.clone();
                            m.remove(sub.name);
                            (!m.is_empty()).then_some(Value::Object(m))
                        })
                        .collect();
                    (!rest.is_empty()).then_some(Value::Array(rest))
                }
                other => Some(other.clone()),
            };
            match rest {
                Some(v) => put_at(out, loc, v),
                None => remove_at(out, loc),
            }
        }
        Target::Extension(urn) => {
            out.remove(urn);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::scim::ScimType;
    use crate::scim::schema::{
        ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, GROUP_TYPE, USER_SCHEMA, USER_TYPE,
    };

    fn user(body: Value) -> Result<Value, ScimError> {
        normalize(&USER_TYPE, &body, Mode::Create)
    }

    fn group(body: Value) -> Result<Value, ScimError> {
        normalize(&GROUP_TYPE, &body, Mode::Create)
    }

    fn path(s: &str) -> AttrPath {
        // Test-only: split a written path the way the parser would.
        let (urn, rest) = match s.rfind(':') {
            Some(i) if s.starts_with("urn:") => (Some(s[..i].to_owned()), &s[i + 1..]),
            _ => (None, s),
        };
        let (name, sub) = match rest.split_once('.') {
            Some((n, sub)) => (n.to_owned(), Some(sub.to_owned())),
            None => (rest.to_owned(), None),
        };
        AttrPath { urn, name, sub }
    }

    fn paths(list: &[&str]) -> Vec<AttrPath> {
        list.iter().map(|s| path(s)).collect()
    }

    #[test]
    fn oktas_create_body_keeps_profile_and_emails_and_drops_password_and_groups() {
        let doc = user(json!({
            "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName":"test.user@okta.local",
            "name":{"givenName":"Test","familyName":"User"},
            "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
            "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7",
            "groups":[],"password":"1mz050nq","active":true
        }))
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "schemas":[USER_SCHEMA],
                "userName":"test.user@okta.local",
                "name":{"givenName":"Test","familyName":"User"},
                "emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
                "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7",
                "active":true
            })
        );
    }

    #[test]
    fn oktas_put_body_drops_id_meta_groups_and_keeps_email_display() {
        let doc = normalize(
            &USER_TYPE,
            &json!({
                "schemas":[USER_SCHEMA],"id":"23a35c27","userName":"test.user@okta.local",
                "name":{"givenName":"Another","middleName":"Excited","familyName":"User"},
                "emails":[{"primary":true,"value":"test.user@okta.local","type":"work","display":"test.user@okta.local"}],
                "active":true,"groups":[{"value":"g1","display":"G"}],"meta":{"resourceType":"User"}
            }),
            Mode::Replace,
        )
        .unwrap();
        assert!(
            doc.get("id").is_none() && doc.get("meta").is_none() && doc.get("groups").is_none()
        );
        assert_eq!(doc["emails"][0]["display"], "test.user@okta.local");
        assert_eq!(doc["name"]["middleName"], "Excited");
    }

    #[test]
    fn entras_create_body_with_meta_nulls_and_top_level_extension_nulls_normalises() {
        let doc = user(json!({
            "schemas":[USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_00aa","active":true,
            "emails":[{"primary":true,"type":"work","value":"Test_User_11bb@testuser.com"}],
            "meta":{"resourceType":"User"},
            "name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},
            "roles":[],"addresses":null,"phoneNumbers":null,"title":null,"department":null,"manager":null
        }))
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "schemas":[USER_SCHEMA],
                "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_00aa","active":true,
                "emails":[{"primary":true,"type":"work","value":"Test_User_11bb@testuser.com"}],
                "name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"}
            })
        );
    }

    #[test]
    fn top_level_extension_attributes_move_under_their_urn() {
        let doc = user(json!({
            "schemas":[USER_SCHEMA],"userName":"ada","department":"R&D",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user":{"COSTCENTER":"42"},
            "urn:okta:custom:attributes":{"shoe":"44"}
        }))
        .unwrap();
        assert_eq!(doc["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
        assert_eq!(
            doc[ENTERPRISE_USER_SCHEMA],
            json!({"department":"R&D","costCenter":"42"})
        );
        assert!(doc.get("urn:okta:custom:attributes").is_none());
    }

    #[test]
    fn entras_group_with_the_adscim_schema_is_accepted_and_the_urn_dropped() {
        let doc = group(json!({
            "schemas":[GROUP_SCHEMA,"http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId":"8aa1a0c0","displayName":"displayName","meta":{"resourceType":"Group"}
        }))
        .unwrap();
        assert_eq!(
            doc,
            json!({"schemas":[GROUP_SCHEMA],"externalId":"8aa1a0c0","displayName":"displayName"})
        );
    }

    #[test]
    fn keys_match_case_insensitively_and_are_respelled() {
        let doc = user(json!({
            "SCHEMAS":["URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"],
            "USERNAME":"ada","Name":{"GIVENNAME":"Ada"},"Emails":[{"Value":"a@x","TYPE":"work"}]
        }))
        .unwrap();
        assert_eq!(doc["userName"], "ada");
        assert_eq!(doc["name"], json!({"givenName":"Ada"}));
        assert_eq!(doc["emails"], json!([{"value":"a@x","type":"work"}]));
    }

    #[test]
    fn string_booleans_from_entra_become_json_booleans() {
        let doc = user(
            json!({"schemas":[USER_SCHEMA],"userName":"a","active":"False",
            "roles":[{"value":"r","primary":"True"}]}),
        )
        .unwrap();
        assert_eq!(doc["active"], false);
        assert_eq!(doc["roles"][0]["primary"], true);
        let e = user(json!({"schemas":[USER_SCHEMA],"userName":"a","active":"nope"})).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn missing_or_empty_user_name_is_invalid_value_naming_it() {
        for body in [
            json!({"schemas":[USER_SCHEMA],"displayName":"x"}),
            json!({"schemas":[USER_SCHEMA],"userName":""}),
            json!({"schemas":[USER_SCHEMA],"userName":null}),
        ] {
            let e = user(body).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)));
            assert!(e.detail.contains("userName"), "{}", e.detail);
        }
        let e = group(json!({"schemas":[GROUP_SCHEMA],"members":[]})).unwrap_err();
        assert!(e.detail.contains("displayName"));
    }

    #[test]
    fn unknown_attributes_with_values_are_invalid_syntax_and_null_ones_are_dropped() {
        let e = user(json!({"schemas":[USER_SCHEMA],"userName":"a","shoeSize":44})).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        assert!(e.detail.contains("shoeSize"));
        let e =
            user(json!({"schemas":[USER_SCHEMA],"userName":"a","name":{"nick":"x"}})).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        assert!(user(json!({"schemas":[USER_SCHEMA],"userName":"a","shoeSize":null})).is_ok());
    }

    #[test]
    fn bodies_without_the_core_schema_or_not_objects_are_invalid_syntax() {
        for body in [
            json!({"userName":"a"}),
            json!({"schemas":[GROUP_SCHEMA],"userName":"a"}),
            json!({"schemas":USER_SCHEMA,"userName":"a"}),
            json!([1]),
        ] {
            assert_eq!(
                user(body).unwrap_err().scim_type,
                Some(ScimType::InvalidSyntax)
            );
        }
    }

    #[test]
    fn wrong_types_are_invalid_value() {
        for body in [
            json!({"schemas":[USER_SCHEMA],"userName":7}),
            json!({"schemas":[USER_SCHEMA],"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":701984}}),
            json!({"schemas":[USER_SCHEMA],"userName":"a","name":"Ada"}),
            json!({"schemas":[USER_SCHEMA],"userName":"a","emails":[["a@x"]]}),
        ] {
            assert_eq!(
                user(body).unwrap_err().scim_type,
                Some(ScimType::InvalidValue)
            );
        }
    }

    #[test]
    fn a_single_object_for_a_multi_valued_attribute_is_wrapped() {
        let doc =
            user(json!({"schemas":[USER_SCHEMA],"userName":"a","emails":{"value":"a@x"}})).unwrap();
        assert_eq!(doc["emails"], json!([{"value":"a@x"}]));
    }

    #[test]
    fn at_most_one_primary_survives_and_duplicates_and_empties_collapse() {
        let doc = user(json!({"schemas":[USER_SCHEMA],"userName":"a","emails":[
            {"value":"a@x","primary":true},{"value":"b@x","primary":"true"},
            {"value":"a@x","primary":true},null,{},{"value":""}
        ]}))
        .unwrap();
        assert_eq!(
            doc["emails"],
            json!([{"value":"a@x","primary":true},{"value":"b@x","primary":false}])
        );
    }

    #[test]
    fn empty_strings_and_empty_values_are_unassigned() {
        let doc = user(
            json!({"schemas":[USER_SCHEMA],"userName":"a","title":"","name":{"givenName":""},
            "addresses":[],"nickName":null}),
        )
        .unwrap();
        assert_eq!(doc, json!({"schemas":[USER_SCHEMA],"userName":"a"}));
    }

    #[test]
    fn every_manager_shape_becomes_a_value_object() {
        let m = |v: Value| {
            user(json!({"schemas":[USER_SCHEMA],"userName":"a",ENTERPRISE_USER_SCHEMA:{"manager":v}}))
                .unwrap()
                .get(ENTERPRISE_USER_SCHEMA)
                .map(|e| e["manager"].clone())
        };
        assert_eq!(
            m(json!({"value":"m1","displayName":"Boss"})),
            Some(json!({"value":"m1"}))
        );
        assert_eq!(m(json!("m1")), Some(json!({"value":"m1"})));
        assert_eq!(
            m(json!([{"$ref":"https://x/Users/m1","value":"m1"}])),
            Some(json!({"$ref":"https://x/Users/m1","value":"m1"}))
        );
        assert_eq!(m(json!("")), None);
        assert_eq!(m(json!({"value":""})), None);
        assert_eq!(m(json!(null)), None);
    }

    #[test]
    fn group_members_keep_display_and_ref_and_canonical_type() {
        let doc = group(
            json!({"schemas":[GROUP_SCHEMA],"displayName":"G","members":[
                {"value":"u1","display":"Ada","type":"user","$ref":null},
                {"value":"g2","type":"GROUP","$ref":"https://x/Groups/g2"}
            ]}),
        )
        .unwrap();
        assert_eq!(
            doc["members"],
            json!([{"value":"u1","display":"Ada","type":"User"},{"value":"g2","type":"Group","$ref":"https://x/Groups/g2"}])
        );
        for bad in [
            json!({"display":"no value"}),
            json!({"value":"u1","type":"Robot"}),
            json!({"value":5}),
        ] {
            let e = group(json!({"schemas":[GROUP_SCHEMA],"displayName":"G","members":[bad]}))
                .unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        }
    }

    #[test]
    fn normalising_a_canonical_document_changes_nothing() {
        let doc = user(
            json!({"schemas":[USER_SCHEMA],"userName":"a","emails":[{"value":"a@x","primary":true}],
            ENTERPRISE_USER_SCHEMA:{"manager":"m1","department":"D"}}),
        )
        .unwrap();
        assert_eq!(normalize(&USER_TYPE, &doc, Mode::Replace).unwrap(), doc);
    }

    #[test]
    fn date_times_must_parse_and_are_kept_as_sent() {
        let m = GROUP_TYPE.resolve(&path("meta.lastModified")).unwrap();
        assert_eq!(
            normalize_value(&m, &json!("2011-05-13T04:42:34+02:00"), true).unwrap(),
            json!("2011-05-13T04:42:34+02:00")
        );
        assert!(normalize_value(&m, &json!("yesterday"), true).is_err());
    }

    #[test]
    fn normalize_value_distinguishes_a_whole_set_from_one_element() {
        let emails = USER_TYPE.resolve(&path("emails")).unwrap();
        assert_eq!(
            normalize_value(&emails, &json!({"value":"a"}), true).unwrap(),
            json!([{"value":"a"}])
        );
        assert_eq!(
            normalize_value(&emails, &json!({"value":"a"}), false).unwrap(),
            json!({"value":"a"})
        );
        let given = USER_TYPE.resolve(&path("name.givenName")).unwrap();
        assert_eq!(
            normalize_value(&given, &json!(""), true).unwrap(),
            Value::Null
        );
    }

    fn meta() -> Meta {
        Meta {
            resource_type: "User",
            created: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            last_modified: Utc.with_ymd_and_hms(2026, 1, 3, 3, 4, 5).unwrap(),
            location: "https://idb.example/scim/v2/okta/Users/u1".into(),
            version: "W/\"3\"".into(),
        }
    }

    fn rendered_user() -> Value {
        let doc = user(
            json!({"schemas":[USER_SCHEMA,ENTERPRISE_USER_SCHEMA],"userName":"ada",
            "name":{"givenName":"Ada","familyName":"Lovelace"},
            "emails":[{"value":"a@x","type":"work"},{"value":"b@x","type":"home"}],
            ENTERPRISE_USER_SCHEMA:{"department":"R&D","manager":{"value":"m1"}}}),
        )
        .unwrap();
        render("u1", &doc, &meta())
    }

    #[test]
    fn render_adds_id_and_meta_with_utc_millisecond_times() {
        let r = rendered_user();
        assert_eq!(r["id"], "u1");
        assert_eq!(
            r["meta"],
            json!({"resourceType":"User","created":"2026-01-02T03:04:05.000Z","lastModified":"2026-01-03T03:04:05.000Z",
                "location":"https://idb.example/scim/v2/okta/Users/u1","version":"W/\"3\""})
        );
        assert_eq!(r["userName"], "ada");
    }

    #[test]
    fn attributes_return_only_those_listed_plus_id_and_schemas() {
        let p = project(
            &USER_TYPE,
            &rendered_user(),
            &paths(&["NAME.familyName", "emails.value"]),
            &[],
        );
        assert_eq!(
            p,
            json!({"id":"u1","schemas":[USER_SCHEMA,ENTERPRISE_USER_SCHEMA],
                "name":{"familyName":"Lovelace"},"emails":[{"value":"a@x"},{"value":"b@x"}]})
        );
        let p = project(
            &USER_TYPE,
            &rendered_user(),
            &paths(&["userName", "meta", "shoeSize"]),
            &[],
        );
        assert_eq!(p.as_object().unwrap().len(), 4, "{p}");
        assert_eq!(p["meta"]["resourceType"], "User");
    }

    #[test]
    fn attributes_accept_urn_qualified_names_and_a_bare_extension_urn() {
        let p = project(
            &USER_TYPE,
            &rendered_user(),
            &paths(&["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"]),
            &[],
        );
        assert_eq!(p[ENTERPRISE_USER_SCHEMA], json!({"department":"R&D"}));
        assert!(p.get("userName").is_none());
        let p = project(
            &USER_TYPE,
            &rendered_user(),
            &paths(&[ENTERPRISE_USER_SCHEMA]),
            &[],
        );
        assert_eq!(
            p[ENTERPRISE_USER_SCHEMA],
            json!({"department":"R&D","manager":{"value":"m1"}})
        );
    }

    #[test]
    fn excluded_attributes_remove_those_listed_but_never_id() {
        let r = rendered_user();
        let p = project(
            &USER_TYPE,
            &r,
            &[],
            &paths(&["id", "emails", "name.givenName", "schemas"]),
        );
        assert_eq!(p["id"], "u1");
        assert_eq!(p["schemas"], r["schemas"]);
        assert!(p.get("emails").is_none());
        assert_eq!(p["name"], json!({"familyName":"Lovelace"}));
        assert_eq!(p["meta"], r["meta"]);
        let p = project(
            &USER_TYPE,
            &r,
            &[],
            &paths(&[
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                "manager",
            ]),
        );
        assert!(p.get(ENTERPRISE_USER_SCHEMA).is_none(), "{p}");
    }

    #[test]
    fn excluding_members_drops_them_from_a_group_and_attributes_win_over_exclusions() {
        let doc =
            group(json!({"schemas":[GROUP_SCHEMA],"displayName":"G","members":[{"value":"u1"}]}))
                .unwrap();
        let mut m = meta();
        m.resource_type = "Group";
        let r = render("g1", &doc, &m);
        let p = project(&GROUP_TYPE, &r, &[], &paths(&["members"]));
        assert!(p.get("members").is_none());
        assert_eq!(p["displayName"], "G");
        let p = project(&GROUP_TYPE, &r, &paths(&["members"]), &paths(&["members"]));
        assert_eq!(p["members"], json!([{"value":"u1"}]));
        assert!(p.get("displayName").is_none());
    }

    #[test]
    fn password_is_never_returned_even_when_asked_for() {
        let mut r = rendered_user();
        r["password"] = json!("s3cret");
        assert!(project(&USER_TYPE, &r, &[], &[]).get("password").is_none());
        assert!(
            project(&USER_TYPE, &r, &paths(&["password"]), &[])
                .get("password")
                .is_none()
        );
    }
}
