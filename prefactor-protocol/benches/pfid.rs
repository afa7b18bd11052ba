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

fn wall_clock(c: &mut Criterion) {
    c.bench_function("clock/unix_millis", |b| b.iter(clock::unix_millis));
    c.bench_function("clock/unix_micros", |b| b.iter(clock::unix_micros));
    c.bench_function("clock/system_time_now_millis", |b| {
        b.iter(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64))
    });
}

criterion_group!(benches, pfid, wall_clock);
criterion_main!(benches);
