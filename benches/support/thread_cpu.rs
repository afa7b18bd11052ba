//! CPU time of the calling thread, shared by the benches that report it (each includes this
//! file with `#[path = "support/thread_cpu.rs"] mod thread_cpu;`).
//!
//! Why thread CPU: the client's worker and the local server share this machine's cores with
//! the measured thread, and wall time would count the moments it spends preempted by them.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    let now = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("CLOCK_THREAD_CPUTIME_ID exists on Linux");
    Duration::from(now)
}
