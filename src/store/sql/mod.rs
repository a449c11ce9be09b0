//! The store on a SQL database, through sqlx's `Any` driver: MySQL-protocol databases
//! (MySQL, MariaDB, TiDB) and SQLite run the same queries; `Dialect` holds the few
//! places where their SQL differs.

mod apps;
mod messages;
mod rows;
mod users;

use std::{future::Future, str::FromStr, time::Duration};

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
            let url = url.replacen("mariadb://", "mysql://", 1);
            let pool = AnyPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect(&url)
                .await?;
            Ok(Self { write: pool.clone(), read: pool, dialect: Dialect::MySql })
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
        Ok(Self { write, read, dialect: Dialect::Sqlite })
    }

    /// Brings the schema up to date; safe to run on every start and from many nodes.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.dialect {
            Dialect::MySql => &MYSQL_MIGRATIONS,
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
        };
        migrator.run(&self.write).await?;
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Waits for connections in use to be returned, then closes them.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Runs `body` in a write transaction, again when the database reports a deadlock or
    /// a busy lock (the failed attempt was rolled back in full). `body` gets the
    /// transaction and hands it back with its result.
    async fn write_tx<T, F, Fut>(&self, mut body: F) -> StoreResult<T>
    where
        F: FnMut(Tx) -> Fut,
        Fut: Future<Output = (Tx, StoreResult<T>)>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tx = self.write.begin_with(self.dialect.begin()).await?;
            let (tx, result) = body(tx).await;
            match result {
                Ok(value) => match tx.commit().await {
                    Ok(()) => return Ok(value),
                    Err(err) if attempt < TRANSACTION_ATTEMPTS && is_transient(&err) => {}
                    Err(err) => return Err(err.into()),
                },
                Err(StoreError::Backend(err)) if attempt < TRANSACTION_ATTEMPTS && is_transient(&err) => drop(tx),
                Err(err) => return Err(err),
            }
            tracing::debug!(attempt, "retrying a transaction after a lock conflict");
            tokio::time::sleep(Duration::from_millis(2 << attempt)).await;
        }
    }
}

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

/// `(?, ?, ?), (?, ?, ?)`: placeholders for `rows` rows of `columns` values.
fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// `?, ?, ?`: placeholders for an `IN` list.
fn list(len: usize) -> String {
    vec!["?"; len].join(", ")
}
