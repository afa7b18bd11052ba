//! The request log: every request the server handled (except `/__admin`), in arrival order,
//! in a bounded ring, so tests can assert exact wire shapes (filled by [`crate::pipeline`]).
//!
//! The hot path only keeps cheap handles (method, URI and header map clones share their
//! buffers, the body is the request's own `Bytes`); converting to [`RecordedRequest`] (header
//! strings, body parsed as JSON) happens when a snapshot is taken, which tests do rarely.
//!
//! Headers are kept verbatim (including `Authorization`) because tests assert what the SDK
//! sends; the log lives only in memory of the process that started the server and is never
//! written to logs.

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
    next_sequence: AtomicU64,
    entries: Mutex<VecDeque<(u64, RawRequest)>>,
}

impl Recorder {
    /// A log keeping the last `capacity` requests (0 disables recording).
    pub fn new(capacity: usize) -> Recorder {
        Recorder {
            inner: Arc::new(RecorderInner {
                capacity,
                next_sequence: AtomicU64::new(0),
                entries: Mutex::new(VecDeque::new()),
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
        let mut sorted: Vec<&(u64, RawRequest)> = entries.iter().collect();
        sorted.sort_by_key(|(sequence, _)| *sequence);
        sorted.into_iter().map(|(_, entry)| entry.to_recorded()).collect()
    }

    /// Forgets every recorded request.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.inner.entries.lock() {
            entries.clear();
        }
    }

    /// Arrival sequence number of a new request.
    pub fn arrival(&self) -> u64 {
        self.inner.next_sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// Stores a handled request under its arrival number.
    pub fn push(&self, sequence: u64, entry: RawRequest) {
        if let Ok(mut entries) = self.inner.entries.lock() {
            while entries.len() >= self.inner.capacity {
                entries.pop_front();
            }
            entries.push_back((sequence, entry));
        }
    }
}

/// The body as recorded: parsed JSON, or the raw text as a JSON string; `None` when empty.
pub fn recorded_body(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    Some(serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())))
}
