//! Licence back on login, end to end on both backends against the Okta and Confluence Data
//! Center simulators (and the SCIM service): an inactivity rule takes bob's licence group,
//! deactivates and renames him; bob then signs in — seen as a newer Okta `lastLogin`, an
//! Okta System Log SSO event, a sign-in event recorded through the store (the table the
//! Graph and Google Reports connectors fill), a newer Confluence last login, or a SCIM
//! `active=true` push — and `regrant` restores exactly what he had, once. A leaver who
//! signs in gets nothing back and one security alert; with too few seats the most recent
//! sign-in wins, the others are alerted and nobody loses a licence for them.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

use idbridge::clock::Clock;
use idbridge::config::{RuleConfig, SourceConfig, WhenConfig};
use idbridge::domain::{ActionKind, Cause, RuleMode, RunStatus, SourceKind};
use idbridge::engine::inventory::{InventoryOptions, sync_target};
use idbridge::engine::regrant::{RegrantOptions, RegrantOutcome, regrant};
use idbridge::engine::run;
use idbridge::store::{AlertKind, NewSignIn, Store};
use idbridge::targets::Connector;
use serde_json::json;

use crate::engine_world::{
    LICENCE, World, company, groups_of, inventory, now, opts, renamed, rule, seeded,
    set_dc_max_users, sync_all, sync_okta, writes, writes_about,
};
use crate::helpers::{Backend, on_both_backends};
use crate::scim_support::{OKTA, ScimClient};

fn rules() -> std::collections::BTreeMap<String, RuleConfig> {
    let ladder = json!(["remove_licence_groups", "deactivate", "rename"]);
    let mut out = std::collections::BTreeMap::new();
    out.insert(
        "leavers".into(),
        rule(
            RuleMode::Enforce,
            10,
            WhenConfig {
                status: vec!["deprovisioned".into()],
                ..WhenConfig::default()
            },
            ladder.clone(),
        ),
    );
    out.insert(
        "inactive".into(),
        rule(
            RuleMode::Enforce,
            20,
            WhenConfig {
                inactive_days: Some(90),
                ..WhenConfig::default()
            },
            ladder,
        ),
    );
    out
}

/// The company with plenty of seats, synced, and the rules carried out: alice (a leaver)
/// and bob, ivan and judy (inactive) lose their licence group, are deactivated and renamed.
/// The clock then moves on an hour (the store's and Okta's).
async fn removed(backend: Backend) -> Option<World> {
    let mut w = crate::engine_world::world(backend).await?;
    w.config.rules = rules();
    set_dc_max_users(&w.dc, 100).await;
    sync_all(&w).await;
    let outcome = run::run(&w.store, &w.config, &opts("ops"), now())
        .await
        .unwrap();
    let enforce = outcome
        .runs
        .iter()
        .find(|r| r.mode == RuleMode::Enforce)
        .expect("an enforced run");
    assert_eq!(enforce.status, RunStatus::Succeeded, "{outcome:#?}");
    for user in ["alice", "bob", "ivan", "judy"] {
        let u = w.dc.user_by_key(&w.keys[user]).expect(user);
        assert_eq!(u.username, renamed(user));
        assert!(!u.active, "{user}");
        assert!(!u.groups.iter().any(|g| g == LICENCE), "{user}");
    }
    // The next inventory shows what the rule left.
    advance(&w, Duration::minutes(30));
    sync_all(&w).await;
    advance(&w, Duration::minutes(30));
    Some(w)
}

fn advance(w: &World, by: Duration) {
    w.clock.advance(by);
    w.okta.core().clock.advance(by);
}

/// A complete inventory of the wiki with Confluence's own last logins (as read from its
/// database, which the 9.3 REST API lacks) for the given user keys.
async fn inventory_with_logins(
    store: &Store,
    config: &idbridge::config::Config,
    logins: &[(&str, DateTime<Utc>)],
) {
    let t = &config.targets["wiki"];
    let record = store
        .ensure_target("wiki", t.kind, &t.base_url)
        .await
        .unwrap();
    let connector = Connector::new("wiki", t).unwrap();
    let report = sync_target(
        store,
        &record,
        &connector,
        &InventoryOptions {
            configured_licence_groups: t.licence_groups.clone(),
            last_logins: Some(
                logins
                    .iter()
                    .map(|(k, at)| ((*k).to_owned(), *at))
                    .collect::<HashMap<_, _>>(),
            ),
            ..InventoryOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(report.reason.is_none(), "{:?}", report.reason);
}

async fn pass(store: &Store, w: &World, config: &idbridge::config::Config) -> RegrantOutcome {
    regrant(store, config, &RegrantOptions::default(), w.clock.now())
        .await
        .unwrap()
}

/// bob has his name, his active flag and exactly his groups back; ivan and judy (no
/// sign-in) are as the rule left them; a second pass plans nothing and writes nothing.
async fn assert_bob_restored_once(
    w: &World,
    store: &Store,
    config: &idbridge::config::Config,
    outcome: &RegrantOutcome,
    signal: &str,
) {
    assert_eq!(
        outcome.status,
        Some(RunStatus::Succeeded),
        "{signal}: {outcome:#?}"
    );
    assert!(
        outcome.plan.alerts.is_empty(),
        "{signal}: {:?}",
        outcome.plan.alerts
    );
    let bob = w.dc.user_by_key(&w.keys["bob"]).expect("bob");
    assert_eq!(bob.username, "bob", "{signal}");
    assert!(bob.active, "{signal}");
    assert_eq!(groups_of(&w.dc, "bob"), seeded("bob"), "{signal}");
    let reason = &outcome.plan.actions[0].reason;
    assert_eq!(reason.rule, "regrant");
    assert!(
        reason.because.iter().any(|b| b.contains(signal)),
        "{signal}: {:?}",
        reason.because
    );
    let run = store
        .run(outcome.run.expect("a run"))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(run.kind, idbridge::store::RunKind::Regrant);
    assert_eq!(run.started_by, "regrant");
    for user in ["ivan", "judy", "alice"] {
        let u = w.dc.user_by_key(&w.keys[user]).expect(user);
        assert_eq!(u.username, renamed(user), "{signal}: {user}");
        assert!(!u.active, "{signal}: {user}");
    }
    let before = writes(&w.dc).len();
    let again = pass(store, w, config).await;
    assert!(again.plan.actions.is_empty(), "{signal}: {:#?}", again.plan);
    assert!(again.run.is_none());
    assert_eq!(
        writes(&w.dc).len(),
        before,
        "{signal}: the second pass wrote"
    );
}

on_both_backends!(
    a_newer_okta_last_login_gives_bob_exactly_his_licence_groups_name_and_status_back,
    an_okta_sso_event_gives_bob_his_licence_back,
    a_sign_in_event_recorded_for_the_source_gives_bob_his_licence_back,
    a_newer_confluence_last_login_gives_bob_his_licence_back,
    a_scim_push_of_active_true_gives_bob_his_licence_back,
    a_leaver_who_signs_in_gets_nothing_back_and_one_security_alert,
    with_one_free_seat_the_latest_sign_in_is_regranted_and_the_other_alerted,
    a_dry_run_regrant_writes_nothing_and_raises_no_alert,
    the_regrant_command_reports_a_dry_run_and_then_gives_the_licence_back,
    each_removal_episode_holds_its_cause_and_the_account_before_the_first_write,
);

async fn a_newer_okta_last_login_gives_bob_exactly_his_licence_groups_name_and_status_back(
    backend: Backend,
) {
    let Some(w) = removed(backend).await else {
        return;
    };
    let at = w.clock.now() - Duration::minutes(10);
    w.okta
        .update_user(&w.okta_ids["bob"], |u| u.last_login = Some(at));
    assert!(sync_okta(&w).await.is_complete());
    let outcome = pass(&w.store, &w, &w.config).await;
    let kinds: Vec<&ActionKind> = outcome.plan.actions.iter().map(|a| &a.kind).collect();
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
    assert_bob_restored_once(&w, &w.store, &w.config, &outcome, "(okta)").await;
    w.stop().await;
}

async fn an_okta_sso_event_gives_bob_his_licence_back(backend: Backend) {
    let Some(w) = removed(backend).await else {
        return;
    };
    let at = w.clock.now() - Duration::minutes(10);
    w.okta
        .add_sso_event(&w.okta_ids["bob"], "SUCCESS", Some(at))
        .expect("event");
    // A failed sign-in of judy is no signal.
    w.okta
        .add_sso_event(&w.okta_ids["judy"], "FAILURE", Some(at))
        .expect("event");
    assert!(sync_okta(&w).await.is_complete());
    let outcome = pass(&w.store, &w, &w.config).await;
    assert!(
        outcome
            .plan
            .actions
            .iter()
            .all(|a| a.account_key == w.keys["bob"]),
        "{:#?}",
        outcome.plan.actions
    );
    assert_bob_restored_once(&w, &w.store, &w.config, &outcome, "(okta sign-in log)").await;
    w.stop().await;
}

async fn a_sign_in_event_recorded_for_the_source_gives_bob_his_licence_back(backend: Backend) {
    let Some(w) = removed(backend).await else {
        return;
    };
    // The Graph sign-in and Google Reports connectors record their events this way; the
    // world has neither IdP, so the event is recorded for its Okta source.
    let source = w
        .store
        .ensure_source("okta", SourceKind::Okta)
        .await
        .unwrap();
    let added = w
        .store
        .record_sign_ins(
            source.id,
            &[NewSignIn {
                event_id: "graph-sign-in-1".into(),
                external_id: Some(w.okta_ids["bob"].clone()),
                login: None,
                occurred_at: w.clock.now() - Duration::minutes(5),
            }],
        )
        .await
        .unwrap();
    assert_eq!(added, 1);
    let outcome = pass(&w.store, &w, &w.config).await;
    assert_bob_restored_once(&w, &w.store, &w.config, &outcome, "(okta sign-in log)").await;
    w.stop().await;
}

async fn a_newer_confluence_last_login_gives_bob_his_licence_back(backend: Backend) {
    let Some(w) = removed(backend).await else {
        return;
    };
    let at = w.clock.now() - Duration::minutes(10);
    inventory_with_logins(&w.store, &w.config, &[(&w.keys["bob"], at)]).await;
    let outcome = pass(&w.store, &w, &w.config).await;
    assert_bob_restored_once(&w, &w.store, &w.config, &outcome, "(confluence)").await;
    w.stop().await;
}

async fn a_scim_push_of_active_true_gives_bob_his_licence_back(backend: Backend) {
    let Some(w) = crate::engine_world::world(backend).await else {
        return;
    };
    let mut config = w.config.clone();
    config.rules = rules();
    config.sources.remove("okta");
    config
        .sources
        .insert("idp".into(), SourceConfig::new(SourceKind::Scim));
    let c = config.clone();
    let Some(scim) = ScimClient::start_with(backend, &["idp"], OKTA, |cfg| {
        cfg.targets = c.targets.clone();
        cfg.rules = c.rules.clone();
    })
    .await
    else {
        return;
    };
    let store = &scim.app.store;
    let user = scim
        .create_user(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bob@example.com",
            "externalId": "00u-bob",
            "emails": [{ "value": "bob@example.com", "primary": true }],
            "active": true
        }))
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    set_dc_max_users(&w.dc, 100).await;
    // The IdP knows no sign-ins; Confluence's database says 200 days ago.
    let logins = [(w.keys["bob"].as_str(), now() - Duration::days(200))];
    inventory_with_logins(store, &config, &logins).await;
    // bob (200 days without a Confluence login) is the only linked person: only he goes.
    let outcome = run::run(store, &config, &opts("ops"), scim.app.clock.now())
        .await
        .unwrap();
    let explained = run::explain(store, &config, &opts("ops"), "bob", scim.app.clock.now())
        .await
        .unwrap();
    let enforce = outcome
        .runs
        .iter()
        .find(|r| r.mode == RuleMode::Enforce)
        .unwrap_or_else(|| panic!("no enforced run: {explained:#?}"));
    assert_eq!(enforce.status, RunStatus::Succeeded, "{outcome:#?}");
    assert_eq!(
        w.dc.user_by_key(&w.keys["bob"]).unwrap().username,
        renamed("bob")
    );

    // Still active in the IdP, nothing new: no regrant.
    scim.app.clock.advance(Duration::minutes(30));
    inventory_with_logins(store, &config, &logins).await;
    scim.app.clock.advance(Duration::minutes(30));
    let none = regrant(
        store,
        &config,
        &RegrantOptions::default(),
        scim.app.clock.now(),
    )
    .await
    .unwrap();
    assert!(none.plan.actions.is_empty(), "{:#?}", none.plan);

    // The IdP turns bob off and on again: `active=true` after the removal is a sign-in.
    for active in [false, true] {
        scim.app.clock.advance(Duration::minutes(5));
        let patched = scim
            .patch_ops(
                &format!("/Users/{id}"),
                json!([{ "op": "replace", "path": "active", "value": active }]),
            )
            .await;
        assert_eq!(patched.status, 200, "{}", patched.text);
    }
    let outcome = regrant(
        store,
        &config,
        &RegrantOptions::default(),
        scim.app.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.status, Some(RunStatus::Succeeded), "{outcome:#?}");
    assert!(
        outcome.plan.actions[0].reason.because[0].contains("idp (SCIM active=true)"),
        "{:?}",
        outcome.plan.actions[0].reason
    );
    let bob = w.dc.user_by_key(&w.keys["bob"]).expect("bob");
    assert_eq!(bob.username, "bob");
    assert!(bob.active);
    assert_eq!(groups_of(&w.dc, "bob"), seeded("bob"));
    let again = regrant(
        store,
        &config,
        &RegrantOptions::default(),
        scim.app.clock.now(),
    )
    .await
    .unwrap();
    assert!(again.plan.actions.is_empty(), "{:#?}", again.plan);
    // The next inactivity pass, on a fresh inventory (bob licensed again, his Confluence
    // login still 200 days old, the push no sign-in): inactivity counts from the regrant,
    // so bob is not removed again.
    inventory_with_logins(store, &config, &logins).await;
    let next = run::preview(store, &config, &opts("ops"), scim.app.clock.now())
        .await
        .unwrap();
    assert!(
        !next.enforce.actions.iter().any(|a| a.username == "bob"),
        "{:#?}",
        next.enforce.actions
    );
    w.stop().await;
}

async fn a_leaver_who_signs_in_gets_nothing_back_and_one_security_alert(backend: Backend) {
    let Some(w) = removed(backend).await else {
        return;
    };
    // alice is even active again in Okta and signs in: a leaver is never regranted.
    let at = w.clock.now() - Duration::minutes(10);
    w.okta.update_user(&w.okta_ids["alice"], |u| {
        u.status = "ACTIVE".into();
        u.last_login = Some(at);
    });
    assert!(sync_okta(&w).await.is_complete());
    let writes_before = writes(&w.dc).len();
    let outcome = pass(&w.store, &w, &w.config).await;
    assert!(
        outcome.plan.actions.is_empty(),
        "{:#?}",
        outcome.plan.actions
    );
    assert!(outcome.run.is_none());
    assert_eq!(outcome.alerts_raised, 1, "{:#?}", outcome.plan.alerts);
    assert_eq!(outcome.plan.alerts[0].kind, AlertKind::LeaverSignIn);
    assert_eq!(writes(&w.dc).len(), writes_before);
    let alice = w.dc.user_by_key(&w.keys["alice"]).expect("alice");
    assert_eq!(alice.username, renamed("alice"));
    assert!(!alice.active);

    // A second pass sees the same sign-in: no second alert.
    let again = pass(&w.store, &w, &w.config).await;
    assert_eq!((again.alerts_raised, again.alerts_known), (0, 1));
    let entries = w.store.audit_entries(0, 10_000).await.unwrap();
    let alerts: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "security.leaver_sign_in")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].actor, "regrant");
    assert_eq!(alerts[0].detail["username"], renamed("alice"));
    assert_eq!(alerts[0].detail["signal"], "okta");
    let signal_at: DateTime<Utc> =
        serde_json::from_value(alerts[0].detail["signal_at"].clone()).unwrap();
    assert_eq!(signal_at.timestamp(), at.timestamp());
    assert!(w.store.verify_audit_chain().await.unwrap().is_ok());

    // A new sign-in is a new signal: one more alert.
    advance(&w, Duration::hours(1));
    let later = w.clock.now() - Duration::minutes(1);
    w.okta
        .update_user(&w.okta_ids["alice"], |u| u.last_login = Some(later));
    assert!(sync_okta(&w).await.is_complete());
    let third = pass(&w.store, &w, &w.config).await;
    assert_eq!(third.alerts_raised, 1);
    assert!(third.plan.actions.is_empty());
    w.stop().await;
}

async fn with_one_free_seat_the_latest_sign_in_is_regranted_and_the_other_alerted(
    backend: Backend,
) {
    let Some(w) = removed(backend).await else {
        return;
    };
    // One seat left, as the fresh inventory counts it.
    set_dc_max_users(&w.dc, w.dc.licensed_count() as i64 + 1).await;
    inventory(&w.store, "wiki", &w.config.targets["wiki"]).await;
    let early = w.clock.now() - Duration::minutes(30);
    let late = w.clock.now() - Duration::minutes(10);
    w.okta
        .update_user(&w.okta_ids["bob"], |u| u.last_login = Some(early));
    w.okta
        .update_user(&w.okta_ids["judy"], |u| u.last_login = Some(late));
    assert!(sync_okta(&w).await.is_complete());
    let licensed_before: Vec<(String, bool)> = company()
        .iter()
        .map(|p| {
            let u = w.dc.user_by_key(&w.keys[p.username]).expect("user");
            (p.username.to_owned(), u.groups.iter().any(|g| g == LICENCE))
        })
        .collect();
    let writes_before = writes(&w.dc).len();
    let seats_before = w.dc.licensed_count();
    // Everyone but judy, by every name they had (renamed ones are written to by name).
    let about_before: Vec<(String, usize)> = company()
        .iter()
        .filter(|p| p.username != "judy")
        .flat_map(|p| [p.username.to_owned(), renamed(p.username)])
        .map(|u| {
            let n = writes_about(&w.dc, &u);
            (u, n)
        })
        .collect();

    let outcome = pass(&w.store, &w, &w.config).await;
    assert_eq!(outcome.status, Some(RunStatus::Succeeded), "{outcome:#?}");
    // judy signed in last: she gets the seat.
    let judy = w.dc.user_by_key(&w.keys["judy"]).expect("judy");
    assert_eq!(judy.username, "judy");
    assert!(judy.active);
    assert_eq!(groups_of(&w.dc, "judy"), seeded("judy"));
    // bob waits, alerted; nobody else was written to or lost a licence.
    let bob = w.dc.user_by_key(&w.keys["bob"]).expect("bob");
    assert_eq!(bob.username, renamed("bob"));
    assert!(!bob.active);
    assert_eq!(outcome.plan.alerts.len(), 1, "{:#?}", outcome.plan.alerts);
    assert_eq!(outcome.plan.alerts[0].kind, AlertKind::NoFreeSeat);
    assert_eq!(outcome.plan.alerts[0].username, renamed("bob"));
    assert_eq!(outcome.alerts_raised, 1);
    assert!(writes(&w.dc).len() > writes_before);
    for (user, before) in &about_before {
        assert_eq!(writes_about(&w.dc, user), *before, "{user} was written to");
    }
    for (user, had) in licensed_before {
        let u = w.dc.user_by_key(&w.keys[user.as_str()]).expect("user");
        let has = u.groups.iter().any(|g| g == LICENCE);
        if user == "judy" {
            assert!(has);
        } else {
            assert_eq!(has, had, "{user}'s licence changed");
        }
    }
    assert_eq!(w.dc.licensed_count(), seats_before + 1);
    let entries = w.store.audit_entries(0, 10_000).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == "licence.no_free_seat")
            .count(),
        1
    );
    // Next pass: still no seat for bob, the same alert is not raised again.
    let again = pass(&w.store, &w, &w.config).await;
    assert!(again.plan.actions.is_empty(), "{:#?}", again.plan.actions);
    assert_eq!((again.alerts_raised, again.alerts_known), (0, 1));
    w.stop().await;
}

async fn a_dry_run_regrant_writes_nothing_and_raises_no_alert(backend: Backend) {
    let Some(w) = removed(backend).await else {
        return;
    };
    let at = w.clock.now() - Duration::minutes(10);
    w.okta
        .update_user(&w.okta_ids["bob"], |u| u.last_login = Some(at));
    w.okta.update_user(&w.okta_ids["alice"], |u| {
        u.last_login = Some(at);
    });
    assert!(sync_okta(&w).await.is_complete());
    let writes_before = writes(&w.dc).len();
    let dry = regrant(
        &w.store,
        &w.config,
        &RegrantOptions { dry_run: true },
        w.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(dry.status, Some(RunStatus::Recorded), "{dry:#?}");
    assert_eq!(dry.plan.actions.len(), 3);
    assert_eq!(dry.plan.alerts.len(), 1);
    assert_eq!(dry.alerts_raised, 0);
    assert_eq!(writes(&w.dc).len(), writes_before);
    let alice = w.store.removal_episodes().await.unwrap();
    assert!(!alice.is_empty());
    let bob_account = dry.plan.actions[0].account_id;
    assert_eq!(
        w.store
            .alert_count(dry.plan.alerts[0].account_id, AlertKind::LeaverSignIn)
            .await
            .unwrap(),
        0
    );
    // The dry run closes nothing: the real pass still restores bob.
    let real = pass(&w.store, &w, &w.config).await;
    assert_eq!(real.plan.actions[0].account_id, bob_account);
    assert_eq!(real.status, Some(RunStatus::Succeeded));
    assert_eq!(w.dc.user_by_key(&w.keys["bob"]).unwrap().username, "bob");
    w.stop().await;
}

async fn the_regrant_command_reports_a_dry_run_and_then_gives_the_licence_back(backend: Backend) {
    let Some(w) = removed(backend).await else {
        return;
    };
    let at = w.clock.now() - Duration::minutes(10);
    w.okta
        .update_user(&w.okta_ids["bob"], |u| u.last_login = Some(at));
    assert!(sync_okta(&w).await.is_complete());
    let dir = tempfile::tempdir().unwrap();
    let path = w.config_file(dir.path());
    let idbridge = |args: &[&str]| {
        crate::helpers::binary()
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("IDBRIDGE_SOURCES__OKTA__TOKEN", w.okta.ssws_token())
            .env("IDBRIDGE_TARGETS__WIKI__TOKEN", w.dc.pat())
            .env("IDBRIDGE_LOG__FILTER", "warn")
            .output()
            .expect("run idbridge")
    };
    let writes_before = writes(&w.dc).len();
    let dry = idbridge(&["regrant", "--dry-run", "--json"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("JSON");
    assert_eq!(report["status"], "recorded", "{report:#}");
    assert_eq!(report["plan"]["actions"].as_array().map(Vec::len), Some(3));
    assert_eq!(writes(&w.dc).len(), writes_before);

    let real = idbridge(&["regrant"]);
    let text = String::from_utf8_lossy(&real.stdout).into_owned();
    assert!(
        real.status.success(),
        "{}",
        String::from_utf8_lossy(&real.stderr)
    );
    assert!(text.contains("succeeded"), "{text}");
    assert_eq!(w.dc.user_by_key(&w.keys["bob"]).unwrap().username, "bob");
    assert_eq!(groups_of(&w.dc, "bob"), seeded("bob"));
    let again = idbridge(&["regrant"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to give back"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    w.stop().await;
}

async fn each_removal_episode_holds_its_cause_and_the_account_before_the_first_write(
    backend: Backend,
) {
    let Some(w) = removed(backend).await else {
        return;
    };
    let target = w.store.target_by_name("wiki").await.unwrap().unwrap().id;
    let mut ids = HashMap::new();
    for user in ["alice", "bob", "ivan", "judy"] {
        let account = w
            .store
            .account_by_key(target, &w.keys[user])
            .await
            .unwrap()
            .expect("account");
        ids.insert(user, account.id);
    }
    let episodes = w.store.removal_episodes().await.unwrap();
    assert_eq!(episodes.len(), 4, "{episodes:#?}");
    for (user, cause, rule) in [
        ("alice", Cause::Leaver, "leavers"),
        ("bob", Cause::Inactivity, "inactive"),
        ("ivan", Cause::Inactivity, "inactive"),
        ("judy", Cause::Inactivity, "inactive"),
    ] {
        let id = ids[user];
        let e = episodes
            .iter()
            .find(|e| e.account_id == id)
            .unwrap_or_else(|| panic!("no episode for {user}"));
        assert_eq!(e.cause(), cause, "{user}");
        assert_eq!(e.rules, [rule], "{user}");
        assert!(e.removed_at <= now() + Duration::minutes(1), "{user}");
        let pre = e.pre_image.as_ref().expect("pre-image");
        assert_eq!(pre.username, user);
        assert!(pre.active, "{user}");
        let mut groups = pre.groups.clone();
        groups.sort();
        assert_eq!(groups, seeded(user), "{user}");
    }
    // A confirmed regrant closes bob's episode, and only his.
    let at = w.clock.now() - Duration::minutes(10);
    w.okta
        .update_user(&w.okta_ids["bob"], |u| u.last_login = Some(at));
    assert!(sync_okta(&w).await.is_complete());
    let outcome = pass(&w.store, &w, &w.config).await;
    assert_eq!(outcome.status, Some(RunStatus::Succeeded));
    let bob = ids["bob"];
    let left = w.store.removal_episodes().await.unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|e| e.account_id != bob));
    w.stop().await;
}
