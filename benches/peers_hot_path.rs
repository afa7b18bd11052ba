//! Peers, hot path: the call cost of a sync function with two small arguments.
//!
//! Four variants of the same function (`user_id: u64, query: &str -> usize`), run in this order:
//! 1. `plain`: no instrumentation;
//! 2. `prefactor_span/no_client`: `#[prefactor::span]` before any client is installed;
//! 3. `tracing_instrument/keep_fields`: `#[tracing::instrument(ret)]` under a global
//!    `tracing-subscriber` registry whose layer keeps the two arguments and the return value in the
//!    span's extensions (the comparable work: both sides capture args and result);
//! 4. `prefactor_span/client`: `#[prefactor::span]` inside an agent instance, with the global
//!    client installed and its worker delivering to a local server on 127.0.0.1.
//!
//! Variants 3 and 4 are measured for an `async fn` as well (`.._async_thread_cpu`): the same
//! body, awaited by polling its future once with a no-op waker (it never waits), so the figure
//! is the instrumentation of an async call (the span future, its context, the span) without an
//! executor's own cost.
//!
//! Variant 4 is measured in chunks of `CHUNK` calls; between chunks (untimed) the client is
//! flushed, so every span is delivered and none is dropped for a full queue: the number measured
//! is the cost of a span that is really sent, not of a drop. The bench checks that nothing was
//! dropped. Its measurement time is short because every measured call is delivered to the server.
//!
//! Run: `cargo bench --bench peers_hot_path`.

#[path = "support/agent_run.rs"]
mod agent_run;
#[path = "support/chunked_timing.rs"]
mod chunked_timing;
#[path = "support/hot_path.rs"]
mod hot_path;
#[path = "support/thread_cpu.rs"]
mod thread_cpu;

use std::hint::black_box;
use std::time::Duration;

use agent_run::AgentRun;
use chunked_timing::{CHUNK, ChunkedTiming, Clock, FLUSH_TIMEOUT};
use criterion::{Criterion, criterion_group, criterion_main};
use hot_path::{
    KeepFieldsLayer, poll_once, prefactor_lookup, prefactor_lookup_async, traced_lookup, traced_lookup_async,
};
use thread_cpu::thread_cpu_time;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Layer, SubscriberExt};

#[inline(never)]
fn plain_lookup(user_id: u64, query: &str) -> usize {
    query.len() + (user_id & 7) as usize
}

fn plain(c: &mut Criterion) {
    c.bench_function("plain", |b| b.iter(|| plain_lookup(black_box(42), black_box("weather in Paris"))));
}

fn prefactor_no_client(c: &mut Criterion) {
    assert!(prefactor::__private::global_client().is_none(), "no client may be installed yet");
    c.bench_function("prefactor_span/no_client", |b| {
        b.iter(|| prefactor_lookup(black_box(42), black_box("weather in Paris")))
    });
}

fn tracing_instrument(c: &mut Criterion) {
    // Only this bench's own callsites are enabled: the runtime's own tracing calls stay off
    // (interest "never"), so they cost prefactor nothing in the variant measured after this one.
    let filter = Targets::new().with_target("peers_hot_path", Level::TRACE);
    let subscriber = tracing_subscriber::registry().with(KeepFieldsLayer.with_filter(filter));
    tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    c.bench_function("tracing_instrument/keep_fields", |b| {
        b.iter(|| traced_lookup(black_box(42), black_box("weather in Paris")))
    });
    c.bench_function("tracing_instrument/keep_fields_thread_cpu", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu_time();
            for i in 0..iters {
                black_box(traced_lookup(black_box(i), black_box("weather in Paris")));
            }
            thread_cpu_time() - start
        })
    });
    c.bench_function("tracing_instrument/keep_fields_async_thread_cpu", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu_time();
            for i in 0..iters {
                black_box(poll_once(traced_lookup_async(black_box(i), black_box("weather in Paris"))));
            }
            thread_cpu_time() - start
        })
    });
}

fn prefactor_client(c: &mut Criterion) {
    let run = AgentRun::start();
    let client = run.client();
    let _context = run.instance.context().enter();

    // Untimed warm-up: the first calls pay one-time costs (lazy statics, the worker's first
    // connection); left in, criterion would plan a handful of iterations from them.
    for i in 0..CHUNK {
        black_box(prefactor_lookup(black_box(i), black_box("weather in Paris")));
        black_box(poll_once(prefactor_lookup_async(black_box(i), black_box("weather in Paris"))));
    }
    client.flush_blocking(FLUSH_TIMEOUT).expect("warm-up delivered");

    let mut group = c.benchmark_group("prefactor_span");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let chunks = ChunkedTiming::default();
    for (name, clock, is_async) in [
        ("client", Clock::Wall, false),
        ("client_thread_cpu", Clock::ThreadCpu, false),
        ("client_async_thread_cpu", Clock::ThreadCpu, true),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                chunks.time(client, iters, clock, |batch| {
                    if is_async {
                        for i in 0..batch {
                            let call = prefactor_lookup_async(black_box(i), black_box("weather in Paris"));
                            black_box(poll_once(call));
                        }
                    } else {
                        for i in 0..batch {
                            black_box(prefactor_lookup(black_box(i), black_box("weather in Paris")));
                        }
                    }
                })
            })
        });
    }
    group.finish();

    let stats = client.stats();
    assert_eq!(stats.dropped, 0, "the measured calls must not hit a full queue: {stats:?}");
    assert_eq!(stats.failed, 0, "every span must be accepted by the server: {stats:?}");
    eprintln!("prefactor_span/client delivery: {stats:?}");
    drop(_context);
    run.end();
}

criterion_group!(benches, plain, prefactor_no_client, tracing_instrument, prefactor_client);
criterion_main!(benches);
