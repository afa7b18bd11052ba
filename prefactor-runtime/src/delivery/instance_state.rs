//! `InstanceState`: one agent instance as its handles, its queued operations and the worker
//! see it (termination, started, finished, a poll in flight).

use std::sync::atomic::AtomicBool;

use crate::delivery::termination::Termination;
use crate::record::ids::InstanceId;
use crate::record::sample_decision::SampleDecision;

/// State of one instance shared by its handles, its queued operations and the worker.
#[derive(Debug)]
pub(crate) struct InstanceState {
    pub(crate) id: InstanceId,
    /// Made once, when the run was created (`config/sampling.rs`).
    pub(crate) sampling: SampleDecision,
    pub(crate) termination: Termination,
    pub(crate) started: AtomicBool,
    pub(crate) finished: AtomicBool,
    /// A termination poll is in flight (at most one per instance).
    pub(crate) polling: AtomicBool,
}

impl InstanceState {
    pub(crate) fn new(id: InstanceId, sampling: SampleDecision) -> Self {
        InstanceState {
            id,
            sampling,
            termination: Termination::default(),
            started: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            polling: AtomicBool::new(false),
        }
    }
}
