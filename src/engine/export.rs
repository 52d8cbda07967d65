//! Exports of the joined view: every Confluence account (`accounts`), every account with its
//! linked identities, activity, absence and the actions waiting for it (`people`), and the
//! stored runs or their actions (`runs`), as CSV, a JSON array or JSON lines.
//!
//! Rows are written one at a time to the caller's writer. CSV is RFC 4180 with a header row;
//! list cells are joined with `;` and every cell goes through [`neutralise`] so that a
//! spreadsheet never reads one as a formula. JSON keeps lists as arrays and times in RFC 3339.
//! The people and accounts views are the planner's own (`Store::planner_inputs` after a link
//! refresh, as `idbridge plan` reads them), and a person's last activity and inactivity come
//! from [`activity`], so an export says what the planner sees.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{BufWriter, Write};
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::domain::{
    AccountId, ActionKind, ActionPhase, LinkMethod, LinkState, PersonView, RuleMode, RunId,
    RunStatus, normalise_key,
};
use crate::engine::activity;
use crate::engine::audit::neutralise;
use crate::engine::link;
use crate::engine::run::{self, RunError, RunOptions};
use crate::store::{ActionRecord, NewAuditEntry, PlannerInputs, RunRecord, Store, StoreError};

/// What can go wrong exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Planning (for the people export's `would_plan`) failed.
    #[error(transparent)]
    Plan(#[from] RunError),
    /// The export could not be written.
    #[error("cannot write the export: {0}")]
    Write(String),
}

fn write_error(e: impl fmt::Display) -> ExportError {
    ExportError::Write(e.to_string())
}

/// What is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// One row per Confluence account.
    Accounts,
    /// One row per account with its identities, activity and pending actions.
    People,
    /// One row per stored run.
    Runs,
    /// One row per action of every stored run.
    Actions,
}

impl ExportKind {
    /// The spelling in the audit log (`export.<kind>`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Accounts => "accounts",
            ExportKind::People => "people",
            ExportKind::Runs => "runs",
            ExportKind::Actions => "actions",
        }
    }
}

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// RFC 4180 CSV with a header row; lists joined with `;`; cells neutralised.
    Csv,
    /// One JSON array of objects, written row by row.
    Json,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The spelling on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            _ => Err(format!(
                "unknown format `{s}` (expected csv, json or jsonl)"
            )),
        }
    }
}

/// A row of one export: its JSON form is its `Serialize`, its CSV form its cells.
trait Row: Serialize {
    /// The CSV header, in cell order.
    const COLUMNS: &'static [&'static str];
    /// The CSV cells (lists already joined), in [`Row::COLUMNS`] order.
    fn cells(&self) -> Vec<String>;
}

enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Json { out: BufWriter<W>, array: bool },
}

/// Writes rows of one export as they come, and counts them.
struct RowWriter<W: Write> {
    sink: Sink<W>,
    rows: u64,
}

impl<W: Write> RowWriter<W> {
    fn start(format: Format, columns: &[&str], out: W) -> Result<Self, ExportError> {
        let sink = match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(columns).map_err(write_error)?;
                Sink::Csv(Box::new(w))
            }
            Format::Json => {
                let mut out = BufWriter::new(out);
                out.write_all(b"[").map_err(write_error)?;
                Sink::Json { out, array: true }
            }
            Format::Jsonl => Sink::Json {
                out: BufWriter::new(out),
                array: false,
            },
        };
        Ok(RowWriter { sink, rows: 0 })
    }

    fn push<R: Row>(&mut self, row: &R) -> Result<(), ExportError> {
        match &mut self.sink {
            Sink::Csv(w) => {
                let cells = row.cells();
                let cells: Vec<Cow<'_, str>> = cells.iter().map(|c| neutralise(c)).collect();
                w.write_record(cells.iter().map(|c| c.as_bytes()))
                    .map_err(write_error)?;
            }
            Sink::Json { out, array } => {
                if *array {
                    out.write_all(if self.rows == 0 { b"\n" } else { b",\n" })
                        .map_err(write_error)?;
                }
                serde_json::to_writer(&mut *out, row).map_err(write_error)?;
                if !*array {
                    out.write_all(b"\n").map_err(write_error)?;
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> Result<u64, ExportError> {
        match self.sink {
            Sink::Csv(mut w) => w.flush().map_err(write_error)?,
            Sink::Json { mut out, array } => {
                if array {
                    let end: &[u8] = if self.rows == 0 { b"]\n" } else { b"\n]\n" };
                    out.write_all(end).map_err(write_error)?;
                }
                out.flush().map_err(write_error)?;
            }
        }
        Ok(self.rows)
    }
}

/// A time in a CSV cell: RFC 3339, seconds, UTC.
fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn opt(s: Option<&str>) -> String {
    s.unwrap_or_default().to_owned()
}

fn join<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(";")
}

/// The planner's read model with current links (new matches stored, conflicts known), as
/// `idbridge plan` reads it.
async fn joined_view(store: &Store, config: &Config) -> Result<PlannerInputs, ExportError> {
    let links = link::refresh_links(store, config).await?;
    Ok(store.planner_inputs(config, &links).await?)
}

/// Per target name, the licence-granting groups, normalised.
fn licence_groups(inputs: &PlannerInputs) -> HashMap<&str, HashSet<String>> {
    inputs
        .targets
        .iter()
        .map(|t| {
            let set = t.licence_groups.iter().map(|g| normalise_key(g)).collect();
            (t.name.as_str(), set)
        })
        .collect()
}

/// The account's groups that grant a licence on its target.
fn held<'a>(p: &'a PersonView, licence: &HashMap<&str, HashSet<String>>) -> Vec<&'a str> {
    let Some(set) = licence.get(p.account.target.as_str()) else {
        return Vec::new();
    };
    p.account
        .groups
        .iter()
        .filter(|g| set.contains(&normalise_key(g)))
        .map(String::as_str)
        .collect()
}

/// One Confluence account.
#[derive(Debug, Serialize)]
pub struct AccountRow<'a> {
    pub target: &'a str,
    pub username: &'a str,
    pub key: &'a str,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub active: bool,
    pub licensed: bool,
    /// The groups held that grant a licence on the target.
    pub licence_groups: Vec<&'a str>,
    pub groups: &'a [String],
    pub directory: Option<&'a str>,
    pub admin: bool,
    pub managed: bool,
    /// Why idbridge leaves the account alone, when it does.
    pub unmanaged_reason: Option<&'a str>,
    pub created_at: Option<DateTime<Utc>>,
    /// Confluence's own last login.
    pub last_login_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
}

impl Row for AccountRow<'_> {
    const COLUMNS: &'static [&'static str] = &[
        "target",
        "username",
        "key",
        "email",
        "display_name",
        "active",
        "licensed",
        "licence_groups",
        "groups",
        "directory",
        "admin",
        "managed",
        "unmanaged_reason",
        "created_at",
        "last_login_at",
        "first_seen_at",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.target.to_owned(),
            self.username.to_owned(),
            self.key.to_owned(),
            opt(self.email),
            opt(self.display_name),
            self.active.to_string(),
            self.licensed.to_string(),
            join(&self.licence_groups),
            join(self.groups),
            opt(self.directory),
            self.admin.to_string(),
            self.managed.to_string(),
            opt(self.unmanaged_reason),
            time(self.created_at),
            time(self.last_login_at),
            time(Some(self.first_seen_at)),
        ]
    }
}

fn account_row<'a>(p: &'a PersonView, licence: &HashMap<&str, HashSet<String>>) -> AccountRow<'a> {
    let a = &p.account;
    AccountRow {
        target: &a.target,
        username: &a.username,
        key: &a.key,
        email: a.email.as_deref(),
        display_name: a.display_name.as_deref(),
        active: a.active,
        licensed: a.licensed,
        licence_groups: held(p, licence),
        groups: &a.groups,
        directory: a.directory.as_deref(),
        admin: a.admin,
        managed: a.managed,
        unmanaged_reason: a.unmanaged_reason.as_deref(),
        created_at: a.created_at,
        last_login_at: a.last_login_at,
        first_seen_at: a.first_seen_at,
    }
}

/// Writes one row per Confluence account, by target then username; returns the row count.
pub async fn export_accounts<W: Write>(
    store: &Store,
    config: &Config,
    format: Format,
    out: W,
) -> Result<u64, ExportError> {
    let inputs = joined_view(store, config).await?;
    let licence = licence_groups(&inputs);
    let mut w = RowWriter::start(format, AccountRow::COLUMNS, out)?;
    for p in &inputs.people {
        w.push(&account_row(p, &licence))?;
    }
    w.finish()
}

/// An identity linked to the account.
#[derive(Debug, Serialize)]
pub struct LinkedIdentity<'a> {
    pub source: &'a str,
    pub external_id: &'a str,
    pub user_name: &'a str,
    /// How the link was made (`immutable_id`, `email`, `username`, `manual`…).
    pub link_method: Option<LinkMethod>,
    /// idbridge's reading of the IdP status.
    pub status: &'static str,
    /// The status as the IdP spells it.
    pub raw_status: Option<&'a str>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub last_sign_in_event_at: Option<DateTime<Utc>>,
    pub groups: &'a [String],
}

/// An unfinished action of a stored run.
#[derive(Debug, Clone, Serialize)]
pub struct PendingAction {
    pub run: RunId,
    pub run_status: RunStatus,
    pub mode: RuleMode,
    pub rule: String,
    pub action: ActionKind,
    pub phase: ActionPhase,
}

impl fmt::Display for PendingAction {
    /// `deactivate (run 0123abcd, held)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = self.run.to_string();
        write!(
            f,
            "{} (run {}, {}",
            describe(&self.action),
            &run[..8.min(run.len())],
            self.run_status.as_str()
        )?;
        if self.phase != ActionPhase::Planned {
            write!(f, ", {}", self.phase.as_str())?;
        }
        if self.mode == RuleMode::DryRun {
            f.write_str(", dry run")?;
        }
        f.write_str(")")
    }
}

/// What the current rules would plan for the account now.
#[derive(Debug, Clone, Serialize)]
pub struct WouldPlan {
    pub rule: String,
    pub action: ActionKind,
    pub mode: RuleMode,
}

impl fmt::Display for WouldPlan {
    /// `deactivate (rule leavers)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (rule {}", describe(&self.action), self.rule)?;
        if self.mode == RuleMode::DryRun {
            f.write_str(", dry run")?;
        }
        f.write_str(")")
    }
}

/// An action in a few words: its kind and its parameter.
fn describe(kind: &ActionKind) -> String {
    match kind {
        ActionKind::RemoveFromGroup { group, .. } | ActionKind::AddToGroup { group } => {
            format!("{} {group}", kind.name())
        }
        ActionKind::Rename { to, .. } | ActionKind::ChangeDirectory { to, .. } => {
            format!("{} to {to}", kind.name())
        }
        _ => kind.name().to_owned(),
    }
}

/// One account with everything joined to it.
#[derive(Debug, Serialize)]
pub struct PersonRow<'a> {
    pub target: &'a str,
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub active: bool,
    pub licensed: bool,
    pub licence_groups: Vec<&'a str>,
    pub groups: &'a [String],
    pub admin: bool,
    pub managed: bool,
    pub unmanaged_reason: Option<&'a str>,
    /// `linked`, `unlinked` or `conflict`.
    pub link_state: &'static str,
    /// Why the link is ambiguous, for a conflict.
    pub link_conflict: Option<&'a str>,
    /// Highest precedence first.
    pub identities: Vec<LinkedIdentity<'a>>,
    /// The latest successful sign-in seen anywhere, and where it was seen.
    pub last_activity_at: Option<DateTime<Utc>>,
    pub last_activity_from: Option<String>,
    /// `now − max(created, last activity)`, in days.
    pub inactive_days: i64,
    /// Consecutive complete snapshots of every source that lacked the person.
    pub absent_syncs: u32,
    /// Unfinished actions of stored runs.
    pub pending_actions: Vec<PendingAction>,
    /// What the rules would plan now; `None` when not asked for.
    pub would_plan: Option<Vec<WouldPlan>>,
}

impl Row for PersonRow<'_> {
    const COLUMNS: &'static [&'static str] = &[
        "target",
        "username",
        "email",
        "active",
        "licensed",
        "licence_groups",
        "groups",
        "admin",
        "managed",
        "unmanaged_reason",
        "link_state",
        "link_conflict",
        "identity_sources",
        "identity_external_ids",
        "identity_link_methods",
        "idp_statuses",
        "idp_raw_statuses",
        "idp_last_logins",
        "idp_groups",
        "last_activity_at",
        "last_activity_from",
        "inactive_days",
        "absent_syncs",
        "pending_actions",
        "would_plan",
    ];

    fn cells(&self) -> Vec<String> {
        let each = |f: &dyn Fn(&LinkedIdentity<'_>) -> String| -> String {
            join(&self.identities.iter().map(f).collect::<Vec<_>>())
        };
        let idp_groups: Vec<String> = self
            .identities
            .iter()
            .flat_map(|i| i.groups.iter().map(move |g| format!("{}:{g}", i.source)))
            .collect();
        vec![
            self.target.to_owned(),
            self.username.to_owned(),
            opt(self.email),
            self.active.to_string(),
            self.licensed.to_string(),
            join(&self.licence_groups),
            join(self.groups),
            self.admin.to_string(),
            self.managed.to_string(),
            opt(self.unmanaged_reason),
            self.link_state.to_owned(),
            opt(self.link_conflict),
            each(&|i| i.source.to_owned()),
            each(&|i| i.external_id.to_owned()),
            each(&|i| i.link_method.map(|m| m.as_str()).unwrap_or("").to_owned()),
            each(&|i| i.status.to_owned()),
            each(&|i| opt(i.raw_status)),
            each(&|i| time(i.last_login_at)),
            join(&idp_groups),
            time(self.last_activity_at),
            opt(self.last_activity_from.as_deref()),
            self.inactive_days.to_string(),
            self.absent_syncs.to_string(),
            join(
                &self
                    .pending_actions
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            ),
            self.would_plan
                .as_ref()
                .map(|w| join(&w.iter().map(ToString::to_string).collect::<Vec<_>>()))
                .unwrap_or_default(),
        ]
    }
}

fn person_row<'a>(
    p: &'a PersonView,
    licence: &HashMap<&str, HashSet<String>>,
    pending: &mut HashMap<AccountId, Vec<PendingAction>>,
    would: Option<&mut HashMap<AccountId, Vec<WouldPlan>>>,
    now: DateTime<Utc>,
) -> PersonRow<'a> {
    let a = &p.account;
    let methods: HashMap<_, LinkMethod> = match &p.link {
        LinkState::Linked { methods } => methods.iter().copied().collect(),
        _ => HashMap::new(),
    };
    let (link_state, link_conflict) = match &p.link {
        LinkState::Linked { .. } => ("linked", None),
        LinkState::Unlinked => ("unlinked", None),
        LinkState::Conflict { reason } => ("conflict", Some(reason.as_str())),
    };
    let identities = p
        .identities
        .iter()
        .map(|i| LinkedIdentity {
            source: &i.source,
            external_id: &i.external_id,
            user_name: &i.user_name,
            link_method: methods.get(&i.id).copied(),
            status: i.status.as_str(),
            raw_status: i.raw_status.as_deref(),
            last_login_at: i.last_login_at,
            last_sign_in_event_at: i.last_sign_in_event_at,
            groups: &i.groups,
        })
        .collect();
    let seen = activity::last_activity(p, now);
    PersonRow {
        target: &a.target,
        username: &a.username,
        email: a.email.as_deref(),
        active: a.active,
        licensed: a.licensed,
        licence_groups: held(p, licence),
        groups: &a.groups,
        admin: a.admin,
        managed: a.managed,
        unmanaged_reason: a.unmanaged_reason.as_deref(),
        link_state,
        link_conflict,
        identities,
        last_activity_at: seen.map(|s| s.at),
        last_activity_from: seen.map(|s| s.from.to_string()),
        inactive_days: activity::inactive_days(p, now),
        absent_syncs: p.absent_syncs,
        pending_actions: pending.remove(&a.id).unwrap_or_default(),
        would_plan: would.map(|w| w.remove(&a.id).unwrap_or_default()),
    }
}

/// Whether a run's open actions may still be carried out (or wait for approval).
fn open_run(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Planned | RunStatus::Held | RunStatus::Approved | RunStatus::Running
    )
}

/// Every stored run, newest first.
async fn all_runs(store: &Store) -> Result<Vec<RunRecord>, StoreError> {
    store.runs(i64::MAX).await
}

/// Unfinished actions of open runs, per account, in run then plan order.
async fn pending_actions(
    store: &Store,
) -> Result<HashMap<AccountId, Vec<PendingAction>>, StoreError> {
    let mut runs: Vec<RunRecord> = all_runs(store)
        .await?
        .into_iter()
        .filter(|r| open_run(r.status))
        .collect();
    runs.reverse();
    let mut out: HashMap<AccountId, Vec<PendingAction>> = HashMap::new();
    for r in runs {
        for a in store.run_actions(r.id).await? {
            if a.phase.is_terminal() {
                continue;
            }
            out.entry(a.account_id).or_default().push(PendingAction {
                run: r.id,
                run_status: r.status,
                mode: r.mode,
                rule: a.rule,
                action: a.kind,
                phase: a.phase,
            });
        }
    }
    Ok(out)
}

/// What the rules would plan now, per account (`idbridge plan`'s preview).
async fn would_plan(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<HashMap<AccountId, Vec<WouldPlan>>, ExportError> {
    let preview = run::preview(store, config, &RunOptions::default(), now).await?;
    let mut out: HashMap<AccountId, Vec<WouldPlan>> = HashMap::new();
    for (plan, mode) in [
        (preview.enforce, RuleMode::Enforce),
        (preview.dry_run, RuleMode::DryRun),
    ] {
        for a in plan.actions {
            out.entry(a.account_id).or_default().push(WouldPlan {
                rule: a.reason.rule,
                action: a.kind,
                mode,
            });
        }
    }
    Ok(out)
}

/// Writes one row per account with its identities, activity, absence and pending actions,
/// by target then username; with `with_plan`, also what the rules would plan now (one more
/// pass of the planner). Returns the row count.
pub async fn export_people<W: Write>(
    store: &Store,
    config: &Config,
    format: Format,
    with_plan: bool,
    now: DateTime<Utc>,
    out: W,
) -> Result<u64, ExportError> {
    let mut would = match with_plan {
        true => Some(would_plan(store, config, now).await?),
        false => None,
    };
    let inputs = joined_view(store, config).await?;
    let mut pending = pending_actions(store).await?;
    let licence = licence_groups(&inputs);
    let mut w = RowWriter::start(format, PersonRow::COLUMNS, out)?;
    for p in &inputs.people {
        let row = person_row(p, &licence, &mut pending, would.as_mut(), now);
        w.push(&row)?;
    }
    w.finish()
}

/// Actions per phase, every phase present.
#[derive(Debug, Default, Serialize)]
pub struct PhaseCounts {
    pub planned: u64,
    pub claimed: u64,
    pub sent: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub poisoned: u64,
}

impl PhaseCounts {
    fn add(&mut self, phase: &str, n: u64) {
        let slot = match phase {
            "planned" => &mut self.planned,
            "claimed" => &mut self.claimed,
            "sent" => &mut self.sent,
            "confirmed" => &mut self.confirmed,
            "failed" => &mut self.failed,
            "skipped" => &mut self.skipped,
            "poisoned" => &mut self.poisoned,
            _ => return,
        };
        *slot += n;
    }
}

/// One stored run.
#[derive(Debug, Serialize)]
pub struct RunRow<'a> {
    pub id: RunId,
    pub kind: &'static str,
    pub mode: &'static str,
    pub status: &'static str,
    pub rules: &'a [String],
    pub started_by: &'a str,
    pub approved_by: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub actions: u32,
    #[serde(flatten)]
    pub phases: PhaseCounts,
}

impl Row for RunRow<'_> {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "kind",
        "mode",
        "status",
        "rules",
        "started_by",
        "approved_by",
        "created_at",
        "started_at",
        "finished_at",
        "actions",
        "planned",
        "claimed",
        "sent",
        "confirmed",
        "failed",
        "skipped",
        "poisoned",
    ];

    fn cells(&self) -> Vec<String> {
        let p = &self.phases;
        vec![
            self.id.to_string(),
            self.kind.to_owned(),
            self.mode.to_owned(),
            self.status.to_owned(),
            join(self.rules),
            self.started_by.to_owned(),
            opt(self.approved_by),
            time(Some(self.created_at)),
            time(self.started_at),
            time(self.finished_at),
            self.actions.to_string(),
            p.planned.to_string(),
            p.claimed.to_string(),
            p.sent.to_string(),
            p.confirmed.to_string(),
            p.failed.to_string(),
            p.skipped.to_string(),
            p.poisoned.to_string(),
        ]
    }
}

/// Actions per phase of run `r`: its stored summary once finished, else counted.
async fn phase_counts(store: &Store, r: &RunRecord) -> Result<PhaseCounts, StoreError> {
    let mut counts = PhaseCounts::default();
    match r.summary.as_object().filter(|s| !s.is_empty()) {
        Some(summary) => {
            for (phase, n) in summary {
                counts.add(phase, n.as_u64().unwrap_or(0));
            }
        }
        None if r.action_count > 0 => {
            for a in store.run_actions(r.id).await? {
                counts.add(a.phase.as_str(), 1);
            }
        }
        None => {}
    }
    Ok(counts)
}

/// One action of a stored run.
#[derive(Debug, Serialize)]
pub struct ActionRow<'a> {
    pub run_id: RunId,
    pub seq: i64,
    pub account_key: &'a str,
    /// The username at plan time.
    pub username: &'a str,
    pub kind: &'static str,
    /// The action with its parameters.
    pub params: &'a ActionKind,
    pub rule: &'a str,
    pub because: &'a [String],
    pub phase: &'static str,
    pub attempts: u32,
    pub error: Option<&'a str>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub pre_image: Option<&'a Value>,
    pub post_image: Option<&'a Value>,
}

impl Row for ActionRow<'_> {
    const COLUMNS: &'static [&'static str] = &[
        "run_id",
        "seq",
        "account_key",
        "username",
        "kind",
        "params",
        "rule",
        "because",
        "phase",
        "attempts",
        "error",
        "updated_at",
        "finished_at",
        "pre_image",
        "post_image",
    ];

    fn cells(&self) -> Vec<String> {
        let json = |v: Option<&Value>| v.map(Value::to_string).unwrap_or_default();
        vec![
            self.run_id.to_string(),
            self.seq.to_string(),
            self.account_key.to_owned(),
            self.username.to_owned(),
            self.kind.to_owned(),
            serde_json::to_string(self.params).unwrap_or_default(),
            self.rule.to_owned(),
            join(self.because),
            self.phase.to_owned(),
            self.attempts.to_string(),
            opt(self.error),
            time(Some(self.updated_at)),
            time(self.finished_at),
            json(self.pre_image),
            json(self.post_image),
        ]
    }
}

fn action_row(a: &ActionRecord) -> ActionRow<'_> {
    ActionRow {
        run_id: a.run_id,
        seq: a.seq,
        account_key: &a.account_key,
        username: &a.username,
        kind: a.kind.name(),
        params: &a.kind,
        rule: &a.rule,
        because: &a.reason.because,
        phase: a.phase.as_str(),
        attempts: a.attempts,
        error: a.error.as_deref(),
        updated_at: a.updated_at,
        finished_at: a.finished_at,
        pre_image: a.pre_image.as_ref(),
        post_image: a.post_image.as_ref(),
    }
}

/// Writes one row per stored run, newest first, or with `actions` one row per action of
/// every run (newest run first, each in plan order). Returns the row count.
pub async fn export_runs<W: Write>(
    store: &Store,
    format: Format,
    actions: bool,
    out: W,
) -> Result<u64, ExportError> {
    let runs = all_runs(store).await?;
    if actions {
        let mut w = RowWriter::start(format, ActionRow::COLUMNS, out)?;
        for r in &runs {
            for a in store.run_actions(r.id).await? {
                w.push(&action_row(&a))?;
            }
        }
        return w.finish();
    }
    let mut w = RowWriter::start(format, RunRow::COLUMNS, out)?;
    for r in &runs {
        let row = RunRow {
            id: r.id,
            kind: r.kind.as_str(),
            mode: r.mode.as_str(),
            status: r.status.as_str(),
            rules: &r.rules,
            started_by: &r.started_by,
            approved_by: r.approved_by.as_deref(),
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            actions: r.action_count,
            phases: phase_counts(store, r).await?,
        };
        w.push(&row)?;
    }
    w.finish()
}

/// Records an export in the audit log: `export.<kind>` by `actor`, with the format, the
/// number of rows and where they went.
pub async fn record_export(
    store: &Store,
    actor: &str,
    kind: ExportKind,
    format: Format,
    rows: u64,
    destination: &str,
) -> Result<(), ExportError> {
    let mut detail = BTreeMap::new();
    detail.insert("format", Value::from(format.as_str()));
    detail.insert("rows", Value::from(rows));
    detail.insert("destination", Value::from(destination));
    store
        .record_audit(&NewAuditEntry {
            actor: actor.to_owned(),
            action: format!("export.{}", kind.as_str()),
            subject_kind: Some("export".into()),
            subject_id: None,
            detail: serde_json::to_value(detail).unwrap_or(Value::Null),
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::activity::tests::{at, identity, link, person};

    fn keys(v: &Value) -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn written<R: Row>(format: Format, rows: &[R]) -> String {
        let mut buf = Vec::new();
        let mut w = RowWriter::start(format, R::COLUMNS, &mut buf).unwrap();
        for r in rows {
            w.push(r).unwrap();
        }
        assert_eq!(w.finish().unwrap(), rows.len() as u64);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn csv_cells_are_neutralised_and_lists_joined_with_semicolons() {
        let mut p = person("=cmd|' /C calc'!A0");
        p.account.groups = vec!["confluence-users".into(), "+staff".into()];
        let licence = HashMap::from([("wiki", HashSet::from(["confluence-users".to_owned()]))]);
        let text = written(Format::Csv, &[account_row(&p, &licence)]);
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            r.headers().unwrap().iter().collect::<Vec<_>>(),
            AccountRow::COLUMNS
        );
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[1], "'=cmd|' /C calc'!A0");
        assert_eq!(&row[7], "confluence-users");
        assert_eq!(&row[8], "confluence-users;+staff");
    }

    #[test]
    fn json_is_one_array_and_jsonl_one_object_per_line_with_the_csv_columns_as_keys() {
        let licence = HashMap::new();
        let (a, b) = (person("ann"), person("bob"));
        let rows = [account_row(&a, &licence), account_row(&b, &licence)];
        let array: Value = serde_json::from_str(&written(Format::Json, &rows)).unwrap();
        let array = array.as_array().unwrap();
        assert_eq!(array.len(), 2);
        assert_eq!(array[1]["username"], "bob");
        let mut found = keys(&array[0]);
        found.sort();
        let mut columns: Vec<String> = AccountRow::COLUMNS.iter().map(|c| c.to_string()).collect();
        columns.sort();
        assert_eq!(found, columns);
        let lines = written(Format::Jsonl, &rows);
        let parsed: Vec<Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0]["username"], "ann");
        let empty: Value =
            serde_json::from_str(&written::<AccountRow<'_>>(Format::Json, &[])).unwrap();
        assert_eq!(empty, Value::Array(Vec::new()));
    }

    #[test]
    fn a_person_row_carries_activity_from_the_planners_own_reckoning() {
        let now = at(2026, 11, 1);
        let mut p = person("ann");
        p.account.created_at = Some(at(2024, 1, 1));
        let mut okta = identity("okta", "ann");
        okta.last_sign_in_event_at = Some(at(2026, 7, 12));
        okta.raw_status = Some("ACTIVE".into());
        link(&mut p, okta);
        let mut pending = HashMap::from([(
            p.account.id,
            vec![PendingAction {
                run: RunId(uuid::Uuid::parse_str("0123abcd-0000-4000-8000-000000000000").unwrap()),
                run_status: RunStatus::Held,
                mode: RuleMode::Enforce,
                rule: "leavers".into(),
                action: ActionKind::Deactivate,
                phase: ActionPhase::Planned,
            }],
        )]);
        let row = person_row(&p, &HashMap::new(), &mut pending, None, now);
        assert_eq!(row.last_activity_at, Some(at(2026, 7, 12)));
        assert_eq!(row.last_activity_from.as_deref(), Some("okta sign-in log"));
        assert_eq!(row.inactive_days, activity::inactive_days(&p, now));
        let cells = row.cells();
        let cell = |name: &str| {
            let i = PersonRow::COLUMNS.iter().position(|c| *c == name).unwrap();
            cells[i].clone()
        };
        assert_eq!(cell("link_state"), "linked");
        assert_eq!(cell("identity_link_methods"), "email");
        assert_eq!(cell("idp_raw_statuses"), "ACTIVE");
        assert_eq!(cell("pending_actions"), "deactivate (run 0123abcd, held)");
        assert_eq!(cell("would_plan"), "");
        assert_eq!(cells.len(), PersonRow::COLUMNS.len());
    }

    #[test]
    fn actions_and_plans_read_as_a_few_words() {
        let remove = ActionKind::RemoveFromGroup {
            group: "confluence-users".into(),
            licence: true,
        };
        assert_eq!(describe(&remove), "remove_from_group confluence-users");
        let w = WouldPlan {
            rule: "inactive".into(),
            action: ActionKind::Rename {
                from: "a".into(),
                to: "a_inactive".into(),
            },
            mode: RuleMode::DryRun,
        };
        assert_eq!(
            w.to_string(),
            "rename to a_inactive (rule inactive, dry run)"
        );
        assert_eq!("JSONL".parse(), Ok(Format::Jsonl));
        assert!("xml".parse::<Format>().is_err());
    }
}
