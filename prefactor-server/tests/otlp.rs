//! OTLP ingest over real HTTP: trace exports built with the official protobuf definitions
//! (`opentelemetry-proto`), sent as protobuf (gzip too) and as OTLP/JSON, read back through
//! the API as an agent instance whose spans keep their tree, times, status and GenAI
//! attributes; repeated exports store nothing twice; bad spans are counted in the partial
//! success; errors come in the form OTLP clients read.

mod common;

use std::io::Write;

use common::Api;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use prefactor_server::otlp::RpcStatus;
use prost::Message;
use serde_json::{Value, json};

const START: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
        ..Default::default()
    }
}

fn otel_span(trace: u8, id: u8, parent: Option<u8>, name: &str, offset_ms: u64, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|parent| vec![parent; 8]).unwrap_or_default(),
        name: name.into(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: START + offset_ms * 1_000_000,
        end_time_unix_nano: START + (offset_ms + 100) * 1_000_000,
        attributes,
        ..Default::default()
    }
}

/// The small agent trace of the issue: an invoke_agent root, a chat child with GenAI
/// attributes, an execute_tool child that failed.
fn agent_trace(trace: u8) -> Vec<Span> {
    let root =
        otel_span(trace, 1, None, "invoke_agent planner", 0, vec![text("gen_ai.operation.name", "invoke_agent")]);
    let chat = otel_span(
        trace,
        2,
        Some(1),
        "chat gpt-4o",
        10,
        vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.request.model", "gpt-4o"),
            text("gen_ai.input.messages", r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#),
            int("gen_ai.usage.input_tokens", 42),
            int("gen_ai.usage.output_tokens", 7),
            text("http.route", "/chat"),
        ],
    );
    let mut tool = otel_span(
        trace,
        3,
        Some(1),
        "execute_tool search",
        20,
        vec![text("gen_ai.operation.name", "execute_tool"), text("gen_ai.tool.name", "search")],
    );
    tool.status = Some(Status { message: "search backend down".into(), code: status::StatusCode::Error as i32 });
    vec![root, chat, tool]
}

fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![text("service.name", service)], ..Default::default() }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "test".into(), version: "1".into(), ..Default::default() }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Posts a protobuf export (gzip when asked) and returns the status and decoded answer body.
async fn post_protobuf(api: &Api, request: &ExportTraceServiceRequest, gzipped: bool) -> (u16, Vec<u8>) {
    let mut body = request.encode_to_vec();
    let mut builder = api
        .http
        .post(api.url("/v1/traces"))
        .bearer_auth(api.server.token())
        .header("content-type", "application/x-protobuf");
    if gzipped {
        body = gzip(&body);
        builder = builder.header("content-encoding", "gzip");
    }
    let response = builder.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn post_json(api: &Api, body: Vec<u8>) -> (u16, Value) {
    let request = api
        .http
        .post(api.url("/v1/traces"))
        .bearer_auth(api.server.token())
        .header("content-type", "application/json")
        .body(body);
    api.send(request).await
}

/// The instance of a trace (its external identifier is `otel:<trace id>`) and its spans by
/// name, read through the API.
async fn read_trace(api: &Api, trace: u8) -> (Value, Vec<Value>) {
    let (status, list) = api.get("/api/v1/agent_instance?pagination[page_size]=100").await;
    assert_eq!(status, 200, "{list}");
    let external = format!("otel:{}", format!("{trace:02x}").repeat(16));
    let instance = list["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["external_identifier"] == external.as_str())
        .unwrap_or_else(|| panic!("no instance for {external}: {list}"))
        .clone();
    let id = instance["id"].as_str().unwrap();
    let (status, spans) =
        api.get(&format!("/api/v1/agent_spans?agent_instance_id={id}&pagination[page_size]=100")).await;
    assert_eq!(status, 200, "{spans}");
    (instance, spans["summaries"].as_array().unwrap().clone())
}

fn by_name<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans.iter().find(|span| span["payload"]["name"] == name).unwrap_or_else(|| panic!("no span {name}: {spans:?}"))
}

fn assert_agent_tree(instance: &Value, spans: &[Value]) {
    assert_eq!(spans.len(), 3, "{spans:?}");
    let root = by_name(spans, "invoke_agent planner");
    let chat = by_name(spans, "chat gpt-4o");
    let tool = by_name(spans, "execute_tool search");
    assert_eq!(root["schema_name"], "agent:agent");
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(chat["schema_name"], "agent:llm");
    assert_eq!(chat["parent_span_id"], root["id"]);
    assert_eq!(tool["schema_name"], "agent:tool");
    assert_eq!(tool["parent_span_id"], root["id"]);
    assert_eq!(chat["status"], "complete");
    assert_eq!(tool["status"], "failed");
    assert_eq!(tool["result_payload"]["error"], "search backend down");
    assert_eq!(chat["payload"]["model"], "gpt-4o");
    assert_eq!(chat["payload"]["messages"][0]["role"], "user", "message lists arrive as JSON");
    assert_eq!(chat["payload"]["attributes"]["http.route"], "/chat");
    assert_eq!(chat["result_payload"]["usage"], json!({"input_tokens": 42, "output_tokens": 7}));
    assert_eq!(tool["payload"]["tool_name"], "search");
    assert_eq!(chat["started_at"], "2026-01-01T00:00:00.010000Z");
    assert_eq!(chat["finished_at"], "2026-01-01T00:00:00.110000Z");
    assert_eq!(instance["status"], "complete", "the root finished the run: {instance}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protobuf_export_is_stored_as_an_agent_run_with_its_tree_once() {
    let api = Api::start();
    let request = export("planner-service", agent_trace(0xa1));
    let (status, body) = post_protobuf(&api, &request, true).await;
    assert_eq!(status, 200, "{body:?}");
    let answer = ExportTraceServiceResponse::decode(body.as_slice()).expect("a protobuf answer");
    assert_eq!(answer.partial_success, None);
    let (instance, spans) = read_trace(&api, 0xa1).await;
    assert_agent_tree(&instance, &spans);
    let (status, agent) = api.get(&format!("/api/v1/agent/{}", instance["agent_id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert_eq!(agent["details"]["name"], "planner-service");

    // The exporter retries, uncompressed this time: nothing is stored twice.
    let (status, _) = post_protobuf(&api, &request, false).await;
    assert_eq!(status, 200);
    let (again, spans_again) = read_trace(&api, 0xa1).await;
    assert_eq!(again["id"], instance["id"]);
    assert_eq!(spans_again.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_export_split_children_first_keeps_its_tree() {
    let api = Api::start();
    let mut spans = agent_trace(0xb2);
    let root = spans.remove(0);
    // Children end (and are exported) before their parent.
    let children = serde_json::to_vec(&export("json-service", spans)).unwrap();
    let (status, answer) = post_json(&api, children).await;
    assert_eq!(status, 200, "{answer}");
    let (instance, stored) = read_trace(&api, 0xb2).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(instance["status"], "active", "no root yet: {instance}");
    let (status, answer) = post_json(&api, serde_json::to_vec(&export("json-service", vec![root])).unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    let (instance, stored) = read_trace(&api, 0xb2).await;
    assert_agent_tree(&instance, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_otlp_json_as_the_specification_shows_it_is_accepted() {
    let api = Api::start();
    // The OTLP/JSON form of the specification: hex ids, nanoseconds as strings, enum numbers.
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "hand-written"}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "name": "chat",
            "kind": 3,
            "startTimeUnixNano": "1767225600000000000",
            "endTimeUnixNano": "1767225601000000000",
            "attributes": [
                {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                {"key": "input.value", "value": {"stringValue": "{\"question\": \"why?\"}"}},
                {"key": "output.value", "value": {"stringValue": "because"}},
                {"key": "llm.token_count.prompt", "value": {"intValue": "12"}}
            ],
            "status": {}
        }]}]
    }]});
    let (status, answer) = post_json(&api, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    let (status, list) = api.get("/api/v1/agent_instance").await;
    assert_eq!(status, 200);
    let id = list["summaries"][0]["id"].as_str().unwrap().to_string();
    let (_, spans) = api.get(&format!("/api/v1/agent_spans?agent_instance_id={id}")).await;
    let span = &spans["summaries"][0];
    assert_eq!(span["schema_name"], "agent:llm");
    assert_eq!(span["payload"]["kind"], "client");
    assert_eq!(span["payload"]["input"], json!({"question": "why?"}));
    assert_eq!(span["result_payload"]["output"], "because");
    assert_eq!(span["result_payload"]["usage"]["input_tokens"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_spans_are_counted_in_the_partial_success_and_the_others_stored() {
    let api = Api::start();
    let mut spans = agent_trace(0xc3);
    let mut broken = otel_span(0xc3, 9, Some(1), "broken", 30, vec![]);
    broken.span_id = vec![1, 2, 3];
    let mut timeless = otel_span(0xc3, 8, Some(1), "timeless", 30, vec![]);
    timeless.start_time_unix_nano = 0;
    spans.push(broken);
    spans.push(timeless);
    let (status, body) = post_protobuf(&api, &export("partial", spans), false).await;
    assert_eq!(status, 200);
    let answer = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    let partial = answer.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(partial.error_message.contains("span_id must be 8 bytes"), "{}", partial.error_message);
    let (instance, stored) = read_trace(&api, 0xc3).await;
    assert_agent_tree(&instance, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_as_rpc_status_for_protobuf_and_in_the_error_shape_for_json() {
    let api = Api::start_with(prefactor_server::ServerConfig::default().with_max_body_bytes(64 * 1024));
    let request = export("errors", agent_trace(0xd4)).encode_to_vec();
    // No token: the pipeline's 401, as a google.rpc.Status for a protobuf client.
    let response = api
        .http
        .post(api.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let status = RpcStatus::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 16, "UNAUTHENTICATED");
    // Not protobuf at all.
    let (code, body) = post_protobuf_raw(&api, b"\xff\xff\xff\xff".to_vec(), None).await;
    assert_eq!(code, 400);
    assert_eq!(RpcStatus::decode(body.as_slice()).unwrap().code, 3);
    // A gzip bomb: 64 KiB that inflate past the limit stop at the limit.
    let bomb = gzip(&vec![0u8; 8 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    let (code, body) = post_protobuf_raw(&api, bomb, Some("gzip")).await;
    assert_eq!(code, 413);
    assert!(RpcStatus::decode(body.as_slice()).unwrap().message.contains("decompressed"));
    // JSON requests get the server's JSON error shape.
    let (code, body) = post_json(&api, b"{\"resourceSpans\": 5}".to_vec()).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["status"], "error");
    let response = api
        .http
        .post(api.url("/v1/traces"))
        .bearer_auth(api.server.token())
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unsupported_media_type");
    // Nothing of it was stored.
    let (_, list) = api.get("/api/v1/agent_instance").await;
    assert_eq!(list["summaries"], json!([]));
}

async fn post_protobuf_raw(api: &Api, body: Vec<u8>, encoding: Option<&str>) -> (u16, Vec<u8>) {
    let mut builder = api
        .http
        .post(api.url("/v1/traces"))
        .bearer_auth(api.server.token())
        .header("content-type", "application/x-protobuf");
    if let Some(encoding) = encoding {
        builder = builder.header("content-encoding", encoding);
    }
    let response = builder.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}
