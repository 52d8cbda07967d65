//! Configured identity sources.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, on_db};
use crate::domain::{Source, SourceId, SourceKind};

#[derive(sqlx::FromRow)]
struct SourceRow {
    id: Uuid,
    name: String,
    kind: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<SourceRow> for Source {
    type Error = StoreError;

    fn try_from(r: SourceRow) -> Result<Self, StoreError> {
        Ok(Source {
            id: SourceId(r.id),
            name: r.name,
            kind: r.kind.parse()?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl Store {
    /// Registers the source `name`, or returns it if it already exists with the same kind.
    /// A source's kind never changes: the same name with another kind is a conflict.
    #[tracing::instrument(skip(self), fields(source.name = %name, source.kind = %kind))]
    pub async fn ensure_source(&self, name: &str, kind: SourceKind) -> Result<Source, StoreError> {
        const SQL: &str = "insert into sources (id, name, kind, created_at, updated_at) \
             values ($1, $2, $3, $4, $4) \
             on conflict (name) do update set name = excluded.name \
             where sources.kind = excluded.kind \
             returning id, name, kind, created_at, updated_at";
        let now = self.now();
        let row: Option<SourceRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(SourceId::new().0)
                .bind(name)
                .bind(kind.as_str())
                .bind(now)
                .fetch_optional(pool)
                .await
        })?;
        let row = row.ok_or_else(|| {
            StoreError::Conflict(format!("source `{name}` already exists with another kind"))
        })?;
        Source::try_from(row)
    }

    /// The source called `name`, if any.
    pub async fn source_by_name(&self, name: &str) -> Result<Option<Source>, StoreError> {
        const SQL: &str =
            "select id, name, kind, created_at, updated_at from sources where name = $1";
        let row: Option<SourceRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(name)
            .fetch_optional(pool)
            .await)?;
        row.map(Source::try_from).transpose()
    }

    /// Every source, by name.
    pub async fn sources(&self) -> Result<Vec<Source>, StoreError> {
        const SQL: &str =
            "select id, name, kind, created_at, updated_at from sources order by name";
        let rows: Vec<SourceRow> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_all(pool).await)?;
        rows.into_iter().map(Source::try_from).collect()
    }
}
