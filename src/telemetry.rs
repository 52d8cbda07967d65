//! Tracing set-up: one subscriber writing text or JSON lines to stderr, filtered by
//! `log.filter`. Log lines carry ids in fields; secrets never reach them because the types
//! that hold secrets cannot print them.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogConfig, LogFormat};

/// The logging configuration cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter string does not parse.
    #[error("log.filter: {0}")]
    Filter(String),
    /// A global subscriber is already installed.
    #[error("a log subscriber is already installed")]
    AlreadyInstalled,
}

/// Parses a tracing filter such as `info,idbridge::store=debug`.
pub fn parse_filter(filter: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| TelemetryError::Filter(e.to_string()))
}

/// Installs the global subscriber. Call once, early in `main`.
pub fn init(config: &LogConfig) -> Result<(), TelemetryError> {
    let filter = parse_filter(&config.filter)?;
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)
}
