//! `idbridge sim …`: runs one simulator in the foreground, prints where it listens and how to
//! sign in, and stops cleanly on Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;

use super::SimCommand;
use crate::app::cancel_on_signals;
use crate::sim::{atlassian_cloud, confluence_dc, entra, google, okta};

/// Runs the simulator `command` names until a shutdown signal.
pub(super) async fn run(command: SimCommand) -> anyhow::Result<()> {
    init_sim_logs();
    match command {
        SimCommand::ConfluenceDc {
            options,
            bind,
            port,
        } => {
            let version = options.product_version;
            let users = options.users;
            let remote_api = options.remote_api;
            let crowd = options.crowd;
            let sim = confluence_dc::start(options, SocketAddr::new(bind, port))
                .await
                .with_context(|| format!("cannot listen on {bind}:{port}"))?;
            println!("Confluence Data Center {version} simulator with {users} users");
            println!("  base URL:    {}", sim.base_url());
            println!(
                "  sign in:     {} / {} (Basic) or Bearer {}",
                sim.admin_user(),
                sim.admin_password(),
                sim.pat()
            );
            println!(
                "  remote API:  {}",
                if remote_api { "enabled" } else { "disabled" }
            );
            if crowd {
                let (app, _) = sim.crowd_app();
                println!("  crowd:       {} (application `{app}`)", sim.crowd_url());
            }
            println!("  control:     {}/__sim/state", sim.root_url());
            println!("press Ctrl-C to stop");
            cancel_on_signals(sim.cancel_token());
            sim.wait().await;
        }
        SimCommand::AtlassianCloud {
            options,
            bind,
            port,
        } => {
            let users = options.users;
            let sim = atlassian_cloud::start(options, SocketAddr::new(bind, port))
                .await
                .with_context(|| format!("cannot listen on {bind}:{port}"))?;
            println!("Atlassian Cloud admin API simulator with {users} users");
            println!("  base URL:    {}", sim.base_url());
            println!("  org id:      {}", sim.org_id());
            println!("  API key:     Bearer {}", sim.api_key());
            println!("  site:        {}", sim.site_id());
            println!("  control:     {}/__sim/state", sim.base_url());
            println!("press Ctrl-C to stop");
            cancel_on_signals(sim.cancel_token());
            sim.wait().await;
        }
        SimCommand::Entra {
            options,
            bind,
            port,
        } => {
            let users = options.users;
            let premium = options.premium;
            let sim = entra::start(options, SocketAddr::new(bind, port))
                .await
                .with_context(|| format!("cannot listen on {bind}:{port}"))?;
            println!("Microsoft Entra ID (Graph v1.0) simulator with {users} users");
            println!("  graph base:  {}", sim.base_url());
            println!("  token URL:   {}", sim.token_url());
            println!("  premium:     {premium}");
            println!("  control:     {}/__sim/state", sim.base_url());
            println!("config:");
            println!("  [sources.entra]");
            println!("  kind = \"entra\"");
            println!("  base_url = \"{}\"", sim.base_url());
            println!("  token_url = \"{}\"", sim.token_url());
            println!("  tenant_id = \"{}\"", sim.tenant_id());
            println!("  client_id = \"{}\"", sim.client_id());
            println!("  client_secret = \"{}\"", sim.client_secret());
            println!("  app_id = \"{}\"", sim.app_id());
            println!("press Ctrl-C to stop");
            cancel_on_signals(sim.cancel_token());
            sim.wait().await;
        }
        SimCommand::Okta {
            options,
            bind,
            port,
        } => {
            let users = options.users;
            let rate = options
                .rate_limit
                .map_or("Okta's per-bucket defaults".to_owned(), |n| n.to_string());
            let window = options.rate_window_secs;
            let sim = okta::start(options, SocketAddr::new(bind, port))
                .await
                .with_context(|| format!("cannot listen on {bind}:{port}"))?;
            println!("Okta org simulator with {users} users");
            println!("  base URL:    {}", sim.base_url());
            println!("  SSWS token:  {}", sim.ssws_token());
            println!(
                "  service app: client_id {} (private_key_jwt, kid {}, test key {})",
                sim.client_id(),
                okta::DEMO_KEY_ID,
                okta::TEST_PRIVATE_KEY_PATH
            );
            println!("  token URL:   {}", sim.token_url());
            println!("  app id:      {} (Confluence)", sim.app_id());
            println!("  rate limit:  {rate} per {window} s window");
            println!("  control:     {}/__sim/state", sim.base_url());
            println!("  config:");
            println!("    [sources.okta]");
            println!("    kind = \"okta\"");
            println!("    base_url = \"{}\"", sim.base_url());
            println!("    token = \"{}\"", sim.ssws_token());
            println!("    app_id = \"{}\"", sim.app_id());
            println!("press Ctrl-C to stop");
            cancel_on_signals(sim.cancel_token());
            sim.wait().await;
        }
        SimCommand::Google {
            mut options,
            bind,
            port,
        } => {
            let users = options.users;
            let chosen = options.key_file.take();
            let sim = google::start(options, SocketAddr::new(bind, port))
                .await
                .with_context(|| format!("cannot listen on {bind}:{port}"))?;
            let key_file = chosen.unwrap_or_else(|| {
                std::env::temp_dir().join(format!(
                    "idbridge-sim-google-{}-key.json",
                    sim.addr().port()
                ))
            });
            std::fs::write(&key_file, sim.service_account_key_json())
                .with_context(|| format!("cannot write {}", key_file.display()))?;
            println!("Google Workspace simulator with {users} users");
            println!("  base URL:    {}", sim.base_url());
            println!("  token URL:   {}", sim.token_url());
            println!("  admin:       {}", sim.admin_subject());
            println!("  key file:    {} (test-only demo key)", key_file.display());
            println!("  control:     {}/__sim/state", sim.base_url());
            // A ready `[sources.google]` section with the key inline (a TOML literal string:
            // the compact JSON holds no single quote).
            let compact =
                serde_json::from_str::<serde_json::Value>(&sim.service_account_key_json())
                    .map(|v| v.to_string())
                    .unwrap_or_default();
            let section = format!(
                "[sources.google]\nkind = \"google\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nadmin_subject = \"{}\"\napp_name = \"{}\"\nservice_account_key = '{}'\n",
                sim.base_url(),
                sim.token_url(),
                sim.admin_subject(),
                google::model::CONFLUENCE_APP,
                compact
            );
            let toml_file = key_file.with_extension("toml");
            std::fs::write(&toml_file, &section)
                .with_context(|| format!("cannot write {}", toml_file.display()))?;
            println!(
                "  config:      {} (a [sources.google] section)",
                toml_file.display()
            );
            println!("    [sources.google]");
            println!("    kind = \"google\"");
            println!("    base_url = \"{}\"", sim.base_url());
            println!("    token_url = \"{}\"", sim.token_url());
            println!("    admin_subject = \"{}\"", sim.admin_subject());
            println!("    app_name = \"{}\"", google::model::CONFLUENCE_APP);
            println!(
                "    service_account_key: inline in that file, or IDBRIDGE_SOURCES__GOOGLE__SERVICE_ACCOUNT_KEY_FILE={}",
                key_file.display()
            );
            println!("press Ctrl-C to stop");
            cancel_on_signals(sim.cancel_token());
            sim.wait().await;
        }
    }
    println!("simulator stopped");
    Ok(())
}

/// Simulators log warnings and errors only, as text, unless `RUST_LOG` says otherwise.
fn init_sim_logs() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}
