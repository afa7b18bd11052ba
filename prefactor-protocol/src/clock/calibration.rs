//! The counter's rate (nanoseconds per tick), shared by every thread and measured from the
//! intervals between each thread's successive `(counter, SystemTime)` anchors.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Rates are fixed-point: nanoseconds per tick × 2^`RATE_SHIFT`.
pub(super) const RATE_SHIFT: u32 = 32;
/// The rate while it is not known yet (the clock reads `SystemTime`).
pub(super) const UNKNOWN: u64 = 0;
/// The rate once the counter was found unreliable (the clock reads `SystemTime` for good).
pub(super) const DISABLED: u64 = u64::MAX;

/// The first rate needs an interval this long: ±50 ns of jitter in each anchor is then ≤ 10 ppm.
const MIN_FIRST_INTERVAL_NS: u64 = 10_000_000;
/// Refinements need a longer interval, so each one is accurate to about 1 ppm.
const MIN_REFINE_INTERVAL_NS: u64 = 50_000_000;
/// Fastest plausible counter: 20 GHz (0.05 ns per tick).
const MIN_RATE: u64 = (1 << RATE_SHIFT) / 20;
/// Slowest plausible counter: 50 MHz (20 ns per tick).
const MAX_RATE: u64 = 20 << RATE_SHIFT;
/// NTP slews the wall clock by at most 500 ppm; a bigger change of the measured rate means the
/// wall clock was stepped, or the counter misbehaved.
const TOLERANCE_PPM: u128 = 1_000;
/// This many bad observations in a row (counter going back, implausible or inconsistent rates)
/// and the counter is no longer used.
const MAX_STRIKES: u32 = 8;

static RATE: AtomicU64 = AtomicU64::new(UNKNOWN);
static CALIBRATOR: Mutex<Calibrator> = Mutex::new(Calibrator::new());

/// The current rate, or [`UNKNOWN`] / [`DISABLED`].
#[inline]
pub(super) fn rate() -> u64 {
    RATE.load(Ordering::Relaxed)
}

/// Feeds one observation into the shared calibration.
pub(super) fn observe(observation: Observation) {
    // A thread that finds another one calibrating drops its observation: more will come, and
    // the clock's readers never wait.
    if let Ok(mut calibrator) = CALIBRATOR.try_lock() {
        RATE.store(calibrator.observe(observation), Ordering::Relaxed);
    }
}

/// The counter's frequency in Hz, if the counter is in use.
pub(super) fn frequency_hz() -> Option<u64> {
    match rate() {
        UNKNOWN | DISABLED => None,
        rate => u64::try_from((1_000_000_000u128 << RATE_SHIFT) / u128::from(rate)).ok(),
    }
}

/// What one thread saw when it re-anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Observation {
    /// Since its previous anchor, the counter advanced `ticks` while `SystemTime` advanced `nanos`.
    Interval {
        /// Counter ticks between the two anchors.
        ticks: u64,
        /// `SystemTime` nanoseconds between the two anchors.
        nanos: u64,
    },
    /// The counter read less than at the thread's previous anchor.
    CounterWentBack,
}

/// The calibration state machine (pure: the statics above hold the shared instance).
#[derive(Debug)]
pub(super) struct Calibrator {
    rate: u64,
    /// A rate that disagreed with `rate`; a second measurement agreeing with it is adopted
    /// (the counter's rate really changed, e.g. after a VM migration).
    suspect: Option<u64>,
    strikes: u32,
}

impl Calibrator {
    pub(super) const fn new() -> Calibrator {
        Calibrator { rate: UNKNOWN, suspect: None, strikes: 0 }
    }

    /// Takes one observation into account and returns the rate to use from now on.
    pub(super) fn observe(&mut self, observation: Observation) -> u64 {
        if self.rate == DISABLED {
            return DISABLED;
        }
        let Observation::Interval { ticks, nanos } = observation else {
            return self.strike();
        };
        let min_interval = if self.rate == UNKNOWN { MIN_FIRST_INTERVAL_NS } else { MIN_REFINE_INTERVAL_NS };
        if nanos < min_interval || ticks == 0 {
            return self.rate;
        }
        let measured = u64::try_from((u128::from(nanos) << RATE_SHIFT) / u128::from(ticks)).unwrap_or(u64::MAX);
        if !(MIN_RATE..=MAX_RATE).contains(&measured) {
            return self.strike();
        }
        if self.rate == UNKNOWN || agrees(self.rate, measured) || self.suspect.is_some_and(|s| agrees(s, measured)) {
            return self.adopt(measured);
        }
        self.suspect = Some(measured);
        self.strike()
    }

    fn adopt(&mut self, rate: u64) -> u64 {
        self.rate = rate;
        self.suspect = None;
        self.strikes = 0;
        rate
    }

    fn strike(&mut self) -> u64 {
        self.strikes += 1;
        if self.strikes >= MAX_STRIKES {
            self.rate = DISABLED;
        }
        self.rate
    }
}

/// Whether two rates differ by at most [`TOLERANCE_PPM`].
fn agrees(reference: u64, measured: u64) -> bool {
    u128::from(reference.abs_diff(measured)) * 1_000_000 <= u128::from(reference) * TOLERANCE_PPM
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rate of a 2.5 GHz counter: 0.4 ns per tick.
    const RATE_2_5_GHZ: u64 = (2 << RATE_SHIFT) / 5;

    fn interval_at_2_5_ghz(nanos: u64) -> Observation {
        Observation::Interval { ticks: nanos * 5 / 2, nanos }
    }

    fn is_close(rate: u64, expected: u64) -> bool {
        rate.abs_diff(expected) <= 1
    }

    #[test]
    fn first_rate_needs_ten_milliseconds() {
        let mut calibrator = Calibrator::new();
        assert_eq!(calibrator.observe(interval_at_2_5_ghz(9_000_000)), UNKNOWN);
        assert!(is_close(calibrator.observe(interval_at_2_5_ghz(10_000_000)), RATE_2_5_GHZ));
    }

    #[test]
    fn refinements_follow_a_slewing_wall_clock() {
        let mut calibrator = Calibrator::new();
        calibrator.observe(interval_at_2_5_ghz(20_000_000));
        // 200 ppm faster wall clock: still within tolerance, adopted.
        let slewed = Observation::Interval { ticks: 160_000_000, nanos: 64_012_800 };
        let rate = calibrator.observe(slewed);
        assert!(rate > RATE_2_5_GHZ && agrees(RATE_2_5_GHZ, rate));
        // Too short to refine with: ignored.
        assert_eq!(calibrator.observe(Observation::Interval { ticks: 10, nanos: 1_000 }), rate);
    }

    #[test]
    fn a_stepped_wall_clock_does_not_change_the_rate() {
        let mut calibrator = Calibrator::new();
        calibrator.observe(interval_at_2_5_ghz(20_000_000));
        // The wall clock jumped one second forward during a 64 ms interval.
        let stepped = Observation::Interval { ticks: 160_000_000, nanos: 1_064_000_000 };
        assert!(is_close(calibrator.observe(stepped), RATE_2_5_GHZ));
        assert!(is_close(calibrator.observe(interval_at_2_5_ghz(64_000_000)), RATE_2_5_GHZ));
    }

    #[test]
    fn a_changed_counter_rate_is_adopted_after_two_agreeing_measurements() {
        let mut calibrator = Calibrator::new();
        calibrator.observe(interval_at_2_5_ghz(20_000_000));
        let at_3_ghz = Observation::Interval { ticks: 192_000_000, nanos: 64_000_000 };
        assert!(is_close(calibrator.observe(at_3_ghz), RATE_2_5_GHZ));
        let rate = calibrator.observe(at_3_ghz);
        assert!(is_close(rate, (1 << RATE_SHIFT) / 3), "{rate}");
    }

    #[test]
    fn a_misbehaving_counter_is_disabled() {
        let mut calibrator = Calibrator::new();
        calibrator.observe(interval_at_2_5_ghz(20_000_000));
        for _ in 1..MAX_STRIKES {
            assert_ne!(calibrator.observe(Observation::CounterWentBack), DISABLED);
        }
        assert_eq!(calibrator.observe(Observation::CounterWentBack), DISABLED);
        assert_eq!(calibrator.observe(interval_at_2_5_ghz(64_000_000)), DISABLED);
    }

    #[test]
    fn implausible_rates_are_strikes_not_rates() {
        let mut calibrator = Calibrator::new();
        let one_tick_per_second = Observation::Interval { ticks: 1, nanos: 1_000_000_000 };
        for _ in 1..MAX_STRIKES {
            assert_eq!(calibrator.observe(one_tick_per_second), UNKNOWN);
        }
        assert_eq!(calibrator.observe(one_tick_per_second), DISABLED);
    }

    #[test]
    fn a_good_observation_clears_the_strikes() {
        let mut calibrator = Calibrator::new();
        calibrator.observe(interval_at_2_5_ghz(20_000_000));
        for _ in 0..3 * MAX_STRIKES {
            calibrator.observe(Observation::CounterWentBack);
            calibrator.observe(interval_at_2_5_ghz(64_000_000));
        }
        assert!(is_close(calibrator.rate, RATE_2_5_GHZ));
    }
}
