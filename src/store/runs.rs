//! Runs and their actions: a plan stored before any write, the claims executors take on its
//! actions, and each action's phase (planned → claimed → sent → confirmed | failed | skipped |
//! poisoned) with its pre- and post-image. Every transition an executor makes is conditional
//! on it still holding the claim, so a stale executor's write is refused after a takeover;
//! terminal transitions append their audit entry in the same transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{NewAuditEntry, Store, StoreError, Tx, on_db, on_tx};
use crate::domain::{
    AccountId, ActionId, ActionKind, ActionPhase, BudgetKind, IdentityId, PlannedAction, Reason,
    RuleMode, RunId, RunStatus, TargetId,
};

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Rules evaluated on a schedule or by hand.
    Rule,
    /// An ad-hoc bulk selection.
    Bulk,
    /// Undoing an earlier run from its pre-images.
    Undo,
    /// Licences given back on return.
    Regrant,
}

impl RunKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Rule => "rule",
            RunKind::Bulk => "bulk",
            RunKind::Undo => "undo",
            RunKind::Regrant => "regrant",
        }
    }
}

/// A run to store with its plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    pub kind: RunKind,
    /// `DryRun` runs are carried out by the recording executor and end `recorded`.
    pub mode: RuleMode,
    /// `Planned` (within budget) or `Held` (waiting for approval).
    pub status: RunStatus,
    pub rules: Vec<String>,
    pub started_by: String,
    pub config_hash: String,
    pub plan_hash: String,
    /// The budget check's figures.
    pub budget: Value,
}

/// A stored run, every column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub kind: RunKind,
    pub mode: RuleMode,
    pub status: RunStatus,
    pub rules: Vec<String>,
    pub started_by: String,
    pub config_hash: String,
    pub plan_hash: String,
    pub action_count: u32,
    pub budget: Value,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub epoch: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Actions per phase once finished.
    pub summary: Value,
}

/// A stored action, every column, with its run's mode and approver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub id: ActionId,
    pub run_id: RunId,
    pub seq: i64,
    pub target_id: TargetId,
    pub account_id: AccountId,
    pub identity_id: Option<IdentityId>,
    pub account_key: String,
    /// The username at plan time.
    pub username: String,
    pub kind: ActionKind,
    pub budget_kind: BudgetKind,
    pub rule: String,
    pub reason: Reason,
    pub phase: ActionPhase,
    pub attempts: u32,
    pub not_before: Option<DateTime<Utc>>,
    pub claimed_by: Option<String>,
    pub claim_expires_at: Option<DateTime<Utc>>,
    pub pre_image: Option<Value>,
    pub post_image: Option<Value>,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The run's mode: a dry-run action is recorded, never written.
    pub run_mode: RuleMode,
    /// Who approved the run, when it was held.
    pub run_approved_by: Option<String>,
}

/// One transition an executor records, for [`Store::record_phases`].
#[derive(Clone, Debug, PartialEq)]
pub enum PhaseChange {
    /// The pre-image is stored and the write is about to be sent.
    Sent { id: ActionId, pre_image: Value },
    /// The action ended in `phase` (confirmed, skipped, failed or poisoned), with its audit
    /// entry.
    Finished {
        id: ActionId,
        phase: ActionPhase,
        post_image: Option<Value>,
        error: Option<String>,
        audit: NewAuditEntry,
    },
}

impl ActionRecord {
    /// The planned action this record stores (without the target's name, which the store
    /// does not keep on actions): what the plan hash of a stored run is recomputed from.
    pub fn planned(&self) -> PlannedAction {
        PlannedAction {
            account_id: self.account_id,
            target_id: self.target_id,
            target: String::new(),
            account_key: self.account_key.clone(),
            username: self.username.clone(),
            identity_id: self.identity_id,
            kind: self.kind.clone(),
            reason: self.reason.clone(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: Uuid,
    kind: String,
    mode: String,
    status: String,
    rules: Json<Vec<String>>,
    started_by: String,
    config_hash: String,
    plan_hash: String,
    action_count: i32,
    budget: Json<Value>,
    approved_by: Option<String>,
    approved_at: Option<DateTime<Utc>>,
    approval_expires_at: Option<DateTime<Utc>>,
    epoch: Option<i64>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    summary: Json<Value>,
}

#[derive(sqlx::FromRow)]
struct ActionRow {
    id: Uuid,
    run_id: Uuid,
    seq: i64,
    target_id: Uuid,
    account_id: Uuid,
    identity_id: Option<Uuid>,
    account_key: String,
    username: String,
    params: Json<Value>,
    budget_kind: String,
    rule: String,
    reason: Json<Value>,
    phase: String,
    attempts: i32,
    not_before: Option<DateTime<Utc>>,
    claimed_by: Option<String>,
    claim_expires_at: Option<DateTime<Utc>>,
    pre_image: Option<Json<Value>>,
    post_image: Option<Json<Value>>,
    error: Option<String>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    run_mode: String,
    run_approved_by: Option<String>,
}

/// A stored spelling back to its serde enum.
fn parse_text<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} `{s}`")))
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl TryFrom<RunRow> for RunRecord {
    type Error = StoreError;

    fn try_from(r: RunRow) -> Result<Self, StoreError> {
        Ok(RunRecord {
            id: RunId(r.id),
            kind: parse_text("run kind", &r.kind)?,
            mode: parse_text("run mode", &r.mode)?,
            status: parse_text("run status", &r.status)?,
            rules: r.rules.0,
            started_by: r.started_by,
            config_hash: r.config_hash,
            plan_hash: r.plan_hash,
            action_count: u32::try_from(r.action_count).unwrap_or(0),
            budget: r.budget.0,
            approved_by: r.approved_by,
            approved_at: r.approved_at,
            approval_expires_at: r.approval_expires_at,
            epoch: r.epoch,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            summary: r.summary.0,
        })
    }
}

impl TryFrom<ActionRow> for ActionRecord {
    type Error = StoreError;

    fn try_from(r: ActionRow) -> Result<Self, StoreError> {
        Ok(ActionRecord {
            id: ActionId(r.id),
            run_id: RunId(r.run_id),
            seq: r.seq,
            target_id: TargetId(r.target_id),
            account_id: AccountId(r.account_id),
            identity_id: r.identity_id.map(IdentityId),
            account_key: r.account_key,
            username: r.username,
            kind: parse_json("action params", r.params.0)?,
            budget_kind: parse_text("budget kind", &r.budget_kind)?,
            rule: r.rule,
            reason: parse_json("action reason", r.reason.0)?,
            phase: parse_text("action phase", &r.phase)?,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            not_before: r.not_before,
            claimed_by: r.claimed_by,
            claim_expires_at: r.claim_expires_at,
            pre_image: r.pre_image.map(|j| j.0),
            post_image: r.post_image.map(|j| j.0),
            error: r.error,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            run_mode: parse_text("run mode", &r.run_mode)?,
            run_approved_by: r.run_approved_by,
        })
    }
}

macro_rules! run_columns {
    () => {
        "id, kind, mode, status, rules, started_by, config_hash, plan_hash, action_count, \
         budget, approved_by, approved_at, approval_expires_at, epoch, created_at, started_at, \
         finished_at, summary"
    };
}

/// Action columns (alias `a`) with the run's (alias `r`).
macro_rules! action_columns {
    () => {
        "a.id, a.run_id, a.seq, a.target_id, a.account_id, a.identity_id, a.account_key, \
         a.username, a.params, a.budget_kind, a.rule, a.reason, a.phase, a.attempts, \
         a.not_before, a.claimed_by, a.claim_expires_at, a.pre_image, a.post_image, a.error, \
         a.updated_at, a.finished_at, r.mode as run_mode, r.approved_by as run_approved_by"
    };
}

/// Runs whose actions may be carried out.
macro_rules! active_runs {
    () => {
        "('planned', 'approved', 'running')"
    };
}

/// Phases an action is not finished in.
macro_rules! open_phases {
    () => {
        "('planned', 'claimed', 'sent')"
    };
}

/// Which actions may be claimed now (`$1` run or null, `$2` now): planned and due, or held
/// under an expired claim; in an active run; the account's first open action in (run
/// created, run id, seq) order among active runs; no live claim on the account.
macro_rules! claimable {
    () => {
        concat!(
            "select ",
            action_columns!(),
            " from actions a join runs r on r.id = a.run_id \
             where r.status in ",
            active_runs!(),
            " and ($1 is null or a.run_id = $1) \
               and ((a.phase = 'planned' and (a.not_before is null or a.not_before <= $2)) \
                    or (a.phase in ('claimed', 'sent') and a.claim_expires_at < $2)) \
               and not exists (select 1 from actions b join runs rb on rb.id = b.run_id \
                   where b.account_id = a.account_id and b.id <> a.id \
                     and rb.status in ",
            active_runs!(),
            " and b.phase in ",
            open_phases!(),
            " and (rb.created_at < r.created_at \
                          or (rb.created_at = r.created_at and b.run_id < a.run_id) \
                          or (b.run_id = a.run_id and b.seq < a.seq))) \
               and not exists (select 1 from actions c \
                   where c.account_id = a.account_id and c.id <> a.id \
                     and c.phase in ('claimed', 'sent') and c.claim_expires_at >= $2) \
             limit $3"
        )
    };
}

impl Store {
    /// Stores a run and all its actions (phase `planned`, in plan order) in one transaction,
    /// with its audit entry (`run.<status>`). Nothing reaches a target before this returns.
    #[tracing::instrument(skip_all, fields(run.kind = new.kind.as_str(), actions = actions.len()))]
    pub async fn create_run(
        &self,
        new: &NewRun,
        actions: &[PlannedAction],
    ) -> Result<RunId, StoreError> {
        const RUN: &str = "insert into runs (id, kind, mode, status, rules, started_by, \
             config_hash, plan_hash, action_count, budget, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        const ACTION: &str = "insert into actions (id, run_id, seq, target_id, account_id, \
             identity_id, account_key, username, kind, params, budget_kind, rule, reason, phase, \
             attempts, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'planned', 0, $14)";
        let id = RunId::new();
        let now = self.now();
        let count = i32::try_from(actions.len())
            .map_err(|_| StoreError::Conflict("too many actions in one run".into()))?;
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, |conn| sqlx::query(RUN)
            .bind(id.0)
            .bind(new.kind.as_str())
            .bind(new.mode.as_str())
            .bind(new.status.as_str())
            .bind(Json(&new.rules))
            .bind(&new.started_by)
            .bind(&new.config_hash)
            .bind(&new.plan_hash)
            .bind(count)
            .bind(Json(&new.budget))
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|_| ()))?;
        for (seq, a) in actions.iter().enumerate() {
            let params = serde_json::to_value(&a.kind)
                .map_err(|e| StoreError::Corrupt(format!("action params: {e}")))?;
            let reason = serde_json::to_value(&a.reason)
                .map_err(|e| StoreError::Corrupt(format!("action reason: {e}")))?;
            on_tx!(&mut tx, |conn| sqlx::query(ACTION)
                .bind(ActionId::new().0)
                .bind(id.0)
                .bind(seq as i64)
                .bind(a.target_id.0)
                .bind(a.account_id.0)
                .bind(a.identity_id.map(|i| i.0))
                .bind(&a.account_key)
                .bind(&a.username)
                .bind(a.kind.name())
                .bind(Json(&params))
                .bind(a.kind.budget().as_str())
                .bind(&a.reason.rule)
                .bind(Json(&reason))
                .bind(now)
                .execute(&mut *conn)
                .await
                .map(|_| ()))?;
        }
        let mut per_kind: BTreeMap<&str, u64> = BTreeMap::new();
        for a in actions {
            *per_kind.entry(a.kind.name()).or_default() += 1;
        }
        self.append_audit(
            &mut tx,
            &NewAuditEntry {
                actor: new.started_by.clone(),
                action: format!("run.{}", new.status.as_str()),
                subject_kind: Some("run".into()),
                subject_id: Some(id.to_string()),
                detail: serde_json::json!({
                    "kind": new.kind.as_str(),
                    "mode": new.mode.as_str(),
                    "rules": new.rules,
                    "plan_hash": new.plan_hash,
                    "config_hash": new.config_hash,
                    "actions": per_kind,
                    "budget": new.budget,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The run `id`, if stored.
    pub async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        const SQL: &str = concat!("select ", run_columns!(), " from runs where id = $1");
        let row: Option<RunRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(id.0)
            .fetch_optional(pool)
            .await)?;
        row.map(RunRecord::try_from).transpose()
    }

    /// The newest runs first, at most `limit`.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        const SQL: &str = concat!(
            "select ",
            run_columns!(),
            " from runs order by created_at desc, id desc limit $1"
        );
        let rows: Vec<RunRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(RunRecord::try_from).collect()
    }

    /// Every action of run `id`, in plan order.
    pub async fn run_actions(&self, id: RunId) -> Result<Vec<ActionRecord>, StoreError> {
        const SQL: &str = concat!(
            "select ",
            action_columns!(),
            " from actions a join runs r on r.id = a.run_id where a.run_id = $1 order by a.seq"
        );
        let rows: Vec<ActionRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(id.0)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(ActionRecord::try_from).collect()
    }

    /// One action, if stored.
    pub async fn action(&self, id: ActionId) -> Result<Option<ActionRecord>, StoreError> {
        const SQL: &str = concat!(
            "select ",
            action_columns!(),
            " from actions a join runs r on r.id = a.run_id where a.id = $1"
        );
        let row: Option<ActionRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(id.0)
            .fetch_optional(pool)
            .await)?;
        row.map(ActionRecord::try_from).transpose()
    }

    /// Moves run `id` to `to` if its status is one of `from`; returns whether it changed.
    /// Entering `running` sets `started_at`, entering a final status sets `finished_at`.
    pub async fn set_run_status(
        &self,
        id: RunId,
        from: &[RunStatus],
        to: RunStatus,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "update runs set status = $2, \
             started_at = case when $2 = 'running' then coalesce(started_at, $3) else started_at end, \
             finished_at = case when $2 in ('succeeded', 'failed', 'cancelled', 'expired', 'recorded') \
                           then $3 else finished_at end \
             where id = $1 and status = $4";
        let now = self.now();
        // One conditional update per allowed status keeps the SQL identical on both backends.
        for f in from {
            let n = on_db!(&self.db, |pool| sqlx::query(SQL)
                .bind(id.0)
                .bind(to.as_str())
                .bind(now)
                .bind(f.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
            if n > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Records the approval of a held run (only from `held`); the caller has checked the
    /// policy (four eyes, plan hash, expiry). Returns whether it changed.
    pub async fn approve_run(
        &self,
        id: RunId,
        approver: &str,
        approved_at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "update runs set status = 'approved', approved_by = $2, \
             approved_at = $3, approval_expires_at = $4 where id = $1 and status = 'held'";
        let mut tx = self.begin_write().await?;
        let n = on_tx!(&mut tx, |conn| sqlx::query(SQL)
            .bind(id.0)
            .bind(approver)
            .bind(approved_at)
            .bind(expires_at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Ok(false);
        }
        self.append_audit(
            &mut tx,
            &NewAuditEntry {
                actor: approver.to_owned(),
                action: "run.approved".into(),
                subject_kind: Some("run".into()),
                subject_id: Some(id.to_string()),
                detail: serde_json::json!({ "expires_at": expires_at }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Distinct accounts per budget kind with actions that count against rolling budgets,
    /// created since `since_day` and since `since_week`: actions of enforce runs that were
    /// not skipped, failed or poisoned, in runs planned, approved, running or finished
    /// (held, cancelled, expired and recorded runs do not count).
    pub async fn budget_history(
        &self,
        since_day: DateTime<Utc>,
        since_week: DateTime<Utc>,
    ) -> Result<(BTreeMap<BudgetKind, u64>, BTreeMap<BudgetKind, u64>), StoreError> {
        Ok((
            self.budget_since(since_day).await?,
            self.budget_since(since_week).await?,
        ))
    }

    async fn budget_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<BudgetKind, u64>, StoreError> {
        const SQL: &str = "select a.budget_kind, count(distinct a.account_id) \
             from actions a join runs r on r.id = a.run_id \
             where r.mode = 'enforce' and r.created_at >= $1 \
               and r.status in ('approved', 'planned', 'running', 'succeeded', 'failed') \
               and a.phase not in ('skipped', 'failed', 'poisoned') \
             group by a.budget_kind";
        let rows: Vec<(String, i64)> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(since)
            .fetch_all(pool)
            .await)?;
        rows.into_iter()
            .map(|(k, n)| {
                Ok((
                    parse_text("budget kind", &k)?,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// The configuration hash of the newest enforce run that carried out any of `rules`
    /// (planned or further, not held, cancelled, expired or recorded).
    pub async fn last_enforced_config_hash(
        &self,
        rule_names: &[String],
    ) -> Result<Option<String>, StoreError> {
        const SQL: &str = "select rules, config_hash from runs where mode = 'enforce' \
             and status in ('approved', 'planned', 'running', 'succeeded', 'failed') \
             order by created_at desc, id desc limit 200";
        let rows: Vec<(Json<Vec<String>>, String)> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .find(|(rules, _)| rules.0.iter().any(|r| rule_names.contains(r)))
            .map(|(_, hash)| hash))
    }

    /// Whether any enforce run was ever carried out (or is being).
    pub async fn has_enforced_run(&self) -> Result<bool, StoreError> {
        const SQL: &str = "select count(*) from runs where mode = 'enforce' \
             and status in ('approved', 'planned', 'running', 'succeeded', 'failed')";
        let n: i64 = on_db!(&self.db, |pool| sqlx::query_scalar(SQL)
            .fetch_one(pool)
            .await)?;
        Ok(n > 0)
    }

    /// Claims up to `limit` actions for `executor_id` until `now + ttl`: planned ones that are
    /// due, and claimed or sent ones whose claim expired (a crashed executor's work, resumed;
    /// a resumed `sent` action stays `sent`, so the executor re-reads state before writing).
    /// At most one action per account: its first open one, in run order. `run` restricts the
    /// claim to one run. Runs of the claimed actions move to `running`.
    #[tracing::instrument(skip(self), fields(executor = %executor_id))]
    pub async fn claim_actions(
        &self,
        executor_id: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        limit: u32,
        run: Option<RunId>,
    ) -> Result<Vec<ActionRecord>, StoreError> {
        const SQLITE_SELECT: &str = claimable!();
        const PG_SELECT: &str = concat!(claimable!(), " for update of a skip locked");
        const CLAIM: &str = "update actions set \
             phase = case when phase = 'sent' then 'sent' else 'claimed' end, \
             claimed_by = $2, claim_expires_at = $3, attempts = attempts + 1, updated_at = $4 \
             where id = $1";
        const RUNNING: &str = "update runs set status = 'running', \
             started_at = coalesce(started_at, $2) \
             where id = $1 and status in ('planned', 'approved')";
        let expires = now + ttl;
        let limit = i64::from(limit);
        let mut tx = self.begin_write().await?;
        // The one spot where the dialects differ: PostgreSQL locks the chosen rows and skips
        // rows another executor is claiming; SQLite's write transaction is exclusive already.
        let rows: Vec<ActionRow> = match &mut tx {
            Tx::Sqlite(t, _) => {
                sqlx::query_as(SQLITE_SELECT)
                    .bind(run.map(|r| r.0))
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut **t)
                    .await?
            }
            Tx::Postgres(t) => {
                sqlx::query_as(PG_SELECT)
                    .bind(run.map(|r| r.0))
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut **t)
                    .await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        let mut runs: Vec<Uuid> = Vec::new();
        for row in rows {
            on_tx!(&mut tx, |conn| sqlx::query(CLAIM)
                .bind(row.id)
                .bind(executor_id)
                .bind(expires)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map(|_| ()))?;
            if !runs.contains(&row.run_id) {
                runs.push(row.run_id);
            }
            let mut rec = ActionRecord::try_from(row)?;
            if rec.phase != ActionPhase::Sent {
                rec.phase = ActionPhase::Claimed;
            }
            rec.claimed_by = Some(executor_id.to_owned());
            rec.claim_expires_at = Some(expires);
            rec.attempts += 1;
            rec.updated_at = now;
            out.push(rec);
        }
        for r in runs {
            on_tx!(&mut tx, |conn| sqlx::query(RUNNING)
                .bind(r)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map(|_| ()))?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// When something in scope may next become claimable: the earliest due time of an open
    /// action in an active run (a planned one's `not_before`, or now; a claimed or sent one's
    /// claim expiry). `None` when no open action remains.
    pub async fn next_claimable_at(
        &self,
        run: Option<RunId>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        const SQL: &str = concat!(
            "select a.phase, a.not_before, a.claim_expires_at \
             from actions a join runs r on r.id = a.run_id \
             where r.status in ",
            active_runs!(),
            " and a.phase in ",
            open_phases!(),
            " and ($1 is null or a.run_id = $1) \
             order by case when a.phase = 'planned' then coalesce(a.not_before, $2) \
                      else a.claim_expires_at end limit 1"
        );
        let now = self.now();
        type DueRow = (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let row: Option<DueRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(run.map(|r| r.0))
            .bind(now)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|(phase, not_before, expires)| {
            if phase == "planned" {
                not_before.unwrap_or(now)
            } else {
                expires.unwrap_or(now)
            }
        }))
    }

    /// Records several executor transitions in ONE transaction (a group commit): each is
    /// conditional on `me` still holding the action's claim, and each terminal one appends
    /// its audit entry. Returns, per change in order, whether it was recorded (false: the
    /// claim was lost). Either every recorded change commits or none does.
    pub async fn record_phases(
        &self,
        me: &str,
        changes: &[PhaseChange],
    ) -> Result<Vec<bool>, StoreError> {
        const SENT: &str = "update actions set phase = 'sent', \
             pre_image = coalesce(pre_image, $3), updated_at = $4 \
             where id = $1 and claimed_by = $2 and phase in ('claimed', 'sent')";
        const FINISHED: &str = "update actions set phase = $3, post_image = $4, \
             error = coalesce($5, error), updated_at = $6, finished_at = $6, \
             claim_expires_at = null \
             where id = $1 and claimed_by = $2 and phase in ('claimed', 'sent')";
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let done = match &mut tx {
            // One statement per kind of change: a round trip each, not one per action.
            Tx::Postgres(t) => Self::record_phases_pg(t, me, changes, now).await?,
            Tx::Sqlite(..) => {
                let mut done = Vec::with_capacity(changes.len());
                for change in changes {
                    let n = match change {
                        PhaseChange::Sent { id, pre_image } => {
                            on_tx!(&mut tx, |conn| sqlx::query(SENT)
                                .bind(id.0)
                                .bind(me)
                                .bind(Json(pre_image))
                                .bind(now)
                                .execute(&mut *conn)
                                .await
                                .map(|r| r.rows_affected()))?
                        }
                        PhaseChange::Finished {
                            id,
                            phase,
                            post_image,
                            error,
                            ..
                        } => on_tx!(&mut tx, |conn| sqlx::query(FINISHED)
                            .bind(id.0)
                            .bind(me)
                            .bind(phase.as_str())
                            .bind(post_image.as_ref().map(Json))
                            .bind(error.as_deref())
                            .bind(now)
                            .execute(&mut *conn)
                            .await
                            .map(|r| r.rows_affected()))?,
                    };
                    done.push(n > 0);
                }
                done
            }
        };
        // The audit entries last: on PostgreSQL they take the chain lock until commit.
        let audits: Vec<&NewAuditEntry> = changes
            .iter()
            .zip(&done)
            .filter_map(|(change, recorded)| match (change, recorded) {
                (PhaseChange::Finished { audit, .. }, true) => Some(audit),
                _ => None,
            })
            .collect();
        self.append_audits(&mut tx, &audits).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// [`Store::record_phases`] on PostgreSQL: every `sent` change in one `update … from
    /// unnest(…)`, every terminal one in another; which rows each updated says which changes
    /// were recorded.
    async fn record_phases_pg(
        t: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        me: &str,
        changes: &[PhaseChange],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        const SENT: &str = "update actions a set phase = 'sent', \
             pre_image = coalesce(a.pre_image, v.pre_image), updated_at = $3 \
             from unnest($1::uuid[], $2::jsonb[]) as v(id, pre_image) \
             where a.id = v.id and a.claimed_by = $4 and a.phase in ('claimed', 'sent') \
             returning a.id";
        const FINISHED: &str = "update actions a set phase = v.phase, post_image = v.post_image, \
             error = coalesce(v.error, a.error), updated_at = $5, finished_at = $5, \
             claim_expires_at = null \
             from unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[]) \
             as v(id, phase, post_image, error) \
             where a.id = v.id and a.claimed_by = $6 and a.phase in ('claimed', 'sent') \
             returning a.id";
        let mut sent_ids = Vec::new();
        let mut sent_images = Vec::new();
        let (mut ids, mut phases, mut posts, mut errors) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for change in changes {
            match change {
                PhaseChange::Sent { id, pre_image } => {
                    sent_ids.push(id.0);
                    sent_images.push(Json(pre_image));
                }
                PhaseChange::Finished {
                    id,
                    phase,
                    post_image,
                    error,
                    ..
                } => {
                    ids.push(id.0);
                    phases.push(phase.as_str());
                    posts.push(post_image.as_ref().map(Json));
                    errors.push(error.as_deref());
                }
            }
        }
        let mut recorded = std::collections::HashSet::new();
        if !sent_ids.is_empty() {
            let rows: Vec<Uuid> = sqlx::query_scalar(SENT)
                .bind(&sent_ids)
                .bind(&sent_images)
                .bind(now)
                .bind(me)
                .fetch_all(&mut **t)
                .await?;
            recorded.extend(rows);
        }
        if !ids.is_empty() {
            let rows: Vec<Uuid> = sqlx::query_scalar(FINISHED)
                .bind(&ids)
                .bind(&phases)
                .bind(&posts)
                .bind(&errors)
                .bind(now)
                .bind(me)
                .fetch_all(&mut **t)
                .await?;
            recorded.extend(rows);
        }
        Ok(changes
            .iter()
            .map(|c| {
                let id = match c {
                    PhaseChange::Sent { id, .. } | PhaseChange::Finished { id, .. } => id.0,
                };
                recorded.contains(&id)
            })
            .collect())
    }

    /// Puts the action back to `planned`, due at `not_before`, after a transient `error`.
    pub async fn mark_retry(
        &self,
        id: ActionId,
        me: &str,
        error: &str,
        not_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "update actions set phase = 'planned', error = $3, not_before = $4, \
             claim_expires_at = null, updated_at = $5 \
             where id = $1 and claimed_by = $2 and phase in ('claimed', 'sent')";
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let n = on_tx!(&mut tx, |conn| sqlx::query(SQL)
            .bind(id.0)
            .bind(me)
            .bind(error)
            .bind(not_before)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Skips the account's open, unclaimed actions after `after_seq` in `run` (an earlier
    /// rung failed), one audit entry each. Returns how many were skipped.
    pub async fn skip_later_actions(
        &self,
        run: RunId,
        account: AccountId,
        after_seq: i64,
        why: &str,
        actor: &str,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "update actions set phase = 'skipped', error = $4, updated_at = $5, \
             finished_at = $5 \
             where run_id = $1 and account_id = $2 and seq > $3 and phase = 'planned' \
             returning id, kind, username";
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let rows: Vec<(Uuid, String, String)> = on_tx!(&mut tx, |conn| sqlx::query_as(SQL)
            .bind(run.0)
            .bind(account.0)
            .bind(after_seq)
            .bind(why)
            .bind(now)
            .fetch_all(&mut *conn)
            .await)?;
        for (id, kind, username) in &rows {
            self.append_audit(
                &mut tx,
                &NewAuditEntry {
                    actor: actor.to_owned(),
                    action: format!("action.{kind}.skipped"),
                    subject_kind: Some("account".into()),
                    subject_id: Some(account.to_string()),
                    detail: serde_json::json!({
                        "run": run.to_string(),
                        "action": id.to_string(),
                        "username": username,
                        "why": why,
                    }),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Finishes run `id` when no open action remains: `recorded` for a dry run, `failed` when
    /// any action failed or was poisoned, else `succeeded`; stores the count per phase.
    /// Returns the final status when it finished it now.
    pub async fn finish_run_if_done(&self, id: RunId) -> Result<Option<RunStatus>, StoreError> {
        const COUNTS: &str = "select phase, count(*) from actions where run_id = $1 group by phase";
        const MODE: &str = "select mode from runs where id = $1";
        const FINISH: &str = "update runs set status = $2, finished_at = $3, summary = $4 \
             where id = $1 and status in ('planned', 'approved', 'running')";
        let mut tx = self.begin_write().await?;
        let counts: Vec<(String, i64)> = on_tx!(&mut tx, |conn| sqlx::query_as(COUNTS)
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await)?;
        let mut per_phase = BTreeMap::new();
        for (phase, n) in &counts {
            per_phase.insert(phase.clone(), *n);
        }
        let open = ["planned", "claimed", "sent"]
            .iter()
            .any(|p| per_phase.get(*p).copied().unwrap_or(0) > 0);
        if open {
            return Ok(None);
        }
        let mode: Option<String> = on_tx!(&mut tx, |conn| sqlx::query_scalar(MODE)
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await)?;
        let Some(mode) = mode else {
            return Ok(None);
        };
        let bad = ["failed", "poisoned"]
            .iter()
            .any(|p| per_phase.get(*p).copied().unwrap_or(0) > 0);
        let status = if mode == RuleMode::DryRun.as_str() {
            RunStatus::Recorded
        } else if bad {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let now = self.now();
        let summary = serde_json::to_value(&per_phase).unwrap_or(Value::Null);
        let n = on_tx!(&mut tx, |conn| sqlx::query(FINISH)
            .bind(id.0)
            .bind(status.as_str())
            .bind(now)
            .bind(Json(&summary))
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Ok(None);
        }
        self.append_audit(
            &mut tx,
            &NewAuditEntry {
                actor: "engine".into(),
                action: format!("run.{}", status.as_str()),
                subject_kind: Some("run".into()),
                subject_id: Some(id.to_string()),
                detail: serde_json::json!({ "actions": summary }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(status))
    }
}
