//! End-to-end workload of `bench/e2e/run.sh`: agent runs of 10 nested spans with small payloads,
//! the same shape as `bench/e2e/python_workload.py`:
//!
//! ```text
//! agent instance (#[prefactor::agent])
//!   agent:run
//!     agent:step  (x3)
//!       agent:llm
//!       agent:tool
//! ```
//!
//! Runs `--concurrency` agent runs at a time on a tokio runtime until `--spans` spans were made,
//! closes the client (everything flushed), and prints one JSON line:
//! `{"sdk":"rust","spans":N,"runs":R,"concurrency":C,"start_unix":t0,"closed_unix":t1,"seconds":..,"stats":{..}}`.
//!
//! Configuration from `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN`.
//!
//! ```text
//! PREFACTOR_API_URL=http://127.0.0.1:7878 PREFACTOR_API_TOKEN=dev \
//!     cargo run --release --example bench_e2e -- --spans 100000 --concurrency 8
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prefactor::Config;
use schemars::JsonSchema;
use serde::Serialize;

const SPANS_PER_RUN: u64 = 10;
const STEPS_PER_RUN: u32 = 3;

#[derive(Serialize, JsonSchema)]
struct Answer {
    answer: String,
}

#[derive(Serialize, JsonSchema)]
struct Done {
    done: bool,
}

#[derive(Serialize, JsonSchema)]
struct LlmReply {
    response: String,
    tokens: u32,
}

#[derive(Serialize, JsonSchema)]
struct ToolOutput {
    output: String,
}

#[prefactor::agent(name = "bench-e2e", version = "rust-v1")]
async fn agent_run(run: u64) {
    root(format!("run {run}")).await;
}

#[prefactor::span(schema = "agent:run")]
async fn root(task: String) -> Answer {
    let _ = &task;
    for index in 0..STEPS_PER_RUN {
        step(index).await;
    }
    Answer { answer: "done".to_string() }
}

#[prefactor::span(schema = "agent:step")]
async fn step(index: u32) -> Done {
    llm("small-model", format!("step {index}")).await;
    tool("search", format!("q{index}")).await;
    Done { done: true }
}

#[prefactor::span(schema = "agent:llm")]
async fn llm(model: &str, prompt: String) -> LlmReply {
    let _ = (model, &prompt);
    LlmReply { response: "ok".to_string(), tokens: 42 }
}

#[prefactor::span(schema = "agent:tool")]
async fn tool(tool: &str, query: String) -> ToolOutput {
    let _ = (tool, &query);
    ToolOutput { output: "result".to_string() }
}

struct Args {
    spans: u64,
    concurrency: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { spans: 100_000, concurrency: 8 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number: u64 = value.parse().map_err(|_| format!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--spans" => args.spans = number,
            "--concurrency" => args.concurrency = number.max(1),
            other => return Err(format!("unknown flag {other} (expected --spans, --concurrency)")),
        }
    }
    Ok(args)
}

/// CPU time (user + system, all threads) this process used so far, in seconds; 0 when
/// `/proc/self/stat` is unavailable (not Linux).
fn process_cpu_seconds() -> f64 {
    const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / CLOCK_TICKS_PER_SECOND
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

async fn run_all(runs: u64, concurrency: u64) {
    let next_run = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next_run = Arc::clone(&next_run);
            tokio::spawn(async move {
                loop {
                    let run = next_run.fetch_add(1, Ordering::Relaxed);
                    if run >= runs {
                        break;
                    }
                    agent_run(run).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker task finished");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    // The agent here does no real work, so it makes spans far faster than any server stores
    // them: size the queue for the whole workload so that the run measures delivery, not drops.
    let queue_capacity = usize::try_from(args.spans.saturating_mul(4)).unwrap_or(usize::MAX);
    // close() waits for everything to be stored; 100,000 spans take longer than its default 30 s.
    let config = Config::from_env()?
        .queue_capacity(queue_capacity.max(65_536))
        .close_timeout(Duration::from_secs(600))
        .build()?;
    let guard = prefactor::init(config).await?;
    let runs = args.spans / SPANS_PER_RUN;

    let cpu_before = process_cpu_seconds();
    let start_unix = unix_now();
    let start = Instant::now();
    run_all(runs, args.concurrency).await;
    let report = guard.client().close().await?;
    let seconds = start.elapsed().as_secs_f64();
    let closed_unix = unix_now();
    let cpu_seconds = process_cpu_seconds() - cpu_before;

    let stats = guard.client().stats();
    println!(
        "{{\"sdk\":\"rust\",\"delivery\":\"{}\",\"spans\":{},\"runs\":{runs},\"concurrency\":{},\"start_unix\":{start_unix:.6},\
         \"closed_unix\":{closed_unix:.6},\"seconds\":{seconds:.6},\"cpu_seconds\":{cpu_seconds:.2},\"stats\":{{\"enqueued\":{},\"sent\":{},\
         \"retried\":{},\"dropped\":{},\"failed\":{}}}}}",
        guard.client().config().delivery(),
        runs * SPANS_PER_RUN,
        args.concurrency,
        stats.enqueued,
        stats.sent,
        stats.retried,
        stats.dropped,
        stats.failed,
    );
    eprintln!("close report: {report:?}");
    if stats.lost() > 0 {
        return Err(format!("{} operations were not delivered: {stats:?}", stats.lost()).into());
    }
    Ok(())
}
