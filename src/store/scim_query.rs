//! SCIM filters and sorting as SQL. A validated [`Filter`] becomes a condition on `r.id` (the
//! resource row) over the `scim_values` and `scim_members` tables, with every literal, key and
//! source id bound as a parameter: only constant fragments from this file are ever written
//! into the SQL text. The rules mirror `scim::eval`, which is the reference: the property test
//! in `tests/api/scim_filter_sql.rs` checks that both agree on random data.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::scim::ScimError;
use crate::scim::ast::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{AttrDef, AttrType, Resolved, ResourceTypeDef};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Uuid(Uuid),
    Text(String),
    Int(i64),
    Bool(bool),
    Time(DateTime<Utc>),
    OptText(Option<String>),
    OptBool(Option<bool>),
    OptTime(Option<DateTime<Utc>>),
}

/// Which SQL dialect to write where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// SQL text under construction plus its parameters.
#[derive(Debug)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Param>,
    pub dialect: Dialect,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            text: String::with_capacity(256),
            params: Vec::new(),
            dialect,
        }
    }

    /// Appends a constant SQL fragment.
    pub fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Appends a placeholder bound to `param`.
    pub fn bind(&mut self, param: Param) -> &mut Self {
        self.params.push(param);
        let _ = write!(self.text, "${}", self.params.len());
        self
    }

    fn text_param(&mut self, s: &str) -> &mut Self {
        self.bind(Param::Text(s.to_owned()))
    }

    /// Appends placeholders for `params`, separated by commas (the inside of `in (…)`).
    pub fn bind_list(&mut self, params: impl IntoIterator<Item = Param>) -> &mut Self {
        for (i, p) in params.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(p);
        }
        self
    }
}

/// Binds every [`Param`] of a [`Sql`] to a sqlx query, in order.
macro_rules! bind_params {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                $crate::store::scim_query::Param::Uuid(v) => q.bind(*v),
                $crate::store::scim_query::Param::Text(v) => q.bind(v.as_str()),
                $crate::store::scim_query::Param::Int(v) => q.bind(*v),
                $crate::store::scim_query::Param::Bool(v) => q.bind(*v),
                $crate::store::scim_query::Param::Time(v) => q.bind(*v),
                $crate::store::scim_query::Param::OptText(v) => q.bind(v.as_deref()),
                $crate::store::scim_query::Param::OptBool(v) => q.bind(*v),
                $crate::store::scim_query::Param::OptTime(v) => q.bind(*v),
            };
        }
        q
    }};
}
pub(crate) use bind_params;

fn unsupported(what: &str) -> ScimError {
    ScimError::invalid_filter(format!("filtering on {what} is not supported"))
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::invalid_filter(detail)
}

/// How a leaf path is stored.
enum Leaf {
    /// In `scim_values` under `key`.
    Value { key: String, def: &'static AttrDef },
    /// A column of `scim_members`.
    Member(MemberColumn),
}

#[derive(Clone, Copy)]
enum MemberColumn {
    Value,
    Type,
    Display,
}

impl MemberColumn {
    fn column(self) -> &'static str {
        match self {
            Self::Value => "m.member_id",
            Self::Type => "lower(m.member_type)",
            Self::Display => "m.display_lower",
        }
    }

    fn case_exact(self) -> bool {
        matches!(self, Self::Value)
    }
}

fn is_members(rt: &ResourceTypeDef, r: &Resolved) -> bool {
    rt.name == "Group" && !r.extension && r.attr.name == "members"
}

fn member_column(sub: &str) -> Result<MemberColumn, ScimError> {
    match sub {
        "value" => Ok(MemberColumn::Value),
        "type" => Ok(MemberColumn::Type),
        "display" => Ok(MemberColumn::Display),
        _ => Err(unsupported("members.$ref")),
    }
}

fn check_supported(rt: &ResourceTypeDef, r: &Resolved) -> Result<(), ScimError> {
    if rt.name == "User" && !r.extension && r.attr.name == "groups" {
        return Err(unsupported(
            "a User's groups; filter Groups on members instead",
        ));
    }
    if r.attr.name == "meta"
        && r.sub
            .is_some_and(|s| s.name == "location" || s.name == "version")
    {
        return Err(unsupported("meta.location and meta.version"));
    }
    Ok(())
}

/// The leaf a comparison reads: the sub-attribute, or `value` of a multi-valued attribute.
fn leaf(rt: &ResourceTypeDef, r: &Resolved) -> Result<Leaf, ScimError> {
    check_supported(rt, r)?;
    let sub = match r.sub {
        Some(s) => Some(s),
        // A complex attribute compared as a whole compares its `value`, as in `scim::eval`.
        None if r.attr.ty == AttrType::Complex && r.attr.sub("value").is_some() => {
            r.attr.sub("value")
        }
        None => None,
    };
    if is_members(rt, r) {
        let sub = sub.map(|s| s.name).unwrap_or("value");
        return Ok(Leaf::Member(member_column(sub)?));
    }
    let def = sub.unwrap_or(r.attr);
    if def.ty == AttrType::Complex {
        return Err(invalid(format!(
            "`{}` is complex; compare one of its sub-attributes",
            r.attr.name
        )));
    }
    let key = Resolved { sub, ..*r }.key();
    Ok(Leaf::Value { key, def })
}

/// Every stored key under a path, for `pr` on complex attributes.
fn keys_under(r: &Resolved) -> Vec<String> {
    if r.sub.is_some() || r.attr.ty != AttrType::Complex {
        return vec![r.key()];
    }
    r.attr
        .sub_attributes
        .iter()
        .map(|s| Resolved { sub: Some(s), ..*r }.key())
        .collect()
}

/// The columns a comparison may read, by the form of the value.
#[derive(Clone, Copy)]
struct Columns {
    text: &'static str,
    lower: &'static str,
    time: &'static str,
    boolean: &'static str,
}

const VALUE_COLUMNS: Columns = Columns {
    text: "v.value_text",
    lower: "v.value_lower",
    time: "v.value_time",
    boolean: "v.value_bool",
};

/// The comparison part of a condition on the columns `cols`.
fn compare(
    sql: &mut Sql,
    cols: Columns,
    def_ty: AttrType,
    case_exact: bool,
    op: CompareOp,
    value: &CompValue,
) -> Result<(), ScimError> {
    match def_ty {
        AttrType::Boolean => {
            let b = match value {
                CompValue::Bool(b) => *b,
                CompValue::String(s) if s.eq_ignore_ascii_case("true") => true,
                CompValue::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err(invalid("a boolean attribute compares with true or false")),
            };
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(invalid("a boolean attribute supports only eq and ne"));
            }
            sql.push(cols.boolean).push(" = ").bind(Param::Bool(b));
            Ok(())
        }
        AttrType::DateTime => {
            let CompValue::String(s) = value else {
                return Err(invalid(
                    "a dateTime attribute compares with a date-time string",
                ));
            };
            let t = DateTime::parse_from_rfc3339(s)
                .map_err(|_| invalid(format!("`{}` is not an RFC 3339 date-time", short(s))))?
                .with_timezone(&Utc);
            let op = ordering_op(op).ok_or_else(|| {
                invalid("a dateTime attribute supports eq, ne, gt, ge, lt and le")
            })?;
            sql.push(cols.time).push(op).bind(Param::Time(t));
            Ok(())
        }
        AttrType::Integer | AttrType::Decimal | AttrType::Complex => Err(invalid(
            "numeric and complex attributes cannot be filtered here",
        )),
        _ => {
            // An unquoted number is its text, as in `scim::eval`.
            let s = &match value {
                CompValue::String(s) => s.clone(),
                CompValue::Number(n) => n.to_string(),
                _ => return Err(invalid("a string attribute compares with a string")),
            };
            let (col, lit) = if case_exact {
                (cols.text, s.clone())
            } else {
                (cols.lower, s.to_lowercase())
            };
            match op {
                CompareOp::Eq | CompareOp::Ne => {
                    sql.push(col).push(" = ").text_param(&lit);
                }
                CompareOp::Co => {
                    match sql.dialect {
                        Dialect::Sqlite => sql.push("instr("),
                        Dialect::Postgres => sql.push("strpos("),
                    };
                    sql.push(col).push(", ").text_param(&lit).push(") > 0");
                }
                CompareOp::Sw => {
                    sql.push("substr(").push(col).push(", 1, length(");
                    sql.text_param(&lit).push(")) = ").text_param(&lit);
                }
                CompareOp::Ew => {
                    sql.push("(length(")
                        .push(col)
                        .push(") >= length(")
                        .text_param(&lit);
                    sql.push(") and substr(")
                        .push(col)
                        .push(", length(")
                        .push(col);
                    sql.push(") - length(")
                        .text_param(&lit)
                        .push(") + 1) = ")
                        .text_param(&lit);
                    sql.push(")");
                }
                CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
                    let o = ordering_op(op).unwrap_or(" = ");
                    sql.push(col).push(o).text_param(&lit);
                }
            }
            Ok(())
        }
    }
}

fn ordering_op(op: CompareOp) -> Option<&'static str> {
    Some(match op {
        CompareOp::Eq | CompareOp::Ne => " = ",
        CompareOp::Gt => " > ",
        CompareOp::Ge => " >= ",
        CompareOp::Lt => " < ",
        CompareOp::Le => " <= ",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => return None,
    })
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Appends a condition on `r.id` for `filter` over resources of `rt` in `source`.
pub(crate) fn condition(
    sql: &mut Sql,
    rt: &ResourceTypeDef,
    source: Uuid,
    filter: &Filter,
) -> Result<(), ScimError> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            sql.push("(");
            condition(sql, rt, source, a)?;
            sql.push(if matches!(filter, Filter::And(..)) {
                " and "
            } else {
                " or "
            });
            condition(sql, rt, source, b)?;
            sql.push(")");
            Ok(())
        }
        Filter::Not(inner) => {
            sql.push("not (");
            condition(sql, rt, source, inner)?;
            sql.push(")");
            Ok(())
        }
        Filter::Present(path) => present(sql, rt, source, path, false),
        Filter::Compare(path, op, value) => {
            if matches!(value, CompValue::Null) {
                return match op {
                    CompareOp::Eq => present(sql, rt, source, path, true),
                    CompareOp::Ne => present(sql, rt, source, path, false),
                    _ => Err(invalid("null compares only with eq and ne")),
                };
            }
            let r = rt.resolve(path).map_err(to_filter_error)?;
            let negate = matches!(op, CompareOp::Ne);
            sql.push(if negate { "r.id not in (" } else { "r.id in (" });
            match leaf(rt, &r)? {
                Leaf::Member(col) => {
                    sql.push("select m.group_id from scim_members m where ");
                    member_compare(sql, col, *op, value)?;
                }
                Leaf::Value { key, def } => {
                    sql.push("select v.resource_id from scim_values v where v.source_id = ");
                    sql.bind(Param::Uuid(source))
                        .push(" and v.attr = ")
                        .text_param(&key);
                    sql.push(" and ");
                    value_compare(sql, def, *op, value)?;
                }
            }
            sql.push(")");
            Ok(())
        }
        Filter::ValuePath(path, inner) => value_path(sql, rt, source, path, inner),
    }
}

fn to_filter_error(e: ScimError) -> ScimError {
    ScimError::invalid_filter(e.detail)
}

fn value_compare(
    sql: &mut Sql,
    def: &AttrDef,
    op: CompareOp,
    value: &CompValue,
) -> Result<(), ScimError> {
    compare(sql, VALUE_COLUMNS, def.ty, def.case_exact, op, value)
}

fn member_compare(
    sql: &mut Sql,
    col: MemberColumn,
    op: CompareOp,
    value: &CompValue,
) -> Result<(), ScimError> {
    let c = col.column();
    sql.push(c).push(" is not null and ");
    let cols = Columns {
        text: c,
        lower: c,
        time: c,
        boolean: c,
    };
    compare(sql, cols, AttrType::String, col.case_exact(), op, value)
}

/// `path pr` (or, with `absent`, `path eq null`).
fn present(
    sql: &mut Sql,
    rt: &ResourceTypeDef,
    source: Uuid,
    path: &AttrPath,
    absent: bool,
) -> Result<(), ScimError> {
    let r = rt.resolve(path).map_err(to_filter_error)?;
    check_supported(rt, &r)?;
    sql.push(if absent { "r.id not in (" } else { "r.id in (" });
    if is_members(rt, &r) {
        sql.push("select m.group_id from scim_members m");
        if let Some(sub) = r.sub {
            let col = member_column(sub.name)?;
            sql.push(" where ").push(col.column()).push(" is not null");
        }
    } else {
        sql.push("select v.resource_id from scim_values v where v.source_id = ");
        sql.bind(Param::Uuid(source)).push(" and v.attr in (");
        sql.bind_list(keys_under(&r).into_iter().map(Param::Text));
        sql.push(")");
    }
    sql.push(")");
    Ok(())
}

/// `attr[inner]`: some element of the multi-valued `attr` satisfies `inner`.
fn value_path(
    sql: &mut Sql,
    rt: &ResourceTypeDef,
    source: Uuid,
    path: &AttrPath,
    inner: &Filter,
) -> Result<(), ScimError> {
    let r = rt.resolve(path).map_err(to_filter_error)?;
    check_supported(rt, &r)?;
    if !r.attr.multi_valued || r.attr.ty != AttrType::Complex || r.sub.is_some() {
        return Err(invalid(
            "a value filter applies to a multi-valued complex attribute",
        ));
    }
    if is_members(rt, &r) {
        sql.push("r.id in (select m.group_id from scim_members m where ");
        member_element(sql, inner)?;
        sql.push(")");
        return Ok(());
    }
    sql.push("r.id in (select e.resource_id from (select distinct resource_id, elem from scim_values where source_id = ");
    sql.bind(Param::Uuid(source)).push(" and attr in (");
    sql.bind_list(keys_under(&r).into_iter().map(Param::Text));
    sql.push(")) e where ");
    element(sql, &r, source, inner)?;
    sql.push(")");
    Ok(())
}

/// A condition on the element `(e.resource_id, e.elem)` of the attribute `r`.
fn element(sql: &mut Sql, r: &Resolved, source: Uuid, filter: &Filter) -> Result<(), ScimError> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            sql.push("(");
            element(sql, r, source, a)?;
            sql.push(if matches!(filter, Filter::And(..)) {
                " and "
            } else {
                " or "
            });
            element(sql, r, source, b)?;
            sql.push(")");
            Ok(())
        }
        Filter::Not(inner) => {
            sql.push("not (");
            element(sql, r, source, inner)?;
            sql.push(")");
            Ok(())
        }
        Filter::ValuePath(..) => Err(invalid("value filters cannot nest")),
        Filter::Present(p) | Filter::Compare(p, _, _) => {
            let sub = sub_of(r, p)?;
            let key = Resolved {
                sub: Some(sub),
                ..*r
            }
            .key();
            let (negate, op_value) = match filter {
                Filter::Compare(_, op, CompValue::Null) => match op {
                    CompareOp::Eq => (true, None),
                    CompareOp::Ne => (false, None),
                    _ => return Err(invalid("null compares only with eq and ne")),
                },
                Filter::Compare(_, op, v) => (matches!(op, CompareOp::Ne), Some((*op, v))),
                _ => (false, None),
            };
            sql.push(if negate {
                "(e.resource_id, e.elem) not in ("
            } else {
                "(e.resource_id, e.elem) in ("
            });
            sql.push("select v.resource_id, v.elem from scim_values v where v.source_id = ");
            sql.bind(Param::Uuid(source))
                .push(" and v.attr = ")
                .text_param(&key);
            if let Some((op, value)) = op_value {
                if sub.ty == AttrType::Complex {
                    return Err(invalid("complex sub-attributes cannot be compared"));
                }
                sql.push(" and ");
                value_compare(sql, sub, op, value)?;
            }
            sql.push(")");
            Ok(())
        }
    }
}

/// A condition on the member row `m` for a `members[…]` filter.
fn member_element(sql: &mut Sql, filter: &Filter) -> Result<(), ScimError> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            sql.push("(");
            member_element(sql, a)?;
            sql.push(if matches!(filter, Filter::And(..)) {
                " and "
            } else {
                " or "
            });
            member_element(sql, b)?;
            sql.push(")");
            Ok(())
        }
        Filter::Not(inner) => {
            sql.push("not (");
            member_element(sql, inner)?;
            sql.push(")");
            Ok(())
        }
        Filter::ValuePath(..) => Err(invalid("value filters cannot nest")),
        Filter::Present(p) => {
            let col = member_column(&p.name.to_ascii_lowercase())?;
            sql.push(col.column()).push(" is not null");
            Ok(())
        }
        Filter::Compare(p, op, value) => {
            let col = member_column(&p.name.to_ascii_lowercase())?;
            match (op, value) {
                (CompareOp::Eq, CompValue::Null) => {
                    sql.push(col.column()).push(" is null");
                    Ok(())
                }
                (CompareOp::Ne, CompValue::Null) => {
                    sql.push(col.column()).push(" is not null");
                    Ok(())
                }
                (_, CompValue::Null) => Err(invalid("null compares only with eq and ne")),
                (CompareOp::Ne, _) => {
                    sql.push("not (");
                    member_compare(sql, col, CompareOp::Eq, value)?;
                    sql.push(")");
                    Ok(())
                }
                _ => member_compare(sql, col, *op, value),
            }
        }
    }
}

fn sub_of(r: &Resolved, p: &AttrPath) -> Result<&'static AttrDef, ScimError> {
    if p.urn.is_some() || p.sub.is_some() {
        return Err(invalid("inside a value filter, name sub-attributes only"));
    }
    r.attr.sub(&p.name).ok_or_else(|| {
        invalid(format!(
            "`{}` has no sub-attribute `{}`",
            r.attr.name, p.name
        ))
    })
}

/// An `order by` expression for sorting by `r`: the smallest value of the path.
pub(crate) fn sort_key(
    sql: &mut Sql,
    rt: &ResourceTypeDef,
    r: &Resolved,
    descending: bool,
) -> Result<(), ScimError> {
    let Leaf::Value { key, def } = leaf(rt, r).map_err(|e| ScimError::invalid_value(e.detail))?
    else {
        return Err(ScimError::invalid_value(
            "sorting by members is not supported",
        ));
    };
    let col: &'static str = match def.ty {
        AttrType::Boolean => "v.value_bool",
        AttrType::DateTime => "v.value_time",
        _ if def.case_exact => "v.value_text",
        _ => "v.value_lower",
    };
    for pass in 0..2 {
        sql.push("(select min(").push(col);
        sql.push(") from scim_values v where v.resource_id = r.id and v.attr = ");
        sql.text_param(&key).push(")");
        if pass == 0 {
            sql.push(" is null, ");
        }
    }
    sql.push(if descending { " desc, " } else { " asc, " });
    Ok(())
}
