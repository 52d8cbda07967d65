//! The HTTP layer the IdP connectors share: authenticated GETs with each vendor's throttling
//! rules (Okta `X-Rate-Limit-Reset` with no `Retry-After` and a configured share of each
//! bucket; Graph `Retry-After` on 429/503; Google 403 `userRateLimitExceeded`/`quotaExceeded`,
//! 429 and 503 with truncated exponential back-off and jitter), retries of transient failures,
//! one token refresh on 401, capped bodies, next links held to the API's origin, and error
//! bodies read into one line whatever the vendor's envelope.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::SourceError;
use super::auth::{Auth, one_line};
use crate::clock::{Clock, SystemClock};

/// Most throttling waits within one call, however short each is.
const MAX_WAITS: u32 = 100;

/// Whose throttling and error conventions a client follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Okta,
    Graph,
    Google,
}

/// Limits and patience of one client.
#[derive(Clone, Debug)]
pub struct IdpSettings {
    /// Longest time one HTTP exchange may take.
    pub timeout: Duration,
    /// Largest response body read.
    pub max_body_bytes: usize,
    /// Attempts for a call that meets 5xx answers, quota errors or connection failures.
    pub max_attempts: u32,
    /// Longest total time one call may wait on rate limits.
    pub max_rate_limit_wait: Duration,
    /// First back-off; doubles each attempt, plus up to as much again in jitter.
    pub initial_backoff: Duration,
    /// Longest single back-off.
    pub max_backoff: Duration,
    /// Okta: the share of each rate-limit bucket idbridge may use; once a bucket's remaining
    /// calls fall to the rest, idbridge waits for the bucket's reset.
    pub budget_share: Option<f64>,
}

impl Default for IdpSettings {
    fn default() -> Self {
        IdpSettings {
            timeout: Duration::from_secs(30),
            max_body_bytes: 64 * 1024 * 1024,
            max_attempts: 5,
            max_rate_limit_wait: Duration::from_secs(120),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(32),
            budget_share: None,
        }
    }
}

impl IdpSettings {
    /// The settings a source's configuration asks for.
    pub fn from_config(cfg: &crate::config::SourceConfig) -> Self {
        IdpSettings {
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
            max_rate_limit_wait: Duration::from_secs(cfg.max_rate_limit_wait_secs),
            ..IdpSettings::default()
        }
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// Parses a JSON body, naming what came instead when it is not JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, SourceError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(SourceError::UnexpectedBody {
                status: self.status,
                detail: "empty body where JSON was expected".into(),
            });
        }
        serde_json::from_slice(&self.body).map_err(|e| SourceError::UnexpectedBody {
            status: self.status,
            detail: format!("{e} (body: {})", describe_body(&self.body)),
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    remaining: u64,
    limit: u64,
    reset_epoch: i64,
}

/// An authenticated client for one IdP API.
pub struct IdpClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    vendor: Vendor,
    settings: IdpSettings,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl std::fmt::Debug for IdpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpClient")
            .field("base", &self.base.as_str())
            .field("vendor", &self.vendor)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// A reqwest client with idbridge's defaults for IdP calls (no redirects, timeouts).
pub fn http_client(settings: &IdpSettings) -> Result<reqwest::Client, SourceError> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("idbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SourceError::Config(format!("cannot build an HTTP client: {e}")))
}

impl IdpClient {
    /// A client for the API at `base`.
    pub fn new(
        http: reqwest::Client,
        base: &str,
        auth: Auth,
        vendor: Vendor,
        settings: IdpSettings,
    ) -> Result<Self, SourceError> {
        let mut base =
            Url::parse(base).map_err(|e| SourceError::Config(format!("base URL `{base}`: {e}")))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        Ok(IdpClient {
            http,
            base,
            auth,
            vendor,
            settings,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// The API base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The authentication in use.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// `path` (relative, may carry a query) under the base URL.
    pub fn endpoint(&self, path: &str) -> Result<Url, SourceError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| SourceError::Config(format!("cannot build a URL for `{path}`: {e}")))
    }

    /// A next link from the API, accepted only on the API's own origin (a link elsewhere
    /// would send idbridge's token to another host).
    pub fn follow(&self, link: &str) -> Result<Url, SourceError> {
        let url = self
            .base
            .join(link)
            .map_err(|e| SourceError::UnexpectedBody {
                status: 200,
                detail: format!("next link `{}` is not a URL: {e}", one_line(link, 200)),
            })?;
        if url.origin() != self.base.origin() {
            return Err(SourceError::UnexpectedBody {
                status: 200,
                detail: format!(
                    "next link points to another origin ({}); not followed",
                    url.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    /// GET `url` and parse a 2xx JSON body; any other status becomes a [`SourceError`].
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        headers: &[(HeaderName, &str)],
    ) -> Result<(T, Response), SourceError> {
        let resp = self.get(url, headers).await?;
        if !(200..300).contains(&resp.status) {
            return Err(self.error_for(&resp));
        }
        Ok((resp.json()?, resp))
    }

    /// GET `url`, waiting out throttling and retrying transient failures. Statuses that are
    /// neither are returned for the caller to interpret.
    pub async fn get(
        &self,
        url: Url,
        headers: &[(HeaderName, &str)],
    ) -> Result<Response, SourceError> {
        let mut waited = Duration::ZERO;
        let mut waits: u32 = 0;
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            self.respect_budget(&url, &mut waited).await?;
            let resp = match self.send_once(&url, headers).await {
                Ok(r) => r,
                Err(e) if e.is_transient() && attempt < self.settings.max_attempts => {
                    tracing::debug!(url.path = url.path(), attempt, error = %e, "IdP unreachable; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.note_bucket(&url, &resp.headers);
            if resp.status == 401
                && !refreshed
                && let Auth::OAuth(cache) = &self.auth
            {
                // An expired or revoked token: fetch a new one once.
                cache.invalidate().await;
                refreshed = true;
                attempt -= 1;
                continue;
            }
            match self.throttled(&resp, attempt) {
                Some(Throttle::Wait(wait)) => {
                    // `Retry-After: 0` is a request to retry now, not a licence to loop: a
                    // wait is at least a tenth of a second, and there are at most 100.
                    let wait = wait.max(Duration::from_millis(100));
                    waits += 1;
                    if waited + wait > self.settings.max_rate_limit_wait || waits > MAX_WAITS {
                        return Err(SourceError::RateLimited {
                            waited,
                            retry_after: wait,
                        });
                    }
                    tracing::debug!(
                        url.path = url.path(),
                        http.status = resp.status,
                        wait_ms = wait.as_millis() as u64,
                        "IdP asked idbridge to wait"
                    );
                    tokio::time::sleep(wait).await;
                    waited += wait;
                    attempt -= 1;
                    continue;
                }
                Some(Throttle::Retry) if attempt < self.settings.max_attempts => {
                    tracing::debug!(
                        url.path = url.path(),
                        http.status = resp.status,
                        attempt,
                        "transient IdP failure; retrying"
                    );
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Some(Throttle::Retry) => {
                    let detail = describe_error(&resp.body);
                    return Err(if resp.status == 429 || resp.status == 403 {
                        SourceError::RateLimited {
                            waited,
                            retry_after: self.backoff(attempt),
                        }
                    } else {
                        SourceError::Unavailable {
                            status: resp.status,
                            attempts: attempt,
                            detail,
                        }
                    });
                }
                None => return Ok(resp),
            }
        }
    }

    /// The error a non-2xx response means.
    pub fn error_for(&self, resp: &Response) -> SourceError {
        let mut detail = describe_error(&resp.body);
        if let Some(www) = resp.header("www-authenticate")
            && www.contains("insufficient_scope")
        {
            let scope = www
                .split(',')
                .find_map(|p| p.trim().strip_prefix("scope=\""))
                .map(|s| s.trim_end_matches('"'))
                .unwrap_or("?");
            detail = format!("the token lacks the scope `{scope}`");
        }
        match resp.status {
            401 => SourceError::Unauthorized { detail },
            403 => SourceError::Forbidden { detail },
            404 => SourceError::NotFound { what: detail },
            s if s >= 500 => SourceError::Unavailable {
                status: s,
                attempts: 1,
                detail,
            },
            s => SourceError::Rejected { status: s, detail },
        }
    }

    async fn send_once(
        &self,
        url: &Url,
        headers: &[(HeaderName, &str)],
    ) -> Result<Response, SourceError> {
        let mut req = self
            .http
            .get(url.clone())
            .header(header::ACCEPT, "application/json");
        let mut value = match &self.auth {
            Auth::Header(secret) => HeaderValue::from_str(secret.expose()),
            Auth::OAuth(cache) => {
                let token = cache.token().await?;
                HeaderValue::from_str(&format!("Bearer {}", token.secret.expose()))
            }
        }
        .map_err(|_| SourceError::Config("the credential contains invalid characters".into()))?;
        value.set_sensitive(true);
        req = req.header(header::AUTHORIZATION, value);
        for (name, v) in headers {
            req = req.header(name.clone(), *v);
        }
        let mut resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                SourceError::Timeout(self.settings.timeout)
            } else {
                SourceError::Transport {
                    detail: format!("{}: {e}", url.origin().ascii_serialization()),
                }
            }
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(len) = resp.content_length()
            && len as usize > self.settings.max_body_bytes
        {
            return Err(SourceError::UnexpectedBody {
                status,
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
                        return Err(SourceError::UnexpectedBody {
                            status,
                            detail: format!(
                                "response exceeds the {} byte limit",
                                self.settings.max_body_bytes
                            ),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(SourceError::Transport {
                        detail: format!("the response body was cut off: {e}"),
                    });
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// How this vendor says "slow down" or "try again".
    fn throttled(&self, resp: &Response, attempt: u32) -> Option<Throttle> {
        let s = resp.status;
        match self.vendor {
            Vendor::Okta => match s {
                // No Retry-After on Okta's management API: wait for the bucket's reset.
                429 => Some(Throttle::Wait(
                    okta_reset_wait(&resp.headers).unwrap_or_else(|| self.backoff(attempt)),
                )),
                500 | 502 | 503 | 504 => Some(Throttle::Retry),
                _ => None,
            },
            Vendor::Graph => match s {
                // Retry-After when Graph sends one (it usually does); back-off otherwise. Both
                // are bounded by `max_rate_limit_wait`.
                429 | 503 | 504 => match retry_after(&resp.headers) {
                    Some(wait) => Some(Throttle::Wait(wait)),
                    None => Some(Throttle::Retry),
                },
                500 | 502 => Some(Throttle::Retry),
                _ => None,
            },
            Vendor::Google => {
                let reason = google_reason(&resp.body);
                let quota = matches!(
                    reason.as_deref(),
                    Some("userRateLimitExceeded" | "quotaExceeded" | "rateLimitExceeded")
                );
                match s {
                    429 => Some(Throttle::Retry),
                    403 if quota => Some(Throttle::Retry),
                    500 | 502 | 503 | 504 => Some(Throttle::Retry),
                    _ => None,
                }
            }
        }
    }

    /// Truncated exponential back-off with full jitter on top.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .settings
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.settings.max_backoff);
        let jitter_ms = (random_u64() % (base.as_millis() as u64 + 1)).min(u64::MAX / 2);
        base + Duration::from_millis(jitter_ms)
    }

    /// The rate-limit bucket a URL counts against: its path with every id-like segment
    /// (anything but a plain lower-case word) replaced by `*`, so `/api/v1/groups/{id}/users`
    /// is one bucket for every group, as Okta counts it.
    fn bucket_key(url: &Url) -> String {
        url.path_segments()
            .into_iter()
            .flatten()
            .map(|seg| {
                if !seg.is_empty() && seg.len() <= 24 && seg.bytes().all(|b| b.is_ascii_lowercase())
                {
                    seg
                } else {
                    "*"
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn note_bucket(&self, url: &Url, headers: &HeaderMap) {
        if self.settings.budget_share.is_none() {
            return;
        }
        let num = |n: &str| -> Option<i64> { headers.get(n)?.to_str().ok()?.trim().parse().ok() };
        if let (Some(limit), Some(remaining), Some(reset)) = (
            num("x-rate-limit-limit"),
            num("x-rate-limit-remaining"),
            num("x-rate-limit-reset"),
        ) {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            buckets.insert(
                Self::bucket_key(url),
                Bucket {
                    remaining: remaining.max(0) as u64,
                    limit: limit.max(0) as u64,
                    reset_epoch: reset,
                },
            );
        }
    }

    /// Okta: once a bucket's remaining calls fall to the share idbridge leaves to others,
    /// wait for the bucket to reset.
    async fn respect_budget(&self, url: &Url, waited: &mut Duration) -> Result<(), SourceError> {
        let Some(share) = self.settings.budget_share else {
            return Ok(());
        };
        let bucket = {
            let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            buckets.get(&Self::bucket_key(url)).copied()
        };
        let Some(b) = bucket else { return Ok(()) };
        let reserve = ((b.limit as f64) * (1.0 - share)).ceil() as u64;
        if b.remaining > reserve {
            return Ok(());
        }
        let now = SystemClock.now().timestamp();
        if b.reset_epoch <= now {
            return Ok(());
        }
        let wait = Duration::from_secs((b.reset_epoch - now).min(3600) as u64)
            + Duration::from_millis(random_u64() % 250);
        if *waited + wait > self.settings.max_rate_limit_wait {
            return Err(SourceError::RateLimited {
                waited: *waited,
                retry_after: wait,
            });
        }
        tracing::debug!(
            url.path = url.path(),
            remaining = b.remaining,
            limit = b.limit,
            wait_ms = wait.as_millis() as u64,
            "keeping within idbridge's share of the rate limit"
        );
        tokio::time::sleep(wait).await;
        *waited += wait;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.remove(&Self::bucket_key(url));
        Ok(())
    }
}

enum Throttle {
    /// Wait this long; not a failed attempt.
    Wait(Duration),
    /// Back off and try again; counts as an attempt.
    Retry,
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// `Retry-After` (seconds or an HTTP date) as the shared HTTP layer reads it, clamped to an
/// hour for IdPs.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    crate::targets::http::retry_after(headers).map(|d| d.min(Duration::from_secs(3600)))
}

/// Okta's `X-Rate-Limit-Reset` (UTC epoch seconds) as a wait from now, at least a second
/// (the reset is rounded down), at most an hour.
pub fn okta_reset_wait(headers: &HeaderMap) -> Option<Duration> {
    let reset: i64 = headers
        .get("x-rate-limit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let secs = (reset - SystemClock.now().timestamp()).clamp(1, 3600);
    Some(Duration::from_secs(secs as u64) + Duration::from_millis(random_u64() % 250))
}

/// Google's `error.errors[0].reason`.
pub fn google_reason(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/error/errors/0/reason")?
        .as_str()
        .map(str::to_owned)
}

/// An error body in one line: Okta `errorCode: errorSummary`, Graph `code: message`, Google
/// `reason: message`, an OAuth `error: error_description`, or a description of what came.
pub fn describe_error(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return describe_body(body);
    };
    let s = |p: &str| v.pointer(p).and_then(Value::as_str);
    if let Some(code) = s("/errorCode") {
        let mut out = format!(
            "{code}: {}",
            one_line(s("/errorSummary").unwrap_or(""), 300)
        );
        if let Some(causes) = v.get("errorCauses").and_then(Value::as_array) {
            for c in causes.iter().take(3) {
                if let Some(t) = c.get("errorSummary").and_then(Value::as_str) {
                    out.push_str(&format!("; {}", one_line(t, 200)));
                }
            }
        }
        return out;
    }
    if let Some(reason) = s("/error/errors/0/reason") {
        return format!(
            "{reason}: {}",
            one_line(s("/error/message").unwrap_or(""), 300)
        );
    }
    if let Some(code) = s("/error/code") {
        return format!(
            "{code}: {}",
            one_line(s("/error/message").unwrap_or(""), 300)
        );
    }
    if let Some(code) = s("/error") {
        return format!(
            "{code}: {}",
            one_line(s("/error_description").unwrap_or(""), 300)
        );
    }
    describe_body(body)
}

/// What a body that is not the expected JSON looks like, in a few words.
pub fn describe_body(body: &[u8]) -> String {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &body[i..]);
    if start.is_empty() {
        return "an empty body".into();
    }
    if start.first() == Some(&b'<') {
        return "an HTML page (a proxy or login page?)".into();
    }
    format!(
        "{} bytes starting `{}`",
        body.len(),
        one_line(&String::from_utf8_lossy(&start[..start.len().min(80)]), 80)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelopes_of_each_vendor_read_into_one_line() {
        let okta = br#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests.","errorLink":"E0000047","errorId":"x","errorCauses":[]}"#;
        assert_eq!(
            describe_error(okta),
            "E0000047: API call exceeded rate limit due to too many requests."
        );
        let graph = br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist","innerError":{}}}"#;
        assert_eq!(
            describe_error(graph),
            "Request_ResourceNotFound: Resource 'x' does not exist"
        );
        let google = br#"{"error":{"code":403,"message":"Quota exceeded","errors":[{"message":"Quota exceeded","domain":"usageLimits","reason":"userRateLimitExceeded"}],"status":"PERMISSION_DENIED"}}"#;
        assert_eq!(
            describe_error(google),
            "userRateLimitExceeded: Quota exceeded"
        );
        assert_eq!(
            google_reason(google).as_deref(),
            Some("userRateLimitExceeded")
        );
        let oauth = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        assert_eq!(
            describe_error(oauth),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(describe_error(b"  "), "an empty body");
        assert!(describe_error(b"<html>").contains("HTML"));
    }

    #[test]
    fn rate_limit_buckets_ignore_ids_in_the_path() {
        let key = |u: &str| IdpClient::bucket_key(&Url::parse(u).unwrap());
        assert_eq!(
            key("https://acme.okta.com/api/v1/groups/00g1abc/users?limit=200"),
            key("https://acme.okta.com/api/v1/groups/00g2xyz/users")
        );
        assert_eq!(
            key("https://acme.okta.com/api/v1/users/00u1"),
            "api/*/users/*"
        );
        assert_ne!(
            key("https://acme.okta.com/api/v1/users"),
            key("https://acme.okta.com/api/v1/logs")
        );
    }

    #[test]
    fn next_links_to_another_origin_are_refused() {
        let http = http_client(&IdpSettings::default()).unwrap();
        let c = IdpClient::new(
            http,
            "https://acme.okta.com",
            Auth::Header(crate::config::Secret::new("SSWS x")),
            Vendor::Okta,
            IdpSettings::default(),
        )
        .unwrap();
        assert!(
            c.follow("https://acme.okta.com/api/v1/users?after=1")
                .is_ok()
        );
        assert!(c.follow("/api/v1/users?after=1").is_ok());
        let err = c.follow("https://evil.example/api/v1/users").unwrap_err();
        assert!(err.to_string().contains("another origin"), "{err}");
    }
}
