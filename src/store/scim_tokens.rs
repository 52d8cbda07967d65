//! SCIM bearer tokens: the public prefix, the hash of the secret (never the secret), the
//! source each token may provision into, expiry, revocation and when it was last used.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, on_db};
use crate::auth::{NewScimToken, ScimToken, SecretHash};
use crate::domain::SourceId;

#[derive(sqlx::FromRow)]
struct ScimTokenRow {
    id: Uuid,
    source_id: Uuid,
    prefix: String,
    secret_hash: String,
    label: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ScimTokenRow> for ScimToken {
    fn from(r: ScimTokenRow) -> Self {
        ScimToken {
            id: r.id,
            source_id: SourceId(r.source_id),
            prefix: r.prefix,
            secret_hash: SecretHash::from_stored(r.secret_hash),
            label: r.label,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

impl Store {
    /// Stores a new token, issued now. A prefix already in use is a
    /// [`StoreError::Conflict`]; an unknown source is a [`StoreError::MissingReference`].
    #[tracing::instrument(skip_all, fields(token.prefix = %new.prefix, source.id = %new.source_id))]
    pub async fn insert_scim_token(&self, new: &NewScimToken) -> Result<ScimToken, StoreError> {
        const SQL: &str = "insert into scim_tokens \
             (id, source_id, prefix, secret_hash, label, created_at, expires_at, last_used_at, revoked_at) \
             values ($1, $2, $3, $4, $5, $6, $7, null, null) \
             returning id, source_id, prefix, secret_hash, label, created_at, expires_at, last_used_at, revoked_at";
        let now = self.now();
        let row: ScimTokenRow = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(Uuid::now_v7())
                .bind(new.source_id.0)
                .bind(new.prefix.as_str())
                .bind(new.secret_hash.as_stored())
                .bind(new.label.as_deref())
                .bind(now)
                .bind(new.expires_at)
                .fetch_one(pool)
                .await
        })?;
        Ok(row.into())
    }

    /// The token with public prefix `prefix`, whatever its state.
    #[tracing::instrument(skip_all, fields(token.prefix = %prefix))]
    pub async fn scim_token_by_prefix(
        &self,
        prefix: &str,
    ) -> Result<Option<ScimToken>, StoreError> {
        const SQL: &str = "select id, source_id, prefix, secret_hash, label, created_at, expires_at, \
             last_used_at, revoked_at from scim_tokens where prefix = $1";
        let row: Option<ScimTokenRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(prefix)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(ScimToken::from))
    }

    /// Every token, or those of one source, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn scim_tokens(
        &self,
        source: Option<SourceId>,
    ) -> Result<Vec<ScimToken>, StoreError> {
        const SQL: &str = "select id, source_id, prefix, secret_hash, label, created_at, expires_at, \
             last_used_at, revoked_at from scim_tokens \
             where ($1 is null or source_id = $1) \
             order by created_at desc, id desc";
        let rows: Vec<ScimTokenRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(source.map(|s| s.0))
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(ScimToken::from).collect())
    }

    /// Revokes the token with prefix `prefix` now, unless it is already revoked. Returns
    /// whether a token that was not yet revoked (including one that had merely expired) was
    /// revoked by this call.
    #[tracing::instrument(skip_all, fields(token.prefix = %prefix))]
    pub async fn revoke_scim_token(&self, prefix: &str) -> Result<bool, StoreError> {
        const SQL: &str =
            "update scim_tokens set revoked_at = $2 where prefix = $1 and revoked_at is null";
        let now = self.now();
        let affected = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(prefix)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected > 0)
    }

    /// Records that token `id` was used at `at`. `last_used_at` only ever moves forward, so a
    /// late write from a slower replica cannot move it back. (On SQLite the comparison is on
    /// the stored RFC 3339 text, which orders like the instants: UTC offset always `+00:00`,
    /// at most microsecond fractions, and `+` sorts before `.` and the digits.)
    #[tracing::instrument(skip_all, fields(token.id = %id))]
    pub async fn touch_scim_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        const SQL: &str = "update scim_tokens set last_used_at = $2 \
             where id = $1 and (last_used_at is null or last_used_at < $2)";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(id)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
