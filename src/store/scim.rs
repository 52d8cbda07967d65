//! SCIM Users and Groups of push sources. Each write runs in one transaction that also keeps
//! the mirrored identity (a SCIM User is an identity of its source with the same id; `active`
//! false is a leaver signal, DELETE marks it deleted), rewrites the searchable values and
//! appends an audit entry. Versions are optimistic: a write names the version it read.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use uuid::Uuid;

use super::scim_query::{self, Dialect, Param, Sql, bind_params};
use super::{Db, NewAuditEntry, Store, StoreError, Tx, on_db, on_tx};
use crate::domain::{IdentityStatus, SourceId, normalise_key};
use crate::scim::ScimError;
use crate::scim::ast::Filter;
use crate::scim::index;
use crate::scim::schema::{GROUP_TYPE, Resolved, ResourceTypeDef, USER_TYPE};

/// Users or Groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimKind {
    User,
    Group,
}

impl ScimKind {
    /// The resource type served for this kind.
    pub fn resource_type(self) -> &'static ResourceTypeDef {
        match self {
            Self::User => &USER_TYPE,
            Self::Group => &GROUP_TYPE,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
        }
    }
}

/// Whether a member is a User or a Group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    /// The SCIM spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's SCIM id.
    pub value: String,
    pub kind: MemberKind,
    /// The name the client gave for it, if any.
    pub display: Option<String>,
}

/// A group a user belongs to, for the User's read-only `groups` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: Uuid,
    pub display_name: String,
}

/// A stored SCIM resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimRecord {
    pub id: Uuid,
    pub kind: ScimKind,
    /// The canonical document, without `id`, `meta` and (for groups) `members`.
    pub document: Value,
    /// Group members, when asked for.
    pub members: Option<Vec<Member>>,
    /// A user's groups, when asked for.
    pub groups: Option<Vec<GroupRef>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a list or search asks for.
#[derive(Debug, Clone, Copy)]
pub struct ScimQuery<'a> {
    /// A filter already checked with `scim::eval::validate`.
    pub filter: Option<&'a Filter>,
    /// Sort by this attribute, descending when true.
    pub sort: Option<(Resolved, bool)>,
    /// Resources to skip (`startIndex - 1`).
    pub offset: i64,
    /// Most resources to return; 0 returns only the total.
    pub limit: i64,
    pub with_members: bool,
    pub with_groups: bool,
}

#[derive(sqlx::FromRow)]
struct ResourceRow {
    id: Uuid,
    document: Json<Value>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A resource row of a page, with the number of rows the whole query matches.
#[derive(sqlx::FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    resource: ResourceRow,
    total: i64,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    group_id: Uuid,
    member_id: String,
    member_type: String,
    display: Option<String>,
}

#[derive(sqlx::FromRow)]
struct GroupRefRow {
    member_id: String,
    id: Uuid,
    display_name: String,
}

impl From<MemberRow> for Member {
    fn from(r: MemberRow) -> Self {
        Member {
            kind: if r.member_type == "Group" {
                MemberKind::Group
            } else {
                MemberKind::User
            },
            value: r.member_id,
            display: r.display,
        }
    }
}

impl ResourceRow {
    fn into_record(self, kind: ScimKind) -> ScimRecord {
        ScimRecord {
            id: self.id,
            kind,
            document: self.document.0,
            members: None,
            groups: None,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The columns a User or Group row keeps beside its document.
struct Keys {
    /// `user_name` or `display_name`.
    name: String,
    external_id: Option<String>,
    active: bool,
}

fn str_field<'a>(doc: &'a Value, name: &str) -> Option<&'a str> {
    doc.as_object()
        .and_then(|o| index::get_ci(o, name))
        .and_then(Value::as_str)
}

fn keys(kind: ScimKind, doc: &Value) -> Result<Keys, StoreError> {
    let name_attr = match kind {
        ScimKind::User => "userName",
        ScimKind::Group => "displayName",
    };
    let name = str_field(doc, name_attr)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            StoreError::Invalid(ScimError::invalid_value(format!("{name_attr} is required")))
        })?
        .to_owned();
    let active = doc
        .as_object()
        .and_then(|o| index::get_ci(o, "active"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(Keys {
        name,
        external_id: str_field(doc, "externalId").map(str::to_owned),
        active,
    })
}

/// A member as the document names it: id, optional type and display name.
type RawMember = (String, Option<String>, Option<String>);

/// Splits `members` off a group document.
fn split_members(mut doc: Value) -> (Value, Vec<RawMember>) {
    let mut members = Vec::new();
    if let Some(obj) = doc.as_object_mut() {
        let key = obj
            .keys()
            .find(|k| k.eq_ignore_ascii_case("members"))
            .cloned();
        if let Some(Value::Array(list)) = key.and_then(|k| obj.remove(&k)) {
            for m in list {
                let Some(m) = m.as_object() else { continue };
                let Some(value) = index::get_ci(m, "value").and_then(Value::as_str) else {
                    continue;
                };
                let kind = index::get_ci(m, "type")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let display = index::get_ci(m, "display")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                members.push((value.to_owned(), kind, display));
            }
        }
    }
    (doc, members)
}

/// The rendered form the index reads: the document plus `id` and `meta`.
fn indexable(
    kind: ScimKind,
    id: Uuid,
    doc: &Value,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
) -> Value {
    let mut v = doc.clone();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("id".into(), Value::from(id.to_string()));
        obj.insert(
            "meta".into(),
            json!({
                "resourceType": kind.resource_type().name,
                "created": created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "lastModified": modified.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            }),
        );
    }
    v
}

/// The identity fields a SCIM User carries.
struct Mirror {
    email: Option<String>,
    display_name: Option<String>,
}

fn mirror(doc: &Value) -> Mirror {
    let emails = doc
        .as_object()
        .and_then(|o| index::get_ci(o, "emails"))
        .and_then(Value::as_array);
    let email = emails.and_then(|list| {
        let value = |e: &Value| e.get("value").and_then(Value::as_str).map(str::to_owned);
        list.iter()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
            .and_then(value)
            .or_else(|| list.iter().find_map(value))
    });
    let name = doc.get("name");
    let display_name = str_field(doc, "displayName")
        .map(str::to_owned)
        .or_else(|| {
            name.and_then(|n| n.get("formatted"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| {
            let given = name
                .and_then(|n| n.get("givenName"))
                .and_then(Value::as_str);
            let family = name
                .and_then(|n| n.get("familyName"))
                .and_then(Value::as_str);
            match (given, family) {
                (Some(g), Some(f)) => Some(format!("{g} {f}")),
                (g, f) => g.or(f).map(str::to_owned),
            }
        });
    Mirror {
        email,
        display_name,
    }
}

impl Store {
    fn dialect(&self) -> Dialect {
        match self.db {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The rows of a built query.
    async fn rows<T>(&self, sql: &Sql) -> Result<Vec<T>, StoreError>
    where
        T: Send + Unpin,
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        Ok(on_db!(&self.db, |pool| {
            bind_params!(
                sqlx::query_as(AssertSqlSafe(sql.text.as_str())),
                &sql.params
            )
            .fetch_all(pool)
            .await
        })?)
    }

    /// One resource of `source`, if it exists.
    pub async fn scim_get(
        &self,
        kind: ScimKind,
        source: SourceId,
        id: Uuid,
        with_members: bool,
        with_groups: bool,
    ) -> Result<Option<ScimRecord>, StoreError> {
        const USERS: &str = "select id, document, version, created_at, updated_at from scim_users \
             where id = $1 and source_id = $2";
        const GROUPS: &str = "select id, document, version, created_at, updated_at from scim_groups \
             where id = $1 and source_id = $2";
        let sql = if kind == ScimKind::User {
            USERS
        } else {
            GROUPS
        };
        let row: Option<ResourceRow> = on_db!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(id)
                .bind(source.0)
                .fetch_optional(pool)
                .await
        })?;
        let Some(row) = row else { return Ok(None) };
        let mut records = vec![row.into_record(kind)];
        self.attach(&mut records, with_members, with_groups).await?;
        Ok(records.pop())
    }

    /// Loads the groups of user records (their read-only `groups` attribute).
    pub async fn attach_groups(&self, records: &mut [ScimRecord]) -> Result<(), StoreError> {
        self.attach(records, false, true).await
    }

    /// Loads members and groups for a page of records.
    async fn attach(
        &self,
        records: &mut [ScimRecord],
        with_members: bool,
        with_groups: bool,
    ) -> Result<(), StoreError> {
        let groups: Vec<Uuid> = records
            .iter()
            .filter(|r| r.kind == ScimKind::Group)
            .map(|r| r.id)
            .collect();
        if with_members && !groups.is_empty() {
            let mut by_group: HashMap<Uuid, Vec<Member>> = HashMap::new();
            for chunk in groups.chunks(500) {
                let mut sql = Sql::new(self.dialect());
                sql.push("select group_id, member_id, member_type, display from scim_members where group_id in (");
                sql.bind_list(chunk.iter().map(|id| Param::Uuid(*id)));
                sql.push(") order by group_id, member_id");
                let rows: Vec<MemberRow> = self.rows(&sql).await?;
                for r in rows {
                    by_group
                        .entry(r.group_id)
                        .or_default()
                        .push(Member::from(r));
                }
            }
            for rec in records.iter_mut().filter(|r| r.kind == ScimKind::Group) {
                rec.members = Some(by_group.remove(&rec.id).unwrap_or_default());
            }
        }
        let users: Vec<Uuid> = records
            .iter()
            .filter(|r| r.kind == ScimKind::User)
            .map(|r| r.id)
            .collect();
        if with_groups && !users.is_empty() {
            let mut by_user: HashMap<String, Vec<GroupRef>> = HashMap::new();
            for chunk in users.chunks(500) {
                let mut sql = Sql::new(self.dialect());
                sql.push(
                    "select m.member_id, g.id, g.display_name from scim_members m \
                          join scim_groups g on g.id = m.group_id where m.member_id in (",
                );
                sql.bind_list(chunk.iter().map(|id| Param::Text(id.to_string())));
                sql.push(") order by g.display_name_lower, g.id");
                let rows: Vec<GroupRefRow> = self.rows(&sql).await?;
                for r in rows {
                    by_user.entry(r.member_id).or_default().push(GroupRef {
                        id: r.id,
                        display_name: r.display_name,
                    });
                }
            }
            for rec in records.iter_mut().filter(|r| r.kind == ScimKind::User) {
                rec.groups = Some(by_user.remove(&rec.id.to_string()).unwrap_or_default());
            }
        }
        Ok(())
    }

    /// A page of resources matching `query`, and how many match in all.
    pub async fn scim_list(
        &self,
        kind: ScimKind,
        source: SourceId,
        query: &ScimQuery<'_>,
    ) -> Result<(i64, Vec<ScimRecord>), StoreError> {
        let rt = kind.resource_type();
        // With a filter on SQLite, `+r.source_id` keeps the planner from walking the source's
        // index and testing every row: the filter's `r.id in (…)` drives through the primary
        // key instead (without statistics SQLite otherwise prefers the source index).
        let filtered_sqlite = query.filter.is_some() && self.dialect() == Dialect::Sqlite;
        let table: &'static str = match (kind, filtered_sqlite) {
            (ScimKind::User, false) => " from scim_users r where r.source_id = ",
            (ScimKind::User, true) => " from scim_users r where +r.source_id = ",
            (ScimKind::Group, false) => " from scim_groups r where r.source_id = ",
            (ScimKind::Group, true) => " from scim_groups r where +r.source_id = ",
        };
        let build = |head: &'static str| -> Result<Sql, StoreError> {
            let mut sql = Sql::new(self.dialect());
            sql.push(head).push(table).bind(Param::Uuid(source.0));
            if let Some(filter) = query.filter {
                sql.push(" and ");
                scim_query::condition(&mut sql, rt, source.0, filter)
                    .map_err(StoreError::Invalid)?;
            }
            Ok(sql)
        };
        let count = || async {
            let count_sql = build("select count(*)")?;
            let total: i64 = on_db!(&self.db, |pool| {
                bind_params!(
                    sqlx::query_scalar(AssertSqlSafe(count_sql.text.as_str())),
                    &count_sql.params
                )
                .fetch_one(pool)
                .await
            })?;
            Ok::<i64, StoreError>(total)
        };
        if query.limit <= 0 {
            return Ok((count().await?, Vec::new()));
        }
        // The page carries the total (`count(*) over ()`), so one query answers the common
        // case; only an empty page past the start needs a separate count.
        let mut sql = build(
            "select r.id, r.document, r.version, r.created_at, r.updated_at, \
             count(*) over () as total",
        )?;
        sql.push(" order by ");
        if let Some((resolved, descending)) = &query.sort {
            scim_query::sort_key(&mut sql, rt, resolved, *descending)
                .map_err(StoreError::Invalid)?;
        }
        sql.push("r.created_at, r.id limit ");
        sql.bind(Param::Int(query.limit))
            .push(" offset ")
            .bind(Param::Int(query.offset));
        let rows: Vec<PageRow> = self.rows(&sql).await?;
        let total = match rows.first() {
            Some(first) => first.total,
            None if query.offset == 0 => 0,
            None => count().await?,
        };
        let rows: Vec<ResourceRow> = rows.into_iter().map(|r| r.resource).collect();
        let mut records: Vec<ScimRecord> = rows.into_iter().map(|r| r.into_record(kind)).collect();
        self.attach(&mut records, query.with_members, query.with_groups)
            .await?;
        Ok((total, records))
    }

    /// Creates a resource from a canonical document (for groups, with `members`).
    #[tracing::instrument(skip_all, fields(scim.kind = kind.noun(), source.id = %source))]
    pub async fn scim_create(
        &self,
        kind: ScimKind,
        source: SourceId,
        document: Value,
        actor: &str,
    ) -> Result<ScimRecord, StoreError> {
        let id = Uuid::now_v7();
        let now = self.now();
        let (doc, members) = match kind {
            ScimKind::Group => split_members(document),
            ScimKind::User => (document, Vec::new()),
        };
        let k = keys(kind, &doc)?;
        let mut tx = self.begin_write().await?;
        self.check_unique(&mut tx, kind, source, None, &k).await?;
        let (members, ignored) = self.resolve_members(&mut tx, source, members).await?;
        const INSERT_USER: &str = "insert into scim_users (id, source_id, user_name, user_name_lower, \
             external_id, active, document, version, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)";
        const INSERT_GROUP: &str = "insert into scim_groups (id, source_id, display_name, \
             display_name_lower, external_id, document, version, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, 1, $7, $7)";
        match kind {
            ScimKind::User => {
                on_tx!(&mut tx, |conn| {
                    sqlx::query(INSERT_USER)
                        .bind(id)
                        .bind(source.0)
                        .bind(&k.name)
                        .bind(normalise_key(&k.name))
                        .bind(&k.external_id)
                        .bind(k.active)
                        .bind(Json(&doc))
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map(|_| ())
                })?;
                self.insert_identity(&mut tx, source, id, &k, &doc, now)
                    .await?;
            }
            ScimKind::Group => {
                on_tx!(&mut tx, |conn| {
                    sqlx::query(INSERT_GROUP)
                        .bind(id)
                        .bind(source.0)
                        .bind(&k.name)
                        .bind(normalise_key(&k.name))
                        .bind(&k.external_id)
                        .bind(Json(&doc))
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map(|_| ())
                })?;
                self.write_members(&mut tx, id, &[], &members).await?;
            }
        }
        self.write_values(
            &mut tx,
            kind,
            source,
            id,
            None,
            &indexable(kind, id, &doc, now, now),
        )
        .await?;
        let mut detail = json!({ "source_id": source.0, "after": doc });
        if kind == ScimKind::Group {
            detail["members_added"] = member_ids(&members);
            if !ignored.is_empty() {
                detail["members_ignored"] =
                    capped_ids(&ignored.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
        self.append_audit(&mut tx, &audit(actor, kind, "create", id, detail))
            .await?;
        tx.commit().await?;
        Ok(ScimRecord {
            id,
            kind,
            document: doc,
            members: (kind == ScimKind::Group).then_some(members),
            groups: (kind == ScimKind::User).then(Vec::new),
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// Replaces a resource's document (PUT, or the result of a PATCH). `if_version`, when
    /// given, must be the stored version. Writing an identical document changes nothing.
    #[tracing::instrument(skip_all, fields(scim.kind = kind.noun(), scim.id = %id))]
    #[expect(
        clippy::too_many_arguments,
        reason = "resource, precondition, document and audit facts"
    )]
    pub async fn scim_replace(
        &self,
        kind: ScimKind,
        source: SourceId,
        id: Uuid,
        if_version: Option<i64>,
        document: Value,
        actor: &str,
        verb: &str,
    ) -> Result<ScimRecord, StoreError> {
        let now = self.now();
        let (doc, new_members) = match kind {
            ScimKind::Group => split_members(document),
            ScimKind::User => (document, Vec::new()),
        };
        let k = keys(kind, &doc)?;
        let mut tx = self.begin_write().await?;
        let current = self.current(&mut tx, kind, source, id).await?;
        if if_version.is_some_and(|v| v != current.version) {
            return Err(StoreError::VersionMismatch);
        }
        let old_members = if kind == ScimKind::Group {
            self.members_of(&mut tx, id).await?
        } else {
            Vec::new()
        };
        let (members, ignored) = if kind == ScimKind::Group {
            self.resolve_members(&mut tx, source, new_members).await?
        } else {
            (Vec::new(), Vec::new())
        };
        let members_same = {
            let a: HashSet<_> = old_members
                .iter()
                .map(|m| (&m.value, m.kind, &m.display))
                .collect();
            let b: HashSet<_> = members
                .iter()
                .map(|m| (&m.value, m.kind, &m.display))
                .collect();
            a == b
        };
        if current.document == doc && members_same {
            let mut record = current;
            record.members = (kind == ScimKind::Group).then_some(old_members);
            return Ok(record);
        }
        // Uniqueness can only be lost if the name or externalId changes.
        let before = keys(kind, &current.document)?;
        if normalise_key(&before.name) != normalise_key(&k.name)
            || before.external_id != k.external_id
        {
            self.check_unique(&mut tx, kind, source, Some(id), &k)
                .await?;
        }
        const UPDATE_USER: &str = "update scim_users set user_name = $1, user_name_lower = $2, \
             external_id = $3, active = $4, document = $5, version = version + 1, updated_at = $6 \
             where id = $7 and version = $8";
        const UPDATE_GROUP: &str = "update scim_groups set display_name = $1, display_name_lower = $2, \
             external_id = $3, document = $5, version = version + 1, updated_at = $6 \
             where id = $7 and version = $8 and $4 = $4";
        let sql = if kind == ScimKind::User {
            UPDATE_USER
        } else {
            UPDATE_GROUP
        };
        let updated = on_tx!(&mut tx, |conn| {
            sqlx::query(sql)
                .bind(&k.name)
                .bind(normalise_key(&k.name))
                .bind(&k.external_id)
                .bind(k.active)
                .bind(Json(&doc))
                .bind(now)
                .bind(id)
                .bind(current.version)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        if updated == 0 {
            return Err(StoreError::VersionMismatch);
        }
        let mut detail = json!({ "source_id": source.0, "before": current.document, "after": doc });
        match kind {
            ScimKind::User => self.update_identity(&mut tx, id, &k, &doc, now).await?,
            ScimKind::Group => {
                let (added, removed) = self
                    .write_members(&mut tx, id, &old_members, &members)
                    .await?;
                detail["members_added"] = added;
                detail["members_removed"] = removed;
                if !ignored.is_empty() {
                    let ids: Vec<&str> = ignored.iter().map(String::as_str).collect();
                    detail["members_ignored"] = capped_ids(&ids);
                }
            }
        }
        let before = indexable(
            kind,
            id,
            &current.document,
            current.created_at,
            current.updated_at,
        );
        let after = indexable(kind, id, &doc, current.created_at, now);
        self.write_values(&mut tx, kind, source, id, Some(&before), &after)
            .await?;
        self.append_audit(&mut tx, &audit(actor, kind, verb, id, detail))
            .await?;
        tx.commit().await?;
        Ok(ScimRecord {
            id,
            kind,
            document: doc,
            members: (kind == ScimKind::Group).then_some(members),
            groups: None,
            version: current.version + 1,
            created_at: current.created_at,
            updated_at: now,
        })
    }

    /// Deletes a resource. A deleted User's identity stays, marked `deleted`: a leaver signal.
    #[tracing::instrument(skip_all, fields(scim.kind = kind.noun(), scim.id = %id))]
    pub async fn scim_delete(
        &self,
        kind: ScimKind,
        source: SourceId,
        id: Uuid,
        if_version: Option<i64>,
        actor: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let current = self.current(&mut tx, kind, source, id).await?;
        if if_version.is_some_and(|v| v != current.version) {
            return Err(StoreError::VersionMismatch);
        }
        const UNLINK: &str = "delete from scim_members where member_id = $1";
        const VALUES: &str = "delete from scim_values where resource_id = $1";
        const USER: &str = "delete from scim_users where id = $1";
        const GROUP: &str = "delete from scim_groups where id = $1";
        const IDENTITY: &str = "update identities set status = 'deleted', \
             status_changed_at = case when status = 'deleted' then status_changed_at else $2 end, \
             version = version + 1, updated_at = $2, last_seen_at = $2 where id = $1";
        let id_text = id.to_string();
        on_tx!(&mut tx, |conn| {
            sqlx::query(UNLINK)
                .bind(&id_text)
                .execute(&mut *conn)
                .await?;
            sqlx::query(VALUES).bind(id).execute(&mut *conn).await?;
            match kind {
                ScimKind::User => {
                    sqlx::query(USER).bind(id).execute(&mut *conn).await?;
                    sqlx::query(IDENTITY)
                        .bind(id)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                }
                ScimKind::Group => {
                    sqlx::query(GROUP).bind(id).execute(&mut *conn).await?;
                }
            }
            Ok::<_, sqlx::Error>(())
        })?;
        let detail = json!({ "source_id": source.0, "before": current.document });
        self.append_audit(&mut tx, &audit(actor, kind, "delete", id, detail))
            .await?;
        tx.commit().await
    }

    async fn current(
        &self,
        tx: &mut Tx,
        kind: ScimKind,
        source: SourceId,
        id: Uuid,
    ) -> Result<ScimRecord, StoreError> {
        const USERS: &str = "select id, document, version, created_at, updated_at from scim_users \
             where id = $1 and source_id = $2";
        const GROUPS: &str = "select id, document, version, created_at, updated_at from scim_groups \
             where id = $1 and source_id = $2";
        let sql = if kind == ScimKind::User {
            USERS
        } else {
            GROUPS
        };
        let row: Option<ResourceRow> = on_tx!(tx, |conn| {
            sqlx::query_as(sql)
                .bind(id)
                .bind(source.0)
                .fetch_optional(&mut *conn)
                .await
        })?;
        row.map(|r| r.into_record(kind))
            .ok_or_else(|| StoreError::NotFound(format!("{} {id}", kind.noun())))
    }

    async fn members_of(&self, tx: &mut Tx, group: Uuid) -> Result<Vec<Member>, StoreError> {
        const SQL: &str = "select group_id, member_id, member_type, display from scim_members \
             where group_id = $1 order by member_id";
        let rows: Vec<MemberRow> = on_tx!(tx, |conn| sqlx::query_as(SQL)
            .bind(group)
            .fetch_all(&mut *conn)
            .await)?;
        Ok(rows.into_iter().map(Member::from).collect())
    }

    /// Checks userName/displayName and externalId are free in the source.
    async fn check_unique(
        &self,
        tx: &mut Tx,
        kind: ScimKind,
        source: SourceId,
        except: Option<Uuid>,
        k: &Keys,
    ) -> Result<(), StoreError> {
        const USER_NAME: &str =
            "select id from scim_users where source_id = $1 and user_name_lower = $2";
        const GROUP_NAME: &str =
            "select id from scim_groups where source_id = $1 and display_name_lower = $2";
        const USER_EXT: &str =
            "select id from scim_users where source_id = $1 and external_id = $2";
        const GROUP_EXT: &str =
            "select id from scim_groups where source_id = $1 and external_id = $2";
        let (by_name, by_ext, name_attr) = match kind {
            ScimKind::User => (USER_NAME, USER_EXT, "userName"),
            ScimKind::Group => (GROUP_NAME, GROUP_EXT, "displayName"),
        };
        let lower = normalise_key(&k.name);
        let taken: Option<Uuid> = on_tx!(tx, |conn| {
            sqlx::query_scalar(by_name)
                .bind(source.0)
                .bind(&lower)
                .fetch_optional(&mut *conn)
                .await
        })?;
        if taken.is_some_and(|t| Some(t) != except) {
            return Err(StoreError::Conflict(format!(
                "{name_attr} `{}` is already in use",
                k.name
            )));
        }
        if let Some(ext) = &k.external_id {
            let taken: Option<Uuid> = on_tx!(tx, |conn| {
                sqlx::query_scalar(by_ext)
                    .bind(source.0)
                    .bind(ext)
                    .fetch_optional(&mut *conn)
                    .await
            })?;
            if taken.is_some_and(|t| Some(t) != except) {
                return Err(StoreError::Conflict(format!(
                    "externalId `{ext}` is already in use"
                )));
            }
        }
        Ok(())
    }

    /// Keeps the members that are Users or Groups of the source, with their actual type, and
    /// returns the values that are not. Ids are assigned by idbridge, so an unknown one can
    /// never become valid later: it is dropped (and reported in the audit entry) rather than
    /// failing the whole request, as IdPs and compliance suites expect.
    async fn resolve_members(
        &self,
        tx: &mut Tx,
        source: SourceId,
        members: Vec<RawMember>,
    ) -> Result<(Vec<Member>, Vec<String>), StoreError> {
        let mut ignored = Vec::new();
        let mut wanted: BTreeMap<Uuid, Option<String>> = BTreeMap::new();
        for (value, _kind, display) in members {
            match Uuid::parse_str(value.trim()) {
                Ok(id) => {
                    wanted.insert(id, display);
                }
                Err(_) => ignored.push(short(&value)),
            }
        }
        let ids: Vec<Uuid> = wanted.keys().copied().collect();
        let mut users = HashSet::new();
        let mut groups = HashSet::new();
        for chunk in ids.chunks(500) {
            for (is_users, found) in [(true, &mut users), (false, &mut groups)] {
                // Looked up by id alone (the primary key) and checked against the source here:
                // with `source_id = …` in the query SQLite would walk the source's rows.
                let mut sql = Sql::new(self.dialect());
                sql.push(if is_users {
                    "select id, source_id from scim_users where id in ("
                } else {
                    "select id, source_id from scim_groups where id in ("
                });
                sql.bind_list(chunk.iter().map(|id| Param::Uuid(*id)));
                sql.push(")");
                let rows: Vec<(Uuid, Uuid)> = tx_rows(tx, &sql).await?;
                let rows = rows
                    .into_iter()
                    .filter(|(_, s)| *s == source.0)
                    .map(|(id, _)| id);
                found.extend(rows);
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        for (id, display) in wanted {
            let kind = if users.contains(&id) {
                MemberKind::User
            } else if groups.contains(&id) {
                MemberKind::Group
            } else {
                ignored.push(id.to_string());
                continue;
            };
            out.push(Member {
                value: id.to_string(),
                kind,
                display,
            });
        }
        if !ignored.is_empty() {
            tracing::warn!(
                source.id = %source,
                members.ignored = ignored.len(),
                "ignored group members that are not Users or Groups of this source"
            );
        }
        Ok((out, ignored))
    }

    /// Brings a group's member rows from `old` to `new`; returns the ids added and removed.
    async fn write_members(
        &self,
        tx: &mut Tx,
        group: Uuid,
        old: &[Member],
        new: &[Member],
    ) -> Result<(Value, Value), StoreError> {
        let old_by_id: HashMap<&str, &Member> = old.iter().map(|m| (m.value.as_str(), m)).collect();
        let new_ids: HashSet<&str> = new.iter().map(|m| m.value.as_str()).collect();
        let removed: Vec<&str> = old
            .iter()
            .map(|m| m.value.as_str())
            .filter(|v| !new_ids.contains(v))
            .collect();
        let changed: Vec<&Member> = new
            .iter()
            .filter(|m| old_by_id.get(m.value.as_str()) != Some(m))
            .collect();
        let added: Vec<&str> = new
            .iter()
            .map(|m| m.value.as_str())
            .filter(|v| !old_by_id.contains_key(v))
            .collect();
        for chunk in removed.chunks(500) {
            let mut sql = Sql::new(self.dialect());
            sql.push("delete from scim_members where group_id = ")
                .bind(Param::Uuid(group));
            sql.push(" and member_id in (");
            sql.bind_list(chunk.iter().map(|id| Param::Text((*id).to_owned())));
            sql.push(")");
            execute(tx, &sql).await?;
        }
        for chunk in changed.chunks(200) {
            let mut sql = Sql::new(self.dialect());
            sql.push(
                "insert into scim_members (group_id, member_id, member_type, display, \
                 display_lower) values ",
            );
            for (i, m) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Param::Uuid(group))
                    .push(", ")
                    .bind(Param::Text(m.value.clone()));
                sql.push(", ")
                    .bind(Param::Text(m.kind.as_str().to_owned()))
                    .push(", ");
                sql.bind(Param::OptText(m.display.clone())).push(", ");
                sql.bind(Param::OptText(m.display.as_deref().map(str::to_lowercase)));
                sql.push(")");
            }
            sql.push(
                " on conflict (group_id, member_id) do update set member_type = \
                 excluded.member_type, display = excluded.display, \
                 display_lower = excluded.display_lower",
            );
            execute(tx, &sql).await?;
        }
        Ok((capped_ids(&added), capped_ids(&removed)))
    }

    /// Brings the searchable values of a resource from `before` (a rendered form, `None` for a
    /// new resource) to `after`, touching only the rows that change: deactivating a user
    /// rewrites `active` and `meta.lastModified`, not every value.
    async fn write_values(
        &self,
        tx: &mut Tx,
        kind: ScimKind,
        source: SourceId,
        id: Uuid,
        before: Option<&Value>,
        after: &Value,
    ) -> Result<(), StoreError> {
        let rt = kind.resource_type();
        let key = |v: &index::IndexedValue| (v.key.clone(), v.elem);
        let old: HashMap<(String, i64), index::IndexedValue> = before
            .map(|b| {
                index::values(rt, b)
                    .into_iter()
                    .map(|v| (key(&v), v))
                    .collect()
            })
            .unwrap_or_default();
        let new = index::values(rt, after);
        let new_keys: HashMap<(String, i64), &index::IndexedValue> =
            new.iter().map(|v| (key(v), v)).collect();
        let stale: Vec<&(String, i64)> = old
            .iter()
            .filter(|(k, v)| new_keys.get(*k).copied() != Some(*v))
            .map(|(k, _)| k)
            .collect();
        for chunk in stale.chunks(200) {
            let mut sql = Sql::new(self.dialect());
            sql.push("delete from scim_values where resource_id = ")
                .bind(Param::Uuid(id));
            sql.push(" and (attr, elem) in (values ");
            for (i, (attr, elem)) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Param::Text(attr.clone()))
                    .push(", ")
                    .bind(Param::Int(*elem));
                sql.push(")");
            }
            sql.push(")");
            execute(tx, &sql).await?;
        }
        let fresh: Vec<&index::IndexedValue> = new
            .iter()
            .filter(|v| old.get(&key(v)) != Some(*v))
            .collect();
        for chunk in fresh.chunks(200) {
            let mut sql = Sql::new(self.dialect());
            sql.push(
                "insert into scim_values (resource_id, source_id, attr, elem, value_text, \
                      value_lower, value_time, value_bool) values ",
            );
            for (i, v) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Param::Uuid(id))
                    .push(", ")
                    .bind(Param::Uuid(source.0))
                    .push(", ");
                sql.bind(Param::Text(v.key.clone()))
                    .push(", ")
                    .bind(Param::Int(v.elem))
                    .push(", ");
                sql.bind(Param::OptText(v.text.clone())).push(", ");
                sql.bind(Param::OptText(v.lower.clone())).push(", ");
                sql.bind(Param::OptTime(v.time))
                    .push(", ")
                    .bind(Param::OptBool(v.boolean));
                sql.push(")");
            }
            execute(tx, &sql).await?;
        }
        Ok(())
    }

    async fn insert_identity(
        &self,
        tx: &mut Tx,
        source: SourceId,
        id: Uuid,
        k: &Keys,
        doc: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "insert into identities (id, source_id, external_id, user_name, \
             user_name_lower, email, email_lower, display_name, status, status_changed_at, \
             attributes, first_seen_at, last_seen_at, version, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $10, 1, $10)";
        let m = mirror(doc);
        on_tx!(tx, |conn| {
            sqlx::query(SQL)
                .bind(id)
                .bind(source.0)
                .bind(id.to_string())
                .bind(&k.name)
                .bind(normalise_key(&k.name))
                .bind(&m.email)
                .bind(m.email.as_deref().map(normalise_key))
                .bind(&m.display_name)
                .bind(status(k.active).as_str())
                .bind(now)
                .bind(Json(doc))
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    async fn update_identity(
        &self,
        tx: &mut Tx,
        id: Uuid,
        k: &Keys,
        doc: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "update identities set user_name = $2, user_name_lower = $3, email = $4, \
             email_lower = $5, display_name = $6, \
             status_changed_at = case when status = $7 then status_changed_at else $8 end, \
             status = $7, attributes = $9, last_seen_at = $8, version = version + 1, updated_at = $8 \
             where id = $1";
        let m = mirror(doc);
        let new_status = status(k.active);
        on_tx!(tx, |conn| {
            sqlx::query(SQL)
                .bind(id)
                .bind(&k.name)
                .bind(normalise_key(&k.name))
                .bind(&m.email)
                .bind(m.email.as_deref().map(normalise_key))
                .bind(&m.display_name)
                .bind(new_status.as_str())
                .bind(now)
                .bind(Json(doc))
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}

/// Runs a built statement inside a transaction.
async fn execute(tx: &mut Tx, sql: &Sql) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        bind_params!(sqlx::query(AssertSqlSafe(sql.text.as_str())), &sql.params)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// The rows of a built query, inside a transaction.
async fn tx_rows<T>(tx: &mut Tx, sql: &Sql) -> Result<Vec<T>, StoreError>
where
    T: Send + Unpin,
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    Ok(on_tx!(tx, |conn| {
        bind_params!(
            sqlx::query_as(AssertSqlSafe(sql.text.as_str())),
            &sql.params
        )
        .fetch_all(&mut *conn)
        .await
    })?)
}

/// SCIM `active` as an identity status: false is a positive leaver signal.
fn status(active: bool) -> IdentityStatus {
    if active {
        IdentityStatus::Active
    } else {
        IdentityStatus::Deprovisioned
    }
}

fn audit(actor: &str, kind: ScimKind, verb: &str, id: Uuid, detail: Value) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.to_owned(),
        action: format!("scim.{}.{verb}", kind.noun()),
        subject_kind: Some(format!("scim_{}", kind.noun())),
        subject_id: Some(id.to_string()),
        detail,
    }
}

/// At most 1000 ids, so that a huge membership change keeps a bounded audit entry.
fn capped_ids(ids: &[&str]) -> Value {
    let mut obj = Map::new();
    obj.insert("count".into(), Value::from(ids.len()));
    obj.insert(
        "ids".into(),
        ids.iter().take(1000).map(|s| Value::from(*s)).collect(),
    );
    Value::Object(obj)
}

fn member_ids(members: &[Member]) -> Value {
    let ids: Vec<&str> = members.iter().map(|m| m.value.as_str()).collect();
    capped_ids(&ids)
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}
