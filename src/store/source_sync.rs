//! What polling a source records: identities page by page (batched upserts that mark each
//! one seen in the snapshot), source snapshots, groups with their members, successful
//! sign-in events (once per event id) and the checkpoints incremental streams resume from.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::snapshots::Owner;
use super::{Store, StoreError, on_db, on_tx};
use crate::domain::{
    IdentityId, NewIdentity, Snapshot, SnapshotId, SnapshotStatus, SourceId, normalise_key,
};

/// A group a source reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSourceGroup {
    pub external_id: String,
    pub name: String,
    pub members: Vec<String>,
}

/// A successful sign-in to the Confluence application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSignIn {
    pub event_id: String,
    pub external_id: Option<String>,
    pub login: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// Which incremental stream a checkpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Changed identities (Graph delta link, Okta `lastUpdated` watermark, …).
    Changes,
    /// Sign-in events (Okta System Log `next` link, a timestamp watermark, …).
    SignIns,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Changes => "changes",
            Stream::SignIns => "sign_ins",
        }
    }
}

/// Rows per SQLite statement ([`IDENTITY_PARAMS`] parameters each, inside SQLite's 32,766).
const BATCH_ROWS: usize = 500;

/// Bound values per identity row in the SQLite upsert.
const IDENTITY_PARAMS: usize = 16;

/// Take the source's values; move `status_changed_at` only when the status changed, and
/// `version`/`updated_at` only when anything did. A page read by an incremental listing has
/// no snapshot and leaves the identity's last snapshot alone; it also keeps a known last
/// login when the change does not report one (Graph delta carries no `signInActivity`).
macro_rules! conflict {
    () => {
        concat!(
            " on conflict (source_id, external_id) do update set \
               user_name = excluded.user_name, \
               user_name_lower = excluded.user_name_lower, \
               email = excluded.email, \
               email_lower = excluded.email_lower, \
               display_name = excluded.display_name, \
               status = excluded.status, \
               status_changed_at = case when identities.status = excluded.status \
                 then identities.status_changed_at else excluded.status_changed_at end, \
               idp_created_at = excluded.idp_created_at, \
               last_login_at = case when excluded.last_snapshot_id is null \
                 then coalesce(excluded.last_login_at, identities.last_login_at) \
                 else excluded.last_login_at end, \
               attributes = excluded.attributes, \
               last_seen_at = excluded.last_seen_at, \
               last_snapshot_id = coalesce(excluded.last_snapshot_id, identities.last_snapshot_id), \
               version = identities.version + case when ",
            identity_changed!(),
            " then 1 else 0 end, updated_at = case when ",
            identity_changed!(),
            " then excluded.updated_at else identities.updated_at end"
        )
    };
}

const UNNEST_PG: &str = concat!(
    "insert into identities (source_id, status_changed_at, first_seen_at, last_seen_at, \
       updated_at, last_snapshot_id, id, external_id, user_name, user_name_lower, email, \
       email_lower, display_name, status, idp_created_at, last_login_at, attributes, version) \
     select $1, $2, $2, $2, $2, $3, u.id, u.external_id, u.user_name, u.user_name_lower, \
       u.email, u.email_lower, u.display_name, u.status, u.idp_created_at, u.last_login_at, \
       u.attributes::jsonb, 1 \
     from unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
       $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::text[]) \
       as u(id, external_id, user_name, user_name_lower, email, email_lower, display_name, \
       status, idp_created_at, last_login_at, attributes)",
    conflict!()
);

fn sqlite_upsert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "insert into identities (source_id, status_changed_at, first_seen_at, last_seen_at, \
           updated_at, last_snapshot_id, id, external_id, user_name, user_name_lower, email, \
           email_lower, display_name, status, idp_created_at, last_login_at, attributes, \
           version) values ",
    );
    for r in 0..rows {
        sql.push_str(if r > 0 { ", (" } else { "(" });
        sql.push_str(&"?, ".repeat(IDENTITY_PARAMS + 1));
        sql.push_str("1)");
    }
    sql.push_str(conflict!());
    sql
}

impl Store {
    /// Starts a snapshot of a source.
    pub async fn begin_source_snapshot(&self, source: SourceId) -> Result<Snapshot, StoreError> {
        self.begin_snapshot(Owner::Source(source)).await
    }

    /// A source's most recent finished snapshot, or its most recent one with `status`.
    pub async fn latest_source_snapshot(
        &self,
        source: SourceId,
        status: Option<SnapshotStatus>,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.latest_snapshot(Owner::Source(source), status).await
    }

    /// Records one page of identities of `source`: upserts each (a repeat within the page
    /// is recorded once, the last wins) and, with a snapshot, marks it seen there. Returns
    /// how many were recorded.
    #[tracing::instrument(skip_all, fields(source.id = %source, identities = identities.len()))]
    pub async fn record_source_identities(
        &self,
        source: SourceId,
        snapshot: Option<SnapshotId>,
        identities: &[NewIdentity],
    ) -> Result<u64, StoreError> {
        let mut seen = HashSet::with_capacity(identities.len());
        let mut unique: Vec<&NewIdentity> = Vec::with_capacity(identities.len());
        for i in identities.iter().rev() {
            if i.source_id == source && seen.insert(i.external_id.as_str()) {
                unique.push(i);
            }
        }
        unique.reverse();
        let now = self.now();
        let snap = snapshot.map(|s| s.0);
        let mut tx = self.begin_write().await?;
        if let super::Tx::Postgres(t) = &mut tx {
            let col = |f: fn(&NewIdentity) -> Option<String>| -> Vec<Option<String>> {
                unique.iter().map(|i| f(i)).collect()
            };
            // A page can always be read again and its snapshot only becomes complete in a
            // later, durable commit.
            sqlx::query("set local synchronous_commit = off")
                .execute(&mut **t)
                .await?;
            sqlx::query(UNNEST_PG)
                .bind(source.0)
                .bind(now)
                .bind(snap)
                .bind(
                    unique
                        .iter()
                        .map(|_| IdentityId::new().0)
                        .collect::<Vec<_>>(),
                )
                .bind(col(|i| Some(i.external_id.clone())))
                .bind(col(|i| Some(i.user_name.clone())))
                .bind(col(|i| Some(normalise_key(&i.user_name))))
                .bind(col(|i| i.email.clone()))
                .bind(col(|i| i.email.as_deref().map(normalise_key)))
                .bind(col(|i| i.display_name.clone()))
                .bind(col(|i| Some(i.status.as_str().to_owned())))
                .bind(unique.iter().map(|i| i.idp_created_at).collect::<Vec<_>>())
                .bind(unique.iter().map(|i| i.last_login_at).collect::<Vec<_>>())
                .bind(col(|i| Some(i.attributes.to_string())))
                .execute(&mut **t)
                .await?;
            tx.commit().await?;
            return Ok(unique.len() as u64);
        }
        for chunk in unique.chunks(BATCH_ROWS) {
            let sql = sqlite_upsert_sql(chunk.len());
            on_tx!(&mut tx, |conn| {
                // Only placeholders are generated; every value is bound.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for i in chunk {
                    q = q
                        .bind(source.0)
                        .bind(now)
                        .bind(now)
                        .bind(now)
                        .bind(now)
                        .bind(snap)
                        .bind(IdentityId::new().0)
                        .bind(&i.external_id)
                        .bind(&i.user_name)
                        .bind(normalise_key(&i.user_name))
                        .bind(&i.email)
                        .bind(i.email.as_deref().map(normalise_key))
                        .bind(&i.display_name)
                        .bind(i.status.as_str())
                        .bind(i.idp_created_at)
                        .bind(i.last_login_at)
                        .bind(Json(&i.attributes));
                }
                q.execute(conn).await.map(|_| ())
            })?;
        }
        tx.commit().await?;
        Ok(unique.len() as u64)
    }

    /// Marks the identity `external_id` of `source` deleted (an incremental listing said it
    /// is gone), keeping what else is known. Returns whether such an identity existed.
    pub async fn mark_identity_removed(
        &self,
        source: SourceId,
        external_id: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "update identities set \
               status_changed_at = case when status = 'deleted' then status_changed_at else $3 end, \
               version = version + case when status = 'deleted' then 0 else 1 end, \
               updated_at = case when status = 'deleted' then updated_at else $3 end, \
               status = 'deleted', attributes = $4, last_seen_at = $3 \
             where source_id = $1 and external_id = $2";
        const READ: &str =
            "select attributes from identities where source_id = $1 and external_id = $2";
        let attrs: Option<Json<Value>> = on_db!(&self.db, |pool| {
            sqlx::query_scalar(READ)
                .bind(source.0)
                .bind(external_id)
                .fetch_optional(pool)
                .await
        })?;
        let Some(Json(mut attrs)) = attrs else {
            return Ok(false);
        };
        if let Some(obj) = attrs.as_object_mut() {
            obj.insert(
                "raw_status".into(),
                Value::String(format!("removed: {reason}")),
            );
        }
        let now = self.now();
        let n = on_db!(&self.db, |pool| {
            sqlx::query(SQL)
                .bind(source.0)
                .bind(external_id)
                .bind(now)
                .bind(Json(&attrs))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }

    /// How many of a source's identities the snapshot `snapshot` did not see.
    pub async fn identities_not_in_snapshot(
        &self,
        source: SourceId,
        snapshot: SnapshotId,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "select count(*) from identities where source_id = $1 \
             and (last_snapshot_id is null or last_snapshot_id <> $2)";
        let n: i64 = on_db!(&self.db, |pool| {
            sqlx::query_scalar(SQL)
                .bind(source.0)
                .bind(snapshot.0)
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }

    /// Records the groups a source snapshot saw, replacing what earlier snapshots said.
    pub async fn record_source_groups(
        &self,
        source: SourceId,
        snapshot: SnapshotId,
        groups: &[NewSourceGroup],
    ) -> Result<(), StoreError> {
        const SQL: &str = "insert into source_groups (id, source_id, external_id, name, members, \
               member_count, last_snapshot_id, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8) \
             on conflict (source_id, external_id) do update set name = excluded.name, \
               members = excluded.members, member_count = excluded.member_count, \
               last_snapshot_id = excluded.last_snapshot_id, updated_at = excluded.updated_at";
        let now = self.now();
        let mut tx = self.begin_write().await?;
        for g in groups {
            on_tx!(&mut tx, |conn| {
                sqlx::query(SQL)
                    .bind(Uuid::now_v7())
                    .bind(source.0)
                    .bind(&g.external_id)
                    .bind(&g.name)
                    .bind(Json(&g.members))
                    .bind(g.members.len() as i64)
                    .bind(snapshot.0)
                    .bind(now)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The groups of a source with their members' external ids, by name.
    pub async fn source_groups(&self, source: SourceId) -> Result<Vec<NewSourceGroup>, StoreError> {
        const SQL: &str = "select external_id, name, members from source_groups \
             where source_id = $1 order by name, external_id";
        let rows: Vec<(String, String, Json<Vec<String>>)> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL).bind(source.0).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(external_id, name, members)| NewSourceGroup {
                external_id,
                name,
                members: members.0,
            })
            .collect())
    }

    /// Records sign-in events; an event id already recorded is ignored. Returns how many
    /// were new.
    pub async fn record_sign_ins(
        &self,
        source: SourceId,
        events: &[NewSignIn],
    ) -> Result<u64, StoreError> {
        const SQL: &str = "insert into sign_in_events (source_id, event_id, external_id, login, \
               occurred_at, recorded_at) values ($1, $2, $3, $4, $5, $6) \
             on conflict (source_id, event_id) do nothing";
        let now = self.now();
        let mut added = 0;
        let mut tx = self.begin_write().await?;
        for e in events {
            added += on_tx!(&mut tx, |conn| {
                sqlx::query(SQL)
                    .bind(source.0)
                    .bind(&e.event_id)
                    .bind(&e.external_id)
                    .bind(&e.login)
                    .bind(e.occurred_at)
                    .bind(now)
                    .execute(conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// The latest recorded sign-in per person of a source: (external id or login, when).
    pub async fn latest_sign_ins(
        &self,
        source: SourceId,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        const SQL: &str = "select coalesce(external_id, login) as who, max(occurred_at) \
             from sign_in_events where source_id = $1 and coalesce(external_id, login) is not null \
             group by coalesce(external_id, login) order by 1";
        let rows: Vec<(String, DateTime<Utc>)> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL).bind(source.0).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Where the stream `stream` of `source` picks up next.
    pub async fn source_checkpoint(
        &self,
        source: SourceId,
        stream: Stream,
    ) -> Result<Option<String>, StoreError> {
        const SQL: &str =
            "select checkpoint from source_checkpoints where source_id = $1 and stream = $2";
        let c: Option<String> = on_db!(&self.db, |pool| {
            sqlx::query_scalar(SQL)
                .bind(source.0)
                .bind(stream.as_str())
                .fetch_optional(pool)
                .await
        })?;
        Ok(c)
    }

    /// Sets (or, with `None`, forgets) where the stream `stream` of `source` picks up next.
    pub async fn set_source_checkpoint(
        &self,
        source: SourceId,
        stream: Stream,
        checkpoint: Option<&str>,
    ) -> Result<(), StoreError> {
        const SET: &str = "insert into source_checkpoints (source_id, stream, checkpoint, \
               updated_at) values ($1, $2, $3, $4) \
             on conflict (source_id, stream) do update set checkpoint = excluded.checkpoint, \
               updated_at = excluded.updated_at";
        const CLEAR: &str = "delete from source_checkpoints where source_id = $1 and stream = $2";
        let now = self.now();
        on_db!(&self.db, |pool| async {
            match checkpoint {
                Some(c) => sqlx::query(SET)
                    .bind(source.0)
                    .bind(stream.as_str())
                    .bind(c)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|_| ()),
                None => sqlx::query(CLEAR)
                    .bind(source.0)
                    .bind(stream.as_str())
                    .execute(pool)
                    .await
                    .map(|_| ()),
            }
        }
        .await)?;
        Ok(())
    }

    /// Every identity of a source, by username.
    pub async fn source_identities(
        &self,
        source: SourceId,
    ) -> Result<Vec<crate::domain::Identity>, StoreError> {
        self.identities_of_source(source).await
    }
}
