//! `idbridge bulk`: an ad-hoc bulk operation from the command line. Reads the selection
//! (`--filter`, `--csv`), the ladder (`--action`) and the scope (`--target`), prints the
//! plan as `idbridge plan` does, and with `--apply` stores it as a `bulk` run and carries it
//! out through the safety budgets and the executor.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::UsageError;
use super::engine::{checkpoint, principal, render_preview, render_run};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::{Rule, RunStatus};
use crate::engine::bulk::{self, BulkError, BulkOptions, BulkOutcome, BulkRequest};
use crate::store::Store;

/// Unknown names printed in the report (the JSON output has them all).
const SHOWN_UNKNOWN: usize = 20;

/// `idbridge bulk`'s options.
#[derive(Debug, Args)]
#[command(after_long_help = "Filter terms, joined with `and`:\n  \
    status = deprovisioned | status in (deprovisioned, suspended, deleted, scim_inactive)\n  \
    inactive_days >= N        never_logged_in_days >= N      logged_in_once\n  \
    member_of = G | member_of in (G, H) | member_of != G | member_of not in (G, H)\n  \
    member_of_all in (G, H)   directory = D                   absent_syncs >= N\n  \
    email_domain = example.com | email_domain != example.com\n  \
    created_before = 2024-01-01 | created_after = 2024-01-01 | created < DATE | created > DATE\n  \
    attr.department = Sales   user in (alice, bob@example.com)\n\
Quote values with spaces: member_of = \"wiki editors\". See docs/bulk.md.\n\n\
Examples:\n  \
    idbridge bulk --filter 'inactive_days >= 90 and email_domain = contractor.example' \\\n    \
    --action remove-licence-groups --action deactivate\n  \
    idbridge bulk --csv leavers.csv --action deactivate --action rename --apply --as alice")]
pub struct BulkArgs {
    /// Which accounts: terms joined with `and` (at most 32 terms, 4 KiB), e.g.
    /// `inactive_days >= 90 and member_of = confluence-users`.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Which accounts: a CSV file of usernames or emails, one per row (the column headed
    /// `username` or `email`, else the first column; at most 10 MiB and 100,000 rows).
    /// Names that match no account are reported. With --filter, both must hold.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// What to do, in order (repeatable): notify[=DAYS], remove-licence-groups, deactivate,
    /// rename, remove-groups=all|A,B, add-groups=A,B, change-directory=NAME, delete.
    #[arg(long = "action", value_name = "ACTION", required = true)]
    pub actions: Vec<String>,
    /// Only accounts on this target (repeatable); default: every target.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Allow `--action delete`.
    #[arg(long)]
    pub allow_delete: bool,
    /// Store the plan as a `bulk` run and carry it out (over a safety budget it is held
    /// until someone else runs `idbridge approve`). Without it nothing is stored (but new
    /// links): the plan is only printed, as by `idbridge plan`.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: store the run without carrying it out (`idbridge execute` does that).
    #[arg(long)]
    pub no_execute: bool,
    /// Who asks for it (default: IDBRIDGE_PRINCIPAL, else USER).
    #[arg(long = "as", value_name = "NAME")]
    pub principal: Option<String>,
    /// Print JSON instead of the report.
    #[arg(long)]
    pub json: bool,
}

impl BulkArgs {
    /// The synthetic rule the options stand for, or why they make none.
    pub(super) fn rule(&self, config: &Config) -> Result<Rule, UsageError> {
        let usage = |e: BulkError| UsageError::Invalid(e.to_string());
        if self.no_execute && !self.apply {
            return Err(UsageError::Invalid(
                "--no-execute goes with --apply (without it nothing is stored)".into(),
            ));
        }
        let criteria = match &self.filter {
            Some(text) => bulk::parse_filter(text).map_err(|e| usage(e.into()))?,
            None => Vec::new(),
        };
        let listed = match &self.csv {
            Some(path) => Some(bulk::read_names_csv(path).map_err(usage)?),
            None => None,
        };
        let actions = self
            .actions
            .iter()
            .map(|a| bulk::parse_action(a, config.planner.default_grace_days))
            .collect::<Result<Vec<_>, _>>()
            .map_err(usage)?;
        BulkRequest {
            criteria,
            listed,
            actions,
            targets: self.targets.clone(),
            allow_delete: self.allow_delete,
        }
        .rule(config)
        .map_err(usage)
    }
}

/// Plans the bulk operation, prints it, and with `--apply` stores and carries it out.
pub(super) async fn run(
    store: &Store,
    clock: &SharedClock,
    config: &Config,
    rule: &Rule,
    args: &BulkArgs,
) -> anyhow::Result<()> {
    let opts = BulkOptions {
        apply: args.apply,
        execute: !args.no_execute,
        principal: principal(args.principal.as_deref()),
    };
    let outcome = bulk::bulk(store, config, rule, &opts, clock.now())
        .await
        .map_err(|e| {
            if e.is_usage() {
                anyhow::Error::new(UsageError::Invalid(e.to_string()))
            } else {
                anyhow::Error::new(e)
            }
        })?;
    if args.apply {
        checkpoint(store, config).await?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).context("cannot write the outcome as JSON")?
        );
    } else {
        print!("{}", render(&outcome, args));
    }
    if outcome
        .run
        .as_ref()
        .is_some_and(|r| r.status == RunStatus::Failed)
    {
        anyhow::bail!("some actions failed or were poisoned; see `idbridge runs show <run>`");
    }
    Ok(())
}

fn render(o: &BulkOutcome, args: &BulkArgs) -> String {
    let mut out = String::new();
    let ladder: Vec<&str> = args.actions.iter().map(|a| a.trim()).collect();
    let _ = writeln!(
        out,
        "bulk {}: {} → {}",
        o.rule.name,
        bulk::describe_criteria(&o.rule.criteria),
        ladder.join(", ")
    );
    if !o.rule.targets.is_empty() {
        let _ = writeln!(out, "targets: {}", o.rule.targets.join(", "));
    }
    if let Some(l) = &o.listed {
        let _ = write!(out, "listed: {} names", l.names);
        if l.unknown.is_empty() {
            let _ = writeln!(out, ", every one matches an account");
        } else {
            let shown: Vec<&str> = l
                .unknown
                .iter()
                .take(SHOWN_UNKNOWN)
                .map(String::as_str)
                .collect();
            let more = l.unknown.len().saturating_sub(SHOWN_UNKNOWN);
            let _ = writeln!(
                out,
                ", {} match no account: {}{}",
                l.unknown.len(),
                shown.join(", "),
                if more > 0 {
                    format!(" … and {more} more (--json lists them all)")
                } else {
                    String::new()
                }
            );
        }
    }
    out.push_str(&render_preview(&o.preview));
    let planned = o.preview.enforce.actions.len() + o.preview.dry_run.actions.len();
    if !args.apply {
        let _ = writeln!(
            out,
            "\ndry run: nothing stored{}",
            if planned > 0 {
                "; add --apply to store this plan and carry it out"
            } else {
                ""
            }
        );
    }
    if planned == 0 {
        let _ = writeln!(out, "\nnothing to do: the selection plans no action now");
    }
    if let Some(r) = &o.run {
        out.push_str(&render_run(r));
    }
    out
}
