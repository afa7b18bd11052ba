//! The server under attack, over real sockets: a spawned `prefactor-server` process gets
//! thousands of hostile requests (auth variants, oversized and slow bodies, path traversal,
//! SQL metacharacters, huge, deep and odd JSON, state-machine abuse, idempotency races,
//! hostile templates) and slowloris connections. Every answer is checked for its status and
//! the JSON error shape, and afterwards the server still answers `/ping`, still writes, and
//! its resident memory stayed under a stated bound.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "abuse-token-0123456789";
/// Body limit of the spawned server (small, so oversized bodies are cheap to send).
const BODY_LIMIT: usize = 256 * 1024;
/// RSS growth allowed over the whole hostile run. The server holds no state per rejected
/// request; what grows is the SQLite page caches (the writer's 16 MiB and 2 MiB for each of at
/// most 8 pooled readers, filling as the database grows), the allocator's retained pages and
/// the bounded request log.
const RSS_GROWTH_BOUND_KB: u64 = 120 * 1024;
/// Growth allowed over the third round, which repeats the first two: the part of the SQLite
/// cache budget (up to 32 MiB) that can still fill while the database grows by about 2.3 MB a
/// round; observed 3-13 MB. Measured as the lowest of several samples: mimalloc returns freed
/// pages lazily, so a single sample swings by 30 MB.
const RSS_THIRD_ROUND_BOUND_KB: u64 = 24 * 1024;
/// Hostile rounds (each: 20 mixes of every kind, then 200 tokenless bodies).
const ROUNDS: usize = 3;

/// Connection limit of the spawned server.
const MAX_CONNECTIONS: usize = 128;
/// Slowloris connections opened at once (more than the limit).
const SLOWLORIS_CONNECTIONS: usize = 200;

/// The server binary in its own process, killed on drop.
struct Spawned {
    child: Child,
    base: String,
    address: String,
    _dir: tempfile::TempDir,
}

impl Spawned {
    fn start() -> Spawned {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("abuse.db");
        let body_limit = BODY_LIMIT.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_prefactor-server"))
            .args(["--listen", "127.0.0.1:0", "--db", db.to_str().unwrap(), "--token", TOKEN])
            .args(["--max-body-bytes", &body_limit, "--body-read-timeout-secs", "2"])
            .args(["--request-log-entries", "100000", "--request-log-bytes", "8388608"])
            .args(["--max-connections", &MAX_CONNECTIONS.to_string(), "--header-read-timeout-secs", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(base) = line.strip_prefix("listening on ") {
                        break base.to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("the server did not say where it listens");
                }
            }
        };
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let address = base.trim_start_matches("http://").to_string();
        Spawned { child, base, address, _dir: dir }
    }

    /// The lowest of five RSS samples over a second of light traffic: the allocator returns
    /// freed pages lazily, and only the floor says whether memory is still held.
    async fn rss_floor_kb(&self, client: &Client) -> u64 {
        let mut floor = u64::MAX;
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for _ in 0..10 {
                client.get("/api/v1/ping").await;
            }
            floor = floor.min(self.rss_kb());
        }
        floor
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(server: &Spawned) -> Client {
        // Idle connections are dropped before the server's 2 s header timeout closes them, as
        // any client of a server with an idle timeout must: otherwise a request written just
        // as the server closes its connection meets a reset.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_idle_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        Client { http, base: server.base.clone() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends and returns (status, JSON body); an error answer must be in the error shape.
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("answered");
        let status = response.status().as_u16();
        let json_type = response
            .headers()
            .get("content-type")
            .is_some_and(|value| value.to_str().unwrap_or("").starts_with("application/json"));
        let text = response.text().await.expect("body");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} is not JSON: {text:.200}"));
        assert!(json_type, "{status} answered without a JSON content type: {text:.200}");
        if status >= 400 {
            assert_error_shape(status, &body);
        }
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path)).bearer_auth(TOKEN)).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.post(self.url(path)).bearer_auth(TOKEN).json(body)).await
    }

    async fn post_bytes(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let request = self.http.post(self.url(path)).bearer_auth(TOKEN).header("content-type", "application/json");
        self.send(request.body(body)).await
    }
}

fn assert_error_shape(status: u16, body: &Value) {
    assert_eq!(body["status"], "error", "{status}: {body}");
    assert!(body["code"].is_string(), "{status}: {body}");
    assert!(body["message"].is_string(), "{status}: {body}");
}

/// Writes `request` on a fresh connection and reads the answer's status line and body
/// (until the connection closes or `wait` passes).
async fn raw(address: &str, request: &[u8], wait: Duration) -> (u16, String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.expect("connects");
    stream.write_all(request).await.expect("written");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(Ok(read)) =
        tokio::time::timeout(wait.saturating_sub(started.elapsed()), stream.read(&mut buffer)).await
    {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        if complete(&answer) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, text, started.elapsed())
}

/// True once a whole answer with a Content-Length body has arrived.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|value| value.parse::<usize>().ok());
    length.is_some_and(|length| body.len() >= length)
}

fn raw_json_error(status: u16, text: &str) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("an answer: {text:.300}"));
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{text:.300}");
    let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body: {text:.300}"));
    assert_error_shape(status, &body);
}

fn hostile_schema() -> Value {
    json!({
        "external_identifier": "abuse-v1",
        "span_type_schemas": [
            {"name": "t:loop", "params_schema": {"type": "object"}, "template": "{% for i in (1..n) %}{% for j in (1..n) %}*{% endfor %}{% endfor %}"},
            {"name": "t:plain", "params_schema": {"type": "object"}, "template": "n={{ n }} {{ nope.deeper }}"}
        ],
        "quality_schemas": [{"name": "q", "schema": {"type": "object"}, "template": "{{ n | divided_by: -1 }}"}]
    })
}

async fn register(client: &Client) -> String {
    let body = json!({"agent_version": {"name": "Abuse", "external_identifier": "v1"}, "agent_schema_version": hostile_schema()});
    let (status, answer) = client.post("/api/v1/agent_instance/register", &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["details"]["id"].as_str().unwrap().to_string()
}

async fn create_span(client: &Client, instance: &str, schema: &str, payload: Value) -> (u16, Value) {
    let body = json!({"details": {"agent_instance_id": instance, "schema_name": schema, "status": "active", "payload": payload}});
    client.post("/api/v1/agent_spans", &body).await
}

/// The server answers `/ping` and still commits a write.
async fn alive_and_writing(client: &Client, instance: &str) {
    let (status, body) = client.get("/api/v1/ping").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = create_span(client, instance, "t:plain", json!({"n": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["summary"], "n=1 ");
}

async fn auth_variants(client: &Client) {
    let ping = client.url("/api/v1/ping");
    let cases: Vec<(&str, String)> = vec![
        ("authorization", format!("Basic {TOKEN}")),
        ("authorization", "Bearer".to_string()),
        ("authorization", "Bearer ".to_string()),
        ("authorization", format!("Bearer {TOKEN}x")),
        ("authorization", format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        ("authorization", format!("Token {TOKEN}")),
        ("authorization", format!("Bearer {}", "A".repeat(8000))),
        ("x-api-key", TOKEN.to_string()),
    ];
    for (name, value) in cases {
        let (status, _) = client.send(client.http.get(&ping).header(name, value)).await;
        assert_eq!(status, 401);
    }
    let (status, _) = client.send(client.http.get(&ping)).await;
    assert_eq!(status, 401);
    // A tokenless body is answered without being read (and so never buffered or logged).
    let body = vec![b'{'; BODY_LIMIT - 1];
    let (status, _) = client.send(client.http.post(client.url("/api/v1/agent_spans")).body(body)).await;
    assert_eq!(status, 401);
}

async fn traversal_and_sql(client: &Client, instance: &str) {
    for path in [
        "/api/v1/agent_instance/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/agent_instance/%2e%2e",
        "/api/v1/agent/'%20OR%201=1%20--",
        "/api/v1/agent_instance/1;DROP%20TABLE%20agent_spans",
        "/etc/passwd",
        "/api/v1/../../../../etc/passwd",
        "/api/v1/agent_spans?agent_instance_id='%20OR%20'1'='1",
        "/api/v1/agent_instance?sorting=id;DROP%20TABLE%20agent_instances",
        "/api/v1/agent_instance?pagination[page_size]=-1",
        "/api/v1/agent_instance?pagination[offset]=99999999999999999999999",
    ] {
        let (status, body) = client.get(path).await;
        assert!(matches!(status, 400 | 404 | 422), "{path}: {status} {body}");
    }
    let (status, body) = create_span(client, instance, "t:plain", json!({"n": "'; DROP TABLE agent_spans; --"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = client.get(&format!("/api/v1/agent_spans?agent_instance_id={instance}")).await;
    assert_eq!(status, 200, "the table is still there: {body}");
}

async fn odd_json(client: &Client, instance: &str) {
    let deep_array = "[".repeat(100_000).into_bytes();
    let deep_object = format!("{{\"details\": {}", "{\"a\":".repeat(50_000)).into_bytes();
    let mut invalid_utf8 = br#"{"details": {"schema_name": ""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xfd]);
    invalid_utf8.extend_from_slice(br#""}}"#);
    let bodies: Vec<Vec<u8>> = vec![
        deep_array,
        deep_object,
        invalid_utf8,
        b"\xef\xbb\xbf{}".to_vec(),
        b"{\"details\": NaN}".to_vec(),
        b"{\"details\": {\"a\": 1, \"a\": 2}}".to_vec(),
        b"".to_vec(),
        b"null".to_vec(),
        b"\"just a string\"".to_vec(),
        b"{\"details\": \"\\ud800\"}".to_vec(),
        format!("{{\"details\": {{\"agent_instance_id\": \"{instance}\", \"schema_name\": \"t:plain\", \"status\": \"active\", \"payload\": {{\"n\": [{}]}}}}}}", vec!["1"; 50_000].join(",")).into_bytes(),
    ];
    for body in bodies {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (status, answer) = client.post_bytes("/api/v1/agent_spans", body).await;
        assert!(matches!(status, 200 | 400 | 422), "{shown}: {status} {answer}");
    }
    for (details, field) in [
        (json!({"agent_instance_id": instance, "schema_name": "t:plain", "status": 5}), "details.status"),
        (
            json!({"agent_instance_id": instance, "schema_name": "t:plain", "status": "active", "started_at": "9999-12-31T23:59:59-23:59"}),
            "details.started_at",
        ),
    ] {
        let (status, answer) = client.post("/api/v1/agent_spans", &json!({ "details": details })).await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["errors"][field].is_array(), "{answer}");
    }
    let big = format!(
        r#"{{"details": {{"agent_instance_id": "{instance}", "schema_name": "t:plain", "status": "active", "payload": {{"n": 1{}}}}}}}"#,
        "0".repeat(40)
    );
    let (status, _) = client.post_bytes("/api/v1/agent_spans", big.into_bytes()).await;
    assert_eq!(status, 422);
    let bulk = json!({"items": (0..1001).map(|i| json!({"_type": "agent_spans/create", "idempotency_key": format!("bulk-key-{i:06}")})).collect::<Vec<_>>()});
    let (status, _) = client.post("/api/v1/bulk", &bulk).await;
    assert_eq!(status, 422);
}

async fn state_machine(client: &Client, instance: &str) {
    let (status, span) = create_span(client, instance, "t:plain", json!({"n": 2})).await;
    assert_eq!(status, 200, "{span}");
    let span_id = span["details"]["id"].as_str().unwrap().to_string();
    let finish = format!("/api/v1/agent_spans/{span_id}/finish");
    assert_eq!(client.post(&finish, &json!({"status": "complete"})).await.0, 200);
    assert_eq!(client.post(&finish, &json!({"status": "complete"})).await.0, 409);
    assert_eq!(client.post(&finish, &json!({"status": "terminated"})).await.0, 422);
    let missing = "/api/v1/agent_spans/01m91rncd5dj44w704cdwz1r9hx1vxfq/finish";
    assert_eq!(client.post(missing, &json!({})).await.0, 404);
    let (status, _) = create_span(client, "01m91rnc9adj44w77m8k4yq1qkt7266b", "t:plain", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = create_span(client, instance, "t:undeclared", json!({})).await;
    assert_eq!(status, 422);
}

async fn idempotency_race(client: &Client, instance: &str, round: usize) {
    let key = format!("race-key-{round:08}");
    let body = json!({"details": {"agent_instance_id": instance, "schema_name": "t:plain", "status": "active",
                                  "payload": {"n": round}, "idempotency_key": key}});
    let racers = (0..16).map(|_| client.post("/api/v1/agent_spans", &body));
    let answers = futures_util::future::join_all(racers).await;
    let ids: Vec<&Value> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, 200, "{answer}");
            &answer["details"]["id"]
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one span for one key: {ids:?}");
    let mut other = body.clone();
    other["details"]["payload"]["n"] = json!("different");
    let (status, answer) = client.post("/api/v1/agent_spans", &other).await;
    assert_eq!((status, answer["code"].as_str()), (422, Some("idempotency_key_reused")));
}

async fn hostile_templates(client: &Client, instance: &str) {
    let (status, body) = create_span(client, instance, "t:loop", json!({"n": 1_000_000_000_000i64})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["summary"], Value::Null);
    let path = format!("/api/v1/agent_instance/{instance}/record_quality");
    let (status, body) = client.post(&path, &json!({"name": "q", "payload": {"n": i64::MIN}})).await;
    assert_eq!(status, 200, "{body}");
}

async fn raw_socket_cases(address: &str) {
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let host = format!("Host: {address}\r\n");
    // Declared far over the limit: 413 at once, the body never sent.
    let request = format!("POST /api/v1/agent_spans HTTP/1.1\r\n{host}{auth}Content-Length: 1000000000\r\n\r\n");
    let (status, text, took) = raw(address, request.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{text:.300}");
    assert!(took < Duration::from_secs(2), "413 waited for the body: {took:?}");
    raw_json_error(status, &text);
    // A body that stops arriving: 408 after the read timeout (2 s for this server).
    let request = format!("POST /api/v1/agent_spans HTTP/1.1\r\n{host}{auth}Content-Length: 100\r\n\r\n{{\"det");
    let (status, text, took) = raw(address, request.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(status, 408, "{text:.300}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    raw_json_error(status, &text);
    // A path segment that is not UTF-8: axum's rejection, in the JSON shape.
    let request = format!("GET /api/v1/agent_instance/%FF%FE HTTP/1.1\r\n{host}{auth}\r\n");
    let (status, text, _) = raw(address, request.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status, 400, "{text:.300}");
    raw_json_error(status, &text);
    // A chunked body over the limit.
    let chunk = "x".repeat(64 * 1024);
    let mut request = format!("POST /api/v1/agent_spans HTTP/1.1\r\n{host}{auth}Transfer-Encoding: chunked\r\n\r\n");
    for _ in 0..(BODY_LIMIT / chunk.len() + 2) {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let (status, text, _) = raw(address, request.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(status, 413, "{text:.300}");
}

/// Opens a connection and sends a request head a byte every 200 ms; true when the server cut
/// it off (closed, reset or answered) before the head was complete (bounded: 60 s).
async fn trickle_headers(address: String) -> bool {
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(&address)).await else {
        return false;
    };
    let head = format!("POST /api/v1/agent_spans HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n");
    let started = Instant::now();
    for byte in head.bytes().chain(std::iter::repeat_n(b'X', 300)) {
        if stream.write_all(&[byte]).await.is_err() {
            return true;
        }
        let mut probe = [0u8; 256];
        if let Ok(Ok(_) | Err(_)) = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut probe)).await {
            return true;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return false;
        }
    }
    false
}

/// Slowloris: more connections than the limit, each trickling its headers. The server cuts
/// every one off at the header timeout, and meanwhile a real client still pings and writes.
async fn slowloris(address: &str, client: &Client, instance: &str) {
    let attackers: Vec<_> =
        (0..SLOWLORIS_CONNECTIONS).map(|_| tokio::spawn(trickle_headers(address.to_string()))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    alive_and_writing(client, instance).await;
    for attacker in attackers {
        assert!(attacker.await.expect("attacker task"), "a trickled head was read to the end");
    }
}

/// Runs the hostile mix for each round of `rounds`; returns how many requests it sent.
async fn hostile_rounds(client: &Client, instance: &str, rounds: std::ops::Range<usize>) -> usize {
    let mut requests = 0;
    for round in rounds {
        let batch = futures_util::future::join(
            futures_util::future::join4(
                auth_variants(client),
                traversal_and_sql(client, instance),
                odd_json(client, instance),
                state_machine(client, instance),
            ),
            futures_util::future::join(idempotency_race(client, instance, round), hostile_templates(client, instance)),
        );
        batch.await;
        requests += 10 + 12 + 15 + 7 + 17 + 2;
    }
    requests
}

/// Sends `count` tokenless bodies just under the limit, 16 at a time (each answered 401
/// without being read).
async fn tokenless_bodies(client: &Client, count: usize) -> usize {
    for _ in 0..count / 16 {
        let tokenless = (0..16).map(|_| async {
            let body = vec![b'x'; BODY_LIMIT - 1];
            client.send(client.http.post(client.url("/api/v1/bulk")).body(body)).await.0
        });
        let statuses = futures_util::future::join_all(tokenless).await;
        assert!(statuses.iter().all(|status| *status == 401), "{statuses:?}");
    }
    count / 16 * 16
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_hostile_requests_leave_the_server_alive_writing_and_bounded() {
    let server = Spawned::start();
    let client = Client::new(&server);
    let instance = register(&client).await;
    for _ in 0..50 {
        alive_and_writing(&client, &instance).await;
    }
    let rss_before = server.rss_floor_kb(&client).await;
    let started = Instant::now();
    let mut requests = 0usize;
    raw_socket_cases(&server.address).await;
    slowloris(&server.address, &client, &instance).await;
    let mut rss_rounds = Vec::new();
    for round in 0..ROUNDS {
        requests += hostile_rounds(&client, &instance, round * 20..round * 20 + 20).await;
        requests += tokenless_bodies(&client, 200).await;
        alive_and_writing(&client, &instance).await;
        rss_rounds.push(server.rss_floor_kb(&client).await);
    }
    let rss_after = rss_rounds[ROUNDS - 1];
    eprintln!(
        "abuse: {requests} hostile requests in {:.1} s; RSS floor {rss_before} kB before, {rss_rounds:?} kB after each round (+{} kB; bound +{RSS_GROWTH_BOUND_KB} kB)",
        started.elapsed().as_secs_f64(),
        rss_after.saturating_sub(rss_before)
    );
    assert!(requests >= 3_000, "{requests}");
    assert!(rss_after <= rss_before + RSS_GROWTH_BOUND_KB, "RSS grew from {rss_before} kB to {rss_after} kB");
    // The third round repeats the first two: memory that stays bounded levels off.
    let earlier = rss_rounds[..ROUNDS - 1].iter().copied().max().unwrap_or(rss_before);
    assert!(rss_after <= earlier + RSS_THIRD_ROUND_BOUND_KB, "RSS kept growing: {rss_rounds:?} kB after each round");
    // The request log's HTTP view never shows a credential.
    let (status, log) = client.get("/__admin/requests").await;
    assert_eq!(status, 200);
    let text = log.to_string();
    assert!(!text.contains(TOKEN), "the request log shows the token");
    assert!(text.contains("Bearer <redacted>"));
}
