//! Cost per item of a streaming span (`#[prefactor::span]` on a function returning a stream):
//! a stream of 10,000 items summed, plain against annotated with no client, recording (inside
//! a run of a test capture, which keeps the agent's side of the client: the span's context
//! entered and left around every poll, the counts, the reducer) and recording with `reduce`.
//! The span's open and close (two queued operations) are spread over the 10,000 items.
//!
//! Run: `cargo bench --bench streaming`. Results in `BENCHMARKS.md` (per item: the difference
//! to `plain`, divided by 10,000), history in `docs/benchmarks-journal.md`.

use criterion::{Criterion, criterion_group, criterion_main};
use prefactor::testing::Capture;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

const ITEMS: u64 = 10_000;

/// `0..n`, one item per poll.
struct Count {
    next: u64,
    end: u64,
}

impl futures_core::Stream for Count {
    type Item = u64;

    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u64>> {
        let at = self.next;
        self.next += 1;
        Poll::Ready((at < self.end).then_some(at))
    }
}

fn plain(n: u64) -> impl futures_core::Stream<Item = u64> {
    Count { next: 0, end: n }
}

#[prefactor::span(schema = "bench:stream")]
fn annotated(n: u64) -> impl futures_core::Stream<Item = u64> {
    Count { next: 0, end: n }
}

#[derive(Default, serde::Serialize)]
struct Sum {
    total: u64,
}

fn add(sum: &mut Sum, item: &u64) {
    sum.total += item;
}

#[prefactor::span(schema = "bench:stream_reduced", reduce = add)]
fn reduced(n: u64) -> impl futures_core::Stream<Item = u64> {
    Count { next: 0, end: n }
}

/// Sums a stream by polling it with a no-op waker (no executor). Not inlined, like an
/// executor's poll.
#[inline(never)]
fn sum<S: futures_core::Stream<Item = u64>>(stream: S) -> u64 {
    let mut stream = pin!(stream);
    let mut cx = Context::from_waker(Waker::noop());
    let mut total = 0;
    while let Poll::Ready(Some(item)) = stream.as_mut().poll_next(&mut cx) {
        total += black_box(item);
    }
    total
}

/// `iters` sums of `stream`, timed; what the capture recorded is dropped after (outside the
/// timing), so memory stays flat however many iterations criterion runs.
fn timed(capture: &Capture, iters: u64, stream: fn(u64) -> u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(stream(black_box(ITEMS)));
    }
    let elapsed = start.elapsed();
    capture.clear();
    elapsed
}

fn streaming(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream_10k_items");
    group.bench_function("plain", |b| b.iter(|| sum(plain(black_box(ITEMS)))));
    group.bench_function("annotated/no_client", |b| b.iter(|| sum(annotated(black_box(ITEMS)))));

    let capture = Capture::new().expect("a capture");
    let run = capture.client().create_agent_instance(prefactor::CreateInstance::default()).expect("a run");
    let _in_run = run.context().enter();
    // The context swap alone (what `StreamExt::in_context` does on every poll), for comparison.
    group.bench_function("in_context", |b| {
        b.iter(|| sum(prefactor::StreamExt::in_context(plain(black_box(ITEMS)), run.context())))
    });
    group.bench_function("annotated/recording", |b| {
        b.iter_custom(|iters| timed(&capture, iters, |n| sum(annotated(n))))
    });
    group.bench_function("annotated/recording_reduce", |b| {
        b.iter_custom(|iters| timed(&capture, iters, |n| sum(reduced(n))))
    });
    group.finish();
    // The recording variants did record (a span per sum, each with its item count).
    assert_eq!(sum(reduced(3)), 3);
    let recorded = capture.runs();
    let last = recorded[0].spans.last().expect("a recorded stream span");
    assert_eq!(last.result_at("/stream/items"), Some(&serde_json::json!(3)));
    assert_eq!(last.result_at("/total"), Some(&serde_json::json!(3)));
}

criterion_group!(benches, streaming);
criterion_main!(benches);
