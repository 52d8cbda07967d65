//! `idbridge runs list|show` and run ids on the command line, with the real binary on both
//! backends: a stored run is executed by a prefix of its id, listed, and shown with every
//! action's phase; ids that name no run, or more than one, are refused with exit status 2.

use std::process::Output;

use idbridge::domain::RuleMode;
use serde_json::Value;

use crate::crash::config_file;
use crate::execute::{Env, env, leaver_ladder};
use crate::helpers::{Backend, binary, on_both_backends};

fn idbridge(env: &Env, config: &std::path::Path, args: &[&str]) -> Output {
    binary()
        .arg("--config")
        .arg(config)
        .args(args)
        .env("IDBRIDGE_TARGETS__WIKI__TOKEN", env.sim.pat())
        .env("IDBRIDGE_TARGETS__WIKI__PASSWORD", env.sim.admin_password())
        .env("IDBRIDGE_LOG__FILTER", "warn")
        .output()
        .expect("run idbridge")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

on_both_backends!(a_run_is_executed_listed_and_shown_by_a_prefix_of_its_id);

async fn a_run_is_executed_listed_and_shown_by_a_prefix_of_its_id(backend: Backend) {
    let users = ["runs.ann".to_owned(), "runs.bob".to_owned()];
    let Some(env) = env(backend, &users).await else {
        return;
    };
    let mut actions = leaver_ladder(&env, 0, "runs.ann_inactive_20260301");
    actions.extend(leaver_ladder(&env, 1, "runs.bob_inactive_20260301"));
    let run = env.run(RuleMode::Enforce, &actions).await;
    let id = run.to_string();
    let prefix = &id[..8];
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_file(&env, &dir);

    let listed = idbridge(&env, &config, &["runs", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let line = stdout(&listed)
        .lines()
        .find(|l| l.starts_with(&id))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("run {id} not listed:\n{}", stdout(&listed)));
    assert!(
        line.contains("planned") && line.contains("leavers"),
        "{line}"
    );

    let executed = idbridge(&env, &config, &["execute", "--run", prefix]);
    assert!(executed.status.success(), "{}", stderr(&executed));
    assert!(
        stdout(&executed).contains(&format!("run {id} succeeded")),
        "{}",
        stdout(&executed)
    );

    let shown = idbridge(&env, &config, &["runs", "show", prefix]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let text = stdout(&shown);
    assert!(text.contains(&format!("run        {id}")), "{text}");
    assert!(text.contains("status     succeeded"), "{text}");
    assert!(text.contains("actions    6 (6 confirmed)"), "{text}");
    for want in [
        "runs.ann",
        "remove from confluence-users (licence)",
        "rename to runs.bob_inactive_20260301",
    ] {
        assert!(text.contains(want), "missing `{want}`:\n{text}");
    }

    let json = idbridge(&env, &config, &["runs", "show", &id, "--json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let v: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(v["run"]["status"], "succeeded");
    assert_eq!(v["phases"]["confirmed"], 6);
    let actions = v["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 6);
    assert!(actions.iter().all(|a| a["pre_image"].is_object()));
}

on_both_backends!(ids_that_name_no_run_are_refused_with_the_reason);

async fn ids_that_name_no_run_are_refused_with_the_reason(backend: Backend) {
    let Some(env) = env(backend, &[]).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_file(&env, &dir);
    let empty = idbridge(&env, &config, &["runs", "list"]);
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert_eq!(stdout(&empty).trim(), "no runs yet");

    for (arg, want) in [
        ("1234", "is not a run id"),
        ("zzzzzzzzzz", "is not a run id"),
        ("0123abcd", "no run starts with `0123abcd`"),
        ("01234567-89ab-4def-8123-456789abcdef", "no run 01234567"),
    ] {
        let out = idbridge(&env, &config, &["runs", "show", arg]);
        assert_eq!(out.status.code(), Some(2), "{arg}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{arg}: {}", stderr(&out));
        let approve = idbridge(&env, &config, &["approve", arg, "--hash", "h", "--as", "x"]);
        assert_eq!(
            approve.status.code(),
            Some(2),
            "{arg}: {}",
            stderr(&approve)
        );
    }
}
