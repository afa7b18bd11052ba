//! Sustained span throughput over loopback: N concurrent keep-alive HTTP clients each run
//! create(active) + finish pairs against an in-process server on a temporary SQLite file
//! (WAL, group commit). Prints spans/s (one span = one create + one finish, both committed).
//!
//! Run: `cargo bench -p prefactor-server --bench throughput`
//! Knobs (env): `PF_BENCH_SPANS` (default 60000), `PF_BENCH_CLIENTS` (default 64),
//! `PF_BENCH_WORKERS` (server tokio workers, default 2), `PF_BENCH_RECORD` (request log
//! capacity, default 0 = off, as in production use).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prefactor_server::{LocalServer, ServerConfig};
use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful. Either way
    // a short run keeps `cargo test --all-targets` fast.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let spans = if quick { 200 } else { env_or("PF_BENCH_SPANS", 60_000) };
    let clients = env_or("PF_BENCH_CLIENTS", 64);
    let workers = env_or("PF_BENCH_WORKERS", 2) as usize;
    let record = env_or("PF_BENCH_RECORD", 0) as usize;
    let server = LocalServer::start(ServerConfig::default().with_worker_threads(workers).with_record_capacity(record))
        .expect("server starts");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("client runtime");
    let (elapsed, done) = runtime.block_on(drive(&server, spans, clients));
    let rate = done as f64 / elapsed.as_secs_f64();
    println!(
        "server throughput: {done} spans (create+finish) in {:.3} s with {clients} clients, {workers} server workers: {rate:.0} spans/s ({:.0} requests/s)",
        elapsed.as_secs_f64(),
        rate * 2.0
    );
    server.shutdown();
}

async fn drive(server: &LocalServer, spans: u64, clients: u64) -> (Duration, u64) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients as usize)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let base = server.base_url().to_string();
    let token = server.token().to_string();
    let (status, body) = send(
        &http,
        &format!("{base}/api/v1/agent_instance/register"),
        &token,
        json!({"agent_version": {"name": "bench"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let instance_id = body["details"]["id"].as_str().expect("instance id").to_string();
    let remaining = Arc::new(AtomicU64::new(spans));
    let completed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, base, token, instance_id) = (http.clone(), base.clone(), token.clone(), instance_id.clone());
        let (remaining, completed) = (remaining.clone(), completed.clone());
        tasks.push(tokio::spawn(async move {
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
                .is_ok()
            {
                let create = json!({"details": {"agent_instance_id": instance_id, "schema_name": "agent:llm", "status": "active",
                                                "payload": {"model": "bench", "prompt": "hello"}}});
                let (status, body) = send(&http, &format!("{base}/api/v1/agent_spans"), &token, create).await;
                assert_eq!(status, 200, "{body}");
                let span_id = body["details"]["id"].as_str().expect("span id");
                let finish = json!({"status": "complete", "result_payload": {"tokens": 42}});
                let (status, body) = send(&http, &format!("{base}/api/v1/agent_spans/{span_id}/finish"), &token, finish).await;
                assert_eq!(status, 200, "{body}");
                completed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    (started.elapsed(), completed.load(Ordering::Relaxed))
}

async fn send(http: &reqwest::Client, url: &str, token: &str, body: Value) -> (u16, Value) {
    let response = http.post(url).bearer_auth(token).json(&body).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}
