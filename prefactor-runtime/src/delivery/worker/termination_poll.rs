//! Termination: the `control` signal of span answers and the periodic poll of live instances.

use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::delivery::instance_state::InstanceState;
use crate::delivery::transport::{Attempt, Transport, termination_signal_of};
use crate::queue::operation::Op;

use super::Worker;

impl Worker {
    /// Termination signals and instance liveness from a successful response (`control`: the
    /// span actions' control object, when present).
    pub(super) fn apply_response(&mut self, op: &Op, control: Option<&Value>) {
        match op {
            Op::CreateSpan(_) | Op::FinishSpan(_) => {
                if let Some(reason) = control.and_then(termination_signal_of)
                    && let Some(instance) = op.kind().instance().and_then(|id| self.shared.instance(id))
                    && instance.termination.mark(reason.clone())
                {
                    tracing::info!(instance = %instance.id, ?reason, "prefactor: instance terminated by the platform");
                }
            }
            Op::Start { instance, .. } => {
                if let Some(state) = self.shared.instance(*instance)
                    && !state.finished.load(Ordering::Acquire)
                {
                    self.live.insert(*instance, state);
                }
            }
            _ => {}
        }
    }

    /// Polls each live instance (started, not finished, not terminated) for termination.
    pub(super) fn poll_live(&mut self) {
        self.live.retain(|_, state| !state.termination.is_terminated() && !state.finished.load(Ordering::Acquire));
        for state in self.live.values() {
            if state.polling.swap(true, Ordering::AcqRel) {
                continue;
            }
            let transport = self.transport.clone();
            let state = state.clone();
            tokio::spawn(async move {
                poll_instance(&transport, &state).await;
                state.polling.store(false, Ordering::Release);
            });
        }
    }
}

/// One termination poll; errors are logged and ignored (the next tick tries again).
async fn poll_instance(transport: &Transport, state: &InstanceState) {
    match transport.get("termination poll", &format!("/agent_instance/{}", state.id)).await {
        Attempt::Done(body) => {
            let details = body.get("details");
            let status = details.and_then(|d| d.get("status")).and_then(Value::as_str);
            if status == Some("terminated") {
                let reason =
                    details.and_then(|d| d.get("termination_reason")).and_then(Value::as_str).map(str::to_owned);
                if state.termination.mark(reason.clone()) {
                    tracing::info!(instance = %state.id, ?reason, "prefactor: instance terminated by the platform (poll)");
                }
            }
        }
        Attempt::AlreadyDone => {}
        Attempt::Transient { error, .. }
        | Attempt::Unseen(error)
        | Attempt::Auth(error)
        | Attempt::Permanent(error) => {
            tracing::debug!(instance = %state.id, error = %error, "prefactor: termination poll failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::super::test_worker::worker;
    use super::*;
    use crate::delivery::instance_state::InstanceState;
    use crate::lock::lock;
    use crate::queue::operation::SpanEnd;
    use crate::queue::operation::SpanFinish;
    use crate::record::ids::{InstanceId, SpanId};
    use crate::record::timestamp::Timestamp;

    fn known_instance(worker: &Worker) -> Arc<InstanceState> {
        let state = Arc::new(InstanceState::new(
            InstanceId::generate(0),
            crate::record::sample_decision::SampleDecision::Sampled,
        ));
        lock(&worker.shared.instances).insert(state.id, Arc::downgrade(&state));
        state
    }

    fn finish_of(instance: InstanceId) -> Op {
        let end = SpanEnd { status: prefactor_protocol::FinishStatus::Complete, result: None, at: Timestamp::now() };
        Op::FinishSpan(SpanFinish { instance: Some(instance), id: SpanId::generate(0), end })
    }

    #[test]
    fn the_control_signal_of_a_span_answer_terminates_its_instance() {
        let (mut worker, _ops) = worker();
        let state = known_instance(&worker);
        worker.apply_response(&finish_of(state.id), Some(&json!({"terminate": false})));
        assert!(!state.termination.is_terminated());
        worker.apply_response(&finish_of(state.id), Some(&json!({"terminate": true, "reason": "budget"})));
        assert!(state.termination.is_terminated());
        assert_eq!(state.termination.reason().as_deref(), Some("budget"));
    }

    #[test]
    fn a_started_instance_is_polled_until_it_finishes() {
        let (mut worker, _ops) = worker();
        let state = known_instance(&worker);
        worker.apply_response(&Op::Start { instance: state.id, at: Timestamp::now() }, None);
        assert!(worker.live.contains_key(&state.id));
        let finished = known_instance(&worker);
        finished.finished.store(true, Ordering::Release);
        worker.apply_response(&Op::Start { instance: finished.id, at: Timestamp::now() }, None);
        assert!(!worker.live.contains_key(&finished.id), "a finished instance is not polled");
    }
}
