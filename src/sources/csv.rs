//! The CSV connector: people (and groups) from a CSV file an admin exports from an HR system
//! or a directory idbridge has no connector for.
//!
//! The file is UTF-8 (an optional BOM is skipped) with a header row; column names are matched
//! case-insensitively: `id` (required, the immutable external id), `login` (required),
//! `email`, `emails` (`;`-separated), `given_name`, `family_name`, `display_name`, `status`
//! (required; see [`crate::sources::status::CSV`]), `created_at`, `last_login_at` (RFC 3339 or
//! `YYYY-MM-DD`), `groups` (`;`-separated group names) and any column named in
//! `custom_attributes`. Any other column is an error (a typo would otherwise silently drop
//! data). Cells are kept verbatim: a cell that looks like a spreadsheet formula (`=…`, `+…`,
//! `-…`, `@…`) is data, never evaluated or rewritten.
//!
//! **Nothing is half-imported.** The whole file is validated before the first page is
//! returned ([`validate_csv`]); one invalid row (missing or duplicate id, duplicate login,
//! bad date or email, wrong number of fields, an over-long field, bad UTF-8) fails the
//! listing with [`SourceError::InvalidRecord`] carrying the first problems with their line
//! numbers. An unknown status is a warning: the person is imported with status Unknown
//! (never a leaver). Limits: [`MAX_FILE_BYTES`], [`MAX_ROWS`], [`MAX_FIELD_CHARS`].
//!
//! Pages are slices of the validated rows; the cursor is `<row index>:<content hash>`. The
//! file is read when a listing starts (cursor `None`); a later page whose file has changed
//! since (different size, modification time and then content) fails rather than mixing two
//! versions. Groups come from the `groups` column: a group's external id is its name.
//! Incremental listing and sign-in events are unsupported; `last_login_at` is on each person.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::{
    Change, SignIn, Source, SourceCheck, SourceError, SourceGroup, SourceIdentity, SourcePage,
    status,
};
use crate::config::SourceConfig;
use crate::domain::{IdentityStatus, SourceKind};

/// Largest file read (100 MiB).
pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// Most data rows.
pub const MAX_ROWS: usize = 1_000_000;
/// Longest cell, in characters.
pub const MAX_FIELD_CHARS: usize = 16 * 1024;
/// Most problems kept in a report (the count covers all of them).
pub const MAX_PROBLEMS_KEPT: usize = 1000;
/// Problems quoted in a listing's error.
const PROBLEMS_IN_ERROR: usize = 20;
const DEFAULT_PAGE_SIZE: usize = 1000;

const KNOWN: &[&str] = &[
    "id",
    "login",
    "email",
    "emails",
    "given_name",
    "family_name",
    "display_name",
    "status",
    "created_at",
    "last_login_at",
    "groups",
];
const REQUIRED: &[&str] = &["id", "login", "status"];

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The file is not imported.
    Error,
    /// Imported anyway (e.g. an unknown status becomes Unknown).
    Warning,
}

/// One problem in a CSV file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvProblem {
    /// 1-based line where the row starts (the header is line 1).
    pub line: u64,
    pub severity: Severity,
    pub reason: String,
}

impl std::fmt::Display for CsvProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "line {}: {sev}: {}", self.line, self.reason)
    }
}

/// Every problem found in a file (the first [`MAX_PROBLEMS_KEPT`] in full).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsvReport {
    pub problems: Vec<CsvProblem>,
    /// Errors found, including those not kept.
    pub errors: usize,
    /// Warnings found, including those not kept.
    pub warnings: usize,
    /// Data rows read.
    pub rows: usize,
}

impl CsvReport {
    fn push(&mut self, line: u64, severity: Severity, reason: impl Into<String>) {
        match severity {
            Severity::Error => self.errors += 1,
            Severity::Warning => self.warnings += 1,
        }
        if self.problems.len() < MAX_PROBLEMS_KEPT {
            self.problems.push(CsvProblem {
                line,
                severity,
                reason: reason.into(),
            });
        }
    }

    /// One line per problem for the first `n` problems, then the counts.
    pub fn summary(&self, n: usize) -> String {
        let mut out: Vec<String> = self
            .problems
            .iter()
            .take(n)
            .map(|p| p.to_string())
            .collect();
        let total = self.errors + self.warnings;
        if total > n {
            out.push(format!("… and {} more", total - n.min(total)));
        }
        format!(
            "{} error(s), {} warning(s) in {} row(s): {}",
            self.errors,
            self.warnings,
            self.rows,
            out.join("; ")
        )
    }
}

/// A valid file: its people, and the warnings (if any).
#[derive(Clone, Debug, PartialEq)]
pub struct CsvImport {
    pub identities: Vec<SourceIdentity>,
    pub warnings: Vec<CsvProblem>,
}

fn parse_date(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|_| raw.len() == 10)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn split_list(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in raw.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == part) {
            out.push(part.to_owned());
        }
    }
    out
}

/// Validates a whole CSV file: every person, or every problem. `custom_attributes` names the
/// extra columns allowed (kept in each person's `attributes` under the configured name).
pub fn validate_csv(bytes: &[u8], custom_attributes: &[String]) -> Result<CsvImport, CsvReport> {
    let mut report = CsvReport::default();
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.len() as u64 > MAX_FILE_BYTES {
        report.push(
            0,
            Severity::Error,
            format!("the file is larger than {MAX_FILE_BYTES} bytes"),
        );
        return Err(report);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        report.push(
            1,
            Severity::Error,
            "the file is empty: a header row is required",
        );
        return Err(report);
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = rdr.byte_records();

    // Header.
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            report.push(
                1,
                Severity::Error,
                format!("the header row cannot be read: {e}"),
            );
            return Err(report);
        }
        None => {
            report.push(
                1,
                Severity::Error,
                "the file is empty: a header row is required",
            );
            return Err(report);
        }
    };
    // column index → canonical name (a known column, or the configured custom name)
    let mut columns: Vec<Option<String>> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in header.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(raw) else {
            report.push(
                1,
                Severity::Error,
                format!("header column {} is not UTF-8", i + 1),
            );
            columns.push(None);
            continue;
        };
        let lower = name.trim().to_lowercase();
        let canonical = if KNOWN.contains(&lower.as_str()) {
            Some(lower.clone())
        } else {
            custom_attributes
                .iter()
                .find(|c| c.to_lowercase() == lower)
                .map(|c| format!("custom:{c}"))
        };
        match canonical {
            None => {
                report.push(
                    1,
                    Severity::Error,
                    format!(
                        "unknown column `{}` (expected {} or one of custom_attributes)",
                        name.chars().take(100).collect::<String>(),
                        KNOWN.join(", ")
                    ),
                );
                columns.push(None);
            }
            Some(c) => {
                if let Some(first) = seen.insert(c.clone(), i) {
                    report.push(
                        1,
                        Severity::Error,
                        format!(
                            "column `{lower}` appears twice (columns {} and {})",
                            first + 1,
                            i + 1
                        ),
                    );
                }
                columns.push(Some(c));
            }
        }
    }
    for r in REQUIRED {
        if !seen.contains_key(*r) {
            report.push(
                1,
                Severity::Error,
                format!("the required column `{r}` is missing"),
            );
        }
    }
    if report.errors > 0 {
        return Err(report);
    }
    let col = |name: &str| seen.get(name).copied();

    let mut out = Vec::new();
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut logins: HashMap<String, u64> = HashMap::new();
    for rec in records {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                report.rows += 1;
                report.push(
                    line,
                    Severity::Error,
                    format!("the row cannot be read: {e}"),
                );
                if report.errors >= MAX_PROBLEMS_KEPT {
                    break;
                }
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        report.rows += 1;
        if report.rows > MAX_ROWS {
            report.push(line, Severity::Error, format!("more than {MAX_ROWS} rows"));
            return Err(report);
        }
        let before = report.errors;
        if rec.len() != header.len() {
            report.push(
                line,
                Severity::Error,
                format!("{} fields, but the header has {}", rec.len(), header.len()),
            );
            continue;
        }
        let mut fields: Vec<&str> = Vec::with_capacity(rec.len());
        for (i, raw) in rec.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(s) if s.chars().count() > MAX_FIELD_CHARS => {
                    report.push(
                        line,
                        Severity::Error,
                        format!(
                            "column {} is longer than {MAX_FIELD_CHARS} characters",
                            i + 1
                        ),
                    );
                    fields.push("");
                }
                Ok(s) => fields.push(s),
                Err(_) => {
                    report.push(
                        line,
                        Severity::Error,
                        format!("column {} is not UTF-8", i + 1),
                    );
                    fields.push("");
                }
            }
        }
        let get = |name: &str| {
            col(name)
                .map(|i| fields[i].trim())
                .filter(|s| !s.is_empty())
        };

        let id = get("id");
        let login = get("login");
        let raw_status = get("status");
        match id {
            None => report.push(line, Severity::Error, "the id is missing"),
            Some(id) => {
                if let Some(first) = ids.insert(id.to_owned(), line) {
                    report.push(
                        line,
                        Severity::Error,
                        format!("duplicate id `{id}` (first on line {first})"),
                    );
                    ids.insert(id.to_owned(), first);
                }
            }
        }
        match login {
            None => report.push(line, Severity::Error, "the login is missing"),
            Some(login) => {
                let key = login.to_lowercase();
                if let Some(first) = logins.insert(key.clone(), line) {
                    report.push(
                        line,
                        Severity::Error,
                        format!("duplicate login `{login}` (first on line {first})"),
                    );
                    logins.insert(key, first);
                }
            }
        }
        let status = match raw_status {
            None => {
                report.push(line, Severity::Error, "the status is missing");
                IdentityStatus::Unknown
            }
            Some(raw) => {
                let s = status::normalise(SourceKind::Csv, raw);
                if s == IdentityStatus::Unknown {
                    report.push(
                        line,
                        Severity::Warning,
                        format!("unknown status `{raw}`: imported with status unknown"),
                    );
                }
                s
            }
        };
        let mut dates = [None, None];
        for (slot, name) in dates.iter_mut().zip(["created_at", "last_login_at"]) {
            if let Some(raw) = get(name) {
                match parse_date(raw) {
                    Some(t) => *slot = Some(t),
                    None => report.push(
                        line,
                        Severity::Error,
                        format!("{name} `{raw}` is not an RFC 3339 time or YYYY-MM-DD"),
                    ),
                }
            }
        }
        let mut emails = Vec::new();
        for e in get("email")
            .map(|e| vec![e.to_owned()])
            .unwrap_or_default()
            .into_iter()
            .chain(get("emails").map(split_list).unwrap_or_default())
        {
            if !e.contains('@') || e.contains(char::is_whitespace) {
                report.push(
                    line,
                    Severity::Error,
                    format!("`{e}` is not an email address"),
                );
            } else if !emails.contains(&e) {
                emails.push(e);
            }
        }
        if report.errors > before {
            continue;
        }
        let (Some(id), Some(login), Some(raw_status)) = (id, login, raw_status) else {
            continue;
        };
        let mut p = SourceIdentity::new(id, login, status, raw_status);
        p.emails = emails;
        p.given_name = get("given_name").map(str::to_owned);
        p.family_name = get("family_name").map(str::to_owned);
        p.display_name = get("display_name").map(str::to_owned);
        p.created_at = dates[0];
        p.last_login_at = dates[1];
        p.groups = get("groups").map(split_list).unwrap_or_default();
        for (i, c) in columns.iter().enumerate() {
            if let Some(name) = c.as_deref().and_then(|c| c.strip_prefix("custom:")) {
                let v = fields[i].trim();
                if !v.is_empty() {
                    p.attributes.insert(name.to_owned(), v.to_owned());
                }
            }
        }
        out.push(p);
    }
    if report.errors > 0 {
        return Err(report);
    }
    Ok(CsvImport {
        identities: out,
        warnings: report.problems,
    })
}

/// Groups from people's `groups` column: external id = name, members = people's ids.
fn groups_of(people: &[SourceIdentity]) -> Vec<SourceGroup> {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in people {
        for g in &p.groups {
            groups.entry(g).or_default().push(p.external_id.clone());
        }
    }
    groups
        .into_iter()
        .map(|(name, members)| SourceGroup {
            external_id: name.to_owned(),
            name: name.to_owned(),
            members,
        })
        .collect()
}

/// What identifies one version of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// A validated version of the file.
struct Loaded {
    stamp: Stamp,
    hash: String,
    people: Arc<Vec<SourceIdentity>>,
    groups: Arc<Vec<SourceGroup>>,
    warnings: Vec<CsvProblem>,
}

/// A CSV source.
pub struct CsvSource {
    name: String,
    path: PathBuf,
    page_size: usize,
    custom_attributes: Vec<String>,
    loaded: Mutex<Option<Arc<Loaded>>>,
}

impl std::fmt::Debug for CsvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSource")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

enum Read {
    Valid(Loaded),
    Invalid(CsvReport),
}

impl CsvSource {
    /// The connector for source `name`.
    pub fn from_config(name: &str, cfg: &SourceConfig) -> Result<Self, SourceError> {
        let path = cfg
            .path
            .clone()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                SourceError::Config(format!("sources.{name}.path: required for a CSV source"))
            })?;
        let page_size = cfg
            .page_size
            .map_or(DEFAULT_PAGE_SIZE, |n| {
                usize::try_from(n).unwrap_or(DEFAULT_PAGE_SIZE)
            })
            .clamp(1, 100_000);
        Ok(CsvSource {
            name: name.to_owned(),
            path: PathBuf::from(path),
            page_size,
            custom_attributes: cfg.custom_attributes.clone(),
            loaded: Mutex::new(None),
        })
    }

    fn io_error(&self, e: &std::io::Error) -> SourceError {
        let what = format!(
            "sources.{}: the CSV file {}",
            self.name,
            self.path.display()
        );
        match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound { what },
            std::io::ErrorKind::PermissionDenied => SourceError::Forbidden {
                detail: format!("{what} cannot be read (permission denied)"),
            },
            _ => SourceError::Transport {
                detail: format!("{what} cannot be read: {e}"),
            },
        }
    }

    async fn stamp(&self) -> Result<Stamp, SourceError> {
        let meta = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| self.io_error(&e))?;
        if !meta.is_file() {
            return Err(SourceError::Config(format!(
                "sources.{}.path: {} is not a file",
                self.name,
                self.path.display()
            )));
        }
        Ok(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }

    /// Reads and validates the file.
    async fn read(&self) -> Result<Read, SourceError> {
        use tokio::io::AsyncReadExt as _;
        let stamp = self.stamp().await?;
        if stamp.len > MAX_FILE_BYTES {
            return Err(SourceError::InvalidRecord {
                detail: format!(
                    "sources.{}: {} is {} bytes, more than the {MAX_FILE_BYTES}-byte limit",
                    self.name,
                    self.path.display(),
                    stamp.len
                ),
            });
        }
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| self.io_error(&e))?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| self.io_error(&e))?;
        let custom = self.custom_attributes.clone();
        let (hash, result) = tokio::task::spawn_blocking(move || {
            let hash = hex(&Sha256::digest(&bytes)[..12]);
            (hash, validate_csv(&bytes, &custom))
        })
        .await
        .map_err(|e| SourceError::Transport {
            detail: format!("CSV validation task failed: {e}"),
        })?;
        Ok(match result {
            Ok(import) => {
                let groups = groups_of(&import.identities);
                Read::Valid(Loaded {
                    stamp,
                    hash,
                    people: Arc::new(import.identities),
                    groups: Arc::new(groups),
                    warnings: import.warnings,
                })
            }
            Err(report) => Read::Invalid(report),
        })
    }

    fn invalid(&self, report: &CsvReport) -> SourceError {
        SourceError::InvalidRecord {
            detail: format!(
                "sources.{}: {} was not imported (nothing is imported while any row is invalid): {}",
                self.name,
                self.path.display(),
                report.summary(PROBLEMS_IN_ERROR)
            ),
        }
    }

    /// The validated file for a page: re-read at the start of a listing, and checked for
    /// changes on later pages against the hash in the cursor.
    async fn load(&self, want_hash: Option<&str>) -> Result<Arc<Loaded>, SourceError> {
        let mut slot = self.loaded.lock().await;
        if let (Some(want), Some(current)) = (want_hash, slot.as_ref())
            && current.hash == want
            && self.stamp().await? == current.stamp
        {
            return Ok(current.clone());
        }
        let loaded = match self.read().await? {
            Read::Valid(l) => Arc::new(l),
            Read::Invalid(report) => {
                *slot = None;
                return Err(self.invalid(&report));
            }
        };
        *slot = Some(loaded.clone());
        if let Some(want) = want_hash
            && loaded.hash != want
        {
            return Err(SourceError::InvalidRecord {
                detail: format!(
                    "sources.{}: {} changed between pages of a listing; start the listing again",
                    self.name,
                    self.path.display()
                ),
            });
        }
        Ok(loaded)
    }

    fn parse_cursor<'a>(&self, cursor: &'a str) -> Result<(usize, &'a str), SourceError> {
        cursor
            .split_once(':')
            .and_then(|(i, h)| Some((i.parse::<usize>().ok()?, h)))
            .filter(|(_, h)| !h.is_empty())
            .ok_or_else(|| SourceError::NotFound {
                what: format!(
                    "sources.{}: cursor `{}` is not a CSV listing cursor",
                    self.name,
                    cursor.chars().take(40).collect::<String>()
                ),
            })
    }

    async fn slice<T: Clone>(
        &self,
        cursor: Option<&str>,
        pick: impl Fn(&Loaded) -> &[T],
    ) -> Result<SourcePage<T>, SourceError> {
        let (start, loaded) = match cursor {
            None => (0, self.load(None).await?),
            Some(c) => {
                let (i, hash) = self.parse_cursor(c)?;
                (i, self.load(Some(hash)).await?)
            }
        };
        let items = pick(&loaded);
        if start > items.len() {
            return Err(SourceError::NotFound {
                what: format!(
                    "sources.{}: row {start} is past the end of the file",
                    self.name
                ),
            });
        }
        let end = (start + self.page_size).min(items.len());
        Ok(SourcePage {
            items: items[start..end].to_vec(),
            next: (end < items.len()).then(|| format!("{end}:{}", loaded.hash)),
            total: Some(items.len() as u64),
            checkpoint: None,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Source for CsvSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Csv
    }

    async fn check(&self) -> Result<SourceCheck, SourceError> {
        let read = self.read().await?;
        let mut check = SourceCheck {
            kind: SourceKind::Csv,
            principal: format!("file {}", self.path.display()),
            granted: vec!["read".into()],
            missing: Vec::new(),
            people: None,
            last_login: "the last_login_at column, when the file has one".into(),
            sign_ins: "none: a CSV file has no sign-in log".into(),
            incremental: "none: every sync reads the whole file".into(),
            notes: Vec::new(),
        };
        match read {
            Read::Valid(l) => {
                check.people = Some(l.people.len() as u64);
                check.notes.push(format!(
                    "{} people, {} groups, {} warning(s)",
                    l.people.len(),
                    l.groups.len(),
                    l.warnings.len()
                ));
                check.notes.extend(
                    l.warnings
                        .iter()
                        .take(PROBLEMS_IN_ERROR)
                        .map(|p| p.to_string()),
                );
                *self.loaded.lock().await = Some(Arc::new(l));
            }
            Read::Invalid(report) => {
                check.missing.push(format!(
                    "a valid file: {} invalid row(s), so nothing will be imported until they are fixed",
                    report.errors
                ));
                check.notes.extend(
                    report
                        .problems
                        .iter()
                        .take(PROBLEMS_IN_ERROR)
                        .map(|p| p.to_string()),
                );
                if report.errors + report.warnings > PROBLEMS_IN_ERROR {
                    check.notes.push(format!(
                        "… and {} more problem(s)",
                        report.errors + report.warnings - PROBLEMS_IN_ERROR
                    ));
                }
            }
        }
        Ok(check)
    }

    async fn list_identities(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceIdentity>, SourceError> {
        self.slice(cursor, |l| l.people.as_slice()).await
    }

    async fn list_groups(
        &self,
        cursor: Option<&str>,
    ) -> Result<SourcePage<SourceGroup>, SourceError> {
        self.slice(cursor, |l| l.groups.as_slice()).await
    }

    async fn list_changes(
        &self,
        _checkpoint: &str,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<Change>, SourceError> {
        Err(SourceError::Unsupported {
            what: "incremental listing".into(),
            why: "a CSV file is read whole on every sync".into(),
        })
    }

    async fn sign_ins(
        &self,
        _checkpoint: Option<&str>,
        _cursor: Option<&str>,
    ) -> Result<SourcePage<SignIn>, SourceError> {
        Err(SourceError::Unsupported {
            what: "sign-in events".into(),
            why: "a CSV file has no sign-in log; the last_login_at column is read as each person's last login".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_or_plain_days_and_nothing_else() {
        assert_eq!(
            parse_date("2024-02-03").map(|t| t.to_rfc3339()),
            Some("2024-02-03T00:00:00+00:00".into())
        );
        assert_eq!(
            parse_date("2024-02-03T04:05:06+02:00").map(|t| t.to_rfc3339()),
            Some("2024-02-03T02:05:06+00:00".into())
        );
        for bad in [
            "2024-2-3",
            "03/02/2024",
            "2024-02-30",
            "yesterday",
            "",
            "2024-02-03 04:05",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_are_split_on_semicolons_trimmed_and_deduplicated() {
        assert_eq!(
            split_list(" a ; b;;a; "),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }
}
