//! Daemon credentials for the IdP APIs: static header tokens (Okta SSWS) and OAuth access
//! tokens fetched from a token endpoint with a form the connector builds (Okta
//! `private_key_jwt`, Entra client secret or certificate assertion, Google JWT-bearer grant),
//! cached until a minute before expiry, refreshed by one caller at a time, and dropped on a 401.
//! Also signs the JWT assertions those grants need. Secrets never reach a log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::SourceError;
use crate::clock::{Clock, SystemClock};
use crate::config::Secret;

/// Builds a fresh token request form (a new assertion with a new `jti` each time).
pub type FormBuilder =
    Box<dyn Fn() -> Result<Vec<(&'static str, String)>, SourceError> + Send + Sync>;

/// How a client authenticates each API call.
#[derive(Clone)]
pub enum Auth {
    /// A fixed `Authorization` value, e.g. `SSWS 00abc…`.
    Header(Secret),
    /// `Authorization: Bearer <token>` from a token endpoint.
    OAuth(Arc<TokenCache>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Header(_) => f.write_str("Auth::Header(***)"),
            Auth::OAuth(c) => write!(f, "Auth::OAuth({})", c.token_url),
        }
    }
}

/// An access token and what came with it.
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub secret: Secret,
    /// The scopes the token endpoint says it granted (space-separated `scope`), if it said.
    pub scopes: Vec<String>,
    expires: Instant,
}

/// A cached OAuth access token for one client.
pub struct TokenCache {
    http: reqwest::Client,
    token_url: Url,
    form: FormBuilder,
    state: tokio::sync::Mutex<Option<AccessToken>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
}

impl TokenCache {
    /// A cache that posts `form()` to `token_url` when it needs a token.
    pub fn new(http: reqwest::Client, token_url: Url, form: FormBuilder) -> Self {
        TokenCache {
            http,
            token_url,
            form,
            state: tokio::sync::Mutex::new(None),
        }
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// A valid token: the cached one until a minute before it expires, else a new one.
    /// Concurrent callers wait for one refresh.
    pub async fn token(&self) -> Result<AccessToken, SourceError> {
        let mut state = self.state.lock().await;
        if let Some(t) = state.as_ref()
            && t.expires > Instant::now() + Duration::from_secs(60)
        {
            return Ok(t.clone());
        }
        let fresh = self.fetch().await?;
        *state = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets the cached token (after a 401), so the next call fetches a new one.
    pub async fn invalidate(&self) {
        *self.state.lock().await = None;
    }

    async fn fetch(&self) -> Result<AccessToken, SourceError> {
        let form = (self.form)()?;
        let resp = self
            .http
            .post(self.token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| SourceError::Transport {
                detail: format!("token endpoint {}: {e}", self.token_url),
            })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| SourceError::Transport {
            detail: format!("token endpoint {}: {e}", self.token_url),
        })?;
        if body.len() > 64 * 1024 {
            return Err(SourceError::UnexpectedBody {
                status,
                detail: "token response larger than 64 KiB".into(),
            });
        }
        if !(200..300).contains(&status) {
            return Err(token_error(status, &body));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| SourceError::UnexpectedBody {
                status,
                detail: format!("token response is not the expected JSON: {e}"),
            })?;
        let lifetime = parsed.expires_in.unwrap_or(3600).clamp(60, 86_400);
        tracing::debug!(
            token_url = %self.token_url,
            expires_in = lifetime,
            "fetched an access token"
        );
        Ok(AccessToken {
            secret: Secret::new(parsed.access_token),
            scopes: parsed
                .scope
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            expires: Instant::now() + Duration::from_secs(lifetime),
        })
    }
}

/// A token endpoint's error (`{"error": …, "error_description": …}`) as a [`SourceError`]:
/// `invalid_scope` and `unauthorized_client` are permission problems, the rest credentials.
pub fn token_error(status: u16, body: &[u8]) -> SourceError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v.get("error").and_then(Value::as_str).unwrap_or("");
    let text = v
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let detail = if code.is_empty() {
        format!(
            "token endpoint answered {status}: {}",
            super::http::describe_body(body)
        )
    } else {
        format!("token endpoint: {code}: {}", one_line(text, 300))
    };
    match code {
        "invalid_scope" | "unauthorized_client" => SourceError::Forbidden { detail },
        _ if status == 429 => SourceError::RateLimited {
            waited: Duration::ZERO,
            retry_after: Duration::from_secs(60),
        },
        _ if status >= 500 => SourceError::Unavailable {
            status,
            attempts: 1,
            detail,
        },
        _ => SourceError::Unauthorized { detail },
    }
}

/// `text` on one line, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// A JWT signing key loaded from PEM, with the algorithm it signs with.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    alg: Algorithm,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({:?}, ***)", self.alg)
    }
}

impl SigningKey {
    /// An RSA key (PKCS#1 or PKCS#8 PEM) that signs with `alg` (RS256/384/512, PS256/384/512),
    /// or an EC P-256 key for ES256.
    pub fn from_pem(pem: &Secret, alg: Algorithm) -> Result<Self, SourceError> {
        let bytes = pem.expose().as_bytes();
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(bytes),
            _ => EncodingKey::from_rsa_pem(bytes),
        }
        .map_err(|e| SourceError::Config(format!("the private key cannot be read: {e}")))?;
        Ok(SigningKey { key, alg })
    }

    /// Signs `claims` with a header carrying `kid` and/or `x5t#S256` when given.
    pub fn sign(
        &self,
        claims: &Value,
        kid: Option<&str>,
        x5t_s256: Option<&str>,
    ) -> Result<String, SourceError> {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        header.x5t_s256 = x5t_s256.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| SourceError::Config(format!("cannot sign the client assertion: {e}")))
    }
}

/// Seconds since the epoch now (for `iat`/`exp` claims).
pub fn epoch_now() -> i64 {
    SystemClock.now().timestamp()
}

/// A random id for `jti` claims.
pub fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    // getrandom only fails on platforms without an entropy source; a time-based id is still
    // unique enough for replay protection there.
    if getrandom::fill(&mut bytes).is_err() {
        return format!(
            "jti-{}",
            SystemClock.now().timestamp_nanos_opt().unwrap_or(0)
        );
    }
    uuid::Uuid::from_bytes(bytes).to_string()
}
