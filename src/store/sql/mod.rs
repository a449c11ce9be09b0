//! The store on a SQL database, through sqlx's `Any` driver: MySQL-protocol databases
//! (MySQL, MariaDB, TiDB) and SQLite run the same queries; `Dialect` holds the few
//! places where their SQL differs.
//!
//! Queries are checked when they run, not when gim compiles: sqlx's compile-time macros
//! (`query!`, `query_as!`) need one concrete database and a live connection or prepared
//! metadata at build time, and the `Any` driver has neither. Two copies of every query,
//! one per driver, would double the code that must agree. Instead every query runs on
//! both backends in the test suite, and every value crosses the `Any` seam through the
//! checked conversions of `rows` (no silent fallbacks).

mod announcements;
mod apps;
mod conversations;
mod friends;
mod groups;
mod messages;
mod moments;
mod reads;
mod revisions;
mod rows;
mod search;
mod sightings;
mod timeline_counts;
mod users;
mod webhooks;

use std::{str::FromStr, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
    error::ErrorKind,
};

use super::{StoreError, StoreResult};

/// The SQL flavour behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    Sqlite,
}

impl Dialect {
    /// Row locks are MySQL's; SQLite's `BEGIN IMMEDIATE` already holds the database.
    fn for_update(self) -> &'static str {
        match self {
            Dialect::MySql => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    fn greatest(self) -> &'static str {
        match self {
            Dialect::MySql => "GREATEST",
            Dialect::Sqlite => "MAX",
        }
    }

    /// Suffix of an `INSERT` that overwrites `columns` of an existing row with the new values.
    fn upsert(self, key: &str, columns: &[&str]) -> String {
        match self {
            Dialect::MySql => {
                let sets: Vec<String> = columns.iter().map(|c| format!("{c} = VALUES({c})")).collect();
                format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
            Dialect::Sqlite => {
                let sets: Vec<String> = columns.iter().map(|c| format!("{c} = excluded.{c}")).collect();
                format!(" ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", "))
            }
        }
    }

    /// The start of an `INSERT`'s update of an existing row: assignments follow.
    fn on_conflict(self, key: &str) -> String {
        match self {
            Dialect::MySql => " ON DUPLICATE KEY UPDATE ".to_owned(),
            Dialect::Sqlite => format!(" ON CONFLICT ({key}) DO UPDATE SET "),
        }
    }

    /// In such an update, the value the `INSERT` gave `column`.
    fn excluded(self, column: &str) -> String {
        match self {
            Dialect::MySql => format!("VALUES({column})"),
            Dialect::Sqlite => format!("excluded.{column}"),
        }
    }

    /// Suffix of an `INSERT` that leaves an existing row as it is (`column`: any column
    /// of the table, which MySQL's form needs to name).
    fn ignore_duplicate(self, column: &str) -> String {
        match self {
            Dialect::MySql => format!(" ON DUPLICATE KEY UPDATE {column} = {column}"),
            Dialect::Sqlite => " ON CONFLICT DO NOTHING".to_owned(),
        }
    }

    /// Like `upsert`, but the existing row changes only where `guard` grows; `columns`
    /// follow it.
    fn upsert_if_greater(self, key: &str, guard: &str, columns: &[&str]) -> String {
        match self {
            Dialect::MySql => {
                // Assignments run left to right and see earlier ones, so `guard` goes last.
                let mut sets: Vec<String> =
                    columns.iter().map(|c| format!("{c} = IF(VALUES({guard}) > {guard}, VALUES({c}), {c})")).collect();
                sets.push(format!("{guard} = GREATEST({guard}, VALUES({guard}))"));
                format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
            Dialect::Sqlite => {
                let mut sets: Vec<String> = columns.iter().map(|c| format!("{c} = excluded.{c}")).collect();
                sets.push(format!("{guard} = excluded.{guard}"));
                format!(" ON CONFLICT ({key}) DO UPDATE SET {} WHERE excluded.{guard} > {guard}", sets.join(", "))
            }
        }
    }

    /// The auto-increment id the connection's last `INSERT` assigned.
    fn last_insert_id(self) -> &'static str {
        match self {
            Dialect::MySql => "SELECT CAST(LAST_INSERT_ID() AS SIGNED)",
            Dialect::Sqlite => "SELECT last_insert_rowid()",
        }
    }

    fn begin(self) -> &'static str {
        match self {
            Dialect::MySql => "BEGIN",
            // Take the write lock up front: a deferred transaction that reads first
            // could fail to upgrade instead of waiting.
            Dialect::Sqlite => "BEGIN IMMEDIATE",
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// SQLite `synchronous` pragma value.
    pub sqlite_synchronous: String,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 16, sqlite_synchronous: "full".into() }
    }
}

/// A store on MySQL or SQLite.
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// Transactions that write. SQLite allows one writer, so its pool has one connection.
    write: AnyPool,
    /// Reads; on SQLite a separate pool of WAL readers that never wait for the writer.
    read: AnyPool,
    dialect: Dialect,
    /// Apps' webhook subscriptions as this node last read them.
    subscriptions: std::sync::Arc<webhooks::Subscriptions>,
}

static MYSQL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("sql/mysql");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("sql/sqlite");

/// Attempts of a transaction that failed on a deadlock or a busy database.
const TRANSACTION_ATTEMPTS: u32 = 5;

impl SqlStore {
    /// Opens the database at `url` (`sqlite://PATH` or `mysql://...`). A SQLite file is
    /// created when missing.
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, options).await
        } else {
            let mut url = url.replacen("mariadb://", "mysql://", 1);
            if !url.contains("statement-cache-capacity") {
                // Room for every statement shape gim uses (see `in_list`).
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str("statement-cache-capacity=256");
            }
            let pool = AnyPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect(&url)
                .await?;
            Ok(Self { write: pool.clone(), read: pool, dialect: Dialect::MySql, subscriptions: Default::default() })
        }
    }

    async fn connect_sqlite(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
        let connect_options = AnyConnectOptions::from_str(&url)?;
        let pragmas = format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA busy_timeout = 5000;",
            options.sqlite_synchronous
        );
        let pool = |max: u32| {
            let pragmas = pragmas.clone();
            AnyPoolOptions::new().max_connections(max).after_connect(move |conn, _| {
                let pragmas = pragmas.clone();
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                    Ok(())
                })
            })
        };
        let write = pool(1).connect_with(connect_options.clone()).await?;
        let read = pool(options.max_connections.max(2)).connect_with(connect_options).await?;
        Ok(Self { write, read, dialect: Dialect::Sqlite, subscriptions: Default::default() })
    }

    /// Brings the schema up to date; safe to run on every start, from many nodes at once.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.dialect {
            Dialect::MySql => {
                // Nodes starting together must not apply the same migration twice. sqlx
                // takes a lock of its own, but asks MariaDB to wait with a negative
                // timeout, which MariaDB does not honour; hold our own lock instead.
                let mut conn = self.write.acquire().await?;
                let locked: Option<i64> =
                    sqlx::query_scalar("SELECT GET_LOCK('gim.migrate', 120)").fetch_one(&mut *conn).await?;
                if locked != Some(1) {
                    return Err(StoreError::Corrupt("timed out waiting for another node's migration".into()));
                }
                let mut result = MYSQL_MIGRATIONS.run(&mut *conn).await.map_err(StoreError::from);
                if result.is_ok() {
                    result = self.run_schema_tasks().await;
                }
                sqlx::query("SELECT RELEASE_LOCK('gim.migrate')").execute(&mut *conn).await?;
                result?;
            }
            Dialect::Sqlite => {
                // Each migration is one transaction in SQLite: if another process applied
                // it first, ours fails whole and the next attempt finds it done.
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match SQLITE_MIGRATIONS.run(&self.write).await {
                        Ok(()) => break,
                        Err(_) if attempt < 3 => tokio::time::sleep(Duration::from_millis(300)).await,
                        Err(err) => return Err(err.into()),
                    }
                }
                self.run_schema_tasks().await?;
            }
        }
        Ok(())
    }

    /// Whether gim's schema is in the database: a migration ran there.
    pub async fn has_schema(&self) -> StoreResult<bool> {
        let sql = match self.dialect {
            Dialect::MySql => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() \
                 AND table_name = '_sqlx_migrations'"
            }
            Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        };
        let tables: i64 = sqlx::query_scalar(sql).fetch_one(&self.read).await?;
        Ok(tables > 0)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// On MySQL, takes the database for one `gim serve` (which keeps its routes in memory,
    /// so two on one database would not reach each other's devices): a named lock held by a
    /// connection of its own until the returned guard drops or the connection ends. `None`
    /// on SQLite, whose file a lock file guards. `Conflict` if another process holds it.
    pub async fn hold_single_node_lock(&self) -> StoreResult<Option<SingleNodeLock>> {
        if self.dialect != Dialect::MySql {
            return Ok(None);
        }
        let mut conn = self.write.acquire().await?.detach();
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK(CONCAT('gim.serve.', DATABASE()), 0)").fetch_one(&mut conn).await?;
        if taken != Some(1) {
            return Err(StoreError::Conflict);
        }
        Ok(Some(SingleNodeLock { conn }))
    }

    /// Waits for connections in use to be returned, then closes them.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    async fn begin(&self) -> StoreResult<Tx> {
        Ok(self.write.begin_with(self.dialect.begin()).await?)
    }

    /// Ends an attempt of a write transaction: commits it if `result` is good, rolls it
    /// back otherwise. `None` when it failed on a lock conflict and should run again
    /// (after a short backoff, taken here).
    async fn settle<T>(&self, tx: Tx, result: StoreResult<T>, attempt: u32) -> Option<StoreResult<T>> {
        match result {
            Ok(value) => match tx.commit().await {
                Ok(()) => return Some(Ok(value)),
                Err(err) if attempt < TRANSACTION_ATTEMPTS && is_transient(&err) => {}
                Err(err) => return Some(Err(err.into())),
            },
            Err(StoreError::Backend(err)) if attempt < TRANSACTION_ATTEMPTS && is_transient(&err) => drop(tx),
            Err(err) => return Some(Err(err)),
        }
        tracing::debug!(attempt, "retrying a transaction after a lock conflict");
        tokio::time::sleep(Duration::from_millis(2 << attempt)).await;
        None
    }
}

/// A database held by one `gim serve` (see `SqlStore::hold_single_node_lock`).
#[derive(Debug)]
pub struct SingleNodeLock {
    conn: sqlx::AnyConnection,
}

impl SingleNodeLock {
    /// Lets the database go now (dropping the lock would let it go only once the server
    /// notices the connection is gone).
    pub async fn release(mut self) {
        use sqlx::Connection as _;
        let _ = sqlx::query("SELECT RELEASE_LOCK(CONCAT('gim.serve.', DATABASE()))").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}

/// Evaluates `$body` (an expression of type `StoreResult<_>` that uses `$tx: &mut Tx`)
/// in a write transaction of `$store`: committed if it succeeds, rolled back if not, and
/// run again from the start, in a new transaction, when the database reports a deadlock
/// or a busy lock. Write `$body` without `?` at its top (an `async { .. }.await` block or
/// a call), so that a failure reaches the rollback and the retry.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let store = $store;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut transaction = store.begin().await?;
            let $tx = &mut transaction;
            let result = $body;
            if let Some(done) = store.settle(transaction, result, attempt).await {
                break done;
            }
        }
    }};
}
pub(crate) use in_tx;

/// A write transaction.
type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A deadlock, lock timeout or busy database: the transaction may succeed if run again.
fn is_transient(err: &sqlx::Error) -> bool {
    let Some(db) = err.as_database_error() else {
        return false;
    };
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
        return matches!(mysql.number(), 1213 | 1205);
    }
    // SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
    db.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// Maps a unique-key violation to `Conflict`, anything else to `Backend`.
fn conflict_on_unique(err: sqlx::Error) -> StoreError {
    match err.as_database_error() {
        Some(db) if db.kind() == ErrorKind::UniqueViolation => StoreError::Conflict,
        _ => StoreError::Backend(err),
    }
}

// Statements with a variable number of values come in power-of-two sizes only: IN
// lists are padded with a repeated value, multi-row inserts are split into
// power-of-two chunks. The connection's statement cache then holds every shape and
// never evicts; an eviction sends MySQL a COM_STMT_CLOSE that gets no reply, and with
// Nagle's algorithm on sqlx's sockets the next command waits for a delayed ACK (40 ms).

/// Most rows in one multi-row `INSERT`, well under both databases' placeholder limits.
const MAX_CHUNK_ROWS: usize = 256;
/// Most values in one `IN` list of a statement that takes a list of any length.
const MAX_IN_LIST: usize = 512;

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// `?, ?, ?, ?`: placeholders for an `IN` list of `len` values, rounded up to a power of two.
fn in_list(len: usize) -> String {
    vec!["?"; len.max(1).next_power_of_two()].join(", ")
}

/// Binds an `IN` list made by `in_list`, padding it with its last value.
fn bind_in<'q, T>(mut query: AnyQuery<'q>, values: &[T]) -> AnyQuery<'q>
where
    T: sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Copy + Send + 'q,
{
    for value in values {
        query = query.bind(*value);
    }
    if let Some(last) = values.last() {
        for _ in values.len()..values.len().next_power_of_two() {
            query = query.bind(*last);
        }
    }
    query
}

/// `(?, ?, ?), (?, ?, ?)`: placeholders for `rows` rows of `columns` values.
fn rows_of(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// Splits rows into chunks of power-of-two sizes, largest first (100 rows: 64, 32, 4).
fn pow2_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let size = if rows.len() >= MAX_CHUNK_ROWS { MAX_CHUNK_ROWS } else { 1 << rows.len().ilog2() };
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_and_cover_every_row() {
        let rows: Vec<usize> = (0..1000).collect();
        let sizes: Vec<usize> = pow2_chunks(&rows).map(<[usize]>::len).collect();
        assert_eq!(sizes, [256, 256, 256, 128, 64, 32, 8]);
        let rows: Vec<usize> = (0..100).collect();
        let chunks: Vec<&[usize]> = pow2_chunks(&rows).collect();
        assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [64, 32, 4]);
        assert_eq!(chunks.concat(), rows);
        assert_eq!(in_list(5), "?, ?, ?, ?, ?, ?, ?, ?");
    }
}
