//! Inventory sync: reads every account and group of one target into the store as a
//! snapshot, and decides whether that snapshot is complete. A snapshot is complete only if
//! every listing ended on a terminal page with no repeated cursor or account key, the count
//! matches what the target announced, and it is plausible against the last complete one.
//! Otherwise it is stored as incomplete (or failed) with the reason, and later stages make no
//! removals from it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::domain::{NewAccount, Snapshot, SnapshotStatus, Target as TargetRecord, TargetGroup};
use crate::store::{Store, StoreError};
use crate::targets::licence::{LicenceRules, UsageTally, granting_groups, holds_licence};
use crate::targets::{
    Capability, GroupRef, LicenceUsage, Member, Page, Probe, RemoteAccount, RemoteGroup, Support,
    Target, TargetError,
};

/// How one inventory runs.
#[derive(Clone, Debug)]
pub struct InventoryOptions {
    /// Largest change in account count, in percent of the last complete snapshot, that still
    /// counts as plausible.
    pub plausible_change_percent: f64,
    /// The licence tier to report usage against.
    pub licence_tier: Option<u64>,
    /// Licence groups to assume where the instance cannot say.
    pub configured_licence_groups: Vec<String>,
    /// Most pages one listing may take before it is cut off as runaway.
    pub max_pages: u64,
    /// Last-login times by account key from outside the REST API (Confluence's database).
    pub last_logins: Option<HashMap<String, DateTime<Utc>>>,
}

impl Default for InventoryOptions {
    fn default() -> Self {
        Self {
            plausible_change_percent: 20.0,
            licence_tier: None,
            configured_licence_groups: vec!["confluence-users".into()],
            max_pages: 100_000,
            last_logins: None,
        }
    }
}

/// What an inventory found.
#[derive(Clone, Debug, Serialize)]
pub struct InventoryReport {
    pub snapshot: Snapshot,
    pub accounts: u64,
    pub groups: u64,
    pub pages: u64,
    /// Why the snapshot is not complete, when it is not.
    pub reason: Option<String>,
    pub licence: Option<LicenceUsage>,
    pub probe: Option<Probe>,
    pub elapsed_ms: u64,
}

impl InventoryReport {
    /// Whether removals may be planned from this inventory.
    pub fn is_complete(&self) -> bool {
        self.snapshot.status == SnapshotStatus::Complete
    }
}

/// Why an inventory could not even be recorded.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured target's connector cannot be built.
    #[error("target `{name}`: {source}")]
    Connector {
        name: String,
        #[source]
        source: TargetError,
    },
    /// Confluence's own database (for last logins) cannot be read.
    #[error("targets.{name}.last_login_database: {source}")]
    LastLogins {
        name: String,
        #[source]
        source: StoreError,
    },
}

/// The inventory of configured target `name`, end to end: records the target, builds its
/// connector and options (last logins from Confluence's database when configured), reads it.
pub async fn sync_configured_target(
    store: &Store,
    name: &str,
    cfg: &crate::config::TargetConfig,
) -> Result<InventoryReport, InventoryError> {
    let record = store.ensure_target(name, cfg.kind, &cfg.base_url).await?;
    let connector =
        crate::targets::Connector::new(name, cfg).map_err(|source| InventoryError::Connector {
            name: name.to_owned(),
            source,
        })?;
    let opts =
        InventoryOptions::for_target(cfg)
            .await
            .map_err(|source| InventoryError::LastLogins {
                name: name.to_owned(),
                source,
            })?;
    sync_target(store, &record, &connector, &opts).await
}

impl InventoryOptions {
    /// The options a configured target's inventory runs with; reads its last-login times
    /// from Confluence's own database when `last_login_database` is set.
    pub async fn for_target(cfg: &crate::config::TargetConfig) -> Result<Self, StoreError> {
        let last_logins = match &cfg.last_login_database {
            Some(url) => Some(crate::store::confluence_last_logins(url).await?),
            None => None,
        };
        Ok(InventoryOptions {
            plausible_change_percent: cfg.plausible_change_percent,
            licence_tier: cfg.licence_tier,
            configured_licence_groups: cfg.licence_groups.clone(),
            last_logins,
            ..InventoryOptions::default()
        })
    }
}

/// Page-by-page bookkeeping that detects loops and runaways.
pub(crate) struct Pager {
    what: String,
    cursors: HashSet<String>,
    pub(crate) pages: u64,
    max_pages: u64,
}

impl Pager {
    pub(crate) fn new(what: impl Into<String>, max_pages: u64) -> Self {
        Self {
            what: what.into(),
            cursors: HashSet::new(),
            pages: 0,
            max_pages,
        }
    }

    /// Accepts the cursor for the next page, or says why the listing cannot go on.
    pub(crate) fn next(&mut self, cursor: &Option<String>) -> Result<(), String> {
        self.pages += 1;
        if self.pages > self.max_pages {
            return Err(format!(
                "{}: more than {} pages; stopped as a runaway listing",
                self.what, self.max_pages
            ));
        }
        if let Some(c) = cursor
            && !self.cursors.insert(c.clone())
        {
            return Err(format!(
                "{}: the listing returned a page cursor it had returned before (a pagination loop)",
                self.what
            ));
        }
        Ok(())
    }
}

/// Groups, memberships and licence groups as read before the accounts.
#[derive(Default)]
struct GroupView {
    groups: Vec<RemoteGroup>,
    member_counts: HashMap<String, i64>,
    nested: BTreeMap<String, Vec<String>>,
    by_account: HashMap<String, Vec<String>>,
    licence_groups: Vec<String>,
    pages: u64,
}

/// Reads the whole inventory of `target` into the store.
#[tracing::instrument(skip_all, fields(target.name = %record.name))]
pub async fn sync_target<T: Target>(
    store: &Store,
    record: &TargetRecord,
    target: &T,
    opts: &InventoryOptions,
) -> Result<InventoryReport, InventoryError> {
    let started = Instant::now();
    let snapshot = store.begin_target_snapshot(record.id).await?;
    let mut problems: Vec<String> = Vec::new();

    let probe = match target.probe().await {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("cannot probe the target: {e}");
            return failed(store, snapshot, reason, None, started).await;
        }
    };
    if let crate::targets::Support::Unsupported { why } =
        probe.capabilities.get(Capability::ListAccounts)
    {
        let reason = format!("listing accounts is unsupported on this instance ({why})");
        return failed(store, snapshot, reason, Some(probe), started).await;
    }

    let view = read_groups(target, &probe, opts, &mut problems).await;
    let groups_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(
        groups = view.groups.len(),
        groups_ms,
        "groups and memberships read"
    );
    let direct_grants = BTreeSet::new();
    let rules = LicenceRules {
        licence_groups: &view.licence_groups,
        nested: &view.nested,
        direct_grants: &direct_grants,
    };
    let granting = granting_groups(&rules);

    let counters = if probe
        .capabilities
        .get(Capability::LicenceUsage)
        .is_supported()
    {
        match target.licence_counters().await {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("licence counters: {e}"));
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    let mut tally = UsageTally::new(
        counters.0,
        counters.1,
        opts.licence_tier,
        &licence_basis(&probe, &view),
    )
    .last_login_known(
        probe.capabilities.get(Capability::LastLogin).is_supported() || opts.last_logins.is_some(),
    );

    // Accounts, page by page, straight into the store; the next page is fetched while the
    // current one is written.
    let mut pager = Pager::new("accounts", opts.max_pages);
    let mut seen: HashSet<String> = HashSet::new();
    let mut count: u64 = 0;
    let mut announced: Option<u64> = None;
    let mut terminal = false;
    let mut listing_error: Option<String> = None;
    let mut fetched = match pager.next(&None) {
        Ok(()) => target.list_accounts(None).await,
        Err(why) => Err(TargetError::Config(why)),
    };
    loop {
        let page: Page<RemoteAccount> = match fetched {
            Ok(p) => p,
            Err(e) => {
                listing_error = Some(format!("accounts: listing stopped after {count}: {e}"));
                break;
            }
        };
        announced = page.total.or(announced);
        if let Some(why) = &page.partial
            && !problems.iter().any(|p| p.contains(why.as_str()))
        {
            problems.push(format!("accounts: the listing is partial: {why}"));
        }
        let mut rows = Vec::with_capacity(page.items.len());
        for mut a in page.items {
            if !seen.insert(a.key.clone()) {
                if listing_error.is_none() {
                    listing_error = Some(format!(
                        "accounts: key `{}` was listed twice (pages shifted while being read)",
                        a.key
                    ));
                }
                continue;
            }
            if a.groups.is_none()
                && let Some(gs) = view.by_account.get(&a.key)
            {
                a.groups = Some(gs.clone());
            }
            if let Some(ll) = opts.last_logins.as_ref().and_then(|m| m.get(&a.key)) {
                a.last_login_at = a.last_login_at.max(Some(*ll));
            }
            let licensed = a
                .licensed
                .unwrap_or_else(|| holds_licence(&a, &granting, &direct_grants));
            tally.add(&a, licensed);
            rows.push(new_account(record, a, licensed));
        }
        let record_page = store.record_inventory_accounts(record.id, snapshot.id, &rows);
        let Some(next) = page.next else {
            count += record_page.await?;
            terminal = true;
            break;
        };
        if let Err(why) = pager.next(&Some(next.clone())) {
            count += record_page.await?;
            listing_error = Some(why);
            break;
        }
        let (recorded, next_page) = tokio::join!(record_page, target.list_accounts(Some(&next)));
        count += recorded?;
        fetched = next_page;
    }
    if let Some(e) = listing_error {
        problems.insert(0, e);
    }
    if terminal
        && let Some(total) = announced
        && total != count
    {
        problems.push(format!(
            "accounts: the target announced {total} accounts but listed {count}"
        ));
    }

    // Plausibility against the last complete inventory.
    if problems.is_empty()
        && let Some(last) = store
            .latest_target_snapshot(record.id, Some(SnapshotStatus::Complete))
            .await?
        && last.item_count > 0
    {
        let before = last.item_count as f64;
        let change = (count as f64 - before) / before * 100.0;
        if change.abs() > opts.plausible_change_percent {
            problems.push(format!(
                "accounts: {count} listed against {} in the last complete inventory ({change:+.1} %), \
                 more than the {} % allowed",
                last.item_count, opts.plausible_change_percent
            ));
        }
    }

    let target_groups: Vec<TargetGroup> = view
        .groups
        .iter()
        .map(|g| TargetGroup {
            name: g.name.clone(),
            remote_id: g.id.clone(),
            directory: g.directory.clone(),
            read_only: g.read_only.clone(),
            grants_licence: granting.contains(&crate::domain::normalise_key(&g.name)),
            nested: view.nested.get(&g.name).cloned().unwrap_or_default(),
            member_count: view.member_counts.get(&g.name).copied().unwrap_or(0),
        })
        .collect();
    store
        .record_target_groups(record.id, snapshot.id, &target_groups)
        .await?;

    let licence = tally.finish();
    let status = if problems.is_empty() {
        SnapshotStatus::Complete
    } else {
        SnapshotStatus::Incomplete
    };
    let reason = (!problems.is_empty()).then(|| problems.join("; "));
    let pages = pager.pages + view.pages;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    // What the planner must not plan on this instance, and why (it reads them from here).
    let cannot: serde_json::Map<String, Value> = [
        ("rename", Capability::Rename),
        ("change_directory", Capability::ChangeDirectory),
        ("delete", Capability::Delete),
    ]
    .into_iter()
    .filter_map(|(key, cap)| match probe.capabilities.get(cap) {
        Support::Unsupported { why } => Some((key.to_owned(), Value::String(why))),
        Support::Supported { .. } => None,
    })
    .collect();
    let detail = json!({
        "cannot": cannot,
        "reason": reason,
        "pages": pages,
        "groups": target_groups.len(),
        "announced": announced,
        "licence": licence,
        "version": probe.info.version,
        "last_login_source": probe.info.last_login,
        "elapsed_ms": elapsed_ms,
        "groups_ms": groups_ms,
    });
    let snapshot = store
        .finish_snapshot(snapshot.id, status, count as i64, &detail)
        .await?;
    match &reason {
        Some(r) => tracing::warn!(accounts = count, reason = %r, "inventory incomplete"),
        None => tracing::info!(
            accounts = count,
            groups = target_groups.len(),
            elapsed_ms,
            "inventory complete"
        ),
    }
    Ok(InventoryReport {
        snapshot,
        accounts: count,
        groups: target_groups.len() as u64,
        pages,
        reason,
        licence: Some(licence),
        probe: Some(probe),
        elapsed_ms,
    })
}

/// Ends the snapshot as failed: nothing could be listed.
async fn failed(
    store: &Store,
    snapshot: Snapshot,
    reason: String,
    probe: Option<Probe>,
    started: Instant,
) -> Result<InventoryReport, InventoryError> {
    let version = probe.as_ref().and_then(|p| p.info.version.clone());
    let snapshot = store
        .finish_snapshot(
            snapshot.id,
            SnapshotStatus::Failed,
            0,
            &json!({ "reason": reason, "version": version }),
        )
        .await?;
    tracing::warn!(reason = %reason, "inventory failed");
    Ok(InventoryReport {
        snapshot,
        accounts: 0,
        groups: 0,
        pages: 0,
        reason: Some(reason),
        licence: None,
        probe,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn licence_basis(probe: &Probe, view: &GroupView) -> String {
    match probe.capabilities.get(Capability::LicenceUsage) {
        crate::targets::Support::Supported { via } => {
            format!("{via}; licence groups: {}", view.licence_groups.join(", "))
        }
        crate::targets::Support::Unsupported { why } => format!(
            "configured licence groups ({}); the instance cannot say: {why}",
            view.licence_groups.join(", ")
        ),
    }
}

async fn read_groups<T: Target>(
    target: &T,
    probe: &Probe,
    opts: &InventoryOptions,
    problems: &mut Vec<String>,
) -> GroupView {
    let mut view = GroupView {
        licence_groups: opts.configured_licence_groups.clone(),
        ..GroupView::default()
    };
    if probe
        .capabilities
        .get(Capability::LicenceUsage)
        .is_supported()
    {
        match target.licence_groups().await {
            Ok(gs) if !gs.is_empty() => view.licence_groups = gs,
            Ok(_) => {}
            Err(e) => problems.push(format!("licence groups: {e}")),
        }
    }
    if !probe
        .capabilities
        .get(Capability::ListGroups)
        .is_supported()
    {
        return view;
    }
    let mut pager = Pager::new("groups", opts.max_pages);
    let mut cursor: Option<String> = None;
    loop {
        if let Err(why) = pager.next(&cursor) {
            problems.push(why);
            break;
        }
        match target.list_groups(cursor.as_deref()).await {
            Ok(page) => {
                view.groups.extend(page.items);
                match page.next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            Err(e) => {
                problems.push(format!("groups: {e}"));
                break;
            }
        }
    }
    view.pages += pager.pages;
    if !probe
        .capabilities
        .get(Capability::GroupMembers)
        .is_supported()
    {
        return view;
    }
    // Taken out while the loop fills the rest of `view`, put back after.
    let groups = std::mem::take(&mut view.groups);
    for g in &groups {
        let group_ref = GroupRef {
            name: g.name.clone(),
            id: g.id.clone(),
        };
        let mut pager = Pager::new(format!("members of `{}`", g.name), opts.max_pages);
        let mut cursor: Option<String> = None;
        let mut members: i64 = 0;
        loop {
            if let Err(why) = pager.next(&cursor) {
                problems.push(why);
                break;
            }
            match target.group_members(&group_ref, cursor.as_deref()).await {
                Ok(page) => {
                    for m in page.items {
                        match m {
                            Member::Account { key, .. } => {
                                members += 1;
                                view.by_account.entry(key).or_default().push(g.name.clone());
                            }
                            Member::Group { name } => {
                                view.nested.entry(g.name.clone()).or_default().push(name);
                            }
                        }
                    }
                    match page.next {
                        Some(n) => cursor = Some(n),
                        None => break,
                    }
                }
                Err(TargetError::NotFound { .. }) => break, // deleted while we listed
                Err(e) => {
                    problems.push(format!("members of `{}`: {e}", g.name));
                    break;
                }
            }
        }
        view.pages += pager.pages;
        view.member_counts.insert(g.name.clone(), members);
    }
    view.groups = groups;
    view
}

fn new_account(record: &TargetRecord, a: RemoteAccount, licensed: bool) -> NewAccount {
    let mut attributes = json!({
        "status": a.raw_status,
        "licensed": licensed,
        "groups": a.groups.unwrap_or_default(),
    });
    if let Some(d) = a.directory {
        attributes["directory"] = Value::String(d);
    }
    if let Some(r) = &a.read_only {
        attributes["read_only"] = Value::String(r.clone());
    }
    NewAccount {
        target_id: record.id,
        account_key: a.key,
        user_name: a.username,
        email: a.email,
        display_name: a.display_name,
        active: a.active,
        last_login_at: a.last_login_at,
        remote_created_at: a.created_at,
        managed: a.read_only.is_none(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::Pager;

    #[test]
    fn a_repeated_cursor_stops_a_listing_as_a_loop() {
        let mut p = Pager::new("accounts", 10);
        assert!(p.next(&None).is_ok());
        assert!(p.next(&Some("a".into())).is_ok());
        assert!(p.next(&Some("b".into())).is_ok());
        let err = p.next(&Some("a".into())).unwrap_err();
        assert!(err.contains("pagination loop"), "{err}");
    }

    #[test]
    fn a_listing_past_the_page_limit_is_cut_off() {
        let mut p = Pager::new("groups", 2);
        assert!(p.next(&None).is_ok());
        assert!(p.next(&Some("1".into())).is_ok());
        assert!(p.next(&Some("2".into())).unwrap_err().contains("runaway"));
    }
}
