//! `InstanceState`: one agent instance as its handles, its queued operations and the worker
//! see it (termination, started, finished, a poll in flight).

use std::sync::atomic::AtomicBool;

use crate::delivery::termination::Termination;
use crate::record::ids::InstanceId;

/// State of one instance shared by its handles, its queued operations and the worker.
#[derive(Debug)]
pub(crate) struct InstanceState {
    pub(crate) id: InstanceId,
    pub(crate) termination: Termination,
    pub(crate) started: AtomicBool,
    pub(crate) finished: AtomicBool,
    /// A termination poll is in flight (at most one per instance).
    pub(crate) polling: AtomicBool,
}

impl InstanceState {
    pub(crate) fn new(id: InstanceId) -> Self {
        InstanceState {
            id,
            termination: Termination::default(),
            started: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            polling: AtomicBool::new(false),
        }
    }
}
