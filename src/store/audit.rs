//! The audit log: append-only and hash-chained. Each entry's hash covers the previous entry's
//! hash and the entry's own fields, so any edit, deletion or reordering of stored entries
//! breaks the chain from that point on. Entries are appended inside the transaction of the
//! change they record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_db, on_tx};

/// The hash that stands before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, by whom, to what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    /// Who acted: `scim:<token prefix>`, `cli`, `engine`, an admin's name.
    pub actor: String,
    /// A dotted verb, e.g. `scim.user.create`.
    pub action: String,
    /// The kind of thing acted on, e.g. `scim_user`.
    pub subject_kind: Option<String>,
    /// Its id.
    pub subject_id: Option<String>,
    /// Details: before/after images, counts, reasons.
    pub detail: Value,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    id: Uuid,
    occurred_at: DateTime<Utc>,
    actor: String,
    action: String,
    subject_kind: Option<String>,
    subject_id: Option<String>,
    detail: Json<Value>,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            seq: r.seq,
            id: r.id,
            occurred_at: r.occurred_at,
            actor: r.actor,
            action: r.action,
            subject_kind: r.subject_kind,
            subject_id: r.subject_id,
            detail: r.detail.0,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// The hash of an entry: SHA-256 over the previous hash and the entry's fields, each on its
/// own line, with the detail as compact JSON (keys sorted).
pub fn entry_hash(
    prev_hash: &str,
    id: Uuid,
    occurred_at: DateTime<Utc>,
    entry: &NewAuditEntry,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &id.to_string(),
        &occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        &entry.actor,
        &entry.action,
        entry.subject_kind.as_deref().unwrap_or(""),
        entry.subject_id.as_deref().unwrap_or(""),
        &entry.detail.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Serialises appenders on PostgreSQL for the rest of the transaction.
const PG_AUDIT_LOCK: &str = "select pg_advisory_xact_lock(7301880211)";

impl Store {
    /// Appends an entry inside `tx`. Call it last in the transaction: on PostgreSQL it takes the
    /// chain lock until commit.
    pub(crate) async fn append_audit(
        &self,
        tx: &mut Tx,
        entry: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        const LAST: &str = "select hash from audit_log order by seq desc limit 1";
        const INSERT: &str = "insert into audit_log (id, occurred_at, actor, action, subject_kind, \
             subject_id, detail, prev_hash, hash) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        if let Tx::Postgres(t) = tx {
            sqlx::query(PG_AUDIT_LOCK).execute(&mut **t).await?;
        }
        let id = Uuid::now_v7();
        let at = self.now();
        let prev: Option<String> = on_tx!(tx, |conn| sqlx::query_scalar(LAST)
            .fetch_optional(&mut *conn)
            .await)?;
        let prev = prev.unwrap_or_else(|| GENESIS_HASH.to_owned());
        let hash = entry_hash(&prev, id, at, entry);
        on_tx!(tx, |conn| {
            sqlx::query(INSERT)
                .bind(id)
                .bind(at)
                .bind(&entry.actor)
                .bind(&entry.action)
                .bind(&entry.subject_kind)
                .bind(&entry.subject_id)
                .bind(Json(&entry.detail))
                .bind(&prev)
                .bind(&hash)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Entries with `seq` greater than `after`, oldest first, at most `limit`.
    pub async fn audit_entries(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        const SQL: &str = "select seq, id, occurred_at, actor, action, subject_kind, subject_id, \
             detail, prev_hash, hash from audit_log where seq > $1 order by seq limit $2";
        let rows: Vec<AuditRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// Checks the whole chain; returns the number of entries, or the first broken one.
    pub async fn verify_audit_chain(&self) -> Result<Result<u64, AuditEntry>, StoreError> {
        let mut prev = GENESIS_HASH.to_owned();
        let mut after = 0;
        let mut count = 0u64;
        loop {
            let batch = self.audit_entries(after, 1000).await?;
            if batch.is_empty() {
                return Ok(Ok(count));
            }
            for e in batch {
                let expected = entry_hash(
                    &prev,
                    e.id,
                    e.occurred_at,
                    &NewAuditEntry {
                        actor: e.actor.clone(),
                        action: e.action.clone(),
                        subject_kind: e.subject_kind.clone(),
                        subject_id: e.subject_id.clone(),
                        detail: e.detail.clone(),
                    },
                );
                if e.prev_hash != prev || e.hash != expected {
                    return Ok(Err(e));
                }
                prev = e.hash.clone();
                after = e.seq;
                count += 1;
            }
        }
    }
}
