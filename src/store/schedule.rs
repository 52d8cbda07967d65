//! The ticks of scheduled jobs: when each job last fired, claimed under the scheduler lease's
//! epoch so that a tick runs at most once across instances and a deposed holder cannot claim
//! one (its epoch is refused by [`super::lease::fence`]).

use chrono::{DateTime, Utc};

use super::lease::{SCHEDULER_LEASE, fence};
use super::{Store, StoreError, on_db, on_tx};

impl Store {
    /// When `job` last fired, if ever.
    pub async fn last_fired(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        const SQL: &str = "select last_fired from schedule_ticks where job = $1";
        Ok(on_db!(&self.db, |pool| sqlx::query_scalar(SQL)
            .bind(job)
            .fetch_optional(pool)
            .await)?)
    }

    /// Claims `tick` of `job` for the scheduler lease's holder at `epoch`: true when this
    /// call moved the job's last tick forward to `tick` (the caller then runs the job), false
    /// when the job had already fired at or after it. A stale epoch is an error.
    pub async fn claim_tick(
        &self,
        job: &str,
        tick: DateTime<Utc>,
        epoch: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "insert into schedule_ticks (job, last_fired, epoch, claimed_at) \
             values ($1, $2, $3, $4) \
             on conflict (job) do update set last_fired = excluded.last_fired, \
             epoch = excluded.epoch, claimed_at = excluded.claimed_at \
             where schedule_ticks.last_fired < excluded.last_fired";
        let now = self.now();
        let mut tx = self.begin_write().await?;
        fence(&mut tx, SCHEDULER_LEASE, epoch, now).await?;
        let n = on_tx!(&mut tx, |conn| sqlx::query(SQL)
            .bind(job)
            .bind(tick)
            .bind(epoch)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(n > 0)
    }
}
