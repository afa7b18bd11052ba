//! `CreateInstance`: the options of a new agent instance.

use prefactor_protocol::{AgentSchemaVersion, InstancePurpose};

use crate::record::ids::InstanceId;

/// The agent version of an instance (`name`, `external_identifier`, `description`, and the
/// `runtime_environment` the client fills in when it is `None`).
pub use prefactor_protocol::AgentVersionSpec as AgentVersion;

/// Options of [`Client::create_agent_instance`](crate::Client::create_agent_instance), set with chained methods. Unset ids fall
/// back to the config (agent, environment) or are generated (instance id).
///
/// ```
/// use prefactor_runtime::{AgentVersion, CreateInstance, InstancePurpose};
///
/// let options = CreateInstance::default()
///     .agent_version(AgentVersion {
///         name: Some("Support bot".into()),
///         external_identifier: Some("v2".into()),
///         ..AgentVersion::default()
///     })
///     .purpose(InstancePurpose::Eval);
/// assert!(options.instance_id.is_none());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CreateInstance {
    /// The agent; defaults to the config's `agent_id` (omit with deployment-scoped tokens).
    pub agent_id: Option<String>,
    /// The code version of the agent.
    pub agent_version: AgentVersion,
    /// An explicit schema document; by default the client's registry is used.
    pub agent_schema_version: Option<AgentSchemaVersion>,
    /// A caller-chosen instance id; by default a new PFID.
    pub instance_id: Option<InstanceId>,
    /// External identifier of the schema version; by default a content hash.
    pub external_schema_version_id: Option<String>,
    /// The environment; defaults to the config's `environment_id`.
    pub environment_id: Option<String>,
    /// Why this instance runs (`live` by default on the server).
    pub purpose: Option<InstancePurpose>,
    /// The run's id in another system (a job, a ticket, a conversation), unique per agent:
    /// the server refuses a second run of the agent with the same one (422).
    pub external_identifier: Option<String>,
}

impl CreateInstance {
    /// The agent (default: the config's `agent_id`).
    pub fn agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// The code version of the agent.
    pub fn agent_version(mut self, version: AgentVersion) -> Self {
        self.agent_version = version;
        self
    }

    /// An explicit schema document instead of the client's registry.
    pub fn agent_schema_version(mut self, document: AgentSchemaVersion) -> Self {
        self.agent_schema_version = Some(document);
        self
    }

    /// A caller-chosen instance id (default: a new PFID).
    pub fn instance_id(mut self, id: InstanceId) -> Self {
        self.instance_id = Some(id);
        self
    }

    /// The external identifier of the schema version (default: a hash of its content).
    pub fn external_schema_version_id(mut self, id: impl Into<String>) -> Self {
        self.external_schema_version_id = Some(id.into());
        self
    }

    /// The environment (default: the config's `environment_id`).
    pub fn environment_id(mut self, environment_id: impl Into<String>) -> Self {
        self.environment_id = Some(environment_id.into());
        self
    }

    /// Why this instance runs (default: `live`, on the server).
    pub fn purpose(mut self, purpose: InstancePurpose) -> Self {
        self.purpose = Some(purpose);
        self
    }

    /// The run's id in another system (a job, a ticket, a conversation), unique per agent.
    /// Blank counts as unset (an id read from an empty variable, say), so none is sent.
    ///
    /// ```
    /// use prefactor_runtime::CreateInstance;
    ///
    /// let options = CreateInstance::default().external_identifier(" job-42 ");
    /// assert_eq!(options.external_identifier.as_deref(), Some("job-42"));
    /// assert_eq!(CreateInstance::default().external_identifier("  ").external_identifier, None);
    /// ```
    pub fn external_identifier(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        let id = id.trim();
        self.external_identifier = (!id.is_empty()).then(|| id.to_owned());
        self
    }
}
