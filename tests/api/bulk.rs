//! Ad-hoc bulk operations end to end on both backends, against the company of
//! `engine_world` (Okta and Confluence Data Center simulators, synced into the store): a
//! filter selects exactly the accounts it describes and never an administrator or an
//! unmanaged account; a CSV of names reports the ones that match nobody; a dry run writes
//! nothing and stores no run; `--apply` stores a `bulk` run, carries it out and leaves audit
//! entries; a bulk over budget is held until someone else approves it; and the binary
//! refuses a bad filter with exit status 2 and the term at fault.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use idbridge::clock::Clock;
use idbridge::domain::{ActionKind, ActionPhase, BudgetKind, RunStatus};
use idbridge::engine::bulk::{self, BulkOptions, BulkOutcome, BulkRequest};
use idbridge::engine::run;
use idbridge::store::RunKind;
use serde_json::Value;

use crate::engine_world::{
    LICENCE, World, assert_untouched_except, sync_all, world, writes, written_users,
};
use crate::helpers::{Backend, binary, on_both_backends, one_error_line, stderr, stdout};

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// The request for `filter` (and `csv` names) with the command-line `actions`.
fn request(w: &World, filter: Option<&str>, csv: Option<&Path>, actions: &[&str]) -> BulkRequest {
    BulkRequest {
        criteria: filter
            .map(|f| bulk::parse_filter(f).unwrap_or_else(|e| panic!("{f}: {e}")))
            .unwrap_or_default(),
        listed: csv.map(|p| bulk::read_names_csv(p).expect("csv")),
        actions: actions
            .iter()
            .map(|a| bulk::parse_action(a, w.config.planner.default_grace_days).expect("action"))
            .collect(),
        targets: Vec::new(),
        allow_delete: false,
    }
}

async fn make(w: &World, req: &BulkRequest, apply: bool, principal: &str) -> BulkOutcome {
    let rule = req.rule(&w.config).expect("a valid request");
    bulk::bulk(
        &w.store,
        &w.config,
        &rule,
        &BulkOptions {
            apply,
            execute: true,
            principal: principal.into(),
        },
        w.clock.now(),
    )
    .await
    .expect("bulk")
}

/// The usernames a bulk dry run plans an action for.
async fn selected(w: &World, filter: &str) -> BTreeSet<String> {
    let outcome = make(
        w,
        &request(w, Some(filter), None, &["deactivate"]),
        false,
        "ops",
    )
    .await;
    assert!(outcome.preview.enforce.actions.is_empty());
    assert!(outcome.run.is_none());
    outcome
        .preview
        .dry_run
        .actions
        .iter()
        .map(|a| a.username.clone())
        .collect()
}

fn csv_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("names.csv");
    std::fs::write(&path, text).expect("write csv");
    path
}

on_both_backends!(a_filter_selects_exactly_the_accounts_it_describes_and_a_dry_run_writes_nothing);

async fn a_filter_selects_exactly_the_accounts_it_describes_and_a_dry_run_writes_nothing(
    backend: Backend,
) {
    let Some(w) = world(backend).await else {
        return;
    };
    sync_all(&w).await;
    let cases: [(&str, &[&str]); 7] = [
        (
            "inactive_days >= 90 and email_domain = contractor.example.net",
            &["ivan"],
        ),
        // No exemptions in a bulk: grace (service account) is selected too.
        ("inactive_days >= 90", &["bob", "grace", "ivan", "judy"]),
        ("inactive_days > 150", &["bob", "grace"]),
        // erin is deprovisioned too, but an administrator: protected.
        ("status = deprovisioned", &["alice"]),
        ("status in (deprovisioned, suspended)", &["alice", "dave"]),
        // erin (administrator) and mallory (not in Okta: unmanaged) are never selected.
        (
            "member_of = confluence-users",
            &[
                "alice", "bob", "carol", "dave", "frank", "grace", "heidi", "ivan", "judy",
            ],
        ),
        (
            "attr.department = Sales and member_of not in (staff, wiki-editors)",
            &["judy"],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(selected(&w, filter).await, set(want), "{filter}");
    }
    assert_eq!(
        selected(&w, "never_logged_in_days >= 30 and created > 2025-06-01").await,
        set(&["frank"])
    );
    // Dry runs: nothing written to Confluence, no run stored.
    assert!(writes(&w.dc).is_empty(), "{:?}", writes(&w.dc));
    assert!(w.store.runs(100).await.unwrap().is_empty());
    assert_untouched_except(&w, &[]);
    w.stop().await;
}

on_both_backends!(a_csv_of_names_reports_unknown_names_and_apply_carries_out_an_audited_bulk_run);

async fn a_csv_of_names_reports_unknown_names_and_apply_carries_out_an_audited_bulk_run(
    backend: Backend,
) {
    let Some(w) = world(backend).await else {
        return;
    };
    sync_all(&w).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = csv_file(
        &dir,
        "Username,Department\nbob,Eng\nnobody,\nERIN,Ops\nivan@contractor.example.net,\n\
         judy,\nzed@example.com,\n",
    );

    // CSV and filter together: both must hold (ivan is listed but on contractor.example.net,
    // erin is listed but an administrator), and the names that match nobody are reported.
    let both = make(
        &w,
        &request(
            &w,
            Some("email_domain = example.com"),
            Some(&csv),
            &["deactivate"],
        ),
        false,
        "ops",
    )
    .await;
    let planned: BTreeSet<String> = both
        .preview
        .dry_run
        .actions
        .iter()
        .map(|a| a.username.clone())
        .collect();
    assert_eq!(planned, set(&["bob", "judy"]));
    let listed = both.listed.expect("listed report");
    assert_eq!(listed.names, 6);
    assert_eq!(listed.unknown, ["nobody", "zed@example.com"]);
    assert!(writes(&w.dc).is_empty());

    // Applied: a bulk run in enforce mode, carried out; erin (an administrator) is listed
    // but never touched.
    let req = request(
        &w,
        None,
        Some(&csv),
        &["remove-licence-groups", "deactivate"],
    );
    let outcome = make(&w, &req, true, "ops").await;
    let summary = outcome.run.as_ref().expect("a stored run");
    assert_eq!(summary.status, RunStatus::Succeeded, "{outcome:#?}");
    let record = w.store.run(summary.run).await.unwrap().expect("run");
    assert_eq!(record.kind, RunKind::Bulk);
    assert_eq!(record.started_by, "ops");
    assert_eq!(record.rules, std::slice::from_ref(&outcome.rule.name));
    let actions = w.store.run_actions(summary.run).await.unwrap();
    assert!(
        actions.iter().all(|a| a.phase == ActionPhase::Confirmed),
        "{actions:#?}"
    );
    let touched: BTreeSet<String> = actions.iter().map(|a| a.username.clone()).collect();
    assert_eq!(touched, set(&["bob", "ivan", "judy"]));
    assert!(
        actions
            .iter()
            .any(|a| a.username == "bob" && a.kind == ActionKind::Deactivate)
    );
    for user in ["bob", "ivan", "judy"] {
        let u = w.dc.user_by_key(&w.keys[user]).expect(user);
        assert!(!u.active, "{user} still active");
        assert!(
            !u.groups.iter().any(|g| g == LICENCE),
            "{user}: {:?}",
            u.groups
        );
    }
    assert_eq!(written_users(&w.dc), set(&["bob", "ivan", "judy"]));
    assert_untouched_except(&w, &["bob", "ivan", "judy"]);

    // The audit log has the stored run and an entry per action, and the chain verifies.
    let entries = w.store.audit_entries(0, 10_000).await.unwrap();
    let run_id = summary.run.to_string();
    assert!(
        entries.iter().any(|e| e.action == "run.planned"
            && e.subject_id.as_deref() == Some(&run_id)
            && e.detail["kind"] == "bulk"),
        "{entries:#?}"
    );
    let asked = entries
        .iter()
        .find(|e| e.action == "bulk.applied")
        .expect("the bulk request is audited");
    assert_eq!(asked.actor, "ops");
    assert_eq!(asked.subject_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(asked.detail["selection"], "user in (6 names)");
    assert_eq!(asked.detail["unknown_names"], 2);
    let about: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.actor == format!("rule:{}", outcome.rule.name))
        .filter_map(|e| e.detail["username"].as_str())
        .collect();
    assert_eq!(
        about,
        BTreeSet::from(["bob", "ivan", "judy"]),
        "{entries:#?}"
    );
    assert!(w.store.verify_audit_chain().await.unwrap().is_ok());

    // Done: the same bulk again (after a fresh inventory) plans nothing.
    sync_all(&w).await;
    let again = make(&w, &req, true, "ops").await;
    assert!(again.run.is_none(), "{:#?}", again.preview.enforce.actions);
    w.stop().await;
}

on_both_backends!(a_bulk_over_budget_is_held_until_another_principal_approves_it);

async fn a_bulk_over_budget_is_held_until_another_principal_approves_it(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    w.config
        .safety
        .budgets
        .entry(BudgetKind::Deactivate)
        .or_default()
        .per_run = Some(2);
    sync_all(&w).await;
    let req = request(&w, Some("inactive_days >= 90"), None, &["deactivate"]);
    let outcome = make(&w, &req, true, "ops").await;
    let held = outcome.run.as_ref().expect("a stored run");
    assert_eq!(held.status, RunStatus::Held);
    assert!(held.budget.held, "{:#?}", held.budget);
    assert!(held.executed.is_none());
    assert!(writes(&w.dc).is_empty(), "a held bulk wrote");

    // Nothing runs before the approval: not even the executor.
    run::execute_run(&w.store, &w.config, held.run)
        .await
        .unwrap();
    assert!(writes(&w.dc).is_empty(), "a held bulk was executed");

    let own = run::approve(
        &w.store,
        &w.config,
        held.run,
        "ops",
        Some(&held.plan_hash),
        true,
        w.clock.now(),
    )
    .await;
    assert!(own.is_err(), "the starter approved their own bulk");
    assert!(writes(&w.dc).is_empty());

    let approved = run::approve(
        &w.store,
        &w.config,
        held.run,
        "lead",
        Some(&held.plan_hash),
        true,
        w.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(approved.status, RunStatus::Succeeded);
    for user in ["bob", "grace", "ivan", "judy"] {
        assert!(!w.dc.user_by_key(&w.keys[user]).unwrap().active, "{user}");
    }
    assert_untouched_except(&w, &["bob", "grace", "ivan", "judy"]);
    let record = w.store.run(held.run).await.unwrap().unwrap();
    assert_eq!(record.approved_by.as_deref(), Some("lead"));
    w.stop().await;
}

/// A configuration file for the binary (see [`World::config_file`]).
fn config_file(w: &World, dir: &tempfile::TempDir) -> PathBuf {
    w.config_file(dir.path())
}

fn idbridge(w: &World, config: &Path, args: &[&str]) -> Output {
    binary()
        .arg("--config")
        .arg(config)
        .arg("bulk")
        .args(args)
        .env("IDBRIDGE_TARGETS__WIKI__TOKEN", w.dc.pat())
        .env("IDBRIDGE_SOURCES__OKTA__TOKEN", w.okta.ssws_token())
        .env("IDBRIDGE_LOG__FILTER", "warn")
        .output()
        .expect("run idbridge")
}

on_both_backends!(the_binary_prints_a_bulk_plan_and_refuses_a_bad_filter_naming_the_term);

async fn the_binary_prints_a_bulk_plan_and_refuses_a_bad_filter_naming_the_term(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    sync_all(&w).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_file(&w, &dir);

    let bad = idbridge(
        &w,
        &config,
        &[
            "--filter",
            "member_of = confluence-users and inactive_dayz >= 90",
            "--action",
            "deactivate",
        ],
    );
    let line = one_error_line(&bad, 2);
    assert!(
        line.contains("term 2") && line.contains("unknown field `inactive_dayz`"),
        "{line}"
    );
    for (args, why) in [
        (
            &["--filter", "status = gone", "--action", "deactivate"][..],
            "unknown status `gone`",
        ),
        (
            &["--filter", "logged_in_once", "--action", "delete"][..],
            "--allow-delete",
        ),
        (
            &["--filter", "logged_in_once", "--action", "explode"][..],
            "unknown action",
        ),
        (&["--action", "deactivate"][..], "needs --filter or --csv"),
        (
            &["--csv", "/nonexistent/names.csv", "--action", "deactivate"][..],
            "/nonexistent/names.csv",
        ),
        (
            &[
                "--filter",
                "logged_in_once",
                "--action",
                "deactivate",
                "--target",
                "elsewhere",
            ][..],
            "no such target",
        ),
    ] {
        let out = idbridge(&w, &config, args);
        let line = one_error_line(&out, 2);
        assert!(line.contains(why), "{args:?}: {line}");
    }

    // A dry run in JSON: the plan, nothing stored, nothing written.
    let dry = idbridge(
        &w,
        &config,
        &[
            "--filter",
            "email_domain = contractor.example.net",
            "--action",
            "remove-licence-groups",
            "--json",
        ],
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    let v: Value = serde_json::from_slice(&dry.stdout).expect("JSON");
    let planned: BTreeSet<&str> = v["preview"]["dry_run"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["username"].as_str())
        .collect();
    assert_eq!(planned, BTreeSet::from(["ivan"]), "{v:#}");
    assert!(v["run"].is_null());
    assert!(v["rule"]["name"].as_str().unwrap().starts_with("bulk-"));

    // The report, with the CSV's unknown names.
    let csv = csv_file(&dir, "ivan\nghost\n");
    let text = idbridge(
        &w,
        &config,
        &["--csv", csv.to_str().unwrap(), "--action", "deactivate"],
    );
    assert!(text.status.success(), "{}", stderr(&text));
    let report = stdout(&text);
    for want in [
        "listed: 2 names, 1 match no account: ghost",
        "dry run: 1 actions on 1 accounts",
        "deactivate",
        "dry run: nothing stored; add --apply",
    ] {
        assert!(report.contains(want), "missing `{want}`:\n{report}");
    }
    assert!(writes(&w.dc).is_empty(), "{:?}", writes(&w.dc));
    assert!(w.store.runs(100).await.unwrap().is_empty());
    w.stop().await;
}

on_both_backends!(a_bulk_removal_for_inactivity_is_given_back_on_sign_in_and_a_status_bulk_is_not);

/// A bulk selected by inactivity opens a removal episode like a rule does: bob, who signs
/// in again, gets his licence back; alice, removed by a bulk on her Okta status, signs in
/// too and gets nothing but a security alert.
async fn a_bulk_removal_for_inactivity_is_given_back_on_sign_in_and_a_status_bulk_is_not(
    backend: Backend,
) {
    use idbridge::engine::regrant::{RegrantOptions, regrant};
    let Some(w) = world(backend).await else {
        return;
    };
    crate::engine_world::set_dc_max_users(&w.dc, 100).await;
    sync_all(&w).await;
    for filter in [
        "inactive_days >= 180 and user in (bob)",
        "status in (deprovisioned) and user in (alice)",
    ] {
        let outcome = make(
            &w,
            &request(&w, Some(filter), None, &["remove-licence-groups"]),
            true,
            "ops",
        )
        .await;
        assert!(
            outcome.run.is_some(),
            "{filter}: {:?}",
            outcome.preview.enforce
        );
    }
    assert_eq!(written_users(&w.dc), set(&["alice", "bob"]));
    // The removals are read back a little later, then both sign in.
    w.clock.advance(chrono::Duration::minutes(5));
    w.okta.core().clock.advance(chrono::Duration::minutes(5));
    crate::engine_world::inventory(&w.store, "wiki", &w.config.targets["wiki"]).await;
    let at = w.clock.now() - chrono::Duration::minutes(1);
    for u in ["alice", "bob"] {
        w.okta
            .update_user(&w.okta_ids[u], |p| p.last_login = Some(at));
    }
    assert!(crate::engine_world::sync_okta(&w).await.is_complete());
    let outcome = regrant(
        &w.store,
        &w.config,
        &RegrantOptions::default(),
        w.clock.now(),
    )
    .await
    .unwrap();
    let regranted: BTreeSet<String> = outcome
        .plan
        .actions
        .iter()
        .map(|a| a.username.clone())
        .collect();
    assert_eq!(regranted, set(&["bob"]), "{:#?}", outcome.plan);
    assert!(
        w.dc.user("bob")
            .unwrap()
            .groups
            .iter()
            .any(|g| g == LICENCE)
    );
    assert!(
        !w.dc
            .user("alice")
            .unwrap()
            .groups
            .iter()
            .any(|g| g == LICENCE)
    );
    assert_eq!(outcome.alerts_raised, 1);
    assert_eq!(outcome.plan.alerts[0].username, "alice");
    w.stop().await;
}
