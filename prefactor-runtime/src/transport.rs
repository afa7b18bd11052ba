//! HTTP transport: headers, one attempt per call, and classification of the outcome (A3).

use std::time::Duration;

use prefactor_protocol::{Control, ErrorResponse};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use crate::config::Config;
use crate::error::Error;
use crate::retry::parse_retry_after;

/// The outcome of one HTTP attempt.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// 2xx: the parsed body (`Null` when not JSON).
    Done(Value),
    /// 409 where the API means "already done" (instance or span finish).
    AlreadyDone,
    /// 429, 5xx, network or timeout: worth retrying.
    Transient { retry_after: Option<Duration>, error: Error },
    /// 401/403: the token is not accepted.
    Auth(Error),
    /// Any other status: this operation cannot succeed.
    Permanent(Error),
}

/// The control signal of a span response, when it asks to terminate.
pub(crate) fn termination_signal(body: &Value) -> Option<Option<String>> {
    let control: Control = serde_json::from_value(body.get("control")?.clone()).ok()?;
    control.terminate.then_some(control.reason)
}

#[derive(Debug)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: String,
}

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
            .build()
            .map_err(|e| Error::Http { operation: "client setup", status: None, code: None, message: e.to_string() })?;
        Ok(Transport { http, base: format!("{}/api/v1", config.api_url()) })
    }

    /// POSTs a JSON body. `conflict_is_done`: a 409 means the work was already done.
    pub(crate) async fn post(
        &self,
        operation: &'static str,
        path: &str,
        body: Vec<u8>,
        conflict_is_done: bool,
    ) -> Attempt {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        self.send(operation, request, conflict_is_done).await
    }

    pub(crate) async fn get(&self, operation: &'static str, path: &str) -> Attempt {
        self.send(operation, self.http.get(format!("{}{path}", self.base)), false).await
    }

    async fn send(&self, operation: &'static str, request: reqwest::RequestBuilder, conflict_is_done: bool) -> Attempt {
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let message = describe_transport_error(&err);
                return Attempt::Transient {
                    retry_after: None,
                    error: Error::Http { operation, status: None, code: None, message },
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(err) => {
                let message = describe_transport_error(&err);
                return Attempt::Transient {
                    retry_after,
                    error: Error::Http { operation, status: Some(status), code: None, message },
                };
            }
        };
        classify(operation, status, retry_after, &bytes, conflict_is_done)
    }
}

fn classify(
    operation: &'static str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    conflict_is_done: bool,
) -> Attempt {
    if (200..300).contains(&status) {
        return Attempt::Done(serde_json::from_slice(body).unwrap_or(Value::Null));
    }
    if status == 409 && conflict_is_done {
        return Attempt::AlreadyDone;
    }
    let (code, message) = error_details(status, body);
    match status {
        401 | 403 => {
            Attempt::Auth(Error::Auth { status, code: code.unwrap_or_else(|| "unauthorized".into()), message })
        }
        429 | 500..=599 => {
            Attempt::Transient { retry_after, error: Error::Http { operation, status: Some(status), code, message } }
        }
        _ => Attempt::Permanent(Error::Http { operation, status: Some(status), code, message }),
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
        match classify("span create", 422, None, body, false) {
            Attempt::Permanent(Error::Http { status: Some(422), code: Some(code), message, .. }) => {
                assert_eq!(code, "validation_error");
                assert!(message.contains("bad") && message.contains("is required"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(classify("x", 401, None, b"{}", false), Attempt::Auth(_)));
        assert!(matches!(classify("x", 503, None, b"<html>", false), Attempt::Transient { .. }));
        assert!(matches!(classify("x", 429, None, b"", false), Attempt::Transient { .. }));
        assert!(matches!(classify("x", 409, None, b"{}", true), Attempt::AlreadyDone));
        assert!(matches!(classify("x", 409, None, b"{}", false), Attempt::Permanent(_)));
        assert!(matches!(classify("x", 200, None, b"not json", false), Attempt::Done(Value::Null)));
    }

    #[test]
    fn control_signal_is_read_only_when_terminate_is_true() {
        let body: Value = serde_json::json!({"control": {"terminate": true, "reason": "stop"}});
        assert_eq!(termination_signal(&body), Some(Some("stop".into())));
        assert_eq!(termination_signal(&serde_json::json!({"control": "terminate"})), None);
        assert_eq!(termination_signal(&serde_json::json!({"control": {"terminate": false}})), None);
        assert_eq!(termination_signal(&serde_json::json!({})), None);
    }
}
