//! The OpenTelemetry export (feature `otel`) against real receivers over HTTP on 127.0.0.1: an
//! OTLP receiver in the test decoding with the official protobuf definitions
//! (`opentelemetry-proto`), and the local server's own `POST /v1/traces`.
//!
//! The macro test installs the process-wide client; the others use clients of their own.

mod common;
#[path = "common/otlp_receiver.rs"]
mod otlp_receiver;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use otlp_receiver::{Receiver, string_of};
use prefactor::{
    AgentVersion, Client, Config, ContentCapture, CreateInstance, FinishSpan, FinishStatus, OtelExport, Payload,
    SchemaRegistry, SpanType,
};
use prefactor_server::{LocalServer, ServerConfig};
use serde_json::{Value, json};

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attribute(&span.attributes, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attribute(&span.attributes, key)? {
        any_value::Value::IntValue(n) => Some(*n),
        _ => None,
    }
}

fn strings(span: &Span, key: &str) -> Vec<String> {
    match attribute(&span.attributes, key) {
        Some(any_value::Value::ArrayValue(array)) => array.values.iter().filter_map(|v| string_of(Some(v))).collect(),
        _ => Vec::new(),
    }
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|span| span.name == name).collect()
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one span named {name}: {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    found[0]
}

/// The content attributes of either convention.
const CONTENT_KEYS: &[&str] = &[
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "prefactor.payload",
    "prefactor.result_payload",
];

mod agent_code {
    use serde::Serialize;

    #[derive(Serialize, prefactor::Payload)]
    pub struct Usage {
        pub input_tokens: u32,
        pub output_tokens: u32,
    }

    #[derive(Serialize, prefactor::Payload)]
    pub struct Completion {
        pub text: String,
        pub model: String,
        pub usage: Usage,
        pub finish_reason: String,
    }

    #[derive(Debug)]
    pub struct BookingDown;

    impl std::fmt::Display for BookingDown {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the booking service is down")
        }
    }

    impl std::error::Error for BookingDown {}

    #[prefactor::span(schema = "agent:llm", title = "LLM call")]
    pub fn chat(model: &str, prompt: &str) -> Completion {
        Completion {
            text: format!("answer to {prompt}"),
            model: format!("{model}-2024-08-06"),
            usage: Usage { input_tokens: 12, output_tokens: 5 },
            finish_reason: "stop".into(),
        }
    }

    #[prefactor::span(schema = "agent:tool", title = "Search")]
    pub fn search(tool_name: &str, query: &str) -> String {
        chat("gpt-4o-mini", query).text
    }

    #[prefactor::span(schema = "agent:tool:booking", title = "Booking")]
    pub fn book(tool_name: &str) -> Result<String, BookingDown> {
        let _ = tool_name;
        Err(BookingDown)
    }

    /// A schema name that implies no operation, declaring one.
    #[prefactor::span(schema = "agent:vectorize", kind = "embeddings")]
    pub fn embed(model: &str, texts: Vec<String>) -> Vec<f32> {
        let _ = model;
        texts.iter().map(|t| t.len() as f32).collect()
    }

    #[prefactor::agent(name = "travel-agent")]
    pub fn plan(question: &str) -> String {
        let _ = embed("text-embedding-3-small", vec![question.to_owned()]);
        let first = chat("gpt-4o", question);
        let found = search("search", "flights to Lisbon");
        let _ = book("booking");
        format!("{} / {found}", first.text)
    }
}

#[test]
fn macro_spans_are_exported_with_the_genai_conventions_and_still_reach_prefactor() {
    let server = LocalServer::start(ServerConfig::default()).expect("the local server starts");
    let receiver = Receiver::start();
    let config = Config::builder()
        .api_url(server.base_url())
        .api_token(server.token())
        .otel(
            OtelExport::otlp_http()
                .endpoint(receiver.url())
                .service_name("travel-service")
                .capture_content(ContentCapture::NoContent),
        )
        .build()
        .unwrap();
    let guard = prefactor::init_blocking(config).unwrap();
    let answer = agent_code::plan("where to?");
    assert!(answer.contains("answer to where to?"));
    guard.client().flush_blocking(Duration::from_secs(20)).expect("both deliveries flush");

    let received = receiver.spans();
    assert!(received.iter().all(|(service, _)| service == "travel-service"), "the resource is ours");
    let spans: Vec<Span> = received.into_iter().map(|(_, span)| span).collect();
    assert_eq!(spans.len(), 6, "the run and its five spans: {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());

    let root = one(&spans, "invoke_agent travel-agent");
    assert!(root.parent_span_id.is_empty(), "the run is the root of its trace");
    assert_eq!(root.kind, SpanKind::Internal as i32);
    assert_eq!(text(root, "gen_ai.operation.name").as_deref(), Some("invoke_agent"));
    assert_eq!(text(root, "gen_ai.agent.name").as_deref(), Some("travel-agent"));
    assert!(spans.iter().all(|s| s.trace_id == root.trace_id), "one trace for the run");

    let chat = one(&spans, "chat gpt-4o");
    assert_eq!(chat.parent_span_id, root.span_id);
    assert_eq!(chat.kind, SpanKind::Client as i32);
    assert_eq!(text(chat, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(text(chat, "gen_ai.request.model").as_deref(), Some("gpt-4o"));
    assert_eq!(text(chat, "gen_ai.response.model").as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(int(chat, "gen_ai.usage.input_tokens"), Some(12));
    assert_eq!(int(chat, "gen_ai.usage.output_tokens"), Some(5));
    assert_eq!(strings(chat, "gen_ai.response.finish_reasons"), ["stop"]);
    assert_eq!(text(chat, "prefactor.schema_name").as_deref(), Some("agent:llm"));

    let embeddings = one(&spans, "embeddings text-embedding-3-small");
    assert_eq!(embeddings.kind, SpanKind::Client as i32, "declared with #[span(kind = \"embeddings\")]");
    assert_eq!(text(embeddings, "gen_ai.operation.name").as_deref(), Some("embeddings"));
    assert_eq!(embeddings.parent_span_id, root.span_id);

    let search = one(&spans, "execute_tool search");
    assert_eq!(search.parent_span_id, root.span_id);
    assert_eq!(search.kind, SpanKind::Internal as i32);
    assert_eq!(text(search, "gen_ai.tool.name").as_deref(), Some("search"));
    let nested = one(&spans, "chat gpt-4o-mini");
    assert_eq!(nested.parent_span_id, search.span_id, "a span inside a tool is the tool's child");

    let booking = one(&spans, "execute_tool booking");
    assert_eq!(booking.parent_span_id, root.span_id);
    let status = booking.status.as_ref().expect("a status");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "the booking service is down");
    assert!(text(booking, "error.type").is_some_and(|t| t.contains("BookingDown")));
    assert_eq!(chat.status.as_ref().map_or(0, |s| s.code), StatusCode::Unset as i32);

    for span in &spans {
        assert!(span.start_time_unix_nano <= span.end_time_unix_nano, "{}", span.name);
        for key in CONTENT_KEYS {
            assert!(attribute(&span.attributes, key).is_none(), "{} carries {key} without capture", span.name);
        }
    }

    // Dual delivery: the same run reached the Prefactor API with its spans.
    let instance_id = text(root, "prefactor.instance.id").unwrap();
    let listed = common::get_json_from(
        &server,
        &format!("/agent_spans?agent_instance_id={instance_id}&pagination[page_size]=100"),
    );
    assert_eq!(listed["summaries"].as_array().map(Vec::len), Some(5), "{listed}");
    guard.client().close_blocking().expect("closed clean");
    drop(guard);
}

/// A processor of the application's: records the names of the spans that end in it.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl SpanProcessor for Recorder {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span.name.into_owned());
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// One agent run through the explicit API: an LLM call with message content, a tool call.
/// Span types of their own (the macro test's `agent:llm` has other schemas in this binary);
/// their names imply `chat` and `execute_tool`.
fn run_once(client: &Client, agent: &str) {
    let version = AgentVersion { name: Some(agent.to_owned()), ..AgentVersion::default() };
    let instance = client.create_agent_instance(CreateInstance::default().agent_version(version)).unwrap();
    instance.start();
    let llm = instance
        .span("demo:chat")
        .payload(Payload::from(json!({
            "model": "claude-sonnet",
            "provider": "anthropic",
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "hi there"}, {"role": "user", "content": "key sk-proj-abcdefghijklmnopqrstuvwx"}],
        })))
        .start();
    llm.finish(FinishSpan::complete().result(Payload::from(json!({
        "text": "hello back",
        "usage": {"input_tokens": 3, "output_tokens": 2},
        "finish_reasons": ["end_turn"],
    }))));
    let tool =
        instance.span("demo:tool_call").payload(Payload::from(json!({"tool_name": "lookup", "query": "q"}))).start();
    tool.finish(FinishSpan::complete().result(Payload::from(json!({"hits": 2}))));
    instance.finish(FinishStatus::Complete);
}

fn client_with(server: &LocalServer, export: OtelExport) -> Client {
    let mut registry = SchemaRegistry::new();
    for name in ["demo:chat", "demo:tool_call"] {
        registry.register_type(SpanType::new(name, json!({"type": "object"}))).unwrap();
    }
    let config = Config::builder()
        .api_url(server.base_url())
        .api_token(server.token())
        .schema_registry(registry)
        .otel(export)
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    client.initialize_blocking().unwrap();
    client
}

#[test]
fn the_applications_global_provider_is_neither_used_nor_replaced() {
    let server = LocalServer::start(ServerConfig::default()).expect("the local server starts");
    let receiver = Receiver::start();
    let app = Recorder::default();
    let provider = SdkTracerProvider::builder().with_span_processor(app.clone()).build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let client = client_with(&server, OtelExport::otlp_http().endpoint(receiver.url()));
    run_once(&client, "isolated-agent");
    client.close_blocking().expect("closed clean");

    let exported: Vec<String> = receiver.spans().into_iter().map(|(_, span)| span.name).collect();
    assert!(exported.contains(&"invoke_agent isolated-agent".to_owned()), "{exported:?}");
    assert_eq!(exported.len(), 3, "{exported:?}");
    assert!(app.names().is_empty(), "nothing of ours in the application's provider: {:?}", app.names());
    // The global provider is still the application's, and still works after our close.
    opentelemetry::global::tracer("app").start("app work").end();
    assert_eq!(app.names(), ["app work"]);
    let _ = provider.shutdown();
}

#[test]
fn an_application_provider_passed_in_is_joined_and_left_running() {
    let server = LocalServer::start(ServerConfig::default()).expect("the local server starts");
    let app = Recorder::default();
    let provider = SdkTracerProvider::builder().with_span_processor(app.clone()).build();

    let client = client_with(&server, OtelExport::with_provider(provider.clone()));
    run_once(&client, "joined-agent");
    client.close_blocking().expect("closed clean");

    let mut names = app.names();
    names.sort();
    assert_eq!(names, ["chat claude-sonnet", "execute_tool lookup", "invoke_agent joined-agent"]);
    // Closing our client did not shut the application's provider down.
    use opentelemetry::trace::TracerProvider as _;
    provider.tracer("app").start("after close").end();
    assert_eq!(app.names().len(), 4);
    let _ = provider.shutdown();
}

/// Set in the child processes of the content capture test.
const CHILD: &str = "PREFACTOR_OTEL_CAPTURE_CHILD";

#[test]
fn message_content_is_exported_only_when_the_environment_opts_in() {
    // The switches are environment variables read when the client starts: each case runs in
    // a child process of this test binary with its own environment.
    let exe = std::env::current_exe().unwrap();
    for (case, envs) in [
        (
            "latest_span_and_event",
            vec![
                ("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental"),
                ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT"),
            ],
        ),
        ("default_true", vec![("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")]),
        ("unset", vec![]),
    ] {
        let mut command = Command::new(&exe);
        command
            .args(["--exact", "capture_child", "--nocapture", "--test-threads=1"])
            .env(CHILD, case)
            .env_remove("OTEL_SEMCONV_STABILITY_OPT_IN")
            .env_remove("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT");
        for (name, value) in envs {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "case {case}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("1 passed"), "case {case} ran: {stdout}");
    }
}

/// The child of the test above: does nothing unless started by it.
#[test]
fn capture_child() {
    let Ok(case) = std::env::var(CHILD) else { return };
    let server = LocalServer::start(ServerConfig::default()).expect("the local server starts");
    let receiver = Receiver::start();
    let client = client_with(&server, OtelExport::otlp_http().endpoint(receiver.url()));
    run_once(&client, "content-agent");
    client.close_blocking().expect("closed clean");
    let spans: Vec<Span> = receiver.spans().into_iter().map(|(_, span)| span).collect();
    let chat = one(&spans, "chat claude-sonnet");
    let tool = one(&spans, "execute_tool lookup");
    match case.as_str() {
        "latest_span_and_event" => {
            assert_eq!(text(chat, "gen_ai.provider.name").as_deref(), Some("anthropic"));
            let input: Value = serde_json::from_str(&text(chat, "gen_ai.input.messages").unwrap()).unwrap();
            assert_eq!(input[0]["content"], "hi there");
            let text_of_input = input.to_string();
            assert!(
                !text_of_input.contains("abcdefghijklmnop"),
                "secrets are scrubbed before the export: {text_of_input}"
            );
            assert_eq!(text(chat, "gen_ai.output.messages").as_deref(), Some("hello back"));
            assert_eq!(text(chat, "gen_ai.system_instructions").as_deref(), Some("Be brief."));
            let event = chat
                .events
                .iter()
                .find(|e| e.name == "gen_ai.client.inference.operation.details")
                .expect("the details event");
            assert!(attribute(&event.attributes, "gen_ai.input.messages").is_some());
            let arguments: Value = serde_json::from_str(&text(tool, "gen_ai.tool.call.arguments").unwrap()).unwrap();
            assert_eq!(arguments["query"], "q");
            assert_eq!(text(tool, "gen_ai.tool.call.result").as_deref(), Some(r#"{"hits":2}"#));
            assert!(text(chat, "gen_ai.prompt").is_none(), "the older attribute is not emitted");
        }
        "default_true" => {
            assert_eq!(text(chat, "gen_ai.system").as_deref(), Some("anthropic"));
            assert!(text(chat, "gen_ai.prompt").unwrap().contains("hi there"));
            assert_eq!(text(chat, "gen_ai.completion").as_deref(), Some("hello back"));
            assert!(text(chat, "gen_ai.input.messages").is_none());
            assert!(chat.events.is_empty(), "no content events without the opt-in");
        }
        "unset" => {
            for span in &spans {
                for key in CONTENT_KEYS {
                    assert!(attribute(&span.attributes, key).is_none(), "{} carries {key}", span.name);
                }
                assert!(span.events.is_empty());
            }
            assert_eq!(int(chat, "gen_ai.usage.input_tokens"), Some(3), "metadata is always exported");
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn an_otel_only_export_lands_intact_in_the_local_servers_otlp_ingest() {
    let server = LocalServer::start(ServerConfig::default()).expect("the local server starts");
    // No Prefactor API settings at all: the spans go only to the server's OTLP endpoint.
    let export = OtelExport::otlp_http()
        .endpoint(server.base_url())
        .header("authorization", format!("Bearer {}", server.token()))
        .service_name("otlp-only-service")
        .only();
    let client = Client::new(Config::builder().otel(export).build().unwrap()).unwrap();
    client.initialize_blocking().unwrap();
    run_once(&client, "otlp-only-agent");
    let report = client.close_blocking().expect("closed clean");
    assert_eq!(report.delivered, 0, "nothing went to the Prefactor API");

    let instances = common::get_json_from(&server, "/agent_instance?pagination[page_size]=100");
    let rows = instances["summaries"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "one run, from the OTLP ingest only: {instances}");
    let instance = &rows[0];
    assert!(instance["external_identifier"].as_str().unwrap().starts_with("otel:"), "{instance}");
    assert_eq!(instance["status"], "complete", "the root span finished the run");
    let id = instance["id"].as_str().unwrap();
    let listed =
        common::get_json_from(&server, &format!("/agent_spans?agent_instance_id={id}&pagination[page_size]=100"));
    let spans = listed["summaries"].as_array().unwrap();
    let by_schema: HashMap<&str, &Value> = spans.iter().map(|s| (s["schema_name"].as_str().unwrap(), s)).collect();
    assert_eq!(spans.len(), 3, "{listed}");
    let root = by_schema["agent:agent"];
    let llm = by_schema["agent:llm"];
    let tool = by_schema["agent:tool"];
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(llm["parent_span_id"], root["id"]);
    assert_eq!(tool["parent_span_id"], root["id"]);
    assert_eq!(llm["payload"]["model"], "claude-sonnet");
    assert_eq!(llm["result_payload"]["usage"], json!({"input_tokens": 3, "output_tokens": 2}));
    assert_eq!(tool["payload"]["tool_name"], "lookup");
    assert_eq!(root["payload"]["agent_name"], "otlp-only-agent");
}
