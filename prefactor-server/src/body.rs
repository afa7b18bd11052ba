//! Request bodies: parse JSON ourselves so every mistake gets a precise JSON error instead of
//! axum's plain-text rejections. Syntax errors are 400 `invalid_json` (with line and column);
//! well-formed JSON of the wrong shape is 422 `validation_error` naming the field path.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Parses a request body into a JSON object; an empty body counts as `{}` because several
/// action endpoints (start, finish, terminate) have only optional fields.
///
/// ```
/// use prefactor_server::body::parse_object;
/// assert!(parse_object(b"").unwrap().as_object().unwrap().is_empty());
/// assert_eq!(parse_object(b"{\"a\":").unwrap_err().status, 400);
/// assert_eq!(parse_object(b"[1]").unwrap_err().status, 422);
/// ```
pub fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::bad_json(format!("request body is not valid JSON: {error}")))?;
    if !value.is_object() {
        return Err(ApiError::validation("body", format!("must be a JSON object, got {}", json_kind(&value))));
    }
    Ok(value)
}

/// Converts a parsed body into a request type; errors name the offending field path.
///
/// ```
/// use prefactor_server::body::decode;
/// use prefactor_protocol::CreateSpanRequest;
/// let body = serde_json::json!({"details": {"agent_instance_id": 1, "schema_name": "x", "status": "active"}});
/// let error = decode::<CreateSpanRequest>(&body).unwrap_err();
/// assert!(error.errors.unwrap().contains_key("details.agent_instance_id"));
/// ```
pub fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { "body".to_string() } else { path };
        ApiError::validation(&path, error.into_inner().to_string())
    })
}

/// A short name of a JSON value's type, for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
