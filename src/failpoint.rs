//! Failpoints for crash tests: named spots in the executor where a test can make the process
//! stop dead. `IDBRIDGE_FAILPOINTS="execute.after_send=pause@3;execute.before_send=abort"`
//! is read once; each `failpoint("name")` call counts a hit, and at the n-th hit (`@n`,
//! default 1) `pause` prints `failpoint <name> reached` on stderr and sleeps for ever (the
//! test then kills the process with SIGKILL), `abort` calls `std::process::abort()`.
//! With the variable unset a failpoint costs one check of an initialised `OnceLock`.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a failpoint does when it triggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Pause,
    Abort,
}

#[derive(Debug)]
struct Point {
    act: Act,
    at: u64,
    hits: AtomicU64,
}

static POINTS: OnceLock<Option<HashMap<String, Point>>> = OnceLock::new();

/// Parses `name=action[@n];…`; unknown actions and bad counts are ignored with a warning.
fn parse(spec: &str) -> HashMap<String, Point> {
    let mut out = HashMap::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, rest)) = part.split_once('=') else {
            tracing::warn!(failpoint = %part, "failpoint without `=action`: ignored");
            continue;
        };
        let (act, at) = match rest.split_once('@') {
            Some((a, n)) => (a.trim(), n.trim().parse::<u64>().ok()),
            None => (rest.trim(), Some(1)),
        };
        let act = match act {
            "pause" => Act::Pause,
            "abort" => Act::Abort,
            other => {
                tracing::warn!(failpoint = %name, action = %other, "unknown failpoint action: ignored");
                continue;
            }
        };
        let Some(at) = at.filter(|n| *n >= 1) else {
            tracing::warn!(failpoint = %name, "failpoint count must be a number ≥ 1: ignored");
            continue;
        };
        out.insert(
            name.trim().to_owned(),
            Point {
                act,
                at,
                hits: AtomicU64::new(0),
            },
        );
    }
    out
}

fn points() -> Option<&'static HashMap<String, Point>> {
    POINTS
        .get_or_init(|| {
            std::env::var("IDBRIDGE_FAILPOINTS")
                .ok()
                .map(|s| parse(&s))
                .filter(|m| !m.is_empty())
        })
        .as_ref()
}

/// Counts a hit of failpoint `name`, and triggers it at its configured hit.
pub fn failpoint(name: &str) {
    let Some(points) = points() else {
        return;
    };
    let Some(p) = points.get(name) else {
        return;
    };
    let hit = p.hits.fetch_add(1, Ordering::SeqCst) + 1;
    if hit != p.at {
        return;
    }
    match p.act {
        Act::Abort => std::process::abort(),
        Act::Pause => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "failpoint {name} reached");
            let _ = err.flush();
            drop(err);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_each_point_with_its_action_and_hit() {
        let p = parse("execute.after_send=pause@3; execute.before_send=abort;bad;x=jump;y=pause@0");
        assert_eq!(p.len(), 2);
        assert_eq!(p["execute.after_send"].act, Act::Pause);
        assert_eq!(p["execute.after_send"].at, 3);
        assert_eq!(p["execute.before_send"].act, Act::Abort);
        assert_eq!(p["execute.before_send"].at, 1);
    }
}
