//! HTTP transport: headers, one attempt per call, and classification of the outcome (A3).

use std::time::Duration;

use prefactor_protocol::{Control, ErrorResponse};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::delivery::retry::parse_retry_after;
use crate::report::error::Error;

/// The RFC 7240 request header (not among reqwest's named headers).
const PREFER: &str = "prefer";

/// The outcome of one HTTP attempt.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// 2xx: what the caller reads of the body (`Null` when not JSON): the whole body of a
    /// GET, only `{"control": ...}` of a span write (when present), `Null` for other writes.
    Done(Value),
    /// 409 where the API means "already done" (instance or span finish).
    AlreadyDone,
    /// 408, 429, 5xx: the server answered that it did not do it now; worth retrying.
    Transient { retry_after: Option<Duration>, error: Error },
    /// No complete answer (refused or reset connection, timeout): the request may or may not
    /// have been applied. Resent with the same idempotency key, so the server replays it if it
    /// was.
    Unseen(Error),
    /// 401/403: the token is not accepted.
    Auth(Error),
    /// Any other status: this operation cannot succeed.
    Permanent(Error),
}

/// The answer to a bulk request, before its outputs are read.
#[derive(Debug)]
pub(crate) enum BulkReply {
    /// 2xx: the raw body (outputs by item key).
    Answered(Vec<u8>),
    /// 404 or 405: this server has no bulk endpoint.
    Unsupported(u16),
    /// The request as a whole failed (network, 401/403, 408, 429, 5xx, other 4xx).
    Failed(Attempt),
}

/// The control signal of a span response, when it asks to terminate.
#[cfg(test)]
pub(crate) fn termination_signal(body: &Value) -> Option<Option<String>> {
    termination_signal_of(body.get("control")?)
}

/// The same, given the `control` object itself.
pub(crate) fn termination_signal_of(control: &Value) -> Option<Option<String>> {
    let control: Control = serde_json::from_value(control.clone()).ok()?;
    control.terminate.then_some(control.reason)
}

/// How much of a 2xx body the caller reads (parsing whole span responses, which echo the
/// payloads, was the worker's largest allocation cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// The whole body (GETs: the termination poll reads `details`).
    Everything,
    /// Only the `control` object (span create and finish responses, A12).
    Control,
    /// Nothing (instance writes: their answers carry no control signal).
    Nothing,
}

impl Wanted {
    /// What a POST to `path` may answer that the worker acts on: only span writes carry `control`.
    fn for_post(path: &str) -> Wanted {
        if path.starts_with("/agent_spans") { Wanted::Control } else { Wanted::Nothing }
    }
}

/// The one field of a span write's answer the worker reads; other keys are skipped unparsed.
#[derive(Deserialize)]
struct ControlEnvelope {
    #[serde(default)]
    control: Option<Value>,
}

#[derive(Debug)]
pub(crate) struct Transport {
    http: reqwest::Client,
    /// `{api_url}/api/v1`, parsed once: request URLs append path segments to a copy, so the
    /// scheme and host (IDNA included) are never parsed again.
    base: Url,
}

/// How long an idle keep-alive connection is kept for reuse. Below the 30 s after which
/// prefactor-server (and many proxies) close idle connections: reusing one the server is
/// closing meets a reset, which costs a resend.
const IDLE_CONNECTION_LIFETIME: Duration = Duration::from_secs(20);

impl Transport {
    pub(crate) fn new(config: &Config) -> Result<Transport, Error> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", config.api_token()))
            .map_err(|_| Error::InvalidConfig { field: "api_token", reason: "is not a valid header value".into() })?;
        // Keeps the token out of reqwest's own Debug output and logs.
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        let sdk = HeaderValue::from_str(&config.sdk_header()).map_err(|_| Error::InvalidConfig {
            field: "sdk_header_entry",
            reason: "is not a valid header value".into(),
        })?;
        headers.insert("x-prefactor-sdk", sdk);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.request_timeout())
            .connect_timeout(config.connect_timeout())
            .pool_idle_timeout(IDLE_CONNECTION_LIFETIME)
            .build()
            .map_err(|e| Error::Http { operation: "client setup", status: None, code: None, message: e.to_string() })?;
        let base = Url::parse(&format!("{}/api/v1", config.api_url()))
            .ok()
            .filter(|url| !url.cannot_be_a_base())
            .ok_or_else(|| Error::InvalidConfig { field: "api_url", reason: "is not an http(s) URL".into() })?;
        Ok(Transport { http, base })
    }

    /// The base URL with `path` (`/a/b`, ids only) appended.
    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        // `cannot_be_a_base` was ruled out in `new`, so the segments are always available.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.trim_start_matches('/').split('/'));
        }
        url
    }

    /// POSTs a JSON body. `conflict_is_done`: a 409 means the work was already done.
    pub(crate) async fn post(
        &self,
        operation: &'static str,
        path: &str,
        body: Vec<u8>,
        conflict_is_done: bool,
    ) -> Attempt {
        let mut request = reqwest::Request::new(Method::POST, self.url(path));
        request.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        *request.body_mut() = Some(body.into());
        self.send(operation, request, Wanted::for_post(path), conflict_is_done).await
    }

    /// POSTs a bulk body to `/bulk`, asking for minimal outputs (`Prefer: return=minimal`,
    /// RFC 7240): the worker reads only each output's `status`, `control` and error fields, so
    /// the echoed resources are wasted work on both sides. A server that ignores the
    /// preference answers full outputs, which [`crate::delivery::bulk_outcome`] reads the same way.
    pub(crate) async fn post_bulk(&self, body: Vec<u8>) -> BulkReply {
        const OPERATION: &str = "bulk request";
        let mut request = reqwest::Request::new(Method::POST, self.url("/bulk"));
        request.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request.headers_mut().insert(PREFER, HeaderValue::from_static("return=minimal"));
        *request.body_mut() = Some(body.into());
        let (status, retry_after, bytes) = match self.exchange(OPERATION, request).await {
            Ok(answer) => answer,
            Err(failed) => return BulkReply::Failed(failed),
        };
        match status {
            200..=299 => BulkReply::Answered(bytes),
            404 | 405 => BulkReply::Unsupported(status),
            _ => {
                let (code, message) = error_details(status, &bytes);
                BulkReply::Failed(classify_status(OPERATION, status, retry_after, code, message, false))
            }
        }
    }

    pub(crate) async fn get(&self, operation: &'static str, path: &str) -> Attempt {
        let request = reqwest::Request::new(Method::GET, self.url(path));
        self.send(operation, request, Wanted::Everything, false).await
    }

    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::Request,
        wanted: Wanted,
        conflict_is_done: bool,
    ) -> Attempt {
        match self.exchange(operation, request).await {
            Ok((status, retry_after, bytes)) => {
                classify(operation, status, retry_after, &bytes, wanted, conflict_is_done)
            }
            Err(failed) => failed,
        }
    }

    /// One request: status, `Retry-After` and body, or the transient failure to get them.
    async fn exchange(
        &self,
        operation: &'static str,
        request: reqwest::Request,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), Attempt> {
        let response = match self.http.execute(request).await {
            Ok(response) => response,
            Err(err) => {
                let message = describe_transport_error(&err);
                return Err(Attempt::Unseen(Error::Http { operation, status: None, code: None, message }));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        match response.bytes().await {
            Ok(bytes) => Ok((status, retry_after, Vec::from(bytes))),
            Err(err) => {
                // The status line arrived but the answer did not: a success cannot be trusted
                // without its body, so the outcome is unseen.
                let message = describe_transport_error(&err);
                Err(Attempt::Unseen(Error::Http { operation, status: Some(status), code: None, message }))
            }
        }
    }
}

fn classify(
    operation: &'static str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    wanted: Wanted,
    conflict_is_done: bool,
) -> Attempt {
    if (200..300).contains(&status) {
        return Attempt::Done(success_body(body, wanted));
    }
    let (code, message) = error_details(status, body);
    classify_status(operation, status, retry_after, code, message, conflict_is_done)
}

/// Classifies a non-2xx status with the server's `code` and `message` (A3).
pub(crate) fn classify_status(
    operation: &'static str,
    status: u16,
    retry_after: Option<Duration>,
    code: Option<String>,
    message: String,
    conflict_is_done: bool,
) -> Attempt {
    if status == 409 && conflict_is_done {
        return Attempt::AlreadyDone;
    }
    match status {
        401 | 403 => {
            Attempt::Auth(Error::Auth { status, code: code.unwrap_or_else(|| "unauthorized".into()), message })
        }
        408 | 429 | 500..=599 => {
            Attempt::Transient { retry_after, error: Error::Http { operation, status: Some(status), code, message } }
        }
        _ => Attempt::Permanent(Error::Http { operation, status: Some(status), code, message }),
    }
}

/// The part of a 2xx body the caller reads (see [`Wanted`]); `Null` when absent or not JSON.
fn success_body(body: &[u8], wanted: Wanted) -> Value {
    match wanted {
        Wanted::Everything => serde_json::from_slice(body).unwrap_or(Value::Null),
        Wanted::Nothing => Value::Null,
        // Only an object has a `control` key (serde would also accept a struct from an array).
        Wanted::Control if !body.trim_ascii_start().starts_with(b"{") => Value::Null,
        Wanted::Control => match serde_json::from_slice::<ControlEnvelope>(body) {
            Ok(ControlEnvelope { control: Some(control) }) => {
                Value::Object(Map::from_iter([("control".to_owned(), control)]))
            }
            _ => Value::Null,
        },
    }
}

/// The server's `code` and `message` (field errors appended), or a bounded excerpt of a
/// non-JSON body such as an HTML error page.
fn error_details(status: u16, body: &[u8]) -> (Option<String>, String) {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(err) => {
            let mut message = if err.message.is_empty() { format!("HTTP {status}") } else { err.message };
            if let Some(errors) = err.errors.filter(|e| !e.is_empty()) {
                message.push_str(&format!(" {}", Value::Object(errors)));
            }
            (Some(err.code), message)
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(200).collect();
            (None, if excerpt.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {excerpt}") })
        }
    }
}

fn describe_transport_error(err: &reqwest::Error) -> String {
    // reqwest's Display includes the URL but never headers, so the token cannot leak here.
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_status_table() {
        let body = br#"{"status":"error","code":"validation_error","message":"bad","errors":{"x":["is required"]}}"#;
        match classify("span create", 422, None, body, Wanted::Nothing, false) {
            Attempt::Permanent(Error::Http { status: Some(422), code: Some(code), message, .. }) => {
                assert_eq!(code, "validation_error");
                assert!(message.contains("bad") && message.contains("is required"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(classify("x", 401, None, b"{}", Wanted::Nothing, false), Attempt::Auth(_)));
        assert!(matches!(classify("x", 503, None, b"<html>", Wanted::Nothing, false), Attempt::Transient { .. }));
        assert!(matches!(classify("x", 429, None, b"", Wanted::Nothing, false), Attempt::Transient { .. }));
        assert!(matches!(classify("x", 408, None, b"", Wanted::Nothing, false), Attempt::Transient { .. }));
        assert!(matches!(classify("x", 409, None, b"{}", Wanted::Nothing, true), Attempt::AlreadyDone));
        assert!(matches!(classify("x", 409, None, b"{}", Wanted::Nothing, false), Attempt::Permanent(_)));
        assert!(matches!(classify("x", 200, None, b"not json", Wanted::Everything, false), Attempt::Done(Value::Null)));
    }

    #[test]
    fn control_signal_is_read_only_when_terminate_is_true() {
        let body: Value = serde_json::json!({"control": {"terminate": true, "reason": "stop"}});
        assert_eq!(termination_signal(&body), Some(Some("stop".into())));
        assert_eq!(termination_signal(&serde_json::json!({"control": "terminate"})), None);
        assert_eq!(termination_signal(&serde_json::json!({"control": {"terminate": false}})), None);
        assert_eq!(termination_signal(&serde_json::json!({})), None);
    }

    #[test]
    fn span_writes_keep_only_the_control_object() {
        let with_control = br#"{"status":"success","details":{"id":"s","payload":{"control":1}},"control":{"terminate":true,"reason":"r"}}"#;
        let Attempt::Done(body) = classify("span create", 200, None, with_control, Wanted::Control, true) else {
            panic!("a 200 is done");
        };
        assert_eq!(body, serde_json::json!({"control": {"terminate": true, "reason": "r"}}));
        assert_eq!(termination_signal(&body), Some(Some("r".into())));
        let without = br#"{"status":"success","details":{"id":"s"}}"#;
        assert_eq!(success_body(without, Wanted::Control), Value::Null);
        assert_eq!(success_body(br#"[{"terminate":true}]"#, Wanted::Control), Value::Null);
        assert_eq!(success_body(b"not json", Wanted::Control), Value::Null);
        assert_eq!(success_body(with_control, Wanted::Nothing), Value::Null);
        assert_eq!(Wanted::for_post("/agent_spans"), Wanted::Control);
        assert_eq!(Wanted::for_post("/agent_spans/s1/finish"), Wanted::Control);
        assert_eq!(Wanted::for_post("/agent_instance/i1/start"), Wanted::Nothing);
    }

    #[test]
    fn request_urls_append_the_path_to_the_parsed_base() {
        let config = Config::builder().api_url("http://127.0.0.1:9/prefix/").api_token("t").build().unwrap();
        let transport = Transport::new(&config).unwrap();
        assert_eq!(transport.url("/agent_spans").as_str(), "http://127.0.0.1:9/prefix/api/v1/agent_spans");
        assert_eq!(
            transport.url("/agent_spans/abc/finish").as_str(),
            "http://127.0.0.1:9/prefix/api/v1/agent_spans/abc/finish"
        );
        assert_eq!(transport.url("/ping").as_str(), "http://127.0.0.1:9/prefix/api/v1/ping");
    }
}
