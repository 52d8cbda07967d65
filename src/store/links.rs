//! Links between identities and accounts.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, on_db};
use crate::domain::{AccountId, IdentityId, Link, LinkId, LinkMethod};

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
