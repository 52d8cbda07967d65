//! The searchable values of a resource: every leaf value of a rendered SCIM resource with the
//! lower-case key of its attribute path (`username`, `emails.value`, `meta.lastmodified`,
//! `urn:…:enterprise:2.0:user:manager.value`), its position within a multi-valued attribute,
//! and the forms filters compare (as stored, lower-cased, as a time, as a boolean). The store
//! keeps these rows so that filters run as SQL; they follow the same rules as [`super::eval`].
//! Group `members` are not indexed here: the store keeps them in their own table.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::schema::{AttrDef, AttrType, ResourceTypeDef, SchemaDef};

/// One leaf value.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedValue {
    /// Lower-case attribute key.
    pub key: String,
    /// Position within a multi-valued attribute; 0 for singular ones.
    pub elem: i64,
    /// The value as stored (strings, references, binary).
    pub text: Option<String>,
    /// `text` lower-cased, for attributes that compare without case.
    pub lower: Option<String>,
    /// The value as a time, for dateTime attributes.
    pub time: Option<DateTime<Utc>>,
    /// The value as a boolean, for boolean attributes.
    pub boolean: Option<bool>,
}

/// The `meta` sub-attributes that are indexed; `location` and `version` are not filterable.
const META_KEYS: [&str; 3] = ["resourceType", "created", "lastModified"];

/// Every indexed value of `resource` (a rendered resource with `id` and `meta`).
pub fn values(rt: &ResourceTypeDef, resource: &Value) -> Vec<IndexedValue> {
    let mut out = Vec::new();
    let Some(obj) = resource.as_object() else {
        return out;
    };
    for (schema, extension) in rt.schemas() {
        let (container, prefix) = if extension {
            match get_ci(obj, schema.id).and_then(Value::as_object) {
                Some(ext) => (ext, format!("{}:", schema.id.to_ascii_lowercase())),
                None => continue,
            }
        } else {
            (obj, String::new())
        };
        index_schema(schema, container, &prefix, rt.name == "Group", &mut out);
    }
    for common in super::schema::COMMON.attributes {
        let Some(value) = get_ci(obj, common.name) else {
            continue;
        };
        if common.name == "meta" {
            for sub in common
                .sub_attributes
                .iter()
                .filter(|s| META_KEYS.contains(&s.name))
            {
                if let Some(v) = value.as_object().and_then(|m| get_ci(m, sub.name)) {
                    push_leaf(
                        &mut out,
                        format!("meta.{}", sub.name.to_ascii_lowercase()),
                        0,
                        sub,
                        v,
                    );
                }
            }
        } else {
            index_attr(common, value, "", &mut out);
        }
    }
    out
}

fn index_schema(
    schema: &SchemaDef,
    container: &Map<String, Value>,
    prefix: &str,
    is_group: bool,
    out: &mut Vec<IndexedValue>,
) {
    for attr in schema.attributes {
        if is_group && attr.name == "members" {
            continue;
        }
        if let Some(value) = get_ci(container, attr.name) {
            index_attr(attr, value, prefix, out);
        }
    }
}

fn index_attr(attr: &AttrDef, value: &Value, prefix: &str, out: &mut Vec<IndexedValue>) {
    let key = format!("{prefix}{}", attr.name.to_ascii_lowercase());
    match (attr.multi_valued, attr.ty) {
        (true, AttrType::Complex) => {
            for (i, element) in value.as_array().into_iter().flatten().enumerate() {
                index_complex(attr, element, &key, elem(i), out);
            }
        }
        (true, _) => {
            for (i, element) in value.as_array().into_iter().flatten().enumerate() {
                push_leaf(out, key.clone(), elem(i), attr, element);
            }
        }
        (false, AttrType::Complex) => index_complex(attr, value, &key, 0, out),
        (false, _) => push_leaf(out, key, 0, attr, value),
    }
}

fn index_complex(attr: &AttrDef, value: &Value, key: &str, elem: i64, out: &mut Vec<IndexedValue>) {
    let Some(obj) = value.as_object() else {
        return;
    };
    for sub in attr.sub_attributes {
        if let Some(v) = get_ci(obj, sub.name) {
            push_leaf(
                out,
                format!("{key}.{}", sub.name.to_ascii_lowercase()),
                elem,
                sub,
                v,
            );
        }
    }
}

fn push_leaf(out: &mut Vec<IndexedValue>, key: String, elem: i64, def: &AttrDef, value: &Value) {
    let mut row = IndexedValue {
        key,
        elem,
        text: None,
        lower: None,
        time: None,
        boolean: None,
    };
    match def.ty {
        AttrType::Boolean => {
            row.boolean = match value {
                Value::Bool(b) => Some(*b),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            };
            if row.boolean.is_none() {
                return;
            }
        }
        AttrType::DateTime => {
            let Some(s) = value.as_str() else { return };
            let Ok(t) = DateTime::parse_from_rfc3339(s) else {
                return;
            };
            row.time = Some(t.with_timezone(&Utc));
        }
        AttrType::Complex => return,
        _ => {
            let text = match value {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return,
            };
            row.lower = Some(text.to_lowercase());
            row.text = Some(text);
        }
    }
    out.push(row);
}

fn elem(i: usize) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

/// The member called `name`, matching keys without regard to case.
pub fn get_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_TYPE, USER_TYPE};
    use serde_json::json;

    fn keys(values: &[IndexedValue]) -> Vec<(String, i64)> {
        values.iter().map(|v| (v.key.clone(), v.elem)).collect()
    }

    #[test]
    fn user_leaves_are_indexed_with_their_keys_and_positions() {
        let user = json!({
            "schemas": [USER_TYPE.schema.id, ENTERPRISE_USER_SCHEMA],
            "id": "u1",
            "userName": "Ada@Example.com",
            "name": {"givenName": "Ada"},
            "active": "True",
            "emails": [{"value": "a@x.org", "type": "work"}, {"value": "b@y.org", "primary": true}],
            ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m1"}},
            "meta": {"resourceType": "User", "created": "2026-01-02T03:04:05Z", "location": "http://x", "version": "W/\"1\""}
        });
        let values = values(&USER_TYPE, &user);
        let k = keys(&values);
        for expected in [
            ("username".to_owned(), 0),
            ("name.givenname".to_owned(), 0),
            ("active".to_owned(), 0),
            ("emails.value".to_owned(), 0),
            ("emails.type".to_owned(), 0),
            ("emails.value".to_owned(), 1),
            ("emails.primary".to_owned(), 1),
            (
                format!("{}:manager.value", ENTERPRISE_USER_SCHEMA.to_lowercase()),
                0,
            ),
            ("id".to_owned(), 0),
            ("schemas".to_owned(), 1),
            ("meta.created".to_owned(), 0),
            ("meta.resourcetype".to_owned(), 0),
        ] {
            assert!(k.contains(&expected), "missing {expected:?} in {k:?}");
        }
        assert!(
            !k.iter()
                .any(|(key, _)| key == "meta.location" || key == "meta.version")
        );
        let user_name = values.iter().find(|v| v.key == "username").unwrap();
        assert_eq!(user_name.lower.as_deref(), Some("ada@example.com"));
        assert_eq!(user_name.text.as_deref(), Some("Ada@Example.com"));
        let active = values.iter().find(|v| v.key == "active").unwrap();
        assert_eq!(active.boolean, Some(true));
        let created = values.iter().find(|v| v.key == "meta.created").unwrap();
        assert_eq!(
            created.time.map(|t| t.to_rfc3339()),
            Some("2026-01-02T03:04:05+00:00".into())
        );
    }

    #[test]
    fn group_members_are_left_to_the_membership_table() {
        let group = json!({"displayName": "Staff", "members": [{"value": "u1"}], "id": "g1"});
        let k = keys(&values(&GROUP_TYPE, &group));
        assert!(k.contains(&("displayname".into(), 0)));
        assert!(!k.iter().any(|(key, _)| key.starts_with("members")));
    }
}
