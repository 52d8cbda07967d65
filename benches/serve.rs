//! Service-level benchmark: cold start of `idbridge serve` to ready (SQLite and PostgreSQL),
//! idle resident memory, and `/healthz` throughput under `wrk`.
//!
//! Run with `cargo bench --bench serve`. PostgreSQL figures need `BENCH_DATABASE_URL` (or
//! `TEST_DATABASE_URL`) naming a server where databases may be created; throughput needs `wrk`
//! on the PATH (`apt-get install wrk`). Prints a Markdown table for `docs/benchmarks.md`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs benches with `--test`-less args too; stay quick there.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows: Vec<(String, String)> = Vec::new();

    // SQLite, fresh file each time: includes creating the file and applying migrations.
    let mut fresh = Vec::new();
    for i in 0..RUNS {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("fresh-{i}.db")).display()
        );
        let (mut server, took) = start(&url);
        stop(&mut server.child);
        fresh.push(took);
    }
    rows.push((
        "cold start to ready, SQLite, new file + migrations".into(),
        summary(&mut fresh),
    ));

    let url = format!("sqlite://{}", dir.path().join("warm.db").display());
    let mut warm = Vec::new();
    for _ in 0..RUNS {
        let (mut server, took) = start(&url);
        stop(&mut server.child);
        warm.push(took);
    }
    rows.push((
        "cold start to ready, SQLite, migrated file".into(),
        summary(&mut warm),
    ));

    let (mut server, _) = start(&url);
    rows.push((
        "idle RSS after 100 requests, SQLite".into(),
        idle_rss(&server),
    ));
    rows.push((
        "`/healthz` throughput (wrk -t1 -c32 -d10s)".into(),
        wrk(server.addr),
    ));
    stop(&mut server.child);

    let pg = std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .ok();
    if let Some(admin) = pg {
        let name = format!("idbridge_bench_{}", std::process::id());
        psql(&admin, &format!("drop database if exists {name}"));
        psql(&admin, &format!("create database {name}"));
        let mut pg_url = url::Url::parse(&admin).expect("database URL parses");
        pg_url.set_path(&name);
        let pg_url = pg_url.to_string();
        let (mut first, took_first) = start(&pg_url);
        stop(&mut first.child);
        rows.push((
            "cold start to ready, PostgreSQL, new database + migrations".into(),
            format!("{:.1} ms (one run)", ms(took_first)),
        ));
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let (mut server, took) = start(&pg_url);
            stop(&mut server.child);
            times.push(took);
        }
        rows.push((
            "cold start to ready, PostgreSQL, migrated database".into(),
            summary(&mut times),
        ));
        let (mut server, _) = start(&pg_url);
        rows.push((
            "idle RSS after 100 requests, PostgreSQL".into(),
            idle_rss(&server),
        ));
        stop(&mut server.child);
        psql(
            &admin,
            &format!("drop database if exists {name} with (force)"),
        );
    } else {
        rows.push((
            "PostgreSQL".into(),
            "skipped: set BENCH_DATABASE_URL".into(),
        ));
    }

    println!("| measure | result |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

/// Spawns `idbridge serve` on `database_url` and returns once `/readyz` answers 200, with the
/// time from spawn to that answer.
fn start(database_url: &str) -> (Server, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .arg("serve")
        .env("IDBRIDGE_DATABASE__URL", database_url)
        .env("IDBRIDGE_SERVER__LISTEN", "127.0.0.1:0")
        .env("IDBRIDGE_LOG__FORMAT", "text")
        .env("IDBRIDGE_LOG__FILTER", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn idbridge");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("idbridge exited before listening")
            .expect("read stderr");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .expect("address in log line");
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    loop {
        if get(addr, "/readyz").is_some_and(|status| status == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never became ready"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    (Server { child, addr }, started.elapsed())
}

/// One HTTP/1.1 GET; returns the status code.
fn get(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut conn = TcpStream::connect(addr).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    answer.get(9..12)?.parse().ok()
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn idle_rss(server: &Server) -> String {
    for _ in 0..100 {
        get(server.addr, "/healthz");
    }
    get(server.addr, "/metrics");
    std::thread::sleep(Duration::from_secs(2));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| format!("{:.1} MB", kb / 1024.0))
            .unwrap_or_else(|| "n/a".into())
    };
    format!("VmRSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

fn wrk(addr: SocketAddr) -> String {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", "-d10s", "--latency"])
        .arg(format!("http://{addr}/healthz"))
        .output();
    let Ok(out) = out else {
        return "skipped: wrk not installed".into();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{} req/s; latency p50 {}, p99 {}; non-2xx: {}",
        find("Requests/sec:"),
        find("50%"),
        find("99%"),
        if text.contains("Non-2xx") {
            find("Non-2xx or 3xx responses:")
        } else {
            "0".into()
        }
    )
}

fn psql(url: &str, sql: &str) {
    let status = Command::new("psql")
        .args([url, "-qtAc", sql])
        .stdout(Stdio::null())
        .status()
        .expect("run psql");
    assert!(status.success(), "psql failed: {sql}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "median {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} runs)",
        ms(p(0.5)),
        ms(p(0.95)),
        ms(times[times.len() - 1]),
        times.len()
    )
}
