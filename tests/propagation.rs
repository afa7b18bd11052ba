//! Propagation (features `propagation-reqwest`, `propagation-tower`, with `otel`) with real
//! parts: a calling agent, and a tool service built with axum and `PropagationLayer` running in
//! a process of its own (this test binary run again, `tool_service` below, with its own
//! installed client), talking over real HTTP on 127.0.0.1; both deliver to the local server,
//! and what it stored is read back through its API.

mod common;
#[path = "common/otlp_receiver.rs"]
mod otlp_receiver;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::routing::get;
use opentelemetry::trace::{SpanId as OtelSpanId, TraceId};
use opentelemetry::{Key, Value as OtelValue};
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use otlp_receiver::{Receiver, string_of};
use prefactor::propagation::{PropagationLayer, RequestBuilderExt, inject};
use prefactor::{Client, Config, Delivery, InstanceId, OtelExport, OtelIdGenerator, Payload, SpanId, agent, span};
use prefactor_server::{FaultRule, LocalServer, ServerConfig};
use serde_json::{Value, json};

/// The tool service's work: nested spans, and what it would send on to a further service.
#[span(schema = "tool:lookup")]
async fn lookup(city: String) -> Value {
    tokio::task::yield_now().await; // the context must survive an `.await`
    let temperature = query(&city);
    tokio::task::yield_now().await;
    let mut onward = HeaderMap::new();
    inject(&mut onward);
    let onward: serde_json::Map<String, Value> =
        onward.iter().map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or_default()))).collect();
    json!({ "temperature": temperature, "onward": onward })
}

#[span(schema = "tool:db")]
fn query(city: &str) -> u32 {
    u32::try_from(city.len()).unwrap_or(0) + 10
}

/// The handler: the incoming trace headers echoed, the lookup's answer, and whether a run was
/// current.
async fn handle(Path(city): Path<String>, headers: HeaderMap) -> axum::Json<Value> {
    let joined = prefactor::current_instance().map(|instance| instance.id().to_string());
    let mut answer = lookup(city).await;
    answer["joined"] = json!(joined);
    answer["traceparent"] = json!(headers.get("traceparent").and_then(|v| v.to_str().ok()));
    axum::Json(answer)
}

/// A tool service on 127.0.0.1 (spans through the installed client); its URL.
fn serve_tool(runtime: &tokio::runtime::Runtime) -> String {
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/lookup/{city}", get(handle)).layer(PropagationLayer::new());
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// Configuration of the tool process and of the tests' explicit callers: short retry delays.
fn config_for(api_url: &str, token: &str) -> prefactor::ConfigBuilder {
    Config::builder()
        .api_url(api_url)
        .api_token(token)
        .initial_retry_delay(Duration::from_millis(50))
        .max_retry_delay(Duration::from_millis(400))
}

/// A caller with a client of its own (explicit API).
fn caller_for(
    server: &LocalServer,
    configure: impl FnOnce(prefactor::ConfigBuilder) -> prefactor::ConfigBuilder,
) -> Client {
    let client = Client::new(configure(config_for(server.base_url(), server.token())).build().unwrap()).unwrap();
    client.initialize_blocking().unwrap();
    client
}

const TOOL_API_URL: &str = "PREFACTOR_TEST_TOOL_API_URL";
const TOOL_API_TOKEN: &str = "PREFACTOR_TEST_TOOL_API_TOKEN";
const TOOL_OTLP: &str = "PREFACTOR_TEST_TOOL_OTLP";

/// The tool service process the other tests start (this binary, this test alone): installs
/// its client for the server they name, serves until its stdin closes, then reports its stats.
#[test]
#[ignore = "the tool service process of the other tests, which run it themselves"]
fn tool_service() {
    let (Ok(api_url), Ok(token)) = (std::env::var(TOOL_API_URL), std::env::var(TOOL_API_TOKEN)) else { return };
    let mut config = config_for(&api_url, &token);
    if let Ok(endpoint) = std::env::var(TOOL_OTLP) {
        config = config.otel(OtelExport::otlp_http().endpoint(endpoint).service_name("tool-service"));
    }
    // Its warnings (a failed delivery says why) on stderr, which the test's output shows.
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("warn").try_init();
    let guard = prefactor::init_blocking(config.build().unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("TOOL_URL={}", serve_tool(&runtime));
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|read| read > 0) {
        line.clear();
    }
    guard.client().flush_blocking(Duration::from_secs(20)).unwrap();
    let stats = guard.client().stats();
    println!(
        "TOOL_STATS sent={} failed={} retried={} unattached={} sampled_out_spans={}",
        stats.sent, stats.failed, stats.retried, stats.unattached, stats.sampled_out_spans
    );
}

/// The tool service's process, killed if a test fails before it finished.
struct ToolProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    url: String,
}

impl ToolProcess {
    fn start(server: &LocalServer, otlp: Option<&str>) -> ToolProcess {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["tool_service", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(TOOL_API_URL, server.base_url())
            .env(TOOL_API_TOKEN, server.token())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(endpoint) = otlp {
            command.env(TOOL_OTLP, endpoint);
        }
        let mut child = command.spawn().expect("the tool service process starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = ToolProcess { child, lines, url: String::new() };
        process.url = process.line_starting("TOOL_URL=");
        process
    }

    /// What follows `prefix` in the first line of its output that has it (within 60 s).
    fn line_starting(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("the tool process printed no {prefix}"));
            // libtest may print `test tool_service ... ` before it on the same line.
            if let Some((_, rest)) = line.split_once(prefix) {
                return rest.to_owned();
            }
        }
    }

    /// Stops it (its client flushes first) and returns its client's stats.
    fn finish(mut self) -> HashMap<String, u64> {
        drop(self.child.stdin.take());
        let stats = self.line_starting("TOOL_STATS ");
        stats
            .split(' ')
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.parse().unwrap()))
            .collect()
    }
}

impl Drop for ToolProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[span(schema = "agent:tool", skip(http))]
async fn call_tool(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = http
        .get(url)
        .with_prefactor_context()
        .header("tracestate", "acme=t61rcWkgMzE,other@vendor=1")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}

#[agent(name = "planner")]
async fn plan(http: &reqwest::Client, url: &str) -> (String, Result<Value, String>) {
    let id = prefactor::current_instance().map(|i| i.id().to_string()).unwrap_or_default();
    (id, call_tool(http, url).await)
}

fn span_named<'a>(spans: &'a [Value], schema: &str) -> &'a Value {
    spans.iter().find(|s| s["schema_name"] == schema).unwrap_or_else(|| panic!("no {schema} span in {spans:#?}"))
}

#[test]
fn a_tool_services_spans_join_the_callers_run_under_the_callers_span() {
    let harness = common::harness();
    let tool = ToolProcess::start(&harness.server, None);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();

    let (instance, answer) = runtime.block_on(plan(&http, &format!("{}/lookup/Paris", tool.url)));
    let answer = answer.expect("the tool answered");
    assert_eq!(answer["temperature"], 15);
    assert_eq!(answer["joined"], json!(instance), "the handler ran inside the caller's run");

    common::flush();
    let stats = tool.finish();
    assert_eq!((stats["sent"], stats["failed"]), (4, 0), "two spans, each a create and a finish: {stats:?}");
    let spans = common::spans_of(instance.parse().unwrap());
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let (caller, lookup, db) =
        (span_named(&spans, "agent:tool"), span_named(&spans, "tool:lookup"), span_named(&spans, "tool:db"));
    assert!(spans.iter().all(|s| s["agent_instance_id"] == json!(instance) && s["status"] == "complete"));
    assert_eq!(lookup["parent_span_id"], caller["id"], "the tool's span is a child of the caller's");
    assert_eq!(db["parent_span_id"], lookup["id"], "and its own spans nest under it");

    // The headers the tool would send on: the same run under its own span, the caller's
    // tracestate passed on unchanged, one trace id end to end.
    let onward = &answer["onward"];
    assert_eq!(onward["prefactor-context"], json!(format!("00-{instance}-{}-01", lookup["id"].as_str().unwrap())));
    assert_eq!(onward["tracestate"], "acme=t61rcWkgMzE,other@vendor=1");
    let traceparent = answer["traceparent"].as_str().unwrap();
    assert_eq!(&onward["traceparent"].as_str().unwrap()[..36], &traceparent[..36]);
}

#[test]
fn malformed_or_missing_headers_leave_the_request_outside_any_run() {
    let harness = common::harness();
    let tool = ToolProcess::start(&harness.server, None);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let run = "01jf6k8fm30000050000000000000001";
    let malformed = [
        vec![],
        vec![("prefactor-context", "garbage".to_owned())],
        vec![("prefactor-context", format!("00-{}-01", run.to_uppercase()))],
        vec![("prefactor-context", format!("ff-{run}-01"))],
        vec![("prefactor-context", format!("00-{run}-"))],
        vec![("prefactor-context", format!("00-{run}"))],
        vec![("prefactor-context", format!("00-{run}-03"))],
        vec![("prefactor-context", format!("00-{run}-01")), ("prefactor-context", format!("00-{run}-01"))],
        vec![("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned())],
    ];
    let requests = malformed.len();
    for headers in malformed {
        let mut request = http.get(format!("{}/lookup/Oslo", tool.url));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let response = runtime.block_on(request.send()).unwrap();
        assert_eq!(response.status(), 200, "{headers:?}");
        let answer: Value = runtime.block_on(response.json()).unwrap();
        assert_eq!(answer["joined"], Value::Null, "{headers:?}");
        assert!(answer["onward"].as_object().unwrap().is_empty(), "{headers:?}: nothing to pass on");
    }
    let stats = tool.finish();
    assert_eq!(stats["sent"], 0);
    assert_eq!(stats["unattached"], 2 * requests as u64, "each request's two spans ran outside any run");
}

/// A run of `caller` (explicit API) whose `agent:tool` span calls `tool` for `city`; once the
/// answer is in, the span and run finish and `caller` is flushed. The run's id, the span's id
/// and the tool's answer.
fn explicit_run_calling(caller: &Client, tool: &ToolProcess, city: &str) -> (InstanceId, SpanId, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let instance = caller.create_agent_instance(prefactor::CreateInstance::default()).unwrap();
    instance.start();
    let span = instance.span("agent:tool").payload(Payload::from(json!({ "url": tool.url }))).start();
    let url = format!("{}/lookup/{city}", tool.url);
    let request = span.context().in_scope(|| reqwest::Client::new().get(url).with_prefactor_context());
    let answer: Value = runtime.block_on(async { request.send().await.unwrap().json().await.unwrap() });
    let ids = (instance.id(), span.id());
    span.complete();
    instance.finish(prefactor::FinishStatus::Complete);
    caller.flush_blocking(Duration::from_secs(20)).unwrap();
    (ids.0, ids.1, answer)
}

/// The tool's spans reach the server before the caller's run does (its registration held up
/// 1.5 s): they wait for it instead of failing, and land in the run under the caller's span.
#[test]
fn a_tool_span_that_arrives_before_the_callers_run_waits_for_it() {
    let server = LocalServer::start(ServerConfig::default()).unwrap();
    server.add_fault(FaultRule::delay("/api/v1/agent_instance/register", 1_500).times(1));
    let tool = ToolProcess::start(&server, None);
    let caller = caller_for(&server, |b| b.delivery(Delivery::PerRequest));

    let (instance, caller_span, answer) = explicit_run_calling(&caller, &tool, "Rome");
    assert_eq!(answer["joined"], json!(instance.to_string()));

    let stats = tool.finish();
    assert!(stats["retried"] >= 1, "the tool's first create found no run: {stats:?}");
    assert_eq!((stats["sent"], stats["failed"]), (4, 0), "{stats:?}");
    let body = common::get_json_from(&server, &format!("/agent_spans?agent_instance_id={instance}"));
    let spans = body["summaries"].as_array().unwrap();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert_eq!(span_named(spans, "tool:lookup")["parent_span_id"], json!(caller_span.to_string()));
}

/// A run the caller's sampling left out: the tool service's code still runs inside it, but
/// sends nothing of it (its spans counted as sampled out), and the W3C header says unsampled.
#[test]
fn a_run_left_out_by_the_callers_sampling_is_left_out_by_the_tool_too() {
    let server = LocalServer::start(ServerConfig::default()).unwrap();
    let tool = ToolProcess::start(&server, None);
    let caller = caller_for(&server, |b| b.sample_rate(0.0).keep_failed_runs(false));
    let (instance, _, answer) = explicit_run_calling(&caller, &tool, "Kyiv");
    assert_eq!(answer["joined"], json!(instance.to_string()), "the handler still runs in the run");
    assert!(answer["traceparent"].as_str().unwrap().ends_with("-00"), "{answer}");
    assert!(answer["onward"]["prefactor-context"].as_str().unwrap().ends_with("-00"), "passed on unsampled");

    let stats = tool.finish();
    assert_eq!((stats["sent"], stats["failed"], stats["retried"]), (0, 0, 0), "{stats:?}");
    assert_eq!(stats["sampled_out_spans"], 2, "{stats:?}");
    let url = format!("{}/api/v1/agent_instance/{instance}", server.base_url());
    let status = reqwest::blocking::Client::new().get(url).bearer_auth(server.token()).send().unwrap().status();
    assert_eq!(status, 404, "nothing of the run reached the server");
}

/// Collects the spans a provider ends (a process's OTel export, in memory).
#[derive(Debug, Default, Clone)]
struct Ended(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Ended {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

impl Ended {
    fn of_schema(&self, schema: &str) -> SpanData {
        let spans = self.0.lock().unwrap();
        let key = Key::new("prefactor.schema_name");
        let found = spans
            .iter()
            .find(|s| s.attributes.iter().any(|kv| kv.key == key && kv.value == OtelValue::from(schema.to_owned())));
        found.cloned().unwrap_or_else(|| panic!("no OTel span of {schema}: {spans:#?}"))
    }

    fn run(&self) -> SpanData {
        let spans = self.0.lock().unwrap();
        spans.iter().find(|s| s.name.starts_with("invoke_agent")).cloned().expect("the run's span")
    }
}

/// The span `receiver` got for the Prefactor span type `schema`.
fn received(receiver: &Receiver, schema: &str) -> ProtoSpan {
    let spans = receiver.spans();
    let found = spans.iter().find(|(_, span)| {
        span.attributes
            .iter()
            .any(|kv| kv.key == "prefactor.schema_name" && string_of(kv.value.as_ref()).as_deref() == Some(schema))
    });
    found.map(|(_, span)| span.clone()).unwrap_or_else(|| panic!("no exported span of {schema}: {spans:#?}"))
}

/// With the OTel export on in both processes, the tool's OTel spans are in the caller's trace
/// under the caller's OTel span, and the `traceparent` on the wire names exactly that span.
#[test]
fn the_tool_services_otel_spans_carry_the_callers_trace_and_parent() {
    let server = LocalServer::start(ServerConfig::default()).unwrap();
    let receiver = Receiver::start();
    let tool = ToolProcess::start(&server, Some(&receiver.url()));
    let ended = Ended::default();
    let provider = SdkTracerProvider::builder()
        .with_id_generator(OtelIdGenerator::default())
        .with_span_processor(ended.clone())
        .build();
    let caller = caller_for(&server, |b| b.otel(OtelExport::with_provider(provider)));

    let (_, _, answer) = explicit_run_calling(&caller, &tool, "Lima");
    assert_eq!(caller.stats().failed, 0, "{:?}", caller.close_blocking());
    let stats = tool.finish();
    assert_eq!(stats["failed"], 0);

    let (run, caller_span) = (ended.run(), ended.of_schema("agent:tool"));
    let trace = run.span_context.trace_id();
    assert_eq!(caller_span.span_context.trace_id(), trace);
    let (lookup, db) = (received(&receiver, "tool:lookup"), received(&receiver, "tool:db"));
    assert_eq!(lookup.trace_id, trace.to_bytes(), "the tool's span is in the caller's trace");
    assert_eq!(db.trace_id, trace.to_bytes());
    assert_eq!(lookup.parent_span_id, caller_span.span_context.span_id().to_bytes(), "under the caller's span");
    assert_eq!(db.parent_span_id, lookup.span_id);
    assert_eq!(
        answer["traceparent"],
        json!(format!("00-{}-{}-01", hex_trace(trace), hex_span(caller_span.span_context.span_id()))),
        "the W3C header names the caller's exported span"
    );
}

fn hex_trace(id: TraceId) -> String {
    format!("{id:032x}")
}

fn hex_span(id: OtelSpanId) -> String {
    format!("{id:016x}")
}
