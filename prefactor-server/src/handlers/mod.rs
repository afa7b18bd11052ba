//! HTTP handlers, one module per resource. Each handler parses and checks its input outside
//! the database, then runs its state changes as one job on the group-committing writer, so
//! the answer is only sent after the change is committed.

pub mod admin;
pub mod agents;
pub mod bulk;
pub mod instances;
pub mod listing;
pub mod operation;
pub mod ping;
pub mod span_answer;
pub mod spans;

use axum::response::Response;
use prefactor_protocol::{Control, SuccessResponse};
use serde::Serialize;

use crate::db::idempotency::StoredAnswer;
use crate::error::{ApiError, json_response};

/// Serializes a success envelope into a storable answer.
pub fn success<T: Serialize>(details: T, control: Option<Control>) -> Result<StoredAnswer, ApiError> {
    let envelope = SuccessResponse::new(details).with_control(control);
    // Sized for a typical span answer, so the buffer does not grow (and copy) several times.
    let mut body = Vec::with_capacity(1024);
    serde_json::to_writer(&mut body, &envelope).map_err(ApiError::internal)?;
    let body = String::from_utf8(body).map_err(ApiError::internal)?;
    Ok((200, body))
}

/// Turns a handler result into the HTTP response.
pub fn respond(result: Result<StoredAnswer, ApiError>) -> Response {
    match result {
        Ok((status, body)) => json_response(status, body),
        Err(error) => {
            if error.status >= 500 {
                tracing::warn!(code = %error.code, "request failed: {}", error.message);
            } else {
                tracing::debug!(code = %error.code, "request rejected: {}", error.message);
            }
            axum::response::IntoResponse::into_response(error)
        }
    }
}

/// Normalises an optional client timestamp for `field` (422 naming the field when invalid).
pub fn client_time(field: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    value
        .map(|text| {
            crate::timestamps::normalize_client_timestamp(text).map_err(|message| ApiError::validation(field, message))
        })
        .transpose()
}
