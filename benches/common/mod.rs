//! What the benchmarks share: environment knobs, running the release binary as a child
//! process while watching its peak resident memory, and creating databases with `psql`.

#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `name` from the environment, parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How one child process ran.
pub struct Measured {
    pub output: Output,
    pub seconds: f64,
    pub peak_rss_mb: f64,
}

/// Runs `cmd` to completion, sampling its peak resident memory (VmHWM) as it runs.
pub fn run_measured(mut cmd: Command) -> Measured {
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn idbridge");
    let pid = child.id();
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            // VmHWM only grows, so the last reading before exit is the peak.
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = vm_hwm_kb(pid) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let output = child.wait_with_output().expect("idbridge runs");
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    Measured {
        output,
        seconds,
        peak_rss_mb: peak.load(Ordering::Relaxed) as f64 / 1024.0,
    }
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs one SQL statement with `psql`.
pub fn psql(url: &str, sql: &str) {
    let status = Command::new("psql")
        .args([url, "-qtAc", sql])
        .stdout(Stdio::null())
        .status()
        .expect("run psql");
    assert!(status.success(), "psql failed: {sql}");
}

/// A fresh database `name` on the server `admin` names (dropped first if it exists); returns
/// its URL.
pub fn fresh_database(admin: &str, name: &str) -> String {
    psql(
        admin,
        &format!("drop database if exists {name} with (force)"),
    );
    psql(admin, &format!("create database {name}"));
    let mut url = url::Url::parse(admin).expect("database URL");
    url.set_path(name);
    url.to_string()
}

/// The PostgreSQL server benchmarks may create databases on, if any.
pub fn postgres_admin() -> Option<String> {
    std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .ok()
}
