//! Background upkeep of the database, run by the writer thread between group commits in small
//! steps, each its own short transaction (a few milliseconds), so a write waits at most one
//! step and never a whole pass:
//!
//! - idempotency records older than the window are deleted ([`idempotency::prune`]);
//! - with `--retain`, finished runs older than that are deleted with their spans, oldest
//!   first, a bounded number of spans per step (the counters follow through their triggers);
//! - free pages are given back to the file system (`PRAGMA incremental_vacuum`) in databases
//!   created with incremental auto-vacuum (every database this server creates; an older file
//!   keeps its size, reusing its free pages, until `VACUUM` is run on it once);
//! - `PRAGMA optimize` refreshes the planner's statistics every [`OPTIMIZE_EVERY`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use prefactor_protocol::Pfid;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::idempotency::{self, PruneCursor};
use crate::error::ApiError;
use crate::timestamps::format_utc;

/// Default time an idempotency record is kept: a week, longer than the SDK's retries (which
/// give up after minutes) and than any outage its disk spool is meant to ride out. A request
/// replayed later than that runs again: a create with a client id then answers 409, which the
/// SDK counts as delivered.
pub const DEFAULT_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Time between two steps.
pub const STEP_EVERY: Duration = Duration::from_millis(100);
/// Idempotency records looked at per step.
pub const PRUNE_BATCH: u32 = 1_000;
/// Spans deleted per retention step.
pub const RETAIN_SPANS_PER_STEP: i64 = 2_000;
/// Free pages given back per step, once more than [`VACUUM_ABOVE_FREE_PAGES`] are free.
pub const VACUUM_PAGES_PER_STEP: i64 = 512;
/// Free pages kept for reuse by new rows before any is given back (8 MiB of 4 KiB pages).
pub const VACUUM_ABOVE_FREE_PAGES: i64 = 2_048;
/// Time between two `PRAGMA optimize`.
pub const OPTIMIZE_EVERY: Duration = Duration::from_secs(3600);

/// What the upkeep does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceOptions {
    /// How long idempotency records are kept.
    pub idempotency_window: Duration,
    /// Finished runs older than this are deleted with their spans (`None`: kept forever).
    pub retain: Option<Duration>,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        MaintenanceOptions { idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW, retain: None }
    }
}

/// The upkeep's state on the writer thread.
pub struct Maintenance {
    options: MaintenanceOptions,
    next_step: Instant,
    next_optimize: Instant,
    prune_cursor: PruneCursor,
    retain_cursor: String,
}

impl Maintenance {
    /// Upkeep with `options`, its first step one interval from now.
    pub fn new(options: MaintenanceOptions) -> Maintenance {
        let now = Instant::now();
        Maintenance {
            options,
            next_step: now + STEP_EVERY,
            next_optimize: now + OPTIMIZE_EVERY,
            prune_cursor: None,
            retain_cursor: String::new(),
        }
    }

    /// How long until the next step is due.
    pub fn due_in(&self) -> Duration {
        self.next_step.saturating_duration_since(Instant::now())
    }

    /// Runs the step if it is due; a step that deleted anything counts as a commit (lists read
    /// before it are not current any more).
    pub fn run_if_due(&mut self, conn: &Connection, commits: &AtomicU64) {
        let now = Instant::now();
        if now < self.next_step {
            return;
        }
        self.next_step = now + STEP_EVERY;
        match in_transaction(conn, |conn| self.step(conn)) {
            Ok(0) => {}
            Ok(_) => {
                commits.fetch_add(1, Ordering::Release);
            }
            Err(error) => tracing::warn!(%error, "database upkeep step failed; retried at the next step"),
        }
        if now >= self.next_optimize {
            self.next_optimize = now + OPTIMIZE_EVERY;
            if let Err(error) = crate::db::optimize(conn, false) {
                tracing::warn!(%error, "PRAGMA optimize failed");
            }
        }
        if let Err(error) = give_back_free_pages(conn) {
            tracing::warn!(%error, "incremental vacuum failed");
        }
    }

    /// One step of every task; how many rows it deleted.
    fn step(&mut self, conn: &Connection) -> Result<u64, ApiError> {
        let cutoff = unix_seconds(SystemTime::now()).saturating_sub(seconds(self.options.idempotency_window));
        let (next, mut deleted) = idempotency::prune(conn, &self.prune_cursor, cutoff, PRUNE_BATCH)?;
        self.prune_cursor = next;
        if let Some(retain) = self.options.retain {
            deleted += self.retention_step(conn, retain)?;
        }
        Ok(deleted)
    }

    /// Deletes up to [`RETAIN_SPANS_PER_STEP`] spans of the oldest finished run older than
    /// `retain` (after the cursor), and the run once it has none left. Runs are walked in id
    /// order (ids start with their creation time), up to the ids of runs created at the cutoff.
    fn retention_step(&mut self, conn: &Connection, retain: Duration) -> Result<u64, ApiError> {
        let cutoff = SystemTime::now().checked_sub(retain).unwrap_or(SystemTime::UNIX_EPOCH);
        let cutoff_text = format_utc(cutoff.into());
        let cutoff_ms = u64::try_from(cutoff.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis())
            .unwrap_or(u64::MAX);
        let id_bound = Pfid::from_parts(cutoff_ms.min(Pfid::MAX_TIMESTAMP_MS), Pfid::MAX_PARTITION, [0xff; 10])
            .map(|id| id.encode().as_str().to_string())
            .unwrap_or_default();
        let run: Option<String> = conn
            .prepare_cached(
                "SELECT id FROM agent_instances WHERE id > ?1 AND id < ?2
                     AND status IN ('complete', 'failed', 'cancelled', 'terminated') AND finished_at < ?3
                 ORDER BY id LIMIT 1",
            )?
            .query_row(params![self.retain_cursor, id_bound, cutoff_text], |row| row.get(0))
            .optional()?;
        let Some(run) = run else {
            self.retain_cursor.clear();
            return Ok(0);
        };
        let spans = conn
            .prepare_cached(
                "DELETE FROM agent_spans WHERE id IN
                     (SELECT id FROM agent_spans WHERE agent_instance_id = ?1 LIMIT ?2)",
            )?
            .execute(params![run, RETAIN_SPANS_PER_STEP])?;
        if i64::try_from(spans).unwrap_or(i64::MAX) >= RETAIN_SPANS_PER_STEP {
            return Ok(spans as u64);
        }
        let runs = conn.prepare_cached("DELETE FROM agent_instances WHERE id = ?1")?.execute(params![run])?;
        tracing::debug!(run, spans, "retention: deleted a finished run and its spans");
        self.retain_cursor = run;
        Ok((spans + runs) as u64)
    }
}

/// Runs `work` in its own `BEGIN IMMEDIATE` transaction, committed when it succeeds.
fn in_transaction<R>(conn: &Connection, work: impl FnOnce(&Connection) -> Result<R, ApiError>) -> Result<R, ApiError> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    match work(conn) {
        Ok(result) => {
            conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(result)
        }
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Gives [`VACUUM_PAGES_PER_STEP`] free pages back once more than [`VACUUM_ABOVE_FREE_PAGES`]
/// are free (a no-op in a database without incremental auto-vacuum).
fn give_back_free_pages(conn: &Connection) -> rusqlite::Result<()> {
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
    if free > VACUUM_ABOVE_FREE_PAGES {
        conn.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES_PER_STEP});"))?;
    }
    Ok(())
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map(seconds).unwrap_or(0)
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
