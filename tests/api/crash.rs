//! Kill -9 at each failpoint of the executor, on both backends: the real binary runs
//! `idbridge execute` against an in-process DC simulator, pauses at a failpoint, is killed
//! with SIGKILL, and is started again without failpoints. Judged by state in the simulator:
//! every account is out of the licence group, deactivated and renamed exactly once; and by
//! its request log: no (account, write) was carried out twice.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use idbridge::domain::{ActionPhase, RuleMode, RunStatus};

use crate::execute::{Env, env};
use crate::helpers::{Backend, binary, on_both_backends};

const USERS: usize = 20;

/// A configuration file pointing idbridge at the test database and the DC simulator.
pub(crate) fn config_file(env: &Env, dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("idbridge.toml");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"{}\"\n\n\
             [targets.wiki]\nkind = \"confluence_dc\"\nbase_url = \"{}\"\nusername = \"{}\"\n\
             max_rate_limit_wait_secs = 5\n\n\
             [executor]\nconcurrency = 4\nmax_attempts = 5\nclaim_ttl_secs = 1\nretry_base_ms = 50\n",
            env.db.url,
            env.sim.base_url(),
            env.sim.admin_user(),
        ),
    )
    .expect("write config");
    path
}

fn spawn(env: &Env, config: &std::path::Path, failpoints: Option<&str>) -> Child {
    let mut cmd = binary();
    cmd.arg("--config")
        .arg(config)
        .arg("execute")
        .env("IDBRIDGE_TARGETS__WIKI__TOKEN", env.sim.pat())
        .env("IDBRIDGE_TARGETS__WIKI__PASSWORD", env.sim.admin_password())
        .env("IDBRIDGE_LOG__FILTER", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = failpoints {
        cmd.env("IDBRIDGE_FAILPOINTS", f);
    }
    cmd.spawn().expect("spawn idbridge execute")
}

/// Waits (in a thread) for the failpoint's line on stderr; returns what stderr said.
fn wait_for_failpoint(child: &mut Child, point: &str) -> Result<(), String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wanted = format!("failpoint {point} reached");
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(line) if line.contains(&wanted) => return Ok(()),
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(_) => return Err(seen),
        }
    }
}

async fn crash_at(backend: Backend, point: &str, hit: u32) {
    let users: Vec<String> = (0..USERS).map(|i| format!("kill.u{i:02}")).collect();
    let Some(env) = env(backend, &users).await else {
        return;
    };
    let mut actions = Vec::new();
    for i in 0..USERS {
        actions.extend(crate::execute::leaver_ladder(
            &env,
            i,
            &format!("kill.u{i:02}_inactive_20260301"),
        ));
    }
    let run = env.run(RuleMode::Enforce, &actions).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_file(&env, &dir);

    let fp = format!("execute.{point}=pause@{hit}");
    let mut child = spawn(&env, &config, Some(&fp));
    let point_name = format!("execute.{point}");
    let reached = tokio::task::spawn_blocking(move || {
        let r = wait_for_failpoint(&mut child, &point_name);
        // SIGKILL, whatever happened.
        let _ = child.kill();
        let _ = child.wait();
        r
    })
    .await
    .expect("join");
    if let Err(stderr) = reached {
        panic!("{point}: the failpoint was never reached; stderr:\n{stderr}");
    }
    let open = env
        .store
        .run_actions(run)
        .await
        .unwrap()
        .iter()
        .filter(|a| !a.phase.is_terminal())
        .count();
    assert!(open > 0, "{point}: the kill left work to resume");

    let child = spawn(&env, &config, None);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert!(
        out.status.success(),
        "{point}: the restart did not finish cleanly: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // By state: everyone out of the licence group, deactivated, renamed exactly once.
    let log = env.sim.core().requests();
    let ok_write = |r: &&idbridge::sim::common::LoggedRequest, needle: &str| {
        r.method != "GET" && (200..300).contains(&r.status) && r.path.contains(needle)
    };
    for (i, (_, key, name)) in env.accounts.iter().enumerate() {
        let u = env.sim.user_by_key(key).expect("user still there");
        assert_eq!(
            u.username,
            format!("kill.u{i:02}_inactive_20260301"),
            "{point}"
        );
        assert!(!u.active, "{point}: {name} deactivated");
        assert!(
            !u.groups.iter().any(|g| g == "confluence-users"),
            "{point}: {name} out of the group"
        );
        let removes = log
            .iter()
            .filter(|r| ok_write(r, &format!("/{name}/group/confluence-users")))
            .count();
        let disables = log
            .iter()
            .filter(|r| ok_write(r, &format!("/{name}/disable")))
            .count();
        assert!(removes <= 1, "{point}: {name} removed {removes} times");
        assert!(disables <= 1, "{point}: {name} disabled {disables} times");
    }
    let renames = log.iter().filter(|r| ok_write(r, "renameUser")).count();
    assert_eq!(renames, USERS, "{point}: one rename per account");
    let stored = env.store.run_actions(run).await.unwrap();
    assert!(
        stored.iter().all(|a| a.phase == ActionPhase::Confirmed),
        "{point}: {:?}",
        stored.iter().map(|a| a.phase).collect::<Vec<_>>()
    );
    assert_eq!(
        env.store.run(run).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
}

async fn kill_9_before_a_write_loses_nothing(backend: Backend) {
    crash_at(backend, "before_send", 7).await;
}

async fn kill_9_after_a_write_does_nothing_twice(backend: Backend) {
    crash_at(backend, "after_send", 7).await;
}

async fn kill_9_in_the_middle_of_a_rename_renames_once(backend: Backend) {
    crash_at(backend, "mid_rename", 3).await;
}

on_both_backends!(
    kill_9_before_a_write_loses_nothing,
    kill_9_after_a_write_does_nothing_twice,
    kill_9_in_the_middle_of_a_rename_renames_once,
);
