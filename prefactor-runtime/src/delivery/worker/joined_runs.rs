//! Spans joining a run of another process (a tool service's spans, `docs/propagation.md`): the
//! server may not know that run, or the caller's span, yet, since the caller's worker delivers
//! them on its own schedule. A span create refused for that reason waits and goes again, for a
//! bounded time (`MAX_WAIT_FOR_CALLER`), instead of failing at once. (This process's own spans
//! never meet it: the scheduler sends a span only after its run's registration and its parent's
//! create.)

use std::time::Duration;

use tokio::time::Instant;

use crate::delivery::flush_epochs::Epochs;
use crate::delivery::retry::retry_delay;
use crate::queue::operation::Op;
use crate::report::error::Error;
use crate::report::stats::Counters;

use super::{Resend, Shipment, Worker};

/// How long after its first "not found" a span create keeps waiting for the caller's
/// delivery before it fails: long enough for the caller's own retries of a short outage, short
/// enough that a span of a run that never reaches the server (its caller crashed, or sends
/// elsewhere) is reported soon. Measured in time, not attempts, so it does not shrink with
/// short retry delays.
pub(super) const MAX_WAIT_FOR_CALLER: Duration = Duration::from_secs(60);

/// Span creates waiting at once; past it a "not found" fails at once (memory stays bounded
/// even if the spool or a close takes waiting creates elsewhere without settling them here).
const MAX_WAITING: usize = 4096;

impl Worker {
    /// Takes a permanent answer to `op`. A span create refused because the server does not
    /// know its run or its parent (yet) waits with backoff and goes again (`None`); anything
    /// else, or a create past its waits, is handed back to be failed.
    pub(super) fn wait_for_caller(
        &mut self,
        op: Op,
        epochs: Epochs,
        resend: Resend,
        error: Error,
    ) -> Option<(Op, Epochs, Error)> {
        let Op::CreateSpan(create) = &op else { return Some((op, epochs, error)) };
        // What failed here (its run's registration, its parent's create, earlier in the same
        // bulk request) will not arrive later: failed at once, under that cause.
        let failed_here = self.scheduler.doomed(&op).is_some()
            || create.parent.is_some_and(|parent| self.scheduler.create_failed(parent));
        let id = create.id;
        let now = Instant::now();
        let waited = self.waiting_for_caller.get(&id).copied();
        let room = waited.is_some() || self.waiting_for_caller.len() < MAX_WAITING;
        let (first, waits) = waited.unwrap_or((now, 0));
        let waiting_helps = names_unknown_run_or_parent(&error) && !failed_here;
        if !waiting_helps || now.duration_since(first) >= MAX_WAIT_FOR_CALLER || !room {
            self.waiting_for_caller.remove(&id);
            return Some((op, epochs, error));
        }
        self.waiting_for_caller.insert(id, (first, waits + 1));
        Counters::add(&self.shared.counters.retried, 1);
        let delay = retry_delay(&self.shared.config, waits, None);
        tracing::debug!(span = %id, error = %error, ?delay, waits, "prefactor: the span's run or parent is not on the server yet (sent by another process?); waiting");
        let Resend { attempt, bulk, unseen } = resend;
        let shipment = Shipment { items: vec![(op, epochs)], attempt: attempt.saturating_add(1), bulk, unseen };
        self.retries.push(now + delay, shipment, false);
        None
    }

    /// Forgets the waits of a span create once it is settled.
    pub(super) fn forget_waits(&mut self, op: &Op) {
        if !self.waiting_for_caller.is_empty()
            && let Op::CreateSpan(create) = op
        {
            self.waiting_for_caller.remove(&create.id);
        }
    }
}

/// A 404 (the span's agent instance) or a 422 naming `parent_span_id`: what the server answers
/// a span of a run, or under a span, that it does not have.
fn names_unknown_run_or_parent(error: &Error) -> bool {
    match error {
        Error::Http { status: Some(404), .. } => true,
        Error::Http { status: Some(422), message, .. } => message.contains("parent_span_id"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_worker::worker;
    use super::*;
    use crate::queue::operation::SpanCreate;
    use crate::record::ids::{InstanceId, SpanId};
    use crate::record::schema_name::SchemaName;
    use crate::record::timestamp::Timestamp;

    fn create() -> Op {
        create_in(InstanceId::generate(0))
    }

    fn create_in(instance: InstanceId) -> Op {
        Op::CreateSpan(SpanCreate {
            instance,
            id: SpanId::generate(0),
            parent: Some(SpanId::generate(1)),
            schema: SchemaName::new("tool:lookup"),
            payload: None,
            started_at: Timestamp::now(),
            end: None,
            weight: 1,
        })
    }

    fn refused(status: u16, message: &str) -> Error {
        Error::Http { operation: "span create", status: Some(status), code: None, message: message.to_owned() }
    }

    const RESEND: Resend = Resend { attempt: 0, bulk: false, unseen: false };

    #[test]
    fn an_unknown_parent_or_run_waits_until_its_time_is_up() {
        let (mut worker, _ops) = worker();
        let parent_unknown = refused(422, "details.parent_span_id: span x does not exist in agent instance y");
        let op = create();
        let id = match &op {
            Op::CreateSpan(create) => create.id,
            _ => unreachable!(),
        };
        assert!(worker.wait_for_caller(op, Epochs::at(0), RESEND, parent_unknown.clone()).is_none());
        assert_eq!(worker.retries.items().count(), 1, "waiting for its retry");
        let (op, epochs) = worker.retries.drain().next().unwrap().items.into_iter().next().unwrap();
        let instance_unknown = refused(404, "agent instance y not found");
        assert!(worker.wait_for_caller(op, epochs, RESEND, instance_unknown).is_none(), "a 404 waits too");
        assert_eq!(worker.waiting_for_caller.get(&id).map(|(_, waits)| *waits), Some(2));
        assert_eq!(worker.shared.counters.retried.load(std::sync::atomic::Ordering::Relaxed), 2);

        // Its first "not found" long ago: it fails now, and is forgotten.
        let long_ago = Instant::now().checked_sub(MAX_WAIT_FOR_CALLER).expect("a clock past its first minute");
        worker.waiting_for_caller.insert(id, (long_ago, 2));
        let (op, epochs) = worker.retries.drain().next().unwrap().items.into_iter().next().unwrap();
        assert!(worker.wait_for_caller(op, epochs, RESEND, parent_unknown).is_some(), "then it fails");
        assert!(!worker.waiting_for_caller.contains_key(&id));
    }

    #[test]
    fn a_span_of_a_run_whose_registration_failed_here_does_not_wait() {
        let (mut worker, _ops) = worker();
        let op = create();
        let instance = op.kind().instance().unwrap();
        let request = Box::new(prefactor_protocol::RegisterInstanceRequest::default());
        let register = Op::Register { instance, request, schema: None, held: false };
        // The register and a span of its run were sent together; the register failed.
        worker.scheduler.push(register, Epochs::at(0), Instant::now());
        worker.scheduler.push(create_in(instance), Epochs::at(0), Instant::now());
        let (register, _) = worker.scheduler.next_ready().expect("the register is ready");
        worker.scheduler.complete(register.kind(), false);
        let not_found = refused(404, "agent instance y not found");
        assert!(worker.wait_for_caller(op, Epochs::at(0), RESEND, not_found).is_some());
        assert!(worker.retries.is_empty());
    }

    #[test]
    fn other_refusals_fail_at_once() {
        let (mut worker, _ops) = worker();
        let invalid = refused(422, "details.payload: /city: expected a string");
        assert!(worker.wait_for_caller(create(), Epochs::at(0), RESEND, invalid).is_some());
        let start = Op::Start { instance: InstanceId::generate(0), at: Timestamp::now() };
        assert!(worker.wait_for_caller(start, Epochs::at(0), RESEND, refused(404, "not found")).is_some());
        assert!(worker.retries.is_empty() && worker.waiting_for_caller.is_empty());
    }
}
