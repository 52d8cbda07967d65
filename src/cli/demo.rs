//! `idbridge demo`: the whole loop on simulators and an embedded SQLite file, narrated for a
//! newcomer. Starts a seeded company in the Okta and Confluence Data Center simulators,
//! syncs, shows the dry-run plan, enforces it (through the safety budget and a second
//! person's approval), shows the result and a returner getting the licence back, then serves
//! idbridge with its scheduler until Ctrl-C (or stops, with `--once`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::clock::Clock as _;
use crate::config::{Config, DatabaseUrl};
use crate::demo::{self, Demo, DemoOptions, Enforced, Returned, Synced};
use crate::domain::{Plan, RuleMode};
use crate::engine::run::Preview;
use crate::sim::company::{self, CompanyOptions};
use crate::store::Store;

/// What `idbridge demo` was asked for.
pub(super) struct DemoArgs {
    pub listen: SocketAddr,
    pub database: PathBuf,
    pub people: usize,
    pub once: bool,
}

/// Most people the demo seeds (the simulators hold everyone in memory).
const MAX_PEOPLE: usize = 100_000;

/// Runs the demo; `Ok` on Ctrl-C as on a finished `--once`.
pub(super) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(20..=MAX_PEOPLE).contains(&args.people) {
        anyhow::bail!("--people must be between 20 and {MAX_PEOPLE}");
    }
    fresh_database(&args.database)?;
    let mut base = Config::default();
    base.server.listen = args.listen;
    base.database.url = DatabaseUrl::new(format!("sqlite://{}", args.database.display()));
    // The narration is the demo's output; logs show warnings only unless asked for more.
    base.log.filter = std::env::var("IDBRIDGE_LOG__FILTER").unwrap_or_else(|_| "warn".into());
    super::init_logs(&base)?;
    let clock = crate::clock::SystemClock;
    let started = Instant::now();
    println!(
        "idbridge demo: the whole loop on simulated Okta and Confluence, state in {}",
        args.database.display()
    );
    let opts = DemoOptions {
        company: CompanyOptions {
            people: args.people,
            ..CompanyOptions::default()
        },
        ..DemoOptions::default()
    };
    // Listen for Ctrl-C (and SIGTERM) before anything is printed, so that a signal at any
    // point of the loop stops it cleanly.
    let stop = stop_signal()?;
    let demo = Demo::start(&opts, base, clock.now()).await?;
    let (store, _) = super::open_store(&demo.config).await?;
    let looped = tokio::select! {
        r = walk(&demo, &store, started) => Some(r),
        () = stop => None,
    };
    store.close().await;
    match looped {
        None => {
            println!("\ninterrupted; stopping the simulators");
            demo.stop().await;
            return Ok(());
        }
        Some(Err(e)) => {
            demo.stop().await;
            return Err(e);
        }
        Some(Ok(())) => {}
    }
    if args.once {
        println!("\n--once: stopping the simulators");
        demo.stop().await;
        return Ok(());
    }
    // Bind first, so the URLs printed are the ones served (`--listen 127.0.0.1:0` works).
    let app = match crate::app::App::builder(demo.config.clone()).build().await {
        Ok(app) => app,
        Err(e) => {
            demo.stop().await;
            return Err(e.into());
        }
    };
    let addr = app.local_addr();
    println!("\n6. idbridge keeps running the loop by itself:");
    println!(
        "   Okta is read every minute, the wiki every 5 minutes, licences go back within a minute"
    );
    println!("   idbridge health:    http://{addr}/healthz");
    println!("   idbridge readiness: http://{addr}/readyz");
    println!("   idbridge metrics:   http://{addr}/metrics");
    println!("   Okta (simulated):   {}", demo.okta.base_url());
    println!(
        "   Confluence (simulated DC {}): {}",
        demo.dc.version(),
        demo.dc.base_url()
    );
    println!(
        "   try: idbridge runs list / idbridge export accounts --format csv, with\n   \
         IDBRIDGE_DATABASE__URL=sqlite://{}",
        args.database.display()
    );
    println!("press Ctrl-C to stop");
    crate::app::cancel_on_signals(app.shutdown_token());
    let result = app.run().await.map_err(anyhow::Error::from);
    demo.stop().await;
    result
}

/// Resolves on SIGINT or SIGTERM; both are listened for from the moment this returns.
#[cfg(unix)]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Steps 1 to 5, printed as they happen.
async fn walk(demo: &Demo, store: &Store, started: Instant) -> anyhow::Result<()> {
    let clock = crate::clock::SystemClock;
    print!("{}", render_company(demo));

    let t = Instant::now();
    let synced = demo.sync(store).await?;
    print!("{}", render_sync(&synced, t.elapsed().as_millis()));

    let preview = demo.preview(store, clock.now()).await?;
    print!("{}", render_preview(&preview, &demo.config));

    let t = Instant::now();
    let enforced = demo.enforce(store, clock.now()).await?;
    print!("{}", render_enforced(&enforced, t.elapsed().as_millis()));
    println!(
        "\n   sync → plan → enforce: {:.1} s from start",
        started.elapsed().as_secs_f64()
    );

    let Some(returner) = demo.returner() else {
        anyhow::bail!("no returner lost a licence; the demo's rules did not run as expected");
    };
    let returned = demo
        .return_one(store, returner, demo.leaver(), || clock.now())
        .await?;
    print!("{}", render_returned(demo, &returned));
    if !returned.licensed_again {
        anyhow::bail!("{} did not get the licence back", returned.username);
    }
    let audit = crate::engine::audit::verify(store, store.audit_key(), None)
        .await
        .context("cannot read the audit log")?;
    if let Some(failure) = &audit.failure {
        anyhow::bail!("the audit log does not verify: {failure:?}");
    }
    println!(
        "\n   audit log: {} entries, every one chained and verified (idbridge audit verify)",
        audit.entries
    );
    Ok(())
}

/// The demo's database starts empty each time: an existing demo file is replaced, anything
/// else at that path is left alone and refused.
fn fresh_database(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        let mut header = [0u8; 16];
        let is_sqlite = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
            .is_ok()
            && &header == b"SQLite format 3\0";
        let empty = std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
        if !is_sqlite && !empty {
            anyhow::bail!(
                "{} exists and is not a SQLite database; the demo replaces its database on \
                 every start, so choose another --database",
                path.display()
            );
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot replace {}", p.display())),
        }
    }
    Ok(())
}

fn render_company(demo: &Demo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n1. A company of {} people, in Okta and in Confluence Data Center {} ({} seats):",
        demo.members.len(),
        demo.dc.version(),
        demo.tier
    );
    for (role, n) in company::census(&demo.members) {
        let _ = writeln!(out, "   {n:>6}  {}", role.label());
    }
    let _ = writeln!(out, "   Okta (simulated):       {}", demo.okta.base_url());
    let _ = writeln!(out, "   Confluence (simulated): {}", demo.dc.base_url());
    out
}

fn render_sync(s: &Synced, ms: u128) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n2. Sync ({ms} ms):");
    let _ = writeln!(
        out,
        "   snapshot of {}: {} — {} people, {} groups",
        demo::SOURCE,
        s.source.snapshot.status,
        s.source.identities,
        s.source.groups
    );
    let statuses: Vec<String> = s
        .source
        .statuses
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !statuses.is_empty() {
        let _ = writeln!(out, "     statuses: {}", statuses.join(", "));
    }
    let _ = writeln!(
        out,
        "   inventory of {}: {} — {} accounts, {} groups",
        demo::TARGET,
        s.target.snapshot.status,
        s.target.accounts,
        s.target.groups
    );
    if let Some(l) = &s.target.licence {
        let _ = writeln!(
            out,
            "     licensed {} of {} seats{}",
            l.licensed,
            l.tier.map_or("unlimited".to_owned(), |t| t.to_string()),
            if l.last_login_known {
                format!(" · never logged in {}", l.never_logged_in)
            } else {
                " · sign-ins come from Okta".to_owned()
            }
        );
    }
    out
}

fn render_preview(p: &Preview, config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n3. Plan (dry run: nothing changes) — {} accounts linked to Okta, {} unlinked (never touched):",
        p.links.linked, p.links.unlinked
    );
    // Under a dry run every rule's plan is in `dry_run`; the rule's own mode says whether
    // `enforce` will carry it out.
    render_rules(&mut out, &p.dry_run, config);
    let _ = writeln!(
        out,
        "   budget: {}",
        if p.dry_run_budget.held {
            "over the removal budget: an enforced run will be held for a second person's approval"
        } else {
            "within the removal budget"
        }
    );
    for r in &p.dry_run_budget.reasons {
        let _ = writeln!(out, "     {r}");
    }
    for n in p.dry_run.notes.iter().take(5) {
        let _ = writeln!(out, "   note: {n}");
    }
    out
}

/// One line per rule: how many people, what it does, a few names.
fn render_rules(out: &mut String, plan: &Plan, config: &Config) {
    let mut by_rule: BTreeMap<(i32, String), RuleLine> = BTreeMap::new();
    for a in &plan.actions {
        let rule = config.rules.get(&a.reason.rule);
        let line = by_rule
            .entry((rule.map_or(i32::MAX, |r| r.priority), a.reason.rule.clone()))
            .or_default();
        if line.people.last() != Some(&a.username) && !line.people.contains(&a.username) {
            line.people.push(a.username.clone());
        }
        let what = super::engine::describe(&a.kind);
        let what = if what.starts_with("rename to ") {
            "rename to <username>_inactive_yyyyMMdd".to_owned()
        } else {
            what
        };
        if !line.actions.contains(&what) {
            line.actions.push(what);
        }
        line.mode = rule.map(|r| r.mode);
        if line.because.is_none() {
            line.because = a.reason.because.first().cloned();
        }
    }
    if by_rule.is_empty() {
        let _ = writeln!(out, "   no rule selects anyone");
    }
    for ((_, rule), line) in by_rule {
        let sample: Vec<&str> = line.people.iter().take(3).map(String::as_str).collect();
        let _ = writeln!(
            out,
            "   rule {rule} ({}): {} people — {}",
            line.mode.map_or("?", RuleMode::as_str),
            line.people.len(),
            line.actions.join(", ")
        );
        let _ = writeln!(
            out,
            "     e.g. {}{}",
            sample.join(", "),
            line.because.map(|b| format!(" ({b})")).unwrap_or_default()
        );
    }
}

#[derive(Default)]
struct RuleLine {
    people: Vec<String>,
    actions: Vec<String>,
    mode: Option<RuleMode>,
    because: Option<String>,
}

fn render_enforced(e: &Enforced, ms: u128) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n4. Enforce ({ms} ms):");
    for r in &e.outcome.runs {
        let _ = writeln!(
            out,
            "   run {} ({}): {} — {} actions",
            short(&r.run.to_string()),
            r.mode.as_str(),
            r.status.as_str(),
            r.actions
        );
        if r.budget.held
            && let Some(first) = r.budget.reasons.first()
        {
            let more = r.budget.reasons.len() - 1;
            let _ = writeln!(
                out,
                "     held by the safety budget: {first}{}",
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            );
        }
        if let Some(x) = &r.executed {
            let _ = writeln!(out, "     {}", phases(x));
        }
    }
    for a in &e.approved {
        let _ = writeln!(
            out,
            "   run {} approved by {} (not its starter, {}) against plan hash {}: {}",
            short(&a.run.to_string()),
            demo::APPROVER,
            demo::OPERATOR,
            short(&a.plan_hash),
            a.status.as_str()
        );
        if let Some(x) = &a.executed {
            let _ = writeln!(out, "     {}", phases(x));
        }
    }
    let _ = writeln!(
        out,
        "   licensed in Confluence: {} → {} ({} seats reclaimed)",
        e.licensed_before,
        e.licensed_after,
        e.licensed_before.saturating_sub(e.licensed_after)
    );
    let _ = writeln!(
        out,
        "   inventory of {} read again: {} — {} accounts",
        demo::TARGET,
        e.inventory.snapshot.status,
        e.inventory.accounts
    );
    out
}

fn phases(x: &crate::engine::execute::ExecReport) -> String {
    let parts: Vec<String> = x.phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
    format!("executed: {}", parts.join(", "))
}

fn render_returned(demo: &Demo, r: &Returned) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n5. {} signs in to Okta again at {}:",
        r.username,
        r.signed_in_at.format("%H:%M:%S")
    );
    let mine: Vec<String> = r
        .outcome
        .plan
        .actions
        .iter()
        .filter(|a| a.username == r.username)
        .map(|a| super::engine::describe(&a.kind))
        .collect();
    let _ = writeln!(
        out,
        "   Okta read again, regrant pass: {} — {}",
        if mine.is_empty() {
            "nothing planned".to_owned()
        } else {
            mine.join(", ")
        },
        if r.licensed_again {
            format!(
                "licence back in Confluence {:.1} s after the sign-in",
                r.latency.as_secs_f64()
            )
        } else {
            "the licence is NOT back".to_owned()
        }
    );
    if let Some(l) = demo.leaver() {
        let _ = writeln!(
            out,
            "   {} (a leaver, deprovisioned in Okta) signs in too: nothing given back",
            l.username
        );
    }
    if !r.licensed_again {
        for n in &r.outcome.plan.notes {
            let _ = writeln!(out, "   note: {n}");
        }
    }
    for a in &r.outcome.plan.alerts {
        let _ = writeln!(
            out,
            "   alert {} {}/{}: {}",
            a.kind.audit_action(),
            a.target,
            a.username,
            a.why
        );
    }
    out
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}
