//! Span and quality summaries: Liquid templates (the `liquid` crate) rendered server-side.
//!
//! Render context = the span's `payload` merged with its `result_payload` (result wins on a
//! key collision), as in the reference backend. Templates are parsed once per schema version;
//! a template that does not parse, or fails to render (e.g. it names a variable the payload
//! does not have), yields no summary instead of an error, because a summary is decoration and
//! must never make an ingestion request fail.

use serde_json::{Map, Value};

use crate::liquid_context::LaxValue;

/// A parsed template, ready to render.
pub struct SummaryTemplate {
    template: liquid::Template,
}

impl std::fmt::Debug for SummaryTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SummaryTemplate")
    }
}

impl SummaryTemplate {
    /// Parses `source`; `None` when it is not valid Liquid.
    ///
    /// ```
    /// use prefactor_server::template::SummaryTemplate;
    /// use serde_json::json;
    /// let template = SummaryTemplate::parse("{{ model }}: {{ tokens }} tokens").unwrap();
    /// let summary = template.render(&json!({"model": "m1"}), Some(&json!({"tokens": 42})));
    /// assert_eq!(summary.as_deref(), Some("m1: 42 tokens"));
    /// assert!(SummaryTemplate::parse("{% if %}").is_none());
    /// ```
    pub fn parse(source: &str) -> Option<SummaryTemplate> {
        let parser = liquid::ParserBuilder::with_stdlib().build().ok()?;
        let template = parser.parse(source).ok()?;
        Some(SummaryTemplate { template })
    }

    /// Renders with `payload` merged with `result` (result wins); `None` on a render error.
    pub fn render(&self, payload: &Value, result: Option<&Value>) -> Option<String> {
        let context = LaxValue::from_json(&Value::Object(merged_context(payload, result)));
        self.template.render(&context).ok()
    }
}

fn merged_context(payload: &Value, result: Option<&Value>) -> Map<String, Value> {
    let mut context = match payload {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if let Some(Value::Object(result)) = result {
        for (key, value) in result {
            context.insert(key.clone(), value.clone());
        }
    }
    context
}
