//! Turning arguments, fields, return values and errors into payloads.
//!
//! The `Span*` traits exist for their diagnostics: each blanket-implements for every
//! `Serialize`/`Display` type, and a type that lacks the impl gets a message that names the
//! option to use instead (`skip`, `skip_ret`, `err(Debug)`).

use prefactor_runtime::Payload;
use serde::Serialize;
use std::fmt::{Debug, Display};

/// Implemented for every `Serialize` type; the bound on a captured argument.
///
/// The value is handed on as `&dyn ErasedArg`, so a missing `Serialize` is reported once, on
/// the argument, and never again where the payload is serialized.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded in the span payload because it does not implement `serde::Serialize`",
    label = "this argument is captured into the span payload",
    note = "skip it with `#[prefactor::span(skip(<argument>))]` (or `skip_all`), or implement `serde::Serialize` for it"
)]
pub trait SpanArg {
    /// `self` as a serializable trait object.
    fn erased(&self) -> &dyn ErasedArg;
}

impl<T: Serialize> SpanArg for T {
    fn erased(&self) -> &dyn ErasedArg {
        self
    }
}

/// Implemented for every `Serialize` type; the bound on a `fields(key = expr)` value.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded as a span field because it does not implement `serde::Serialize`",
    label = "this field value is recorded into the span payload"
)]
pub trait SpanField {
    /// `self` as a serializable trait object.
    fn erased(&self) -> &dyn ErasedArg;
}

impl<T: Serialize> SpanField for T {
    fn erased(&self) -> &dyn ErasedArg {
        self
    }
}

/// Object-safe serialization of one payload value as JSON.
pub trait ErasedArg {
    /// Appends the value's JSON to `out`.
    ///
    /// # Errors
    /// When the value fails to serialize (e.g. a map with non-string keys).
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;
}

impl<T: Serialize> ErasedArg for T {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }
}

/// Implemented for every `Serialize` type; the bound on a recorded return value.
#[diagnostic::on_unimplemented(
    message = "the return value `{Self}` cannot be recorded as the span result because it does not implement `serde::Serialize`",
    label = "the return value is captured into the span result",
    note = "add `skip_ret` to `#[prefactor::span(...)]`, or implement `serde::Serialize` for it"
)]
pub trait SpanResult: Serialize {}

impl<T: ?Sized + Serialize> SpanResult for T {}

/// Implemented for every `Display` type; the bound on an `Err` value rendered with `err(Display)`.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` does not implement `Display`, which `#[prefactor::span]` uses for the error message",
    label = "the error is rendered into the failed span's result",
    note = "add `err(Debug)` to `#[prefactor::span(...)]` to render it with `Debug` instead"
)]
pub trait SpanErrorDisplay: Display {}

impl<T: ?Sized + Display> SpanErrorDisplay for T {}

/// One named entry of a payload object.
pub struct Arg<'a> {
    /// The key as JSON text with its colon (`"user_id":`), written by the macro: keys are
    /// known when the function is compiled, so they are not escaped again on every call.
    key_json: &'static str,
    value: &'a dyn ErasedArg,
}

/// A captured argument (checked for `Serialize` where it is named); `key_json` is the key
/// encoded as JSON, followed by a colon.
#[inline]
pub fn arg<'a, T: SpanArg>(key_json: &'static str, value: &'a T) -> Arg<'a> {
    Arg { key_json, value: value.erased() }
}

/// A `fields(key = expr)` entry (checked for `Serialize` where it is written); `key_json` as
/// for [`arg`].
#[inline]
pub fn field<'a, T: SpanField>(key_json: &'static str, value: &'a T) -> Arg<'a> {
    Arg { key_json, value: value.erased() }
}

/// The value every `redact(argument)` entry records, never reading the argument.
static REDACTED_VALUE: &str = prefactor_runtime::REDACTED;

/// A `redact(argument)` entry: `"[REDACTED]"`, the argument itself never read; `key_json` as
/// for [`arg`].
#[inline]
pub fn redacted(key_json: &'static str) -> Arg<'static> {
    Arg { key_json, value: &REDACTED_VALUE }
}

/// The payload object `{"name": value, ...}` of the given entries.
///
/// # Errors
/// When a value fails to serialize.
pub fn payload_of(entries: &[Arg<'_>]) -> Result<Payload, prefactor_runtime::Error> {
    // Keys come encoded from the macro and values are written by serde_json, so the text is
    // valid JSON by construction and is not parsed again (see `Payload::from_serde_json_writer`).
    Payload::from_serde_json_writer(|json| {
        json.push(b'{');
        for (index, entry) in entries.iter().enumerate() {
            if index > 0 {
                json.push(b',');
            }
            json.extend_from_slice(entry.key_json.as_bytes());
            entry.value.write_json(json)?;
        }
        json.push(b'}');
        Ok(())
    })
}

/// The result payload for a return value: itself when it serializes to a JSON object,
/// otherwise `{"output": value}`. `None` (logged) when serialization fails.
pub fn result_value<T: ?Sized + SpanResult>(value: &T) -> Option<Payload> {
    const WRAPPED: &[u8] = br#"{"output":"#;
    // One pass: the value is written after the wrapping's opening, which is taken off again
    // when the value turns out to be an object.
    Payload::from_serde_json_writer(|json| {
        json.extend_from_slice(WRAPPED);
        serde_json::to_writer(&mut *json, value)?;
        if json.get(WRAPPED.len()) == Some(&b'{') {
            json.drain(..WRAPPED.len());
        } else {
            json.push(b'}');
        }
        Ok(())
    })
    .inspect_err(
        |error| tracing::warn!(%error, "prefactor: could not serialize a span's return value; no result recorded"),
    )
    .ok()
}

/// `{"error": {"message": <Display>, "type": <type name>}}`.
pub fn error_display<E: ?Sized + SpanErrorDisplay>(error: &E) -> Option<Payload> {
    prefactor_runtime::error_payload(&error.to_string(), std::any::type_name::<E>())
}

/// `{"error": {"message": <Debug>, "type": <type name>}}`.
pub fn error_debug<E: ?Sized + Debug>(error: &E) -> Option<Payload> {
    prefactor_runtime::error_payload(&format!("{error:?}"), std::any::type_name::<E>())
}

#[cfg(test)]
mod tests {
    use super::{Arg, arg, field, payload_of, result_value};
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Point {
        x: i32,
    }

    #[derive(serde::Serialize)]
    enum Choice {
        Unit,
        Wrapped(u8),
    }

    fn result_of<T: serde::Serialize>(value: &T) -> Value {
        result_value(value).expect("serializes").to_value()
    }

    /// Objects are kept as they are; every other shape is wrapped, exactly as serde_json
    /// writes it.
    #[test]
    fn results_are_objects_or_wrapped_as_output() {
        let cases = [
            (result_of(&Point { x: 1 }), json!(Point { x: 1 })),
            (result_of(&Some(Point { x: 1 })), json!(Some(Point { x: 1 }))),
            (result_of(&None::<Point>), json!(None::<Point>)),
            (result_of(&BTreeMap::from([("a", 1)])), json!(BTreeMap::from([("a", 1)]))),
            (result_of(&Choice::Unit), json!(Choice::Unit)),
            (result_of(&Choice::Wrapped(1)), json!(Choice::Wrapped(1))),
            (result_of(&"text"), json!("text")),
            (result_of(&[1, 2]), json!([1, 2])),
            (result_of(&json!({"k": 1})), json!({"k": 1})),
            (result_of(&21usize), json!(21)),
        ];
        for (result, value) in cases {
            let expected = if value.is_object() { value } else { json!({ "output": value }) };
            assert_eq!(result, expected);
        }
        let bad = BTreeMap::from([((1, 2), 3)]);
        assert!(result_value(&bad).is_none(), "tuple keys are not JSON object keys");
    }

    #[test]
    fn entries_are_written_with_their_encoded_keys() {
        let entries: [Arg<'_>; 3] =
            [arg(r#""user_id":"#, &42u64), arg(r#""query":"#, &"a \"quoted\" text"), field(r#""say \"hi\"":"#, &true)];
        let payload = payload_of(&entries).expect("serializes");
        assert_eq!(payload.to_value(), json!({"user_id": 42, "query": "a \"quoted\" text", "say \"hi\"": true}));
        assert_eq!(payload_of(&[]).expect("serializes").as_json(), "{}");
    }
}
