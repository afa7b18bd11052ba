//! `SpanType` and `QualityType`: the declarations a [`SchemaRegistry`](crate::SchemaRegistry)
//! holds, built with chained setters instead of positional `Option`s.

use prefactor_protocol::{QualitySchema, SpanTypeSchema};
use serde_json::Value;

use crate::schema::data_risk::DataRisk;

/// A span type: its name, the JSON Schema of its payload and, optionally, of its result, how
/// the platform shows it, and its data risk. Register it with
/// [`SchemaRegistry::register_type`](crate::SchemaRegistry::register_type).
///
/// ```
/// use prefactor_runtime::{DataRisk, Permission, SpanType};
/// use serde_json::json;
///
/// let mut risk = DataRisk::default();
/// risk.action_profile.external_communication = Permission::Allowed;
/// let llm = SpanType::new("agent:llm", json!({"type": "object"}))
///     .result_schema(json!({"type": "object"}))
///     .title("LLM call")
///     .template("{{ model }}")
///     .data_risk(risk);
/// assert_eq!(llm.name(), "agent:llm");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SpanType {
    schema: SpanTypeSchema,
}

impl SpanType {
    /// A span type named `name` (conventionally `namespace:kind`) whose payloads follow
    /// `params_schema`.
    pub fn new(name: impl Into<String>, params_schema: Value) -> Self {
        SpanType {
            schema: SpanTypeSchema {
                name: name.into(),
                params_schema,
                result_schema: None,
                title: None,
                description: None,
                template: None,
                result_template: None,
                data_risk: None,
            },
        }
    }

    /// The JSON Schema of the result payload.
    pub fn result_schema(mut self, schema: Value) -> Self {
        self.schema.result_schema = Some(schema);
        self
    }

    /// The display name (the platform shows the name when there is none).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.schema.title = Some(title.into());
        self
    }

    /// A description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.schema.description = Some(description.into());
        self
    }

    /// The Liquid template of a span's one-line summary, e.g. `{{ model }}: {{ prompt }}`.
    pub fn template(mut self, template: impl Into<String>) -> Self {
        self.schema.template = Some(template.into());
        self
    }

    /// What the span type may do and which data it carries.
    pub fn data_risk(mut self, risk: DataRisk) -> Self {
        self.schema.data_risk = Some(risk.to_value());
        self
    }

    /// The span type's name.
    pub fn name(&self) -> &str {
        &self.schema.name
    }

    pub(crate) fn into_schema(self) -> SpanTypeSchema {
        self.schema
    }
}

/// A quality schema: what the payloads of
/// [`record_quality`](crate::AgentInstanceHandle::record_quality) under its name look like.
/// Register it with
/// [`SchemaRegistry::register_quality_schema`](crate::SchemaRegistry::register_quality_schema).
///
/// ```
/// use prefactor_runtime::QualityType;
/// use serde_json::json;
///
/// let accuracy = QualityType::new("accuracy", json!({"type": "object"})).title("Accuracy").template("{{ score }}");
/// assert_eq!(accuracy.name(), "accuracy");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QualityType {
    schema: QualitySchema,
}

impl QualityType {
    /// A quality schema named `name` whose payloads follow `schema`.
    pub fn new(name: impl Into<String>, schema: Value) -> Self {
        QualityType {
            schema: QualitySchema {
                name: name.into(),
                schema,
                title: None,
                description: None,
                template: None,
                data_risk: None,
            },
        }
    }

    /// The display name (the platform shows the name when there is none).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.schema.title = Some(title.into());
        self
    }

    /// A description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.schema.description = Some(description.into());
        self
    }

    /// The Liquid template of the quality summary.
    pub fn template(mut self, template: impl Into<String>) -> Self {
        self.schema.template = Some(template.into());
        self
    }

    /// Which data the quality payloads carry.
    pub fn data_risk(mut self, risk: DataRisk) -> Self {
        self.schema.data_risk = Some(risk.to_value());
        self
    }

    /// The quality schema's name.
    pub fn name(&self) -> &str {
        &self.schema.name
    }

    pub(crate) fn into_schema(self) -> QualitySchema {
        self.schema
    }
}
