//! `Payload`: a JSON object serialized once, on the caller's thread, and then moved cheaply.

use std::cell::Cell;
use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::Error;

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
#[derive(Clone)]
pub struct Payload(Box<RawValue>);

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

    /// Copies serde_json's output into a payload of its exact size.
    fn adopt(json: &[u8]) -> Payload {
        // serde_json writes only UTF-8; the fallback keeps this panic-free regardless.
        let Ok(text) = std::str::from_utf8(json) else { return Payload::empty() };
        let text: Box<str> = text.into();
        debug_assert!(serde_json::from_str::<&RawValue>(&text).is_ok(), "not JSON: {text}");
        // SAFETY: `RawValue` is `#[repr(transparent)]` over `str` (serde_json 1.x declares
        // `pub struct RawValue { json: str }` with that attribute, and its own `to_raw_value`
        // makes a `Box<RawValue>` from a `Box<str>` with this same transmute), so both boxes
        // have the same layout and the same allocation. The one invariant `RawValue` keeps
        // beyond that, "the text is valid JSON", holds because serde_json wrote it.
        Payload(unsafe { std::mem::transmute::<Box<str>, Box<RawValue>>(text) })
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
        if raw.get().starts_with('{') { Ok(Payload(raw)) } else { Self::from_serialize(&*raw) }
    }

    /// The empty object `{}`.
    pub fn empty() -> Payload {
        // `{}` is a constant, valid JSON text: this cannot fail.
        Payload(RawValue::from_string("{}".to_owned()).expect("`{}` is valid JSON"))
    }

    /// The payload as a `serde_json::Value` (parses the stored text).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or_else(|_| Value::Object(Map::new()))
    }

    /// The serialized JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// The raw JSON, for serializing into a request without re-parsing.
    pub(crate) fn raw(&self) -> &RawValue {
        &self.0
    }

    /// Whether this is the empty object.
    pub fn is_empty_object(&self) -> bool {
        self.0.get() == "{}"
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
        if let Ok(raw) = serde_json::value::to_raw_value(&base) {
            self.0 = raw;
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
        write!(f, "Payload({})", self.0.get())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
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
    fn strings_and_arrays_are_wrapped() {
        assert_eq!(Payload::from_serialize("hi").unwrap().to_value(), json!({"value": "hi"}));
        assert_eq!(Payload::from(json!([1, 2])).to_value(), json!({"value": [1, 2]}));
        assert_eq!(Payload::from_serialize(&7).unwrap().as_json(), r#"{"value":7}"#);
        assert_eq!(Payload::from_serialize(&None::<u8>).unwrap().as_json(), r#"{"value":null}"#);
    }
}
