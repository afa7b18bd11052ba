//! `Payload`: a JSON object serialized once, on the caller's thread, and then moved cheaply.

use std::cell::Cell;
use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::record::redaction::Redaction;
use crate::report::error::Error;

/// A span payload or result: a JSON **object**, already serialized.
///
/// Serializing happens once, where the data lives; the queue and the worker only move the
/// bytes. Values that are not objects are wrapped as `{"value": v}` because the API requires
/// objects for `payload` and `result_payload`.
///
/// ```
/// use prefactor_runtime::Payload;
/// use serde_json::json;
///
/// let p = Payload::from_serialize(&json!({"model": "m", "tokens": 3})).unwrap();
/// assert_eq!(p.to_value(), json!({"model": "m", "tokens": 3}));
///
/// let wrapped = Payload::from(json!(42));
/// assert_eq!(wrapped.to_value(), json!({"value": 42}));
/// assert_eq!(Payload::empty().as_json(), "{}");
/// ```
///
/// Short texts (a few dozen bytes: a few arguments, most results) are kept inside the
/// payload itself, with no allocation; longer ones take one allocation of their exact size.
/// Either way the text is serialized into a reused per-thread buffer first, so it never grows
/// or shrinks.
#[derive(Clone)]
pub struct Payload {
    /// UTF-8 JSON text, written by serde_json (or taken from a `str` or a `RawValue`). Kept as
    /// bytes: serde_json's output is UTF-8 by construction, so checking it again on the
    /// caller's thread would only cost time; [`as_json`](Payload::as_json) checks it when read.
    text: Text,
    /// Paths redacted by the worker before the payload is spooled or sent.
    redaction: Option<&'static Redaction>,
}

/// Bytes kept inside a [`Payload`]: with the length byte, the enum's tag and the redaction, a
/// payload stays 64 bytes.
const INLINE: usize = 54;

#[derive(Clone)]
enum Text {
    /// Why inline: the agent's thread then allocates nothing per payload, and the worker,
    /// which holds queued operations (for a long time during an outage) and drops them, never
    /// holds or frees memory of the agent's thread. `bytes[len..]` is unused.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<[u8]>),
}

impl Text {
    fn new(json: &[u8]) -> Text {
        match u8::try_from(json.len()) {
            Ok(len) if json.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..json.len()].copy_from_slice(json);
                Text::Inline { len, bytes }
            }
            _ => Text::Heap(json.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Text::Heap(bytes) => bytes,
        }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.text.as_bytes() == other.text.as_bytes() && self.redaction == other.redaction
    }
}

/// Scratch buffers above this capacity are not kept for the next payload.
const SCRATCH_KEPT: usize = 16 * 1024;

thread_local! {
    /// Where payloads are serialized before being copied into an allocation of their exact
    /// size: no growth reallocations, no shrink at the end, and the buffer is reused.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

impl Payload {
    /// Serializes `value`; non-object values are wrapped as `{"value": v}`.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Payload, Error> {
        Self::from_serde_json_writer(|out| serde_json::to_writer(out, value))
    }

    /// Builds a payload from JSON that `write` appends to an empty buffer **with serde_json**
    /// (`serde_json::to_writer`, or hand-written punctuation around such values, as the
    /// `#[prefactor::span]` argument capture does); a non-object value is wrapped as
    /// `{"value": v}`. The text is not parsed again: serde_json's output is valid JSON by
    /// construction, so validating it would only cost time on the caller's thread. (Debug
    /// builds still check it.) Text that is not valid JSON is not a memory-safety issue; it is
    /// sent as is and rejected by the server.
    ///
    /// ```
    /// use prefactor_runtime::Payload;
    /// let p = Payload::from_serde_json_writer(|out| {
    ///     out.extend_from_slice(b"{\"n\":");
    ///     serde_json::to_writer(&mut *out, &3)?;
    ///     out.push(b'}');
    ///     Ok(())
    /// })
    /// .unwrap();
    /// assert_eq!(p.as_json(), r#"{"n":3}"#);
    /// ```
    pub fn from_serde_json_writer(
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<Payload, Error> {
        // Taken out of the thread-local (not borrowed), so a `Serialize` impl that builds a
        // payload itself simply gets an empty buffer of its own.
        let mut buffer = SCRATCH.try_with(Cell::take).unwrap_or_default();
        buffer.clear();
        let payload = Self::write_into(&mut buffer, write);
        if buffer.capacity() <= SCRATCH_KEPT {
            let _ = SCRATCH.try_with(|scratch| scratch.set(buffer));
        }
        payload
    }

    fn write_into(
        buffer: &mut Vec<u8>,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<Payload, Error> {
        write(buffer)?;
        if buffer.first() != Some(&b'{') {
            // `{"value":<v>}` around the value already written: still serde_json's output.
            buffer.splice(0..0, *br#"{"value":"#);
            buffer.push(b'}');
        }
        Ok(Payload::adopt(buffer))
    }

    /// Copies serde_json's output (valid JSON, so valid UTF-8) into the payload.
    fn adopt(json: &[u8]) -> Payload {
        debug_assert!(serde_json::from_slice::<&RawValue>(json).is_ok(), "not JSON: {}", String::from_utf8_lossy(json));
        Payload { text: Text::new(json), redaction: None }
    }

    /// Adopts JSON text that is already serialized, without serializing it again; a non-object
    /// value is wrapped as `{"value": v}`, like [`from_serialize`](Payload::from_serialize).
    ///
    /// ```
    /// use prefactor_runtime::Payload;
    /// let raw = serde_json::value::RawValue::from_string(r#"{"a":1}"#.to_owned()).unwrap();
    /// assert_eq!(Payload::from_raw(raw).unwrap().as_json(), r#"{"a":1}"#);
    /// ```
    pub fn from_raw(raw: Box<RawValue>) -> Result<Payload, Error> {
        if !raw.get().starts_with('{') {
            return Self::from_serialize(&*raw);
        }
        let text = match raw.get().len() {
            ..=INLINE => Text::new(raw.get().as_bytes()),
            // Longer: the `RawValue`'s own allocation is kept (no copy).
            _ => Text::Heap(Box::<str>::from(raw).into_boxed_bytes()),
        };
        Ok(Payload { text, redaction: None })
    }

    /// The empty object `{}`.
    pub fn empty() -> Payload {
        Payload { text: Text::new(b"{}"), redaction: None }
    }

    /// Redacts `redaction`'s paths from this payload: done on the client's worker thread,
    /// before the payload is written to the spool or sent (the agent's thread pays nothing).
    ///
    /// ```
    /// use std::sync::LazyLock;
    /// use prefactor_runtime::{Payload, Redaction};
    /// use serde_json::json;
    ///
    /// static REDACT: LazyLock<Redaction> = LazyLock::new(|| Redaction::new(["messages[*].content"]).expect("valid paths"));
    ///
    /// let payload = Payload::from(json!({"messages": [{"role": "user", "content": "my card is 4242"}]}))
    ///     .with_redaction(&REDACT);
    /// assert_eq!(payload.redaction(), Some(&*REDACT));
    /// ```
    #[must_use]
    pub fn with_redaction(mut self, redaction: &'static Redaction) -> Payload {
        self.redaction = Some(redaction);
        self
    }

    /// The paths the worker will redact, if any.
    pub fn redaction(&self) -> Option<&'static Redaction> {
        self.redaction
    }

    /// The payload with `value` as its JSON (on the worker, after redaction and limits).
    pub(crate) fn replaced_by(value: &Value) -> Payload {
        Payload::from_serialize(value).unwrap_or_else(|_| Payload::empty())
    }

    /// The payload as a `serde_json::Value` (parses the stored text).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(self.text.as_bytes()).unwrap_or_else(|_| Value::Object(Map::new()))
    }

    /// The serialized JSON text.
    pub fn as_json(&self) -> &str {
        // Every constructor stores serde_json's output or text that was a `str`: UTF-8 always,
        // so the fallback is never taken.
        std::str::from_utf8(self.text.as_bytes()).unwrap_or("{}")
    }

    /// The raw JSON, for writing into a request as it is. The text is checked here, on the
    /// worker (serde_json borrows it after one validating pass), not on the caller's thread:
    /// text that is not JSON fails its operation instead of reaching the server.
    pub(crate) fn raw(&self) -> Result<&RawValue, serde_json::Error> {
        serde_json::from_slice(self.text.as_bytes())
    }

    /// Whether this is the empty object.
    pub fn is_empty_object(&self) -> bool {
        self.text.as_bytes() == b"{}"
    }

    /// Merges the keys of `other` into `self` (keys of `other` win).
    pub(crate) fn merge(&mut self, other: &Payload) {
        if self.is_empty_object() {
            *self = other.clone();
            return;
        }
        let (Value::Object(mut base), Value::Object(extra)) = (self.to_value(), other.to_value()) else {
            return;
        };
        base.extend(extra);
        if let Ok(merged) = Payload::from_serialize(&base) {
            let redaction = self.redaction.or(other.redaction);
            *self = merged;
            self.redaction = redaction;
        }
    }
}

impl From<Value> for Payload {
    /// Objects are kept; any other value is wrapped as `{"value": v}`.
    fn from(value: Value) -> Payload {
        Payload::from_serialize(&value).unwrap_or_else(|_| Payload::empty())
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({})", self.as_json())
    }
}

/// `{"error": {"message": .., "type": ..}}`: the result of a span that failed with an error
/// (the `#[span]` macro's and a failing stream item's). `None` only if serialization fails.
#[doc(hidden)]
pub fn error_payload(message: &str, type_name: &str) -> Option<Payload> {
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
    Payload::from_serialize(&ErrorPayload { error: ErrorDetails { message, type_name } }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_overwrites_and_adds_keys() {
        let mut a = Payload::from(json!({"a": 1, "b": 2}));
        a.merge(&Payload::from(json!({"b": 3, "c": 4})));
        assert_eq!(a.to_value(), json!({"a": 1, "b": 3, "c": 4}));
    }

    /// A value whose serialization builds another payload (the scratch buffer is in use).
    struct Nested;

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let inner = Payload::from_serialize(&json!({"inner": [1, 2]})).map_err(serde::ser::Error::custom)?;
            serializer.serialize_str(inner.as_json())
        }
    }

    #[test]
    fn a_payload_built_while_serializing_another_gets_its_own_buffer() {
        let outer = Payload::from_serialize(&json!({"a": "x"})).unwrap();
        let nested = Payload::from_serialize(&Nested).unwrap();
        assert_eq!(nested.to_value(), json!({"value": r#"{"inner":[1,2]}"#}));
        assert_eq!(outer.as_json(), r#"{"a":"x"}"#);
    }

    #[test]
    fn a_failed_serialization_leaves_the_next_payload_intact() {
        let bad = std::collections::HashMap::from([((1, 2), 3)]);
        assert!(Payload::from_serialize(&bad).is_err(), "tuple keys are not JSON object keys");
        assert_eq!(Payload::from_serialize(&json!({"k": true})).unwrap().as_json(), r#"{"k":true}"#);
    }

    #[test]
    fn raw_values_are_kept_and_any_payload_moves_between_threads() {
        let raw = Payload::from_raw(RawValue::from_string(r#"{"a":1}"#.to_owned()).unwrap()).unwrap();
        let short = Payload::from(json!({"short": true}));
        let copy = short.clone();
        let moved = std::thread::spawn(move || {
            let texts = [raw.as_json().len(), short.clone().as_json().len()];
            drop((raw, short));
            texts
        })
        .join()
        .unwrap();
        assert_eq!(moved, [7, 14]);
        assert_eq!(copy.raw().unwrap().get(), r#"{"short":true}"#);
    }

    #[test]
    fn short_texts_are_kept_inline_and_long_ones_on_the_heap() {
        assert_eq!(size_of::<Payload>(), 64);
        let short = Payload::from(json!({"user_id": 42, "query": "weather in Paris"}));
        assert!(matches!(short.text, Text::Inline { .. }), "{short:?}");
        let edge = Payload::from_serialize(&json!({"k": "x".repeat(INLINE - 8)})).unwrap();
        assert_eq!(edge.as_json().len(), INLINE);
        assert!(matches!(edge.text, Text::Inline { .. }));
        let long = Payload::from_serialize(&json!({"k": "x".repeat(INLINE - 7)})).unwrap();
        assert!(matches!(long.text, Text::Heap(_)));
        assert_eq!(long.to_value(), json!({"k": "x".repeat(INLINE - 7)}));
        let raw = RawValue::from_string(format!(r#"{{"k":"{}"}}"#, "y".repeat(100))).unwrap();
        let raw_long = Payload::from_raw(raw).unwrap();
        assert!(matches!(raw_long.text, Text::Heap(_)));
        assert_eq!(raw_long.raw().unwrap().get().len(), 108);
        assert_eq!(long.clone(), long);
        assert_ne!(long, edge);
        assert_eq!(edge, Payload::from_serialize(&json!({"k": "x".repeat(INLINE - 8)})).unwrap());
    }

    #[test]
    fn strings_and_arrays_are_wrapped() {
        assert_eq!(Payload::from_serialize("hi").unwrap().to_value(), json!({"value": "hi"}));
        assert_eq!(Payload::from(json!([1, 2])).to_value(), json!({"value": [1, 2]}));
        assert_eq!(Payload::from_serialize(&7).unwrap().as_json(), r#"{"value":7}"#);
        assert_eq!(Payload::from_serialize(&None::<u8>).unwrap().as_json(), r#"{"value":null}"#);
    }
}
