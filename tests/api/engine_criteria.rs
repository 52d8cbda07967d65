//! The rule criteria and actions `engine_e2e` does not cover, end to end on both backends:
//! the company of `engine_world` is synced from the Okta simulator and inventoried from the
//! Confluence Data Center simulator, one rule is planned and carried out by
//! `engine::run::run`, and then the simulator's state, its request log and the stored run,
//! actions and audit trail are read back. Every scenario also checks that the people the
//! rule does not select were neither written to nor changed.
//!
//! Criteria: logged in only once, member of any / all / none of groups, directory, created
//! before / after, an explicit users list, a users CSV file, absent for N consecutive
//! complete syncs. Actions: notify with a grace period, change directory (unsupported on
//! DC: skipped with the reason), delete (only with the rule's allowance). The directory
//! criterion selects on Atlassian Cloud, whose connector reports each account's directory;
//! on DC it selects nobody. The planner has no rung that plans a reactivation, so there is
//! no scenario for it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use idbridge::clock::Clock;
use idbridge::config::{RuleConfig, WhenConfig};
use idbridge::domain::{ActionKind, ActionPhase, RuleMode, RunStatus};
use idbridge::engine::run::{self, RunError};
use idbridge::sim::atlassian_cloud::{MembershipStatus, SimUser as CloudUser};
use idbridge::sim::common::{Fault, FaultKind};
use serde_json::json;

use crate::engine_world::{
    LICENCE, World, assert_untouched_except, cloud_world, days_ago, enforced, groups_of, now, opts,
    rule, sync_all, sync_okta, writes, written_users,
};
use crate::helpers::{Backend, on_both_backends};

/// The configuration's rules: just `rule`, named `name`, enforced.
fn only(name: &str, rule: RuleConfig) -> BTreeMap<String, RuleConfig> {
    BTreeMap::from([(name.to_owned(), rule)])
}

fn enforce(when: WhenConfig, actions: serde_json::Value) -> RuleConfig {
    rule(RuleMode::Enforce, 10, when, actions)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// Why `user` is or is not selected by the only rule, criterion by criterion.
async fn criteria_of(w: &World, user: &str) -> Vec<(String, bool)> {
    let explained = run::explain(&w.store, &w.config, &opts("ops"), user, w.clock.now())
        .await
        .unwrap();
    assert_eq!(explained.len(), 1, "{explained:#?}");
    explained[0].rules[0].criteria.clone()
}

/// Plans at the store's clock and checks that nothing is planned.
async fn nothing_planned(w: &World) -> run::Preview {
    let preview = run::preview(&w.store, &w.config, &opts("ops"), w.clock.now())
        .await
        .unwrap();
    assert!(
        preview.enforce.actions.is_empty(),
        "{:#?}",
        preview.enforce.actions
    );
    preview
}

/// Six hours on, a complete sync of Okta.
async fn complete_sync_later(w: &World) {
    w.clock.advance(Duration::hours(6));
    let report = sync_okta(w).await;
    assert!(report.is_complete(), "{:?}", report.reason);
}

/// A selector with what `set` gives it.
fn selector(set: impl FnOnce(&mut WhenConfig)) -> WhenConfig {
    let mut when = WhenConfig::default();
    set(&mut when);
    when
}

/// A rule taking the licence groups of whom `when` selects.
fn licence_rule(when: WhenConfig) -> RuleConfig {
    enforce(when, json!(["remove_licence_groups"]))
}

/// Syncs, runs `rule` (named `r`), and checks that exactly `expected` lost their licence
/// (and are still active) while nobody else was written to or changed.
async fn only_these_lose_their_licence(backend: Backend, rule: RuleConfig, expected: &[&str]) {
    let Some(mut w) = crate::engine_world::world(backend).await else {
        return;
    };
    w.config.rules = only("r", rule);
    sync_all(&w).await;
    let outcome = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    let planned: BTreeSet<String> = outcome
        .preview
        .enforce
        .actions
        .iter()
        .map(|a| a.username.clone())
        .collect();
    assert_eq!(planned, set(expected), "{:#?}", outcome.preview.enforce);
    if expected.is_empty() {
        assert!(outcome.runs.is_empty(), "{:#?}", outcome.runs);
    } else {
        let run = enforced(&w.store, &outcome).await.expect("an enforced run");
        assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run.actions);
        assert!(
            run.actions.iter().all(|a| a.phase == ActionPhase::Confirmed
                && matches!(a.kind, ActionKind::RemoveFromGroup { licence: true, .. })),
            "{:#?}",
            run.actions
        );
    }
    // (`staff` grants a licence on the simulated instance too.)
    for user in expected {
        let u = w.dc.user(user).expect(user);
        assert!(u.active, "{user}");
        assert!(!u.licensed, "{user}: {:?}", u.groups);
        assert!(
            !u.groups.iter().any(|g| g == LICENCE),
            "{user}: {:?}",
            u.groups
        );
    }
    assert_eq!(written_users(&w.dc), set(expected));
    assert_untouched_except(&w, expected);
    w.stop().await;
}

on_both_backends!(
    member_of_any_selects_whoever_is_in_one_of_the_groups_whatever_their_case,
    member_of_all_selects_only_those_in_every_group,
    member_of_none_selects_those_in_none_of_the_groups_and_still_spares_the_admin,
    created_before_selects_the_people_created_before_the_instant,
    created_after_a_plain_date_selects_the_people_created_after_it,
    an_explicit_users_list_selects_those_it_names_whatever_their_case_and_nobody_else,
    a_users_csv_file_selects_the_people_it_names_but_not_the_exempt,
    a_directory_rule_selects_nobody_on_dc_whose_connector_reads_no_directory,
    logged_in_once_counts_only_successful_sign_ins_to_the_confluence_app,
    absence_needs_n_consecutive_complete_syncs_and_an_incomplete_one_does_not_count,
    a_directory_move_dc_cannot_make_is_not_planned_and_explain_says_why,
    delete_needs_the_rules_allowance_and_then_removes_the_account_from_confluence,
);

async fn member_of_any_selects_whoever_is_in_one_of_the_groups_whatever_their_case(
    backend: Backend,
) {
    let when = selector(|w| w.member_of_any = vec!["Wiki-Editors".into(), "STAFF".into()]);
    only_these_lose_their_licence(
        backend,
        licence_rule(when),
        &["alice", "bob", "carol", "ivan"],
    )
    .await;
}

async fn member_of_all_selects_only_those_in_every_group(backend: Backend) {
    let when = selector(|w| w.member_of_all = vec![LICENCE.into(), "staff".into()]);
    only_these_lose_their_licence(backend, licence_rule(when), &["carol", "ivan"]).await;
}

async fn member_of_none_selects_those_in_none_of_the_groups_and_still_spares_the_admin(
    backend: Backend,
) {
    // erin (an administrator) and mallory (unlinked) are in none of them too, but protected.
    let when = selector(|w| w.member_of_none = vec!["wiki-editors".into(), "staff".into()]);
    only_these_lose_their_licence(
        backend,
        licence_rule(when),
        &["dave", "frank", "heidi", "judy"],
    )
    .await;
}

async fn created_before_selects_the_people_created_before_the_instant(backend: Backend) {
    // carol (400 days) and frank (60 days) are newer; grace is exempt.
    let when = selector(|w| w.created_before = Some(days_ago(450).to_rfc3339()));
    only_these_lose_their_licence(
        backend,
        licence_rule(when),
        &["alice", "bob", "dave", "heidi", "ivan", "judy"],
    )
    .await;
}

async fn created_after_a_plain_date_selects_the_people_created_after_it(backend: Backend) {
    let when = selector(|w| w.created_after = Some(days_ago(450).format("%Y-%m-%d").to_string()));
    only_these_lose_their_licence(backend, licence_rule(when), &["carol", "frank"]).await;
}

async fn an_explicit_users_list_selects_those_it_names_whatever_their_case_and_nobody_else(
    backend: Backend,
) {
    let when = selector(|w| w.users = vec!["BOB".into(), "judy".into(), "nobody".into()]);
    only_these_lose_their_licence(backend, licence_rule(when), &["bob", "judy"]).await;
}

async fn a_users_csv_file_selects_the_people_it_names_but_not_the_exempt(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("leavers.csv");
    std::fs::write(
        &path,
        "email,username,note\n,ivan,left\n,CAROL,moved\n,grace,service\nnobody@example.com,,gone\n",
    )
    .expect("write the CSV");
    let when = selector(|w| w.users_csv = Some(path));
    only_these_lose_their_licence(backend, licence_rule(when), &["carol", "ivan"]).await;
}

/// On DC the account itself carries no email (`/rest/api/user/list` has none); the linked
/// identity does, and the email-domain criterion already reads it from there.
async fn an_email_on_the_users_list_selects_the_dc_account_whose_identity_has_it(backend: Backend) {
    let when = selector(|w| w.users = vec!["Judy@Example.com".into()]);
    only_these_lose_their_licence(backend, licence_rule(when), &["judy"]).await;
}

/// The same gap in a protection: an exemption by email does not spare the DC account.
async fn an_exempt_email_spares_the_dc_account_whose_identity_has_it(backend: Backend) {
    let mut rule = licence_rule(WhenConfig {
        users: vec!["bob".into(), "judy".into()],
        ..WhenConfig::default()
    });
    rule.exempt_users = vec!["judy@example.com".into()];
    only_these_lose_their_licence(backend, rule, &["bob"]).await;
}

async fn a_directory_rule_selects_nobody_on_dc_whose_connector_reads_no_directory(
    backend: Backend,
) {
    let Some(mut w) = crate::engine_world::world(backend).await else {
        return;
    };
    // Every seeded account lives in this directory in the simulator.
    assert_eq!(
        w.dc.user("bob").expect("bob").directory,
        "Confluence Internal Directory"
    );
    let when = selector(|w| w.directory = vec!["Confluence Internal Directory".into()]);
    w.config.rules = only("r", enforce(when, json!(["remove_licence_groups"])));
    sync_all(&w).await;
    // An unknown directory is no match: the rule selects nobody and says why.
    let criteria = criteria_of(&w, "bob").await;
    assert_eq!(
        criteria,
        [(
            "directory unknown not in [Confluence Internal Directory]".to_owned(),
            false
        )]
    );
    let outcome = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    assert!(outcome.preview.enforce.actions.is_empty());
    assert!(outcome.runs.is_empty());
    assert!(writes(&w.dc).is_empty(), "{:?}", writes(&w.dc));
    assert_untouched_except(&w, &[]);
    w.stop().await;
}

async fn logged_in_once_counts_only_successful_sign_ins_to_the_confluence_app(backend: Backend) {
    let Some(mut w) = crate::engine_world::world(backend).await else {
        return;
    };
    // The Okta connector asks the System Log for a window before the store's clock, which
    // the whole world shares (not the real time).
    let hour_ago = now() - Duration::hours(1);
    let sign_in = |user: &str, result: &str| {
        w.okta
            .add_sso_event(&w.okta_ids[user], result, Some(hour_ago))
            .expect("event");
    };
    sign_in("bob", "SUCCESS");
    sign_in("carol", "SUCCESS");
    sign_in("carol", "SUCCESS");
    sign_in("dave", "FAILURE");
    sign_in("judy", "SUCCESS");
    sign_in("judy", "FAILURE");
    w.config.rules = only(
        "once",
        enforce(
            WhenConfig {
                logged_in_once: Some(true),
                ..WhenConfig::default()
            },
            json!(["remove_licence_groups"]),
        ),
    );
    sync_all(&w).await;
    assert_eq!(
        criteria_of(&w, "carol").await,
        [(
            "2 successful sign-ins known (once: false)".to_owned(),
            false
        )]
    );
    assert_eq!(
        criteria_of(&w, "dave").await,
        [(
            "0 successful sign-ins known (once: false)".to_owned(),
            false
        )]
    );
    let outcome = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    let run = enforced(&w.store, &outcome).await.expect("an enforced run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run.actions);
    let selected: BTreeSet<String> = run.actions.iter().map(|a| a.username.clone()).collect();
    assert_eq!(selected, set(&["bob", "judy"]));
    for user in ["bob", "judy"] {
        assert!(
            !groups_of(&w.dc, user).iter().any(|g| g == LICENCE),
            "{user}"
        );
    }
    assert_eq!(written_users(&w.dc), set(&["bob", "judy"]));
    assert_untouched_except(&w, &["bob", "judy"]);
    w.stop().await;
}

async fn absence_needs_n_consecutive_complete_syncs_and_an_incomplete_one_does_not_count(
    backend: Backend,
) {
    let Some(mut w) = crate::engine_world::world(backend).await else {
        return;
    };
    // One person of ten leaving is a 10 % change: plausible here.
    w.config
        .sources
        .get_mut("okta")
        .expect("okta")
        .plausible_change_percent = 50.0;
    w.config.rules = only(
        "gone",
        enforce(
            WhenConfig {
                absent_syncs: Some(3),
                ..WhenConfig::default()
            },
            json!(["remove_licence_groups"]),
        ),
    );
    sync_all(&w).await;
    // bob disappears from Okta without any status change.
    assert!(w.okta.delete_user(&w.okta_ids["bob"]));
    complete_sync_later(&w).await;
    nothing_planned(&w).await;
    assert_eq!(
        criteria_of(&w, "bob").await,
        [("absent from 1 complete syncs < 3".to_owned(), false)]
    );

    // A listing that fails part-way: it is no evidence of absence, and while it is the
    // latest, absence holds for nobody.
    w.clock.advance(Duration::hours(6));
    w.okta.core().add_fault(Fault {
        method: None,
        path_prefix: Some("/api/v1/users".into()),
        kind: FaultKind::Status { status: 503 },
        times: None,
    });
    assert!(!sync_okta(&w).await.is_complete());
    w.okta.core().clear_faults();
    let preview = nothing_planned(&w).await;
    assert!(
        preview
            .enforce
            .notes
            .iter()
            .any(|n| n.starts_with("absent_syncs holds for nobody")),
        "{:?}",
        preview.enforce.notes
    );

    // Two complete syncs since bob left, not three: still nothing.
    complete_sync_later(&w).await;
    nothing_planned(&w).await;
    assert_eq!(
        criteria_of(&w, "bob").await,
        [("absent from 2 complete syncs < 3".to_owned(), false)]
    );
    assert!(writes(&w.dc).is_empty(), "{:?}", writes(&w.dc));

    complete_sync_later(&w).await;
    let outcome = run::run(&w.store, &w.config, &opts("ops"), w.clock.now())
        .await
        .unwrap();
    let run = enforced(&w.store, &outcome).await.expect("an enforced run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run.actions);
    assert_eq!(
        run.actions
            .iter()
            .map(|a| (a.username.as_str(), a.reason.because.clone()))
            .collect::<Vec<_>>(),
        [("bob", vec!["absent from 3 complete syncs ≥ 3".to_owned()])]
    );
    assert_eq!(groups_of(&w.dc, "bob"), ["wiki-editors"]);
    assert!(w.dc.user("bob").expect("bob").active);
    assert_eq!(written_users(&w.dc), set(&["bob"]));
    assert_untouched_except(&w, &["bob"]);
    w.stop().await;
}

async fn on_dc_a_notice_comes_first_and_the_next_rungs_wait_for_the_grace_period(backend: Backend) {
    let Some(mut w) = crate::engine_world::world(backend).await else {
        return;
    };
    w.config.rules = only(
        "idle",
        enforce(
            WhenConfig {
                users: vec!["bob".into(), "judy".into()],
                ..WhenConfig::default()
            },
            json!([{ "notify": { "grace_days": 14 } }, "remove_licence_groups", "deactivate"]),
        ),
    );
    sync_all(&w).await;

    // First pass: the notices only.
    let outcome = run::run(&w.store, &w.config, &opts("ops"), w.clock.now())
        .await
        .unwrap();
    let run = enforced(&w.store, &outcome).await.expect("an enforced run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run.actions);
    let notices: Vec<(&str, &ActionKind, ActionPhase)> = run
        .actions
        .iter()
        .map(|a| (a.username.as_str(), &a.kind, a.phase))
        .collect();
    assert_eq!(
        notices,
        [
            ("bob", &ActionKind::Notify, ActionPhase::Confirmed),
            ("judy", &ActionKind::Notify, ActionPhase::Confirmed),
        ]
    );
    assert!(writes(&w.dc).is_empty(), "{:?}", writes(&w.dc));
    let entries = w.store.audit_entries(0, 10_000).await.unwrap();
    let queued: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.action == "notify.queued" && e.actor == "rule:idle")
        .filter_map(|e| e.detail["username"].as_str())
        .collect();
    assert_eq!(queued, BTreeSet::from(["bob", "judy"]));
    assert_untouched_except(&w, &[]);

    // A week later: within the grace period, nothing is planned and nothing is sent again.
    w.clock.advance(Duration::days(7));
    sync_all(&w).await;
    let outcome = run::run(&w.store, &w.config, &opts("ops"), w.clock.now())
        .await
        .unwrap();
    assert!(outcome.runs.is_empty(), "{:#?}", outcome.runs);
    let explained = run::explain(&w.store, &w.config, &opts("ops"), "bob", w.clock.now())
        .await
        .unwrap();
    let held = &explained[0].rules[0].held_back;
    assert!(
        held.iter().any(|h| h.contains("grace period until")),
        "{held:?}"
    );
    assert!(writes(&w.dc).is_empty(), "{:?}", writes(&w.dc));

    // After the grace period: the rest of the ladder, and no second notice.
    w.clock.advance(Duration::days(8));
    sync_all(&w).await;
    let outcome = run::run(&w.store, &w.config, &opts("ops"), w.clock.now())
        .await
        .unwrap();
    let run = enforced(&w.store, &outcome).await.expect("an enforced run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run.actions);
    for user in ["bob", "judy"] {
        let kinds: Vec<&ActionKind> = run
            .actions
            .iter()
            .filter(|a| a.username == user)
            .map(|a| &a.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                &ActionKind::RemoveFromGroup {
                    group: LICENCE.into(),
                    licence: true
                },
                &ActionKind::Deactivate,
            ],
            "{user}"
        );
        let u = w.dc.user(user).expect(user);
        assert!(!u.active, "{user}");
        assert!(!u.groups.iter().any(|g| g == LICENCE), "{user}");
    }
    assert_eq!(written_users(&w.dc), set(&["bob", "judy"]));
    assert_untouched_except(&w, &["bob", "judy"]);
    w.stop().await;
}

/// A move DC cannot make (it has no API for it, as its latest inventory's probe said) is not
/// planned at all: nothing is stored, skipped or written, and `explain` says why.
async fn a_directory_move_dc_cannot_make_is_not_planned_and_explain_says_why(backend: Backend) {
    let Some(mut w) = crate::engine_world::world(backend).await else {
        return;
    };
    w.config.rules = only(
        "park",
        enforce(
            WhenConfig {
                users: vec!["bob".into()],
                ..WhenConfig::default()
            },
            json!([{ "change_directory": "Disabled users" }]),
        ),
    );
    sync_all(&w).await;
    let outcome = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    assert!(outcome.runs.is_empty(), "{:#?}", outcome.runs);
    let why = run::explain(&w.store, &w.config, &opts("ops"), "bob", now())
        .await
        .unwrap();
    let park = why[0]
        .rules
        .iter()
        .find(|r| r.rule == "park")
        .expect("park explained");
    assert!(park.selected, "{park:#?}");
    assert!(
        park.held_back.iter().any(
            |h| h.contains("change_directory: not possible on this target")
                && h.contains("no API to move an account")
        ),
        "{park:#?}"
    );
    assert!(writes(&w.dc).is_empty(), "{:?}", writes(&w.dc));
    assert_eq!(
        w.dc.user("bob").expect("bob").directory,
        "Confluence Internal Directory"
    );
    assert_untouched_except(&w, &[]);
    w.stop().await;
}

async fn delete_needs_the_rules_allowance_and_then_removes_the_account_from_confluence(
    backend: Backend,
) {
    let Some(mut w) = crate::engine_world::world(backend).await else {
        return;
    };
    let mut purge = enforce(
        WhenConfig {
            status: vec!["deprovisioned".into()],
            ..WhenConfig::default()
        },
        json!(["remove_licence_groups", "deactivate", "delete"]),
    );
    w.config.rules = only("purge", purge.clone());
    sync_all(&w).await;
    // Without the allowance the rule is refused before anything is planned or written.
    match run::run(&w.store, &w.config, &opts("ops"), now()).await {
        Err(RunError::Rules(problems)) => assert!(
            problems
                .iter()
                .any(|p| p.contains("`delete` needs `allow_delete = true`")),
            "{problems:?}"
        ),
        other => panic!("a delete without allowance was accepted: {other:?}"),
    }
    assert!(writes(&w.dc).is_empty(), "{:?}", writes(&w.dc));
    assert!(w.dc.user("alice").is_some());

    purge.allow_delete = true;
    w.config.rules = only("purge", purge);
    let outcome = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    let run = enforced(&w.store, &outcome).await.expect("an enforced run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run.actions);
    let done: Vec<(&str, &ActionKind, ActionPhase)> = run
        .actions
        .iter()
        .map(|a| (a.username.as_str(), &a.kind, a.phase))
        .collect();
    assert_eq!(
        done,
        [
            (
                "alice",
                &ActionKind::RemoveFromGroup {
                    group: LICENCE.into(),
                    licence: true
                },
                ActionPhase::Confirmed
            ),
            ("alice", &ActionKind::Deactivate, ActionPhase::Confirmed),
            ("alice", &ActionKind::Delete, ActionPhase::Confirmed),
        ]
    );
    // alice is gone, by name and by key; erin (deprovisioned too) is an administrator.
    assert!(w.dc.user("alice").is_none());
    assert!(w.dc.user_by_key(&w.keys["alice"]).is_none());
    let entries = w.store.audit_entries(0, 10_000).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.action == "action.delete" && e.actor == "rule:purge"),
        "{:?}",
        entries.iter().map(|e| &e.action).collect::<Vec<_>>()
    );
    assert_eq!(written_users(&w.dc), set(&["alice"]));
    assert_untouched_except(&w, &["alice"]);
    // A fresh inventory no longer has alice: a second pass plans nothing.
    sync_all(&w).await;
    nothing_planned(&w).await;
    w.stop().await;
}

on_both_backends!(
    a_directory_rule_on_atlassian_cloud_acts_on_the_accounts_of_that_directory_only,
    on_cloud_a_notice_comes_first_and_the_next_rung_waits_for_the_grace_period,
);

async fn a_directory_rule_on_atlassian_cloud_acts_on_the_accounts_of_that_directory_only(
    backend: Backend,
) {
    let Some(mut c) = cloud_world(backend).await else {
        return;
    };
    // Three active, non-administrator accounts move to the org's second directory.
    let other = c.sim.directories()[1].id.clone();
    let moved: Vec<String> = c
        .writable()
        .into_iter()
        .take(3)
        .map(|u| u.account_id)
        .collect();
    assert_eq!(moved.len(), 3, "{:#?}", c.sim.users());
    for id in &moved {
        assert!(c.sim.update_user(id, |u| u.directory = 1));
    }
    let before = c.sim.users();
    c.config.rules = only(
        "other-directory",
        enforce(
            WhenConfig {
                directory: vec![other.clone()],
                ..WhenConfig::default()
            },
            json!(["deactivate"]),
        ),
    );
    c.sync().await;
    let outcome = run::run(&c.store, &c.config, &opts("ops"), now())
        .await
        .unwrap();
    let run = enforced(&c.store, &outcome).await.expect("an enforced run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run.actions);
    let acted: BTreeSet<&str> = run.actions.iter().map(|a| a.account_key.as_str()).collect();
    assert_eq!(acted, moved.iter().map(String::as_str).collect());
    assert!(
        run.actions.iter().all(|a| a.kind == ActionKind::Deactivate
            && a.phase == ActionPhase::Confirmed
            && a.reason.because == [format!("directory {other} in [{other}]")]),
        "{:#?}",
        run.actions
    );
    for id in &moved {
        let u = c.sim.user(id).expect("user");
        assert_eq!(
            u.membership_status,
            MembershipStatus::Suspended,
            "{}",
            u.email
        );
        assert!(c.writes_about(id) > 0);
    }
    c.assert_untouched_except(&before, &moved);
    c.sim.stop().await;
}

async fn on_cloud_a_notice_comes_first_and_the_next_rung_waits_for_the_grace_period(
    backend: Backend,
) {
    let Some(mut c) = cloud_world(backend).await else {
        return;
    };
    let chosen: Vec<CloudUser> = c.writable().into_iter().take(2).collect();
    let ids: Vec<String> = chosen.iter().map(|u| u.account_id.clone()).collect();
    let before = c.sim.users();
    c.config.rules = only(
        "idle",
        enforce(
            WhenConfig {
                users: chosen.iter().map(|u| u.email.clone()).collect(),
                ..WhenConfig::default()
            },
            json!([{ "notify": { "grace_days": 14 } }, "deactivate"]),
        ),
    );
    c.sync().await;

    // First pass: the notices only, each to the account's address.
    let outcome = run::run(&c.store, &c.config, &opts("ops"), c.clock.now())
        .await
        .unwrap();
    let run = enforced(&c.store, &outcome).await.expect("an enforced run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run.actions);
    assert_eq!(run.actions.len(), 2, "{:#?}", run.actions);
    for a in &run.actions {
        assert_eq!(
            (&a.kind, a.phase),
            (&ActionKind::Notify, ActionPhase::Confirmed)
        );
        let to = a.post_image.as_ref().map(|p| p["notified"].clone());
        let email = chosen
            .iter()
            .find(|u| u.account_id == a.account_key)
            .map(|u| json!(u.email));
        assert_eq!(to, email);
    }
    let entries = c.store.audit_entries(0, 10_000).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == "notify.queued" && e.actor == "rule:idle")
            .count(),
        2
    );
    c.assert_untouched_except(&before, &[]);

    // A week later, within the grace period: nothing is planned, nothing sent again.
    c.clock.advance(Duration::days(7));
    c.sync().await;
    let outcome = run::run(&c.store, &c.config, &opts("ops"), c.clock.now())
        .await
        .unwrap();
    assert!(outcome.runs.is_empty(), "{:#?}", outcome.runs);
    let explained = run::explain(
        &c.store,
        &c.config,
        &opts("ops"),
        &chosen[0].email,
        c.clock.now(),
    )
    .await
    .unwrap();
    let held = &explained[0].rules[0].held_back;
    assert!(
        held.iter().any(|h| h.contains("grace period until")),
        "{held:?}"
    );
    c.assert_untouched_except(&before, &[]);

    // After the grace period: the next rung, and no second notice.
    c.clock.advance(Duration::days(8));
    c.sync().await;
    let outcome = run::run(&c.store, &c.config, &opts("ops"), c.clock.now())
        .await
        .unwrap();
    let run = enforced(&c.store, &outcome).await.expect("an enforced run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:#?}", run.actions);
    let done: BTreeSet<(&str, &ActionKind)> = run
        .actions
        .iter()
        .map(|a| (a.account_key.as_str(), &a.kind))
        .collect();
    assert_eq!(
        done,
        ids.iter()
            .map(|id| (id.as_str(), &ActionKind::Deactivate))
            .collect()
    );
    for id in &ids {
        assert_eq!(
            c.sim.user(id).expect("user").membership_status,
            MembershipStatus::Suspended
        );
    }
    c.assert_untouched_except(&before, &ids);
    c.sim.stop().await;
}

on_both_backends!(
    an_email_on_the_users_list_selects_the_dc_account_whose_identity_has_it,
    an_exempt_email_spares_the_dc_account_whose_identity_has_it,
);

on_both_backends!(on_dc_a_notice_comes_first_and_the_next_rungs_wait_for_the_grace_period,);
