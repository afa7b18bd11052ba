//! Request bodies: parse JSON ourselves so every mistake gets a precise JSON error instead of
//! axum's plain-text rejections. Syntax errors are 400 `invalid_json` (with line and column);
//! well-formed JSON of the wrong shape is 422 `validation_error` naming the field path.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::error::Category;

use crate::error::ApiError;

/// Parses a request body straight into a request type. An empty body counts as `{}` because
/// several action endpoints (start, finish, terminate) have only optional fields.
/// Syntax errors are 400 `invalid_json`; a body that is not an object, a wrong type or a
/// missing field is 422 naming the field path (`body` for the whole document).
///
/// ```
/// use prefactor_protocol::{CreateSpanRequest, StartInstanceRequest};
/// use prefactor_server::body::parse;
/// assert!(parse::<StartInstanceRequest>(b"").is_ok());
/// assert_eq!(parse::<StartInstanceRequest>(b"{\"a\":").unwrap_err().status, 400);
/// assert_eq!(parse::<StartInstanceRequest>(b"[1]").unwrap_err().status, 422);
/// let body = br#"{"details": {"agent_instance_id": 1, "schema_name": "x", "status": "active"}}"#;
/// let error = parse::<CreateSpanRequest>(body).unwrap_err();
/// assert!(error.errors.unwrap().contains_key("details.agent_instance_id"));
/// ```
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let start = bytes.iter().position(|byte| !byte.is_ascii_whitespace());
    let bytes: &[u8] = match start {
        None => b"{}",
        Some(at) if bytes[at] != b'{' => return Err(not_an_object(bytes)),
        Some(_) => bytes,
    };
    // Fast path: plain serde_json. Path tracking costs about as much as the parse itself, so
    // it only runs again to explain a body that failed.
    if let Ok(parsed) = serde_json::from_slice::<T>(bytes) {
        return Ok(parsed);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if matches!(inner.classify(), Category::Data) {
            let path = if path == "." { "body".to_string() } else { path };
            ApiError::validation(&path, inner.to_string())
        } else {
            ApiError::bad_json(format!("request body is not valid JSON: {inner}"))
        }
    })?;
    deserializer.end().map_err(|error| ApiError::bad_json(format!("request body is not valid JSON: {error}")))?;
    Ok(parsed)
}

/// The error for a body that does not start with `{`: 400 when it is not JSON at all, 422
/// when it is JSON of another kind.
fn not_an_object(bytes: &[u8]) -> ApiError {
    match serde_json::from_slice::<Value>(bytes) {
        Err(error) => ApiError::bad_json(format!("request body is not valid JSON: {error}")),
        Ok(value) => ApiError::validation("body", format!("must be a JSON object, got {}", json_kind(&value))),
    }
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
