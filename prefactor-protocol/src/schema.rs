//! The `agent_schema_version` document (A10).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Span and quality schemas of an agent version.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentSchemaVersion {
    /// The version's identity within the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_identifier: Option<String>,
    /// Span types (the rich form; preferred over the two legacy maps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_type_schemas: Option<Vec<SpanTypeSchema>>,
    /// Legacy: span type name → params schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_schemas: Option<Map<String, Value>>,
    /// Legacy: span type name → result schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_result_schemas: Option<Map<String, Value>>,
    /// Quality schemas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_schemas: Option<Vec<QualitySchema>>,
    /// Legacy: the one quality schema of `PUT /api/v1/agent_instance/{id}` payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_schema: Option<SingleQualitySchema>,
}

/// The legacy single quality schema (`agent_schema_version.quality_schema`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SingleQualitySchema {
    /// JSON Schema of the quality payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Liquid template rendered into `quality_summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// One span type: its name, schemas and display template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanTypeSchema {
    /// Span type name, conventionally `namespace:kind[:sub]`.
    pub name: String,
    /// JSON Schema of the span `payload`.
    pub params_schema: Value,
    /// JSON Schema of the span `result_payload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_schema: Option<Value>,
    /// Display name (defaults to `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Liquid template rendered into the span's `summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Accepted, not rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_template: Option<String>,
    /// Data-risk description (A10.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_risk: Option<Value>,
}

/// A quality schema: what `record_quality` payloads look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualitySchema {
    /// Name, unique within the version.
    pub name: String,
    /// JSON Schema of the quality payload.
    pub schema: Value,
    /// Display name (defaults to `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Liquid template rendered into `quality_summaries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Data-risk description (A10.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_risk: Option<Value>,
}
