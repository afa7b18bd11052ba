//! The operations that travel through the queue to the worker.

use std::sync::Arc;

use prefactor_protocol::{FinishStatus, RegisterInstanceRequest};
use serde_json::value::RawValue;

use crate::record::ids::{InstanceId, SpanId};
use crate::record::payload::Payload;
use crate::record::schema_name::SchemaName;
use crate::record::timestamp::Timestamp;

/// How a span ended.
#[derive(Debug, Clone)]
pub(crate) struct SpanEnd {
    pub(crate) status: FinishStatus,
    pub(crate) result: Option<Payload>,
    pub(crate) at: Timestamp,
}

/// A span create; with `end` set it is sent as one create-as-terminal request.
///
/// Operations carry ids, not `Arc`s: the worker drops them on another thread, and a shared
/// reference count would bounce its cache line between the agent's thread and the worker.
#[derive(Debug)]
pub(crate) struct SpanCreate {
    pub(crate) instance: InstanceId,
    pub(crate) id: SpanId,
    pub(crate) parent: Option<SpanId>,
    pub(crate) schema: SchemaName,
    pub(crate) payload: Option<Payload>,
    pub(crate) started_at: Timestamp,
    /// Boxed: rarely set when queued (merges happen in the worker), and keeping it out of line
    /// makes every queued operation smaller.
    pub(crate) end: Option<Box<SpanEnd>>,
    /// Queue operations this request stands for (2 once a separate finish merged in). A
    /// `u8`: every queued operation is the size of this variant.
    pub(crate) weight: u8,
}

/// A span finish sent on its own.
#[derive(Debug)]
pub(crate) struct SpanFinish {
    pub(crate) instance: Option<InstanceId>,
    pub(crate) id: SpanId,
    pub(crate) end: SpanEnd,
}

/// One queued unit of work.
#[derive(Debug)]
pub(crate) enum Op {
    /// `request` has no `agent_schema_version`: `schema` is that document, serialized once per
    /// client (`schema/document.rs`) and spliced into the body.
    Register {
        instance: InstanceId,
        request: Box<RegisterInstanceRequest>,
        schema: Option<Arc<RawValue>>,
        /// The run was not sampled but a tail rule may keep it: the worker holds this and every
        /// later operation of the instance until the run is decided (`delivery/tail_hold.rs`).
        held: bool,
    },
    Start {
        instance: InstanceId,
        at: Timestamp,
    },
    Finish {
        instance: InstanceId,
        status: FinishStatus,
        at: Timestamp,
    },
    Quality {
        instance: InstanceId,
        name: String,
        payload: Option<Payload>,
        key: String,
    },
    CreateSpan(SpanCreate),
    FinishSpan(SpanFinish),
}

/// What the scheduler needs to know about an operation once it left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Register(InstanceId),
    Start(InstanceId),
    Finish(InstanceId),
    Quality(InstanceId),
    CreateSpan(SpanId, InstanceId),
    FinishSpan(SpanId, Option<InstanceId>),
}

impl OpKind {
    pub(crate) fn instance(self) -> Option<InstanceId> {
        match self {
            OpKind::Register(i) | OpKind::Start(i) | OpKind::Finish(i) | OpKind::Quality(i) => Some(i),
            OpKind::CreateSpan(_, i) => Some(i),
            OpKind::FinishSpan(_, i) => i,
        }
    }

    /// Label used in logs and errors.
    pub(crate) fn label(self) -> &'static str {
        match self {
            OpKind::Register(_) => "instance register",
            OpKind::Start(_) => "instance start",
            OpKind::Finish(_) => "instance finish",
            OpKind::Quality(_) => "record quality",
            OpKind::CreateSpan(..) => "span create",
            OpKind::FinishSpan(..) => "span finish",
        }
    }
}

impl Op {
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Register { instance, .. } => OpKind::Register(*instance),
            Op::Start { instance, .. } => OpKind::Start(*instance),
            Op::Finish { instance, .. } => OpKind::Finish(*instance),
            Op::Quality { instance, .. } => OpKind::Quality(*instance),
            Op::CreateSpan(c) => OpKind::CreateSpan(c.id, c.instance),
            Op::FinishSpan(f) => OpKind::FinishSpan(f.id, f.instance),
        }
    }

    /// Moves what the caller's thread allocated for this operation (its payload texts) into
    /// memory of the calling thread (the worker's), freeing the caller's.
    ///
    /// Why: an operation the worker holds for long (waiting for a retry during an outage, or
    /// behind one that does) would otherwise keep the agent thread's allocation alive, so every
    /// new payload on that thread needed fresh memory from the system, and the agent paid the
    /// page faults: 3 % of its calls during a 30 s outage, doubling its p99 call latency.
    /// Re-homed, the agent's memory is freed as promptly as when the API answers. (Short
    /// payloads are inline in the operation and own no memory: copying them is all this does.)
    pub(crate) fn rehome(&mut self) {
        fn rehome(payload: &mut Option<Payload>) {
            if let Some(payload) = payload {
                *payload = payload.clone();
            }
        }
        match self {
            Op::Quality { payload, .. } => rehome(payload),
            Op::CreateSpan(create) => {
                rehome(&mut create.payload);
                if let Some(end) = &mut create.end {
                    rehome(&mut end.result);
                }
            }
            Op::FinishSpan(finish) => rehome(&mut finish.end.result),
            Op::Register { .. } | Op::Start { .. } | Op::Finish { .. } => {}
        }
    }

    /// Number of queue operations this one stands for.
    pub(crate) fn weight(&self) -> u64 {
        match self {
            Op::CreateSpan(c) => u64::from(c.weight),
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every queued operation occupies a slot of the size of the largest variant, written by
    /// the agent's thread on every span open and close. A span create carries its payload
    /// inline (64 bytes, which saves the allocation of a short payload's text).
    #[test]
    fn queued_operations_stay_small() {
        assert!(size_of::<Op>() <= 176, "Op is {} bytes", size_of::<Op>());
    }
}
