//! The CSV connector on real files: a valid file with a BOM, quoted commas and newlines and
//! formula-looking cells; every kind of bad row reported by line with nothing imported;
//! unknown statuses as warnings; paging and a file changed between pages; empty and
//! header-only files; over-long fields; groups; `check()`.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use idbridge::config::SourceConfig;
use idbridge::domain::{IdentityStatus, SourceKind};
use idbridge::sources::csv::{CsvSource, MAX_FIELD_CHARS, Severity, validate_csv};
use idbridge::sources::{Source, SourceError, SourceIdentity};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/csv")
        .join(name)
}

fn config(path: &Path) -> SourceConfig {
    let mut cfg = SourceConfig::new(SourceKind::Csv);
    cfg.path = Some(path.display().to_string());
    cfg.custom_attributes = vec!["department".into()];
    cfg
}

fn source(path: &Path) -> CsvSource {
    CsvSource::from_config("hr", &config(path)).expect("config")
}

async fn everyone(src: &CsvSource) -> Vec<SourceIdentity> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = src.list_identities(cursor.as_deref()).await.expect("page");
        out.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}

#[tokio::test]
async fn a_valid_file_is_imported_with_every_column_quoted_commas_and_newlines_and_formula_looking_cells_kept_as_data()
 {
    let people = everyone(&source(&fixture("people.csv"))).await;
    assert_eq!(people.len(), 4);
    let alice = &people[0];
    assert_eq!(
        alice.external_id, "u1",
        "the BOM is not part of the first column name"
    );
    assert_eq!(alice.login, "alice");
    assert_eq!(
        alice.emails,
        vec![
            "alice@example.org".to_owned(),
            "alice.a@example.org".to_owned()
        ],
        "email first, then emails, without duplicates"
    );
    assert_eq!(alice.given_name.as_deref(), Some("Alice"));
    assert_eq!(alice.family_name.as_deref(), Some("Anders"));
    assert_eq!(alice.display_name.as_deref(), Some("Anders, Alice"));
    assert_eq!(alice.status, IdentityStatus::Active);
    assert_eq!(alice.raw_status, "active");
    assert_eq!(
        alice.created_at,
        Some(Utc.with_ymd_and_hms(2020, 1, 2, 0, 0, 0).unwrap())
    );
    assert_eq!(
        alice.last_login_at,
        Some(Utc.with_ymd_and_hms(2025, 10, 1, 8, 0, 0).unwrap())
    );
    assert_eq!(alice.groups, vec!["Staff".to_owned(), "Eng".to_owned()]);
    assert_eq!(
        alice.attributes.get("department").map(String::as_str),
        Some("R&D"),
        "a custom column, matched case-insensitively, kept under the configured name"
    );

    let bob = &people[1];
    assert_eq!(
        bob.display_name.as_deref(),
        Some("Bob \"the builder\"\nBaker")
    );
    assert_eq!(
        bob.status,
        IdentityStatus::Deprovisioned,
        "`Disabled`, any case"
    );
    assert_eq!(
        bob.created_at,
        Some(Utc.with_ymd_and_hms(2019, 5, 6, 5, 8, 9).unwrap())
    );
    assert!(bob.attributes.is_empty(), "an empty cell is no attribute");

    let carol = &people[2];
    assert_eq!(carol.display_name.as_deref(), Some("=1+2"));
    assert_eq!(
        carol.attributes.get("department").map(String::as_str),
        Some("=HYPERLINK(\"http://evil.example\",\"x\")")
    );
    assert_eq!(
        carol.status,
        IdentityStatus::Active,
        "LOCKED is not a leaver"
    );
    assert!(carol.emails.is_empty());
    let dave = &people[3];
    assert_eq!(dave.display_name.as_deref(), Some("@SUM(A1)"));
    assert_eq!(
        dave.attributes.get("department").map(String::as_str),
        Some("-2+3")
    );
}

#[tokio::test]
async fn every_kind_of_bad_row_is_reported_with_its_line_and_nothing_is_imported() {
    let bytes = std::fs::read(fixture("bad-rows.csv")).unwrap();
    let report = validate_csv(&bytes, &[]).expect_err("invalid");
    let lines: Vec<(u64, Severity)> = report
        .problems
        .iter()
        .map(|p| (p.line, p.severity))
        .collect();
    assert_eq!(
        lines,
        vec![
            (3, Severity::Error),
            (4, Severity::Error),
            (5, Severity::Error),
            (6, Severity::Error),
            (7, Severity::Error),
            (8, Severity::Error),
            (9, Severity::Error),
            (10, Severity::Warning),
            (10, Severity::Error),
        ],
        "{:#?}",
        report.problems
    );
    let reasons: Vec<&str> = report.problems.iter().map(|p| p.reason.as_str()).collect();
    assert!(reasons[0].contains("id is missing"));
    assert!(reasons[1].contains("duplicate id `u1` (first on line 2)"));
    assert!(reasons[2].contains("duplicate login `ALICE` (first on line 2)"));
    assert!(reasons[3].contains("created_at `02/03/2020`"));
    assert!(reasons[4].contains("`not-an-email` is not an email address"));
    assert!(reasons[5].contains("4 fields, but the header has 6"));
    assert!(reasons[6].contains("status is missing"));
    assert!(reasons[7].contains("unknown status `on-leave`"));
    assert!(reasons[8].contains("last_login_at `yesterday`"));
    assert_eq!((report.errors, report.warnings, report.rows), (8, 1, 9));

    let src = source(&fixture("bad-rows.csv"));
    let err = src
        .list_identities(None)
        .await
        .expect_err("nothing half-imported");
    match &err {
        SourceError::InvalidRecord { detail } => {
            assert!(
                detail.contains("8 error(s), 1 warning(s) in 9 row(s)"),
                "{detail}"
            );
            assert!(detail.contains("line 4: error: duplicate id"), "{detail}");
        }
        other => panic!("expected InvalidRecord, got {other}"),
    }
    let err = src.list_groups(None).await.expect_err("no groups either");
    assert!(matches!(err, SourceError::InvalidRecord { .. }));

    let check = src.check().await.expect("check still answers");
    assert_eq!(check.people, None);
    assert!(
        check.missing[0].contains("8 invalid row(s)"),
        "{:?}",
        check.missing
    );
    assert!(check.notes.iter().any(|n| n.starts_with("line 3: error")));
}

#[tokio::test]
async fn an_unknown_column_or_a_missing_required_column_rejects_the_header() {
    let err = source(&fixture("unknown-column.csv"))
        .list_identities(None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown column `shoe_size`"),
        "{err}"
    );

    let report = validate_csv(b"id,login,email\nu1,a,a@x.org\n", &[]).unwrap_err();
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].reason.contains("`status` is missing"));
    let report = validate_csv(b"id,login,status,ID\nu1,a,active,u1\n", &[]).unwrap_err();
    assert!(report.problems[0].reason.contains("appears twice"));
}

#[tokio::test]
async fn an_unknown_status_is_a_warning_and_the_person_is_imported_as_unknown() {
    let import = validate_csv(b"id,login,status\nu1,a,on-leave\nu2,b,active\n", &[]).unwrap();
    assert_eq!(import.identities.len(), 2);
    assert_eq!(import.identities[0].status, IdentityStatus::Unknown);
    assert_eq!(import.identities[0].raw_status, "on-leave");
    assert!(!import.identities[0].status.is_leaver(true));
    assert_eq!(import.warnings.len(), 1);
    assert_eq!(import.warnings[0].line, 2);
}

#[tokio::test]
async fn an_empty_file_is_refused_and_a_header_only_file_has_no_people() {
    for empty in [&b""[..], b"\xEF\xBB\xBF", b"\n\n"] {
        let report = validate_csv(empty, &[]).unwrap_err();
        assert!(report.problems[0].reason.contains("empty"), "{empty:?}");
    }
    let import = validate_csv(b"\xEF\xBB\xBFid,login,status\n", &[]).unwrap();
    assert!(import.identities.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("header.csv");
    std::fs::write(&path, "id,login,status\r\n").unwrap();
    let page = source(&path).list_identities(None).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next, None);
    assert_eq!(page.total, Some(0));
}

#[tokio::test]
async fn an_over_long_field_is_an_error_and_bad_utf8_is_reported_by_line() {
    let huge = "x".repeat(MAX_FIELD_CHARS + 1);
    let csv = format!("id,login,status,display_name\nu1,a,active,ok\nu2,b,active,{huge}\n");
    let report = validate_csv(csv.as_bytes(), &[]).unwrap_err();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].line, 3);
    assert!(report.problems[0].reason.contains("longer than"));

    let report = validate_csv(b"id,login,status\nu1,\xff\xfe,active\n", &[]).unwrap_err();
    assert_eq!(report.problems[0].line, 2);
    assert!(report.problems[0].reason.contains("not UTF-8"));
}

#[tokio::test]
async fn pages_follow_the_row_index_and_a_file_changed_between_pages_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.csv");
    let mut csv = String::from("id,login,status,groups\n");
    for i in 0..25 {
        csv.push_str(&format!(
            "u{i},user{i},active,{}\n",
            if i % 2 == 0 { "Even" } else { "Odd;All" }
        ));
    }
    std::fs::write(&path, &csv).unwrap();
    let mut cfg = config(&path);
    cfg.page_size = Some(10);
    let src = CsvSource::from_config("hr", &cfg).unwrap();

    let p1 = src.list_identities(None).await.unwrap();
    assert_eq!(p1.items.len(), 10);
    assert_eq!(p1.total, Some(25));
    let c1 = p1.next.clone().expect("next");
    let p2 = src.list_identities(Some(&c1)).await.unwrap();
    assert_eq!(p2.items[0].external_id, "u10");
    let c2 = p2.next.clone().expect("next");
    let p3 = src.list_identities(Some(&c2)).await.unwrap();
    assert_eq!(p3.items.len(), 5);
    assert_eq!(p3.next, None);

    let groups = src.list_groups(None).await.unwrap();
    let names: Vec<&str> = groups.items.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, vec!["All", "Even", "Odd"]);
    assert_eq!(groups.items[1].members.len(), 13);
    assert_eq!(groups.items[1].external_id, "Even");

    // The file changes under a listing: the next page refuses to mix versions.
    std::fs::write(&path, csv.replace("user3,", "renamed3,")).unwrap();
    let err = src.list_identities(Some(&c1)).await.unwrap_err();
    assert!(err.to_string().contains("changed between pages"), "{err}");
    // A new listing reads the new file.
    let fresh = src.list_identities(None).await.unwrap();
    assert_eq!(fresh.items[3].login, "renamed3");

    for bogus in ["", "x", "5", "5:", "999:abc"] {
        assert!(src.list_identities(Some(bogus)).await.is_err(), "{bogus}");
    }
}

#[tokio::test]
async fn check_reports_rows_and_warnings_and_a_missing_file_is_not_found() {
    let check = source(&fixture("people.csv")).check().await.unwrap();
    assert_eq!(check.people, Some(4));
    assert!(check.missing.is_empty());
    assert!(
        check.notes[0].contains("4 people, 2 groups, 0 warning(s)"),
        "{:?}",
        check.notes
    );

    let src = source(Path::new("/nonexistent/people.csv"));
    assert!(matches!(
        src.check().await,
        Err(SourceError::NotFound { .. })
    ));
    assert!(matches!(
        src.list_identities(None).await,
        Err(SourceError::NotFound { .. })
    ));
}

#[tokio::test]
async fn changes_and_sign_ins_are_unsupported() {
    let src = source(&fixture("people.csv"));
    assert!(matches!(
        src.list_changes("x", None).await,
        Err(SourceError::Unsupported { .. })
    ));
    assert!(matches!(
        src.sign_ins(None, None).await,
        Err(SourceError::Unsupported { .. })
    ));
}
