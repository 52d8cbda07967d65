//! The legacy Confluence Remote API, for what REST lacks (rename always; deactivation,
//! membership and listing before 8.2/8.4).
//!
//! Two transports carry the same methods:
//! * JSON-RPC: `POST /rpc/json-rpc/confluenceservice-v2/<method>` with HTTP Basic auth and a
//!   JSON array of parameters *without* a token; the answer is the bare result, `{"result":…}`
//!   or `{"error":{"message":…}}`.
//! * XML-RPC: `POST /rpc/xmlrpc`, `confluence2.login(user, password)` returns a token that is
//!   the first parameter of every later `confluence2.<method>` call; failures are `<fault>`s.
//!
//! The XML-RPC codec here is deliberately small: it writes `methodCall` documents with every
//! text escaped, and reads `methodResponse` documents (string, boolean, int/i4/i8, double,
//! dateTime, base64, nil, array, struct, fault) with a size cap, a nesting cap, no DTDs and no
//! entity expansion beyond the five predefined entities and character references. No input
//! makes it panic.

use std::fmt::Write as _;

use reqwest::Method;
use serde_json::Value;

use super::super::TargetError;
use super::super::http::{Body, RemoteClient};
use super::version::{RemoteApi, Transport};
use crate::config::Secret;

/// Largest XML-RPC answer read.
pub const MAX_XML_BYTES: usize = 8 * 1024 * 1024;
/// Deepest nesting of arrays and structs accepted.
pub const MAX_DEPTH: usize = 32;

/// The JSON-RPC path prefix (under the base URL).
pub const JSON_RPC_PATH: &str = "rpc/json-rpc/confluenceservice-v2/";
/// The XML-RPC endpoint (under the base URL).
pub const XML_RPC_PATH: &str = "rpc/xmlrpc";

/// One XML-RPC / JSON-RPC value.
#[derive(Clone, Debug, PartialEq)]
pub enum RpcValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Array(Vec<RpcValue>),
    Struct(Vec<(String, RpcValue)>),
    Nil,
}

impl RpcValue {
    /// A string parameter.
    pub fn str(s: impl Into<String>) -> Self {
        RpcValue::Str(s.into())
    }

    /// The value as a boolean, accepting `"true"`/`"false"` strings and 0/1 integers.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            RpcValue::Bool(b) => Some(*b),
            RpcValue::Int(i) => Some(*i != 0),
            RpcValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The value as a list of strings (e.g. `getActiveUsers`).
    pub fn as_strings(&self) -> Option<Vec<String>> {
        match self {
            RpcValue::Array(items) => items
                .iter()
                .map(|v| match v {
                    RpcValue::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// The value as JSON (for JSON-RPC parameters).
    pub fn to_json(&self) -> Value {
        match self {
            RpcValue::Str(s) => Value::String(s.clone()),
            RpcValue::Bool(b) => Value::Bool(*b),
            RpcValue::Int(i) => Value::from(*i),
            RpcValue::Double(d) => serde_json::Number::from_f64(*d)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            RpcValue::Array(items) => Value::Array(items.iter().map(RpcValue::to_json).collect()),
            RpcValue::Struct(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            RpcValue::Nil => Value::Null,
        }
    }

    /// A JSON value as an RPC value.
    pub fn from_json(value: &Value) -> Self {
        match value {
            Value::Null => RpcValue::Nil,
            Value::Bool(b) => RpcValue::Bool(*b),
            Value::Number(n) => n
                .as_i64()
                .map(RpcValue::Int)
                .unwrap_or_else(|| RpcValue::Double(n.as_f64().unwrap_or(0.0))),
            Value::String(s) => RpcValue::Str(s.clone()),
            Value::Array(items) => RpcValue::Array(items.iter().map(RpcValue::from_json).collect()),
            Value::Object(map) => RpcValue::Struct(
                map.iter()
                    .map(|(k, v)| (k.clone(), RpcValue::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// What a call answered: a value or a fault.
#[derive(Clone, Debug, PartialEq)]
pub enum RpcOutcome {
    Value(RpcValue),
    Fault { code: Option<i64>, message: String },
}

/// Why an XML-RPC answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("XML-RPC answer exceeds {0} bytes")]
    TooLarge(usize),
    #[error("XML-RPC answer nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("XML-RPC answer is not UTF-8")]
    NotUtf8,
    #[error("XML-RPC answer carries a DTD or declaration, which is not accepted")]
    Declaration,
    #[error("XML-RPC answer is malformed: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> XmlError {
    XmlError::Malformed(what.into())
}

// ------------------------------------------------------------------------------------------
// Encoding

/// Escapes text for an XML element body; characters XML 1.0 cannot carry become U+FFFD.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn encode_value(out: &mut String, value: &RpcValue) {
    out.push_str("<value>");
    match value {
        RpcValue::Str(s) => {
            let _ = write!(out, "<string>{}</string>", escape_xml(s));
        }
        RpcValue::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        RpcValue::Int(i) => {
            if i32::try_from(*i).is_ok() {
                let _ = write!(out, "<int>{i}</int>");
            } else {
                let _ = write!(out, "<i8>{i}</i8>");
            }
        }
        RpcValue::Double(d) => {
            let _ = write!(out, "<double>{d}</double>");
        }
        RpcValue::Array(items) => {
            out.push_str("<array><data>");
            for item in items {
                encode_value(out, item);
            }
            out.push_str("</data></array>");
        }
        RpcValue::Struct(members) => {
            out.push_str("<struct>");
            for (name, v) in members {
                let _ = write!(out, "<member><name>{}</name>", escape_xml(name));
                encode_value(out, v);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
        RpcValue::Nil => out.push_str("<nil/>"),
    }
    out.push_str("</value>");
}

/// A `methodCall` document.
pub fn encode_call(method: &str, params: &[RpcValue]) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodCall><methodName>");
    out.push_str(&escape_xml(method));
    out.push_str("</methodName><params>");
    for p in params {
        out.push_str("<param>");
        encode_value(&mut out, p);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

// ------------------------------------------------------------------------------------------
// Decoding

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Open(String),
    Close(String),
    Empty(String),
    Text(String),
}

fn unescape(raw: &str) -> Result<String, XmlError> {
    if !raw.contains('&') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp + 1..];
        let semi = rest
            .find(';')
            .filter(|s| *s <= 12)
            .ok_or_else(|| malformed("an `&` that starts no entity"))?;
        let entity = &rest[..semi];
        rest = &rest[semi + 1..];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            e => {
                let code = if let Some(hex) = e.strip_prefix("#x").or_else(|| e.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = e.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| malformed(format!("unknown entity `&{}`", truncate(e, 12))))?
            }
        };
        out.push(c);
    }
    out.push_str(rest);
    Ok(out)
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Splits a document into element and text events.
fn tokenize(doc: &str) -> Result<Vec<Ev>, XmlError> {
    let mut events = Vec::new();
    let mut rest = doc;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<?") {
            let end = after
                .find("?>")
                .ok_or_else(|| malformed("unterminated processing instruction"))?;
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix("<!--") {
            let end = after
                .find("-->")
                .ok_or_else(|| malformed("unterminated comment"))?;
            rest = &after[end + 3..];
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after
                .find("]]>")
                .ok_or_else(|| malformed("unterminated CDATA section"))?;
            events.push(Ev::Text(after[..end].to_owned()));
            rest = &after[end + 3..];
        } else if rest.starts_with("<!") {
            return Err(XmlError::Declaration);
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after
                .find('>')
                .ok_or_else(|| malformed("unterminated end tag"))?;
            let name = after[..end].trim();
            if name.is_empty() {
                return Err(malformed("an end tag without a name"));
            }
            events.push(Ev::Close(local_name(name).to_owned()));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('<') {
            // Find the closing `>` outside quoted attribute values.
            let mut quote: Option<char> = None;
            let mut end = None;
            for (i, c) in after.char_indices() {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '"' | '\'') => quote = Some(c),
                    (None, '>') => {
                        end = Some(i);
                        break;
                    }
                    (None, '<') => return Err(malformed("a `<` inside a tag")),
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| malformed("unterminated start tag"))?;
            let inner = &after[..end];
            let (inner, empty) = match inner.strip_suffix('/') {
                Some(i) => (i, true),
                None => (inner, false),
            };
            let name = inner
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("")
                .trim();
            if name.is_empty() {
                return Err(malformed("a start tag without a name"));
            }
            let name = local_name(name).to_owned();
            events.push(if empty {
                Ev::Empty(name)
            } else {
                Ev::Open(name)
            });
            rest = &after[end + 1..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = unescape(&rest[..end])?;
            match events.last_mut() {
                Some(Ev::Text(prev)) => prev.push_str(&text),
                _ => events.push(Ev::Text(text)),
            }
            rest = &rest[end..];
        }
    }
    Ok(events)
}

fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

struct Parser {
    events: Vec<Ev>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Ev> {
        self.events.get(self.pos)
    }

    fn next(&mut self) -> Option<Ev> {
        let ev = self.events.get(self.pos).cloned();
        self.pos += 1;
        ev
    }

    fn skip_ws(&mut self) -> Result<(), XmlError> {
        while let Some(Ev::Text(t)) = self.peek() {
            if !t.trim().is_empty() {
                return Err(malformed(format!(
                    "unexpected text `{}`",
                    truncate(t.trim(), 40)
                )));
            }
            self.pos += 1;
        }
        Ok(())
    }

    fn open(&mut self, name: &str) -> Result<(), XmlError> {
        self.skip_ws()?;
        match self.next() {
            Some(Ev::Open(n)) if n == name => Ok(()),
            other => Err(expected(&format!("<{name}>"), other)),
        }
    }

    fn close(&mut self, name: &str) -> Result<(), XmlError> {
        self.skip_ws()?;
        match self.next() {
            Some(Ev::Close(n)) if n == name => Ok(()),
            other => Err(expected(&format!("</{name}>"), other)),
        }
    }

    /// Text up to `</name>` (the start tag already consumed).
    fn text_until(&mut self, name: &str) -> Result<String, XmlError> {
        let mut text = String::new();
        loop {
            match self.next() {
                Some(Ev::Text(t)) => text.push_str(&t),
                Some(Ev::Close(n)) if n == name => return Ok(text),
                other => return Err(expected(&format!("text or </{name}>"), other)),
            }
        }
    }

    /// A value whose `<value>` start tag was consumed.
    fn value(&mut self, depth: usize) -> Result<RpcValue, XmlError> {
        if depth > MAX_DEPTH {
            return Err(XmlError::TooDeep(MAX_DEPTH));
        }
        let mut text = String::new();
        loop {
            match self.next() {
                Some(Ev::Text(t)) => text.push_str(&t),
                Some(Ev::Close(n)) if n == "value" => return Ok(RpcValue::Str(text)),
                Some(Ev::Open(tag)) => {
                    if !text.trim().is_empty() {
                        return Err(malformed("text mixed with a typed value"));
                    }
                    let v = self.typed(&tag, depth)?;
                    self.close("value")?;
                    return Ok(v);
                }
                Some(Ev::Empty(tag)) => {
                    if !text.trim().is_empty() {
                        return Err(malformed("text mixed with a typed value"));
                    }
                    let v = match tag.as_str() {
                        "nil" => RpcValue::Nil,
                        "string" | "base64" => RpcValue::Str(String::new()),
                        "array" => RpcValue::Array(Vec::new()),
                        "struct" => RpcValue::Struct(Vec::new()),
                        other => {
                            return Err(malformed(format!(
                                "empty <{}/> is not a value",
                                truncate(other, 40)
                            )));
                        }
                    };
                    self.close("value")?;
                    return Ok(v);
                }
                other => return Err(expected("a value", other)),
            }
        }
    }

    /// The value inside `<tag>`, start tag consumed; consumes `</tag>`.
    fn typed(&mut self, tag: &str, depth: usize) -> Result<RpcValue, XmlError> {
        match tag {
            "string" | "dateTime.iso8601" | "base64" => Ok(RpcValue::Str(self.text_until(tag)?)),
            "boolean" => match self.text_until(tag)?.trim() {
                "1" | "true" => Ok(RpcValue::Bool(true)),
                "0" | "false" => Ok(RpcValue::Bool(false)),
                other => Err(malformed(format!(
                    "`{}` is not a boolean",
                    truncate(other, 40)
                ))),
            },
            "int" | "i4" | "i8" => {
                let text = self.text_until(tag)?;
                text.trim()
                    .parse::<i64>()
                    .map(RpcValue::Int)
                    .map_err(|_| malformed(format!("`{}` is not an integer", truncate(&text, 40))))
            }
            "double" => {
                let text = self.text_until(tag)?;
                text.trim()
                    .parse::<f64>()
                    .map(RpcValue::Double)
                    .map_err(|_| malformed(format!("`{}` is not a number", truncate(&text, 40))))
            }
            "nil" => {
                self.close("nil")?;
                Ok(RpcValue::Nil)
            }
            "array" => {
                self.skip_ws()?;
                let mut items = Vec::new();
                match self.next() {
                    Some(Ev::Empty(n)) if n == "data" => {}
                    Some(Ev::Open(n)) if n == "data" => loop {
                        self.skip_ws()?;
                        match self.next() {
                            Some(Ev::Open(n)) if n == "value" => items.push(self.value(depth + 1)?),
                            Some(Ev::Empty(n)) if n == "value" => {
                                items.push(RpcValue::Str(String::new()))
                            }
                            Some(Ev::Close(n)) if n == "data" => break,
                            other => return Err(expected("<value> or </data>", other)),
                        }
                    },
                    other => return Err(expected("<data>", other)),
                }
                self.close("array")?;
                Ok(RpcValue::Array(items))
            }
            "struct" => {
                let mut members = Vec::new();
                loop {
                    self.skip_ws()?;
                    match self.next() {
                        Some(Ev::Open(n)) if n == "member" => {
                            self.open("name")?;
                            let name = self.text_until("name")?;
                            self.skip_ws()?;
                            let value = match self.next() {
                                Some(Ev::Open(n)) if n == "value" => self.value(depth + 1)?,
                                Some(Ev::Empty(n)) if n == "value" => RpcValue::Str(String::new()),
                                other => return Err(expected("<value>", other)),
                            };
                            self.close("member")?;
                            members.push((name, value));
                        }
                        Some(Ev::Close(n)) if n == "struct" => break,
                        other => return Err(expected("<member> or </struct>", other)),
                    }
                }
                Ok(RpcValue::Struct(members))
            }
            other => Err(malformed(format!(
                "unknown value type <{}>",
                truncate(other, 40)
            ))),
        }
    }
}

fn expected(what: &str, got: Option<Ev>) -> XmlError {
    let got = match got {
        None => "the end of the document".to_owned(),
        Some(Ev::Open(n)) => format!("<{}>", truncate(&n, 40)),
        Some(Ev::Close(n)) => format!("</{}>", truncate(&n, 40)),
        Some(Ev::Empty(n)) => format!("<{}/>", truncate(&n, 40)),
        Some(Ev::Text(t)) => format!("text `{}`", truncate(t.trim(), 40)),
    };
    malformed(format!("expected {what}, found {got}"))
}

/// Reads a `methodResponse` document.
pub fn decode_response(body: &[u8]) -> Result<RpcOutcome, XmlError> {
    if body.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge(MAX_XML_BYTES));
    }
    let doc = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let doc = doc.strip_prefix('\u{FEFF}').unwrap_or(doc);
    let mut p = Parser {
        events: tokenize(doc)?,
        pos: 0,
    };
    p.open("methodResponse")?;
    p.skip_ws()?;
    let outcome = match p.next() {
        Some(Ev::Open(n)) if n == "params" => {
            p.skip_ws()?;
            let v = match p.next() {
                Some(Ev::Open(n)) if n == "param" => {
                    p.open("value")?;
                    let v = p.value(0)?;
                    p.close("param")?;
                    v
                }
                Some(Ev::Close(n)) if n == "params" => {
                    p.pos -= 1;
                    RpcValue::Nil
                }
                other => return Err(expected("<param>", other)),
            };
            p.close("params")?;
            RpcOutcome::Value(v)
        }
        Some(Ev::Empty(n)) if n == "params" => RpcOutcome::Value(RpcValue::Nil),
        Some(Ev::Open(n)) if n == "fault" => {
            p.open("value")?;
            let v = p.value(0)?;
            p.close("fault")?;
            let (code, message) = match &v {
                RpcValue::Struct(members) => {
                    let get = |k: &str| members.iter().find(|(n, _)| n == k).map(|(_, v)| v);
                    let code = match get("faultCode") {
                        Some(RpcValue::Int(i)) => Some(*i),
                        Some(RpcValue::Str(s)) => s.trim().parse().ok(),
                        _ => None,
                    };
                    let message = match get("faultString") {
                        Some(RpcValue::Str(s)) => s.clone(),
                        _ => "fault without a faultString".to_owned(),
                    };
                    (code, message)
                }
                RpcValue::Str(s) => (None, s.clone()),
                _ => (None, "fault without a faultString".to_owned()),
            };
            RpcOutcome::Fault { code, message }
        }
        other => return Err(expected("<params> or <fault>", other)),
    };
    p.close("methodResponse")?;
    p.skip_ws()?;
    if p.peek().is_some() {
        return Err(malformed("content after </methodResponse>"));
    }
    Ok(outcome)
}

/// Reads a JSON-RPC answer: `{"error":…}` is a fault, `{"result":…}` or a bare value a result.
pub fn decode_json_rpc(value: &Value) -> RpcOutcome {
    if let Some(obj) = value.as_object() {
        if let Some(err) = obj.get("error").filter(|e| !e.is_null()) {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| err.as_str().map(str::to_owned))
                .unwrap_or_else(|| truncate(&err.to_string(), 300));
            let code = err.get("code").and_then(Value::as_i64);
            return RpcOutcome::Fault { code, message };
        }
        if let Some(result) = obj.get("result") {
            return RpcOutcome::Value(RpcValue::from_json(result));
        }
    }
    RpcOutcome::Value(RpcValue::from_json(value))
}

/// The error a Remote API fault stands for, judged by its message.
pub fn fault_error(method: &str, message: &str) -> TargetError {
    let lower = message.to_ascii_lowercase();
    let detail = format!("Remote API {method}: {}", truncate(message.trim(), 400));
    if lower.contains("read-only") || lower.contains("read only") || lower.contains("readonly") {
        TargetError::ManagedByIdp { detail }
    } else if lower.contains("does not exist")
        || lower.contains("not found")
        || lower.contains("no such")
        || lower.contains("unknown user")
        || lower.contains("unknown group")
    {
        TargetError::NotFound { what: detail }
    } else if lower.contains("already exist") || lower.contains("already in use") {
        TargetError::Conflict { detail }
    } else if lower.contains("permission")
        || lower.contains("not authorized")
        || lower.contains("not authorised")
        || lower.contains("not permitted")
        || lower.contains("notpermitted")
    {
        TargetError::Forbidden { detail }
    } else {
        TargetError::Rejected {
            status: 200,
            detail,
        }
    }
}

fn looks_like_session_fault(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "invalidsession",
        "session",
        "token",
        "not logged in",
        "authenticat",
    ]
    .iter()
    .any(|k| lower.contains(k))
}

fn looks_disabled(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("disabled") || lower.contains("not enabled") || lower.contains("is off")
}

// ------------------------------------------------------------------------------------------
// Client

/// A caller of the Remote API on one instance.
pub struct RpcClient {
    /// Basic-auth client on the Confluence base URL (or the main client's credentials when no
    /// username and password are configured).
    http: RemoteClient,
    /// Username and password for `confluence2.login` (XML-RPC only).
    login: Option<(String, Secret)>,
    /// The XML-RPC session token, once logged in.
    token: tokio::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("http", &self.http)
            .field("login_user", &self.login.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A caller over `http`; `login` enables XML-RPC.
    pub fn new(http: RemoteClient, login: Option<(String, Secret)>) -> Self {
        Self {
            http,
            login,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// Calls `method` (without prefix or token) and returns its result; faults become errors.
    pub async fn call(
        &self,
        transport: Transport,
        method: &str,
        params: Vec<RpcValue>,
    ) -> Result<RpcValue, TargetError> {
        tracing::debug!(
            rpc.method = method,
            rpc.transport = transport.as_str(),
            "Remote API call"
        );
        let outcome = match transport {
            Transport::JsonRpc => self.json_rpc(method, &params).await?,
            Transport::XmlRpc => {
                let first = self.xml_rpc_with_token(method, &params, false).await?;
                match first {
                    RpcOutcome::Fault { message, .. } if looks_like_session_fault(&message) => {
                        self.xml_rpc_with_token(method, &params, true).await?
                    }
                    other => other,
                }
            }
        };
        match outcome {
            RpcOutcome::Value(v) => Ok(v),
            RpcOutcome::Fault { message, .. } => Err(fault_error(method, &message)),
        }
    }

    async fn json_rpc(&self, method: &str, params: &[RpcValue]) -> Result<RpcOutcome, TargetError> {
        let url = self.http.endpoint(&format!("{JSON_RPC_PATH}{method}"))?;
        let body = Value::Array(params.iter().map(RpcValue::to_json).collect());
        let resp = self
            .http
            .send(Method::POST, url, Some(Body::Json(body)))
            .await?;
        if !resp.is_success() {
            return Err(super::rest::status_error(
                &resp,
                &format!("JSON-RPC {method}"),
            ));
        }
        let value: Value = resp.json()?;
        Ok(decode_json_rpc(&value))
    }

    async fn xml_rpc(&self, method: &str, params: &[RpcValue]) -> Result<RpcOutcome, TargetError> {
        let url = self.http.endpoint(XML_RPC_PATH)?;
        let body = encode_call(method, params);
        let resp = self
            .http
            .send(Method::POST, url, Some(Body::Xml(body)))
            .await?;
        if !resp.is_success() {
            return Err(super::rest::status_error(
                &resp,
                &format!("XML-RPC {method}"),
            ));
        }
        decode_response(&resp.body).map_err(|e| TargetError::UnexpectedBody {
            status: resp.status.as_u16(),
            detail: if resp.body.trim_ascii_start().starts_with(b"<!") {
                format!(
                    "an HTML page came back where XML-RPC was expected ({})",
                    resp.detail()
                )
            } else {
                e.to_string()
            },
        })
    }

    /// `confluence2.login`; the token string.
    async fn login(&self) -> Result<String, TargetError> {
        let (user, password) = self.login.as_ref().ok_or_else(|| {
            TargetError::Config(
                "XML-RPC needs `username` and `password` to log in (a token is not enough)".into(),
            )
        })?;
        let outcome = self
            .xml_rpc(
                "confluence2.login",
                &[
                    RpcValue::str(user.clone()),
                    RpcValue::str(password.expose()),
                ],
            )
            .await?;
        match outcome {
            RpcOutcome::Value(RpcValue::Str(token)) if !token.is_empty() => Ok(token),
            RpcOutcome::Value(other) => Err(TargetError::UnexpectedBody {
                status: 200,
                detail: format!(
                    "confluence2.login answered {} instead of a token",
                    match other {
                        RpcValue::Nil => "nothing",
                        RpcValue::Str(_) => "an empty string",
                        _ => "a non-string value",
                    }
                ),
            }),
            RpcOutcome::Fault { message, .. } => {
                let lower = message.to_ascii_lowercase();
                let detail = format!("XML-RPC confluence2.login: {}", truncate(&message, 400));
                if lower.contains("password") || lower.contains("authenticat") {
                    Err(TargetError::Unauthorized { detail })
                } else {
                    Err(fault_error("confluence2.login", &message))
                }
            }
        }
    }

    async fn xml_rpc_with_token(
        &self,
        method: &str,
        params: &[RpcValue],
        fresh: bool,
    ) -> Result<RpcOutcome, TargetError> {
        let token = {
            let mut guard = self.token.lock().await;
            match guard.as_ref() {
                Some(t) if !fresh => t.clone(),
                _ => {
                    let t = self.login().await?;
                    *guard = Some(t.clone());
                    t
                }
            }
        };
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(RpcValue::Str(token));
        all.extend_from_slice(params);
        self.xml_rpc(&format!("confluence2.{method}"), &all).await
    }

    /// Finds out whether the instance has the Remote API switched on, and through which
    /// transport: a harmless JSON-RPC `isActiveUser(principal)`, then (with a password) an
    /// XML-RPC `confluence2.login`.
    pub async fn detect(&self, principal: &str) -> RemoteApi {
        let json_why = match self
            .json_rpc("isActiveUser", &[RpcValue::str(principal)])
            .await
        {
            Ok(RpcOutcome::Value(_)) => return RemoteApi::Enabled(Transport::JsonRpc),
            Ok(RpcOutcome::Fault { message, .. }) if !looks_disabled(&message) => {
                // The endpoint is alive and answered in JSON-RPC; the method's own failure
                // does not matter for detection.
                return RemoteApi::Enabled(Transport::JsonRpc);
            }
            Ok(RpcOutcome::Fault { message, .. }) => {
                format!("JSON-RPC: {}", truncate(&message, 200))
            }
            Err(e) => format!("JSON-RPC: {e}"),
        };
        if self.login.is_none() {
            return RemoteApi::Unavailable(format!(
                "{json_why}; XML-RPC not tried (it needs `username` and `password`)"
            ));
        }
        match self.login().await {
            Ok(token) => {
                *self.token.lock().await = Some(token);
                RemoteApi::Enabled(Transport::XmlRpc)
            }
            Err(e) => RemoteApi::Unavailable(format!("{json_why}; XML-RPC: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(doc: &str) -> RpcValue {
        match decode_response(doc.as_bytes()).unwrap() {
            RpcOutcome::Value(v) => v,
            f => panic!("fault: {f:?}"),
        }
    }

    #[test]
    fn a_method_call_escapes_every_text_and_types_each_parameter() {
        let doc = encode_call(
            "confluence2.renameUser",
            &[
                RpcValue::str("TOK&<>"),
                RpcValue::str("bob \"o'neil\""),
                RpcValue::Bool(true),
                RpcValue::Int(7),
                RpcValue::Int(1 << 40),
                RpcValue::Array(vec![RpcValue::str("a")]),
                RpcValue::Struct(vec![("k<".into(), RpcValue::Nil)]),
                RpcValue::str("ctl\u{1}\r"),
            ],
        );
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodCall>"));
        assert!(doc.contains("<methodName>confluence2.renameUser</methodName>"));
        assert!(doc.contains("<value><string>TOK&amp;&lt;&gt;</string></value>"));
        assert!(doc.contains("<string>bob &quot;o&apos;neil&quot;</string>"));
        assert!(doc.contains("<boolean>1</boolean>"));
        assert!(doc.contains("<int>7</int>"));
        assert!(doc.contains("<i8>1099511627776</i8>"));
        assert!(doc.contains("<array><data><value><string>a</string></value></data></array>"));
        assert!(doc.contains("<member><name>k&lt;</name><value><nil/></value></member>"));
        assert!(doc.contains("<string>ctl\u{FFFD}&#13;</string>"));
        // The wire sample, byte for byte after the prolog.
        let sample = encode_call(
            "confluence2.renameUser",
            &[
                RpcValue::str("TOKEN"),
                RpcValue::str("bob"),
                RpcValue::str("bob_inactive_20261121"),
            ],
        );
        assert!(sample.ends_with(
            "<methodCall><methodName>confluence2.renameUser</methodName><params><param><value><string>TOKEN</string></value></param><param><value><string>bob</string></value></param><param><value><string>bob_inactive_20261121</string></value></param></params></methodCall>"
        ));
    }

    #[test]
    fn encoded_calls_read_back_through_the_decoder_unchanged() {
        let params = vec![
            RpcValue::str("a & b < c"),
            RpcValue::Bool(false),
            RpcValue::Int(-3),
            RpcValue::Array(vec![RpcValue::Int(1), RpcValue::str("x")]),
            RpcValue::Struct(vec![("name".into(), RpcValue::str("bob"))]),
        ];
        for p in params {
            let call = encode_call("m", std::slice::from_ref(&p));
            // Turn the call into a response carrying the same value.
            let start = call.find("<value>").unwrap();
            let end = call.rfind("</value>").unwrap() + "</value>".len();
            let resp = format!(
                "<methodResponse><params><param>{}</param></params></methodResponse>",
                &call[start..end]
            );
            assert_eq!(value(&resp), p);
        }
    }

    #[test]
    fn responses_of_every_type_decode() {
        let doc = r#"<?xml version="1.0"?>
            <!-- a comment -->
            <methodResponse>
              <params>
                <param>
                  <value>
                    <struct>
                      <member><name>name</name><value><string>bob &amp; co</string></value></member>
                      <member><name>plain</name><value>untyped &#x41;&#66;</value></member>
                      <member><name>ok</name><value><boolean>1</boolean></value></member>
                      <member><name>n</name><value><i4>-42</i4></value></member>
                      <member><name>d</name><value><double>1.5</double></value></member>
                      <member><name>when</name><value><dateTime.iso8601>20261121T10:00:00</dateTime.iso8601></value></member>
                      <member><name>none</name><value><nil/></value></member>
                      <member><name>cdata</name><value><string><![CDATA[<raw>]]></string></value></member>
                      <member><name>list</name><value><array><data>
                        <value><string>a</string></value><value>b</value><value/>
                      </data></array></value></member>
                      <member><name>empty</name><value><array><data/></array></value></member>
                    </struct>
                  </value>
                </param>
              </params>
            </methodResponse>"#;
        let RpcValue::Struct(m) = value(doc) else {
            panic!("not a struct")
        };
        let get = |k: &str| m.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("name"), RpcValue::str("bob & co"));
        assert_eq!(get("plain"), RpcValue::str("untyped AB"));
        assert_eq!(get("ok"), RpcValue::Bool(true));
        assert_eq!(get("n"), RpcValue::Int(-42));
        assert_eq!(get("d"), RpcValue::Double(1.5));
        assert_eq!(get("when"), RpcValue::str("20261121T10:00:00"));
        assert_eq!(get("none"), RpcValue::Nil);
        assert_eq!(get("cdata"), RpcValue::str("<raw>"));
        assert_eq!(
            get("list").as_strings().unwrap(),
            vec!["a".to_string(), "b".into(), String::new()]
        );
        assert_eq!(get("empty"), RpcValue::Array(vec![]));
    }

    #[test]
    fn the_wire_sample_rename_answer_is_true() {
        let v = value(
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><boolean>1</boolean></value></param></params></methodResponse>",
        );
        assert_eq!(v.as_bool(), Some(true));
    }

    #[test]
    fn faults_carry_their_fault_string_and_code() {
        let doc = r#"<?xml version="1.0"?><methodResponse><fault><value><struct>
            <member><name>faultCode</name><value><int>0</int></value></member>
            <member><name>faultString</name><value><string>java.lang.Exception: com.atlassian.confluence.rpc.RemoteException: User bob_x already exists</string></value></member>
            </struct></value></fault></methodResponse>"#;
        let RpcOutcome::Fault { code, message } = decode_response(doc.as_bytes()).unwrap() else {
            panic!("not a fault")
        };
        assert_eq!(code, Some(0));
        assert!(message.ends_with("User bob_x already exists"));
        assert!(matches!(
            fault_error("renameUser", &message),
            TargetError::Conflict { .. }
        ));
        assert!(matches!(
            fault_error("deactivateUser", "User directory is read-only"),
            TargetError::ManagedByIdp { .. }
        ));
        assert!(matches!(
            fault_error("addUserToGroup", "Group nobody does not exist"),
            TargetError::NotFound { .. }
        ));
        assert!(matches!(
            fault_error("renameUser", "NotPermittedException: you lack permission"),
            TargetError::Forbidden { .. }
        ));
        assert!(matches!(
            fault_error("renameUser", "something odd"),
            TargetError::Rejected { status: 200, .. }
        ));
    }

    #[test]
    fn hostile_and_malformed_documents_are_errors_not_panics() {
        let deep = format!(
            "<methodResponse><params><param><value>{}{}</value></param></params></methodResponse>",
            "<array><data><value>".repeat(100),
            "</value></data></array>".repeat(100)
        );
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", b"".to_vec()),
            ("html", b"<!DOCTYPE html><html><title>Log in</title></html>".to_vec()),
            (
                "xxe",
                b"<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><methodResponse>&x;</methodResponse>".to_vec(),
            ),
            ("truncated", b"<methodResponse><params><param><value><string>bo".to_vec()),
            ("unterminated tag", b"<methodResponse".to_vec()),
            ("bad entity", b"<methodResponse><params><param><value>&bogus;</value></param></params></methodResponse>".to_vec()),
            ("bare amp", b"<methodResponse><params><param><value>a & b</value></param></params></methodResponse>".to_vec()),
            ("huge char ref", b"<methodResponse><params><param><value>&#x110000;</value></param></params></methodResponse>".to_vec()),
            ("bad bool", b"<methodResponse><params><param><value><boolean>yes</boolean></value></param></params></methodResponse>".to_vec()),
            ("bad int", b"<methodResponse><params><param><value><int>99999999999999999999</int></value></param></params></methodResponse>".to_vec()),
            ("unknown type", b"<methodResponse><params><param><value><blob>x</blob></value></param></params></methodResponse>".to_vec()),
            ("mismatched", b"<methodResponse><params><param><value><string>x</int></value></param></params></methodResponse>".to_vec()),
            ("trailing", b"<methodResponse><params/></methodResponse><extra/>".to_vec()),
            ("not utf8", vec![b'<', 0xff, 0xfe, b'>']),
            ("wrong root", b"<methodCall></methodCall>".to_vec()),
            ("struct without name", b"<methodResponse><params><param><value><struct><member><value>1</value></member></struct></value></param></params></methodResponse>".to_vec()),
            ("deep", deep.into_bytes()),
            ("lone lt in tag", b"<methodResponse <x>".to_vec()),
            ("empty tag name", b"<></>".to_vec()),
        ];
        for (name, body) in cases {
            let result = decode_response(&body);
            assert!(result.is_err(), "{name}: {result:?}");
        }
        assert_eq!(
            decode_response(&vec![b' '; MAX_XML_BYTES + 1]),
            Err(XmlError::TooLarge(MAX_XML_BYTES))
        );
        assert!(matches!(
            decode_response(b"<!DOCTYPE x><methodResponse/>"),
            Err(XmlError::Declaration)
        ));
    }

    #[test]
    fn a_void_response_is_nil() {
        assert_eq!(
            decode_response(b"<methodResponse><params/></methodResponse>").unwrap(),
            RpcOutcome::Value(RpcValue::Nil)
        );
        assert_eq!(
            decode_response(b"<methodResponse><params></params></methodResponse>").unwrap(),
            RpcOutcome::Value(RpcValue::Nil)
        );
    }

    #[test]
    fn json_rpc_answers_read_as_bare_values_results_or_errors() {
        use serde_json::json;
        assert_eq!(
            decode_json_rpc(&json!(true)),
            RpcOutcome::Value(RpcValue::Bool(true))
        );
        assert_eq!(
            decode_json_rpc(&json!({"result": ["a", "b"]})),
            RpcOutcome::Value(RpcValue::Array(vec![
                RpcValue::str("a"),
                RpcValue::str("b")
            ]))
        );
        assert_eq!(
            decode_json_rpc(&json!({"error": {"code": 500, "message": "User does not exist"}})),
            RpcOutcome::Fault {
                code: Some(500),
                message: "User does not exist".into()
            }
        );
        assert_eq!(
            decode_json_rpc(&json!({"error": "plain text"})),
            RpcOutcome::Fault {
                code: None,
                message: "plain text".into()
            }
        );
        assert_eq!(
            decode_json_rpc(&json!({"result": null, "error": null})),
            RpcOutcome::Value(RpcValue::Nil)
        );
        let params = RpcValue::Array(vec![RpcValue::str("bob"), RpcValue::str("bob_x")]);
        assert_eq!(params.to_json(), json!(["bob", "bob_x"]));
    }

    #[test]
    fn booleans_are_read_leniently_from_rpc_answers() {
        assert_eq!(RpcValue::str("true").as_bool(), Some(true));
        assert_eq!(RpcValue::Int(0).as_bool(), Some(false));
        assert_eq!(RpcValue::Nil.as_bool(), None);
        assert_eq!(RpcValue::str("maybe").as_bool(), None);
    }
}
