//! Enumerations of the API (section A7).

use serde::{Deserialize, Serialize};

/// Status of an agent instance or a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Registered (instance) or prepared (span), not started.
    Pending,
    /// Running.
    Active,
    /// Finished successfully.
    Complete,
    /// Finished with an error.
    Failed,
    /// Stopped before it finished.
    Cancelled,
    /// Stopped by the platform.
    Terminated,
}

impl AgentStatus {
    /// Whether no further transition is possible.
    ///
    /// ```
    /// use prefactor_protocol::AgentStatus;
    /// assert!(AgentStatus::Failed.is_terminal());
    /// assert!(!AgentStatus::Active.is_terminal());
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Complete | Self::Failed | Self::Cancelled | Self::Terminated)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Terminated => "terminated",
        }
    }
}

/// Status given when finishing an instance or a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishStatus {
    /// Finished successfully.
    Complete,
    /// Finished with an error.
    Failed,
    /// Stopped before it finished.
    Cancelled,
}

impl FinishStatus {
    /// The wire name.
    ///
    /// ```
    /// assert_eq!(prefactor_protocol::FinishStatus::Cancelled.as_str(), "cancelled");
    /// ```
    pub fn as_str(self) -> &'static str {
        AgentStatus::from(self).as_str()
    }
}

impl From<FinishStatus> for AgentStatus {
    fn from(status: FinishStatus) -> AgentStatus {
        match status {
            FinishStatus::Complete => AgentStatus::Complete,
            FinishStatus::Failed => AgentStatus::Failed,
            FinishStatus::Cancelled => AgentStatus::Cancelled,
        }
    }
}

/// Why an instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstancePurpose {
    /// Production traffic (the server default).
    #[default]
    Live,
    /// A smoke test.
    SmokeTest,
    /// An evaluation run.
    Eval,
}

/// Lifecycle status of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentLifecycleStatus {
    /// Created, no instance yet.
    Pending,
    /// In use.
    Active,
    /// Not used lately.
    Dormant,
    /// Retired by an operator.
    Retired,
}

/// Direction of a list's sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortDirection {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}
