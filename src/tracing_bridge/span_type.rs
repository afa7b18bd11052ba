//! The span type of `tracing` spans no mapping names: declared once, at compile time, so every
//! agent that links the bridge registers it with its schema version (the API rejects span
//! types a version does not declare).

use serde_json::{Value, json};

/// The span type of a bridged `tracing` span that no [`map_name`] / [`map_target`] rule names.
/// Its payload is `{"name": span name, "target": target, "fields": {field: value, ...}}`: one
/// type holds spans of every kind, so the payload keeps which span it was.
///
/// [`map_name`]: crate::tracing_bridge::PrefactorLayer::map_name
/// [`map_target`]: crate::tracing_bridge::PrefactorLayer::map_target
///
/// ```
/// assert_eq!(prefactor::tracing_bridge::TRACING_SPAN_TYPE, "tracing:span");
/// ```
pub const TRACING_SPAN_TYPE: &str = "tracing:span";

fn params_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "The tracing span's name" },
            "target": { "type": "string", "description": "The tracing span's target (usually its module path)" },
            "fields": { "type": "object", "description": "The span's fields when it opened" }
        },
        "required": ["name", "target", "fields"]
    })
}

fn result_schema() -> Value {
    // Values recorded after the span opened, the `return` of `#[instrument(ret)]`, and
    // `error` of `#[instrument(err)]`: whatever the instrumented code records.
    json!({ "type": "object" })
}

prefactor_runtime::inventory::submit! {
    prefactor_runtime::StaticSpanType {
        name: TRACING_SPAN_TYPE,
        params_schema,
        result_schema: Some(result_schema),
        title: Some("tracing span"),
        description: Some("A `tracing` span recorded by prefactor's tracing bridge"),
        template: Some("{{ target }} {{ name }}"),
        data_risk: None,
        gen_ai_operation: None,
        file: file!(),
        line: line!(),
        column: column!(),
    }
}
