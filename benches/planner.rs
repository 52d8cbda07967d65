//! Planner benchmark: `engine::plan::plan` over N synthetic people (leavers, suspended,
//! inactive, never logged in, administrators, contractors, unlinked accounts, groups) and
//! five rules, timed in-process. Each size runs in its own child process (this binary
//! again) so its peak resident memory (VmHWM) is its own; the figure includes the input
//! views, which the planner borrows.
//!
//! Run with `cargo bench --bench planner`. `PLANNER_BENCH_SIZES` (comma-separated, default
//! `100000,1000000`) sets the populations; `PLANNER_BENCH_RUNS` (default 3) the timed runs
//! per size (the best and the median are reported). Prints a Markdown table for
//! `docs/benchmarks.md`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{env_or, run_measured};

use idbridge::domain::{
    AccountId, AccountView, ActionSpec, Criterion, Exemptions, GroupMatch, GroupSelection,
    IdentityId, IdentityStatus, IdentityView, LeaverSignal, LinkMethod, LinkState, PersonView,
    Rule, RuleMode, SourceKind, SourceState, TargetId, TargetState,
};
use idbridge::engine::plan::{PlanInput, PlanSettings, plan};

const CHILD: &str = "PLANNER_BENCH_CHILD";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Ok(n) = std::env::var(CHILD) {
        child(n.parse().expect("size"));
        return;
    }
    let sizes: String = env_or("PLANNER_BENCH_SIZES", "100000,1000000".to_owned());
    println!(
        "| people × rules | actions | plan (best) | plan (median) | peak RSS (whole process) | input views (RSS before planning) |"
    );
    println!("|---|---|---|---|---|---|");
    for n in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
    {
        let mut cmd = Command::new(std::env::current_exe().expect("own path"));
        cmd.env(CHILD, n.to_string());
        let m = run_measured(cmd);
        assert!(
            m.output.status.success(),
            "child for {n} failed: {}",
            String::from_utf8_lossy(&m.output.stderr)
        );
        let line = String::from_utf8_lossy(&m.output.stdout);
        println!(
            "{}",
            line.trim_end()
                .replace("{rss}", &format!("{:.0} MB", m.peak_rss_mb))
        );
    }
}

fn child(n: usize) {
    let runs: usize = env_or("PLANNER_BENCH_RUNS", 3);
    let now = Utc
        .with_ymd_and_hms(2026, 11, 1, 9, 0, 0)
        .single()
        .expect("now");
    let people = people(n, now);
    let rules = rules();
    let sources = vec![SourceState {
        name: "okta".into(),
        kind: SourceKind::Okta,
        complete: true,
        incomplete_reason: None,
        observed_since: Some(now - Duration::days(400)),
    }];
    let targets = vec![TargetState {
        name: "wiki".into(),
        id: TargetId(uuid::Uuid::nil()),
        complete: true,
        incomplete_reason: None,
        licence_groups: vec!["confluence-users".into()],
        cannot_rename: None,
        cannot_change_directory: None,
        cannot_delete: None,
    }];
    let settings = PlanSettings::default();
    let input = PlanInput {
        people: &people,
        rules: &rules,
        sources: &sources,
        targets: &targets,
        settings: &settings,
        now,
    };
    let before = vm_hwm_mb();
    let mut times = Vec::new();
    let mut actions = 0;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let p = plan(&input);
        times.push(started.elapsed().as_secs_f64());
        actions = p.actions.len();
        drop(p);
    }
    times.sort_by(f64::total_cmp);
    let ms = |s: f64| format!("{:.0} ms", s * 1000.0);
    println!(
        "| {n} × {} | {actions} | {} | {} | {{rss}} | {before:.0} MB |",
        rules.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
    );
}

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A small deterministic generator (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn people(n: usize, now: DateTime<Utc>) -> Vec<PersonView> {
    let mut rng = Lcg(42);
    let target_id = TargetId(uuid::Uuid::nil());
    let ago = |d: u64| now - Duration::days(d as i64);
    (0..n)
        .map(|i| {
            let roll = rng.below(1000);
            let contractor = (850..950).contains(&roll);
            let username = format!("user{i:07}");
            let domain = if contractor {
                "contractor.example"
            } else {
                "example.com"
            };
            let mut groups = vec![
                "confluence-users".to_owned(),
                format!("team-{:02}", rng.below(50)),
            ];
            if contractor {
                groups.push("contractors".into());
            }
            if rng.below(200) == 0 {
                groups.push("board".into());
            }
            let created = ago(30 + rng.below(2000));
            // Mix: 2 % leavers, 0.5 % suspended, 10 % inactive, 5 % never logged in.
            let (status, last_login) = match roll {
                0..20 => (IdentityStatus::Deprovisioned, Some(ago(rng.below(60)))),
                20..25 => (IdentityStatus::Suspended, Some(ago(rng.below(60)))),
                25..125 => (IdentityStatus::Active, Some(ago(100 + rng.below(600)))),
                125..175 => (IdentityStatus::Active, None),
                _ => (IdentityStatus::Active, Some(ago(rng.below(60)))),
            };
            let admin = roll >= 995;
            let linked = rng.below(10) != 0;
            let email = format!("{username}@{domain}");
            let identity = linked.then(|| IdentityView {
                id: IdentityId::new(),
                source: "okta".into(),
                source_kind: SourceKind::Okta,
                external_id: format!("00u{i:07}"),
                user_name: email.clone(),
                email: Some(email.clone()),
                status,
                raw_status: None,
                suspended_is_leaver: false,
                from_complete_snapshot: true,
                created_at: Some(created),
                last_login_at: last_login,
                last_sign_in_event_at: None,
                sign_in_events: u32::from(last_login.is_some()),
                groups: Vec::new(),
                attributes: serde_json::Value::Null,
                status_changed_at: ago(10),
                first_seen_at: ago(400),
            });
            let link = match &identity {
                Some(id) => LinkState::Linked {
                    methods: vec![(id.id, LinkMethod::ImmutableId)],
                },
                None => LinkState::Unlinked,
            };
            let mut notified = BTreeMap::new();
            if roll < 25 && rng.below(2) == 0 {
                notified.insert("suspended".to_owned(), ago(20));
            }
            PersonView {
                account: AccountView {
                    id: AccountId::new(),
                    target_id,
                    target: "wiki".into(),
                    key: format!("k{i:07}"),
                    username,
                    email: Some(email),
                    display_name: None,
                    active: true,
                    directory: None,
                    groups,
                    licensed: true,
                    admin,
                    managed: rng.below(100) != 0,
                    unmanaged_reason: None,
                    created_at: Some(created),
                    last_login_at: if linked { None } else { last_login },
                    first_seen_at: ago(400),
                },
                identities: identity.into_iter().collect(),
                link,
                absent_syncs: 0,
                notified,
                pending_actions: false,
                changed_since_inventory: false,
                regranted_at: None,
            }
        })
        .collect()
}

fn rule(name: &str, priority: i32, criteria: Vec<Criterion>, actions: Vec<ActionSpec>) -> Rule {
    Rule {
        name: name.into(),
        enabled: true,
        mode: RuleMode::Enforce,
        priority,
        targets: Vec::new(),
        criteria,
        exempt: Exemptions {
            users: vec!["user0000001".into()],
            groups: vec!["board".into()],
        },
        actions,
        allow_delete: false,
        schedule: None,
    }
}

fn rules() -> Vec<Rule> {
    vec![
        rule(
            "leavers",
            10,
            vec![Criterion::Status {
                any_of: vec![LeaverSignal::Deprovisioned, LeaverSignal::Deleted],
            }],
            vec![
                ActionSpec::RemoveLicenceGroups,
                ActionSpec::Deactivate,
                ActionSpec::Rename,
            ],
        ),
        rule(
            "suspended",
            20,
            vec![Criterion::Status {
                any_of: vec![LeaverSignal::Suspended],
            }],
            vec![
                ActionSpec::Notify { grace_days: 14 },
                ActionSpec::RemoveLicenceGroups,
            ],
        ),
        rule(
            "contractors",
            30,
            vec![
                Criterion::EmailDomain {
                    domains: vec!["contractor.example".into()],
                    negate: false,
                },
                Criterion::InactiveDays { days: 30 },
            ],
            vec![
                ActionSpec::RemoveGroups {
                    groups: GroupSelection::All,
                },
                ActionSpec::Deactivate,
            ],
        ),
        rule(
            "idle",
            40,
            vec![
                Criterion::InactiveDays { days: 90 },
                Criterion::MemberOf {
                    groups: vec!["board".into()],
                    how: GroupMatch::None,
                },
            ],
            vec![
                ActionSpec::Notify { grace_days: 14 },
                ActionSpec::RemoveLicenceGroups,
            ],
        ),
        rule(
            "never",
            50,
            vec![Criterion::NeverLoggedIn { days: 30 }],
            vec![ActionSpec::RemoveLicenceGroups, ActionSpec::Deactivate],
        ),
    ]
}
