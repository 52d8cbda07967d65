//! `idbridge demo`: the loop on the seeded company does what its narration says (checked in
//! the simulators, not in the printout), and the command runs it, serves, and stops cleanly.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use idbridge::clock::SystemClock;
use idbridge::config::Config;
use idbridge::demo::{Demo, DemoOptions};
use idbridge::domain::{RuleMode, RunStatus};
use idbridge::sim::company::{self, CompanyOptions, Role};
use idbridge::store::Store;

use crate::helpers::{Backend, TestDb, binary, on_both_backends};

on_both_backends!(
    the_demo_loop_removes_exactly_whom_the_rules_select_and_gives_a_returner_the_licence_back
);

async fn the_demo_loop_removes_exactly_whom_the_rules_select_and_gives_a_returner_the_licence_back(
    backend: Backend,
) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let store = Store::connect(&db.config(), std::sync::Arc::new(SystemClock))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let opts = DemoOptions {
        company: CompanyOptions {
            people: 600,
            ..CompanyOptions::default()
        },
        ..DemoOptions::default()
    };
    let demo = Demo::start(&opts, Config::default(), Utc::now())
        .await
        .unwrap();
    let synced = demo.sync(&store).await.unwrap();
    assert_eq!(
        synced.target.accounts as usize,
        demo.members.len() + 3,
        "plus the sim's own admin and viewers"
    );

    // The dry run changes nothing anywhere.
    let accounts = || {
        demo.seeded
            .keys
            .values()
            .map(|k| format!("{:?}", demo.dc.user_by_key(k)))
            .collect::<Vec<_>>()
    };
    let before = accounts();
    let preview = demo.preview(&store, Utc::now()).await.unwrap();
    assert!(!preview.dry_run.actions.is_empty());
    assert!(preview.enforce.actions.is_empty());
    assert!(accounts() == before, "the dry run changed an account");

    let enforced = demo.enforce(&store, Utc::now()).await.unwrap();
    let enforce_run = enforced
        .outcome
        .runs
        .iter()
        .find(|r| r.mode == RuleMode::Enforce)
        .expect("an enforced run");
    // 600 people: the first enforced run is over the halved per-run budget and is held ...
    assert_eq!(enforce_run.status, RunStatus::Held);
    // ... until the second person approves it.
    assert_eq!(enforced.approved.len(), 1);
    assert_eq!(enforced.approved[0].status, RunStatus::Succeeded);

    for m in &demo.members {
        let key = &demo.seeded.keys[&m.username];
        let u = demo.dc.user_by_key(key).expect("account still there");
        let licensed = u.groups.iter().any(|g| g == company::LICENCE_GROUP);
        let inactive_days = m.last_login.map(|t| (Utc::now() - t).num_days());
        let created_days = (Utc::now() - m.created).num_days();
        match m.role {
            Role::Leaver => {
                assert!(!u.active && !licensed, "{}: {u:?}", m.username);
                assert!(
                    u.username.starts_with(&format!("{}_inactive_", m.username)),
                    "{}",
                    u.username
                );
            }
            Role::LongInactive | Role::Returner => {
                assert!(
                    u.active && !licensed && u.username == m.username,
                    "{}: {u:?}",
                    m.username
                );
            }
            Role::NeverLoggedIn => {
                assert!(
                    u.active && !licensed,
                    "{} (created {created_days} days ago): {u:?}",
                    m.username
                );
            }
            // Administrators (one of them a leaver) and service accounts are never touched;
            // the idle contractors' rule is a dry run; suspended is not a leaver signal here.
            Role::Admin
            | Role::ServiceAccount
            | Role::IdleContractor
            | Role::Suspended
            | Role::Active
            | Role::Contractor => {
                assert!(
                    u.active && licensed && u.username == m.username,
                    "{:?} {} (inactive {inactive_days:?} days): {u:?}",
                    m.role,
                    m.username
                );
            }
        }
    }
    assert_eq!(
        enforced.licensed_before - enforced.licensed_after,
        demo.members
            .iter()
            .filter(|m| matches!(
                m.role,
                Role::Leaver | Role::LongInactive | Role::Returner | Role::NeverLoggedIn
            ))
            .count()
    );

    let returner = demo
        .returner()
        .expect("a returner lost the licence")
        .clone();
    let leaver = demo.leaver().expect("a leaver").clone();
    let returned = demo
        .return_one(&store, &returner, Some(&leaver), Utc::now)
        .await
        .unwrap();
    assert!(returned.licensed_again, "{:#?}", returned.outcome.plan);
    // Only the returner gets anything back; the leaver's sign-in is an alert.
    assert!(
        returned
            .outcome
            .plan
            .actions
            .iter()
            .all(|a| a.username == returner.username)
    );
    assert_eq!(returned.outcome.alerts_raised, 1);
    assert!(
        returned.outcome.plan.alerts[0]
            .username
            .starts_with(&leaver.username)
    );
    let leaver_now = demo
        .dc
        .user_by_key(&demo.seeded.keys[&leaver.username])
        .unwrap();
    assert!(!leaver_now.active);
    // The other returners have not signed in and stay without a licence.
    for m in demo
        .members
        .iter()
        .filter(|m| m.role == Role::Returner && m.username != returner.username)
    {
        let u = demo.dc.user(&m.username).unwrap();
        assert!(
            !u.groups.iter().any(|g| g == company::LICENCE_GROUP),
            "{}",
            m.username
        );
    }
    demo.stop().await;
    store.close().await;
}

/// Runs `idbridge demo` with `args` on a fresh database in a temporary folder.
fn demo_command(dir: &tempfile::TempDir, args: &[&str]) -> std::process::Command {
    let mut cmd = binary();
    cmd.arg("demo")
        .arg("--database")
        .arg(dir.path().join("demo.db"))
        .args(args)
        .stdin(Stdio::null());
    cmd
}

#[test]
fn the_demo_command_narrates_the_whole_loop_and_exits_with_once() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = demo_command(&dir, &["--once"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(300));
    for expected in [
        "1. A company of 3000 people",
        "2. Sync",
        "snapshot of okta: complete — 2994 people",
        "inventory of wiki: complete — 3003 accounts",
        "3. Plan (dry run: nothing changes)",
        "rule leavers (enforce): 76 people",
        "rule idle_contractors (dry_run)",
        "4. Enforce",
        "held by the safety budget",
        "approved by security-lead (not its starter, demo-operator)",
        "seats reclaimed",
        "5. ",
        "licence back in Confluence",
        "alert security.leaver_sign_in",
        "every one chained and verified",
        "--once: stopping the simulators",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The narration is the output: no log lines at info level on stdout.
    assert!(!text.contains(" INFO "), "{text}");
}

#[test]
fn the_demo_serves_after_the_loop_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = demo_command(&dir, &["--people", "200", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.contains("press Ctrl-C");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("press Ctrl-C"), "{text}");
    // The address it really listens on, not the port 0 it was given.
    let listen = text
        .split("idbridge health:    http://")
        .nth(1)
        .and_then(|rest| rest.split("/healthz").next())
        .unwrap_or_else(|| panic!("no health URL in:\n{text}"))
        .to_owned();
    assert!(!listen.ends_with(":0"), "{listen}");
    let started = Instant::now();
    while !crate::targets_cli::healthz_answers(&listen) {
        assert!(started.elapsed() < Duration::from_secs(30), "never served");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn ctrl_c_during_the_loop_stops_the_demo_and_its_simulators() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = demo_command(&dir, &["--people", "20000", "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("Confluence (simulated)") {
            break;
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
    assert!(!rest.iter().any(|l| l.contains("5. ")), "{rest:?}");
}

#[test]
fn the_demo_refuses_to_replace_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.db"), "my notes").unwrap();
    let out = demo_command(&dir, &["--once"]).output().unwrap();
    let line = crate::helpers::one_error_line(&out, 1);
    assert!(line.contains("is not a SQLite database"), "{line}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("demo.db")).unwrap(),
        "my notes"
    );
}
