//! Parsing of SCIM filters (RFC 7644 §3.4.2.2), PATCH paths (§3.5.2) and the attribute paths
//! of `sortBy` and `attributes`/`excludedAttributes` into the trees of [`super::ast`]. No I/O.
//!
//! The parser works on `char`s, never indexes out of bounds and never panics on any input.
//! Size limits ([`Limits`]) are checked before and while parsing: the length up front, the
//! nesting depth (parentheses, brackets and `not`) as the recursive descent goes down, so the
//! recursion is bounded by `max_depth`, and the number of comparisons as they are read.
//! Attribute names are kept as written; [`super::schema`] resolves them.

use std::str::FromStr;

use serde_json::Number;

use super::ast::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
use super::error::ScimError;

/// Bounds on what a filter or PATCH path may cost to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest input accepted, in bytes.
    pub max_length: usize,
    /// The deepest nesting of parentheses, brackets and `not` accepted.
    pub max_depth: usize,
    /// The most comparisons (`attr op value` and `attr pr`) accepted.
    pub max_terms: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_length: 4096,
            max_depth: 64,
            max_terms: 1024,
        }
    }
}

/// Parses a `filter` query parameter (or `.search` body member). Errors are 400
/// `invalidFilter`, naming what was expected and the (1-based, in characters) column.
pub fn parse_filter(input: &str, limits: &Limits) -> Result<Filter, ScimError> {
    let mode = Mode::Filter;
    check_length(input, limits, mode)?;
    let mut p = Parser::new(input, limits, mode);
    p.parse_whole_filter().map_err(|e| e.into_scim(mode))
}

/// Parses a PATCH operation's `path`: `attrPath`, or `attrPath "[" valFilter "]" ["." subAttr]`.
/// Errors are 400 `invalidPath`.
pub fn parse_patch_path(input: &str, limits: &Limits) -> Result<PatchPath, ScimError> {
    let mode = Mode::PatchPath;
    check_length(input, limits, mode)?;
    let mut p = Parser::new(input, limits, mode);
    p.parse_whole_patch_path().map_err(|e| e.into_scim(mode))
}

/// Parses one attribute path, `[URN ":"] name ["." sub]`, as `sortBy` takes. Surrounding
/// whitespace is ignored. Errors are 400 `invalidPath`.
pub fn parse_attr_path(input: &str) -> Result<AttrPath, ScimError> {
    let mode = Mode::AttrPath;
    let limits = Limits::default();
    let mut p = Parser::new(input, &limits, mode);
    p.parse_whole_attr_path().map_err(|e| e.into_scim(mode))
}

/// Parses a comma-separated list of attribute paths, as `attributes` and `excludedAttributes`
/// take; whitespace around the commas is allowed. An empty (or all-blank) input is an empty
/// list; an empty item between commas is an error. Errors are 400 `invalidPath`.
pub fn parse_attr_list(input: &str) -> Result<Vec<AttrPath>, ScimError> {
    let mode = Mode::AttrPath;
    let limits = Limits::default();
    let mut p = Parser::new(input, &limits, mode);
    p.parse_whole_attr_list().map_err(|e| e.into_scim(mode))
}

/// How much of the input an error message may quote.
const MAX_ECHO: usize = 40;

/// What is being parsed: decides the error type and wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Filter,
    PatchPath,
    AttrPath,
}

impl Mode {
    fn what(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::PatchPath => "path",
            Self::AttrPath => "attribute path",
        }
    }

    fn error(self, detail: String) -> ScimError {
        match self {
            Self::Filter => ScimError::invalid_filter(detail),
            Self::PatchPath | Self::AttrPath => ScimError::invalid_path(detail),
        }
    }
}

fn check_length(input: &str, limits: &Limits, mode: Mode) -> Result<(), ScimError> {
    if input.len() > limits.max_length {
        return Err(mode.error(format!(
            "{} is too long: {} bytes, the limit is {}",
            mode.what(),
            input.len(),
            limits.max_length
        )));
    }
    Ok(())
}

/// A syntax error at a 0-based character position.
#[derive(Debug)]
struct SyntaxError {
    pos: usize,
    message: String,
}

impl SyntaxError {
    fn into_scim(self, mode: Mode) -> ScimError {
        mode.error(format!(
            "invalid {} at column {}: {}",
            mode.what(),
            self.pos + 1,
            self.message
        ))
    }
}

type PResult<T> = Result<T, SyntaxError>;

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `nameChar` of RFC 7644: ALPHA, DIGIT, `-` and `_`.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Characters that may appear in a schema URN followed by `:attr[.sub]`.
fn is_urn_char(c: char) -> bool {
    is_name_char(c) || matches!(c, ':' | '.' | '~' | '+' | '%' | '$')
}

/// `text` in double quotes, cut to [`MAX_ECHO`] characters.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = text.chars();
    out.extend(chars.by_ref().take(MAX_ECHO));
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

struct Parser<'l> {
    chars: Vec<char>,
    pos: usize,
    mode: Mode,
    limits: &'l Limits,
    depth: usize,
    terms: usize,
}

impl<'l> Parser<'l> {
    fn new(input: &str, limits: &'l Limits, mode: Mode) -> Self {
        Self {
            chars: input.chars().collect(),
            pos: 0,
            mode,
            limits,
            depth: 0,
            terms: 0,
        }
    }

    // ----- whole inputs -----

    fn parse_whole_filter(&mut self) -> PResult<Filter> {
        self.skip_ws();
        if self.at_end() {
            return Err(self.err_here("the filter is empty"));
        }
        let filter = self.parse_or(false)?;
        self.skip_ws();
        match self.peek() {
            None => Ok(filter),
            Some(')') => Err(self.err_here("unbalanced \")\": no \"(\" opens it")),
            Some(']') => Err(self.err_here("unbalanced \"]\": no \"[\" opens it")),
            Some(_) => Err(self.unexpected("expected \"and\", \"or\" or the end of the filter")),
        }
    }

    fn parse_whole_patch_path(&mut self) -> PResult<PatchPath> {
        self.skip_ws();
        if self.at_end() {
            return Err(self.err_here("the path is empty"));
        }
        let attr = self.parse_path(false)?;
        let mut filter = None;
        let mut sub = None;
        if self.peek() == Some('[') {
            if attr.sub.is_some() {
                return Err(self.err_here(
                    "a value filter \"[...]\" must follow an attribute, not a sub-attribute",
                ));
            }
            filter = Some(self.parse_value_filter()?);
            if self.peek() == Some('.') {
                self.pos += 1;
                let name = self.read_name();
                sub = Some(name.ok_or_else(|| {
                    self.unexpected("expected a sub-attribute name after \"].\"")
                })?);
            }
        }
        self.skip_ws();
        if !self.at_end() {
            let expected = if filter.is_some() {
                "expected \".\" and a sub-attribute, or the end of the path"
            } else {
                "expected \"[\", or the end of the path"
            };
            return Err(self.unexpected(expected));
        }
        Ok(PatchPath { attr, filter, sub })
    }

    fn parse_whole_attr_path(&mut self) -> PResult<AttrPath> {
        self.skip_ws();
        if self.at_end() {
            return Err(self.err_here("the attribute path is empty"));
        }
        let path = self.parse_path(false)?;
        self.skip_ws();
        if !self.at_end() {
            return Err(self.unexpected("expected the end of the attribute path"));
        }
        Ok(path)
    }

    fn parse_whole_attr_list(&mut self) -> PResult<Vec<AttrPath>> {
        let mut paths = Vec::new();
        self.skip_ws();
        if self.at_end() {
            return Ok(paths);
        }
        loop {
            self.skip_ws();
            if matches!(self.peek(), None | Some(',')) {
                return Err(self.err_here("expected an attribute path (empty item in the list)"));
            }
            paths.push(self.parse_path(false)?);
            self.skip_ws();
            match self.peek() {
                None => return Ok(paths),
                Some(',') => self.pos += 1,
                Some(_) => return Err(self.unexpected("expected \",\" or the end of the list")),
            }
        }
    }

    // ----- filter grammar -----

    /// `or`-separated `and` chains, left-associative.
    fn parse_or(&mut self, in_bracket: bool) -> PResult<Filter> {
        let mut left = self.parse_and(in_bracket)?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.keyword_here("or") {
                self.pos += 2;
                let right = self.parse_and(in_bracket)?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    /// `and`-separated unary expressions, left-associative.
    fn parse_and(&mut self, in_bracket: bool) -> PResult<Filter> {
        let mut left = self.parse_unary(in_bracket)?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.keyword_here("and") {
                self.pos += 3;
                let right = self.parse_unary(in_bracket)?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    /// `not (…)`, `(…)` or an attribute expression.
    fn parse_unary(&mut self, in_bracket: bool) -> PResult<Filter> {
        self.skip_ws();
        if self.at_end() {
            return Err(self.err_here(
                "unexpected end of input: expected an attribute name, \"(\" or \"not\"",
            ));
        }
        if self.keyword_here("not") {
            let start = self.pos;
            let mut after = start + 3;
            while self.chars.get(after).copied().is_some_and(is_ws) {
                after += 1;
            }
            if self.chars.get(after) != Some(&'(') {
                return Err(SyntaxError {
                    pos: after,
                    message: "expected \"(\" after \"not\"".into(),
                });
            }
            self.enter()?;
            self.pos = after;
            let inner = self.parse_group(in_bracket)?;
            self.leave();
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some('(') {
            return self.parse_group(in_bracket);
        }
        self.parse_attr_exp(in_bracket)
    }

    /// `"(" FILTER ")"`, at the `(`.
    fn parse_group(&mut self, in_bracket: bool) -> PResult<Filter> {
        let open = self.pos;
        self.enter()?;
        self.pos += 1;
        let inner = self.parse_or(in_bracket)?;
        self.skip_ws();
        match self.peek() {
            Some(')') => {
                self.pos += 1;
                self.leave();
                Ok(inner)
            }
            None => Err(SyntaxError {
                pos: open,
                message: "unbalanced \"(\": no \")\" closes it".into(),
            }),
            Some(_) => Err(self.unexpected("expected \"and\", \"or\" or \")\"")),
        }
    }

    /// `"[" valFilter "]"`, at the `[`.
    fn parse_value_filter(&mut self) -> PResult<Filter> {
        let open = self.pos;
        self.enter()?;
        self.pos += 1;
        let inner = self.parse_or(true)?;
        self.skip_ws();
        match self.peek() {
            Some(']') => {
                self.pos += 1;
                self.leave();
                Ok(inner)
            }
            None => Err(SyntaxError {
                pos: open,
                message: "unbalanced \"[\": no \"]\" closes it".into(),
            }),
            Some(_) => Err(self.unexpected("expected \"and\", \"or\" or \"]\"")),
        }
    }

    /// `attrPath "pr"`, `attrPath compareOp compValue` or `attrPath "[" valFilter "]"`.
    fn parse_attr_exp(&mut self, in_bracket: bool) -> PResult<Filter> {
        let start = self.pos;
        let path = self.parse_path(in_bracket)?;
        let written = self.text(start, self.pos);

        if self.peek() == Some('[') {
            if in_bracket {
                return Err(self.err_here("value filters cannot be nested inside \"[...]\""));
            }
            let inner = self.parse_value_filter()?;
            if self.mode == Mode::Filter && self.peek() == Some('.') {
                // Not RFC 7644 grammar, but what Entra ID sends for a work-email matching
                // attribute: `emails[type eq "work"].value eq "x"` means
                // `emails[type eq "work" and value eq "x"]`.
                self.pos += 1;
                let sub_start = self.pos;
                let sub_len = self.name_run_len();
                if sub_len == 0 {
                    return Err(self.err_here("expected a sub-attribute name after \"].\""));
                }
                let sub = self.text(sub_start, sub_start + sub_len);
                self.pos = sub_start + sub_len;
                let sub_path = AttrPath {
                    urn: None,
                    name: sub,
                    sub: None,
                };
                let written = self.text(start, self.pos);
                let leaf = self.parse_operation(start, sub_path, written)?;
                let both = Filter::And(Box::new(inner), Box::new(leaf));
                return Ok(Filter::ValuePath(path, Box::new(both)));
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        self.parse_operation(start, path, written)
    }

    /// The operator and value after an attribute path that started at `start`.
    fn parse_operation(
        &mut self,
        start: usize,
        path: AttrPath,
        written: String,
    ) -> PResult<Filter> {
        let spaced = self.skip_ws() > 0;
        let op_start = self.pos;
        let op_len = self.name_run_len();
        let op_word = self.text(op_start, op_start + op_len);
        let lower = op_word.to_ascii_lowercase();
        if !spaced || op_len == 0 || lower == "and" || lower == "or" {
            return Err(SyntaxError {
                pos: op_start,
                message: format!("expected an operator after {}", quote(&written)),
            });
        }
        let op = match lower.as_str() {
            "pr" => None,
            "eq" => Some(CompareOp::Eq),
            "ne" => Some(CompareOp::Ne),
            "co" => Some(CompareOp::Co),
            "sw" => Some(CompareOp::Sw),
            "ew" => Some(CompareOp::Ew),
            "gt" => Some(CompareOp::Gt),
            "ge" => Some(CompareOp::Ge),
            "lt" => Some(CompareOp::Lt),
            "le" => Some(CompareOp::Le),
            _ => {
                return Err(SyntaxError {
                    pos: op_start,
                    message: format!(
                        "unknown operator {} (expected eq, ne, co, sw, ew, gt, ge, lt, le or pr)",
                        quote(&op_word)
                    ),
                });
            }
        };
        self.pos = op_start + op_len;
        self.count_term(start)?;

        let Some(op) = op else {
            self.reject_value_after_pr()?;
            return Ok(Filter::Present(path));
        };
        let spaced = self.skip_ws() > 0;
        match self.peek() {
            None | Some(')') | Some(']') => {
                return Err(self.err_here(format!("expected a value after {}", quote(&op_word))));
            }
            Some('"') => {}
            Some(_) if !spaced => {
                return Err(self.err_here(format!(
                    "expected a space between {} and its value",
                    quote(&op_word)
                )));
            }
            Some(_) => {}
        }
        let value = self.parse_value()?;
        Ok(Filter::Compare(path, op, value))
    }

    /// After `pr`: a value-looking token is a specific error (`title pr "x"`).
    fn reject_value_after_pr(&self) -> PResult<()> {
        let mut at = self.pos;
        while self.chars.get(at).copied().is_some_and(is_ws) {
            at += 1;
        }
        let next = self.chars.get(at).copied();
        let looks_like_value = match next {
            Some('"') | Some('-') => true,
            Some(c) if c.is_ascii_digit() => true,
            Some(c) if is_name_char(c) => {
                let mut end = at;
                while self.chars.get(end).copied().is_some_and(is_name_char) {
                    end += 1;
                }
                let word = self.text(at, end).to_ascii_lowercase();
                matches!(word.as_str(), "true" | "false" | "null")
            }
            _ => false,
        };
        if looks_like_value {
            return Err(SyntaxError {
                pos: at,
                message: "\"pr\" takes no value".into(),
            });
        }
        Ok(())
    }

    fn count_term(&mut self, start: usize) -> PResult<()> {
        self.terms += 1;
        if self.terms > self.limits.max_terms {
            return Err(SyntaxError {
                pos: start,
                message: format!(
                    "too many comparisons: the limit is {}",
                    self.limits.max_terms
                ),
            });
        }
        Ok(())
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(self.err_here(format!(
                "nested too deeply: the limit is {} levels of \"(\", \"[\" and \"not\"",
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ----- attribute paths -----

    /// `[URN ":"] ATTRNAME ["." subAttr]`. Inside brackets only a bare sub-attribute name is
    /// allowed, returned as the path's `name`.
    fn parse_path(&mut self, in_bracket: bool) -> PResult<AttrPath> {
        let start = self.pos;
        if self.starts_with_ci("urn:") {
            if in_bracket {
                return Err(
                    self.err_here("inside \"[...]\" name a sub-attribute, without a schema URN")
                );
            }
            let mut end = start;
            while self.chars.get(end).copied().is_some_and(is_urn_char) {
                end += 1;
            }
            // The URN is everything up to the last ':' of the run; `urn:` itself is not enough.
            let colon = (start..end)
                .rev()
                .find(|&i| self.chars.get(i) == Some(&':'))
                .unwrap_or(start);
            if colon <= start + 3 {
                return Err(self.err_here(
                    "expected a schema URN and an attribute name, e.g. \
                     \"urn:ietf:params:scim:schemas:core:2.0:User:userName\"",
                ));
            }
            let urn = self.text(start, colon);
            self.pos = colon + 1;
            let (name, sub) = self.parse_name_and_sub("after the schema URN")?;
            if self.pos < end {
                return Err(self.unexpected("unexpected character in an attribute path"));
            }
            return Ok(AttrPath {
                urn: Some(urn),
                name,
                sub,
            });
        }
        let (name, sub) = self.parse_name_and_sub("")?;
        if in_bracket && sub.is_some() {
            return Err(SyntaxError {
                pos: start,
                message: format!(
                    "inside \"[...]\" name a sub-attribute, not a path like {}",
                    quote(&self.text(start, self.pos))
                ),
            });
        }
        Ok(AttrPath {
            urn: None,
            name,
            sub,
        })
    }

    fn parse_name_and_sub(&mut self, context: &str) -> PResult<(String, Option<String>)> {
        let Some(name) = self.read_name() else {
            let expected = if context.is_empty() {
                "expected an attribute name".to_owned()
            } else {
                format!("expected an attribute name {context}")
            };
            return Err(self.unexpected(&expected));
        };
        let sub = if self.peek() == Some('.') {
            self.pos += 1;
            match self.read_name() {
                Some(sub) => Some(sub),
                None => return Err(self.unexpected("expected a sub-attribute name after \".\"")),
            }
        } else {
            None
        };
        Ok((name, sub))
    }

    /// ATTRNAME (`ALPHA *nameChar`) or `$ref`, as written.
    fn read_name(&mut self) -> Option<String> {
        let start = self.pos;
        if self.starts_with_ci("$ref")
            && !self.chars.get(start + 4).copied().is_some_and(is_name_char)
        {
            self.pos += 4;
            return Some(self.text(start, self.pos));
        }
        if !self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        self.pos += self.name_run_len();
        Some(self.text(start, self.pos))
    }

    // ----- values -----

    /// A JSON string, `true`/`false`/`null` (any case), a JSON number, or a bare word taken
    /// as a string (Entra sends `externalId eq jyoung`).
    fn parse_value(&mut self) -> PResult<CompValue> {
        if self.peek() == Some('"') {
            return self.parse_string().map(CompValue::String);
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_ws(c) || c == ')' || c == ']' {
                break;
            }
            if matches!(c, '"' | '(' | '[') || c.is_control() {
                return Err(self.err_here(format!(
                    "unexpected {} in an unquoted value; put the value in double quotes",
                    quote(&c.to_string())
                )));
            }
            self.pos += 1;
        }
        let word = self.text(start, self.pos);
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "true" => return Ok(CompValue::Bool(true)),
            "false" => return Ok(CompValue::Bool(false)),
            "null" => return Ok(CompValue::Null),
            _ => {}
        }
        if is_json_number(&word) {
            return Number::from_str(&word)
                .map(CompValue::Number)
                .map_err(|_| SyntaxError {
                    pos: start,
                    message: format!("number {} is out of range", quote(&word)),
                });
        }
        Ok(CompValue::String(word))
    }

    /// A JSON string at its opening quote, with every JSON escape.
    fn parse_string(&mut self) -> PResult<String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(SyntaxError {
                    pos: open,
                    message: "unterminated string: no closing '\"'".into(),
                });
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    let escape_at = self.pos;
                    self.pos += 1;
                    let escaped = match self.peek() {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('/') => '/',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('u') => {
                            self.pos += 1;
                            out.push(self.parse_unicode_escape(escape_at)?);
                            continue;
                        }
                        _ => {
                            return Err(SyntaxError {
                                pos: escape_at,
                                message: "invalid escape in a string (expected one of \\\" \\\\ \
                                          \\/ \\b \\f \\n \\r \\t \\uXXXX)"
                                    .into(),
                            });
                        }
                    };
                    out.push(escaped);
                    self.pos += 1;
                }
                c if c < '\u{20}' => {
                    return Err(self.err_here("control character in a string; escape it"));
                }
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// The `XXXX` of `\uXXXX` (just past the `u`), with a following low surrogate if needed.
    fn parse_unicode_escape(&mut self, escape_at: usize) -> PResult<char> {
        let bad = |message: &str| SyntaxError {
            pos: escape_at,
            message: message.to_owned(),
        };
        let high = self
            .read_hex4()
            .ok_or_else(|| bad("\\u must be followed by 4 hex digits"))?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if self.peek() != Some('\\') || self.chars.get(self.pos + 1) != Some(&'u') {
                return Err(bad("unpaired surrogate in \\u escape"));
            }
            self.pos += 2;
            let low = self
                .read_hex4()
                .ok_or_else(|| bad("\\u must be followed by 4 hex digits"))?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(bad("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..0xE000).contains(&high) {
            return Err(bad("unpaired surrogate in \\u escape"));
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| bad("invalid \\u escape"))
    }

    fn read_hex4(&mut self) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..4 {
            let digit = self.peek()?.to_digit(16)?;
            value = value * 16 + digit;
            self.pos += 1;
        }
        Some(value)
    }

    // ----- low level -----

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn skip_ws(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn name_run_len(&self) -> usize {
        self.chars
            .get(self.pos..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&c| is_name_char(c))
            .count()
    }

    /// Whether a whole name-run starting here is `keyword`, ignoring ASCII case.
    fn keyword_here(&self, keyword: &str) -> bool {
        self.name_run_len() == keyword.len() && self.starts_with_ci(keyword)
    }

    fn starts_with_ci(&self, prefix: &str) -> bool {
        let mut at = self.pos;
        for expected in prefix.chars() {
            match self.chars.get(at) {
                Some(c) if c.eq_ignore_ascii_case(&expected) => at += 1,
                _ => return false,
            }
        }
        true
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.chars
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .collect()
    }

    fn err_here(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos: self.pos,
            message: message.into(),
        }
    }

    /// `expected …, found "…"` at the current position.
    fn unexpected(&self, expected: &str) -> SyntaxError {
        let found = if self.at_end() {
            "the end of input".to_owned()
        } else {
            quote(&self.text(self.pos, self.chars.len()))
        };
        self.err_here(format!("{expected}, found {found}"))
    }
}

/// Whether `s` is a JSON number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::scim::ScimType;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn f(input: &str) -> Filter {
        match parse_filter(input, &Limits::default()) {
            Ok(filter) => filter,
            Err(e) => panic!("{input:?} did not parse: {e}"),
        }
    }

    fn filter_error(input: &str) -> ScimError {
        match parse_filter(input, &Limits::default()) {
            Ok(filter) => panic!("{input:?} parsed as {filter:?}"),
            Err(e) => {
                assert_eq!(e.status, 400);
                assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{e}");
                e
            }
        }
    }

    fn pp(input: &str) -> PatchPath {
        match parse_patch_path(input, &Limits::default()) {
            Ok(path) => path,
            Err(e) => panic!("{input:?} did not parse: {e}"),
        }
    }

    fn path_error(input: &str) -> ScimError {
        match parse_patch_path(input, &Limits::default()) {
            Ok(path) => panic!("{input:?} parsed as {path:?}"),
            Err(e) => {
                assert_eq!(e.status, 400);
                assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{e}");
                e
            }
        }
    }

    fn p(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    fn ps(name: &str, sub: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: Some(sub.into()),
        }
    }

    fn pu(urn: &str, name: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: Some(urn.into()),
            name: name.into(),
            sub: sub.map(str::to_owned),
        }
    }

    fn s(value: &str) -> CompValue {
        CompValue::String(value.into())
    }

    fn cmp(path: AttrPath, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare(path, op, value)
    }

    fn eq(name: &str, value: &str) -> Filter {
        cmp(p(name), CompareOp::Eq, s(value))
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }

    fn vp(path: AttrPath, inner: Filter) -> Filter {
        Filter::ValuePath(path, Box::new(inner))
    }

    #[test]
    fn every_comparison_operator_parses() {
        for (word, op) in [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ] {
            assert_eq!(
                f(&format!("title {word} \"x\"")),
                cmp(p("title"), op, s("x")),
                "{word}"
            );
        }
        assert_eq!(f("title pr"), Filter::Present(p("title")));
    }

    #[test]
    fn operators_and_keywords_match_case_insensitively_but_names_are_kept_as_written() {
        assert_eq!(
            f("USERNAME EQ \"a\" AnD title Pr oR NOT (x Co \"b\")"),
            or(
                and(eq("USERNAME", "a"), Filter::Present(p("title"))),
                not(cmp(p("x"), CompareOp::Co, s("b")))
            )
        );
        assert_eq!(
            f("active eq TRUE"),
            cmp(p("active"), CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            f("x eq False"),
            cmp(p("x"), CompareOp::Eq, CompValue::Bool(false))
        );
        assert_eq!(f("x eq NULL"), cmp(p("x"), CompareOp::Eq, CompValue::Null));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(f("a pr or b pr and c pr"), {
            let [a, b, c] = ["a", "b", "c"].map(|n| Filter::Present(p(n)));
            or(a, and(b, c))
        });
        assert_eq!(f("a pr and b pr or c pr"), {
            let [a, b, c] = ["a", "b", "c"].map(|n| Filter::Present(p(n)));
            or(and(a, b), c)
        });
    }

    #[test]
    fn and_and_or_are_left_associative() {
        let [a, b, c] = ["a", "b", "c"].map(|n| Filter::Present(p(n)));
        assert_eq!(
            f("a pr and b pr and c pr"),
            and(and(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(f("a pr or b pr or c pr"), or(or(a, b), c));
    }

    #[test]
    fn parentheses_override_precedence() {
        let [a, b, c] = ["a", "b", "c"].map(|n| Filter::Present(p(n)));
        assert_eq!(
            f("(a pr or b pr) and c pr"),
            and(or(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(f("((a pr))"), a);
        assert_eq!(
            f("  ( a pr\tor\t\tb pr )  "),
            or(Filter::Present(p("a")), b)
        );
    }

    #[test]
    fn not_takes_a_group_with_or_without_a_space_and_binds_tighter_than_and() {
        let [a, b] = ["a", "b"].map(|n| Filter::Present(p(n)));
        assert_eq!(f("not (a pr)"), not(a.clone()));
        assert_eq!(f("not(a pr)"), not(a.clone()));
        assert_eq!(f("not  (a pr) and b pr"), and(not(a.clone()), b.clone()));
        assert_eq!(
            f("b pr and not (a pr or b pr)"),
            and(b.clone(), not(or(a.clone(), b)))
        );
        assert_eq!(f("not (not (a pr))"), not(not(a)));
        // `not` without a group is an error; `nothing` is just an attribute.
        let e = filter_error("not a pr");
        assert!(
            e.detail.contains("expected \"(\" after \"not\""),
            "{}",
            e.detail
        );
        assert_eq!(f("nothing pr"), Filter::Present(p("nothing")));
    }

    #[test]
    fn value_paths_hold_filters_on_sub_attributes_with_and_or_and_not() {
        assert_eq!(
            f("emails[type eq \"work\" and value co \"@example.com\"]"),
            vp(
                p("emails"),
                and(
                    eq("type", "work"),
                    cmp(p("value"), CompareOp::Co, s("@example.com"))
                )
            )
        );
        assert_eq!(
            f("userType eq \"Employee\" and emails[type eq \"work\" or not (primary eq true)]"),
            and(
                eq("userType", "Employee"),
                vp(
                    p("emails"),
                    or(
                        eq("type", "work"),
                        not(cmp(p("primary"), CompareOp::Eq, CompValue::Bool(true)))
                    )
                )
            )
        );
        assert_eq!(
            f("emails[type eq \"work\"] or ims[type eq \"xmpp\"]"),
            or(
                vp(p("emails"), eq("type", "work")),
                vp(p("ims"), eq("type", "xmpp"))
            )
        );
        assert_eq!(
            f("members[value eq abc]"),
            vp(p("members"), eq("value", "abc"))
        );
    }

    #[test]
    fn urn_qualified_paths_split_at_the_last_colon_despite_dots_in_the_urn() {
        assert_eq!(
            f(&format!("{ENTERPRISE}:employeeNumber eq \"701984\"")),
            cmp(
                pu(ENTERPRISE, "employeeNumber", None),
                CompareOp::Eq,
                s("701984")
            )
        );
        assert_eq!(
            f("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName sw \"J\""),
            cmp(
                pu(
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "name",
                    Some("familyName")
                ),
                CompareOp::Sw,
                s("J")
            )
        );
        assert_eq!(
            f(&format!("{ENTERPRISE}:manager.value eq \"x\"")),
            cmp(
                pu(ENTERPRISE, "manager", Some("value")),
                CompareOp::Eq,
                s("x")
            )
        );
        assert_eq!(
            f("URN:ietf:params:scim:schemas:core:2.0:User:emails[type eq \"work\"]"),
            vp(
                pu("URN:ietf:params:scim:schemas:core:2.0:User", "emails", None),
                eq("type", "work")
            )
        );
        // Only a leading `urn:` starts a URN.
        assert_eq!(
            f("name.familyName pr"),
            Filter::Present(ps("name", "familyName"))
        );
        filter_error("urn:userName eq \"x\"");
        filter_error("urn:a:b: eq \"x\"");
    }

    #[test]
    fn dollar_ref_is_an_attribute_name() {
        assert_eq!(f("members.$ref pr"), Filter::Present(ps("members", "$ref")));
        assert_eq!(
            f("members[$ref co \"Users\"]"),
            vp(p("members"), cmp(p("$ref"), CompareOp::Co, s("Users")))
        );
        filter_error("members.$refx pr");
    }

    #[test]
    fn strings_decode_every_json_escape() {
        assert_eq!(f(r#"userName eq "O\"Malley""#), eq("userName", "O\"Malley"));
        assert_eq!(
            f(r#"x eq "a\\b\/c\b\f\n\r\t""#),
            eq("x", "a\\b/c\u{8}\u{c}\n\r\t")
        );
        assert_eq!(f(r#"x eq "\u00e9\u00C9""#), eq("x", "éÉ"));
        assert_eq!(f(r#"x eq "\ud83d\ude00""#), eq("x", "😀"));
        assert_eq!(f(r#"x eq "" "#), eq("x", ""));
        assert_eq!(f("x eq \"ünï cødé ) ] (\""), eq("x", "ünï cødé ) ] ("));
        for bad in [
            r#"x eq "\x""#,
            r#"x eq "\u12""#,
            r#"x eq "\u12G4""#,
            r#"x eq "\ud83d""#,
            r#"x eq "\ud83d\u0041""#,
            r#"x eq "\ude00""#,
            "x eq \"tab\tinside\"",
            r#"x eq "unterminated"#,
            r#"x eq "ends in backslash\"#,
        ] {
            filter_error(bad);
        }
    }

    #[test]
    fn unquoted_bare_words_are_strings_and_end_at_space_paren_or_bracket() {
        assert_eq!(f("externalId eq jyoung"), eq("externalId", "jyoung"));
        assert_eq!(
            f("id eq 54D382A4-4E0F-4B1A-8D2B-1C2D3E4F5A6B and manager eq 2819c223-7f76"),
            and(
                eq("id", "54D382A4-4E0F-4B1A-8D2B-1C2D3E4F5A6B"),
                eq("manager", "2819c223-7f76")
            )
        );
        assert_eq!(f("(x eq abc)"), eq("x", "abc"));
        assert_eq!(f("x eq 007"), eq("x", "007"));
        assert_eq!(f("x eq 1e"), eq("x", "1e"));
        assert_eq!(f("x eq +1"), eq("x", "+1"));
        filter_error("x eq ab\"c\"");
        filter_error("x eq a(b)");
    }

    #[test]
    fn numbers_true_false_and_null_are_json_literals() {
        let num = |n: &str| CompValue::Number(n.parse().unwrap());
        assert_eq!(f("x gt 42"), cmp(p("x"), CompareOp::Gt, num("42")));
        assert_eq!(f("x lt -1.5e3"), cmp(p("x"), CompareOp::Lt, num("-1.5e3")));
        assert_eq!(f("x le 0"), cmp(p("x"), CompareOp::Le, num("0")));
        assert_eq!(f("(x ge 0.25)"), cmp(p("x"), CompareOp::Ge, num("0.25")));
        assert_eq!(
            f("x eq true"),
            cmp(p("x"), CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            f("x eq false"),
            cmp(p("x"), CompareOp::Eq, CompValue::Bool(false))
        );
        assert_eq!(f("x ne null"), cmp(p("x"), CompareOp::Ne, CompValue::Null));
        assert_eq!(f("x eq \"true\""), eq("x", "true"));
        let e = filter_error("x eq 1e999");
        assert!(e.detail.contains("out of range"), "{}", e.detail);
    }

    #[test]
    fn whitespace_may_be_any_run_of_spaces_and_tabs() {
        assert_eq!(
            f("\t userName  \t eq \t\"a\"  and\t\ttitle   pr \t"),
            and(eq("userName", "a"), Filter::Present(p("title")))
        );
    }

    #[test]
    fn patch_paths_of_every_shape_parse() {
        assert_eq!(
            pp("members"),
            PatchPath {
                attr: p("members"),
                filter: None,
                sub: None
            }
        );
        assert_eq!(
            pp("name.familyName"),
            PatchPath {
                attr: ps("name", "familyName"),
                filter: None,
                sub: None
            }
        );
        assert_eq!(
            pp("members[value eq \"2819c223\"]"),
            PatchPath {
                attr: p("members"),
                filter: Some(eq("value", "2819c223")),
                sub: None
            }
        );
        assert_eq!(
            pp("emails[type eq \"work\"].value"),
            PatchPath {
                attr: p("emails"),
                filter: Some(eq("type", "work")),
                sub: Some("value".into())
            }
        );
        assert_eq!(
            pp("addresses[type eq \"work\"].streetAddress"),
            PatchPath {
                attr: p("addresses"),
                filter: Some(eq("type", "work")),
                sub: Some("streetAddress".into())
            }
        );
        assert_eq!(
            pp(&format!("{ENTERPRISE}:manager")),
            PatchPath {
                attr: pu(ENTERPRISE, "manager", None),
                filter: None,
                sub: None
            }
        );
        assert_eq!(
            pp(&format!("{ENTERPRISE}:manager.value")),
            PatchPath {
                attr: pu(ENTERPRISE, "manager", Some("value")),
                filter: None,
                sub: None
            }
        );
        assert_eq!(
            pp("members[value eq \"a\" or value eq \"b\"]"),
            PatchPath {
                attr: p("members"),
                filter: Some(or(eq("value", "a"), eq("value", "b"))),
                sub: None
            }
        );
        assert_eq!(
            pp("  members.$ref "),
            PatchPath {
                attr: ps("members", "$ref"),
                filter: None,
                sub: None
            }
        );
    }

    #[test]
    fn malformed_patch_paths_are_invalid_paths() {
        for bad in [
            "",
            "   ",
            "members[",
            "members[value eq \"a\"",
            "members]",
            "members[value eq \"a\"].",
            "members[value eq \"a\"]value",
            "members[value eq \"a\"].value.x",
            "name.familyName[type eq \"a\"]",
            "emails[type eq \"a\"][value pr]",
            "emails[value[type pr]]",
            "name.",
            "1name",
            "members value",
            "members[value zz \"a\"]",
        ] {
            path_error(bad);
        }
        let e = path_error("members[value eq \"a\"");
        assert!(
            e.detail.starts_with("invalid path at column 8:"),
            "{}",
            e.detail
        );
    }

    #[test]
    fn attribute_paths_and_lists_parse_for_sort_by_and_attributes() {
        assert_eq!(
            parse_attr_path(" name.givenName ").unwrap(),
            ps("name", "givenName")
        );
        assert_eq!(
            parse_attr_path(&format!("{ENTERPRISE}:manager.value")).unwrap(),
            pu(ENTERPRISE, "manager", Some("value"))
        );
        assert_eq!(
            parse_attr_list(&format!(
                "userName, name.familyName ,{ENTERPRISE}:department,members.$ref"
            ))
            .unwrap(),
            vec![
                p("userName"),
                ps("name", "familyName"),
                pu(ENTERPRISE, "department", None),
                ps("members", "$ref")
            ]
        );
        assert_eq!(parse_attr_list("  ").unwrap(), vec![]);
        for bad in ["", "emails[type eq \"work\"]", "a b", "name.", "a.b.c"] {
            let e = parse_attr_path(bad).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{bad}");
        }
        for bad in ["a,,b", "a,", ",a", "a;b"] {
            let e = parse_attr_list(bad).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{bad}");
        }
    }

    #[test]
    fn an_empty_filter_is_rejected() {
        assert!(filter_error("").detail.contains("empty"));
        assert!(filter_error(" \t ").detail.contains("empty"));
    }

    #[test]
    fn trailing_garbage_is_rejected_with_its_column() {
        let e = filter_error("userName eq \"a\" garbage");
        assert!(
            e.detail.starts_with("invalid filter at column 17:"),
            "{}",
            e.detail
        );
        assert!(e.detail.contains("\"garbage\""), "{}", e.detail);
        filter_error("userName eq \"a\" \"b\"");
        filter_error("title pr and");
    }

    #[test]
    fn an_unknown_or_missing_operator_is_rejected() {
        let e = filter_error("userName eqq \"a\"");
        assert!(
            e.detail.contains("unknown operator \"eqq\""),
            "{}",
            e.detail
        );
        assert!(e.detail.contains("column 10"), "{}", e.detail);
        let e = filter_error("userName");
        assert_eq!(
            e.detail,
            "invalid filter at column 9: expected an operator after \"userName\""
        );
        filter_error("userName = \"a\"");
        filter_error("userName and title pr");
        filter_error("userName\"a\"");
    }

    #[test]
    fn a_missing_value_is_rejected() {
        let e = filter_error("userName eq");
        assert!(
            e.detail.contains("expected a value after \"eq\""),
            "{}",
            e.detail
        );
        filter_error("(userName eq )");
        filter_error("emails[value eq]");
    }

    #[test]
    fn unbalanced_parentheses_and_brackets_are_rejected() {
        let e = filter_error("(userName eq \"a\"");
        assert!(
            e.detail.contains("column 1:") && e.detail.contains("no \")\""),
            "{}",
            e.detail
        );
        let e = filter_error("userName eq \"a\")");
        assert!(e.detail.contains("column 16:"), "{}", e.detail);
        filter_error("emails[type eq \"work\"");
        filter_error("emails[type eq \"work\"]]");
        filter_error("emails type eq \"work\"]");
        filter_error("((a pr)");
        filter_error("()");
    }

    #[test]
    fn ten_thousand_nested_parentheses_are_rejected_quickly_without_overflowing_the_stack() {
        let deep = format!("{}a pr{}", "(".repeat(10_000), ")".repeat(10_000));
        let limits = Limits {
            max_length: 1_000_000,
            ..Limits::default()
        };
        let started = Instant::now();
        let e = parse_filter(&deep, &limits).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
        assert!(e.detail.contains("nested too deeply"), "{}", e.detail);
        assert!(e.detail.len() < 200, "{}", e.detail);
        let nots = format!("{}a pr{}", "not (".repeat(5_000), ")".repeat(5_000));
        assert!(
            parse_filter(&nots, &limits)
                .unwrap_err()
                .detail
                .contains("nested too deeply")
        );
        // With default limits the same input is simply too long.
        assert!(
            parse_filter(&deep, &Limits::default())
                .unwrap_err()
                .detail
                .contains("too long")
        );
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        let limits = Limits::default();
        let ok = format!("{}a pr{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(parse_filter(&ok, &limits).unwrap(), Filter::Present(p("a")));
        let too_deep = format!("{}a pr{}", "(".repeat(65), ")".repeat(65));
        assert!(parse_filter(&too_deep, &limits).is_err());
        // `not` counts as a level as well as its parenthesis.
        let nots = format!("{}a pr{}", "not (".repeat(32), ")".repeat(32));
        assert!(parse_filter(&nots, &limits).is_ok());
        let nots = format!("{}a pr{}", "not (".repeat(33), ")".repeat(33));
        assert!(parse_filter(&nots, &limits).is_err());
    }

    #[test]
    fn more_comparisons_than_the_limit_are_rejected() {
        let limits = Limits {
            max_length: 1_000_000,
            max_depth: 64,
            max_terms: 1024,
        };
        let at_limit = vec!["a pr"; 1024].join(" or ");
        assert!(parse_filter(&at_limit, &limits).is_ok());
        let over = vec!["a pr"; 1025].join(" or ");
        let e = parse_filter(&over, &limits).unwrap_err();
        assert!(e.detail.contains("too many comparisons"), "{}", e.detail);
        let in_brackets = format!("emails[{}]", vec!["value eq \"x\""; 1025].join(" and "));
        assert!(parse_filter(&in_brackets, &limits).is_err());
    }

    #[test]
    fn input_longer_than_the_limit_is_rejected_up_front() {
        let long = format!("userName eq \"{}\"", "a".repeat(5000));
        let e = filter_error(&long);
        assert!(e.detail.contains("too long"), "{}", e.detail);
        assert!(e.detail.len() < 100);
        let e = parse_patch_path(
            &format!("members[value eq \"{}\"]", "a".repeat(5000)),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    }

    #[test]
    fn pr_with_a_value_is_rejected() {
        let e = filter_error("title pr \"x\"");
        assert!(e.detail.contains("\"pr\" takes no value"), "{}", e.detail);
        filter_error("title pr true");
        filter_error("title pr 1");
    }

    #[test]
    fn nested_value_paths_are_rejected() {
        let e = filter_error("emails[type[value pr]]");
        assert!(e.detail.contains("cannot be nested"), "{}", e.detail);
        filter_error("emails[value.x eq \"a\"]");
        filter_error("emails[urn:ietf:params:scim:schemas:core:2.0:User:type eq \"a\"]");
    }

    #[test]
    fn entras_sub_attribute_after_a_value_path_joins_the_bracketed_filter() {
        let f = parse_filter(
            "emails[type eq \"work\"].value eq \"x@y\"",
            &Limits::default(),
        )
        .unwrap();
        let Filter::ValuePath(attr, inner) = f else {
            panic!("expected a value path, got {f:?}");
        };
        assert_eq!(attr.name, "emails");
        let Filter::And(a, b) = *inner else {
            panic!("expected the bracket and the comparison joined by and");
        };
        assert!(matches!(*a, Filter::Compare(ref p, CompareOp::Eq, _) if p.name == "type"));
        assert!(
            matches!(*b, Filter::Compare(ref p, CompareOp::Eq, CompValue::String(ref v)) if p.name == "value" && v == "x@y")
        );
        let pr = parse_filter("emails[type eq \"work\"].value pr", &Limits::default()).unwrap();
        assert!(matches!(pr, Filter::ValuePath(..)));
        filter_error("emails[type eq \"work\"]. eq \"x\"");
        filter_error("emails[type eq \"work\"].value");
    }

    #[test]
    fn errors_quote_at_most_a_bounded_part_of_the_input() {
        let name = "x".repeat(3000);
        let e = filter_error(&name);
        assert!(e.detail.len() < 120, "{}", e.detail);
        let e = filter_error(&format!("a pr {}", "y".repeat(3000)));
        assert!(e.detail.len() < 160, "{}", e.detail);
    }

    #[test]
    fn arbitrary_unicode_never_panics() {
        for input in [
            "é",
            "userName eq é",
            "ü[",
            "emails[é]",
            "\u{0}",
            "a\u{0} pr",
            "urn:é:x",
            "urn:",
            "urn::",
            "x eq \"\\u",
            "x eq \"\\",
            "x eq \"\\ud800\\",
            "not",
            "not (",
            "a[",
            "a.",
            "$",
            "$ref",
            "a pr or",
            "(((",
            ")))",
            "]]]",
            "[[[",
            "x eq -",
            "x eq 1.",
            "x eq 1e+",
            "😀 pr",
        ] {
            let _ = parse_filter(input, &Limits::default());
            let _ = parse_patch_path(input, &Limits::default());
            let _ = parse_attr_path(input);
            let _ = parse_attr_list(input);
        }
    }
}
