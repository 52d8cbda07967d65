//! Authentication of SCIM clients: the bearer tokens IdPs present on `/scim/v2/{source}`.
//!
//! This module owns the token format and its hashing ([`token`]), issuing tokens
//! ([`issue_token`]), and the request-time check ([`ScimAuthenticator`]): parse the
//! `Authorization` header, find the token by its public prefix, compare the secret's hash in
//! constant time, refuse revoked and expired tokens and tokens of another source, apply a
//! per-token rate limit, and record when each token was last used (at most once a minute).
//! Mapping [`AuthError`] to HTTP responses is the HTTP layer's job; [`AuthError::status`]
//! says which status each deserves.
//!
//! Secrets never reach a log, an error or a `Debug` form; log lines carry only the public
//! prefix (`token.prefix`) and the source name (`source.name`).

mod rate_limit;
pub mod token;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::SourceId;
use crate::store::{Store, StoreError};

use rate_limit::RateLimiter;
pub use token::{
    BadLifetime, GeneratedToken, IssuedToken, NewScimToken, RandomUnavailable, ScimToken,
    SecretHash, TokenLifetime, TokenStatus,
};

/// How long a looked-up token is reused before the store is asked again; revocation takes
/// effect within this time.
pub const CACHE_TTL: TimeDelta = TimeDelta::seconds(5);

/// How often, at most, a token's `last_used_at` is written.
pub const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// Cache and last-used maps are swept of stale entries once they hold this many.
const SWEEP_AT: usize = 256;

/// Who is calling: a SCIM client authenticated by a token of `source_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimPrincipal {
    /// The source the token belongs to, and the `{source}` in the request path.
    pub source_id: SourceId,
    /// That source's name.
    pub source_name: String,
    /// The token's row id.
    pub token_id: Uuid,
    /// The token's public prefix.
    pub token_prefix: String,
}

/// Why a request was not authenticated. Each message is safe to send to the client and never
/// contains the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("authentication required: send `Authorization: Bearer <token>`")]
    Missing,
    /// The header is not `Bearer <token>` or the token does not have the token format.
    #[error("malformed bearer token")]
    Malformed,
    /// No such token, or the secret does not match.
    #[error("invalid bearer token")]
    Unknown,
    /// The token was revoked.
    #[error("bearer token has been revoked")]
    Revoked,
    /// The token's expiry has passed.
    #[error("bearer token has expired")]
    Expired,
    /// A valid token of another source; answered 404 so that other sources stay invisible.
    #[error("not found")]
    WrongSource,
    /// Too many requests with this token.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds to wait (at least 1), for `Retry-After`.
        retry_after_secs: u64,
    },
    /// The store could not be asked; the cause is for logs, not for the client.
    #[error("authentication is temporarily unavailable")]
    Store(#[source] StoreError),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(e)
    }
}

impl AuthError {
    /// The HTTP status this failure deserves: 401 for missing or bad credentials, 404 for a
    /// token of another source, 429 when rate limited, 503 when the store is unavailable.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AuthError::Missing
            | AuthError::Malformed
            | AuthError::Unknown
            | AuthError::Revoked
            | AuthError::Expired => StatusCode::UNAUTHORIZED,
            AuthError::WrongSource => StatusCode::NOT_FOUND,
            AuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::Unknown => "unknown",
            AuthError::Revoked => "revoked",
            AuthError::Expired => "expired",
            AuthError::WrongSource => "wrong_source",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::Store(_) => "store",
        }
    }
}

/// What can go wrong issuing a token.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No random bytes.
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
    /// The store refused the token.
    #[error("cannot store the token: {0}")]
    Store(#[from] StoreError),
}

/// Issues a token for `source_id`, valid until `expires_at` (`None`: forever), and stores
/// its hash. Returns the whole token, to show once, and the stored record. A prefix that
/// happens to be taken already is drawn again.
pub async fn issue_token(
    store: &Store,
    source_id: SourceId,
    label: Option<String>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(IssuedToken, ScimToken), IssueError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let generated = token::generate()?;
        let new = NewScimToken {
            source_id,
            prefix: generated.prefix,
            secret_hash: generated.secret_hash,
            label: label.clone(),
            expires_at,
        };
        match store.insert_scim_token(&new).await {
            Ok(record) => return Ok((generated.token, record)),
            Err(StoreError::Conflict(_)) if attempts < 5 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Checks SCIM bearer tokens. Cheap to clone; clones share the cache and the rate limits.
#[derive(Clone)]
pub struct ScimAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    limiter: RateLimiter<Uuid>,
    /// Tokens looked up recently, by prefix, with their source's name.
    cache: Mutex<HashMap<String, Cached>>,
    /// When each token's `last_used_at` was last written by this process.
    touched: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

#[derive(Clone)]
struct Cached {
    token: ScimToken,
    source_name: String,
    fetched_at: DateTime<Utc>,
}

impl fmt::Debug for ScimAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimAuthenticator").finish_non_exhaustive()
    }
}

/// Whether something recorded at `then` is less than `ttl` old at `now`. A clock that went
/// backwards makes it stale.
fn fresh(then: DateTime<Utc>, now: DateTime<Utc>, ttl: TimeDelta) -> bool {
    let age = now.signed_duration_since(then);
    age >= TimeDelta::zero() && age < ttl
}

impl ScimAuthenticator {
    /// An authenticator over `store`, reading time from `clock`, allowing each token
    /// `rate_per_second` requests per second sustained and `burst` at once (zeros count as 1).
    pub fn new(store: Store, clock: SharedClock, rate_per_second: u32, burst: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                limiter: RateLimiter::new(rate_per_second, burst),
                cache: Mutex::new(HashMap::new()),
                touched: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Authenticates one request to `/scim/v2/{source_name}`. `authorization` is the raw
    /// `Authorization` header value, if any. Failures are logged (without the secret).
    pub async fn authenticate(
        &self,
        source_name: &str,
        authorization: Option<&str>,
    ) -> Result<ScimPrincipal, AuthError> {
        let header = authorization.map(str::trim).filter(|h| !h.is_empty());
        let Some(header) = header else {
            return Err(log_failure(AuthError::Missing, None, source_name));
        };
        let Some((prefix, secret)) = bearer_token(header).and_then(token::parse) else {
            return Err(log_failure(AuthError::Malformed, None, source_name));
        };
        self.check(source_name, prefix, secret)
            .await
            .map_err(|e| log_failure(e, Some(prefix), source_name))
    }

    async fn check(
        &self,
        source_name: &str,
        prefix: &str,
        secret: &str,
    ) -> Result<ScimPrincipal, AuthError> {
        let now = self.inner.clock.now();
        let Some(found) = self.lookup(prefix, now).await? else {
            return Err(AuthError::Unknown);
        };
        if !found.token.secret_hash.matches(secret) {
            return Err(AuthError::Unknown);
        }
        match found.token.status(now) {
            TokenStatus::Active => {}
            TokenStatus::Revoked => return Err(AuthError::Revoked),
            TokenStatus::Expired => return Err(AuthError::Expired),
        }
        // Limit before the source check, so a token's budget covers every path it tries.
        self.inner
            .limiter
            .check(found.token.id, Instant::now())
            .map_err(|retry_after_secs| AuthError::RateLimited { retry_after_secs })?;
        if found.source_name != source_name {
            return Err(AuthError::WrongSource);
        }
        self.touch_if_due(&found.token, now).await;
        Ok(ScimPrincipal {
            source_id: found.token.source_id,
            source_name: found.source_name,
            token_id: found.token.id,
            token_prefix: found.token.prefix,
        })
    }

    /// The token with `prefix` and its source's name, from the cache if looked up less than
    /// [`CACHE_TTL`] ago, else from the store.
    async fn lookup(&self, prefix: &str, now: DateTime<Utc>) -> Result<Option<Cached>, StoreError> {
        {
            let cache = self.lock_cache();
            if let Some(hit) = cache.get(prefix)
                && fresh(hit.fetched_at, now, CACHE_TTL)
            {
                return Ok(Some(hit.clone()));
            }
        }
        let store = &self.inner.store;
        let Some(token) = store.scim_token_by_prefix(prefix).await? else {
            self.lock_cache().remove(prefix);
            return Ok(None);
        };
        let Some(source) = store
            .sources()
            .await?
            .into_iter()
            .find(|s| s.id == token.source_id)
        else {
            return Ok(None);
        };
        let entry = Cached {
            token,
            source_name: source.name,
            fetched_at: now,
        };
        let mut cache = self.lock_cache();
        if cache.len() >= SWEEP_AT {
            cache.retain(|_, c| fresh(c.fetched_at, now, CACHE_TTL));
        }
        cache.insert(prefix.to_owned(), entry.clone());
        Ok(Some(entry))
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `last_used_at` unless this process wrote it less than [`TOUCH_EVERY`] ago. A
    /// failed write is logged and does not fail the request.
    async fn touch_if_due(&self, token: &ScimToken, now: DateTime<Utc>) {
        {
            let mut touched = self
                .inner
                .touched
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if touched
                .get(&token.id)
                .is_some_and(|at| fresh(*at, now, TOUCH_EVERY))
            {
                return;
            }
            if touched.len() >= SWEEP_AT {
                touched.retain(|_, at| fresh(*at, now, TOUCH_EVERY));
            }
            touched.insert(token.id, now);
        }
        if let Err(e) = self.inner.store.touch_scim_token(token.id, now).await {
            tracing::warn!(
                token.prefix = %token.prefix,
                error = %e,
                "cannot record when a SCIM token was last used"
            );
        }
    }
}

/// The token in `Bearer <token>`; the scheme is case-insensitive.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(|c: char| c.is_ascii_whitespace())?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Logs why a request was refused, with the public prefix when the token had the token
/// shape, and returns the error.
fn log_failure(error: AuthError, prefix: Option<&str>, source_name: &str) -> AuthError {
    let source_name = source_name.escape_debug();
    let reason = error.reason();
    let prefix = prefix.unwrap_or("");
    match &error {
        AuthError::Missing | AuthError::Malformed | AuthError::Unknown => tracing::info!(
            token.prefix = prefix,
            source.name = %source_name,
            reason,
            "SCIM authentication failed"
        ),
        AuthError::RateLimited { retry_after_secs } => tracing::info!(
            token.prefix = prefix,
            source.name = %source_name,
            reason,
            retry_after_secs,
            "SCIM request rate limited"
        ),
        AuthError::Revoked | AuthError::Expired | AuthError::WrongSource => tracing::warn!(
            token.prefix = prefix,
            source.name = %source_name,
            reason,
            "SCIM authentication failed"
        ),
        AuthError::Store(e) => tracing::warn!(
            token.prefix = prefix,
            source.name = %source_name,
            reason,
            error = %e,
            "SCIM authentication failed: store unavailable"
        ),
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_refused() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER\tabc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Béarer abc"), None);
    }

    #[test]
    fn entries_are_fresh_only_within_their_time_to_live_and_never_from_the_future() {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid");
        assert!(fresh(t, t, CACHE_TTL));
        assert!(fresh(t, t + TimeDelta::milliseconds(4999), CACHE_TTL));
        assert!(!fresh(t, t + CACHE_TTL, CACHE_TTL));
        assert!(!fresh(t, t - TimeDelta::seconds(1), CACHE_TTL));
    }

    #[test]
    fn error_messages_are_client_safe_and_map_to_the_documented_statuses() {
        use axum::http::StatusCode;
        let cases = [
            (AuthError::Missing, StatusCode::UNAUTHORIZED),
            (AuthError::Malformed, StatusCode::UNAUTHORIZED),
            (AuthError::Unknown, StatusCode::UNAUTHORIZED),
            (AuthError::Revoked, StatusCode::UNAUTHORIZED),
            (AuthError::Expired, StatusCode::UNAUTHORIZED),
            (AuthError::WrongSource, StatusCode::NOT_FOUND),
            (
                AuthError::RateLimited {
                    retry_after_secs: 2,
                },
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                AuthError::Store(StoreError::Corrupt("secret detail".into())),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            let text = error.to_string();
            assert!(!text.contains("secret detail"), "{text}");
            assert!(!text.is_empty());
        }
    }
}
