//! Peers, degraded server: what an agent's instrumented call costs while the server is healthy,
//! slow (every response delayed by 1 s) or down (shut down: connections refused).
//!
//! Percentiles need every sample, which criterion does not report, so this bench has its own
//! `main` (harness = false). Each scenario runs in a child process of this bench binary (the
//! global client can be installed once per process); the parent prints one table.
//!
//! In every scenario the child starts a local server, installs the global client, creates and
//! starts an agent instance, then degrades the server, warms up, and makes `CALLS` calls of a
//! `#[prefactor::span]` function paced at `RATE_PER_SECOND` (an agent making many tool and LLM
//! calls, yet below the server's capacity, so the healthy case is not measuring a full queue).
//! Each call is timed on its own. p50/p99 compare the scenarios; the goal is a degraded p99
//! within 10% of the healthy one.
//!
//! Run: `cargo bench --bench peers_degraded`.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use prefactor::{Config, CreateInstance, FinishStatus, Stats};
use prefactor_server::{FaultRule, LocalServer, ServerConfig};

const SCENARIO_ENV: &str = "PEERS_DEGRADED_SCENARIO";
const SCENARIOS: [&str; 3] = ["healthy", "slow", "down"];
const WARM_UP_CALLS: u64 = 2_000;
const CALLS: u64 = 20_000;
const RATE_PER_SECOND: u64 = 10_000;
const SLOW_DELAY_MS: u64 = 1_000;

#[inline(never)]
#[prefactor::span(schema = "bench:lookup")]
fn lookup(user_id: u64, query: &str) -> usize {
    query.len() + (user_id & 7) as usize
}

/// Per-call latencies of one scenario, in nanoseconds, sorted.
struct Latencies(Vec<u64>);

impl Latencies {
    fn percentile(&self, p: f64) -> u64 {
        let last = self.0.len() - 1;
        let index = ((last as f64) * p / 100.0).round() as usize;
        self.0[index.min(last)]
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<u64>() as f64 / self.0.len() as f64
    }
}

/// Makes `calls` calls, one every `1 / RATE_PER_SECOND` seconds, timing each call alone.
fn paced_calls(calls: u64) -> Latencies {
    let interval = Duration::from_nanos(1_000_000_000 / RATE_PER_SECOND);
    let mut samples = Vec::with_capacity(calls as usize);
    let mut next = Instant::now();
    for i in 0..calls {
        let start = Instant::now();
        black_box(lookup(black_box(i), black_box("weather in Paris")));
        samples.push(start.elapsed().as_nanos() as u64);
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
    }
    samples.sort_unstable();
    Latencies(samples)
}

/// Applies the scenario; returns the server while it should keep running.
fn degrade(server: LocalServer, scenario: &str) -> Option<LocalServer> {
    match scenario {
        "healthy" => Some(server),
        "slow" => {
            server.add_fault(FaultRule::delay("/api/v1", SLOW_DELAY_MS));
            Some(server)
        }
        "down" => {
            server.shutdown();
            None
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// Runs one scenario in this process and prints one JSON line with its numbers.
fn run_scenario(scenario: &str) {
    let server = LocalServer::start(ServerConfig::default().with_record_capacity(0)).expect("local server starts");
    let config = Config::builder().api_url(server.base_url()).api_token(server.token()).build().expect("valid config");
    let guard = prefactor::init_blocking(config).expect("client initializes");
    let client = prefactor::global_client().expect("client installed");
    let instance = client.create_agent_instance(CreateInstance::default()).expect("instance created");
    instance.start();
    client.flush_blocking(Duration::from_secs(10)).expect("instance registered while healthy");
    let context = instance.context().enter();

    let _server = degrade(server, scenario);
    paced_calls(WARM_UP_CALLS);
    let before: Stats = client.stats();
    let latencies = paced_calls(CALLS);
    let after: Stats = client.stats();
    drop(context);
    instance.finish(FinishStatus::Complete);

    println!(
        "{{\"scenario\":\"{scenario}\",\"calls\":{CALLS},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\
         \"p999_ns\":{},\"max_ns\":{},\"mean_ns\":{:.1},\"enqueued\":{},\"dropped\":{}}}",
        latencies.percentile(50.0),
        latencies.percentile(90.0),
        latencies.percentile(99.0),
        latencies.percentile(99.9),
        latencies.percentile(100.0),
        latencies.mean(),
        after.enqueued - before.enqueued,
        after.dropped - before.dropped,
    );
    // A slow or dead server would make the guard's bounded flush wait; the numbers are out.
    if scenario == "healthy" {
        drop(guard);
    } else {
        std::process::exit(0);
    }
}

struct ScenarioResult {
    name: String,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
    enqueued: u64,
    dropped: u64,
}

fn field(line: &str, key: &str) -> f64 {
    let start = line.find(&format!("\"{key}\":")).expect("field present") + key.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}']).expect("field ends");
    rest[..end].parse().expect("numeric field")
}

fn run_child(scenario: &str) -> ScenarioResult {
    let exe = std::env::current_exe().expect("bench binary path");
    let output = Command::new(exe).env(SCENARIO_ENV, scenario).output().expect("scenario process runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|line| line.starts_with("{\"scenario\"")).unwrap_or_else(|| {
        panic!(
            "scenario {scenario} printed no result ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    ScenarioResult {
        name: scenario.to_string(),
        p50: field(line, "p50_ns") as u64,
        p99: field(line, "p99_ns") as u64,
        p999: field(line, "p999_ns") as u64,
        max: field(line, "max_ns") as u64,
        mean: field(line, "mean_ns"),
        enqueued: field(line, "enqueued") as u64,
        dropped: field(line, "dropped") as u64,
    }
}

fn print_table(results: &[ScenarioResult]) {
    let healthy = &results[0];
    println!("{CALLS} calls per scenario at {RATE_PER_SECOND}/s, each timed alone (ns); ratios vs healthy");
    println!("| scenario | p50 | p99 | p99.9 | max | mean | p50 ratio | p99 ratio | ops enqueued | ops dropped |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in results {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            r.name,
            r.p50,
            r.p99,
            r.p999,
            r.max,
            r.mean,
            r.p50 as f64 / healthy.p50 as f64,
            r.p99 as f64 / healthy.p99 as f64,
            r.enqueued,
            r.dropped,
        );
    }
}

fn main() {
    if let Ok(scenario) = std::env::var(SCENARIO_ENV) {
        run_scenario(&scenario);
        return;
    }
    // `cargo test --benches` runs bench binaries with `--test`: nothing to measure there.
    if std::env::args().any(|arg| arg == "--test" || arg == "--list") {
        return;
    }
    let results: Vec<ScenarioResult> = SCENARIOS.iter().map(|s| run_child(s)).collect();
    print_table(&results);
}
