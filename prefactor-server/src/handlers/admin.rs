//! Test-support endpoints under `/__admin` (same bearer auth): fault rules and the request log.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::respond;
use crate::body::parse;
use crate::faults::FaultRule;
use crate::recorder::{RecordedRequest, redacted};
use crate::state::AppState;

/// `POST /__admin/faults` with a JSON [`FaultRule`].
pub async fn add_fault(State(state): State<AppState>, body: Bytes) -> Response {
    let result = parse::<FaultRule>(&body);
    respond(result.map(|rule| {
        let echo = serde_json::to_value(&rule).unwrap_or(Value::Null);
        state.faults.add(rule);
        (200, json!({"status": "success", "details": echo}).to_string())
    }))
}

/// `DELETE /__admin/faults`.
pub async fn clear_faults(State(state): State<AppState>) -> Response {
    state.faults.clear();
    respond(Ok((200, json!({"status": "success", "details": {}}).to_string())))
}

/// `GET /__admin/requests`: the request log as JSON, credential headers redacted.
pub async fn requests(State(state): State<AppState>) -> Response {
    let rows: Vec<Value> = state.recorder.snapshot().iter().map(recorded_json).collect();
    respond(Ok((200, json!({"status": "success", "details": rows}).to_string())))
}

/// `DELETE /__admin/requests`.
pub async fn clear_requests(State(state): State<AppState>) -> Response {
    state.recorder.clear();
    respond(Ok((200, json!({"status": "success", "details": {}}).to_string())))
}

fn recorded_json(request: &RecordedRequest) -> Value {
    json!({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": redacted(&request.headers),
        "body": request.body,
        "status": request.status,
        "response_headers": redacted(&request.response_headers),
    })
}
