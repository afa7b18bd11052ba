//! `SchemaRegistry`: span type and quality schemas, turned into an `agent_schema_version`.

use std::fmt::Write as _;
use std::panic::Location;

use prefactor_protocol::{AgentSchemaVersion, QualitySchema, SpanTypeSchema};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::report::error::Error;
use crate::schema::span_type::{QualityType, SpanType};
use crate::schema::static_schema::StaticSpanType;

#[derive(Debug, Clone)]
struct Entry<T> {
    value: T,
    origin: String,
}

/// Span types and quality schemas of an agent.
///
/// Registering the same name twice with the same content is accepted; different content is an
/// [`Error::SchemaConflict`] naming both places. [`to_agent_schema_version`] sorts entries by
/// name, and when no external identifier is given derives one from a hash of the canonical
/// document, so a program that runs again reuses its schema version.
///
/// [`to_agent_schema_version`]: SchemaRegistry::to_agent_schema_version
///
/// ```
/// use prefactor_runtime::{QualityType, SchemaRegistry, SpanType};
/// use serde_json::json;
///
/// let mut registry = SchemaRegistry::new();
/// registry
///     .register_type(SpanType::new("agent:llm", json!({"type": "object"})).title("LLM call").template("{{ model }}"))
///     .unwrap()
///     .register_quality_schema(QualityType::new("accuracy", json!({"type": "object"})))
///     .unwrap();
/// let doc = registry.to_agent_schema_version(None);
/// assert!(doc.external_identifier.unwrap().starts_with("sha256:"));
/// assert_eq!(doc.span_type_schemas.unwrap()[0].name, "agent:llm");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SchemaRegistry {
    span_types: Vec<Entry<SpanTypeSchema>>,
    quality: Vec<Entry<QualitySchema>>,
}

impl SchemaRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a span type. The caller's location is remembered for conflict messages.
    #[track_caller]
    pub fn register_type(&mut self, span_type: SpanType) -> Result<&mut Self, Error> {
        let origin = caller_origin(Location::caller());
        self.add_span_type(Entry { value: span_type.into_schema(), origin })?;
        Ok(self)
    }

    /// Adds a quality schema (for [`record_quality`](crate::AgentInstanceHandle::record_quality)).
    #[track_caller]
    pub fn register_quality_schema(&mut self, quality: QualityType) -> Result<&mut Self, Error> {
        let origin = caller_origin(Location::caller());
        self.add_quality(Entry { value: quality.into_schema(), origin })?;
        Ok(self)
    }

    /// Copies every entry of `other` in. On any conflict nothing is merged.
    pub fn merge(&mut self, other: &SchemaRegistry) -> Result<(), Error> {
        let mut merged = self.clone();
        for entry in &other.span_types {
            merged.add_span_type(entry.clone())?;
        }
        for entry in &other.quality {
            merged.add_quality(entry.clone())?;
        }
        *self = merged;
        Ok(())
    }

    /// All span types declared by `#[prefactor::span]` in this program. Identical
    /// declarations of one name merge; different ones are an error naming both locations.
    pub fn from_static() -> Result<SchemaRegistry, Error> {
        let mut declared: Vec<&'static StaticSpanType> = inventory::iter::<StaticSpanType>.into_iter().collect();
        // inventory yields in link order, which is unspecified: sort so conflicts and the
        // resulting document do not depend on it.
        declared.sort_by_key(|s| (s.name, s.file, s.line, s.column));
        let mut registry = SchemaRegistry::new();
        for item in declared {
            let value = SpanTypeSchema {
                name: item.name.to_owned(),
                params_schema: (item.params_schema)(),
                result_schema: item.result_schema.map(|f| f()),
                title: item.title.map(str::to_owned),
                description: item.description.map(str::to_owned),
                template: item.template.map(str::to_owned),
                result_template: None,
                data_risk: item.data_risk.map(|risk| risk().to_value()),
            };
            registry.add_span_type(Entry { value, origin: item.location() })?;
        }
        Ok(registry)
    }

    /// The `agent_schema_version` document. `None` derives the identifier from the content:
    /// `sha256:` followed by 32 hex digits of the canonical document's hash.
    pub fn to_agent_schema_version(&self, external_identifier: Option<&str>) -> AgentSchemaVersion {
        let mut span_types: Vec<SpanTypeSchema> = self.span_types.iter().map(|e| e.value.clone()).collect();
        span_types.sort_by(|a, b| a.name.cmp(&b.name));
        let mut quality: Vec<QualitySchema> = self.quality.iter().map(|e| e.value.clone()).collect();
        quality.sort_by(|a, b| a.name.cmp(&b.name));
        let mut doc = AgentSchemaVersion {
            external_identifier: None,
            span_type_schemas: (!span_types.is_empty()).then_some(span_types),
            span_schemas: None,
            span_result_schemas: None,
            quality_schemas: (!quality.is_empty()).then_some(quality),
            quality_schema: None,
        };
        doc.external_identifier =
            Some(external_identifier.map(str::to_owned).unwrap_or_else(|| content_identifier(&doc)));
        doc
    }

    /// Number of span types plus quality schemas.
    pub fn len(&self) -> usize {
        self.span_types.len() + self.quality.len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a span type of that name is registered.
    pub fn contains_type(&self, name: &str) -> bool {
        self.span_types.iter().any(|e| e.value.name == name)
    }

    /// The registered span types, in registration order.
    pub fn span_types(&self) -> impl Iterator<Item = &SpanTypeSchema> {
        self.span_types.iter().map(|e| &e.value)
    }

    /// The registered quality schemas, in registration order.
    pub fn quality_schemas(&self) -> impl Iterator<Item = &QualitySchema> {
        self.quality.iter().map(|e| &e.value)
    }

    fn add_span_type(&mut self, entry: Entry<SpanTypeSchema>) -> Result<(), Error> {
        add_entry(&mut self.span_types, entry, |s| &s.name)
    }

    fn add_quality(&mut self, entry: Entry<QualitySchema>) -> Result<(), Error> {
        add_entry(&mut self.quality, entry, |s| &s.name)
    }
}

fn add_entry<T: PartialEq>(
    entries: &mut Vec<Entry<T>>,
    entry: Entry<T>,
    name: impl Fn(&T) -> &String,
) -> Result<(), Error> {
    match entries.iter().find(|e| name(&e.value) == name(&entry.value)) {
        Some(existing) if existing.value == entry.value => Ok(()),
        Some(existing) => Err(Error::SchemaConflict {
            name: name(&entry.value).clone(),
            first: existing.origin.clone(),
            second: entry.origin,
        }),
        None => {
            entries.push(entry);
            Ok(())
        }
    }
}

fn caller_origin(location: &Location<'_>) -> String {
    format!("{}:{}:{}", location.file(), location.line(), location.column())
}

/// `sha256:<32 hex>` of the document with sorted keys and no identifier.
fn content_identifier(doc: &AgentSchemaVersion) -> String {
    let value = serde_json::to_value(doc).map(canonical).unwrap_or(Value::Null);
    let digest = Sha256::digest(value.to_string().as_bytes());
    let mut id = String::from("sha256:");
    for byte in digest.iter().take(16) {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// Recursively sorts object keys, whatever map ordering serde_json was built with.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect::<Map<String, Value>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object() -> Value {
        json!({"type": "object"})
    }
    fn string() -> Value {
        json!({"type": "string"})
    }

    // Two declarations of one name with different schemas (as two `#[span]` functions would
    // submit), plus an identical pair that must merge quietly.
    inventory::submit! {
        StaticSpanType { name: "unit:clash", params_schema: object, result_schema: None, title: None,
            description: None, template: None, data_risk: None, gen_ai_operation: None, file: "a.rs", line: 1, column: 1 }
    }
    inventory::submit! {
        StaticSpanType { name: "unit:clash", params_schema: string, result_schema: None, title: None,
            description: None, template: None, data_risk: None, gen_ai_operation: None, file: "b.rs", line: 2, column: 3 }
    }

    #[test]
    fn static_conflicts_name_both_declarations() {
        match SchemaRegistry::from_static() {
            Err(Error::SchemaConflict { name, first, second }) => {
                assert_eq!(name, "unit:clash");
                assert_eq!((first.as_str(), second.as_str()), ("a.rs:1:1", "b.rs:2:3"));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn the_identifier_depends_on_content_only() {
        let mut a = SchemaRegistry::new();
        a.register_type(SpanType::new("x:one", object())).unwrap();
        a.register_type(SpanType::new("x:two", string())).unwrap();
        let mut b = SchemaRegistry::new();
        b.register_type(SpanType::new("x:two", string())).unwrap();
        b.register_type(SpanType::new("x:one", object())).unwrap();
        let (da, db) = (a.to_agent_schema_version(None), b.to_agent_schema_version(None));
        assert_eq!(da, db, "registration order does not matter");
        b.register_quality_schema(QualityType::new("q", object())).unwrap();
        assert_ne!(da.external_identifier, b.to_agent_schema_version(None).external_identifier);
        assert_eq!(da.external_identifier.as_ref().map(String::len), Some("sha256:".len() + 32));
    }

    #[test]
    fn empty_sections_are_omitted_and_duplicates_rejected() {
        let mut registry = SchemaRegistry::new();
        assert!(registry.is_empty());
        registry.register_quality_schema(QualityType::new("q", object()).title("Q").template("{{ s }}")).unwrap();
        assert!(registry.register_quality_schema(QualityType::new("q", string())).is_err());
        let doc = registry.to_agent_schema_version(Some("fixed"));
        assert_eq!(doc.external_identifier.as_deref(), Some("fixed"));
        assert!(doc.span_type_schemas.is_none());
        assert_eq!(doc.quality_schemas.unwrap()[0].title.as_deref(), Some("Q"));
    }
}
