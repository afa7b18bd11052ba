//! The wall clock of span timestamps: `SystemTime`, never going backwards on one thread.
//!
//! Readings taken on one thread never go backwards: each returns at least the last value it
//! returned on the calling thread (if the system clock is set back, this thread's readings stay
//! put until the wall clock catches up), so a span never ends before it started.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The last reading returned on this thread.
    static LAST_MICROS: Cell<u64> = const { Cell::new(0) };
}

/// Microseconds since the Unix epoch (0 before it), monotonic per thread.
#[inline]
pub(crate) fn unix_micros() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros());
    let now = u64::try_from(now).unwrap_or(u64::MAX);
    LAST_MICROS
        .try_with(|last| {
            let kept = now.max(last.get());
            last.set(kept);
            kept
        })
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_micros() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
    }

    #[test]
    fn agrees_with_system_time_to_the_microsecond() {
        for _ in 0..10_000 {
            let before = system_micros();
            let ours = unix_micros();
            let after = system_micros();
            assert!(before <= ours && ours <= after, "{before} <= {ours} <= {after}");
        }
    }

    #[test]
    fn readings_on_one_thread_never_go_backwards() {
        let mut last = unix_micros();
        for _ in 0..100_000 {
            let now = unix_micros();
            assert!(now >= last);
            last = now;
        }
    }
}
