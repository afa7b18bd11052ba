//! A cheap wall clock: Unix time without a system call on every read.
//!
//! `SystemTime::now()` costs ~25–30 ns (vDSO `clock_gettime`) on the machines we measured; ids
//! and span timestamps read the clock on every span, so the common reads here take a cheaper
//! route. On x86_64 with a usable time-stamp counter, each thread extrapolates from an
//! anchor `(tsc, unix ns)` taken from `SystemTime`, with a ticks→ns rate calibrated against
//! `SystemTime` and re-anchored at least every 64 ms, so the reading stays within a few
//! microseconds of `SystemTime`. Until the rate is known (the first ~10 ms of the process), on
//! other architectures, and whenever the counter misbehaves, the reading is `SystemTime`.
//!
//! Readings taken on one thread never go backwards: each function returns at least the last
//! value it returned on the calling thread (if the system clock is set back, this thread's
//! readings stay put until the wall clock catches up).
//!
//! ```
//! use prefactor_protocol::clock;
//!
//! let before = clock::unix_millis();
//! let micros = clock::unix_micros();
//! assert!(micros / 1_000 >= before);
//! assert!(clock::unix_millis() >= before);
//! ```

#[cfg(target_arch = "x86_64")]
mod calibration;
#[cfg(target_arch = "x86_64")]
mod tsc;

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

thread_local! {
    /// The last reading returned on this thread, so readings never go backwards.
    static LAST_NANOS: Cell<u64> = const { Cell::new(0) };
}

/// Nanoseconds since the Unix epoch (monotonic per thread; see the module docs for accuracy).
///
/// ```
/// let ns = prefactor_protocol::clock::unix_nanos();
/// assert!(ns > 1_600_000_000_000_000_000); // after September 2020
/// ```
#[inline]
pub fn unix_nanos() -> u64 {
    let reading = read_nanos();
    LAST_NANOS.with(|last| {
        let never_backwards = reading.max(last.get());
        last.set(never_backwards);
        never_backwards
    })
}

/// Microseconds since the Unix epoch, e.g. for span timestamps.
///
/// ```
/// use std::time::{SystemTime, UNIX_EPOCH};
///
/// let system_micros = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
/// let before = system_micros();
/// let ours = prefactor_protocol::clock::unix_micros();
/// let after = system_micros();
/// assert!(before - 2_000 <= ours && ours <= after + 2_000);
/// ```
#[inline]
pub fn unix_micros() -> u64 {
    unix_nanos() / 1_000
}

/// Milliseconds since the Unix epoch, the timestamp of a [`Pfid`](crate::Pfid).
///
/// ```
/// let first = prefactor_protocol::clock::unix_millis();
/// let second = prefactor_protocol::clock::unix_millis();
/// assert!(second >= first);
/// ```
#[inline]
pub fn unix_millis() -> u64 {
    unix_nanos() / 1_000_000
}

/// The current time as a [`SystemTime`], from the same cheap clock.
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// let before = SystemTime::now();
/// let ours = prefactor_protocol::clock::system_time();
/// let after = SystemTime::now();
/// let tolerance = Duration::from_millis(2);
/// assert!(before - tolerance <= ours && ours <= after + tolerance);
/// ```
pub fn system_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(unix_nanos())
}

/// The counter frequency the clock extrapolates with, once calibrated; `None` while the clock
/// reads `SystemTime` (not calibrated yet, not x86_64, or the counter was found unreliable).
///
/// ```
/// if let Some(hz) = prefactor_protocol::clock::tsc_frequency_hz() {
///     assert!(hz > 1_000_000);
/// }
/// ```
pub fn tsc_frequency_hz() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    return calibration::frequency_hz();
    #[cfg(not(target_arch = "x86_64"))]
    return None;
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_nanos() -> u64 {
    tsc::unix_nanos()
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn read_nanos() -> u64 {
    system_nanos()
}

/// `SystemTime` in nanoseconds since the epoch (0 before 1970; `u64` lasts until 2554).
fn system_nanos() -> u64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => {
            elapsed.as_secs().saturating_mul(1_000_000_000).saturating_add(u64::from(elapsed.subsec_nanos()))
        }
        Err(_) => 0,
    }
}
