//! Cost of `#[prefactor::span]` when no client is installed, against the same plain function.
//!
//! Run: `cargo bench --bench macros`. Current results are in `BENCHMARKS.md`, their history in `docs/benchmarks-journal.md`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::pin::{Pin, pin};
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

#[tracing::instrument(skip(messages))]
fn traced(prompt: &str, messages: &[Message], temperature: f32) -> usize {
    prompt.len() + messages.len() + temperature.to_bits() as usize % 7
}

async fn plain_async(prompt: &str, temperature: f32) -> usize {
    prompt.len() + temperature.to_bits() as usize % 7
}

#[prefactor::span(schema = "bench:llm_async")]
async fn annotated_async(prompt: &str, temperature: f32) -> usize {
    prompt.len() + temperature.to_bits() as usize % 7
}

#[tracing::instrument]
async fn traced_async(prompt: &str, temperature: f32) -> usize {
    prompt.len() + temperature.to_bits() as usize % 7
}

/// Pending on its first poll, ready on the second (an async body that really suspends, as
/// one waiting on I/O does).
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) { Poll::Ready(()) } else { Poll::Pending }
    }
}

async fn plain_suspending(prompt: &str, temperature: f32) -> usize {
    YieldOnce(false).await;
    prompt.len() + temperature.to_bits() as usize % 7
}

#[prefactor::span(schema = "bench:llm_suspending")]
async fn annotated_suspending(prompt: &str, temperature: f32) -> usize {
    YieldOnce(false).await;
    prompt.len() + temperature.to_bits() as usize % 7
}

#[tracing::instrument]
async fn traced_suspending(prompt: &str, temperature: f32) -> usize {
    YieldOnce(false).await;
    prompt.len() + temperature.to_bits() as usize % 7
}

/// Polls a future to completion, without an executor (the benches' futures never wait for a
/// wake-up). Not inlined, like an executor's poll: the future is built by the caller and moved
/// in, so the plain variant cannot be folded into its caller and measure nothing.
#[inline(never)]
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
    group.bench_function("sync/tracing_instrument", |b| {
        b.iter(|| traced(black_box("prompt"), black_box(&messages), black_box(0.2)));
    });
    group.bench_function("async/plain", |b| b.iter(|| complete(plain_async(black_box("prompt"), black_box(0.2)))));
    group.bench_function("async/annotated", |b| {
        b.iter(|| complete(annotated_async(black_box("prompt"), black_box(0.2))));
    });
    group.bench_function("async/tracing_instrument", |b| {
        b.iter(|| complete(traced_async(black_box("prompt"), black_box(0.2))));
    });
    group.bench_function("async_suspending/plain", |b| {
        b.iter(|| complete(plain_suspending(black_box("prompt"), black_box(0.2))));
    });
    group.bench_function("async_suspending/annotated", |b| {
        b.iter(|| complete(annotated_suspending(black_box("prompt"), black_box(0.2))));
    });
    group.bench_function("async_suspending/tracing_instrument", |b| {
        b.iter(|| complete(traced_suspending(black_box("prompt"), black_box(0.2))));
    });
    group.finish();
}

criterion_group!(benches, no_client);
criterion_main!(benches);
