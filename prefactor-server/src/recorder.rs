//! The request log: every request the server handled (except `/__admin`), in arrival order,
//! in a bounded ring, so tests can assert exact wire shapes (filled by [`crate::pipeline`]).
//!
//! The hot path only keeps cheap handles (method, URI and header map clones share their
//! buffers, the body is the request's own `Bytes`); converting to [`RecordedRequest`] (header
//! strings, body parsed as JSON) happens when a snapshot is taken, which tests do rarely.
//!
//! The ring is bounded in entries AND in bytes (bodies plus headers): the oldest entries go
//! first, and an entry bigger than the whole byte budget is kept without its body. Only
//! authenticated requests have their body recorded (a rejected request's body is never
//! read). Headers are kept verbatim (including `Authorization`) for the in-process API
//! ([`crate::LocalServer::requests`]), because tests assert what the SDK sends; the HTTP view
//! (`GET /__admin/requests`) shows them through [`redacted`], so a holder of one token never
//! reads another's. The log is never written to logs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::Value;

/// One handled request.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without query, e.g. `/api/v1/agent_spans`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Parsed JSON body; a non-JSON body is kept as a JSON string; `None` when empty.
    pub body: Option<Value>,
    /// Status code of the answer.
    pub status: u16,
    /// Headers of the answer (names lowercase), e.g. `preference-applied`.
    pub response_headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        first_value(&self.headers, name)
    }

    /// The first value of answer header `name` (case-insensitive).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        first_value(&self.response_headers, name)
    }
}

fn first_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect()
}

/// A handled request as kept in the ring (cheap to take; see the module doc).
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// HTTP method.
    pub method: Method,
    /// Request URI.
    pub uri: Uri,
    /// Headers in arrival order.
    pub headers: HeaderMap,
    /// Body bytes (empty when none, or when the body was over the limit).
    pub body: Bytes,
    /// Status code of the answer.
    pub status: u16,
    /// Headers of the answer.
    pub response_headers: HeaderMap,
}

impl RawRequest {
    /// The bytes this entry holds (body, URI, headers), as counted against the log's limit.
    fn size(&self) -> usize {
        let headers =
            |map: &HeaderMap| map.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum::<usize>();
        self.body.len() + self.uri.to_string().len() + headers(&self.headers) + headers(&self.response_headers) + 64
    }

    fn to_recorded(&self) -> RecordedRequest {
        RecordedRequest {
            method: self.method.to_string(),
            path: self.uri.path().to_string(),
            query: self.uri.query().map(str::to_string),
            headers: header_pairs(&self.headers),
            body: recorded_body(&self.body),
            status: self.status,
            response_headers: header_pairs(&self.response_headers),
        }
    }
}

/// The bounded request log.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    capacity: usize,
    max_bytes: usize,
    next_sequence: AtomicU64,
    entries: Mutex<Ring>,
}

/// The entries and the bytes they hold.
#[derive(Default)]
struct Ring {
    entries: VecDeque<(u64, RawRequest, usize)>,
    bytes: usize,
}

impl Recorder {
    /// A log keeping the last `capacity` requests (0 disables recording) holding at most
    /// `max_bytes` of bodies and headers.
    ///
    /// ```
    /// use axum::body::Bytes;
    /// use axum::http::{HeaderMap, Method, Uri};
    /// use prefactor_server::recorder::{RawRequest, Recorder};
    /// let log = Recorder::new(100, 1000);
    /// for sequence in 0..10 {
    ///     let body = Bytes::from(vec![b'x'; 300]);
    ///     let entry = RawRequest { method: Method::POST, uri: Uri::from_static("/x"), headers: HeaderMap::new(),
    ///                              body, status: 401, response_headers: HeaderMap::new() };
    ///     log.push(sequence, entry);
    /// }
    /// assert!(log.snapshot().len() <= 3, "bounded in bytes, not only in entries");
    /// ```
    pub fn new(capacity: usize, max_bytes: usize) -> Recorder {
        Recorder {
            inner: Arc::new(RecorderInner {
                capacity,
                max_bytes,
                next_sequence: AtomicU64::new(0),
                entries: Mutex::new(Ring::default()),
            }),
        }
    }

    /// True when requests are recorded.
    pub fn enabled(&self) -> bool {
        self.inner.capacity > 0
    }

    /// Snapshot in arrival order.
    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        let Ok(entries) = self.inner.entries.lock() else {
            return Vec::new();
        };
        let mut sorted: Vec<&(u64, RawRequest, usize)> = entries.entries.iter().collect();
        sorted.sort_by_key(|(sequence, _, _)| *sequence);
        sorted.into_iter().map(|(_, entry, _)| entry.to_recorded()).collect()
    }

    /// Forgets every recorded request.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.inner.entries.lock() {
            *entries = Ring::default();
        }
    }

    /// Arrival sequence number of a new request.
    pub fn arrival(&self) -> u64 {
        self.inner.next_sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// Stores a handled request under its arrival number.
    pub fn push(&self, sequence: u64, mut entry: RawRequest) {
        let mut size = entry.size();
        if size > self.inner.max_bytes {
            entry.body = Bytes::new();
            size = entry.size();
        }
        let Ok(mut ring) = self.inner.entries.lock() else {
            return;
        };
        while !ring.entries.is_empty()
            && (ring.entries.len() >= self.inner.capacity || ring.bytes.saturating_add(size) > self.inner.max_bytes)
        {
            if let Some((_, _, dropped)) = ring.entries.pop_front() {
                ring.bytes = ring.bytes.saturating_sub(dropped);
            }
        }
        if ring.entries.len() < self.inner.capacity && ring.bytes.saturating_add(size) <= self.inner.max_bytes {
            ring.bytes += size;
            ring.entries.push_back((sequence, entry, size));
        }
    }
}

/// Headers whose values are credentials.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"];

/// `headers` with credential values replaced by `<redacted>` (the scheme of an
/// `Authorization` value is kept: `Bearer <redacted>`).
///
/// ```
/// use prefactor_server::recorder::redacted;
/// let headers = vec![("authorization".to_string(), "Bearer secret".to_string()), ("x-a".to_string(), "1".to_string())];
/// let shown = redacted(&headers);
/// assert_eq!(shown[0].1, "Bearer <redacted>");
/// assert_eq!(shown[1].1, "1");
/// ```
pub fn redacted(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            if !CREDENTIAL_HEADERS.iter().any(|credential| name.eq_ignore_ascii_case(credential)) {
                return (name.clone(), value.clone());
            }
            let shown = match value.split_once(' ') {
                Some((scheme, _)) if name.to_ascii_lowercase().contains("authorization") => {
                    format!("{scheme} <redacted>")
                }
                _ => "<redacted>".to_string(),
            };
            (name.clone(), shown)
        })
        .collect()
}

/// The body as recorded: parsed JSON, or the raw text as a JSON string; `None` when empty.
pub fn recorded_body(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    Some(serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())))
}
