//! `Secret<T>`: a value that is never written anywhere, as JSON or with `Debug`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a [`Secret`] (and any redacted or scrubbed value) is written as.
pub const REDACTED: &str = "[REDACTED]";

/// A value kept in the program but never recorded: it serializes as `"[REDACTED]"` and its
/// `Debug` prints `[REDACTED]`, so a secret in a span argument, a result or a log line cannot
/// leak by accident. Read it with [`expose`](Secret::expose) where it is really needed.
///
/// Its JSON Schema is a string, since that is what every payload carries. It deserializes
/// from the plain value, so configuration can be loaded straight into it.
///
/// ```
/// use prefactor_runtime::Secret;
///
/// let key = Secret::new("sk-live-123".to_owned());
/// assert_eq!(serde_json::to_string(&key).unwrap(), r#""[REDACTED]""#);
/// assert_eq!(format!("{key:?}"), "[REDACTED]");
/// assert_eq!(key.expose(), "sk-live-123");
///
/// let loaded: Secret<String> = serde_json::from_str(r#""hunter2""#).unwrap();
/// assert_eq!(loaded.into_inner(), "hunter2");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The value itself.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The value, unwrapped.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Secret<T> {
        Secret(value)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> schemars::JsonSchema for Secret<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "const": REDACTED })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Login {
        user: &'static str,
        password: Secret<String>,
    }

    #[test]
    fn nested_secrets_never_serialize_or_debug_their_value() {
        let login = Login { user: "ana", password: Secret::new("hunter2".into()) };
        let json = serde_json::to_string(&login).unwrap();
        assert_eq!(json, r#"{"user":"ana","password":"[REDACTED]"}"#);
        assert!(!format!("{:?}", login.password).contains("hunter2"));
        let schema = schemars::schema_for!(Secret<u64>);
        assert_eq!(schema.get("type").and_then(|t| t.as_str()), Some("string"));
    }
}
