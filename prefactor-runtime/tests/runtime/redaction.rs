//! Redaction, scrubbing and size limits end to end, from synchronous code with the explicit
//! API: a secret never reaches the server (its SQLite files and its request log are searched,
//! not only its API), nor the disk spool; an oversized payload is cut down and its span kept.

use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prefactor_runtime::{
    Client, Config, CreateInstance, Delivery, FinishSpan, FinishStatus, InstanceId, Payload, Redaction, Secret,
    Sensitive,
};
use prefactor_server::{DbLocation, LocalServer, ServerConfig};
use serde_json::{Value, json};

use crate::common::{BOTH_MODES, config_for, down_address, spans_of};

const API_KEY: &str = "sk-proj-T0pS3cretAbcdefghijklmnopqrstuv";
const PASSWORD: &str = "correct horse battery staple 42";
const PEM_BODY: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7secretbody";
const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9xyzBearerTokenValue";
const WRAPPED: &str = "wrapped-in-Secret-value-77";
const REDACTED_PATH: &str = "the user's private message 99";
const UNCOMMON: &str = "ACME-55501234";
/// Every value above that must not leave the process.
const SECRETS: [&str; 7] = [API_KEY, PASSWORD, PEM_BODY, BEARER, WRAPPED, REDACTED_PATH, UNCOMMON];

static MESSAGES: LazyLock<Redaction> =
    LazyLock::new(|| Redaction::new(["messages[*].content"]).expect("a valid redaction path"));

fn server_with_file(dir: &Path) -> LocalServer {
    LocalServer::start(ServerConfig { db: DbLocation::Path(dir.join("api.db")), ..ServerConfig::default() })
        .expect("the local server starts")
}

/// A payload with each kind of secret the client must scrub or redact.
fn secret_payload() -> Payload {
    Payload::from_serialize(&json!({
        "model": "gpt-4o",
        "prompt": format!("call the API with {API_KEY} please"),
        "password": PASSWORD,
        "key_file": format!("-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n"),
        "headers": {"Authorization": format!("Bearer {BEARER}")},
        "wrapped": Secret::new(WRAPPED),
        "messages": [{"role": "user", "content": REDACTED_PATH}],
        "note": format!("order {UNCOMMON}"),
        "email": Sensitive::new("email", "ana@example.com").label("pii"),
        "visible": "kept-as-is",
    }))
    .expect("serializable")
    .with_redaction(&MESSAGES)
}

/// The bytes of every file in `dir` (the database, its WAL and shared memory; spool records).
fn file_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("an entry").path();
        if path.is_file() {
            all.extend(std::fs::read(&path).expect("a readable file"));
        }
    }
    all
}

/// The spans of `instance` as the server's API returns them, read from synchronous code.
fn spans_blocking(server: &LocalServer, instance: InstanceId) -> Vec<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(spans_of(server, instance))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn secrets_never_reach_the_server_its_database_or_its_request_log() {
    for delivery in BOTH_MODES {
        let dir = tempfile::tempdir().expect("a temp dir");
        let server = server_with_file(dir.path());
        let config = config_for(&server, delivery).scrub_pattern(r"\bACME-\d{8}\b").build().expect("valid config");
        let client = Client::new(config).expect("client");
        client.initialize_blocking().expect("initialize");
        let instance = client.create_agent_instance(CreateInstance::default()).expect("queued");
        instance.start();
        // A span with a secret payload and result, and one whose finish travels on its own.
        let span = instance.span("agent:llm").payload(secret_payload()).start();
        span.finish(FinishSpan::complete().result(Payload::from(json!({"echo": API_KEY, "password": PASSWORD}))));
        let open = instance.span("agent:tool").payload(secret_payload()).start();
        let open_id = open.id();
        client.flush_blocking(Duration::from_secs(20)).expect("flush");
        open.finish(FinishSpan::complete().result(Payload::from(json!({"token": BEARER}))));
        instance.finish(FinishStatus::Complete);
        client.flush_blocking(Duration::from_secs(20)).expect("flush");

        let stats = client.stats();
        assert_eq!(stats.lost(), 0, "{delivery:?}: {stats:?}");
        // Per span payload: key, password, PEM, bearer, custom pattern; then 2 + 1 in results.
        assert_eq!(stats.scrubbed, 5 + 5 + 2 + 1, "{delivery:?}: {stats:?}");

        let rows = spans_blocking(&server, instance.id());
        assert_eq!(rows.len(), 2);
        let tool = rows.iter().find(|row| row["id"] == open_id.to_string()).expect("the tool span");
        let payload = &tool["payload"];
        assert_eq!(payload["prompt"], "call the API with [REDACTED] please");
        assert_eq!(payload["password"], "[REDACTED]");
        assert_eq!(payload["headers"]["Authorization"], "[REDACTED]", "an authorization header is a secret key");
        assert_eq!(payload["key_file"], "[REDACTED]\n");
        assert_eq!(payload["wrapped"], "[REDACTED]");
        assert_eq!(payload["messages"][0], json!({"role": "user", "content": "[REDACTED]"}));
        assert_eq!(payload["note"], "order [REDACTED]");
        assert_eq!(payload["visible"], "kept-as-is");
        assert_eq!(payload["email"], json!({"$sensitive": "email", "value": "ana@example.com", "labels": ["pii"]}));
        assert_eq!(tool["sensitive_encoding"], true, "a payload with a `$sensitive` value is flagged");
        assert_eq!(tool["result_payload"], json!({"token": "[REDACTED]"}));

        // What the server received and what it stored, byte for byte.
        let requests = server.requests();
        assert!(requests.iter().any(|r| r.path.contains("agent_spans") || r.path.ends_with("/bulk")));
        let received = serde_json::to_string(&requests.iter().map(|r| &r.body).collect::<Vec<_>>()).expect("JSON");
        assert!(received.contains("kept-as-is"), "the request log holds the payloads");
        let stored = file_bytes(dir.path());
        assert!(contains(&stored, "kept-as-is"), "the database files hold the payloads");
        for secret in SECRETS {
            assert!(!received.contains(secret), "{delivery:?}: `{secret}` reached the server: {received}");
            assert!(!contains(&stored, secret), "{delivery:?}: `{secret}` is in the server's database files");
        }
        client.close_blocking().expect("a clean close");
    }
}

#[test]
fn secrets_never_reach_the_disk_spool() {
    let spool = tempfile::tempdir().expect("a temp dir");
    let (_socket, address) = down_address();
    let config = Config::builder()
        .api_url(format!("http://{address}"))
        .api_token("t")
        .delivery(Delivery::Bulk)
        .spool_dir(spool.path())
        .initial_retry_delay(Duration::from_millis(10))
        .max_retry_delay(Duration::from_millis(50))
        .connect_timeout(Duration::from_millis(200))
        .close_timeout(Duration::from_millis(500))
        .build()
        .expect("valid config");
    let client = Client::new(config).expect("client");
    client.initialize_blocking().expect("initialize");
    let instance = client.create_agent_instance(CreateInstance::default()).expect("queued");
    instance.start();
    for _ in 0..3 {
        let span = instance.span("agent:llm").payload(secret_payload()).start();
        span.finish(FinishSpan::complete().result(Payload::from(json!({"echo": API_KEY}))));
    }
    instance.finish(FinishStatus::Complete);
    // The shutdown deadline writes what is still queued to the spool.
    let report = client.shutdown_blocking(Duration::from_millis(500));
    let report = match report {
        Ok(report) => report,
        Err(prefactor_runtime::Error::TelemetryLost(report)) => *report,
        Err(other) => panic!("unexpected close error: {other}"),
    };
    let stats = client.stats();
    assert!(stats.spooled > 0 && report.left_in_spool > 0, "{stats:?} {report:?}");
    let started = Instant::now();
    let spooled = loop {
        let bytes = file_bytes(spool.path());
        if contains(&bytes, "kept-as-is") || started.elapsed() > Duration::from_secs(10) {
            break bytes;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(contains(&spooled, "kept-as-is"), "the spool holds the payloads");
    for secret in SECRETS.iter().filter(|secret| **secret != UNCOMMON) {
        assert!(!contains(&spooled, secret), "`{secret}` was written to the spool");
    }
}

#[test]
fn scrubbing_can_be_turned_off_per_client() {
    let server = crate::common::server();
    let config = config_for(&server, Delivery::Bulk).scrub_secrets(false).build().expect("valid config");
    let client = Client::new(config).expect("client");
    client.initialize_blocking().expect("initialize");
    let instance = client.create_agent_instance(CreateInstance::default()).expect("queued");
    instance.start();
    instance.span("agent:llm").payload(secret_payload()).start().complete();
    instance.finish(FinishStatus::Complete);
    client.flush_blocking(Duration::from_secs(20)).expect("flush");
    let received = serde_json::to_string(&server.requests().iter().map(|r| &r.body).collect::<Vec<_>>()).expect("JSON");
    assert!(received.contains(API_KEY) && received.contains(PASSWORD), "opted out: sent as is");
    // Explicit redactions and `Secret` values still apply.
    assert!(!received.contains(REDACTED_PATH) && !received.contains(WRAPPED));
    assert_eq!(client.stats().scrubbed, 0);
    client.close_blocking().expect("a clean close");
}

#[test]
fn oversized_payloads_are_cut_down_and_their_spans_kept() {
    for delivery in BOTH_MODES {
        let server = crate::common::server();
        let config = config_for(&server, delivery).max_payload_bytes(16 * 1024).build().expect("valid config");
        let client = Client::new(config).expect("client");
        client.initialize_blocking().expect("initialize");
        let instance = client.create_agent_instance(CreateInstance::default()).expect("queued");
        instance.start();
        // 3 MiB of text: over the server's 2 MiB body limit, so without the limit the span is lost.
        let document = "lorem ipsum ".repeat(3 << 18);
        let huge =
            Payload::from(json!({"model": "m", "document": document, "ids": (0..200_000).collect::<Vec<u32>>()}));
        let span = instance.span("agent:retrieval").payload(huge).start();
        let span_id = span.id();
        span.finish(FinishSpan::complete().result(Payload::from(json!({"summary": document}))));
        instance.finish(FinishStatus::Complete);
        client.flush_blocking(Duration::from_secs(20)).expect("flush");
        let stats = client.stats();
        assert_eq!((stats.truncated, stats.lost()), (2, 0), "{delivery:?}: {stats:?}");
        assert!(server.requests().iter().all(|r| r.status < 400), "nothing refused");
        let rows = spans_blocking(&server, instance.id());
        let span = rows.iter().find(|row| row["id"] == span_id.to_string()).expect("the span is kept");
        assert_eq!(span["status"], "complete");
        assert_eq!(span["payload"]["model"], "m");
        let marker = &span["payload"]["$truncated"];
        assert_eq!(marker["limit_bytes"], 16 * 1024);
        assert!(marker["original_bytes"].as_u64().unwrap() > 3 << 20, "{marker}");
        assert_eq!(marker["paths"], json!(["document", "ids"]));
        assert!(span["payload"]["document"].as_str().unwrap().ends_with(" bytes]"));
        assert!(span["payload"].to_string().len() <= 16 * 1024);
        assert_eq!(span["result_payload"]["$truncated"]["strings_cut"], 1);
        client.close_blocking().expect("a clean close");
    }
}
