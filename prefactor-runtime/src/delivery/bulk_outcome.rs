//! Reading a bulk answer: `{"status":"success","outputs":{key: output}}`, one output per item
//! the server ran, in order, up to and including the first that failed (A8.10).
//!
//! The worker asks for minimal outputs (`Prefer: return=minimal`: `{"status":"success"}` plus
//! `control` when present), but the real API may ignore that and answer full outputs
//! (`details` echoing the resource); both read the same, `details` being skipped unparsed.
//!
//! An item's error has no HTTP status of its own, so its `code` stands for the status the
//! single request would have answered, and it is classified exactly like that status (A3).

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::delivery::transport::{Attempt, classify_status};
use crate::report::error::Error;

/// One item's output; `details` (the resource, echoing the payloads) is skipped unparsed.
#[derive(Debug, Deserialize)]
pub(crate) struct ItemOutput<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default)]
    control: Option<Value>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Option<Map<String, Value>>,
}

/// The outputs of a bulk answer by item key, borrowing from the answer's bytes.
#[derive(Debug, Deserialize)]
pub(crate) struct BulkAnswer<'a> {
    #[serde(borrow)]
    outputs: HashMap<Cow<'a, str>, ItemOutput<'a>>,
}

impl<'a> BulkAnswer<'a> {
    /// Parses a 2xx bulk body; `None` when it is not a bulk answer.
    pub(crate) fn parse(body: &'a [u8]) -> Option<BulkAnswer<'a>> {
        serde_json::from_slice(body).ok()
    }

    /// The output of the item with key `key`, if the server ran it.
    pub(crate) fn output(&self, key: &str) -> Option<&ItemOutput<'a>> {
        self.outputs.get(key)
    }
}

/// What one item's output means for its operation.
#[derive(Debug)]
pub(crate) enum ItemResult<'o> {
    /// It ran; the span actions' `control` object when present.
    Done(Option<&'o Value>),
    /// It failed, classified like the single request's status.
    Failed(Attempt),
    /// It failed with a code this SDK does not know: the single request decides (the error
    /// it stands for is kept for when that one fails permanently too).
    Unrecognized(Error),
}

impl ItemOutput<'_> {
    /// The result of an item that sends `operation`; `conflict_is_done` as for its single
    /// request (a 409 on a finish means already finished).
    pub(crate) fn result(&self, operation: &'static str, conflict_is_done: bool) -> ItemResult<'_> {
        if self.status == "success" {
            return ItemResult::Done(self.control.as_ref());
        }
        let known = status_of_code(self.code.as_deref());
        let status = known.unwrap_or(422);
        let mut message = self.message.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| format!("HTTP {status}"));
        if let Some(errors) = self.errors.as_ref().filter(|e| !e.is_empty()) {
            message.push_str(&format!(" {}", Value::Object(errors.clone())));
        }
        if known.is_none() {
            return ItemResult::Unrecognized(Error::Http { operation, status: None, code: self.code.clone(), message });
        }
        ItemResult::Failed(classify_status(operation, status, None, self.code.clone(), message, conflict_is_done))
    }
}

/// The HTTP status a single request answers with this error `code` (the local server's and
/// the API's codes); `None` for a code this SDK does not know, which the worker retries once
/// as a single request before counting it permanent: a code the API added later must not
/// lose data.
pub(crate) fn status_of_code(code: Option<&str>) -> Option<u16> {
    let status = match code? {
        "invalid_json" | "bad_request" | "invalid_request" => 400,
        "unauthorized" | "bad_authtoken" => 401,
        "forbidden" => 403,
        "not_found" => 404,
        "method_not_allowed" => 405,
        "request_timeout" => 408,
        "conflict" | "invalid_action" => 409,
        "payload_too_large" => 413,
        "validation_error" | "validation_errors" | "unprocessable_entity" => 422,
        "rate_limited" | "too_many_requests" => 429,
        "internal_error" | "server_error" => 500,
        "service_unavailable" | "unavailable" => 503,
        _ => return None,
    };
    Some(status)
}

/// The error of an item the answer says nothing about although nothing before it failed: the
/// server may or may not have run it, so the single request decides.
pub(crate) fn missing_output(operation: &'static str) -> Error {
    let message = "the bulk answer has no output for this item".to_owned();
    Error::Http { operation, status: None, code: None, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_read_by_key_and_errors_classified_by_code() {
        let body = br#"{"status":"success","outputs":{
            "span-a":{"status":"success","details":{"payload":{"big":[1,2,3]}}},
            "span-min":{"status":"success"},
            "span-min-ctl":{"status":"success","control":{"terminate":true,"reason":"m"}},
            "span-b":{"status":"success","details":{},"control":{"terminate":true,"reason":"r"}},
            "span-end-c":{"status":"error","code":"invalid_action","message":"Span is already finished"},
            "start-d":{"status":"error","code":"validation_error","message":"bad","errors":{"x":["is required"]}}}}"#;
        let answer = BulkAnswer::parse(body).expect("a bulk answer");
        assert!(matches!(answer.output("span-a").unwrap().result("span create", true), ItemResult::Done(None)));
        let ItemResult::Done(Some(control)) = answer.output("span-b").unwrap().result("span create", true) else {
            panic!("control expected");
        };
        assert_eq!(control["reason"], "r");
        assert!(matches!(answer.output("span-min").unwrap().result("span create", true), ItemResult::Done(None)));
        let ItemResult::Done(Some(control)) = answer.output("span-min-ctl").unwrap().result("span finish", true) else {
            panic!("control expected in a minimal output");
        };
        assert_eq!(control["reason"], "m");
        assert!(matches!(
            answer.output("span-end-c").unwrap().result("span finish", true),
            ItemResult::Failed(Attempt::AlreadyDone)
        ));
        match answer.output("start-d").unwrap().result("instance start", false) {
            ItemResult::Failed(Attempt::Permanent(Error::Http { status: Some(422), message, .. })) => {
                assert!(message.contains("bad") && message.contains("is required"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(answer.output("span-e").is_none());
        assert!(BulkAnswer::parse(b"<html>").is_none());
    }

    #[test]
    fn codes_map_to_the_statuses_of_the_status_table() {
        let result = |code: &str| {
            let output = ItemOutput {
                status: "error".into(),
                control: None,
                code: Some(code.into()),
                message: None,
                errors: None,
            };
            match output.result("x", false) {
                ItemResult::Failed(attempt) => Some(attempt),
                ItemResult::Unrecognized(_) => None,
                ItemResult::Done(_) => panic!("an error"),
            }
        };
        assert!(matches!(result("unauthorized"), Some(Attempt::Auth(Error::Auth { status: 401, .. }))));
        assert!(matches!(result("forbidden"), Some(Attempt::Auth(Error::Auth { status: 403, .. }))));
        assert!(matches!(result("internal_error"), Some(Attempt::Transient { .. })));
        assert!(matches!(result("rate_limited"), Some(Attempt::Transient { .. })));
        assert!(matches!(result("request_timeout"), Some(Attempt::Transient { .. })));
        assert!(matches!(result("not_found"), Some(Attempt::Permanent(Error::Http { status: Some(404), .. }))));
        assert!(matches!(result("conflict"), Some(Attempt::Permanent(Error::Http { status: Some(409), .. }))));
        assert!(matches!(result("validation_error"), Some(Attempt::Permanent(Error::Http { status: Some(422), .. }))));
        assert!(result("something_new").is_none(), "an unknown code is left to the single request");
    }
}
