//! Sustained span throughput over loopback: N concurrent keep-alive HTTP/1.1 connections each
//! run create(active) + finish pairs against an in-process server on a temporary SQLite file
//! (WAL, group commit). Prints spans/s (one span = one create + one finish, both committed).
//!
//! The load generator (`PF_BENCH_CLIENT=raw`, the default) is a minimal HTTP/1.1 keep-alive
//! client on raw tokio sockets: it writes each request as one pre-formatted buffer and reads
//! the answer by `Content-Length`, checking the status (and taking the span id from a create
//! answer). That is what wrk/oha-style load generators do: the client shares the same two
//! cores with the server, so a cheap one leaves them to the thing being measured.
//! `PF_BENCH_CLIENT=reqwest` drives the same traffic through reqwest (one client and so one
//! keep-alive connection per task), i.e. what an SDK-like client costs on top.
//!
//! Correctness is checked, not assumed: at the end the bench counts the spans in the SQLite
//! file and fails unless exactly the expected number are stored, all `complete` with a
//! `finished_at` — a fast but wrong run (lost writes, unfinished spans) does not pass.
//!
//! Run: `cargo bench -p prefactor-server --bench throughput`
//! Knobs (env): `PF_BENCH_SPANS` (default 100000), `PF_BENCH_CLIENTS` (default 64),
//! `PF_BENCH_WORKERS` (server tokio workers, default 2), `PF_BENCH_CLIENT` (`raw` or `reqwest`), `PF_BENCH_RECORD` (request log
//! capacity, default 0 = off), `PF_BENCH_MODE` (`pairs`, the default: create active + finish
//! with empty schemas; `e2e`: the request mix of `examples/bench_e2e.rs` — an instance
//! registered with a schema version declaring four span types with JSON Schemas and templates,
//! and each span sent as ONE create-as-terminal request with a client id, small payload and
//! result payload, timestamps, an idempotency key, and (9 spans in 10) a parent span id;
//! `bulk`: the e2e spans, `PF_BENCH_BATCH` (default 100) of them per `POST /api/v1/bulk` as
//! `agent_spans/create` items, which is what the SDK's bulk delivery sends, with `Prefer:
//! return=minimal` as the SDK sends it; `PF_BENCH_FULL_OUTPUTS=1` leaves the header out).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prefactor_protocol::Pfid;
use prefactor_server::{LocalServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The allocator the `prefactor-server` binary uses (see its `main.rs`), so the in-process
/// server here costs what the real one costs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let mode = match std::env::var("PF_BENCH_MODE").as_deref() {
        Ok("e2e") => Mode::E2e,
        Ok("bulk") => Mode::Bulk(env_or("PF_BENCH_BATCH", 100).max(1)),
        _ => Mode::Pairs,
    };
    let client = match std::env::var("PF_BENCH_CLIENT").as_deref() {
        Ok("reqwest") => ClientKind::Reqwest,
        _ => ClientKind::Raw,
    };
    let prefer = if std::env::var("PF_BENCH_FULL_OUTPUTS").is_ok_and(|v| v == "1") { "" } else { "return=minimal" };
    let (elapsed, done, requests) = runtime.block_on(drive(&server, spans, clients, mode, client, prefer));
    assert_eq!(done, spans, "every span was sent");
    verify_stored(&server, spans);
    let rate = done as f64 / elapsed.as_secs_f64();
    let shape = match mode {
        Mode::Pairs => "create+finish".to_string(),
        Mode::E2e => "e2e: create-as-terminal".to_string(),
        Mode::Bulk(batch) => format!("bulk: {batch} create-as-terminal items per request"),
    };
    println!(
        "server throughput: {done} spans ({shape}) in {:.3} s with {clients} {client:?} connections, {workers} server workers: {rate:.0} spans/s ({:.0} requests/s); all {spans} stored finished",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    server.shutdown();
}

/// Fails unless the database holds exactly `spans` spans, every one `complete` with a
/// `finished_at` (read through a second connection; the writer has committed every answer).
fn verify_stored(server: &LocalServer, spans: u64) {
    let path = server.db_path().expect("the bench server uses a database file");
    let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the bench database");
    let (total, finished): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'complete' AND finished_at IS NOT NULL) FROM agent_spans",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("count the stored spans");
    let expected = i64::try_from(spans).expect("span count fits SQLite");
    assert_eq!((total, finished), (expected, expected), "stored spans (total, finished)");
}

/// A span type as `#[prefactor::span]` declares it: schemars-style schemas and a template.
fn span_type(name: &str, params: &[(&str, &str)], result: &[(&str, &str)], template: &str) -> String {
    let schema = |title: &str, fields: &[(&str, &str)]| {
        let properties: Vec<String> = fields.iter().map(|(f, t)| format!(r#""{f}":{{"type":"{t}"}}"#)).collect();
        let required: Vec<String> = fields.iter().map(|(f, _)| format!(r#""{f}""#)).collect();
        format!(
            r#"{{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"{title}","type":"object","properties":{{{}}},"required":[{}]}}"#,
            properties.join(","),
            required.join(",")
        )
    };
    format!(
        r#"{{"name":"{name}","title":"{name}","params_schema":{},"result_schema":{},"template":"{template}"}}"#,
        schema("Params", params),
        schema("Result", result)
    )
}

/// The register body of `examples/bench_e2e.rs`'s agent (four span types).
fn e2e_register_body() -> String {
    let types = [
        span_type("agent:run", &[("task", "string")], &[("answer", "string")], "run {{ task }}"),
        span_type("agent:step", &[("index", "integer")], &[("done", "boolean")], "step {{ index }}"),
        span_type(
            "agent:llm",
            &[("model", "string"), ("prompt", "string")],
            &[("response", "string"), ("tokens", "integer")],
            "{{ model }}: {{ tokens }} tokens",
        ),
        span_type("agent:tool", &[("tool", "string"), ("query", "string")], &[("output", "string")], "{{ tool }}"),
    ];
    format!(
        r#"{{"agent_version":{{"name":"bench-e2e","external_identifier":"rust-v1"}},"agent_schema_version":{{"external_identifier":"bench-e2e-schemas","span_type_schemas":[{}]}},"idempotency_key":"register-bench"}}"#,
        types.join(",")
    )
}

/// One create-as-terminal span body of the e2e mix (`index` 0 is the run's root).
fn e2e_span_body(instance_id: &str, id: &str, root: &str, index: u64) -> String {
    let (schema, payload, result) = match index {
        0 => ("agent:run", r#"{"task":"run 1"}"#, r#"{"answer":"done"}"#),
        n if n % 3 == 1 => ("agent:step", r#"{"index":1}"#, r#"{"done":true}"#),
        n if n % 3 == 2 => {
            ("agent:llm", r#"{"model":"small-model","prompt":"step 1"}"#, r#"{"response":"ok","tokens":42}"#)
        }
        _ => ("agent:tool", r#"{"tool":"search","query":"q1"}"#, r#"{"output":"result"}"#),
    };
    let parent = if index == 0 { String::new() } else { format!(r#","parent_span_id":"{root}""#) };
    format!(
        r#"{{"details":{{"id":"{id}","agent_instance_id":"{instance_id}","schema_name":"{schema}","status":"complete","payload":{payload},"result_payload":{result}{parent},"started_at":"2026-11-26T12:00:00.000000Z","finished_at":"2026-11-26T12:00:00.001000Z","idempotency_key":"create-{id}"}},"idempotency_key":"create-{id}"}}"#
    )
}

/// The request mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// create(active) + finish per span.
    Pairs,
    /// One create-as-terminal request per span.
    E2e,
    /// Create-as-terminal items, this many per bulk request.
    Bulk(u64),
}

/// One bulk `agent_spans/create` item: the e2e span body plus `_type` (its key is already there).
fn bulk_item(instance_id: &str, id: &str, root: &str, index: u64) -> String {
    let body = e2e_span_body(instance_id, id, root, index);
    format!(r#"{{"_type":"agent_spans/create",{}"#, &body[1..])
}

/// Takes up to `want` spans from the shared budget; 0 when it is used up.
fn take(remaining: &AtomicU64, want: u64) -> u64 {
    let mut taken = 0;
    let _ = remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        taken = left.min(want);
        (taken > 0).then(|| left - taken)
    });
    taken
}

/// Which HTTP client drives the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    /// The minimal keep-alive client below ([`Connection`]).
    Raw,
    /// reqwest, one client (one keep-alive connection) per task.
    Reqwest,
}

/// Drives the load; `prefer` is the `Prefer` header of bulk requests (none when empty).
async fn drive(
    server: &LocalServer,
    spans: u64,
    clients: u64,
    mode: Mode,
    kind: ClientKind,
    prefer: &'static str,
) -> (Duration, u64, u64) {
    let e2e = mode != Mode::Pairs;
    let address = server.local_addr();
    let token = server.token().to_string();
    let mut setup = Client::open(kind, address, &token).await;
    let register = if e2e { e2e_register_body() } else { r#"{"agent_version":{"name":"bench"}}"#.to_string() };
    let (status, body) = setup.post("/api/v1/agent_instance/register", register.as_bytes()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let instance_id = string_field(&body, "id").expect("instance id");
    let remaining = Arc::new(AtomicU64::new(spans));
    let completed = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (token, instance_id) = (token.clone(), instance_id.clone());
        let (remaining, completed, requests) = (remaining.clone(), completed.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = Client::open(kind, address, &token).await;
            let create = format!(
                r#"{{"details":{{"agent_instance_id":"{instance_id}","schema_name":"agent:llm","status":"active","payload":{{"model":"bench","prompt":"hello"}}}}}}"#
            );
            let finish = br#"{"status":"complete","result_payload":{"tokens":42}}"#;
            let partition = Pfid::random_partition();
            let mut root = String::new();
            let mut index = 0u64;
            if let Mode::Bulk(batch) = mode {
                loop {
                    let count = take(&remaining, batch);
                    if count == 0 {
                        break;
                    }
                    let mut body = String::with_capacity(count as usize * 512);
                    body.push_str(r#"{"items":["#);
                    for n in 0..count {
                        let id = Pfid::generate(partition).encode().as_str().to_string();
                        if index.is_multiple_of(10) {
                            root = id.clone();
                        }
                        if n > 0 {
                            body.push(',');
                        }
                        body.push_str(&bulk_item(&instance_id, &id, &root, index % 10));
                        index += 1;
                    }
                    body.push_str("]}");
                    let (status, answer) = connection.post_with("/api/v1/bulk", body.as_bytes(), prefer).await;
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                    assert!(
                        !answer.windows(17).any(|w| w == br#""status":"error""#),
                        "{}",
                        String::from_utf8_lossy(&answer)
                    );
                    requests.fetch_add(1, Ordering::Relaxed);
                    completed.fetch_add(count, Ordering::Relaxed);
                }
                return;
            }
            while remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1)).is_ok() {
                if e2e {
                    let id = Pfid::generate(partition).encode().as_str().to_string();
                    if index.is_multiple_of(10) {
                        root = id.clone();
                    }
                    let body = e2e_span_body(&instance_id, &id, &root, index % 10);
                    let (status, answer) = connection.post("/api/v1/agent_spans", body.as_bytes()).await;
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                    index += 1;
                    requests.fetch_add(1, Ordering::Relaxed);
                    completed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let (status, body) = connection.post("/api/v1/agent_spans", create.as_bytes()).await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let span_id = string_field(&body, "id").expect("span id");
                let (status, body) = connection.post(&format!("/api/v1/agent_spans/{span_id}/finish"), finish).await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                requests.fetch_add(2, Ordering::Relaxed);
                completed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    (started.elapsed(), completed.load(Ordering::Relaxed), requests.load(Ordering::Relaxed))
}

/// The first `"name":"value"` string in a JSON text (the resource id comes before any payload).
fn string_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let end = start + text[start..].find('"')?;
    Some(text[start..end].to_string())
}

/// One load-generating connection, raw or through reqwest.
enum Client {
    Raw(Connection),
    Reqwest { client: reqwest::Client, base: String, auth: String },
}

impl Client {
    async fn open(kind: ClientKind, address: std::net::SocketAddr, token: &str) -> Client {
        match kind {
            ClientKind::Raw => Client::Raw(Connection::open(address, token).await),
            ClientKind::Reqwest => Client::Reqwest {
                client: reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .tcp_nodelay(true)
                    .build()
                    .expect("reqwest client"),
                base: format!("http://{address}"),
                auth: format!("Bearer {token}"),
            },
        }
    }

    /// POSTs a JSON body; the answer's status and body.
    async fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.post_with(path, body, "").await
    }

    /// POSTs a JSON body with a `Prefer` header (none when `prefer` is empty).
    async fn post_with(&mut self, path: &str, body: &[u8], prefer: &str) -> (u16, Vec<u8>) {
        match self {
            Client::Raw(connection) => connection.post(path, body, prefer).await,
            Client::Reqwest { client, base, auth } => {
                let mut request = client.post(format!("{base}{path}"));
                if !prefer.is_empty() {
                    request = request.header("prefer", prefer);
                }
                let response = request
                    .header("authorization", auth.as_str())
                    .header("content-type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await
                    .expect("request");
                let status = response.status().as_u16();
                (status, response.bytes().await.expect("answer body").to_vec())
            }
        }
    }
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

    async fn post(&mut self, path: &str, body: &[u8], prefer: &str) -> (u16, Vec<u8>) {
        let prefer = if prefer.is_empty() { String::new() } else { format!("prefer: {prefer}\r\n") };
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {}\r\ncontent-type: application/json\r\n{prefer}content-length: {}\r\n\r\n",
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
        // Reads into the buffer's spare capacity: no zeroed chunk per read (the load generator
        // shares the cores with the server, so its cost is kept small).
        self.buffer.reserve(8192);
        let read = self.stream.read_buf(&mut self.buffer).await.expect("read");
        assert!(read > 0, "server closed the connection");
    }
}
