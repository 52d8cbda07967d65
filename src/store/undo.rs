//! What undo reads beyond a run's own actions: the state idbridge last saw each account in
//! through its own executor (the post-image of the account's latest confirmed action of an
//! enforced run), which is newer than the last inventory when idbridge has written since.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, on_db};
use crate::domain::AccountId;

/// The post-image of an account's latest confirmed action of an enforced run.
#[derive(Clone, Debug, PartialEq)]
pub struct LatestImage {
    pub account_id: AccountId,
    /// The action's kind (`delete`: the account is gone).
    pub kind: String,
    pub finished_at: DateTime<Utc>,
    /// `{"username","active","directory","groups"}` for a target write.
    pub post_image: Option<Value>,
}

#[derive(sqlx::FromRow)]
struct LatestRow {
    account_id: Uuid,
    kind: String,
    finished_at: Option<DateTime<Utc>>,
    post_image: Option<Json<Value>>,
}

/// One row per account: its latest confirmed action of an enforced run. Notices carry no
/// account image and are left out.
const LATEST: &str = "\
    with done as ( \
        select a.account_id, a.kind, a.finished_at, a.post_image, \
               row_number() over (partition by a.account_id \
                                  order by a.finished_at desc, r.created_at desc, a.seq desc) \
                 as n \
        from actions a join runs r on r.id = a.run_id \
        where r.mode = 'enforce' and a.phase = 'confirmed' and a.kind <> 'notify' \
          and a.finished_at is not null \
    ) \
    select account_id, kind, finished_at, post_image from done where n = 1 \
    order by account_id";

impl Store {
    /// Each account's latest confirmed write (or found-done check) of an enforced run, in
    /// account id order. One query.
    #[tracing::instrument(skip_all)]
    pub async fn latest_account_images(&self) -> Result<Vec<LatestImage>, StoreError> {
        let rows: Vec<LatestRow> = on_db!(&self.db, |pool| sqlx::query_as(LATEST)
            .fetch_all(pool)
            .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(LatestImage {
                    account_id: AccountId(r.account_id),
                    kind: r.kind,
                    finished_at: r.finished_at?,
                    post_image: r.post_image.map(|j| j.0),
                })
            })
            .collect())
    }
}
