//! The planner's read model: every account with its linked identities, activity, absence
//! from source snapshots, notices and unfinished actions, and the state of every configured
//! source and target. A handful of whole-table queries joined in memory, so that a hundred
//! thousand accounts and identities load in seconds.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, on_db};
use crate::config::Config;
use crate::domain::{
    AccountId, AccountView, IdentityId, IdentityStatus, IdentityView, LinkMethod, LinkState,
    PersonView, SnapshotStatus, SourceKind, SourceState, TargetId, TargetState, normalise_key,
};

/// Everything the planner reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlannerInputs {
    /// Every account of every stored target, by target name then username.
    pub people: Vec<PersonView>,
    /// Every configured source, by name.
    pub sources: Vec<SourceState>,
    /// Every configured target that has been stored, by name.
    pub targets: Vec<TargetState>,
}

/// Where the planner's read model gets each account's link state from (the engine's link
/// outcome). An account it says nothing about is read from the stored links.
pub trait AccountLinks {
    fn link_state(&self, account: AccountId) -> Option<&LinkState>;
}

/// Link states read from the stored links alone (no conflicts known).
#[derive(Clone, Copy, Debug, Default)]
pub struct StoredLinks;

impl AccountLinks for StoredLinks {
    fn link_state(&self, _account: AccountId) -> Option<&LinkState> {
        None
    }
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: Uuid,
    target_id: Uuid,
    account_key: String,
    user_name: String,
    email: Option<String>,
    display_name: Option<String>,
    active: bool,
    last_login_at: Option<DateTime<Utc>>,
    remote_created_at: Option<DateTime<Utc>>,
    managed: bool,
    attributes: Json<Value>,
    first_seen_at: DateTime<Utc>,
    last_snapshot_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct IdentityRow {
    id: Uuid,
    source_id: Uuid,
    external_id: String,
    user_name: String,
    email: Option<String>,
    status: String,
    status_changed_at: DateTime<Utc>,
    idp_created_at: Option<DateTime<Utc>>,
    last_login_at: Option<DateTime<Utc>>,
    attributes: Json<Value>,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    last_snapshot_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    id: Uuid,
    source_id: Option<Uuid>,
    target_id: Option<Uuid>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    status: String,
    /// Only target snapshots' detail is read (what the instance cannot do).
    cannot: Option<Json<Value>>,
}

#[derive(sqlx::FromRow)]
struct SignInRow {
    source_id: Uuid,
    external_id: Option<String>,
    login: Option<String>,
    last_at: Option<DateTime<Utc>>,
    n: i64,
}

const ACCOUNTS: &str = "select id, target_id, account_key, user_name, email, display_name, \
     active, last_login_at, remote_created_at, managed, attributes, first_seen_at, \
     last_snapshot_id from accounts";
const IDENTITIES: &str = "select id, source_id, external_id, user_name, email, status, \
     status_changed_at, idp_created_at, last_login_at, attributes, first_seen_at, last_seen_at, \
     last_snapshot_id from identities";
const SOURCES: &str = "select id, name, kind, created_at from sources";
const TARGETS: &str = "select id, name from targets";
const SNAPSHOTS: &str = "select id, source_id, target_id, started_at, finished_at, status, \
     case when target_id is not null then detail end as cannot \
     from snapshots where status <> 'running' order by started_at, id";
const SOURCE_GROUPS: &str = "select source_id, name, members from source_groups";
const SCIM_GROUPS: &str = "select g.source_id, g.display_name, m.member_id from scim_members m \
     join scim_groups g on g.id = m.group_id where m.member_type = 'User'";
const SIGN_INS: &str = "select source_id, external_id, login, max(occurred_at) as last_at, \
     count(*) as n from sign_in_events group by source_id, external_id, login";
const TARGET_GROUPS: &str = "select target_id, name from target_groups where grants_licence";
const LINKS: &str = "select identity_id, account_id, method from links";
const NOTIFIED: &str = "select a.account_id, a.rule, max(a.finished_at) as at from actions a \
     join runs r on r.id = a.run_id where a.kind = 'notify' and a.phase = 'confirmed' \
     and r.mode = 'enforce' group by a.account_id, a.rule";
const REGRANTED: &str = "select a.account_id, max(a.finished_at) as at from actions a \
     join runs r on r.id = a.run_id where r.kind = 'regrant' and r.mode = 'enforce' \
     and a.phase = 'confirmed' group by a.account_id";
/// Accounts an unfinished run is still working on.
const PENDING: &str = "select distinct a.account_id from actions a join runs r on r.id = a.run_id \
     where a.phase in ('planned', 'claimed', 'sent') \
     and r.status in ('planned', 'held', 'approved', 'running')";
/// Accounts an enforced run changed (a confirmed action other than a notice) since their
/// target's latest complete inventory began: the stored account still shows the state
/// before that change.
const CHANGED: &str = "with inventoried as (select target_id, max(started_at) as at from snapshots \
     where target_id is not null and status = 'complete' group by target_id) \
     select distinct a.account_id from actions a join runs r on r.id = a.run_id \
     left join inventoried i on i.target_id = a.target_id \
     where a.phase = 'confirmed' and r.mode = 'enforce' and a.kind <> 'notify' \
     and (i.at is null or a.finished_at >= i.at)";

/// The raw tables, as read.
struct Tables {
    accounts: Vec<AccountRow>,
    identities: Vec<IdentityRow>,
    sources: Vec<(Uuid, String, String, DateTime<Utc>)>,
    targets: Vec<(Uuid, String)>,
    snapshots: Vec<SnapshotRow>,
    source_groups: Vec<(Uuid, String, Json<Vec<String>>)>,
    scim_groups: Vec<(Uuid, String, String)>,
    sign_ins: Vec<SignInRow>,
    licence_groups: Vec<(Uuid, String)>,
    links: Vec<(Uuid, Uuid, String)>,
    notified: Vec<(Uuid, String, Option<DateTime<Utc>>)>,
    regranted: Vec<(Uuid, Option<DateTime<Utc>>)>,
    pending: Vec<Uuid>,
    changed: Vec<Uuid>,
    /// Latest finished snapshot of each source and target, with its reason.
    summaries: Vec<super::SnapshotSummary>,
}

/// What the planner needs of one source.
struct SourceFacts<'a> {
    name: &'a str,
    kind: SourceKind,
    suspended_is_leaver: bool,
    /// Latest finished snapshot: (id, started_at, complete).
    latest: Option<(Uuid, DateTime<Utc>, bool)>,
    /// Start times of complete snapshots, in order.
    complete_starts: Vec<DateTime<Utc>>,
    /// Configured (only configured polled sources count for absence).
    configured: bool,
}

impl Store {
    async fn planner_tables(&self) -> Result<Tables, StoreError> {
        macro_rules! all {
            ($sql:expr) => {
                async { on_db!(&self.db, |pool| sqlx::query_as($sql).fetch_all(pool).await) }
            };
        }
        macro_rules! scalars {
            ($sql:expr) => {
                async {
                    on_db!(&self.db, |pool| sqlx::query_scalar($sql)
                        .fetch_all(pool)
                        .await)
                }
            };
        }
        let (accounts, identities, sources, targets, snapshots, source_groups, scim_groups) = tokio::try_join!(
            all!(ACCOUNTS),
            all!(IDENTITIES),
            all!(SOURCES),
            all!(TARGETS),
            all!(SNAPSHOTS),
            all!(SOURCE_GROUPS),
            all!(SCIM_GROUPS),
        )?;
        let (sign_ins, licence_groups, links, notified, regranted, pending, changed) = tokio::try_join!(
            all!(SIGN_INS),
            all!(TARGET_GROUPS),
            all!(LINKS),
            all!(NOTIFIED),
            all!(REGRANTED),
            scalars!(PENDING),
            scalars!(CHANGED),
        )?;
        let summaries = self.latest_snapshots().await?;
        Ok(Tables {
            accounts,
            identities,
            sources,
            targets,
            snapshots,
            source_groups,
            scim_groups,
            sign_ins,
            licence_groups,
            links,
            notified,
            regranted,
            pending,
            changed,
            summaries,
        })
    }

    /// Everything the planner reads, with each account's link state taken from `links`
    /// (the outcome of `engine::link::refresh_links`, whose conflicts become
    /// [`LinkState::Conflict`]) or, for an account it does not know, from the stored links.
    #[tracing::instrument(skip_all)]
    pub async fn planner_inputs(
        &self,
        config: &Config,
        links: &impl AccountLinks,
    ) -> Result<PlannerInputs, StoreError> {
        let started = std::time::Instant::now();
        let t = self.planner_tables().await?;
        let loaded_ms = started.elapsed().as_millis() as u64;
        let inputs = assemble(config, links, t)?;
        tracing::debug!(
            people = inputs.people.len(),
            loaded_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "planner inputs read"
        );
        Ok(inputs)
    }
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The status as the IdP spells it: kept by polled sources as `attributes.raw_status`; a SCIM
/// User's is its `active` flag (or its deletion).
fn raw_status(kind: SourceKind, status: IdentityStatus, attributes: &Value) -> Option<String> {
    if let Some(s) = attributes.get("raw_status").and_then(Value::as_str) {
        return Some(s.to_owned());
    }
    if kind == SourceKind::Scim {
        if status == IdentityStatus::Deleted {
            return Some("deleted".into());
        }
        return attributes
            .get("active")
            .and_then(Value::as_bool)
            .map(|a| format!("active={a}"));
    }
    None
}

/// Number of entries of the sorted `starts` strictly after `t`.
fn starts_after(starts: &[DateTime<Utc>], t: DateTime<Utc>) -> u32 {
    let n = starts.len() - starts.partition_point(|s| *s <= t);
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn assemble(
    config: &Config,
    links: &impl AccountLinks,
    t: Tables,
) -> Result<PlannerInputs, StoreError> {
    // Sources, with their snapshots.
    let mut sources: HashMap<Uuid, SourceFacts<'_>> = HashMap::new();
    let mut source_created: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for (id, name, kind, created_at) in &t.sources {
        let kind: SourceKind = kind.parse()?;
        let cfg = config.sources.get(name);
        source_created.insert(name.as_str(), *created_at);
        sources.insert(
            *id,
            SourceFacts {
                name,
                kind,
                suspended_is_leaver: cfg.is_some_and(|c| c.suspended_is_leaver),
                latest: None,
                complete_starts: Vec::new(),
                configured: cfg.is_some(),
            },
        );
    }
    let target_names: HashMap<Uuid, &str> =
        t.targets.iter().map(|(id, n)| (*id, n.as_str())).collect();
    // Latest finished snapshot per target: (id, complete); first complete per source.
    let mut target_latest: HashMap<Uuid, (Uuid, bool)> = HashMap::new();
    // What each target's instance cannot do, as its latest inventory's probe said.
    let mut target_cannot: HashMap<Uuid, Value> = HashMap::new();
    let mut first_complete: HashMap<Uuid, Option<DateTime<Utc>>> = HashMap::new();
    for s in &t.snapshots {
        let complete = s.status == SnapshotStatus::Complete.as_str();
        if let Some(src) = s.source_id.and_then(|id| sources.get_mut(&id)) {
            src.latest = Some((s.id, s.started_at, complete));
            if complete {
                src.complete_starts.push(s.started_at);
                first_complete
                    .entry(s.source_id.unwrap_or_default())
                    .or_insert(s.finished_at);
            }
        }
        if let Some(target) = s.target_id {
            target_latest.insert(target, (s.id, complete));
            let cannot = s.cannot.as_ref().and_then(|d| d.0.get("cannot")).cloned();
            target_cannot.insert(target, cannot.unwrap_or(Value::Null));
        }
    }
    for s in sources.values_mut() {
        s.complete_starts.sort();
    }

    // Group names per (source, member external id).
    let mut groups_of: HashMap<(Uuid, String), Vec<String>> = HashMap::new();
    for (source, name, Json(members)) in t.source_groups {
        for m in members {
            groups_of.entry((source, m)).or_default().push(name.clone());
        }
    }
    for (source, name, member) in t.scim_groups {
        groups_of.entry((source, member)).or_default().push(name);
    }

    // Identities, and how sign-ins find them.
    let identity_index: HashMap<Uuid, usize> = t
        .identities
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id, i))
        .collect();
    let mut by_external: HashMap<(Uuid, &str), usize> = HashMap::new();
    let mut by_login: HashMap<(Uuid, String), Option<usize>> = HashMap::new();
    for (i, r) in t.identities.iter().enumerate() {
        by_external.insert((r.source_id, r.external_id.as_str()), i);
        let mut keys = vec![normalise_key(&r.user_name)];
        if let Some(e) = &r.email {
            keys.push(normalise_key(e));
        }
        keys.dedup();
        for k in keys {
            by_login
                .entry((r.source_id, k))
                .and_modify(|v| {
                    if *v != Some(i) {
                        *v = None; // two people answer to this login: ambiguous
                    }
                })
                .or_insert(Some(i));
        }
    }
    let mut sign_ins: HashMap<usize, (Option<DateTime<Utc>>, u32)> = HashMap::new();
    for s in &t.sign_ins {
        let found = s
            .external_id
            .as_deref()
            .and_then(|e| by_external.get(&(s.source_id, e)).copied())
            .or_else(|| {
                s.login
                    .as_deref()
                    .and_then(|l| by_login.get(&(s.source_id, normalise_key(l))).copied())
                    .flatten()
            });
        if let Some(i) = found {
            let e = sign_ins.entry(i).or_insert((None, 0));
            e.0 = e.0.max(s.last_at);
            e.1 =
                e.1.saturating_add(u32::try_from(s.n.max(0)).unwrap_or(u32::MAX));
        }
    }

    let identity_view = |i: usize| -> Result<Option<IdentityView>, StoreError> {
        let r = &t.identities[i];
        let Some(src) = sources.get(&r.source_id) else {
            return Ok(None);
        };
        let status: IdentityStatus = r.status.parse()?;
        let from_complete_snapshot = match (src.kind, src.latest) {
            (SourceKind::Scim, _) => true,
            // Seen in the latest snapshot, which is complete; or deleted, and the latest
            // complete snapshot did not bring it back.
            (_, Some((latest, _, true))) => {
                r.last_snapshot_id == Some(latest) || status == IdentityStatus::Deleted
            }
            _ => false,
        };
        let (last_sign_in_event_at, sign_in_events) =
            sign_ins.get(&i).copied().unwrap_or((None, 0));
        let mut groups = groups_of
            .get(&(r.source_id, r.external_id.clone()))
            .cloned()
            .unwrap_or_default();
        groups.sort();
        groups.dedup();
        Ok(Some(IdentityView {
            id: IdentityId(r.id),
            source: src.name.to_owned(),
            source_kind: src.kind,
            external_id: r.external_id.clone(),
            user_name: r.user_name.clone(),
            email: r.email.clone(),
            status,
            raw_status: raw_status(src.kind, status, &r.attributes.0),
            suspended_is_leaver: src.suspended_is_leaver,
            from_complete_snapshot,
            created_at: r.idp_created_at,
            last_login_at: r.last_login_at,
            last_sign_in_event_at,
            sign_in_events,
            groups,
            attributes: r.attributes.0.clone(),
            status_changed_at: r.status_changed_at,
            first_seen_at: r.first_seen_at,
        }))
    };

    // Stored links per account, for accounts the link outcome does not cover.
    let mut stored: HashMap<Uuid, Vec<(IdentityId, LinkMethod)>> = HashMap::new();
    for (identity, account, method) in &t.links {
        stored
            .entry(*account)
            .or_default()
            .push((IdentityId(*identity), method.parse()?));
    }
    let regranted: HashMap<Uuid, DateTime<Utc>> = t
        .regranted
        .iter()
        .filter_map(|(account, at)| at.map(|at| (*account, at)))
        .collect();
    let mut notified: HashMap<Uuid, BTreeMap<String, DateTime<Utc>>> = HashMap::new();
    for (account, rule, at) in t.notified {
        if let Some(at) = at {
            notified.entry(account).or_default().insert(rule, at);
        }
    }
    let pending: HashSet<Uuid> = t.pending.into_iter().collect();
    let changed: HashSet<Uuid> = t.changed.into_iter().collect();

    // The polled sources absence is counted against: configured, not SCIM.
    let polled: Vec<(&Uuid, &SourceFacts<'_>)> = sources
        .iter()
        .filter(|(_, s)| s.configured && s.kind != SourceKind::Scim)
        .collect();
    let configured_polled = config
        .sources
        .values()
        .filter(|s| s.kind != SourceKind::Scim)
        .count();

    let admin_groups: HashMap<&str, HashSet<String>> = config
        .targets
        .iter()
        .map(|(name, c)| {
            let set = c.admin_groups.iter().map(|g| normalise_key(g)).collect();
            (name.as_str(), set)
        })
        .collect();

    let mut people = Vec::with_capacity(t.accounts.len());
    for a in t.accounts {
        let target = target_names.get(&a.target_id).copied().unwrap_or_default();
        let target_cfg = config.targets.get(target);
        let attrs = &a.attributes.0;
        let groups = str_list(attrs.get("groups"));
        let admin = admin_groups
            .get(target)
            .is_some_and(|admins| groups.iter().any(|g| admins.contains(&normalise_key(g))));
        let read_only = attrs
            .get("read_only")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let gone = target_latest
            .get(&a.target_id)
            .is_some_and(|(latest, complete)| *complete && a.last_snapshot_id != Some(*latest));
        let link = match links.link_state(AccountId(a.id)) {
            Some(state) => state.clone(),
            None => match stored.get(&a.id) {
                Some(methods) => {
                    // One per source, highest precedence first.
                    let mut methods: Vec<(IdentityId, LinkMethod)> = methods
                        .iter()
                        .filter(|(i, _)| identity_index.contains_key(&i.0))
                        .copied()
                        .collect();
                    let order = |i: &IdentityId| {
                        let src = identity_index
                            .get(&i.0)
                            .and_then(|x| sources.get(&t.identities[*x].source_id))
                            .map(|s| s.name)
                            .unwrap_or_default();
                        let p = config.linking.precedence.iter().position(|n| n == src);
                        (p.unwrap_or(usize::MAX), src.to_owned())
                    };
                    methods.sort_by_key(|(i, _)| order(i));
                    if methods.is_empty() {
                        LinkState::Unlinked
                    } else {
                        LinkState::Linked { methods }
                    }
                }
                None => LinkState::Unlinked,
            },
        };
        let unmanaged_reason = if target_cfg.is_none() {
            Some(format!("target `{target}` is not configured"))
        } else if let Some(r) = &read_only {
            Some(format!("read-only: {r}"))
        } else if !a.managed {
            Some("not managed by idbridge".to_owned())
        } else if gone {
            Some("not in the target's latest complete inventory".to_owned())
        } else if matches!(link, LinkState::Unlinked)
            && !target_cfg.is_some_and(|c| c.manage_unlinked)
        {
            // Provenance: an account traced to no identity is left alone unless its target
            // says otherwise.
            Some(format!(
                "linked to no identity (targets.{target}.manage_unlinked is off)"
            ))
        } else {
            None
        };
        let account = AccountView {
            id: AccountId(a.id),
            target_id: TargetId(a.target_id),
            target: target.to_owned(),
            key: a.account_key,
            username: a.user_name,
            email: a.email,
            display_name: a.display_name,
            active: a.active,
            directory: attrs
                .get("directory")
                .and_then(Value::as_str)
                .map(str::to_owned),
            groups,
            licensed: attrs
                .get("licensed")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            admin,
            managed: unmanaged_reason.is_none(),
            unmanaged_reason,
            created_at: a.remote_created_at,
            last_login_at: a.last_login_at,
            first_seen_at: a.first_seen_at,
        };

        let mut identities = Vec::new();
        if let LinkState::Linked { methods } = &link {
            for (id, _) in methods {
                if let Some(&i) = identity_index.get(&id.0)
                    && let Some(v) = identity_view(i)?
                {
                    identities.push(v);
                }
            }
        }

        let scim_present = identities
            .iter()
            .any(|i| i.source_kind == SourceKind::Scim && i.status != IdentityStatus::Deleted);
        // A conflicted account's identities are unknown: never count it absent.
        let conflicted = matches!(link, LinkState::Conflict { .. });
        let absent_syncs = if conflicted
            || scim_present
            || polled.is_empty()
            || polled.len() < configured_polled
        {
            0
        } else {
            polled
                .iter()
                .map(|(id, s)| {
                    let seen = identities
                        .iter()
                        .filter_map(|v| {
                            identity_index
                                .get(&v.id.0)
                                .map(|x| &t.identities[*x])
                                .filter(|r| r.source_id == **id)
                        })
                        .map(|r| r.last_seen_at)
                        .max();
                    starts_after(&s.complete_starts, seen.unwrap_or(account.first_seen_at))
                })
                .min()
                .unwrap_or(0)
        };

        people.push(PersonView {
            notified: notified.remove(&a.id).unwrap_or_default(),
            pending_actions: pending.contains(&a.id),
            changed_since_inventory: changed.contains(&a.id),
            regranted_at: regranted.get(&a.id).copied(),
            account,
            identities,
            link,
            absent_syncs,
        });
    }
    people.sort_by(|x, y| {
        (x.account.target.as_str(), x.account.username.as_str())
            .cmp(&(y.account.target.as_str(), y.account.username.as_str()))
    });

    // Source and target states, for configured ones.
    let by_name: HashMap<&str, &SourceFacts<'_>> = sources.values().map(|s| (s.name, s)).collect();
    let source_ids: HashMap<&str, Uuid> = sources.iter().map(|(id, s)| (s.name, *id)).collect();
    let reason_of = |kind: &str, name: &str| -> String {
        match t
            .summaries
            .iter()
            .find(|s| s.kind == kind && s.name == name)
        {
            Some(s) => match &s.reason {
                Some(r) => format!("the latest snapshot is {}: {r}", s.status),
                None => format!("the latest snapshot is {}", s.status),
            },
            None => "the latest snapshot is not complete".to_owned(),
        }
    };
    let mut source_states = Vec::new();
    for (name, cfg) in &config.sources {
        let facts = by_name.get(name.as_str());
        let state = if cfg.kind == SourceKind::Scim {
            SourceState {
                name: name.clone(),
                kind: cfg.kind,
                complete: true,
                incomplete_reason: None,
                observed_since: source_created.get(name.as_str()).copied(),
            }
        } else {
            let (complete, incomplete_reason) = match facts.and_then(|f| f.latest) {
                None => (false, Some("no finished snapshot yet".to_owned())),
                Some((_, _, true)) => (true, None),
                Some((_, _, false)) => (false, Some(reason_of("source", name))),
            };
            SourceState {
                name: name.clone(),
                kind: cfg.kind,
                complete,
                incomplete_reason,
                observed_since: source_ids
                    .get(name.as_str())
                    .and_then(|id| first_complete.get(id).copied().flatten()),
            }
        };
        source_states.push(state);
    }

    let mut licence: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (target, name) in t.licence_groups {
        licence.entry(target).or_default().push(name);
    }
    let mut target_states = Vec::new();
    for (id, name) in &t.targets {
        let Some(cfg) = config.targets.get(name) else {
            continue;
        };
        let (complete, incomplete_reason) = match target_latest.get(id) {
            None => (false, Some("no finished inventory yet".to_owned())),
            Some((_, true)) => (true, None),
            Some((_, false)) => (false, Some(reason_of("target", name))),
        };
        let mut licence_groups = licence
            .remove(id)
            .unwrap_or_else(|| cfg.licence_groups.clone());
        licence_groups.sort();
        let cannot = |what: &str| {
            target_cannot
                .get(id)
                .and_then(|c| c.get(what))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        target_states.push(TargetState {
            name: name.clone(),
            id: TargetId(*id),
            complete,
            incomplete_reason,
            licence_groups,
            // As probed at the latest inventory; the executor still skips with the reason an
            // action the instance turns out not to support.
            cannot_rename: cannot("rename"),
            cannot_change_directory: cannot("change_directory"),
            cannot_delete: cannot("delete"),
        });
    }
    target_states.sort_by(|a, b| a.name.cmp(&b.name));

    Ok(PlannerInputs {
        people,
        sources: source_states,
        targets: target_states,
    })
}
