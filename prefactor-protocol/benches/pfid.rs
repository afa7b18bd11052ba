//! `cargo bench -p prefactor-protocol --bench pfid`: PFID generation, encoding and parsing.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prefactor_protocol::Pfid;

fn pfid(c: &mut Criterion) {
    c.bench_function("pfid/generate", |b| b.iter(|| Pfid::generate(black_box(123_456))));
    let id = Pfid::generate(123_456);
    c.bench_function("pfid/encode", |b| b.iter(|| black_box(black_box(id).encode())));
    let text = id.to_string();
    c.bench_function("pfid/parse", |b| b.iter(|| black_box(black_box(text.as_str()).parse::<Pfid>())));
}

criterion_group!(benches, pfid);
criterion_main!(benches);
