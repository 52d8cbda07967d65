//! Runtime settings: small JSON values by key, changed through the admin surfaces.

use serde_json::Value;
use sqlx::types::Json;

use super::{Store, StoreError, on_db};

impl Store {
    /// The setting `key`, if set.
    pub async fn setting(&self, key: &str) -> Result<Option<Value>, StoreError> {
        const SQL: &str = "select value from settings where key = $1";
        let value: Option<Json<Value>> = on_db!(&self.db, |pool| sqlx::query_scalar(SQL)
            .bind(key)
            .fetch_optional(pool)
            .await)?;
        Ok(value.map(|v| v.0))
    }

    /// Sets `key` to `value`, replacing any earlier value.
    #[tracing::instrument(skip(self, value), fields(setting.key = %key))]
    pub async fn put_setting(&self, key: &str, value: &Value) -> Result<(), StoreError> {
        const SQL: &str = "insert into settings (key, value, updated_at) values ($1, $2, $3) \
             on conflict (key) do update set value = excluded.value, updated_at = excluded.updated_at";
        let now = self.now();
        on_db!(&self.db, |pool| {
            sqlx::query(SQL)
                .bind(key)
                .bind(Json(value))
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}
