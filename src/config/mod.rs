//! Configuration: typed structs, layered loading and validation.
//!
//! Layers, later ones winning: built-in defaults, then one TOML file (`--config`), then
//! environment variables `IDBRIDGE_<SECTION>__<KEY>` (`__` nests), then secret files named by
//! `IDBRIDGE_<SECTION>__<KEY>_FILE`. Unknown keys are errors that name the key and the layer it
//! came from. Secrets are [`Secret`]s and the database URL is a [`DatabaseUrl`]; both are masked
//! in every `Debug`, `Display` and serialised form, so [`Config::render_redacted`] is safe to
//! print.

mod load;
mod secret;

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{ConfigError, ENV_PREFIX, load};
pub use secret::{DatabaseBackend, DatabaseUrl, REDACTED, Secret};

/// Everything idbridge can be told.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerConfig,
    /// The store.
    pub database: DatabaseConfig,
    /// Logging.
    pub log: LogConfig,
}

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Longest time one request may take before it is answered 408.
    pub request_timeout_secs: u64,
    /// Largest request body accepted; larger ones are answered 413.
    pub body_limit_bytes: usize,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 30,
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_secs: 30,
            metrics_token: None,
        }
    }
}

impl ServerConfig {
    /// [`Self::request_timeout_secs`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// [`Self::shutdown_grace_secs`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// The store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://user:pass@host/db`.
    pub url: DatabaseUrl,
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a connection before giving up.
    pub connect_timeout_secs: u64,
    /// SQLite only: how long a writer waits for the lock.
    pub sqlite_busy_timeout_ms: u64,
    /// Apply pending migrations at start-up.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DatabaseUrl::default(),
            max_connections: 8,
            connect_timeout_secs: 5,
            sqlite_busy_timeout_ms: 5000,
            migrate_on_start: true,
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,idbridge::store=debug`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info,sqlx=warn".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Checks what types alone cannot; returns every problem, each naming its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.database.url.backend().is_none() {
            problems.push(format!(
                "database.url: unsupported scheme `{}` (expected `sqlite:` or `postgres://`)",
                self.database.url.scheme()
            ));
        }
        if self.database.max_connections == 0 {
            problems.push("database.max_connections: must be at least 1".into());
        }
        if self.database.connect_timeout_secs == 0 {
            problems.push("database.connect_timeout_secs: must be at least 1".into());
        }
        if self.server.request_timeout_secs == 0 {
            problems.push("server.request_timeout_secs: must be at least 1".into());
        }
        if self.server.body_limit_bytes == 0 {
            problems.push("server.body_limit_bytes: must be at least 1".into());
        }
        if let Some(token) = &self.server.metrics_token
            && token.expose().len() < 16
        {
            problems.push("server.metrics_token: must be at least 16 characters".into());
        }
        if let Err(e) = crate::telemetry::parse_filter(&self.log.filter) {
            problems.push(format!("log.filter: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The effective configuration as TOML, with every secret shown as `***`.
    pub fn render_redacted(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}
