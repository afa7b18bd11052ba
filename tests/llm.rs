//! `prefactor::llm` spans against the local server: `#[span]` on sync and async functions
//! taking a `Request` and returning a `Response`, and the explicit API with the same payloads;
//! the server's schema validation accepting them; the model, finish reason, usage and cost
//! where the dashboard and the `OTel` mapping read them; prices of your own models.
#![deny(clippy::pedantic)]

mod common;

use common::{current_instance_id, finished_spans_of, get_json, harness, rejected_requests, span};
use prefactor::llm::{self, Message, ModelPrice, Request, Response, Tool, ToolCall, Usage};
use prefactor::{FinishSpan, agent};
use serde_json::{Value, json};

#[derive(Debug)]
struct ModelError(&'static str);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Stands in for the provider: what a model of that name answers (the code under test is the
/// recording of the call, not the model).
fn provider_answer(request: &Request) -> Result<Response, ModelError> {
    match request.model.as_str() {
        "gpt-4o" => Ok(Response::text("Checking the weather.")
            .id("chatcmpl-1")
            .model("gpt-4o-2024-08-06")
            .tool_call(ToolCall::from_json_text("get_weather", r#"{"city":"Paris"}"#).id("call_1"))
            .finish_reason("tool_calls")
            .usage(Usage::new(1_200, 300).cache_read(1_000).reasoning(100))),
        "overloaded" => Err(ModelError("the model is overloaded")),
        other => {
            Ok(Response::text("ok").model(other).finish_reason("end_turn").usage(Usage::new(2_000_000, 1_000_000)))
        }
    }
}

#[prefactor::span(schema = "agent:llm", title = "LLM call", template = "{{ inputs.model }}")]
fn call(inputs: &Request) -> Result<Response, ModelError> {
    provider_answer(inputs)
}

#[prefactor::span(schema = "agent:llm", title = "LLM call", template = "{{ inputs.model }}")]
async fn call_async(inputs: &Request) -> Result<Response, ModelError> {
    tokio::task::yield_now().await;
    provider_answer(inputs)
}

fn weather_request(model: &str) -> Request {
    Request::new(model)
        .provider("openai")
        .message(Message::system("You are a weather bot."))
        .message(Message::user("Weather in Paris?"))
        .tool(Tool::function("get_weather").description("Current weather").parameters(json!({"type": "object"})))
        .temperature(0.2)
        .max_tokens(256)
}

#[agent(name = "llm-sync")]
fn sync_run() -> prefactor::InstanceId {
    let _ = call(&weather_request("gpt-4o"));
    current_instance_id()
}

fn close(actual: &Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|actual| (actual - expected).abs() < 1e-12)
}

#[test]
fn an_llm_call_is_recorded_with_its_request_usage_cost_and_finish_reason() {
    let _ = harness();
    let id = sync_run();
    let spans = finished_spans_of(id, 1);
    let llm = span(&spans, "agent:llm");
    assert_eq!(llm["status"], "complete");

    let inputs = &llm["payload"]["inputs"];
    assert_eq!(inputs["model"], "gpt-4o", "where the dashboard reads the model");
    assert_eq!(inputs["provider"], "openai");
    assert_eq!(inputs["temperature"], 0.2);
    assert_eq!(inputs["max_tokens"], 256);
    assert_eq!(
        inputs["messages"][1],
        json!({"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]})
    );
    assert_eq!(inputs["tools"][0]["name"], "get_weather");
    let listed = get_json(&format!("/agent_spans?agent_instance_id={id}&include_summaries=true"));
    assert_eq!(listed["summaries"][0]["summary"], "gpt-4o", "the template reads the request");

    let result = &llm["result_payload"];
    assert_eq!(result["model"], "gpt-4o-2024-08-06");
    assert_eq!(result["tool_calls"][0], json!({"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}));
    assert_eq!(result["finish_reason"], "tool_calls");
    assert_eq!(result["ai"]["finishReason"], json!({"unified": "tool-calls", "raw": "tool_calls"}));
    let usage = &result["usage"];
    assert_eq!((usage["input_tokens"].as_u64(), usage["output_tokens"].as_u64()), (Some(1_200), Some(300)));
    assert_eq!(usage["total_tokens"], 1_500);
    assert_eq!(usage["cache_read_input_tokens"], 1_000);
    assert_eq!(usage["reasoning_output_tokens"], 100);
    // gpt-4o: 200 fresh input tokens at $2.50/M, 1000 cached at $1.25/M, 300 output at $10/M.
    let cost = &usage["cost"];
    assert!(close(&cost["input"], 0.0005 + 0.00125), "{cost}");
    assert!(close(&cost["output"], 0.003), "{cost}");
    assert!(close(&cost["total"], 0.00475), "{cost}");
    assert_eq!((cost["currency"].as_str(), cost["priced_as"].as_str()), (Some("USD"), Some("gpt-4o")));
    assert_eq!(cost["prices_as_of"], "2025-08");
    assert_eq!(rejected_requests(), Vec::<String>::new(), "the schemas accept what the llm types send");
}

#[agent(name = "llm-async")]
async fn async_run() -> prefactor::InstanceId {
    let _ = call_async(&Request::new("overloaded").message(Message::user("hi"))).await;
    let _ = call_async(&Request::new("claude-3-5-haiku").message(Message::user("hi"))).await;
    current_instance_id()
}

#[test]
fn async_calls_record_failures_and_price_other_providers() {
    let _ = harness();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let id = runtime.block_on(async_run());
    let spans = finished_spans_of(id, 2);
    let failed = spans.iter().find(|s| s["status"] == "failed").expect("the failed call");
    assert_eq!(failed["payload"]["inputs"]["model"], "overloaded");
    assert_eq!(failed["result_payload"]["error"]["message"], "the model is overloaded");
    let haiku = spans.iter().find(|s| s["status"] == "complete").expect("the answered call");
    let cost = &haiku["result_payload"]["usage"]["cost"];
    // claude-3-5-haiku: 2M input tokens at $0.80/M, 1M output at $4/M.
    assert!(close(&cost["total"], 5.6), "{cost}");
    assert_eq!(haiku["result_payload"]["ai"]["finishReason"]["unified"], "stop");
    assert_eq!(rejected_requests(), Vec::<String>::new());
}

#[agent(name = "llm-house")]
fn house_run() -> prefactor::InstanceId {
    let _ = call(&Request::new("house-llama-70b").provider("vllm"));
    let _ = call(&Request::new("mystery-model"));
    current_instance_id()
}

#[test]
fn your_own_prices_cost_self_hosted_models_and_unknown_models_are_left_unpriced() {
    let _ = harness();
    // A self-hosted model, at what its GPUs cost per million tokens.
    llm::add_price(ModelPrice::per_million("house-llama-70b", 0.25, 0.50).currency("EUR").as_of("2026-12-01"))
        .expect("a valid price");
    let id = house_run();
    let spans = finished_spans_of(id, 2);
    let result_of = |model: &str| {
        spans.iter().find(|s| s["payload"]["inputs"]["model"] == model).map(|s| s["result_payload"].clone()).unwrap()
    };
    let house = result_of("house-llama-70b");
    assert_eq!(house["usage"]["cost"]["currency"], "EUR");
    assert!(close(&house["usage"]["cost"]["total"], 1.0), "{house}");
    assert_eq!(house["usage"]["cost"]["prices_as_of"], "2026-12-01");
    let mystery = result_of("mystery-model");
    assert_eq!(mystery["usage"]["total_tokens"], 3_000_000);
    assert!(mystery["usage"].get("cost").is_none(), "no price, no invented cost: {mystery}");
    assert_eq!(rejected_requests(), Vec::<String>::new());
}

#[agent(name = "llm-explicit")]
fn explicit_run() -> prefactor::InstanceId {
    let instance = prefactor::current_instance().expect("inside the run");
    let request = weather_request("gpt-4o");
    let span = instance.span("agent:llm").payload(request.to_payload().expect("serializable")).start();
    let response = provider_answer(&request).expect("answered");
    span.finish(FinishSpan::complete().result(response.to_payload().expect("serializable")));
    instance.id()
}

#[test]
fn the_explicit_api_records_the_same_shapes_as_the_macro() {
    let _ = harness();
    let id = explicit_run();
    let spans = finished_spans_of(id, 1);
    let llm = span(&spans, "agent:llm");
    assert_eq!(llm["payload"]["inputs"]["model"], "gpt-4o");
    assert_eq!(llm["result_payload"]["usage"]["cost"]["priced_as"], "gpt-4o");
    assert_eq!(rejected_requests(), Vec::<String>::new(), "validated against the schemas `#[span]` declared");
}

#[test]
fn span_type_has_the_schemas_the_macro_derives() {
    let declared = prefactor::__private::inventory::iter::<prefactor::__private::StaticSpanType>
        .into_iter()
        .find(|span_type| span_type.name == "agent:llm")
        .expect("`call` declares agent:llm");
    let mut registry = prefactor::SchemaRegistry::new();
    registry.register_type(llm::span_type("agent:llm")).expect("registered");
    let document = registry.to_agent_schema_version(None);
    let made = &document.span_type_schemas.expect("one span type")[0];
    assert_eq!(made.params_schema, (declared.params_schema)());
    assert_eq!(made.result_schema, declared.result_schema.map(|schema| schema()));
}

/// Every key of `value` is a property of `schema` (through `anyOf`/`oneOf`/`allOf` branches
/// and `items`), down to values the schema leaves open.
fn assert_documented(value: &Value, schema: &Value, path: &str) {
    let branches = branches(schema);
    match value {
        Value::Object(object) => {
            if !branches.iter().any(|b| b.get("properties").is_some()) {
                return; // An open value (`serde_json::Value`): anything goes.
            }
            for (key, inner) in object {
                let property = branches.iter().find_map(|b| b.get("properties").and_then(|p| p.get(key)));
                let property = property.unwrap_or_else(|| panic!("`{path}.{key}` is sent but not in the schema"));
                assert_documented(inner, property, &format!("{path}.{key}"));
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = branches.iter().find_map(|b| b.get("items")) {
                for (at, item) in items.iter().enumerate() {
                    assert_documented(item, item_schema, &format!("{path}[{at}]"));
                }
            }
        }
        _ => {}
    }
}

fn branches(schema: &Value) -> Vec<&Value> {
    let mut all = vec![schema];
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for branch in schema.get(combinator).and_then(Value::as_array).into_iter().flatten() {
            all.extend(branches(branch));
        }
    }
    all
}

#[test]
fn every_key_sent_is_documented_in_the_schemas() {
    let request = weather_request("gpt-4o")
        .message(Message::assistant("calling").name("bot"))
        .message(Message::tool("call_1", json!({"temp_c": 21})))
        .top_p(0.9)
        .stop_sequence("END")
        .seed(3)
        .streamed();
    let request_json = serde_json::to_value(&request).expect("serializable");
    assert_documented(&request_json, &prefactor::schema_for::<Request>(), "request");
    let response =
        provider_answer(&request).expect("answered").time_to_first_token(std::time::Duration::from_millis(80));
    let response_json = serde_json::to_value(&response).expect("serializable");
    assert!(response_json["usage"]["cost"].is_object(), "{response_json}");
    assert_documented(&response_json, &prefactor::schema_for::<Response>(), "response");
    // And the schema is no blank cheque: the finish reason is documented as a string.
    let schema = prefactor::schema_for::<Response>();
    assert_eq!(schema["title"], "LLM response");
    assert!(schema["properties"]["finish_reason"].to_string().contains("string"), "{schema}");
}

#[test]
fn requests_and_responses_read_back_what_they_wrote() {
    let request = weather_request("gpt-4o");
    let back: Request = serde_json::from_value(serde_json::to_value(&request).unwrap()).unwrap();
    assert_eq!(back, request);
    let response = provider_answer(&request).unwrap();
    let back: Response = serde_json::from_value(serde_json::to_value(&response).unwrap()).unwrap();
    assert_eq!(back.usage.as_ref().and_then(|u| u.cost.as_ref()), response.cost().as_ref(), "the cost travels along");
    assert_eq!(back.tool_calls, response.tool_calls);
}
