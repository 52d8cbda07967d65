//! In-memory evaluation of SCIM filters (RFC 7644 §3.4.2.2) against rendered resources and
//! against single elements of multi-valued attributes (PATCH value paths), and
//! [`validate`]: the attribute resolution and type checks that the SQL translator in
//! `store::scim_query` shares with this evaluator. No I/O.
//!
//! A filter is first compiled into a plan: every path is resolved against the schema and every
//! operator/literal pair checked against the attribute's type, so an invalid filter is rejected
//! whatever the data would short-circuit. The plan is then evaluated. The semantics are a
//! contract with the SQL translator:
//!
//! - the values of `attr` are, for a multi-valued complex attribute, each element's `value`
//!   (or the named sub-attribute); for a single-valued complex attribute, the named
//!   sub-attribute (without one the whole object, which only `pr` accepts); for a simple
//!   multi-valued attribute, each element; extension attributes sit under the URN key;
//! - a comparison holds if any value satisfies it; absent and null values satisfy nothing;
//! - `ne` is `not eq`, `eq null` is `not pr`, `ne null` is `pr`;
//! - `pr` holds if some value is non-empty (not null, `""`, `[]`, `{}`, nor a container of
//!   such);
//! - strings compare case-insensitively (`to_lowercase`) unless `caseExact`, ordering by bytes;
//!   booleans take `eq`/`ne` only, literals `true`/`false` or the strings `"true"`/`"false"`;
//!   dateTimes compare chronologically with RFC 3339 literals; numbers numerically.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Number, Value};

use super::ast::{AttrPath, CompValue, CompareOp, Filter};
use super::error::ScimError;
use super::schema::{AttrDef, AttrType, ResourceTypeDef, display};

/// Whether `resource`, a rendered SCIM resource of type `rt`, satisfies `filter`. Fails with
/// 400 `invalidFilter` when the filter names unknown attributes or misuses types, whatever
/// the resource holds.
pub fn matches(rt: &ResourceTypeDef, filter: &Filter, resource: &Value) -> Result<bool, ScimError> {
    let plan = compile(Scope::Resource(rt), filter)?;
    Ok(plan.eval(resource))
}

/// Whether `element`, one value of the multi-valued complex attribute `attr`, satisfies
/// `filter`, whose paths name sub-attributes of `attr` (the inside of `members[value eq "x"]`).
pub fn matches_element(
    attr: &'static AttrDef,
    filter: &Filter,
    element: &Value,
) -> Result<bool, ScimError> {
    let plan = compile(Scope::Element(attr), filter)?;
    Ok(plan.eval(element))
}

/// Resolves every path of `filter` against `rt` and checks every operator and literal against
/// the attribute's type: 400 `invalidFilter` if anything is wrong. Evaluates nothing.
pub fn validate(rt: &ResourceTypeDef, filter: &Filter) -> Result<(), ScimError> {
    compile(Scope::Resource(rt), filter).map(drop)
}

/// [`validate`] for a value filter on the sub-attributes of `attr`, as [`matches_element`]
/// takes: lets PATCH reject a bad filter even when the attribute has no elements.
pub fn validate_element(attr: &'static AttrDef, filter: &Filter) -> Result<(), ScimError> {
    compile(Scope::Element(attr), filter).map(drop)
}

/// How much of a path or literal an error message quotes.
const MAX_ECHO: usize = 60;

/// How deep [`is_present`] looks into nested arrays and objects before calling them present.
const MAX_PRESENCE_DEPTH: usize = 16;

/// What the paths of a filter are resolved against.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// A whole resource of this type.
    Resource(&'a ResourceTypeDef),
    /// One element of this multi-valued complex attribute.
    Element(&'static AttrDef),
}

/// Where the values of a path sit in a JSON document.
#[derive(Debug)]
struct Access {
    /// The key of the extension object that holds the attribute.
    container: Option<&'static str>,
    /// The attribute's key.
    attr: &'static str,
    /// Whether the attribute holds an array whose elements are each looked at.
    multi: bool,
    /// The key looked up in the attribute's value (or in each element).
    sub: Option<&'static str>,
}

impl Access {
    /// Whether any value of this path in `root` satisfies `pred`.
    fn any(&self, root: &Value, mut pred: impl FnMut(&Value) -> bool) -> bool {
        let base = match self.container {
            Some(key) => match get_ci(root, key) {
                Some(base) => base,
                None => return false,
            },
            None => root,
        };
        let Some(value) = get_ci(base, self.attr) else {
            return false;
        };
        let mut check = |item: &Value| match self.sub {
            Some(sub) => get_ci(item, sub).is_some_and(&mut pred),
            None => pred(item),
        };
        match value {
            Value::Array(items) if self.multi => items.iter().any(check),
            other => check(other),
        }
    }
}

/// A compiled filter.
#[derive(Debug)]
enum Plan {
    Present(Access),
    Compare(Access, Test),
    /// Some element of the (multi-valued) attribute satisfies the inner plan.
    Any(Access, Box<Plan>),
    And(Box<Plan>, Box<Plan>),
    Or(Box<Plan>, Box<Plan>),
    Not(Box<Plan>),
}

impl Plan {
    fn eval(&self, root: &Value) -> bool {
        match self {
            Self::Present(access) => access.any(root, |v| is_present(v, 0)),
            Self::Compare(access, test) => access.any(root, |v| test.holds(v)),
            Self::Any(access, inner) => access.any(root, |element| inner.eval(element)),
            Self::And(a, b) => a.eval(root) && b.eval(root),
            Self::Or(a, b) => a.eval(root) || b.eval(root),
            Self::Not(a) => !a.eval(root),
        }
    }
}

/// A comparison of one stored value with a checked literal. `ne` never reaches here: it is
/// compiled to `not eq`.
#[derive(Debug)]
enum Test {
    /// A string; `literal` is already lower-cased when `fold`.
    Str {
        op: CompareOp,
        literal: String,
        fold: bool,
    },
    /// A boolean equal to this.
    Bool(bool),
    /// A dateTime.
    Time {
        op: CompareOp,
        at: DateTime<FixedOffset>,
    },
    /// A number.
    Num { op: CompareOp, literal: Number },
}

impl Test {
    fn holds(&self, stored: &Value) -> bool {
        match self {
            Self::Str { op, literal, fold } => {
                let Some(s) = stored.as_str() else {
                    return false;
                };
                if *fold {
                    compare_str(*op, &s.to_lowercase(), literal)
                } else {
                    compare_str(*op, s, literal)
                }
            }
            Self::Bool(expected) => stored_bool(stored) == Some(*expected),
            Self::Time { op, at } => stored
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .is_some_and(|t| ordered(*op, t.cmp(at))),
            Self::Num { op, literal } => stored
                .as_number()
                .and_then(|n| compare_numbers(n, literal))
                .is_some_and(|ord| ordered(*op, ord)),
        }
    }
}

fn compare_str(op: CompareOp, stored: &str, literal: &str) -> bool {
    match op {
        CompareOp::Eq => stored == literal,
        CompareOp::Ne => stored != literal,
        CompareOp::Co => stored.contains(literal),
        CompareOp::Sw => stored.starts_with(literal),
        CompareOp::Ew => stored.ends_with(literal),
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
            ordered(op, stored.cmp(literal))
        }
    }
}

/// Whether `stored ⋚ literal` (given as their ordering) satisfies an ordering operator.
fn ordered(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// A stored boolean: JSON `true`/`false`, or the strings `"true"`/`"false"` in any case.
fn stored_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => string_bool(s),
        _ => None,
    }
}

fn string_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Present and non-empty: not null, `""`, `[]` or `{}`, and for an array or object at least
/// one member that is itself present.
fn is_present(value: &Value, depth: usize) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
        Value::Array(items) if depth >= MAX_PRESENCE_DEPTH => !items.is_empty(),
        Value::Object(members) if depth >= MAX_PRESENCE_DEPTH => !members.is_empty(),
        Value::Array(items) => items.iter().any(|v| is_present(v, depth + 1)),
        Value::Object(members) => members.values().any(|v| is_present(v, depth + 1)),
    }
}

/// `value[key]`, matching the key exactly or else ignoring ASCII case.
fn get_ci<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let object = value.as_object()?;
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A resolved path.
struct Target {
    container: Option<&'static str>,
    attr: &'static AttrDef,
    sub: Option<&'static AttrDef>,
}

impl Target {
    /// Where the path's values are, and the definition they follow (the attribute itself
    /// when a complex attribute is named without a sub-attribute, other than multi-valued
    /// ones, which use `value`).
    fn access(&self) -> (Access, &'static AttrDef) {
        let attr = self.attr;
        let access = |multi, sub: Option<&'static AttrDef>| Access {
            container: self.container,
            attr: attr.name,
            multi,
            sub: sub.map(|s| s.name),
        };
        if attr.ty == AttrType::Complex {
            let sub = if attr.multi_valued {
                self.sub.or_else(|| attr.sub("value"))
            } else {
                self.sub
            };
            (access(attr.multi_valued, sub), sub.unwrap_or(attr))
        } else {
            (access(attr.multi_valued, None), attr)
        }
    }
}

fn resolve(scope: Scope<'_>, path: &AttrPath) -> Result<Target, ScimError> {
    match scope {
        Scope::Resource(rt) => {
            let r = rt
                .resolve(path)
                .map_err(|e| ScimError::invalid_filter(e.detail))?;
            Ok(Target {
                container: r.extension.then_some(r.schema.id),
                attr: r.attr,
                sub: r.sub,
            })
        }
        Scope::Element(parent) => {
            if path.urn.is_some() || path.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "inside a value filter on `{}`, name one of its sub-attributes, not `{}`",
                    parent.name,
                    shown(path)
                )));
            }
            let attr = parent.sub(&path.name).ok_or_else(|| {
                ScimError::invalid_filter(format!(
                    "unknown attribute `{}.{}`",
                    parent.name,
                    cut(&path.name)
                ))
            })?;
            Ok(Target {
                container: None,
                attr,
                sub: None,
            })
        }
    }
}

fn compile(scope: Scope<'_>, filter: &Filter) -> Result<Plan, ScimError> {
    Ok(match filter {
        Filter::Present(path) => Plan::Present(resolve(scope, path)?.access().0),
        Filter::Compare(path, op, value) => compile_compare(scope, path, *op, value)?,
        Filter::ValuePath(path, inner) => {
            if let Scope::Element(parent) = scope {
                return Err(ScimError::invalid_filter(format!(
                    "value filters cannot be nested (`{}[…]` inside `{}[…]`)",
                    shown(path),
                    parent.name
                )));
            }
            if path.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "`{}[…]`: a value filter follows an attribute, not a sub-attribute",
                    shown(path)
                )));
            }
            let target = resolve(scope, path)?;
            let attr = target.attr;
            if attr.ty != AttrType::Complex || !attr.multi_valued {
                return Err(ScimError::invalid_filter(format!(
                    "`{}[…]`: value filters apply to multi-valued complex attributes only",
                    shown(path)
                )));
            }
            let inner = compile(Scope::Element(attr), inner)?;
            let access = Access {
                container: target.container,
                attr: attr.name,
                multi: true,
                sub: None,
            };
            Plan::Any(access, Box::new(inner))
        }
        Filter::And(a, b) => Plan::And(Box::new(compile(scope, a)?), Box::new(compile(scope, b)?)),
        Filter::Or(a, b) => Plan::Or(Box::new(compile(scope, a)?), Box::new(compile(scope, b)?)),
        Filter::Not(a) => Plan::Not(Box::new(compile(scope, a)?)),
    })
}

fn compile_compare(
    scope: Scope<'_>,
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
) -> Result<Plan, ScimError> {
    let mut target = resolve(scope, path)?;
    // A complex attribute compared as a whole compares its `value` (Entra's
    // `manager eq "<id>"`), as multi-valued ones do.
    if target.attr.ty == AttrType::Complex && target.sub.is_none() {
        target.sub = target.attr.sub("value");
    }
    let (access, leaf) = target.access();
    let bad = |why: &str| {
        ScimError::invalid_filter(format!("`{} {} …`: {why}", shown(path), op_name(op)))
    };
    if *value == CompValue::Null {
        return match op {
            CompareOp::Eq => Ok(Plan::Not(Box::new(Plan::Present(access)))),
            CompareOp::Ne => Ok(Plan::Present(access)),
            _ => Err(bad("only eq and ne compare with null")),
        };
    }
    // `ne` is `not eq`: any-match on multi-valued attributes then means "no value equals".
    let test_op = if op == CompareOp::Ne {
        CompareOp::Eq
    } else {
        op
    };
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    let test = match leaf.ty {
        AttrType::Complex => {
            return Err(bad(
                "a complex attribute only takes pr; compare one of its sub-attributes",
            ));
        }
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            // An unquoted number (`employeeNumber eq 701984`, as Entra writes it) is its text.
            let literal = &match value {
                CompValue::String(s) => s.clone(),
                CompValue::Number(n) => n.to_string(),
                _ => return Err(bad("a string attribute compares with a quoted string")),
            };
            let fold = !leaf.case_exact;
            Test::Str {
                op: test_op,
                literal: if fold {
                    literal.to_lowercase()
                } else {
                    literal.clone()
                },
                fold,
            }
        }
        AttrType::Boolean => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(bad("a boolean attribute only takes eq and ne"));
            }
            let expected = match value {
                CompValue::Bool(b) => Some(*b),
                CompValue::String(s) => string_bool(s),
                _ => None,
            };
            Test::Bool(
                expected.ok_or_else(|| bad("a boolean attribute compares with true or false"))?,
            )
        }
        AttrType::DateTime => {
            if substring {
                return Err(bad(
                    "a dateTime attribute takes eq, ne, gt, ge, lt and le only",
                ));
            }
            let CompValue::String(literal) = value else {
                return Err(bad(
                    "a dateTime attribute compares with a quoted RFC 3339 date-time",
                ));
            };
            let at = DateTime::parse_from_rfc3339(literal).map_err(|_| {
                bad(&format!(
                    "\"{}\" is not an RFC 3339 date-time such as \"2026-01-31T12:00:00Z\"",
                    cut(literal)
                ))
            })?;
            Test::Time { op: test_op, at }
        }
        AttrType::Integer | AttrType::Decimal => {
            if substring {
                return Err(bad(
                    "a numeric attribute takes eq, ne, gt, ge, lt and le only",
                ));
            }
            let CompValue::Number(literal) = value else {
                return Err(bad("a numeric attribute compares with a number"));
            };
            Test::Num {
                op: test_op,
                literal: literal.clone(),
            }
        }
    };
    let plan = Plan::Compare(access, test);
    Ok(if op == CompareOp::Ne {
        Plan::Not(Box::new(plan))
    } else {
        plan
    })
}

fn op_name(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "eq",
        CompareOp::Ne => "ne",
        CompareOp::Co => "co",
        CompareOp::Sw => "sw",
        CompareOp::Ew => "ew",
        CompareOp::Gt => "gt",
        CompareOp::Ge => "ge",
        CompareOp::Lt => "lt",
        CompareOp::Le => "le",
    }
}

/// A path as written, cut for messages.
fn shown(path: &AttrPath) -> String {
    cut(&display(path))
}

fn cut(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(MAX_ECHO).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::ScimType;
    use crate::scim::filter::{Limits, parse_filter};
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_TYPE, USER_SCHEMA, USER_TYPE};

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Ext-42",
            "userName": "Bjensen@Example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara", "middleName": ""},
            "displayName": "Babs Jensen",
            "title": "",
            "nickName": null,
            "active": "True",
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "phoneNumbers": [],
            "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza"}],
            "ims": [{"value": "", "type": "xmpp"}],
            "photos": [{}],
            "roles": [{"value": null}],
            (ENTERPRISE_USER_SCHEMA): {
                "employeeNumber": "701984",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
            },
            "meta": {
                "resourceType": "User",
                "created": "2026-01-23T04:56:22Z",
                "lastModified": "2026-05-13T04:42:34.000+02:00",
                "location": "https://example.com/scim/v2/Users/2819c223"
            }
        })
    }

    fn parse(filter: &str) -> Filter {
        parse_filter(filter, &Limits::default()).unwrap()
    }

    fn user_matches(filter: &str) -> bool {
        match matches(&USER_TYPE, &parse(filter), &user()) {
            Ok(b) => b,
            Err(e) => panic!("{filter:?} failed: {e}"),
        }
    }

    fn invalid(filter: &str) -> ScimError {
        let parsed = parse(filter);
        let e = validate(&USER_TYPE, &parsed).expect_err(filter);
        assert_eq!(e.status, 400);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{filter}: {e}");
        // `matches` rejects it too, whatever the data.
        assert_eq!(matches(&USER_TYPE, &parsed, &json!({})).unwrap_err(), e);
        e
    }

    #[test]
    fn user_name_compares_case_insensitively() {
        assert!(user_matches("userName eq \"bjensen@example.com\""));
        assert!(user_matches("USERNAME EQ \"BJENSEN@EXAMPLE.COM\""));
        assert!(user_matches(
            "userName sw \"BJ\" and userName ew \".COM\" and userName co \"@eX\""
        ));
        assert!(!user_matches("userName eq \"bjensen\""));
    }

    #[test]
    fn id_and_external_id_compare_case_exactly() {
        assert!(user_matches("externalId eq \"Ext-42\""));
        assert!(!user_matches("externalId eq \"ext-42\""));
        assert!(user_matches(
            "id eq \"2819c223-7f76-453a-919d-413861904646\""
        ));
        assert!(!user_matches(
            "id eq \"2819C223-7F76-453A-919D-413861904646\""
        ));
        assert!(user_matches("externalId eq Ext-42"));
    }

    #[test]
    fn string_ordering_is_by_bytes_after_case_folding() {
        assert!(user_matches("displayName gt \"babs\""));
        assert!(user_matches("displayName ge \"babs jensen\""));
        assert!(user_matches("displayName le \"BABS JENSEN\""));
        assert!(!user_matches("displayName lt \"babs jensen\""));
        assert!(user_matches("externalId lt \"ext\""));
    }

    #[test]
    fn a_multi_valued_attribute_matches_if_any_value_does() {
        assert!(user_matches("emails.value eq \"babs@jensen.org\""));
        assert!(user_matches("emails.type eq \"home\""));
        assert!(!user_matches("emails.type eq \"other\""));
        assert!(user_matches(&format!(
            "schemas eq \"{ENTERPRISE_USER_SCHEMA}\""
        )));
        assert!(!user_matches(&format!(
            "schemas eq \"{}\"",
            ENTERPRISE_USER_SCHEMA.to_uppercase()
        )));
    }

    #[test]
    fn a_multi_valued_complex_attribute_without_sub_attribute_uses_value() {
        assert!(user_matches("emails co \"jensen.org\""));
        assert!(user_matches("emails eq \"BJENSEN@example.com\""));
        assert!(!user_matches("emails eq \"work\""));
    }

    #[test]
    fn ne_is_not_eq_even_on_absent_and_multi_valued_attributes() {
        assert!(user_matches("nickName ne \"x\""));
        assert!(user_matches("locale ne \"en\""));
        assert!(!user_matches("userName ne \"BJENSEN@example.com\""));
        // Some email is not "babs@jensen.org", but one is: `ne` is false.
        assert!(!user_matches("emails.value ne \"babs@jensen.org\""));
        assert!(user_matches("emails.value ne \"nobody@example.com\""));
    }

    #[test]
    fn absent_and_null_values_satisfy_no_comparison() {
        for op in ["eq", "co", "sw", "ew", "gt", "ge", "lt", "le"] {
            assert!(!user_matches(&format!("nickName {op} \"\"")), "{op}");
            assert!(!user_matches(&format!("locale {op} \"\"")), "{op}");
            assert!(!user_matches(&format!("roles.value {op} \"\"")), "{op}");
        }
    }

    #[test]
    fn null_literals_mean_presence() {
        assert!(user_matches("nickName eq null"));
        assert!(!user_matches("userName eq null"));
        assert!(user_matches("userName ne null"));
        assert!(!user_matches("locale ne null"));
        assert!(!user_matches("name eq null"));
        assert!(matches(&USER_TYPE, &parse("name eq null"), &json!({"name": {}})).unwrap());
        let e = invalid("userName gt null");
        assert!(e.detail.contains("null"), "{}", e.detail);
        invalid("userName co null");
    }

    #[test]
    fn pr_needs_a_non_empty_value() {
        assert!(user_matches("userName pr"));
        assert!(user_matches("name pr"));
        assert!(user_matches("name.familyName pr"));
        assert!(!user_matches("name.middleName pr"), "empty string");
        assert!(!user_matches("title pr"), "empty string");
        assert!(!user_matches("nickName pr"), "null");
        assert!(!user_matches("locale pr"), "absent");
        assert!(!user_matches("phoneNumbers pr"), "empty array");
        assert!(!user_matches("ims pr"), "elements with an empty value");
        assert!(!user_matches("photos pr"), "an empty object");
        assert!(user_matches("emails pr"));
        assert!(user_matches("addresses.streetAddress pr"));
        // Addresses have no `value` sub-attribute: their elements themselves are looked at.
        assert!(user_matches("addresses pr"));
        invalid("addresses eq \"x\"");
        assert!(user_matches("meta pr"));
        let empty_object = json!({"name": {}, "emails": [], "schemas": []});
        for f in ["name pr", "emails pr", "schemas pr"] {
            assert!(
                !matches(&USER_TYPE, &parse(f), &empty_object).unwrap(),
                "{f}"
            );
        }
        let nested_empty = json!({"name": {"familyName": "", "givenName": null}});
        assert!(!matches(&USER_TYPE, &parse("name pr"), &nested_empty).unwrap());
    }

    #[test]
    fn value_paths_match_when_one_element_satisfies_the_whole_inner_filter() {
        assert!(user_matches(
            "emails[type eq \"work\" and value co \"@example.com\"]"
        ));
        assert!(!user_matches(
            "emails[type eq \"home\" and value co \"@example.com\"]"
        ));
        assert!(user_matches("emails[type eq \"home\" or primary eq true]"));
        assert!(user_matches("emails[not (type eq \"work\")]"));
        assert!(user_matches(
            "emails[primary eq true] and not (ims[type eq \"aim\"])"
        ));
        assert!(!user_matches("phoneNumbers[type pr]"));
        assert!(user_matches(
            "addresses[type eq \"WORK\" and streetAddress sw \"100\"]"
        ));
    }

    #[test]
    fn value_paths_need_a_multi_valued_complex_attribute_and_known_sub_attributes() {
        invalid("name[familyName eq \"x\"]");
        invalid("userName[value eq \"x\"]");
        invalid("schemas[value eq \"x\"]");
        let e = invalid("emails[shoeSize eq \"x\"]");
        assert!(e.detail.contains("emails.shoeSize"), "{}", e.detail);
        // A sub-attribute on the value path's own path (only constructible by hand).
        let by_hand = Filter::ValuePath(
            AttrPath {
                urn: None,
                name: "emails".into(),
                sub: Some("value".into()),
            },
            Box::new(parse("type eq \"work\"")),
        );
        assert!(validate(&USER_TYPE, &by_hand).is_err());
        // Nested value paths (only constructible by hand).
        let nested = Filter::ValuePath(
            AttrPath {
                urn: None,
                name: "emails".into(),
                sub: None,
            },
            Box::new(Filter::ValuePath(
                AttrPath {
                    urn: None,
                    name: "type".into(),
                    sub: None,
                },
                Box::new(parse("value pr")),
            )),
        );
        assert!(validate(&USER_TYPE, &nested).is_err());
    }

    #[test]
    fn enterprise_extension_attributes_are_found_under_their_urn_with_or_without_it() {
        assert!(user_matches("employeeNumber eq \"701984\""));
        assert!(user_matches(&format!(
            "{ENTERPRISE_USER_SCHEMA}:employeeNumber eq \"701984\""
        )));
        assert!(user_matches(
            "manager.value eq \"26118915-6090-4610-87e4-49d8ca9f808d\""
        ));
        assert!(user_matches(&format!(
            "{ENTERPRISE_USER_SCHEMA}:manager.value eq 26118915-6090-4610-87e4-49d8ca9f808d"
        )));
        assert!(!user_matches(
            "manager.value eq \"26118915-6090-4610-87E4-49D8CA9F808D\""
        ));
        assert!(user_matches("manager.displayName eq \"john smith\""));
        assert!(!user_matches("department pr"));
    }

    #[test]
    fn json_keys_are_looked_up_case_insensitively() {
        let shouting = json!({
            "USERNAME": "ada",
            "Emails": [{"Value": "ada@example.com", "TYPE": "work"}],
            (ENTERPRISE_USER_SCHEMA.to_lowercase()): {"Manager": {"VALUE": "m1"}},
            "Meta": {"LastModified": "2026-01-01T00:00:00Z"}
        });
        for f in [
            "userName eq \"ada\"",
            "emails[type eq \"work\"]",
            "emails.value co \"ada@\"",
            "manager.value eq \"m1\"",
            "meta.lastModified ge \"2026-01-01T00:00:00Z\"",
        ] {
            assert!(matches(&USER_TYPE, &parse(f), &shouting).unwrap(), "{f}");
        }
    }

    #[test]
    fn date_times_compare_chronologically() {
        assert!(user_matches(
            "meta.lastModified gt \"2026-05-13T00:00:00Z\""
        ));
        // 04:42:34+02:00 is 02:42:34Z.
        assert!(user_matches(
            "meta.lastModified eq \"2026-05-13T02:42:34Z\""
        ));
        assert!(!user_matches(
            "meta.lastModified gt \"2026-05-13T03:00:00Z\""
        ));
        assert!(user_matches(
            "meta.lastModified lt \"2026-05-13T03:00:00Z\""
        ));
        assert!(user_matches("meta.created le \"2026-01-23T04:56:22Z\""));
        assert!(user_matches("meta.created ge \"2026-01-23T04:56:22Z\""));
        assert!(user_matches("meta.created ne \"2026-01-23T04:56:23Z\""));
        let unparseable = json!({"meta": {"created": "yesterday"}});
        let f = parse("meta.created lt \"2030-01-01T00:00:00Z\"");
        assert!(!matches(&USER_TYPE, &f, &unparseable).unwrap());
    }

    #[test]
    fn date_time_filters_need_an_rfc_3339_literal_and_an_ordering_operator() {
        let e = invalid("meta.lastModified gt \"last tuesday\"");
        assert!(e.detail.contains("RFC 3339"), "{}", e.detail);
        invalid("meta.lastModified gt 2026");
        invalid("meta.created co \"2026\"");
        invalid("meta.created sw \"2026\"");
        invalid("meta.created ew \"Z\"");
    }

    #[test]
    fn booleans_accept_strings_true_and_false_in_any_case() {
        // Stored "True" (Entra), literal true.
        assert!(user_matches("active eq true"));
        assert!(user_matches("active eq \"TRUE\""));
        assert!(!user_matches("active eq \"false\""));
        assert!(user_matches("active ne false"));
        assert!(user_matches("emails[primary eq \"True\"]"));
        let stored_false = json!({"active": false});
        assert!(matches(&USER_TYPE, &parse("active eq False"), &stored_false).unwrap());
        assert!(
            !matches(
                &USER_TYPE,
                &parse("active eq true"),
                &json!({"active": "yes"})
            )
            .unwrap()
        );
    }

    #[test]
    fn booleans_take_only_eq_and_ne_with_a_boolean_literal() {
        for op in ["gt", "ge", "lt", "le", "co", "sw", "ew"] {
            invalid(&format!("active {op} true"));
        }
        invalid("active eq \"yes\"");
        invalid("active eq 1");
    }

    #[test]
    fn strings_compare_with_strings_and_unquoted_numbers_but_not_booleans() {
        invalid("userName eq true");
        invalid("userName eq null and userName co false");
        assert!(!user_matches("userName eq 1"));
        assert!(user_matches("employeeNumber eq 701984"));
        assert!(!user_matches("employeeNumber eq 701985"));
    }

    #[test]
    fn complex_attributes_without_a_value_take_only_pr() {
        let e = invalid("name eq \"Barbara\"");
        assert!(e.detail.contains("complex"), "{}", e.detail);
        invalid("meta co \"x\"");
    }

    #[test]
    fn a_complex_attribute_with_a_value_compares_its_value_as_entra_does_for_manager() {
        assert!(user_matches(
            "manager eq \"26118915-6090-4610-87e4-49d8ca9f808d\""
        ));
        assert!(!user_matches("manager eq \"someone-else\""));
        assert!(user_matches("manager.value sw \"26118915\""));
    }

    #[test]
    fn unknown_attributes_are_invalid_filters_with_the_resolver_detail() {
        let e = invalid("shoeSize eq \"44\"");
        assert!(e.detail.contains("shoeSize"), "{}", e.detail);
        invalid("name.nope pr");
        invalid("urn:example:unknown:2.0:User:userName pr");
        invalid("userName pr or (title pr and shoeSize pr)");
        assert!(validate(&GROUP_TYPE, &parse("emails pr")).is_err());
    }

    #[test]
    fn errors_are_raised_even_when_the_data_would_short_circuit_them() {
        invalid("userName pr or active gt true");
        invalid("locale pr and shoeSize eq \"x\"");
    }

    #[test]
    fn validate_accepts_well_typed_filters() {
        for f in [
            "userName eq \"a\" and emails[type eq \"work\"] or not (active eq false)",
            "meta.lastModified gt \"2011-05-13T04:42:34Z\"",
            "x509Certificates.value eq \"TUlJ\"",
            "groups.$ref co \"Groups\"",
            "name eq null",
        ] {
            validate(&USER_TYPE, &parse(f)).unwrap();
        }
        validate(
            &GROUP_TYPE,
            &parse("displayName eq \"Admins\" and members[value eq \"u1\"]"),
        )
        .unwrap();
    }

    #[test]
    fn groups_filter_on_members() {
        let group = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": "g1",
            "displayName": "Admins",
            "members": [{"value": "u1", "display": "Ada"}, {"value": "U2"}]
        });
        let m = |f: &str| matches(&GROUP_TYPE, &parse(f), &group).unwrap();
        assert!(m("displayName eq \"admins\" and members[value eq \"u1\"]"));
        assert!(
            !m("members[value eq \"u2\"]"),
            "member values are case-exact"
        );
        assert!(m("members eq \"U2\""));
    }

    #[test]
    fn matches_element_evaluates_a_value_filter_on_one_element() {
        let members = crate::scim::schema::GROUP.attr("members").unwrap();
        let inner = parse("value eq \"2819c223\" and display sw \"ad\"");
        assert!(
            matches_element(
                members,
                &inner,
                &json!({"value": "2819c223", "display": "Ada"})
            )
            .unwrap()
        );
        assert!(
            !matches_element(
                members,
                &inner,
                &json!({"value": "2819C223", "display": "Ada"})
            )
            .unwrap()
        );
        assert!(!matches_element(members, &inner, &json!("2819c223")).unwrap());
        let e = matches_element(members, &parse("shoeSize eq \"x\""), &json!({})).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
        assert!(validate_element(members, &parse("value pr")).is_ok());
        assert!(validate_element(members, &parse("name.familyName pr")).is_err());
        let emails = crate::scim::schema::USER.attr("emails").unwrap();
        assert!(
            matches_element(
                emails,
                &parse("primary eq \"true\""),
                &json!({"primary": true})
            )
            .unwrap()
        );
    }

    #[test]
    fn numeric_comparisons_order_numbers() {
        use std::str::FromStr;
        let n = |s: &str| Number::from_str(s).unwrap();
        let test = |op, lit: &str| Test::Num {
            op,
            literal: n(lit),
        };
        assert!(test(CompareOp::Gt, "1").holds(&json!(2)));
        assert!(test(CompareOp::Lt, "2.5").holds(&json!(2)));
        assert!(test(CompareOp::Ge, "-3").holds(&json!(-3)));
        assert!(!test(CompareOp::Eq, "1").holds(&json!("1")));
        assert!(test(CompareOp::Le, "18446744073709551615").holds(&json!(u64::MAX)));
    }
}
