//! What licence-back-on-login reads and writes: each account's open removal episode (the
//! newest enforced rule run that took something away from it, not yet followed by a
//! confirmed regrant or undo on it, with the state idbridge found the account in before it
//! touched it), and the alerts raised about accounts, each raised once per signal with its
//! audit entry in the same transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{NewAuditEntry, Store, StoreError, on_db, on_tx};
use crate::domain::{AccountId, Cause, Reason, RunId, TargetId};

/// The account as the executor read it just before idbridge's first write in a run (the
/// `pre_image` JSON `{"username","active","directory","groups"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreImage {
    pub username: String,
    pub active: bool,
    #[serde(default)]
    pub directory: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// An account's open removal episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemovalEpisode {
    pub account_id: AccountId,
    /// The enforced rule or bulk run that removed.
    pub run_id: RunId,
    /// The causes of its confirmed actions on the account (sorted, no repeats).
    pub causes: Vec<Cause>,
    /// The rules behind them (sorted, no repeats).
    pub rules: Vec<String>,
    /// When the first of those actions finished.
    pub removed_at: DateTime<Utc>,
    /// The account before the run's first action on it, when one was recorded and readable.
    pub pre_image: Option<PreImage>,
}

impl RemovalEpisode {
    /// The cause that decides: a leaver if any action was a leaver's; else other if any was
    /// neither; else inactivity.
    pub fn cause(&self) -> Cause {
        if self.causes.contains(&Cause::Leaver) {
            Cause::Leaver
        } else if self.causes.is_empty() || self.causes.contains(&Cause::Other) {
            Cause::Other
        } else {
            Cause::Inactivity
        }
    }
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Someone removed as a leaver (or not active in their IdP) signed in.
    LeaverSignIn,
    /// A regrant is due but the target has no free seat.
    NoFreeSeat,
}

impl AlertKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::LeaverSignIn => "leaver_sign_in",
            AlertKind::NoFreeSeat => "no_free_seat",
        }
    }

    /// The audit action the alert is recorded under.
    pub fn audit_action(self) -> &'static str {
        match self {
            AlertKind::LeaverSignIn => "security.leaver_sign_in",
            AlertKind::NoFreeSeat => "licence.no_free_seat",
        }
    }
}

#[derive(sqlx::FromRow)]
struct EpisodeActionRow {
    account_id: Uuid,
    run_id: Uuid,
    rule: String,
    reason: Json<Value>,
    pre_image: Option<Json<Value>>,
    post_image: Option<Json<Value>>,
    finished_at: Option<DateTime<Utc>>,
}

/// Every confirmed action of each account's open episode, by account, run and sequence.
/// `removal` is each (account, enforced rule run) with a confirmed removal on the account;
/// `latest` keeps the newest run per account; an episode stays open until a confirmed
/// action of a later enforced regrant or undo run on the same account.
const EPISODE_ACTIONS: &str = "\
    with removal as ( \
        select a.account_id, a.run_id, max(r.created_at) as run_at \
        from actions a join runs r on r.id = a.run_id \
        where r.kind in ('rule', 'bulk') and r.mode = 'enforce' and a.phase = 'confirmed' \
          and a.kind in ('remove_from_group', 'deactivate', 'rename', 'change_directory', \
                         'delete') \
        group by a.account_id, a.run_id \
    ), latest as ( \
        select account_id, run_id, run_at, \
               row_number() over (partition by account_id order by run_at desc, run_id desc) \
                 as n \
        from removal \
    ), episodes as ( \
        select l.account_id, l.run_id from latest l \
        where l.n = 1 and not exists ( \
            select 1 from actions b join runs rb on rb.id = b.run_id \
            where b.account_id = l.account_id and b.phase = 'confirmed' \
              and rb.kind in ('regrant', 'undo') and rb.mode = 'enforce' \
              and rb.created_at > l.run_at) \
    ) \
    select a.account_id, a.run_id, a.rule, a.reason, a.pre_image, a.post_image, a.finished_at \
    from actions a join episodes o on o.account_id = a.account_id and o.run_id = a.run_id \
    where a.phase = 'confirmed' \
    order by a.account_id, a.run_id, a.seq";

impl Store {
    /// Every account's open removal episode, in account id order. One query.
    #[tracing::instrument(skip_all)]
    pub async fn removal_episodes(&self) -> Result<Vec<RemovalEpisode>, StoreError> {
        let rows: Vec<EpisodeActionRow> = on_db!(&self.db, |pool| sqlx::query_as(EPISODE_ACTIONS)
            .fetch_all(pool)
            .await)?;
        let mut out: Vec<RemovalEpisode> = Vec::new();
        for r in rows {
            let reason: Option<Reason> = serde_json::from_value(r.reason.0).ok();
            let cause = reason.map(|x| x.cause).unwrap_or_default();
            let finished = r.finished_at;
            let same = out
                .last()
                .is_some_and(|e| e.account_id.0 == r.account_id && e.run_id.0 == r.run_id);
            if !same {
                // The run's first confirmed action on the account: what the executor read
                // before its write, or (found already done) the state it confirmed.
                let image = r.pre_image.or(r.post_image).map(|j| j.0);
                let pre_image = image.and_then(|v| serde_json::from_value::<PreImage>(v).ok());
                out.push(RemovalEpisode {
                    account_id: AccountId(r.account_id),
                    run_id: RunId(r.run_id),
                    causes: Vec::new(),
                    rules: Vec::new(),
                    removed_at: finished.unwrap_or(DateTime::<Utc>::MAX_UTC),
                    pre_image,
                });
            }
            let Some(e) = out.last_mut() else { continue };
            if !e.causes.contains(&cause) {
                e.causes.push(cause);
                e.causes.sort();
            }
            if !e.rules.contains(&r.rule) {
                e.rules.push(r.rule);
                e.rules.sort();
            }
            if let Some(f) = finished
                && f < e.removed_at
            {
                e.removed_at = f;
            }
        }
        Ok(out)
    }

    /// Raises an alert about `account` for the signal seen at `signal_at`, with its audit
    /// entry (`security.leaver_sign_in` or `licence.no_free_seat`, actor `regrant`) in the
    /// same transaction. False, and nothing written, when that alert was raised before.
    #[tracing::instrument(skip_all, fields(kind = kind.as_str(), account = %account))]
    pub async fn raise_alert(
        &self,
        account: AccountId,
        kind: AlertKind,
        signal_at: DateTime<Utc>,
        detail: &Value,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "insert into alerts (id, account_id, kind, signal_at, raised_at, detail) \
             values ($1, $2, $3, $4, $5, $6) \
             on conflict (account_id, kind, signal_at) do nothing";
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let n = on_tx!(&mut tx, |conn| sqlx::query(SQL)
            .bind(Uuid::now_v7())
            .bind(account.0)
            .bind(kind.as_str())
            .bind(signal_at)
            .bind(now)
            .bind(Json(detail))
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Ok(false);
        }
        self.append_audit(
            &mut tx,
            &NewAuditEntry {
                actor: "regrant".into(),
                action: kind.audit_action().into(),
                subject_kind: Some("account".into()),
                subject_id: Some(account.to_string()),
                detail: detail.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// How many accounts of `target` a confirmed, enforced regrant action touched at or
    /// after `since`: seats an inventory that started at `since` may not have counted.
    pub async fn regranted_since(
        &self,
        target: TargetId,
        since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "select count(distinct a.account_id) from actions a \
             join runs r on r.id = a.run_id \
             where r.kind = 'regrant' and r.mode = 'enforce' and a.phase = 'confirmed' \
               and a.target_id = $1 and a.finished_at >= $2";
        let n: i64 = on_db!(&self.db, |pool| sqlx::query_scalar(SQL)
            .bind(target.0)
            .bind(since)
            .fetch_one(pool)
            .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// How many alerts of `kind` were raised about `account`.
    pub async fn alert_count(
        &self,
        account: AccountId,
        kind: AlertKind,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "select count(*) from alerts where account_id = $1 and kind = $2";
        let n: i64 = on_db!(&self.db, |pool| sqlx::query_scalar(SQL)
            .bind(account.0)
            .bind(kind.as_str())
            .fetch_one(pool)
            .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
