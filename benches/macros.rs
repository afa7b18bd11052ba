//! Cost of `#[prefactor::span]` when no client is installed, against the same plain function.
//!
//! Run: `cargo bench --bench macros`. Results are recorded in `BENCHMARKS.md` (macros section).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

#[derive(serde::Serialize)]
struct Message {
    role: String,
    text: String,
}

fn plain(prompt: &str, messages: &[Message], temperature: f32) -> usize {
    prompt.len() + messages.len() + temperature.to_bits() as usize % 7
}

#[prefactor::span(schema = "bench:llm")]
fn annotated(prompt: &str, messages: &[Message], temperature: f32) -> usize {
    prompt.len() + messages.len() + temperature.to_bits() as usize % 7
}

async fn plain_async(prompt: &str, temperature: f32) -> usize {
    prompt.len() + temperature.to_bits() as usize % 7
}

#[prefactor::span(schema = "bench:llm_async")]
async fn annotated_async(prompt: &str, temperature: f32) -> usize {
    prompt.len() + temperature.to_bits() as usize % 7
}

/// Polls a future that never suspends to completion, without an executor.
fn complete<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

fn no_client(c: &mut Criterion) {
    let messages = vec![Message { role: "user".into(), text: "hello".into() }];
    let mut group = c.benchmark_group("no_client");
    group.bench_function("sync/plain", |b| b.iter(|| plain(black_box("prompt"), black_box(&messages), black_box(0.2))));
    group.bench_function("sync/annotated", |b| {
        b.iter(|| annotated(black_box("prompt"), black_box(&messages), black_box(0.2)));
    });
    group.bench_function("async/plain", |b| b.iter(|| complete(plain_async(black_box("prompt"), black_box(0.2)))));
    group.bench_function("async/annotated", |b| {
        b.iter(|| complete(annotated_async(black_box("prompt"), black_box(0.2))));
    });
    group.finish();
}

criterion_group!(benches, no_client);
criterion_main!(benches);
