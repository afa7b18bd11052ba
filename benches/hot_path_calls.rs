//! The hot path for an instruction profile: a fixed number of calls of one variant of
//! `peers_hot_path`'s function, with nothing else on the calling thread inside the measured
//! function, so callgrind counts the instructions of exactly those calls.
//!
//! Variants (the first argument): `prefactor_sync` and `prefactor_async` (`#[prefactor::span]`
//! inside an agent instance, the global client installed, its worker delivering to a local
//! server on 127.0.0.1, as in `peers_hot_path`), `tracing_sync` and `tracing_async`
//! (`#[tracing::instrument(ret)]` under the registry with the field-keeping layer). The async
//! variants poll the future once with a no-op waker. Each variant first makes `CALLS` untimed
//! calls (lazy statics, the worker's first connection, the allocator's caches), then `CALLS`
//! calls inside [`measured_calls`], flushing the client (outside it) every `CHUNK` calls so no
//! span is dropped; the bench checks that none was.
//!
//! Instructions per call, by function:
//!
//! ```text
//! cargo bench --bench hot_path_calls --no-run   # prints the binary's path
//! valgrind --tool=callgrind --dump-instr=no --toggle-collect='hot_path_calls::measured_calls' \
//!     --callgrind-out-file=/tmp/prefactor_sync.cg target/release/deps/hot_path_calls-HASH prefactor_sync
//! callgrind_annotate --inclusive=yes /tmp/prefactor_sync.cg | head -40   # divide by CALLS
//! ```
//!
//! Run natively (`cargo bench --bench hot_path_calls`), it prints each variant's thread CPU per
//! measured call: one sample, so `peers_hot_path` is the figure to quote.

#[path = "support/agent_run.rs"]
mod agent_run;
#[path = "support/hot_path.rs"]
mod hot_path;
#[path = "support/thread_cpu.rs"]
mod thread_cpu;

use std::hint::black_box;
use std::time::Duration;

use agent_run::AgentRun;
use hot_path::{
    KeepFieldsLayer, poll_once, prefactor_lookup, prefactor_lookup_async, traced_lookup, traced_lookup_async,
};
use prefactor::Client;
use thread_cpu::thread_cpu_time;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Layer, SubscriberExt};

/// Measured calls per variant (and as many untimed ones before them).
const CALLS: u64 = 8_192;
/// Calls between two flushes: far below the queue's capacity, so nothing is dropped.
const CHUNK: u64 = 2_048;
const FLUSH_TIMEOUT: Duration = Duration::from_secs(300);
const QUERY: &str = "weather in Paris";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    PrefactorSync,
    PrefactorAsync,
    TracingSync,
    TracingAsync,
}

impl Variant {
    const ALL: [(&'static str, Variant); 4] = [
        ("prefactor_sync", Variant::PrefactorSync),
        ("prefactor_async", Variant::PrefactorAsync),
        ("tracing_sync", Variant::TracingSync),
        ("tracing_async", Variant::TracingAsync),
    ];

    fn parse(name: &str) -> Option<Variant> {
        Variant::ALL.iter().find(|(known, _)| *known == name).map(|(_, variant)| *variant)
    }

    #[inline(always)]
    fn call(self, i: u64) -> usize {
        match self {
            Variant::PrefactorSync => prefactor_lookup(black_box(i), black_box(QUERY)),
            Variant::PrefactorAsync => poll_once(prefactor_lookup_async(black_box(i), black_box(QUERY))),
            Variant::TracingSync => traced_lookup(black_box(i), black_box(QUERY)),
            Variant::TracingAsync => poll_once(traced_lookup_async(black_box(i), black_box(QUERY))),
        }
    }
}

/// `count` calls of `variant`: the function callgrind's `--toggle-collect` names.
#[inline(never)]
fn measured_calls(variant: Variant, first: u64, count: u64) -> usize {
    let mut sum = 0;
    for i in first..first + count {
        sum += black_box(variant.call(i));
    }
    sum
}

/// `CALLS` calls in chunks, the client flushed between them (a no-op without one); the calling
/// thread's CPU time of the calls alone.
fn run(variant: Variant, client: Option<&Client>, timed: bool) -> Duration {
    let mut cpu = Duration::ZERO;
    let mut done = 0;
    while done < CALLS {
        let start = thread_cpu_time();
        let sum = if timed {
            measured_calls(variant, done, CHUNK)
        } else {
            (done..done + CHUNK).map(|i| variant.call(i)).sum()
        };
        cpu += thread_cpu_time() - start;
        black_box(sum);
        if let Some(client) = client {
            client.flush_blocking(FLUSH_TIMEOUT).expect("chunk delivered");
        }
        done += CHUNK;
    }
    cpu
}

fn main() {
    let names: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let variants: Vec<Variant> = if names.is_empty() {
        Variant::ALL.iter().map(|(_, variant)| *variant).collect()
    } else {
        names.iter().map(|name| Variant::parse(name).unwrap_or_else(|| panic!("unknown variant {name:?}"))).collect()
    };

    // Only this bench's callsites are enabled: the runtime's and the server's own tracing
    // calls stay off (interest "never"), as in `peers_hot_path`.
    let filter = Targets::new().with_target("hot_path_calls", Level::TRACE);
    let subscriber = tracing_subscriber::registry().with(KeepFieldsLayer.with_filter(filter));
    tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");

    let agent = AgentRun::start();
    let client = agent.client();
    let context = agent.instance.context().enter();

    for variant in variants {
        let flushed = matches!(variant, Variant::PrefactorSync | Variant::PrefactorAsync).then_some(client);
        run(variant, flushed, false);
        let cpu = run(variant, flushed, true);
        let per_call = cpu.as_nanos() / u128::from(CALLS);
        println!("{variant:?}: {CALLS} calls, {per_call} ns of thread CPU per call");
    }

    let stats = client.stats();
    assert_eq!(stats.dropped, 0, "no call may hit a full queue: {stats:?}");
    assert_eq!(stats.failed, 0, "every span must be accepted by the server: {stats:?}");
    drop(context);
    agent.end();
}
