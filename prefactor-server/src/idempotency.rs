//! Idempotency keys: where a request carries one, and what a repeat of it means.
//!
//! A key may travel in the `Idempotency-Key` header, at the top level of the body, or inside
//! `details` (Python span create); the first found in that order wins. The fingerprint that
//! detects a reused key is taken over the parsed request (canonical JSON, unknown fields
//! dropped), so retries that differ only in key order or whitespace are still replays. Keys are scoped by
//! (method, path) because the local server has one account. The first successful (2xx)
//! answer is stored in the same transaction as the write it describes; a repeat with the same
//! body gets that stored answer replayed byte for byte, and a repeat with a DIFFERENT body is
//! rejected with 422 `idempotency_key_reused` (following the IETF Idempotency-Key draft),
//! because silently replaying would hide a client bug and re-executing would break the
//! guarantee. Error answers are not stored, so a request that failed may be retried.

use axum::http::HeaderMap;
use prefactor_protocol::Pfid;
use serde::Serialize;

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

impl IdempotencyScope {
    /// The stored form of (method, path): a 64-bit FNV-1a of `METHOD path`, 8 bytes instead of
    /// up to ~60 (a finish path carries the resource id, which the key usually repeats).
    ///
    /// ```
    /// use prefactor_server::idempotency::IdempotencyScope;
    /// let scope = |path: &str| IdempotencyScope {
    ///     method: "POST".into(), path: path.into(), key: "k".into(), request_hash: 0,
    /// };
    /// assert_eq!(scope("/api/v1/agent_spans").stored_scope(), scope("/api/v1/agent_spans").stored_scope());
    /// assert_ne!(scope("/api/v1/agent_spans").stored_scope(), scope("/api/v1/agent").stored_scope());
    /// ```
    pub fn stored_scope(&self) -> i64 {
        stored_scope(&self.method, &self.path)
    }
}

impl IdempotencyScope {
    /// The stored identity of the key: see [`record_id`].
    pub fn record_id(&self) -> Vec<u8> {
        record_id(self.stored_scope(), &self.key)
    }
}

/// A record's primary key, 28 bytes for an SDK's key instead of its text (`span-` and a
/// 32-character id, 37 bytes) plus the 8-byte scope: when the key ends with a PFID (the SDKs
/// name a key after the run or span it is about), that id's 20 bytes followed by 8 bytes of
/// the SHA-256 of the scope and the key; any other key, 16 bytes of that SHA-256. The id
/// first keeps an SDK's records in time order, so they are appended to the table's b-tree
/// like the spans, instead of landing on random pages. Two keys share a record only when
/// they end with the same PFID and their 64-bit hashes collide, or (other keys) their 128-bit
/// hashes do: below 10^-18 for the handful of keys one id names, or for ten billion keys.
///
/// ```
/// use prefactor_server::idempotency::record_id;
/// let span = "span-013xrzp12g3nqk8n0000000000000000";
/// assert_eq!(record_id(7, span).len(), 28);
/// assert_eq!(record_id(7, "uuid-like key").len(), 16);
/// assert_eq!(record_id(7, span), record_id(7, span));
/// assert_ne!(record_id(7, span), record_id(8, span));
/// assert_ne!(record_id(7, span), record_id(7, "span-end-013xrzp12g3nqk8n0000000000000000"));
/// ```
pub fn record_id(stored_scope: i64, key: &str) -> Vec<u8> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(stored_scope.to_le_bytes());
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let named = key.len().checked_sub(32).and_then(|start| key.get(start..)).and_then(|tail| tail.parse::<Pfid>().ok());
    match named {
        Some(id) => {
            let mut record = id.to_bytes().to_vec();
            record.extend_from_slice(&digest[..8]);
            record
        }
        None => digest[..16].to_vec(),
    }
}

/// See [`IdempotencyScope::stored_scope`].
pub fn stored_scope(method: &str, path: &str) -> i64 {
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    hasher.hash(method.as_bytes());
    hasher.hash(b" ");
    hasher.hash(path.as_bytes());
    hasher.0 as i64
}

/// A request type that may carry an idempotency key in its body.
pub trait KeyedRequest: Serialize {
    /// Body fields that may hold the key, as (field path, value), in precedence order.
    fn body_keys(&self) -> Vec<(&'static str, Option<&str>)>;
}

/// Finds the key of a request (`Idempotency-Key` header first, then the body fields);
/// `Ok(None)` when it has none.
///
/// ```
/// use axum::http::HeaderMap;
/// use prefactor_server::idempotency::find_key;
/// let request: prefactor_protocol::StartInstanceRequest =
///     serde_json::from_str(r#"{"idempotency_key": "k1"}"#).unwrap();
/// assert_eq!(find_key(&HeaderMap::new(), &request).unwrap().as_deref(), Some("k1"));
/// ```
pub fn find_key(headers: &HeaderMap, request: &impl KeyedRequest) -> Result<Option<String>, ApiError> {
    if let Some(value) = headers.get("idempotency-key") {
        let key = value.to_str().map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))?;
        return validate_key(key.to_string(), "Idempotency-Key").map(Some);
    }
    for (field, key) in request.body_keys() {
        if let Some(key) = key {
            return validate_key(key.to_string(), field).map(Some);
        }
    }
    Ok(None)
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

/// Builds the scope of a request that carries a key (the fingerprint is only computed then).
pub fn scope_for(
    method: &str,
    path: &str,
    headers: &HeaderMap,
    request: &impl KeyedRequest,
) -> Result<Option<IdempotencyScope>, ApiError> {
    let Some(key) = find_key(headers, request)? else {
        return Ok(None);
    };
    Ok(Some(IdempotencyScope {
        method: method.to_string(),
        path: path.to_string(),
        key,
        request_hash: fingerprint(request),
    }))
}

/// FNV-1a over the canonical JSON text of a PARSED request: struct fields come out in
/// declaration order, free-form objects (payloads) with sorted keys (serde_json's map), unknown
/// fields are gone. So two bodies that differ only in key order or whitespace get the same
/// fingerprint, and it is stable across processes, so replays work after a restart.
///
/// ```
/// use prefactor_protocol::FinishSpanRequest;
/// use prefactor_server::idempotency::fingerprint;
/// let a: FinishSpanRequest = serde_json::from_str(r#"{"status":"failed","result_payload":{"a":1,"b":2}}"#).unwrap();
/// let b: FinishSpanRequest =
///     serde_json::from_str(r#"{ "result_payload": {"b":2, "a":1}, "status": "failed", "extra": 1 }"#).unwrap();
/// assert_eq!(fingerprint(&a), fingerprint(&b));
/// let c: FinishSpanRequest = serde_json::from_str(r#"{"status":"complete","result_payload":{"a":1,"b":2}}"#).unwrap();
/// assert_ne!(fingerprint(&a), fingerprint(&c));
/// ```
pub fn fingerprint(request: &impl Serialize) -> i64 {
    // The JSON text is streamed into the hash: no `Value`, no String.
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    if serde_json::to_writer(&mut hasher, request).is_err() {
        // Writing into the hasher cannot fail, and the request types serialize infallibly;
        // hash a marker rather than panic.
        hasher.hash(b"unserializable");
    }
    hasher.0 as i64
}

/// FNV-1a state, fed as an `io::Write`.
struct Fnv1a(u64);

impl Fnv1a {
    fn hash(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.hash(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

macro_rules! top_level_key {
    ($($request:ty),*) => {$(
        impl KeyedRequest for $request {
            fn body_keys(&self) -> Vec<(&'static str, Option<&str>)> {
                vec![("idempotency_key", self.idempotency_key.as_deref())]
            }
        }
    )*};
}

top_level_key!(
    prefactor_protocol::RegisterInstanceRequest,
    prefactor_protocol::StartInstanceRequest,
    prefactor_protocol::FinishInstanceRequest,
    prefactor_protocol::RecordQualityRequest,
    prefactor_protocol::TerminateInstanceRequest,
    prefactor_protocol::FinishSpanRequest,
    prefactor_protocol::CreateAgentRequest
);

impl KeyedRequest for prefactor_protocol::CreateSpanRequest {
    fn body_keys(&self) -> Vec<(&'static str, Option<&str>)> {
        vec![
            ("idempotency_key", self.idempotency_key.as_deref()),
            ("details.idempotency_key", self.details.idempotency_key.as_deref()),
        ]
    }
}
