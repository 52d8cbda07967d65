//! `idbridge undo run <id>` and `idbridge undo person <user>`: puts accounts back the way
//! they were before a run or before a person's latest removal, as an `undo` run through the
//! same pipeline as the rules, and prints what is restored, what is left alone and why.

use std::fmt::Write as _;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::UsageError;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::RunStatus;
use crate::engine::undo::{UndoError, UndoOptions, UndoOutcome, UndoWhat, undo};
use crate::store::Store;

/// `idbridge undo`'s options.
#[derive(Debug, Args)]
pub struct UndoArgs {
    #[command(subcommand)]
    pub what: UndoCommand,
    /// Record the plan with zero writes.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Restore people removed as leavers too (a security event: each is audited).
    #[arg(long, global = true)]
    pub include_leavers: bool,
    /// Store the plan without carrying it out (`idbridge execute` does that later).
    #[arg(long, global = true)]
    pub no_execute: bool,
    /// Who asks for the undo (default: IDBRIDGE_PRINCIPAL, else USER).
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub principal: Option<String>,
    /// Print JSON instead of the report.
    #[arg(long, global = true)]
    pub json: bool,
}

/// What to undo.
#[derive(Debug, Subcommand)]
pub enum UndoCommand {
    /// Every account the run changed, back to how it was before the run.
    Run {
        /// The run's id, or its first eight or more characters.
        run: String,
    },
    /// One person's latest removal, undone.
    Person {
        /// Their username now, their username before the removal, or their email.
        user: String,
        /// Only their account on this target.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
    },
}

/// Plans the undo, stores it, carries it out and prints the outcome.
pub(super) async fn run(
    store: &Store,
    clock: &SharedClock,
    config: &Config,
    args: &UndoArgs,
) -> anyhow::Result<()> {
    let what = match &args.what {
        UndoCommand::Run { run } => UndoWhat::Run(super::runs::resolve(store, run).await?),
        UndoCommand::Person { user, target } => {
            if let Some(t) = target
                && !config.targets.contains_key(t)
            {
                return Err(UsageError::Invalid(format!(
                    "--target: no target `{}` is configured",
                    t.escape_debug()
                ))
                .into());
            }
            UndoWhat::Person {
                who: user.clone(),
                target: target.clone(),
            }
        }
    };
    let opts = UndoOptions {
        dry_run: args.dry_run,
        include_leavers: args.include_leavers,
        principal: super::engine::principal(args.principal.as_deref()),
        execute: !args.no_execute,
    };
    let outcome = match undo(store, config, &what, &opts, clock.now()).await {
        Ok(o) => o,
        Err(
            e @ (UndoError::NoSuchRun(_)
            | UndoError::NotUndoable { .. }
            | UndoError::NoSuchPerson(_)
            | UndoError::Ambiguous { .. }
            | UndoError::BadName),
        ) => return Err(UsageError::Invalid(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    if let (Some(key), Some(path)) = (store.audit_key(), &config.audit.checkpoint_file) {
        crate::engine::audit::write_checkpoint(store, key, path)
            .await
            .with_context(|| format!("cannot write the audit checkpoint {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", render(&outcome));
    }
    if outcome.run.as_ref().map(|r| r.status) == Some(RunStatus::Failed) {
        anyhow::bail!("some undo actions failed or were poisoned; see `idbridge runs show <run>`");
    }
    Ok(())
}

/// Stored text for the terminal: one line, no control characters.
fn clean(s: &str) -> String {
    s.chars().map(super::printable).collect()
}

fn render(o: &UndoOutcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "undo of {}", clean(&o.undoing));
    if let Some(why) = &o.nothing {
        let _ = writeln!(out, "{why}");
        return out;
    }
    let p = &o.plan;
    if p.actions.is_empty() {
        let _ = writeln!(out, "nothing to undo: no account needs restoring");
    }
    for a in &p.actions {
        let _ = writeln!(
            out,
            "  {:<10} {:<28} {}",
            clean(&a.target),
            clean(&a.username),
            super::engine::describe(&a.kind)
        );
    }
    for c in &p.conflicts {
        let _ = writeln!(out, "conflict: {}", clean(c));
    }
    if !p.leavers_skipped.is_empty() {
        let _ = writeln!(
            out,
            "leavers left as they are (giving a leaver access back is a security event; \
             --include-leavers restores them):"
        );
        for l in &p.leavers_skipped {
            let _ = writeln!(out, "  {}", clean(l));
        }
    }
    if !p.leavers_restored.is_empty() {
        let _ = writeln!(
            out,
            "LEAVERS being given access back (--include-leavers; audited as \
             security.leaver_restored):"
        );
        for l in &p.leavers_restored {
            let _ = writeln!(out, "  {}", clean(l));
        }
    }
    for u in &p.unchanged {
        let _ = writeln!(out, "already as before: {}", clean(u));
    }
    for n in &p.notes {
        let _ = writeln!(out, "note: {}", clean(n));
    }
    if let Some(r) = &o.run {
        let accounts: std::collections::HashSet<_> =
            p.actions.iter().map(|a| a.account_id).collect();
        let _ = writeln!(
            out,
            "\nrun {} (undo, {}): {} — {} actions on {} accounts, plan hash {}",
            r.run,
            r.mode.as_str(),
            r.status.as_str(),
            p.actions.len(),
            accounts.len(),
            r.plan_hash
        );
        for reason in &r.budget.reasons {
            let _ = writeln!(out, "  budget: {reason}");
        }
        match r.status {
            RunStatus::Held => {
                let _ = writeln!(
                    out,
                    "  held whole: nothing of it runs until someone other than its starter \
                     approves it:\n  idbridge approve {} --hash {} --as <approver>",
                    r.run, r.plan_hash
                );
            }
            RunStatus::Planned if r.executed.is_none() => {
                let _ = writeln!(
                    out,
                    "  stored, not carried out: idbridge execute --run {}",
                    r.run
                );
            }
            _ => {}
        }
        if let Some(e) = &r.executed {
            let phases: Vec<String> = e.phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
            let _ = writeln!(out, "  executed: {}", phases.join(", "));
        }
    }
    out
}
