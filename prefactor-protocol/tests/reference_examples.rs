//! Every fenced JSON example of the API notes (`shared/docs/prefactor-api.md`) parses into its
//! wire type and serializes back without losing or changing a field.

use prefactor_protocol::{
    Agent, AgentInstance, AgentSchemaVersion, AgentSpan, CreateSpanRequest, ErrorResponse, FinishInstanceRequest,
    FinishSpanRequest, ListResponse, RecordQualityRequest, RegisterInstanceRequest, StartInstanceRequest,
    SuccessResponse, TerminateInstanceRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const NOTES: &str = include_str!("../../../shared/docs/prefactor-api.md");

fn fenced_json_blocks() -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in NOTES.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```json") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(serde_json::from_str(block).unwrap_or_else(|e| panic!("example is JSON: {e}\n{block}")));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
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

#[test]
fn every_fenced_example_round_trips() {
    let blocks = fenced_json_blocks();
    assert_eq!(blocks.len(), 17, "the notes changed: classify the new examples below");
    for (index, block) in blocks.iter().enumerate() {
        let is_abridged = block.to_string().contains("\"...\"");
        match index + 1 {
            1 | 8 => round_trip::<SuccessResponse<Value>>(block),
            2 if is_abridged => round_trip::<ListResponse<Value>>(block),
            3 | 4 => round_trip::<ErrorResponse>(block),
            5 | 6 => round_trip::<RegisterInstanceRequest>(block),
            7 | 9 => round_trip::<SuccessResponse<AgentInstance>>(block),
            10..=12 => round_trip::<CreateSpanRequest>(block),
            13 | 14 | 17 => round_trip::<SuccessResponse<AgentSpan>>(block),
            15 => round_trip::<Value>(block),
            16 => round_trip::<AgentSchemaVersion>(block),
            other => panic!("unclassified example {other}: {block}"),
        }
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
