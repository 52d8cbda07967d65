//! Undo: puts accounts back the way they were before a run (`undo run`) or before a
//! person's latest removal (`undo person`), from the pre-images the executor recorded.
//!
//! [`plan_undo`] is pure: person views, the episodes to undo (each account's state before
//! the run's first action on it), what idbridge last saw each account as, and whether
//! leavers may be restored, in; the restoring actions and what was left alone and why out.
//! The actions are the ones licence-back-on-login plans ([`regrant::restore_actions`]):
//! reactivate when the account was active, add back every group of the pre-image it lacks,
//! rename back to the old username. Nothing is removed; an account already as it was gets
//! nothing, so undoing twice plans nothing the second time.
//!
//! [`undo`] makes it a run of kind `undo` through the same pipeline as the rules: budgets
//! (over budget → held for `idbridge approve`), stored before any write, carried out by the
//! executor (read, compare, write, audit), or recorded with zero writes under `--dry-run`.
//!
//! Never: restoring a leaver without `include_leavers` (giving a leaver access back is a
//! security event, audited as `security.leaver_restored` when asked for), taking a username
//! that another account holds now, touching an account idbridge does not manage, or acting
//! while an earlier run still works on the account.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;

use super::regrant::restore_actions;
use crate::config::Config;
use crate::domain::{
    AccountId, ActionKind, ActionPhase, Cause, LinkState, PersonView, Plan, PlannedAction, Reason,
    RuleMode, RunId, RunStatus, SnapshotStatus, TargetId,
};
use crate::engine::execute::ExecReport;
use crate::engine::link;
use crate::engine::run::{self, RunError};
use crate::engine::safety::{self, BudgetHistory, BudgetInput, BudgetReport};
use crate::store::{
    ActionRecord, NewAuditEntry, PreImage, RemovalEpisode, RunKind, Store, StoreError,
};

/// The rule name undo actions carry.
pub const UNDO: &str = "undo";

/// The longest `undo person` argument accepted, in characters.
pub const MAX_WHO_CHARS: usize = 320;

/// What idbridge knows about an account now that is newer than its target's last complete
/// inventory: the post-image of its latest confirmed write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// The account as the executor left (or found) it.
    Image(PreImage),
    /// idbridge deleted it.
    Deleted,
}

/// Everything an undo plan is a function of.
#[derive(Clone, Copy, Debug)]
pub struct UndoInput<'a> {
    pub people: &'a [PersonView],
    /// One per account to restore: its state before the run's first action on it.
    pub episodes: &'a [RemovalEpisode],
    /// Per account, newer than the person view when present.
    pub known: &'a HashMap<AccountId, Known>,
    /// Restore accounts removed as leavers too.
    pub include_leavers: bool,
    /// Who asked, for the actions' reasons.
    pub principal: &'a str,
}

/// The undo plan: actions in execution order and what was left alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UndoPlan {
    pub actions: Vec<PlannedAction>,
    /// Accounts whose old username another account holds now: restored but not renamed.
    pub conflicts: Vec<String>,
    /// Leavers left as they are (`include_leavers` not given).
    pub leavers_skipped: Vec<String>,
    /// Leavers being restored (`include_leavers` given).
    pub leavers_restored: Vec<String>,
    /// Accounts already as they were.
    pub unchanged: Vec<String>,
    /// Accounts not restored for another reason (gone, unmanaged, busy, no pre-image).
    pub notes: Vec<String>,
    /// Managed accounts, the base of percentage budgets.
    pub managed_population: u64,
}

/// The account state planning works from: the person view, or what idbridge wrote since.
struct Current<'a> {
    username: &'a str,
    active: bool,
    directory: Option<&'a str>,
    groups: &'a [String],
}

fn current<'a>(p: &'a PersonView, known: Option<&'a Known>) -> Current<'a> {
    match known {
        Some(Known::Image(i)) => Current {
            username: &i.username,
            active: i.active,
            directory: i.directory.as_deref(),
            groups: &i.groups,
        },
        _ => Current {
            username: &p.account.username,
            active: p.account.active,
            directory: p.account.directory.as_deref(),
            groups: &p.account.groups,
        },
    }
}

/// One episode per account a run changed (a confirmed action other than a notice), in
/// account order of first action: the causes and rules of its confirmed actions, when the
/// first finished, and the account before the run's first confirmed action on it (what the
/// executor read before writing, or the state it found already done).
pub fn episodes_of_run(actions: &[ActionRecord]) -> Vec<RemovalEpisode> {
    let mut sorted: Vec<&ActionRecord> = actions
        .iter()
        .filter(|a| a.phase == ActionPhase::Confirmed)
        .collect();
    sorted.sort_by_key(|a| a.seq);
    let mut out: Vec<RemovalEpisode> = Vec::new();
    let mut changed: HashMap<AccountId, bool> = HashMap::new();
    for a in sorted {
        let i = match out.iter().position(|e| e.account_id == a.account_id) {
            Some(i) => i,
            None => {
                let image = a.pre_image.clone().or_else(|| a.post_image.clone());
                out.push(RemovalEpisode {
                    account_id: a.account_id,
                    run_id: a.run_id,
                    causes: Vec::new(),
                    rules: Vec::new(),
                    removed_at: a.finished_at.unwrap_or(DateTime::<Utc>::MAX_UTC),
                    pre_image: image.and_then(|v| serde_json::from_value(v).ok()),
                });
                out.len() - 1
            }
        };
        let e = &mut out[i];
        if !e.causes.contains(&a.reason.cause) {
            e.causes.push(a.reason.cause);
            e.causes.sort();
        }
        if !e.rules.contains(&a.rule) {
            e.rules.push(a.rule.clone());
            e.rules.sort();
        }
        if let Some(f) = a.finished_at
            && f < e.removed_at
        {
            e.removed_at = f;
        }
        *changed.entry(a.account_id).or_default() |= a.kind != ActionKind::Notify;
    }
    out.retain(|e| changed.get(&e.account_id).copied().unwrap_or(false));
    out
}

/// The undo plan for `input` (pure).
pub fn plan_undo(input: &UndoInput<'_>) -> UndoPlan {
    let mut plan = UndoPlan {
        managed_population: input.people.iter().filter(|p| p.account.managed).count() as u64,
        ..UndoPlan::default()
    };
    let people: HashMap<AccountId, &PersonView> =
        input.people.iter().map(|p| (p.account.id, p)).collect();
    // Who holds each username now, per target (lower case).
    let mut holders: HashMap<(TargetId, String), AccountId> = HashMap::new();
    for p in input.people {
        if input.known.get(&p.account.id) == Some(&Known::Deleted) {
            continue;
        }
        let c = current(p, input.known.get(&p.account.id));
        holders.insert(
            (p.account.target_id, c.username.to_lowercase()),
            p.account.id,
        );
    }
    let mut order: Vec<(&PersonView, &RemovalEpisode)> = Vec::new();
    for e in input.episodes {
        match people.get(&e.account_id) {
            Some(p) => order.push((p, e)),
            None => plan.notes.push(format!(
                "account {} is no longer in its target's inventory: nothing to restore",
                e.account_id
            )),
        }
    }
    order.sort_by(|(a, _), (b, _)| {
        (&a.account.target, a.account.username.to_lowercase())
            .cmp(&(&b.account.target, b.account.username.to_lowercase()))
    });
    for (p, e) in order {
        let known = input.known.get(&p.account.id);
        let cur = current(p, known);
        let who = format!("{}/{}", p.account.target, cur.username);
        if known == Some(&Known::Deleted) {
            plan.notes.push(format!(
                "{who}: deleted by idbridge: an account cannot be brought back by undo"
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
        let restore = restore_actions(pre, cur.username, cur.active, cur.groups, |name| {
            holders
                .get(&(p.account.target_id, name.to_lowercase()))
                .is_some_and(|holder| *holder != p.account.id)
        });
        if restore.kinds.is_empty() && !restore.name_taken {
            plan.unchanged.push(who);
            continue;
        }
        if e.cause() == Cause::Leaver && !input.include_leavers {
            plan.leavers_skipped.push(format!(
                "{who}: removed as a leaver by rule {}",
                e.rules.join(", ")
            ));
            continue;
        }
        if !p.account.managed {
            plan.notes.push(format!(
                "{who}: not managed by idbridge now ({}): not restored",
                p.account
                    .unmanaged_reason
                    .as_deref()
                    .unwrap_or("out of scope")
            ));
            continue;
        }
        if p.pending_actions {
            plan.notes.push(format!(
                "{who}: an earlier run is still working on this account: not restored; undo \
                 again once it has finished"
            ));
            continue;
        }
        if restore.name_taken {
            plan.conflicts.push(format!(
                "{who}: the username `{}` it had before run {} is now another account's: not \
                 renamed back, a person must look at it",
                pre.username, e.run_id
            ));
        }
        if let Some(dir) = pre.directory.as_deref()
            && cur.directory.is_some_and(|d| d != dir)
        {
            plan.notes.push(format!(
                "{who}: was in directory `{dir}` before run {}: undo does not move it back",
                e.run_id
            ));
        }
        if restore.kinds.is_empty() {
            continue;
        }
        if e.cause() == Cause::Leaver {
            plan.leavers_restored.push(format!(
                "{who}: removed as a leaver by rule {}",
                e.rules.join(", ")
            ));
        }
        let reason = Reason {
            rule: UNDO.into(),
            because: vec![
                format!(
                    "restores the state before run {} (rule {})",
                    e.run_id,
                    e.rules.join(", ")
                ),
                format!("undo asked for by {}", input.principal),
            ],
            cause: Cause::Other,
        };
        let identity_id = match p.link {
            LinkState::Linked { .. } => p.identities.first().map(|i| i.id),
            _ => None,
        };
        for kind in restore.kinds {
            plan.actions.push(PlannedAction {
                account_id: p.account.id,
                target_id: p.account.target_id,
                target: p.account.target.clone(),
                account_key: p.account.key.clone(),
                username: cur.username.to_owned(),
                identity_id,
                kind,
                reason: reason.clone(),
            });
        }
    }
    plan
}

/// The accounts a person names: the current username, the username before the open
/// removal, the account's email, or a linked identity's username or email
/// (case-insensitive), on `target` when given.
pub fn named<'a>(
    people: &'a [PersonView],
    episodes: &HashMap<AccountId, &RemovalEpisode>,
    who: &str,
    target: Option<&str>,
) -> Vec<&'a PersonView> {
    let who = who.trim().to_lowercase();
    let is = |s: &str| s.to_lowercase() == who;
    people
        .iter()
        .filter(|p| target.is_none_or(|t| p.account.target == t))
        .filter(|p| {
            is(&p.account.username)
                || p.account.email.as_deref().is_some_and(is)
                || episodes
                    .get(&p.account.id)
                    .and_then(|e| e.pre_image.as_ref())
                    .is_some_and(|pre| is(&pre.username))
                || p.identities
                    .iter()
                    .any(|i| is(&i.user_name) || i.email.as_deref().is_some_and(is))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// One undo.

/// What to undo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UndoWhat {
    /// Every account the run changed.
    Run(RunId),
    /// The latest open removal of the person named (username, original username or
    /// email), on one target when given.
    Person { who: String, target: Option<String> },
}

/// How to undo.
#[derive(Clone, Debug, Default)]
pub struct UndoOptions {
    /// Record the plan with zero writes (the recording executor).
    pub dry_run: bool,
    /// Restore accounts removed as leavers too.
    pub include_leavers: bool,
    /// Who asks (a person, `cli`).
    pub principal: String,
    /// Carry out the plan now when within budget (`false`: store it only).
    pub execute: bool,
}

/// Why an undo could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("no run {0}")]
    NoSuchRun(RunId),
    #[error("run {run} is of kind `{kind}`: undo restores what rule and bulk runs changed")]
    NotUndoable { run: RunId, kind: String },
    #[error("no Confluence account is named or addressed `{0}`")]
    NoSuchPerson(String),
    #[error("`{who}` names {} accounts with an open removal ({}); give the current username or --target", .accounts.len(), .accounts.join(", "))]
    Ambiguous { who: String, accounts: Vec<String> },
    #[error("`undo person` takes a username or email of at most {MAX_WHO_CHARS} characters")]
    BadName,
}

/// The stored undo run and what became of it.
#[derive(Debug, Serialize)]
pub struct UndoRun {
    pub run: RunId,
    pub mode: RuleMode,
    pub status: RunStatus,
    pub plan_hash: String,
    pub budget: BudgetReport,
    pub executed: Option<ExecReport>,
}

/// What an undo did.
#[derive(Debug, Serialize)]
pub struct UndoOutcome {
    /// What was asked for, in words (`run <id>`, `person <who>`).
    pub undoing: String,
    /// Why there is nothing to undo at all, when so.
    pub nothing: Option<String>,
    pub plan: UndoPlan,
    /// The stored run, when anything was planned.
    pub run: Option<UndoRun>,
}

/// Plans the undo of `what`, checks budgets, stores it as an `undo` run and carries it out
/// (within budget, unless `execute` is false).
#[tracing::instrument(skip_all, fields(dry_run = opts.dry_run, include_leavers = opts.include_leavers))]
pub async fn undo(
    store: &Store,
    config: &Config,
    what: &UndoWhat,
    opts: &UndoOptions,
    now: DateTime<Utc>,
) -> Result<UndoOutcome, UndoError> {
    let (undoing, episodes, nothing) = match what {
        UndoWhat::Run(id) => {
            let record = store.run(*id).await?.ok_or(UndoError::NoSuchRun(*id))?;
            if !matches!(record.kind, RunKind::Rule | RunKind::Bulk) {
                return Err(UndoError::NotUndoable {
                    run: *id,
                    kind: record.kind.as_str().into(),
                });
            }
            let episodes = if record.mode == RuleMode::DryRun {
                Vec::new()
            } else {
                episodes_of_run(&store.run_actions(*id).await?)
            };
            let nothing = if record.mode == RuleMode::DryRun {
                Some(format!(
                    "nothing to undo: run {id} was a dry run and wrote nothing"
                ))
            } else if episodes.is_empty() {
                Some(format!(
                    "nothing to undo: run {id} ({}) changed no account",
                    record.status.as_str()
                ))
            } else {
                None
            };
            (format!("run {id}"), episodes, nothing)
        }
        UndoWhat::Person { .. } => (String::new(), Vec::new(), None),
    };
    let mut outcome = UndoOutcome {
        undoing,
        nothing,
        plan: UndoPlan::default(),
        run: None,
    };
    if outcome.nothing.is_some() {
        return Ok(outcome);
    }
    let report = link::refresh_links(store, config).await?;
    let inputs = store.planner_inputs(config, &report).await?;
    let episodes = match what {
        UndoWhat::Run(_) => episodes,
        UndoWhat::Person { who, target } => {
            if who.trim().is_empty() || who.chars().count() > MAX_WHO_CHARS {
                return Err(UndoError::BadName);
            }
            let open = store.removal_episodes().await?;
            let by_account: HashMap<AccountId, &RemovalEpisode> =
                open.iter().map(|e| (e.account_id, e)).collect();
            let found = named(&inputs.people, &by_account, who, target.as_deref());
            if found.is_empty() {
                return Err(UndoError::NoSuchPerson(who.chars().take(64).collect()));
            }
            let removed: Vec<&PersonView> = found
                .iter()
                .copied()
                .filter(|p| by_account.contains_key(&p.account.id))
                .collect();
            outcome.undoing = format!("person {}", who.trim());
            match removed.as_slice() {
                [] => {
                    let accounts: Vec<String> = found
                        .iter()
                        .map(|p| format!("{}/{}", p.account.target, p.account.username))
                        .collect();
                    outcome.nothing = Some(format!(
                        "nothing to undo: {} has no open removal",
                        accounts.join(", ")
                    ));
                    return Ok(outcome);
                }
                [one] => vec![by_account[&one.account.id].clone()],
                many => {
                    return Err(UndoError::Ambiguous {
                        who: who.trim().chars().take(64).collect(),
                        accounts: many
                            .iter()
                            .map(|p| format!("{}/{}", p.account.target, p.account.username))
                            .collect(),
                    });
                }
            }
        }
    };
    let known = known_states(store, &inputs.people, &inputs.targets).await?;
    outcome.plan = plan_undo(&UndoInput {
        people: &inputs.people,
        episodes: &episodes,
        known: &known,
        include_leavers: opts.include_leavers,
        principal: &opts.principal,
    });
    tracing::info!(
        undoing = %outcome.undoing,
        accounts = episodes.len(),
        actions = outcome.plan.actions.len(),
        leavers_skipped = outcome.plan.leavers_skipped.len(),
        conflicts = outcome.plan.conflicts.len(),
        "undo planned"
    );
    if outcome.plan.actions.is_empty() {
        return Ok(outcome);
    }
    let (day, week) = store
        .budget_history(now - Duration::hours(24), now - Duration::days(7))
        .await?;
    let budget = safety::check_budgets(&BudgetInput {
        plan: &Plan {
            actions: outcome.plan.actions.clone(),
            conflicts: Vec::new(),
            notes: Vec::new(),
            managed_population: outcome.plan.managed_population,
        },
        history: &BudgetHistory { day, week },
        first_run: false,
        changed: false,
        config: &config.safety,
    });
    let mode = if opts.dry_run {
        RuleMode::DryRun
    } else {
        RuleMode::Enforce
    };
    let run::StoredRun {
        id,
        status,
        plan_hash,
    } = run::store_run(
        store,
        run::RunToStore {
            kind: RunKind::Undo,
            mode,
            rules: vec![UNDO.into()],
            started_by: &opts.principal,
            config_hash: run::config_hash(config, &[]),
            actions: &outcome.plan.actions,
            budget: &budget,
        },
    )
    .await?;
    if mode == RuleMode::Enforce {
        for leaver in &outcome.plan.leavers_restored {
            store
                .record_audit(&NewAuditEntry {
                    actor: opts.principal.clone(),
                    action: "security.leaver_restored".into(),
                    subject_kind: Some("run".into()),
                    subject_id: Some(id.to_string()),
                    detail: json!({ "undoing": outcome.undoing, "account": leaver }),
                })
                .await?;
        }
    }
    let (status, executed) =
        run::execute_if_planned(store, config, id, status, opts.execute).await?;
    outcome.run = Some(UndoRun {
        run: id,
        mode,
        status,
        plan_hash,
        budget,
        executed,
    });
    Ok(outcome)
}

/// What idbridge wrote to (or found on) each account after its target's latest complete
/// inventory began: the person views do not show it yet.
async fn known_states(
    store: &Store,
    people: &[PersonView],
    targets: &[crate::domain::TargetState],
) -> Result<HashMap<AccountId, Known>, StoreError> {
    let mut inventoried: BTreeMap<TargetId, DateTime<Utc>> = BTreeMap::new();
    for t in targets {
        if let Some(s) = store
            .latest_target_snapshot(t.id, Some(SnapshotStatus::Complete))
            .await?
        {
            inventoried.insert(t.id, s.started_at);
        }
    }
    let target_of: HashMap<AccountId, TargetId> = people
        .iter()
        .map(|p| (p.account.id, p.account.target_id))
        .collect();
    let mut known = HashMap::new();
    for image in store.latest_account_images().await? {
        if image.kind == ActionKind::Delete.name() {
            known.insert(image.account_id, Known::Deleted);
            continue;
        }
        let Some(target) = target_of.get(&image.account_id) else {
            continue;
        };
        // An inventory that began after the write shows the account as it is now.
        if inventoried
            .get(target)
            .is_some_and(|at| *at > image.finished_at)
        {
            continue;
        }
        if let Some(state) = image
            .post_image
            .and_then(|v| serde_json::from_value::<PreImage>(v).ok())
        {
            known.insert(image.account_id, Known::Image(state));
        }
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ActionId;
    use crate::engine::activity::tests::{at, person};

    const LICENCE: &str = "confluence-users";

    /// `user` as a rule left them: renamed, deactivated, licence group gone.
    fn removed(user: &str) -> PersonView {
        let mut p = person(user);
        p.account.username = format!("{user}_inactive");
        p.account.active = false;
        p.account.licensed = false;
        p.account.groups = vec!["wiki-editors".into()];
        p
    }

    fn episode(p: &PersonView, user: &str, cause: Cause) -> RemovalEpisode {
        RemovalEpisode {
            account_id: p.account.id,
            run_id: RunId(uuid::Uuid::from_u128(7)),
            causes: vec![cause],
            rules: vec!["inactive".into()],
            removed_at: at(2026, 10, 1),
            pre_image: Some(PreImage {
                username: user.into(),
                active: true,
                directory: Some("Confluence Internal Directory".into()),
                groups: vec![LICENCE.into(), "wiki-editors".into()],
            }),
        }
    }

    fn plan_for(
        people: &[PersonView],
        episodes: &[RemovalEpisode],
        known: &HashMap<AccountId, Known>,
        include_leavers: bool,
    ) -> UndoPlan {
        plan_undo(&UndoInput {
            people,
            episodes,
            known,
            include_leavers,
            principal: "ops",
        })
    }

    fn kinds(plan: &UndoPlan) -> Vec<ActionKind> {
        plan.actions.iter().map(|a| a.kind.clone()).collect()
    }

    fn restoring(user: &str) -> Vec<ActionKind> {
        vec![
            ActionKind::Reactivate,
            ActionKind::AddToGroup {
                group: LICENCE.into(),
            },
            ActionKind::Rename {
                from: format!("{user}_inactive"),
                to: user.into(),
            },
        ]
    }

    #[test]
    fn undo_of_a_removal_restores_groups_active_flag_and_name() {
        let bob = removed("bob");
        let e = episode(&bob, "bob", Cause::Inactivity);
        let plan = plan_for(&[bob], &[e], &HashMap::new(), false);
        assert_eq!(kinds(&plan), restoring("bob"));
        let a = &plan.actions[0];
        assert_eq!(a.reason.rule, UNDO);
        assert_eq!(a.username, "bob_inactive");
        assert!(a.reason.because[0].contains("rule inactive"), "{a:?}");
        assert!(a.reason.because[1].contains("ops"), "{a:?}");
        assert!(plan.conflicts.is_empty() && plan.leavers_skipped.is_empty());
    }

    #[test]
    fn an_account_already_as_before_the_run_gets_nothing() {
        let mut bob = person("bob");
        bob.account.groups = vec![LICENCE.into(), "wiki-editors".into()];
        let e = episode(&bob, "bob", Cause::Inactivity);
        let plan = plan_for(&[bob], &[e], &HashMap::new(), false);
        assert!(plan.actions.is_empty(), "{plan:?}");
        assert_eq!(plan.unchanged, ["wiki/bob"]);
    }

    #[test]
    fn what_idbridge_wrote_since_the_inventory_counts_as_the_current_state() {
        // The inventory still shows bob removed, but an undo confirmed since restored him.
        let bob = removed("bob");
        let e = episode(&bob, "bob", Cause::Inactivity);
        let known = HashMap::from([(bob.account.id, Known::Image(e.pre_image.clone().unwrap()))]);
        let plan = plan_for(
            std::slice::from_ref(&bob),
            std::slice::from_ref(&e),
            &known,
            false,
        );
        assert!(plan.actions.is_empty(), "{plan:?}");
        // And deleted accounts are reported, not restored.
        let known = HashMap::from([(bob.account.id, Known::Deleted)]);
        let plan = plan_for(&[bob], &[e], &known, false);
        assert!(plan.actions.is_empty());
        assert!(plan.notes[0].contains("deleted"), "{:?}", plan.notes);
    }

    #[test]
    fn a_leaver_is_restored_only_when_leavers_are_included() {
        let alice = removed("alice");
        let e = episode(&alice, "alice", Cause::Leaver);
        let skipped = plan_for(
            std::slice::from_ref(&alice),
            std::slice::from_ref(&e),
            &HashMap::new(),
            false,
        );
        assert!(skipped.actions.is_empty());
        assert_eq!(skipped.leavers_skipped.len(), 1);
        assert!(skipped.leavers_skipped[0].contains("alice_inactive"));
        let restored = plan_for(&[alice], &[e], &HashMap::new(), true);
        assert_eq!(kinds(&restored), restoring("alice"));
        assert_eq!(restored.leavers_restored.len(), 1);
    }

    #[test]
    fn a_username_taken_meanwhile_is_a_conflict_and_the_rest_is_still_restored() {
        let bob = removed("bob");
        let mut other = person("BOB");
        other.account.key = "key-new-bob".into();
        let e = episode(&bob, "bob", Cause::Inactivity);
        let plan = plan_for(&[bob, other], &[e], &HashMap::new(), false);
        assert_eq!(
            kinds(&plan),
            vec![
                ActionKind::Reactivate,
                ActionKind::AddToGroup {
                    group: LICENCE.into()
                }
            ]
        );
        assert_eq!(plan.conflicts.len(), 1);
        assert!(plan.conflicts[0].contains("`bob`"), "{:?}", plan.conflicts);
    }

    #[test]
    fn unmanaged_busy_and_imageless_accounts_are_noted_and_left_alone() {
        let base = removed("bob");
        let e = episode(&base, "bob", Cause::Inactivity);
        let mut p = base.clone();
        p.account.managed = false;
        let out = plan_for(&[p], std::slice::from_ref(&e), &HashMap::new(), false);
        assert!(out.actions.is_empty() && out.notes[0].contains("not managed"));
        let mut p = base.clone();
        p.pending_actions = true;
        let out = plan_for(&[p], std::slice::from_ref(&e), &HashMap::new(), false);
        assert!(out.actions.is_empty() && out.notes[0].contains("still working"));
        let mut e2 = e.clone();
        e2.pre_image = None;
        let out = plan_for(std::slice::from_ref(&base), &[e2], &HashMap::new(), false);
        assert!(out.actions.is_empty() && out.notes[0].contains("pre-image"));
        let out = plan_for(&[], &[e], &HashMap::new(), false);
        assert!(out.actions.is_empty() && out.notes[0].contains("no longer"));
    }

    fn record(
        p: &PersonView,
        seq: i64,
        kind: ActionKind,
        phase: ActionPhase,
        pre: Option<serde_json::Value>,
        cause: Cause,
    ) -> ActionRecord {
        ActionRecord {
            id: ActionId::new(),
            run_id: RunId(uuid::Uuid::from_u128(7)),
            seq,
            target_id: p.account.target_id,
            account_id: p.account.id,
            identity_id: None,
            account_key: p.account.key.clone(),
            username: p.account.username.clone(),
            budget_kind: kind.budget(),
            kind,
            rule: "r".into(),
            reason: Reason {
                rule: "r".into(),
                because: Vec::new(),
                cause,
            },
            phase,
            attempts: 1,
            not_before: None,
            claimed_by: None,
            claim_expires_at: None,
            pre_image: pre,
            post_image: None,
            error: None,
            updated_at: at(2026, 10, 1),
            finished_at: Some(at(2026, 10, 1) + Duration::seconds(seq)),
            run_mode: RuleMode::Enforce,
            run_approved_by: None,
        }
    }

    #[test]
    fn a_runs_episodes_hold_the_first_confirmed_pre_image_and_skip_notices_only() {
        let bob = person("bob");
        let ann = person("ann");
        let image = |name: &str| json!({"username": name, "active": true, "directory": null, "groups": [LICENCE]});
        let actions = vec![
            record(
                &bob,
                0,
                ActionKind::Notify,
                ActionPhase::Confirmed,
                Some(image("bob")),
                Cause::Inactivity,
            ),
            record(
                &bob,
                1,
                ActionKind::RemoveFromGroup {
                    group: LICENCE.into(),
                    licence: true,
                },
                ActionPhase::Confirmed,
                Some(image("changed")),
                Cause::Leaver,
            ),
            record(
                &bob,
                2,
                ActionKind::Deactivate,
                ActionPhase::Failed,
                None,
                Cause::Inactivity,
            ),
            // ann was only notified: nothing to undo.
            record(
                &ann,
                3,
                ActionKind::Notify,
                ActionPhase::Confirmed,
                Some(image("ann")),
                Cause::Inactivity,
            ),
        ];
        let e = episodes_of_run(&actions);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].account_id, bob.account.id);
        assert_eq!(e[0].pre_image.as_ref().unwrap().username, "bob");
        assert_eq!(e[0].causes, vec![Cause::Leaver, Cause::Inactivity]);
        assert_eq!(e[0].cause(), Cause::Leaver);
        assert_eq!(e[0].removed_at, at(2026, 10, 1));
    }

    #[test]
    fn a_person_is_named_by_username_now_username_before_or_email_on_one_target() {
        let bob = removed("bob");
        let mut other = person("carol");
        other.account.target = "cloud".into();
        other.account.email = Some("Bob@Example.com".into());
        let people = [bob.clone(), other.clone()];
        let e = episode(&bob, "bob", Cause::Inactivity);
        let episodes = HashMap::from([(bob.account.id, &e)]);
        let ids = |who: &str, target: Option<&str>| -> Vec<AccountId> {
            named(&people, &episodes, who, target)
                .iter()
                .map(|p| p.account.id)
                .collect()
        };
        assert_eq!(ids("bob_INACTIVE", None), [bob.account.id]);
        assert_eq!(ids(" Bob ", None), [bob.account.id]);
        assert_eq!(
            ids("bob@example.com", None),
            [bob.account.id, other.account.id]
        );
        assert_eq!(ids("bob@example.com", Some("cloud")), [other.account.id]);
        assert!(ids("nobody", None).is_empty());
    }
}
