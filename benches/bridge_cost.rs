//! Cost of the `tracing` bridge per span: the same `#[tracing::instrument]` function (two
//! arguments) called inside an agent run, under a `tracing-subscriber` registry alone and under
//! the registry with `prefactor::tracing_bridge::PrefactorLayer`, in the same run. The
//! difference is what the bridge adds: a Prefactor span per `tracing` span (payload from the
//! fields, context entered and exited with the span, create and finish queued), delivered by
//! the client's worker to a local server on 127.0.0.1.
//!
//! Figures are the calling thread's CPU time (the worker and the server share the 2 cores).
//! Spans are measured in chunks of `CHUNK`; between chunks (untimed) the client is flushed, so
//! every span is delivered and none is dropped for a full queue; the bench checks that.
//!
//! Run: `cargo bench --bench bridge_cost --features tracing-bridge`.

#[path = "support/agent_run.rs"]
mod agent_run;
#[path = "support/chunked_timing.rs"]
mod chunked_timing;
#[path = "support/thread_cpu.rs"]
mod thread_cpu;

use std::hint::black_box;
use std::time::Duration;

use agent_run::AgentRun;
use chunked_timing::{CHUNK, ChunkedTiming, Clock, FLUSH_TIMEOUT};
use criterion::{Criterion, criterion_group, criterion_main};
use prefactor::tracing_bridge::PrefactorLayer;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

#[inline(never)]
#[tracing::instrument]
fn traced_lookup(user_id: u64, query: &str) -> usize {
    query.len() + (user_id & 7) as usize
}

fn bridge(c: &mut Criterion) {
    let run = AgentRun::start();
    let client = run.client();
    let _context = run.instance.context().enter();

    // Only this bench's callsites are enabled in both variants: the runtime's and the server's
    // own tracing calls stay off, so the variants differ by the bridge alone.
    let filter = Targets::new().with_target("bridge_cost", Level::TRACE);
    let registry_only = tracing_subscriber::registry().with(filter.clone());
    let bridged = tracing_subscriber::registry().with(filter).with(PrefactorLayer::new());

    let mut group = c.benchmark_group("instrument");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let chunks = ChunkedTiming::default();
    let mut measure = |name: &str, dispatch: tracing::Dispatch| {
        let _default = tracing::dispatcher::set_default(&dispatch);
        // Untimed warm-up: first calls pay one-time costs (callsite registration, lazy statics).
        for i in 0..CHUNK {
            black_box(traced_lookup(black_box(i), black_box("weather in Paris")));
        }
        client.flush_blocking(FLUSH_TIMEOUT).expect("warm-up delivered");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                chunks.time(client, iters, Clock::ThreadCpu, |batch| {
                    for i in 0..batch {
                        black_box(traced_lookup(black_box(i), black_box("weather in Paris")));
                    }
                })
            })
        });
    };
    measure("registry_thread_cpu", tracing::Dispatch::new(registry_only));
    let enqueued = client.stats().enqueued;
    measure("bridged_thread_cpu", tracing::Dispatch::new(bridged));
    group.finish();

    let stats = client.stats();
    assert!(stats.enqueued > enqueued, "the bridged variant must record spans: {stats:?}");
    assert_eq!(stats.dropped, 0, "the measured calls must not hit a full queue: {stats:?}");
    assert_eq!(stats.failed, 0, "every span must be accepted by the server: {stats:?}");
    eprintln!("instrument/bridged delivery: {stats:?}");
    drop(_context);
    run.end();
}

criterion_group!(benches, bridge);
criterion_main!(benches);
