//! Request bodies: parse JSON ourselves so every mistake gets a precise JSON error instead of
//! axum's plain-text rejections. Syntax errors are 400 `invalid_json` (with line and column);
//! well-formed JSON of the wrong shape is 422 `validation_error` naming the field path.

use serde::de::{DeserializeOwned, IgnoredAny};
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
        check_integers(bytes)?;
        return Ok(parsed);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { "body".to_string() } else { path };
        let inner = error.into_inner();
        match inner.classify() {
            Category::Data => ApiError::validation(&path, inner.to_string()),
            // serde_json reports a value of the wrong kind for an enum (`"status": 5`) as a
            // syntax error; when the body is valid JSON it is the value that is wrong.
            Category::Syntax if serde_json::from_slice::<IgnoredAny>(bytes).is_ok() => ApiError::validation(
                &path,
                "has the wrong type (an enum field takes one of its documented strings)".to_string(),
            ),
            _ => ApiError::bad_json(format!("request body is not valid JSON: {inner}")),
        }
    })?;
    deserializer.end().map_err(|error| ApiError::bad_json(format!("request body is not valid JSON: {error}")))?;
    check_integers(bytes)?;
    Ok(parsed)
}

/// Refuses an integer literal outside the 64-bit range (i64 for negatives, u64 otherwise):
/// serde_json would silently read it as a float and the server would store another number
/// than the one sent. Numbers with a fraction or exponent are floats by intent and pass.
///
/// ```
/// use prefactor_server::body::check_integers;
/// assert!(check_integers(br#"{"a": 18446744073709551615, "b": -9223372036854775808, "c": 1e400}"#).is_ok());
/// assert!(check_integers(br#"{"s": "123456789012345678901234567890"}"#).is_ok());
/// assert_eq!(check_integers(br#"{"a": 123456789012345678901234567890}"#).unwrap_err().status, 422);
/// ```
pub fn check_integers(bytes: &[u8]) -> Result<(), ApiError> {
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => at = after_string(bytes, at + 1),
            b'-' | b'0'..=b'9' => {
                let start = at;
                at += 1;
                while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                    at += 1;
                }
                let integer_end = at;
                while bytes.get(at).is_some_and(|byte| matches!(byte, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')) {
                    at += 1;
                }
                if at == integer_end {
                    check_integer(bytes.get(start..integer_end).unwrap_or_default(), start)?;
                }
            }
            _ => at += 1,
        }
    }
    Ok(())
}

/// Index just past the string whose content starts at `at`.
fn after_string(bytes: &[u8], mut at: usize) -> usize {
    while let Some(found) = bytes.get(at..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) {
        at += found;
        if bytes.get(at) == Some(&b'"') {
            return at + 1;
        }
        at += 2;
    }
    bytes.len()
}

fn check_integer(literal: &[u8], offset: usize) -> Result<(), ApiError> {
    // Fewer than 19 digits always fit; longer literals are checked exactly.
    if literal.len() < 19 {
        return Ok(());
    }
    let text = std::str::from_utf8(literal).unwrap_or_default();
    let fits = if text.starts_with('-') { text.parse::<i64>().is_ok() } else { text.parse::<u64>().is_ok() };
    if fits {
        return Ok(());
    }
    let shown: String = text.chars().take(40).collect();
    Err(ApiError::validation(
        "body",
        format!(
            "the integer {shown}{} at byte {offset} is outside the 64-bit range the server stores exactly; send it as a string",
            if text.len() > 40 { "..." } else { "" }
        ),
    ))
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
