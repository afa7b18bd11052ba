//! Bulk outputs under `Prefer: return=minimal` (see [`crate::prefer`]): a successful item
//! answers `{"status":"success"}`, plus its `control` object when the instance is terminated.
//! Nothing of the resource is serialized and no summary template is rendered.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::operation::Outcome;
use crate::db::idempotency::StoredAnswer;
use crate::error::ApiError;

/// The minimal output of an item that ran.
///
/// A span write's control signal is still data; any other answer (other actions, replays of
/// stored bodies) is a finished body, whose `control` is copied out of it.
pub fn minimal_output(outcome: Outcome) -> Result<StoredAnswer, ApiError> {
    match outcome {
        Outcome::Span(span) => {
            let control = span.control.as_ref().map(serde_json::to_string).transpose().map_err(ApiError::internal)?;
            Ok((200, minimal_body(control.as_deref())))
        }
        Outcome::Answer((status, body)) => control_of(status, &body),
        Outcome::StoredSpan(body, _) => control_of(200, &body),
    }
}

/// The minimal output of a finished body: its `control` copied out.
fn control_of(status: u16, body: &str) -> Result<StoredAnswer, ApiError> {
    let envelope: ControlOnly<'_> = serde_json::from_str(body).map_err(ApiError::internal)?;
    Ok((status, minimal_body(envelope.control.map(RawValue::get))))
}

/// The one field of a success body a minimal output keeps.
#[derive(Deserialize)]
struct ControlOnly<'a> {
    #[serde(borrow, default)]
    control: Option<&'a RawValue>,
}

/// `{"status":"success"}` with `control` (JSON text) when present.
fn minimal_body(control: Option<&str>) -> String {
    match control {
        None => r#"{"status":"success"}"#.to_owned(),
        Some(control) => format!(r#"{{"status":"success","control":{control}}}"#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_body_keeps_only_its_control() {
        let full = r#"{"status":"success","details":{"id":"x","payload":{"control":1}},"control":{"terminate":true,"reason":"r"}}"#;
        let (status, body) = minimal_output(Outcome::Answer((200, full.to_owned()))).unwrap();
        assert_eq!((status, body.as_str()), (200, r#"{"status":"success","control":{"terminate":true,"reason":"r"}}"#));
        let plain = r#"{"status":"success","details":{"id":"x"}}"#;
        let (_, body) = minimal_output(Outcome::Answer((200, plain.to_owned()))).unwrap();
        assert_eq!(body, r#"{"status":"success"}"#);
    }
}
