//! The legacy Remote API: XML-RPC at `POST /rpc/xmlrpc` (methods `confluence2.*`, token
//! from `login` as first parameter, faults as `<fault>`), and JSON-RPC at
//! `POST /rpc/json-rpc/confluenceservice-v2/<method>` (HTTP Basic, JSON array of
//! parameters without the token, `{"error":{"message":…}}` on failure). Includes a small,
//! bounded parser for the `methodCall` subset of XML.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};

use super::model::Fail;
use super::{Caller, Sim};

/// The Remote API routes.
pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/rpc/xmlrpc", post(xmlrpc))
        .route("/rpc/json-rpc/confluenceservice-v2/{method}", post(jsonrpc))
}

/// An XML-RPC / JSON-RPC value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Array(Vec<Value>),
    Struct(Vec<(String, Value)>),
}

impl Value {
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn to_xml(&self, out: &mut String) {
        out.push_str("<value>");
        match self {
            Value::Str(s) => {
                out.push_str("<string>");
                escape_into(s, out);
                out.push_str("</string>");
            }
            Value::Bool(b) => out.push_str(if *b {
                "<boolean>1</boolean>"
            } else {
                "<boolean>0</boolean>"
            }),
            Value::Int(i) => out.push_str(&format!("<int>{i}</int>")),
            Value::Array(items) => {
                out.push_str("<array><data>");
                for v in items {
                    v.to_xml(out);
                }
                out.push_str("</data></array>");
            }
            Value::Struct(members) => {
                out.push_str("<struct>");
                for (k, v) in members {
                    out.push_str("<member><name>");
                    escape_into(k, out);
                    out.push_str("</name>");
                    v.to_xml(out);
                    out.push_str("</member>");
                }
                out.push_str("</struct>");
            }
        }
        out.push_str("</value>");
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Array(items) => items.iter().map(Value::to_json).collect(),
            Value::Struct(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    fn from_json(v: &serde_json::Value, depth: usize) -> Option<Value> {
        if depth > 8 {
            return None;
        }
        Some(match v {
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Int(n.as_i64()?),
            serde_json::Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| Value::from_json(x, depth + 1))
                    .collect::<Option<_>>()?,
            ),
            serde_json::Value::Object(o) => Value::Struct(
                o.iter()
                    .map(|(k, x)| Some((k.clone(), Value::from_json(x, depth + 1)?)))
                    .collect::<Option<_>>()?,
            ),
            serde_json::Value::Null => return None,
        })
    }
}

fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

// ---------------------------------------------------------------------------------------
// A bounded XML parser for methodCall documents

const MAX_BODY: usize = 1 << 20;
const MAX_DEPTH: usize = 32;
const MAX_NODES: usize = 20_000;

#[derive(Debug, Default)]
struct Node {
    name: String,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    nodes: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn skip_misc(&mut self) -> Result<(), String> {
        loop {
            let r = self.rest();
            let trimmed = r.trim_start();
            self.pos += r.len() - trimmed.len();
            if trimmed.starts_with("<?") {
                let end = trimmed
                    .find("?>")
                    .ok_or("unterminated processing instruction")?;
                self.pos += end + 2;
            } else if trimmed.starts_with("<!--") {
                let end = trimmed.find("-->").ok_or("unterminated comment")?;
                self.pos += end + 3;
            } else if trimmed.starts_with("<!") {
                return Err("DTDs are not accepted".into());
            } else {
                return Ok(());
            }
        }
    }

    fn element(&mut self, depth: usize) -> Result<Node, String> {
        if depth > MAX_DEPTH {
            return Err("document nested too deeply".into());
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err("document too large".into());
        }
        let r = self.rest();
        if !r.starts_with('<') {
            return Err("expected an element".into());
        }
        let end = r.find('>').ok_or("unterminated tag")?;
        let tag = r.get(1..end).ok_or("bad tag")?;
        self.pos += end + 1;
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_owned();
        if name.is_empty() {
            return Err("empty tag name".into());
        }
        let mut node = Node {
            name,
            ..Node::default()
        };
        if self_closing {
            return Ok(node);
        }
        loop {
            let r = self.rest();
            if r.is_empty() {
                return Err(format!("unterminated element <{}>", node.name));
            }
            if let Some(after) = r.strip_prefix("</") {
                let end = after.find('>').ok_or("unterminated end tag")?;
                let close = after.get(..end).unwrap_or("").trim();
                if close != node.name {
                    return Err(format!("mismatched </{close}> for <{}>", node.name));
                }
                self.pos += 2 + end + 1;
                return Ok(node);
            } else if r.starts_with("<![CDATA[") {
                let end = r.find("]]>").ok_or("unterminated CDATA")?;
                node.text.push_str(r.get(9..end).unwrap_or(""));
                self.pos += end + 3;
            } else if r.starts_with("<!--") {
                let end = r.find("-->").ok_or("unterminated comment")?;
                self.pos += end + 3;
            } else if r.starts_with('<') {
                let child = self.element(depth + 1)?;
                node.children.push(child);
            } else {
                let end = r.find('<').unwrap_or(r.len());
                let raw = r.get(..end).unwrap_or("");
                node.text.push_str(&unescape(raw)?);
                self.pos += end;
            }
        }
    }
}

fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(rest.get(..i).unwrap_or(""));
        let after = rest.get(i + 1..).unwrap_or("");
        let end = after.find(';').ok_or("unterminated entity")?;
        let ent = after.get(..end).unwrap_or("");
        let c = match ent {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code =
                    if let Some(h) = ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                        u32::from_str_radix(h, 16).ok()
                    } else if let Some(d) = ent.strip_prefix('#') {
                        d.parse::<u32>().ok()
                    } else {
                        None
                    };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{ent};"))?
            }
        };
        out.push(c);
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_value(node: &Node, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("value nested too deeply".into());
    }
    let Some(inner) = node.children.first() else {
        // A bare <value>text</value> is a string.
        return Ok(Value::Str(node.text.clone()));
    };
    Ok(match inner.name.as_str() {
        "string" => Value::Str(inner.text.clone()),
        "boolean" => Value::Bool(matches!(inner.text.trim(), "1" | "true")),
        "int" | "i4" | "i8" => Value::Int(
            inner
                .text
                .trim()
                .parse()
                .map_err(|_| format!("bad integer {}", inner.text))?,
        ),
        "array" => {
            let data = inner.child("data").ok_or("array without data")?;
            Value::Array(
                data.children
                    .iter()
                    .filter(|c| c.name == "value")
                    .map(|c| parse_value(c, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        "struct" => Value::Struct(
            inner
                .children
                .iter()
                .filter(|c| c.name == "member")
                .map(|m| {
                    let name = m
                        .child("name")
                        .map(|n| n.text.clone())
                        .ok_or("member without name")?;
                    let v = m.child("value").ok_or("member without value")?;
                    Ok((name, parse_value(v, depth + 1)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        other => return Err(format!("unsupported value type <{other}>")),
    })
}

/// Parses a `methodCall` into its method name and parameters.
pub fn parse_method_call(body: &[u8]) -> Result<(String, Vec<Value>), String> {
    if body.len() > MAX_BODY {
        return Err("request too large".into());
    }
    let s = std::str::from_utf8(body).map_err(|_| "request is not UTF-8".to_owned())?;
    let mut p = Parser {
        s,
        pos: 0,
        nodes: 0,
    };
    p.skip_misc()?;
    let root = p.element(0)?;
    if root.name != "methodCall" {
        return Err(format!("expected <methodCall>, got <{}>", root.name));
    }
    let method = root
        .child("methodName")
        .map(|n| n.text.trim().to_owned())
        .ok_or("no methodName")?;
    let params = match root.child("params") {
        Some(ps) => ps
            .children
            .iter()
            .filter(|c| c.name == "param")
            .map(|param| {
                param
                    .child("value")
                    .ok_or_else(|| "param without value".to_owned())
                    .and_then(|v| parse_value(v, 0))
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    Ok((method, params))
}

fn xml_ok(v: &Value) -> Response {
    let mut out = String::from("<?xml version=\"1.0\"?><methodResponse><params><param>");
    v.to_xml(&mut out);
    out.push_str("</param></params></methodResponse>");
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], out).into_response()
}

fn xml_fault(code: i64, message: &str) -> Response {
    let mut out = String::from("<?xml version=\"1.0\"?><methodResponse><fault>");
    Value::Struct(vec![
        ("faultCode".into(), Value::Int(code)),
        ("faultString".into(), Value::Str(message.to_owned())),
    ])
    .to_xml(&mut out);
    out.push_str("</fault></methodResponse>");
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], out).into_response()
}

const DISABLED: &str = "com.atlassian.confluence.rpc.RemoteException: Remote API is disabled. \
Ask a system administrator to enable 'Remote API (XML-RPC & SOAP)'.";

// ---------------------------------------------------------------------------------------
// Methods shared by both transports

fn remote(msg: impl std::fmt::Display) -> String {
    format!("com.atlassian.confluence.rpc.RemoteException: {msg}")
}

fn arg(params: &[Value], i: usize, what: &str) -> Result<String, String> {
    params
        .get(i)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| remote(format!("missing or invalid parameter '{what}'")))
}

fn fail_text(f: &Fail) -> String {
    match f {
        Fail::ReadOnly(m) => format!("com.atlassian.confluence.rpc.NotPermittedException: {m}"),
        other => remote(other.message()),
    }
}

/// Runs `method` (without prefix) for `caller` with `params` (token already removed).
fn call(sim: &Sim, caller: &Caller, method: &str, params: &[Value]) -> Result<Value, String> {
    let admin_only = !matches!(
        method,
        "getUser" | "hasUser" | "isActiveUser" | "getUserGroups" | "logout"
    );
    if admin_only && !caller.admin {
        return Err(format!(
            "com.atlassian.confluence.rpc.NotPermittedException: User {} does not have permission to call {method}",
            caller.username
        ));
    }
    let find = |st: &super::model::State, name: &str| {
        st.by_username(name)
            .ok_or_else(|| remote(format!("No user with username '{name}' found")))
    };
    tracing::info!(method, caller = %caller.username, "dcsim: remote API call");
    match method {
        "renameUser" => {
            let (old, new) = (
                arg(params, 0, "oldUsername")?,
                arg(params, 1, "newUsername")?,
            );
            let mut st = sim.write();
            let slot = find(&st, &old)?;
            st.rename(slot, &new).map_err(|f| fail_text(&f))?;
            Ok(Value::Bool(true))
        }
        "renameUsers" => {
            let Some(Value::Struct(map)) = params.first() else {
                return Err(remote("missing or invalid parameter 'oldToNewUsernames'"));
            };
            let mut st = sim.write();
            let mut failed = Vec::new();
            for (old, new) in map {
                let ok = match (st.by_username(old), new.as_str()) {
                    (Some(slot), Some(new)) => st.rename(slot, new).is_ok(),
                    _ => false,
                };
                if !ok {
                    failed.push(Value::Str(old.clone()));
                }
            }
            Ok(Value::Array(failed))
        }
        "deactivateUser" | "reactivateUser" => {
            let name = arg(params, 0, "username")?;
            let mut st = sim.write();
            let slot = find(&st, &name)?;
            st.set_active(slot, method == "reactivateUser")
                .map_err(|f| fail_text(&f))?;
            Ok(Value::Bool(true))
        }
        "isActiveUser" => {
            let name = arg(params, 0, "username")?;
            let st = sim.read();
            let slot = find(&st, &name)?;
            Ok(Value::Bool(st.get(slot).is_some_and(|u| u.active)))
        }
        "hasUser" => {
            let name = arg(params, 0, "username")?;
            Ok(Value::Bool(sim.read().by_username(&name).is_some()))
        }
        "addUserToGroup" | "removeUserFromGroup" => {
            let (name, group) = (arg(params, 0, "username")?, arg(params, 1, "groupname")?);
            let mut st = sim.write();
            let slot = find(&st, &name)?;
            let r = if method == "addUserToGroup" {
                st.add_member(slot, &group)
            } else {
                st.remove_member(slot, &group)
            };
            r.map_err(|f| fail_text(&f))?;
            Ok(Value::Bool(true))
        }
        "getUserGroups" => {
            let name = arg(params, 0, "username")?;
            let st = sim.read();
            let slot = find(&st, &name)?;
            Ok(Value::Array(
                st.get(slot)
                    .map(|u| u.groups.iter().cloned().map(Value::Str).collect())
                    .unwrap_or_default(),
            ))
        }
        "getActiveUsers" => {
            let st = sim.read();
            let mut names: Vec<&str> = st
                .effective_slots()
                .filter_map(|s| st.get(s))
                .filter(|u| u.active)
                .map(|u| u.username.as_str())
                .collect();
            names.sort_unstable();
            Ok(Value::Array(
                names
                    .into_iter()
                    .map(|n| Value::Str(n.to_owned()))
                    .collect(),
            ))
        }
        "getUser" => {
            let name = arg(params, 0, "username")?;
            let st = sim.read();
            let slot = find(&st, &name)?;
            let u = st.get(slot).ok_or_else(|| remote("No such user"))?;
            Ok(Value::Struct(vec![
                ("name".into(), Value::Str(u.username.clone())),
                ("fullname".into(), Value::Str(u.display_name.clone())),
                ("email".into(), Value::Str(u.email.clone())),
                (
                    "url".into(),
                    Value::Str(format!("{}/display/~{}", sim.base(), u.username)),
                ),
                ("key".into(), Value::Str(u.key.clone())),
            ]))
        }
        "removeUser" => {
            let name = arg(params, 0, "username")?;
            let mut st = sim.write();
            let slot = find(&st, &name)?;
            if !st.user_writable(slot) {
                return Err(fail_text(&Fail::ReadOnly(format!(
                    "User '{name}' belongs to a read-only directory"
                ))));
            }
            st.delete_user(slot);
            Ok(Value::Bool(true))
        }
        "logout" => Ok(Value::Bool(true)),
        other => Err(format!(
            "java.lang.NoSuchMethodException: Method {other} not found"
        )),
    }
}

/// Checks a username/password pair, returning the caller.
fn login(sim: &Sim, username: &str, password: &str) -> Option<Caller> {
    let auth = format!(
        "Basic {}",
        super::base64_encode(format!("{username}:{password}").as_bytes())
    );
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(header::AUTHORIZATION, auth.parse().ok()?);
    super::authenticate(sim, &headers).ok().flatten()
}

async fn xmlrpc(State(sim): State<Sim>, body: Bytes) -> Response {
    if !sim.settings().remote_api {
        return xml_fault(0, DISABLED);
    }
    let (method, params) = match parse_method_call(&body) {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "dcsim: unparseable XML-RPC call");
            return xml_fault(
                0,
                &format!("org.apache.xmlrpc.XmlRpcException: Failed to parse XML-RPC request: {e}"),
            );
        }
    };
    let Some(name) = method
        .strip_prefix("confluence2.")
        .or_else(|| method.strip_prefix("confluence1."))
    else {
        return xml_fault(
            0,
            &format!("java.lang.NoSuchMethodException: Method {method} not found"),
        );
    };
    match name {
        "login" => {
            let (Ok(u), Ok(p)) = (arg(&params, 0, "username"), arg(&params, 1, "password")) else {
                return xml_fault(0, &remote("login requires a username and a password"));
            };
            match login(&sim, &u, &p) {
                Some(c) => {
                    let token = sim.write().rng.hex(10);
                    sim.sessions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(token.clone(), c.key);
                    xml_ok(&Value::Str(token))
                }
                None => xml_fault(
                    0,
                    "com.atlassian.confluence.rpc.AuthenticationFailedException: Attempt to log in user failed. The username or password may be incorrect.",
                ),
            }
        }
        _ => {
            let token = params.first().and_then(Value::as_str).unwrap_or("");
            let key = sim
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(token)
                .cloned();
            let caller = key.and_then(|k| caller_by_key(&sim, &k));
            let Some(caller) = caller else {
                return xml_fault(
                    0,
                    "com.atlassian.confluence.rpc.InvalidSessionException: User not authenticated or session expired. Call login() to open a new session",
                );
            };
            if name == "logout" {
                sim.sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(token);
            }
            match call(&sim, &caller, name, params.get(1..).unwrap_or(&[])) {
                Ok(v) => xml_ok(&v),
                Err(e) => xml_fault(0, &e),
            }
        }
    }
}

fn caller_by_key(sim: &Sim, key: &str) -> Option<Caller> {
    let st = sim.read();
    let slot = st.by_key(key)?;
    let u = st.get(slot)?;
    if !u.active {
        return None;
    }
    let g = st.granting_groups();
    let k = st.granting_users();
    Some(Caller {
        slot,
        key: u.key.clone(),
        username: u.username.clone(),
        admin: st.is_admin(slot),
        licensed: st.licensed(slot, &g, &k),
    })
}

fn json_error(status: StatusCode, message: &str) -> Response {
    super::rest::json(status, &serde_json::json!({"error": {"message": message}}))
}

async fn jsonrpc(
    State(sim): State<Sim>,
    Extension(who): Extension<Option<Caller>>,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    if !sim.settings().remote_api {
        return json_error(StatusCode::FORBIDDEN, DISABLED);
    }
    let Some(caller) = who else {
        return super::unauthorized_anonymous();
    };
    if body.len() > MAX_BODY {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "request too large");
    }
    let params: Vec<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Array(items)) => {
                match items.iter().map(|v| Value::from_json(v, 0)).collect() {
                    Some(p) => p,
                    None => {
                        return json_error(StatusCode::OK, &remote("unsupported parameter value"));
                    }
                }
            }
            Ok(_) => return json_error(StatusCode::OK, &remote("parameters must be a JSON array")),
            Err(e) => return json_error(StatusCode::OK, &remote(format!("invalid JSON: {e}"))),
        }
    };
    match call(&sim, &caller, &method, &params) {
        Ok(v) => super::rest::json(StatusCode::OK, &v.to_json()),
        Err(e) => json_error(StatusCode::OK, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_call_parses_with_entities_and_bare_strings() {
        let body = "<?xml version=\"1.0\"?><!-- c --><methodCall><methodName>confluence2.renameUser</methodName>\
            <params><param><value><string>T&amp;K</string></value></param><param><value>bob</value></param>\
            <param><value><boolean>1</boolean></value></param><param><value><struct><member><name>a</name>\
            <value><i4>7</i4></value></member></struct></value></param></params></methodCall>";
        let (m, p) = parse_method_call(body.as_bytes()).unwrap_or_default();
        assert_eq!(m, "confluence2.renameUser");
        assert_eq!(
            p,
            vec![
                Value::Str("T&K".into()),
                Value::Str("bob".into()),
                Value::Bool(true),
                Value::Struct(vec![("a".into(), Value::Int(7))]),
            ]
        );
    }

    #[test]
    fn hostile_documents_are_refused_without_panicking() {
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        for bad in [
            "",
            "<",
            "<methodCall>",
            "<methodCall></wrong>",
            "<!DOCTYPE x [<!ENTITY e 'x'>]><methodCall/>",
            "<methodCall><methodName>&bogus;</methodName></methodCall>",
            "<methodCall><params><param><value><int>x</int></value></param></params></methodCall>",
            deep.as_str(),
            "\u{00e9}<<<>>>",
        ] {
            assert!(parse_method_call(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse_method_call(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn values_render_as_xml_rpc() {
        let mut out = String::new();
        Value::Array(vec![Value::Str("a<b".into()), Value::Bool(false)]).to_xml(&mut out);
        assert_eq!(
            out,
            "<value><array><data><value><string>a&lt;b</string></value><value><boolean>0</boolean></value></data></array></value>"
        );
    }
}
