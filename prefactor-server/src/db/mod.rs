//! SQLite storage: one writer thread (group commit, see [`writer`]) plus a small pool of read
//! connections (WAL lets readers run beside the writer). Repositories are one module per table.

pub mod agent_versions;
pub mod agents;
pub mod counts;
pub mod id_buckets;
pub mod idempotency;
pub mod instances;
pub mod job_cache;
pub mod maintenance;
pub mod meta;
pub mod migrations;
#[cfg(test)]
mod query_plans;
pub mod runs;
pub mod schema_versions;
pub mod spans;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use crate::error::{ApiError, ServerError};
use maintenance::{Maintenance, MaintenanceOptions};
pub use writer::Writer;

/// Opened database: the writer, the read pool and the writer thread's handle.
pub struct Database {
    /// Cheap-to-clone access for handlers.
    pub db: Db,
    /// Joined on shutdown so the last commit finishes before the file is removed.
    pub writer_thread: JoinHandle<()>,
    /// The local account's ids.
    pub account: meta::LocalAccount,
}

/// Access to the database from handlers.
#[derive(Clone)]
pub struct Db {
    writer: Writer,
    reads: Option<Arc<ReadPool>>,
}

/// Idle read connections kept for reuse. Each holds its own page cache (up to SQLite's
/// default 2 MiB once the database is that large), so a burst of concurrent reads must not
/// leave one connection per blocking thread behind: past this many, a connection is closed
/// after its read.
const MAX_IDLE_READERS: usize = 8;

/// Read connections, opened on demand and reused (at most [`MAX_IDLE_READERS`] kept).
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Opens (creating and migrating) the database. `path == None` means a private in-memory
/// database, which has no read pool: reads then run on the writer connection.
///
/// `upkeep` says how long idempotency records and finished runs are kept (see [`maintenance`]).
pub fn open(path: Option<&Path>, upkeep: MaintenanceOptions) -> Result<Database, ServerError> {
    let mut conn = match path {
        Some(path) => Connection::open(path)?,
        None => Connection::open_in_memory()?,
    };
    configure_writer(&conn, path.is_some())?;
    migrations::migrate(&mut conn)?;
    optimize(&conn, true)?;
    meta::ensure_local_account(&conn)?;
    let account = meta::load_local_account(&conn).map_err(|error| ServerError::Database(error.message))?;
    let (writer, writer_thread) = Writer::spawn_with(conn, Some(Maintenance::new(upkeep)))?;
    let reads = path.map(|path| Arc::new(ReadPool { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) }));
    Ok(Database { db: Db { writer, reads }, writer_thread, account })
}

/// Prepared statements kept per connection: more than the server has (about 40), where
/// rusqlite keeps 16 by default, so a bulk job mixing registers, starts, span writes and
/// finishes never evicts one it will use again.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// Prepared statements stay prepared: enough of them are cached, and the query planner's
/// stability guarantee (QPSG) is on. Without it, this SQLite build (compiled with STAT4) marked
/// statements whose WHERE compares an indexed column with a parameter for re-preparing whenever
/// the parameter changed: the span counts of every instance start and finish re-parsed their
/// SQL (9% of the server's CPU in the end-to-end run). Statistics from [`optimize`] still
/// reach new statements; `db::query_plans` checks every list read's plan with and without them.
fn configure_statements(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// WAL with `synchronous=NORMAL`: a commit is durable against process crashes (the WAL is
/// written before we answer) and the database cannot be corrupted by power loss; only the
/// last transactions before an OS crash may be lost. That is the usual trade-off for a local
/// development server and it is what makes group commit fast.
fn configure_writer(conn: &Connection, is_file: bool) -> rusqlite::Result<()> {
    configure_statements(conn)?;
    // A new database gives pages freed by retention back to the file system (see
    // `maintenance`); this only takes effect before the first table is created.
    let fresh: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |row| row.get(0))?;
    if fresh == 0 {
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
    }
    if is_file {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    }
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -16000;
         PRAGMA temp_store = MEMORY;",
    )
}

/// Rows `ANALYZE` reads per index when [`optimize`] decides to run it: statistics from a
/// sample, so the pass costs milliseconds at any size instead of a read of every table.
const ANALYSIS_LIMIT: u32 = 1_000;

/// `PRAGMA optimize`: gathers planner statistics where they are missing or stale (at start,
/// `at_open` checks every table, as SQLite recommends for a long-lived connection; later the
/// writer runs it again periodically, see [`writer`]).
pub fn optimize(conn: &Connection, at_open: bool) -> rusqlite::Result<()> {
    conn.execute_batch(&format!("PRAGMA analysis_limit = {ANALYSIS_LIMIT};"))?;
    let pragma = if at_open { "PRAGMA optimize = 0x10002" } else { "PRAGMA optimize" };
    let mut statement = conn.prepare(pragma)?;
    let mut rows = statement.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

impl Db {
    /// Runs `work` in the next group-committed write transaction.
    pub async fn write<R, F>(&self, work: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// [`Db::write`] without a savepoint around `work`, which must not write before its last
    /// check that can fail with a 4xx (see [`writer`]).
    pub async fn write_unguarded<R, F>(&self, work: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        self.writer.write_unguarded(work).await
    }

    /// Blocking variant of [`Db::write`] for the sync `LocalServer` API.
    pub fn write_blocking<R, F>(&self, work: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        self.writer.write_blocking(work)
    }

    /// How many group commits have succeeded (see [`Writer::commit_generation`]).
    pub fn commit_generation(&self) -> u64 {
        self.writer.commit_generation()
    }

    /// Runs a read-only `work` on a pooled read connection (on the blocking thread pool).
    pub async fn read<R, F>(&self, work: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let Some(pool) = self.reads.clone() else {
            return self.writer.write(work).await;
        };
        tokio::task::spawn_blocking(move || pool.run(work))
            .await
            .map_err(|error| ApiError::internal(format!("read task failed: {error}")))?
    }
}

impl ReadPool {
    fn run<R>(&self, work: impl FnOnce(&Connection) -> Result<R, ApiError>) -> Result<R, ApiError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let result = work(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(conn);
        }
        result
    }

    fn open_reader(&self) -> Result<Connection, ApiError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
        configure_statements(&conn)?;
        Ok(conn)
    }
}
