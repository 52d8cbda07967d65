//! idbridge keeps Confluence in step with an organisation's identity providers.
//!
//! The crate is one library plus a thin binary (`main.rs`). The module map follows
//! `docs/architecture.md`:
//!
//! - [`cli`]: the command line (clap) and what each subcommand does.
//! - [`app`]: the composition root; builds the store, the HTTP server and owns shutdown.
//! - [`config`]: layered configuration (TOML file + `IDBRIDGE_*` environment + `*_FILE` secrets).
//! - [`telemetry`]: tracing subscriber set-up (text or JSON).
//! - [`clock`]: the injected source of "now".
//! - [`domain`]: plain data types shared by every layer; no I/O.
//! - [`engine`]: inventory sync (and, later, planning and execution).
//! - [`auth`]: SCIM bearer tokens (issue, verify, rate-limit).
//! - [`store`]: persistence on SQLite or PostgreSQL; the only module that uses sqlx.
//! - [`http`]: axum routers and middleware: health, readiness, metrics, SCIM.
//! - [`scim`]: SCIM 2.0 as a protocol (schemas, filters, PATCH, discovery); no I/O.
//! - [`targets`]: Confluence Data Center and Cloud connectors behind the `Target` trait.
//! - [`demo`]: the loop `idbridge demo` shows (simulators, example rules, sync → plan →
//!   enforce → licence back), shared by the command and its benchmark.
//! - [`sim`]: wire-faithful simulators of Confluence DC (+ Crowd) and Atlassian Cloud.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod failpoint;
pub mod http;
pub mod scim;
pub mod sim;
pub mod sources;
pub mod store;
pub mod targets;
pub mod telemetry;
