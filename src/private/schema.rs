//! JSON Schemas of span payloads and results, built at client start from the
//! `fn() -> Value` pointers the `#[span]` macro registers.
//!
//! Schemas use JSON Schema 2020-12 in schemars' *serialize* contract (they describe what is
//! sent), inline every subschema (only recursive types keep a `$defs` entry at the root) and
//! never contain `additionalProperties: false` (the API notes, A10.1, forbid it).

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};
use std::marker::PhantomData;

/// Builds the schema of one value inside a generator.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// Names a type for schema lookup (see [`SchemaViaJsonSchema`] / [`SchemaViaFallback`]).
pub struct SchemaOf<T: ?Sized>(PhantomData<T>);

impl<T: ?Sized> SchemaOf<T> {
    /// A probe for `T`.
    #[must_use]
    pub const fn new() -> Self {
        SchemaOf(PhantomData)
    }
}

impl<T: ?Sized> Default for SchemaOf<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Preferred by method resolution (`(&SchemaOf::<T>::new()).schema(g)`) when `T: JsonSchema`.
pub trait SchemaViaJsonSchema {
    /// `T`'s own schema.
    fn schema(&self, generator: &mut SchemaGenerator) -> Schema;
}

impl<T: ?Sized + JsonSchema> SchemaViaJsonSchema for SchemaOf<T> {
    fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

/// The fallback (one auto-ref further) for types without `JsonSchema`: accepts anything.
pub trait SchemaViaFallback {
    /// The permissive schema `{}`.
    fn schema(&self, generator: &mut SchemaGenerator) -> Schema;
}

impl<T: ?Sized> SchemaViaFallback for &SchemaOf<T> {
    fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        permissive_schema(generator)
    }
}

/// `{}`: any value (generic, `impl Trait`, `Self`-typed or pattern-bound values, fields).
pub fn permissive_schema(_: &mut SchemaGenerator) -> Schema {
    Schema::default()
}

fn generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12().for_serialize();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    settings.into_generator()
}

/// The object schema of a span payload: one required property per captured argument/field.
pub struct ParamsSchema {
    generator: SchemaGenerator,
    properties: Map<String, Value>,
    required: Vec<Value>,
}

impl Default for ParamsSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl ParamsSchema {
    /// An object with no properties yet.
    #[must_use]
    pub fn new() -> Self {
        ParamsSchema { generator: generator(), properties: Map::new(), required: Vec::new() }
    }

    /// Adds a required property.
    pub fn property(&mut self, name: &str, schema: SchemaFn) {
        let schema = schema(&mut self.generator);
        self.properties.insert(name.to_owned(), schema.to_value());
        self.required.push(Value::String(name.to_owned()));
    }

    /// Lets the value at `path` under property `name` (object keys as `Some`, array elements
    /// as `None`) also be `"[REDACTED]"`: the schema there becomes
    /// `{"anyOf": [<its schema>, {"const": "[REDACTED]"}]}`, keeping what it documents.
    pub fn redacted_at(&mut self, name: &str, path: &[Option<&str>]) {
        if let Some(property) = self.properties.get_mut(name) {
            allow_redacted_at(property, path);
        }
    }

    /// The finished schema document.
    #[must_use]
    pub fn finish(mut self) -> Value {
        let schema = json!({ "type": "object", "properties": self.properties, "required": self.required });
        finish_document(schema, &mut self.generator)
    }
}

/// The schema of one type, as `#[span]` makes the schemas of arguments (see
/// `prefactor::schema_for`).
#[must_use]
pub fn schema_of<T: ?Sized + JsonSchema>() -> Value {
    let mut generator = generator();
    let schema = generator.root_schema_for::<T>().to_value();
    finish_document(schema, &mut generator)
}

/// The schema of a `redact(argument)` property: the string `"[REDACTED]"`.
pub fn redacted_schema(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({ "const": prefactor_runtime::REDACTED })
}

/// Walks `schema` along `path` (through `anyOf`/`oneOf`/`allOf` branches, `properties`,
/// `items`, `prefixItems` and `additionalProperties`) and lets each schema found accept
/// `"[REDACTED]"`.
fn allow_redacted_at(schema: &mut Value, path: &[Option<&str>]) {
    if !schema.is_object() {
        // `true` (or a missing schema) accepts anything already.
        return;
    }
    let Some((step, rest)) = path.split_first() else {
        let inner = std::mem::take(schema);
        *schema = json!({ "anyOf": [inner, { "const": prefactor_runtime::REDACTED }] });
        return;
    };
    let Value::Object(object) = schema else { return };
    for branches in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = object.get_mut(branches) {
            branches.iter_mut().for_each(|branch| allow_redacted_at(branch, path));
        }
    }
    match step {
        Some(key) => {
            if let Some(Value::Object(properties)) = object.get_mut("properties")
                && let Some(property) = properties.get_mut(*key)
            {
                allow_redacted_at(property, rest);
            }
        }
        None => {
            for each in ["items", "additionalProperties"] {
                if let Some(inner) = object.get_mut(each) {
                    allow_redacted_at(inner, rest);
                }
            }
            if let Some(Value::Array(items)) = object.get_mut("prefixItems") {
                items.iter_mut().for_each(|item| allow_redacted_at(item, rest));
            }
        }
    }
}

/// Result schema for a non-`Result` return value (object as is, else `{"output": value}`).
#[must_use]
pub fn value_result_schema(ok: SchemaFn) -> Value {
    let mut generator = generator();
    let ok = ok(&mut generator).to_value();
    let schema = one_of_forms(ok_forms(ok));
    finish_document(schema, &mut generator)
}

/// Result schema for a `Result<T, E>` return value: the `Ok` forms (none for `()` or with
/// `skip_ret`) or the error form `{"error": {"message", "type"}}`.
#[must_use]
pub fn result_result_schema(ok: Option<SchemaFn>) -> Value {
    let mut generator = generator();
    let mut forms = ok.map(|ok| ok_forms(ok(&mut generator).to_value())).unwrap_or_default();
    forms.push(error_form());
    let schema = one_of_forms(forms);
    finish_document(schema, &mut generator)
}

/// Result schema of a streaming span: the stream's counts, the error of a failing item, and
/// the reduced result's keys (not constrained: its type is the `reduce` function's, which the
/// macro cannot name).
#[must_use]
pub fn stream_result_schema() -> Value {
    let error = error_form()["properties"]["error"].clone();
    json!({
        "type": "object",
        "properties": {
            "stream": {
                "type": "object",
                "properties": {
                    "items": { "type": "integer", "minimum": 0 },
                    "time_to_first_item_ms": { "type": "number", "minimum": 0 }
                },
                "required": ["items"]
            },
            "error": error
        },
        "required": ["stream"]
    })
}

/// The shapes a return value with schema `ok` can take in the result payload.
fn ok_forms(ok: Value) -> Vec<Value> {
    let wrapped = json!({ "type": "object", "properties": { "output": ok.clone() }, "required": ["output"] });
    match object_shape(&ok) {
        ObjectShape::Always => vec![ok],
        ObjectShape::Never => vec![wrapped],
        ObjectShape::Maybe => vec![ok, wrapped],
    }
}

fn error_form() -> Value {
    json!({
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": { "message": { "type": "string" }, "type": { "type": "string" } },
                "required": ["message", "type"]
            }
        },
        "required": ["error"]
    })
}

fn one_of_forms(mut forms: Vec<Value>) -> Value {
    if forms.len() == 1 {
        return forms.remove(0);
    }
    json!({ "anyOf": forms })
}

enum ObjectShape {
    Always,
    Never,
    Maybe,
}

/// Whether values valid against `schema` serialize to JSON objects, judged from `type`.
fn object_shape(schema: &Value) -> ObjectShape {
    let only_combinators = schema.get("anyOf").or_else(|| schema.get("oneOf")).is_some();
    match schema.get("type") {
        Some(Value::String(kind)) if kind == "object" && !only_combinators => ObjectShape::Always,
        Some(Value::String(_)) => ObjectShape::Never,
        Some(Value::Array(kinds)) if !kinds.iter().any(|kind| kind == "object") => ObjectShape::Never,
        _ if schema.get("const").is_some_and(|value| !value.is_object()) => ObjectShape::Never,
        _ => ObjectShape::Maybe,
    }
}

/// Adds the definitions of recursive types and removes `additionalProperties: false`.
fn finish_document(mut schema: Value, generator: &mut SchemaGenerator) -> Value {
    let definitions = generator.take_definitions(true);
    if !definitions.is_empty()
        && let Value::Object(object) = &mut schema
    {
        object.insert("$defs".to_owned(), Value::Object(definitions));
    }
    strip_closed_objects(&mut schema);
    schema
}

fn strip_closed_objects(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("additionalProperties") == Some(&Value::Bool(false)) {
                object.remove("additionalProperties");
            }
            object.values_mut().for_each(strip_closed_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_closed_objects),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Closed {
        a: u8,
    }

    fn closed(generator: &mut SchemaGenerator) -> Schema {
        SchemaViaJsonSchema::schema(&SchemaOf::<Closed>::new(), generator)
    }

    fn text(generator: &mut SchemaGenerator) -> Schema {
        SchemaViaJsonSchema::schema(&SchemaOf::<String>::new(), generator)
    }

    #[test]
    fn params_are_required_properties_without_closed_objects() {
        let mut params = ParamsSchema::new();
        params.property("c", closed);
        params.property("t", text);
        let schema = params.finish();
        assert_eq!(schema["required"], json!(["c", "t"]));
        assert_eq!(schema["properties"]["t"], json!({"type": "string"}));
        assert!(!schema.to_string().contains("additionalProperties"), "{schema}");
    }

    #[test]
    fn non_object_results_are_wrapped_as_output() {
        assert_eq!(value_result_schema(text)["properties"]["output"], json!({"type": "string"}));
        assert_eq!(value_result_schema(closed)["properties"]["a"]["type"], json!("integer"));
    }
}
