//! Putting operations in the queue without ever waiting: the bound, the drop counts, and
//! the ids made on the way.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prefactor_protocol::Pfid;
use tokio::sync::mpsc;

use super::Client;
use crate::delivery::recorder::Recorder;
use crate::delivery::worker::Command;
use crate::queue::op_queue::{OpQueue, Refused};
use crate::queue::operation::{Op, SpanCreate};
use crate::record::ids::{InstanceId, SpanId};
use crate::record::payload::Payload;
use crate::record::schema_name::SchemaName;
use crate::record::timestamp::Timestamp;
use crate::report::error::Error;
use crate::report::stats::Counters;

/// What a client holds of its worker once initialized.
pub(super) struct WorkerLink {
    /// Unbounded queue: the bound is enforced by the pending count in `enqueue`, which also
    /// covers what the worker holds. Wakes the worker only when it is parked.
    pub(super) ops: Arc<OpQueue>,
    pub(super) drain: Drain,
}

/// Who takes the operations out of the queue.
pub(super) enum Drain {
    /// The worker thread (sends them), commanded through this channel.
    Worker(mpsc::UnboundedSender<Command>),
    /// A test capture (`prefactor::testing`): records them when read; nothing is sent.
    Recorder(Arc<Recorder>),
}

impl Client {
    pub(crate) fn ensure_usable(&self) -> Result<(), Error> {
        self.ready_link()?;
        match self.inner.shared.auth_failure.get() {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    /// Operations accepted into the queue so far.
    pub(super) fn enqueued(&self) -> u64 {
        self.inner.link.get().map_or(0, |link| link.ops.enqueued())
    }

    /// Queues the create of an `active` span and returns its id (`SpanBuilder::create`).
    pub(crate) fn enqueue_span_create(
        &self,
        instance: InstanceId,
        schema_name: &str,
        parent: Option<SpanId>,
        payload: Option<Payload>,
        started_at: Timestamp,
    ) -> SpanId {
        let id = self.span_id_at(started_at);
        self.enqueue(Op::CreateSpan(SpanCreate {
            instance,
            id,
            parent,
            schema: SchemaName::new(schema_name),
            payload,
            started_at,
            end: None,
            weight: 1,
        }));
        id
    }

    /// Counts a span of an unsampled run (nothing of it is queued).
    #[inline]
    pub(crate) fn count_sampled_out_span(&self) {
        Counters::add(&self.inner.shared.counters.sampled_out_spans, 1);
    }

    /// Whether both handles share one client.
    pub(crate) fn same_as(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A span id whose timestamp is `at` (saves a second clock read on the hot path).
    pub(crate) fn span_id_at(&self, at: Timestamp) -> SpanId {
        SpanId::from_pfid(Pfid::generate_at(at.unix_millis(), self.inner.partition))
    }

    /// Puts an operation in the queue without ever waiting. Returns false (and counts a drop)
    /// when the queue is full, the client is not initialized or closed, or the token was
    /// rejected.
    #[inline]
    pub(crate) fn enqueue(&self, op: Op) -> bool {
        let shared = &*self.inner.shared;
        let weight = op.weight();
        if shared.is_latched() || shared.closed.load(Ordering::Relaxed) {
            Counters::add(&shared.counters.dropped, weight);
            return false;
        }
        let Some(link) = self.inner.link.get() else {
            Counters::add(&shared.counters.dropped, weight);
            tracing::debug!("prefactor: operation dropped, the client is not initialized");
            return false;
        };
        // The bound covers everything not yet settled (queue, scheduler, in flight), so a
        // slow server cannot make the worker hold more than `queue_capacity` operations.
        match link.ops.push(op, shared.config.queue_capacity() as u64, &shared.counters.settled) {
            Ok(()) => true,
            Err(refused) => {
                Counters::add(&shared.counters.dropped, weight);
                if refused == Refused::Full {
                    shared.warn_full();
                }
                false
            }
        }
    }
}
