//! Compiled schema versions: per span type its title, JSON Schema validators (the `jsonschema`
//! crate) and summary template; per quality schema its validator and template.
//!
//! Compiling a JSON Schema is far more expensive than validating with it, so each schema
//! version is compiled once and cached by id ([`SchemaCache`]); schema versions are immutable
//! once stored, so the cache never needs invalidation.

// foldhash: these maps are read several times per span; SipHash cost more than the lookup.
use foldhash::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use jsonschema::Validator;
use prefactor_protocol::AgentSchemaVersion;
use serde_json::Value;

use crate::error::ApiError;
use crate::template::{SummaryTemplate, TemplateLimits, check_shape};

/// One span type of a schema version.
#[derive(Debug)]
pub struct CompiledSpanType {
    /// `title`, defaulting to the span type name.
    pub title: String,
    /// Validates `payload` (None when the span type has no params schema).
    pub params: Option<Validator>,
    /// Validates `result_payload`.
    pub result: Option<Validator>,
    /// Renders `summary`.
    pub template: Option<SummaryTemplate>,
}

/// One quality schema of a schema version.
#[derive(Debug)]
pub struct CompiledQuality {
    /// Validates the quality payload.
    pub schema: Option<Validator>,
    /// Renders `quality_summaries[name]`.
    pub template: Option<SummaryTemplate>,
}

/// A schema version ready for validation and rendering.
#[derive(Debug, Default)]
pub struct CompiledSchemaVersion {
    /// Span types by name.
    pub span_types: HashMap<String, CompiledSpanType>,
    /// Quality schemas by name.
    pub quality: HashMap<String, CompiledQuality>,
    /// The legacy single quality schema (`quality_schema`).
    pub single_quality: Option<CompiledQuality>,
}

impl CompiledSchemaVersion {
    /// True when the version declares span types, which makes unknown span names an error.
    pub fn declares_span_types(&self) -> bool {
        !self.span_types.is_empty()
    }

    /// Compiles a document. With `with_validators == false` only titles and templates are kept.
    /// A template that does not parse or is over `limits` gives no summaries (a register is
    /// refused such templates by [`check_templates`]; a stored one renders nothing).
    /// Errors name the failing place in the document, e.g.
    /// `agent_schema_version.span_type_schemas[0].params_schema`.
    ///
    /// ```
    /// use prefactor_server::validation::CompiledSchemaVersion;
    /// let document = serde_json::from_value(serde_json::json!({
    ///     "external_identifier": "v1",
    ///     "span_type_schemas": [{"name": "agent:llm", "params_schema": {"type": "object"}}]
    /// })).unwrap();
    /// let limits = prefactor_server::template::TemplateLimits::default();
    /// let compiled = CompiledSchemaVersion::compile(&document, true, &limits).unwrap();
    /// assert_eq!(compiled.span_types["agent:llm"].title, "agent:llm");
    /// ```
    pub fn compile(
        document: &AgentSchemaVersion,
        with_validators: bool,
        limits: &TemplateLimits,
    ) -> Result<Self, ApiError> {
        let mut compiled = CompiledSchemaVersion::default();
        let compile = |schema: Option<&Value>, path: String| -> Result<Option<Validator>, ApiError> {
            match schema {
                Some(schema) if with_validators => compile_validator(schema, &path).map(Some),
                _ => Ok(None),
            }
        };
        if let Some(types) = document.span_type_schemas.as_ref().filter(|t| !t.is_empty()) {
            for (index, span_type) in types.iter().enumerate() {
                let at = format!("agent_schema_version.span_type_schemas[{index}]");
                if compiled.span_types.contains_key(&span_type.name) {
                    return Err(ApiError::validation(
                        &format!("{at}.name"),
                        format!("span type '{}' is declared twice", span_type.name),
                    ));
                }
                let entry = CompiledSpanType {
                    title: span_type.title.clone().unwrap_or_else(|| span_type.name.clone()),
                    params: compile(Some(&span_type.params_schema), format!("{at}.params_schema"))?,
                    result: compile(span_type.result_schema.as_ref(), format!("{at}.result_schema"))?,
                    template: span_type
                        .template
                        .as_deref()
                        .and_then(|source| SummaryTemplate::parse(source, limits).ok()),
                };
                compiled.span_types.insert(span_type.name.clone(), entry);
            }
        } else if let Some(params) = &document.span_schemas {
            // Legacy flat maps, used only when the rich form is absent (A10).
            let results = document.span_result_schemas.as_ref();
            for (name, schema) in params {
                let result = results.and_then(|r| r.get(name));
                let entry = CompiledSpanType {
                    title: name.clone(),
                    params: compile(Some(schema), format!("agent_schema_version.span_schemas.{name}"))?,
                    result: compile(result, format!("agent_schema_version.span_result_schemas.{name}"))?,
                    template: None,
                };
                compiled.span_types.insert(name.clone(), entry);
            }
        }
        for (index, quality) in document.quality_schemas.iter().flatten().enumerate() {
            let at = format!("agent_schema_version.quality_schemas[{index}]");
            let entry = CompiledQuality {
                schema: compile(Some(&quality.schema), format!("{at}.schema"))?,
                template: quality.template.as_deref().and_then(|source| SummaryTemplate::parse(source, limits).ok()),
            };
            compiled.quality.insert(quality.name.clone(), entry);
        }
        if let Some(single) = &document.quality_schema {
            compiled.single_quality = Some(CompiledQuality {
                schema: compile(single.schema.as_ref(), "agent_schema_version.quality_schema.schema".to_string())?,
                template: single.template.as_deref().and_then(|source| SummaryTemplate::parse(source, limits).ok()),
            });
        }
        Ok(compiled)
    }
}

/// Checks the size and nesting of every template of a register's document: a 422 naming the
/// span type (or quality schema) whose template is over a limit.
///
/// ```
/// use prefactor_server::template::TemplateLimits;
/// use prefactor_server::validation::check_templates;
/// let document = serde_json::from_value(serde_json::json!({
///     "external_identifier": "v1",
///     "span_type_schemas": [{"name": "agent:llm", "params_schema": {}, "template": "{% if a %}".repeat(100)}]
/// })).unwrap();
/// let error = check_templates(&document, &TemplateLimits::default()).unwrap_err();
/// assert!(error.message.contains("agent:llm"));
/// ```
pub fn check_templates(document: &AgentSchemaVersion, limits: &TemplateLimits) -> Result<(), ApiError> {
    let span_types = document.span_type_schemas.iter().flatten().enumerate().map(|(index, span_type)| {
        let path = format!("agent_schema_version.span_type_schemas[{index}].template");
        (path, format!("span type '{}'", span_type.name), span_type.template.as_deref())
    });
    let qualities = document.quality_schemas.iter().flatten().enumerate().map(|(index, quality)| {
        let path = format!("agent_schema_version.quality_schemas[{index}].template");
        (path, format!("quality schema '{}'", quality.name), quality.template.as_deref())
    });
    for (path, owner, template) in span_types.chain(qualities) {
        if let Some(source) = template
            && let Err(problem) = check_shape(source, limits)
        {
            return Err(ApiError::validation(&path, format!("the template of {owner} is refused: {problem}")));
        }
    }
    Ok(())
}

fn compile_validator(schema: &Value, path: &str) -> Result<Validator, ApiError> {
    jsonschema::validator_for(schema)
        .map_err(|error| ApiError::validation(path, format!("is not a valid JSON Schema: {error}")))
}

/// Checks `instance` against `validator`; errors are keyed by `field` plus the JSON pointer
/// of the failing value, e.g. `payload/model`.
///
/// ```
/// use prefactor_server::validation::check;
/// use serde_json::json;
/// let validator = jsonschema::validator_for(&json!({"properties": {"model": {"type": "string"}}})).unwrap();
/// let error = check(&validator, &json!({"model": 3}), "payload").unwrap_err();
/// assert!(error.errors.unwrap().contains_key("payload/model"));
/// ```
pub fn check(validator: &Validator, instance: &Value, field: &str) -> Result<(), ApiError> {
    let items: Vec<(String, String)> = validator
        .iter_errors(instance)
        .map(|error| {
            let pointer = error.instance_path().to_string();
            (format!("{field}{pointer}"), error.to_string())
        })
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    let summary = format!(
        "{field} does not match its schema: {}",
        items.iter().map(|(path, message)| format!("{path}: {message}")).collect::<Vec<_>>().join("; ")
    );
    Err(ApiError::validation_map(summary, items))
}

/// Documents of register requests that compiled before are remembered (up to this many).
const CHECKED_KEPT: usize = 16;

/// Compiled schema versions by id, the least recently used dropped past a capacity.
#[derive(Clone)]
pub struct SchemaCache {
    entries: Arc<Mutex<LruCache<String, Arc<CompiledSchemaVersion>>>>,
    limits: TemplateLimits,
    /// Register documents known to compile, most recent last. Every run of an agent sends the
    /// same document; comparing it with a known one costs a few microseconds, compiling its
    /// JSON Schemas again a few hundred.
    checked: Arc<Mutex<Vec<Arc<AgentSchemaVersion>>>>,
}

impl Default for SchemaCache {
    fn default() -> Self {
        SchemaCache::new(DEFAULT_SCHEMA_CACHE_ENTRIES, TemplateLimits::default())
    }
}

/// Default number of compiled schema versions kept.
pub const DEFAULT_SCHEMA_CACHE_ENTRIES: usize = 256;

impl SchemaCache {
    /// A cache keeping at most `capacity` compiled versions (at least one), whose templates
    /// work within `limits`.
    pub fn new(capacity: usize, limits: TemplateLimits) -> SchemaCache {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        SchemaCache { entries: Arc::new(Mutex::new(LruCache::new(capacity))), limits, checked: Arc::default() }
    }

    /// The template limits of this server.
    pub fn limits(&self) -> &TemplateLimits {
        &self.limits
    }

    /// Checks that a register's `document` compiles (a 422 naming the bad schema otherwise),
    /// unless an equal document did before.
    pub fn check_document(&self, document: &AgentSchemaVersion, with_validators: bool) -> Result<(), ApiError> {
        let known = |checked: &Vec<Arc<AgentSchemaVersion>>| checked.iter().rev().any(|known| **known == *document);
        if self.checked.lock().is_ok_and(|checked| known(&checked)) {
            return Ok(());
        }
        check_templates(document, &self.limits)?;
        CompiledSchemaVersion::compile(document, with_validators, &self.limits)?;
        if let Ok(mut checked) = self.checked.lock()
            && !known(&checked)
        {
            if checked.len() == CHECKED_KEPT {
                checked.remove(0);
            }
            checked.push(Arc::new(document.clone()));
        }
        Ok(())
    }

    /// The compiled version `id`, compiling `load()`'s document on a cache miss.
    pub fn get_or_compile(
        &self,
        id: &str,
        with_validators: bool,
        load: impl FnOnce() -> Result<AgentSchemaVersion, ApiError>,
    ) -> Result<Arc<CompiledSchemaVersion>, ApiError> {
        if let Some(found) = self.entries.lock().ok().and_then(|mut e| e.get(id).cloned()) {
            return Ok(found);
        }
        let compiled = Arc::new(CompiledSchemaVersion::compile(&load()?, with_validators, &self.limits)?);
        if let Ok(mut entries) = self.entries.lock() {
            entries.put(id.to_string(), compiled.clone());
        }
        Ok(compiled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document(params_schema: Value) -> AgentSchemaVersion {
        serde_json::from_value(json!({
            "external_identifier": "v1",
            "span_type_schemas": [{"name": "agent:llm", "params_schema": params_schema}]
        }))
        .expect("a schema document")
    }

    #[test]
    fn a_known_document_is_not_compiled_again_and_a_bad_one_is_always_refused() {
        let cache = SchemaCache::default();
        let good = document(json!({"type": "object"}));
        let bad = document(json!({"type": 12}));
        assert!(cache.check_document(&good, true).is_ok());
        assert!(cache.check_document(&good, true).is_ok());
        assert_eq!(cache.checked.lock().unwrap().len(), 1, "remembered once");
        for _ in 0..2 {
            let error = cache.check_document(&bad, true).unwrap_err();
            assert!(error.errors.unwrap().contains_key("agent_schema_version.span_type_schemas[0].params_schema"));
        }
        for n in 0..(CHECKED_KEPT + 4) {
            cache.check_document(&document(json!({"type": "object", "maxProperties": n})), true).unwrap();
        }
        assert_eq!(cache.checked.lock().unwrap().len(), CHECKED_KEPT, "bounded");
    }
}
