//! HTTP handlers, one module per resource. Each handler parses and checks its input outside
//! the database, then runs its state changes as one job on the group-committing writer, so
//! the answer is only sent after the change is committed.

pub mod account;
pub mod admin;
pub mod agents;
pub mod bulk;
pub mod bulk_scan;
pub mod instance_update;
pub mod instances;
pub mod listing;
pub mod minimal_output;
pub mod operation;
pub mod ping;
pub mod prerender;
pub mod span_answer;
pub mod span_rows;
pub mod spans;

use axum::http::HeaderMap;
use axum::response::Response;
use prefactor_protocol::{Control, SuccessResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::body::parse;
use crate::db::idempotency::StoredAnswer;
use crate::error::{ApiError, json_response};
use crate::idempotency::{IdempotencyScope, KeyedRequest, scope_for};
use crate::ids::parse_path_id;

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

/// What a `POST /api/v1/{resource}/{id}/{action}` starts from, whether it came as a request or
/// as a bulk item: the checked id, the typed body and its idempotency scope.
pub struct ActionRequest<R> {
    /// The resource's id, checked as a PFID.
    pub id: String,
    /// The parsed body.
    pub request: R,
    /// The idempotency scope, when the request carries a key.
    pub scope: Option<IdempotencyScope>,
}

/// Parses the id (`kind` names it in errors) and the body of an action on an existing resource.
pub fn parse_action<R: DeserializeOwned + KeyedRequest>(
    (kind, resource, action): (&str, &str, &str),
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ActionRequest<R>, ApiError> {
    let id = parse_path_id(kind, id)?;
    let request: R = parse(body)?;
    let scope = scope_for("POST", &format!("/api/v1/{resource}/{id}/{action}"), headers, &request)?;
    Ok(ActionRequest { id, request, scope })
}
