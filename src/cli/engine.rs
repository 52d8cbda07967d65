//! `idbridge plan`, `idbridge run` and `idbridge approve`: the reconciliation engine from the
//! command line, with plain-text reports (or JSON) an identity admin can read and paste.

use std::fmt::Write as _;

use anyhow::Context;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::{Explanation, Plan, RunStatus};
use crate::engine::run::{self, Preview, RunOptions, RunSummary};
use crate::engine::safety::BudgetReport;
use crate::store::Store;

pub(super) use super::audit::principal;

/// `idbridge plan`: what the rules would do now, and why; nothing is stored but links.
pub(super) async fn plan(
    store: &Store,
    clock: &SharedClock,
    config: &Config,
    opts: &RunOptions,
    explain: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let now = clock.now();
    if let Some(user) = explain {
        let found = run::explain(store, config, opts, user, now).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&found)?);
        } else {
            print!("{}", render_explanations(user, &found));
        }
        if found.is_empty() {
            anyhow::bail!("no Confluence account is named or addressed `{user}`");
        }
        return Ok(());
    }
    let preview = run::preview(store, config, opts, now).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&preview)?);
    } else {
        print!("{}", render_preview(&preview));
    }
    Ok(())
}

/// `idbridge run`: plan, check budgets, store, and carry out what is within budget.
pub(super) async fn run_rules(
    store: &Store,
    clock: &SharedClock,
    config: &Config,
    opts: &RunOptions,
    json: bool,
) -> anyhow::Result<()> {
    let outcome = run::run(store, config, opts, clock.now()).await?;
    checkpoint(store, config).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(());
    }
    print!("{}", render_preview(&outcome.preview));
    if outcome.runs.is_empty() {
        println!("\nnothing to do: no rule plans an action now");
    }
    for r in &outcome.runs {
        print!("{}", render_run(r));
    }
    let failed = outcome.runs.iter().any(|r| r.status == RunStatus::Failed);
    if failed {
        anyhow::bail!("some actions failed or were poisoned; see `idbridge runs show <run>`");
    }
    Ok(())
}

/// `idbridge approve`: a second principal approves a held run by its hash.
pub(super) async fn approve(
    store: &Store,
    clock: &SharedClock,
    config: &Config,
    run_text: &str,
    approver: &str,
    hash: Option<&str>,
    execute: bool,
) -> anyhow::Result<()> {
    let run_id = super::runs::resolve(store, run_text).await?;
    let summary = run::approve(store, config, run_id, approver, hash, execute, clock.now()).await?;
    checkpoint(store, config).await?;
    println!("run {run_id} approved by {approver}");
    print!("{}", render_run(&summary));
    Ok(())
}

/// Moves the audit checkpoint outside the database up to the newest entry, when configured.
pub(super) async fn checkpoint(store: &Store, config: &Config) -> anyhow::Result<()> {
    if let (Some(key), Some(path)) = (store.audit_key(), &config.audit.checkpoint_file) {
        crate::engine::audit::write_checkpoint(store, key, path)
            .await
            .with_context(|| format!("cannot write the audit checkpoint {}", path.display()))?;
    }
    Ok(())
}

pub(super) fn render_preview(p: &Preview) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "links: {} linked, {} unlinked, {} conflicts",
        p.links.linked, p.links.unlinked, p.links.conflicts
    );
    for s in &p.sources {
        let _ = writeln!(
            out,
            "source {:<16} {}",
            s.name,
            if s.complete {
                "complete".to_owned()
            } else {
                format!(
                    "INCOMPLETE: {} (no removals from it)",
                    s.incomplete_reason
                        .as_deref()
                        .unwrap_or("no complete snapshot")
                )
            }
        );
    }
    for t in &p.targets {
        let _ = writeln!(
            out,
            "target {:<16} {}",
            t.name,
            if t.complete {
                "complete".to_owned()
            } else {
                format!(
                    "INCOMPLETE: {} (no removals on it)",
                    t.incomplete_reason
                        .as_deref()
                        .unwrap_or("no complete inventory")
                )
            }
        );
    }
    render_plan(&mut out, "enforce", &p.enforce, &p.enforce_budget);
    render_plan(&mut out, "dry run", &p.dry_run, &p.dry_run_budget);
    let conflicts = if p.enforce.conflicts.is_empty() {
        &p.dry_run.conflicts
    } else {
        &p.enforce.conflicts
    };
    if !conflicts.is_empty() {
        let _ = writeln!(out, "\nconflicts (never acted on):");
        for c in conflicts {
            let _ = writeln!(out, "  {c}");
        }
    }
    let notes = if p.enforce.notes.is_empty() {
        &p.dry_run.notes
    } else {
        &p.enforce.notes
    };
    for n in notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

fn render_plan(out: &mut String, label: &str, plan: &Plan, budget: &BudgetReport) {
    if plan.actions.is_empty() {
        return;
    }
    let accounts: std::collections::HashSet<_> =
        plan.actions.iter().map(|a| a.account_id).collect();
    let _ = writeln!(
        out,
        "\n{label}: {} actions on {} accounts (of {} managed) — {}",
        plan.actions.len(),
        accounts.len(),
        plan.managed_population,
        if budget.held {
            "OVER BUDGET: held for approval"
        } else {
            "within budget"
        }
    );
    for a in &plan.actions {
        let _ = writeln!(
            out,
            "  {:<10} {:<24} {:<40} rule {}: {}",
            a.target,
            a.username,
            describe(&a.kind),
            a.reason.rule,
            a.reason.because.join("; ")
        );
    }
    for r in &budget.reasons {
        let _ = writeln!(out, "  budget: {r}");
    }
}

/// An action in a few words, as the reports print it.
pub(super) fn describe(kind: &crate::domain::ActionKind) -> String {
    use crate::domain::ActionKind as K;
    match kind {
        K::Notify => "notify".into(),
        K::RemoveFromGroup { group, licence } => format!(
            "remove from {group}{}",
            if *licence { " (licence)" } else { "" }
        ),
        K::Deactivate => "deactivate".into(),
        K::Rename { to, .. } => format!("rename to {to}"),
        K::AddToGroup { group } => format!("add to {group}"),
        K::ChangeDirectory { to, .. } => format!("move to directory {to}"),
        K::Delete => "DELETE".into(),
        K::Reactivate => "reactivate".into(),
    }
}

pub(super) fn render_run(r: &RunSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nrun {} ({}): {} — {} actions, plan hash {}",
        r.run,
        r.mode.as_str(),
        r.status.as_str(),
        r.actions,
        r.plan_hash
    );
    if r.status == RunStatus::Held {
        let _ = writeln!(
            out,
            "  held whole: nothing of it runs until someone other than its starter approves it:\n  \
             idbridge approve {} --hash {} --as <approver>",
            r.run, r.plan_hash
        );
    }
    if let Some(e) = &r.executed {
        let phases: Vec<String> = e.phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
        let _ = writeln!(out, "  executed: {}", phases.join(", "));
    }
    out
}

fn render_explanations(user: &str, found: &[Explanation]) -> String {
    let mut out = String::new();
    if found.is_empty() {
        let _ = writeln!(out, "no account matches `{user}`");
    }
    for e in found {
        let _ = writeln!(out, "{} on {}:", e.username, e.target);
        for f in &e.facts {
            let _ = writeln!(out, "  {f}");
        }
        for r in &e.rules {
            let _ = writeln!(
                out,
                "  rule {}: {}",
                r.rule,
                if r.selected {
                    "selects this person"
                } else {
                    "does not select this person"
                }
            );
            for (c, held) in &r.criteria {
                let _ = writeln!(out, "    [{}] {c}", if *held { "x" } else { " " });
            }
            for h in &r.held_back {
                let _ = writeln!(out, "    held back: {h}");
            }
            for a in &r.actions {
                let _ = writeln!(out, "    plans: {}", describe(a));
            }
        }
    }
    out
}
