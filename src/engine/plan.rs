//! The planner (pure: no I/O, no async, no clock of its own): turns person views, rules,
//! source and target states and `now` into a [`Plan`] with a reason on every action, in a
//! deterministic order; and [`explain`]s, rule by rule, why one person is or is not touched.
//! Also the rename scheme `<username>_inactive_yyyyMMdd[_N]` and its inverse.
//!
//! What it guarantees: protected principals (unmanaged accounts, Confluence administrators,
//! link conflicts, accounts an earlier run is still working on, exempt users and groups) get
//! no action; removals only from complete target inventories and from statuses read in
//! complete source snapshots; every rung is skipped when its post-state already holds, so
//! planning again after applying a plan plans nothing new.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use super::activity::{self, Seen};
use crate::config::PlannerConfig;
pub use crate::config::rules_from_config;
use crate::domain::{
    ActionKind, ActionSpec, Cause, Criterion, Explanation, GroupMatch, GroupSelection,
    IdentityStatus, IdentityView, LeaverSignal, LinkState, PersonView, Plan, PlannedAction, Reason,
    Rule, RuleVerdict, SourceKind, SourceState, TargetState,
};

/// Planning settings shared by every rule.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanSettings {
    /// Zone of the date in renamed usernames.
    pub timezone: Tz,
    /// No inactivity criterion holds before idbridge has watched an account this long.
    pub observation_floor_days: u32,
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self {
            timezone: Tz::UTC,
            observation_floor_days: 30,
        }
    }
}

impl PlanSettings {
    /// From the `[planner]` section.
    pub fn from_config(config: &PlannerConfig) -> Result<Self, String> {
        Ok(Self {
            timezone: config.tz()?,
            observation_floor_days: config.observation_floor_days,
        })
    }
}

/// Everything a plan is a function of.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    pub people: &'a [PersonView],
    pub rules: &'a [Rule],
    pub sources: &'a [SourceState],
    pub targets: &'a [TargetState],
    pub settings: &'a PlanSettings,
    pub now: DateTime<Utc>,
}

/// The plan for `input`: every action in execution order with its reason.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let ctx = Ctx::new(input);
    let mut state = State::default();
    let mut plan = Plan {
        notes: ctx.notes(),
        ..Plan::default()
    };
    for i in ctx.order() {
        let p = &input.people[i];
        if p.account.managed && !p.account.admin {
            plan.managed_population += 1;
        }
        if let LinkState::Conflict { reason } = &p.link {
            plan.conflicts.push(format!(
                "{}/{}: {reason}",
                p.account.target, p.account.username
            ));
        }
        ctx.person(p, &mut state, &mut plan.actions, None);
    }
    plan
}

/// Why each account whose username or email is `user` (case-insensitive) is or is not
/// touched, rule by rule; one explanation per matching account, in plan order. Consistent
/// with [`plan`] on the same input (it walks the same plan).
pub fn explain(input: &PlanInput<'_>, user: &str) -> Vec<Explanation> {
    let ctx = Ctx::new(input);
    let mut state = State::default();
    let mut sink = Vec::new();
    let mut out = Vec::new();
    for i in ctx.order() {
        let p = &input.people[i];
        let wanted = eq_ci(&p.account.username, user)
            || p.account.email.as_deref().is_some_and(|e| eq_ci(e, user));
        if wanted {
            let mut e = Explanation {
                target: p.account.target.clone(),
                username: p.account.username.clone(),
                facts: Vec::new(),
                rules: Vec::new(),
            };
            ctx.person(p, &mut state, &mut sink, Some(&mut e));
            out.push(e);
        } else {
            ctx.person(p, &mut state, &mut sink, None);
        }
        sink.clear();
    }
    out
}

const INACTIVE: &str = "_inactive_";

/// `<username>_inactive_<yyyyMMdd>`, or with `_2`, `_3`, … when that is in `taken`
/// (lower-case usernames).
pub fn inactive_name(username: &str, date: NaiveDate, taken: &HashSet<String>) -> String {
    let base = format!("{username}{INACTIVE}{}", date.format("%Y%m%d"));
    let mut candidate = base.clone();
    let mut n = 2u32;
    while taken.contains(&lower(&candidate)) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    candidate
}

/// The username before [`inactive_name`], when `renamed` carries the suffix.
pub fn original_name(renamed: &str) -> Option<&str> {
    let idx = renamed.rfind(INACTIVE)?;
    let base = &renamed[..idx];
    let rest = &renamed[idx + INACTIVE.len()..];
    let (date, counter) = match rest.split_once('_') {
        Some((d, n)) => (d, Some(n)),
        None => (rest, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if base.is_empty()
        || date.len() != 8
        || !digits(date)
        || NaiveDate::parse_from_str(date, "%Y%m%d").is_err()
    {
        return None;
    }
    if let Some(n) = counter
        && !(digits(n) && !n.starts_with('0') && n.parse::<u64>().is_ok_and(|n| n >= 2))
    {
        return None;
    }
    Some(base)
}

// ---------------------------------------------------------------------------------------
// Case-insensitive text, without allocating per comparison.

fn is_ascii_pair(a: &str, b: &str) -> bool {
    a.is_ascii() && b.is_ascii()
}

/// Case-insensitive equality (Unicode lower case).
fn eq_ci(a: &str, b: &str) -> bool {
    if is_ascii_pair(a, b) {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// Case-insensitive order (Unicode lower case).
fn cmp_ci(a: &str, b: &str) -> Ordering {
    if is_ascii_pair(a, b) {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .cmp(b.chars().flat_map(char::to_lowercase))
    }
}

/// `s` in lower case into `buf` (reused, so no allocation once it is large enough).
/// The names a users list or an exemption may give for a person: the account's username and
/// email, and each linked identity's username and email (DC accounts often carry no email).
fn names_of(p: &PersonView) -> impl Iterator<Item = &str> {
    std::iter::once(p.account.username.as_str())
        .chain(p.account.email.as_deref())
        .chain(
            p.identities
                .iter()
                .flat_map(|i| std::iter::once(i.user_name.as_str()).chain(i.email.as_deref())),
        )
}

fn lower_into(buf: &mut String, s: &str) {
    buf.clear();
    if s.is_ascii() {
        buf.push_str(s);
        buf.make_ascii_lowercase();
    } else {
        buf.extend(s.chars().flat_map(char::to_lowercase));
    }
}

fn lower(s: &str) -> String {
    let mut b = String::with_capacity(s.len());
    lower_into(&mut b, s);
    b
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// Whether an action kind takes something away (and so needs complete snapshots).
pub fn is_removal(kind: &ActionKind) -> bool {
    !matches!(
        kind,
        ActionKind::Notify | ActionKind::AddToGroup { .. } | ActionKind::Reactivate
    )
}

// ---------------------------------------------------------------------------------------
// Rules compiled once per plan.

enum Check<'a> {
    Status(&'a [LeaverSignal]),
    Inactive(u32),
    Never(u32),
    Once,
    Member {
        groups: Vec<String>,
        shown: &'a [String],
        how: GroupMatch,
    },
    Directory {
        any_of: Vec<String>,
        shown: &'a [String],
    },
    Domain {
        domains: Vec<String>,
        shown: &'a [String],
        negate: bool,
    },
    CreatedBefore(DateTime<Utc>),
    CreatedAfter(DateTime<Utc>),
    Attribute {
        name: &'a str,
        any_of: Vec<String>,
        shown: &'a [String],
    },
    Listed(HashSet<String>),
    Absent(u32),
}

impl Check<'_> {
    fn is_inactivity(&self) -> bool {
        matches!(self, Check::Inactive(_) | Check::Never(_) | Check::Once)
    }
}

struct Compiled<'a> {
    rule: &'a Rule,
    /// Lower-case target names; empty: every target.
    targets: Vec<String>,
    checks: Vec<Check<'a>>,
    exempt_users: HashSet<String>,
    exempt_groups: HashSet<String>,
    /// Groups the ladder adds (lower case): never removed by the same ladder.
    adds: Vec<String>,
    /// What kind of removal the rule makes, stored on every action's reason.
    cause: Cause,
}

/// The cause of a rule's removals, from its criteria: a leaver signal or absence makes a
/// leaver; else an inactivity criterion makes inactivity; else other.
pub fn cause_of(rule: &Rule) -> Cause {
    let has = |f: fn(&Criterion) -> bool| rule.criteria.iter().any(f);
    if has(|c| matches!(c, Criterion::Status { .. } | Criterion::AbsentSyncs { .. })) {
        Cause::Leaver
    } else if has(|c| {
        matches!(
            c,
            Criterion::InactiveDays { .. }
                | Criterion::NeverLoggedIn { .. }
                | Criterion::LoggedInOnce
        )
    }) {
        Cause::Inactivity
    } else {
        Cause::Other
    }
}

impl<'a> Compiled<'a> {
    fn new(rule: &'a Rule) -> Self {
        let lowers = |v: &[String]| v.iter().map(|s| lower(s.trim())).collect::<Vec<_>>();
        let checks = rule
            .criteria
            .iter()
            .map(|c| match c {
                Criterion::Status { any_of } => Check::Status(any_of),
                Criterion::InactiveDays { days } => Check::Inactive(*days),
                Criterion::NeverLoggedIn { days } => Check::Never(*days),
                Criterion::LoggedInOnce => Check::Once,
                Criterion::MemberOf { groups, how } => Check::Member {
                    groups: lowers(groups),
                    shown: groups,
                    how: *how,
                },
                Criterion::Directory { any_of } => Check::Directory {
                    any_of: lowers(any_of),
                    shown: any_of,
                },
                Criterion::EmailDomain { domains, negate } => Check::Domain {
                    domains: domains
                        .iter()
                        .map(|d| lower(d.trim().trim_start_matches('@')))
                        .collect(),
                    shown: domains,
                    negate: *negate,
                },
                Criterion::CreatedBefore { at } => Check::CreatedBefore(*at),
                Criterion::CreatedAfter { at } => Check::CreatedAfter(*at),
                Criterion::Attribute { name, any_of } => Check::Attribute {
                    name,
                    any_of: lowers(any_of),
                    shown: any_of,
                },
                Criterion::Listed { names } => {
                    Check::Listed(names.iter().map(|n| lower(n.trim())).collect())
                }
                Criterion::AbsentSyncs { syncs } => Check::Absent(*syncs),
            })
            .collect();
        let adds = rule
            .actions
            .iter()
            .filter_map(|a| match a {
                ActionSpec::AddGroups { groups } => Some(groups),
                _ => None,
            })
            .flatten()
            .map(|g| lower(g))
            .collect();
        Self {
            rule,
            targets: lowers(&rule.targets),
            checks,
            exempt_users: rule.exempt.users.iter().map(|u| lower(u.trim())).collect(),
            exempt_groups: rule.exempt.groups.iter().map(|g| lower(g.trim())).collect(),
            adds,
            cause: cause_of(rule),
        }
    }

    fn applies_to(&self, target: &str) -> bool {
        self.targets.is_empty() || self.targets.iter().any(|t| eq_ci(t, target))
    }
}

/// What is known about one person, computed once per person.
struct Facts<'p> {
    identities: &'p [IdentityView],
    last: Option<Seen<'p>>,
    created: Option<DateTime<Utc>>,
    inactive_since: DateTime<Utc>,
    inactive_days: i64,
    observed_days: i64,
    observed_ok: bool,
}

impl<'p> Facts<'p> {
    fn of(p: &'p PersonView, now: DateTime<Utc>, floor: u32) -> Self {
        let identities: &[IdentityView] = match p.link {
            LinkState::Linked { .. } => &p.identities,
            _ => &[],
        };
        let last = activity::last_activity(p, now);
        let created = activity::created_at(p, now);
        let inactive_since = activity::inactive_since(p, now);
        let observed_days = activity::days_between(activity::observed_since(p), now);
        Self {
            identities,
            last,
            created,
            inactive_since,
            inactive_days: activity::days_between(inactive_since, now),
            observed_days,
            observed_ok: observed_days >= i64::from(floor),
        }
    }

    fn groups<'s>(&'s self, p: &'s PersonView) -> impl Iterator<Item = &'s str> + 's {
        p.account
            .groups
            .iter()
            .chain(self.identities.iter().flat_map(|i| i.groups.iter()))
            .map(String::as_str)
    }

    fn email<'s>(&'s self, p: &'s PersonView) -> Option<&'s str> {
        p.account
            .email
            .as_deref()
            .or_else(|| self.identities.first().and_then(|i| i.email.as_deref()))
            .filter(|e| e.contains('@'))
    }
}

fn signal_matches(signals: &[LeaverSignal], i: &IdentityView) -> Option<LeaverSignal> {
    signals.iter().copied().find(|s| match s {
        LeaverSignal::Deprovisioned => i.status == IdentityStatus::Deprovisioned,
        LeaverSignal::Suspended => i.status == IdentityStatus::Suspended,
        LeaverSignal::Deleted => i.status == IdentityStatus::Deleted,
        LeaverSignal::ScimInactive => {
            i.source_kind == SourceKind::Scim
                && !matches!(
                    i.status,
                    IdentityStatus::Active | IdentityStatus::Staged | IdentityStatus::Unknown
                )
        }
    })
}

fn signal_name(s: LeaverSignal) -> &'static str {
    match s {
        LeaverSignal::Deprovisioned => "deprovisioned",
        LeaverSignal::Suspended => "suspended",
        LeaverSignal::Deleted => "deleted",
        LeaverSignal::ScimInactive => "SCIM active=false",
    }
}

/// The mutable part of a walk: rename reservations and a scratch buffer.
#[derive(Default)]
struct State {
    /// Per target (lower-case name): lower-case usernames, including names planned so far.
    taken: HashMap<String, HashSet<String>>,
    scratch: String,
}

struct Ctx<'a> {
    input: &'a PlanInput<'a>,
    rules: Vec<Compiled<'a>>,
    targets: HashMap<&'a str, &'a TargetState>,
    /// Every polled source's latest snapshot is complete (and there is one).
    polled_complete: bool,
    date: NaiveDate,
}

/// One rung of a ladder, expanded against the person's current (virtual) state.
struct Rung<'a> {
    spec: &'a ActionSpec,
    kinds: Vec<ActionKind>,
    /// Why the rung does nothing, when it does nothing.
    note: Option<String>,
}

impl<'a> Ctx<'a> {
    fn new(input: &'a PlanInput<'a>) -> Self {
        let mut rules: Vec<Compiled<'a>> = input.rules.iter().map(Compiled::new).collect();
        rules.sort_by(|a, b| (a.rule.priority, &a.rule.name).cmp(&(b.rule.priority, &b.rule.name)));
        let polled: Vec<&SourceState> = input
            .sources
            .iter()
            .filter(|s| s.kind != SourceKind::Scim)
            .collect();
        Self {
            input,
            rules,
            targets: input.targets.iter().map(|t| (t.name.as_str(), t)).collect(),
            polled_complete: !polled.is_empty() && polled.iter().all(|s| s.complete),
            date: input
                .now
                .with_timezone(&input.settings.timezone)
                .date_naive(),
        }
    }

    /// Indices of the people in plan order: (target, lower-case username, key, id).
    fn order(&self) -> Vec<usize> {
        let people = self.input.people;
        let mut idx: Vec<usize> = (0..people.len()).collect();
        idx.sort_unstable_by(|&a, &b| {
            let (a, b) = (&people[a].account, &people[b].account);
            a.target
                .cmp(&b.target)
                .then_with(|| cmp_ci(&a.username, &b.username))
                .then_with(|| a.key.cmp(&b.key))
                .then_with(|| a.id.cmp(&b.id))
        });
        idx
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let mut targets: Vec<&TargetState> = self.input.targets.iter().collect();
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        for t in targets.iter().filter(|t| !t.complete) {
            notes.push(format!(
                "target {} inventory incomplete ({}): no removals on it",
                t.name,
                t.incomplete_reason.as_deref().unwrap_or("no reason given")
            ));
        }
        let mut sources: Vec<&SourceState> = self.input.sources.iter().collect();
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        for s in sources.iter().filter(|s| !s.complete) {
            notes.push(format!(
                "source {} snapshot incomplete ({}): no removals from its statuses",
                s.name,
                s.incomplete_reason.as_deref().unwrap_or("no reason given")
            ));
        }
        let uses_absent = self
            .rules
            .iter()
            .any(|r| r.rule.enabled && r.checks.iter().any(|c| matches!(c, Check::Absent(_))));
        if uses_absent && !self.polled_complete {
            notes.push(
                "absent_syncs holds for nobody: not every polled source's latest snapshot is \
                 complete"
                    .into(),
            );
        }
        notes
    }

    fn protection(&self, p: &PersonView) -> Option<String> {
        if let LinkState::Conflict { reason } = &p.link {
            Some(format!("link conflict ({reason}): never acted on"))
        } else if !p.account.managed {
            Some(format!(
                "not managed by idbridge ({})",
                p.account
                    .unmanaged_reason
                    .as_deref()
                    .unwrap_or("out of scope")
            ))
        } else if p.account.admin {
            Some("Confluence administrator: protected".into())
        } else if p.pending_actions {
            Some("an earlier run is still working on this account".into())
        } else if p.changed_since_inventory {
            Some(
                "an earlier run changed this account after the latest complete inventory \
                 began: nothing is planned for it until the next inventory reads it"
                    .into(),
            )
        } else {
            None
        }
    }

    /// Plans one person into `out`; with `explain`, records why, rule by rule.
    fn person(
        &self,
        p: &'a PersonView,
        state: &mut State,
        out: &mut Vec<PlannedAction>,
        mut explain: Option<&mut Explanation>,
    ) {
        let protection = if explain.is_some() {
            self.protection(p)
        } else if is_protected(p) {
            return;
        } else {
            None
        };
        let now = self.input.now;
        let floor = self.input.settings.observation_floor_days;
        let facts = Facts::of(p, now, floor);
        let target = self.targets.get(p.account.target.as_str()).copied();
        if let Some(e) = explain.as_deref_mut() {
            self.facts(p, &facts, target, protection.as_deref(), &mut e.facts);
        }
        let mut owner: Option<&str> = None;
        for rule in &self.rules {
            let name = &rule.rule.name;
            if !rule.rule.enabled {
                if let Some(e) = explain.as_deref_mut() {
                    e.rules
                        .push(verdict(name, false, vec!["rule disabled".into()]));
                }
                continue;
            }
            if !rule.applies_to(&p.account.target) {
                if let Some(e) = explain.as_deref_mut() {
                    e.rules.push(verdict(
                        name,
                        false,
                        vec![format!(
                            "rule applies to targets {} only",
                            list(&rule.rule.targets)
                        )],
                    ));
                }
                continue;
            }
            let mut untrusted: Option<&str> = None;
            let mut criteria = Vec::new();
            let selected = if let Some(_e) = explain.as_deref() {
                let mut all = true;
                for c in &rule.checks {
                    let mut why = String::new();
                    let ok = self.holds(c, p, &facts, state, &mut untrusted, Some(&mut why));
                    all &= ok;
                    criteria.push((why, ok));
                }
                all
            } else {
                rule.checks
                    .iter()
                    .all(|c| self.holds(c, p, &facts, state, &mut untrusted, None))
            };
            let mut held = Vec::new();
            let mut kinds = Vec::new();
            if let (false, Some(reason)) = (selected, &protection) {
                held.push(reason.clone());
            }
            if selected {
                if let Some(reason) = &protection {
                    held.push(reason.clone());
                } else if let Some(why) = self.exempt(rule, p, &facts, state) {
                    held.push(why);
                } else if let Some(first) = owner {
                    held.push(format!("shadowed by rule {first}"));
                } else {
                    owner = Some(name);
                    let blocked = match target {
                        None => Some(format!(
                            "target {} has no inventory: no removals",
                            p.account.target
                        )),
                        Some(t) if !t.complete => Some(format!(
                            "target {} inventory incomplete ({}): no removals",
                            t.name,
                            t.incomplete_reason.as_deref().unwrap_or("no reason given")
                        )),
                        _ => untrusted.map(|s| {
                            format!(
                                "status from source {s}, whose latest snapshot is incomplete: \
                                 no removals"
                            )
                        }),
                    };
                    kinds = self.ladder(
                        rule,
                        p,
                        target,
                        blocked.as_deref(),
                        state,
                        explain.is_some().then_some(&mut held),
                    );
                    if !kinds.is_empty() {
                        let because = if explain.is_some() {
                            criteria.iter().map(|(w, _)| w.clone()).collect()
                        } else {
                            let mut u = None;
                            rule.checks
                                .iter()
                                .map(|c| {
                                    let mut why = String::new();
                                    self.holds(c, p, &facts, state, &mut u, Some(&mut why));
                                    why
                                })
                                .collect()
                        };
                        let reason = Reason {
                            rule: name.clone(),
                            because,
                            cause: rule.cause,
                        };
                        for kind in &kinds {
                            out.push(PlannedAction {
                                account_id: p.account.id,
                                target_id: p.account.target_id,
                                target: p.account.target.clone(),
                                account_key: p.account.key.clone(),
                                username: p.account.username.clone(),
                                identity_id: facts.identities.first().map(|i| i.id),
                                kind: kind.clone(),
                                reason: reason.clone(),
                            });
                        }
                    }
                }
            }
            if let Some(e) = explain.as_deref_mut() {
                e.rules.push(RuleVerdict {
                    rule: name.clone(),
                    selected,
                    criteria,
                    held_back: held,
                    actions: kinds,
                });
            }
        }
    }

    fn facts(
        &self,
        p: &PersonView,
        f: &Facts<'_>,
        target: Option<&TargetState>,
        protection: Option<&str>,
        out: &mut Vec<String>,
    ) {
        let now = self.input.now;
        let a = &p.account;
        out.push(match &p.link {
            LinkState::Linked { .. } => format!(
                "linked to {}",
                p.identities
                    .iter()
                    .map(|i| format!("{} {} ({})", i.source, i.external_id, i.status))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            LinkState::Unlinked => "not linked to any identity".into(),
            LinkState::Conflict { reason } => format!("link conflict: {reason}"),
        });
        out.push(format!(
            "account {} on {}: {}, {}",
            a.key,
            a.target,
            if a.active { "active" } else { "inactive" },
            if a.licensed { "licensed" } else { "unlicensed" }
        ));
        if let Some(why) = protection {
            out.push(format!("protected: {why}"));
        }
        out.push(match f.last {
            Some(s) => format!(
                "last activity {} from {} ({} days ago)",
                day(s.at),
                s.from,
                activity::days_between(s.at, now)
            ),
            None => "no activity known".into(),
        });
        out.push(match f.created {
            Some(c) => format!("created {}", day(c)),
            None => "creation unknown".into(),
        });
        out.push(format!(
            "inactive {} days (since {})",
            f.inactive_days,
            day(f.inactive_since)
        ));
        out.push(format!(
            "observed since {} ({} days; floor {})",
            day(activity::observed_since(p)),
            f.observed_days,
            self.input.settings.observation_floor_days
        ));
        match target {
            None => out.push(format!("target {} has no inventory state", a.target)),
            Some(t) if !t.complete => out.push(format!(
                "target {} inventory incomplete: no removals",
                t.name
            )),
            Some(_) => {}
        }
        if p.absent_syncs > 0 {
            out.push(format!(
                "absent from {} consecutive complete syncs",
                p.absent_syncs
            ));
        }
        for (rule, at) in &p.notified {
            out.push(format!("notified by rule {rule} on {}", day(*at)));
        }
    }

    /// Why the rule's exemptions spare the person, if they do.
    fn exempt(
        &self,
        rule: &Compiled<'_>,
        p: &PersonView,
        f: &Facts<'_>,
        state: &mut State,
    ) -> Option<String> {
        if !rule.exempt_users.is_empty() {
            for name in names_of(p) {
                lower_into(&mut state.scratch, name);
                if rule.exempt_users.contains(&state.scratch) {
                    return Some(format!("exempt user {name}"));
                }
            }
        }
        if !rule.exempt_groups.is_empty() {
            for g in f.groups(p) {
                lower_into(&mut state.scratch, g);
                if rule.exempt_groups.contains(&state.scratch) {
                    return Some(format!("exempt group {g}"));
                }
            }
        }
        None
    }

    /// Whether one criterion holds; with `why`, says so with the values seen.
    #[allow(clippy::too_many_arguments)]
    fn holds(
        &self,
        c: &Check<'_>,
        p: &'a PersonView,
        f: &Facts<'a>,
        state: &mut State,
        untrusted: &mut Option<&'a str>,
        why: Option<&mut String>,
    ) -> bool {
        let now = self.input.now;
        let floor = self.input.settings.observation_floor_days;
        if c.is_inactivity() && !f.observed_ok {
            if let Some(w) = why {
                let _ = write!(
                    w,
                    "observed only {} days < observation floor {floor} days (since {}): no \
                     inactivity criterion holds yet",
                    f.observed_days,
                    day(activity::observed_since(p))
                );
            }
            return false;
        }
        match c {
            Check::Status(signals) => {
                let mut hit: Option<(&IdentityView, LeaverSignal)> = None;
                for i in f.identities {
                    if let Some(s) = signal_matches(signals, i) {
                        if i.from_complete_snapshot {
                            hit = Some((i, s));
                            break;
                        }
                        hit.get_or_insert((i, s));
                    }
                }
                if let Some((i, _)) = hit
                    && !i.from_complete_snapshot
                {
                    *untrusted = Some(&i.source);
                }
                if let Some(w) = why {
                    let wanted: Vec<&str> = signals.iter().map(|s| signal_name(*s)).collect();
                    match hit {
                        Some((i, s)) => {
                            let _ = write!(
                                w,
                                "status {} in {} ({}, since {})",
                                signal_name(s),
                                i.source,
                                i.raw_status.as_deref().unwrap_or(i.status.as_str()),
                                day(i.status_changed_at)
                            );
                            if !i.from_complete_snapshot {
                                let _ = write!(w, " from an incomplete snapshot");
                            }
                        }
                        None if f.identities.is_empty() => {
                            let _ = write!(
                                w,
                                "status {}: no linked identity to say so",
                                wanted.join(" or ")
                            );
                        }
                        None => {
                            let seen: Vec<String> = f
                                .identities
                                .iter()
                                .map(|i| format!("{} in {}", i.status, i.source))
                                .collect();
                            let _ = write!(
                                w,
                                "status {}: not so ({})",
                                wanted.join(" or "),
                                seen.join(", ")
                            );
                        }
                    }
                }
                hit.is_some()
            }
            Check::Inactive(days) => {
                let ok = f.inactive_days >= i64::from(*days);
                if let Some(w) = why {
                    let _ = write!(
                        w,
                        "inactive {} days {} {days} ({})",
                        f.inactive_days,
                        if ok { "≥" } else { "<" },
                        self.since_text(p, f)
                    );
                }
                ok
            }
            Check::Never(days) => {
                let age = f.created.map(|c| activity::days_between(c, now));
                let ok = f.last.is_none() && age.is_some_and(|a| a >= i64::from(*days));
                if let Some(w) = why {
                    match (f.last, f.created, age) {
                        (Some(s), _, _) => {
                            let _ = write!(
                                w,
                                "never logged in: no, last activity {} from {}",
                                day(s.at),
                                s.from
                            );
                        }
                        (None, Some(c), Some(a)) => {
                            let _ = write!(
                                w,
                                "never logged in, created {} days ago {} {days} ({})",
                                a,
                                if ok { "≥" } else { "<" },
                                day(c)
                            );
                        }
                        _ => {
                            let _ =
                                write!(w, "never logged in, but creation unknown: does not hold");
                        }
                    }
                }
                ok
            }
            Check::Once => {
                let n = activity::sign_in_events(p);
                if let Some(w) = why {
                    let _ = write!(w, "{n} successful sign-ins known (once: {})", n == 1);
                }
                n == 1
            }
            Check::Member { groups, shown, how } => {
                let found = |g: &String| f.groups(p).any(|m| eq_ci(m, g));
                let ok = match how {
                    GroupMatch::Any => groups.iter().any(found),
                    GroupMatch::All => groups.iter().all(found),
                    GroupMatch::None => !groups.iter().any(found),
                };
                if let Some(w) = why {
                    let member: Vec<&str> = groups
                        .iter()
                        .zip(shown.iter())
                        .filter(|(g, _)| found(g))
                        .map(|(_, s)| s.as_str())
                        .collect();
                    let how = match how {
                        GroupMatch::Any => "any",
                        GroupMatch::All => "all",
                        GroupMatch::None => "none",
                    };
                    let _ = write!(
                        w,
                        "member of {how} of [{}]: {} (in [{}])",
                        list(shown),
                        if ok { "yes" } else { "no" },
                        member.join(", ")
                    );
                }
                ok
            }
            Check::Directory { any_of, shown } => {
                let dir = p.account.directory.as_deref();
                let ok = dir.is_some_and(|d| any_of.iter().any(|x| eq_ci(d, x)));
                if let Some(w) = why {
                    let _ = write!(
                        w,
                        "directory {} {} [{}]",
                        dir.unwrap_or("unknown"),
                        if ok { "in" } else { "not in" },
                        list(shown)
                    );
                }
                ok
            }
            Check::Domain {
                domains,
                shown,
                negate,
            } => {
                let domain = f.email(p).and_then(|e| e.rsplit_once('@')).map(|(_, d)| d);
                let ok = match domain {
                    None => false,
                    Some(d) => domains.iter().any(|x| eq_ci(d, x)) != *negate,
                };
                if let Some(w) = why {
                    match domain {
                        None => {
                            let _ = write!(w, "email domain unknown (no email): does not hold");
                        }
                        Some(d) => {
                            let inside = ok != *negate;
                            let _ = write!(
                                w,
                                "email domain {d} {} [{}]",
                                if inside { "in" } else { "not in" },
                                list(shown)
                            );
                        }
                    }
                }
                ok
            }
            Check::CreatedBefore(at) | Check::CreatedAfter(at) => {
                let before = matches!(c, Check::CreatedBefore(_));
                let ok = f
                    .created
                    .is_some_and(|c| if before { c < *at } else { c > *at });
                if let Some(w) = why {
                    let word = if before { "before" } else { "after" };
                    match f.created {
                        Some(c) => {
                            let _ = write!(
                                w,
                                "created {} {}{word} {}",
                                day(c),
                                if ok { "" } else { "not " },
                                day(*at)
                            );
                        }
                        None => {
                            let _ = write!(w, "created {word} {}: creation unknown", day(*at));
                        }
                    }
                }
                ok
            }
            Check::Attribute {
                name,
                any_of,
                shown,
            } => {
                let mut hit: Option<(&str, String)> = None;
                'ids: for i in f.identities {
                    let Some(v) = attribute(&i.attributes, name) else {
                        continue;
                    };
                    let check = |s: &str| any_of.iter().any(|x| eq_ci(s, x));
                    let value_hit = match v {
                        serde_json::Value::Array(items) => {
                            items.iter().filter_map(scalar_text).find(|s| check(s))
                        }
                        other => scalar_text(other).filter(|s| check(s)),
                    };
                    if let Some(s) = value_hit {
                        hit = Some((&i.source, s.into_owned()));
                        break 'ids;
                    }
                }
                if let Some(w) = why {
                    match &hit {
                        Some((src, v)) => {
                            let _ = write!(w, "attribute {name} = {v} in {src}");
                        }
                        None => {
                            let _ = write!(w, "attribute {name} not one of [{}]", list(shown));
                        }
                    }
                }
                hit.is_some()
            }
            Check::Listed(names) => {
                let mut on = None;
                for n in names_of(p) {
                    lower_into(&mut state.scratch, n);
                    if names.contains(&state.scratch) {
                        on = Some(n);
                        break;
                    }
                }
                if let Some(w) = why {
                    match on {
                        Some(n) => {
                            let _ = write!(w, "listed ({n})");
                        }
                        None => {
                            let _ = write!(w, "not listed ({} names)", names.len());
                        }
                    }
                }
                on.is_some()
            }
            Check::Absent(syncs) => {
                let ok = self.polled_complete && p.absent_syncs >= *syncs;
                if let Some(w) = why {
                    if self.polled_complete {
                        let _ = write!(
                            w,
                            "absent from {} complete syncs {} {syncs}",
                            p.absent_syncs,
                            if ok { "≥" } else { "<" }
                        );
                    } else {
                        let _ = write!(
                            w,
                            "absent for {syncs} syncs: not every polled source's latest \
                             snapshot is complete"
                        );
                    }
                }
                ok
            }
        }
    }

    fn since_text(&self, p: &PersonView, f: &Facts<'_>) -> String {
        match (f.last, f.created) {
            (Some(s), _) if f.created.is_none_or(|c| s.at >= c) => {
                format!("last activity {} from {}", day(s.at), s.from)
            }
            (_, Some(c)) => format!("created {}, no later activity", day(c)),
            _ => format!(
                "no activity or creation known; first seen {}",
                day(activity::observed_since(p))
            ),
        }
    }

    /// The ladder's actions for a person selected by `rule` (the first selecting rule).
    fn ladder(
        &self,
        rule: &Compiled<'_>,
        p: &PersonView,
        target: Option<&TargetState>,
        blocked: Option<&str>,
        state: &mut State,
        mut held: Option<&mut Vec<String>>,
    ) -> Vec<ActionKind> {
        let rungs = self.expand(rule, p, target, held.is_some());
        let mut out = Vec::new();
        let mut note = |s: String| {
            if let Some(h) = held.as_deref_mut() {
                h.push(s);
            }
        };
        for (i, rung) in rungs.iter().enumerate() {
            if let ActionSpec::Notify { grace_days } = rung.spec {
                if rungs[i + 1..].iter().all(|r| r.kinds.is_empty()) {
                    note("notify: nothing left to do after the notice".into());
                    break;
                }
                match p.notified.get(&rule.rule.name) {
                    None => {
                        out.push(ActionKind::Notify);
                        note("later actions wait for the notice and its grace period".into());
                        break;
                    }
                    Some(at) => {
                        let until = *at + Duration::days(i64::from(*grace_days));
                        if self.input.now < until {
                            note(format!(
                                "notified {}; grace period until {}",
                                day(*at),
                                day(until)
                            ));
                            break;
                        }
                    }
                }
                continue;
            }
            if let Some(n) = &rung.note {
                note(n.clone());
            }
            if rung.kinds.is_empty() {
                continue;
            }
            if let Some(b) = blocked
                && rung.kinds.iter().any(is_removal)
            {
                note(b.to_owned());
                break;
            }
            for kind in &rung.kinds {
                match kind {
                    ActionKind::Rename { from, .. } => {
                        let key = lower(&p.account.target);
                        let taken = state.taken.entry(key).or_insert_with(|| {
                            self.input
                                .people
                                .iter()
                                .filter(|q| q.account.target == p.account.target)
                                .map(|q| lower(&q.account.username))
                                .collect()
                        });
                        let to = inactive_name(from, self.date, taken);
                        taken.insert(lower(&to));
                        out.push(ActionKind::Rename {
                            from: from.clone(),
                            to,
                        });
                    }
                    other => out.push(other.clone()),
                }
            }
        }
        out
    }

    /// Each rung's actions against the account as the earlier rungs leave it; a rung whose
    /// post-state holds expands to nothing.
    fn expand<'r>(
        &self,
        rule: &Compiled<'r>,
        p: &PersonView,
        target: Option<&TargetState>,
        explaining: bool,
    ) -> Vec<Rung<'r>> {
        let a = &p.account;
        let licence =
            |g: &str| target.is_some_and(|t| t.licence_groups.iter().any(|l| eq_ci(l, g)));
        let added_by_rule = |g: &str| rule.adds.iter().any(|x| eq_ci(x, g));
        let mut removed: Vec<&str> = Vec::new();
        let mut added: Vec<&str> = Vec::new();
        // The account as the earlier rungs leave it (a ladder may repeat a rung).
        let mut active = a.active;
        let mut renamed = original_name(&a.username).is_some();
        let mut current = a.directory.as_deref();
        let mut deleted = false;
        let mut rungs = Vec::with_capacity(rule.rule.actions.len());
        let say = |s: String| explaining.then_some(s);
        for spec in &rule.rule.actions {
            let mut kinds = Vec::new();
            let mut note = None;
            match spec {
                ActionSpec::Notify { .. } => {}
                ActionSpec::RemoveLicenceGroups => {
                    for g in &a.groups {
                        if licence(g) && !removed.iter().any(|r| eq_ci(r, g)) {
                            removed.push(g);
                            kinds.push(ActionKind::RemoveFromGroup {
                                group: g.clone(),
                                licence: true,
                            });
                        }
                    }
                    if kinds.is_empty() {
                        note = say("remove_licence_groups: in no licence group".into());
                    }
                }
                ActionSpec::Deactivate => {
                    if active {
                        active = false;
                        kinds.push(ActionKind::Deactivate);
                    } else {
                        note = say("deactivate: already inactive".into());
                    }
                }
                ActionSpec::Rename => {
                    if renamed {
                        note = say(format!(
                            "rename: {} already carries an _inactive_ suffix",
                            a.username
                        ));
                    } else if let Some(why) = target.and_then(|t| t.cannot_rename.as_deref()) {
                        note = Some(format!("rename: not possible on this target ({why})"));
                    } else {
                        renamed = true;
                        kinds.push(ActionKind::Rename {
                            from: a.username.clone(),
                            to: String::new(),
                        });
                    }
                }
                ActionSpec::RemoveGroups { groups } => {
                    let wanted = |g: &str| match groups {
                        GroupSelection::All => true,
                        GroupSelection::Named(names) => names.iter().any(|n| eq_ci(n, g)),
                    };
                    for g in &a.groups {
                        if wanted(g) && !added_by_rule(g) && !removed.iter().any(|r| eq_ci(r, g)) {
                            removed.push(g);
                            kinds.push(ActionKind::RemoveFromGroup {
                                group: g.clone(),
                                licence: licence(g),
                            });
                        }
                    }
                    if kinds.is_empty() {
                        note = say("remove_groups: none of those groups left".into());
                    }
                }
                ActionSpec::AddGroups { groups } => {
                    for g in groups {
                        let has = a.groups.iter().any(|m| eq_ci(m, g))
                            && !removed.iter().any(|r| eq_ci(r, g));
                        if !has && !added.iter().any(|x| eq_ci(x, g)) {
                            added.push(g);
                            kinds.push(ActionKind::AddToGroup { group: g.clone() });
                        }
                    }
                    if kinds.is_empty() {
                        note = say("add_groups: already a member".into());
                    }
                }
                ActionSpec::ChangeDirectory { directory } => {
                    if let Some(why) = target.and_then(|t| t.cannot_change_directory.as_deref()) {
                        note = Some(format!(
                            "change_directory: not possible on this target ({why})"
                        ));
                    } else if current.is_some_and(|d| eq_ci(d, directory)) {
                        note = say(format!("change_directory: already in {directory}"));
                    } else {
                        kinds.push(ActionKind::ChangeDirectory {
                            from: current.map(str::to_owned),
                            to: directory.clone(),
                        });
                        current = Some(directory);
                    }
                }
                ActionSpec::Delete => {
                    if !rule.rule.allow_delete {
                        note = Some("delete: the rule does not set allow_delete".into());
                    } else if let Some(why) = target.and_then(|t| t.cannot_delete.as_deref()) {
                        note = Some(format!("delete: not possible on this target ({why})"));
                    } else if !deleted {
                        deleted = true;
                        kinds.push(ActionKind::Delete);
                    }
                }
            }
            rungs.push(Rung { spec, kinds, note });
        }
        rungs
    }
}

/// Whether [`Ctx::protection`] has a reason, without building it.
fn is_protected(p: &PersonView) -> bool {
    matches!(p.link, LinkState::Conflict { .. })
        || !p.account.managed
        || p.account.admin
        || p.pending_actions
        || p.changed_since_inventory
}

fn verdict(rule: &str, selected: bool, held_back: Vec<String>) -> RuleVerdict {
    RuleVerdict {
        rule: rule.to_owned(),
        selected,
        criteria: Vec::new(),
        held_back,
        actions: Vec::new(),
    }
}

/// A custom attribute by name (exact, else case-insensitive).
/// A custom attribute: polled sources keep the configured ones under `custom`; SCIM and
/// older records keep them at the top level.
fn attribute<'v>(attrs: &'v serde_json::Value, name: &str) -> Option<&'v serde_json::Value> {
    let find = |obj: &'v serde_json::Map<String, serde_json::Value>| {
        obj.get(name)
            .or_else(|| obj.iter().find(|(k, _)| eq_ci(k, name)).map(|(_, v)| v))
    };
    let obj = attrs.as_object()?;
    obj.get("custom")
        .and_then(serde_json::Value::as_object)
        .and_then(find)
        .or_else(|| find(obj))
}

fn scalar_text(v: &serde_json::Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        serde_json::Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        serde_json::Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        serde_json::Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        _ => None,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod plan_tests;
