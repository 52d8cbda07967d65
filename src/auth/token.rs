//! SCIM bearer tokens as values: the `idb_<prefix>_<secret>` format, generating and parsing
//! it, the stored SHA-256 hash of the secret and its constant-time check, token lifetimes
//! (`--expires`), and the records the store keeps ([`ScimToken`], [`NewScimToken`]).
//!
//! A token is `idb_` + 8 lower-case hex characters (the public prefix, shown in listings and
//! used to find the row) + `_` + 64 lower-case hex characters (the secret: 32 random bytes).
//! Only `sha256(secret)` is stored, as lower-case hex of the secret's 64 ASCII characters.
//! No type here shows a secret or a hash in its `Debug` form.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::domain::SourceId;

/// What every token starts with.
pub const TOKEN_SCHEME: &str = "idb_";
/// Length of the public prefix in hex characters.
pub const PREFIX_LEN: usize = 8;
/// Length of the secret in hex characters.
pub const SECRET_LEN: usize = 64;
/// Length of a whole token: `idb_` + prefix + `_` + secret.
pub const TOKEN_LEN: usize = TOKEN_SCHEME.len() + PREFIX_LEN + 1 + SECRET_LEN;

/// A freshly issued token. It is shown once, to the person who asked for it; its `Debug` form
/// shows only the public prefix, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken(String);

impl IssuedToken {
    /// The whole token, to hand to the IdP.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The public prefix.
    pub fn prefix(&self) -> &str {
        self.0
            .get(TOKEN_SCHEME.len()..TOKEN_SCHEME.len() + PREFIX_LEN)
            .unwrap_or_default()
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuedToken({TOKEN_SCHEME}{}_***)", self.prefix())
    }
}

/// The stored form of a token's secret: lower-case hex of `sha256(secret)`. Its `Debug` form
/// is `***`, and equality is checked in constant time.
#[derive(Clone)]
pub struct SecretHash(String);

impl SecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(hex(&Sha256::digest(secret.as_bytes())))
    }

    /// A hash as read back from storage.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The stored spelling; only the store should need it.
    pub fn as_stored(&self) -> &str {
        &self.0
    }

    /// Whether `secret` hashes to this value. The comparison takes the same time wherever
    /// the two hashes differ.
    pub fn matches(&self, secret: &str) -> bool {
        let presented = Self::of(secret);
        bool::from(presented.0.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.as_bytes().ct_eq(other.0.as_bytes()))
    }
}

impl Eq for SecretHash {}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::config::REDACTED)
    }
}

/// The operating system's random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw random bytes for a token: {0}")]
pub struct RandomUnavailable(getrandom::Error);

/// A new token: the whole token to show once, its public prefix and the hash to store.
#[derive(Debug)]
pub struct GeneratedToken {
    /// The whole token, for the IdP.
    pub token: IssuedToken,
    /// The public prefix (8 lower-case hex characters).
    pub prefix: String,
    /// `sha256(secret)`, the only form of the secret that is stored.
    pub secret_hash: SecretHash,
}

/// Draws a new token from the operating system's random number generator.
pub fn generate() -> Result<GeneratedToken, RandomUnavailable> {
    let mut prefix = [0u8; PREFIX_LEN / 2];
    let mut secret = [0u8; SECRET_LEN / 2];
    getrandom::fill(&mut prefix).map_err(RandomUnavailable)?;
    getrandom::fill(&mut secret).map_err(RandomUnavailable)?;
    let prefix = hex(&prefix);
    let secret = hex(&secret);
    let secret_hash = SecretHash::of(&secret);
    Ok(GeneratedToken {
        token: IssuedToken(format!("{TOKEN_SCHEME}{prefix}_{secret}")),
        prefix,
        secret_hash,
    })
}

/// Splits a token into its prefix and secret. Anything that is not exactly
/// `idb_<8 lower-case hex>_<64 lower-case hex>` is `None`; no input panics.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let bytes = token.as_bytes();
    if bytes.len() != TOKEN_LEN || !bytes.starts_with(TOKEN_SCHEME.as_bytes()) {
        return None;
    }
    let prefix_end = TOKEN_SCHEME.len() + PREFIX_LEN;
    if bytes[prefix_end] != b'_' {
        return None;
    }
    let prefix = token.get(TOKEN_SCHEME.len()..prefix_end)?;
    let secret = token.get(prefix_end + 1..)?;
    (is_lower_hex(prefix) && is_lower_hex(secret)).then_some((prefix, secret))
}

/// Whether `text` has the shape of a public prefix: 8 lower-case hex characters.
pub fn is_prefix(text: &str) -> bool {
    text.len() == PREFIX_LEN && is_lower_hex(text)
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A token to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewScimToken {
    /// The source the token may provision into.
    pub source_id: SourceId,
    /// The public prefix.
    pub prefix: String,
    /// `sha256(secret)`.
    pub secret_hash: SecretHash,
    /// Free text for people, e.g. "Entra production app".
    pub label: Option<String>,
    /// When the token stops working; `None` for never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored token. Its `Debug` form never shows the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimToken {
    /// Row id.
    pub id: Uuid,
    /// The source the token may provision into.
    pub source_id: SourceId,
    /// The public prefix.
    pub prefix: String,
    /// `sha256(secret)`.
    pub secret_hash: SecretHash,
    /// Free text for people.
    pub label: Option<String>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working; `None` for never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last accepted (recorded at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ScimToken {
    /// Whether the token works at `now`. Revocation wins over expiry.
    pub fn status(&self, now: DateTime<Utc>) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }
}

/// Whether a token works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    /// It is accepted.
    Active,
    /// It was revoked.
    Revoked,
    /// Its expiry has passed.
    Expired,
}

impl TokenStatus {
    /// The word shown in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Revoked => "revoked",
            TokenStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a new token is valid: `<n>m`, `<n>h`, `<n>d`, `<n>y` (a year is 365 days) or
/// `never`. At most 100 years.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenLifetime {
    /// The token never expires.
    Never,
    /// The token expires this long after it is issued.
    For(Duration),
}

impl TokenLifetime {
    /// The longest lifetime accepted.
    pub const MAX_DAYS: i64 = 100 * 365;

    /// When a token issued at `now` expires; `None` for never.
    pub fn expires_at(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            TokenLifetime::Never => None,
            TokenLifetime::For(d) => Some(
                now.checked_add_signed(d)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            ),
        }
    }
}

/// A `--expires` value that is not a lifetime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a token lifetime: use a whole number with m, h, d or y (365 days), \
     e.g. `90d`, `12h`, `30m`, `1y`, at most 100 years, or `never`"
)]
pub struct BadLifetime(String);

impl FromStr for TokenLifetime {
    type Err = BadLifetime;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadLifetime(s.chars().take(40).collect());
        let text = s.trim();
        if text.eq_ignore_ascii_case("never") {
            return Ok(TokenLifetime::Never);
        }
        let split = text.len().checked_sub(1).ok_or_else(bad)?;
        let (number, unit) = (
            text.get(..split).ok_or_else(bad)?,
            text.get(split..).ok_or_else(bad)?,
        );
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        let minutes_per_unit: i64 = match unit {
            "m" => 1,
            "h" => 60,
            "d" => 24 * 60,
            "y" => 365 * 24 * 60,
            _ => return Err(bad()),
        };
        let minutes = n.checked_mul(minutes_per_unit).ok_or_else(bad)?;
        if n == 0 || minutes > Self::MAX_DAYS * 24 * 60 {
            return Err(bad());
        }
        Ok(TokenLifetime::For(Duration::minutes(minutes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_char_different(secret: &str) -> String {
        let mut chars: Vec<char> = secret.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == '0' { '1' } else { '0' };
        chars.into_iter().collect()
    }

    #[test]
    fn a_generated_token_has_the_documented_shape_and_parses_back_to_its_parts() {
        let generated = generate().expect("random bytes");
        let token = generated.token.expose();
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(token.starts_with("idb_"), "{token:?}");
        let (prefix, secret) = parse(token).expect("parses");
        assert_eq!(prefix, generated.prefix);
        assert_eq!(generated.token.prefix(), generated.prefix);
        assert!(is_prefix(prefix));
        assert_eq!(secret.len(), SECRET_LEN);
        assert!(generated.secret_hash.matches(secret));
        assert_eq!(generated.secret_hash, SecretHash::of(secret));
        assert_eq!(generated.secret_hash.as_stored().len(), 64);
    }

    #[test]
    fn two_generated_tokens_differ() {
        let a = generate().expect("random bytes");
        let b = generate().expect("random bytes");
        assert_ne!(a.token, b.token);
        assert_ne!(a.secret_hash, b.secret_hash);
    }

    #[test]
    fn the_secret_hash_is_sha256_of_the_secret_in_lower_case_hex() {
        assert_eq!(
            SecretHash::of("abc").as_stored(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_rejects_wrong_scheme_length_separator_case_and_non_hex_without_panicking() {
        let good = format!("idb_0123abcd_{}", "a".repeat(64));
        assert!(parse(&good).is_some());
        let bad = [
            String::new(),
            "idb_".into(),
            "idb_0123abcd_".into(),
            format!("idc_0123abcd_{}", "a".repeat(64)),
            format!("IDB_0123abcd_{}", "a".repeat(64)),
            format!("idb_0123abcd-{}", "a".repeat(64)),
            format!("idb_0123abc_{}", "a".repeat(65)),
            format!("idb_0123abcde_{}", "a".repeat(63)),
            format!("idb_0123abcd_{}", "a".repeat(63)),
            format!("idb_0123abcd_{}", "a".repeat(65)),
            format!("idb_0123ABCD_{}", "a".repeat(64)),
            format!("idb_0123abcd_{}", "A".repeat(64)),
            format!("idb_0123abcg_{}", "a".repeat(64)),
            format!("idb_0123abcd_{}g", "a".repeat(63)),
            format!(" idb_0123abcd_{}", "a".repeat(63)),
            format!("idb_0123abcd_{}\n", "a".repeat(63)),
            // Multi-byte characters whose byte length matches a real token.
            format!("idb_0123abcd_{}é", "a".repeat(62)),
            format!("idb_0123abcé_{}", "a".repeat(63)),
            format!("idb_0123abcd\u{e9}{}", "a".repeat(63)),
            format!("idb_ü123abcd_{}", "a".repeat(63)),
            "🦀".repeat(TOKEN_LEN / 4 + 1),
        ];
        for text in &bad {
            assert_eq!(parse(text), None, "{text:?} should not parse");
        }
        for len in 0..100 {
            for fill in ["é", "\0", "_", "f", "🦀"] {
                let text = format!("idb_{}", fill.repeat(len));
                let _ = parse(&text);
            }
        }
    }

    #[test]
    fn verification_accepts_the_right_secret_and_rejects_one_differing_in_one_character() {
        let generated = generate().expect("random bytes");
        let (_, secret) = parse(generated.token.expose()).expect("parses");
        assert!(generated.secret_hash.matches(secret));
        let wrong = one_char_different(secret);
        assert_ne!(wrong, secret);
        assert!(!generated.secret_hash.matches(&wrong));
        assert!(!generated.secret_hash.matches(""));
        assert!(!SecretHash::from_stored("not-a-hash".into()).matches(secret));
    }

    #[test]
    fn debug_output_never_shows_the_secret_or_its_hash() {
        let generated = generate().expect("random bytes");
        let (_, secret) = parse(generated.token.expose()).expect("parses");
        let record = ScimToken {
            id: Uuid::nil(),
            source_id: SourceId(Uuid::nil()),
            prefix: generated.prefix.clone(),
            secret_hash: generated.secret_hash.clone(),
            label: None,
            created_at: DateTime::<Utc>::MIN_UTC,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        let new = NewScimToken {
            source_id: record.source_id,
            prefix: record.prefix.clone(),
            secret_hash: record.secret_hash.clone(),
            label: None,
            expires_at: None,
        };
        let shown = format!("{generated:?} {record:?} {new:?} {:?}", generated.token);
        assert!(!shown.contains(secret), "{shown}");
        assert!(
            !shown.contains(generated.secret_hash.as_stored()),
            "{shown}"
        );
        assert!(shown.contains(&generated.prefix), "{shown}");
    }

    #[test]
    fn status_is_revoked_before_expired_and_expired_from_the_expiry_instant_on() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid");
        let mut token = ScimToken {
            id: Uuid::nil(),
            source_id: SourceId(Uuid::nil()),
            prefix: "0123abcd".into(),
            secret_hash: SecretHash::of("x"),
            label: None,
            created_at: now,
            expires_at: Some(now + Duration::seconds(1)),
            last_used_at: None,
            revoked_at: None,
        };
        assert_eq!(token.status(now), TokenStatus::Active);
        assert_eq!(
            token.status(now + Duration::seconds(1)),
            TokenStatus::Expired
        );
        token.revoked_at = Some(now);
        assert_eq!(token.status(now), TokenStatus::Revoked);
        assert_eq!(token.status(now + Duration::days(9)), TokenStatus::Revoked);
        token.revoked_at = None;
        token.expires_at = None;
        assert_eq!(
            token.status(now + Duration::days(90_000)),
            TokenStatus::Active
        );
    }

    #[test]
    fn expires_accepts_minutes_hours_days_years_and_never() {
        let cases = [
            ("90d", Some(Duration::days(90))),
            ("12h", Some(Duration::hours(12))),
            ("30m", Some(Duration::minutes(30))),
            ("1y", Some(Duration::days(365))),
            ("100y", Some(Duration::days(36_500))),
            (" 7d ", Some(Duration::days(7))),
            ("never", None),
            ("NEVER", None),
        ];
        for (text, expected) in cases {
            let parsed: TokenLifetime = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            let expected = expected.map_or(TokenLifetime::Never, TokenLifetime::For);
            assert_eq!(parsed, expected, "{text}");
        }
    }

    #[test]
    fn expires_rejects_zero_negative_fractional_unknown_units_and_absurd_lengths() {
        for text in [
            "",
            "d",
            "0d",
            "-1d",
            "1.5d",
            "1w",
            "1",
            "90 d",
            "d90",
            "1D",
            "101y",
            "36501d",
            "99999999999999999999d",
            "9223372036854775807y",
            "é",
            "1é",
            "never!",
        ] {
            let parsed = text.parse::<TokenLifetime>();
            assert!(parsed.is_err(), "{text:?} parsed as {parsed:?}");
        }
        let message = "0d".parse::<TokenLifetime>().unwrap_err().to_string();
        assert!(
            message.contains("90d") && message.contains("never"),
            "{message}"
        );
    }

    #[test]
    fn a_lifetime_counts_from_the_issue_time() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid");
        assert_eq!(TokenLifetime::Never.expires_at(now), None);
        assert_eq!(
            TokenLifetime::For(Duration::days(2)).expires_at(now),
            Some(now + Duration::days(2))
        );
    }
}
