//! Agent spans: the resource (A9.2) and its create/finish requests (A8.8, A8.9).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::status::{AgentStatus, FinishStatus};

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// One step of an agent instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpan {
    /// Always `"agent_span"`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Span id.
    pub id: String,
    /// Instance the span belongs to.
    pub agent_instance_id: String,
    /// Span type name, e.g. `agent:llm`.
    pub schema_name: String,
    /// Current status.
    pub status: AgentStatus,
    /// The span's inputs.
    #[serde(default = "empty_object")]
    pub payload: Value,
    /// Owning account.
    #[serde(default)]
    pub account_id: Option<String>,
    /// Agent.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Parent span (a server id).
    #[serde(default)]
    pub parent_span_id: Option<String>,
    /// Display name of the span type.
    #[serde(default)]
    pub schema_title: Option<String>,
    /// Rendered template.
    #[serde(default)]
    pub summary: Option<String>,
    /// The span's outputs.
    #[serde(default)]
    pub result_payload: Option<Value>,
    /// Start time.
    #[serde(default)]
    pub started_at: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub inserted_at: Option<String>,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Finish time.
    #[serde(default)]
    pub finished_at: Option<String>,
}

/// Body of `POST /api/v1/agent_spans` (wrapped in `details`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateSpanRequest {
    /// The span.
    pub details: CreateSpanDetails,
    /// Idempotency key (TypeScript SDK placement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// `details` of a span create request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateSpanDetails {
    /// Instance the span belongs to.
    pub agent_instance_id: String,
    /// Span type name.
    pub schema_name: String,
    /// `active`, `pending`, or a terminal status for spans created already finished.
    pub status: AgentStatus,
    /// The span's inputs.
    #[serde(default = "empty_object")]
    pub payload: Value,
    /// Outputs, for spans created already finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_payload: Option<Value>,
    /// Client-chosen span id (a PFID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Parent span id; serialized as null for a root span.
    #[serde(default)]
    pub parent_span_id: Option<String>,
    /// Start time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Finish time, for spans created already finished; serialized as null for open spans.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Asks the backend to encode sensitive content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_encoding: Option<bool>,
    /// Idempotency key (Python SDK placement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Body of `POST /api/v1/agent_spans/{id}/finish`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FinishSpanRequest {
    /// Final status; `complete` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FinishStatus>,
    /// Outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_payload: Option<Value>,
    /// Finish time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Asks the backend to encode sensitive content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_encoding: Option<bool>,
}
