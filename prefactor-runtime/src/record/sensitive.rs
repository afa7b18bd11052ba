//! `Sensitive<T>`: a value sent in Prefactor's sensitive-value encoding.

use std::borrow::Cow;
use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// A value the platform should treat as sensitive: it is sent, but marked, in Prefactor's
/// encoding `{"$sensitive": kind, "value": value, "labels": [..]}`, which the dashboard shows
/// masked and reveals only on request. Spans carrying one are sent with
/// `sensitive_encoding: true`. Use [`Secret`](crate::Secret) instead for what must never
/// leave the process (keys, passwords).
///
/// `Debug` shows the kind and labels, never the value.
///
/// ```
/// use prefactor_runtime::Sensitive;
/// use serde_json::json;
///
/// let email = Sensitive::new("email", "ana@example.com").label("pii").label("contact");
/// assert_eq!(
///     serde_json::to_value(&email).unwrap(),
///     json!({"$sensitive": "email", "value": "ana@example.com", "labels": ["pii", "contact"]})
/// );
/// assert!(!format!("{email:?}").contains("ana@"));
/// assert_eq!(*email.value(), "ana@example.com");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive<T> {
    kind: Cow<'static, str>,
    value: T,
    labels: Vec<Cow<'static, str>>,
}

impl<T> Sensitive<T> {
    /// `value`, of the given kind (`"email"`, `"pii"`, `"credential"`, …), with no labels.
    pub fn new(kind: impl Into<Cow<'static, str>>, value: T) -> Sensitive<T> {
        Sensitive { kind: kind.into(), value, labels: Vec::new() }
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, label: impl Into<Cow<'static, str>>) -> Sensitive<T> {
        self.labels.push(label.into());
        self
    }

    /// The kind (the `$sensitive` field).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The labels.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|label| &**label)
    }

    /// The value itself.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, unwrapped.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: Serialize> Serialize for Sensitive<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut envelope = serializer.serialize_struct("Sensitive", 3)?;
        envelope.serialize_field("$sensitive", &self.kind)?;
        envelope.serialize_field("value", &self.value)?;
        envelope.serialize_field("labels", &self.labels)?;
        envelope.end()
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sensitive")
            .field("kind", &self.kind)
            .field("labels", &self.labels)
            .field("value", &format_args!("[hidden]"))
            .finish()
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Sensitive<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Sensitive_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let value = generator.subschema_for::<T>();
        schemars::json_schema!({
            "type": "object",
            "properties": {
                "$sensitive": { "type": "string" },
                "value": value,
                "labels": { "type": "array", "items": { "type": "string" } }
            },
            "required": ["$sensitive", "value", "labels"]
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

/// Whether serialized JSON carries a sensitive-value envelope (a `"$sensitive"` key).
pub(crate) fn has_sensitive_values(json: &str) -> bool {
    json.contains(r#""$sensitive":"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_the_envelope() {
        let schema = serde_json::to_value(schemars::schema_for!(Sensitive<u32>)).unwrap();
        assert_eq!(schema["properties"]["value"]["type"], "integer");
        assert_eq!(schema["required"][0], "$sensitive");
        let text = serde_json::to_string(&Sensitive::new("n", 1)).unwrap();
        assert!(has_sensitive_values(&text));
        assert!(!has_sensitive_values(r#"{"sensitive":1}"#));
    }
}
