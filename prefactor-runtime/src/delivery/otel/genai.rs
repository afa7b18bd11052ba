//! Prefactor payloads to the OpenTelemetry GenAI semantic conventions: span names and kinds,
//! `gen_ai.*` attributes from the fields payloads commonly have, and message content only as
//! the capture setting allows. Pure functions: [`super::mirror`] applies them.
//!
//! Fields read (the first present wins; payloads of other shapes simply give fewer
//! attributes). A model call's request is the payload itself, or the object under `inputs`
//! (the Prefactor dashboard's place for it), or the one argument that is an object with a
//! `model` (`#[span] fn call(req: &prefactor::llm::Request)`):
//! * request: `model` / `request_model` → `gen_ai.request.model`; `provider` / `system` → the
//!   provider; `temperature`, `max_tokens`, `top_p`, `top_k`, `frequency_penalty`,
//!   `presence_penalty`, `seed`, `stop_sequences` → `gen_ai.request.*`; `tool_name` / `tool`
//!   / `name` → `gen_ai.tool.name`; `tool_call_id` / `call_id` → `gen_ai.tool.call.id`;
//!   `conversation_id` / `session_id` → `gen_ai.conversation.id`.
//! * result: `model` / `response_model` → `gen_ai.response.model`; `id` / `response_id` →
//!   `gen_ai.response.id`; `usage.input_tokens` (or `prompt_tokens`), `usage.output_tokens`
//!   (or `completion_tokens`), `usage.cache_read_input_tokens`,
//!   `usage.cache_creation_input_tokens`, `usage.reasoning_output_tokens`, also at the top
//!   level → `gen_ai.usage.*`; `finish_reasons` (a list) or `finish_reason` / `stop_reason` →
//!   `gen_ai.response.finish_reasons`; `error.type` → `error.type` of a failed span.
//! * content: `messages` / `prompt` / `input` (and `system` / `system_instructions`) of the
//!   request; of the result, an assistant message made of `content` and `tool_calls` (the
//!   `prefactor::llm::Response` shape), else `messages` / `choices` / `output` / `completion` /
//!   `text` or the whole result; for a tool, the arguments (`arguments` / `args` or the whole
//!   payload) and the result.

use opentelemetry::trace::SpanKind;
use opentelemetry::{Array, KeyValue, StringValue, Value as OtelValue};
use serde_json::{Value, json};

use crate::config::otel::{ContentCapture, GenAiOperation, SemconvStability};

/// The two switches of the conventions, resolved once per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conventions {
    pub(crate) capture: ContentCapture,
    pub(crate) stability: SemconvStability,
}

/// The span name: `{operation} {model}` for model calls, `execute_tool {tool}`,
/// `invoke_agent {agent}`, else the operation or the schema name.
pub(crate) fn span_name(operation: Option<GenAiOperation>, schema_name: &str, payload: &Value) -> String {
    let Some(operation) = operation else { return schema_name.to_owned() };
    let target = match operation {
        GenAiOperation::ExecuteTool => tool_name(schema_name, payload),
        GenAiOperation::InvokeAgent | GenAiOperation::CreateAgent => text(payload, &["agent_name", "name"]),
        _ => text(request_of(payload), &["model", "request_model"]),
    };
    match target {
        Some(target) => format!("{} {target}", operation.as_str()),
        None => operation.as_str().to_owned(),
    }
}

/// Model calls leave the process (`CLIENT`); tools and agents run in it (`INTERNAL`).
pub(crate) fn span_kind(operation: Option<GenAiOperation>) -> SpanKind {
    match operation {
        Some(
            GenAiOperation::Chat
            | GenAiOperation::TextCompletion
            | GenAiOperation::GenerateContent
            | GenAiOperation::Embeddings,
        ) => SpanKind::Client,
        _ => SpanKind::Internal,
    }
}

/// Attributes known when the span starts (also seen by the provider's sampler).
pub(crate) fn request_attributes(
    operation: Option<GenAiOperation>,
    schema_name: &str,
    payload: &Value,
    conventions: Conventions,
    out: &mut Vec<KeyValue>,
) {
    let Some(operation) = operation else { return };
    out.push(KeyValue::new("gen_ai.operation.name", operation.as_str()));
    let request = request_of(payload);
    if let Some(provider) = text(request, &["provider", "system", "provider_name"]) {
        out.push(KeyValue::new(provider_key(conventions.stability), provider));
    }
    if let Some(model) = text(request, &["model", "request_model"]) {
        out.push(KeyValue::new("gen_ai.request.model", model));
    }
    for (field, key) in [
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("top_k", "gen_ai.request.top_k"),
        ("max_tokens", "gen_ai.request.max_tokens"),
        ("frequency_penalty", "gen_ai.request.frequency_penalty"),
        ("presence_penalty", "gen_ai.request.presence_penalty"),
        ("seed", "gen_ai.request.seed"),
    ] {
        if let Some(Value::Number(n)) = request.get(field) {
            out.push(number_attribute(key, n));
        }
    }
    if let Some(Value::Array(stops)) = request.get("stop_sequences") {
        let stops: Vec<StringValue> = stops.iter().filter_map(Value::as_str).map(|s| s.to_owned().into()).collect();
        out.push(KeyValue::new("gen_ai.request.stop_sequences", OtelValue::Array(Array::String(stops))));
    }
    if let Some(conversation) = text(payload, &["conversation_id", "session_id"]) {
        out.push(KeyValue::new("gen_ai.conversation.id", conversation));
    }
    if operation == GenAiOperation::ExecuteTool {
        if let Some(tool) = tool_name(schema_name, payload) {
            out.push(KeyValue::new("gen_ai.tool.name", tool));
        }
        if let Some(id) = text(payload, &["tool_call_id", "call_id"]) {
            out.push(KeyValue::new("gen_ai.tool.call.id", id));
        }
        out.push(KeyValue::new("gen_ai.tool.type", "function"));
    }
}

/// Attributes of the outcome: response model and id, usage, finish reasons.
pub(crate) fn response_attributes(operation: Option<GenAiOperation>, result: &Value, out: &mut Vec<KeyValue>) {
    if operation.is_none() {
        return;
    }
    if let Some(model) = text(result, &["model", "response_model"]) {
        out.push(KeyValue::new("gen_ai.response.model", model));
    }
    if let Some(id) = text(result, &["id", "response_id"]) {
        out.push(KeyValue::new("gen_ai.response.id", id));
    }
    let usage = result.get("usage").filter(|u| u.is_object()).unwrap_or(result);
    for (fields, key) in [
        (&["input_tokens", "prompt_tokens"][..], "gen_ai.usage.input_tokens"),
        (&["output_tokens", "completion_tokens"], "gen_ai.usage.output_tokens"),
        (&["cache_read_input_tokens"], "gen_ai.usage.cache_read.input_tokens"),
        (&["cache_creation_input_tokens"], "gen_ai.usage.cache_creation.input_tokens"),
        (&["reasoning_output_tokens"], "gen_ai.usage.reasoning.output_tokens"),
    ] {
        if let Some(count) = fields.iter().find_map(|f| usage.get(*f).and_then(Value::as_i64)) {
            out.push(KeyValue::new(key, count));
        }
    }
    let reasons: Vec<StringValue> = match result.get("finish_reasons") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(|s| s.to_owned().into()).collect(),
        _ => text(result, &["finish_reason", "stop_reason"]).map(|s| vec![s.into()]).unwrap_or_default(),
    };
    if !reasons.is_empty() {
        out.push(KeyValue::new("gen_ai.response.finish_reasons", OtelValue::Array(Array::String(reasons))));
    }
}

/// `error.type` of a failed span: the Rust type name the macros record, else `_OTHER`.
pub(crate) fn error_type(result: Option<&Value>) -> String {
    result
        .and_then(|r| r.get("error"))
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("_OTHER")
        .to_owned()
}

/// The error message of a failed span (the status description).
pub(crate) fn error_message(result: Option<&Value>) -> String {
    let error = result.and_then(|r| r.get("error"));
    match error {
        Some(Value::String(message)) => message.clone(),
        Some(e) => e.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
        None => String::new(),
    }
}

/// The content attributes of a finished span, under the capture setting: the span's
/// attributes and, for event capture, those of its `gen_ai.client.inference.operation.details`
/// event (empty when no content is captured).
pub(crate) fn content(
    operation: Option<GenAiOperation>,
    payload: Option<&Value>,
    result: Option<&Value>,
    conventions: Conventions,
) -> (Vec<KeyValue>, Vec<KeyValue>) {
    let capture = conventions.capture;
    if !capture.on_span() && !capture.as_event() {
        return (Vec::new(), Vec::new());
    }
    let mut fields = Vec::new();
    let latest = conventions.stability == SemconvStability::LatestExperimental;
    match operation {
        Some(GenAiOperation::ExecuteTool) => {
            if let Some(arguments) = payload.map(|p| field(p, &["arguments", "args"]).unwrap_or(p)) {
                fields.push(KeyValue::new("gen_ai.tool.call.arguments", json_text(arguments)));
            }
            if let Some(result) = result {
                fields.push(KeyValue::new("gen_ai.tool.call.result", json_text(result)));
            }
        }
        Some(_) => {
            let request = payload.map(request_of);
            let input = request.and_then(|p| field(p, &["messages", "prompt", "input"]));
            let system = request.and_then(|p| field(p, &["system_instructions", "system"]));
            let assistant = result.and_then(assistant_message);
            let output = assistant.as_ref().or_else(|| {
                result.map(|r| field(r, &["messages", "choices", "output", "completion", "text"]).unwrap_or(r))
            });
            let (input_key, output_key) = if latest {
                ("gen_ai.input.messages", "gen_ai.output.messages")
            } else {
                ("gen_ai.prompt", "gen_ai.completion")
            };
            if let Some(system) = system.filter(|_| latest) {
                fields.push(KeyValue::new("gen_ai.system_instructions", json_text(system)));
            }
            if let Some(input) = input {
                fields.push(KeyValue::new(input_key, json_text(input)));
            }
            if let Some(output) = output {
                fields.push(KeyValue::new(output_key, json_text(output)));
            }
        }
        None => {
            // Not a GenAI operation: its payloads are content all the same.
            if let Some(payload) = payload {
                fields.push(KeyValue::new("prefactor.payload", json_text(payload)));
            }
            if let Some(result) = result {
                fields.push(KeyValue::new("prefactor.result_payload", json_text(result)));
            }
        }
    }
    // Events carry content only under the latest conventions (the older ones put it on the
    // span); a GenAI operation's event is the inference details event.
    let event = if capture.as_event() && latest && operation.is_some() { fields.clone() } else { Vec::new() };
    let span = if capture.on_span() || (capture.as_event() && !latest) { fields } else { Vec::new() };
    (span, event)
}

/// The name of the content event of the latest conventions.
pub(crate) const DETAILS_EVENT: &str = "gen_ai.client.inference.operation.details";

fn provider_key(stability: SemconvStability) -> &'static str {
    match stability {
        SemconvStability::LatestExperimental => "gen_ai.provider.name",
        SemconvStability::Default => "gen_ai.system",
    }
}

/// A tool's name: from the payload, else the schema name's last segment past `tool`
/// (`ai-sdk:tool:search` → `search`).
fn tool_name(schema_name: &str, payload: &Value) -> Option<String> {
    text(payload, &["tool_name", "tool", "name"]).or_else(|| {
        let mut parts = schema_name.split(':').skip(1);
        let kind = parts.next()?;
        let rest: Vec<&str> = parts.collect();
        (kind.starts_with("tool") && !rest.is_empty()).then(|| rest.join(":"))
    })
}

/// Where a model call's request is in its payload: the payload itself when it names a model,
/// else the object under `inputs`, else the one argument that is an object naming a model.
fn request_of(payload: &Value) -> &Value {
    let names_model = |value: &Value| value.get("model").is_some_and(Value::is_string);
    if names_model(payload) {
        return payload;
    }
    if let Some(inputs) = payload.get("inputs").filter(|inputs| inputs.is_object()) {
        return inputs;
    }
    let Value::Object(arguments) = payload else { return payload };
    let mut requests = arguments.values().filter(|argument| names_model(argument));
    match (requests.next(), requests.next()) {
        (Some(request), None) => request,
        _ => payload,
    }
}

/// The output message of a result in the `prefactor::llm::Response` shape (`content`,
/// `tool_calls`, `finish_reason`), in the conventions' message shape.
fn assistant_message(result: &Value) -> Option<Value> {
    let content = result.get("content").and_then(Value::as_str);
    let calls = result.get("tool_calls").and_then(Value::as_array);
    if content.is_none() && calls.is_none() {
        return None;
    }
    let mut parts: Vec<Value> =
        content.filter(|c| !c.is_empty()).map(|c| json!({"type": "text", "content": c})).into_iter().collect();
    for call in calls.into_iter().flatten() {
        let mut part = json!({"type": "tool_call"});
        for key in ["id", "name", "arguments"] {
            if let Some(value) = call.get(key) {
                part[key] = value.clone();
            }
        }
        parts.push(part);
    }
    let mut message = json!({"role": "assistant", "parts": parts});
    if let Some(reason) = result.get("finish_reason").filter(|r| r.is_string()) {
        message["finish_reason"] = reason.clone();
    }
    Some(json!([message]))
}

/// An integer attribute for an integer, else a float one.
fn number_attribute(key: &'static str, n: &serde_json::Number) -> KeyValue {
    match n.as_i64() {
        Some(i) => KeyValue::new(key, i),
        None => KeyValue::new(key, n.as_f64().unwrap_or_default()),
    }
}

fn field<'a>(value: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|name| value.get(*name)).filter(|v| !v.is_null())
}

fn text(value: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| value.get(*name).and_then(Value::as_str)).map(str::to_owned)
}

/// Strings as they are, anything else as JSON text (what the conventions record).
fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LATEST_SPAN: Conventions =
        Conventions { capture: ContentCapture::SpanOnly, stability: SemconvStability::LatestExperimental };

    fn get<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a OtelValue> {
        attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
    }

    #[test]
    fn names_and_kinds_follow_the_operation() {
        let payload = json!({"model": "gpt-4o"});
        assert_eq!(span_name(Some(GenAiOperation::Chat), "agent:llm", &payload), "chat gpt-4o");
        assert_eq!(
            span_name(Some(GenAiOperation::ExecuteTool), "ai-sdk:tool:search", &json!({})),
            "execute_tool search"
        );
        assert_eq!(span_name(None, "agent:retrieval", &payload), "agent:retrieval");
        assert_eq!(span_kind(Some(GenAiOperation::Embeddings)), SpanKind::Client);
        assert_eq!(span_kind(Some(GenAiOperation::ExecuteTool)), SpanKind::Internal);
    }

    #[test]
    fn usage_and_finish_reasons_come_from_either_spelling() {
        let mut out = Vec::new();
        response_attributes(
            Some(GenAiOperation::Chat),
            &json!({"usage": {"prompt_tokens": 3, "completion_tokens": 4}, "finish_reason": "stop"}),
            &mut out,
        );
        assert_eq!(get(&out, "gen_ai.usage.input_tokens"), Some(&OtelValue::I64(3)));
        assert_eq!(get(&out, "gen_ai.usage.output_tokens"), Some(&OtelValue::I64(4)));
        assert_eq!(
            get(&out, "gen_ai.response.finish_reasons"),
            Some(&OtelValue::Array(Array::String(vec!["stop".into()])))
        );
    }

    /// The JSON of a `prefactor::llm::Request` and `Response`, as the facade's tests check
    /// they serialize.
    fn llm_request() -> Value {
        json!({
            "model": "gpt-4o-mini", "provider": "openai", "temperature": 0.2, "max_tokens": 64, "seed": 7,
            "stop_sequences": ["END"],
            "messages": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
        })
    }

    fn llm_response() -> Value {
        json!({
            "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18", "content": "hello",
            "tool_calls": [{"id": "call_1", "name": "search", "arguments": {"q": "x"}}],
            "finish_reason": "tool_calls",
            "usage": {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150, "cache_read_input_tokens": 100,
                      "cache_creation_input_tokens": 8, "reasoning_output_tokens": 12,
                      "cost": {"total": 0.0001, "currency": "USD"}},
            "ai": {"finishReason": {"unified": "tool-calls", "raw": "tool_calls"}}
        })
    }

    #[test]
    fn the_llm_request_is_found_under_inputs_or_as_the_one_model_argument() {
        for payload in [llm_request(), json!({"inputs": llm_request()}), json!({"req": llm_request(), "n": 1})] {
            let mut out = Vec::new();
            request_attributes(Some(GenAiOperation::Chat), "agent:llm", &payload, LATEST_SPAN, &mut out);
            assert_eq!(get(&out, "gen_ai.request.model"), Some(&OtelValue::from("gpt-4o-mini")), "{payload}");
            assert_eq!(get(&out, "gen_ai.provider.name"), Some(&OtelValue::from("openai")));
            assert_eq!(get(&out, "gen_ai.request.temperature"), Some(&OtelValue::F64(0.2)));
            assert_eq!(get(&out, "gen_ai.request.max_tokens"), Some(&OtelValue::I64(64)));
            assert_eq!(get(&out, "gen_ai.request.seed"), Some(&OtelValue::I64(7)));
            assert_eq!(
                get(&out, "gen_ai.request.stop_sequences"),
                Some(&OtelValue::Array(Array::String(vec!["END".into()])))
            );
            assert_eq!(span_name(Some(GenAiOperation::Chat), "agent:llm", &payload), "chat gpt-4o-mini");
            let (span, _) = content(Some(GenAiOperation::Chat), Some(&payload), None, LATEST_SPAN);
            let input = get(&span, "gen_ai.input.messages").map(ToString::to_string).unwrap_or_default();
            assert!(input.contains(r#""content":"hi""#), "{input}");
        }
        // Two model-naming arguments: no guessing.
        let mut out = Vec::new();
        let two = json!({"a": llm_request(), "b": llm_request()});
        request_attributes(Some(GenAiOperation::Chat), "agent:llm", &two, LATEST_SPAN, &mut out);
        assert_eq!(get(&out, "gen_ai.request.model"), None);
    }

    #[test]
    fn the_llm_response_gives_usage_breakdowns_and_an_assistant_message() {
        let mut out = Vec::new();
        response_attributes(Some(GenAiOperation::Chat), &llm_response(), &mut out);
        assert_eq!(get(&out, "gen_ai.response.model"), Some(&OtelValue::from("gpt-4o-mini-2024-07-18")));
        assert_eq!(get(&out, "gen_ai.usage.input_tokens"), Some(&OtelValue::I64(120)));
        assert_eq!(get(&out, "gen_ai.usage.cache_read.input_tokens"), Some(&OtelValue::I64(100)));
        assert_eq!(get(&out, "gen_ai.usage.cache_creation.input_tokens"), Some(&OtelValue::I64(8)));
        assert_eq!(get(&out, "gen_ai.usage.reasoning.output_tokens"), Some(&OtelValue::I64(12)));
        assert_eq!(
            get(&out, "gen_ai.response.finish_reasons"),
            Some(&OtelValue::Array(Array::String(vec!["tool_calls".into()])))
        );
        let (span, _) = content(Some(GenAiOperation::Chat), None, Some(&llm_response()), LATEST_SPAN);
        let output = get(&span, "gen_ai.output.messages").map(ToString::to_string).unwrap_or_default();
        let output: Value = serde_json::from_str(&output).unwrap();
        assert_eq!(
            output,
            json!([{"role": "assistant", "finish_reason": "tool_calls", "parts": [
                {"type": "text", "content": "hello"},
                {"type": "tool_call", "id": "call_1", "name": "search", "arguments": {"q": "x"}}
            ]}])
        );
    }

    #[test]
    fn provider_key_follows_the_stability_opt_in() {
        let mut old = Vec::new();
        let conventions = Conventions { capture: ContentCapture::NoContent, stability: SemconvStability::Default };
        request_attributes(
            Some(GenAiOperation::Chat),
            "agent:llm",
            &json!({"provider": "openai"}),
            conventions,
            &mut old,
        );
        assert!(get(&old, "gen_ai.system").is_some() && get(&old, "gen_ai.provider.name").is_none());
        let mut new = Vec::new();
        request_attributes(
            Some(GenAiOperation::Chat),
            "agent:llm",
            &json!({"provider": "openai"}),
            LATEST_SPAN,
            &mut new,
        );
        assert!(get(&new, "gen_ai.provider.name").is_some() && get(&new, "gen_ai.system").is_none());
    }

    #[test]
    fn content_only_when_captured_and_where_asked() {
        let payload = json!({"messages": [{"role": "user", "content": "hi"}]});
        let result = json!({"text": "hello"});
        let none = Conventions { capture: ContentCapture::NoContent, stability: SemconvStability::LatestExperimental };
        assert_eq!(content(Some(GenAiOperation::Chat), Some(&payload), Some(&result), none), (vec![], vec![]));
        let (span, event) = content(Some(GenAiOperation::Chat), Some(&payload), Some(&result), LATEST_SPAN);
        assert!(event.is_empty());
        assert_eq!(get(&span, "gen_ai.output.messages"), Some(&OtelValue::from("hello")));
        let events = Conventions { capture: ContentCapture::EventOnly, ..LATEST_SPAN };
        let (span, event) = content(Some(GenAiOperation::Chat), Some(&payload), Some(&result), events);
        assert!(span.is_empty());
        assert!(get(&event, "gen_ai.input.messages").is_some());
        let old = Conventions { capture: ContentCapture::SpanOnly, stability: SemconvStability::Default };
        let (span, _) = content(Some(GenAiOperation::Chat), Some(&payload), Some(&result), old);
        assert!(get(&span, "gen_ai.prompt").is_some() && get(&span, "gen_ai.input.messages").is_none());
    }
}
