//! Hot path of the runtime: open + close of a span, with the worker running against a local
//! server.
//!
//! How the queue is kept honest: spans are measured in batches of `BATCH`. Each batch runs on
//! a fresh, initialized client whose worker sends to the local server during the measurement.
//! The queue holds every operation of a batch (capacity above 2 × `BATCH`; a batch that
//! drops anything aborts the benchmark), so the measured path is always a real enqueue, never
//! the cheaper drop path. After each batch the client is shut down with a zero deadline
//! (untimed), so undelivered spans do not pile up across batches: the producer is far faster
//! than any HTTP delivery. `delivery/1000_spans` measures that delivery end to end.
//!
//! `sampling/*` opens and closes the same span in runs sampling left out: `unsampled` (no
//! tail rule: nothing is queued) and `held` (a tail rule is on: queued, then held by the worker
//! until the run ends), next to `sampled` (the same span in a run that is sent), in one run so
//! that their ratio holds on a loaded machine.
//!
//! Two clocks: `wall` is the usual elapsed time; `thread_cpu` is the CPU time of the calling
//! thread (`CLOCK_THREAD_CPUTIME_ID`), which leaves out time the thread spent preempted. On a
//! busy 2-core machine the worker thread and the server compete with the measured thread,
//! and `thread_cpu` is the cost the agent's own thread pays.

// The workspace benches' thread CPU clock (one helper for every bench).
#[path = "../../benches/support/thread_cpu.rs"]
mod thread_cpu;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use prefactor_runtime::{AgentInstanceHandle, Client, Config, ConfigBuilder, CreateInstance, HoldBudget, Payload};
use prefactor_server::{LocalServer, ServerConfig};
use serde::Serialize;

const BATCH: u64 = 20_000;

#[derive(Serialize)]
struct LlmCall<'a> {
    model: &'a str,
    prompt: &'a str,
    temperature: f64,
    max_tokens: u32,
    stream: bool,
}

fn config(server: &LocalServer) -> ConfigBuilder {
    Config::builder().api_url(server.base_url()).api_token(server.token()).queue_capacity(4 * BATCH as usize)
}

/// How the runs of a measurement are sampled.
#[derive(Clone, Copy)]
enum Sampling {
    /// Sent (the default).
    Sampled,
    /// Left out, no tail rule: nothing queued.
    Unsampled,
    /// Left out, the failure rule on: queued and held by the worker (a budget above a batch,
    /// so the run stays held).
    Held,
}

fn sampled(builder: ConfigBuilder, sampling: Sampling) -> ConfigBuilder {
    match sampling {
        Sampling::Sampled => builder,
        Sampling::Unsampled => builder.sample_rate(0.0).keep_failed_runs(false),
        Sampling::Held => {
            let ops = 4 * BATCH;
            builder
                .sample_rate(0.0)
                .queue_capacity(4 * ops as usize)
                .sample_hold_budget(HoldBudget::default().per_run(ops, 1 << 30).total(ops, 1 << 30))
        }
    }
}

fn fresh_instance(server: &LocalServer) -> (Client, AgentInstanceHandle) {
    fresh_sampled_instance(server, Sampling::Sampled)
}

fn fresh_sampled_instance(server: &LocalServer, sampling: Sampling) -> (Client, AgentInstanceHandle) {
    let config = sampled(config(server), sampling).build().expect("valid config");
    let client = Client::new(config).expect("client");
    client.initialize_blocking().expect("initialize");
    let instance = client.create_agent_instance(CreateInstance::default()).expect("instance");
    instance.start();
    (client, instance)
}

#[derive(Clone, Copy)]
enum Clock {
    Wall,
    ThreadCpu,
}

/// A point in time of `clock`.
fn now(clock: Clock) -> Duration {
    match clock {
        Clock::Wall => {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            START.get_or_init(Instant::now).elapsed()
        }
        Clock::ThreadCpu => thread_cpu::thread_cpu_time(),
    }
}

/// Runs `iters` iterations of `one` in batches, timing only the iterations.
fn measure(server: &LocalServer, clock: Clock, iters: u64, one: impl Fn(&AgentInstanceHandle)) -> Duration {
    measure_sampled(server, Sampling::Sampled, clock, iters, one)
}

/// [`measure`] in runs sampled as `sampling` says.
fn measure_sampled(
    server: &LocalServer,
    sampling: Sampling,
    clock: Clock,
    iters: u64,
    one: impl Fn(&AgentInstanceHandle),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        left -= n;
        let (client, instance) = fresh_sampled_instance(server, sampling);
        let started = now(clock);
        for _ in 0..n {
            one(&instance);
        }
        total += now(clock) - started;
        let stats = client.stats();
        assert_eq!(stats.dropped, 0, "the queue dropped operations: the measurement would be wrong");
        let _ = client.shutdown_blocking(Duration::ZERO);
    }
    total
}

fn hot_path(c: &mut Criterion) {
    let server = LocalServer::start(ServerConfig::default()).expect("server");
    let mut group = c.benchmark_group("span_open_close");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for (clock, label) in [(Clock::Wall, "wall"), (Clock::ThreadCpu, "thread_cpu")] {
        group.bench_function(format!("no_payload/{label}"), |b| {
            b.iter_custom(|iters| {
                measure(&server, clock, iters, |instance| {
                    let span = instance.span(black_box("bench:empty")).start();
                    black_box(span.id());
                })
            })
        });
        group.bench_function(format!("payload_5_fields/{label}"), |b| {
            b.iter_custom(|iters| {
                measure(&server, clock, iters, |instance| {
                    let call = LlmCall {
                        model: "claude-sonnet",
                        prompt: "Plan the next step",
                        temperature: 0.2,
                        max_tokens: 1024,
                        stream: false,
                    };
                    let payload = Payload::from_serialize(black_box(&call)).expect("serializable");
                    let span = instance.span(black_box("bench:llm")).payload(payload).start();
                    black_box(span.id());
                })
            })
        });
    }
    group.finish();

    let mut sampling = c.benchmark_group("sampling");
    sampling.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for (mode, label) in [(Sampling::Sampled, "sampled"), (Sampling::Unsampled, "unsampled"), (Sampling::Held, "held")]
    {
        sampling.bench_function(format!("{label}/thread_cpu"), |b| {
            b.iter_custom(|iters| {
                measure_sampled(&server, mode, Clock::ThreadCpu, iters, |instance| {
                    let span = instance.span(black_box("bench:empty")).start();
                    black_box(span.id());
                })
            })
        });
    }
    sampling.finish();

    let mut delivery = c.benchmark_group("delivery");
    delivery.sample_size(10).measurement_time(Duration::from_secs(10));
    delivery.bench_function("1000_spans", |b| {
        let (client, instance) = fresh_instance(&server);
        b.iter(|| {
            for _ in 0..1000 {
                drop(instance.span("bench:delivered").start());
            }
            client.flush_blocking(Duration::from_secs(60)).expect("delivered");
        });
        assert_eq!(client.stats().failed + client.stats().dropped, 0);
    });
    delivery.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
