//! The single writer thread with group commit.
//!
//! Why: SQLite allows one writer at a time and a durable commit costs an fsync-ish WAL append,
//! so committing each request separately caps throughput far below what the HTTP layer can
//! do. The writer owns the only write connection, takes every job that is waiting, runs them
//! in ONE transaction (each inside its own SAVEPOINT so a failing job rolls back alone),
//! commits, and only then answers each job. A response is therefore never sent before its
//! write is durable in the WAL.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::error::ApiError;

/// Largest number of jobs committed together; bounds the latency of the first job in a batch.
const MAX_BATCH: usize = 1024;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job gets `None` when its transaction could not be opened; it then only reports failure.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;

/// Handle to the writer thread; cloning shares the same thread.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread owning `conn`. The thread ends when every `Writer` is dropped.
    pub fn spawn(conn: Connection) -> std::io::Result<(Writer, JoinHandle<()>)> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("prefactor-db-writer".to_string())
            .spawn(move || run_writer(conn, receiver))?;
        Ok((Writer { jobs }, handle))
    }

    /// Runs `work` in the next write transaction and resolves after the commit.
    pub async fn write<R, F>(&self, work: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(work, move |result| {
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
        self.submit(work, move |result| {
            let _ = reply.send(result);
        })?;
        answer.recv().map_err(|_| ApiError::internal("database writer stopped"))?
    }

    fn submit<R, F, D>(&self, work: F, deliver: D) -> Result<(), ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, ApiError> + Send + 'static,
        D: FnOnce(Result<R, ApiError>) + Send + 'static,
    {
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => work(conn),
                None => Err(ApiError::internal("write transaction could not be opened")),
            };
            let succeeded = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                deliver(match commit {
                    Ok(()) => result,
                    Err(error) => Err(ApiError::internal(format!("commit failed: {error}"))),
                })
            });
            (succeeded, completion)
        });
        self.jobs.send(job).map_err(|_| ApiError::internal("database writer stopped"))
    }
}

fn run_writer(conn: Connection, receiver: mpsc::Receiver<Job>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch);
    }
    tracing::debug!("database writer stopped");
}

fn run_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(error) = run_cached(conn, "BEGIN IMMEDIATE") {
        let message = error.to_string();
        for job in batch {
            let (_, completion) = job(None);
            completion(Err(message.clone()));
        }
        return;
    }
    let mut completions = Vec::with_capacity(batch.len());
    for job in batch {
        completions.push(run_in_savepoint(conn, job));
    }
    let commit = run_cached(conn, "COMMIT").map_err(|error| {
        let _ = conn.execute_batch("ROLLBACK");
        error.to_string()
    });
    for completion in completions {
        completion(commit.clone());
    }
}

/// Runs one cached statement (savepoint control runs twice per job, so it is not re-parsed).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_in_savepoint(conn: &Connection, job: Job) -> Completion {
    if let Err(error) = run_cached(conn, "SAVEPOINT job") {
        let message = error.to_string();
        let (_, completion) = job(None);
        return Box::new(move |_| completion(Err(message)));
    }
    // A panicking job (a bug, never user data) must not take the writer thread down with it:
    // its savepoint is rolled back and its caller sees the dropped reply as a 500.
    let (succeeded, completion) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Some(conn)))) {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!("a database job panicked; its changes are rolled back");
            (false, Box::new(|_| {}) as Completion)
        }
    };
    let end = if succeeded {
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
