//! The executor against the in-process Confluence DC simulator on both backends: each kind
//! of action is confirmed and visible in the simulator, an action already in its post-state
//! is confirmed without a write, a stale rename is skipped, transient failures are retried,
//! permanent ones poison the action and skip the account's later rungs, accounts are worked
//! in plan order, two executors never carry out one action twice, and a dry run sends only
//! GET requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use idbridge::clock::SystemClock;
use idbridge::config::{ExecutorConfig, Secret, TargetConfig};
use idbridge::domain::{
    AccountId, ActionKind, ActionPhase, NewAccount, PlannedAction, Reason, RuleMode, RunId,
    RunStatus, TargetId, TargetKind,
};
use idbridge::engine::execute::{ExecReport, ExecuteOptions, RecordingNotifier, execute};
use idbridge::sim::common::{Fault, FaultKind, LoggedRequest};
use idbridge::sim::confluence_dc::{DcSim, DcSimOptions, start};
use idbridge::store::{ActionRecord, NewRun, RunKind, Store};
use idbridge::targets::Connector;
use serde_json::json;

use crate::helpers::{Backend, TestDb, on_both_backends};

/// A simulator with the given users (in `confluence-users`), a store knowing them, and
/// the target's connector.
pub(crate) struct Env {
    pub sim: DcSim,
    pub store: Store,
    pub db: TestDb,
    pub target: TargetId,
    pub cfg: TargetConfig,
    /// (account id, key, username) per user, in the order given.
    pub accounts: Vec<(AccountId, String, String)>,
}

pub(crate) async fn env(backend: Backend, users: &[String]) -> Option<Env> {
    let db = TestDb::create(backend).await?;
    let sim = start(
        DcSimOptions {
            users: 3,
            remote_api: true,
            ..DcSimOptions::default()
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("simulator starts");
    let store = Store::connect(&db.config(), Arc::new(SystemClock))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let mut cfg = TargetConfig::new(TargetKind::ConfluenceDc, sim.base_url());
    cfg.token = Some(Secret::new(sim.pat()));
    cfg.username = Some(sim.admin_user().to_owned());
    cfg.password = Some(Secret::new(sim.admin_password()));
    cfg.max_rate_limit_wait_secs = 0;
    let target = store
        .ensure_target("wiki", TargetKind::ConfluenceDc, &sim.base_url())
        .await
        .expect("target")
        .id;
    let client = reqwest::Client::new();
    let mut accounts = Vec::new();
    for u in users {
        let resp = client
            .post(format!("{}/__sim/users", sim.root_url()))
            .json(&json!({
                "username": u,
                "displayName": format!("User {u}"),
                "email": format!("{u}@example.com"),
                "groups": ["confluence-users", "staff"],
            }))
            .send()
            .await
            .expect("create user");
        assert!(resp.status().is_success(), "{}", resp.status());
        let v: serde_json::Value = resp.json().await.expect("json");
        let key = v["userKey"].as_str().expect("userKey").to_owned();
        let acc = store
            .upsert_account(&NewAccount {
                target_id: target,
                account_key: key.clone(),
                user_name: u.clone(),
                email: Some(format!("{u}@example.com")),
                display_name: None,
                active: true,
                last_login_at: None,
                remote_created_at: None,
                managed: true,
                attributes: json!({}),
            })
            .await
            .expect("account");
        accounts.push((acc.id, key, u.clone()));
    }
    Some(Env {
        sim,
        store,
        db,
        target,
        cfg,
        accounts,
    })
}

impl Env {
    pub fn planned(&self, i: usize, kind: ActionKind) -> PlannedAction {
        let (id, key, username) = &self.accounts[i];
        PlannedAction {
            account_id: *id,
            target_id: self.target,
            target: "wiki".into(),
            account_key: key.clone(),
            username: username.clone(),
            identity_id: None,
            kind,
            reason: Reason {
                rule: "leavers".into(),
                because: vec!["deprovisioned in okta".into()],
                cause: Default::default(),
            },
        }
    }

    pub async fn run(&self, mode: RuleMode, actions: &[PlannedAction]) -> RunId {
        self.store
            .create_run(
                &NewRun {
                    kind: RunKind::Rule,
                    mode,
                    status: RunStatus::Planned,
                    rules: vec!["leavers".into()],
                    started_by: "test".into(),
                    config_hash: "c".into(),
                    plan_hash: "p".into(),
                    budget: json!({}),
                },
                actions,
            )
            .await
            .expect("create run")
    }

    pub fn targets(&self) -> BTreeMap<TargetId, Connector> {
        BTreeMap::from([(
            self.target,
            Connector::new("wiki", &self.cfg).expect("connector"),
        )])
    }

    pub async fn execute(&self, id: &str, cfg: &ExecutorConfig) -> ExecReport {
        let opts = ExecuteOptions {
            run: None,
            executor_id: id.into(),
            admin_groups: BTreeMap::from([(self.target, vec!["confluence-administrators".into()])]),
        };
        execute(&self.store, &self.targets(), &RecordingNotifier, cfg, &opts)
            .await
            .expect("execute")
    }

    pub fn fault(&self, method: &str, path: &str, kind: FaultKind, times: Option<u32>) {
        self.sim.core().add_fault(Fault {
            method: Some(method.into()),
            path_prefix: Some(format!("/confluence{path}")),
            kind,
            times,
        });
    }
}

fn quick() -> ExecutorConfig {
    ExecutorConfig {
        concurrency: 4,
        max_attempts: 3,
        claim_ttl_secs: 30,
        retry_base_ms: 20,
    }
}

pub(crate) fn leaver_ladder(env: &Env, i: usize, to: &str) -> Vec<PlannedAction> {
    vec![
        env.planned(
            i,
            ActionKind::RemoveFromGroup {
                group: "confluence-users".into(),
                licence: true,
            },
        ),
        env.planned(i, ActionKind::Deactivate),
        env.planned(
            i,
            ActionKind::Rename {
                from: env.accounts[i].2.clone(),
                to: to.into(),
            },
        ),
    ]
}

fn phases(actions: &[ActionRecord]) -> Vec<ActionPhase> {
    actions.iter().map(|a| a.phase).collect()
}

/// Successful writes (2xx, not GET) whose path contains `needle`.
fn writes(log: &[LoggedRequest], needle: &str) -> usize {
    log.iter()
        .filter(|r| r.method != "GET" && (200..300).contains(&r.status) && r.path.contains(needle))
        .count()
}

async fn each_kind_of_action_is_confirmed_and_visible_in_the_simulator(backend: Backend) {
    let users: Vec<String> = vec!["ex.ann".into(), "ex.bob".into(), "ex.cid".into()];
    let Some(env) = env(backend, &users).await else {
        return;
    };
    // ann leaves; bob is already deactivated (confirmed without a write); cid's rename is
    // stale (renamed by someone else since planning).
    assert!(env.sim.set_active("ex.bob", false));
    let mut actions = leaver_ladder(&env, 0, "ex.ann_inactive_20260301");
    actions.push(env.planned(1, ActionKind::Deactivate));
    actions.push(env.planned(
        2,
        ActionKind::Rename {
            from: "ex.someone".into(),
            to: "ex.cid_inactive".into(),
        },
    ));
    let run = env.run(RuleMode::Enforce, &actions).await;
    let report = env.execute("e1", &quick()).await;
    assert_eq!(report.finished_runs, vec![(run, RunStatus::Succeeded)]);
    let stored = env.store.run_actions(run).await.unwrap();
    use ActionPhase::*;
    assert_eq!(
        phases(&stored),
        vec![Confirmed, Confirmed, Confirmed, Confirmed, Skipped]
    );
    assert!(stored[4].error.as_deref().unwrap().contains("stale rename"));
    assert_eq!(
        stored[0].pre_image.as_ref().unwrap()["groups"],
        json!(["confluence-users", "staff"])
    );
    let ann = env.sim.user("ex.ann_inactive_20260301").expect("renamed");
    assert!(!ann.active);
    assert_eq!(ann.groups, vec!["staff".to_string()]);
    assert!(env.sim.user("ex.bob").is_some_and(|u| !u.active));
    assert!(env.sim.user("ex.cid").is_some_and(|u| u.active));
    let log = env.sim.core().requests();
    assert_eq!(
        writes(&log, "/ex.bob/disable"),
        0,
        "bob was already deactivated"
    );
    assert_eq!(writes(&log, "renameUser"), 1, "only ann is renamed");
    // Per-account order: the group removal, then deactivation, then rename.
    let pos = |needle: &str| {
        log.iter()
            .position(|r| r.method != "GET" && r.path.contains(needle))
            .unwrap_or_else(|| panic!("no write to {needle}"))
    };
    assert!(pos("/ex.ann/group/confluence-users") < pos("/ex.ann/disable"));
    assert!(pos("/ex.ann/disable") < pos("renameUser"));

    // Give the licence back: reactivate and re-add the group.
    let ann_key = env.accounts[0].1.clone();
    let mut back = env.planned(0, ActionKind::Reactivate);
    back.username = "ex.ann_inactive_20260301".into();
    let mut add = env.planned(
        0,
        ActionKind::AddToGroup {
            group: "confluence-users".into(),
        },
    );
    add.username = back.username.clone();
    let run2 = env.run(RuleMode::Enforce, &[back, add]).await;
    env.execute("e2", &quick()).await;
    let stored = env.store.run_actions(run2).await.unwrap();
    assert_eq!(phases(&stored), vec![Confirmed, Confirmed]);
    let ann = env.sim.user_by_key(&ann_key).unwrap();
    assert!(ann.active && ann.groups.contains(&"confluence-users".to_string()));
    // Every outcome is in the audit chain, which still verifies.
    let audit = env.store.audit_entries(0, 1000).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "action.deactivate" && e.actor == "rule:leavers")
    );
    assert!(env.store.verify_audit_chain().await.unwrap().is_ok());
}

async fn transient_failures_are_retried_until_confirmed(backend: Backend) {
    let users: Vec<String> = vec!["tr.ann".into(), "tr.bob".into()];
    let Some(env) = env(backend, &users).await else {
        return;
    };
    // 503 outlasting the HTTP layer's own retries (4), once; 429 with no allowed wait, once.
    env.fault(
        "PUT",
        "/rest/api/admin/user/tr.ann/disable",
        FaultKind::Status { status: 503 },
        Some(4),
    );
    env.fault(
        "PUT",
        "/rest/api/admin/user/tr.bob/disable",
        FaultKind::Status { status: 429 },
        Some(1),
    );
    let run = env
        .run(
            RuleMode::Enforce,
            &[
                env.planned(0, ActionKind::Deactivate),
                env.planned(1, ActionKind::Deactivate),
            ],
        )
        .await;
    let report = env.execute("e1", &quick()).await;
    let stored = env.store.run_actions(run).await.unwrap();
    assert_eq!(phases(&stored), vec![ActionPhase::Confirmed; 2]);
    assert!(stored.iter().all(|a| a.attempts == 2), "{stored:?}");
    assert_eq!(report.phases.get("planned"), Some(&2), "{report:?}");
    assert!(env.sim.user("tr.ann").is_some_and(|u| !u.active));
    assert!(env.sim.user("tr.bob").is_some_and(|u| !u.active));
}

async fn failures_poison_or_fail_the_action_and_skip_later_rungs(backend: Backend) {
    let users: Vec<String> = vec!["pf.ann".into(), "pf.bob".into()];
    let Some(env) = env(backend, &users).await else {
        return;
    };
    // ann: the group removal keeps failing with 503 → poisoned after max_attempts.
    env.fault(
        "DELETE",
        "/rest/api/user/pf.ann/group",
        FaultKind::Status { status: 503 },
        None,
    );
    // bob: deactivation is forbidden → failed at once.
    env.fault(
        "PUT",
        "/rest/api/admin/user/pf.bob/disable",
        FaultKind::Status { status: 403 },
        None,
    );
    let mut actions = leaver_ladder(&env, 0, "pf.ann_x");
    actions.extend(leaver_ladder(&env, 1, "pf.bob_x"));
    let run = env.run(RuleMode::Enforce, &actions).await;
    let report = env.execute("e1", &quick()).await;
    assert_eq!(report.finished_runs, vec![(run, RunStatus::Failed)]);
    let stored = env.store.run_actions(run).await.unwrap();
    use ActionPhase::*;
    assert_eq!(
        phases(&stored),
        vec![Poisoned, Skipped, Skipped, Confirmed, Failed, Skipped]
    );
    assert_eq!(stored[0].attempts, 3);
    assert_eq!(stored[1].error.as_deref(), Some("an earlier rung failed"));
    let log = env.sim.core().requests();
    assert_eq!(writes(&log, "/disable"), 0);
    assert_eq!(writes(&log, "renameUser"), 0, "no later rung ran");
    assert!(env.sim.user("pf.ann").is_some_and(|u| u.active));
    assert!(
        env.sim
            .user("pf.bob")
            .is_some_and(|u| u.active && !u.groups.contains(&"confluence-users".to_string()))
    );
}

async fn two_executors_never_carry_out_the_same_action_twice(backend: Backend) {
    let users: Vec<String> = (0..12).map(|i| format!("two.u{i:02}")).collect();
    let Some(env) = env(backend, &users).await else {
        return;
    };
    let mut actions = Vec::new();
    for i in 0..users.len() {
        actions.extend(leaver_ladder(&env, i, &format!("two.u{i:02}_gone")));
    }
    let run = env.run(RuleMode::Enforce, &actions).await;
    let cfg = quick();
    let (a, b) = tokio::join!(env.execute("left", &cfg), env.execute("right", &cfg));
    let done = a.count(ActionPhase::Confirmed) + b.count(ActionPhase::Confirmed);
    assert_eq!(done, actions.len() as u64, "{a:?} {b:?}");
    let stored = env.store.run_actions(run).await.unwrap();
    assert!(stored.iter().all(|s| s.phase == ActionPhase::Confirmed));
    let log = env.sim.core().requests();
    for u in &users {
        assert_eq!(
            writes(&log, &format!("/{u}/group/confluence-users")),
            1,
            "{u}"
        );
        assert_eq!(writes(&log, &format!("/{u}/disable")), 1, "{u}");
        assert!(
            env.sim
                .user(&format!("{u}_gone"))
                .is_some_and(|v| !v.active)
        );
    }
    assert_eq!(writes(&log, "renameUser"), users.len());
    assert_eq!(
        env.store.run(run).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
}

async fn a_dry_run_reads_but_sends_no_write(backend: Backend) {
    let users: Vec<String> = vec!["dry.ann".into(), "dry.bob".into()];
    let Some(env) = env(backend, &users).await else {
        return;
    };
    let before = env.sim.core().requests().len();
    let mut actions = leaver_ladder(&env, 0, "dry.ann_x");
    actions.push(env.planned(1, ActionKind::Delete));
    let run = env.run(RuleMode::DryRun, &actions).await;
    let report = env.execute("e1", &quick()).await;
    assert_eq!(report.finished_runs, vec![(run, RunStatus::Recorded)]);
    let log = env.sim.core().requests();
    let after: Vec<&LoggedRequest> = log[before..].iter().collect();
    assert!(after.iter().any(|r| r.method == "GET"), "it reads");
    // The Remote API is JSON-RPC over POST: its read-only methods (`isActiveUser`, `get…`)
    // are reads too; any other POST, PUT or DELETE would be a write.
    let read_rpc = |path: &str| {
        path.rsplit_once("/confluenceservice-v2/")
            .is_some_and(|(_, m)| {
                m.starts_with("is") || m.starts_with("get") || m.starts_with("has")
            })
    };
    let non_get: Vec<_> = after
        .iter()
        .filter(|r| r.method != "GET" && !read_rpc(&r.path))
        .collect();
    assert!(non_get.is_empty(), "{non_get:?}");
    let stored = env.store.run_actions(run).await.unwrap();
    assert!(stored.iter().all(|a| a.phase == ActionPhase::Confirmed));
    let post = stored[1].post_image.as_ref().unwrap();
    assert_eq!(post["dry_run"], json!(true));
    assert!(post["would"].as_str().unwrap().contains("would deactivate"));
    assert!(env.sim.user("dry.ann").is_some_and(|u| u.active));
}

on_both_backends!(
    each_kind_of_action_is_confirmed_and_visible_in_the_simulator,
    transient_failures_are_retried_until_confirmed,
    failures_poison_or_fail_the_action_and_skip_later_rungs,
    two_executors_never_carry_out_the_same_action_twice,
    a_dry_run_reads_but_sends_no_write,
    an_action_reads_the_account_and_its_groups_once_and_writes_once,
    a_group_commit_records_only_claimed_changes_and_chains_their_audit_entries_in_order,
);

async fn a_group_commit_records_only_claimed_changes_and_chains_their_audit_entries_in_order(
    backend: Backend,
) {
    use idbridge::store::{NewAuditEntry, PhaseChange};
    let users: Vec<String> = vec!["gc.ann".into(), "gc.bob".into(), "gc.cid".into()];
    let Some(env) = env(backend, &users).await else {
        return;
    };
    let actions: Vec<_> = (0..3)
        .map(|i| env.planned(i, ActionKind::Deactivate))
        .collect();
    let run = env.run(RuleMode::Enforce, &actions).await;
    let now = chrono::Utc::now();
    let claimed = env
        .store
        .claim_actions("me", now, chrono::Duration::minutes(5), 10, Some(run))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let audit = |n: usize| NewAuditEntry {
        actor: "rule:leavers".into(),
        action: "action.deactivate".into(),
        subject_kind: Some("account".into()),
        subject_id: Some(claimed[n].account_id.to_string()),
        detail: json!({ "n": n }),
    };
    let finished = |n: usize| PhaseChange::Finished {
        id: claimed[n].id,
        phase: ActionPhase::Confirmed,
        post_image: Some(json!({ "active": false })),
        error: None,
        audit: audit(n),
    };
    let before = env.store.audit_entries(0, 100_000).await.unwrap().len();
    // Another executor holds no claim: nothing of its group is recorded.
    let stolen = env
        .store
        .record_phases("thief", &[finished(0)])
        .await
        .unwrap();
    assert_eq!(stolen, vec![false]);
    let group = [
        PhaseChange::Sent {
            id: claimed[0].id,
            pre_image: json!({ "active": true }),
        },
        finished(1),
        finished(2),
    ];
    let done = env.store.record_phases("me", &group).await.unwrap();
    assert_eq!(done, vec![true, true, true]);
    let stored = env.store.run_actions(run).await.unwrap();
    let phase_of = |n: usize| {
        stored
            .iter()
            .find(|a| a.id == claimed[n].id)
            .map(|a| a.phase)
            .unwrap()
    };
    assert_eq!(phase_of(0), ActionPhase::Sent);
    assert_eq!(phase_of(1), ActionPhase::Confirmed);
    assert_eq!(phase_of(2), ActionPhase::Confirmed);
    let entries = env.store.audit_entries(0, 100_000).await.unwrap();
    let new: Vec<_> = entries[before..]
        .iter()
        .map(|e| e.detail["n"].clone())
        .collect();
    assert_eq!(
        new,
        vec![json!(1), json!(2)],
        "one entry per finished change, in order"
    );
    assert!(env.store.verify_audit_chain().await.unwrap().is_ok());
    // Recording a finished change again changes nothing: its claim is over.
    let again = env.store.record_phases("me", &[finished(1)]).await.unwrap();
    assert_eq!(again, vec![false]);
}

/// The executor's read is the connector's: an action costs one read of the account, one of
/// its groups and the write (no second read inside the write), and a group is left as the
/// account's membership spells it.
async fn an_action_reads_the_account_and_its_groups_once_and_writes_once(backend: Backend) {
    let users: Vec<String> = vec!["rq.ann".into(), "rq.bob".into()];
    let Some(env) = env(backend, &users).await else {
        return;
    };
    let actions = vec![
        env.planned(0, ActionKind::Deactivate),
        env.planned(
            1,
            ActionKind::RemoveFromGroup {
                group: "Confluence-Users".into(),
                licence: true,
            },
        ),
    ];
    let run = env.run(RuleMode::Enforce, &actions).await;
    let before = env.sim.core().requests().len();
    let report = env.execute("rq", &quick()).await;
    assert_eq!(report.finished_runs, vec![(run, RunStatus::Succeeded)]);
    let log = env.sim.core().requests();
    for (_, key, username) in &env.accounts {
        let about: Vec<String> = log[before..]
            .iter()
            .filter(|r| {
                let q = r.query.as_deref().unwrap_or_default();
                r.path.contains(username.as_str()) || q.contains(key.as_str())
            })
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.method,
                    r.path,
                    r.query.as_deref().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(about.len(), 3, "{username}: {about:#?}");
        assert_eq!(
            about.iter().filter(|r| !r.starts_with("GET")).count(),
            1,
            "{username}: {about:#?}"
        );
    }
    assert!(env.sim.user("rq.ann").is_some_and(|u| !u.active));
    let bob = env.sim.user("rq.bob").expect("bob");
    assert!(bob.active);
    assert_eq!(bob.groups, vec!["staff".to_owned()]);
}
