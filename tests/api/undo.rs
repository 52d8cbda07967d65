//! Undo, end to end on both backends against the Okta and Confluence Data Center simulators:
//! rules take licence groups, deactivate and rename (alice as a leaver; bob, ivan and judy
//! as inactive); `undo run` then gives bob, ivan and judy back exactly their groups, active
//! flag and name (alice only with `--include-leavers`), and undoing again plans nothing;
//! `undo person` restores one person only; a username taken meanwhile is reported, not
//! clobbered; a dry-run run has nothing to undo; an undo over budget is held for approval;
//! and the binary refuses unknown runs and people with exit status 2.

use chrono::Duration;
use idbridge::clock::Clock;
use idbridge::config::{Budget, RuleConfig, WhenConfig};
use idbridge::domain::{ActionKind, BudgetKind, RuleMode, RunId, RunStatus};
use idbridge::engine::run;
use idbridge::engine::undo::{UndoError, UndoOptions, UndoOutcome, UndoWhat, undo};
use idbridge::store::RunKind;
use serde_json::json;

use crate::engine_world::{
    LICENCE, World, days_ago, groups_of, now, opts, renamed, rule, seeded, sync_all, writes,
};
use crate::helpers::{Backend, binary, on_both_backends};

fn rules() -> std::collections::BTreeMap<String, RuleConfig> {
    let ladder = json!(["remove_licence_groups", "deactivate", "rename"]);
    let when = |status: Vec<String>, inactive_days| WhenConfig {
        status,
        inactive_days,
        ..WhenConfig::default()
    };
    std::collections::BTreeMap::from([
        (
            "leavers".to_owned(),
            rule(
                RuleMode::Enforce,
                10,
                when(vec!["deprovisioned".into()], None),
                ladder.clone(),
            ),
        ),
        (
            "inactive".to_owned(),
            rule(RuleMode::Enforce, 20, when(Vec::new(), Some(90)), ladder),
        ),
    ])
}

/// The company synced and the rules enforced (alice, bob, ivan and judy removed); the
/// clock then moves on a minute. Returns the world and the enforced run.
async fn removed(backend: Backend) -> Option<(World, RunId)> {
    let mut w = crate::engine_world::world(backend).await?;
    w.config.rules = rules();
    sync_all(&w).await;
    let outcome = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    let enforced = outcome
        .runs
        .iter()
        .find(|r| r.mode == RuleMode::Enforce)
        .expect("an enforced run");
    assert_eq!(enforced.status, RunStatus::Succeeded, "{outcome:#?}");
    for user in ["alice", "bob", "ivan", "judy"] {
        assert_removed(&w, user);
    }
    advance(&w, Duration::minutes(1));
    let id = enforced.run;
    Some((w, id))
}

fn advance(w: &World, by: Duration) {
    w.clock.advance(by);
    w.okta.core().clock.advance(by);
}

fn assert_removed(w: &World, user: &str) {
    let u = w.dc.user_by_key(&w.keys[user]).expect(user);
    assert_eq!(u.username, renamed(user), "{user}");
    assert!(!u.active, "{user} is active");
    assert!(
        !u.groups.iter().any(|g| g == LICENCE),
        "{user}: {:?}",
        u.groups
    );
}

fn assert_restored(w: &World, user: &str) {
    let u = w.dc.user_by_key(&w.keys[user]).expect(user);
    assert_eq!(u.username, user);
    assert!(u.active, "{user} is not active");
    assert_eq!(groups_of(&w.dc, user), seeded(user), "{user}");
}

fn undo_opts(include_leavers: bool) -> UndoOptions {
    UndoOptions {
        dry_run: false,
        include_leavers,
        principal: "ops".into(),
        execute: true,
    }
}

async fn undo_run(w: &World, id: RunId, o: &UndoOptions) -> UndoOutcome {
    undo(&w.store, &w.config, &UndoWhat::Run(id), o, w.clock.now())
        .await
        .unwrap()
}

async fn undo_person(w: &World, who: &str, o: &UndoOptions) -> Result<UndoOutcome, UndoError> {
    let what = UndoWhat::Person {
        who: who.into(),
        target: None,
    };
    undo(&w.store, &w.config, &what, o, w.clock.now()).await
}

on_both_backends!(
    undo_of_a_run_restores_groups_active_flag_and_name_and_a_second_undo_plans_nothing,
    undo_of_a_person_restores_that_person_only,
    a_leaver_is_restored_only_when_leavers_are_included,
    a_username_taken_meanwhile_is_reported_and_not_clobbered,
    a_dry_run_has_nothing_to_undo_and_a_dry_run_undo_writes_nothing,
    an_undo_over_budget_is_held_until_someone_else_approves_it,
    the_undo_command_restores_by_run_prefix_and_refuses_unknown_runs_and_people,
);

async fn undo_of_a_run_restores_groups_active_flag_and_name_and_a_second_undo_plans_nothing(
    backend: Backend,
) {
    let Some((w, id)) = removed(backend).await else {
        return;
    };
    let outcome = undo_run(&w, id, &undo_opts(false)).await;
    let r = outcome.run.as_ref().expect("an undo run");
    assert_eq!(r.status, RunStatus::Succeeded, "{outcome:#?}");
    let stored = w.store.run(r.run).await.unwrap().expect("stored");
    assert_eq!(stored.kind, RunKind::Undo);
    assert_eq!(stored.mode, RuleMode::Enforce);
    assert_eq!(stored.started_by, "ops");
    for user in ["bob", "ivan", "judy"] {
        assert_restored(&w, user);
    }
    // The leaver stays removed, and is listed.
    assert_removed(&w, "alice");
    assert_eq!(outcome.plan.leavers_skipped.len(), 1, "{:?}", outcome.plan);
    assert!(outcome.plan.leavers_skipped[0].contains(&renamed("alice")));
    let kinds: Vec<&ActionKind> = outcome
        .plan
        .actions
        .iter()
        .filter(|a| a.account_key == w.keys["bob"])
        .map(|a| &a.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            &ActionKind::Reactivate,
            &ActionKind::AddToGroup {
                group: LICENCE.into()
            },
            &ActionKind::Rename {
                from: renamed("bob"),
                to: "bob".into()
            },
        ]
    );

    // Undoing again plans nothing and writes nothing: before and after a new inventory.
    let before = writes(&w.dc).len();
    advance(&w, Duration::minutes(1));
    let again = undo_run(&w, id, &undo_opts(false)).await;
    assert!(again.plan.actions.is_empty(), "{:#?}", again.plan);
    assert!(again.run.is_none());
    assert_eq!(again.plan.unchanged.len(), 3, "{:?}", again.plan);
    sync_all(&w).await;
    advance(&w, Duration::minutes(1));
    let third = undo_run(&w, id, &undo_opts(false)).await;
    assert!(third.plan.actions.is_empty(), "{:#?}", third.plan);
    assert_eq!(writes(&w.dc).len(), before, "a second undo wrote");
    // An undo run itself is not undone.
    let err = undo(
        &w.store,
        &w.config,
        &UndoWhat::Run(r.run),
        &undo_opts(false),
        w.clock.now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, UndoError::NotUndoable { .. }), "{err}");
    w.stop().await;
}

async fn undo_of_a_person_restores_that_person_only(backend: Backend) {
    let Some((w, _)) = removed(backend).await else {
        return;
    };
    // Named by the username they had before the removal.
    let outcome = undo_person(&w, "BOB", &undo_opts(false)).await.unwrap();
    assert_eq!(
        outcome.run.as_ref().map(|r| r.status),
        Some(RunStatus::Succeeded),
        "{outcome:#?}"
    );
    assert!(
        outcome
            .plan
            .actions
            .iter()
            .all(|a| a.account_key == w.keys["bob"])
    );
    assert_restored(&w, "bob");
    for user in ["alice", "ivan", "judy"] {
        assert_removed(&w, user);
    }
    // The removal is closed: nothing more to undo for bob.
    let again = undo_person(&w, "bob", &undo_opts(false)).await.unwrap();
    assert!(again.run.is_none());
    assert!(
        again
            .nothing
            .as_deref()
            .is_some_and(|n| n.contains("no open removal")),
        "{again:#?}"
    );
    // By email, judy.
    let judy = undo_person(&w, "judy@example.com", &undo_opts(false))
        .await
        .unwrap();
    assert!(judy.run.is_some(), "{judy:#?}");
    assert_restored(&w, "judy");
    assert_removed(&w, "ivan");
    // Nobody by that name.
    let err = undo_person(&w, "nobody-here", &undo_opts(false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`nobody-here`"), "{err}");
    w.stop().await;
}

async fn a_leaver_is_restored_only_when_leavers_are_included(backend: Backend) {
    let Some((w, _)) = removed(backend).await else {
        return;
    };
    let skipped = undo_person(&w, "alice", &undo_opts(false)).await.unwrap();
    assert!(skipped.run.is_none() && skipped.plan.actions.is_empty());
    assert_eq!(skipped.plan.leavers_skipped.len(), 1, "{skipped:#?}");
    assert_removed(&w, "alice");

    let restored = undo_person(&w, "alice", &undo_opts(true)).await.unwrap();
    let r = restored.run.as_ref().expect("a run");
    assert_eq!(r.status, RunStatus::Succeeded, "{restored:#?}");
    assert_eq!(restored.plan.leavers_restored.len(), 1);
    assert_restored(&w, "alice");
    let audited = w
        .store
        .audit_entries(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "security.leaver_restored")
        .count();
    assert_eq!(audited, 1);
    w.stop().await;
}

async fn a_username_taken_meanwhile_is_reported_and_not_clobbered(backend: Backend) {
    let Some((w, id)) = removed(backend).await else {
        return;
    };
    // A new bob joins and takes the name.
    let new_key =
        w.dc.add_user("bob", "bob2@example.com", &[LICENCE], days_ago(0), None)
            .expect("new bob");
    sync_all(&w).await;
    advance(&w, Duration::minutes(1));
    let outcome = undo_run(&w, id, &undo_opts(false)).await;
    assert_eq!(
        outcome.run.as_ref().map(|r| r.status),
        Some(RunStatus::Succeeded),
        "{outcome:#?}"
    );
    assert_eq!(outcome.plan.conflicts.len(), 1, "{:?}", outcome.plan);
    assert!(outcome.plan.conflicts[0].contains("`bob`"));
    let old = w.dc.user_by_key(&w.keys["bob"]).expect("old bob");
    assert_eq!(old.username, renamed("bob"));
    assert!(old.active);
    assert!(old.groups.iter().any(|g| g == LICENCE));
    let new = w.dc.user_by_key(&new_key).expect("new bob");
    assert_eq!(new.username, "bob");
    for user in ["ivan", "judy"] {
        assert_restored(&w, user);
    }
    w.stop().await;
}

async fn a_dry_run_has_nothing_to_undo_and_a_dry_run_undo_writes_nothing(backend: Backend) {
    let Some((w, id)) = removed(backend).await else {
        return;
    };
    // A dry run of a rule for someone the enforced run left alone (the people it changed are
    // planned again only after the next inventory).
    let mut config = w.config.clone();
    config.rules.insert(
        "carol-only".into(),
        rule(
            RuleMode::DryRun,
            1,
            WhenConfig {
                users: vec!["carol".into()],
                ..WhenConfig::default()
            },
            json!(["deactivate"]),
        ),
    );
    let mut dry = opts("ops");
    dry.dry_run = true;
    dry.rules = vec!["carol-only".into()];
    let outcome = run::run(&w.store, &config, &dry, w.clock.now())
        .await
        .unwrap();
    let dry_run = outcome.runs.first().expect("a dry run").run;
    let nothing = undo_run(&w, dry_run, &undo_opts(false)).await;
    assert!(
        nothing
            .nothing
            .as_deref()
            .is_some_and(|n| n.contains("nothing to undo") && n.contains("dry run")),
        "{nothing:#?}"
    );

    let before = writes(&w.dc).len();
    let recorded = undo_run(
        &w,
        id,
        &UndoOptions {
            dry_run: true,
            ..undo_opts(false)
        },
    )
    .await;
    let r = recorded.run.as_ref().expect("a recorded run");
    assert_eq!(r.mode, RuleMode::DryRun);
    assert_eq!(r.status, RunStatus::Recorded);
    assert_eq!(writes(&w.dc).len(), before, "a dry-run undo wrote");
    assert_removed(&w, "bob");
    w.stop().await;
}

async fn an_undo_over_budget_is_held_until_someone_else_approves_it(backend: Backend) {
    let Some((mut w, id)) = removed(backend).await else {
        return;
    };
    w.config.safety.budgets.insert(
        BudgetKind::Grant,
        Budget {
            per_run: Some(1),
            ..Budget::default()
        },
    );
    let before = writes(&w.dc).len();
    let outcome = undo_run(&w, id, &undo_opts(false)).await;
    let r = outcome.run.as_ref().expect("a run");
    assert_eq!(r.status, RunStatus::Held, "{outcome:#?}");
    assert!(r.budget.held && !r.budget.reasons.is_empty());
    assert_eq!(writes(&w.dc).len(), before, "a held undo wrote");
    assert_removed(&w, "bob");
    // Not by its starter; then by someone else.
    let own = run::approve(
        &w.store,
        &w.config,
        r.run,
        "ops",
        Some(&r.plan_hash),
        true,
        w.clock.now(),
    )
    .await;
    assert!(own.is_err());
    let approved = run::approve(
        &w.store,
        &w.config,
        r.run,
        "boss",
        Some(&r.plan_hash),
        true,
        w.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(approved.status, RunStatus::Succeeded);
    for user in ["bob", "ivan", "judy"] {
        assert_restored(&w, user);
    }
    w.stop().await;
}

async fn the_undo_command_restores_by_run_prefix_and_refuses_unknown_runs_and_people(
    backend: Backend,
) {
    let Some((w, id)) = removed(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = w.config_file(dir.path());
    let idbridge = |args: &[&str]| {
        binary()
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("IDBRIDGE_SOURCES__OKTA__TOKEN", w.okta.ssws_token())
            .env("IDBRIDGE_TARGETS__WIKI__TOKEN", w.dc.pat())
            .env("IDBRIDGE_LOG__FILTER", "warn")
            .output()
            .expect("run idbridge")
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    for (args, want) in [
        (
            vec!["undo", "run", "0123abcd"],
            "no run starts with `0123abcd`",
        ),
        (vec!["undo", "run", "12"], "is not a run id"),
        (
            vec!["undo", "person", "nobody-here"],
            "no Confluence account is named or addressed `nobody-here`",
        ),
        (
            vec!["undo", "person", "bob", "--target", "elsewhere"],
            "no target `elsewhere`",
        ),
    ] {
        let out = idbridge(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(want), "{args:?}: {}", text(&out));
    }

    let id = id.to_string();
    let dry = idbridge(&["undo", "run", &id[..23], "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let report = text(&dry);
    for want in [
        "reactivate",
        "add to confluence-users",
        "rename to bob",
        "--include-leavers",
        &renamed("alice"),
        "(undo, dry_run): recorded",
    ] {
        assert!(report.contains(want), "missing `{want}`:\n{report}");
    }
    assert_removed(&w, "bob");

    // The file keeps the default budgets: three renames back in a company of ten is over
    // the 5 % per-run rename budget, so the undo is held for a second person.
    let held = idbridge(&["undo", "run", &id[..23], "--as", "ops", "--json"]);
    assert!(held.status.success(), "{}", text(&held));
    let v: serde_json::Value = serde_json::from_slice(&held.stdout).expect("JSON");
    assert_eq!(v["run"]["status"], "held", "{v:#}");
    assert_eq!(v["run"]["budget"]["held"], true);
    assert_eq!(
        v["plan"]["leavers_skipped"].as_array().map(Vec::len),
        Some(1)
    );
    assert_removed(&w, "bob");
    let undo_run = v["run"]["run"].as_str().expect("run id");
    let hash = v["run"]["plan_hash"].as_str().expect("plan hash");
    let approved = idbridge(&["approve", undo_run, "--hash", hash, "--as", "boss"]);
    assert!(approved.status.success(), "{}", text(&approved));
    for user in ["bob", "ivan", "judy"] {
        assert_restored(&w, user);
    }
    let again = idbridge(&["undo", "run", &id]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("nothing to undo"), "{}", text(&again));
    w.stop().await;
}
