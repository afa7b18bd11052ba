//! Every wire example of the API notes (copied into `tests/fixtures/wire_examples/`) parses into
//! its wire type and serializes back without losing or changing a field.

use prefactor_protocol::{
    Agent, AgentInstance, AgentSchemaVersion, AgentSpan, CreateSpanRequest, ErrorResponse, FinishInstanceRequest,
    FinishSpanRequest, ListResponse, RecordQualityRequest, RegisterInstanceRequest, StartInstanceRequest,
    SuccessResponse, TerminateInstanceRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// One wire example of the API notes, copied into `tests/fixtures/wire_examples/` (sources in
/// `tests/fixtures/README.md`).
struct Example {
    file: &'static str,
    text: &'static str,
}

macro_rules! example {
    ($file:literal) => {
        Example { file: $file, text: include_str!(concat!("fixtures/wire_examples/", $file)) }
    };
}

impl Example {
    fn json(&self) -> Value {
        serde_json::from_str(self.text).unwrap_or_else(|e| panic!("{} is JSON: {e}", self.file))
    }
}

/// Abridged examples mark elided fields with a `"..."` key; those are the only ones a type may drop.
fn is_elision(key: &str) -> bool {
    key == "..." || key == "…"
}

/// `original` must survive: same keys with the same values; keys the type adds must be null.
fn assert_preserved(original: &Value, round_trip: &Value, path: &str) {
    match (original, round_trip) {
        (Value::Object(before), Value::Object(after)) => {
            for (key, value) in before.iter().filter(|(key, _)| !is_elision(key)) {
                let after_value = after.get(key).unwrap_or_else(|| panic!("{path}.{key} was dropped"));
                assert_preserved(value, after_value, &format!("{path}.{key}"));
            }
            for (key, value) in after.iter().filter(|(key, _)| !before.contains_key(*key)) {
                assert!(value.is_null(), "{path}.{key} appeared as {value}");
            }
        }
        (Value::Array(before), Value::Array(after)) => {
            assert_eq!(before.len(), after.len(), "{path} length");
            for (index, (b, a)) in before.iter().zip(after).enumerate() {
                assert_preserved(b, a, &format!("{path}[{index}]"));
            }
        }
        _ => assert_eq!(original, round_trip, "{path}"),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(example: &Value) {
    let parsed: T = serde_json::from_value(example.clone())
        .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{example:#}", std::any::type_name::<T>()));
    let reserialized = serde_json::to_value(&parsed).expect("serializes");
    assert_preserved(example, &reserialized, "$");
}

/// Parses an example into one wire type and checks that it serializes back unchanged.
type RoundTrip = fn(&Value);

#[test]
fn every_wire_example_round_trips_through_its_type() {
    let checks: [(Example, RoundTrip); 17] = [
        (example!("01_success_single.json"), round_trip::<SuccessResponse<Value>>),
        (example!("02_success_list_abridged.json"), round_trip::<ListResponse<Value>>),
        (example!("03_error.json"), round_trip::<ErrorResponse>),
        (example!("04_ping_401.json"), round_trip::<ErrorResponse>),
        (example!("05_register_request_python.json"), round_trip::<RegisterInstanceRequest>),
        (example!("06_register_request_typescript.json"), round_trip::<RegisterInstanceRequest>),
        (example!("07_register_response.json"), round_trip::<SuccessResponse<AgentInstance>>),
        (example!("08_start_response_abridged.json"), round_trip::<SuccessResponse<Value>>),
        (example!("09_instance_terminated.json"), round_trip::<SuccessResponse<AgentInstance>>),
        (example!("10_create_span_request_python.json"), round_trip::<CreateSpanRequest>),
        (example!("11_create_span_request_cancel_before_start.json"), round_trip::<CreateSpanRequest>),
        (example!("12_create_span_request_typescript_llm.json"), round_trip::<CreateSpanRequest>),
        (example!("13_create_span_response.json"), round_trip::<SuccessResponse<AgentSpan>>),
        (example!("14_finish_span_response.json"), round_trip::<SuccessResponse<AgentSpan>>),
        (example!("15_data_risk.json"), round_trip::<Value>),
        (example!("16_schema_document_full.json"), round_trip::<AgentSchemaVersion>),
        (example!("17_finish_span_response_terminated.json"), round_trip::<SuccessResponse<AgentSpan>>),
    ];
    for (example, check) in checks {
        check(&example.json());
    }
}

#[test]
fn inline_request_examples_round_trip() {
    round_trip::<StartInstanceRequest>(
        &json!({"timestamp":"2026-08-04T06:55:41.254871+00:00","idempotency_key":"5a0d"}),
    );
    round_trip::<FinishInstanceRequest>(
        &json!({"status":"failed","timestamp":"2026-08-04T06:56:02.004411+00:00","idempotency_key":"9b2e"}),
    );
    round_trip::<RecordQualityRequest>(
        &json!({"name":"accuracy","payload":{"score":0.92,"passed":true},"idempotency_key":"d3f0"}),
    );
    round_trip::<RecordQualityRequest>(&json!({"name":"accuracy","payload":null}));
    round_trip::<FinishSpanRequest>(&json!({"status":"complete","result_payload":{"response":"…","tokens":42},
        "timestamp":"2026-08-04T06:55:43.100200+00:00","idempotency_key":"aa41"}));
    round_trip::<FinishSpanRequest>(&json!({"timestamp":"2026-08-04T06:56:10.000Z","status":"complete",
        "result_payload":{"message":"done"},"idempotency_key":"e2c9","sensitive_encoding":true}));
    round_trip::<TerminateInstanceRequest>(&json!({"reason": "manual stop from ops"}));
    round_trip::<ErrorResponse>(
        &json!({"status":"error","code":"invalid_action","message":"Span is already finished"}),
    );
    round_trip::<ListResponse<Agent>>(&json!({"status":"success","summaries":[{"type":"agent",
        "id":"01kyd4mzpjabkb8e2a5grq3zt2ka792g","name":"Support","status":"active",
        "inserted_at":"2026-08-04T06:55:41.120311Z","updated_at":"2026-08-04T06:55:41.120311Z"}],
        "pagination":null,"sorting":null}));
}

#[test]
fn unknown_fields_and_missing_optionals_do_not_break_parsing() {
    let span: AgentSpan = serde_json::from_value(json!({
        "type": "agent_span", "id": "s", "agent_instance_id": "i", "schema_name": "x:y",
        "status": "complete", "brand_new_field": {"nested": true}
    }))
    .unwrap();
    assert_eq!(span.payload, json!({}));
    let error: ErrorResponse = serde_json::from_value(json!({"unexpected": 1})).unwrap();
    assert_eq!((error.code.as_str(), error.status.as_str()), ("unknown", "error"));
}

#[test]
fn list_envelopes_always_carry_pagination_and_sorting() {
    let list = ListResponse::<Value> { status: "success".into(), summaries: vec![], pagination: None, sorting: None };
    let body = serde_json::to_value(list).unwrap();
    assert!(body.as_object().unwrap().contains_key("pagination") && body.as_object().unwrap().contains_key("sorting"));
}
