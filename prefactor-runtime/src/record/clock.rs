//! The wall clock of span timestamps: the system's real-time clock (what `SystemTime` reads),
//! never going backwards on one thread.
//!
//! On Unix it is read with `rustix::time::clock_gettime(Realtime)`, the same clock through the
//! same vDSO call as `SystemTime::now`, without the `SystemTime` arithmetic (a checked
//! subtraction, a `Duration` normalization and a 128-bit product per reading): two readings
//! per span.
//!
//! Readings taken on one thread never go backwards: each returns at least the last value it
//! returned on the calling thread (if the system clock is set back, this thread's readings stay
//! put until the wall clock catches up), so a span never ends before it started.

use std::cell::Cell;
#[cfg(not(unix))]
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The last reading returned on this thread.
    static LAST_MICROS: Cell<u64> = const { Cell::new(0) };
}

/// Microseconds since the Unix epoch (0 before it), as the system clock reads them.
#[cfg(unix)]
#[inline]
fn system_micros() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    match (u64::try_from(now.tv_sec), u64::try_from(now.tv_nsec)) {
        (Ok(secs), Ok(nanos)) => secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000),
        _ => 0,
    }
}

/// Microseconds since the Unix epoch (0 before it), as the system clock reads them.
#[cfg(not(unix))]
#[inline]
fn system_micros() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros());
    u64::try_from(now).unwrap_or(u64::MAX)
}

/// Microseconds since the Unix epoch (0 before it), monotonic per thread.
#[inline]
pub(crate) fn unix_micros() -> u64 {
    let now = system_micros();
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
    use std::time::{SystemTime, UNIX_EPOCH};

    fn std_micros() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
    }

    #[test]
    fn agrees_with_system_time_to_the_microsecond() {
        for _ in 0..10_000 {
            let before = std_micros();
            let ours = unix_micros();
            let after = std_micros();
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
