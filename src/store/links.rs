//! Links between identities and accounts, and what linking reads: every identity and
//! account with the keys they may match on.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, on_db, on_tx};
use crate::domain::{AccountId, IdentityId, Link, LinkId, LinkMethod, TargetId};

#[derive(sqlx::FromRow)]
struct LinkRow {
    id: Uuid,
    identity_id: Uuid,
    account_id: Uuid,
    method: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<LinkRow> for Link {
    type Error = StoreError;

    fn try_from(r: LinkRow) -> Result<Self, StoreError> {
        Ok(Link {
            id: LinkId(r.id),
            identity_id: IdentityId(r.identity_id),
            account_id: AccountId(r.account_id),
            method: r.method.parse()?,
            created_at: r.created_at,
        })
    }
}

impl Store {
    /// Links an identity to an account. Linking the same pair again keeps the first link.
    #[tracing::instrument(skip(self), fields(identity.id = %identity, account.id = %account))]
    pub async fn link(
        &self,
        identity: IdentityId,
        account: AccountId,
        method: LinkMethod,
    ) -> Result<Link, StoreError> {
        const INSERT: &str = "insert into links (id, identity_id, account_id, method, created_at) \
             values ($1, $2, $3, $4, $5) on conflict (identity_id, account_id) do nothing";
        const SELECT: &str = "select id, identity_id, account_id, method, created_at from links \
             where identity_id = $1 and account_id = $2";
        let now = self.now();
        let row: LinkRow = on_db!(&self.db, |pool| {
            sqlx::query(INSERT)
                .bind(LinkId::new().0)
                .bind(identity.0)
                .bind(account.0)
                .bind(method.as_str())
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query_as(SELECT)
                .bind(identity.0)
                .bind(account.0)
                .fetch_one(pool)
                .await
        })?;
        Link::try_from(row)
    }

    /// Every link to an account, oldest first.
    pub async fn links_for_account(&self, account: AccountId) -> Result<Vec<Link>, StoreError> {
        const SQL: &str = "select id, identity_id, account_id, method, created_at from links \
             where account_id = $1 order by created_at, id";
        let rows: Vec<LinkRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(account.0)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(Link::try_from).collect()
    }
}

/// An identity as linking sees it: its immutable id and the mutable keys it may match on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkIdentity {
    pub id: IdentityId,
    /// The source's configured name.
    pub source: String,
    pub external_id: String,
    pub user_name: String,
    pub email: Option<String>,
    /// Marked deleted by its source (kept, and kept linked, so that it can be offboarded).
    pub deleted: bool,
}

/// An account as linking sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkAccount {
    pub id: AccountId,
    pub target_id: TargetId,
    /// The account's immutable key (`userKey`, `accountId`).
    pub key: String,
    /// An IdP id the target carries for the account (`attributes.external_id`), if any.
    pub external_id: Option<String>,
    pub username: String,
    pub email: Option<String>,
}

/// Links per insert statement (5 parameters each).
const LINK_BATCH: usize = 500;

impl Store {
    /// Every identity of every source, for linking.
    pub async fn link_identities(&self) -> Result<Vec<LinkIdentity>, StoreError> {
        const SQL: &str = "select i.id, s.name, i.external_id, i.user_name, i.email, i.status \
             from identities i join sources s on s.id = i.source_id";
        type Row = (Uuid, String, String, String, Option<String>, String);
        let rows: Vec<Row> = on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, source, external_id, user_name, email, status)| LinkIdentity {
                    id: IdentityId(id),
                    source,
                    external_id,
                    user_name,
                    email,
                    deleted: status == "deleted",
                },
            )
            .collect())
    }

    /// Every account of every target, for linking.
    pub async fn link_accounts(&self) -> Result<Vec<LinkAccount>, StoreError> {
        // Reading one JSON member is spelt differently by the two dialects.
        const SQLITE: &str = "select id, target_id, account_key, \
             json_extract(attributes, '$.external_id') as external_id, user_name, email \
             from accounts";
        const POSTGRES: &str = "select id, target_id, account_key, \
             attributes ->> 'external_id' as external_id, user_name, email from accounts";
        type Row = (Uuid, Uuid, String, Option<String>, String, Option<String>);
        let rows: Vec<Row> = match &self.db {
            super::Db::Sqlite(pool) => sqlx::query_as(SQLITE).fetch_all(pool).await?,
            super::Db::Postgres(pool) => sqlx::query_as(POSTGRES).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(
                |(id, target_id, key, external_id, username, email)| LinkAccount {
                    id: AccountId(id),
                    target_id: TargetId(target_id),
                    key,
                    external_id: external_id.filter(|e| !e.trim().is_empty()),
                    username,
                    email,
                },
            )
            .collect())
    }

    /// Every stored link as (identity, account, method).
    pub async fn all_links(&self) -> Result<Vec<(IdentityId, AccountId, LinkMethod)>, StoreError> {
        const SQL: &str = "select identity_id, account_id, method from links";
        let rows: Vec<(Uuid, Uuid, String)> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|(i, a, m)| Ok((IdentityId(i), AccountId(a), m.parse()?)))
            .collect()
    }

    /// Stores links in batches, in one transaction; a pair already linked keeps its first
    /// link. Returns how many were new.
    #[tracing::instrument(skip_all, fields(links = links.len()))]
    pub async fn insert_links(
        &self,
        links: &[(IdentityId, AccountId, LinkMethod)],
    ) -> Result<u64, StoreError> {
        if links.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let mut added = 0;
        let mut tx = self.begin_write().await?;
        for chunk in links.chunks(LINK_BATCH) {
            let mut sql = String::from(
                "insert into links (id, identity_id, account_id, method, created_at) values ",
            );
            for i in 0..chunk.len() {
                let b = i * 5;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                ));
            }
            sql.push_str(" on conflict (identity_id, account_id) do nothing");
            added += on_tx!(&mut tx, |conn| {
                // Only placeholders are generated; every value is bound.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for (identity, account, method) in chunk {
                    q = q
                        .bind(LinkId::new().0)
                        .bind(identity.0)
                        .bind(account.0)
                        .bind(method.as_str())
                        .bind(now);
                }
                q.execute(conn).await.map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        Ok(added)
    }
}
