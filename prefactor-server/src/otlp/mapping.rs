//! OTel spans to Prefactor spans: the span type (schema name) from the GenAI semantic
//! conventions' `gen_ai.operation.name` or OpenInference's `openinference.span.kind`, the
//! inputs (`payload`) and outputs (`result_payload`) from their attributes, the status from the
//! OTel status. Pure functions, no I/O: [`super::store`] writes what these return.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{Map, Value, json};

/// The schema name of spans that follow neither convention.
pub const GENERIC_SCHEMA: &str = "otel:span";

/// Attributes that become fields of `payload` (then left out of its `attributes`).
const INPUT_FIELDS: &[(&str, &str)] = &[
    ("gen_ai.operation.name", "operation"),
    ("gen_ai.provider.name", "provider"),
    ("gen_ai.system", "provider"),
    ("gen_ai.request.model", "model"),
    ("llm.model_name", "model"),
    ("gen_ai.agent.name", "agent_name"),
    ("gen_ai.agent.id", "agent_id"),
    ("gen_ai.conversation.id", "conversation_id"),
    ("gen_ai.tool.name", "tool_name"),
    ("tool.name", "tool_name"),
    ("gen_ai.tool.call.id", "tool_call_id"),
    ("gen_ai.tool.call.arguments", "arguments"),
    ("tool.parameters", "arguments"),
    ("gen_ai.input.messages", "messages"),
    ("gen_ai.system_instructions", "system_instructions"),
    ("gen_ai.prompt", "prompt"),
    ("input.value", "input"),
    ("llm.input_messages", "messages"),
];

/// Attributes that become fields of `result_payload`.
const OUTPUT_FIELDS: &[(&str, &str)] = &[
    ("gen_ai.output.messages", "messages"),
    ("llm.output_messages", "messages"),
    ("gen_ai.completion", "completion"),
    ("output.value", "output"),
    ("gen_ai.tool.call.result", "result"),
    ("gen_ai.response.model", "response_model"),
    ("gen_ai.response.id", "response_id"),
    ("gen_ai.response.finish_reasons", "finish_reasons"),
];

/// Attributes that become `result_payload.usage` (the trace UI sums these).
const USAGE_FIELDS: &[(&str, &str)] = &[
    ("gen_ai.usage.input_tokens", "input_tokens"),
    ("gen_ai.usage.output_tokens", "output_tokens"),
    ("llm.token_count.prompt", "input_tokens"),
    ("llm.token_count.completion", "output_tokens"),
    ("llm.token_count.total", "total_tokens"),
];

/// One OTel span as the server stores it (ids still OTel's; [`super::store`] makes PFIDs).
#[derive(Debug, Clone, PartialEq)]
pub struct MappedSpan {
    /// The 16-byte trace id.
    pub trace_id: [u8; 16],
    /// The 8-byte span id.
    pub span_id: [u8; 8],
    /// The parent's span id (None for a root).
    pub parent_span_id: Option<[u8; 8]>,
    /// Span type.
    pub schema_name: String,
    /// Inputs.
    pub payload: Value,
    /// Outputs (with `error` when it failed).
    pub result_payload: Value,
    /// OTel status ERROR.
    pub failed: bool,
    /// Start, Unix nanoseconds.
    pub start_unix_nano: u64,
    /// End, Unix nanoseconds (never before the start).
    pub end_unix_nano: u64,
}

/// Why one span was refused (counted in the answer's partial success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// Maps one span; `scope` is its instrumentation scope's name and version.
///
/// ```
/// use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
/// use opentelemetry_proto::tonic::trace::v1::Span;
/// use prefactor_server::otlp::mapping::map_span;
/// let attribute = |key: &str, value: &str| KeyValue {
///     key: key.into(),
///     value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
///     ..Default::default()
/// };
/// let span = Span {
///     trace_id: vec![1; 16],
///     span_id: vec![2; 8],
///     name: "chat gpt-4o".into(),
///     start_time_unix_nano: 1_700_000_000_000_000_000,
///     end_time_unix_nano: 1_700_000_001_000_000_000,
///     attributes: vec![attribute("gen_ai.operation.name", "chat"), attribute("gen_ai.request.model", "gpt-4o")],
///     ..Default::default()
/// };
/// let mapped = map_span(&span, None).unwrap();
/// assert_eq!(mapped.schema_name, "agent:llm");
/// assert_eq!(mapped.payload["model"], "gpt-4o");
/// ```
pub fn map_span(span: &Span, scope: Option<(&str, &str)>) -> Result<MappedSpan, Refused> {
    let trace_id: [u8; 16] = otel_id(&span.trace_id, "trace_id", &span.name)?;
    let span_id: [u8; 8] = otel_id(&span.span_id, "span_id", &span.name)?;
    let parent_span_id = match span.parent_span_id.as_slice() {
        [] => None,
        bytes => Some(otel_id::<8>(bytes, "parent_span_id", &span.name)?),
    };
    if span.start_time_unix_nano == 0 {
        return Err(Refused(format!("span '{}': start_time_unix_nano is missing", clip(&span.name))));
    }
    let attributes = attribute_map(&span.attributes);
    let status = span.status.as_ref();
    let failed = status.is_some_and(|status| status.code == StatusCode::Error as i32);
    let payload = payload_of(span, &attributes, scope, parent_span_id.is_some(), &trace_id, &span_id);
    let mut result_payload = result_of(&attributes);
    if failed {
        let message = status.map(|status| status.message.as_str()).filter(|message| !message.is_empty());
        result_payload["error"] = json!(message.unwrap_or("error"));
    }
    if !span.events.is_empty() {
        result_payload["events"] = Value::Array(span.events.iter().map(event_json).collect());
    }
    Ok(MappedSpan {
        trace_id,
        span_id,
        parent_span_id,
        schema_name: schema_name(&attributes).to_string(),
        payload,
        result_payload,
        failed,
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano.max(span.start_time_unix_nano),
    })
}

/// An OTel id of `N` bytes, not all zero (the OTLP rule for a valid id).
fn otel_id<const N: usize>(bytes: &[u8], field: &str, span_name: &str) -> Result<[u8; N], Refused> {
    <[u8; N]>::try_from(bytes)
        .ok()
        .filter(|id| id.iter().any(|byte| *byte != 0))
        .ok_or_else(|| Refused(format!("span '{}': {field} must be {N} bytes, not all zero", clip(span_name))))
}

/// The span type of a span with these attributes.
///
/// ```
/// use prefactor_server::otlp::mapping::schema_name;
/// use serde_json::{Map, json};
/// let attributes = |key: &str, value: &str| -> Map<String, serde_json::Value> {
///     [(key.to_string(), json!(value))].into_iter().collect()
/// };
/// assert_eq!(schema_name(&attributes("gen_ai.operation.name", "execute_tool")), "agent:tool");
/// assert_eq!(schema_name(&attributes("openinference.span.kind", "RETRIEVER")), "agent:retrieval");
/// assert_eq!(schema_name(&attributes("http.method", "GET")), "otel:span");
/// ```
pub fn schema_name(attributes: &Map<String, Value>) -> &'static str {
    let text = |key: &str| attributes.get(key).and_then(Value::as_str);
    if let Some(operation) = text("gen_ai.operation.name") {
        return match operation {
            "chat" | "text_completion" | "generate_content" => "agent:llm",
            "execute_tool" => "agent:tool",
            "embeddings" => "agent:embedding",
            "invoke_agent" | "create_agent" => "agent:agent",
            _ => "agent:gen_ai",
        };
    }
    match text("openinference.span.kind").map(str::to_ascii_uppercase).as_deref() {
        Some("LLM") => "agent:llm",
        Some("TOOL") => "agent:tool",
        Some("AGENT") => "agent:agent",
        Some("CHAIN") => "agent:chain",
        Some("RETRIEVER") => "agent:retrieval",
        Some("EMBEDDING") => "agent:embedding",
        Some("RERANKER") => "agent:reranker",
        Some("GUARDRAIL") => "agent:guardrail",
        Some("EVALUATOR") => "agent:evaluator",
        _ => GENERIC_SCHEMA,
    }
}

fn payload_of(
    span: &Span,
    attributes: &Map<String, Value>,
    scope: Option<(&str, &str)>,
    has_parent: bool,
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
) -> Value {
    let mut payload = Map::new();
    payload.insert("name".into(), json!(span.name));
    payload.insert("kind".into(), json!(kind_name(span.kind)));
    promote(attributes, INPUT_FIELDS, &mut payload);
    let rest: Map<String, Value> = attributes
        .iter()
        .filter(|(key, _)| !is_promoted(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if !rest.is_empty() {
        payload.insert("attributes".into(), Value::Object(rest));
    }
    let mut otel = Map::new();
    otel.insert("trace_id".into(), json!(hex(trace_id)));
    otel.insert("span_id".into(), json!(hex(span_id)));
    if has_parent {
        otel.insert("parent_span_id".into(), json!(hex(&span.parent_span_id)));
    }
    if let Some((name, version)) = scope {
        otel.insert("scope".into(), json!({"name": name, "version": version}));
    }
    payload.insert("otel".into(), Value::Object(otel));
    Value::Object(payload)
}

fn result_of(attributes: &Map<String, Value>) -> Value {
    let mut result = Map::new();
    promote(attributes, OUTPUT_FIELDS, &mut result);
    let mut usage = Map::new();
    promote(attributes, USAGE_FIELDS, &mut usage);
    if !usage.is_empty() {
        result.insert("usage".into(), Value::Object(usage));
    }
    Value::Object(result)
}

/// Copies the first attribute found for each target field (JSON text parsed, so message lists
/// arrive as lists).
fn promote(attributes: &Map<String, Value>, fields: &[(&str, &str)], into: &mut Map<String, Value>) {
    for (attribute, field) in fields {
        if into.contains_key(*field) {
            continue;
        }
        if let Some(value) = attributes.get(*attribute) {
            into.insert((*field).to_string(), parse_json_text(value));
        }
    }
}

fn is_promoted(key: &str) -> bool {
    [INPUT_FIELDS, OUTPUT_FIELDS, USAGE_FIELDS]
        .iter()
        .any(|fields| fields.iter().any(|(attribute, _)| *attribute == key))
}

/// A string attribute holding a JSON object or array (the conventions' message lists, tool
/// arguments) as that JSON; anything else as it is.
fn parse_json_text(value: &Value) -> Value {
    match value.as_str().map(str::trim_start) {
        Some(text) if text.starts_with('{') || text.starts_with('[') => {
            serde_json::from_str(text).unwrap_or_else(|_| value.clone())
        }
        _ => value.clone(),
    }
}

/// Attributes as a JSON object (a repeated key keeps its last value).
pub fn attribute_map(attributes: &[KeyValue]) -> Map<String, Value> {
    attributes.iter().map(|attribute| (attribute.key.clone(), any_value_json(attribute.value.as_ref()))).collect()
}

/// An OTel value as JSON: bytes as hex, a key-value list as an object. Integers stay exact
/// (i64 fits JSON numbers as serde_json stores them); a non-finite double becomes its name.
pub fn any_value_json(value: Option<&AnyValue>) -> Value {
    let Some(value) = value.and_then(|value| value.value.as_ref()) else {
        return Value::Null;
    };
    match value {
        any_value::Value::StringValue(text) => json!(text),
        any_value::Value::BoolValue(flag) => json!(flag),
        any_value::Value::IntValue(number) => json!(number),
        any_value::Value::DoubleValue(number) => {
            serde_json::Number::from_f64(*number).map(Value::Number).unwrap_or_else(|| json!(number.to_string()))
        }
        any_value::Value::ArrayValue(array) => {
            Value::Array(array.values.iter().map(|value| any_value_json(Some(value))).collect())
        }
        any_value::Value::KvlistValue(list) => Value::Object(attribute_map(&list.values)),
        any_value::Value::BytesValue(bytes) => json!(hex(bytes)),
        // An index into a profiles dictionary, which trace exports do not carry.
        any_value::Value::StringValueStrindex(index) => json!(index),
    }
}

fn event_json(event: &opentelemetry_proto::tonic::trace::v1::span::Event) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), json!(event.name));
    object.insert("time_unix_nano".into(), json!(event.time_unix_nano));
    if !event.attributes.is_empty() {
        object.insert("attributes".into(), Value::Object(attribute_map(&event.attributes)));
    }
    Value::Object(object)
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// At most 80 characters of a span name, for messages.
fn clip(name: &str) -> String {
    name.chars().take(80).collect()
}
