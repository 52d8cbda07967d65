//! Accounts: users in each Confluence target, keyed by (target, immutable account key).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, on_db, on_tx};
use crate::domain::{Account, AccountId, NewAccount, TargetId, normalise_key};

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
    last_seen_at: DateTime<Utc>,
    version: i64,
    updated_at: DateTime<Utc>,
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Self {
        Account {
            id: AccountId(r.id),
            target_id: TargetId(r.target_id),
            account_key: r.account_key,
            user_name: r.user_name,
            email: r.email,
            display_name: r.display_name,
            active: r.active,
            last_login_at: r.last_login_at,
            remote_created_at: r.remote_created_at,
            managed: r.managed,
            attributes: r.attributes.0,
            first_seen_at: r.first_seen_at,
            last_seen_at: r.last_seen_at,
            version: r.version,
            updated_at: r.updated_at,
        }
    }
}

macro_rules! account_columns {
    () => {
        "id, target_id, account_key, user_name, email, display_name, active, last_login_at, \
         remote_created_at, managed, attributes, first_seen_at, last_seen_at, version, updated_at"
    };
}

macro_rules! account_changed {
    () => {
        "(accounts.user_name is distinct from excluded.user_name \
          or accounts.email is distinct from excluded.email \
          or accounts.display_name is distinct from excluded.display_name \
          or accounts.active is distinct from excluded.active \
          or accounts.last_login_at is distinct from excluded.last_login_at \
          or accounts.remote_created_at is distinct from excluded.remote_created_at \
          or accounts.managed is distinct from excluded.managed \
          or accounts.attributes is distinct from excluded.attributes)"
    };
}

/// What an upsert does to an account it already knows: take the target's values, and move
/// `version` and `updated_at` only when something changed. `$extra` adds assignments.
macro_rules! account_conflict {
    ($($extra:literal)?) => {
        concat!(
            " on conflict (target_id, account_key) do update set \
               user_name = excluded.user_name, \
               user_name_lower = excluded.user_name_lower, \
               email = excluded.email, \
               email_lower = excluded.email_lower, \
               display_name = excluded.display_name, \
               active = excluded.active, \
               last_login_at = excluded.last_login_at, \
               remote_created_at = excluded.remote_created_at, \
               managed = excluded.managed, \
               attributes = excluded.attributes, \
               last_seen_at = excluded.last_seen_at, ",
            $($extra,)?
            " version = accounts.version + case when ",
            account_changed!(),
            " then 1 else 0 end, updated_at = case when ",
            account_changed!(),
            " then excluded.updated_at else accounts.updated_at end"
        )
    };
}

impl Store {
    /// Records what a target says about an account; `version` moves only on change.
    #[tracing::instrument(skip_all, fields(target.id = %new.target_id))]
    pub async fn upsert_account(&self, new: &NewAccount) -> Result<Account, StoreError> {
        const SQL: &str = concat!(
            "insert into accounts (id, target_id, account_key, user_name, user_name_lower, \
               email, email_lower, display_name, active, last_login_at, remote_created_at, \
               managed, attributes, first_seen_at, last_seen_at, version, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, 1, $14)",
            account_conflict!(),
            " returning ",
            account_columns!()
        );
        let now = self.now();
        let row: AccountRow = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(AccountId::new().0)
                .bind(new.target_id.0)
                .bind(&new.account_key)
                .bind(&new.user_name)
                .bind(normalise_key(&new.user_name))
                .bind(&new.email)
                .bind(new.email.as_deref().map(normalise_key))
                .bind(&new.display_name)
                .bind(new.active)
                .bind(new.last_login_at)
                .bind(new.remote_created_at)
                .bind(new.managed)
                .bind(Json(&new.attributes))
                .bind(now)
                .fetch_one(pool)
                .await
        })?;
        Ok(row.into())
    }

    /// The account a target knows by `account_key`.
    pub async fn account_by_key(
        &self,
        target: TargetId,
        account_key: &str,
    ) -> Result<Option<Account>, StoreError> {
        const SQL: &str = concat!(
            "select ",
            account_columns!(),
            " from accounts where target_id = $1 and account_key = $2"
        );
        let row: Option<AccountRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(target.0)
                .bind(account_key)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(Account::from))
    }

    /// Accounts of a target whose email matches case-insensitively.
    pub async fn accounts_by_email(
        &self,
        target: TargetId,
        email: &str,
    ) -> Result<Vec<Account>, StoreError> {
        const SQL: &str = concat!(
            "select ",
            account_columns!(),
            " from accounts where target_id = $1 and email_lower = $2 order by id"
        );
        let rows: Vec<AccountRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL)
                .bind(target.0)
                .bind(normalise_key(email))
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(Account::from).collect())
    }

    /// Where to write to the person behind `account`: the account's email, else the first
    /// (alphabetically) email of an identity linked to it. Confluence DC's user lookup carries
    /// no email, so a notice needs this.
    pub async fn contact_email(&self, account: AccountId) -> Result<Option<String>, StoreError> {
        const SQL: &str = "select coalesce(a.email, (select min(i.email) from links l \
             join identities i on i.id = l.identity_id \
             where l.account_id = a.id and i.email is not null and i.email <> '')) \
             from accounts a where a.id = $1";
        let email: Option<Option<String>> = on_db!(&self.db, |pool| {
            sqlx::query_scalar(SQL)
                .bind(account.0)
                .fetch_optional(pool)
                .await
        })?;
        Ok(email.flatten().filter(|e| !e.trim().is_empty()))
    }
}

/// Rows per statement when recording an inventory, [`INVENTORY_PARAMS`] parameters each:
/// 8,500 parameters, inside both backends' limits (SQLite 32,766, PostgreSQL 65,535).
const BATCH_ROWS: usize = 500;

/// Bound values per account row in the inventory upsert.
const INVENTORY_PARAMS: usize = 17;

impl Store {
    /// Records one page of a target inventory: upserts every account (as
    /// [`Store::upsert_account`] does, `version` moving only on change) and marks it seen in
    /// `snapshot`. Accounts repeated within `accounts` are recorded once (the last wins).
    /// Returns how many accounts were recorded.
    #[tracing::instrument(skip_all, fields(snapshot.id = %snapshot, accounts = accounts.len()))]
    pub async fn record_inventory_accounts(
        &self,
        target: TargetId,
        snapshot: crate::domain::SnapshotId,
        accounts: &[NewAccount],
    ) -> Result<u64, StoreError> {
        let mut seen = std::collections::HashSet::with_capacity(accounts.len());
        let mut unique: Vec<&NewAccount> = Vec::with_capacity(accounts.len());
        for a in accounts.iter().rev() {
            if a.target_id == target && seen.insert(a.account_key.as_str()) {
                unique.push(a);
            }
        }
        unique.reverse();
        let now = self.now();
        let mut tx = self.begin_write().await?;
        if let super::Tx::Postgres(t) = &mut tx {
            let col = |f: fn(&NewAccount) -> Option<String>| -> Vec<Option<String>> {
                unique.iter().map(|a| f(a)).collect()
            };
            // An inventory page can always be read again, and its snapshot only becomes
            // complete in a later, durable commit: no need to wait for this one's flush.
            sqlx::query("set local synchronous_commit = off")
                .execute(&mut **t)
                .await?;
            sqlx::query(INVENTORY_UNNEST_PG)
                .bind(target.0)
                .bind(now)
                .bind(snapshot.0)
                .bind(
                    unique
                        .iter()
                        .map(|_| AccountId::new().0)
                        .collect::<Vec<_>>(),
                )
                .bind(col(|a| Some(a.account_key.clone())))
                .bind(col(|a| Some(a.user_name.clone())))
                .bind(col(|a| Some(normalise_key(&a.user_name))))
                .bind(col(|a| a.email.clone()))
                .bind(col(|a| a.email.as_deref().map(normalise_key)))
                .bind(col(|a| a.display_name.clone()))
                .bind(unique.iter().map(|a| a.active).collect::<Vec<_>>())
                .bind(unique.iter().map(|a| a.last_login_at).collect::<Vec<_>>())
                .bind(
                    unique
                        .iter()
                        .map(|a| a.remote_created_at)
                        .collect::<Vec<_>>(),
                )
                .bind(unique.iter().map(|a| a.managed).collect::<Vec<_>>())
                .bind(col(|a| Some(a.attributes.to_string())))
                .execute(&mut **t)
                .await?;
            tx.commit().await?;
            return Ok(unique.len() as u64);
        }
        for chunk in unique.chunks(BATCH_ROWS) {
            let sql = inventory_upsert_sql(chunk.len());
            on_tx!(&mut tx, |conn| {
                // Only placeholders are generated; every value is bound.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for a in chunk {
                    q = q
                        .bind(target.0)
                        .bind(now)
                        .bind(now)
                        .bind(now)
                        .bind(snapshot.0)
                        .bind(AccountId::new().0)
                        .bind(&a.account_key)
                        .bind(&a.user_name)
                        .bind(normalise_key(&a.user_name))
                        .bind(&a.email)
                        .bind(a.email.as_deref().map(normalise_key))
                        .bind(&a.display_name)
                        .bind(a.active)
                        .bind(a.last_login_at)
                        .bind(a.remote_created_at)
                        .bind(a.managed)
                        .bind(Json(&a.attributes));
                }
                q.execute(conn).await.map(|_| ())
            })?;
        }
        tx.commit().await?;
        Ok(unique.len() as u64)
    }

    /// Every account of a target, by username.
    pub async fn target_accounts(&self, target: TargetId) -> Result<Vec<Account>, StoreError> {
        const SQL: &str = concat!(
            "select ",
            account_columns!(),
            " from accounts where target_id = $1 order by user_name_lower, id"
        );
        let rows: Vec<AccountRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL).bind(target.0).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Account::from).collect())
    }

    /// How many of a target's accounts the snapshot `snapshot` did not see.
    pub async fn accounts_not_in_snapshot(
        &self,
        target: TargetId,
        snapshot: crate::domain::SnapshotId,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "select count(*) from accounts where target_id = $1 \
             and (last_snapshot_id is null or last_snapshot_id <> $2)";
        let n: i64 = on_db!(&self.db, |pool| {
            sqlx::query_scalar(SQL)
                .bind(target.0)
                .bind(snapshot.0)
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }
}

/// SQLite: the multi-row upsert for `rows` accounts, [`INVENTORY_PARAMS`] parameters per row.
/// The placeholders are anonymous `?`: SQLite looks numbered ones up by name with a linear
/// scan per bound value, which makes an 8,500-parameter statement quadratic.
fn inventory_upsert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "insert into accounts (target_id, first_seen_at, last_seen_at, updated_at, \
           last_snapshot_id, id, account_key, user_name, user_name_lower, email, email_lower, \
           display_name, active, last_login_at, remote_created_at, managed, attributes, version) \
         values ",
    );
    for r in 0..rows {
        sql.push_str(if r > 0 { ", (" } else { "(" });
        sql.push_str(&"?, ".repeat(INVENTORY_PARAMS));
        sql.push_str("1)");
    }
    sql.push_str(account_conflict!(
        "last_snapshot_id = excluded.last_snapshot_id, "
    ));
    sql
}

/// PostgreSQL: the whole page in one statement, each column bound as one array.
const INVENTORY_UNNEST_PG: &str = concat!(
    "insert into accounts (target_id, first_seen_at, last_seen_at, updated_at, \
       last_snapshot_id, id, account_key, user_name, user_name_lower, email, email_lower, \
       display_name, active, last_login_at, remote_created_at, managed, attributes, version) \
     select $1, $2, $2, $2, $3, u.id, u.account_key, u.user_name, u.user_name_lower, u.email, \
       u.email_lower, u.display_name, u.active, u.last_login_at, u.remote_created_at, \
       u.managed, u.attributes::jsonb, 1 \
     from unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
       $10::text[], $11::boolean[], $12::timestamptz[], $13::timestamptz[], $14::boolean[], \
       $15::text[]) as u(id, account_key, user_name, user_name_lower, email, email_lower, \
       display_name, active, last_login_at, remote_created_at, managed, attributes)",
    account_conflict!("last_snapshot_id = excluded.last_snapshot_id, ")
);
