//! `idbridge sources check|list` and `idbridge sync source <name>`: checking a configured
//! identity source's credentials and data, and reading it into the store, with what they print.

use std::fmt::Write as _;

use anyhow::Context;

use super::UsageError;
use crate::config::{Config, SourceConfig};
use crate::domain::SourceKind;
use crate::engine::sources::{
    SourceSyncReport, configured_source, sync_source, sync_source_changes,
};
use crate::sources::{Source, SourceCheck, SourceConnector};
use crate::store::Store;

/// The configuration of polled source `name`, or a usage error listing the polled ones.
pub(super) fn source_config<'a>(
    config: &'a Config,
    name: &str,
) -> Result<&'a SourceConfig, UsageError> {
    let polled: Vec<&str> = config
        .sources
        .iter()
        .filter(|(_, s)| s.kind != SourceKind::Scim)
        .map(|(n, _)| n.as_str())
        .collect();
    let listed = if polled.is_empty() {
        "none (add `[sources.<name>]` with kind okta, entra, google, ldap or csv)".to_owned()
    } else {
        polled.join(", ")
    };
    let shown: String = name.chars().take(64).collect();
    match config.sources.get(name) {
        Some(s) if s.kind == SourceKind::Scim => Err(UsageError::Invalid(format!(
            "source `{}` is a SCIM source: the IdP pushes to idbridge, there is nothing to poll; \
             polled sources: {listed}",
            shown.escape_debug()
        ))),
        Some(s) => Ok(s),
        None => Err(UsageError::Invalid(format!(
            "source `{}` is not configured; polled sources: {listed}",
            shown.escape_debug()
        ))),
    }
}

/// Connects to the source and prints who idbridge is there and what it can read.
pub(super) async fn check(name: &str, cfg: &SourceConfig, json: bool) -> anyhow::Result<()> {
    let connector = SourceConnector::from_config(name, cfg)?;
    let report = connector
        .check()
        .await
        .with_context(|| format!("source `{name}`"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_check(name, &report));
    }
    Ok(())
}

fn render_check(name: &str, c: &SourceCheck) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "source {name} ({})", c.kind);
    let _ = writeln!(out, "  signed in as:   {}", c.principal);
    if !c.granted.is_empty() {
        let _ = writeln!(out, "  granted:        {}", c.granted.join(", "));
    }
    for m in &c.missing {
        let _ = writeln!(out, "  MISSING:        {m}");
    }
    match c.people {
        Some(n) => {
            let _ = writeln!(out, "  people:         {n}");
        }
        None => {
            let _ = writeln!(out, "  people:         (counted by a sync)");
        }
    }
    let _ = writeln!(out, "  last login:     {}", c.last_login);
    let _ = writeln!(out, "  sign-in events: {}", c.sign_ins);
    let _ = writeln!(out, "  incremental:    {}", c.incremental);
    for n in &c.notes {
        let _ = writeln!(out, "  note:           {n}");
    }
    out
}

/// Reads the source into the store and prints the report. With `incremental`, applies the
/// changes since the last complete sync instead, falling back to a full sync when the
/// source has no incremental listing or its checkpoint expired.
pub(super) async fn sync(
    store: &Store,
    name: &str,
    cfg: &SourceConfig,
    incremental: bool,
    json: bool,
) -> anyhow::Result<()> {
    let (record, connector, opts) = configured_source(store, name, cfg).await?;
    if incremental {
        match sync_source_changes(store, &record, &connector, &opts).await? {
            Some(r) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!(
                        "changes from {name}: {} updated, {} removed, {} pages in {} ms{}",
                        r.upserted,
                        r.removed,
                        r.pages,
                        r.elapsed_ms,
                        if r.finished { "" } else { " (stopped early)" }
                    );
                    if let Some(why) = &r.reason {
                        println!("  problem: {why}");
                    }
                }
                return match r.reason {
                    Some(why) if !r.finished => {
                        anyhow::bail!("incremental sync of `{name}` stopped: {why}")
                    }
                    _ => Ok(()),
                };
            }
            None if !json => {
                println!("no usable incremental checkpoint for {name}; running a full sync");
            }
            None => {}
        }
    }
    let report = sync_source(store, &record, &connector, &opts).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_sync(name, &report));
    }
    match &report.reason {
        None => Ok(()),
        Some(reason) => anyhow::bail!(
            "snapshot of `{name}` is {}: {reason}",
            report.snapshot.status
        ),
    }
}

fn render_sync(name: &str, r: &SourceSyncReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "snapshot of {name}: {} — {} people, {} groups, {} pages in {} ms",
        r.snapshot.status, r.identities, r.groups, r.pages, r.elapsed_ms
    );
    if !r.statuses.is_empty() {
        let parts: Vec<String> = r.statuses.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "  statuses: {}", parts.join(", "));
    }
    let _ = writeln!(
        out,
        "  with a last login: {} of {}",
        r.with_last_login, r.identities
    );
    if let Some(s) = &r.sign_ins {
        let _ = writeln!(
            out,
            "  sign-ins to Confluence: {} read, {} new{}",
            s.read,
            s.new,
            s.reason
                .as_deref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        );
    }
    for n in &r.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    if let Some(reason) = &r.reason {
        let _ = writeln!(out, "  not complete: {reason}");
        let _ = writeln!(
            out,
            "  nobody will be treated as a leaver or removed on the strength of this snapshot"
        );
    }
    out
}
