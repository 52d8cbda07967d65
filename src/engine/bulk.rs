//! Ad-hoc bulk operations: a selection written as a filter expression and/or a list of
//! usernames and emails (from a CSV file), and a ladder of actions, compiled into one
//! synthetic [`Rule`] and planned by the same planner as the configured rules
//! ([`plan::plan`]), so that protected principals, administrators, unmanaged accounts, link
//! conflicts, incomplete inventories and snapshots and rename collisions all apply. Applied,
//! the plan is stored as a `bulk` run in enforce mode, weighed against the same safety
//! budgets (over budget: held whole for a second principal's approval) and carried out by
//! the same executor, with the same audit entries.
//!
//! This module owns the filter language (its parser and its limits), the CSV reader for
//! name lists, the action syntax of the command line, and one bulk pass ([`bulk`]).
//!
//! # The filter language
//!
//! ```text
//! filter := term ( "and" term )*
//! term   := FIELD OP value | "logged_in_once"
//! OP     := "=" | "!=" | ">=" | ">" | "<" | "in" | "not in"
//! value  := WORD | "quoted string" | "(" value ( "," value )* ")"
//! ```
//!
//! Fields: `status` (`=`/`in`: deprovisioned, suspended, deleted, scim_inactive),
//! `inactive_days` / `never_logged_in_days` / `absent_syncs` (`>=` or `>` a whole number),
//! `logged_in_once`, `member_of` (`=`/`in`: any of; `!=`/`not in`: none of),
//! `member_of_all` (`=`/`in`: every one of), `directory` (`=`/`in`), `email_domain`
//! (`=`/`in`, `!=`/`not in`), `created_before` / `created_after` (`=` a date), `created`
//! (`<` or `>` a date), `attr.<name>` (`=`/`in`), `user` (`=`/`in`: usernames or emails).
//! Dates are `yyyy-mm-dd` (midnight UTC) or RFC 3339. Keywords and field names are
//! case-insensitive; values are compared case-insensitively by the planner. Terms are joined
//! with `and` only. At most [`MAX_FILTER_BYTES`] bytes and [`MAX_TERMS`] terms.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::domain::{
    ActionSpec, Criterion, Exemptions, GroupMatch, GroupSelection, LeaverSignal, PersonView, Plan,
    Rule, RuleMode,
};
use crate::engine::link;
use crate::engine::plan::{self, PlanInput};
use crate::engine::run::{self, LinkSummary, Preview, RunError, RunSummary};
use crate::engine::safety::{self, BudgetHistory, BudgetInput};
use crate::store::{NewAuditEntry, RunKind, Store, StoreError};

/// Longest filter expression accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4 * 1024;
/// Most terms in a filter expression.
pub const MAX_TERMS: usize = 32;
/// Largest CSV file of names read, in bytes.
pub const MAX_CSV_BYTES: u64 = 10 * 1024 * 1024;
/// Most rows read from a CSV file of names.
pub const MAX_CSV_ROWS: usize = 100_000;
/// Longest name (username or email) accepted from a CSV file, in characters.
pub const MAX_NAME_CHARS: usize = 512;
/// Most `--action` rungs.
pub const MAX_ACTIONS: usize = 16;

/// The fields of the filter language, for error messages.
const FIELDS: &str = "status, inactive_days, never_logged_in_days, logged_in_once, member_of, \
                      member_of_all, directory, email_domain, created_before, created_after, \
                      created, attr.<name>, absent_syncs, user";

/// The actions of the command line, for error messages.
const ACTIONS: &str = "notify[=DAYS], remove-licence-groups, deactivate, rename, \
                       remove-groups=all|A,B, add-groups=A,B, change-directory=NAME, delete";

// ---------------------------------------------------------------------------------------
// Errors.

/// Why a filter expression was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("the filter is empty (give at least one term, e.g. `inactive_days >= 90`)")]
    Empty,
    #[error("the filter is {0} bytes long; at most {MAX_FILTER_BYTES} are accepted")]
    TooLong(usize),
    #[error("the filter has more than {MAX_TERMS} terms")]
    TooManyTerms,
    /// Something is wrong at a place in the text (column counts characters from 1).
    #[error("filter, column {column}: {why}")]
    At { column: usize, why: String },
    /// One term is wrong.
    #[error("filter term {index} `{term}` (column {column}): {why}")]
    Term {
        /// 1-based.
        index: usize,
        term: String,
        column: usize,
        why: String,
    },
}

/// Why a bulk operation could not be prepared or made.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("--action `{action}`: {why}")]
    Action { action: String, why: String },
    #[error("{0}")]
    Csv(String),
    /// The request does not make a valid bulk operation (no selection, unknown target, …).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BulkError {
    /// Whether the request itself is wrong (as opposed to the store or a target failing).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BulkError::Filter(_)
                | BulkError::Action { .. }
                | BulkError::Csv(_)
                | BulkError::Invalid(_)
        )
    }
}

// ---------------------------------------------------------------------------------------
// The filter language: tokens.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// A bare word (field name, keyword or value).
    Word(String),
    /// A double-quoted string, unescaped.
    Str(String),
    Op(Op),
    Open,
    Close,
    Comma,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Ge,
    Gt,
    Lt,
    In,
    NotIn,
}

impl Op {
    fn shown(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::In => "in",
            Op::NotIn => "not in",
        }
    }
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// Byte offset of its first character.
    at: usize,
    /// Byte offset just past it.
    end: usize,
}

/// 1-based character column of byte offset `at` in `text`.
fn column(text: &str, at: usize) -> usize {
    text.get(..at).map_or(at, |s| s.chars().count()) + 1
}

fn is_word_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"' | '=' | '!' | '<' | '>'))
}

fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let at_err = |at: usize, why: String| FilterError::At {
        column: column(text, at),
        why,
    };
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c.is_control() {
            return Err(at_err(at, "control character".into()));
        }
        let simple = match c {
            '(' => Some(Tok::Open),
            ')' => Some(Tok::Close),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(tok) = simple {
            chars.next();
            out.push(Token {
                tok,
                at,
                end: at + 1,
            });
            continue;
        }
        match c {
            '=' | '!' | '<' | '>' => {
                chars.next();
                let eq_follows = chars.peek().is_some_and(|&(_, n)| n == '=');
                let (op, len) = match (c, eq_follows) {
                    ('=', false) => (Op::Eq, 1),
                    ('=', true) => (Op::Eq, 2),
                    ('!', true) => (Op::Ne, 2),
                    ('>', true) => (Op::Ge, 2),
                    ('>', false) => (Op::Gt, 1),
                    ('<', false) => (Op::Lt, 1),
                    ('<', true) => {
                        return Err(at_err(
                            at,
                            "`<=` is not an operator here (use `<` with `created`)".into(),
                        ));
                    }
                    _ => return Err(at_err(at, "`!` must be followed by `=`".into())),
                };
                if eq_follows {
                    chars.next();
                }
                out.push(Token {
                    tok: Tok::Op(op),
                    at,
                    end: at + len,
                });
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        '\\' => match chars.next() {
                            Some((_, e @ ('"' | '\\'))) => value.push(e),
                            _ => {
                                return Err(at_err(
                                    i,
                                    "in a quoted value only `\\\"` and `\\\\` are escapes".into(),
                                ));
                            }
                        },
                        c if c.is_control() => {
                            return Err(at_err(i, "control character".into()));
                        }
                        c => value.push(c),
                    }
                }
                let Some(end) = end else {
                    return Err(at_err(at, "the quoted value is not closed".into()));
                };
                out.push(Token {
                    tok: Tok::Str(value),
                    at,
                    end,
                });
            }
            _ => {
                let mut end = at;
                let mut word = String::new();
                while let Some(&(i, c)) = chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    if c.is_control() {
                        return Err(at_err(i, "control character".into()));
                    }
                    word.push(c);
                    end = i + c.len_utf8();
                    chars.next();
                }
                out.push(Token {
                    tok: Tok::Word(word),
                    at,
                    end,
                });
            }
        }
    }
    Ok(out)
}

fn is_keyword(tok: &Tok, kw: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

// ---------------------------------------------------------------------------------------
// The filter language: terms.

/// A term's value: one, or a parenthesised list.
enum Value {
    One(String),
    List(Vec<String>),
}

impl Value {
    fn into_list(self) -> Vec<String> {
        match self {
            Value::One(v) => vec![v],
            Value::List(v) => v,
        }
    }
}

/// Parses a filter expression into the criteria it stands for (every one must hold).
pub fn parse_filter(text: &str) -> Result<Vec<Criterion>, FilterError> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(FilterError::TooLong(text.len()));
    }
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err(FilterError::Empty);
    }
    // Split on `and` outside parentheses.
    let mut terms: Vec<&[Token]> = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        match t.tok {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && is_keyword(&t.tok, "and") {
            if i == start {
                return Err(FilterError::At {
                    column: column(text, t.at),
                    why: "`and` needs a term on each side".into(),
                });
            }
            terms.push(&tokens[start..i]);
            start = i + 1;
            if terms.len() >= MAX_TERMS {
                return Err(FilterError::TooManyTerms);
            }
        }
    }
    if start == tokens.len() {
        let last = &tokens[tokens.len() - 1];
        return Err(FilterError::At {
            column: column(text, last.at),
            why: "`and` needs a term on each side".into(),
        });
    }
    terms.push(&tokens[start..]);
    let mut out = Vec::with_capacity(terms.len());
    for (i, term) in terms.iter().enumerate() {
        let first = &term[0];
        let last = &term[term.len() - 1];
        let shown: String = text[first.at..last.end].chars().take(80).collect();
        let criterion = parse_term(term).map_err(|why| FilterError::Term {
            index: i + 1,
            term: shown,
            column: column(text, first.at),
            why,
        })?;
        out.push(criterion);
    }
    Ok(out)
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Word(w) => w.clone(),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Op(op) => op.shown().into(),
        Tok::Open => "(".into(),
        Tok::Close => ")".into(),
        Tok::Comma => ",".into(),
    }
}

fn parse_term(term: &[Token]) -> Result<Criterion, String> {
    let Tok::Word(field) = &term[0].tok else {
        return Err(format!(
            "a term starts with a field name, not `{}` (fields: {FIELDS})",
            tok_text(&term[0].tok)
        ));
    };
    let field_lower = field.to_ascii_lowercase();
    if term.len() == 1 {
        return match field_lower.as_str() {
            "logged_in_once" => Ok(Criterion::LoggedInOnce),
            f if is_field(f) => Err(format!(
                "`{field}` needs an operator and a value, e.g. {}",
                example(f)
            )),
            _ => Err(unknown_field(field)),
        };
    }
    if !is_field(&field_lower) {
        return Err(unknown_field(field));
    }
    let (op, rest) = match &term[1].tok {
        Tok::Op(op) => (*op, &term[2..]),
        t if is_keyword(t, "in") => (Op::In, &term[2..]),
        t if is_keyword(t, "not") => match term.get(2) {
            Some(n) if is_keyword(&n.tok, "in") => (Op::NotIn, &term[3..]),
            _ => return Err("`not` must be followed by `in`".into()),
        },
        t => {
            return Err(format!(
                "expected an operator after `{field}`, not `{}` (terms are joined with `and`)",
                tok_text(t)
            ));
        }
    };
    let value = parse_value(rest, op)?;
    criterion(&field_lower, field, op, value)
}

fn is_field(f: &str) -> bool {
    matches!(
        f,
        "status"
            | "inactive_days"
            | "never_logged_in_days"
            | "logged_in_once"
            | "member_of"
            | "member_of_all"
            | "directory"
            | "email_domain"
            | "created_before"
            | "created_after"
            | "created"
            | "absent_syncs"
            | "user"
    ) || f.starts_with("attr.")
}

fn unknown_field(field: &str) -> String {
    let shown: String = field.chars().take(40).collect();
    format!("unknown field `{shown}` (fields: {FIELDS})")
}

fn example(field: &str) -> &'static str {
    match field {
        "status" => "`status in (deprovisioned, suspended)`",
        "inactive_days" => "`inactive_days >= 90`",
        "never_logged_in_days" => "`never_logged_in_days >= 30`",
        "member_of" => "`member_of = confluence-users`",
        "member_of_all" => "`member_of_all in (staff, wiki-editors)`",
        "directory" => "`directory = \"Active Directory\"`",
        "email_domain" => "`email_domain = contractor.example`",
        "created_before" => "`created_before = 2024-01-01`",
        "created_after" => "`created_after = 2024-01-01`",
        "created" => "`created < 2024-01-01`",
        "absent_syncs" => "`absent_syncs >= 3`",
        "user" => "`user in (alice, bob@example.com)`",
        _ => "`attr.department = Sales`",
    }
}

fn parse_value(rest: &[Token], op: Op) -> Result<Value, String> {
    let Some(first) = rest.first() else {
        return Err(format!("expected a value after `{}`", op.shown()));
    };
    let (value, used) = match &first.tok {
        Tok::Word(w) => (Value::One(w.clone()), 1),
        Tok::Str(s) => (Value::One(s.clone()), 1),
        Tok::Open => {
            let mut items = Vec::new();
            let mut i = 1;
            loop {
                match rest.get(i).map(|t| &t.tok) {
                    Some(Tok::Word(w)) => items.push(w.clone()),
                    Some(Tok::Str(s)) => items.push(s.clone()),
                    Some(Tok::Close) if items.is_empty() => {
                        return Err("the list `()` is empty".into());
                    }
                    Some(t) => {
                        return Err(format!(
                            "expected a value in the list, not `{}`",
                            tok_text(t)
                        ));
                    }
                    None => return Err("the list is not closed with `)`".into()),
                }
                i += 1;
                match rest.get(i).map(|t| &t.tok) {
                    Some(Tok::Comma) => i += 1,
                    Some(Tok::Close) => break,
                    Some(t) => {
                        return Err(format!(
                            "expected `,` or `)` in the list, not `{}`",
                            tok_text(t)
                        ));
                    }
                    None => return Err("the list is not closed with `)`".into()),
                }
            }
            (Value::List(items), i + 1)
        }
        t => {
            return Err(format!(
                "expected a value after `{}`, not `{}`",
                op.shown(),
                tok_text(t)
            ));
        }
    };
    if let Some(extra) = rest.get(used) {
        return Err(format!(
            "unexpected `{}` after the value (terms are joined with `and`)",
            tok_text(&extra.tok)
        ));
    }
    if matches!(value, Value::List(_)) && !matches!(op, Op::In | Op::NotIn) {
        return Err(format!(
            "a list of values goes with `in` or `not in`, not `{}`",
            op.shown()
        ));
    }
    let values: Vec<&String> = match &value {
        Value::One(v) => vec![v],
        Value::List(v) => v.iter().collect(),
    };
    if values.iter().any(|v| v.trim().is_empty()) {
        return Err("empty value".into());
    }
    Ok(value)
}

fn bad_op(field: &str, op: Op, allowed: &str) -> String {
    format!("`{field}` takes {allowed}, not `{}`", op.shown())
}

fn days(field: &str, op: Op, value: Value, min: u32) -> Result<u32, String> {
    let Value::One(text) = value else {
        return Err(format!("`{field}` takes one number"));
    };
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number (0 to {})", u32::MAX))?;
    let n = match op {
        Op::Ge => n,
        Op::Gt => n
            .checked_add(1)
            .ok_or_else(|| format!("`{text}` is too large"))?,
        _ => return Err(bad_op(field, op, "`>=` or `>` and a number")),
    };
    if n < min {
        return Err(format!(
            "must be at least {min} ({} would select everyone)",
            n
        ));
    }
    Ok(n)
}

/// An RFC 3339 instant, or `yyyy-mm-dd` as midnight UTC.
fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{text}` is neither a date (yyyy-mm-dd) nor an RFC 3339 instant"))
}

fn criterion(field: &str, shown: &str, op: Op, value: Value) -> Result<Criterion, String> {
    let positive = matches!(op, Op::Eq | Op::In);
    let negative = matches!(op, Op::Ne | Op::NotIn);
    match field {
        "status" => {
            if !positive {
                return Err(bad_op(shown, op, "`=` or `in`"));
            }
            let mut any_of = Vec::new();
            for v in value.into_list() {
                any_of.push(match v.trim().to_ascii_lowercase().as_str() {
                    "deprovisioned" => LeaverSignal::Deprovisioned,
                    "suspended" => LeaverSignal::Suspended,
                    "deleted" => LeaverSignal::Deleted,
                    "scim_inactive" => LeaverSignal::ScimInactive,
                    _ => {
                        return Err(format!(
                            "unknown status `{v}` (expected deprovisioned, suspended, deleted, \
                             scim_inactive)"
                        ));
                    }
                });
            }
            any_of.sort();
            any_of.dedup();
            Ok(Criterion::Status { any_of })
        }
        "inactive_days" => Ok(Criterion::InactiveDays {
            days: days(shown, op, value, 1)?,
        }),
        "never_logged_in_days" => Ok(Criterion::NeverLoggedIn {
            days: days(shown, op, value, 0)?,
        }),
        "absent_syncs" => Ok(Criterion::AbsentSyncs {
            syncs: days(shown, op, value, 1)?,
        }),
        "logged_in_once" => Err("`logged_in_once` stands alone (no operator or value)".into()),
        "member_of" | "member_of_all" => {
            let how = match (field, positive, negative) {
                ("member_of", true, _) => GroupMatch::Any,
                ("member_of", _, true) => GroupMatch::None,
                ("member_of_all", true, _) => GroupMatch::All,
                ("member_of", ..) => {
                    return Err(bad_op(shown, op, "`=`, `in`, `!=` or `not in`"));
                }
                _ => return Err(bad_op(shown, op, "`=` or `in`")),
            };
            Ok(Criterion::MemberOf {
                groups: trimmed(value),
                how,
            })
        }
        "directory" => {
            if !positive {
                return Err(bad_op(shown, op, "`=` or `in`"));
            }
            Ok(Criterion::Directory {
                any_of: trimmed(value),
            })
        }
        "email_domain" => {
            if !positive && !negative {
                return Err(bad_op(shown, op, "`=`, `in`, `!=` or `not in`"));
            }
            let domains: Vec<String> = value
                .into_list()
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_owned())
                .collect();
            if let Some(d) = domains.iter().find(|d| d.is_empty() || d.contains('@')) {
                return Err(format!(
                    "`{d}` is not a domain (a domain is like `example.com`)"
                ));
            }
            Ok(Criterion::EmailDomain {
                domains,
                negate: negative,
            })
        }
        "created_before" | "created_after" => {
            let Value::One(text) = value else {
                return Err(format!("`{shown}` takes one date"));
            };
            if op != Op::Eq {
                return Err(bad_op(shown, op, "`=` and a date"));
            }
            let at = instant(&text)?;
            Ok(if field == "created_before" {
                Criterion::CreatedBefore { at }
            } else {
                Criterion::CreatedAfter { at }
            })
        }
        "created" => {
            let Value::One(text) = value else {
                return Err("`created` takes one date".into());
            };
            let at = instant(&text)?;
            match op {
                Op::Lt => Ok(Criterion::CreatedBefore { at }),
                Op::Gt => Ok(Criterion::CreatedAfter { at }),
                _ => Err(bad_op(shown, op, "`<` or `>` and a date")),
            }
        }
        "user" => {
            if !positive {
                return Err(bad_op(shown, op, "`=` or `in`"));
            }
            Ok(Criterion::Listed {
                names: trimmed(value),
            })
        }
        attr => {
            let name = attr.strip_prefix("attr.").unwrap_or_default();
            // The attribute's name as written (attribute names may be case-sensitive).
            let name_shown = shown.get("attr.".len()..).unwrap_or(name);
            if name_shown.trim().is_empty() {
                return Err("`attr.` needs an attribute name, e.g. `attr.department`".into());
            }
            if !positive {
                return Err(bad_op(shown, op, "`=` or `in`"));
            }
            Ok(Criterion::Attribute {
                name: name_shown.to_owned(),
                any_of: trimmed(value),
            })
        }
    }
}

fn trimmed(value: Value) -> Vec<String> {
    value
        .into_list()
        .into_iter()
        .map(|v| v.trim().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Names from a CSV file.

/// The names in a CSV file: one per row, from the column headed `username` or `email` (both
/// when both are present) or, without such a header, from the first column. Blank cells
/// are skipped, repeats (case-insensitive) are dropped.
pub fn read_names_csv(path: &Path) -> Result<Vec<String>, BulkError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| BulkError::Csv(format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return Err(BulkError::Csv(format!("{shown}: not a file")));
    }
    if meta.len() > MAX_CSV_BYTES {
        return Err(BulkError::Csv(format!(
            "{shown}: {} bytes is over the {MAX_CSV_BYTES}-byte limit",
            meta.len()
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| BulkError::Csv(format!("{shown}: {e}")))?;
    names_from_csv(file, &shown.to_string())
}

/// [`read_names_csv`] on any reader; `shown` names it in errors.
pub fn names_from_csv(reader: impl Read, shown: &str) -> Result<Vec<String>, BulkError> {
    let err = |m: String| BulkError::Csv(format!("{shown}{m}"));
    let mut limited = reader.take(MAX_CSV_BYTES + 1);
    let mut bytes = Vec::new();
    limited
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!(": {e}")))?;
    if bytes.len() as u64 > MAX_CSV_BYTES {
        return Err(err(format!(": over the {MAX_CSV_BYTES}-byte limit")));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let mut columns: Option<Vec<usize>> = None;
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    let mut rows = 0usize;
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(row as u64 + 1, |p| p.line());
            err(format!(" line {line}: {e}"))
        })?;
        let line = record.position().map_or(row as u64 + 1, |p| p.line());
        if columns.is_none() {
            let named: Vec<usize> = record
                .iter()
                .enumerate()
                .filter(|(_, h)| {
                    let h = h.trim_start_matches('\u{feff}').trim();
                    h.eq_ignore_ascii_case("username") || h.eq_ignore_ascii_case("email")
                })
                .map(|(i, _)| i)
                .collect();
            let header = !named.is_empty();
            columns = Some(if header { named } else { vec![0] });
            if header {
                continue;
            }
        }
        rows += 1;
        if rows > MAX_CSV_ROWS {
            return Err(err(format!(": more than {MAX_CSV_ROWS} rows")));
        }
        let cols = columns.as_deref().unwrap_or(&[0]);
        for &c in cols {
            let Some(v) = record.get(c) else { continue };
            let v = if row == 0 {
                v.trim_start_matches('\u{feff}').trim()
            } else {
                v
            };
            if v.is_empty() {
                continue;
            }
            if v.chars().any(char::is_control) {
                return Err(err(format!(
                    " line {line}: a name holds a control character"
                )));
            }
            if v.chars().count() > MAX_NAME_CHARS {
                return Err(err(format!(
                    " line {line}: a name is longer than {MAX_NAME_CHARS} characters"
                )));
            }
            if seen.insert(v.to_lowercase()) {
                names.push(v.to_owned());
            }
        }
    }
    if names.is_empty() {
        return Err(err(": no names in the file".into()));
    }
    Ok(names)
}

// ---------------------------------------------------------------------------------------
// Actions.

/// One `--action` as written on the command line (`notify=14`, `remove-groups=a,b`, …);
/// `notify` without a value waits `default_grace_days`.
pub fn parse_action(text: &str, default_grace_days: u32) -> Result<ActionSpec, BulkError> {
    let shown: String = text.chars().take(80).collect();
    let fail = |why: String| BulkError::Action {
        action: shown.clone(),
        why,
    };
    let (name, value) = match text.split_once('=') {
        Some((n, v)) => (n.trim(), Some(v.trim())),
        None => (text.trim(), None),
    };
    let name = name.to_ascii_lowercase().replace('_', "-");
    let list = |v: Option<&str>| -> Result<Vec<String>, BulkError> {
        let v = v.ok_or_else(|| fail(format!("`{name}` needs a value, e.g. `{name}=a,b`")))?;
        let items: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
        if items.iter().any(String::is_empty) {
            return Err(fail("every entry is a non-empty group name".into()));
        }
        Ok(items)
    };
    let none = |spec: ActionSpec| match value {
        Some(_) => Err(fail(format!("`{name}` takes no value"))),
        None => Ok(spec),
    };
    match name.as_str() {
        "notify" => match value {
            None => Ok(ActionSpec::Notify {
                grace_days: default_grace_days,
            }),
            Some(v) => v
                .parse::<u32>()
                .map(|grace_days| ActionSpec::Notify { grace_days })
                .map_err(|_| fail(format!("`{v}` is not a whole number of grace days"))),
        },
        "remove-licence-groups" | "remove-license-groups" => none(ActionSpec::RemoveLicenceGroups),
        "deactivate" => none(ActionSpec::Deactivate),
        "rename" => none(ActionSpec::Rename),
        "delete" => none(ActionSpec::Delete),
        "remove-groups" if value.is_some_and(|v| v.eq_ignore_ascii_case("all")) => {
            Ok(ActionSpec::RemoveGroups {
                groups: GroupSelection::All,
            })
        }
        "remove-groups" => Ok(ActionSpec::RemoveGroups {
            groups: GroupSelection::Named(list(value)?),
        }),
        "add-groups" => Ok(ActionSpec::AddGroups {
            groups: list(value)?,
        }),
        "change-directory" => match value {
            Some(v) if !v.is_empty() => Ok(ActionSpec::ChangeDirectory {
                directory: v.to_owned(),
            }),
            _ => Err(fail("`change-directory` needs a directory name".into())),
        },
        _ => Err(fail(format!("unknown action (expected one of {ACTIONS})"))),
    }
}

// ---------------------------------------------------------------------------------------
// The synthetic rule.

/// What a bulk operation selects and does, before it is planned.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BulkRequest {
    /// Criteria from the filter expression.
    pub criteria: Vec<Criterion>,
    /// Names from a CSV file (usernames or emails); with a filter, both must hold.
    pub listed: Option<Vec<String>>,
    /// The ladder, in order.
    pub actions: Vec<ActionSpec>,
    /// Target names; empty: every target.
    pub targets: Vec<String>,
    /// Whether `delete` may be planned.
    pub allow_delete: bool,
}

impl BulkRequest {
    /// The synthetic rule this request stands for, named `bulk-<digest>` after its
    /// selection and ladder (so a repeated bulk continues its own notices, and nobody
    /// else's), or why it is not a valid one.
    pub fn rule(&self, config: &Config) -> Result<Rule, BulkError> {
        let mut criteria = self.criteria.clone();
        if let Some(names) = &self.listed {
            criteria.push(Criterion::Listed {
                names: names.clone(),
            });
        }
        if criteria.is_empty() {
            return Err(BulkError::Invalid(
                "a bulk operation needs --filter or --csv (nothing would select everyone)".into(),
            ));
        }
        if self.actions.is_empty() {
            return Err(BulkError::Invalid(
                "a bulk operation needs at least one --action".into(),
            ));
        }
        if self.actions.len() > MAX_ACTIONS {
            return Err(BulkError::Invalid(format!(
                "at most {MAX_ACTIONS} --action rungs"
            )));
        }
        let mut seen = HashSet::new();
        for a in &self.actions {
            let repeatable = matches!(
                a,
                ActionSpec::RemoveGroups { .. } | ActionSpec::AddGroups { .. }
            );
            if !repeatable && !seen.insert(std::mem::discriminant(a)) {
                return Err(BulkError::Invalid(format!(
                    "--action {}: given twice (each appears once in the ladder)",
                    action_name(a)
                )));
            }
        }
        if let Some(i) = self.actions.iter().position(|a| *a == ActionSpec::Delete) {
            if !self.allow_delete {
                return Err(BulkError::Invalid(
                    "--action delete deletes accounts for good: it needs --allow-delete".into(),
                ));
            }
            if i + 1 < self.actions.len() {
                return Err(BulkError::Invalid(
                    "--action delete must be the last action".into(),
                ));
            }
        }
        for t in &self.targets {
            if !config.targets.contains_key(t) {
                let configured: Vec<&str> = config.targets.keys().map(String::as_str).collect();
                return Err(BulkError::Invalid(format!(
                    "--target `{}`: no such target (configured: {})",
                    t.escape_debug(),
                    if configured.is_empty() {
                        "none".to_owned()
                    } else {
                        configured.join(", ")
                    }
                )));
            }
        }
        let material = serde_json::json!({
            "criteria": criteria,
            "actions": self.actions,
            "targets": self.targets,
            "allow_delete": self.allow_delete,
        });
        let digest = Sha256::digest(material.to_string().as_bytes());
        let name = format!(
            "bulk-{}",
            digest[..4].iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
        );
        Ok(Rule {
            name,
            enabled: true,
            mode: RuleMode::Enforce,
            priority: 0,
            targets: self.targets.clone(),
            criteria,
            exempt: Exemptions::default(),
            actions: self.actions.clone(),
            allow_delete: self.allow_delete,
            schedule: None,
        })
    }
}

fn action_name(a: &ActionSpec) -> &'static str {
    match a {
        ActionSpec::Notify { .. } => "notify",
        ActionSpec::RemoveLicenceGroups => "remove-licence-groups",
        ActionSpec::Deactivate => "deactivate",
        ActionSpec::Rename => "rename",
        ActionSpec::RemoveGroups { .. } => "remove-groups",
        ActionSpec::AddGroups { .. } => "add-groups",
        ActionSpec::ChangeDirectory { .. } => "change-directory",
        ActionSpec::Delete => "delete",
    }
}

// ---------------------------------------------------------------------------------------
// One bulk pass.

/// How to make a bulk pass.
#[derive(Clone, Debug, Default)]
pub struct BulkOptions {
    /// Store the plan as a `bulk` run in enforce mode (else: plan and report only; nothing
    /// is stored but new links).
    pub apply: bool,
    /// With `apply`: carry out the stored run now when it is within budget.
    pub execute: bool,
    /// Who asks for it.
    pub principal: String,
}

/// Listed names that match no account on the targets in scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListedReport {
    /// Names listed.
    pub names: usize,
    /// Names that match no account's username or email, nor a linked identity's, in file
    /// order.
    pub unknown: Vec<String>,
}

/// What a bulk pass planned and did.
#[derive(Debug, Serialize)]
pub struct BulkOutcome {
    /// The synthetic rule planned.
    pub rule: Rule,
    /// The plan (under `enforce` when applied, under `dry_run` when not) and its budget
    /// check, with links, sources and targets as `idbridge plan` reports them.
    pub preview: Preview,
    /// The names of `--csv` and `user =` terms, and which of them match nobody.
    pub listed: Option<ListedReport>,
    /// The stored run, when applied and anything was planned.
    pub run: Option<RunSummary>,
}

/// The names of every `Listed` criterion, and which of them match no account on the
/// targets the rule applies to.
pub fn unknown_names(rule: &Rule, people: &[PersonView]) -> Option<ListedReport> {
    let listed: Vec<&String> = rule
        .criteria
        .iter()
        .filter_map(|c| match c {
            Criterion::Listed { names } => Some(names),
            _ => None,
        })
        .flatten()
        .collect();
    if listed.is_empty() {
        return None;
    }
    let in_scope = |p: &&PersonView| {
        rule.targets.is_empty()
            || rule
                .targets
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&p.account.target))
    };
    let mut known: HashSet<String> = HashSet::new();
    for p in people.iter().filter(in_scope) {
        known.insert(p.account.username.to_lowercase());
        known.extend(p.account.email.as_deref().map(str::to_lowercase));
        for i in &p.identities {
            known.insert(i.user_name.to_lowercase());
            known.extend(i.email.as_deref().map(str::to_lowercase));
        }
    }
    let mut reported = HashSet::new();
    let unknown = listed
        .iter()
        .filter(|n| !known.contains(&n.trim().to_lowercase()))
        .filter(|n| reported.insert(n.trim().to_lowercase()))
        .map(|n| (*n).clone())
        .collect();
    Some(ListedReport {
        names: listed.len(),
        unknown,
    })
}

/// Links, plans the bulk rule with the planner, checks the budgets and reports; with
/// `apply`, stores the plan as a `bulk` run (held when over budget) and carries it out
/// unless told not to.
#[tracing::instrument(skip_all, fields(rule = %rule.name, apply = opts.apply, principal = %opts.principal))]
pub async fn bulk(
    store: &Store,
    config: &Config,
    rule: &Rule,
    opts: &BulkOptions,
    now: DateTime<Utc>,
) -> Result<BulkOutcome, BulkError> {
    let settings = run::settings(config)?;
    let report = link::refresh_links(store, config)
        .await
        .map_err(RunError::from)?;
    let inputs = store.planner_inputs(config, &report).await?;
    let links = LinkSummary {
        accounts: report.accounts,
        linked: report.linked,
        unlinked: report.unlinked,
        conflicts: report.conflicted,
        added: report.added,
    };
    let rules = std::slice::from_ref(rule);
    let planned = plan::plan(&PlanInput {
        people: &inputs.people,
        rules,
        sources: &inputs.sources,
        targets: &inputs.targets,
        settings: &settings,
        now,
    });
    let listed = unknown_names(rule, &inputs.people);
    let (day, week) = store
        .budget_history(now - Duration::hours(24), now - Duration::days(7))
        .await?;
    let history = BudgetHistory { day, week };
    // An ad-hoc selection has no enforced history of its own: its limits are tightened by
    // `safety.change_factor`, as a changed rule's are.
    let first_run = !store.has_enforced_run().await?;
    let budget = |plan: &Plan| {
        safety::check_budgets(&BudgetInput {
            plan,
            history: &history,
            first_run,
            changed: true,
            config: &config.safety,
        })
    };
    let empty = Plan {
        actions: Vec::new(),
        ..planned.clone()
    };
    let (enforce, dry_run) = if opts.apply {
        (planned, empty)
    } else {
        (empty, planned)
    };
    let config_hash = {
        let material = serde_json::json!({
            "config": run::config_hash(config, std::slice::from_ref(&rule.name)),
            "rule": rule,
        });
        let digest = Sha256::digest(material.to_string().as_bytes());
        digest.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    let preview = Preview {
        links,
        sources: inputs.sources,
        targets: inputs.targets,
        enforce_budget: budget(&enforce),
        dry_run_budget: budget(&dry_run),
        enforce,
        dry_run,
        rules: vec![rule.name.clone()],
        config_hash,
    };
    tracing::info!(
        actions = preview.enforce.actions.len() + preview.dry_run.actions.len(),
        unknown_names = listed.as_ref().map_or(0, |l| l.unknown.len()),
        "bulk planned"
    );
    let mut outcome = BulkOutcome {
        rule: rule.clone(),
        preview,
        listed,
        run: None,
    };
    if !opts.apply || outcome.preview.enforce.actions.is_empty() {
        return Ok(outcome);
    }
    let plan = &outcome.preview.enforce;
    let budget = &outcome.preview.enforce_budget;
    let run::StoredRun {
        id,
        status,
        plan_hash,
    } = run::store_run(
        store,
        run::RunToStore {
            kind: RunKind::Bulk,
            mode: RuleMode::Enforce,
            rules: vec![rule.name.clone()],
            started_by: &opts.principal,
            config_hash: outcome.preview.config_hash.clone(),
            actions: &plan.actions,
            budget,
        },
    )
    .await?;
    // What was asked for, in words: the run itself only names the synthetic rule.
    store
        .record_audit(&NewAuditEntry {
            actor: opts.principal.clone(),
            action: "bulk.applied".into(),
            subject_kind: Some("run".into()),
            subject_id: Some(id.to_string()),
            detail: serde_json::json!({
                "rule": rule.name,
                "selection": describe_criteria(&rule.criteria),
                "actions": rule.actions,
                "targets": rule.targets,
                "listed": outcome.listed.as_ref().map(|l| l.names),
                "unknown_names": outcome.listed.as_ref().map(|l| l.unknown.len()),
                "status": status.as_str(),
            }),
        })
        .await?;
    let (status, executed) =
        run::execute_if_planned(store, config, id, status, opts.execute).await?;
    outcome.run = Some(RunSummary {
        run: id,
        mode: RuleMode::Enforce,
        status,
        plan_hash,
        actions: outcome.preview.enforce.actions.len(),
        budget: outcome.preview.enforce_budget.clone(),
        executed,
    });
    Ok(outcome)
}

/// The criteria of a rule in the filter language (for reports): what was parsed, read back.
pub fn describe_criteria(criteria: &[Criterion]) -> String {
    let list = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|s| quote(s)).collect();
        if quoted.len() == 1 {
            format!("= {}", quoted[0])
        } else {
            format!("in ({})", quoted.join(", "))
        }
    };
    let not_list = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|s| quote(s)).collect();
        if quoted.len() == 1 {
            format!("!= {}", quoted[0])
        } else {
            format!("not in ({})", quoted.join(", "))
        }
    };
    let mut terms = Vec::new();
    for c in criteria {
        terms.push(match c {
            Criterion::Status { any_of } => {
                let names: Vec<String> = any_of
                    .iter()
                    .map(|s| {
                        serde_json::to_value(s)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    })
                    .collect();
                format!("status {}", list(&names))
            }
            Criterion::InactiveDays { days } => format!("inactive_days >= {days}"),
            Criterion::NeverLoggedIn { days } => format!("never_logged_in_days >= {days}"),
            Criterion::LoggedInOnce => "logged_in_once".into(),
            Criterion::MemberOf { groups, how } => match how {
                GroupMatch::Any => format!("member_of {}", list(groups)),
                GroupMatch::All => format!("member_of_all {}", list(groups)),
                GroupMatch::None => format!("member_of {}", not_list(groups)),
            },
            Criterion::Directory { any_of } => format!("directory {}", list(any_of)),
            Criterion::EmailDomain { domains, negate } => format!(
                "email_domain {}",
                if *negate {
                    not_list(domains)
                } else {
                    list(domains)
                }
            ),
            Criterion::CreatedBefore { at } => format!("created < {}", at.to_rfc3339()),
            Criterion::CreatedAfter { at } => format!("created > {}", at.to_rfc3339()),
            Criterion::Attribute { name, any_of } => format!("attr.{name} {}", list(any_of)),
            Criterion::Listed { names } => format!("user in ({} names)", names.len()),
            Criterion::AbsentSyncs { syncs } => format!("absent_syncs >= {syncs}"),
        });
    }
    terms.join(" and ")
}

fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(is_word_char) && !s.eq_ignore_ascii_case("and") {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> Vec<Criterion> {
        parse_filter(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        parse_filter(text)
            .expect_err(&format!("`{text}` should be refused"))
            .to_string()
    }

    fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("date")
            .and_utc()
    }

    #[test]
    fn the_example_of_the_issue_compiles_to_three_criteria() {
        assert_eq!(
            parse(
                "inactive_days >= 90 and email_domain = contractor.example and member_of = \
                 confluence-users"
            ),
            vec![
                Criterion::InactiveDays { days: 90 },
                Criterion::EmailDomain {
                    domains: vec!["contractor.example".into()],
                    negate: false
                },
                Criterion::MemberOf {
                    groups: vec!["confluence-users".into()],
                    how: GroupMatch::Any
                },
            ]
        );
    }

    #[test]
    fn every_field_compiles_to_its_criterion() {
        let cases: Vec<(&str, Criterion)> = vec![
            (
                "status in (deprovisioned, SUSPENDED, deprovisioned)",
                Criterion::Status {
                    any_of: vec![LeaverSignal::Deprovisioned, LeaverSignal::Suspended],
                },
            ),
            (
                "status = scim_inactive",
                Criterion::Status {
                    any_of: vec![LeaverSignal::ScimInactive],
                },
            ),
            ("inactive_days > 89", Criterion::InactiveDays { days: 90 }),
            (
                "never_logged_in_days >= 0",
                Criterion::NeverLoggedIn { days: 0 },
            ),
            ("LOGGED_IN_ONCE", Criterion::LoggedInOnce),
            (
                "member_of in (a, \"wiki editors\")",
                Criterion::MemberOf {
                    groups: vec!["a".into(), "wiki editors".into()],
                    how: GroupMatch::Any,
                },
            ),
            (
                "member_of not in (a)",
                Criterion::MemberOf {
                    groups: vec!["a".into()],
                    how: GroupMatch::None,
                },
            ),
            (
                "member_of != a",
                Criterion::MemberOf {
                    groups: vec!["a".into()],
                    how: GroupMatch::None,
                },
            ),
            (
                "member_of_all in (a, b)",
                Criterion::MemberOf {
                    groups: vec!["a".into(), "b".into()],
                    how: GroupMatch::All,
                },
            ),
            (
                "directory = \"Active Directory\"",
                Criterion::Directory {
                    any_of: vec!["Active Directory".into()],
                },
            ),
            (
                "email_domain != @example.com",
                Criterion::EmailDomain {
                    domains: vec!["example.com".into()],
                    negate: true,
                },
            ),
            (
                "created_before = 2024-01-31",
                Criterion::CreatedBefore {
                    at: day(2024, 1, 31),
                },
            ),
            (
                "created_after == 2024-01-31T00:00:00Z",
                Criterion::CreatedAfter {
                    at: day(2024, 1, 31),
                },
            ),
            (
                "created < 2020-02-29",
                Criterion::CreatedBefore {
                    at: day(2020, 2, 29),
                },
            ),
            (
                "created > 2020-02-29",
                Criterion::CreatedAfter {
                    at: day(2020, 2, 29),
                },
            ),
            (
                "attr.costCenter in (\"R&D\", ops)",
                Criterion::Attribute {
                    name: "costCenter".into(),
                    any_of: vec!["R&D".into(), "ops".into()],
                },
            ),
            ("absent_syncs >= 3", Criterion::AbsentSyncs { syncs: 3 }),
            (
                "user in (alice, bob@example.com)",
                Criterion::Listed {
                    names: vec!["alice".into(), "bob@example.com".into()],
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), vec![want], "{text}");
        }
    }

    #[test]
    fn keywords_are_case_insensitive_and_and_may_be_quoted_as_a_value() {
        assert_eq!(
            parse("Member_Of IN (x) AND directory = \"and\""),
            vec![
                Criterion::MemberOf {
                    groups: vec!["x".into()],
                    how: GroupMatch::Any
                },
                Criterion::Directory {
                    any_of: vec!["and".into()]
                },
            ]
        );
        assert_eq!(
            parse("directory = \"say \\\"hi\\\" \\\\ bye\""),
            vec![Criterion::Directory {
                any_of: vec!["say \"hi\" \\ bye".into()]
            }]
        );
    }

    #[test]
    fn errors_name_the_bad_term_its_column_and_why() {
        let e = err("inactive_days >= 90 and email_domian = x.example");
        assert!(e.contains("term 2"), "{e}");
        assert!(e.contains("`email_domian = x.example`"), "{e}");
        assert!(e.contains("column 25"), "{e}");
        assert!(e.contains("unknown field `email_domian`"), "{e}");

        let cases = [
            ("inactive_days >= ninety", "term 1", "not a whole number"),
            ("inactive_days >= 0", "term 1", "at least 1"),
            ("inactive_days = 90", "term 1", "`>=` or `>`"),
            ("status = gone", "term 1", "unknown status `gone`"),
            ("status != deleted", "term 1", "`=` or `in`"),
            ("member_of_all != a", "term 1", "`=` or `in`"),
            ("member_of = (a, b)", "term 1", "goes with `in`"),
            ("member_of in (a, b", "term 1", "not closed"),
            ("member_of in ()", "term 1", "empty"),
            ("member_of in (a b)", "term 1", "expected `,` or `)`"),
            (
                "member_of = a b",
                "term 1",
                "unexpected `b` after the value",
            ),
            (
                "member_of = a or member_of = b",
                "term 1",
                "joined with `and`",
            ),
            ("member_of", "term 1", "needs an operator and a value"),
            ("member_of =", "term 1", "expected a value after `=`"),
            ("member_of = \"\"", "term 1", "empty value"),
            ("email_domain = a@b", "term 1", "not a domain"),
            ("created_before = yesterday", "term 1", "neither a date"),
            ("created = 2024-01-01", "term 1", "`<` or `>`"),
            ("attr. = x", "term 1", "attribute name"),
            ("logged_in_once = yes", "term 1", "stands alone"),
            ("= x", "term 1", "starts with a field name"),
            (
                "logged_in_once and member_of not a",
                "term 2",
                "followed by `in`",
            ),
        ];
        for (text, term, why) in cases {
            let e = err(text);
            assert!(e.contains(term) && e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn errors_outside_a_term_give_the_column() {
        for (text, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("and inactive_days >= 1", "column 1: `and` needs a term"),
            ("inactive_days >= 1 and", "column 20: `and` needs a term"),
            ("inactive_days >= 1 and and x = 1", "`and` needs a term"),
            (
                "member_of = \"open",
                "column 13: the quoted value is not closed",
            ),
            ("member_of ! a", "`!` must be followed by `=`"),
            ("created <= 2024-01-01", "`<=` is not an operator"),
            ("member_of = a\u{7}", "control character"),
            ("member_of = \"a\\n\"", "escapes"),
        ] {
            let e = err(text);
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn filters_beyond_the_limits_are_refused() {
        let long = format!("user = {}", "x".repeat(MAX_FILTER_BYTES));
        assert_eq!(parse_filter(&long), Err(FilterError::TooLong(long.len())));
        let term = "logged_in_once";
        let ok = vec![term; MAX_TERMS].join(" and ");
        assert_eq!(parse(&ok).len(), MAX_TERMS);
        let over = vec![term; MAX_TERMS + 1].join(" and ");
        assert_eq!(parse_filter(&over), Err(FilterError::TooManyTerms));
    }

    #[test]
    fn described_criteria_parse_back_to_the_same_criteria() {
        let text = "status in (deprovisioned, suspended) and inactive_days >= 90 and \
                    member_of_all in (a, \"b c\") and email_domain not in (x.example, y) and \
                    member_of != z and \
                    created > 2024-01-01 and attr.dept = Sales and absent_syncs >= 2 and \
                    logged_in_once and directory = and";
        let Err(_) = parse_filter(text) else {
            panic!("a bare `and` value must be refused");
        };
        let text = text.replace("directory = and", "directory = \"and\"");
        let criteria = parse(&text);
        let described = describe_criteria(&criteria);
        assert_eq!(parse(&described), criteria, "{described}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_parser_never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = parse_filter(&text);
        }

        #[test]
        fn the_parser_never_panics_on_near_misses(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("status"), Just("inactive_days"), Just("member_of"), Just("attr.x"),
                    Just("created"), Just("user"), Just("logged_in_once"), Just("and"),
                    Just("in"), Just("not"), Just("="), Just("!="), Just(">="), Just(">"),
                    Just("<"), Just("("), Just(")"), Just(","), Just("\""), Just("\\"),
                    Just("90"), Just("2024-01-01"), Just("é"), Just(" "), Just("!"),
                ],
                0..40,
            )
        ) {
            let text: String = parts.concat();
            if let Err(e) = parse_filter(&text) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn csv_names_come_from_a_named_column_or_the_first_one() {
        let names = |text: &str| names_from_csv(text.as_bytes(), "t.csv");
        assert_eq!(
            names("alice\nBob@example.com\n\n alice \nALICE\n").unwrap(),
            ["alice", "Bob@example.com"]
        );
        assert_eq!(
            names("\u{feff}name,Email\nAlice,alice@x\nBob,\n").unwrap(),
            ["alice@x"]
        );
        assert_eq!(
            names("username,email\nann,ann@x\n").unwrap(),
            ["ann", "ann@x"]
        );
        assert_eq!(names("\u{feff}ann,x\nbob\n").unwrap(), ["ann", "bob"]);
        for (text, why) in [
            ("", "no names"),
            ("username\n\n", "no names"),
            ("a\u{1}b\n", "control character"),
        ] {
            let e = names(text).expect_err(text).to_string();
            assert!(e.starts_with("t.csv") && e.contains(why), "{text:?}: {e}");
        }
        let e = names_from_csv(&b"ann\nb\xffb\n"[..], "t.csv")
            .expect_err("not UTF-8")
            .to_string();
        assert!(e.contains("t.csv line 2"), "{e}");
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert!(names(&long).is_err());
        let many = "u\n".repeat(MAX_CSV_ROWS + 2);
        let e = names(&many).expect_err("too many rows").to_string();
        assert!(e.contains("more than"), "{e}");
        let big = vec![b'a'; usize::try_from(MAX_CSV_BYTES).unwrap() + 1];
        let e = names_from_csv(big.as_slice(), "big.csv")
            .expect_err("too big")
            .to_string();
        assert!(e.contains("byte limit"), "{e}");
    }

    #[test]
    fn actions_parse_from_their_command_line_form() {
        let ok = |t: &str| parse_action(t, 14).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(ok("notify"), ActionSpec::Notify { grace_days: 14 });
        assert_eq!(ok("notify=3"), ActionSpec::Notify { grace_days: 3 });
        assert_eq!(ok("remove_licence_groups"), ActionSpec::RemoveLicenceGroups);
        assert_eq!(ok("Remove-License-Groups"), ActionSpec::RemoveLicenceGroups);
        assert_eq!(ok("deactivate"), ActionSpec::Deactivate);
        assert_eq!(ok("rename"), ActionSpec::Rename);
        assert_eq!(ok("delete"), ActionSpec::Delete);
        assert_eq!(
            ok("remove-groups=all"),
            ActionSpec::RemoveGroups {
                groups: GroupSelection::All
            }
        );
        assert_eq!(
            ok("remove-groups=a, b"),
            ActionSpec::RemoveGroups {
                groups: GroupSelection::Named(vec!["a".into(), "b".into()])
            }
        );
        assert_eq!(
            ok("add-groups=former-staff"),
            ActionSpec::AddGroups {
                groups: vec!["former-staff".into()]
            }
        );
        assert_eq!(
            ok("change-directory=Archive"),
            ActionSpec::ChangeDirectory {
                directory: "Archive".into()
            }
        );
        for (bad, why) in [
            ("explode", "unknown action"),
            ("notify=soon", "not a whole number"),
            ("deactivate=1", "takes no value"),
            ("add-groups", "needs a value"),
            ("add-groups=a,,b", "non-empty"),
            ("change-directory=", "directory name"),
        ] {
            let e = parse_action(bad, 14).expect_err(bad).to_string();
            assert!(e.contains(bad) && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_request_becomes_one_enforce_rule_or_a_clear_refusal() {
        let mut config = Config::default();
        config.targets.insert(
            "wiki".into(),
            crate::config::TargetConfig::new(
                crate::domain::TargetKind::ConfluenceDc,
                "http://127.0.0.1:1",
            ),
        );
        let req = BulkRequest {
            criteria: vec![Criterion::InactiveDays { days: 90 }],
            listed: Some(vec!["ann".into()]),
            actions: vec![ActionSpec::RemoveLicenceGroups, ActionSpec::Deactivate],
            targets: vec!["wiki".into()],
            allow_delete: false,
        };
        let rule = req.rule(&config).expect("rule");
        assert!(
            rule.name.starts_with("bulk-") && rule.name.len() == 13,
            "{}",
            rule.name
        );
        assert_eq!(rule.mode, RuleMode::Enforce);
        assert_eq!(
            rule.criteria,
            vec![
                Criterion::InactiveDays { days: 90 },
                Criterion::Listed {
                    names: vec!["ann".into()]
                }
            ]
        );
        // The same request names the same rule; another one another.
        assert_eq!(req.rule(&config).unwrap().name, rule.name);
        let other = BulkRequest {
            actions: vec![ActionSpec::Deactivate],
            ..req.clone()
        };
        assert_ne!(other.rule(&config).unwrap().name, rule.name);

        let refused = |r: BulkRequest, why: &str| {
            let e = r.rule(&config).expect_err(why).to_string();
            assert!(e.contains(why), "{e}");
        };
        refused(
            BulkRequest {
                criteria: Vec::new(),
                listed: None,
                ..req.clone()
            },
            "needs --filter or --csv",
        );
        refused(
            BulkRequest {
                actions: Vec::new(),
                ..req.clone()
            },
            "at least one --action",
        );
        refused(
            BulkRequest {
                actions: vec![ActionSpec::Delete],
                ..req.clone()
            },
            "--allow-delete",
        );
        refused(
            BulkRequest {
                actions: vec![ActionSpec::Delete, ActionSpec::Rename],
                allow_delete: true,
                ..req.clone()
            },
            "last action",
        );
        refused(
            BulkRequest {
                actions: vec![ActionSpec::Rename, ActionSpec::Rename],
                ..req.clone()
            },
            "given twice",
        );
        refused(
            BulkRequest {
                targets: vec!["nope".into()],
                ..req.clone()
            },
            "--target `nope`: no such target (configured: wiki)",
        );
        let delete = BulkRequest {
            actions: vec![ActionSpec::Deactivate, ActionSpec::Delete],
            allow_delete: true,
            ..req
        };
        assert!(delete.rule(&config).unwrap().allow_delete);
    }
}
