//! The reconciliation engine end to end on both backends, against the Okta and Confluence
//! Data Center simulators (and the SCIM service for pushed leavers): a small company is
//! synced, planned, checked against budgets and carried out, and the simulated Confluence is
//! then inspected by state: status, inactivity, never logged in, email domain, custom
//! attribute; removing licence groups, deactivating, renaming, removing and adding groups;
//! the protections (administrators, exemptions, unlinked accounts, incomplete snapshots), the
//! held plan and its four-eyes approval, and idempotence on a second pass. The remaining
//! criteria and actions are in `engine_criteria`; the company is in `engine_world`.

use idbridge::config::{RuleConfig, SourceConfig, WhenConfig};
use idbridge::domain::{ActionKind, RuleMode, RunStatus, SourceKind};
use idbridge::engine::inventory::{InventoryOptions, sync_target};
use idbridge::engine::run;
use idbridge::targets::Connector;
use serde_json::json;

use crate::engine_world::{
    LICENCE, World, groups_of, now, opts, rule, sync_all, sync_okta, writes, writes_about,
};
use crate::helpers::{Backend, on_both_backends};
use crate::scim_support::{OKTA, ScimClient};

/// The company with this file's rules.
async fn world(backend: Backend) -> Option<World> {
    let mut w = crate::engine_world::world(backend).await?;
    w.config.rules = rules();
    Some(w)
}

fn rules() -> std::collections::BTreeMap<String, RuleConfig> {
    let mut out = std::collections::BTreeMap::new();
    out.insert(
        "leavers".into(),
        rule(
            RuleMode::Enforce,
            10,
            WhenConfig {
                status: vec![
                    "deprovisioned".into(),
                    "deleted".into(),
                    "scim_inactive".into(),
                ],
                ..WhenConfig::default()
            },
            json!(["remove_licence_groups", "deactivate", "rename"]),
        ),
    );
    out.insert(
        "contractors".into(),
        rule(
            RuleMode::Enforce,
            20,
            WhenConfig {
                inactive_days: Some(90),
                email_domain: vec!["contractor.example.net".into()],
                ..WhenConfig::default()
            },
            json!([{ "remove_groups": "all" }]),
        ),
    );
    out.insert(
        "sales".into(),
        rule(
            RuleMode::Enforce,
            30,
            WhenConfig {
                inactive_days: Some(90),
                attribute: Some(idbridge::config::AttributeCondition {
                    name: "department".into(),
                    any_of: vec!["sales".into()],
                }),
                ..WhenConfig::default()
            },
            json!(["remove_licence_groups", { "add_groups": ["former-sales"] }]),
        ),
    );
    out.insert(
        "inactive".into(),
        rule(
            RuleMode::Enforce,
            40,
            WhenConfig {
                inactive_days: Some(90),
                not_email_domain: vec!["contractor.example.net".into()],
                ..WhenConfig::default()
            },
            json!(["remove_licence_groups"]),
        ),
    );
    out.insert(
        "never".into(),
        rule(
            RuleMode::DryRun,
            50,
            WhenConfig {
                never_logged_in_days: Some(30),
                ..WhenConfig::default()
            },
            json!(["deactivate"]),
        ),
    );
    out
}

on_both_backends!(
    every_rule_acts_only_on_the_people_it_selects_and_a_second_pass_changes_nothing,
    a_plan_over_budget_is_held_whole_until_a_second_person_approves_its_hash,
    an_incomplete_okta_snapshot_stops_every_status_removal,
    a_leaver_pushed_over_scim_is_offboarded,
);

async fn every_rule_acts_only_on_the_people_it_selects_and_a_second_pass_changes_nothing(
    backend: Backend,
) {
    let Some(w) = world(backend).await else {
        return;
    };
    sync_all(&w).await;
    let outcome = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    let enforce = outcome
        .runs
        .iter()
        .find(|r| r.mode == RuleMode::Enforce)
        .expect("an enforced run");
    let actions = w.store.run_actions(enforce.run).await.unwrap();
    let failed: Vec<_> = actions
        .iter()
        .filter(|a| a.error.is_some())
        .map(|a| (&a.username, &a.kind, &a.error))
        .collect();
    assert_eq!(enforce.status, RunStatus::Succeeded, "{failed:#?}");

    // alice left: licence group gone, deactivated, renamed with the Berlin date.
    let date = now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y%m%d")
        .to_string();
    let renamed = format!("alice_inactive_{date}");
    let alice = w.dc.user(&renamed).expect("alice renamed");
    assert!(!alice.active);
    assert!(
        !alice.groups.iter().any(|g| g == LICENCE),
        "{:?}",
        alice.groups
    );
    assert!(
        alice.groups.iter().any(|g| g == "wiki-editors"),
        "only licence groups go: {:?}",
        alice.groups
    );
    assert!(w.dc.user("alice").is_none());

    // bob is inactive: licence reclaimed, still active.
    let bob = w.dc.user("bob").expect("bob");
    assert!(bob.active);
    assert_eq!(groups_of(&w.dc, "bob"), ["wiki-editors"]);

    // ivan the contractor loses every group; judy from sales moves to former-sales.
    assert!(groups_of(&w.dc, "ivan").is_empty());
    assert_eq!(groups_of(&w.dc, "judy"), ["former-sales"]);

    // Nobody else was written to: the active, the suspended, the locked out, the admin,
    // the exempt, the never-logged-in (a dry-run rule) and the unlinked.
    for untouched in [
        "carol", "dave", "erin", "frank", "grace", "heidi", "mallory",
    ] {
        assert_eq!(
            writes_about(&w.dc, untouched),
            0,
            "{untouched} was written to"
        );
        let u = w.dc.user(untouched).expect(untouched);
        assert!(u.active, "{untouched}");
        assert!(u.groups.iter().any(|g| g == LICENCE), "{untouched}");
    }
    // The dry-run rule recorded frank's deactivation without sending it.
    let dry = outcome
        .runs
        .iter()
        .find(|r| r.mode == RuleMode::DryRun)
        .expect("a dry run");
    assert_eq!(dry.status, RunStatus::Recorded);
    let recorded = w.store.run_actions(dry.run).await.unwrap();
    assert!(
        recorded
            .iter()
            .any(|a| a.username == "frank" && a.kind == ActionKind::Deactivate),
        "{recorded:?}"
    );

    // Every enforced action left an audit entry naming its rule, and the chain verifies.
    let entries = w.store.audit_entries(0, 10_000).await.unwrap();
    assert!(entries.iter().any(|e| e.actor == "rule:leavers"));
    assert!(w.store.verify_audit_chain().await.unwrap().is_ok());

    // A second pass over fresh inventories plans nothing and writes nothing.
    let writes_before = writes(&w.dc).len();
    sync_all(&w).await;
    let again = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    assert!(
        again.preview.enforce.actions.is_empty(),
        "{:#?}",
        again.preview.enforce.actions
    );
    assert_eq!(writes(&w.dc).len(), writes_before);
    w.dc.stop().await;
    w.okta.stop().await;
}

async fn a_plan_over_budget_is_held_whole_until_a_second_person_approves_its_hash(
    backend: Backend,
) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    // The built-in budgets: 5 % of a dozen managed accounts is one account per run, halved
    // again on the first run.
    w.config.safety = Default::default();
    sync_all(&w).await;
    let outcome = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    let held = outcome
        .runs
        .iter()
        .find(|r| r.mode == RuleMode::Enforce)
        .expect("an enforced run");
    assert_eq!(held.status, RunStatus::Held);
    assert!(held.budget.held);
    assert!(
        writes(&w.dc).is_empty(),
        "a held plan wrote: {:?}",
        writes(&w.dc)
    );

    // The starter cannot approve their own plan.
    let own = run::approve(
        &w.store,
        &w.config,
        held.run,
        "ops",
        Some(&held.plan_hash),
        true,
        now(),
    )
    .await;
    assert!(own.is_err(), "self-approval accepted");
    // A hash other than the stored plan's is refused.
    let wrong = run::approve(
        &w.store,
        &w.config,
        held.run,
        "lead",
        Some("00ff"),
        true,
        now(),
    )
    .await;
    assert!(wrong.is_err(), "approval bound to another hash accepted");
    assert!(writes(&w.dc).is_empty());
    assert!(
        w.dc.user("bob")
            .unwrap()
            .groups
            .iter()
            .any(|g| g == LICENCE)
    );

    let approved = run::approve(
        &w.store,
        &w.config,
        held.run,
        "lead",
        Some(&held.plan_hash),
        true,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(approved.status, RunStatus::Succeeded);
    assert!(
        !w.dc
            .user("bob")
            .unwrap()
            .groups
            .iter()
            .any(|g| g == LICENCE)
    );
    let record = w.store.run(held.run).await.unwrap().unwrap();
    assert_eq!(record.approved_by.as_deref(), Some("lead"));
    w.dc.stop().await;
    w.okta.stop().await;
}

async fn an_incomplete_okta_snapshot_stops_every_status_removal(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    sync_all(&w).await;
    // A later listing breaks off mid-way: the newest Okta snapshot is incomplete.
    w.okta.core().add_fault(idbridge::sim::common::Fault {
        method: None,
        path_prefix: Some("/api/v1/users".into()),
        kind: idbridge::sim::common::FaultKind::Status { status: 503 },
        times: None,
    });
    let report = sync_okta(&w).await;
    assert!(!report.is_complete());

    let preview = run::preview(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    assert!(
        !preview
            .enforce
            .actions
            .iter()
            .any(|a| a.reason.rule == "leavers"),
        "{:#?}",
        preview.enforce.actions
    );
    assert!(
        preview.enforce.notes.iter().any(|n| n.contains("okta")),
        "{:?}",
        preview.enforce.notes
    );
    w.dc.stop().await;
    w.okta.stop().await;
}

async fn a_leaver_pushed_over_scim_is_offboarded(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let config = w.config.clone();
    let Some(scim) = ScimClient::start_with(backend, &["idp"], OKTA, |c| {
        c.targets = config.targets.clone();
        c.rules = config.rules.clone();
    })
    .await
    else {
        return;
    };
    let mut config = w.config.clone();
    config
        .sources
        .insert("idp".into(), SourceConfig::new(SourceKind::Scim));
    config.sources.remove("okta");
    let store = &scim.app.store;
    // carol is pushed by the IdP, then deactivated there.
    let user = scim
        .create_user(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "carol@example.com",
            "externalId": "00u-carol",
            "emails": [{ "value": "carol@example.com", "primary": true }],
            "active": true
        }))
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let patched = scim
        .patch_ops(
            &format!("/Users/{id}"),
            json!([{ "op": "replace", "path": "active", "value": false }]),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);

    let t = &config.targets["wiki"];
    let record = store
        .ensure_target("wiki", t.kind, &t.base_url)
        .await
        .unwrap();
    let connector = Connector::new("wiki", t).unwrap();
    let report = sync_target(store, &record, &connector, &InventoryOptions::default())
        .await
        .unwrap();
    assert!(report.reason.is_none());

    let outcome = run::run(store, &config, &opts("ops"), now()).await.unwrap();
    let enforce = outcome
        .runs
        .iter()
        .find(|r| r.mode == RuleMode::Enforce)
        .expect("run");
    assert_eq!(enforce.status, RunStatus::Succeeded, "{outcome:#?}");
    let carol = w.dc.user_by_key(&w.keys["carol"]).expect("carol");
    assert!(!carol.active);
    assert!(carol.username.starts_with("carol_inactive_"));
    // Only carol: the others are not in this IdP and are unlinked.
    assert_eq!(writes_about(&w.dc, "bob"), 0);
    w.dc.stop().await;
    w.okta.stop().await;
}
