//! Leases with a fencing epoch: which idbridge instance runs the scheduler.
//!
//! A lease is one `scheduler_lease` row (name, holder, pid, epoch, expiry). A holder takes it
//! with [`Store::acquire_lease`] when it is free, expired or released, and keeps it by calling
//! again before it expires (a renewal). Each taking after another holder's term (or after the
//! same holder's term ended) bumps the epoch by one; a renewal keeps it. Taking and renewing
//! are one conditional upsert, so on PostgreSQL concurrent callers cannot both win: the
//! losers wait on the row and then see a live lease held by someone else.
//!
//! The epoch fences writes. Work done under a lease carries the epoch it was started with,
//! and the write that records it calls [`fence`] in the same transaction: the write goes
//! through only if that epoch is still the current one and the lease has not expired; a
//! stale holder (one that paused past its expiry while another took over) gets
//! [`LeaseError::StaleEpoch`]. On PostgreSQL [`fence`] takes a share lock on the lease row,
//! so a takeover waits until the fenced write has committed or rolled back; SQLite's write
//! transaction is exclusive already. Releasing a lease ([`Store::release_lease`]) expires it
//! at once and keeps the row, so the epoch never goes back.
//!
//! Single instance on SQLite: there is no separate mechanism. [`Store::claim_scheduler`]
//! takes the [`SCHEDULER_LEASE`] on either backend; on PostgreSQL a lease held elsewhere is
//! normal (this replica stands by and its executors still claim actions), while on SQLite it
//! means a second idbridge process against the same file, and it is refused with
//! [`LeaseError::HeldElsewhere`], naming the holder, its pid and the expiry. A holder that
//! dies without releasing blocks the scheduler until its lease expires (one time-to-live).
//!
//! Holder names should be unique per process (e.g. host, pid and a random suffix): a process
//! restarted under the same holder name would renew its predecessor's term, epoch and all.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Store, StoreError, Tx, on_tx};
use crate::config::DatabaseBackend;

/// The name of the lease whose holder runs the scheduler.
pub const SCHEDULER_LEASE: &str = "scheduler";

/// A lease as stored: who holds it, under which epoch, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// The process id of the holder when it last took or renewed the lease.
    pub pid: i64,
    /// Grows by one with every new term; the same for every renewal within a term.
    pub epoch: i64,
    /// When the current term began.
    pub acquired_at: DateTime<Utc>,
    /// The lease is free from this instant on.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Whether the lease is held at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// Why a lease operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// A write carried an epoch that is no longer the live one.
    #[error("lease `{name}`: epoch {epoch} is stale ({})", stale_reason(*.epoch, *.current))]
    StaleEpoch {
        name: String,
        epoch: i64,
        /// The stored epoch, if the lease exists; equal to `epoch` when the term expired.
        current: Option<i64>,
    },
    /// On SQLite: another process holds the scheduler lease.
    #[error(
        "another idbridge instance (holder {holder}, pid {pid}) runs the scheduler on this \
         database until {until}; stop it or wait for its lease to expire"
    )]
    HeldElsewhere {
        holder: String,
        pid: i64,
        until: DateTime<Utc>,
    },
    /// The time to live is zero, negative or too large to add to the clock.
    #[error("lease `{name}`: time to live must be positive and finite, got {ttl_ms} ms")]
    BadTtl { name: String, ttl_ms: i64 },
}

fn stale_reason(epoch: i64, current: Option<i64>) -> String {
    match current {
        None => "no such lease".into(),
        Some(c) if c == epoch => "its term has expired".into(),
        Some(c) => format!("the current epoch is {c}"),
    }
}

#[derive(sqlx::FromRow)]
struct LeaseRow {
    name: String,
    holder: String,
    pid: i64,
    epoch: i64,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<LeaseRow> for Lease {
    fn from(r: LeaseRow) -> Self {
        Lease {
            name: r.name,
            holder: r.holder,
            pid: r.pid,
            epoch: r.epoch,
            acquired_at: r.acquired_at,
            expires_at: r.expires_at,
        }
    }
}

/// Refuses the surrounding write unless `epoch` is the live epoch of lease `name` at `now`.
/// Call it inside the write's own transaction, before committing.
pub(crate) async fn fence(
    tx: &mut Tx,
    name: &str,
    epoch: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    const SQLITE: &str = "select epoch, expires_at from scheduler_lease where name = $1";
    // The one spot where the dialects differ: PostgreSQL holds the row against a takeover
    // until this transaction ends; SQLite's write transaction is exclusive already.
    const POSTGRES: &str =
        "select epoch, expires_at from scheduler_lease where name = $1 for share";
    let row: Option<(i64, DateTime<Utc>)> = match tx {
        Tx::Sqlite(t, _) => {
            sqlx::query_as(SQLITE)
                .bind(name)
                .fetch_optional(&mut **t)
                .await?
        }
        Tx::Postgres(t) => {
            sqlx::query_as(POSTGRES)
                .bind(name)
                .fetch_optional(&mut **t)
                .await?
        }
    };
    match row {
        Some((current, expires_at)) if current == epoch && expires_at > now => Ok(()),
        other => {
            tracing::warn!(lease = name, epoch, current = ?other.map(|r| r.0), "stale lease epoch refused");
            Err(LeaseError::StaleEpoch {
                name: name.to_owned(),
                epoch,
                current: other.map(|r| r.0),
            }
            .into())
        }
    }
}

impl Store {
    /// Takes lease `name` for `holder` until now + `ttl` if it is free, expired or released
    /// (the epoch grows by one), or renews it if `holder` holds it (same epoch). `None` when
    /// another holder's term is live.
    #[tracing::instrument(skip(self, ttl), fields(ttl_ms = ttl.num_milliseconds()))]
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        const SQL: &str = "insert into scheduler_lease \
             (name, holder, pid, epoch, acquired_at, expires_at) values ($1, $2, $3, 1, $4, $5) \
             on conflict (name) do update set \
             epoch = case when scheduler_lease.holder = excluded.holder \
                 and scheduler_lease.expires_at > excluded.acquired_at \
                 then scheduler_lease.epoch else scheduler_lease.epoch + 1 end, \
             acquired_at = case when scheduler_lease.holder = excluded.holder \
                 and scheduler_lease.expires_at > excluded.acquired_at \
                 then scheduler_lease.acquired_at else excluded.acquired_at end, \
             holder = excluded.holder, pid = excluded.pid, expires_at = excluded.expires_at \
             where scheduler_lease.holder = excluded.holder \
                or scheduler_lease.expires_at <= excluded.acquired_at \
             returning name, holder, pid, epoch, acquired_at, expires_at";
        let now = self.now();
        let expires = match now.checked_add_signed(ttl) {
            Some(e) if ttl > Duration::zero() => e,
            _ => {
                return Err(LeaseError::BadTtl {
                    name: name.to_owned(),
                    ttl_ms: ttl.num_milliseconds(),
                }
                .into());
            }
        };
        let pid = i64::from(std::process::id());
        let mut tx = self.begin_write().await?;
        let row: Option<LeaseRow> = on_tx!(&mut tx, |conn| sqlx::query_as(SQL)
            .bind(name)
            .bind(holder)
            .bind(pid)
            .bind(now)
            .bind(expires)
            .fetch_optional(&mut *conn)
            .await)?;
        tx.commit().await?;
        let lease = row.map(Lease::from);
        match &lease {
            Some(l) if l.acquired_at == now => {
                tracing::info!(lease = name, holder, epoch = l.epoch, "lease taken");
            }
            Some(l) => tracing::debug!(lease = name, holder, epoch = l.epoch, "lease renewed"),
            None => tracing::debug!(lease = name, holder, "lease held elsewhere"),
        }
        Ok(lease)
    }

    /// Ends `holder`'s live term on lease `name` now, so that another holder may take it at
    /// once. False when `holder` held no live term.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        const SQL: &str = "update scheduler_lease set expires_at = $3 \
             where name = $1 and holder = $2 and expires_at > $3";
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let done = on_tx!(&mut tx, |conn| sqlx::query(SQL)
            .bind(name)
            .bind(holder)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        if done > 0 {
            tracing::info!(lease = name, holder, "lease released");
        }
        Ok(done > 0)
    }

    /// Lease `name` as stored, live or not; `None` if it was never taken.
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        const SQL: &str = "select name, holder, pid, epoch, acquired_at, expires_at \
             from scheduler_lease where name = $1";
        let row: Option<LeaseRow> = super::on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(name)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(Lease::from))
    }

    /// Ok when `epoch` is the live epoch of lease `name`; [`LeaseError::StaleEpoch`]
    /// otherwise. Runs [`fence`] in a write transaction of its own; a write that must be
    /// fenced calls [`fence`] in its own transaction instead.
    pub async fn check_epoch(&self, name: &str, epoch: i64) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        fence(&mut tx, name, epoch, now).await?;
        tx.commit().await
    }

    /// Takes or renews the [`SCHEDULER_LEASE`] for `holder`. On PostgreSQL `None` means
    /// another replica runs the scheduler. On SQLite only one process may use the database's
    /// scheduler, so a lease held elsewhere is [`LeaseError::HeldElsewhere`].
    pub async fn claim_scheduler(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        // Two tries: the other holder may release between the refused take and the read.
        for _ in 0..2 {
            if let Some(lease) = self.acquire_lease(SCHEDULER_LEASE, holder, ttl).await? {
                return Ok(Some(lease));
            }
            if self.backend() == DatabaseBackend::Postgres {
                return Ok(None);
            }
            if let Some(other) = self.lease(SCHEDULER_LEASE).await?
                && other.is_live(self.now())
            {
                return Err(LeaseError::HeldElsewhere {
                    holder: other.holder,
                    pid: other.pid,
                    until: other.expires_at,
                }
                .into());
            }
        }
        Ok(None)
    }
}
