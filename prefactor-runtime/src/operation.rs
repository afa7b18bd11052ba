//! The operations that travel through the queue to the worker.

use std::sync::Arc;
use std::time::SystemTime;

use prefactor_protocol::{FinishStatus, RegisterInstanceRequest};

use crate::ids::{InstanceId, SpanId};
use crate::instance::InstanceState;
use crate::payload::Payload;

/// How a span ended.
#[derive(Debug, Clone)]
pub(crate) struct SpanEnd {
    pub(crate) status: FinishStatus,
    pub(crate) result: Option<Payload>,
    pub(crate) at: SystemTime,
}

/// A span create; with `end` set it is sent as one create-as-terminal request.
#[derive(Debug)]
pub(crate) struct SpanCreate {
    pub(crate) instance: Arc<InstanceState>,
    pub(crate) id: SpanId,
    pub(crate) parent: Option<SpanId>,
    pub(crate) schema: Arc<str>,
    pub(crate) payload: Option<Payload>,
    pub(crate) started_at: SystemTime,
    pub(crate) end: Option<SpanEnd>,
    /// Queue operations this request stands for (2 once a separate finish merged in).
    pub(crate) weight: u64,
}

/// A span finish sent on its own.
#[derive(Debug)]
pub(crate) struct SpanFinish {
    pub(crate) instance: Option<Arc<InstanceState>>,
    pub(crate) id: SpanId,
    pub(crate) end: SpanEnd,
}

/// One queued unit of work.
#[derive(Debug)]
pub(crate) enum Op {
    Register { instance: Arc<InstanceState>, request: Box<RegisterInstanceRequest> },
    Start { instance: Arc<InstanceState>, at: SystemTime },
    Finish { instance: Arc<InstanceState>, status: FinishStatus, at: SystemTime },
    Quality { instance: Arc<InstanceState>, name: String, payload: Option<Payload>, key: String },
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
            Op::Register { instance, .. } => OpKind::Register(instance.id),
            Op::Start { instance, .. } => OpKind::Start(instance.id),
            Op::Finish { instance, .. } => OpKind::Finish(instance.id),
            Op::Quality { instance, .. } => OpKind::Quality(instance.id),
            Op::CreateSpan(c) => OpKind::CreateSpan(c.id, c.instance.id),
            Op::FinishSpan(f) => OpKind::FinishSpan(f.id, f.instance.as_ref().map(|i| i.id)),
        }
    }

    /// Number of queue operations this one stands for.
    pub(crate) fn weight(&self) -> u64 {
        match self {
            Op::CreateSpan(c) => c.weight,
            _ => 1,
        }
    }

    pub(crate) fn instance_state(&self) -> Option<&Arc<InstanceState>> {
        match self {
            Op::Register { instance, .. }
            | Op::Start { instance, .. }
            | Op::Finish { instance, .. }
            | Op::Quality { instance, .. } => Some(instance),
            Op::CreateSpan(c) => Some(&c.instance),
            Op::FinishSpan(f) => f.instance.as_ref(),
        }
    }
}
