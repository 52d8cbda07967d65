//! The authenticated audit log on both backends: an intact chain verifies; a changed
//! entry, an inserted one, a deleted middle one, a downgrade to plain SHA-256 and (with the
//! checkpoint) deleted newest entries are each found at the right seq; a plain hash
//! recomputed over a tampered row does not pass; the key never reaches the database; and
//! `idbridge audit verify|export|checkpoint` as an operator runs them.

use std::sync::Arc;

use idbridge::clock::{Clock, ManualClock};
use idbridge::engine::audit::{self, Checkpoint, ExportFormat, VerifyFailure, VerifyReport};
use idbridge::store::{
    AuditEntry, AuditKey, ChainProblem, NewAuditEntry, SCHEME_HMAC, Store, entry_hash,
};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection};

use crate::helpers::{Backend, TestDb, binary, on_both_backends, start_time, stderr, stdout};

const KEY_TEXT: &str = "k3y-for-tests-0123456789abcdefghijklmnop";

fn key() -> AuditKey {
    AuditKey::new(KEY_TEXT.as_bytes().to_vec()).unwrap()
}

async fn store(db: &TestDb, key: Option<AuditKey>) -> Store {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(start_time()));
    let store = Store::connect(&db.config(), clock)
        .await
        .expect("connect")
        .with_audit_key(key);
    store.migrate().await.expect("migrate");
    store
}

fn entry(actor: &str, n: usize) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.into(),
        action: "test.event".into(),
        subject_kind: Some("account".into()),
        subject_id: Some(format!("acct-{n}")),
        detail: json!({"n": n, "before": {"active": true}, "after": {"active": false}}),
    }
}

async fn append(store: &Store, actor: &str, count: usize) {
    for n in 0..count {
        store.record_audit(&entry(actor, n)).await.expect("append");
    }
}

async fn exec(backend: Backend, url: &str, sql: String) {
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// Every text value of `audit_log` and `settings`, one string per row.
async fn stored_text(backend: Backend, url: &str) -> Vec<String> {
    const AUDIT: &str = "select coalesce(actor, '') || '|' || coalesce(action, '') || '|' || \
         coalesce(subject_kind, '') || '|' || coalesce(subject_id, '') || '|' || \
         cast(detail as text) || '|' || prev_hash || '|' || hash || '|' || scheme from audit_log";
    const SETTINGS: &str = "select key || '|' || cast(value as text) from settings";
    let mut out = Vec::new();
    for sql in [AUDIT, SETTINGS] {
        let rows: Vec<String> = match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
        };
        out.extend(rows);
    }
    out
}

async fn entries(store: &Store) -> Vec<AuditEntry> {
    store.audit_entries(i64::MIN, 10_000).await.unwrap()
}

fn failure(report: &VerifyReport) -> &VerifyFailure {
    report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure: {report:?}"))
}

fn broken_at(report: &VerifyReport) -> (i64, ChainProblem) {
    match failure(report) {
        VerifyFailure::Chain(b) => (b.seq, b.problem.clone()),
        other => panic!("expected a chain break, got {other:?}"),
    }
}

on_both_backends!(
    an_intact_chain_of_legacy_then_hmac_entries_verifies_and_says_how_many_were_authenticated,
    a_changed_detail_is_found_at_its_seq,
    a_plain_hash_recomputed_over_a_tampered_entry_does_not_pass_and_neither_does_a_downgrade,
    an_inserted_entry_is_found_at_its_seq,
    a_deleted_middle_entry_is_found_at_the_next_seq_as_a_gap_and_a_broken_link,
    deleting_the_newest_entries_is_caught_by_the_checkpoint_only,
    the_key_never_reaches_the_database,
    the_cli_verifies_checkpoints_and_exports_with_exit_codes_an_operator_can_script,
    verify_and_export_walk_a_log_longer_than_one_batch,
);

async fn verify_and_export_walk_a_log_longer_than_one_batch(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let s = store(&db, Some(key())).await;
    let started = std::time::Instant::now();
    append(&s, "engine", 1_234).await;
    let appended = started.elapsed();
    let started = std::time::Instant::now();
    let report = audit::verify(&s, Some(&key()), None).await.unwrap();
    let verified = started.elapsed();
    assert!(report.intact(), "{}", report.summary());
    assert_eq!((report.entries, report.authenticated), (1_234, 1_234));
    let mut out = Vec::new();
    let started = std::time::Instant::now();
    let n = audit::export(&s, ExportFormat::Csv, None, &mut out)
        .await
        .unwrap();
    let exported = started.elapsed();
    assert_eq!(n, 1_234);
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1_235);
    eprintln!(
        "{backend:?}: appended 1234 entries in {appended:?}, verified in {verified:?}, \
         exported as CSV in {exported:?}"
    );
    // A change in the second batch is still found.
    let seq = entries(&s).await[1_100].seq;
    exec(
        backend,
        &db.url,
        format!("update audit_log set action = 'x' where seq = {seq}"),
    )
    .await;
    let report = audit::verify(&s, Some(&key()), None).await.unwrap();
    assert_eq!(broken_at(&report).0, seq);
    s.close().await;
}

async fn an_intact_chain_of_legacy_then_hmac_entries_verifies_and_says_how_many_were_authenticated(
    backend: Backend,
) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let legacy = store(&db, None).await;
    append(&legacy, "before-the-key", 3).await;
    legacy.close().await;
    let keyed = store(&db, Some(key())).await;
    append(&keyed, "engine", 4).await;
    let all = entries(&keyed).await;
    assert_eq!(
        all.iter().map(|e| e.scheme.as_str()).collect::<Vec<_>>(),
        [
            "sha256",
            "sha256",
            "sha256",
            SCHEME_HMAC,
            SCHEME_HMAC,
            SCHEME_HMAC,
            SCHEME_HMAC
        ]
    );
    let report = audit::verify(&keyed, Some(&key()), None).await.unwrap();
    assert!(report.intact(), "{}", report.summary());
    assert_eq!(
        (
            report.entries,
            report.authenticated,
            report.unauthenticated,
            report.last_seq
        ),
        (7, 4, 3, Some(all[6].seq))
    );
    assert!(
        report.summary().contains("4 authenticated"),
        "{}",
        report.summary()
    );
    // The old check still passes through the store's own key.
    assert_eq!(
        keyed.verify_audit_chain().await.unwrap().map_err(|e| e.seq),
        Ok(7)
    );
    // Without the key the HMAC entries cannot be authenticated, and verify says so.
    let report = audit::verify(&keyed, None, None).await.unwrap();
    assert!(
        matches!(failure(&report), VerifyFailure::NoKey { unchecked: 4 }),
        "{report:?}"
    );
    assert!(
        report.summary().contains("cannot authenticate, no key"),
        "{}",
        report.summary()
    );
    // A wrong key fails at the first HMAC entry.
    let wrong = AuditKey::new(vec![b'x'; 32]).unwrap();
    let report = audit::verify(&keyed, Some(&wrong), None).await.unwrap();
    assert_eq!(broken_at(&report).0, all[3].seq);
    keyed.close().await;
}

async fn a_changed_detail_is_found_at_its_seq(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let s = store(&db, Some(key())).await;
    append(&s, "engine", 6).await;
    let seq = entries(&s).await[3].seq;
    let sql = match backend {
        Backend::Sqlite => format!(
            "update audit_log set detail = '{{\"n\":3,\"after\":{{\"active\":true}}}}' \
             where seq = {seq}"
        ),
        Backend::Postgres => format!(
            "update audit_log set detail = '{{\"n\":3,\"after\":{{\"active\":true}}}}'::jsonb \
             where seq = {seq}"
        ),
    };
    exec(backend, &db.url, sql).await;
    let report = audit::verify(&s, Some(&key()), None).await.unwrap();
    let (at, problem) = broken_at(&report);
    assert_eq!(at, seq);
    assert!(
        matches!(problem, ChainProblem::Altered { .. }),
        "{problem:?}"
    );
    assert!(
        report
            .summary()
            .starts_with(&format!("audit log broken at seq {seq}:")),
        "{}",
        report.summary()
    );
    s.close().await;
}

async fn a_plain_hash_recomputed_over_a_tampered_entry_does_not_pass_and_neither_does_a_downgrade(
    backend: Backend,
) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let s = store(&db, Some(key())).await;
    append(&s, "engine", 4).await;
    let last = entries(&s).await.pop().unwrap();
    // An attacker with database access rewrites the newest entry and recomputes its hash
    // the only way they can: plain SHA-256.
    let forged = NewAuditEntry {
        actor: "nobody".into(),
        action: last.action.clone(),
        subject_kind: last.subject_kind.clone(),
        subject_id: last.subject_id.clone(),
        detail: last.detail.clone(),
    };
    let hash = entry_hash(&last.prev_hash, last.id, last.occurred_at, &forged);
    exec(
        backend,
        &db.url,
        format!(
            "update audit_log set actor = 'nobody', hash = '{hash}' where seq = {}",
            last.seq
        ),
    )
    .await;
    let report = audit::verify(&s, Some(&key()), None).await.unwrap();
    assert_eq!(
        broken_at(&report),
        (
            last.seq,
            ChainProblem::Altered {
                scheme: SCHEME_HMAC.into()
            }
        )
    );
    // … and relabels it as a legacy entry: a downgrade.
    exec(
        backend,
        &db.url,
        format!(
            "update audit_log set scheme = 'sha256' where seq = {}",
            last.seq
        ),
    )
    .await;
    let report = audit::verify(&s, Some(&key()), None).await.unwrap();
    assert_eq!(broken_at(&report), (last.seq, ChainProblem::Downgrade));
    assert!(
        report.summary().contains("downgrade"),
        "{}",
        report.summary()
    );
    s.close().await;

    // A process without the key appending after HMAC entries is a downgrade too.
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let keyed = store(&db, Some(key())).await;
    append(&keyed, "engine", 2).await;
    let unkeyed = store(&db, None).await;
    append(&unkeyed, "misconfigured", 1).await;
    let report = audit::verify(&keyed, Some(&key()), None).await.unwrap();
    let third = entries(&keyed).await[2].seq;
    assert_eq!(broken_at(&report), (third, ChainProblem::Downgrade));
    keyed.close().await;
    unkeyed.close().await;
}

async fn an_inserted_entry_is_found_at_its_seq(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let s = store(&db, Some(key())).await;
    append(&s, "engine", 3).await;
    let all = entries(&s).await;
    // Inserted at the end, linked to the real tail, with a plausible-looking hash.
    let last = all.last().unwrap();
    let insert = |seq: i64, prev: &str, id: uuid::Uuid| {
        let fake = NewAuditEntry {
            actor: "mallory".into(),
            action: "test.event".into(),
            subject_kind: None,
            subject_id: None,
            detail: json!({}),
        };
        let hash = entry_hash(prev, id, last.occurred_at, &fake);
        let at = last.occurred_at.to_rfc3339();
        match backend {
            Backend::Sqlite => format!(
                "insert into audit_log (seq, id, occurred_at, actor, action, detail, prev_hash, \
                 hash, scheme) values ({seq}, x'{}', '{}', 'mallory', 'test.event', '{{}}', \
                 '{prev}', '{hash}', 'hmac-sha256')",
                id.simple(),
                last.occurred_at.format("%Y-%m-%d %H:%M:%S%.6f+00:00")
            ),
            Backend::Postgres => format!(
                "insert into audit_log (seq, id, occurred_at, actor, action, detail, prev_hash, \
                 hash, scheme) overriding system value values ({seq}, '{id}', '{at}', 'mallory', \
                 'test.event', '{{}}'::jsonb, '{prev}', '{hash}', 'hmac-sha256')"
            ),
        }
    };
    let tail = last.seq + 1;
    exec(
        backend,
        &db.url,
        insert(tail, &last.hash, uuid::Uuid::from_u128(0xdead)),
    )
    .await;
    let report = audit::verify(&s, Some(&key()), None).await.unwrap();
    assert_eq!(broken_at(&report).0, tail);
    exec(
        backend,
        &db.url,
        format!("delete from audit_log where seq = {tail}"),
    )
    .await;
    assert!(
        audit::verify(&s, Some(&key()), None)
            .await
            .unwrap()
            .intact()
    );
    // Inserted before the first entry (seq 0), starting from the genesis hash.
    exec(
        backend,
        &db.url,
        insert(
            0,
            idbridge::store::GENESIS_HASH,
            uuid::Uuid::from_u128(0xbeef),
        ),
    )
    .await;
    let report = audit::verify(&s, Some(&key()), None).await.unwrap();
    assert_eq!(broken_at(&report).0, 0);
    s.close().await;
}

async fn a_deleted_middle_entry_is_found_at_the_next_seq_as_a_gap_and_a_broken_link(
    backend: Backend,
) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let s = store(&db, Some(key())).await;
    append(&s, "engine", 6).await;
    let all = entries(&s).await;
    let (gone, next) = (all[3].seq, all[4].seq);
    exec(
        backend,
        &db.url,
        format!("delete from audit_log where seq = {gone}"),
    )
    .await;
    let report = audit::verify(&s, Some(&key()), None).await.unwrap();
    let (at, problem) = broken_at(&report);
    assert_eq!(at, next);
    assert_eq!(
        problem,
        ChainProblem::Unlinked {
            after_seq: Some(all[2].seq),
            missing: Some((gone, gone)),
        }
    );
    assert!(
        report
            .summary()
            .contains(&format!("entry {gone} is missing")),
        "{}",
        report.summary()
    );
    s.close().await;
}

async fn deleting_the_newest_entries_is_caught_by_the_checkpoint_only(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit-checkpoint.json");
    let s = store(&db, Some(key())).await;
    // A checkpoint of an empty log is fine and later moves forward.
    let empty = audit::write_checkpoint(&s, &key(), &path).await.unwrap();
    assert_eq!((empty.seq, empty.entries), (0, 0));
    append(&s, "engine", 3).await;
    audit::write_checkpoint(&s, &key(), &path).await.unwrap();
    append(&s, "engine", 3).await;
    let cp = audit::write_checkpoint(&s, &key(), &path).await.unwrap();
    let all = entries(&s).await;
    assert_eq!((cp.seq, cp.entries), (all[5].seq, 6));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let on_disk = audit::read_checkpoint(&path).unwrap().unwrap();
    assert_eq!(on_disk, cp);
    assert!(
        audit::verify(&s, Some(&key()), Some(&cp))
            .await
            .unwrap()
            .intact()
    );

    exec(
        backend,
        &db.url,
        format!("delete from audit_log where seq >= {}", all[4].seq),
    )
    .await;
    // Without the checkpoint the shorter chain still verifies…
    let report = audit::verify(&s, Some(&key()), None).await.unwrap();
    assert!(report.intact(), "{}", report.summary());
    assert_eq!(report.entries, 4);
    // … with it, the deletion shows, at the first missing seq.
    let report = audit::verify(&s, Some(&key()), Some(&cp)).await.unwrap();
    assert!(
        matches!(failure(&report), VerifyFailure::Truncated { .. }),
        "{report:?}"
    );
    assert_eq!(failure(&report).seq(), Some(all[3].seq + 1));
    assert!(
        report.summary().contains("newest entries deleted"),
        "{}",
        report.summary()
    );
    // A new checkpoint would launder the deletion: refused, and the old one is kept.
    let refused = audit::write_checkpoint(&s, &key(), &path)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("refusing"), "{refused}");
    assert_eq!(audit::read_checkpoint(&path).unwrap().unwrap(), cp);
    // New entries appended later do not hide it either: the checkpointed entry is gone.
    append(&s, "engine", 3).await;
    let report = audit::verify(&s, Some(&key()), Some(&cp)).await.unwrap();
    assert!(
        matches!(
            failure(&report),
            VerifyFailure::CheckpointMismatch { found: None, .. }
        ),
        "{report:?}"
    );
    // A checkpoint edited to match is itself reported as tampered.
    let moved = Checkpoint {
        seq: all[3].seq,
        hash: all[3].hash.clone(),
        entries: 4,
        ..cp.clone()
    };
    let report = audit::verify(&s, Some(&key()), Some(&moved)).await.unwrap();
    assert_eq!(failure(&report), &VerifyFailure::CheckpointTampered);
    std::fs::write(&path, serde_json::to_string(&moved).unwrap()).unwrap();
    let refused = audit::write_checkpoint(&s, &key(), &path)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("tampered"), "{refused}");
    s.close().await;
}

async fn the_key_never_reaches_the_database(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let s = store(&db, Some(key())).await;
    append(&s, "engine", 5).await;
    audit::record_export(&s, "auditor", ExportFormat::Csv, None, 5, "stdout")
        .await
        .unwrap();
    let text = stored_text(backend, &db.url).await;
    assert!(text.len() >= 6, "{text:?}");
    let hex_key: String = KEY_TEXT.bytes().map(|b| format!("{b:02x}")).collect();
    for row in &text {
        assert!(!row.contains(KEY_TEXT), "key in {row}");
        assert!(!row.contains(&hex_key), "hex key in {row}");
        assert!(!row.contains(&KEY_TEXT[..16]), "part of the key in {row}");
    }
    assert!(!format!("{s:?}").contains(&KEY_TEXT[..16]));
    s.close().await;
}

/// Runs the binary with a configuration on `db`, the key from the environment and warnings
/// logged, and checks the key appears in neither output.
async fn run(db: &TestDb, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    run_logging(db, dir, args, "warn").await
}

async fn run_logging(
    db: &TestDb,
    dir: &std::path::Path,
    args: &[&str],
    filter: &str,
) -> std::process::Output {
    let config = dir.join("idbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n\n[audit]\ncheckpoint_file = \"{}\"\n",
            db.url,
            dir.join("checkpoint.json").display()
        ),
    )
    .unwrap();
    let mut cmd = binary();
    cmd.arg("--config")
        .arg(&config)
        .args(args)
        .env("IDBRIDGE_AUDIT__KEY", KEY_TEXT)
        .env("IDBRIDGE_LOG__FILTER", filter)
        .env("USER", "env-principal");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("runs"))
        .await
        .unwrap();
    for text in [stdout(&out), stderr(&out)] {
        assert!(!text.contains(&KEY_TEXT[..16]), "the key leaked: {text}");
    }
    out
}

async fn the_cli_verifies_checkpoints_and_exports_with_exit_codes_an_operator_can_script(
    backend: Backend,
) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = store(&db, Some(key())).await;
    append(&s, "engine", 3).await;
    s.record_audit(&NewAuditEntry {
        actor: "=cmd|' /C calc'!A0".into(),
        action: "test.event".into(),
        subject_kind: Some("account".into()),
        subject_id: Some("@SUM(1+1)".into()),
        detail: json!({"note": "-2"}),
    })
    .await
    .unwrap();

    let out = run_logging(&db, dir.path(), &["audit", "checkpoint"], "trace").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("seq 4, 4 entries"),
        "{}",
        stdout(&out)
    );
    let out = run_logging(&db, dir.path(), &["audit", "verify"], "trace").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("audit log intact: 4 entries"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("checkpoint at seq 4 matches"),
        "{}",
        stdout(&out)
    );

    // Export to CSV as a named principal: formulas neutralised, the export itself audited.
    let csv_path = dir.path().join("audit.csv");
    let out = run(
        &db,
        dir.path(),
        &[
            "audit",
            "export",
            "--format",
            "csv",
            "--output",
            csv_path.to_str().unwrap(),
            "--as",
            "auditor",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        idbridge::engine::audit::CSV_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(&rows[3][2], "'=cmd|' /C calc'!A0");
    assert_eq!(&rows[3][5], "'@SUM(1+1)");
    assert_eq!(&rows[3][6], "{\"note\":\"-2\"}");
    assert!(rows[3][1].ends_with('Z'), "{}", &rows[3][1]);
    assert_eq!(&rows[0][9], SCHEME_HMAC);
    let all = entries(&s).await;
    let export = all.last().unwrap();
    assert_eq!(
        (export.action.as_str(), export.actor.as_str()),
        ("audit.export", "auditor")
    );
    assert_eq!(export.detail["entries"], 4);
    assert_eq!(export.scheme, SCHEME_HMAC);

    // JSON lines to stdout, since an instant after everything: the default principal.
    let out = run(
        &db,
        dir.path(),
        &["audit", "export", "--since", "2099-01-01T00:00:00Z"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let out = run(&db, dir.path(), &["audit", "export"]).await;
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "{}", stdout(&out));
    assert_eq!(lines[5]["actor"], "env-principal");
    assert_eq!(lines[0]["scheme"], SCHEME_HMAC);

    // Tampering makes verify exit 1 with the seq, on one line.
    exec(
        backend,
        &db.url,
        "update audit_log set actor = 'someone-else' where seq = 2".into(),
    )
    .await;
    let out = run(&db, dir.path(), &["audit", "verify"]).await;
    let line = crate::helpers::one_error_line(&out, 1);
    assert!(line.contains("audit log broken at seq 2:"), "{line}");

    // Deleting the newest entries: caught through the configured checkpoint.
    exec(
        backend,
        &db.url,
        "update audit_log set actor = 'engine' where seq = 2".into(),
    )
    .await;
    let out = run(&db, dir.path(), &["audit", "verify"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    exec(
        backend,
        &db.url,
        "delete from audit_log where seq >= 3".into(),
    )
    .await;
    let out = run(&db, dir.path(), &["audit", "verify"]).await;
    let line = crate::helpers::one_error_line(&out, 1);
    assert!(line.contains("seq 4") && line.contains("deleted"), "{line}");
    // An explicitly named checkpoint that does not exist is an error, not a pass.
    let missing = dir.path().join("nope.json");
    let out = run(
        &db,
        dir.path(),
        &["audit", "verify", "--checkpoint", missing.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    s.close().await;
}
