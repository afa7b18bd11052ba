//! Sustained span throughput over loopback: N concurrent keep-alive HTTP/1.1 connections each
//! run create(active) + finish pairs against an in-process server on a temporary SQLite file
//! (WAL, group commit). Prints spans/s (one span = one create + one finish, both committed).
//!
//! The load generator is a minimal HTTP/1.1 client on raw tokio sockets rather than reqwest:
//! it shares the same two cores with the server, and a lighter client leaves more of them to
//! the thing being measured.
//!
//! Run: `cargo bench -p prefactor-server --bench throughput`
//! Knobs (env): `PF_BENCH_SPANS` (default 100000), `PF_BENCH_CLIENTS` (default 64),
//! `PF_BENCH_WORKERS` (server tokio workers, default 2), `PF_BENCH_RECORD` (request log
//! capacity, default 0 = off).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prefactor_server::{LocalServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // Without `--bench` (e.g. `cargo test --benches`) do a short smoke run.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let spans = if quick { 200 } else { env_or("PF_BENCH_SPANS", 100_000) };
    let clients = env_or("PF_BENCH_CLIENTS", 64);
    let workers = env_or("PF_BENCH_WORKERS", 2) as usize;
    let record = env_or("PF_BENCH_RECORD", 0) as usize;
    let server = LocalServer::start(ServerConfig::default().with_worker_threads(workers).with_record_capacity(record))
        .expect("server starts");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");
    let (elapsed, done) = runtime.block_on(drive(&server, spans, clients));
    let rate = done as f64 / elapsed.as_secs_f64();
    println!(
        "server throughput: {done} spans (create+finish) in {:.3} s with {clients} connections, {workers} server workers: {rate:.0} spans/s ({:.0} requests/s)",
        elapsed.as_secs_f64(),
        rate * 2.0
    );
    server.shutdown();
}

async fn drive(server: &LocalServer, spans: u64, clients: u64) -> (Duration, u64) {
    let address = server.local_addr();
    let token = server.token().to_string();
    let mut setup = Connection::open(address, &token).await;
    let (status, body) = setup.post("/api/v1/agent_instance/register", br#"{"agent_version":{"name":"bench"}}"#).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let instance_id = string_field(&body, "id").expect("instance id");
    let remaining = Arc::new(AtomicU64::new(spans));
    let completed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (token, instance_id) = (token.clone(), instance_id.clone());
        let (remaining, completed) = (remaining.clone(), completed.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(address, &token).await;
            let create = format!(
                r#"{{"details":{{"agent_instance_id":"{instance_id}","schema_name":"agent:llm","status":"active","payload":{{"model":"bench","prompt":"hello"}}}}}}"#
            );
            let finish = br#"{"status":"complete","result_payload":{"tokens":42}}"#;
            while remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1)).is_ok() {
                let (status, body) = connection.post("/api/v1/agent_spans", create.as_bytes()).await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let span_id = string_field(&body, "id").expect("span id");
                let (status, body) = connection.post(&format!("/api/v1/agent_spans/{span_id}/finish"), finish).await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                completed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    (started.elapsed(), completed.load(Ordering::Relaxed))
}

/// The first `"name":"value"` string in a JSON text (the resource id comes before any payload).
fn string_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let end = start + text[start..].find('"')?;
    Some(text[start..end].to_string())
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    stream: TcpStream,
    auth: String,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(address: std::net::SocketAddr, token: &str) -> Connection {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection { stream, auth: format!("Bearer {token}"), buffer: Vec::with_capacity(8192) }
    }

    async fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.auth,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.stream.write_all(&request).await.expect("write");
        self.read_response().await
    }

    async fn read_response(&mut self) -> (u16, Vec<u8>) {
        let header_end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8_lossy(&self.buffer[..header_end]).to_ascii_lowercase();
        let status = head.get(9..12).and_then(|code| code.parse().ok()).expect("status line");
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .expect("content-length");
        while self.buffer.len() < header_end + length {
            self.fill().await;
        }
        let body = self.buffer[header_end..header_end + length].to_vec();
        self.buffer.drain(..header_end + length);
        (status, body)
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let read = self.stream.read(&mut chunk).await.expect("read");
        assert!(read > 0, "server closed the connection");
        self.buffer.extend_from_slice(&chunk[..read]);
    }
}
