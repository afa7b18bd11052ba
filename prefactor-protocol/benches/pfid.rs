//! `cargo bench -p prefactor-protocol --bench pfid`: PFID generation, encoding and parsing, and
//! the wall clock `generate` reads (against `SystemTime::now()`, what it replaces).

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use prefactor_protocol::{Pfid, clock};

fn pfid(c: &mut Criterion) {
    c.bench_function("pfid/generate", |b| b.iter(|| Pfid::generate(black_box(123_456))));
    let id = Pfid::generate(123_456);
    c.bench_function("pfid/encode", |b| b.iter(|| black_box(black_box(id).encode())));
    let text = id.to_string();
    c.bench_function("pfid/parse", |b| b.iter(|| black_box(black_box(text.as_str()).parse::<Pfid>())));
}

/// What `Pfid::generate` did before it read [`clock::unix_millis`] (commit 4baafd4): the same
/// work with `SystemTime::now()` and two thread-local random draws, as a same-run baseline.
fn generate_with_system_time(partition: u32) -> [u8; 20] {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
        & Pfid::MAX_TIMESTAMP_MS;
    let mut randomness = [0u8; 10];
    randomness[..8].copy_from_slice(&fastrand::u64(..).to_ne_bytes());
    randomness[8..].copy_from_slice(&fastrand::u16(..).to_ne_bytes());
    let mut bytes = [0u8; 20];
    bytes[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
    bytes[6..10].copy_from_slice(&(partition & Pfid::MAX_PARTITION).to_be_bytes());
    bytes[10..].copy_from_slice(&randomness);
    bytes
}

fn wall_clock(c: &mut Criterion) {
    c.bench_function("clock/unix_millis", |b| b.iter(clock::unix_millis));
    c.bench_function("clock/unix_micros", |b| b.iter(clock::unix_micros));
    c.bench_function("clock/system_time_now_millis", |b| {
        b.iter(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64))
    });
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `rdtsc` exists on every x86_64 CPU and only reads the time-stamp counter.
    c.bench_function("clock/bare_rdtsc", |b| b.iter(|| unsafe { std::arch::x86_64::_rdtsc() }));
    c.bench_function("pfid/generate_with_system_time", |b| b.iter(|| generate_with_system_time(black_box(123_456))));
}

criterion_group!(benches, pfid, wall_clock);
criterion_main!(benches);
