//! `idbridge regrant [--dry-run] [--json]`: gives the licence back to people idbridge
//! removed for inactivity who have signed in since, and raises the alerts (a leaver signing
//! in, no free seat). Prints what was planned, done and alerted.

use std::fmt::Write as _;

use anyhow::Context;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::RunStatus;
use crate::engine::regrant::{RegrantOptions, RegrantOutcome, regrant};
use crate::store::Store;

/// Makes one regrant pass and prints its outcome.
pub(super) async fn run(
    store: &Store,
    clock: &SharedClock,
    config: &Config,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let outcome = regrant(store, config, &RegrantOptions { dry_run }, clock.now()).await?;
    if let (Some(key), Some(path)) = (store.audit_key(), &config.audit.checkpoint_file) {
        crate::engine::audit::write_checkpoint(store, key, path)
            .await
            .with_context(|| format!("cannot write the audit checkpoint {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", render(&outcome, dry_run));
    }
    if outcome.status == Some(RunStatus::Failed) {
        anyhow::bail!(
            "some regrant actions failed or were poisoned; see `idbridge runs show <run>`"
        );
    }
    Ok(())
}

fn render(o: &RegrantOutcome, dry_run: bool) -> String {
    let mut out = String::new();
    if o.plan.actions.is_empty() {
        let _ = writeln!(out, "nothing to give back now");
    }
    for a in &o.plan.actions {
        let _ = writeln!(
            out,
            "{}/{}: {} ({})",
            a.target,
            a.username,
            a.kind.name(),
            serde_json::to_string(&a.kind).unwrap_or_default()
        );
    }
    if let Some(run) = o.run {
        let status = o.status.map(|s| s.as_str()).unwrap_or("unknown");
        let _ = writeln!(
            out,
            "run {run} {status}{}",
            if dry_run { " (dry run)" } else { "" }
        );
    }
    for a in &o.plan.alerts {
        let _ = writeln!(
            out,
            "alert {} {}/{}: {}",
            a.kind.audit_action(),
            a.target,
            a.username,
            a.why
        );
    }
    if dry_run && !o.plan.alerts.is_empty() {
        let _ = writeln!(out, "(dry run: no alert recorded)");
    } else if !o.plan.alerts.is_empty() {
        let _ = writeln!(
            out,
            "alerts: {} new, {} raised before",
            o.alerts_raised, o.alerts_known
        );
    }
    for n in &o.plan.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}
