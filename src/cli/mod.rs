//! The command line: subcommands, their options and what each does. Errors leave here as
//! `anyhow::Error` for `main` to print on one line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::app::{self, App};
use crate::auth::{self, ScimToken, TokenLifetime, TokenStatus};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{self, Config};
use crate::domain::SourceKind;
use crate::store::Store;
use crate::telemetry;

mod audit;
mod bulk;
mod demo;
mod engine;
mod execute;
mod export;
mod regrant;
mod runs;
mod sim;
mod sources;
mod targets;
mod undo;

pub use audit::AuditCommand;

/// idbridge keeps Confluence in step with your identity providers.
#[derive(Debug, Parser)]
#[command(name = "idbridge", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables `IDBRIDGE_<SECTION>__<KEY>` override it.
    #[arg(long, global = true, env = "IDBRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: HTTP API, health, readiness and metrics.
    Serve,
    /// The whole loop on simulated Okta and Confluence DC and an embedded SQLite file: sync a
    /// seeded company, show the dry-run plan, enforce it, give a returner the licence back,
    /// then keep running until Ctrl-C. Ignores --config.
    Demo {
        /// Address idbridge listens on once the loop has run.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// SQLite file for the demo's state; replaced on every start (a file at this path
        /// that is not a SQLite database is refused).
        #[arg(long, default_value = "idbridge-demo.db")]
        database: PathBuf,
        /// People in the seeded company (20 to 100000).
        #[arg(long, default_value_t = 3000)]
        people: usize,
        /// Stop after the loop instead of serving.
        #[arg(long)]
        once: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and print it with every secret redacted.
    CheckConfig,
    /// Print the version.
    Version,
    /// Issue, list and revoke the bearer tokens IdPs use on `/scim/v2/<source>`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Inspect configured Confluence targets.
    Targets {
        #[command(subcommand)]
        command: TargetsCommand,
    },
    /// Check and list configured identity sources.
    Sources {
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// Read a source or target into the store now.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Verify, export and checkpoint the tamper-evident audit log.
    Audit {
        /// Who is acting, for the audit log (default: `IDBRIDGE_PRINCIPAL`, else `USER`,
        /// else `cli`).
        #[arg(long = "as", global = true, value_name = "NAME")]
        principal: Option<String>,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Show what the rules would do now and why (stores nothing but new links).
    Plan {
        /// Only this rule (repeatable); default: every enabled rule.
        #[arg(long = "rule", value_name = "NAME")]
        rules: Vec<String>,
        /// Why this person (username or email) is or is not touched, rule by rule.
        #[arg(long, value_name = "USER")]
        explain: Option<String>,
        /// Treat every rule as a dry run.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Plan, check the safety budgets, store the plan, then carry out what is within budget
    /// (rules in dry-run mode are recorded with zero writes).
    Run {
        /// Only this rule (repeatable); default: every enabled rule.
        #[arg(long = "rule", value_name = "NAME")]
        rules: Vec<String>,
        /// Record every rule's plan with zero writes.
        #[arg(long)]
        dry_run: bool,
        /// Store the plan without carrying it out (`idbridge execute` does that later).
        #[arg(long)]
        no_execute: bool,
        /// Who starts the run (default: IDBRIDGE_PRINCIPAL, else USER).
        #[arg(long = "as", value_name = "NAME")]
        principal: Option<String>,
        /// Print JSON instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Approve a held run (someone other than its starter, bound to its plan hash) and
    /// carry it out.
    Approve {
        /// The run's id.
        run: String,
        /// The plan hash the approver reviewed (printed by `idbridge run`).
        #[arg(long)]
        hash: String,
        /// Who approves (default: IDBRIDGE_PRINCIPAL, else USER).
        #[arg(long = "as", value_name = "NAME")]
        principal: Option<String>,
        /// Approve only; `idbridge execute` carries it out later.
        #[arg(long)]
        no_execute: bool,
    },
    /// Give the licence back to people removed for inactivity who signed in since (exactly
    /// the groups, status and name they had), and alert on leavers signing in and on a lack
    /// of free seats.
    Regrant {
        /// Record the plan with zero writes and raise no alert.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Put accounts back the way they were before a run or a person's latest removal
    /// (groups, active flag, name), as a run through the same budgets and executor.
    Undo(undo::UndoArgs),
    /// Carry out the stored runs' planned actions (or one run's) until none is left to claim.
    /// Exits non-zero when any action failed or was poisoned.
    Execute {
        /// Only this run (its id).
        #[arg(long, value_name = "ID")]
        run: Option<String>,
    },
    /// Ad-hoc bulk operation: select accounts by a filter expression and/or a CSV of names,
    /// print the plan (stores nothing), and with --apply store it as a `bulk` run and carry
    /// it out through the same safety budgets, approval and audit as the rules.
    Bulk(bulk::BulkArgs),
    /// Export accounts, people (the joined view) or runs as CSV, a JSON array or JSON lines;
    /// every export is recorded in the audit log.
    Export(export::ExportArgs),
    /// List the stored runs, or show one with every action's phase.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Run a wire-faithful simulator of a system idbridge talks to, to try idbridge safely.
    Sim {
        #[command(subcommand)]
        command: Box<SimCommand>,
    },
}

/// Which simulator to run. Each serves its product's API, plus `/__sim/` control routes
/// (request log, fault injection, clock, population changes), until Ctrl-C.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Confluence Data Center (any version from 7.13 to 10.2), with Crowd and the legacy
    /// Remote API.
    #[command(disable_version_flag = true)]
    ConfluenceDc {
        #[command(flatten)]
        options: crate::sim::confluence_dc::DcSimOptions,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 8090)]
        port: u16,
    },
    /// The Atlassian Cloud admin APIs (organizations v1 and v2, user management).
    #[command(disable_version_flag = true)]
    AtlassianCloud {
        #[command(flatten)]
        options: crate::sim::atlassian_cloud::CloudSimOptions,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 8091)]
        port: u16,
    },
    /// Microsoft Entra ID behind Microsoft Graph v1.0 (users, groups, delta, sign-in logs)
    /// and its token endpoint.
    #[command(disable_version_flag = true)]
    Entra {
        #[command(flatten)]
        options: crate::sim::entra::EntraSimOptions,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 8092)]
        port: u16,
    },
    /// An Okta org (users, groups, System Log, org token endpoint).
    #[command(disable_version_flag = true)]
    Okta {
        #[command(flatten)]
        options: crate::sim::okta::OktaSimOptions,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 8093)]
        port: u16,
    },
    /// A Google Workspace account: Admin SDK Directory and Reports APIs, and the OAuth token
    /// endpoint (service account with domain-wide delegation).
    #[command(disable_version_flag = true)]
    Google {
        #[command(flatten)]
        options: crate::sim::google::GoogleSimOptions,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 8094)]
        port: u16,
    },
}

/// What to do with targets.
#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// Connect to a target and print its version, what it can do, and its licence figures.
    Check {
        /// The target's name in the configuration (`[targets.<name>]`).
        #[arg(value_name = "NAME")]
        name: String,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the configured targets.
    List,
}

/// What to do with identity sources.
#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// Sign in to a polled source and print who idbridge is there, missing permissions,
    /// how many people it holds and what login data is available.
    Check {
        /// The source's name in the configuration (`[sources.<name>]`).
        #[arg(value_name = "NAME")]
        name: String,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the configured sources.
    List,
}

/// What to read.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Read every person and group of a polled identity source into the store as a snapshot
    /// (plus new sign-ins to Confluence), and say whether the snapshot is complete. Exits
    /// non-zero when it is not.
    Source {
        /// The source's name in the configuration (`[sources.<name>]`).
        #[arg(value_name = "NAME")]
        name: String,
        /// Apply only the changes since the last complete sync, where the source can list
        /// them (falls back to a full sync).
        #[arg(long)]
        incremental: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read every account and group of a target into the store as a snapshot, and say
    /// whether the snapshot is complete. Exits non-zero when it is not.
    Target {
        /// The target's name in the configuration (`[targets.<name>]`).
        #[arg(value_name = "NAME")]
        name: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What to do with SCIM tokens.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a configured SCIM source and print it once.
    Create {
        /// The source (configured with `kind = "scim"`) the token may provision into.
        #[arg(long, value_name = "NAME")]
        source: String,
        /// How long the token is valid: a whole number of minutes, hours, days or years
        /// (`30m`, `12h`, `90d`, `1y` = 365 days; at most 100 years), or `never`.
        #[arg(long, value_name = "DURATION", default_value = "365d")]
        expires: TokenLifetime,
        /// A note for people, e.g. which IdP application holds the token.
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
    },
    /// List tokens (newest first) with their status; never shows secrets.
    List {
        /// Only the tokens of this source.
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
    },
    /// Revoke a token; requests with it are refused within seconds.
    Revoke {
        /// The token's prefix as shown by `idbridge token list` (preferred), or the whole token.
        #[arg(value_name = "PREFIX")]
        prefix: String,
    },
}

/// `idbridge runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The newest runs first: kind, mode, status, action count, who started them.
    List {
        /// How many runs (1 to 10,000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// One run: its status, approval, budget check and every action with its phase and error.
    Show {
        /// The run's id, or its first eight or more characters.
        run: String,
        /// Print JSON instead of the report.
        #[arg(long)]
        json: bool,
    },
}

/// A problem with the configuration or the command line; `main` exits with status 2 for these.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The configuration does not load or is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The command line asks for something the configuration does not allow.
    #[error("{0}")]
    Invalid(String),
}

/// The longest `--label` accepted, in characters.
const MAX_LABEL_CHARS: usize = 200;

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("idbridge {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::CheckConfig => {
            let config = load(&cli)?;
            println!("# configuration is valid; secrets are shown as ***");
            print!("{}", config.render_redacted());
            Ok(())
        }
        Command::Migrate => {
            let config = load(&cli)?;
            init_logs(&config)?;
            let store = Store::connect(&config.database, std::sync::Arc::new(SystemClock)).await?;
            let applied = store.migrate().await?;
            store.close().await;
            println!("applied {applied} migration(s) to {}", config.database.url);
            Ok(())
        }
        Command::Serve => {
            let config = load(&cli)?;
            init_logs(&config)?;
            serve(config).await
        }
        Command::Demo {
            listen,
            database,
            people,
            once,
        } => {
            demo::run(demo::DemoArgs {
                listen,
                database,
                people,
                once,
            })
            .await
        }
        Command::Targets { ref command } => {
            let config = load(&cli)?;
            match command {
                TargetsCommand::Check { name, json } => {
                    let cfg = targets::target_config(&config, name)?;
                    init_logs(&config)?;
                    targets::check(name, cfg, *json).await
                }
                TargetsCommand::List => {
                    for (name, t) in &config.targets {
                        println!("{name}\t{}\t{}", t.kind, t.base_url);
                    }
                    Ok(())
                }
            }
        }
        Command::Sources { ref command } => {
            let config = load(&cli)?;
            match command {
                SourcesCommand::Check { name, json } => {
                    let cfg = sources::source_config(&config, name)?;
                    init_logs(&config)?;
                    sources::check(name, cfg, *json).await
                }
                SourcesCommand::List => {
                    for (name, s) in &config.sources {
                        let at = s.base_url.as_deref().or(s.path.as_deref()).unwrap_or("-");
                        println!("{name}\t{}\t{at}", s.kind);
                    }
                    Ok(())
                }
            }
        }
        Command::Sync { ref command } => {
            let config = load(&cli)?;
            match command {
                SyncCommand::Source {
                    name,
                    incremental,
                    json,
                } => {
                    let cfg = sources::source_config(&config, name)?;
                    init_logs(&config)?;
                    let (store, _clock) = open_store(&config).await?;
                    let result = sources::sync(&store, name, cfg, *incremental, *json).await;
                    store.close().await;
                    result
                }
                SyncCommand::Target { name, json } => {
                    let cfg = targets::target_config(&config, name)?;
                    init_logs(&config)?;
                    let (store, _clock) = open_store(&config).await?;
                    let result = targets::sync(&store, name, cfg, *json).await;
                    store.close().await;
                    result
                }
            }
        }
        Command::Plan {
            ref rules,
            ref explain,
            dry_run,
            json,
        } => {
            let config = load(&cli)?;
            init_logs(&config)?;
            let (store, clock) = open_store(&config).await?;
            let opts = crate::engine::run::RunOptions {
                rules: rules.clone(),
                dry_run,
                principal: engine::principal(None),
                execute: false,
            };
            let result =
                engine::plan(&store, &clock, &config, &opts, explain.as_deref(), json).await;
            store.close().await;
            result
        }
        Command::Run {
            ref rules,
            dry_run,
            no_execute,
            ref principal,
            json,
        } => {
            let config = load(&cli)?;
            init_logs(&config)?;
            let (store, clock) = open_store(&config).await?;
            let opts = crate::engine::run::RunOptions {
                rules: rules.clone(),
                dry_run,
                principal: engine::principal(principal.as_deref()),
                execute: !no_execute,
            };
            let result = engine::run_rules(&store, &clock, &config, &opts, json).await;
            store.close().await;
            result
        }
        Command::Approve {
            ref run,
            ref hash,
            ref principal,
            no_execute,
        } => {
            let config = load(&cli)?;
            init_logs(&config)?;
            let (store, clock) = open_store(&config).await?;
            let approver = engine::principal(principal.as_deref());
            let result = engine::approve(
                &store,
                &clock,
                &config,
                run,
                &approver,
                Some(hash.as_str()),
                !no_execute,
            )
            .await;
            store.close().await;
            result
        }
        Command::Regrant { dry_run, json } => {
            let config = load(&cli)?;
            init_logs(&config)?;
            let (store, clock) = open_store(&config).await?;
            let result = regrant::run(&store, &clock, &config, dry_run, json).await;
            store.close().await;
            result
        }
        Command::Undo(ref args) => {
            let config = load(&cli)?;
            init_logs(&config)?;
            let (store, clock) = open_store(&config).await?;
            let result = undo::run(&store, &clock, &config, args).await;
            store.close().await;
            result
        }
        Command::Execute { ref run } => {
            let config = load(&cli)?;
            init_logs(&config)?;
            let (store, _clock) = open_store(&config).await?;
            let result = execute::run(&store, &config, run.as_deref()).await;
            store.close().await;
            result
        }
        Command::Bulk(ref args) => {
            let config = load(&cli)?;
            let rule = args.rule(&config)?;
            init_logs(&config)?;
            let (store, clock) = open_store(&config).await?;
            let result = bulk::run(&store, &clock, &config, &rule, args).await;
            store.close().await;
            result
        }
        Command::Export(ref args) => {
            let config = load(&cli)?;
            args.kind()?;
            init_logs(&config)?;
            let (store, clock) = open_store(&config).await?;
            let result = export::run(&store, &clock, &config, args).await;
            store.close().await;
            result
        }
        Command::Runs { ref command } => {
            let config = load(&cli)?;
            init_logs(&config)?;
            let (store, _clock) = open_store(&config).await?;
            let result = match command {
                RunsCommand::List { limit, json } => runs::list(&store, *limit, *json).await,
                RunsCommand::Show { run, json } => runs::show(&store, run, *json).await,
            };
            store.close().await;
            result
        }
        Command::Sim { command } => sim::run(*command).await,
        Command::Audit {
            ref principal,
            ref command,
        } => {
            let config = load(&cli)?;
            let since = match command {
                AuditCommand::Export { since, .. } => audit::parse_since(since.as_deref())?,
                _ => None,
            };
            init_logs(&config)?;
            let (store, _clock) = open_store(&config).await?;
            let key = store.audit_key().cloned();
            let result = match command {
                AuditCommand::Verify { checkpoint } => {
                    audit::verify(&store, &config, key.as_ref(), checkpoint.as_deref()).await
                }
                AuditCommand::Export { format, output, .. } => {
                    let actor = audit::principal(principal.as_deref());
                    audit::export(&store, &actor, *format, since, output.as_deref()).await
                }
                AuditCommand::Checkpoint => audit::checkpoint(&store, &config, key.as_ref()).await,
            };
            store.close().await;
            result
        }
        Command::Token { ref command } => {
            let config = load(&cli)?;
            match command {
                TokenCommand::Create {
                    source,
                    expires,
                    label,
                } => {
                    let label = check_label(label.as_deref())?;
                    check_scim_source(&config, source)?;
                    init_logs(&config)?;
                    let (store, clock) = open_store(&config).await?;
                    let result = token_create(&store, &*clock, source, *expires, label).await;
                    store.close().await;
                    result
                }
                TokenCommand::List { source } => {
                    init_logs(&config)?;
                    let (store, clock) = open_store(&config).await?;
                    let result = token_list(&store, &*clock, source.as_deref()).await;
                    store.close().await;
                    result
                }
                TokenCommand::Revoke { prefix } => {
                    let prefix = prefix_argument(prefix)?;
                    init_logs(&config)?;
                    let (store, clock) = open_store(&config).await?;
                    let result = token_revoke(&store, &*clock, &prefix).await;
                    store.close().await;
                    result
                }
            }
        }
    }
}

/// Connects to the configured database, with the audit key, and brings its schema up to date
/// (or, with `database.migrate_on_start = false`, insists that it is).
async fn open_store(config: &Config) -> anyhow::Result<(Store, SharedClock)> {
    let clock: SharedClock = Arc::new(SystemClock);
    let key = crate::engine::audit::load_key(&config.audit)
        .map_err(|e| UsageError::Invalid(e.to_string()))?;
    let store = Store::connect(&config.database, clock.clone())
        .await?
        .with_audit_key(key);
    let ready = if config.database.migrate_on_start {
        store
            .migrate()
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from)
    } else {
        store.readiness().await.map_err(anyhow::Error::from)
    };
    if let Err(e) = ready {
        store.close().await;
        return Err(e);
    }
    Ok((store, clock))
}

/// `--source` must name a source configured with `kind = "scim"`.
fn check_scim_source(config: &Config, name: &str) -> Result<(), UsageError> {
    if config
        .sources
        .get(name)
        .is_some_and(|s| s.kind == SourceKind::Scim)
    {
        return Ok(());
    }
    let configured: Vec<&str> = config.sources_of(SourceKind::Scim).collect();
    let configured = if configured.is_empty() {
        "none (add `[sources.<name>] kind = \"scim\"` to the configuration)".to_owned()
    } else {
        configured.join(", ")
    };
    let shown: String = name.chars().take(64).collect();
    Err(UsageError::Invalid(format!(
        "source `{}` is not configured as a SCIM source; configured SCIM sources: {configured}",
        shown.escape_debug()
    )))
}

/// A label is one line of at most [`MAX_LABEL_CHARS`] characters; empty means none.
fn check_label(label: Option<&str>) -> Result<Option<String>, UsageError> {
    let Some(label) = label.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if label.chars().any(char::is_control) {
        return Err(UsageError::Invalid(
            "--label: must be one line without control characters".into(),
        ));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(UsageError::Invalid(format!(
            "--label: at most {MAX_LABEL_CHARS} characters"
        )));
    }
    Ok(Some(label.to_owned()))
}

/// The prefix in `idbridge token revoke <PREFIX>`: a prefix, or a whole token to take it from.
/// The argument is never echoed back, in case it is a mistyped secret.
fn prefix_argument(argument: &str) -> Result<String, UsageError> {
    let argument = argument.trim();
    if let Some((prefix, _)) = auth::token::parse(argument) {
        return Ok(prefix.to_owned());
    }
    let lower = argument.to_ascii_lowercase();
    if auth::token::is_prefix(&lower) {
        return Ok(lower);
    }
    Err(UsageError::Invalid(
        "expected a token prefix (8 hex characters, as shown by `idbridge token list`) \
         or a whole token"
            .into(),
    ))
}

async fn token_create(
    store: &Store,
    clock: &dyn Clock,
    source: &str,
    lifetime: TokenLifetime,
    label: Option<String>,
) -> anyhow::Result<()> {
    let registered = store
        .ensure_source(source, SourceKind::Scim)
        .await
        .with_context(|| format!("cannot register source `{source}`"))?;
    let expires_at = lifetime.expires_at(clock.now());
    let (token, record) = auth::issue_token(store, registered.id, label, expires_at)
        .await
        .context("cannot issue a token")?;
    let expiry = expires_at.map_or_else(
        || "never expires".to_owned(),
        |at| format!("expires {}", when(at)),
    );
    println!("token {} for source `{source}` ({expiry}):", record.prefix);
    println!();
    println!("    {}", token.expose());
    println!();
    println!("It cannot be shown again: store it in the IdP's provisioning settings now.");
    println!("SCIM base URL path: /scim/v2/{source} (append it to this server's public URL)");
    Ok(())
}

async fn token_list(store: &Store, clock: &dyn Clock, source: Option<&str>) -> anyhow::Result<()> {
    let sources = store.sources().await?;
    let filter = match source {
        None => None,
        Some(name) => match sources.iter().find(|s| s.name == name) {
            Some(s) => Some(s.id),
            None => bail!(
                "no source `{}` has tokens (a source is registered by its first `idbridge token create`)",
                name.escape_debug()
            ),
        },
    };
    let tokens = store.scim_tokens(filter).await?;
    if tokens.is_empty() {
        println!("no tokens");
        return Ok(());
    }
    let now = clock.now();
    let source_name = |t: &ScimToken| {
        sources
            .iter()
            .find(|s| s.id == t.source_id)
            .map_or_else(|| t.source_id.to_string(), |s| s.name.clone())
    };
    let header = [
        "PREFIX",
        "SOURCE",
        "LABEL",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "STATUS",
    ];
    let mut rows: Vec<[String; 7]> = vec![header.map(str::to_owned)];
    for t in &tokens {
        rows.push([
            t.prefix.clone(),
            source_name(t),
            t.label
                .as_deref()
                .map_or_else(|| "-".to_owned(), |l| l.chars().map(printable).collect()),
            when(t.created_at),
            t.expires_at.map_or_else(|| "never".to_owned(), when),
            t.last_used_at.map_or_else(|| "never".to_owned(), when),
            t.status(now).to_string(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

async fn token_revoke(store: &Store, clock: &dyn Clock, prefix: &str) -> anyhow::Result<()> {
    let Some(token) = store.scim_token_by_prefix(prefix).await? else {
        bail!("no token with prefix {prefix}");
    };
    if let Some(at) = token.revoked_at {
        bail!("token {prefix} was already revoked at {}", when(at));
    }
    let was_expired = token.status(clock.now()) == TokenStatus::Expired;
    if !store.revoke_scim_token(prefix).await? {
        bail!("token {prefix} was already revoked");
    }
    let source = store
        .sources()
        .await?
        .into_iter()
        .find(|s| s.id == token.source_id)
        .map_or_else(|| token.source_id.to_string(), |s| s.name);
    let note = if was_expired {
        "; it had already expired"
    } else {
        "; requests with it are refused within 5 seconds"
    };
    println!("revoked token {prefix} of source `{source}`{note}");
    Ok(())
}

/// A timestamp in listings: minutes, UTC.
fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%MZ").to_string()
}

/// Control characters in stored text become `?` on the terminal.
fn printable(c: char) -> char {
    if c.is_control() { '?' } else { c }
}

fn load(cli: &Cli) -> Result<Config, UsageError> {
    Ok(config::load(cli.config.as_deref())?)
}

fn init_logs(config: &Config) -> anyhow::Result<()> {
    telemetry::init(&config.log).context("cannot set up logging")
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::builder(config).build().await?;
    app::cancel_on_signals(app.shutdown_token());
    app.run().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;

    #[test]
    fn revoke_takes_a_prefix_or_the_prefix_of_a_whole_token_and_never_echoes_other_input() {
        assert_eq!(prefix_argument("0123abcd").unwrap(), "0123abcd");
        assert_eq!(prefix_argument(" 0123ABCD ").unwrap(), "0123abcd");
        let token = format!("idb_0123abcd_{}", "f".repeat(64));
        assert_eq!(prefix_argument(&token).unwrap(), "0123abcd");
        let mistyped = format!("idb_0123abcd_{}", "f".repeat(63));
        let message = prefix_argument(&mistyped).unwrap_err().to_string();
        assert!(!message.contains("fff"), "{message}");
        for bad in ["", "0123abc", "0123abcde", "0123abcg", "ünicode!"] {
            assert!(prefix_argument(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_create_needs_a_source_configured_as_scim_and_lists_the_ones_that_are() {
        let mut config = Config::default();
        let none = check_scim_source(&config, "entra").unwrap_err().to_string();
        assert!(none.contains("`entra`") && none.contains("none"), "{none}");
        config
            .sources
            .insert("okta".into(), SourceConfig::new(SourceKind::Okta));
        config
            .sources
            .insert("entra".into(), SourceConfig::new(SourceKind::Scim));
        check_scim_source(&config, "entra").expect("scim source");
        let polled = check_scim_source(&config, "okta").unwrap_err().to_string();
        assert!(
            polled.contains("`okta`") && polled.contains("configured SCIM sources: entra"),
            "{polled}"
        );
    }

    #[test]
    fn labels_are_one_trimmed_line_of_bounded_length() {
        assert_eq!(check_label(None).unwrap(), None);
        assert_eq!(check_label(Some("  ")).unwrap(), None);
        assert_eq!(
            check_label(Some(" Entra prod ")).unwrap().as_deref(),
            Some("Entra prod")
        );
        assert!(check_label(Some("a\nb")).is_err());
        assert!(check_label(Some("\u{1b}[31mred")).is_err());
        assert!(check_label(Some(&"x".repeat(MAX_LABEL_CHARS + 1))).is_err());
    }
}
