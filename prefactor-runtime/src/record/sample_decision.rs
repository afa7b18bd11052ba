//! `SampleDecision`: what head sampling decided for an agent run when it was created.

/// What sampling decided for an agent run, once, when it was created
/// ([`AgentInstanceHandle::sampling`](crate::AgentInstanceHandle::sampling)). The run's code
/// runs the same whatever the decision: its handle, [`current_instance`](crate::current_instance)
/// and spans all work; only what is sent differs, and always for the whole run.
///
/// ```
/// use prefactor_runtime::SampleDecision;
///
/// assert!(SampleDecision::Sampled.is_sent());
/// assert!(!SampleDecision::Unsampled.is_sent());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SampleDecision {
    /// Sent, like every run when sampling is off.
    Sampled,
    /// Not sampled, but a tail rule is on ([`ConfigBuilder::keep_failed_runs`](crate::ConfigBuilder::keep_failed_runs),
    /// [`ConfigBuilder::keep_slow_runs`](crate::ConfigBuilder::keep_slow_runs)): its operations
    /// are queued and held by the client's worker until the run ends, then sent whole if the
    /// run failed or was slow, else discarded (counted in [`Stats`](crate::Stats), never as
    /// lost).
    Held,
    /// Not sampled and no tail rule: nothing of the run is queued (its spans cost a counter and
    /// an id on the agent's thread, no clock read; a `#[span]` serializes nothing).
    Unsampled,
}

impl SampleDecision {
    /// Whether the run is sent whatever happens in it (`Sampled`).
    pub fn is_sent(self) -> bool {
        self == SampleDecision::Sampled
    }
}
