//! The HTTP layer every connector shares: credentials, base URLs with context paths, next-page
//! links (absolute or relative, never to another host), bounded waits on rate limits
//! (`Retry-After`, `X-RateLimit-*`), retries of transient failures, capped response bodies,
//! and error bodies read defensively (JSON envelopes of each product, HTML pages, empty or
//! truncated bodies).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::TargetError;
use crate::clock::{Clock, SystemClock};
use crate::config::{Secret, TargetConfig};

/// How idbridge authenticates to a target.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`: a DC personal access token or an Atlassian API key.
    Bearer(Secret),
    /// `Authorization: Basic …`: a user and password (or API token).
    Basic { user: String, password: Secret },
}

/// Limits and patience of one client.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Longest time one HTTP exchange may take.
    pub timeout: Duration,
    /// Largest response body read; longer ones are an error.
    pub max_body_bytes: usize,
    /// Attempts for a call that meets 5xx answers or connection failures.
    pub max_attempts: u32,
    /// Longest total time one call may spend waiting on rate limits before it gives up.
    pub max_rate_limit_wait: Duration,
    /// First back-off after a transient failure; doubles each attempt.
    pub initial_backoff: Duration,
    /// Client-side pacing: at most this many requests per second (none: no pacing).
    pub max_requests_per_second: Option<f64>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_body_bytes: 32 * 1024 * 1024,
            max_attempts: 4,
            max_rate_limit_wait: Duration::from_secs(120),
            initial_backoff: Duration::from_millis(200),
            max_requests_per_second: None,
        }
    }
}

impl HttpSettings {
    /// The settings a target's configuration asks for.
    pub fn from_config(cfg: &TargetConfig) -> Self {
        Self {
            timeout: Duration::from_secs(cfg.timeout_secs),
            max_rate_limit_wait: Duration::from_secs(cfg.max_rate_limit_wait_secs),
            max_requests_per_second: cfg.max_requests_per_second,
            ..Self::default()
        }
    }
}

impl Credentials {
    /// The credentials a target's configuration names: the token if set, else Basic.
    pub fn from_config(name: &str, cfg: &TargetConfig) -> Result<Self, TargetError> {
        if let Some(token) = &cfg.token {
            return Ok(Credentials::Bearer(token.clone()));
        }
        match (&cfg.username, &cfg.password) {
            (Some(user), Some(password)) => Ok(Credentials::Basic {
                user: user.clone(),
                password: password.clone(),
            }),
            _ => Err(TargetError::Config(format!(
                "targets.{name}: no credentials (set `token`, or `username` and `password`)"
            ))),
        }
    }
}

/// A response read whole (up to the body cap).
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body parsed as `T`, with a clear error for HTML, empty, truncated or
    /// wrongly shaped bodies.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, TargetError> {
        parse_json(self.status.as_u16(), &self.headers, &self.body)
    }

    /// What the error body says, in one line.
    pub fn detail(&self) -> String {
        describe_body(&self.headers, &self.body)
    }

    /// The generic error for a non-success status; connectors refine it where their product
    /// gives a status a specific meaning.
    pub fn error(&self) -> TargetError {
        let detail = self.detail();
        match self.status.as_u16() {
            401 => TargetError::Unauthorized { detail },
            402 => TargetError::NoSeats { detail },
            403 => TargetError::Forbidden { detail },
            404 => TargetError::NotFound { what: detail },
            409 => TargetError::Conflict { detail },
            status @ 300..=399 => TargetError::UnexpectedBody {
                status,
                detail: format!(
                    "redirected to {} (an SSO or login page?); idbridge does not follow redirects",
                    self.headers
                        .get(header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("an unnamed location")
                ),
            },
            status @ 500..=599 => TargetError::Unavailable {
                status,
                attempts: 1,
                detail,
            },
            status => TargetError::Rejected { status, detail },
        }
    }
}

/// A client for one target's base URL (context path included).
pub struct RemoteClient {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    settings: HttpSettings,
    /// Earliest instant the next request may go out (pacing and exhausted rate-limit buckets).
    not_before: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl RemoteClient {
    /// A client for `base_url` (e.g. `https://wiki.example.com/confluence`).
    pub fn new(
        base_url: &str,
        credentials: Credentials,
        settings: HttpSettings,
    ) -> Result<Self, TargetError> {
        let mut base = Url::parse(base_url)
            .map_err(|e| TargetError::Config(format!("base URL `{base_url}` is invalid: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(TargetError::Config(format!(
                "base URL `{base_url}` must be http or https"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(TargetError::Config(
                "base URL must not carry credentials; configure them separately".into(),
            ));
        }
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("idbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TargetError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            credentials,
            settings,
            not_before: Mutex::new(None),
        })
    }

    /// The base URL, always ending in `/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The settings this client runs with.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// `path` (with any query) under the base URL: `rest/api/user` or `/rest/api/user` both
    /// land under the context path.
    pub fn endpoint(&self, path: &str) -> Result<Url, TargetError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| TargetError::Config(format!("cannot build URL for `{path}`: {e}")))
    }

    /// Resolves a next-page link a target returned. Absolute links must stay on the base
    /// URL's origin (credentials never go elsewhere); relative ones are taken against
    /// `links_base` (DC `_links.base`, which includes the context path) or the base URL.
    pub fn resolve_link(&self, link: &str, links_base: Option<&str>) -> Result<Url, TargetError> {
        let bad = |why: String| TargetError::UnexpectedBody {
            status: 200,
            detail: format!("next-page link `{}` {why}", truncate(link, 200)),
        };
        let url = match Url::parse(link) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                let anchor = match links_base {
                    Some(b) if !b.is_empty() => {
                        let mut b =
                            Url::parse(b).map_err(|e| bad(format!("has a bad base: {e}")))?;
                        if !b.path().ends_with('/') {
                            let p = format!("{}/", b.path());
                            b.set_path(&p);
                        }
                        b
                    }
                    _ => self.base.clone(),
                };
                if link.starts_with('/') {
                    // Relative to the base, not to the host root: DC links omit the context path.
                    let base_path = anchor.path().trim_end_matches('/');
                    let joined =
                        if link.starts_with(&format!("{base_path}/")) && !base_path.is_empty() {
                            link.to_owned()
                        } else {
                            format!("{base_path}{link}")
                        };
                    anchor
                        .join(&joined)
                        .map_err(|e| bad(format!("cannot be resolved: {e}")))?
                } else {
                    anchor
                        .join(link)
                        .map_err(|e| bad(format!("cannot be resolved: {e}")))?
                }
            }
            Err(e) => return Err(bad(format!("is not a URL: {e}"))),
        };
        if url.origin() != self.base.origin() {
            return Err(bad(format!(
                "points to another host than {}; not followed",
                self.base.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// Sends a request and reads the whole response. 429 and 503 answers are waited out
    /// (bounded by `max_rate_limit_wait`), 5xx answers and connection failures are retried
    /// with exponential back-off up to `max_attempts` (connection failures only for methods
    /// that are safe to repeat). Any other status is returned for the caller to interpret.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Body>,
    ) -> Result<Response, TargetError> {
        let started = Instant::now();
        let mut waited = Duration::ZERO;
        let mut attempt: u32 = 0;
        let repeatable = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        loop {
            attempt += 1;
            self.pace().await;
            let result = self
                .send_once(method.clone(), url.clone(), body.as_ref())
                .await;
            match result {
                Ok(resp) => {
                    self.note_rate_headers(&resp.headers);
                    let status = resp.status.as_u16();
                    if status == 429 || (status == 503 && retry_after(&resp.headers).is_some()) {
                        let wait = retry_after(&resp.headers)
                            .or_else(|| rate_limit_reset(&resp.headers))
                            .unwrap_or_else(|| self.backoff(attempt));
                        if waited + wait > self.settings.max_rate_limit_wait {
                            return Err(TargetError::RateLimited {
                                waited,
                                retry_after: wait,
                            });
                        }
                        tracing::debug!(
                            http.method = %method,
                            url.path = url.path(),
                            http.status = status,
                            wait_ms = wait.as_millis() as u64,
                            "target asked idbridge to wait"
                        );
                        tokio::time::sleep(wait).await;
                        waited += wait;
                        attempt -= 1; // waiting out a limit is not a failed attempt
                        continue;
                    }
                    if matches!(status, 500 | 502 | 503 | 504)
                        && attempt < self.settings.max_attempts
                    {
                        tracing::debug!(
                            http.method = %method,
                            url.path = url.path(),
                            http.status = status,
                            attempt,
                            "transient failure from target; retrying"
                        );
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    if (500..600).contains(&status) {
                        return Err(TargetError::Unavailable {
                            status,
                            attempts: attempt,
                            detail: resp.detail(),
                        });
                    }
                    tracing::debug!(
                        http.method = %method,
                        url.path = url.path(),
                        http.status = status,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "target call"
                    );
                    return Ok(resp);
                }
                Err(e)
                    if e.is_transient() && repeatable && attempt < self.settings.max_attempts =>
                {
                    tracing::debug!(
                        http.method = %method,
                        url.path = url.path(),
                        attempt,
                        error = %e,
                        "cannot reach target; retrying"
                    );
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// GET `url` and parse a 2xx JSON body; other statuses become [`Response::error`].
    pub async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, TargetError> {
        let resp = self.send(Method::GET, url, None).await?;
        if !resp.is_success() {
            return Err(resp.error());
        }
        resp.json()
    }

    async fn send_once(
        &self,
        method: Method,
        url: Url,
        body: Option<&Body>,
    ) -> Result<Response, TargetError> {
        let mut req = self
            .http
            .request(method, url)
            .header(header::ACCEPT, "application/json")
            // Confluence DC rejects state-changing REST calls without this (XSRF check).
            .header("X-Atlassian-Token", "no-check");
        req = match &self.credentials {
            Credentials::Bearer(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| TargetError::Config("token contains invalid characters".into()))?;
                value.set_sensitive(true);
                req.header(header::AUTHORIZATION, value)
            }
            Credentials::Basic { user, password } => req.basic_auth(user, Some(password.expose())),
        };
        req = match body {
            None => req,
            Some(Body::Json(v)) => req.json(v),
            Some(Body::Xml(text)) => req
                .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
                .body(text.clone()),
        };
        let mut resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if let Some(len) = resp.content_length()
            && len as usize > self.settings.max_body_bytes
        {
            return Err(TargetError::UnexpectedBody {
                status: status.as_u16(),
                detail: format!(
                    "response of {len} bytes exceeds the {} byte limit",
                    self.settings.max_body_bytes
                ),
            });
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.settings.max_body_bytes {
                        return Err(TargetError::UnexpectedBody {
                            status: status.as_u16(),
                            detail: format!(
                                "response exceeds the {} byte limit",
                                self.settings.max_body_bytes
                            ),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if status.is_success() => {
                    return Err(TargetError::UnexpectedBody {
                        status: status.as_u16(),
                        detail: format!("response body was cut off: {}", e.without_url()),
                    });
                }
                // An error answer whose body breaks off still tells its status.
                Err(_) => break,
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> TargetError {
        if e.is_timeout() {
            TargetError::Timeout(self.settings.timeout)
        } else {
            let e = e.without_url();
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                source = s.source();
            }
            TargetError::Transport { detail }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.initial_backoff;
        let factor = 1u32 << attempt.saturating_sub(1).min(6);
        let wait = base * factor;
        // Up to 25 % jitter so that several workers do not retry in step.
        let jitter_ms = (wait.as_millis() as u64 / 4).max(1);
        let mut bytes = [0u8; 8];
        // Without randomness the back-off is merely unjittered, never wrong.
        let random = getrandom::fill(&mut bytes).map_or(0, |()| u64::from_le_bytes(bytes));
        wait + Duration::from_millis(random % jitter_ms)
    }

    /// Waits until the next request may go out, then reserves the following slot.
    async fn pace(&self) {
        let wait = {
            let now = Instant::now();
            let mut guard = self.not_before.lock().unwrap_or_else(|p| p.into_inner());
            let start = guard.map_or(now, |nb| nb.max(now));
            let gap = self
                .settings
                .max_requests_per_second
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r))
                .unwrap_or(Duration::ZERO);
            *guard = Some(start + gap);
            start.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// An exhausted DC bucket (`X-RateLimit-Remaining: 0`) holds the next request back until
    /// it refills, so that a well-behaved client does not collect 429s.
    fn note_rate_headers(&self, headers: &HeaderMap) {
        let remaining = header_u64(headers, "x-ratelimit-remaining");
        if remaining != Some(0) {
            return;
        }
        let interval = header_u64(headers, "x-ratelimit-interval-seconds");
        let fill = header_u64(headers, "x-ratelimit-fillrate");
        let wait = match (interval, fill) {
            (Some(i), Some(f)) if f > 0 => Duration::from_secs_f64(i as f64 / f as f64),
            _ => return,
        };
        let wait = wait.min(self.settings.max_rate_limit_wait);
        let mut guard = self.not_before.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + wait;
        if guard.is_none_or(|nb| nb < until) {
            *guard = Some(until);
        }
    }
}

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    Json(Value),
    Xml(String),
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Retry-After` as seconds or an HTTP date, clamped to a day (a blocked DC user is told
/// `9223372036854775807`).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(86_400)));
    }
    wait_until(chrono::DateTime::parse_from_rfc2822(text).ok()?)
}

/// The wait from now until `when`: zero if it has passed, at most a day.
fn wait_until(when: chrono::DateTime<chrono::FixedOffset>) -> Option<Duration> {
    let delta = when.with_timezone(&chrono::Utc) - SystemClock.now();
    Some(
        delta
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(86_400)),
    )
}

/// Atlassian Cloud's `X-RateLimit-Reset` (an ISO-8601 instant) as a wait from now.
pub fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    wait_until(chrono::DateTime::parse_from_rfc3339(text).ok()?)
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &body[i..]);
    start.first() == Some(&b'<')
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Parses a JSON body, naming what came instead when it is not JSON.
pub fn parse_json<T: DeserializeOwned>(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, TargetError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(TargetError::UnexpectedBody {
            status,
            detail: "empty body where JSON was expected".into(),
        });
    }
    if looks_like_html(body) || content_type(headers).contains("html") {
        return Err(TargetError::UnexpectedBody {
            status,
            detail: format!(
                "an HTML page came back where JSON was expected ({}); is the base URL right, or \
                 is a login page or proxy in the way?",
                html_title(body).unwrap_or_else(|| "untitled".into())
            ),
        });
    }
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_eof() {
            "JSON body is truncated"
        } else if e.is_syntax() {
            "body is not valid JSON"
        } else {
            "JSON body has an unexpected shape"
        };
        TargetError::UnexpectedBody {
            status,
            detail: format!("{what}: {e}"),
        }
    })
}

fn html_title(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    let lower = text.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let title = text[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then(|| format!("title \"{}\"", truncate(&title, 120)))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max).collect();
        s.push('…');
        s
    }
}

/// One line describing an error body: the message of a Confluence DC envelope, Atlassian
/// admin `errors[]`, a proxy `{code,message}`, a Crowd `{reason,message}`, a SCIM error, an
/// HTML page's title, or the body's start.
pub fn describe_body(headers: &HeaderMap, body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return "empty body".into();
    }
    if looks_like_html(body) || content_type(headers).contains("html") {
        return format!(
            "HTML page ({})",
            html_title(body).unwrap_or_else(|| "untitled".into())
        );
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
        return format!("unreadable body: {}", truncate(text.trim(), 200));
    };
    describe_json_error(&value)
        .map(|s| truncate(&s, 500))
        .unwrap_or_else(|| truncate(&value.to_string(), 300))
}

fn describe_json_error(value: &Value) -> Option<String> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    // Atlassian admin APIs: {"errors":[{"code":"ADMIN-404-8","title":…,"detail":…}]}
    if let Some(errors) = value.get("errors").and_then(Value::as_array)
        && !errors.is_empty()
    {
        let parts: Vec<String> = errors
            .iter()
            .take(5)
            .map(|e| {
                let code = s(e, "code");
                let text = s(e, "detail")
                    .or_else(|| s(e, "title"))
                    .or_else(|| s(e, "message"))
                    .unwrap_or_default();
                match code {
                    Some(c) => format!("{c}: {text}"),
                    None => text,
                }
            })
            .collect();
        return Some(parts.join("; "));
    }
    // Confluence DC envelope, Crowd {reason,message}, proxy {code,message}, SCIM {detail}.
    let message = s(value, "message").or_else(|| s(value, "detail"));
    let reason = s(value, "reason").or_else(|| s(value, "scimType"));
    match (reason, message) {
        (Some(r), Some(m)) => Some(format!("{r}: {m}")),
        (None, Some(m)) => Some(m),
        (Some(r), None) => Some(r),
        (None, None) => None,
    }
}

/// An error code carried in an Atlassian admin error body (`ADMIN-403-5`), if any.
pub fn atlassian_error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("errors")?
        .as_array()?
        .iter()
        .find_map(|e| e.get("code")?.as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> RemoteClient {
        RemoteClient::new(
            base,
            Credentials::Bearer(Secret::new("t")),
            HttpSettings::default(),
        )
        .unwrap()
    }

    #[test]
    fn endpoints_land_under_the_context_path() {
        let c = client("http://h:8090/confluence");
        assert_eq!(
            c.endpoint("/rest/api/user?username=bob").unwrap().as_str(),
            "http://h:8090/confluence/rest/api/user?username=bob"
        );
        assert_eq!(
            c.endpoint("rest/api/group").unwrap().as_str(),
            "http://h:8090/confluence/rest/api/group"
        );
    }

    #[test]
    fn relative_next_links_join_the_links_base_and_absolute_ones_stay_on_the_origin() {
        let c = client("http://h:8090/confluence");
        let rel = c
            .resolve_link(
                "/rest/api/group?limit=200&start=200",
                Some("http://h:8090/confluence"),
            )
            .unwrap();
        assert_eq!(
            rel.as_str(),
            "http://h:8090/confluence/rest/api/group?limit=200&start=200"
        );
        let rel_no_base = c.resolve_link("/rest/api/group?start=2", None).unwrap();
        assert_eq!(
            rel_no_base.as_str(),
            "http://h:8090/confluence/rest/api/group?start=2"
        );
        let already = c
            .resolve_link("/confluence/rest/api/group?start=2", None)
            .unwrap();
        assert_eq!(
            already.as_str(),
            "http://h:8090/confluence/rest/api/group?start=2"
        );
        let abs = c
            .resolve_link("http://h:8090/confluence/rest/api/user/list?start=50", None)
            .unwrap();
        assert_eq!(abs.path(), "/confluence/rest/api/user/list");
        let err = c
            .resolve_link("https://evil.example/rest/api/user/list", None)
            .unwrap_err();
        assert!(err.to_string().contains("another host"), "{err}");
    }

    #[test]
    fn base_urls_with_credentials_or_odd_schemes_are_refused() {
        let creds = || Credentials::Bearer(Secret::new("t"));
        assert!(RemoteClient::new("ftp://h/", creds(), HttpSettings::default()).is_err());
        assert!(RemoteClient::new("http://u:p@h/", creds(), HttpSettings::default()).is_err());
        assert!(RemoteClient::new("not a url", creds(), HttpSettings::default()).is_err());
    }

    #[test]
    fn error_bodies_of_every_product_read_as_one_line() {
        let h = HeaderMap::new();
        let dc = br#"{"statusCode":404,"data":{"authorized":false,"valid":true,"errors":[],"successful":false},"message":"No user with username: bob","reason":"Not Found"}"#;
        assert_eq!(
            describe_body(&h, dc),
            "Not Found: No user with username: bob"
        );
        let cloud = br#"{"errors":[{"id":"x","status":"403","code":"ADMIN-403-5","title":"Forbidden","detail":"group is synced"}]}"#;
        assert_eq!(describe_body(&h, cloud), "ADMIN-403-5: group is synced");
        assert_eq!(atlassian_error_code(cloud).as_deref(), Some("ADMIN-403-5"));
        let crowd = br#"{"reason":"USER_NOT_FOUND","message":"User <bob> does not exist"}"#;
        assert_eq!(
            describe_body(&h, crowd),
            "USER_NOT_FOUND: User <bob> does not exist"
        );
        let html = b"<!DOCTYPE html><html><head><title>Log in - Confluence</title></head></html>";
        assert_eq!(
            describe_body(&h, html),
            "HTML page (title \"Log in - Confluence\")"
        );
        assert_eq!(describe_body(&h, b"  "), "empty body");
    }

    #[test]
    fn non_json_bodies_give_specific_errors() {
        let h = HeaderMap::new();
        let html = parse_json::<Value>(200, &h, b"<html><title>Log in</title></html>").unwrap_err();
        assert!(html.to_string().contains("HTML page"), "{html}");
        let cut = parse_json::<Value>(200, &h, br#"{"results":[{"a":1},"#).unwrap_err();
        assert!(cut.to_string().contains("truncated"), "{cut}");
        let empty = parse_json::<Value>(200, &h, b"").unwrap_err();
        assert!(empty.to_string().contains("empty body"), "{empty}");
    }

    #[test]
    fn retry_after_is_clamped_for_blocked_users() {
        let mut h = HeaderMap::new();
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("9223372036854775807"),
        );
        // Too large for u64 parse? It fits in u64; either way the wait is at most a day.
        assert!(retry_after(&h).unwrap() <= Duration::from_secs(86_400));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
    }
}
