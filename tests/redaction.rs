//! Secrets passed to instrumented functions never reach the server: `redact(...)` paths and
//! arguments, `Secret` values, and the default scrubbing (on, as a client is configured by
//! default). The server's database files and its request log are searched byte for byte, not only
//! its API; sync and async functions alike.
#![deny(clippy::pedantic)]

mod common;

use common::{current_instance_id, finished_spans_of, harness, rejected_requests, span};
use prefactor::{InstanceId, Payload, Secret};
use serde::Serialize;
use serde_json::json;

const API_KEY: &str = "sk-ant-api03-R3dact1onTestKeyAbcdefghijkl";
const CARD: u64 = 4_242_424_242_424_242;
const PRIVATE_TEXT: &str = "my diagnosis is confidential-5531";
const PASSWORD: &str = "pw-Tr0ub4dor&3-unique";
const WRAPPED: &str = "secret-wrapped-value-8812";
const RETURNED_TOKEN: &str = "ghp_R3turnedT0kenAbcdefghijklmnopqrstuvwx";
const SECRETS: [&str; 6] = [API_KEY, "4242424242424242", PRIVATE_TEXT, PASSWORD, WRAPPED, RETURNED_TOKEN];

#[derive(Serialize, Payload, Clone)]
struct Message {
    role: String,
    content: String,
}

#[derive(Serialize, Payload, Clone)]
struct Payment {
    /// A number in the type: redacted to a string, which the registered schema must accept.
    card: u64,
    amount: u32,
}

#[derive(Serialize, Payload)]
struct Login {
    user: String,
    password: Secret<String>,
}

#[prefactor::span(schema = "redact:llm", redact(api_key, "messages[*].content", "payments[*].card"))]
fn call_llm(messages: &[Message], payments: &[Payment], api_key: &str, temperature: f32) -> String {
    format!("{} messages at {temperature} with a key of {} bytes", messages.len() + payments.len(), api_key.len())
}

/// No `redact`: the default scrubbing finds the key in the argument and the token in the result.
#[prefactor::span(schema = "redact:tool")]
fn call_tool(query: &str, authorization: &str) -> serde_json::Value {
    json!({"query": query, "auth_len": authorization.len(), "echo": format!("token {RETURNED_TOKEN}")})
}

#[prefactor::span(schema = "redact:login")]
async fn login(login: &Login, note: &str) -> usize {
    login.user.len() + note.len()
}

#[prefactor::agent(name = "redaction-sync")]
fn sync_agent() -> InstanceId {
    let messages = [
        Message { role: "system".into(), content: "be brief".into() },
        Message { role: "user".into(), content: PRIVATE_TEXT.into() },
    ];
    let payments = [Payment { card: CARD, amount: 12 }];
    let _ = call_llm(&messages, &payments, API_KEY, 0.5);
    let _ = call_tool(&format!("look up with {API_KEY}"), &format!("Bearer {API_KEY}"));
    current_instance_id()
}

#[prefactor::agent(name = "redaction-async")]
async fn async_agent() -> InstanceId {
    let login_data = Login { user: "ana".into(), password: Secret::new(WRAPPED.into()) };
    let _ = login(&login_data, &format!("password={PASSWORD}")).await;
    let _ = call_tool("weather", PASSWORD).await_free();
    current_instance_id()
}

/// Lets a sync call sit in an async agent without an `.await`.
trait AwaitFree: Sized {
    fn await_free(self) -> Self {
        self
    }
}
impl<T> AwaitFree for T {}

/// The params schema of span type `name` in a register request (alone or inside a bulk body).
fn find_span_type(body: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    match body {
        serde_json::Value::Object(map) => {
            if let Some(types) = map.get("span_type_schemas").and_then(|types| types.as_array()) {
                return types.iter().find(|t| t["name"] == name).map(|t| t["params_schema"].clone());
            }
            map.values().find_map(|inner| find_span_type(inner, name))
        }
        serde_json::Value::Array(items) => items.iter().find_map(|inner| find_span_type(inner, name)),
        _ => None,
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

/// The server's database files (the database file, its WAL and shared memory), byte for byte.
fn database_bytes() -> Vec<u8> {
    let db = harness().server.db_path().expect("the test server keeps its database in a file");
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        if let Ok(content) = std::fs::read(&path) {
            bytes.extend(content);
        }
    }
    bytes
}

fn assert_no_secret_reached_the_server() {
    let requests = harness().server.requests();
    let received = serde_json::to_string(&requests.iter().map(|r| &r.body).collect::<Vec<_>>()).expect("JSON");
    let stored = database_bytes();
    assert!(received.contains("look up with") && contains(&stored, "look up with"), "the payloads are there to search");
    for secret in SECRETS {
        assert!(!received.contains(secret), "`{secret}` reached the server: {received}");
        assert!(!contains(&stored, secret), "`{secret}` is in the server's database files");
    }
}

#[test]
fn secrets_passed_to_instrumented_functions_never_reach_the_server() {
    harness();
    let sync_id = sync_agent();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let async_id = runtime.block_on(async_agent());
    let spans = finished_spans_of(sync_id, 2);
    assert_eq!(rejected_requests(), Vec::<String>::new(), "every span was accepted (schemas included)");

    let llm = span(&spans, "redact:llm");
    assert_eq!(
        llm["payload"],
        json!({
            "messages": [{"role": "system", "content": "[REDACTED]"}, {"role": "user", "content": "[REDACTED]"}],
            "payments": [{"card": "[REDACTED]", "amount": 12}],
            "api_key": "[REDACTED]",
            "temperature": 0.5,
        })
    );
    let tool = span(&spans, "redact:tool");
    assert_eq!(tool["payload"]["query"], "look up with [REDACTED]");
    assert_eq!(tool["payload"]["authorization"], "[REDACTED]");
    assert_eq!(tool["result_payload"]["echo"], "token [REDACTED]");

    let async_spans = finished_spans_of(async_id, 2);
    let login = span(&async_spans, "redact:login");
    assert_eq!(
        login["payload"],
        json!({"login": {"user": "ana", "password": "[REDACTED]"}, "note": "password=[REDACTED]"})
    );
    assert_eq!(span(&async_spans, "redact:tool")["payload"]["authorization"], "[REDACTED]");

    assert_no_secret_reached_the_server();
    assert!(harness().guard.client().stats().scrubbed >= 5, "{:?}", harness().guard.client().stats());
}

#[test]
fn the_registered_schema_accepts_redacted_values_and_still_documents_the_type() {
    harness();
    let _ = sync_agent();
    common::flush();
    let params = harness()
        .server
        .requests()
        .into_iter()
        .filter_map(|request| request.body)
        .find_map(|body| find_span_type(&body, "redact:llm"))
        .expect("the register request declares `redact:llm`");
    let properties = &params["properties"];
    assert_eq!(properties["api_key"], json!({"const": "[REDACTED]"}));
    let card = &properties["payments"]["items"]["properties"]["card"]["anyOf"];
    assert_eq!(card[0]["type"], "integer", "the type is still documented: {params}");
    assert_eq!(card[1], json!({"const": "[REDACTED]"}));
    let content = &properties["messages"]["items"]["properties"]["content"]["anyOf"];
    assert_eq!((&content[0]["type"], &content[1]["const"]), (&json!("string"), &json!("[REDACTED]")));
    assert_eq!(properties["temperature"]["type"], "number", "what is not redacted is unchanged");
}

#[test]
fn a_test_capture_records_what_would_be_sent() {
    let capture = prefactor::testing::Capture::new().expect("a capture");
    let _ = capture.run(sync_agent);
    let run = capture.last_run_of("redaction-sync").expect("the run was recorded");
    let llm = run.span("redact:llm").expect("the LLM span");
    assert_eq!(llm.payload["api_key"], "[REDACTED]");
    assert_eq!(llm.payload["messages"][1], json!({"role": "user", "content": "[REDACTED]"}));
    let tool = run.span("redact:tool").expect("the tool span");
    assert_eq!(tool.payload["query"], "look up with [REDACTED]", "scrubbed as the client would");
}
