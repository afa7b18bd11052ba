//! Agents (A9.3) and their create request (A13).

use serde::{Deserialize, Serialize};

use crate::status::AgentLifecycleStatus;

/// An agent: the thing whose runs are instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Always `"agent"`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Caller's identifier, unique per account.
    #[serde(default)]
    pub external_identifier: Option<String>,
    /// Lifecycle status.
    pub status: AgentLifecycleStatus,
    /// Owner.
    #[serde(default)]
    pub owner_person_id: Option<String>,
    /// Risk profile.
    #[serde(default)]
    pub risk_profile_id: Option<String>,
    /// Team.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Instance counts by status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_counts: Option<InstanceCounts>,
    /// What an operator may do now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_actions: Option<AvailableActions>,
    /// Creation time.
    pub inserted_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Instance counts of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct InstanceCounts {
    pub total: u64,
    pub pending: u64,
    pub active: u64,
    pub complete: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub terminated: u64,
    pub finished: u64,
}

/// Operator actions available on an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct AvailableActions {
    pub update: bool,
    pub retire: bool,
    pub reinstate: bool,
    pub delete: bool,
}

/// Body of `POST /api/v1/agent` (wrapped in `details`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateAgentRequest {
    /// The agent.
    pub details: CreateAgentDetails,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// `details` of an agent create request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateAgentDetails {
    /// Display name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Caller's identifier, unique per account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_identifier: Option<String>,
    /// Client-chosen id (a PFID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_person_id: Option<String>,
    /// Risk profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_profile_id: Option<String>,
    /// Team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}
