//! The crash-safe executor: claims stored actions and carries each out idempotently by state.
//!
//! For every claimed action: READ the account as the target has it now, COMPARE with the
//! action's pre- and post-condition (already in the post-state → `confirmed` without a write;
//! precondition gone → `skipped` with the reason), store the pre-image (`sent`) BEFORE the
//! write, WRITE, then record `confirmed` with the post-image and an audit entry. A process
//! killed at any point leaves the action `claimed` or `sent` under a claim that expires; the
//! next executor takes it over, reads state again and so completes it exactly once.
//!
//! Transient target errors are retried with exponential backoff until `max_attempts`
//! (then `poisoned`); permanent ones fail the action. Either way the account's later rungs in
//! the same run are skipped. A dry run goes through the same pipeline with the write
//! replaced by a record of what would be done.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::ExecutorConfig;
use crate::domain::{ActionKind, ActionPhase, RuleMode, RunId, RunStatus, TargetId};
use crate::failpoint::failpoint;
use crate::store::{ActionRecord, NewAuditEntry, PhaseChange, Store, StoreError};
use crate::targets::{
    AccountRef, GroupRef, RemoteAccount, Target, TargetError, Write, WriteOutcome,
};

/// A boxed future, for the object-safe [`Notifier`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One notice to a person, from a `notify` action.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    pub run: RunId,
    pub rule: String,
    pub username: String,
    /// Where to send it, as the target has it.
    pub email: Option<String>,
    /// Why the person is notified.
    pub because: Vec<String>,
}

/// Hands notices over for delivery.
pub trait Notifier: Send + Sync {
    /// Takes one notice; returns how it was handled (recorded in the action's audit entry),
    /// or why it could not be.
    fn notify<'a>(&'a self, notice: &'a Notice) -> BoxFuture<'a, Result<String, String>>;
}

/// The default notifier: it only records the notice. The executor writes the audit entry
/// `notify.queued` with the recipient's address when the action is confirmed. Delivery by
/// SMTP comes in a later issue.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordingNotifier;

impl Notifier for RecordingNotifier {
    fn notify<'a>(&'a self, notice: &'a Notice) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            match &notice.email {
                Some(_) => Ok("queued".to_owned()),
                None => Err("the account has no email address".to_owned()),
            }
        })
    }
}

/// How one executor works.
#[derive(Clone, Debug, Default)]
pub struct ExecuteOptions {
    /// Only this run's actions; `None`: every active run.
    pub run: Option<RunId>,
    /// Who claims (unique per process: a takeover is told apart by it).
    pub executor_id: String,
    /// Per target, the groups whose members are administrators: such accounts are never
    /// touched by a removing action.
    pub admin_groups: BTreeMap<TargetId, Vec<String>>,
}

/// What one call of [`execute`] did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExecReport {
    /// Actions claimed (a retried action counts once per attempt).
    pub claimed: u64,
    /// Outcomes this executor recorded, by phase (`planned` counts retries scheduled).
    pub phases: BTreeMap<String, u64>,
    /// Later rungs skipped because an earlier one failed.
    pub cascaded_skips: u64,
    /// Actions another executor took over before this one could record them.
    pub lost_claims: u64,
    /// Runs finished by this executor, with their final status.
    pub finished_runs: Vec<(RunId, RunStatus)>,
}

impl ExecReport {
    /// How many actions ended in `phase` here.
    pub fn count(&self, phase: ActionPhase) -> u64 {
        self.phases.get(phase.as_str()).copied().unwrap_or(0)
    }
}

/// Why the executor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// What became of one action.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Done(ActionPhase),
    Retry,
    Lost,
}

/// Claims and carries out actions until none is left in scope: none claimable now, no retry
/// due later and no claim (of a crashed executor) left to expire.
#[tracing::instrument(skip_all, fields(executor = %opts.executor_id))]
pub async fn execute<T: Target>(
    store: &Store,
    targets: &BTreeMap<TargetId, T>,
    notifier: &dyn Notifier,
    cfg: &ExecutorConfig,
    opts: &ExecuteOptions,
) -> Result<ExecReport, ExecuteError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let recorder = Recorder(tx);
    // The work owns the only sender: when it ends, the committer drains and stops.
    let work = carry_out_all(store, targets, notifier, cfg, opts, recorder);
    let (report, ()) = tokio::join!(work, group_commit(store, &opts.executor_id, rx));
    report
}

/// The most transitions one group commit records.
const MAX_GROUP: usize = 256;

/// A transition waiting for its group commit, with where to say whether it was recorded.
type Pending = (
    PhaseChange,
    tokio::sync::oneshot::Sender<Result<bool, StoreError>>,
);

/// Hands the executor's transitions to the group committer and waits for them to commit.
struct Recorder(tokio::sync::mpsc::UnboundedSender<Pending>);

impl Recorder {
    /// Records `change` (durably, before returning); false when the claim was lost.
    async fn record(&self, change: PhaseChange) -> Result<bool, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.0.send((change, tx)).is_err() {
            return Err(StoreError::Corrupt(
                "the executor's committer stopped".into(),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Corrupt(
                "the executor's committer stopped".into(),
            ))
        })
    }
}

/// Commits whatever transitions are waiting in one transaction each round, so that the
/// concurrent actions of one executor share their commits (and on PostgreSQL the audit
/// chain lock) instead of queueing for one each. A failed group is retried one by one, so
/// each action gets its own outcome.
async fn group_commit(
    store: &Store,
    me: &str,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Pending>,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let (changes, replies): (Vec<PhaseChange>, Vec<_>) = group.into_iter().unzip();
        match store.record_phases(me, &changes).await {
            Ok(done) => {
                for (reply, ok) in replies.into_iter().zip(done) {
                    let _ = reply.send(Ok(ok));
                }
            }
            Err(e) => {
                tracing::warn!(changes = changes.len(), error = %e, "group commit failed; recording one by one");
                for (change, reply) in changes.into_iter().zip(replies) {
                    let one = store
                        .record_phases(me, std::slice::from_ref(&change))
                        .await
                        .map(|d| d.first().copied().unwrap_or(false));
                    let _ = reply.send(one);
                }
            }
        }
    }
}

async fn carry_out_all<T: Target>(
    store: &Store,
    targets: &BTreeMap<TargetId, T>,
    notifier: &dyn Notifier,
    cfg: &ExecutorConfig,
    opts: &ExecuteOptions,
    recorder: Recorder,
) -> Result<ExecReport, ExecuteError> {
    let clock = store.clock.clone();
    let concurrency = cfg.concurrency.max(1);
    let batch = u32::try_from(concurrency.saturating_mul(4)).unwrap_or(u32::MAX);
    let ttl = chrono::Duration::seconds(i64::try_from(cfg.claim_ttl_secs.max(1)).unwrap_or(300));
    let mut report = ExecReport::default();
    let ctx = Ctx {
        store,
        targets,
        notifier,
        cfg,
        opts,
        recorder,
    };
    loop {
        let claimed = store
            .claim_actions(&opts.executor_id, clock.now(), ttl, batch, opts.run)
            .await?;
        if claimed.is_empty() {
            let Some(next) = store.next_claimable_at(opts.run).await? else {
                break;
            };
            let wait = (next - clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(20), Duration::from_secs(1));
            tokio::time::sleep(wait).await;
            continue;
        }
        report.claimed += claimed.len() as u64;
        failpoint("execute.after_claim");
        let mut runs: Vec<RunId> = claimed.iter().map(|a| a.run_id).collect();
        runs.dedup();
        let results: Vec<(ActionRecord, Result<Outcome, StoreError>)> = run_bounded(
            concurrency,
            claimed.into_iter().map(|a| {
                let ctx = &ctx;
                Box::pin(async move {
                    let outcome = ctx.carry_out(&a).await;
                    (a, outcome)
                }) as BoxFuture<'_, _>
            }),
        )
        .await;
        for (action, outcome) in results {
            match outcome {
                Ok(Outcome::Done(phase)) => {
                    *report.phases.entry(phase.as_str().to_owned()).or_default() += 1;
                    if matches!(phase, ActionPhase::Failed | ActionPhase::Poisoned) {
                        report.cascaded_skips += store
                            .skip_later_actions(
                                action.run_id,
                                action.account_id,
                                action.seq,
                                "an earlier rung failed",
                                &format!("rule:{}", action.rule),
                            )
                            .await?;
                    }
                }
                Ok(Outcome::Retry) => {
                    *report.phases.entry("planned".to_owned()).or_default() += 1;
                }
                Ok(Outcome::Lost) => report.lost_claims += 1,
                Err(e) => return Err(e.into()),
            }
        }
        runs.sort();
        runs.dedup();
        for run in runs {
            if let Some(status) = store.finish_run_if_done(run).await? {
                tracing::info!(run = %run, status = status.as_str(), "run finished");
                report.finished_runs.push((run, status));
            }
        }
    }
    Ok(report)
}

/// Runs `items` with at most `limit` of them in flight at once, in this task (no spawning,
/// so the futures may borrow); returns their outputs in completion order.
async fn run_bounded<'a, O: Send + 'a>(
    limit: usize,
    items: impl Iterator<Item = BoxFuture<'a, O>>,
) -> Vec<O> {
    let mut items = items;
    let mut running: Vec<BoxFuture<'a, O>> = Vec::new();
    let mut out = Vec::new();
    loop {
        while running.len() < limit {
            match items.next() {
                Some(f) => running.push(f),
                None => break,
            }
        }
        if running.is_empty() {
            return out;
        }
        std::future::poll_fn(|cx| {
            let before = out.len();
            let mut i = 0;
            while i < running.len() {
                if let Poll::Ready(o) = running[i].as_mut().poll(cx) {
                    out.push(o);
                    drop(running.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            if out.len() > before {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

struct Ctx<'a, T> {
    store: &'a Store,
    targets: &'a BTreeMap<TargetId, T>,
    notifier: &'a dyn Notifier,
    cfg: &'a ExecutorConfig,
    opts: &'a ExecuteOptions,
    recorder: Recorder,
}

/// What the action found before acting.
enum Found {
    /// Already in the post-state.
    Done,
    /// The precondition no longer holds.
    Stale(String),
    /// The write is needed.
    Act,
}

impl<T: Target> Ctx<'_, T> {
    fn me(&self) -> &str {
        &self.opts.executor_id
    }

    async fn carry_out(&self, a: &ActionRecord) -> Result<Outcome, StoreError> {
        let Some(target) = self.targets.get(&a.target_id) else {
            let why = format!("target {} is not configured here", a.target_id);
            return self.fail(a, ActionPhase::Failed, &why).await;
        };
        match self.attempt(target, a).await {
            Ok(outcome) => Ok(outcome),
            Err(Step::Store(e)) => Err(e),
            Err(Step::Target(e)) if e.is_transient() => {
                if a.attempts >= self.cfg.max_attempts {
                    let why = format!("gave up after {} attempts: {e}", a.attempts);
                    self.fail(a, ActionPhase::Poisoned, &why).await
                } else {
                    let delay = backoff(self.cfg.retry_base_ms, a.attempts);
                    let at = self.store.clock.now()
                        + chrono::Duration::milliseconds(
                            i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
                        );
                    tracing::info!(action = %a.id, attempts = a.attempts, error = %e, retry_in_ms = delay.as_millis() as u64, "transient error; retrying later");
                    if self
                        .store
                        .mark_retry(a.id, self.me(), &e.to_string(), at)
                        .await?
                    {
                        Ok(Outcome::Retry)
                    } else {
                        Ok(Outcome::Lost)
                    }
                }
            }
            // What the instance cannot do at all (rename without the Remote API or Crowd) is
            // skipped with the reason, not failed: it is no fault to retry or alert on.
            Err(Step::Target(e @ crate::targets::TargetError::Unsupported { .. })) => {
                match self.skip(a, &e.to_string(), Value::Null).await {
                    Ok(outcome) => Ok(outcome),
                    Err(Step::Store(e)) => Err(e),
                    Err(Step::Target(e)) => self.fail(a, ActionPhase::Failed, &e.to_string()).await,
                }
            }
            Err(Step::Target(e)) => self.fail(a, ActionPhase::Failed, &e.to_string()).await,
        }
    }

    async fn fail(
        &self,
        a: &ActionRecord,
        phase: ActionPhase,
        why: &str,
    ) -> Result<Outcome, StoreError> {
        tracing::warn!(action = %a.id, kind = a.kind.name(), username = %a.username, phase = phase.as_str(), error = %why, "action not carried out");
        let audit = self.audit(a, phase.as_str(), json!({ "error": why }));
        let ok = self.finish(a, phase, None, Some(why), audit).await?;
        Ok(if ok {
            Outcome::Done(phase)
        } else {
            Outcome::Lost
        })
    }

    async fn skip(&self, a: &ActionRecord, why: &str, before: Value) -> Result<Outcome, Step> {
        tracing::info!(action = %a.id, kind = a.kind.name(), username = %a.username, why = %why, "action skipped");
        let audit = self.audit(a, "skipped", json!({ "why": why, "before": before }));
        let ok = self
            .finish(a, ActionPhase::Skipped, None, Some(why), audit)
            .await?;
        Ok(if ok {
            Outcome::Done(ActionPhase::Skipped)
        } else {
            Outcome::Lost
        })
    }

    /// Records the action's end through the group commit.
    async fn finish(
        &self,
        a: &ActionRecord,
        phase: ActionPhase,
        post_image: Option<Value>,
        error: Option<&str>,
        audit: NewAuditEntry,
    ) -> Result<bool, StoreError> {
        self.recorder
            .record(PhaseChange::Finished {
                id: a.id,
                phase,
                post_image,
                error: error.map(str::to_owned),
                audit,
            })
            .await
    }

    /// The audit entry of an action's outcome.
    fn audit(&self, a: &ActionRecord, outcome: &str, extra: Value) -> NewAuditEntry {
        let mut detail = json!({
            "run": a.run_id.to_string(),
            "action": a.id.to_string(),
            "rule": a.rule,
            "reason": a.reason.because,
            "target": a.target_id.to_string(),
            "username": a.username,
            "params": a.kind,
            "approved_by": a.run_approved_by,
            "dry_run": a.run_mode == RuleMode::DryRun,
            "outcome": outcome,
        });
        if let (Value::Object(d), Value::Object(e)) = (&mut detail, extra) {
            d.extend(e);
        }
        let action = match (&a.kind, outcome) {
            (ActionKind::Notify, "confirmed" | "already done") => "notify.queued".to_owned(),
            (_, "confirmed" | "already done") => format!("action.{}", a.kind.name()),
            (_, other) => format!("action.{}.{}", a.kind.name(), other.replace(' ', "_")),
        };
        NewAuditEntry {
            actor: format!("rule:{}", a.rule),
            action,
            subject_kind: Some("account".into()),
            subject_id: Some(a.account_id.to_string()),
            detail,
        }
    }

    async fn attempt(&self, target: &T, a: &ActionRecord) -> Result<Outcome, Step> {
        let aref = AccountRef {
            key: a.account_key.clone(),
            username: a.username.clone(),
        };
        // READ
        let Some(current) = target.get_account(&aref).await? else {
            if a.kind == ActionKind::Delete {
                return self
                    .confirm(a, json!(null), json!({"deleted": true}), "already done")
                    .await;
            }
            return self
                .skip(a, "the account no longer exists on the target", json!(null))
                .await;
        };
        let groups = match &current.groups {
            Some(g) => g.clone(),
            None if a.kind == ActionKind::Notify => Vec::new(),
            None => target
                .account_groups(&AccountRef::of(&current))
                .await?
                .into_iter()
                .map(|g| g.name)
                .collect(),
        };
        let before = json!({
            "username": current.username,
            "active": current.active,
            "directory": current.directory,
            "groups": groups,
        });
        // COMPARE
        match self.compare(a, &current, &groups) {
            Found::Done => {
                let after = before.clone();
                return self.confirm(a, before, after, "already done").await;
            }
            Found::Stale(why) => return self.skip(a, &why, before).await,
            Found::Act => {}
        }
        // Record the pre-image before anything is written.
        let sent = PhaseChange::Sent {
            id: a.id,
            pre_image: before.clone(),
        };
        if !self.recorder.record(sent).await? {
            return Ok(Outcome::Lost);
        }
        failpoint("execute.before_send");
        let after = post_image(&a.kind, &before);
        if a.run_mode == RuleMode::DryRun {
            let would = json!({ "dry_run": true, "would": would(&a.kind, &current.username), "after": after });
            return self.confirm(a, before, would, "would be done").await;
        }
        // WRITE
        let outcome = match write_of(&a.kind, &groups) {
            // A notice is the one action that is no target write.
            None => {
                let email = match current.email.clone().filter(|e| !e.trim().is_empty()) {
                    Some(e) => Some(e),
                    None => self.store.contact_email(a.account_id).await?,
                };
                let notice = Notice {
                    run: a.run_id,
                    rule: a.rule.clone(),
                    username: current.username.clone(),
                    email,
                    because: a.reason.because.clone(),
                };
                match self.notifier.notify(&notice).await {
                    Ok(how) => {
                        failpoint("execute.after_send");
                        let after = json!({ "notified": notice.email, "how": how });
                        return self.confirm(a, before, after, "confirmed").await;
                    }
                    Err(why) => {
                        return Err(Step::Target(TargetError::Rejected {
                            status: 0,
                            detail: format!("notice not taken: {why}"),
                        }));
                    }
                }
            }
            Some(rename @ Write::Rename(_)) => {
                let outcome = target.apply(&current, &rename).await?;
                // On DC a rename may take more than one call (Crowd, then Confluence's
                // directory sync): a crash here leaves the new name with nothing recorded.
                failpoint("execute.mid_rename");
                outcome
            }
            Some(write) => target.apply(&current, &write).await?,
        };
        failpoint("execute.after_send");
        let word = match outcome {
            WriteOutcome::Changed => "confirmed",
            WriteOutcome::AlreadyDone => "already done",
        };
        self.confirm(a, before, after, word).await
    }

    /// Whether the account is already done, stale, or needs the write.
    fn compare(&self, a: &ActionRecord, cur: &RemoteAccount, groups: &[String]) -> Found {
        let in_group = |g: &str| groups.iter().any(|x| x.eq_ignore_ascii_case(g));
        let done = match &a.kind {
            ActionKind::Notify => false,
            ActionKind::Deactivate => !cur.active,
            ActionKind::Reactivate => cur.active,
            ActionKind::RemoveFromGroup { group, .. } => !in_group(group),
            ActionKind::AddToGroup { group } => in_group(group),
            ActionKind::Rename { to, .. } => cur.username.eq_ignore_ascii_case(to),
            ActionKind::ChangeDirectory { to, .. } => cur.directory.as_deref() == Some(to.as_str()),
            ActionKind::Delete => false,
        };
        if done {
            return Found::Done;
        }
        if let ActionKind::Rename { from, to } = &a.kind
            && !cur.username.eq_ignore_ascii_case(from)
        {
            return Found::Stale(format!(
                "stale rename: the username is now `{}`, neither `{from}` nor `{to}`; a person must look at it",
                cur.username
            ));
        }
        if let ActionKind::ChangeDirectory {
            from: Some(from), ..
        } = &a.kind
            && cur.directory.as_deref() != Some(from.as_str())
        {
            return Found::Stale(format!(
                "stale directory move: the account is now in `{}`, not `{from}`",
                cur.directory.as_deref().unwrap_or("no directory")
            ));
        }
        if let Some(why) = &cur.read_only
            && !matches!(a.kind, ActionKind::Notify)
        {
            return Found::Stale(format!("the target does not let idbridge change it: {why}"));
        }
        let removes = !matches!(
            a.kind,
            ActionKind::AddToGroup { .. } | ActionKind::Reactivate | ActionKind::Notify
        );
        if removes
            && let Some(admin) = self
                .opts
                .admin_groups
                .get(&a.target_id)
                .and_then(|admins| admins.iter().find(|g| in_group(g)))
        {
            return Found::Stale(format!(
                "the account is now in the administrator group `{admin}`: protected"
            ));
        }
        Found::Act
    }

    async fn confirm(
        &self,
        a: &ActionRecord,
        before: Value,
        after: Value,
        outcome: &str,
    ) -> Result<Outcome, Step> {
        let audit = self.audit(a, outcome, json!({ "before": before, "after": after }));
        let ok = self
            .finish(a, ActionPhase::Confirmed, Some(after), None, audit)
            .await?;
        tracing::debug!(action = %a.id, kind = a.kind.name(), outcome, "action confirmed");
        Ok(if ok {
            Outcome::Done(ActionPhase::Confirmed)
        } else {
            Outcome::Lost
        })
    }
}

/// A step's failure: the target's (retried or failed) or the store's (stops the executor).
enum Step {
    Target(TargetError),
    Store(StoreError),
}

impl From<TargetError> for Step {
    fn from(e: TargetError) -> Self {
        Step::Target(e)
    }
}

impl From<StoreError> for Step {
    fn from(e: StoreError) -> Self {
        Step::Store(e)
    }
}

/// The target write of an action (`None` for a notice); a group to leave is named as the
/// account's membership spells it.
fn write_of(kind: &ActionKind, groups: &[String]) -> Option<Write> {
    Some(match kind {
        ActionKind::Notify => return None,
        ActionKind::Deactivate => Write::Disable,
        ActionKind::Reactivate => Write::Enable,
        ActionKind::RemoveFromGroup { group, .. } => {
            let actual = groups
                .iter()
                .find(|g| g.eq_ignore_ascii_case(group))
                .unwrap_or(group);
            Write::RemoveFromGroup(GroupRef::named(actual.clone()))
        }
        ActionKind::AddToGroup { group } => Write::AddToGroup(GroupRef::named(group.clone())),
        ActionKind::Rename { to, .. } => Write::Rename(to.clone()),
        ActionKind::ChangeDirectory { to, .. } => Write::ChangeDirectory(to.clone()),
        ActionKind::Delete => Write::Delete,
    })
}

/// The pre-image with the action applied.
fn post_image(kind: &ActionKind, before: &Value) -> Value {
    let mut after = before.clone();
    let Value::Object(o) = &mut after else {
        return after;
    };
    match kind {
        ActionKind::Notify => {}
        ActionKind::Deactivate => {
            o.insert("active".into(), json!(false));
        }
        ActionKind::Reactivate => {
            o.insert("active".into(), json!(true));
        }
        ActionKind::RemoveFromGroup { group, .. } => {
            if let Some(Value::Array(gs)) = o.get_mut("groups") {
                gs.retain(|g| !g.as_str().is_some_and(|s| s.eq_ignore_ascii_case(group)));
            }
        }
        ActionKind::AddToGroup { group } => {
            if let Some(Value::Array(gs)) = o.get_mut("groups") {
                gs.push(json!(group));
            }
        }
        ActionKind::Rename { to, .. } => {
            o.insert("username".into(), json!(to));
        }
        ActionKind::ChangeDirectory { to, .. } => {
            o.insert("directory".into(), json!(to));
        }
        ActionKind::Delete => return json!({ "deleted": true }),
    }
    after
}

/// What a dry run says it would do.
fn would(kind: &ActionKind, username: &str) -> String {
    match kind {
        ActionKind::Notify => format!("would notify `{username}`"),
        ActionKind::Deactivate => format!("would deactivate `{username}`"),
        ActionKind::Reactivate => format!("would reactivate `{username}`"),
        ActionKind::RemoveFromGroup { group, .. } => {
            format!("would remove `{username}` from `{group}`")
        }
        ActionKind::AddToGroup { group } => format!("would add `{username}` to `{group}`"),
        ActionKind::Rename { to, .. } => format!("would rename `{username}` to `{to}`"),
        ActionKind::ChangeDirectory { to, .. } => format!("would move `{username}` to `{to}`"),
        ActionKind::Delete => format!("would delete `{username}`"),
    }
}

/// `base · 2^(attempt−1)`, capped at an hour, plus up to half of it again as jitter.
fn backoff(base_ms: u64, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let ms = base_ms.saturating_mul(1u64 << exp).min(3_600_000);
    let jitter = if ms >= 2 {
        (uuid::Uuid::new_v4().as_u128() as u64) % (ms / 2)
    } else {
        0
    };
    Duration::from_millis(ms + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_attempt_with_at_most_half_again_as_jitter() {
        for attempt in 1..6u32 {
            let d = backoff(100, attempt).as_millis() as u64;
            let base = 100 * (1 << (attempt - 1));
            assert!(d >= base && d < base + base / 2 + 1, "{attempt}: {d}");
        }
        assert!(backoff(1_000_000, 30) <= Duration::from_millis(3_600_000 * 3 / 2));
    }

    #[test]
    fn the_post_image_is_the_pre_image_with_the_action_applied() {
        let before = json!({"username": "ann", "active": true, "directory": "d", "groups": ["confluence-users", "staff"]});
        let after = post_image(
            &ActionKind::RemoveFromGroup {
                group: "Confluence-Users".into(),
                licence: true,
            },
            &before,
        );
        assert_eq!(after["groups"], json!(["staff"]));
        assert_eq!(
            post_image(&ActionKind::Deactivate, &before)["active"],
            json!(false)
        );
        let renamed = post_image(
            &ActionKind::Rename {
                from: "ann".into(),
                to: "ann_inactive".into(),
            },
            &before,
        );
        assert_eq!(renamed["username"], json!("ann_inactive"));
    }
}
