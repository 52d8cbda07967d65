//! Configured Confluence targets.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, on_db};
use crate::domain::{Target, TargetId, TargetKind};

#[derive(sqlx::FromRow)]
struct TargetRow {
    id: Uuid,
    name: String,
    kind: String,
    base_url: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TargetRow> for Target {
    type Error = StoreError;

    fn try_from(r: TargetRow) -> Result<Self, StoreError> {
        Ok(Target {
            id: TargetId(r.id),
            name: r.name,
            kind: r.kind.parse()?,
            base_url: r.base_url,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl Store {
    /// Registers the target `name` or updates its base URL. Its kind never changes.
    #[tracing::instrument(skip(self), fields(target.name = %name, target.kind = %kind))]
    pub async fn ensure_target(
        &self,
        name: &str,
        kind: TargetKind,
        base_url: &str,
    ) -> Result<Target, StoreError> {
        const SQL: &str = "insert into targets (id, name, kind, base_url, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $5) \
             on conflict (name) do update set \
               base_url = excluded.base_url, \
               updated_at = case when targets.base_url = excluded.base_url \
                            then targets.updated_at else excluded.updated_at end \
             where targets.kind = excluded.kind \
             returning id, name, kind, base_url, created_at, updated_at";
        let now = self.now();
        let row: Option<TargetRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(TargetId::new().0)
                .bind(name)
                .bind(kind.as_str())
                .bind(base_url)
                .bind(now)
                .fetch_optional(pool)
                .await
        })?;
        let row = row.ok_or_else(|| {
            StoreError::Conflict(format!("target `{name}` already exists with another kind"))
        })?;
        Target::try_from(row)
    }

    /// The target called `name`, if any.
    pub async fn target_by_name(&self, name: &str) -> Result<Option<Target>, StoreError> {
        const SQL: &str =
            "select id, name, kind, base_url, created_at, updated_at from targets where name = $1";
        let row: Option<TargetRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(name)
            .fetch_optional(pool)
            .await)?;
        row.map(Target::try_from).transpose()
    }
}
