//! The cheap wall clock against `SystemTime`: agreement, monotonicity, threads, PFID order.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prefactor_protocol::{Pfid, clock};

/// The clock must stay this close to `SystemTime`.
const TOLERANCE_NS: u64 = 2_000_000;
/// Longer than several re-anchor periods (64 ms), so every sampling loop crosses re-anchors.
const SAMPLING: Duration = Duration::from_millis(300);
/// Bound on every sampling loop, whatever the clock does.
const MAX_SAMPLES: usize = 20_000_000;

fn system_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Reads the clock between two `SystemTime` reads and returns how far outside
/// `[before, after]` it was (0 when inside).
fn deviation_from_system_time() -> u64 {
    let before = system_nanos();
    let ours = clock::unix_nanos();
    let after = system_nanos();
    before.saturating_sub(ours).max(ours.saturating_sub(after))
}

/// On a Linux x86_64 machine whose counter is invariant the clock must actually use it, or the
/// other tests would only be testing `SystemTime`.
fn assert_counter_used_where_it_should_be() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let invariant_tsc = cfg!(target_arch = "x86_64") && cpu.contains("constant_tsc") && cpu.contains("nonstop_tsc");
    if invariant_tsc {
        let hz = clock::tsc_frequency_hz().expect("the TSC clock should be calibrated after 300 ms of readings");
        assert!((100_000_000..10_000_000_000).contains(&hz), "implausible TSC frequency {hz} Hz");
    }
}

#[test]
fn agrees_with_system_time_across_reanchors() {
    let start = Instant::now();
    let mut worst = 0;
    let mut samples = 0;
    while start.elapsed() < SAMPLING && samples < MAX_SAMPLES {
        worst = worst.max(deviation_from_system_time());
        samples += 1;
    }
    assert!(samples > 1_000, "only {samples} samples in {SAMPLING:?}");
    assert!(worst <= TOLERANCE_NS, "clock was {worst} ns away from SystemTime");
    assert_counter_used_where_it_should_be();
}

#[test]
fn agrees_with_system_time_after_idle_gaps() {
    // Reads separated by sleeps of 1..=16 ms: anchors get old, the thread re-anchors between reads.
    let mut worst = 0;
    for round in 0..40u64 {
        std::thread::sleep(Duration::from_millis(1 + round % 16));
        for _ in 0..100 {
            worst = worst.max(deviation_from_system_time());
        }
    }
    assert!(worst <= TOLERANCE_NS, "clock was {worst} ns away from SystemTime");
}

#[test]
fn readings_on_one_thread_never_go_backwards() {
    let start = Instant::now();
    let (mut last_nanos, mut last_micros, mut last_millis) = (0, 0, 0);
    let mut samples = 0;
    while start.elapsed() < SAMPLING && samples < MAX_SAMPLES {
        let (nanos, micros, millis) = (clock::unix_nanos(), clock::unix_micros(), clock::unix_millis());
        assert!(nanos >= last_nanos, "nanos went back: {last_nanos} -> {nanos}");
        assert!(micros >= last_micros, "micros went back: {last_micros} -> {micros}");
        assert!(millis >= last_millis, "millis went back: {last_millis} -> {millis}");
        assert!(micros >= nanos / 1_000 && millis >= micros / 1_000, "units disagree: {nanos} {micros} {millis}");
        (last_nanos, last_micros, last_millis) = (nanos, micros, millis);
        samples += 1;
    }
    assert!(samples > 1_000, "only {samples} samples in {SAMPLING:?}");
}

#[test]
fn many_threads_agree_and_never_go_backwards() {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                let start = Instant::now();
                let (mut last, mut worst, mut samples) = (0, 0, 0);
                while start.elapsed() < Duration::from_millis(150) && samples < MAX_SAMPLES {
                    let before = system_nanos();
                    let ours = clock::unix_nanos();
                    let after = system_nanos();
                    assert!(ours >= last, "went back on one thread: {last} -> {ours}");
                    worst = worst.max(before.saturating_sub(ours).max(ours.saturating_sub(after)));
                    last = ours;
                    samples += 1;
                }
                worst
            })
        })
        .collect();
    for thread in threads {
        let worst = thread.join().expect("sampling thread panicked");
        assert!(worst <= TOLERANCE_NS, "a thread's clock was {worst} ns away from SystemTime");
    }
}

#[test]
fn pfids_from_one_thread_sort_by_time() {
    let start = Instant::now();
    let mut previous = Pfid::generate(5);
    let mut generated = 0;
    while start.elapsed() < Duration::from_millis(150) && generated < MAX_SAMPLES {
        let before_ms = system_nanos() / 1_000_000;
        let id = Pfid::generate(5);
        let after_ms = system_nanos() / 1_000_000;
        assert!(id.timestamp_ms() >= previous.timestamp_ms(), "{previous} then {id}");
        assert!(
            id.timestamp_ms() + 2 >= before_ms && id.timestamp_ms() <= after_ms + 2,
            "{id} at {} ms, SystemTime {before_ms}..={after_ms} ms",
            id.timestamp_ms()
        );
        assert!(id.encode().as_str() >= previous.encode().as_str() || id.timestamp_ms() == previous.timestamp_ms());
        previous = id;
        generated += 1;
    }
    assert!(generated > 1_000, "only {generated} ids");
    assert!(previous.timestamp_ms() > 0);
}
