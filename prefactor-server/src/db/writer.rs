//! The single writer thread with group commit.
//!
//! Why: SQLite allows one writer at a time and a durable commit costs an fsync-ish WAL append,
//! so committing each request separately caps throughput far below what the HTTP layer can
//! do. The writer owns the only write connection, takes every job that is waiting, runs them
//! in ONE transaction, commits, and only then answers each job. A response is therefore never
//! sent before its write is durable in the WAL.
//!
//! A failing job must not take the other jobs of its batch with it. A GUARDED job
//! ([`Writer::write`]) runs inside its own SAVEPOINT, so whatever it wrote is rolled back
//! alone. A savepoint is not free, though: while one is open, SQLite copies every page the
//! job touches that the transaction already changed into a sub-journal (for the hot pages of
//! a busy table that is a few 4 KB copies per job). An UNGUARDED job
//! ([`Writer::write_unguarded`]) promises instead that it writes nothing before its last
//! check, so that an error below 500 (a 4xx answer) leaves no writes behind and needs no
//! rollback. An unguarded job that fails with a 5xx (a database error after it started
//! writing) or panics may have left partial writes: the whole transaction is then rolled back,
//! every job of the batch so far answers 500 (clients retry), and the writer continues with a
//! fresh transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::db::maintenance::Maintenance;
use crate::error::ApiError;

/// Largest number of jobs committed together; bounds the latency of the first job in a batch.
const MAX_BATCH: usize = 1024;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job's body: runs on the connection (or learns there is none) and says what it left.
type JobRun = Box<dyn FnOnce(Option<&Connection>) -> (Outcome, Completion) + Send>;

/// What running a job left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The job succeeded; keep its writes.
    Succeeded,
    /// The job failed; a guarded job's savepoint is rolled back, an unguarded one wrote nothing.
    Failed,
    /// An unguarded job failed after it may have written: the transaction must be dropped.
    Poisoned,
}

/// One unit of work. It gets `None` when its transaction could not be opened; it then only
/// reports failure.
struct Job {
    guarded: bool,
    run: JobRun,
}

/// Handle to the writer thread; cloning shares the same thread.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer thread owning `conn`. The thread ends when every `Writer` is dropped.
    pub fn spawn(conn: Connection) -> std::io::Result<(Writer, JoinHandle<()>)> {
        Writer::spawn_with(conn, None)
    }

    /// [`Writer::spawn`] with the database's upkeep run between group commits (see
    /// [`crate::db::maintenance`]).
    pub fn spawn_with(conn: Connection, maintenance: Option<Maintenance>) -> std::io::Result<(Writer, JoinHandle<()>)> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let handle = std::thread::Builder::new()
            .name("prefactor-db-writer".to_string())
            .spawn(move || run_writer(conn, receiver, &counter, maintenance))?;
        Ok((Writer { jobs, commits }, handle))
    }

    /// How many group commits have succeeded so far. It moves before any job of a commit is
    /// answered, so a value read after an answer arrived counts that answer's commit: a result
    /// computed while it still has the same value is current.
    pub fn commit_generation(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// Runs `work` in the next write transaction, inside its own savepoint, and resolves after
    /// the commit.
    pub async fn write<R, F>(&self, work: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        self.write_async(true, work).await
    }

    /// Like [`Writer::write`] without the savepoint: `work` must not write anything before it
    /// can still fail with an error below 500 (see the module doc).
    pub async fn write_unguarded<R, F>(&self, work: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        self.write_async(false, work).await
    }

    async fn write_async<R, F>(&self, guarded: bool, work: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(guarded, work, move |result| {
            let _ = reply.send(result);
        })?;
        answer.await.map_err(|_| ApiError::internal("database writer stopped"))?
    }

    /// Like [`Writer::write`] but blocks the calling thread; safe to call from sync code
    /// and (briefly) from inside an async runtime because it uses a std channel.
    pub fn write_blocking<R, F>(&self, work: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(true, work, move |result| {
            let _ = reply.send(result);
        })?;
        answer.recv().map_err(|_| ApiError::internal("database writer stopped"))?
    }

    fn submit<R, F, D>(&self, guarded: bool, work: F, deliver: D) -> Result<(), ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
        D: FnOnce(Result<R, ApiError>) + Send + 'static,
    {
        let run: JobRun = Box::new(move |conn: Option<&Connection>| {
            let result = match conn {
                Some(conn) => work(conn),
                None => Err(ApiError::internal("write transaction could not be opened")),
            };
            let outcome = match &result {
                Ok(_) => Outcome::Succeeded,
                Err(error) if !guarded && error.status >= 500 => Outcome::Poisoned,
                Err(_) => Outcome::Failed,
            };
            let completion: Completion = Box::new(move |commit| {
                deliver(match commit {
                    Ok(()) => result,
                    Err(error) => Err(ApiError::internal(format!("commit failed: {error}"))),
                })
            });
            (outcome, completion)
        });
        self.jobs.send(Job { guarded, run }).map_err(|_| ApiError::internal("database writer stopped"))
    }
}

fn run_writer(
    conn: Connection,
    receiver: mpsc::Receiver<Job>,
    commits: &AtomicU64,
    mut maintenance: Option<Maintenance>,
) {
    loop {
        let first = match &maintenance {
            Some(upkeep) => match receiver.recv_timeout(upkeep.due_in()) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match receiver.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
        };
        if let Some(first) = first {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            run_batch(&conn, batch, commits);
        }
        if let Some(upkeep) = &mut maintenance {
            upkeep.run_if_due(&conn, commits);
        }
    }
    if maintenance.is_some()
        && let Err(error) = crate::db::optimize(&conn, false)
    {
        tracing::warn!(%error, "PRAGMA optimize at close failed");
    }
    tracing::debug!("database writer stopped");
}

/// Runs `batch` in as few transactions as possible: one, unless an unguarded job poisons it.
fn run_batch(conn: &Connection, batch: Vec<Job>, commits: &AtomicU64) {
    let mut jobs = batch.into_iter();
    loop {
        if let Err(error) = run_cached(conn, "BEGIN IMMEDIATE") {
            let message = error.to_string();
            for job in jobs {
                let (_, completion) = (job.run)(None);
                completion(Err(message.clone()));
            }
            return;
        }
        let mut completions = Vec::new();
        let mut poisoned = false;
        for job in jobs.by_ref() {
            let (outcome, completion) = run_job(conn, job);
            completions.push(completion);
            if outcome == Outcome::Poisoned {
                poisoned = true;
                break;
            }
        }
        if poisoned {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(
                jobs = completions.len(),
                "a write failed after it started; its group commit is rolled back"
            );
            let message = "a write of the same group commit failed; nothing was committed".to_string();
            for completion in completions {
                completion(Err(message.clone()));
            }
            continue;
        }
        let commit = run_cached(conn, "COMMIT").map_err(|error| {
            let _ = conn.execute_batch("ROLLBACK");
            error.to_string()
        });
        if commit.is_ok() {
            commits.fetch_add(1, Ordering::Release);
        }
        for completion in completions {
            completion(commit.clone());
        }
        return;
    }
}

/// Runs one cached statement (savepoint control runs per job, so it is not re-parsed).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_job(conn: &Connection, job: Job) -> (Outcome, Completion) {
    if job.guarded {
        return (Outcome::Succeeded, run_in_savepoint(conn, job));
    }
    // A panicking job (a bug, never user data) must not take the writer thread down with it,
    // nor the other jobs of its group commit: an unguarded job makes all its checks before
    // its writes, so a panic almost always comes before it wrote anything, and then it fails
    // alone (its caller sees the dropped reply as a 500). Only a panic after it wrote rolls
    // the group commit back.
    let changes_before = conn.total_changes();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(Some(conn)))) {
        Ok(outcome) => outcome,
        Err(_) if conn.total_changes() == changes_before => {
            tracing::error!("a database job panicked before writing; it fails alone");
            (Outcome::Failed, Box::new(|_| {}) as Completion)
        }
        Err(_) => {
            tracing::error!("a database job panicked after writing; its group commit is rolled back");
            (Outcome::Poisoned, Box::new(|_| {}) as Completion)
        }
    }
}

fn run_in_savepoint(conn: &Connection, job: Job) -> Completion {
    if let Err(error) = run_cached(conn, "SAVEPOINT job") {
        let message = error.to_string();
        let (_, completion) = (job.run)(None);
        return Box::new(move |_| completion(Err(message)));
    }
    // A panicking job (a bug, never user data) must not take the writer thread down with it:
    // its savepoint is rolled back and its caller sees the dropped reply as a 500.
    let (outcome, completion) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(Some(conn)))) {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!("a database job panicked; its changes are rolled back");
            (Outcome::Failed, Box::new(|_| {}) as Completion)
        }
    };
    let end = if outcome == Outcome::Succeeded {
        run_cached(conn, "RELEASE job")
    } else {
        run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
    };
    match end {
        Ok(()) => completion,
        Err(error) => {
            let message = error.to_string();
            Box::new(move |_| completion(Err(message)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer_with_table() -> (Writer, JoinHandle<()>) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        Writer::spawn(conn).unwrap()
    }

    fn count(writer: &Writer) -> i64 {
        writer.write_blocking(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))?)).unwrap()
    }

    #[test]
    fn a_failing_job_rolls_back_alone() {
        let (writer, thread) = writer_with_table();
        let failed = writer.write_blocking(|conn| {
            conn.execute("INSERT INTO t VALUES (1)", [])?;
            Err::<(), _>(ApiError::conflict("no"))
        });
        assert_eq!(failed.unwrap_err().status, 409);
        writer.write_blocking(|conn| Ok(conn.execute("INSERT INTO t VALUES (2)", [])?)).unwrap();
        assert_eq!(count(&writer), 1);
        drop(writer);
        thread.join().unwrap();
    }

    #[test]
    fn a_panicking_job_answers_500_and_the_writer_keeps_working() {
        let (writer, thread) = writer_with_table();
        let panicked = writer.write_blocking(|conn| -> Result<(), ApiError> {
            conn.execute("INSERT INTO t VALUES (1)", [])?;
            panic!("bug in a job");
        });
        assert_eq!(panicked.unwrap_err().status, 500);
        writer.write_blocking(|conn| Ok(conn.execute("INSERT INTO t VALUES (2)", [])?)).unwrap();
        assert_eq!(count(&writer), 1, "the panicking job's insert was rolled back");
        drop(writer);
        thread.join().unwrap();
    }

    /// Submits `work` and returns the channel its result arrives on.
    fn submit(
        writer: &Writer,
        guarded: bool,
        work: impl FnOnce(&Connection) -> Result<(), ApiError> + Send + 'static,
    ) -> mpsc::Receiver<Result<(), ApiError>> {
        let (reply, answer) = mpsc::channel();
        writer
            .submit(guarded, work, move |result| {
                let _ = reply.send(result);
            })
            .unwrap();
        answer
    }

    /// Occupies the writer until the returned sender is used, so that the jobs submitted
    /// meanwhile are committed together as the next batch.
    fn hold_writer(writer: &Writer) -> (mpsc::Sender<()>, mpsc::Receiver<Result<(), ApiError>>) {
        let (started_tx, started) = mpsc::channel();
        let (release, blocked) = mpsc::channel::<()>();
        let done = submit(writer, true, move |_| {
            started_tx.send(()).unwrap();
            let _ = blocked.recv_timeout(std::time::Duration::from_secs(10));
            Ok(())
        });
        started.recv_timeout(std::time::Duration::from_secs(10)).expect("the holding job runs");
        (release, done)
    }

    fn wait(answer: &mpsc::Receiver<Result<(), ApiError>>) -> Result<(), ApiError> {
        answer.recv_timeout(std::time::Duration::from_secs(10)).expect("job answered")
    }

    #[test]
    fn an_unguarded_job_panicking_before_it_writes_leaves_its_batch_alone() {
        let (writer, thread) = writer_with_table();
        let (release, held) = hold_writer(&writer);
        let before = submit(&writer, false, |conn| Ok(conn.execute("INSERT INTO t VALUES (1)", []).map(|_| ())?));
        let panicked = submit(&writer, false, |_| -> Result<(), ApiError> { panic!("bug before writing") });
        let after = submit(&writer, true, |conn| Ok(conn.execute("INSERT INTO t VALUES (3)", []).map(|_| ())?));
        release.send(()).unwrap();
        wait(&held).unwrap();
        wait(&before).unwrap();
        assert!(panicked.recv_timeout(std::time::Duration::from_secs(10)).is_err(), "reply dropped: a 500");
        wait(&after).unwrap();
        assert_eq!(count(&writer), 2, "the other clients' writes are committed");
        drop(writer);
        thread.join().unwrap();
    }

    #[test]
    fn an_unguarded_job_failing_with_4xx_leaves_its_batch_alone() {
        let (writer, thread) = writer_with_table();
        let (release, held) = hold_writer(&writer);
        let first = submit(&writer, true, |conn| Ok(conn.execute("INSERT INTO t VALUES (1)", []).map(|_| ())?));
        let rejected = submit(&writer, false, |_| Err(ApiError::conflict("checked before writing")));
        let last = submit(&writer, false, |conn| Ok(conn.execute("INSERT INTO t VALUES (3)", []).map(|_| ())?));
        release.send(()).unwrap();
        wait(&held).unwrap();
        wait(&first).unwrap();
        assert_eq!(wait(&rejected).unwrap_err().status, 409);
        wait(&last).unwrap();
        assert_eq!(count(&writer), 2);
        drop(writer);
        thread.join().unwrap();
    }

    #[test]
    fn an_unguarded_job_failing_after_writing_rolls_back_its_group_commit_and_the_writer_goes_on() {
        let (writer, thread) = writer_with_table();
        let (release, held) = hold_writer(&writer);
        let before = submit(&writer, true, |conn| Ok(conn.execute("INSERT INTO t VALUES (1)", []).map(|_| ())?));
        let broken = submit(&writer, false, |conn| {
            conn.execute("INSERT INTO t VALUES (2)", [])?;
            Err(ApiError::internal("failed after writing"))
        });
        let after = submit(&writer, true, |conn| Ok(conn.execute("INSERT INTO t VALUES (3)", []).map(|_| ())?));
        release.send(()).unwrap();
        wait(&held).unwrap();
        assert_eq!(wait(&before).unwrap_err().status, 500, "same group commit: rolled back too");
        assert_eq!(wait(&broken).unwrap_err().status, 500);
        wait(&after).unwrap();
        let values: Vec<i64> = writer
            .write_blocking(|conn| {
                let mut statement = conn.prepare("SELECT v FROM t ORDER BY v")?;
                let rows = statement.query_map([], |row| row.get(0))?;
                Ok(rows.collect::<Result<Vec<i64>, _>>()?)
            })
            .unwrap();
        assert_eq!(values, vec![3]);
        drop(writer);
        thread.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_jobs_are_all_committed() {
        let (writer, thread) = writer_with_table();
        let jobs: Vec<_> = (0..200)
            .map(|value| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer.write(move |conn| Ok(conn.execute("INSERT INTO t VALUES (?1)", [value])?)).await
                })
            })
            .collect();
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        assert_eq!(count(&writer), 200);
        drop(writer);
        thread.join().unwrap();
    }
}
