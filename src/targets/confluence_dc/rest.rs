//! Confluence DC REST wire shapes (users, groups, pages, long tasks, global permissions,
//! licence counters), how a user's `status` maps to active and licensed, the opaque paging
//! cursor, and how error statuses refine into [`TargetError`]s.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::super::http::Response;
use super::super::{RemoteAccount, TargetError};

/// `_links` of a DC page or entity.
#[derive(Debug, Default, Deserialize)]
pub struct Links {
    #[serde(default)]
    pub base: Option<String>,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default, rename = "self")]
    pub self_: Option<String>,
}

/// One page of a DC listing.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
pub struct DcPage<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    #[serde(default)]
    pub start: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default, rename = "totalCount")]
    pub total_count: Option<u64>,
    #[serde(default, rename = "_links")]
    pub links: Option<Links>,
}

/// A DC user (`KnownUser`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DcUser {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, rename = "userKey")]
    pub user_key: Option<String>,
    #[serde(default, rename = "displayName")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub status: Option<Value>,
    #[serde(default, rename = "lastLogin")]
    pub last_login: Option<Value>,
}

/// A DC group.
#[derive(Debug, Clone, Deserialize)]
pub struct DcGroup {
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /rest/applinks/1.0/manifest`.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default, rename = "typeId")]
    pub type_id: Option<String>,
}

/// `DELETE /rest/api/admin/user/{u}` → 202.
#[derive(Debug, Deserialize)]
pub struct LongTaskSubmission {
    #[serde(default)]
    pub id: Option<Value>,
}

/// A long-task message.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub translation: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
}

/// `GET /rest/api/longtask/{id}`.
#[derive(Debug, Deserialize)]
pub struct LongTaskStatus {
    #[serde(default, rename = "percentageComplete")]
    pub percentage_complete: Option<i64>,
    #[serde(default)]
    pub successful: Option<bool>,
    #[serde(default)]
    pub finished: Option<bool>,
    #[serde(default)]
    pub messages: Vec<Message>,
}

impl LongTaskStatus {
    /// Whether the task has ended, by any of the signals DC and Cloud give.
    pub fn is_done(&self) -> bool {
        self.finished == Some(true)
            || self.successful == Some(true)
            || self.percentage_complete.is_some_and(|p| p >= 100)
    }

    /// Whether it ended well (only meaningful once done).
    pub fn succeeded(&self) -> bool {
        self.successful == Some(true)
    }

    /// The task's messages in one line.
    pub fn messages_text(&self) -> String {
        let parts: Vec<&str> = self
            .messages
            .iter()
            .filter_map(|m| m.translation.as_deref().or(m.key.as_deref()))
            .filter(|s| !s.trim().is_empty())
            .take(10)
            .collect();
        if parts.is_empty() {
            "no messages".into()
        } else {
            parts.join("; ")
        }
    }
}

/// A global permission (9.3+).
#[derive(Debug, Deserialize)]
pub struct GlobalPermission {
    #[serde(default)]
    pub operation: Option<Operation>,
    #[serde(default)]
    pub subject: Option<Subject>,
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    #[serde(default, rename = "targetType")]
    pub target_type: Option<String>,
    #[serde(default, rename = "operationKey")]
    pub operation_key: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Subject {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl GlobalPermission {
    /// The group this permission grants a licence to, if it does: "can use"
    /// (`application use`), Confluence administrator (`application administer`) or system
    /// administrator (`system administer`).
    pub fn licensing_group(&self) -> Option<&str> {
        let op = self.operation.as_ref()?;
        let subject = self.subject.as_ref()?;
        if !subject.kind.as_deref()?.eq_ignore_ascii_case("group") {
            return None;
        }
        let target = op.target_type.as_deref()?.to_ascii_lowercase();
        let key = op.operation_key.as_deref()?.to_ascii_lowercase();
        let grants = matches!(
            (target.as_str(), key.as_str()),
            ("application", "use") | ("application", "administer") | ("system", "administer")
        );
        grants.then_some(subject.name.as_deref()?)
    }
}

/// `{"count": n}` of the licence counters.
#[derive(Debug, Deserialize)]
pub struct Count {
    #[serde(default)]
    pub count: Option<i64>,
}

impl Count {
    /// The count, `None` for absent or negative (−1 = unlimited).
    pub fn value(&self) -> Option<u64> {
        self.count.and_then(|c| u64::try_from(c).ok())
    }
}

// ------------------------------------------------------------------------------------------
// Status

/// What a DC `status` says: `(active, licensed)`. `current` is active; `unlicensed` is an
/// enabled account without "can use"; `deactivated` and `externally_deleted` cannot log in.
/// Anything else (or no status) is reported as not active: idbridge never claims an
/// account can log in without the instance saying so.
pub fn parse_status(raw: &str) -> (bool, Option<bool>) {
    match raw.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "current" | "active" => (true, None),
        "unlicensed" => (true, Some(false)),
        "deactivated" | "disabled" | "inactive" => (false, Some(false)),
        "externally_deleted" | "externallydeleted" => (false, Some(false)),
        _ => (false, None),
    }
}

/// The `status` field as text (DC sends a string; tolerate `{"value":…}`).
pub fn status_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("value")
            .or_else(|| o.get("status"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// Whether a raw status is exactly "deactivated".
pub fn is_deactivated(raw: &str) -> bool {
    raw.trim().eq_ignore_ascii_case("deactivated")
}

/// A `lastLogin` value: ISO-8601 (with or without zone) or milliseconds since the epoch.
pub fn parse_last_login(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                return Some(t.and_utc());
            }
            s.parse::<i64>().ok().and_then(millis)
        }
        Value::Number(n) => n.as_i64().and_then(millis),
        _ => None,
    }
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// A DC user as a [`RemoteAccount`]; `None` without a key or username.
pub fn to_account(user: &DcUser) -> Option<RemoteAccount> {
    let key = user.user_key.as_deref().filter(|k| !k.is_empty())?;
    let username = user.username.as_deref().filter(|u| !u.is_empty())?;
    let raw_status = status_text(user.status.as_ref());
    let (active, licensed) = parse_status(&raw_status);
    if !raw_status.is_empty() && licensed.is_none() && !active {
        tracing::warn!(user.key = key, status = %raw_status, "unknown Confluence user status");
    }
    Some(RemoteAccount {
        key: key.to_owned(),
        username: username.to_owned(),
        email: user.email.clone().filter(|e| !e.is_empty()),
        display_name: user.display_name.clone(),
        active,
        raw_status,
        directory: None,
        last_login_at: user.last_login.as_ref().and_then(parse_last_login),
        created_at: None,
        groups: None,
        licensed,
        read_only: None,
    })
}

// ------------------------------------------------------------------------------------------
// Cursor

/// Where a page starts: an offset, or a `_links.next` URL the instance gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pos {
    Start(u64),
    Url(String),
}

/// An opaque cursor: a phase tag (`u` users, `m` members, `g` nested groups, `r` Remote API
/// listing, …) and a position. Written `tag:position`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub phase: char,
    pub pos: Pos,
}

impl Cursor {
    /// The first page of `phase`.
    pub fn first(phase: char) -> Self {
        Self {
            phase,
            pos: Pos::Start(0),
        }
    }

    /// The cursor as callers see it.
    pub fn encode(&self) -> String {
        match &self.pos {
            Pos::Start(n) => format!("{}:{n}", self.phase),
            Pos::Url(u) => format!("{}:{u}", self.phase),
        }
    }

    /// Reads a cursor this connector wrote; `phases` are the tags this listing accepts.
    pub fn decode(text: &str, phases: &[char]) -> Result<Self, TargetError> {
        let bad = || {
            TargetError::Config(format!(
                "cursor `{}` was not issued by this listing",
                text.chars().take(80).collect::<String>()
            ))
        };
        let (tag, pos) = text.split_once(':').ok_or_else(bad)?;
        let mut chars = tag.chars();
        let phase = match (chars.next(), chars.next()) {
            (Some(c), None) if phases.contains(&c) => c,
            _ => return Err(bad()),
        };
        let pos = if let Ok(n) = pos.parse::<u64>() {
            Pos::Start(n)
        } else if pos.starts_with("http://") || pos.starts_with("https://") {
            Pos::Url(pos.to_owned())
        } else {
            return Err(bad());
        };
        Ok(Self { phase, pos })
    }
}

/// Where the page after this one starts, or `None` at the end.
///
/// The instance's `_links.next` is followed when it continues exactly where this page ended
/// (`start + size`); when it would skip or repeat items (a server that capped `limit` but
/// computed `next` from the asked limit) or points at another origin, the offset
/// `start + size` is used instead. Without
/// any `_links`, a page shorter than asked, or empty, is the last.
pub fn next_pos(
    requested_start: u64,
    requested_limit: u64,
    page_start: Option<u64>,
    page_size: Option<u64>,
    results: usize,
    links: Option<&Links>,
    resolve: impl FnOnce(&str, Option<&str>) -> Result<url::Url, TargetError>,
) -> Result<Option<Pos>, TargetError> {
    let start = page_start.unwrap_or(requested_start);
    // `size` is the number of results on the page; when the two disagree the results win,
    // so that no item is skipped.
    let size = match page_size {
        Some(s) if s == results as u64 => s,
        Some(s) => {
            tracing::debug!(size = s, results, "page size disagrees with its results");
            results as u64
        }
        None => results as u64,
    };
    let following = start.saturating_add(size);
    match links {
        Some(links) => {
            let Some(next) = links.next.as_deref().filter(|n| !n.trim().is_empty()) else {
                return Ok(None);
            };
            if size == 0 {
                // A `next` after an empty page would loop forever.
                return Ok(None);
            }
            let url = match resolve(next, links.base.as_deref()) {
                Ok(url) => url,
                Err(e) => {
                    // A link on another origin (the instance's configured base URL differs
                    // from the one idbridge uses) is never followed; the offset is.
                    tracing::debug!(error = %e, following, "next-page link not followed");
                    return Ok(Some(Pos::Start(following)));
                }
            };
            let link_start = url
                .query_pairs()
                .find(|(k, _)| k == "start")
                .and_then(|(_, v)| v.parse::<u64>().ok());
            match link_start {
                Some(s) if s == following => Ok(Some(Pos::Url(url.to_string()))),
                Some(s) => {
                    tracing::debug!(
                        link_start = s,
                        following,
                        "next-page link does not continue where the page ended; using the offset"
                    );
                    Ok(Some(Pos::Start(following)))
                }
                None => Ok(Some(Pos::Url(url.to_string()))),
            }
        }
        None => {
            if size == 0 || size < requested_limit {
                Ok(None)
            } else {
                Ok(Some(Pos::Start(following)))
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Errors

/// Whether an error body says the user directory is read-only.
fn says_read_only(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    lower.contains("read-only")
        || lower.contains("read only")
        || lower.contains("readonly")
        || lower.contains("not writable")
        || lower.contains("cannot be modified")
}

/// The error a non-success answer stands for; `what` names the call or the object
/// (e.g. "user `bob`") so that 404s and 403s read as sentences.
pub fn status_error(resp: &Response, what: &str) -> TargetError {
    let detail = resp.detail();
    match resp.status.as_u16() {
        401 => TargetError::Unauthorized {
            detail: format!("{what}: {detail}"),
        },
        402 => TargetError::NoSeats {
            detail: format!("{what}: {detail}"),
        },
        403 if says_read_only(&detail) => TargetError::ManagedByIdp {
            detail: format!("{what}: the user directory is read-only (403): {detail}"),
        },
        403 => TargetError::Forbidden {
            detail: format!("{what}: insufficient permission: {detail}"),
        },
        404 => TargetError::NotFound {
            what: format!("{what} ({detail})"),
        },
        409 => TargetError::Conflict {
            detail: format!("{what}: {detail}"),
        },
        _ => match resp.error() {
            TargetError::Rejected { status, detail } => TargetError::Rejected {
                status,
                detail: format!("{what}: {detail}"),
            },
            other => other,
        },
    }
}

/// Whether a 404 answer is the instance's own "not found" (JSON or empty) rather than a
/// page from something in front of it.
pub fn is_plain_not_found(resp: &Response) -> bool {
    resp.status.as_u16() == 404 && !resp.detail().starts_with("HTML page")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;
    use serde_json::json;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn envelope(status: u16, message: &str) -> String {
        json!({"statusCode": status, "data": {"authorized": false, "valid": true, "errors": [], "successful": false}, "message": message, "reason": "x"}).to_string()
    }

    #[test]
    fn statuses_map_case_insensitively_to_active_and_licensed() {
        assert_eq!(parse_status("current"), (true, None));
        assert_eq!(parse_status("CURRENT"), (true, None));
        assert_eq!(parse_status(" Unlicensed "), (true, Some(false)));
        assert_eq!(parse_status("DEACTIVATED"), (false, Some(false)));
        assert_eq!(parse_status("externally_deleted"), (false, Some(false)));
        assert_eq!(parse_status("EXTERNALLY_DELETED"), (false, Some(false)));
        assert_eq!(parse_status(""), (false, None));
        assert_eq!(parse_status("weird"), (false, None));
        assert!(is_deactivated("Deactivated"));
        assert!(!is_deactivated("externally_deleted"));
    }

    #[test]
    fn the_wire_sample_user_becomes_an_active_account_keyed_on_user_key() {
        let user: DcUser = serde_json::from_value(json!({"type":"known","username":"bob","userKey":"8a7f808a6f1b2c3d016f1b2c3d4e0001","displayName":"Bob Builder","status":"current","_links":{},"_expandable":{}})).unwrap();
        let a = to_account(&user).unwrap();
        assert_eq!(a.key, "8a7f808a6f1b2c3d016f1b2c3d4e0001");
        assert_eq!(a.username, "bob");
        assert_eq!(a.display_name.as_deref(), Some("Bob Builder"));
        assert!(a.active);
        assert_eq!(a.raw_status, "current");
        let no_key: DcUser = serde_json::from_value(json!({"username":"x"})).unwrap();
        assert!(to_account(&no_key).is_none());
    }

    #[test]
    fn last_login_reads_iso_instants_and_epoch_milliseconds() {
        let t = parse_last_login(&json!("2026-11-02T09:14:03.000Z")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-02T09:14:03+00:00");
        let t = parse_last_login(&json!("2026-11-02T09:14:03.000+0100")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-02T08:14:03+00:00");
        let t = parse_last_login(&json!(1_732_170_000_000i64)).unwrap();
        assert_eq!(t.timestamp(), 1_732_170_000);
        assert!(parse_last_login(&json!("yesterday")).is_none());
        assert!(parse_last_login(&json!(null)).is_none());
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        for c in [
            Cursor {
                phase: 'u',
                pos: Pos::Start(200),
            },
            Cursor {
                phase: 'm',
                pos: Pos::Url("https://h/c/rest/api/group/g/member?start=2".into()),
            },
        ] {
            assert_eq!(Cursor::decode(&c.encode(), &['u', 'm']).unwrap(), c);
        }
        for bad in [
            "",
            "200",
            "x:1",
            "u:",
            "u:-1",
            "uu:1",
            "u:ftp://h/",
            "u:/rel",
        ] {
            assert!(Cursor::decode(bad, &['u']).is_err(), "{bad}");
        }
    }

    fn resolver(link: &str, base: Option<&str>) -> Result<url::Url, TargetError> {
        let base = url::Url::parse(base.unwrap_or("https://conf.example.com/")).unwrap();
        Ok(base.join(link.trim_start_matches('/')).unwrap())
    }

    #[test]
    fn paging_follows_a_relative_next_link_that_continues_where_the_page_ended() {
        let links = Links {
            base: Some("https://conf.example.com/".into()),
            next: Some("/rest/api/user/list?limit=2&start=2".into()),
            self_: None,
        };
        let next = next_pos(0, 2, Some(0), Some(2), 2, Some(&links), resolver).unwrap();
        assert_eq!(
            next,
            Some(Pos::Url(
                "https://conf.example.com/rest/api/user/list?limit=2&start=2".into()
            ))
        );
    }

    #[test]
    fn paging_advances_by_size_when_the_server_capped_the_limit() {
        // Asked for 500, got 100, and the server's next link claims start=500.
        let links = Links {
            base: None,
            next: Some("/rest/api/user/list?limit=500&start=500".into()),
            self_: None,
        };
        let next = next_pos(0, 500, Some(0), Some(100), 100, Some(&links), resolver).unwrap();
        assert_eq!(next, Some(Pos::Start(100)));
    }

    #[test]
    fn paging_never_follows_a_link_it_cannot_resolve_and_uses_the_offset() {
        let links = Links {
            base: None,
            next: Some("https://elsewhere.example/rest/api/user/list?start=25".into()),
            self_: None,
        };
        let refuse = |_: &str, _: Option<&str>| -> Result<url::Url, TargetError> {
            Err(TargetError::UnexpectedBody {
                status: 200,
                detail: "points to another host".into(),
            })
        };
        // The sample says size 25 with one result: the results win.
        let next = next_pos(0, 25, Some(0), Some(25), 1, Some(&links), refuse).unwrap();
        assert_eq!(next, Some(Pos::Start(1)));
    }

    #[test]
    fn paging_ends_without_next_and_on_empty_or_short_pages_without_links() {
        let links = Links::default();
        assert_eq!(
            next_pos(0, 2, Some(0), Some(2), 2, Some(&links), resolver).unwrap(),
            None
        );
        assert_eq!(next_pos(0, 2, None, None, 0, None, resolver).unwrap(), None);
        assert_eq!(next_pos(4, 2, None, None, 1, None, resolver).unwrap(), None);
        assert_eq!(
            next_pos(4, 2, None, None, 2, None, resolver).unwrap(),
            Some(Pos::Start(6))
        );
        // An empty page with a next link must not loop.
        let looping = Links {
            next: Some("/rest/api/group?start=0".into()),
            ..Links::default()
        };
        assert_eq!(
            next_pos(0, 2, Some(0), Some(0), 0, Some(&looping), resolver).unwrap(),
            None
        );
    }

    #[test]
    fn error_statuses_refine_into_sentences_naming_the_object() {
        let e = status_error(
            &resp(404, &envelope(404, "No user found with username: ghost")),
            "user `ghost`",
        );
        assert!(
            matches!(&e, TargetError::NotFound { what } if what.contains("user `ghost`") && what.contains("No user found")),
            "{e}"
        );
        let e = status_error(
            &resp(403, &envelope(403, "The user directory is read-only")),
            "disable `bob`",
        );
        assert!(matches!(e, TargetError::ManagedByIdp { .. }), "{e}");
        let e = status_error(&resp(403, &envelope(403, "Not permitted")), "disable `bob`");
        assert!(
            matches!(&e, TargetError::Forbidden { detail } if detail.contains("insufficient permission")),
            "{e}"
        );
        let e = status_error(&resp(402, &envelope(402, "No more licences")), "create `x`");
        assert!(matches!(e, TargetError::NoSeats { .. }), "{e}");
        let e = status_error(&resp(409, &envelope(409, "exists")), "create `x`");
        assert!(matches!(e, TargetError::Conflict { .. }), "{e}");
        let e = status_error(
            &resp(401, "<html><title>Log in</title></html>"),
            "current user",
        );
        assert!(
            matches!(&e, TargetError::Unauthorized { detail } if detail.contains("HTML page")),
            "{e}"
        );
        let e = status_error(&resp(400, &envelope(400, "bad name")), "create `X`");
        assert!(
            matches!(&e, TargetError::Rejected { status: 400, detail } if detail.contains("bad name")),
            "{e}"
        );
        assert!(is_plain_not_found(&resp(404, &envelope(404, "no"))));
        assert!(is_plain_not_found(&resp(404, "")));
        assert!(!is_plain_not_found(&resp(
            404,
            "<html><title>Not Found</title></html>"
        )));
    }

    #[test]
    fn licence_groups_come_from_use_and_administer_grants_to_groups() {
        let perms: Vec<GlobalPermission> = serde_json::from_value(json!([
            {"operation":{"targetType":"application","operationKey":"use"},"subject":{"type":"group","name":"confluence-users"}},
            {"operation":{"targetType":"application","operationKey":"administer"},"subject":{"type":"group","name":"confluence-administrators"}},
            {"operation":{"targetType":"system","operationKey":"administer"},"subject":{"type":"group","name":"sysadmins"}},
            {"operation":{"targetType":"space","operationKey":"create"},"subject":{"type":"group","name":"creators"}},
            {"operation":{"targetType":"application","operationKey":"use"},"subject":{"type":"user","name":"bob"}},
            {"operation":{"targetType":"application","operationKey":"use_unlicensed"},"subject":{"type":"group","name":"guests"}},
            {"subject":{"type":"group","name":"broken"}}
        ]))
        .unwrap();
        let groups: Vec<&str> = perms
            .iter()
            .filter_map(GlobalPermission::licensing_group)
            .collect();
        assert_eq!(
            groups,
            vec!["confluence-users", "confluence-administrators", "sysadmins"]
        );
    }

    #[test]
    fn licence_counts_of_minus_one_or_absent_mean_unlimited() {
        let c: Count = serde_json::from_value(json!({"count": 500})).unwrap();
        assert_eq!(c.value(), Some(500));
        let c: Count = serde_json::from_value(json!({"count": -1})).unwrap();
        assert_eq!(c.value(), None);
        let c: Count = serde_json::from_value(json!({})).unwrap();
        assert_eq!(c.value(), None);
    }

    #[test]
    fn long_tasks_are_done_by_finished_successful_or_a_full_percentage() {
        let running: LongTaskStatus = serde_json::from_value(json!({"id":"task-123","elapsedTime":420,"percentageComplete":40,"successful":false,"messages":[]})).unwrap();
        assert!(!running.is_done());
        let done: LongTaskStatus = serde_json::from_value(json!({"id":"task-123","percentageComplete":100,"successful":true,"finished":true,"messages":[{"translation":"User bob deleted","args":[]}]})).unwrap();
        assert!(done.is_done() && done.succeeded());
        let failed: LongTaskStatus = serde_json::from_value(json!({"percentageComplete":100,"successful":false,"messages":[{"translation":"User has content in a read-only space"}]})).unwrap();
        assert!(failed.is_done() && !failed.succeeded());
        assert_eq!(
            failed.messages_text(),
            "User has content in a read-only space"
        );
    }
}
