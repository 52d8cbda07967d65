//! Source sync: reads every person and group of one identity source into the store as a
//! snapshot and decides whether the snapshot is complete; applies incremental changes; and
//! records successful sign-ins to the Confluence application.
//!
//! A snapshot is complete only if the listing ended on a terminal page with no repeated
//! cursor or id, every record carries its required fields, the count matches what the source
//! announced, the group listing (where the source has one) also ended cleanly, and the count is
//! plausible against the last complete snapshot. Otherwise it is stored as incomplete (or failed)
//! with the reason, and later stages make no removals from it. A person missing from a
//! snapshot keeps their last status: absence is never read as leaving.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use super::inventory::Pager;
use crate::domain::{NewIdentity, Snapshot, SnapshotStatus, Source as SourceRecord};
use crate::sources::{Change, Source, SourceError, SourceIdentity};
use crate::store::{NewSignIn, NewSourceGroup, Store, StoreError, Stream};

/// How one sync runs.
#[derive(Clone, Debug)]
pub struct SourceSyncOptions {
    /// Largest change in the number of people, in percent of the last complete snapshot,
    /// that still counts as plausible.
    pub plausible_change_percent: f64,
    /// Most pages one listing may take before it is cut off as runaway.
    pub max_pages: u64,
    /// Read groups and memberships too.
    pub groups: bool,
    /// Read sign-in events for the Confluence application too.
    pub sign_ins: bool,
}

impl Default for SourceSyncOptions {
    fn default() -> Self {
        SourceSyncOptions {
            plausible_change_percent: 10.0,
            max_pages: 100_000,
            groups: true,
            sign_ins: true,
        }
    }
}

impl SourceSyncOptions {
    /// The options a source's configuration asks for.
    pub fn from_config(cfg: &crate::config::SourceConfig) -> Self {
        SourceSyncOptions {
            plausible_change_percent: cfg.plausible_change_percent,
            ..SourceSyncOptions::default()
        }
    }
}

/// What a full sync found.
#[derive(Clone, Debug, Serialize)]
pub struct SourceSyncReport {
    pub snapshot: Snapshot,
    pub identities: u64,
    pub groups: u64,
    pub pages: u64,
    /// Why the snapshot is not complete, when it is not.
    pub reason: Option<String>,
    /// Statuses seen, normalised (`active`, `deprovisioned`, …) with counts.
    pub statuses: BTreeMap<String, u64>,
    /// Raw statuses that mapped to `unknown`, with counts.
    pub unknown_statuses: BTreeMap<String, u64>,
    /// People with a last-login time from the source.
    pub with_last_login: u64,
    pub sign_ins: Option<SignInReport>,
    /// Things that are not wrong but worth knowing (no groups here, no sign-in log, …).
    pub notes: Vec<String>,
    pub elapsed_ms: u64,
}

impl SourceSyncReport {
    /// Whether the snapshot is complete.
    pub fn is_complete(&self) -> bool {
        self.snapshot.status == SnapshotStatus::Complete
    }
}

/// What an incremental sync applied.
#[derive(Clone, Debug, Serialize)]
pub struct ChangesReport {
    pub upserted: u64,
    pub removed: u64,
    pub pages: u64,
    /// Whether the listing reached its terminal page (the checkpoint moves only then).
    pub finished: bool,
    pub reason: Option<String>,
    pub elapsed_ms: u64,
}

/// What a sign-in poll recorded.
#[derive(Clone, Debug, Serialize)]
pub struct SignInReport {
    pub read: u64,
    pub new: u64,
    pub pages: u64,
    pub reason: Option<String>,
}

/// Why a sync could not even be recorded.
#[derive(Debug, thiserror::Error)]
pub enum SourceSyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured source's connector cannot be built.
    #[error("source `{name}`: {source}")]
    Connector {
        name: String,
        #[source]
        source: SourceError,
    },
}

/// What syncing configured source `name` takes: its record, its connector (reading "now" from
/// the store's clock) and its options.
pub async fn configured_source(
    store: &Store,
    name: &str,
    cfg: &crate::config::SourceConfig,
) -> Result<
    (
        SourceRecord,
        crate::sources::SourceConnector,
        SourceSyncOptions,
    ),
    SourceSyncError,
> {
    let record = store.ensure_source(name, cfg.kind).await?;
    let connector = crate::sources::SourceConnector::from_config(name, cfg)
        .map_err(|source| SourceSyncError::Connector {
            name: name.to_owned(),
            source,
        })?
        .with_clock(store.clock.clone());
    Ok((record, connector, SourceSyncOptions::from_config(cfg)))
}

/// What the record of `i` stores: the fields idbridge links and decides on as columns, the
/// rest (raw status, all emails, names, groups, custom attributes) in `attributes`.
fn new_identity(record: &SourceRecord, i: SourceIdentity) -> NewIdentity {
    let mut attrs = serde_json::Map::new();
    attrs.insert("raw_status".into(), Value::String(i.raw_status));
    if !i.emails.is_empty() {
        attrs.insert("emails".into(), json!(i.emails));
    }
    if let Some(g) = &i.given_name {
        attrs.insert("given_name".into(), json!(g));
    }
    if let Some(f) = &i.family_name {
        attrs.insert("family_name".into(), json!(f));
    }
    if !i.groups.is_empty() {
        // As the person's record names them (LDAP `memberOf` DNs, CSV group names); the
        // group listings' memberships are in `source_groups`.
        attrs.insert("groups".into(), json!(i.groups));
    }
    if !i.attributes.is_empty() {
        attrs.insert("custom".into(), json!(i.attributes));
    }
    if let Some(u) = i.updated_at {
        attrs.insert("source_updated_at".into(), json!(u));
    }
    NewIdentity {
        source_id: record.id,
        email: i.emails.first().cloned(),
        external_id: i.external_id,
        user_name: i.login,
        display_name: i.display_name,
        status: i.status,
        idp_created_at: i.created_at,
        last_login_at: i.last_login_at,
        attributes: Value::Object(attrs),
    }
}

/// What the people listing found.
struct People {
    pages: u64,
    count: u64,
    announced: Option<u64>,
    terminal: bool,
    checkpoint: Option<String>,
    listing_error: Option<String>,
    first_error: Option<SourceError>,
    statuses: BTreeMap<String, u64>,
    unknown: BTreeMap<String, u64>,
    with_last_login: u64,
}

/// Groups with their members, as the group listing reported them.
#[derive(Default)]
struct GroupView {
    groups: Vec<NewSourceGroup>,
    pages: u64,
}

async fn read_groups<S: Source>(
    source: &S,
    opts: &SourceSyncOptions,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> GroupView {
    let mut view = GroupView::default();
    let mut pager = Pager::new("groups", opts.max_pages);
    let mut cursor: Option<String> = None;
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut seen: Vec<HashSet<String>> = Vec::new();
    loop {
        if let Err(why) = pager.next(&cursor) {
            problems.push(why);
            break;
        }
        let page = match source.list_groups(cursor.as_deref()).await {
            Ok(p) => p,
            Err(SourceError::Unsupported { why, .. }) if pager.pages == 1 => {
                notes.push(format!("groups are not read from this source ({why})"));
                break;
            }
            Err(e) => {
                problems.push(format!(
                    "groups: listing stopped after {}: {e}",
                    view.groups.len()
                ));
                break;
            }
        };
        for g in page.items {
            // A group seen again carries more of its members (a large group comes in parts);
            // each member is recorded once.
            let at = match index.get(&g.external_id) {
                Some(&at) => at,
                None => {
                    index.insert(g.external_id.clone(), view.groups.len());
                    view.groups.push(NewSourceGroup {
                        external_id: g.external_id,
                        name: g.name,
                        members: Vec::new(),
                    });
                    seen.push(HashSet::new());
                    view.groups.len() - 1
                }
            };
            let group = &mut view.groups[at];
            for m in g.members {
                if seen[at].insert(m.clone()) {
                    group.members.push(m);
                }
            }
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    view.pages = pager.pages;
    view
}

/// Reads every person (and group) of `source` into a new snapshot of `record`.
#[tracing::instrument(skip_all, fields(source.name = %record.name))]
pub async fn sync_source<S: Source>(
    store: &Store,
    record: &SourceRecord,
    source: &S,
    opts: &SourceSyncOptions,
) -> Result<SourceSyncReport, SourceSyncError> {
    let started = Instant::now();
    let snapshot = store.begin_source_snapshot(record.id).await?;
    let mut problems: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // Groups and people are read side by side: memberships live with the groups, so neither
    // listing waits for the other.
    let mut group_problems: Vec<String> = Vec::new();
    let mut group_notes: Vec<String> = Vec::new();
    let groups_read = async {
        if opts.groups {
            read_groups(source, opts, &mut group_problems, &mut group_notes).await
        } else {
            GroupView::default()
        }
    };
    let mut people_problems: Vec<String> = Vec::new();
    let people_read = async {
        let mut pager = Pager::new("people", opts.max_pages);
        let mut seen: HashSet<String> = HashSet::new();
        let mut count: u64 = 0;
        let mut announced: Option<u64> = None;
        let mut terminal = false;
        let mut checkpoint: Option<String> = None;
        let mut listing_error: Option<String> = None;
        let mut first_error: Option<SourceError> = None;
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        let mut unknown: BTreeMap<String, u64> = BTreeMap::new();
        let mut with_last_login = 0u64;
        let mut fetched = match pager.next(&None) {
            Ok(()) => source.list_identities(None).await,
            Err(why) => Err(SourceError::Config(why)),
        };
        loop {
            let page = match fetched {
                Ok(p) => p,
                Err(e) => {
                    listing_error = Some(format!("people: listing stopped after {count}: {e}"));
                    if pager.pages == 1 {
                        first_error = Some(e);
                    }
                    break;
                }
            };
            announced = page.total.or(announced);
            let mut rows = Vec::with_capacity(page.items.len());
            for i in page.items {
                if i.external_id.trim().is_empty() || i.login.trim().is_empty() {
                    people_problems.push(format!(
                        "people: a record without {} (login `{}`)",
                        if i.external_id.trim().is_empty() {
                            "an id"
                        } else {
                            "a login"
                        },
                        crate::sources::auth::one_line(&i.login, 80)
                    ));
                    continue;
                }
                if !seen.insert(i.external_id.clone()) {
                    if listing_error.is_none() {
                        listing_error = Some(format!(
                            "people: id `{}` was listed twice (pages shifted while being read)",
                            i.external_id
                        ));
                    }
                    continue;
                }
                *statuses.entry(i.status.as_str().to_owned()).or_default() += 1;
                if i.status == crate::domain::IdentityStatus::Unknown {
                    *unknown.entry(i.raw_status.clone()).or_default() += 1;
                }
                if i.last_login_at.is_some() {
                    with_last_login += 1;
                }
                rows.push(new_identity(record, i));
            }
            let write = store.record_source_identities(record.id, Some(snapshot.id), &rows);
            let Some(next) = page.next else {
                count += write.await?;
                terminal = true;
                checkpoint = page.checkpoint;
                break;
            };
            if let Err(why) = pager.next(&Some(next.clone())) {
                count += write.await?;
                listing_error = Some(why);
                break;
            }
            let (written, next_page) = tokio::join!(write, source.list_identities(Some(&next)));
            count += written?;
            fetched = next_page;
        }

        Ok::<_, StoreError>(People {
            pages: pager.pages,
            count,
            announced,
            terminal,
            checkpoint,
            listing_error,
            first_error,
            statuses,
            unknown,
            with_last_login,
        })
    };
    let (view, people) = tokio::join!(groups_read, people_read);
    let People {
        pages: people_pages,
        count,
        announced,
        terminal,
        checkpoint,
        listing_error,
        first_error,
        statuses,
        unknown,
        with_last_login,
    } = people?;
    problems.extend(people_problems);
    problems.extend(group_problems);
    notes.extend(group_notes);
    if let Some(e) = listing_error {
        problems.insert(0, e);
    }
    if terminal
        && let Some(total) = announced
        && total != count
    {
        problems.push(format!(
            "people: the source announced {total} but listed {count}"
        ));
    }
    if count > 0 && with_last_login == 0 {
        notes.push(
            "no last-login time came from this source for anyone (for Entra ID: a tenant \
             without P1/P2 or an app without AuditLog.Read.All); inactivity must come from \
             sign-in events or Confluence"
                .into(),
        );
    }
    if !unknown.is_empty() {
        notes.push(format!(
            "statuses idbridge does not know were recorded as unknown (never a leaver): {}",
            unknown
                .iter()
                .map(|(k, v)| format!("{k} × {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // An empty or implausibly changed listing is how mass deprovisioning starts.
    if problems.is_empty() {
        let last = store
            .latest_source_snapshot(record.id, Some(SnapshotStatus::Complete))
            .await?;
        match last {
            Some(last) if last.item_count > 0 => {
                let before = last.item_count as f64;
                let change = (count as f64 - before) / before * 100.0;
                if change.abs() > opts.plausible_change_percent {
                    problems.push(format!(
                        "people: {count} listed against {} in the last complete snapshot \
                         ({change:+.1} %), more than the {} % allowed",
                        last.item_count, opts.plausible_change_percent
                    ));
                }
            }
            _ if count == 0 => problems.push(
                "people: the source listed nobody; an empty directory is not taken as complete"
                    .into(),
            ),
            _ => {}
        }
    }

    let failed = first_error.is_some() && count == 0;
    if !failed {
        store
            .record_source_groups(record.id, snapshot.id, &view.groups)
            .await?;
    }
    let status = if failed {
        SnapshotStatus::Failed
    } else if problems.is_empty() {
        SnapshotStatus::Complete
    } else {
        SnapshotStatus::Incomplete
    };
    if status == SnapshotStatus::Complete {
        // Incremental listings resume from the last complete full sync only.
        store
            .set_source_checkpoint(record.id, Stream::Changes, checkpoint.as_deref())
            .await?;
    }
    let reason = (!problems.is_empty()).then(|| problems.join("; "));

    let sign_ins = if opts.sign_ins && !failed {
        let r = poll_sign_ins(store, record, source, opts).await?;
        if let Some(why) = r.reason.as_deref()
            && r.pages <= 1
            && r.read == 0
            && why.contains("not available")
        {
            notes.push(format!("sign-ins: {why}"));
            None
        } else {
            Some(r)
        }
    } else {
        None
    };

    let pages = people_pages + view.pages;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let detail = json!({
        "reason": reason,
        "pages": pages,
        "groups": view.groups.len(),
        "announced": announced,
        "statuses": statuses,
        "unknown_statuses": unknown,
        "with_last_login": with_last_login,
        "notes": notes,
        "elapsed_ms": elapsed_ms,
    });
    let snapshot = store
        .finish_snapshot(snapshot.id, status, count as i64, &detail)
        .await?;
    match &reason {
        Some(r) => {
            tracing::warn!(people = count, status = status.as_str(), reason = %r, "source snapshot not complete")
        }
        None => tracing::info!(
            people = count,
            groups = view.groups.len(),
            elapsed_ms,
            "source snapshot complete"
        ),
    }
    Ok(SourceSyncReport {
        snapshot,
        identities: count,
        groups: view.groups.len() as u64,
        pages,
        reason,
        statuses,
        unknown_statuses: unknown,
        with_last_login,
        sign_ins,
        notes,
        elapsed_ms,
    })
}

/// Applies the changes since the last checkpoint. With no checkpoint, or one the source no
/// longer honours, returns `Ok(None)`: a full sync is needed. Identities changed here keep
/// their last snapshot; only full syncs decide completeness.
#[tracing::instrument(skip_all, fields(source.name = %record.name))]
pub async fn sync_source_changes<S: Source>(
    store: &Store,
    record: &SourceRecord,
    source: &S,
    opts: &SourceSyncOptions,
) -> Result<Option<ChangesReport>, SourceSyncError> {
    let started = Instant::now();
    let Some(checkpoint) = store.source_checkpoint(record.id, Stream::Changes).await? else {
        return Ok(None);
    };
    let mut pager = Pager::new("changes", opts.max_pages);
    let mut cursor: Option<String> = None;
    let (mut upserted, mut removed) = (0u64, 0u64);
    let mut reason = None;
    let mut finished = false;
    loop {
        if let Err(why) = pager.next(&cursor) {
            reason = Some(why);
            break;
        }
        let page = match source.list_changes(&checkpoint, cursor.as_deref()).await {
            Ok(p) => p,
            Err(SourceError::CheckpointExpired { detail }) => {
                tracing::info!(detail = %detail, "incremental checkpoint expired; a full sync is needed");
                store
                    .set_source_checkpoint(record.id, Stream::Changes, None)
                    .await?;
                return Ok(None);
            }
            Err(SourceError::Unsupported { .. }) => return Ok(None),
            Err(e) => {
                reason = Some(format!("changes: stopped after {} pages: {e}", pager.pages));
                break;
            }
        };
        let mut rows = Vec::new();
        for c in page.items {
            match c {
                Change::Upsert(i) if !i.external_id.is_empty() && !i.login.is_empty() => {
                    rows.push(new_identity(record, *i));
                }
                Change::Upsert(i) => {
                    reason.get_or_insert(format!(
                        "changes: a record without an id or login (`{}`) was skipped",
                        i.external_id
                    ));
                }
                Change::Removed {
                    external_id,
                    reason: why,
                } => {
                    if store
                        .mark_identity_removed(record.id, &external_id, &why)
                        .await?
                    {
                        removed += 1;
                    }
                }
            }
        }
        upserted += store
            .record_source_identities(record.id, None, &rows)
            .await?;
        match page.next {
            Some(n) => cursor = Some(n),
            None => {
                finished = true;
                if let Some(c) = page.checkpoint {
                    store
                        .set_source_checkpoint(record.id, Stream::Changes, Some(&c))
                        .await?;
                }
                break;
            }
        }
    }
    Ok(Some(ChangesReport {
        upserted,
        removed,
        pages: pager.pages,
        finished,
        reason,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }))
}

/// Reads successful sign-ins to the Confluence application since the last poll and records
/// each event once. The checkpoint moves only when the poll reaches its terminal page.
#[tracing::instrument(skip_all, fields(source.name = %record.name))]
pub async fn poll_sign_ins<S: Source>(
    store: &Store,
    record: &SourceRecord,
    source: &S,
    opts: &SourceSyncOptions,
) -> Result<SignInReport, SourceSyncError> {
    let checkpoint = store.source_checkpoint(record.id, Stream::SignIns).await?;
    let mut pager = Pager::new("sign-ins", opts.max_pages);
    let mut cursor: Option<String> = None;
    let (mut read, mut new) = (0u64, 0u64);
    let mut reason = None;
    loop {
        if let Err(why) = pager.next(&cursor) {
            reason = Some(why);
            break;
        }
        let page = match source
            .sign_ins(checkpoint.as_deref(), cursor.as_deref())
            .await
        {
            Ok(p) => p,
            Err(e @ SourceError::Unsupported { .. }) => {
                reason = Some(e.to_string());
                break;
            }
            Err(e) => {
                reason = Some(format!("sign-ins: stopped after {read}: {e}"));
                break;
            }
        };
        read += page.items.len() as u64;
        let events: Vec<NewSignIn> = page
            .items
            .into_iter()
            .map(|s| NewSignIn {
                event_id: s.event_id,
                external_id: s.external_id,
                login: s.login,
                occurred_at: s.at,
            })
            .collect();
        new += store.record_sign_ins(record.id, &events).await?;
        match page.next {
            Some(n) => cursor = Some(n),
            None => {
                if let Some(c) = page.checkpoint {
                    store
                        .set_source_checkpoint(record.id, Stream::SignIns, Some(&c))
                        .await?;
                }
                break;
            }
        }
    }
    Ok(SignInReport {
        read,
        new,
        pages: pager.pages,
        reason,
    })
}
