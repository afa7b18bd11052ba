//! Turning arguments, fields, return values and errors into payloads.
//!
//! The `Span*` traits exist for their diagnostics: each blanket-implements for every
//! `Serialize`/`Display` type, and a type that lacks the impl gets a message that names the
//! option to use instead (`skip`, `skip_ret`, `err(Debug)`).

use super::shape::serializes_to_object;
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
    name: &'static str,
    value: &'a dyn ErasedArg,
}

/// A captured argument (checked for `Serialize` where it is named).
#[inline]
pub fn arg<'a, T: SpanArg>(name: &'static str, value: &'a T) -> Arg<'a> {
    Arg { name, value: value.erased() }
}

/// A `fields(key = expr)` entry (checked for `Serialize` where it is written).
#[inline]
pub fn field<'a, T: SpanField>(name: &'static str, value: &'a T) -> Arg<'a> {
    Arg { name, value: value.erased() }
}

/// The value every `redact(argument)` entry records, never reading the argument.
static REDACTED_VALUE: &str = prefactor_runtime::REDACTED;

/// A `redact(argument)` entry: `"[REDACTED]"`, the argument itself never read.
#[inline]
pub fn redacted(name: &'static str) -> Arg<'static> {
    Arg { name, value: &REDACTED_VALUE }
}

/// The payload object `{"name": value, ...}` of the given entries.
///
/// # Errors
/// When a value fails to serialize.
pub fn payload_of(entries: &[Arg<'_>]) -> Result<Payload, prefactor_runtime::Error> {
    // Keys and values are written by serde_json and the punctuation here, so the text is valid
    // JSON by construction and is not parsed again (see `Payload::from_serde_json_writer`).
    Payload::from_serde_json_writer(|json| {
        json.push(b'{');
        for (index, entry) in entries.iter().enumerate() {
            if index > 0 {
                json.push(b',');
            }
            serde_json::to_writer(&mut *json, entry.name)?;
            json.push(b':');
            entry.value.write_json(json)?;
        }
        json.push(b'}');
        Ok(())
    })
}

#[derive(serde::Serialize)]
struct Output<'a, T: ?Sized> {
    output: &'a T,
}

/// The result payload for a return value: itself when it serializes to a JSON object,
/// otherwise `{"output": value}`. `None` (logged) when serialization fails.
pub fn result_value<T: ?Sized + SpanResult>(value: &T) -> Option<Payload> {
    let payload = if serializes_to_object(value) {
        Payload::from_serialize(value)
    } else {
        Payload::from_serialize(&Output { output: value })
    };
    payload
        .inspect_err(
            |error| tracing::warn!(%error, "prefactor: could not serialize a span's return value; no result recorded"),
        )
        .ok()
}

#[derive(serde::Serialize)]
struct ErrorDetails<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    type_name: &'a str,
}

#[derive(serde::Serialize)]
struct ErrorPayload<'a> {
    error: ErrorDetails<'a>,
}

fn error_payload(message: &str, type_name: &str) -> Option<Payload> {
    Payload::from_serialize(&ErrorPayload { error: ErrorDetails { message, type_name } }).ok()
}

/// `{"error": {"message": <Display>, "type": <type name>}}`.
pub fn error_display<E: ?Sized + SpanErrorDisplay>(error: &E) -> Option<Payload> {
    error_payload(&error.to_string(), std::any::type_name::<E>())
}

/// `{"error": {"message": <Debug>, "type": <type name>}}`.
pub fn error_debug<E: ?Sized + Debug>(error: &E) -> Option<Payload> {
    error_payload(&format!("{error:?}"), std::any::type_name::<E>())
}
