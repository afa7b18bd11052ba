//! Per-thread extrapolation of the wall clock from the x86_64 time-stamp counter.
//!
//! Each thread keeps an anchor: a counter reading, the `SystemTime` taken at the same moment,
//! and the shared rate it extrapolates with. A reading within [`REANCHOR_NS`] of the anchor
//! costs one `rdtsc`, a multiply and a shift; anything else (no anchor yet, no rate yet, the
//! anchor too old, the counter below the anchor) takes a fresh anchor from `SystemTime` and
//! reports the interval since the previous one to the shared calibration.

use std::cell::Cell;

use super::calibration::{self, DISABLED, Observation, RATE_SHIFT, UNKNOWN};
use super::system_nanos;

/// Re-anchor when this much time has passed since the anchor. Bounds the error from the rate
/// (≈ 1 ppm) and from NTP slewing (≤ 500 ppm, so ≤ 32 µs) between anchors.
const REANCHOR_NS: u64 = 64_000_000;
/// A `(counter, SystemTime)` pair whose two counter reads are further apart than this was
/// interrupted (the thread was preempted between them) and is taken again.
const MAX_PAIR_TICKS: u64 = 50_000;
/// How many times to try for an uninterrupted pair before reading `SystemTime` alone.
const PAIR_ATTEMPTS: usize = 3;

#[derive(Clone, Copy)]
struct Anchor {
    /// Counter at the anchor (0: no anchor).
    tsc: u64,
    /// `SystemTime` at the anchor, in nanoseconds since the epoch.
    nanos: u64,
    /// Nanoseconds per tick, fixed-point (see [`RATE_SHIFT`]).
    rate: u64,
    /// Ticks after `tsc` that may be extrapolated; 0 while there is no usable rate.
    valid_ticks: u64,
}

impl Anchor {
    const NONE: Anchor = Anchor { tsc: 0, nanos: 0, rate: UNKNOWN, valid_ticks: 0 };

    fn at(tsc: u64, nanos: u64, rate: u64) -> Anchor {
        let valid_ticks = match rate {
            UNKNOWN | DISABLED => 0,
            rate => u64::try_from((u128::from(REANCHOR_NS) << RATE_SHIFT) / u128::from(rate)).unwrap_or(0),
        };
        Anchor { tsc, nanos, rate, valid_ticks }
    }
}

thread_local! {
    static ANCHOR: Cell<Anchor> = const { Cell::new(Anchor::NONE) };
}

/// Nanoseconds since the Unix epoch, extrapolated from this thread's anchor when it can be.
#[inline]
pub(super) fn unix_nanos() -> u64 {
    ANCHOR.with(|cell| {
        let anchor = cell.get();
        // A counter below the anchor wraps to a huge value and re-anchors, like an old anchor.
        let ticks = read_counter().wrapping_sub(anchor.tsc);
        if ticks < anchor.valid_ticks {
            anchor.nanos + ((u128::from(ticks) * u128::from(anchor.rate)) >> RATE_SHIFT) as u64
        } else {
            reanchor(cell)
        }
    })
}

/// Takes a new anchor (or keeps growing the calibration interval) and returns `SystemTime`.
#[cold]
#[inline(never)]
fn reanchor(cell: &Cell<Anchor>) -> u64 {
    if calibration::rate() == DISABLED {
        cell.set(Anchor::NONE);
        return system_nanos();
    }
    let Some((tsc, nanos)) = read_pair() else {
        return system_nanos();
    };
    let previous = cell.get();
    if previous.tsc != 0 {
        report_interval(previous, tsc, nanos);
    }
    let rate = calibration::rate();
    // Until the first rate is known, keep the first anchor: the calibration interval grows
    // until it is long enough.
    let growing_interval = rate == UNKNOWN && previous.tsc != 0 && tsc > previous.tsc && nanos > previous.nanos;
    if !growing_interval {
        cell.set(Anchor::at(tsc, nanos, rate));
    }
    nanos
}

fn report_interval(previous: Anchor, tsc: u64, nanos: u64) {
    if tsc <= previous.tsc {
        calibration::observe(Observation::CounterWentBack);
    } else if nanos > previous.nanos {
        calibration::observe(Observation::Interval { ticks: tsc - previous.tsc, nanos: nanos - previous.nanos });
    }
    // Otherwise the wall clock was set back: follow it (per-thread readings are clamped by the
    // caller), the interval says nothing about the counter.
}

/// A counter reading and `SystemTime` taken at the same moment (the counter is the midpoint
/// of two reads around `SystemTime`), or `None` if every attempt was interrupted.
fn read_pair() -> Option<(u64, u64)> {
    for _ in 0..PAIR_ATTEMPTS {
        let before = read_counter();
        let nanos = system_nanos();
        let after = read_counter();
        if after >= before && after - before <= MAX_PAIR_TICKS {
            return Some((before + (after - before) / 2, nanos));
        }
    }
    None
}

#[inline]
fn read_counter() -> u64 {
    // SAFETY: `rdtsc` is available on every x86_64 CPU and only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}
