//! Timing calls that each enqueue spans without letting the client's queue fill: the calls are
//! timed in chunks of [`CHUNK`], and between chunks (untimed) the client is flushed. The count
//! of calls since the last flush carries over criterion's samples (no flush before each
//! sample), so the measured calls see the steady state of a stream of spans, as in an agent.
//! Included by the benches that time spans with a client installed:
//! `#[path = "support/chunked_timing.rs"] mod chunked_timing;` (beside `mod thread_cpu;`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use prefactor::Client;

use crate::thread_cpu::thread_cpu_time;

/// Calls timed between two flushes.
pub const CHUNK: u64 = 4_096;
/// How long a flush may take (every call of a chunk is delivered to the local server).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// The clock a measurement reads.
#[derive(Clone, Copy)]
pub enum Clock {
    #[allow(dead_code, reason = "peers_hot_path reads it; bridge_cost, which includes this file too, does not")]
    Wall,
    /// The calling thread's CPU time: what the agent's thread pays, whatever else runs.
    ThreadCpu,
}

/// The calls made since the client was last flushed. A chunk's two queue operations per span
/// stay far below the default queue capacity, so no operation is dropped.
#[derive(Default)]
pub struct ChunkedTiming {
    since_flush: Cell<u64>,
}

impl ChunkedTiming {
    /// Makes `iters` calls as `calls(count)` batches of at most a chunk, and returns the time
    /// `clock` measured over them (the flushes between chunks not included).
    pub fn time(&self, client: &Client, iters: u64, clock: Clock, mut calls: impl FnMut(u64)) -> Duration {
        let mut timed = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            if self.since_flush.get() >= CHUNK {
                client.flush_blocking(FLUSH_TIMEOUT).expect("chunk delivered");
                self.since_flush.set(0);
            }
            let batch = (CHUNK - self.since_flush.get()).min(iters - done);
            let (wall, cpu) = (Instant::now(), thread_cpu_time());
            calls(batch);
            timed += match clock {
                Clock::Wall => wall.elapsed(),
                Clock::ThreadCpu => thread_cpu_time() - cpu,
            };
            self.since_flush.set(self.since_flush.get() + batch);
            done += batch;
        }
        timed
    }
}
