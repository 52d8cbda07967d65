//! The audit log: append-only, hash-chained and, with a key, authenticated. Each entry's hash
//! covers the previous entry's hash and the entry's own fields, so any edit, deletion or
//! reordering of stored entries breaks the chain from that point on. With an [`AuditKey`]
//! (kept outside the database) the hash is an HMAC-SHA-256, so someone with write access to
//! the database alone cannot recompute a tampered chain. Entries are appended inside the
//! transaction of the change they record, one appender at a time.
//!
//! [`ChainVerifier`] checks entries one by one, in `seq` order; `engine::audit` walks the
//! stored log through it in batches.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, Tx, on_db, on_tx};

/// The hash that stands before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Plain SHA-256 entries: written without a key (before one was configured). Tamper-evident
/// only against someone who cannot recompute the chain.
pub const SCHEME_SHA256: &str = "sha256";
/// HMAC-SHA-256 entries under the audit key.
pub const SCHEME_HMAC: &str = "hmac-sha256";

pub use crate::config::MIN_AUDIT_KEY_BYTES;

/// The audit log's HMAC key. Never stored in the database, never shown: `Debug` prints
/// `AuditKey(***)`.
#[derive(Clone)]
pub struct AuditKey(Arc<SecretSlice<u8>>);

/// The key is too short to be a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit key must be at least {MIN_AUDIT_KEY_BYTES} bytes, not {0}")]
pub struct ShortAuditKey(pub usize);

impl AuditKey {
    /// A key from its bytes (at least [`MIN_AUDIT_KEY_BYTES`]).
    pub fn new(bytes: Vec<u8>) -> Result<Self, ShortAuditKey> {
        if bytes.len() < MIN_AUDIT_KEY_BYTES {
            return Err(ShortAuditKey(bytes.len()));
        }
        Ok(Self(Arc::new(SecretSlice::from(bytes))))
    }

    /// An HMAC-SHA-256 instance keyed with this key.
    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret()) {
            Ok(m) => m,
            Err(_) => <Hmac<Sha256> as KeyInit>::new(&Default::default()),
        }
    }

    /// HMAC-SHA-256 (hex) over `parts`, each length-prefixed.
    pub fn sign(&self, parts: &[&str]) -> String {
        let mut m = self.mac();
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p.as_bytes());
        }
        hex(&m.finalize().into_bytes())
    }

    /// Whether `tag` (hex) is the HMAC of `parts`, compared in constant time.
    pub fn check(&self, parts: &[&str], tag: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.sign(parts);
        expected.len() == tag.len() && bool::from(expected.as_bytes().ct_eq(tag.as_bytes()))
    }

    /// The key's bytes, for tests that look for leaks; nothing else may call it.
    #[doc(hidden)]
    pub fn expose_for_tests(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(***)")
    }
}

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
    /// [`SCHEME_SHA256`] or [`SCHEME_HMAC`].
    pub scheme: String,
}

impl AuditEntry {
    fn fields(&self) -> NewAuditEntry {
        NewAuditEntry {
            actor: self.actor.clone(),
            action: self.action.clone(),
            subject_kind: self.subject_kind.clone(),
            subject_id: self.subject_id.clone(),
            detail: self.detail.clone(),
        }
    }
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
    scheme: String,
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
            scheme: r.scheme,
        }
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The legacy (`sha256`) hash of an entry: SHA-256 over the previous hash and the entry's
/// fields, each on its own line, with the detail as compact JSON (keys sorted).
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
        &timestamp(occurred_at),
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

/// The `hmac-sha256` hash of an entry: HMAC-SHA-256 under `key` over the scheme, the previous
/// hash and the entry's fields (detail as compact JSON, keys sorted). Unlike the legacy
/// framing, every field is length-prefixed and absent optional fields differ from empty
/// ones, so no text can be moved from one field into the next without changing the hash.
pub fn entry_mac(
    key: &AuditKey,
    prev_hash: &str,
    id: Uuid,
    occurred_at: DateTime<Utc>,
    entry: &NewAuditEntry,
) -> String {
    let optional = |o: &Option<String>| match o {
        Some(v) => format!("+{v}"),
        None => "-".to_owned(),
    };
    key.sign(&[
        SCHEME_HMAC,
        prev_hash,
        &id.to_string(),
        &timestamp(occurred_at),
        &entry.actor,
        &entry.action,
        &optional(&entry.subject_kind),
        &optional(&entry.subject_id),
        &entry.detail.to_string(),
    ])
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// What is wrong with the entry at which the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum ChainProblem {
    /// The entry's fields or hash were changed: its hash is not what its fields give.
    Altered { scheme: String },
    /// The entry does not follow the one before it: an entry was deleted, inserted or
    /// reordered. `missing` gives the seq range absent before it, if any.
    Unlinked {
        after_seq: Option<i64>,
        missing: Option<(i64, i64)>,
    },
    /// A plain SHA-256 entry after the first HMAC one: someone rewrote it without the key.
    Downgrade,
    /// A scheme this build does not know.
    UnknownScheme { scheme: String },
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::Altered { scheme } if scheme == SCHEME_HMAC => f.write_str(
                "its HMAC does not match its fields (changed, or forged without the key)",
            ),
            ChainProblem::Altered { .. } => {
                f.write_str("its hash does not match its fields (changed)")
            }
            ChainProblem::Unlinked {
                after_seq,
                missing: Some((from, to)),
            } => {
                let range = if from == to {
                    format!("entry {from} is")
                } else {
                    format!("entries {from}..{to} are")
                };
                let after =
                    after_seq.map_or_else(|| "the start".to_owned(), |s| format!("seq {s}"));
                write!(
                    f,
                    "{range} missing and its prev_hash does not match {after} (deleted)"
                )
            }
            ChainProblem::Unlinked {
                after_seq: Some(s),
                missing: None,
            } => write!(
                f,
                "its prev_hash does not match the hash of seq {s} (inserted, deleted or reordered)"
            ),
            ChainProblem::Unlinked {
                after_seq: None,
                missing: None,
            } => f.write_str(
                "it is the first entry but does not start from the genesis hash (inserted, or \
                 older entries deleted)",
            ),
            ChainProblem::Downgrade => f.write_str(
                "it is a plain sha256 entry after HMAC entries (downgrade: rewritten without the \
                 key)",
            ),
            ChainProblem::UnknownScheme { scheme } => {
                write!(f, "its scheme `{}` is unknown", scheme.escape_debug())
            }
        }
    }
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    pub seq: i64,
    #[serde(flatten)]
    pub problem: ChainProblem,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: {}", self.seq, self.problem)
    }
}

/// Checks entries one at a time, in `seq` order, from the first.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    key: Option<AuditKey>,
    prev_hash: String,
    prev_seq: Option<i64>,
    seen_hmac: bool,
    /// Entries checked.
    pub entries: u64,
    /// HMAC entries authenticated with the key.
    pub authenticated: u64,
    /// Plain SHA-256 entries (from before a key was configured).
    pub unauthenticated: u64,
    /// HMAC entries whose link was checked but whose HMAC could not be (no key).
    pub unchecked: u64,
    /// Gaps in `seq` whose entries still link (PostgreSQL identities skip values after a
    /// rollback or a crash).
    pub gaps: u64,
}

impl ChainVerifier {
    /// A verifier for a chain from its genesis; HMAC entries are authenticated with `key`.
    pub fn new(key: Option<AuditKey>) -> Self {
        Self {
            key,
            prev_hash: GENESIS_HASH.to_owned(),
            prev_seq: None,
            seen_hmac: false,
            entries: 0,
            authenticated: 0,
            unauthenticated: 0,
            unchecked: 0,
            gaps: 0,
        }
    }

    /// The newest entry checked: (seq, hash).
    pub fn last(&self) -> Option<(i64, &str)> {
        self.prev_seq.map(|s| (s, self.prev_hash.as_str()))
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        let broken = |problem| ChainBreak {
            seq: e.seq,
            problem,
        };
        let gap = match self.prev_seq {
            Some(p) if e.seq > p.saturating_add(1) => Some((p + 1, e.seq - 1)),
            _ => None,
        };
        if e.prev_hash != self.prev_hash {
            return Err(broken(ChainProblem::Unlinked {
                after_seq: self.prev_seq,
                missing: gap,
            }));
        }
        match e.scheme.as_str() {
            SCHEME_SHA256 => {
                if self.seen_hmac {
                    return Err(broken(ChainProblem::Downgrade));
                }
                if entry_hash(&e.prev_hash, e.id, e.occurred_at, &e.fields()) != e.hash {
                    return Err(broken(ChainProblem::Altered {
                        scheme: e.scheme.clone(),
                    }));
                }
                self.unauthenticated += 1;
            }
            SCHEME_HMAC => {
                self.seen_hmac = true;
                match &self.key {
                    Some(key) => {
                        let expected =
                            entry_mac(key, &e.prev_hash, e.id, e.occurred_at, &e.fields());
                        use subtle::ConstantTimeEq;
                        let same = expected.len() == e.hash.len()
                            && bool::from(expected.as_bytes().ct_eq(e.hash.as_bytes()));
                        if !same {
                            return Err(broken(ChainProblem::Altered {
                                scheme: e.scheme.clone(),
                            }));
                        }
                        self.authenticated += 1;
                    }
                    None => self.unchecked += 1,
                }
            }
            other => {
                return Err(broken(ChainProblem::UnknownScheme {
                    scheme: other.to_owned(),
                }));
            }
        }
        if gap.is_some() {
            self.gaps += 1;
        }
        self.prev_hash = e.hash.clone();
        self.prev_seq = Some(e.seq);
        self.entries += 1;
        Ok(())
    }
}

/// Serialises appenders on PostgreSQL for the rest of the transaction.
const PG_AUDIT_LOCK: &str = "select pg_advisory_xact_lock(7301880211)";

impl Store {
    /// This store with `key` authenticating the entries it appends (`None`: plain SHA-256,
    /// as before a key is configured).
    pub fn with_audit_key(mut self, key: impl Into<Option<AuditKey>>) -> Self {
        self.audit_key = key.into();
        self
    }

    /// The key new entries are authenticated with, if any.
    pub fn audit_key(&self) -> Option<&AuditKey> {
        self.audit_key.as_ref()
    }

    /// Appends an entry inside `tx`. Call it last in the transaction: on PostgreSQL it takes the
    /// chain lock until commit.
    pub(crate) async fn append_audit(
        &self,
        tx: &mut Tx,
        entry: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        self.append_audits(tx, &[entry]).await
    }

    /// Appends `entries`, chained in order, inside `tx`: one chain lock, one read of the
    /// newest hash and multi-row inserts. Call it last in the transaction.
    pub(crate) async fn append_audits(
        &self,
        tx: &mut Tx,
        entries: &[&NewAuditEntry],
    ) -> Result<(), StoreError> {
        const LAST: &str = "select hash from audit_log order by seq desc limit 1";
        const INSERT: &str = "insert into audit_log (id, occurred_at, actor, action, subject_kind, \
             subject_id, detail, prev_hash, hash, scheme) values ";
        /// Rows per insert: 10 parameters each, well inside both backends' limits.
        const ROWS: usize = 200;
        if entries.is_empty() {
            return Ok(());
        }
        if let Tx::Postgres(t) = tx {
            sqlx::query(PG_AUDIT_LOCK).execute(&mut **t).await?;
        }
        let at = self.now();
        let prev: Option<String> = on_tx!(tx, |conn| sqlx::query_scalar(LAST)
            .fetch_optional(&mut *conn)
            .await)?;
        let mut prev = prev.unwrap_or_else(|| GENESIS_HASH.to_owned());
        // (id, prev_hash, hash, scheme) per entry, chained in order.
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            let id = Uuid::now_v7();
            let (hash, scheme) = match &self.audit_key {
                Some(key) => (entry_mac(key, &prev, id, at, entry), SCHEME_HMAC),
                None => (entry_hash(&prev, id, at, entry), SCHEME_SHA256),
            };
            rows.push((id, std::mem::replace(&mut prev, hash.clone()), hash, scheme));
        }
        for (chunk_entries, chunk_rows) in entries.chunks(ROWS).zip(rows.chunks(ROWS)) {
            let mut sql = String::from(INSERT);
            for i in 0..chunk_entries.len() {
                let p = i * 10;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7,
                    p + 8,
                    p + 9,
                    p + 10
                ));
            }
            on_tx!(tx, |conn| {
                // Only placeholders are formatted into it; every value is bound.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for (entry, (id, prev_hash, hash, scheme)) in chunk_entries.iter().zip(chunk_rows) {
                    q = q
                        .bind(*id)
                        .bind(at)
                        .bind(&entry.actor)
                        .bind(&entry.action)
                        .bind(&entry.subject_kind)
                        .bind(&entry.subject_id)
                        .bind(Json(&entry.detail))
                        .bind(prev_hash)
                        .bind(hash)
                        .bind(*scheme);
                }
                q.execute(&mut *conn).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// Appends one entry in a transaction of its own (for events that change nothing else,
    /// e.g. an export of the log).
    pub async fn record_audit(&self, entry: &NewAuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.append_audit(&mut tx, entry).await?;
        tx.commit().await
    }

    /// Entries with `seq` greater than `after`, oldest first, at most `limit`.
    pub async fn audit_entries(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        const SQL: &str = "select seq, id, occurred_at, actor, action, subject_kind, subject_id, \
             detail, prev_hash, hash, scheme from audit_log where seq > $1 order by seq limit $2";
        let rows: Vec<AuditRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// Entries with `seq` greater than `after` that occurred at or after `since`, oldest
    /// first, at most `limit`.
    pub async fn audit_entries_since(
        &self,
        after: i64,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        const SQL: &str = "select seq, id, occurred_at, actor, action, subject_kind, subject_id, \
             detail, prev_hash, hash, scheme from audit_log where seq > $1 and occurred_at >= $2 \
             order by seq limit $3";
        let rows: Vec<AuditRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(after)
                .bind(since)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// The newest entry's seq and hash, if any.
    pub async fn audit_tail(&self) -> Result<Option<(i64, String)>, StoreError> {
        const SQL: &str = "select seq, hash from audit_log order by seq desc limit 1";
        Ok(on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .fetch_optional(pool)
            .await)?)
    }

    /// The hash stored for entry `seq`, if there is one.
    pub async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>, StoreError> {
        const SQL: &str = "select hash from audit_log where seq = $1";
        Ok(on_db!(&self.db, |pool| sqlx::query_scalar(SQL)
            .bind(seq)
            .fetch_optional(pool)
            .await)?)
    }

    /// How many entries have `seq` greater than `after` and at most `upto`.
    pub async fn audit_count(&self, after: i64, upto: i64) -> Result<u64, StoreError> {
        const SQL: &str = "select count(*) from audit_log where seq > $1 and seq <= $2";
        let n: i64 = on_db!(&self.db, |pool| sqlx::query_scalar(SQL)
            .bind(after)
            .bind(upto)
            .fetch_one(pool)
            .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Checks the whole chain with this store's key; returns the number of entries, or the
    /// first broken one. HMAC entries are only linked, not authenticated, without a key
    /// (`engine::audit::verify` says so; this does not).
    pub async fn verify_audit_chain(&self) -> Result<Result<u64, AuditEntry>, StoreError> {
        let mut verifier = ChainVerifier::new(self.audit_key.clone());
        let mut after = i64::MIN;
        loop {
            let batch = self.audit_entries(after, 1000).await?;
            if batch.is_empty() {
                return Ok(Ok(verifier.entries));
            }
            for e in batch {
                if verifier.push(&e).is_err() {
                    return Ok(Err(e));
                }
                after = e.seq;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn key(byte: u8) -> AuditKey {
        AuditKey::new(vec![byte; 32]).unwrap()
    }

    fn entry(seq: i64, prev: &str, k: Option<&AuditKey>, actor: &str) -> AuditEntry {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
            + chrono::Duration::seconds(seq);
        let id = Uuid::from_u128(seq as u128);
        let fields = NewAuditEntry {
            actor: actor.into(),
            action: "test.act".into(),
            subject_kind: Some("thing".into()),
            subject_id: None,
            detail: json!({"b": 1, "a": [true, null]}),
        };
        let (hash, scheme) = match k {
            Some(k) => (entry_mac(k, prev, id, at, &fields), SCHEME_HMAC),
            None => (entry_hash(prev, id, at, &fields), SCHEME_SHA256),
        };
        AuditEntry {
            seq,
            id,
            occurred_at: at,
            actor: fields.actor,
            action: fields.action,
            subject_kind: fields.subject_kind,
            subject_id: fields.subject_id,
            detail: fields.detail,
            prev_hash: prev.into(),
            hash,
            scheme: scheme.into(),
        }
    }

    fn chain(n: i64, hmac_from: i64, k: &AuditKey) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev = out
                .last()
                .map_or(GENESIS_HASH.to_owned(), |e| e.hash.clone());
            let k = (seq >= hmac_from).then_some(k);
            out.push(entry(seq, &prev, k, "alice"));
        }
        out
    }

    fn verify(entries: &[AuditEntry], k: Option<AuditKey>) -> Result<ChainVerifier, ChainBreak> {
        let mut v = ChainVerifier::new(k);
        for e in entries {
            v.push(e)?;
        }
        Ok(v)
    }

    #[test]
    fn keys_shorter_than_32_bytes_are_refused_and_never_shown() {
        assert_eq!(AuditKey::new(vec![1; 31]).unwrap_err(), ShortAuditKey(31));
        let k = AuditKey::new(b"correct horse battery staple 1234".to_vec()).unwrap();
        assert_eq!(format!("{k:?}"), "AuditKey(***)");
    }

    #[test]
    fn a_mixed_chain_verifies_and_counts_what_was_authenticated() {
        let k = key(7);
        let c = chain(5, 3, &k);
        let v = verify(&c, Some(k)).unwrap();
        assert_eq!((v.entries, v.authenticated, v.unauthenticated), (5, 3, 2));
        let v = verify(&c, None).unwrap();
        assert_eq!((v.entries, v.unchecked, v.unauthenticated), (5, 3, 2));
    }

    #[test]
    fn a_wrong_key_or_a_recomputed_plain_hash_fails_authentication() {
        let k = key(7);
        let c = chain(3, 1, &k);
        let e = verify(&c, Some(key(8))).unwrap_err();
        assert_eq!(e.seq, 1);
        let mut forged = c.clone();
        forged[2].actor = "mallory".into();
        forged[2].hash = entry_hash(
            &forged[2].prev_hash,
            forged[2].id,
            forged[2].occurred_at,
            &forged[2].fields(),
        );
        let e = verify(&forged, Some(k.clone())).unwrap_err();
        assert_eq!(e.seq, 3);
        assert!(matches!(e.problem, ChainProblem::Altered { .. }));
        forged[2].scheme = SCHEME_SHA256.into();
        let e = verify(&forged, Some(k)).unwrap_err();
        assert_eq!((e.seq, e.problem), (3, ChainProblem::Downgrade));
    }

    #[test]
    fn deleted_and_inserted_entries_break_the_link_at_the_next_one() {
        let k = key(1);
        let mut c = chain(6, 1, &k);
        c.remove(3); // seq 4
        let e = verify(&c, Some(k.clone())).unwrap_err();
        assert_eq!(e.seq, 5);
        assert_eq!(
            e.problem,
            ChainProblem::Unlinked {
                after_seq: Some(3),
                missing: Some((4, 4))
            }
        );
        assert!(e.to_string().contains("entry 4 is missing"), "{e}");
        let mut c = chain(3, 1, &k);
        c.remove(0);
        let e = verify(&c, Some(k)).unwrap_err();
        assert_eq!(e.seq, 2);
        assert!(
            e.to_string().contains("genesis") || e.to_string().contains("start"),
            "{e}"
        );
    }

    #[test]
    fn text_moved_between_fields_changes_the_hmac() {
        let k = key(3);
        let id = Uuid::from_u128(1);
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
        let a = NewAuditEntry {
            actor: "a\nb".into(),
            action: "c".into(),
            subject_kind: None,
            subject_id: Some(String::new()),
            detail: json!({}),
        };
        let b = NewAuditEntry {
            actor: "a".into(),
            action: "b\nc".into(),
            subject_kind: Some(String::new()),
            subject_id: None,
            detail: json!({}),
        };
        assert_eq!(
            entry_hash(GENESIS_HASH, id, at, &a),
            entry_hash(GENESIS_HASH, id, at, &b),
            "the legacy framing is ambiguous"
        );
        assert_ne!(
            entry_mac(&k, GENESIS_HASH, id, at, &a),
            entry_mac(&k, GENESIS_HASH, id, at, &b)
        );
    }
}
