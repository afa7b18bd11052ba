// Shared by several examples, each of which uses only part of it.
#![allow(dead_code)]

//! A schema version document as a short outline: per span type its title, template and the
//! shape of its payload and result (`{name: string, kind: "a" | "b"}`), per quality schema the
//! same. Meant for reading at a glance; the JSON document is the reference.

use std::fmt::Write as _;

use prefactor_protocol::AgentSchemaVersion;
use serde_json::Value;

/// The outline of a whole document, one block per span type and quality schema.
pub fn outline_document(document: &AgentSchemaVersion) -> String {
    let mut out = format!("schema version {}\n", document.external_identifier.as_deref().unwrap_or("(none)"));
    for span_type in document.span_type_schemas.iter().flatten() {
        let _ = writeln!(out, "span type {}  \"{}\"", span_type.name, span_type.title.as_deref().unwrap_or(""));
        line(&mut out, "template", span_type.template.as_deref());
        line(&mut out, "payload", Some(&outline(&span_type.params_schema)));
        line(&mut out, "result", span_type.result_schema.as_ref().map(outline).as_deref());
    }
    for quality in document.quality_schemas.iter().flatten() {
        let _ = writeln!(out, "quality   {}  \"{}\"", quality.name, quality.title.as_deref().unwrap_or(""));
        line(&mut out, "template", quality.template.as_deref());
        line(&mut out, "payload", Some(&outline(&quality.schema)));
    }
    out
}

fn line(out: &mut String, label: &str, text: Option<&str>) {
    if let Some(text) = text {
        let _ = writeln!(out, "  {label:<9} {text}");
    }
}

/// The shape of one JSON schema (references into the same document resolved).
pub fn outline(schema: &Value) -> String {
    shape(schema, schema, 0)
}

fn shape(root: &Value, schema: &Value, depth: usize) -> String {
    let schema = resolve(root, schema, 0);
    if depth > 8 {
        return "…".to_owned();
    }
    if let Some(value) = schema.get("const") {
        return value.to_string();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.iter().map(Value::to_string).collect::<Vec<_>>().join(" | ");
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            return alternatives.iter().map(|alt| shape(root, alt, depth + 1)).collect::<Vec<_>>().join(" | ");
        }
    }
    match schema.get("type") {
        Some(Value::String(kind)) => typed(root, schema, kind, depth),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .map(|kind| typed(root, schema, kind, depth))
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_owned(),
    }
}

fn typed(root: &Value, schema: &Value, kind: &str, depth: usize) -> String {
    match kind {
        "object" => object(root, schema, depth),
        "array" => {
            format!("[{}]", schema.get("items").map_or_else(|| "any".to_owned(), |items| shape(root, items, depth + 1)))
        }
        "integer" | "number" => match (schema.get("minimum"), schema.get("maximum")) {
            (Some(min), Some(max)) => format!("{kind} {min}..={max}"),
            _ => kind.to_owned(),
        },
        other => other.to_owned(),
    }
}

/// `{name: type, optional?: type}`; a titled property shows its title: `ticket (A ticket): {…}`.
fn object(root: &Value, schema: &Value, depth: usize) -> String {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return "object".to_owned() };
    let required: Vec<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let fields: Vec<String> = properties
        .iter()
        .map(|(name, property)| {
            let optional = if required.contains(&name.as_str()) { "" } else { "?" };
            let title = resolve(root, property, 0).get("title").and_then(Value::as_str).map(|t| format!(" ({t})"));
            format!("{name}{optional}{}: {}", title.unwrap_or_default(), shape(root, property, depth + 1))
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// Follows `$ref: "#/..."` within the document (bounded, in case of a cycle).
fn resolve<'a>(root: &'a Value, schema: &'a Value, hops: usize) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| root.pointer(r.trim_start_matches('#'))) {
        Some(target) if hops < 16 => resolve(root, target, hops + 1),
        _ => schema,
    }
}
