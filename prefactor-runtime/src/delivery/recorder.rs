//! `Recorder`: the delivery of a capturing client (`prefactor::testing`). It takes the
//! operations from the queue exactly as the worker would, and instead of sending them folds
//! them into typed runs and spans.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prefactor_protocol::{AgentStatus, FinishStatus};
use serde_json::Value;

use crate::delivery::flush_epochs::Epochs;
use crate::delivery::payload_policy;
use crate::delivery::shared::Shared;
use crate::delivery::tail_hold::TailHold;
use crate::lock::lock;
use crate::queue::op_queue::OpQueue;
use crate::queue::operation::{Op, SpanCreate, SpanEnd, SpanFinish};
use crate::record::ids::InstanceId;
use crate::record::payload::Payload;
use crate::record::timestamp::Timestamp;
use crate::report::captured_run::{CapturedRun, CapturedSpan};
use crate::report::stats::Counters;

/// The runs recorded so far, fed from the client's queue.
pub(crate) struct Recorder {
    ops: Arc<OpQueue>,
    shared: Arc<Shared>,
    /// The recorded runs, and the runs held for the tail rule as the worker would hold them.
    runs: Mutex<(Vec<CapturedRun>, TailHold)>,
}

impl Recorder {
    pub(crate) fn new(ops: Arc<OpQueue>, shared: Arc<Shared>) -> Recorder {
        let hold = TailHold::new(&shared.config);
        Recorder { ops, shared, runs: Mutex::new((Vec::new(), hold)) }
    }

    /// Takes everything queued so far into the recorded runs (each operation counts as sent,
    /// so the client's stats and close report read as after a clean delivery), except what
    /// sampling holds or discards, as the worker would.
    pub(crate) fn drain(&self) {
        let mut guard = lock(&self.runs);
        let (runs, hold) = &mut *guard;
        while let Some(op) = self.ops.pop() {
            if let Some((op, _)) = hold.take(op, Epochs::at(0), Timestamp::now) {
                self.record(runs, op);
            }
            self.record_decided(runs, hold);
        }
    }

    /// Drains, then decides the runs still held (the client closes), as the worker does.
    pub(crate) fn close(&self) {
        self.drain();
        let mut guard = lock(&self.runs);
        let (runs, hold) = &mut *guard;
        hold.decide_all(Timestamp::now());
        self.record_decided(runs, hold);
    }

    /// Records the runs `hold` kept; settles (uncounted as sent) those it discarded.
    fn record_decided(&self, runs: &mut Vec<CapturedRun>, hold: &mut TailHold) {
        for decided in hold.take_decided() {
            decided.count_into(&self.shared.counters);
            if decided.verdict.keeps() {
                decided.ops.into_iter().for_each(|(op, _)| self.record(runs, op));
            } else {
                self.shared.counters.settled.fetch_add(decided.weight(), Ordering::Release);
            }
        }
    }

    /// Records `op` as sent: what the worker would send, redacted, scrubbed and cut to size.
    fn record(&self, runs: &mut Vec<CapturedRun>, mut op: Op) {
        let weight = op.weight();
        payload_policy::apply(&self.shared.config, &mut op).count_into(&self.shared.counters);
        apply(runs, op);
        Counters::add(&self.shared.counters.sent, weight);
        self.shared.counters.settled.fetch_add(weight, Ordering::Release);
    }

    /// A copy of the runs recorded so far, in the order they were registered (or first seen).
    pub(crate) fn runs(&self) -> Vec<CapturedRun> {
        self.drain();
        lock(&self.runs).0.clone()
    }

    /// Forgets the runs recorded so far (what is queued is taken first, then forgotten too).
    pub(crate) fn clear(&self) {
        self.drain();
        lock(&self.runs).0.clear();
    }
}

fn system_time(at: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(at.unix_micros())
}

fn value_of(payload: Option<&Payload>) -> Option<Value> {
    payload.map(Payload::to_value)
}

fn status_of(status: FinishStatus) -> AgentStatus {
    AgentStatus::from(status)
}

/// The run of `instance`, added (unregistered) when first seen.
fn run_of(runs: &mut Vec<CapturedRun>, instance: InstanceId) -> &mut CapturedRun {
    match runs.iter().position(|run| run.id == instance) {
        Some(index) => &mut runs[index],
        None => {
            runs.push(CapturedRun {
                id: instance,
                registered: false,
                agent_name: None,
                agent_version: None,
                agent_id: None,
                purpose: None,
                status: AgentStatus::Pending,
                spans: Vec::new(),
                quality: Vec::new(),
                started_at: None,
                finished_at: None,
            });
            let last = runs.len() - 1;
            &mut runs[last]
        }
    }
}

fn apply(runs: &mut Vec<CapturedRun>, op: Op) {
    match op {
        Op::Register { instance, request, .. } => {
            let run = run_of(runs, instance);
            run.registered = true;
            run.agent_name = request.agent_version.name;
            run.agent_version = request.agent_version.external_identifier;
            run.agent_id = request.agent_id;
            run.purpose = request.purpose;
        }
        Op::Start { instance, at } => {
            let run = run_of(runs, instance);
            run.status = AgentStatus::Active;
            run.started_at = Some(system_time(at));
        }
        Op::Finish { instance, status, at } => {
            let run = run_of(runs, instance);
            run.status = status_of(status);
            run.finished_at = Some(system_time(at));
        }
        Op::Quality { instance, name, payload, .. } => {
            run_of(runs, instance).quality.push((name, value_of(payload.as_ref())));
        }
        Op::CreateSpan(create) => create_span(runs, create),
        Op::FinishSpan(finish) => finish_span(runs, finish),
    }
}

fn create_span(runs: &mut Vec<CapturedRun>, create: SpanCreate) {
    let SpanCreate { instance, id, parent, schema, payload, started_at, end, .. } = create;
    let mut span = CapturedSpan {
        id,
        parent,
        schema: schema.to_string(),
        payload: value_of(payload.as_ref()).unwrap_or_else(|| Value::Object(serde_json::Map::new())),
        result: None,
        status: AgentStatus::Active,
        started_at: system_time(started_at),
        ended_at: None,
    };
    if let Some(end) = end {
        end_span(&mut span, *end);
    }
    run_of(runs, instance).spans.push(span);
}

fn finish_span(runs: &mut Vec<CapturedRun>, finish: SpanFinish) {
    let SpanFinish { instance, id, end } = finish;
    let found = runs.iter_mut().flat_map(|run| run.spans.iter_mut()).find(|span| span.id == id);
    if let Some(span) = found {
        end_span(span, end);
        return;
    }
    // A finish of a span this client never created (an id from elsewhere): kept, so a test
    // sees it, under its instance.
    let Some(instance) = instance else { return };
    let at = system_time(end.at);
    let mut span = CapturedSpan {
        id,
        parent: None,
        schema: String::new(),
        payload: Value::Object(serde_json::Map::new()),
        result: None,
        status: AgentStatus::Active,
        started_at: at,
        ended_at: None,
    };
    end_span(&mut span, end);
    run_of(runs, instance).spans.push(span);
}

fn end_span(span: &mut CapturedSpan, end: SpanEnd) {
    span.status = status_of(end.status);
    span.result = value_of(end.result.as_ref());
    span.ended_at = Some(system_time(end.at));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ids::SpanId;
    use crate::record::schema_name::SchemaName;

    #[test]
    fn a_merged_create_and_finish_is_one_ended_span_and_an_unknown_finish_is_kept() {
        let instance = InstanceId::generate(1);
        let id = SpanId::generate(1);
        let mut runs = Vec::new();
        let end = SpanEnd { status: FinishStatus::Failed, result: None, at: Timestamp::from_micros(2_000) };
        apply(
            &mut runs,
            Op::CreateSpan(SpanCreate {
                instance,
                id,
                parent: None,
                schema: SchemaName::new("t:one"),
                payload: None,
                started_at: Timestamp::from_micros(1_000),
                end: Some(Box::new(end.clone())),
                weight: 1,
            }),
        );
        let stranger = SpanId::generate(1);
        apply(&mut runs, Op::FinishSpan(SpanFinish { instance: Some(instance), id: stranger, end }));
        let spans = &runs[0].spans;
        assert_eq!((spans[0].id, spans[1].id), (id, stranger));
        assert_eq!((spans[0].status, spans[0].duration()), (AgentStatus::Failed, Some(Duration::from_millis(1))));
        assert_eq!((spans[1].schema.as_str(), spans[1].status), ("", AgentStatus::Failed));
        assert!(!runs[0].registered);
    }
}
