//! `Payload`: a JSON object serialized once, on the caller's thread, and then moved cheaply.

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

#[derive(Serialize)]
struct Wrapped<'a, T: ?Sized> {
    value: &'a T,
}

impl Payload {
    /// Serializes `value`; non-object values are wrapped as `{"value": v}`.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Payload, Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        if raw.get().starts_with('{') {
            return Ok(Payload(raw));
        }
        Ok(Payload(serde_json::value::to_raw_value(&Wrapped { value })?))
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
        match value {
            Value::Object(_) => Payload::from_serialize(&value),
            other => Payload::from_serialize(&Wrapped { value: &other }),
        }
        .unwrap_or_else(|_| Payload::empty())
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

    #[test]
    fn strings_and_arrays_are_wrapped() {
        assert_eq!(Payload::from_serialize("hi").unwrap().to_value(), json!({"value": "hi"}));
        assert_eq!(Payload::from(json!([1, 2])).to_value(), json!({"value": [1, 2]}));
    }
}
