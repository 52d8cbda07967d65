//! Rules (schemes) in the store. Rules written in the configuration file are mirrored here
//! (`origin = config`, replaced on every pass so the store never disagrees with the file);
//! rules added through idbridge itself (`origin = store`) live only here. Every change to a
//! stored rule is audited in the same transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{NewAuditEntry, Store, StoreError, on_db, on_tx};
use crate::domain::Rule;

/// Where a stored rule came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOrigin {
    /// Mirrored from the configuration file; edit the file to change it.
    Config,
    /// Added through idbridge; kept only in the store.
    Store,
}

impl RuleOrigin {
    fn as_str(self) -> &'static str {
        match self {
            RuleOrigin::Config => "config",
            RuleOrigin::Store => "store",
        }
    }
}

/// A rule as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StoredRule {
    pub rule: Rule,
    pub origin: RuleOrigin,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    origin: String,
    definition: Json<Value>,
    updated_at: DateTime<Utc>,
}

impl Store {
    /// Every stored rule, by name.
    pub async fn stored_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        const SQL: &str = "select origin, definition, updated_at from rules order by name";
        let rows: Vec<RuleRow> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|r| {
                let rule: Rule = serde_json::from_value(r.definition.0).map_err(|e| {
                    StoreError::Corrupt(format!("a stored rule cannot be read: {e}"))
                })?;
                Ok(StoredRule {
                    rule,
                    origin: if r.origin == "config" {
                        RuleOrigin::Config
                    } else {
                        RuleOrigin::Store
                    },
                    updated_at: r.updated_at,
                })
            })
            .collect()
    }

    /// Stores `rule` (insert or replace by name) with its origin; audited as `actor`.
    /// A store rule may not take the name of a configured one, nor the reverse.
    pub async fn put_rule(
        &self,
        rule: &Rule,
        origin: RuleOrigin,
        actor: &str,
    ) -> Result<bool, StoreError> {
        const CURRENT: &str = "select origin, definition, updated_at from rules where name = $1";
        const UPSERT: &str = "insert into rules (id, name, enabled, mode, schedule, origin, \
             definition, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             on conflict (name) do update set enabled = excluded.enabled, mode = excluded.mode, \
             schedule = excluded.schedule, origin = excluded.origin, \
             definition = excluded.definition, updated_at = excluded.updated_at";
        let now = self.now();
        let definition = serde_json::to_value(rule)
            .map_err(|e| StoreError::Corrupt(format!("a rule cannot be stored: {e}")))?;
        let mut tx = self.begin_write().await?;
        let current: Option<RuleRow> = on_tx!(&mut tx, |conn| sqlx::query_as(CURRENT)
            .bind(&rule.name)
            .fetch_optional(&mut *conn)
            .await)?;
        if let Some(c) = &current {
            if c.origin != origin.as_str() {
                return Err(StoreError::Conflict(format!(
                    "rule `{}` already exists from the {}",
                    rule.name,
                    if c.origin == "config" {
                        "configuration file"
                    } else {
                        "store"
                    }
                )));
            }
            if c.definition.0 == definition {
                return Ok(false);
            }
        }
        on_tx!(&mut tx, |conn| sqlx::query(UPSERT)
            .bind(Uuid::now_v7())
            .bind(&rule.name)
            .bind(rule.enabled)
            .bind(rule.mode.as_str())
            .bind(&rule.schedule)
            .bind(origin.as_str())
            .bind(Json(&definition))
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|_| ()))?;
        self.append_audit(
            &mut tx,
            &NewAuditEntry {
                actor: actor.to_owned(),
                action: if current.is_some() {
                    "rule.update".into()
                } else {
                    "rule.create".into()
                },
                subject_kind: Some("rule".into()),
                subject_id: Some(rule.name.clone()),
                detail: serde_json::json!({
                    "origin": origin.as_str(),
                    "before": current.map(|c| c.definition.0),
                    "after": definition,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes the rule `name` of `origin`; false when there is none.
    pub async fn delete_rule(
        &self,
        name: &str,
        origin: RuleOrigin,
        actor: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "delete from rules where name = $1 and origin = $2";
        let mut tx = self.begin_write().await?;
        let gone = on_tx!(&mut tx, |conn| sqlx::query(SQL)
            .bind(name)
            .bind(origin.as_str())
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        if gone == 0 {
            return Ok(false);
        }
        self.append_audit(
            &mut tx,
            &NewAuditEntry {
                actor: actor.to_owned(),
                action: "rule.delete".into(),
                subject_kind: Some("rule".into()),
                subject_id: Some(name.to_owned()),
                detail: serde_json::json!({ "origin": origin.as_str() }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Makes the configured rules the store's `config` rules: new and changed ones are
    /// stored, configured rules no longer in the file are removed.
    pub async fn mirror_config_rules(&self, rules: &[Rule], actor: &str) -> Result<(), StoreError> {
        for rule in rules {
            self.put_rule(rule, RuleOrigin::Config, actor).await?;
        }
        for stored in self.stored_rules().await? {
            if stored.origin == RuleOrigin::Config
                && !rules.iter().any(|r| r.name == stored.rule.name)
            {
                self.delete_rule(&stored.rule.name, RuleOrigin::Config, actor)
                    .await?;
            }
        }
        Ok(())
    }
}
