//! `StaticSpanType`: span types declared at compile time (by `#[prefactor::span]`) and
//! collected through `inventory` when the client initializes.

use serde_json::Value;

use crate::schema::data_risk::DataRisk;

/// A span type declared in code, submitted with `inventory::submit!` and collected by
/// [`SchemaRegistry::from_static`](crate::SchemaRegistry::from_static).
///
/// Written by `#[prefactor::span]`'s expansion, not by hand: it is not part of the public API
/// (its fields change with what the macro declares).
///
/// Schemas are function pointers because `inventory` statics must be const: the JSON is built
/// once, at initialization. `file`/`line`/`column` locate the declaration so a conflict can
/// name both sides.
///
/// ```
/// use prefactor_runtime::{SchemaRegistry, StaticSpanType};
///
/// fn params() -> serde_json::Value {
///     serde_json::json!({"type": "object", "properties": {"q": {"type": "string"}}})
/// }
/// prefactor_runtime::inventory::submit! {
///     StaticSpanType {
///         name: "doc:search", params_schema: params, result_schema: None,
///         title: Some("Search"), description: None, template: Some("{{ q }}"), data_risk: None,
///         gen_ai_operation: None, file: file!(), line: line!(), column: column!(),
///     }
/// }
///
/// let registry = SchemaRegistry::from_static().unwrap();
/// assert!(registry.contains_type("doc:search"));
/// ```
#[derive(Debug)]
pub struct StaticSpanType {
    /// The span type name, e.g. `agent:llm`.
    pub name: &'static str,
    /// Builds the JSON Schema of the span payload.
    pub params_schema: fn() -> Value,
    /// Builds the JSON Schema of the result payload.
    pub result_schema: Option<fn() -> Value>,
    /// Display title.
    pub title: Option<&'static str>,
    /// Description.
    pub description: Option<&'static str>,
    /// Liquid summary template.
    pub template: Option<&'static str>,
    /// Builds the span type's data risk.
    pub data_risk: Option<fn() -> DataRisk>,
    /// The OpenTelemetry GenAI operation the span type declares (`#[span(kind = "chat")]`),
    /// checked by the macro; the OTel export names and types its spans after it.
    pub gen_ai_operation: Option<&'static str>,
    /// Source file of the declaration.
    pub file: &'static str,
    /// Line of the declaration.
    pub line: u32,
    /// Column of the declaration.
    pub column: u32,
}

impl StaticSpanType {
    /// `file:line:column` of the declaration.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

inventory::collect!(StaticSpanType);
