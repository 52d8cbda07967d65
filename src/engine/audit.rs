//! The audit log's key, its checkpoint outside the database, its verification and its
//! export. The store appends and chains entries (`store::audit`); this module loads the key
//! (from the configuration or a key file it creates), writes and checks the signed
//! checkpoint of the newest entry, walks the chain in batches to verify it, and streams the
//! log out as JSON lines or CSV.
//!
//! Without the checkpoint, deleting the newest entries leaves a shorter chain that still
//! verifies; the checkpoint (HMAC-signed, written atomically, kept off the database) names
//! the newest entry seen, so such a deletion shows.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::config::AuditConfig;
use crate::store::{
    AuditEntry, AuditKey, ChainBreak, ChainVerifier, GENESIS_HASH, MIN_AUDIT_KEY_BYTES, Store,
    StoreError,
};

/// Entries read per query while verifying or exporting.
const BATCH: i64 = 1000;

/// What can go wrong loading the key, handling the checkpoint, verifying or exporting.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The configured key is too short.
    #[error("audit.key: must be at least {MIN_AUDIT_KEY_BYTES} bytes, not {0}")]
    ShortKey(usize),
    /// The key file cannot be read, created or used.
    #[error("audit.key_path {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// The checkpoint file cannot be read or written.
    #[error("audit checkpoint {path}: {reason}")]
    CheckpointFile { path: PathBuf, reason: String },
    /// The checkpoint's MAC does not match its fields under the key.
    #[error(
        "audit checkpoint {path} is tampered: its mac does not match its fields under the audit \
         key (or it was written with another key)"
    )]
    CheckpointTampered { path: PathBuf },
    /// Writing a checkpoint would move it back: the log no longer holds what the previous
    /// checkpoint named. The previous checkpoint is left in place.
    #[error(
        "refusing to move the audit checkpoint back: {0}; run `idbridge audit verify` and \
         investigate (the previous checkpoint is kept)"
    )]
    CheckpointRegression(String),
    /// A checkpoint needs the key.
    #[error("no audit key: set audit.key or audit.key_path")]
    NoKey,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The export could not be written.
    #[error("cannot write the export: {0}")]
    Write(String),
}

/// [`load_key`] for the service's start-up: says in the log, as a warning, when there is no
/// key and entries will only be hash-chained.
pub fn load_key_at_startup(config: &AuditConfig) -> Result<Option<AuditKey>, AuditError> {
    let key = load_key(config)?;
    if key.is_none() {
        tracing::warn!(
            "audit.key and audit.key_path are unset: audit entries are hash-chained but not \
             authenticated (anyone who can write to the database can rewrite them)"
        );
    }
    Ok(key)
}

/// The audit key the configuration names: `audit.key` itself, else the contents of
/// `audit.key_path` (created with 32 random bytes, hex-encoded, mode 0600, when missing).
/// `None` when neither is set: entries are then hash-chained but not authenticated.
pub fn load_key(config: &AuditConfig) -> Result<Option<AuditKey>, AuditError> {
    if let Some(secret) = &config.key {
        let bytes = secret.expose().as_bytes().to_vec();
        let len = bytes.len();
        return AuditKey::new(bytes)
            .map(Some)
            .map_err(|_| AuditError::ShortKey(len));
    }
    let Some(path) = &config.key_path else {
        return Ok(None);
    };
    let key_error = |reason: String| AuditError::KeyFile {
        path: path.clone(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_key_file(path).map_err(|e| key_error(format!("cannot create it: {e}")))?;
            tracing::info!(audit.key_path = %path.display(), "created a new audit key file");
            std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?
        }
        Err(e) => return Err(key_error(e.to_string())),
    };
    warn_if_readable_by_others(path);
    let bytes = text.trim().as_bytes().to_vec();
    let len = bytes.len();
    AuditKey::new(bytes).map(Some).map_err(|_| {
        key_error(format!(
            "holds {len} bytes; a key needs at least {MIN_AUDIT_KEY_BYTES}"
        ))
    })
}

fn create_key_file(path: &Path) -> std::io::Result<()> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                audit.key_path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the audit key file is readable by others; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The signed record of the newest audit entry, kept outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The newest entry's seq (0 for an empty log).
    pub seq: i64,
    /// Its hash (the genesis hash for an empty log).
    pub hash: String,
    /// When the checkpoint was written.
    pub at: DateTime<Utc>,
    /// How many entries the log held up to `seq`.
    pub entries: u64,
    /// HMAC-SHA-256 (hex) under the audit key over the other fields.
    pub mac: String,
}

impl Checkpoint {
    fn parts(seq: i64, hash: &str, at: DateTime<Utc>, entries: u64) -> [String; 5] {
        [
            "idbridge-audit-checkpoint-v1".to_owned(),
            seq.to_string(),
            hash.to_owned(),
            at.to_rfc3339_opts(SecondsFormat::Micros, true),
            entries.to_string(),
        ]
    }

    /// A checkpoint of (`seq`, `hash`) signed with `key`.
    pub fn sign(key: &AuditKey, seq: i64, hash: &str, at: DateTime<Utc>, entries: u64) -> Self {
        let parts = Self::parts(seq, hash, at, entries);
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            at,
            entries,
            mac: key.sign(&refs),
        }
    }

    /// Whether the MAC matches the fields under `key`.
    pub fn authentic(&self, key: &AuditKey) -> bool {
        let parts = Self::parts(self.seq, &self.hash, self.at, self.entries);
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        key.check(&refs, &self.mac)
    }
}

/// Reads a checkpoint file; `None` when there is none yet. The MAC is not checked here.
pub fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>, AuditError> {
    let failed = |reason: String| AuditError::CheckpointFile {
        path: path.to_owned(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e.to_string())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| failed(format!("not a checkpoint: {e}")))
}

/// Reads a checkpoint file and checks its MAC.
pub fn read_authentic_checkpoint(
    path: &Path,
    key: &AuditKey,
) -> Result<Option<Checkpoint>, AuditError> {
    match read_checkpoint(path)? {
        Some(cp) if !cp.authentic(key) => Err(AuditError::CheckpointTampered {
            path: path.to_owned(),
        }),
        other => Ok(other),
    }
}

/// Writes a checkpoint of the newest entry to `path`, atomically (a temporary file beside
/// it, then a rename; mode 0600). Cheap: one indexed read of the tail, one of the previous
/// checkpoint's entry, and a count of the entries since it. Refuses, leaving the old file,
/// when the log no longer holds the entry the previous checkpoint named or ends before it,
/// so a deletion is never laundered into a fresh checkpoint.
pub async fn write_checkpoint(
    store: &Store,
    key: &AuditKey,
    path: &Path,
) -> Result<Checkpoint, AuditError> {
    let previous = read_authentic_checkpoint(path, key)?;
    let (seq, hash) = store
        .audit_tail()
        .await?
        .unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
    let entries = match &previous {
        Some(prev) if prev.seq > 0 => {
            if seq < prev.seq {
                return Err(AuditError::CheckpointRegression(format!(
                    "the log ends at seq {seq}, before the checkpoint's seq {}",
                    prev.seq
                )));
            }
            match store.audit_hash_at(prev.seq).await? {
                Some(h) if h == prev.hash => {}
                Some(_) => {
                    return Err(AuditError::CheckpointRegression(format!(
                        "entry {} no longer has the hash the checkpoint recorded",
                        prev.seq
                    )));
                }
                None => {
                    return Err(AuditError::CheckpointRegression(format!(
                        "entry {} named by the checkpoint is gone",
                        prev.seq
                    )));
                }
            }
            prev.entries + store.audit_count(prev.seq, seq).await?
        }
        _ => store.audit_count(i64::MIN, seq).await?,
    };
    let checkpoint = Checkpoint::sign(key, seq, &hash, store.clock.now(), entries);
    let text =
        serde_json::to_string_pretty(&checkpoint).map_err(|e| AuditError::Write(e.to_string()))?;
    let target = path.to_owned();
    tokio::task::spawn_blocking(move || write_atomically(&target, text.as_bytes()))
        .await
        .map_err(|e| AuditError::Write(e.to_string()))?
        .map_err(|e| AuditError::CheckpointFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    tracing::debug!(
        audit.seq = seq,
        audit.entries = entries,
        "audit checkpoint written"
    );
    Ok(checkpoint)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".to_owned());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Why verification failed (the first problem found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "failure")]
pub enum VerifyFailure {
    /// An entry breaks the chain.
    Chain(ChainBreak),
    /// The checkpoint's MAC does not match.
    CheckpointTampered,
    /// A checkpoint was given but there is no key to check it with.
    CheckpointUnauthenticated,
    /// The entry the checkpoint names has another hash, or is gone.
    CheckpointMismatch {
        seq: i64,
        expected: String,
        found: Option<String>,
    },
    /// The log ends before the checkpoint: the newest entries were deleted.
    Truncated { checkpoint_seq: i64, last_seq: i64 },
    /// The log holds another number of entries up to the checkpoint than it recorded.
    CheckpointCount { seq: i64, expected: u64, found: u64 },
    /// HMAC entries exist but no key was given to authenticate them.
    NoKey { unchecked: u64 },
}

impl VerifyFailure {
    /// The seq the failure points at.
    pub fn seq(&self) -> Option<i64> {
        match self {
            VerifyFailure::Chain(b) => Some(b.seq),
            VerifyFailure::CheckpointMismatch { seq, .. }
            | VerifyFailure::CheckpointCount { seq, .. } => Some(*seq),
            VerifyFailure::Truncated { last_seq, .. } => Some(last_seq + 1),
            _ => None,
        }
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyFailure::Chain(b) => write!(f, "audit log broken at {b}"),
            VerifyFailure::CheckpointTampered => f.write_str(
                "the checkpoint is tampered: its mac does not match under the audit key",
            ),
            VerifyFailure::CheckpointUnauthenticated => {
                f.write_str("cannot authenticate the checkpoint: no audit key")
            }
            VerifyFailure::CheckpointMismatch {
                seq,
                found: Some(_),
                ..
            } => write!(
                f,
                "audit log broken at seq {seq}: its hash is not the one the checkpoint recorded"
            ),
            VerifyFailure::CheckpointMismatch {
                seq, found: None, ..
            } => write!(
                f,
                "audit log broken at seq {seq}: the entry the checkpoint recorded is gone"
            ),
            VerifyFailure::Truncated {
                checkpoint_seq,
                last_seq,
            } => write!(
                f,
                "audit log broken at seq {}: the log ends at seq {last_seq} but the checkpoint \
                 recorded seq {checkpoint_seq} (newest entries deleted)",
                last_seq + 1
            ),
            VerifyFailure::CheckpointCount {
                seq,
                expected,
                found,
            } => write!(
                f,
                "audit log broken at seq {seq}: the checkpoint counted {expected} entries up to \
                 it, the log holds {found}"
            ),
            VerifyFailure::NoKey { unchecked } => write!(
                f,
                "cannot authenticate, no key: {unchecked} hmac-sha256 entries need audit.key or \
                 audit.key_path to verify"
            ),
        }
    }
}

/// The result of walking the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    /// HMAC entries whose MAC matched under the key.
    pub authenticated: u64,
    /// Plain SHA-256 entries (written before a key was configured).
    pub unauthenticated: u64,
    /// HMAC entries that could not be authenticated (no key).
    pub unchecked: u64,
    /// Gaps in `seq` between entries that still link (skipped identity values).
    pub gaps: u64,
    /// The newest entry verified.
    pub last_seq: Option<i64>,
    /// The checkpoint checked against, if any.
    pub checkpoint_seq: Option<i64>,
    /// The first problem; `None` when the log is intact.
    pub failure: Option<VerifyFailure>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn intact(&self) -> bool {
        self.failure.is_none()
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        if let Some(f) = &self.failure {
            return f.to_string();
        }
        let mut line = format!(
            "audit log intact: {} entries ({} authenticated with hmac-sha256, {} unauthenticated \
             sha256)",
            self.entries, self.authenticated, self.unauthenticated
        );
        if let Some(last) = self.last_seq {
            line.push_str(&format!(", newest seq {last}"));
        }
        match self.checkpoint_seq {
            Some(seq) => line.push_str(&format!("; checkpoint at seq {seq} matches")),
            None => line.push_str(
                "; no checkpoint checked (deletion of the newest entries would not show)",
            ),
        }
        line
    }
}

/// Walks the whole log in batches: every entry must link to the one before and match its
/// hash (HMAC entries under `key`), no plain SHA-256 entry may follow an HMAC one, and, with
/// a checkpoint, the log must hold the entry it names with the hash it recorded and not end
/// before it. Stops at the first problem.
pub async fn verify(
    store: &Store,
    key: Option<&AuditKey>,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport {
        entries: 0,
        authenticated: 0,
        unauthenticated: 0,
        unchecked: 0,
        gaps: 0,
        last_seq: None,
        checkpoint_seq: None,
        failure: None,
    };
    let checkpoint = match (checkpoint, key) {
        (Some(cp), Some(k)) if !cp.authentic(k) => {
            report.failure = Some(VerifyFailure::CheckpointTampered);
            return Ok(report);
        }
        (Some(_), None) => {
            report.failure = Some(VerifyFailure::CheckpointUnauthenticated);
            return Ok(report);
        }
        (cp, _) => cp,
    };
    let mut verifier = ChainVerifier::new(key.cloned());
    let mut after = i64::MIN;
    let mut at_checkpoint: Option<u64> = None;
    let mut failure = None;
    'walk: loop {
        let batch = store.audit_entries(after, BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            if let Some(cp) = checkpoint
                && at_checkpoint.is_none()
                && e.seq > cp.seq
                && cp.seq > 0
            {
                failure = Some(VerifyFailure::CheckpointMismatch {
                    seq: cp.seq,
                    expected: cp.hash.clone(),
                    found: None,
                });
                break 'walk;
            }
            if let Err(b) = verifier.push(e) {
                failure = Some(VerifyFailure::Chain(b));
                break 'walk;
            }
            if let Some(cp) = checkpoint
                && e.seq == cp.seq
            {
                if e.hash != cp.hash {
                    failure = Some(VerifyFailure::CheckpointMismatch {
                        seq: cp.seq,
                        expected: cp.hash.clone(),
                        found: Some(e.hash.clone()),
                    });
                    break 'walk;
                }
                at_checkpoint = Some(verifier.entries);
            }
            after = e.seq;
        }
    }
    report.entries = verifier.entries;
    report.authenticated = verifier.authenticated;
    report.unauthenticated = verifier.unauthenticated;
    report.unchecked = verifier.unchecked;
    report.gaps = verifier.gaps;
    report.last_seq = verifier.last().map(|(s, _)| s);
    if failure.is_none()
        && let Some(cp) = checkpoint
    {
        let last = report.last_seq.unwrap_or(0);
        if last < cp.seq {
            failure = Some(VerifyFailure::Truncated {
                checkpoint_seq: cp.seq,
                last_seq: last,
            });
        } else {
            let counted = if cp.seq == 0 {
                0
            } else {
                at_checkpoint.unwrap_or(0)
            };
            if counted != cp.entries {
                failure = Some(VerifyFailure::CheckpointCount {
                    seq: cp.seq,
                    expected: cp.entries,
                    found: counted,
                });
            } else {
                report.checkpoint_seq = Some(cp.seq);
            }
        }
    }
    if failure.is_none() && report.unchecked > 0 {
        failure = Some(VerifyFailure::NoKey {
            unchecked: report.unchecked,
        });
    }
    report.failure = failure;
    Ok(report)
}

/// How the log is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row; cells neutralised against formula injection.
    Csv,
}

impl ExportFormat {
    /// The spelling on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
}

impl FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            // `idbridge export --format json` means one array; the audit log is written as
            // lines only, so say so rather than answer another format than asked for.
            "json" => Err(
                "the audit log exports as `jsonl` (one JSON object per line) or `csv`, \
                 not as one JSON array"
                    .to_owned(),
            ),
            _ => Err(format!("unknown format `{s}` (expected jsonl or csv)")),
        }
    }
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 10] = [
    "seq",
    "occurred_at",
    "actor",
    "action",
    "subject_kind",
    "subject_id",
    "detail",
    "prev_hash",
    "hash",
    "scheme",
];

/// A cell that a spreadsheet would read as a formula (it starts with `=`, `+`, `-`, `@`, a
/// tab, a carriage return or a NUL) gets a leading `'` (ASVS 5.0 1.2.10).
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\0') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

fn csv_row(e: &AuditEntry) -> [String; 10] {
    let text = |s: &str| neutralise(s).into_owned();
    [
        e.seq.to_string(),
        e.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        text(&e.actor),
        text(&e.action),
        text(e.subject_kind.as_deref().unwrap_or("")),
        text(e.subject_id.as_deref().unwrap_or("")),
        text(&e.detail.to_string()),
        text(&e.prev_hash),
        text(&e.hash),
        text(&e.scheme),
    ]
}

/// Streams the log (entries that occurred at or after `since`, if given) to `out` in
/// batches, oldest first; returns how many entries were written. The caller records the
/// export itself in the log (see [`record_export`]).
pub async fn export<W: Write>(
    store: &Store,
    format: ExportFormat,
    since: Option<DateTime<Utc>>,
    out: W,
) -> Result<u64, AuditError> {
    let failed = |e: &dyn fmt::Display| AuditError::Write(e.to_string());
    let mut written = 0u64;
    let mut after = i64::MIN;
    match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_COLUMNS).map_err(|e| failed(&e))?;
            loop {
                let batch = next_batch(store, after, since).await?;
                let Some(last) = batch.last() else { break };
                after = last.seq;
                for e in &batch {
                    w.write_record(csv_row(e)).map_err(|e| failed(&e))?;
                    written += 1;
                }
                w.flush().map_err(|e| failed(&e))?;
            }
            w.flush().map_err(|e| failed(&e))?;
        }
        ExportFormat::Jsonl => {
            let mut w = std::io::BufWriter::new(out);
            loop {
                let batch = next_batch(store, after, since).await?;
                let Some(last) = batch.last() else { break };
                after = last.seq;
                for e in &batch {
                    serde_json::to_writer(&mut w, e).map_err(|e| failed(&e))?;
                    w.write_all(b"\n").map_err(|e| failed(&e))?;
                    written += 1;
                }
            }
            w.flush().map_err(|e| failed(&e))?;
        }
    }
    Ok(written)
}

async fn next_batch(
    store: &Store,
    after: i64,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<AuditEntry>, StoreError> {
    match since {
        Some(since) => store.audit_entries_since(after, since, BATCH).await,
        None => store.audit_entries(after, BATCH).await,
    }
}

/// Records an export in the log: `audit.export` by `actor`, with the format, the filter,
/// the number of entries and where they went.
pub async fn record_export(
    store: &Store,
    actor: &str,
    format: ExportFormat,
    since: Option<DateTime<Utc>>,
    entries: u64,
    destination: &str,
) -> Result<(), AuditError> {
    store
        .record_audit(&crate::store::NewAuditEntry {
            actor: actor.to_owned(),
            action: "audit.export".into(),
            subject_kind: Some("audit_log".into()),
            subject_id: None,
            detail: serde_json::json!({
                "format": format.as_str(),
                "since": since.map(|s| s.to_rfc3339_opts(SecondsFormat::Micros, true)),
                "entries": entries,
                "destination": destination,
            }),
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn formula_cells_get_a_leading_quote_and_others_are_left_alone() {
        for bad in ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(bad), format!("'{bad}"));
        }
        for good in ["alice", "", "{\"a\":1}", "scim:abcd1234", "1+1"] {
            assert_eq!(neutralise(good), good);
        }
    }

    #[test]
    fn export_formats_parse_from_the_command_line_spelling() {
        assert_eq!("jsonl".parse(), Ok(ExportFormat::Jsonl));
        assert_eq!("CSV".parse(), Ok(ExportFormat::Csv));
        assert!("xml".parse::<ExportFormat>().is_err());
    }

    #[test]
    fn a_checkpoint_is_authentic_only_under_its_key_and_with_its_own_fields() {
        let key = AuditKey::new(vec![5; 32]).unwrap();
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let cp = Checkpoint::sign(&key, 42, "ab", at, 40);
        assert!(cp.authentic(&key));
        assert!(!cp.authentic(&AuditKey::new(vec![6; 32]).unwrap()));
        let moved = Checkpoint {
            seq: 41,
            ..cp.clone()
        };
        assert!(!moved.authentic(&key));
        let fewer = Checkpoint { entries: 39, ..cp };
        assert!(!fewer.authentic(&key));
    }

    #[test]
    fn a_key_file_is_created_with_a_random_key_readable_only_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let config = AuditConfig {
            key_path: Some(path.clone()),
            ..AuditConfig::default()
        };
        let first = load_key(&config).unwrap().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Loading again reads the same key rather than making a new one.
        let again = load_key(&config).unwrap().unwrap();
        assert_eq!(first.expose_for_tests(), again.expose_for_tests());
        let other_dir = tempfile::tempdir().unwrap();
        let other = load_key(&AuditConfig {
            key_path: Some(other_dir.path().join("audit.key")),
            ..AuditConfig::default()
        })
        .unwrap()
        .unwrap();
        assert_ne!(first.expose_for_tests(), other.expose_for_tests());
    }

    #[test]
    fn short_keys_are_refused_and_no_key_is_allowed_with_a_warning() {
        let short = AuditConfig {
            key: Some(Secret::new("too short")),
            ..AuditConfig::default()
        };
        assert!(matches!(load_key(&short), Err(AuditError::ShortKey(9))));
        assert!(load_key(&AuditConfig::default()).unwrap().is_none());
        let problems = short.problems().join("\n");
        assert!(
            problems.contains("audit.key: must be at least 32"),
            "{problems}"
        );
        let unsigned = AuditConfig {
            checkpoint_file: Some("cp.json".into()),
            ..AuditConfig::default()
        };
        assert!(unsigned.problems()[0].contains("audit.checkpoint_file"));
        let fine = AuditConfig {
            key: Some(Secret::new("k".repeat(32))),
            checkpoint_file: Some("cp.json".into()),
            ..AuditConfig::default()
        };
        assert!(fine.problems().is_empty());
    }
}
