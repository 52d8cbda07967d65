//! `idbridge execute [--run ID]`: carries out the stored runs' actions against the configured
//! targets until nothing is left to claim, and prints one line per phase. Exits non-zero when
//! any action failed or was poisoned.

use crate::config::Config;
use crate::domain::ActionPhase;
use crate::engine::execute::{ExecuteOptions, RecordingNotifier, execute};
use crate::store::Store;

/// Runs the executor and prints its summary.
pub(super) async fn run(store: &Store, config: &Config, run: Option<&str>) -> anyhow::Result<()> {
    let run = match run {
        Some(text) => Some(super::runs::resolve(store, text).await?),
        None => None,
    };
    let (targets, admin_groups) = crate::engine::run::connectors(store, config).await?;
    let opts = ExecuteOptions {
        run,
        executor_id: format!("cli-{}", uuid::Uuid::new_v4().simple()),
        admin_groups,
    };
    let report = execute(store, &targets, &RecordingNotifier, &config.executor, &opts).await?;
    println!("claimed {}", report.claimed);
    for phase in [
        ActionPhase::Confirmed,
        ActionPhase::Skipped,
        ActionPhase::Failed,
        ActionPhase::Poisoned,
    ] {
        println!("{:<10} {}", phase.as_str(), report.count(phase));
    }
    println!(
        "{:<10} {}",
        "retried",
        report.phases.get("planned").copied().unwrap_or(0)
    );
    if report.cascaded_skips > 0 {
        println!(
            "skipped after an earlier rung failed: {}",
            report.cascaded_skips
        );
    }
    for (id, status) in &report.finished_runs {
        println!("run {id} {}", status.as_str());
    }
    let bad = report.count(ActionPhase::Failed) + report.count(ActionPhase::Poisoned);
    if bad > 0 {
        anyhow::bail!("{bad} action(s) failed or were poisoned");
    }
    Ok(())
}
