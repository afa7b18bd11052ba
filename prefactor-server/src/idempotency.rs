//! Idempotency keys: where a request carries one, and what a repeat of it means.
//!
//! A key may travel in the `Idempotency-Key` header, at the top level of the body, or inside
//! `details` (Python span create); the first found in that order wins. Keys are scoped by
//! (method, path) because the local server has one account. The first successful (2xx)
//! answer is stored in the same transaction as the write it describes; a repeat with the same
//! body gets that stored answer replayed byte for byte, and a repeat with a DIFFERENT body is
//! rejected with 422 `idempotency_key_reused` (following the IETF Idempotency-Key draft),
//! because silently replaying would hide a client bug and re-executing would break the
//! guarantee. Error answers are not stored, so a request that failed may be retried.

use axum::http::HeaderMap;
use serde_json::Value;

use crate::error::ApiError;

/// Longest accepted key (as the SDKs validate client-side).
pub const MAX_KEY_LEN: usize = 64;

/// The identity of one idempotent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// The client's key.
    pub key: String,
    /// Fingerprint of the request body, to detect a key reused for another request.
    pub request_hash: i64,
}

/// Finds the key of a request; `Ok(None)` when it has none.
///
/// ```
/// use prefactor_server::idempotency::find_key;
/// use axum::http::HeaderMap;
/// let body = serde_json::json!({"details": {"idempotency_key": "k1"}});
/// assert_eq!(find_key(&HeaderMap::new(), &body).unwrap().as_deref(), Some("k1"));
/// ```
pub fn find_key(headers: &HeaderMap, body: &Value) -> Result<Option<String>, ApiError> {
    let from_header = match headers.get("idempotency-key") {
        Some(value) => Some(
            value.to_str().map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))?.to_string(),
        ),
        None => None,
    };
    let key = from_header
        .map(|key| (key, "Idempotency-Key"))
        .or_else(|| string_at(body, &["idempotency_key"]).map(|k| (k, "idempotency_key")))
        .or_else(|| string_at(body, &["details", "idempotency_key"]).map(|k| (k, "details.idempotency_key")));
    match key {
        None => Ok(None),
        Some((key, field)) => validate_key(key, field).map(Some),
    }
}

fn string_at(body: &Value, path: &[&str]) -> Option<String> {
    let mut value = body;
    for segment in path {
        value = value.get(segment)?;
    }
    value.as_str().map(str::to_string)
}

fn validate_key(key: String, field: &str) -> Result<String, ApiError> {
    if key.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(ApiError::validation(
            field,
            format!("must be at most {MAX_KEY_LEN} characters (got {})", key.len()),
        ));
    }
    Ok(key)
}

/// Builds the scope of a request that carries a key.
pub fn scope_for(
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Result<Option<IdempotencyScope>, ApiError> {
    Ok(find_key(headers, body)?.map(|key| IdempotencyScope {
        method: method.to_string(),
        path: path.to_string(),
        key,
        request_hash: fingerprint(body),
    }))
}

/// FNV-1a over the canonical JSON text (serde_json sorts object keys), stable across
/// processes so replays work after a restart.
///
/// ```
/// use prefactor_server::idempotency::fingerprint;
/// let a = serde_json::json!({"a": 1, "b": 2});
/// let b: serde_json::Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
/// assert_eq!(fingerprint(&a), fingerprint(&b));
/// ```
pub fn fingerprint(body: &Value) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}
