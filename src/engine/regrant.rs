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
//! A regrant waits (with a note) while the person's status comes from an incomplete source
//! snapshot, while an earlier run still works on the account, and until the target has a
//! complete inventory that began after the removal (the person view shows the account as
//! that inventory saw it).
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
    RunId, RunStatus, SnapshotStatus, SourceKind, TargetId, TargetState,
};
use crate::engine::execute::ExecReport;
use crate::engine::link;
use crate::engine::run::{self, RunError};
use crate::engine::safety;
use crate::store::{AlertKind, NewRun, PreImage, RemovalEpisode, RunKind, Store, StoreError};
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
    /// Per target id, when its latest complete inventory started. The person views are
    /// only as fresh as that: a regrant waits for an inventory that began after the
    /// removal (before it, the view still shows the account as it was before the removal).
    pub inventoried: &'a BTreeMap<TargetId, DateTime<Utc>>,
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

/// What bringing an account back to a pre-image takes, from its current state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restore {
    /// Reactivate (when the pre-image was active and the account is not), add every
    /// pre-image group it lacks (sorted, case-insensitively once), rename back: in that
    /// order. Nothing is ever removed.
    pub kinds: Vec<ActionKind>,
    /// The pre-image's username is now another account's: no rename is planned.
    pub name_taken: bool,
}

/// The actions that restore `pre` on an account that is now `username`, `active` and in
/// `groups`; `taken(name)` says whether another account holds `name` now (pure).
pub fn restore_actions(
    pre: &PreImage,
    username: &str,
    active: bool,
    groups: &[String],
    taken: impl Fn(&str) -> bool,
) -> Restore {
    let mut out = Restore::default();
    if pre.active && !active {
        out.kinds.push(ActionKind::Reactivate);
    }
    let mut missing: Vec<&String> = pre
        .groups
        .iter()
        .filter(|g| !groups.iter().any(|h| eq_ci(h, g)))
        .collect();
    missing.sort();
    missing.dedup_by(|a, b| eq_ci(a, b));
    out.kinds.extend(
        missing
            .into_iter()
            .map(|g| ActionKind::AddToGroup { group: g.clone() }),
    );
    if !eq_ci(username, &pre.username) {
        if taken(&pre.username) {
            out.name_taken = true;
        } else {
            out.kinds.push(ActionKind::Rename {
                from: username.to_owned(),
                to: pre.username.clone(),
            });
        }
    }
    out
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
        if let Some(i) = p.identities.iter().find(|i| !i.from_complete_snapshot) {
            plan.notes.push(format!(
                "{who}: signed in, but the latest snapshot of source {} is incomplete, so its \
                 status may be stale: regrant waits",
                i.source
            ));
            continue;
        }
        if p.pending_actions {
            plan.notes.push(format!(
                "{who}: an earlier run is still working on this account: regrant waits"
            ));
            continue;
        }
        if input
            .inventoried
            .get(&p.account.target_id)
            .is_none_or(|t| *t <= e.removed_at)
        {
            plan.notes.push(format!(
                "{who}: signed in, but target {} has no complete inventory since the removal: \
                 regrant waits for one",
                p.account.target
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
        let restore = restore_actions(
            pre,
            &p.account.username,
            p.account.active,
            &p.account.groups,
            |name| {
                taken
                    .get(p.account.target.as_str())
                    .is_some_and(|t| t.contains(&name.to_lowercase()))
            },
        );
        if restore.name_taken {
            plan.notes.push(format!(
                "{who}: the username `{}` it had is now taken by another account: not \
                 regranted, a person must look at it",
                pre.username
            ));
            continue;
        }
        let kinds = restore.kinds;
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

/// Seat counts of every target in `targets`, from its latest finished inventory (seats
/// regranted since it started count as in use), and when its latest complete inventory
/// started.
#[allow(clippy::type_complexity)]
pub async fn seats(
    store: &Store,
    targets: &[TargetState],
) -> Result<(BTreeMap<TargetId, Seats>, BTreeMap<TargetId, DateTime<Utc>>), StoreError> {
    let mut seats = BTreeMap::new();
    let mut inventoried = BTreeMap::new();
    for t in targets {
        if let Some(snapshot) = store.latest_target_snapshot(t.id, None).await?
            && let Some(usage) = snapshot
                .detail
                .get("licence")
                .and_then(|v| serde_json::from_value::<LicenceUsage>(v.clone()).ok())
        {
            let mut s = Seats::from_usage(&usage);
            let since = store.regranted_since(t.id, snapshot.started_at).await?;
            s.in_use = s.in_use.map(|n| n.saturating_add(since));
            seats.insert(t.id, s);
        }
        if let Some(s) = store
            .latest_target_snapshot(t.id, Some(SnapshotStatus::Complete))
            .await?
        {
            inventoried.insert(t.id, s.started_at);
        }
    }
    Ok((seats, inventoried))
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
    let (seats, inventoried) = seats(store, &inputs.targets).await?;
    let plan = plan_regrants(&RegrantInput {
        people: &inputs.people,
        episodes: &episodes,
        targets: &inputs.targets,
        seats: &seats,
        inventoried: &inventoried,
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

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::{
        ActionSpec, Criterion, Exemptions, IdentityView, LeaverSignal, Rule, SourceState,
    };
    use crate::engine::activity::tests::{at, identity, link, person};
    use crate::engine::plan::{self, PlanInput, PlanSettings};
    use crate::store::PreImage;

    const LICENCE: &str = "confluence-users";

    fn now() -> DateTime<Utc> {
        at(2026, 11, 1)
    }

    fn removed_at() -> DateTime<Utc> {
        at(2026, 10, 1)
    }

    fn wiki() -> TargetState {
        TargetState {
            name: "wiki".into(),
            id: TargetId(uuid::Uuid::nil()),
            complete: true,
            incomplete_reason: None,
            licence_groups: vec![LICENCE.into()],
            cannot_rename: None,
            cannot_change_directory: None,
            cannot_delete: None,
        }
    }

    /// `user` as idbridge left them: renamed, deactivated, licence group gone; linked to an
    /// active Okta identity last seen long ago.
    fn removed(user: &str) -> PersonView {
        let mut p = person(user);
        p.account.username = format!("{user}_inactive_20261001");
        p.account.active = false;
        p.account.licensed = false;
        p.account.groups = vec!["wiki-editors".into()];
        let mut okta = identity("okta", user);
        okta.last_login_at = Some(at(2026, 3, 1));
        link(&mut p, okta);
        p
    }

    fn episode(p: &PersonView, user: &str, cause: Cause) -> RemovalEpisode {
        RemovalEpisode {
            account_id: p.account.id,
            run_id: RunId(uuid::Uuid::from_u128(7)),
            causes: vec![cause],
            rules: vec!["inactive".into()],
            removed_at: removed_at(),
            pre_image: Some(PreImage {
                username: user.into(),
                active: true,
                directory: Some("Confluence Internal Directory".into()),
                groups: vec![LICENCE.into(), "wiki-editors".into()],
            }),
        }
    }

    fn okta_mut(p: &mut PersonView) -> &mut IdentityView {
        &mut p.identities[0]
    }

    fn plan_for(
        people: &[PersonView],
        episodes: &[RemovalEpisode],
        seats: &BTreeMap<TargetId, Seats>,
    ) -> RegrantPlan {
        plan_regrants(&RegrantInput {
            people,
            episodes,
            targets: &[wiki()],
            seats,
            inventoried: &BTreeMap::from([(wiki().id, at(2026, 10, 31))]),
            now: now(),
        })
    }

    fn kinds(plan: &RegrantPlan, account: crate::domain::AccountId) -> Vec<ActionKind> {
        plan.actions
            .iter()
            .filter(|a| a.account_id == account)
            .map(|a| a.kind.clone())
            .collect()
    }

    #[test]
    fn an_inactive_person_who_signs_in_gets_exactly_the_pre_image_back() {
        let mut bob = removed("bob");
        okta_mut(&mut bob).last_sign_in_event_at = Some(at(2026, 10, 20));
        let e = episode(&bob, "bob", Cause::Inactivity);
        let plan = plan_for(&[bob.clone()], &[e], &BTreeMap::new());
        assert_eq!(
            kinds(&plan, bob.account.id),
            vec![
                ActionKind::Reactivate,
                ActionKind::AddToGroup {
                    group: LICENCE.into()
                },
                ActionKind::Rename {
                    from: "bob_inactive_20261001".into(),
                    to: "bob".into()
                },
            ]
        );
        assert!(plan.alerts.is_empty(), "{:?}", plan.alerts);
        let reason = &plan.actions[0].reason;
        assert_eq!(reason.rule, REGRANT);
        assert_eq!(reason.cause, Cause::Other);
        assert!(
            reason.because[0].contains("okta sign-in log")
                && reason.because[0].contains("2026-10-20"),
            "{:?}",
            reason.because
        );
        assert!(
            plan.actions
                .iter()
                .all(|a| a.username == "bob_inactive_20261001")
        );
    }

    #[test]
    fn a_sign_in_before_the_removal_or_none_at_all_plans_nothing() {
        let bob = removed("bob");
        let e = episode(&bob, "bob", Cause::Inactivity);
        let plan = plan_for(
            std::slice::from_ref(&bob),
            std::slice::from_ref(&e),
            &BTreeMap::new(),
        );
        assert_eq!(plan, RegrantPlan::default());
        // A sentinel or a time far in the future is no sign-in either.
        let mut odd = bob.clone();
        odd.account.last_login_at = Some(now() + Duration::days(30));
        assert!(plan_for(&[odd], &[e], &BTreeMap::new()).actions.is_empty());
    }

    #[test]
    fn each_activity_source_after_the_removal_is_a_signal() {
        type Signal = fn(&mut PersonView);
        let cases: [(&str, Signal); 4] = [
            ("okta", |p| {
                okta_mut(p).last_login_at = Some(at(2026, 10, 5))
            }),
            ("okta sign-in log", |p| {
                okta_mut(p).last_sign_in_event_at = Some(at(2026, 10, 5))
            }),
            ("confluence", |p| {
                p.account.last_login_at = Some(at(2026, 10, 5))
            }),
            ("scim (SCIM active=true)", |p| {
                let mut scim = identity("scim", "x");
                scim.source_kind = SourceKind::Scim;
                scim.status_changed_at = at(2026, 10, 5);
                link(p, scim);
            }),
        ];
        for (from, signal) in cases {
            let mut bob = removed("bob");
            signal(&mut bob);
            let e = episode(&bob, "bob", Cause::Inactivity);
            let plan = plan_for(&[bob.clone()], &[e], &BTreeMap::new());
            assert_eq!(plan.actions.len(), 3, "{from}: {plan:?}");
            assert!(
                plan.actions[0].reason.because[0].contains(&format!("({from})")),
                "{from}: {:?}",
                plan.actions[0].reason.because
            );
        }
    }

    #[test]
    fn a_scim_identity_active_since_before_the_removal_is_no_signal() {
        let mut bob = removed("bob");
        let mut scim = identity("scim", "bob");
        scim.source_kind = SourceKind::Scim;
        scim.status_changed_at = at(2026, 9, 1);
        link(&mut bob, scim);
        let e = episode(&bob, "bob", Cause::Inactivity);
        assert!(plan_for(&[bob], &[e], &BTreeMap::new()).actions.is_empty());
    }

    #[test]
    fn a_leaver_who_signs_in_gets_a_security_alert_and_nothing_back() {
        // Even once active again in the IdP: a leaver is never regranted.
        let mut alice = removed("alice");
        okta_mut(&mut alice).last_login_at = Some(at(2026, 10, 25));
        let e = episode(&alice, "alice", Cause::Leaver);
        let plan = plan_for(&[alice.clone()], &[e], &BTreeMap::new());
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.alerts.len(), 1);
        let a = &plan.alerts[0];
        assert_eq!(a.kind, AlertKind::LeaverSignIn);
        assert_eq!(a.signal.at, at(2026, 10, 25));
        assert_eq!(a.detail()["cause"], "leaver");
    }

    #[test]
    fn an_inactive_person_not_active_in_the_idp_is_alerted_not_regranted() {
        for status in [
            IdentityStatus::Suspended,
            IdentityStatus::Deprovisioned,
            IdentityStatus::Deleted,
            IdentityStatus::Staged,
            IdentityStatus::Unknown,
        ] {
            let mut bob = removed("bob");
            okta_mut(&mut bob).last_login_at = Some(at(2026, 10, 25));
            okta_mut(&mut bob).status = status;
            let e = episode(&bob, "bob", Cause::Inactivity);
            let plan = plan_for(&[bob], &[e], &BTreeMap::new());
            assert!(plan.actions.is_empty(), "{status:?}");
            assert_eq!(plan.alerts.len(), 1, "{status:?}");
            assert_eq!(plan.alerts[0].kind, AlertKind::LeaverSignIn);
            assert!(plan.alerts[0].why.contains(status.as_str()));
        }
        // An unlinked account, signed in on Confluence, is not known active anywhere.
        let mut eve = removed("eve");
        eve.link = LinkState::Unlinked;
        eve.account.last_login_at = Some(at(2026, 10, 25));
        let e = episode(&eve, "eve", Cause::Inactivity);
        let plan = plan_for(&[eve], &[e], &BTreeMap::new());
        assert!(plan.actions.is_empty());
        assert_eq!(plan.alerts[0].kind, AlertKind::LeaverSignIn);
    }

    #[test]
    fn other_causes_unmanaged_busy_and_imageless_accounts_get_a_note_only() {
        let mut bob = removed("bob");
        okta_mut(&mut bob).last_login_at = Some(at(2026, 10, 25));
        let base = || bob.clone();
        let p = base();
        let mut e = episode(&p, "bob", Cause::Other);
        let plan = plan_for(&[p], &[e.clone()], &BTreeMap::new());
        assert!(plan.actions.is_empty() && plan.alerts.is_empty());
        assert!(
            plan.notes[0].contains("other than inactivity"),
            "{:?}",
            plan.notes
        );

        e.causes = vec![Cause::Inactivity];
        let mut p = base();
        p.account.managed = false;
        assert!(
            plan_for(&[p], &[e.clone()], &BTreeMap::new())
                .actions
                .is_empty()
        );
        let mut p = base();
        p.identities[0].from_complete_snapshot = false;
        let plan = plan_for(&[p], &[e.clone()], &BTreeMap::new());
        assert!(plan.actions.is_empty() && plan.notes[0].contains("incomplete"));
        let mut p = base();
        p.pending_actions = true;
        let plan = plan_for(&[p], &[e.clone()], &BTreeMap::new());
        assert!(plan.actions.is_empty() && plan.notes[0].contains("waits"));
        e.pre_image = None;
        let plan = plan_for(&[base()], &[e], &BTreeMap::new());
        assert!(plan.actions.is_empty() && plan.notes[0].contains("pre-image"));
    }

    #[test]
    fn a_regrant_waits_for_an_inventory_that_began_after_the_removal() {
        let mut bob = removed("bob");
        okta_mut(&mut bob).last_login_at = Some(at(2026, 10, 25));
        let e = episode(&bob, "bob", Cause::Inactivity);
        let targets = [wiki()];
        for inventoried in [
            BTreeMap::new(),
            BTreeMap::from([(wiki().id, removed_at() - Duration::hours(1))]),
        ] {
            let plan = plan_regrants(&RegrantInput {
                people: std::slice::from_ref(&bob),
                episodes: std::slice::from_ref(&e),
                targets: &targets,
                seats: &BTreeMap::new(),
                inventoried: &inventoried,
                now: now(),
            });
            assert!(plan.actions.is_empty(), "{:?}", plan.actions);
            assert!(plan.notes[0].contains("regrant waits"), "{:?}", plan.notes);
        }
    }

    #[test]
    fn a_username_taken_meanwhile_holds_the_regrant_back() {
        let mut bob = removed("bob");
        okta_mut(&mut bob).last_login_at = Some(at(2026, 10, 25));
        let mut other = person("BOB");
        other.account.target = "wiki".into();
        let e = episode(&bob, "bob", Cause::Inactivity);
        let plan = plan_for(&[bob, other], &[e], &BTreeMap::new());
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert!(plan.notes[0].contains("taken"), "{:?}", plan.notes);
    }

    #[test]
    fn only_missing_pre_image_groups_are_added_and_nothing_is_removed() {
        let mut bob = removed("bob");
        okta_mut(&mut bob).last_login_at = Some(at(2026, 10, 25));
        bob.account.active = true;
        bob.account.username = "bob".into();
        // A group added since the removal stays; a group already back is not added twice.
        bob.account.groups = vec!["WIKI-EDITORS".into(), "former-staff".into()];
        let e = episode(&bob, "bob", Cause::Inactivity);
        let plan = plan_for(&[bob.clone()], &[e], &BTreeMap::new());
        assert_eq!(
            kinds(&plan, bob.account.id),
            vec![ActionKind::AddToGroup {
                group: LICENCE.into()
            }]
        );
    }

    #[test]
    fn with_too_few_seats_the_most_recent_sign_ins_come_first_and_the_rest_are_alerted() {
        let mut people = Vec::new();
        let mut episodes = Vec::new();
        for (user, day) in [("ann", 10), ("bob", 20), ("cy", 15)] {
            let mut p = removed(user);
            okta_mut(&mut p).last_login_at = Some(at(2026, 10, day));
            episodes.push(episode(&p, user, Cause::Inactivity));
            people.push(p);
        }
        let t = wiki().id;
        let seats = BTreeMap::from([(
            t,
            Seats {
                max: Some(50),
                in_use: Some(49),
            },
        )]);
        let plan = plan_for(&people, &episodes, &seats);
        let regranted: HashSet<&str> = plan.actions.iter().map(|a| a.username.as_str()).collect();
        assert_eq!(regranted, HashSet::from(["bob_inactive_20261001"]));
        let mut waiting: Vec<&str> = plan
            .alerts
            .iter()
            .filter(|a| a.kind == AlertKind::NoFreeSeat)
            .map(|a| a.username.as_str())
            .collect();
        waiting.sort();
        assert_eq!(waiting, ["ann_inactive_20261001", "cy_inactive_20261001"]);
        assert!(plan.actions.iter().all(|a| matches!(
            a.kind,
            ActionKind::Reactivate | ActionKind::AddToGroup { .. } | ActionKind::Rename { .. }
        )));

        // Full (or over) the licence: nobody; unknown seats: everybody, with a note.
        let full = BTreeMap::from([(
            t,
            Seats {
                max: Some(40),
                in_use: Some(49),
            },
        )]);
        let plan = plan_for(&people, &episodes, &full);
        assert!(plan.actions.is_empty());
        assert_eq!(plan.alerts.len(), 3);
        let plan = plan_for(&people, &episodes, &BTreeMap::new());
        assert_eq!(plan.actions.len(), 9);
        assert!(plan.notes[0].contains("seats unknown"), "{:?}", plan.notes);
    }

    #[test]
    fn a_restore_that_takes_no_licence_needs_no_seat() {
        let mut bob = removed("bob");
        okta_mut(&mut bob).last_login_at = Some(at(2026, 10, 25));
        let mut e = episode(&bob, "bob", Cause::Inactivity);
        if let Some(pre) = e.pre_image.as_mut() {
            pre.groups = vec!["wiki-editors".into()];
        }
        let full = BTreeMap::from([(
            wiki().id,
            Seats {
                max: Some(1),
                in_use: Some(1),
            },
        )]);
        let plan = plan_for(&[bob], &[e], &full);
        assert_eq!(plan.actions.len(), 2, "{plan:?}");
        assert!(plan.alerts.is_empty());
    }

    fn rule(criteria: Vec<Criterion>) -> Rule {
        Rule {
            name: "r".into(),
            enabled: true,
            mode: RuleMode::Enforce,
            priority: 1,
            targets: Vec::new(),
            criteria,
            exempt: Exemptions::default(),
            actions: vec![ActionSpec::RemoveLicenceGroups],
            allow_delete: false,
            schedule: None,
        }
    }

    #[test]
    fn the_planner_marks_each_reason_with_the_cause_its_rule_implies() {
        let status = Criterion::Status {
            any_of: vec![LeaverSignal::Deprovisioned],
        };
        let member = Criterion::MemberOf {
            groups: vec!["x".into()],
            how: crate::domain::GroupMatch::Any,
        };
        let cases = [
            (vec![status.clone()], Cause::Leaver),
            (
                vec![Criterion::InactiveDays { days: 90 }, status],
                Cause::Leaver,
            ),
            (vec![Criterion::AbsentSyncs { syncs: 3 }], Cause::Leaver),
            (
                vec![Criterion::InactiveDays { days: 90 }, member.clone()],
                Cause::Inactivity,
            ),
            (
                vec![Criterion::NeverLoggedIn { days: 30 }],
                Cause::Inactivity,
            ),
            (vec![Criterion::LoggedInOnce], Cause::Inactivity),
            (vec![member], Cause::Other),
        ];
        for (criteria, want) in cases {
            assert_eq!(
                plan::cause_of(&rule(criteria.clone())),
                want,
                "{criteria:?}"
            );
        }
        // And the plan carries it on every action.
        let mut p = person("bob");
        p.account.last_login_at = Some(at(2025, 1, 1));
        let mut okta = identity("okta", "bob");
        okta.last_login_at = Some(at(2025, 1, 1));
        link(&mut p, okta);
        let rules = [rule(vec![Criterion::InactiveDays { days: 90 }])];
        let sources = [SourceState {
            name: "okta".into(),
            kind: SourceKind::Okta,
            complete: true,
            incomplete_reason: None,
            observed_since: Some(at(2024, 1, 1)),
        }];
        let planned = plan::plan(&PlanInput {
            people: &[p],
            rules: &rules,
            sources: &sources,
            targets: &[wiki()],
            settings: &PlanSettings::default(),
            now: now(),
        });
        assert!(!planned.actions.is_empty());
        assert!(
            planned
                .actions
                .iter()
                .all(|a| a.reason.cause == Cause::Inactivity)
        );
        // A reason stored before causes existed reads as `other`.
        let old: Reason =
            serde_json::from_value(json!({"rule": "r", "because": ["x"]})).expect("old reason");
        assert_eq!(old.cause, Cause::Other);
    }

    fn arb_status() -> impl Strategy<Value = IdentityStatus> {
        proptest::sample::select(IdentityStatus::ALL.to_vec())
    }

    fn arb_cause() -> impl Strategy<Value = Cause> {
        prop_oneof![
            Just(Cause::Leaver),
            Just(Cause::Inactivity),
            Just(Cause::Other)
        ]
    }

    const POOL: &[&str] = &[LICENCE, "wiki-editors", "staff", "former-sales", "admins-x"];

    fn arb_groups() -> impl Strategy<Value = Vec<String>> {
        proptest::sample::subsequence(POOL.to_vec(), 0..=POOL.len())
            .prop_map(|g| g.into_iter().map(str::to_owned).collect())
    }

    prop_compose! {
        fn arb_case()(
            causes in proptest::collection::vec(arb_cause(), 1..3),
            status in arb_status(),
            pre_groups in arb_groups(),
            cur_groups in arb_groups(),
            pre_active in any::<bool>(),
            cur_active in any::<bool>(),
            login_day in 2u32..=31,
            scim in any::<bool>(),
            free in proptest::option::of(0u64..3),
        ) -> (PersonView, RemovalEpisode, BTreeMap<TargetId, Seats>) {
            let mut p = removed("bob");
            p.account.groups = cur_groups;
            p.account.active = cur_active;
            okta_mut(&mut p).status = status;
            okta_mut(&mut p).last_login_at = Some(at(2026, 10, login_day));
            if scim {
                let mut s = identity("scim", "bob");
                s.source_kind = SourceKind::Scim;
                s.status = status;
                s.status_changed_at = at(2026, 10, login_day);
                link(&mut p, s);
            }
            let mut e = episode(&p, "bob", Cause::Other);
            e.causes = causes;
            if let Some(pre) = e.pre_image.as_mut() {
                pre.groups = pre_groups;
                pre.active = pre_active;
            }
            let seats = free
                .map(|f| BTreeMap::from([(wiki().id, Seats { max: Some(10), in_use: Some(10 - f) })]))
                .unwrap_or_default();
            (p, e, seats)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_leaver_never_gets_an_action_and_no_group_outside_the_pre_image_is_added(
            (p, e, seats) in arb_case()
        ) {
            let plan = plan_for(std::slice::from_ref(&p), std::slice::from_ref(&e), &seats);
            let pre = e.pre_image.clone().expect("pre-image");
            if e.cause() == Cause::Leaver || not_active_in_idp(&p).is_some() {
                prop_assert!(plan.actions.is_empty(), "{:?}", plan.actions);
            }
            for a in &plan.actions {
                prop_assert_eq!(e.cause(), Cause::Inactivity);
                match &a.kind {
                    ActionKind::AddToGroup { group } => {
                        prop_assert!(pre.groups.contains(group), "{group} not in {:?}", pre.groups);
                        prop_assert!(!p.account.groups.contains(group));
                    }
                    ActionKind::Reactivate => prop_assert!(pre.active && !p.account.active),
                    ActionKind::Rename { to, .. } => prop_assert_eq!(to, &pre.username),
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            // A leaver or a person not active in the IdP who signed in is alerted.
            if e.cause() == Cause::Leaver || not_active_in_idp(&p).is_some() {
                prop_assert_eq!(plan.alerts.len(), 1);
                prop_assert_eq!(plan.alerts[0].kind, AlertKind::LeaverSignIn);
            }
        }
    }
}
