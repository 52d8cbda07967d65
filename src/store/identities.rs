//! Identities: people as each source knows them, keyed by (source, immutable external id).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, on_db};
use crate::domain::{Identity, IdentityId, NewIdentity, SourceId, normalise_key};

#[derive(sqlx::FromRow)]
struct IdentityRow {
    id: Uuid,
    source_id: Uuid,
    external_id: String,
    user_name: String,
    email: Option<String>,
    display_name: Option<String>,
    status: String,
    status_changed_at: DateTime<Utc>,
    idp_created_at: Option<DateTime<Utc>>,
    last_login_at: Option<DateTime<Utc>>,
    attributes: Json<Value>,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    version: i64,
    updated_at: DateTime<Utc>,
}

impl TryFrom<IdentityRow> for Identity {
    type Error = StoreError;

    fn try_from(r: IdentityRow) -> Result<Self, StoreError> {
        Ok(Identity {
            id: IdentityId(r.id),
            source_id: SourceId(r.source_id),
            external_id: r.external_id,
            user_name: r.user_name,
            email: r.email,
            display_name: r.display_name,
            status: r.status.parse()?,
            status_changed_at: r.status_changed_at,
            idp_created_at: r.idp_created_at,
            last_login_at: r.last_login_at,
            attributes: r.attributes.0,
            first_seen_at: r.first_seen_at,
            last_seen_at: r.last_seen_at,
            version: r.version,
            updated_at: r.updated_at,
        })
    }
}

macro_rules! identity_columns {
    () => {
        "id, source_id, external_id, user_name, email, display_name, status, status_changed_at, \
         idp_created_at, last_login_at, attributes, first_seen_at, last_seen_at, version, updated_at"
    };
}

/// True when an upsert changes what the source says (not merely when it was last seen).
macro_rules! identity_changed {
    () => {
        "(identities.user_name is distinct from excluded.user_name \
          or identities.email is distinct from excluded.email \
          or identities.display_name is distinct from excluded.display_name \
          or identities.status is distinct from excluded.status \
          or identities.idp_created_at is distinct from excluded.idp_created_at \
          or identities.last_login_at is distinct from excluded.last_login_at \
          or identities.attributes is distinct from excluded.attributes)"
    };
}

impl Store {
    /// Records what a source says about a person. A new external id makes a new identity;
    /// a known one is updated, its `version` bumped only when something changed and its
    /// `status_changed_at` moved only when the status changed.
    #[tracing::instrument(skip_all, fields(source.id = %new.source_id))]
    pub async fn upsert_identity(&self, new: &NewIdentity) -> Result<Identity, StoreError> {
        const SQL: &str = concat!(
            "insert into identities (id, source_id, external_id, user_name, user_name_lower, \
               email, email_lower, display_name, status, status_changed_at, idp_created_at, \
               last_login_at, attributes, first_seen_at, last_seen_at, version, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $10, $10, 1, $10) \
             on conflict (source_id, external_id) do update set \
               user_name = excluded.user_name, \
               user_name_lower = excluded.user_name_lower, \
               email = excluded.email, \
               email_lower = excluded.email_lower, \
               display_name = excluded.display_name, \
               status = excluded.status, \
               status_changed_at = case when identities.status = excluded.status \
                 then identities.status_changed_at else excluded.status_changed_at end, \
               idp_created_at = excluded.idp_created_at, \
               last_login_at = excluded.last_login_at, \
               attributes = excluded.attributes, \
               last_seen_at = excluded.last_seen_at, \
               version = identities.version + case when ",
            identity_changed!(),
            " then 1 else 0 end, \
               updated_at = case when ",
            identity_changed!(),
            " then excluded.updated_at else identities.updated_at end \
             returning ",
            identity_columns!()
        );
        let now = self.now();
        let row: IdentityRow = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(IdentityId::new().0)
                .bind(new.source_id.0)
                .bind(&new.external_id)
                .bind(&new.user_name)
                .bind(normalise_key(&new.user_name))
                .bind(&new.email)
                .bind(new.email.as_deref().map(normalise_key))
                .bind(&new.display_name)
                .bind(new.status.as_str())
                .bind(now)
                .bind(new.idp_created_at)
                .bind(new.last_login_at)
                .bind(Json(&new.attributes))
                .fetch_one(pool)
                .await
        })?;
        Identity::try_from(row)
    }

    /// The identity a source knows by `external_id`.
    pub async fn identity_by_external_id(
        &self,
        source: SourceId,
        external_id: &str,
    ) -> Result<Option<Identity>, StoreError> {
        const SQL: &str = concat!(
            "select ",
            identity_columns!(),
            " from identities where source_id = $1 and external_id = $2"
        );
        let row: Option<IdentityRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(source.0)
                .bind(external_id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(Identity::try_from).transpose()
    }

    /// Identities of a source whose username matches case-insensitively. Usernames are
    /// reusable, so this may return several.
    pub async fn identities_by_user_name(
        &self,
        source: SourceId,
        user_name: &str,
    ) -> Result<Vec<Identity>, StoreError> {
        const SQL: &str = concat!(
            "select ",
            identity_columns!(),
            " from identities where source_id = $1 and user_name_lower = $2 order by id"
        );
        let rows: Vec<IdentityRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(source.0)
                .bind(normalise_key(user_name))
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(Identity::try_from).collect()
    }

    /// Every identity of a source, by username.
    pub async fn identities_of_source(
        &self,
        source: SourceId,
    ) -> Result<Vec<Identity>, StoreError> {
        const SQL: &str = concat!(
            "select ",
            identity_columns!(),
            " from identities where source_id = $1 order by user_name_lower, id"
        );
        let rows: Vec<IdentityRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL).bind(source.0).fetch_all(pool).await
        })?;
        rows.into_iter().map(Identity::try_from).collect()
    }
}
