//! Values that must never be shown: [`Secret`] for tokens and passwords, and [`DatabaseUrl`],
//! whose password part is masked wherever the URL is displayed, debugged or serialised.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret looks like whenever it is shown.
pub const REDACTED: &str = "***";

/// A secret string. Its `Debug` and `Serialize` forms are `***`; only [`Secret::expose`]
/// gives the value, and callers use it at the moment they hand it to the wire.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// The database the store uses: `sqlite:…` or `postgres://…`. Shown everywhere with the
/// password (in the user-info part or a `password=` parameter) replaced by `***`.
#[derive(Clone, PartialEq)]
pub struct DatabaseUrl(Secret);

/// Which database engine a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    /// An embedded SQLite file (or `sqlite::memory:`).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl DatabaseUrl {
    /// Wraps a URL as given.
    pub fn new(url: impl Into<String>) -> Self {
        Self(Secret::new(url))
    }

    /// The full URL, password included, for the driver only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL scheme, lower-cased (`sqlite`, `postgres`, …).
    pub fn scheme(&self) -> String {
        let url = self.expose();
        url.split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The backend the scheme selects, or `None` for an unknown scheme.
    pub fn backend(&self) -> Option<DatabaseBackend> {
        match self.scheme().as_str() {
            "sqlite" => Some(DatabaseBackend::Sqlite),
            "postgres" | "postgresql" => Some(DatabaseBackend::Postgres),
            _ => None,
        }
    }

    /// The URL with every password masked; safe for logs, errors and `check-config`.
    pub fn redacted(&self) -> String {
        let raw = self.expose();
        if self.backend() == Some(DatabaseBackend::Sqlite) {
            return raw.to_owned();
        }
        match url::Url::parse(raw) {
            Ok(mut url) => {
                if url.password().is_some() {
                    // Only fails for URLs that cannot carry credentials, which have no password.
                    let _ = url.set_password(Some(REDACTED));
                }
                if url.query_pairs().any(|(k, _)| is_secret_param(&k)) {
                    let pairs: Vec<(String, String)> = url
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if is_secret_param(&k) {
                                REDACTED.into()
                            } else {
                                v.into_owned()
                            };
                            (k.into_owned(), v)
                        })
                        .collect();
                    url.query_pairs_mut().clear().extend_pairs(pairs);
                }
                url.to_string()
            }
            Err(_) => format!("{}:{REDACTED}", self.scheme()),
        }
    }
}

fn is_secret_param(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "password" | "sslpassword"
    )
}

impl Default for DatabaseUrl {
    fn default() -> Self {
        Self::new("sqlite://idbridge.db")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(DatabaseUrl::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_debug_and_serialise_as_stars() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn postgres_passwords_are_masked_in_user_info_and_parameters() {
        let url = DatabaseUrl::new(
            "postgres://idb:s3cret@db.internal:5432/idb?password=other&sslmode=require",
        );
        let shown = url.redacted();
        assert!(
            !shown.contains("s3cret") && !shown.contains("other"),
            "{shown}"
        );
        assert!(
            shown.starts_with("postgres://idb:***@db.internal:5432/idb?"),
            "{shown}"
        );
        assert!(shown.contains("sslmode=require"));
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            url.expose(),
            "postgres://idb:s3cret@db.internal:5432/idb?password=other&sslmode=require"
        );
    }

    #[test]
    fn unparseable_urls_show_only_their_scheme() {
        let url = DatabaseUrl::new("postgres://idb:pa ss@[broken");
        assert_eq!(url.redacted(), "postgres:***");
    }

    #[test]
    fn scheme_selects_the_backend() {
        assert_eq!(
            DatabaseUrl::new("sqlite://x.db").backend(),
            Some(DatabaseBackend::Sqlite)
        );
        assert_eq!(
            DatabaseUrl::new("sqlite::memory:").backend(),
            Some(DatabaseBackend::Sqlite)
        );
        assert_eq!(
            DatabaseUrl::new("postgresql://h/d").backend(),
            Some(DatabaseBackend::Postgres)
        );
        assert_eq!(DatabaseUrl::new("mysql://h/d").backend(), None);
    }
}
