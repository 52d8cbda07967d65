//! Read-only access to a Confluence Data Center's own PostgreSQL database, for the one thing
//! its REST API lacks before 10.2: when each user last logged in. Two tables hold it:
//! `logininfo.successdate` (keyed by user key) and the embedded Crowd attribute
//! `cwd_user_attribute.lastAuthenticated` (milliseconds since the epoch); the later wins.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::StoreError;
use crate::config::{DatabaseBackend, DatabaseUrl};

/// The latest successful login per user key, read in one read-only transaction.
pub async fn confluence_last_logins(
    url: &DatabaseUrl,
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    if url.backend() != Some(DatabaseBackend::Postgres) {
        return Err(StoreError::UnsupportedScheme(url.scheme().to_owned()));
    }
    let shown = url.to_string();
    let options: PgConnectOptions =
        url.expose()
            .parse()
            .map_err(|e: sqlx::Error| StoreError::BadUrl {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
    let options = options
        .options([("default_transaction_read_only", "on")])
        .application_name("idbridge-last-login")
        .disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            url: shown.clone(),
            source,
        })?;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    const LOGININFO: &str = "select username, max(successdate) from logininfo \
         where successdate is not null group by username";
    const CROWD: &str = "select m.user_key, max(a.attribute_value) \
         from cwd_user_attribute a \
         join cwd_user u on u.id = a.user_id \
         join user_mapping m on m.lower_username = u.lower_user_name \
         where a.attribute_name = 'lastAuthenticated' group by m.user_key";
    let mut out: HashMap<String, DateTime<Utc>> = HashMap::new();
    let rows: Vec<(String, chrono::NaiveDateTime)> =
        sqlx::query_as(LOGININFO).fetch_all(&mut *tx).await?;
    for (key, at) in rows {
        merge(&mut out, key, at.and_utc());
    }
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(CROWD).fetch_all(&mut *tx).await?;
    for (key, ms) in rows {
        if let Some(at) = ms
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        {
            merge(&mut out, key, at);
        }
    }
    tx.rollback().await?;
    drop(conn);
    pool.close().await;
    Ok(out)
}

fn merge(out: &mut HashMap<String, DateTime<Utc>>, key: String, at: DateTime<Utc>) {
    let slot = out.entry(key).or_insert(at);
    if at > *slot {
        *slot = at;
    }
}
