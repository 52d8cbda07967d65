//! `idbridge targets check` and `idbridge sync target` as an admin runs them: the real binary
//! against the Confluence DC simulator, configured through a TOML file and the environment.

use std::net::SocketAddr;
use std::process::Output;

use idbridge::sim::common::{Fault, FaultKind};
use idbridge::sim::confluence_dc::{DcSim, DcSimOptions, start};

use crate::helpers::{binary, one_error_line, stderr, stdout};

async fn sim(version: &str, users: usize) -> DcSim {
    let opts = DcSimOptions {
        product_version: version.parse().expect("version"),
        users,
        ..DcSimOptions::default()
    };
    start(opts, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts")
}

/// Runs the binary with a configuration naming target `wiki` at the simulator; the token
/// comes from the environment, as operators are told to pass it.
async fn run(sim: &DcSim, token: &str, args: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("idbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n\n[targets.wiki]\nkind = \"confluence_dc\"\n\
             base_url = \"{}\"\nmax_rate_limit_wait_secs = 5\n",
            dir.path().join("idbridge.db").display(),
            sim.base_url()
        ),
    )
    .unwrap();
    let mut cmd = binary();
    cmd.arg("--config")
        .arg(&config)
        .args(args)
        .env("IDBRIDGE_TARGETS__WIKI__TOKEN", token)
        .env("IDBRIDGE_LOG__FILTER", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("runs"))
        .await
        .unwrap();
    (out, dir)
}

/// The table row for `capability`: (`yes`|`no`, how or why not).
fn row(out: &str, capability: &str) -> (String, String) {
    let line = out
        .lines()
        .find(|l| {
            l.trim_start().starts_with(capability)
                && l.trim_start()[capability.len()..].starts_with("  ")
        })
        .unwrap_or_else(|| panic!("no `{capability}` row in:\n{out}"));
    let rest = line.trim_start()[capability.len()..].trim_start();
    let (ok, why) = rest.split_once(' ').unwrap_or((rest, ""));
    (ok.to_owned(), why.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_check_prints_what_each_version_can_do() {
    let old = sim("8.1", 30).await;
    let (out, _dir) = run(&old, old.pat(), &["targets", "check", "wiki"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}{text}", stderr(&out));
    assert!(text.contains("version      8.1"), "{text}");
    let (ok, why) = row(&text, "list accounts");
    assert_eq!(ok, "no");
    assert!(why.contains("8.4"), "{why}");
    let (ok, why) = row(&text, "disable");
    assert_eq!(ok, "no");
    assert!(why.contains("8.2"), "{why}");
    assert_eq!(row(&text, "get account").0, "yes");
    assert_eq!(row(&text, "rename").0, "no");
    assert!(
        text.contains("last login   identity providers only"),
        "{text}"
    );

    let new = sim("10.2", 30).await;
    let (out, _dir) = run(&new, new.pat(), &["targets", "check", "wiki"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}{text}", stderr(&out));
    assert!(text.contains("version      10.2"), "{text}");
    for cap in [
        "list accounts",
        "disable",
        "delete",
        "create account",
        "nested groups",
    ] {
        assert_eq!(row(&text, cap).0, "yes", "{cap}: {text}");
    }
    assert_eq!(row(&text, "change directory").0, "no");
    assert!(text.contains("last login   REST"), "{text}");
    assert!(
        text.contains("seats         60"),
        "twice the users by default: {text}"
    );

    let (out, _dir) = run(&new, new.pat(), &["targets", "check", "wiki", "--json"]).await;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["instance"]["version"], "10.2.0");
    assert_eq!(doc["capabilities"].as_array().unwrap().len(), 16);
    old.stop().await;
    new.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_target_stores_a_complete_inventory_and_refuses_a_cut_off_one() {
    let sim = sim("9.3", 150).await;
    let (out, dir) = run(&sim, sim.pat(), &["sync", "target", "wiki"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}{text}", stderr(&out));
    assert!(text.contains("complete — 150 accounts"), "{text}");

    // The first page of users comes back cut off halfway: the inventory is stored, but
    // as incomplete, and the command says why and fails.
    sim.core().add_fault(Fault {
        method: Some("GET".into()),
        path_prefix: Some("/confluence/rest/api/user/list".into()),
        kind: FaultKind::Truncate,
        times: Some(1),
    });
    let mut cmd = binary();
    cmd.arg("--config")
        .arg(dir.path().join("idbridge.toml"))
        .args(["sync", "target", "wiki"])
        .env("IDBRIDGE_TARGETS__WIKI__TOKEN", sim.pat())
        .env("IDBRIDGE_LOG__FILTER", "off");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let line = one_error_line(&out, 1);
    assert!(line.contains("inventory of `wiki` is incomplete"), "{line}");
    assert!(line.contains("truncated"), "{line}");
    assert!(
        stdout(&out).contains("nothing will be removed"),
        "{}",
        stdout(&out)
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_reported_without_showing_it() {
    let sim = sim("9.3", 10).await;
    let token = "not-the-right-pat-5d1c0ffee";
    let (out, _dir) = run(&sim, token, &["targets", "check", "wiki"]).await;
    let line = one_error_line(&out, 1);
    assert!(line.contains("401"), "{line}");
    assert!(!stderr(&out).contains(token) && !stdout(&out).contains(token));
    sim.stop().await;
}

#[test]
fn an_unconfigured_target_is_named_with_the_configured_ones() {
    let out = binary()
        .args(["targets", "check", "nope"])
        .env("IDBRIDGE_TARGETS__WIKI__KIND", "confluence_dc")
        .env("IDBRIDGE_TARGETS__WIKI__BASE_URL", "http://127.0.0.1:1/")
        .env("IDBRIDGE_TARGETS__WIKI__TOKEN", "x")
        .output()
        .unwrap();
    let line = one_error_line(&out, 2);
    assert!(
        line.contains("target `nope` is not configured; configured targets: wiki"),
        "{line}"
    );
}

/// Whether `GET /healthz` at `addr` answers 200.
pub fn healthz_answers(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    if conn
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_check_prints_the_version_matrix_for_every_simulated_version() {
    // (version, list accounts, disable, nested groups, create account, last login via REST)
    let matrix = [
        ("7.13", "no", "no", "no", "no", false),
        ("8.1", "no", "no", "no", "no", false),
        ("8.2", "no", "yes", "no", "no", false),
        ("8.4", "yes", "yes", "no", "yes", false),
        ("9.3", "yes", "yes", "yes", "yes", false),
        ("10.2", "yes", "yes", "yes", "yes", true),
    ];
    for (version, list, disable, nested, create, rest_login) in matrix {
        let sim = sim(version, 20).await;
        let (out, _dir) = run(&sim, sim.pat(), &["targets", "check", "wiki"]).await;
        let text = stdout(&out);
        assert!(out.status.success(), "{version}: {}{text}", stderr(&out));
        assert!(text.contains(&format!("version      {version}")), "{text}");
        assert_eq!(row(&text, "list accounts").0, list, "{version}: {text}");
        assert_eq!(row(&text, "disable").0, disable, "{version}: {text}");
        assert_eq!(row(&text, "enable").0, disable, "{version}: {text}");
        assert_eq!(row(&text, "delete").0, disable, "{version}: {text}");
        assert_eq!(row(&text, "nested groups").0, nested, "{version}: {text}");
        assert_eq!(row(&text, "create account").0, create, "{version}: {text}");
        assert_eq!(
            row(&text, "rename").0,
            "no",
            "{version}: no Remote API, no Crowd"
        );
        assert_eq!(row(&text, "change directory").0, "no", "{version}");
        assert_eq!(
            text.contains("last login   REST"),
            rest_login,
            "{version}: {text}"
        );
        for (_, why) in ["list accounts", "disable", "rename"]
            .iter()
            .map(|c| row(&text, c))
            .filter(|(ok, _)| ok == "no")
        {
            assert!(!why.is_empty(), "{version}: every refusal says why");
        }
        sim.stop().await;
    }
}
