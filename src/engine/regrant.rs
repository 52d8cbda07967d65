//! Licence back on login ("regrant"): a person whose licence or account idbridge removed
//! for inactivity, who then signs in successfully while active in their IdP, gets back
//! exactly what the removal took — the groups, the active flag and the username recorded in
//! the pre-image of the removing run's first action on the account — and nothing else.
//!
//! [`plan_regrants`] is pure: person views, open removal episodes, target states and seat
//! counts, and `now` in; actions, alerts and notes out. [`regrant`] ties one pass together:
//! links, loads, plans, stores the actions as a `regrant` run, carries it out and raises the
//! alerts (each once per signal).
//!
//! What counts as a sign-in after the removal: the person's effective last activity
//! ([`activity::last_activity`]: the IdP's last login, the IdP's sign-in log for the
//! Confluence app, Confluence's own last login) later than the removal, or a SCIM identity
//! whose status became `active` after it.
//!
//! Active in the IdP means linked (no conflict) to at least one identity and every linked
//! identity `active`. Suspended, deprovisioned, deleted, staged and unknown statuses
//! (Okta's `LOCKED_OUT` and `PASSWORD_EXPIRED` read as `active`, as the source maps them:
//! the person still holds the account) all mean "not active": such a person is not
//! regranted, and their sign-in raises the same security alert as a leaver's.
//!
//! Never: an action for a leaver episode (a rule naming a status or absence), a group the
//! pre-image does not hold, or a removal to make room for someone. A regrant that needs a
//! seat the target does not have waits (alert `no_free_seat`), most recent sign-ins first.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::activity;
use crate::config::Config;
use crate::domain::{
    ActionKind, Cause, IdentityStatus, LinkState, PersonView, PlannedAction, Reason, RuleMode,
    RunId, RunStatus, SourceKind, TargetId, TargetState,
};
use crate::engine::execute::ExecReport;
use crate::engine::link;
use crate::engine::run::{self, RunError};
use crate::engine::safety;
use crate::store::{AlertKind, NewRun, RemovalEpisode, RunKind, Store, StoreError};
use crate::targets::LicenceUsage;

/// The rule name regrant actions carry, and the actor of their audit entries' alerts.
pub const REGRANT: &str = "regrant";

/// Seats of one target, from its latest inventory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Seats {
    /// Seats the licence allows; `None`: unknown or unlimited.
    pub max: Option<u64>,
    /// Seats in use; `None`: unknown.
    pub in_use: Option<u64>,
}

impl Seats {
    /// From an inventory's licence figures: the instance's maximum, and the larger of what
    /// it reports in use and what the inventory counted.
    pub fn from_usage(u: &LicenceUsage) -> Self {
        Self {
            max: u.max_users,
            in_use: Some(u.reported_in_use.unwrap_or(0).max(u.licensed)),
        }
    }

    /// Free seats, when both figures are known.
    pub fn free(&self) -> Option<u64> {
        Some(self.max?.saturating_sub(self.in_use?))
    }
}

/// Everything a regrant plan is a function of.
#[derive(Clone, Copy, Debug)]
pub struct RegrantInput<'a> {
    pub people: &'a [PersonView],
    pub episodes: &'a [RemovalEpisode],
    pub targets: &'a [TargetState],
    /// Per target id; a target missing here has unknown seats.
    pub seats: &'a BTreeMap<TargetId, Seats>,
    pub now: DateTime<Utc>,
}

/// A successful sign-in seen after a removal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Signal {
    pub at: DateTime<Utc>,
    /// Where it was seen, e.g. `okta`, `okta sign-in log`, `confluence`,
    /// `idp (SCIM active=true)`.
    pub from: String,
}

/// Something a person must look at.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub account_id: crate::domain::AccountId,
    pub target: String,
    pub username: String,
    pub signal: Signal,
    /// The removing run and its rules.
    pub run: RunId,
    pub rules: Vec<String>,
    pub cause: Cause,
    /// In words.
    pub why: String,
}

impl Alert {
    /// The detail stored with the alert and its audit entry.
    pub fn detail(&self) -> serde_json::Value {
        json!({
            "target": self.target,
            "username": self.username,
            "signal": self.signal.from,
            "signal_at": self.signal.at,
            "removed_by_run": self.run.to_string(),
            "rules": self.rules,
            "cause": self.cause.as_str(),
            "why": self.why,
        })
    }
}

/// The regrant plan: actions in execution order, alerts, and why some people with a
/// sign-in get nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RegrantPlan {
    pub actions: Vec<PlannedAction>,
    pub alerts: Vec<Alert>,
    pub notes: Vec<String>,
}

/// The latest successful sign-in after `after`, if any.
pub fn signal_after(p: &PersonView, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<Signal> {
    let mut best = activity::last_activity(p, now)
        .filter(|s| s.at > after)
        .map(|s| Signal {
            at: s.at,
            from: s.from.to_string(),
        });
    if let LinkState::Linked { .. } = p.link {
        for i in &p.identities {
            let t = i.status_changed_at;
            if i.source_kind == SourceKind::Scim
                && i.status == IdentityStatus::Active
                && t > after
                && activity::plausible(t, now)
                && best.as_ref().is_none_or(|b| t > b.at)
            {
                best = Some(Signal {
                    at: t,
                    from: format!("{} (SCIM active=true)", i.source),
                });
            }
        }
    }
    best
}

/// Why the person is not active in their IdP, or `None` when they are.
pub fn not_active_in_idp(p: &PersonView) -> Option<String> {
    match &p.link {
        LinkState::Conflict { reason } => Some(format!("link conflict ({reason})")),
        LinkState::Unlinked => Some("linked to no identity".into()),
        LinkState::Linked { .. } if p.identities.is_empty() => Some("linked to no identity".into()),
        LinkState::Linked { .. } => p
            .identities
            .iter()
            .find(|i| i.status != IdentityStatus::Active)
            .map(|i| {
                format!(
                    "{} in {}{}",
                    i.status.as_str(),
                    i.source,
                    i.raw_status
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )
            }),
    }
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// One person who is due a regrant, before seats are weighed.
struct Due<'a> {
    person: &'a PersonView,
    signal: Signal,
    episode: &'a RemovalEpisode,
    kinds: Vec<ActionKind>,
    needs_seat: bool,
}

/// The regrant plan for `input` (pure).
pub fn plan_regrants(input: &RegrantInput<'_>) -> RegrantPlan {
    let now = input.now;
    let episodes: HashMap<_, &RemovalEpisode> =
        input.episodes.iter().map(|e| (e.account_id, e)).collect();
    let targets: HashMap<&str, &TargetState> =
        input.targets.iter().map(|t| (t.name.as_str(), t)).collect();
    // Usernames in use per target (lower case), for renames back.
    let mut taken: HashMap<&str, HashSet<String>> = HashMap::new();
    for p in input.people {
        taken
            .entry(p.account.target.as_str())
            .or_default()
            .insert(p.account.username.to_lowercase());
    }
    let mut order: Vec<&PersonView> = input.people.iter().collect();
    order.sort_by(|a, b| {
        (
            &a.account.target,
            a.account.username.to_lowercase(),
            &a.account.key,
        )
            .cmp(&(
                &b.account.target,
                b.account.username.to_lowercase(),
                &b.account.key,
            ))
    });
    let mut plan = RegrantPlan::default();
    let mut due: Vec<Due<'_>> = Vec::new();
    for p in order {
        let Some(e) = episodes.get(&p.account.id).copied() else {
            continue;
        };
        let Some(signal) = signal_after(p, e.removed_at, now) else {
            continue;
        };
        let who = format!("{}/{}", p.account.target, p.account.username);
        let alert = |kind, why: String| Alert {
            kind,
            account_id: p.account.id,
            target: p.account.target.clone(),
            username: p.account.username.clone(),
            signal: signal.clone(),
            run: e.run_id,
            rules: e.rules.clone(),
            cause: e.cause(),
            why,
        };
        if e.cause() == Cause::Leaver {
            plan.alerts.push(alert(
                AlertKind::LeaverSignIn,
                format!(
                    "removed as a leaver by rule {} and signed in {} ({}): never regranted",
                    e.rules.join(", "),
                    signal.at.to_rfc3339(),
                    signal.from
                ),
            ));
            continue;
        }
        if let Some(why) = not_active_in_idp(p) {
            plan.alerts.push(alert(
                AlertKind::LeaverSignIn,
                format!(
                    "signed in {} ({}) while not active in the IdP ({why}): not regranted",
                    signal.at.to_rfc3339(),
                    signal.from
                ),
            ));
            continue;
        }
        if e.cause() != Cause::Inactivity {
            plan.notes.push(format!(
                "{who}: removed by rule {} for a reason other than inactivity: not regranted",
                e.rules.join(", ")
            ));
            continue;
        }
        if !p.account.managed {
            plan.notes.push(format!(
                "{who}: not managed by idbridge ({}): not regranted",
                p.account
                    .unmanaged_reason
                    .as_deref()
                    .unwrap_or("out of scope")
            ));
            continue;
        }
        if p.pending_actions {
            plan.notes.push(format!(
                "{who}: an earlier run is still working on this account: regrant waits"
            ));
            continue;
        }
        let Some(pre) = &e.pre_image else {
            plan.notes.push(format!(
                "{who}: run {} recorded no readable pre-image: nothing to restore",
                e.run_id
            ));
            continue;
        };
        let mut kinds = Vec::new();
        if pre.active && !p.account.active {
            kinds.push(ActionKind::Reactivate);
        }
        let mut missing: Vec<&String> = pre
            .groups
            .iter()
            .filter(|g| !p.account.groups.iter().any(|h| eq_ci(h, g)))
            .collect();
        missing.sort();
        missing.dedup_by(|a, b| eq_ci(a, b));
        kinds.extend(
            missing
                .into_iter()
                .map(|g| ActionKind::AddToGroup { group: g.clone() }),
        );
        if !eq_ci(&p.account.username, &pre.username) {
            let clash = taken
                .get(p.account.target.as_str())
                .is_some_and(|t| t.contains(&pre.username.to_lowercase()));
            if clash {
                plan.notes.push(format!(
                    "{who}: the username `{}` it had is now taken by another account: not \
                     regranted, a person must look at it",
                    pre.username
                ));
                continue;
            }
            kinds.push(ActionKind::Rename {
                from: p.account.username.clone(),
                to: pre.username.clone(),
            });
        }
        if kinds.is_empty() {
            continue;
        }
        let licence_groups = targets
            .get(p.account.target.as_str())
            .map(|t| t.licence_groups.as_slice())
            .unwrap_or_default();
        let needs_seat = !p.account.licensed
            && pre.active
            && pre
                .groups
                .iter()
                .any(|g| licence_groups.iter().any(|l| eq_ci(l, g)));
        due.push(Due {
            person: p,
            signal,
            episode: e,
            kinds,
            needs_seat,
        });
    }

    // Seats: per target, the most recent sign-ins first; the rest wait with an alert.
    let mut granted: HashSet<crate::domain::AccountId> = HashSet::new();
    let mut by_target: BTreeMap<TargetId, Vec<&Due<'_>>> = BTreeMap::new();
    for d in &due {
        if d.needs_seat {
            by_target
                .entry(d.person.account.target_id)
                .or_default()
                .push(d);
        } else {
            granted.insert(d.person.account.id);
        }
    }
    for (target_id, mut wanting) in by_target {
        let name = wanting[0].person.account.target.clone();
        let free = input.seats.get(&target_id).and_then(Seats::free);
        let Some(free) = free else {
            plan.notes.push(format!(
                "target {name}: licence seats unknown: regranting {} without a seat check",
                wanting.len()
            ));
            granted.extend(wanting.iter().map(|d| d.person.account.id));
            continue;
        };
        wanting.sort_by(|a, b| {
            b.signal
                .at
                .cmp(&a.signal.at)
                .then_with(|| a.person.account.username.cmp(&b.person.account.username))
        });
        let free = usize::try_from(free).unwrap_or(usize::MAX);
        for (i, d) in wanting.iter().enumerate() {
            if i < free {
                granted.insert(d.person.account.id);
                continue;
            }
            let p = d.person;
            plan.alerts.push(Alert {
                kind: AlertKind::NoFreeSeat,
                account_id: p.account.id,
                target: p.account.target.clone(),
                username: p.account.username.clone(),
                signal: d.signal.clone(),
                run: d.episode.run_id,
                rules: d.episode.rules.clone(),
                cause: d.episode.cause(),
                why: format!(
                    "signed in {} ({}) and is due the licence back, but target {name} has {free} \
                     free seat(s) for {} returning people: waits for a free seat",
                    d.signal.at.to_rfc3339(),
                    d.signal.from,
                    wanting.len()
                ),
            });
        }
    }

    for d in due
        .iter()
        .filter(|d| granted.contains(&d.person.account.id))
    {
        let p = d.person;
        let e = d.episode;
        let reason = Reason {
            rule: REGRANT.into(),
            because: vec![
                format!(
                    "signed in {} ({}) after removal by rule {} on {}",
                    d.signal.at.to_rfc3339(),
                    d.signal.from,
                    e.rules.join(", "),
                    e.removed_at.to_rfc3339()
                ),
                format!("restores the state before run {}", e.run_id),
            ],
            cause: Cause::Other,
        };
        let identity_id = match p.link {
            LinkState::Linked { .. } => p.identities.first().map(|i| i.id),
            _ => None,
        };
        for kind in &d.kinds {
            plan.actions.push(PlannedAction {
                account_id: p.account.id,
                target_id: p.account.target_id,
                target: p.account.target.clone(),
                account_key: p.account.key.clone(),
                username: p.account.username.clone(),
                identity_id,
                kind: kind.clone(),
                reason: reason.clone(),
            });
        }
    }
    plan
}

// ---------------------------------------------------------------------------------------
// One pass.

/// Why a regrant pass could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RegrantError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// How to make a pass.
#[derive(Clone, Debug, Default)]
pub struct RegrantOptions {
    /// Record the plan with zero writes (the recording executor); raise no alert.
    pub dry_run: bool,
}

/// What a pass did.
#[derive(Debug, Serialize)]
pub struct RegrantOutcome {
    pub plan: RegrantPlan,
    /// The stored run, when anything was planned.
    pub run: Option<RunId>,
    pub status: Option<RunStatus>,
    pub executed: Option<ExecReport>,
    /// Alerts newly raised (each alert is raised once per signal).
    pub alerts_raised: usize,
    /// Alerts seen again, raised by an earlier pass.
    pub alerts_known: usize,
}

/// Seat counts of every target in `targets`, from its latest finished inventory.
pub async fn seats(
    store: &Store,
    targets: &[TargetState],
) -> Result<BTreeMap<TargetId, Seats>, StoreError> {
    let mut out = BTreeMap::new();
    for t in targets {
        let Some(snapshot) = store.latest_target_snapshot(t.id, None).await? else {
            continue;
        };
        if let Some(usage) = snapshot
            .detail
            .get("licence")
            .and_then(|v| serde_json::from_value::<LicenceUsage>(v.clone()).ok())
        {
            out.insert(t.id, Seats::from_usage(&usage));
        }
    }
    Ok(out)
}

/// Links, loads, plans the regrants, stores them as a `regrant` run, carries it out and
/// raises the alerts.
#[tracing::instrument(skip_all, fields(dry_run = opts.dry_run))]
pub async fn regrant(
    store: &Store,
    config: &Config,
    opts: &RegrantOptions,
    now: DateTime<Utc>,
) -> Result<RegrantOutcome, RegrantError> {
    let report = link::refresh_links(store, config).await?;
    let inputs = store.planner_inputs(config, &report).await?;
    let episodes = store.removal_episodes().await?;
    let seats = seats(store, &inputs.targets).await?;
    let plan = plan_regrants(&RegrantInput {
        people: &inputs.people,
        episodes: &episodes,
        targets: &inputs.targets,
        seats: &seats,
        now,
    });
    tracing::info!(
        episodes = episodes.len(),
        actions = plan.actions.len(),
        alerts = plan.alerts.len(),
        "regrant planned"
    );
    let mut outcome = RegrantOutcome {
        plan,
        run: None,
        status: None,
        executed: None,
        alerts_raised: 0,
        alerts_known: 0,
    };
    if !outcome.plan.actions.is_empty() {
        let mode = if opts.dry_run {
            RuleMode::DryRun
        } else {
            RuleMode::Enforce
        };
        let id = store
            .create_run(
                &NewRun {
                    kind: RunKind::Regrant,
                    mode,
                    status: RunStatus::Planned,
                    rules: vec![REGRANT.into()],
                    started_by: REGRANT.into(),
                    config_hash: run::config_hash(config, &[]),
                    plan_hash: safety::plan_hash(&outcome.plan.actions),
                    budget: json!({}),
                },
                &outcome.plan.actions,
            )
            .await?;
        let executed = run::execute_run(store, config, id).await?;
        outcome.status = store.run(id).await?.map(|r| r.status);
        outcome.run = Some(id);
        outcome.executed = Some(executed);
    }
    if !opts.dry_run {
        for a in &outcome.plan.alerts {
            if store
                .raise_alert(a.account_id, a.kind, a.signal.at, &a.detail())
                .await?
            {
                tracing::warn!(kind = a.kind.as_str(), target = %a.target, username = %a.username, "alert raised");
                outcome.alerts_raised += 1;
            } else {
                outcome.alerts_known += 1;
            }
        }
    }
    Ok(outcome)
}
