//! The command line: subcommands, their options and what each does. Errors leave here as
//! `anyhow::Error` for `main` to print on one line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{self, App};
use crate::clock::SystemClock;
use crate::config::{self, Config, DatabaseUrl};
use crate::store::Store;
use crate::telemetry;

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
    /// Run the service on an embedded SQLite database with built-in defaults; ignores --config.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// SQLite file to keep the demo's state in (created if missing).
        #[arg(long, default_value = "idbridge-demo.db")]
        database: PathBuf,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and print it with every secret redacted.
    CheckConfig,
    /// Print the version.
    Version,
}

/// A problem with the configuration; `main` exits with status 2 for these.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UsageError(#[from] config::ConfigError);

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
        Command::Demo { listen, database } => {
            let mut config = Config::default();
            config.server.listen = listen;
            config.database.url = DatabaseUrl::new(format!("sqlite://{}", database.display()));
            init_logs(&config)?;
            println!("idbridge demo: state in {}", database.display());
            println!("  health:    http://{listen}/healthz");
            println!("  readiness: http://{listen}/readyz");
            println!("  metrics:   http://{listen}/metrics");
            println!("press Ctrl-C to stop");
            serve(config).await
        }
    }
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
