//! Persistence. The only module that uses sqlx.
//!
//! One [`Store`] serves SQLite and PostgreSQL: the backend is chosen at start-up from the
//! database URL's scheme, both drivers are always compiled in, and each query is one SQL text
//! that both dialects accept. Rules for that text:
//!
//! - placeholders are `$N`; never bare `?`, never user input formatted into SQL;
//! - upserts are `insert … on conflict (…) do update set … = excluded.…`, with `returning`;
//! - null-safe comparison is `is distinct from` (PostgreSQL, SQLite ≥ 3.39);
//! - timestamps come from the injected [`Clock`] as parameters, never `now()`; UTC only;
//! - ids are UUIDs (`blob` in SQLite, `uuid` in PostgreSQL), JSON is `text` / `jsonb`;
//! - case-insensitive lookups use stored `*_lower` columns.
//!
//! Where the dialects must differ, the two arms are written out at that one spot.
//! Migrations live in `migrations/sqlite` and `migrations/postgres` under identical names.

mod accounts;
mod audit;
mod confluence_db;
#[macro_use]
mod identities;
mod lease;
mod links;
mod people;
mod regrant;
mod rules;
mod runs;
mod schedule;
mod scim;
pub(crate) mod scim_query;
mod scim_tokens;
mod settings;
mod snapshots;
mod source_sync;
mod sources;
mod targets;
mod undo;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use audit::{
    AuditEntry, AuditKey, ChainBreak, ChainProblem, ChainVerifier, GENESIS_HASH,
    MIN_AUDIT_KEY_BYTES, NewAuditEntry, SCHEME_HMAC, SCHEME_SHA256, ShortAuditKey, entry_hash,
    entry_mac,
};
pub use confluence_db::confluence_last_logins;
pub use lease::{Lease, LeaseError, SCHEDULER_LEASE};
pub use links::{LinkAccount, LinkIdentity};
pub use people::{AccountLinks, PlannerInputs, StoredLinks};
pub use regrant::{AlertKind, PreImage, RemovalEpisode};
pub use rules::{RuleOrigin, StoredRule};
pub use runs::{ActionRecord, NewRun, PhaseChange, RunKind, RunRecord};
pub use scim::{GroupRef, Member, MemberKind, ScimKind, ScimQuery, ScimRecord};
pub use snapshots::SnapshotSummary;
pub use source_sync::{NewSignIn, NewSourceGroup, Stream};
pub use undo::LatestImage;

use crate::clock::SharedClock;
use crate::config::{DatabaseBackend, DatabaseConfig};
use crate::domain::ParseKindError;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A connection pool for whichever backend the database URL selected.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs one sqlx expression against the active backend. The body is type-checked once per
/// backend, so it may only use SQL and types both accept.
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// A write transaction on whichever backend is active. SQLite has one writer at a time: this
/// process's writers queue on an async lock (held by the transaction) instead of sleeping in
/// SQLite's busy handler, and the transaction starts with `BEGIN IMMEDIATE` so that a writer
/// in another process makes it wait rather than fail on upgrade.
pub(crate) enum Tx {
    Sqlite(
        sqlx::Transaction<'static, sqlx::Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
    ),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs one sqlx expression on the connection of a [`Tx`]; `$conn` is a `&mut` connection
/// (reborrow it as `&mut *$conn` to use it more than once).
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t, _) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Tx {
    /// Commits the transaction.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t, _writer) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL's scheme names no supported backend.
    #[error("database.url: unsupported scheme `{0}` (expected `sqlite:` or `postgres://`)")]
    UnsupportedScheme(String),
    /// The URL does not parse as connection options.
    #[error("database {url}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The database cannot be reached or opened.
    #[error("cannot connect to database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed to apply.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A uniqueness constraint refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A write referred to a row that does not exist.
    #[error("missing reference: {0}")]
    MissingReference(String),
    /// A stored value could not be read back as its domain type.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The row changed since it was read (ETag mismatch or a concurrent write).
    #[error("the resource has changed since it was read")]
    VersionMismatch,
    /// The request cannot be expressed (e.g. an unsupported filter).
    #[error("{0}")]
    Invalid(crate::scim::ScimError),
    /// A lease refused: a stale fencing epoch, or the scheduler held by another instance.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
            if db.is_foreign_key_violation() {
                return StoreError::MissingReference(db.message().to_owned());
            }
        }
        StoreError::Database(e)
    }
}

impl From<ParseKindError> for StoreError {
    fn from(e: ParseKindError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Why the service is not ready to take traffic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The database does not answer.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// The schema is behind this build.
    #[error("database not migrated: {0}")]
    NotMigrated(String),
}

/// The persistent state of idbridge.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: Db,
    pub(crate) clock: SharedClock,
    /// Queues this process's SQLite writers (unused on PostgreSQL).
    sqlite_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Authenticates new audit entries; never stored (see [`Store::with_audit_key`]).
    audit_key: Option<AuditKey>,
}

impl Store {
    /// Opens a pool on the configured database. SQLite files are created if missing and run in
    /// WAL mode with a busy timeout and foreign keys on.
    pub async fn connect(config: &DatabaseConfig, clock: SharedClock) -> Result<Self, StoreError> {
        let url = &config.url;
        let shown = url.redacted();
        let connect_timeout = Duration::from_secs(config.connect_timeout_secs);
        let db = match url.backend() {
            Some(DatabaseBackend::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url.expose())
                    .map_err(|e| bad_url(&shown, e))?
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_millis(config.sqlite_busy_timeout_ms));
                let in_memory = url.expose().contains(":memory:");
                let (options, max) = if in_memory {
                    (options, 1)
                } else {
                    let options = options
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        // The default page cache (2 MiB) is small for searchable SCIM values;
                        // memory-mapped reads avoid a system call per page.
                        .pragma("cache_size", "-32768")
                        .pragma("mmap_size", "268435456")
                        .pragma("temp_store", "memory");
                    (options, config.max_connections)
                };
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(connect_timeout)
                    .connect_with(options.clone())
                    .await;
                match pool {
                    Ok(pool) => Db::Sqlite(pool),
                    Err(e) => {
                        return Err(explain::<sqlx::SqliteConnection>(
                            e,
                            &options,
                            connect_timeout,
                            &shown,
                        )
                        .await);
                    }
                }
            }
            Some(DatabaseBackend::Postgres) => {
                let options = PgConnectOptions::from_str(url.expose())
                    .map_err(|e| bad_url(&shown, e))?
                    .application_name("idbridge");
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(connect_timeout)
                    .connect_with(options.clone())
                    .await;
                match pool {
                    Ok(pool) => Db::Postgres(pool),
                    Err(e) => {
                        return Err(explain::<sqlx::PgConnection>(
                            e,
                            &options,
                            connect_timeout,
                            &shown,
                        )
                        .await);
                    }
                }
            }
            None => return Err(StoreError::UnsupportedScheme(url.scheme())),
        };
        tracing::debug!(database.url = %shown, "connected to database");
        Ok(Self {
            db,
            clock,
            sqlite_writer: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            audit_key: None,
        })
    }

    /// Starts a write transaction.
    pub(crate) async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(match &self.db {
            Db::Sqlite(pool) => {
                let writer = self.sqlite_writer.clone().lock_owned().await;
                Tx::Sqlite(pool.begin_with("begin immediate").await?, writer)
            }
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> DatabaseBackend {
        match self.db {
            Db::Sqlite(_) => DatabaseBackend::Sqlite,
            Db::Postgres(_) => DatabaseBackend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.db {
            Db::Sqlite(_) => &SQLITE_MIGRATOR,
            Db::Postgres(_) => &POSTGRES_MIGRATOR,
        }
    }

    /// Applies every pending migration; returns how many were applied.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        const SQL: &str = "select count(*) from _sqlx_migrations where success";
        let migrator = self.migrator();
        // One connection throughout: opening another costs a TLS handshake.
        let (before, after): (i64, i64) = on_db!(&self.db, |pool| {
            let mut conn = pool.acquire().await?;
            let before = sqlx::query_scalar(SQL)
                .fetch_one(&mut *conn)
                .await
                .unwrap_or(0);
            migrator.run(&mut *conn).await?;
            let after = sqlx::query_scalar(SQL).fetch_one(&mut *conn).await?;
            Ok::<_, StoreError>((before, after))
        })?;
        Ok(usize::try_from(after.saturating_sub(before)).unwrap_or(0))
    }

    async fn applied_versions(&self) -> Result<Vec<i64>, sqlx::Error> {
        const SQL: &str = "select version from _sqlx_migrations where success order by version";
        on_db!(&self.db, |pool| sqlx::query_scalar(SQL)
            .fetch_all(pool)
            .await)
    }

    /// Whether the database answers and carries every migration this build knows.
    pub async fn readiness(&self) -> Result<(), NotReady> {
        let applied = match self.applied_versions().await {
            Ok(v) => v,
            Err(sqlx::Error::Database(e)) => {
                return Err(NotReady::NotMigrated(format!(
                    "no migration table ({})",
                    e.message()
                )));
            }
            Err(e) => return Err(NotReady::Unreachable(e.to_string())),
        };
        let pending: Vec<i64> = self
            .migrator()
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect();
        if pending.is_empty() {
            Ok(())
        } else {
            Err(NotReady::NotMigrated(format!(
                "{} pending migration(s), first {}; run `idbridge migrate`",
                pending.len(),
                pending[0]
            )))
        }
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        on_db!(&self.db, |pool| pool.close().await)
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// Turns a pool's connection failure into the driver's own reason. A pool reports only that it
/// timed out; one direct connection attempt says why ("connection refused", "password
/// authentication failed").
async fn explain<C: sqlx::Connection>(
    pool_error: sqlx::Error,
    options: &<C as sqlx::Connection>::Options,
    timeout: Duration,
    shown: &str,
) -> StoreError {
    use sqlx::ConnectOptions;
    let source = if matches!(pool_error, sqlx::Error::PoolTimedOut) {
        match tokio::time::timeout(timeout, options.connect()).await {
            Ok(Err(e)) => e,
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                pool_error
            }
            Err(_) => pool_error,
        }
    } else {
        pool_error
    };
    StoreError::Connect {
        url: shown.to_owned(),
        source,
    }
}

fn bad_url(shown: &str, e: sqlx::Error) -> StoreError {
    StoreError::BadUrl {
        url: shown.to_owned(),
        reason: e.to_string(),
    }
}
