//! Input that is valid JSON or a valid query but out of range: every case is a 4xx in the
//! JSON error shape naming the field, never a panic, a wrapped number or a lossy value.

mod common;

use common::Api;
use serde_json::{Value, json};

async fn span_body(api: &Api, instance: &str, details: Value) -> (u16, Value) {
    let mut details = details;
    details["agent_instance_id"] = json!(instance);
    api.post("/api/v1/agent_spans", json!({ "details": details })).await
}

fn assert_field_error(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["code"], "validation_error", "{body}");
    assert!(body["errors"][field].is_array(), "names {field}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_offsets_past_sqlite_integers_are_refused_and_large_ones_page_sanely() {
    let api = Api::start();
    let instance = api.register_id().await;
    for offset in [u64::MAX.to_string(), (1u64 << 63).to_string(), "18446744073709551616".to_string()] {
        let (status, body) =
            api.get(&format!("/api/v1/agent_spans?agent_instance_id={instance}&pagination[offset]={offset}")).await;
        assert_field_error(status, &body, "pagination[offset]");
        let (status, body) = api.get(&format!("/api/v1/agent_instance?pagination[offset]={offset}")).await;
        assert_field_error(status, &body, "pagination[offset]");
    }
    let (status, body) = api.get(&format!("/api/v1/agent_instance?pagination[offset]={}", i64::MAX)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summaries"], json!([]));
    assert_eq!(body["pagination"]["page_offset"], json!(i64::MAX));
    assert_eq!(body["pagination"]["next_page_offset"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_whose_utc_form_is_out_of_range_is_a_422() {
    let api = Api::start();
    let instance = api.register_id().await;
    for stamp in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59"] {
        let details = json!({"schema_name": "x", "status": "active", "started_at": stamp});
        let (status, body) = span_body(&api, &instance, details).await;
        assert_field_error(status, &body, "details.started_at");
    }
    let (status, body) = api.get("/api/v1/ping").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_of_the_wrong_kind_for_an_enum_is_a_422_naming_the_field() {
    let api = Api::start();
    let instance = api.register_id().await;
    for status_value in [json!(5), json!(true), json!(["active"]), json!({"a": 1}), json!("exploded")] {
        let details = json!({"schema_name": "x", "status": status_value});
        let (status, body) = span_body(&api, &instance, details).await;
        assert_field_error(status, &body, "details.status");
    }
    let (status, body) = api.post_raw("/api/v1/agent_spans", "{\"details\": {\"status\": 5,").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")), "still a syntax error: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_the_server_cannot_store_exactly_are_refused_and_the_others_round_trip() {
    let api = Api::start();
    let instance = api.register_id().await;
    for literal in ["123456789012345678901234567890", "18446744073709551616", "-9223372036854775809"] {
        let body = format!(
            r#"{{"details": {{"agent_instance_id": "{instance}", "schema_name": "x", "status": "active", "payload": {{"n": {literal}}}}}}}"#
        );
        let body: &'static str = Box::leak(body.into_boxed_str());
        let (status, answer) = api.post_raw("/api/v1/agent_spans", body).await;
        assert_field_error(status, &answer, "body");
        assert!(answer["message"].as_str().unwrap().contains(&literal[..10]), "{answer}");
    }
    let payload = json!({"max": u64::MAX, "min": i64::MIN, "float": 1e300, "text": "123456789012345678901234567890"});
    let (status, body) =
        span_body(&api, &instance, json!({"schema_name": "x", "status": "active", "payload": payload})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["payload"], payload, "stored exactly");
}
