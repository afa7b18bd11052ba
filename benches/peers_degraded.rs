//! Peers, degraded server: what an agent's instrumented call costs while the server is healthy,
//! slow (every response delayed by 1 s) or down (shut down: connections refused).
//!
//! Percentiles need every sample, which criterion does not report, so this bench has its own
//! `main` (harness = false). Each scenario runs in a child process of this bench binary (the
//! global client can be installed once per process); the parent prints one table.
//!
//! In every scenario the child starts a local server, installs the global client, creates and
//! starts an agent instance, then degrades the server, warms up, and makes its number of calls of a
//! `#[prefactor::span]` function paced at its rate (an agent making many tool and LLM
//! calls, yet below the server's capacity, so the healthy case is not measuring a full queue).
//! Each call is timed on its own. p50/p99 compare the scenarios; the goal is a degraded p99
//! within 10% of the healthy one.
//!
//! The 30 s outage pair paces 1,000 calls/s for 30 s (60,000 operations, within the default
//! queue of 65,536, so nothing is dropped): every operation waits for retries for the whole
//! outage (no retry count), and the agent's calls must not notice.
//!
//! The table also gives the calling thread's minor page faults and involuntary context switches
//! over the timed calls (a slow call is either one of those or contention with the worker), and
//! the CPU time the client's worker thread used meanwhile (on a small machine the agent shares
//! its cores with it).
//!
//! Run: `cargo bench --bench peers_degraded` (`PEERS_DEGRADED_ONLY=down_30s` for one scenario
//! and its baseline).

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use prefactor::{Config, CreateInstance, FinishStatus, Stats};
use prefactor_server::{FaultRule, LocalServer, ServerConfig};

const SCENARIO_ENV: &str = "PEERS_DEGRADED_SCENARIO";
/// Name, the scenario its ratios compare with, calls, calls per second.
const SCENARIOS: [(&str, &str, u64, u64); 5] = [
    ("healthy", "healthy", 20_000, 10_000),
    ("slow", "healthy", 20_000, 10_000),
    ("down", "healthy", 20_000, 10_000),
    ("healthy_30s", "healthy_30s", 30_000, 1_000),
    ("down_30s", "healthy_30s", 30_000, 1_000),
];
const WARM_UP_CALLS: u64 = 2_000;
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

/// Makes `calls` calls, one every `1 / rate` seconds, timing each call alone.
fn paced_calls(calls: u64, rate: u64) -> Latencies {
    let interval = Duration::from_nanos(1_000_000_000 / rate);
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

/// The calling thread's minor page faults and involuntary context switches so far (Linux,
/// from `/proc/thread-self`; zeros elsewhere): what besides its own work can slow a call down
/// (a fault on fresh memory, a preemption).
fn thread_disturbances() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): state is field 3, minflt 10.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let minflt = after_name.split_whitespace().nth(7).and_then(|f| f.parse().ok()).unwrap_or(0);
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let preempted = status
        .lines()
        .find_map(|line| line.strip_prefix("nonvoluntary_ctxt_switches:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (minflt, preempted)
}

/// CPU time the client's worker thread has used so far, in microseconds (Linux, from
/// `/proc/self/task/*/schedstat`; zero elsewhere): what the SDK spends in the background,
/// on cores the agent's threads share.
fn worker_cpu_us() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == "prefactor-worke")
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|schedstat| schedstat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()))
        .sum::<u64>()
        / 1_000
}

/// Applies the scenario; returns the server while it should keep running.
fn degrade(server: LocalServer, scenario: &str) -> Option<LocalServer> {
    match scenario {
        "healthy" | "healthy_30s" => Some(server),
        "slow" => {
            server.add_fault(FaultRule::delay("/api/v1", SLOW_DELAY_MS));
            Some(server)
        }
        "down" | "down_30s" => {
            server.shutdown();
            None
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// Runs one scenario in this process and prints one JSON line with its numbers.
fn run_scenario(scenario: &str) {
    let &(_, _, calls, rate) =
        SCENARIOS.iter().find(|(name, ..)| *name == scenario).unwrap_or_else(|| panic!("unknown scenario {scenario}"));
    let server = LocalServer::start(ServerConfig::default().with_record_capacity(0)).expect("local server starts");
    let config = Config::builder().api_url(server.base_url()).api_token(server.token()).build().expect("valid config");
    let guard = prefactor::init_blocking(config).expect("client initializes");
    let client = guard.client();
    let instance = client.create_agent_instance(CreateInstance::default()).expect("instance created");
    instance.start();
    client.flush_blocking(Duration::from_secs(10)).expect("instance registered while healthy");
    let context = instance.context().enter();

    let _server = degrade(server, scenario);
    paced_calls(WARM_UP_CALLS, rate);
    let before: Stats = client.stats();
    let (faults_before, preempted_before) = thread_disturbances();
    let worker_before = worker_cpu_us();
    let latencies = paced_calls(calls, rate);
    let worker_us = worker_cpu_us() - worker_before;
    let (faults_after, preempted_after) = thread_disturbances();
    let after: Stats = client.stats();
    drop(context);
    instance.finish(FinishStatus::Complete);

    println!(
        "{{\"scenario\":\"{scenario}\",\"calls\":{calls},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\
         \"p999_ns\":{},\"max_ns\":{},\"mean_ns\":{:.1},\"enqueued\":{},\"dropped\":{},\"faults\":{},\"preempted\":{},\"worker_us\":{}}}",
        latencies.percentile(50.0),
        latencies.percentile(90.0),
        latencies.percentile(99.0),
        latencies.percentile(99.9),
        latencies.percentile(100.0),
        latencies.mean(),
        after.enqueued - before.enqueued,
        after.dropped - before.dropped,
        faults_after - faults_before,
        preempted_after - preempted_before,
        worker_us,
    );
    // A slow or dead server would make the guard's bounded flush wait; the numbers are out.
    if scenario.starts_with("healthy") {
        drop(guard);
    } else {
        std::process::exit(0);
    }
}

struct ScenarioResult {
    name: String,
    baseline: &'static str,
    calls: u64,
    rate: u64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
    enqueued: u64,
    dropped: u64,
    faults: u64,
    preempted: u64,
    worker_us: u64,
}

fn field(line: &str, key: &str) -> f64 {
    let start = line.find(&format!("\"{key}\":")).expect("field present") + key.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}']).expect("field ends");
    rest[..end].parse().expect("numeric field")
}

fn run_child(&(scenario, baseline, calls, rate): &(&'static str, &'static str, u64, u64)) -> ScenarioResult {
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
        baseline,
        calls,
        rate,
        p50: field(line, "p50_ns") as u64,
        p99: field(line, "p99_ns") as u64,
        p999: field(line, "p999_ns") as u64,
        max: field(line, "max_ns") as u64,
        mean: field(line, "mean_ns"),
        enqueued: field(line, "enqueued") as u64,
        dropped: field(line, "dropped") as u64,
        faults: field(line, "faults") as u64,
        preempted: field(line, "preempted") as u64,
        worker_us: field(line, "worker_us") as u64,
    }
}

fn print_table(results: &[ScenarioResult]) {
    println!("each call timed alone (ns); ratios vs the healthy scenario at the same pace");
    println!(
        "| scenario | calls | per s | p50 | p99 | p99.9 | max | mean | p50 ratio | p99 ratio | ops enqueued | ops dropped | page faults | preempted | worker CPU ms |"
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in results {
        let healthy = results.iter().find(|h| h.name == r.baseline).expect("baseline measured");
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {:.1} |",
            r.name,
            r.calls,
            r.rate,
            r.p50,
            r.p99,
            r.p999,
            r.max,
            r.mean,
            r.p50 as f64 / healthy.p50 as f64,
            r.p99 as f64 / healthy.p99 as f64,
            r.enqueued,
            r.dropped,
            r.faults,
            r.preempted,
            r.worker_us as f64 / 1000.0,
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
    // `PEERS_DEGRADED_ONLY=healthy_30s,down_30s` runs only those (each with its baseline).
    let only = std::env::var("PEERS_DEGRADED_ONLY").unwrap_or_default();
    let chosen = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let results: Vec<ScenarioResult> = SCENARIOS
        .iter()
        .filter(|(name, baseline, ..)| {
            chosen(name) || SCENARIOS.iter().any(|(n, b, ..)| chosen(n) && b == name && *baseline == *name)
        })
        .map(run_child)
        .collect();
    print_table(&results);
}
