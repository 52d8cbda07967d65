//! `idbridge targets check <name>` and `idbridge sync target <name>`: probing a configured
//! Confluence target and reading its inventory into the store, with what they print.

use std::fmt::Write as _;

use anyhow::Context;

use super::UsageError;
use crate::config::{Config, TargetConfig};
use crate::engine::inventory::{InventoryReport, sync_configured_target};
use crate::store::Store;
use crate::targets::{Capability, Connector, LicenceUsage, Probe, Support, Target};

/// The configuration of target `name`, or a usage error listing the configured ones.
pub(super) fn target_config<'a>(
    config: &'a Config,
    name: &str,
) -> Result<&'a TargetConfig, UsageError> {
    config.targets.get(name).ok_or_else(|| {
        let configured: Vec<&str> = config.targets.keys().map(String::as_str).collect();
        let configured = if configured.is_empty() {
            "none (add `[targets.<name>]` to the configuration)".to_owned()
        } else {
            configured.join(", ")
        };
        let shown: String = name.chars().take(64).collect();
        UsageError::Invalid(format!(
            "target `{}` is not configured; configured targets: {configured}",
            shown.escape_debug()
        ))
    })
}

/// Probes the target and prints what it is and can do; with `json`, as one JSON document.
pub(super) async fn check(name: &str, cfg: &TargetConfig, json: bool) -> anyhow::Result<()> {
    let connector = Connector::new(name, cfg)?;
    let probe = connector
        .probe()
        .await
        .with_context(|| format!("target `{name}` at {}", cfg.base_url))?;
    let licence = licence_figures(&connector, &probe).await;
    if json {
        let doc = serde_json::json!({
            "target": name,
            "kind": cfg.kind,
            "base_url": cfg.base_url,
            "instance": probe.info,
            "capabilities": probe.capabilities.iter().map(|(c, s)| {
                serde_json::json!({"capability": c, "support": s})
            }).collect::<Vec<_>>(),
            "licence": licence,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render_check(name, cfg, &probe, &licence));
    }
    Ok(())
}

/// What `targets check` reports about licences.
#[derive(Debug, serde::Serialize)]
struct LicenceFigures {
    max_users: Option<u64>,
    in_use: Option<u64>,
    licence_groups: Vec<String>,
    problems: Vec<String>,
}

async fn licence_figures(connector: &Connector, probe: &Probe) -> LicenceFigures {
    let mut figures = LicenceFigures {
        max_users: None,
        in_use: None,
        licence_groups: Vec::new(),
        problems: Vec::new(),
    };
    if !probe
        .capabilities
        .get(Capability::LicenceUsage)
        .is_supported()
    {
        return figures;
    }
    match connector.licence_counters().await {
        Ok((max, used)) => {
            figures.max_users = max;
            figures.in_use = used;
        }
        Err(e) => figures.problems.push(format!("licence counters: {e}")),
    }
    match connector.licence_groups().await {
        Ok(g) => figures.licence_groups = g,
        Err(e) => figures.problems.push(format!("licence groups: {e}")),
    }
    figures
}

fn render_check(name: &str, cfg: &TargetConfig, probe: &Probe, lic: &LicenceFigures) -> String {
    let mut out = String::new();
    let info = &probe.info;
    let _ = writeln!(out, "target {name} ({}) at {}", cfg.kind, cfg.base_url);
    let _ = writeln!(out, "  product      {}", info.product);
    let _ = writeln!(
        out,
        "  version      {}",
        info.version.as_deref().unwrap_or("unknown")
    );
    if let Some(p) = &info.principal {
        let _ = writeln!(out, "  signed in as {p}");
    }
    let _ = writeln!(out, "  last login   {}", info.last_login.as_str());
    let _ = writeln!(out);
    let _ = writeln!(out, "  {:<28} {:<4} how / why not", "capability", "ok");
    for (cap, support) in probe.capabilities.iter() {
        let (ok, text) = match support {
            Support::Supported { via } => ("yes", via),
            Support::Unsupported { why } => ("no", why),
        };
        let _ = writeln!(out, "  {:<28} {:<4} {}", cap.as_str(), ok, text);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "  licence");
    let show =
        |v: Option<u64>| v.map_or_else(|| "unknown or unlimited".to_owned(), |n| n.to_string());
    let _ = writeln!(out, "    seats         {}", show(lic.max_users));
    let _ = writeln!(out, "    in use        {}", show(lic.in_use));
    if let Some(tier) = cfg.licence_tier {
        let _ = writeln!(out, "    tier          {tier}");
    }
    if !lic.licence_groups.is_empty() {
        let _ = writeln!(out, "    groups        {}", lic.licence_groups.join(", "));
    }
    for p in &lic.problems {
        let _ = writeln!(out, "    problem       {p}");
    }
    for note in &info.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}

/// Reads the target's inventory into the store and prints the outcome. An incomplete or
/// failed inventory is stored as such and reported as an error.
pub(super) async fn sync(
    store: &Store,
    name: &str,
    cfg: &TargetConfig,
    json: bool,
) -> anyhow::Result<()> {
    let report = sync_configured_target(store, name, cfg).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_sync(name, &report));
    }
    match &report.reason {
        None => Ok(()),
        Some(reason) => anyhow::bail!(
            "inventory of `{name}` is {}: {reason}",
            report.snapshot.status
        ),
    }
}

fn render_sync(name: &str, r: &InventoryReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "inventory of {name}: {} — {} accounts, {} groups, {} pages in {} ms",
        r.snapshot.status, r.accounts, r.groups, r.pages, r.elapsed_ms
    );
    if let Some(reason) = &r.reason {
        let _ = writeln!(out, "  not complete: {reason}");
        let _ = writeln!(
            out,
            "  nothing will be removed on the strength of this inventory"
        );
    }
    if let Some(l) = &r.licence {
        render_licence(&mut out, l);
    }
    out
}

fn render_licence(out: &mut String, l: &LicenceUsage) {
    let never = if l.last_login_known {
        l.never_logged_in.to_string()
    } else {
        "unknown (no last-login source on this instance)".to_owned()
    };
    let _ = writeln!(
        out,
        "  licensed {} · active {} · deactivated {} · licensed but never logged in {never}",
        l.licensed, l.active, l.deactivated
    );
    if let Some(tier) = l.tier {
        let pct = if tier > 0 {
            l.licensed as f64 / tier as f64 * 100.0
        } else {
            0.0
        };
        let _ = writeln!(out, "  tier {tier}: {pct:.1} % used");
    }
    if let Some(reported) = l.reported_in_use {
        let _ = writeln!(out, "  the instance reports {reported} seats in use");
    }
    for (dir, u) in &l.per_directory {
        let _ = writeln!(
            out,
            "  {dir}: licensed {} · active {} · deactivated {}",
            u.licensed, u.active, u.deactivated
        );
    }
    let _ = writeln!(out, "  basis: {}", l.basis);
}
