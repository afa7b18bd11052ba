//! `InstanceManager`: agent instances by id.

use std::sync::atomic::Ordering;

use prefactor_protocol::FinishStatus;

use crate::capture::client::{Client, CreateInstance};
use crate::capture::instance::AgentInstanceHandle;
use crate::record::ids::InstanceId;
use crate::report::error::Error;

/// Creates instances and finds them by id. Made by [`Client::instance_manager`].
///
/// ```no_run
/// # fn run(client: prefactor_runtime::Client) -> Result<(), prefactor_runtime::Error> {
/// let manager = client.instance_manager();
/// let instance = manager.create(Default::default())?;
/// manager.start(instance.id());
/// assert_eq!(manager.live().len(), 1);
/// manager.finish(instance.id(), prefactor_runtime::FinishStatus::Complete);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct InstanceManager {
    client: Client,
}

impl InstanceManager {
    pub(crate) fn new(client: Client) -> Self {
        InstanceManager { client }
    }

    /// Same as [`Client::create_agent_instance`].
    pub fn create(&self, options: CreateInstance) -> Result<AgentInstanceHandle, Error> {
        self.client.create_agent_instance(options)
    }

    /// A handle for `id` (created by this client, or registered elsewhere).
    pub fn get(&self, id: InstanceId) -> AgentInstanceHandle {
        self.client.instance(id)
    }

    /// Queues the start of `id`.
    pub fn start(&self, id: InstanceId) {
        self.get(id).start();
    }

    /// Queues the finish of `id`.
    pub fn finish(&self, id: InstanceId, status: FinishStatus) {
        self.get(id).finish(status);
    }

    /// Instances with a live handle that are not finished.
    pub fn live(&self) -> Vec<AgentInstanceHandle> {
        self.client
            .known_instances()
            .into_iter()
            .filter(|state| !state.finished.load(Ordering::Acquire))
            .map(|state| AgentInstanceHandle { client: self.client.clone(), state })
            .collect()
    }
}
