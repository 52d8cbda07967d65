//! Snapshots (one pass over a source or target, and how it ended) and the groups each
//! target's inventory reported.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, on_db, on_tx};
use crate::domain::{
    Snapshot, SnapshotId, SnapshotStatus, SourceId, TargetGroup, TargetId, normalise_key,
};

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    id: Uuid,
    source_id: Option<Uuid>,
    target_id: Option<Uuid>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    status: String,
    item_count: i64,
    detail: Json<Value>,
}

impl TryFrom<SnapshotRow> for Snapshot {
    type Error = StoreError;

    fn try_from(r: SnapshotRow) -> Result<Self, StoreError> {
        Ok(Snapshot {
            id: SnapshotId(r.id),
            source_id: r.source_id.map(SourceId),
            target_id: r.target_id.map(TargetId),
            started_at: r.started_at,
            finished_at: r.finished_at,
            status: r.status.parse()?,
            item_count: r.item_count,
            detail: r.detail.0,
        })
    }
}

/// Whose snapshot: a source's or a target's.
#[derive(Clone, Copy, Debug)]
pub(super) enum Owner {
    Source(SourceId),
    Target(TargetId),
}

impl Owner {
    fn column(self) -> &'static str {
        match self {
            Owner::Source(_) => "source_id",
            Owner::Target(_) => "target_id",
        }
    }

    fn id(self) -> Uuid {
        match self {
            Owner::Source(id) => id.0,
            Owner::Target(id) => id.0,
        }
    }
}

const SNAPSHOT_COLUMNS: &str =
    "id, source_id, target_id, started_at, finished_at, status, item_count, detail";

#[derive(sqlx::FromRow)]
struct GroupRow {
    name: String,
    remote_id: Option<String>,
    directory: Option<String>,
    read_only: Option<String>,
    grants_licence: bool,
    nested: Json<Vec<String>>,
    member_count: i64,
}

impl Store {
    /// Starts a snapshot of a target's inventory.
    pub async fn begin_target_snapshot(&self, target: TargetId) -> Result<Snapshot, StoreError> {
        self.begin_snapshot(Owner::Target(target)).await
    }

    /// Starts a snapshot of `owner`.
    pub(super) async fn begin_snapshot(&self, owner: Owner) -> Result<Snapshot, StoreError> {
        let sql = format!(
            "insert into snapshots (id, {}, started_at, status) values ($1, $2, $3, 'running') \
             returning {SNAPSHOT_COLUMNS}",
            owner.column()
        );
        let row: SnapshotRow = on_db!(&self.db, |pool| {
            // The column name is one of two constants; every value is bound.
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(SnapshotId::new().0)
                .bind(owner.id())
                .bind(self.now())
                .fetch_one(pool)
                .await
        })?;
        Snapshot::try_from(row)
    }

    /// Ends a snapshot with its status, the number of items it saw and its detail (for an
    /// incomplete one, `detail.reason` says why).
    pub async fn finish_snapshot(
        &self,
        id: SnapshotId,
        status: SnapshotStatus,
        item_count: i64,
        detail: &Value,
    ) -> Result<Snapshot, StoreError> {
        const SQL: &str = "update snapshots set finished_at = $2, status = $3, item_count = $4, \
             detail = $5 where id = $1 \
             returning id, source_id, target_id, started_at, finished_at, status, item_count, detail";
        let row: SnapshotRow = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(id.0)
                .bind(self.now())
                .bind(status.as_str())
                .bind(item_count)
                .bind(Json(detail))
                .fetch_one(pool)
                .await
        })?;
        Snapshot::try_from(row)
    }

    /// A target's most recent finished snapshot, or its most recent one with `status`.
    pub async fn latest_target_snapshot(
        &self,
        target: TargetId,
        status: Option<SnapshotStatus>,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.latest_snapshot(Owner::Target(target), status).await
    }

    /// The most recent finished snapshot of `owner`, or its most recent one with `status`.
    pub(super) async fn latest_snapshot(
        &self,
        owner: Owner,
        status: Option<SnapshotStatus>,
    ) -> Result<Option<Snapshot>, StoreError> {
        let sql = format!(
            "select {SNAPSHOT_COLUMNS} from snapshots where {} = $1 \
             and status <> 'running' and ($2 is null or status = $2) \
             order by started_at desc, id desc limit 1",
            owner.column()
        );
        let row: Option<SnapshotRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(owner.id())
                .bind(status.map(|s| s.as_str()))
                .fetch_optional(pool)
                .await
        })?;
        row.map(Snapshot::try_from).transpose()
    }

    /// Records the groups a target inventory saw, replacing what earlier inventories said
    /// about them; groups not in `groups` keep their older snapshot id.
    pub async fn record_target_groups(
        &self,
        target: TargetId,
        snapshot: SnapshotId,
        groups: &[TargetGroup],
    ) -> Result<(), StoreError> {
        const SQL: &str = "insert into target_groups (id, target_id, name, name_lower, remote_id, \
               directory, read_only, grants_licence, nested, member_count, last_snapshot_id, \
               updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             on conflict (target_id, name_lower) do update set name = excluded.name, \
               remote_id = excluded.remote_id, directory = excluded.directory, \
               read_only = excluded.read_only, grants_licence = excluded.grants_licence, \
               nested = excluded.nested, member_count = excluded.member_count, \
               last_snapshot_id = excluded.last_snapshot_id, updated_at = excluded.updated_at";
        let now = self.now();
        let mut tx = self.begin_write().await?;
        for g in groups {
            on_tx!(&mut tx, |conn| {
                sqlx::query(SQL)
                    .bind(Uuid::now_v7())
                    .bind(target.0)
                    .bind(&g.name)
                    .bind(normalise_key(&g.name))
                    .bind(&g.remote_id)
                    .bind(&g.directory)
                    .bind(&g.read_only)
                    .bind(g.grants_licence)
                    .bind(Json(&g.nested))
                    .bind(g.member_count)
                    .bind(snapshot.0)
                    .bind(now)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })?;
        }
        tx.commit().await
    }

    /// The groups a target's inventories reported, by name.
    pub async fn target_groups(&self, target: TargetId) -> Result<Vec<TargetGroup>, StoreError> {
        const SQL: &str = "select name, remote_id, directory, read_only, grants_licence, nested, \
             member_count from target_groups where target_id = $1 order by name_lower";
        let rows: Vec<GroupRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL).bind(target.0).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| TargetGroup {
                name: r.name,
                remote_id: r.remote_id,
                directory: r.directory,
                read_only: r.read_only,
                grants_licence: r.grants_licence,
                nested: r.nested.0,
                member_count: r.member_count,
            })
            .collect())
    }
}

/// The latest finished snapshot of one source or target, for readiness detail and metrics.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SnapshotSummary {
    /// `source` or `target`.
    pub kind: String,
    pub name: String,
    pub status: SnapshotStatus,
    pub items: i64,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it is not complete, when it is not.
    pub reason: Option<String>,
    /// When the last complete snapshot finished (the one removals are planned from).
    pub last_complete_at: Option<DateTime<Utc>>,
    /// What the sync noted beside completeness (no last-login data, unknown statuses, …).
    pub notes: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    kind: String,
    name: String,
    status: String,
    item_count: i64,
    finished_at: Option<DateTime<Utc>>,
    detail: Json<Value>,
    last_complete_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The latest finished snapshot of every source and target that has one, by kind and name.
    pub async fn latest_snapshots(&self) -> Result<Vec<SnapshotSummary>, StoreError> {
        const SQL: &str = "\
            select cast('source' as text) as kind, o.name, s.status, s.item_count, s.finished_at, \
              s.detail, (select max(c.finished_at) from snapshots c where c.source_id = o.id \
                and c.status = 'complete') as last_complete_at \
            from sources o join snapshots s on s.id = (select x.id from snapshots x \
              where x.source_id = o.id and x.status <> 'running' \
              order by x.started_at desc, x.id desc limit 1) \
            union all \
            select cast('target' as text) as kind, o.name, s.status, s.item_count, s.finished_at, \
              s.detail, (select max(c.finished_at) from snapshots c where c.target_id = o.id \
                and c.status = 'complete') as last_complete_at \
            from targets o join snapshots s on s.id = (select x.id from snapshots x \
              where x.target_id = o.id and x.status <> 'running' \
              order by x.started_at desc, x.id desc limit 1) \
            order by 1, 2";
        let rows: Vec<SummaryRow> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|r| {
                Ok(SnapshotSummary {
                    kind: r.kind,
                    name: r.name,
                    status: r.status.parse()?,
                    items: r.item_count,
                    finished_at: r.finished_at,
                    reason: r
                        .detail
                        .0
                        .get("reason")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    last_complete_at: r.last_complete_at,
                    notes: r
                        .detail
                        .0
                        .get("notes")
                        .and_then(Value::as_array)
                        .map(|n| {
                            n.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}
