//! `idbridge export accounts|people|runs`, with the real binary on both backends: a small
//! world (an Okta source with an active person, two leavers and a person whose Confluence
//! username is a spreadsheet formula; a Confluence target with licence groups; a held run
//! and an executed one) exported in every kind and format, parsed back and checked value by
//! value; every export audited; `--output` files readable only by their owner.

use std::collections::HashMap;
use std::process::Output;
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use idbridge::clock::ManualClock;
use idbridge::domain::{
    AccountId, ActionKind, ActionPhase, IdentityStatus, NewAccount, NewIdentity, PlannedAction,
    Reason, RuleMode, RunId, RunStatus, SnapshotStatus, SourceKind, TargetGroup, TargetId,
    TargetKind,
};
use idbridge::store::{NewAuditEntry, NewRun, NewSourceGroup, PhaseChange, RunKind, Store};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestDb, binary, on_both_backends};

const FORMULA: &str = "=cmd|' /C calc'!A0";

struct World {
    db: TestDb,
    store: Store,
    dir: tempfile::TempDir,
    /// When alice last signed in to Okta.
    alice_login: DateTime<Utc>,
    held_run: RunId,
    done_run: RunId,
}

fn identity(source: idbridge::domain::SourceId, ext: &str, user: &str) -> NewIdentity {
    NewIdentity {
        source_id: source,
        external_id: ext.into(),
        user_name: user.into(),
        email: Some(user.into()),
        display_name: None,
        status: IdentityStatus::Active,
        idp_created_at: None,
        last_login_at: None,
        attributes: json!({ "raw_status": "ACTIVE" }),
    }
}

fn account(target: TargetId, key: &str, user: &str, email: &str, groups: &[&str]) -> NewAccount {
    NewAccount {
        target_id: target,
        account_key: key.into(),
        user_name: user.into(),
        email: Some(email.into()),
        display_name: Some(format!("{user} display")),
        active: true,
        last_login_at: None,
        remote_created_at: None,
        managed: true,
        attributes: json!({
            "status": "current",
            "licensed": groups.contains(&"confluence-users"),
            "directory": "Confluence Internal Directory",
            "groups": groups,
        }),
    }
}

fn planned(target: TargetId, account: AccountId, user: &str, kind: ActionKind) -> PlannedAction {
    PlannedAction {
        account_id: account,
        target_id: target,
        target: "wiki".into(),
        account_key: format!("k-{user}"),
        username: user.into(),
        identity_id: None,
        reason: Reason {
            rule: "leavers".into(),
            because: vec!["status deprovisioned".into()],
            cause: Default::default(),
        },
        kind,
    }
}

async fn world(backend: Backend) -> Option<World> {
    let db = TestDb::create(backend).await?;
    let now = Utc::now();
    let clock = Arc::new(ManualClock::new(now - Duration::days(60)));
    let store = Store::connect(&db.config(), clock.clone()).await.unwrap();
    store.migrate().await.unwrap();

    let okta = store
        .ensure_source("okta", SourceKind::Okta)
        .await
        .unwrap()
        .id;
    let alice_login = now - Duration::days(10) - Duration::hours(1);
    let mut alice = identity(okta, "00ua", "alice@x.org");
    alice.last_login_at = Some(alice_login);
    let mut bob = identity(okta, "00ub", "bob@x.org");
    bob.status = IdentityStatus::Deprovisioned;
    bob.attributes = json!({ "raw_status": "DEPROVISIONED" });
    let mut carol = identity(okta, "00uc", "carol@x.org");
    carol.status = IdentityStatus::Deprovisioned;
    carol.attributes = json!({ "raw_status": "DEPROVISIONED" });
    let evil = identity(okta, "00ue", "evil@x.org");
    let snap = store.begin_source_snapshot(okta).await.unwrap();
    let people = [alice, bob, carol, evil];
    store
        .record_source_identities(okta, Some(snap.id), &people)
        .await
        .unwrap();
    store
        .record_source_groups(
            okta,
            snap.id,
            &[NewSourceGroup {
                external_id: "g1".into(),
                name: "engineering".into(),
                members: vec!["00ua".into()],
            }],
        )
        .await
        .unwrap();
    store
        .finish_snapshot(snap.id, SnapshotStatus::Complete, 4, &json!({}))
        .await
        .unwrap();

    let wiki = store
        .ensure_target("wiki", TargetKind::ConfluenceDc, "http://wiki.test")
        .await
        .unwrap()
        .id;
    let mut alice_acct = account(
        wiki,
        "k-alice",
        "alice",
        "alice@x.org",
        &["confluence-users", "team-a"],
    );
    alice_acct.last_login_at = Some(now - Duration::days(20));
    let accounts = [
        alice_acct,
        account(wiki, "k-bob", "bob", "bob@x.org", &["confluence-users"]),
        account(
            wiki,
            "k-carol",
            "carol",
            "carol@x.org",
            &["confluence-users"],
        ),
        account(wiki, "k-evil", FORMULA, "evil@x.org", &[]),
    ];
    let snap = store.begin_target_snapshot(wiki).await.unwrap();
    store
        .record_inventory_accounts(wiki, snap.id, &accounts)
        .await
        .unwrap();
    store
        .record_target_groups(
            wiki,
            snap.id,
            &[TargetGroup {
                name: "confluence-users".into(),
                remote_id: None,
                directory: None,
                read_only: None,
                grants_licence: true,
                nested: vec![],
                member_count: 3,
            }],
        )
        .await
        .unwrap();
    store
        .finish_snapshot(snap.id, SnapshotStatus::Complete, 4, &json!({}))
        .await
        .unwrap();
    let mut ids = HashMap::new();
    for a in &accounts {
        let found = store.account_by_key(wiki, &a.account_key).await.unwrap();
        ids.insert(a.user_name.clone(), found.unwrap().id);
    }
    clock.set(now);

    // Bob's deactivation waits for approval; a licence-free group came off alice already.
    let run = |status| NewRun {
        kind: RunKind::Rule,
        mode: RuleMode::Enforce,
        status,
        rules: vec!["leavers".into()],
        started_by: "ops.anna".into(),
        config_hash: "c".into(),
        plan_hash: "p".into(),
        budget: json!({}),
    };
    let held_run = store
        .create_run(
            &run(RunStatus::Held),
            &[planned(wiki, ids["bob"], "bob", ActionKind::Deactivate)],
        )
        .await
        .unwrap();
    let remove = ActionKind::RemoveFromGroup {
        group: "team-a".into(),
        licence: false,
    };
    let done_run = store
        .create_run(
            &run(RunStatus::Planned),
            &[planned(wiki, ids["alice"], "alice", remove)],
        )
        .await
        .unwrap();
    let claimed = store
        .claim_actions("exec-1", now, Duration::minutes(5), 10, Some(done_run))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let pre = json!({ "groups": ["confluence-users", "team-a"] });
    let post = json!({ "groups": ["confluence-users"] });
    let audit = NewAuditEntry {
        actor: "engine".into(),
        action: "action.remove_from_group.confirmed".into(),
        subject_kind: Some("account".into()),
        subject_id: Some(ids["alice"].to_string()),
        detail: json!({}),
    };
    let id = claimed[0].id;
    let recorded = store
        .record_phases(
            "exec-1",
            &[
                PhaseChange::Sent { id, pre_image: pre },
                PhaseChange::Finished {
                    id,
                    phase: ActionPhase::Confirmed,
                    post_image: Some(post),
                    error: None,
                    audit,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(recorded, vec![true, true]);
    assert_eq!(
        store.finish_run_if_done(done_run).await.unwrap(),
        Some(RunStatus::Succeeded)
    );

    Some(World {
        db,
        store,
        dir: tempfile::tempdir().expect("temp dir"),
        alice_login,
        held_run,
        done_run,
    })
}

async fn idbridge(w: &World, args: &[&str]) -> Output {
    let config = w.dir.path().join("idbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n\n\
             [sources.okta]\nkind = \"okta\"\nbase_url = \"http://okta.test\"\n\n\
             [targets.wiki]\nkind = \"confluence_dc\"\nbase_url = \"http://wiki.test\"\n\n\
             [rules.leavers]\nmode = \"enforce\"\nwhen = {{ status = [\"deprovisioned\"] }}\n\
             actions = [\"deactivate\"]\n",
            w.db.url
        ),
    )
    .unwrap();
    let mut cmd = binary();
    cmd.arg("--config")
        .arg(&config)
        .args(args)
        .env("IDBRIDGE_SOURCES__OKTA__TOKEN", "okta-token")
        .env("IDBRIDGE_TARGETS__WIKI__TOKEN", "wiki-token")
        .env("IDBRIDGE_LOG__FILTER", "warn")
        .env("USER", "env-principal");
    tokio::task::spawn_blocking(move || cmd.output().expect("run idbridge"))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs an export that must succeed and returns its standard output.
async fn export(w: &World, args: &[&str]) -> String {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let out = idbridge(w, &all).await;
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// CSV rows as maps from column name to cell.
fn csv_rows(csv_text: &str, columns: &[&str]) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, columns);
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn by<'a>(
    rows: &'a [HashMap<String, String>],
    key: &str,
    value: &str,
) -> &'a HashMap<String, String> {
    rows.iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no row with {key} = {value}: {rows:#?}"))
}

fn json_by<'a>(rows: &'a [Value], key: &str, value: &str) -> &'a Value {
    rows.iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no row with {key} = {value}: {rows:#?}"))
}

fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

on_both_backends!(
    accounts_export_as_csv_and_json_with_licences_groups_and_formulas_neutralised,
    people_export_joins_idp_status_activity_and_pending_actions,
    runs_export_one_row_per_run_or_per_action_with_images,
    exports_are_audited_and_files_are_readable_only_by_their_owner,
);

async fn accounts_export_as_csv_and_json_with_licences_groups_and_formulas_neutralised(
    backend: Backend,
) {
    let Some(w) = world(backend).await else {
        return;
    };
    let csv_text = export(&w, &["accounts", "--format", "csv"]).await;
    let rows = csv_rows(
        &csv_text,
        &[
            "target",
            "username",
            "key",
            "email",
            "display_name",
            "active",
            "licensed",
            "licence_groups",
            "groups",
            "directory",
            "admin",
            "managed",
            "unmanaged_reason",
            "created_at",
            "last_login_at",
            "first_seen_at",
        ],
    );
    assert_eq!(rows.len(), 4);
    let alice = by(&rows, "username", "alice");
    assert_eq!(alice["licensed"], "true");
    assert_eq!(alice["licence_groups"], "confluence-users");
    assert_eq!(alice["groups"], "confluence-users;team-a");
    assert_eq!(alice["managed"], "true");
    assert_eq!(alice["directory"], "Confluence Internal Directory");
    assert!(alice["last_login_at"].ends_with('Z'), "{alice:?}");
    let evil = by(&rows, "key", "k-evil");
    assert_eq!(evil["username"], format!("'{FORMULA}"));
    assert_eq!(evil["licensed"], "false");
    assert_eq!(evil["licence_groups"], "");

    let json_text = export(&w, &["accounts", "--format", "json"]).await;
    let rows: Vec<Value> = serde_json::from_str(&json_text).expect("one JSON array");
    assert_eq!(rows.len(), 4);
    let evil = json_by(&rows, "key", "k-evil");
    assert_eq!(evil["username"], FORMULA, "JSON is not neutralised");
    let alice = json_by(&rows, "username", "alice");
    assert_eq!(alice["groups"], json!(["confluence-users", "team-a"]));
    assert_eq!(alice["licence_groups"], json!(["confluence-users"]));
}

async fn people_export_joins_idp_status_activity_and_pending_actions(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let csv_text = export(&w, &["people"]).await;
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let rows = csv_rows(&csv_text, &columns);
    assert_eq!(rows.len(), 4);

    let alice = by(&rows, "username", "alice");
    assert_eq!(alice["link_state"], "linked");
    assert_eq!(alice["identity_sources"], "okta");
    assert_eq!(alice["identity_external_ids"], "00ua");
    assert_eq!(alice["idp_statuses"], "active");
    assert_eq!(alice["idp_groups"], "okta:engineering");
    assert_eq!(alice["idp_last_logins"], secs(w.alice_login));
    // Okta's login is later than Confluence's own: it is the effective last activity.
    assert_eq!(alice["last_activity_at"], secs(w.alice_login));
    assert_eq!(alice["last_activity_from"], "okta");
    assert_eq!(alice["inactive_days"], "10");
    assert_eq!(alice["licence_groups"], "confluence-users");
    assert_eq!(alice["pending_actions"], "", "alice's run is finished");

    let bob = by(&rows, "username", "bob");
    assert_eq!(bob["idp_statuses"], "deprovisioned");
    assert_eq!(bob["idp_raw_statuses"], "DEPROVISIONED");
    assert_eq!(bob["last_activity_at"], "");
    let short = &w.held_run.to_string()[..8];
    assert_eq!(
        bob["pending_actions"],
        format!("deactivate (run {short}, held)")
    );
    assert_eq!(bob["would_plan"], "", "not asked for");
    let evil = by(&rows, "identity_external_ids", "00ue");
    assert_eq!(evil["username"], format!("'{FORMULA}"));

    // JSON lines, with what the rules would plan now.
    let lines = export(&w, &["people", "--format", "jsonl", "--with-plan"]).await;
    let rows: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("one object per line"))
        .collect();
    assert_eq!(rows.len(), 4);
    let carol = json_by(&rows, "username", "carol");
    assert_eq!(carol["identities"][0]["raw_status"], "DEPROVISIONED");
    let plans = carol["would_plan"].as_array().expect("asked for");
    assert!(
        plans
            .iter()
            .any(|p| p["rule"] == "leavers" && p["action"]["kind"] == "deactivate"),
        "{carol:#}"
    );
    let alice = json_by(&rows, "username", "alice");
    assert_eq!(alice["would_plan"], json!([]));
    assert_eq!(alice["identities"][0]["link_method"], "email");
    assert_eq!(alice["last_activity_from"], "okta");
    let bob = json_by(&rows, "username", "bob");
    let pending = &bob["pending_actions"][0];
    assert_eq!(pending["run"], w.held_run.to_string());
    assert_eq!(pending["run_status"], "held");
    assert_eq!(pending["action"]["kind"], "deactivate");
}

async fn runs_export_one_row_per_run_or_per_action_with_images(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let csv_text = export(&w, &["runs"]).await;
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let rows = csv_rows(&csv_text, &columns);
    assert_eq!(rows.len(), 2);
    let held = by(&rows, "id", &w.held_run.to_string());
    assert_eq!(
        (held["status"].as_str(), held["planned"].as_str()),
        ("held", "1")
    );
    assert_eq!(held["started_by"], "ops.anna");
    assert_eq!(held["rules"], "leavers");
    let done = by(&rows, "id", &w.done_run.to_string());
    assert_eq!(done["status"], "succeeded");
    assert_eq!(
        (done["confirmed"].as_str(), done["planned"].as_str()),
        ("1", "0")
    );
    assert!(!done["finished_at"].is_empty());

    let json_text = export(&w, &["runs", "--actions", "--format", "json"]).await;
    let actions: Vec<Value> = serde_json::from_str(&json_text).unwrap();
    assert_eq!(actions.len(), 2);
    let removed = json_by(&actions, "username", "alice");
    assert_eq!(removed["run_id"], w.done_run.to_string());
    assert_eq!(removed["phase"], "confirmed");
    assert_eq!(removed["attempts"], 1);
    assert_eq!(removed["params"]["group"], "team-a");
    assert_eq!(
        removed["pre_image"]["groups"],
        json!(["confluence-users", "team-a"])
    );
    let waiting = json_by(&actions, "username", "bob");
    assert_eq!(
        (waiting["kind"].clone(), waiting["phase"].clone()),
        (json!("deactivate"), json!("planned"))
    );
    assert_eq!(waiting["pre_image"], Value::Null);

    let csv_text = export(&w, &["runs", "--actions"]).await;
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let rows = csv_rows(&csv_text, &columns);
    let removed = by(&rows, "username", "alice");
    let post: Value = serde_json::from_str(&removed["post_image"]).expect("a JSON string");
    assert_eq!(post["groups"], json!(["confluence-users"]));
    assert_eq!(removed["because"], "status deprovisioned");
}

async fn exports_are_audited_and_files_are_readable_only_by_their_owner(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let path = w.dir.path().join("people.csv");
    std::fs::write(&path, "an older export").unwrap();
    let out = idbridge(
        &w,
        &[
            "export",
            "people",
            "--output",
            path.to_str().unwrap(),
            "--as",
            "auditor",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("exported 4 people rows"),
        "{}",
        text(&out.stderr)
    );
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.starts_with("target,username,"), "{written}");
    assert_eq!(written.lines().count(), 5);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    export(&w, &["runs", "--actions", "--format", "jsonl"]).await;

    // Options that do not fit the export are refused before anything is written.
    let refused = idbridge(&w, &["export", "accounts", "--actions"]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--actions goes with"));

    let entries = w.store.audit_entries(i64::MIN, 1000).await.unwrap();
    let exports: Vec<_> = entries
        .iter()
        .filter(|e| e.action.starts_with("export."))
        .collect();
    assert_eq!(exports.len(), 2, "{exports:#?}");
    let people = exports[0];
    assert_eq!(
        (people.action.as_str(), people.actor.as_str()),
        ("export.people", "auditor")
    );
    assert_eq!(people.detail["rows"], 4);
    assert_eq!(people.detail["format"], "csv");
    assert_eq!(people.detail["destination"], path.display().to_string());
    let actions = exports[1];
    assert_eq!(
        (actions.action.as_str(), actions.actor.as_str()),
        ("export.actions", "env-principal")
    );
    assert_eq!(actions.detail["rows"], 2);
    assert_eq!(actions.detail["destination"], "stdout");
}
