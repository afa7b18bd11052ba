//! Agent instances: the resource (A9.1) and its lifecycle requests (A8.2–A8.7).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schema::AgentSchemaVersion;
use crate::status::{AgentStatus, FinishStatus, InstancePurpose};

/// One run of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInstance {
    /// Always `"agent_instance"`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Instance id.
    pub id: String,
    /// Owning account.
    pub account_id: String,
    /// Agent this is a run of.
    pub agent_id: String,
    /// Code version.
    pub agent_version_id: String,
    /// Environment.
    pub environment_id: String,
    /// Deployment.
    pub agent_deployment_id: String,
    /// Current status.
    pub status: AgentStatus,
    /// Why it runs.
    #[serde(default)]
    pub purpose: Option<InstancePurpose>,
    /// Creation time.
    pub inserted_at: String,
    /// Last change.
    pub updated_at: String,
    /// Start time.
    #[serde(default)]
    pub started_at: Option<String>,
    /// Finish time.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Operator's reason, when terminated.
    #[serde(default)]
    pub termination_reason: Option<String>,
    /// Span counts by status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_counts: Option<SpanCounts>,
    /// Recorded quality payloads by quality schema name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_payloads: Option<Map<String, Value>>,
    /// Rendered quality templates by quality schema name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_summaries: Option<BTreeMap<String, String>>,
    /// The legacy single quality payload (`PUT /api/v1/agent_instance/{id}` replaces it).
    #[serde(default)]
    pub quality_payload: Option<Value>,
    /// The legacy single quality payload's rendered template.
    #[serde(default)]
    pub quality_summary: Option<String>,
    /// The run's id in an external system (unique per agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_identifier: Option<String>,
}

/// Span counts of an instance; `finished` = complete + failed + cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SpanCounts {
    pub total: u64,
    pub pending: u64,
    pub active: u64,
    pub complete: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub finished: u64,
}

/// The `agent_version` object of a register request (A10.6).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentVersionSpec {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The version's identity within the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_identifier: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the code runs (prefactor-core 0.5.2+). Read leniently: a value of another shape
    /// reads as `None` rather than failing the request (every key is optional upstream).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_environment")]
    pub runtime_environment: Option<RuntimeEnvironment>,
}

/// `agent_version.runtime_environment`: the SDKs, OS and language runtime of a run, as
/// prefactor-core 0.5.3 sends them (`{"agent_sdk": [..], "os": "linux", "prefactor_sdk":
/// ["prefactor-core@0.5.3"], "runtime": "cpython@3.12"}`); every key optional.
///
/// ```
/// use prefactor_protocol::RuntimeEnvironment;
/// let environment = RuntimeEnvironment {
///     prefactor_sdk: vec!["prefactor-rs@0.1.0".into()],
///     os: Some("linux".into()),
///     runtime: Some("rustc@1.91.0".into()),
///     ..RuntimeEnvironment::default()
/// };
/// assert_eq!(
///     serde_json::to_string(&environment).unwrap(),
///     r#"{"os":"linux","prefactor_sdk":["prefactor-rs@0.1.0"],"runtime":"rustc@1.91.0"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RuntimeEnvironment {
    /// Agent frameworks the run uses (`name@version`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_sdk: Vec<String>,
    /// Operating system (`linux`, `macos`, `windows`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Prefactor SDK packages (`name@version`), integrations first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefactor_sdk: Vec<String>,
    /// Language runtime (`rustc@1.91.0`, `cpython@3.12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// A `runtime_environment` of the expected shape, else `None` (see
/// [`AgentVersionSpec::runtime_environment`]).
fn lenient_environment<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<RuntimeEnvironment>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value.and_then(|value| RuntimeEnvironment::deserialize(value).ok()))
}

/// Body of `POST /api/v1/agent_instance/register`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegisterInstanceRequest {
    /// Code version.
    #[serde(default)]
    pub agent_version: AgentVersionSpec,
    /// Span and quality schemas of this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_schema_version: Option<AgentSchemaVersion>,
    /// Agent; required with account-scoped tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
    /// Client-chosen instance id (a PFID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Idempotency key (≤ 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Whether the deployment's pinned version moves to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_current_version: Option<bool>,
    /// Why it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<InstancePurpose>,
    /// The run's id in an external system (prefactor-core 0.5.3; unique per agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_identifier: Option<String>,
    /// Where the code runs (`agent_sdk`, `os`, `prefactor_sdk`, `runtime`, all optional), at
    /// the top level as one TypeScript release sent it. prefactor-core 0.5.2+ sends it as
    /// `agent_version.runtime_environment`, which the server reads from the raw body so that
    /// [`AgentVersionSpec`] keeps its three fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_environment: Option<Value>,
}

/// Body of `PUT /api/v1/agent_instance/{id}`: `{"details": {"quality_payload": {..}}}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateInstanceRequest {
    /// The changed fields.
    #[serde(default)]
    pub details: UpdateInstanceDetails,
}

/// `details` of [`UpdateInstanceRequest`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateInstanceDetails {
    /// Replaces the legacy single quality payload (null clears it).
    #[serde(default)]
    pub quality_payload: Option<Value>,
}

/// Body of `POST /api/v1/agent_instance/{id}/start`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StartInstanceRequest {
    /// Start time (RFC 3339); server "now" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Body of `POST /api/v1/agent_instance/{id}/finish`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FinishInstanceRequest {
    /// Final status; `complete` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FinishStatus>,
    /// Finish time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Body of `POST /api/v1/agent_instance/{id}/record_quality`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordQualityRequest {
    /// A quality schema name of the instance's schema version.
    pub name: String,
    /// The payload; null removes the stored one. Always serialized.
    #[serde(default)]
    pub payload: Option<Value>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Body of `POST /api/v1/agent_instance/{id}/terminate` (an operator action).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TerminateInstanceRequest {
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}
