//! Peers, memory: peak RSS while 1,000,000 spans are attempted with the server down and the
//! default queue capacity. Memory must stay bounded by the queue: operations beyond its capacity
//! are dropped (and counted), never buffered.
//!
//! Custom `main` (harness = false): the figure is a peak (`VmHWM` from `/proc/self/status`), not
//! a time. Steps: start a local server, install the global client with the default config,
//! create and start an agent instance, make warm-up calls while healthy and flush them, shut the
//! server down, read the baseline peak, call a `#[prefactor::span]` function `SPANS` times, read
//! the peak again. The growth divided by the operations still held in the queue gives bytes per
//! queued operation; the stats give the drops.
//!
//! Run: `cargo bench --bench peers_memory`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use prefactor::{Config, CreateInstance};
use prefactor_server::{LocalServer, ServerConfig};

const SPANS: u64 = 1_000_000;
const WARM_UP_SPANS: u64 = 1_000;

#[inline(never)]
#[prefactor::span(schema = "bench:lookup")]
fn lookup(user_id: u64, query: &str) -> usize {
    query.len() + (user_id & 7) as usize
}

/// A `kB` line of `/proc/self/status` (`VmHWM`: peak resident set; `VmRSS`: current), in bytes.
fn proc_status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status readable");
    let line =
        status.lines().find(|line| line.starts_with(key)).unwrap_or_else(|| panic!("{key} in /proc/self/status"));
    let kib: u64 = line.split_whitespace().nth(1).and_then(|value| value.parse().ok()).expect("a number of kB");
    kib * 1024
}

fn calls(range: std::ops::Range<u64>) {
    for i in range {
        black_box(lookup(black_box(i), black_box("weather in Paris")));
    }
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--test`: nothing to measure there.
    if std::env::args().any(|arg| arg == "--test" || arg == "--list") {
        return;
    }
    let server = LocalServer::start(ServerConfig::default().with_record_capacity(0)).expect("local server starts");
    let config = Config::builder().api_url(server.base_url()).api_token(server.token()).build().expect("valid config");
    let capacity = config.queue_capacity();
    let guard = prefactor::init_blocking(config).expect("client initializes");
    let client = guard.client();
    let instance = client.create_agent_instance(CreateInstance::default()).expect("instance created");
    instance.start();
    let context = instance.context().enter();

    calls(0..WARM_UP_SPANS);
    client.flush_blocking(Duration::from_secs(30)).expect("warm-up delivered while healthy");
    server.shutdown();

    let before = client.stats();
    let baseline_peak = proc_status_bytes("VmHWM:");
    let start = Instant::now();
    calls(0..SPANS);
    let elapsed = start.elapsed();
    let peak = proc_status_bytes("VmHWM:");
    let after = client.stats();
    drop(context);

    let enqueued = after.enqueued - before.enqueued;
    let dropped = after.dropped - before.dropped;
    let settled = (after.sent + after.failed) - (before.sent + before.failed);
    let held = enqueued.saturating_sub(settled);
    let growth = peak.saturating_sub(baseline_peak);
    println!(
        "spans attempted:            {SPANS} in {:.3} s ({:.0} ns/span)",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / SPANS as f64
    );
    println!("queue capacity (ops):       {capacity}");
    println!("ops enqueued / dropped:     {enqueued} / {dropped}");
    println!("ops held in the queue:      {held}");
    println!("peak RSS before / after:    {} / {} bytes", baseline_peak, peak);
    println!("peak RSS growth:            {growth} bytes");
    if held > 0 {
        println!("bytes per held op:          {:.0}", growth as f64 / held as f64);
        println!("bytes per held span (2 ops): {:.0}", 2.0 * growth as f64 / held as f64);
    }
    assert!(held as usize <= capacity, "the queue holds at most its capacity");
    assert!(dropped > 0, "with the server down, 1,000,000 spans must overflow the queue");
    // The server is gone: skip the guard's bounded flush, the numbers are out.
    std::process::exit(0);
}
