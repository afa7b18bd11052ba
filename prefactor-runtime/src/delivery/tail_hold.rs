//! `TailHold`: the operations of unsampled runs that a tail rule may still keep, held by the
//! worker (never the agent's thread) until their run is decided (no I/O).
//!
//! A run is held from its register (flagged `held` by head sampling) and decided:
//! * kept, as soon as one of its spans or the run itself fails (`keep_failed_runs`), or one of
//!   its operations comes later than `keep_slow_runs` after its start: everything held goes on
//!   in its order, and what the run sends later is not held;
//! * sampled out, when it finishes otherwise: everything held is discarded, and so is what the
//!   run sends after its finish (a span guard dropped late);
//! * by [`SampleOverflow`] when it outgrows the per-run budget, or is the oldest held run when
//!   all of them outgrow the total budget;
//! * at close, when it is still open: kept if it is slow by then, else sampled out.
//!
//! Held operations are still counted against the queue's capacity (they are not settled), so
//! the total budget is at most half of it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use prefactor_protocol::FinishStatus;

use crate::config::Config;
use crate::config::sampling::SampleOverflow;
use crate::delivery::flush_epochs::Epochs;
use crate::queue::operation::Op;
use crate::record::ids::InstanceId;
use crate::record::timestamp::Timestamp;
use crate::report::stats::Counters;

/// Discarded runs remembered so that their late operations are discarded too. An operation
/// coming after this many other runs were discarded since its own is held as a run of its own
/// and decided at close.
const REMEMBERED_DISCARDS: usize = 65_536;

/// What the register of a held run is counted as (its request; the schema document is shared
/// by every run and not counted).
const REGISTER_BYTES: u64 = 1024;

/// Why a held run was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Kept: the run or one of its spans failed.
    Failed,
    /// Kept: the run lasted longer than the threshold.
    Slow,
    /// Kept: it outgrew the hold budget (`SampleOverflow::Keep`).
    OverflowKept,
    /// Discarded: it outgrew the hold budget (`SampleOverflow::Drop`).
    OverflowDropped,
    /// Discarded: it ended (or the client closed) with no rule matching.
    SampledOut,
    /// Discarded: an operation of a run discarded earlier.
    Late,
}

impl Verdict {
    /// Whether the run's operations go on to be sent.
    pub(crate) fn keeps(self) -> bool {
        matches!(self, Verdict::Failed | Verdict::Slow | Verdict::OverflowKept)
    }
}

/// A decided run: its held operations in arrival order.
#[derive(Debug)]
pub(crate) struct Decided {
    pub(crate) verdict: Verdict,
    pub(crate) ops: Vec<(Op, Epochs)>,
    /// Span creates among `ops`.
    pub(crate) spans: u64,
}

impl Decided {
    /// Queue operations it stands for.
    pub(crate) fn weight(&self) -> u64 {
        self.ops.iter().map(|(op, _)| op.weight()).sum()
    }

    /// Counts the decision in the client's stats (the kept operations are counted again as
    /// they are sent; the discarded ones here, as sampled out).
    pub(crate) fn count_into(&self, counters: &Counters) {
        match self.verdict {
            Verdict::Failed | Verdict::Slow => Counters::add(&counters.kept_by_tail_rule, 1),
            Verdict::OverflowKept => Counters::add(&counters.hold_overflows, 1),
            Verdict::OverflowDropped => {
                Counters::add(&counters.hold_overflows, 1);
                Counters::add(&counters.sampled_out_runs, 1);
            }
            Verdict::SampledOut => Counters::add(&counters.sampled_out_runs, 1),
            Verdict::Late => {}
        }
        if !self.verdict.keeps() {
            Counters::add(&counters.sampled_out, self.weight());
            Counters::add(&counters.sampled_out_spans, self.spans);
        }
    }
}

#[derive(Debug)]
struct HeldRun {
    ops: Vec<(Op, Epochs)>,
    bytes: u64,
    spans: u64,
    /// Its start (the register's arrival until the start operation says).
    first_at: Timestamp,
    /// Its place in `arrival`.
    seq: u64,
}

/// The held runs of one worker.
#[derive(Debug)]
pub(crate) struct TailHold {
    keep_failed: bool,
    slower_than_micros: Option<u64>,
    overflow: SampleOverflow,
    run_ops: u64,
    run_bytes: u64,
    total_ops: u64,
    total_bytes: u64,
    runs: HashMap<InstanceId, HeldRun>,
    /// Open runs by arrival, oldest first.
    arrival: BTreeMap<u64, InstanceId>,
    next_seq: u64,
    held_ops: u64,
    held_bytes: u64,
    discarded: HashSet<InstanceId>,
    discarded_order: VecDeque<InstanceId>,
    decided: Vec<Decided>,
}

impl TailHold {
    pub(crate) fn new(config: &Config) -> TailHold {
        let sampling = config.sampling();
        TailHold {
            keep_failed: sampling.keep_failed,
            slower_than_micros: sampling.keep_slower_than.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            overflow: sampling.overflow,
            run_ops: sampling.budget.run_ops(),
            run_bytes: sampling.budget.run_bytes(),
            total_ops: sampling.total_ops_held(config.queue_capacity()),
            total_bytes: sampling.budget.total_bytes(),
            runs: HashMap::new(),
            arrival: BTreeMap::new(),
            next_seq: 0,
            held_ops: 0,
            held_bytes: 0,
            discarded: HashSet::new(),
            discarded_order: VecDeque::new(),
            decided: Vec::new(),
        }
    }

    /// Whether any operation could be held or discarded here (else every one passes).
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.runs.is_empty() && self.discarded.is_empty()
    }

    /// Whether runs are waiting for their end.
    pub(crate) fn has_open_runs(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Operations held now.
    #[cfg(test)]
    pub(crate) fn held_ops(&self) -> u64 {
        self.held_ops
    }

    /// Takes `op` if it belongs to a held run (or to one discarded), else gives it back. What
    /// this decided is in [`take_decided`](TailHold::take_decided). `now` is read only when a
    /// held run opens (a clock read per operation would cost every other one).
    pub(crate) fn take(&mut self, op: Op, epochs: Epochs, now: impl FnOnce() -> Timestamp) -> Option<(Op, Epochs)> {
        let Some(instance) = op.kind().instance() else { return Some((op, epochs)) };
        if let Op::Register { held: true, .. } = op {
            self.open(instance, now());
        } else if !self.runs.contains_key(&instance) {
            if !self.discarded.contains(&instance) {
                return Some((op, epochs));
            }
            let spans = u64::from(matches!(op, Op::CreateSpan(_)));
            self.decided.push(Decided { verdict: Verdict::Late, ops: vec![(op, epochs)], spans });
            return None;
        }
        self.hold(instance, op, epochs);
        None
    }

    /// The runs decided since the last call.
    pub(crate) fn take_decided(&mut self) -> Vec<Decided> {
        std::mem::take(&mut self.decided)
    }

    /// Decides every open run (the client closes): kept if slow by `now`, else sampled out.
    pub(crate) fn decide_all(&mut self, now: Timestamp) {
        while let Some((_, instance)) = self.arrival.pop_first() {
            let Some(run) = self.runs.get(&instance) else { continue };
            let verdict = if self.is_slow(run.first_at, now) { Verdict::Slow } else { Verdict::SampledOut };
            self.decide(instance, verdict);
        }
    }

    fn open(&mut self, instance: InstanceId, now: Timestamp) {
        // A register sent again with a known id (a caller-chosen id reused) starts over.
        self.discarded.remove(&instance);
        if !self.runs.contains_key(&instance) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.runs.insert(instance, HeldRun { ops: Vec::new(), bytes: 0, spans: 0, first_at: now, seq });
            self.arrival.insert(seq, instance);
        }
    }

    fn hold(&mut self, instance: InstanceId, mut op: Op, epochs: Epochs) {
        // It may wait long: free the agent thread's memory now (`Op::rehome`).
        op.rehome();
        let (bytes, weight) = (bytes_of(&op), op.weight());
        let verdict = {
            let Some(run) = self.runs.get_mut(&instance) else { return };
            if let Op::Start { at, .. } = op {
                run.first_at = at;
            }
            let failed = failed(&op);
            let at = at_of(&op);
            let finished = matches!(op, Op::Finish { .. });
            run.spans += u64::from(matches!(op, Op::CreateSpan(_)));
            run.bytes += bytes;
            run.ops.push((op, epochs));
            let first_at = run.first_at;
            let over = run.ops.len() as u64 > self.run_ops || run.bytes > self.run_bytes;
            self.held_ops += weight;
            self.held_bytes += bytes;
            if failed && self.keep_failed {
                Some(Verdict::Failed)
            } else if at.is_some_and(|at| self.is_slow(first_at, at)) {
                Some(Verdict::Slow)
            } else if finished {
                Some(Verdict::SampledOut)
            } else if over {
                Some(self.overflow_verdict())
            } else {
                None
            }
        };
        if let Some(verdict) = verdict {
            self.decide(instance, verdict);
        }
        while self.held_ops > self.total_ops || self.held_bytes > self.total_bytes {
            let Some((_, oldest)) = self.arrival.pop_first() else { break };
            let verdict = self.overflow_verdict();
            self.decide(oldest, verdict);
        }
    }

    fn overflow_verdict(&self) -> Verdict {
        match self.overflow {
            SampleOverflow::Drop => Verdict::OverflowDropped,
            _ => Verdict::OverflowKept,
        }
    }

    fn is_slow(&self, first_at: Timestamp, at: Timestamp) -> bool {
        self.slower_than_micros.is_some_and(|limit| at.unix_micros().saturating_sub(first_at.unix_micros()) > limit)
    }

    fn decide(&mut self, instance: InstanceId, verdict: Verdict) {
        let Some(run) = self.runs.remove(&instance) else { return };
        self.arrival.remove(&run.seq);
        self.held_ops -= run.ops.iter().map(|(op, _)| op.weight()).sum::<u64>();
        self.held_bytes -= run.bytes;
        if !verdict.keeps() {
            self.remember_discarded(instance);
        }
        self.decided.push(Decided { verdict, ops: run.ops, spans: run.spans });
    }

    fn remember_discarded(&mut self, instance: InstanceId) {
        if self.discarded.insert(instance) {
            self.discarded_order.push_back(instance);
        }
        while self.discarded_order.len() > REMEMBERED_DISCARDS {
            if let Some(oldest) = self.discarded_order.pop_front() {
                self.discarded.remove(&oldest);
            }
        }
    }
}

/// Whether `op` ends the run or a span as `failed`.
fn failed(op: &Op) -> bool {
    match op {
        Op::Finish { status, .. } => *status == FinishStatus::Failed,
        Op::FinishSpan(finish) => finish.end.status == FinishStatus::Failed,
        Op::CreateSpan(create) => create.end.as_ref().is_some_and(|end| end.status == FinishStatus::Failed),
        _ => false,
    }
}

/// When `op` happened, for the slow rule (its latest time).
fn at_of(op: &Op) -> Option<Timestamp> {
    match op {
        Op::Start { at, .. } | Op::Finish { at, .. } => Some(*at),
        Op::FinishSpan(finish) => Some(finish.end.at),
        Op::CreateSpan(create) => Some(create.end.as_ref().map_or(create.started_at, |end| end.at)),
        Op::Register { .. } | Op::Quality { .. } => None,
    }
}

/// What holding `op` costs in memory, roughly: the operation and its payload texts.
fn bytes_of(op: &Op) -> u64 {
    let text = |payload: Option<&crate::record::payload::Payload>| payload.map_or(0, |p| p.as_json().len() as u64);
    let own = match op {
        Op::Register { .. } => REGISTER_BYTES,
        Op::CreateSpan(create) => {
            text(create.payload.as_ref()) + create.end.as_ref().map_or(0, |end| text(end.result.as_ref()))
        }
        Op::FinishSpan(finish) => text(finish.end.result.as_ref()),
        Op::Quality { payload, name, key, .. } => text(payload.as_ref()) + (name.len() + key.len()) as u64,
        Op::Start { .. } | Op::Finish { .. } => 0,
    };
    size_of::<Op>() as u64 + own
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prefactor_protocol::RegisterInstanceRequest;

    use super::*;
    use crate::config::sampling::HoldBudget;
    use crate::queue::operation::{OpKind, SpanCreate, SpanEnd, SpanFinish};
    use crate::record::ids::SpanId;
    use crate::record::payload::Payload;
    use crate::record::schema_name::SchemaName;

    fn hold_with(build: impl FnOnce(crate::config::ConfigBuilder) -> crate::config::ConfigBuilder) -> TailHold {
        let builder = crate::config::Config::builder().api_url("http://127.0.0.1:9").api_token("t").sample_rate(0.0);
        TailHold::new(&build(builder).build().expect("valid config"))
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + ms * 1000)
    }

    fn register(instance: InstanceId) -> Op {
        Op::Register { instance, request: Box::new(RegisterInstanceRequest::default()), schema: None, held: true }
    }

    fn span(instance: InstanceId, status: Option<FinishStatus>, ms: u64, payload: usize) -> Op {
        Op::CreateSpan(SpanCreate {
            instance,
            id: SpanId::generate(1),
            parent: None,
            schema: SchemaName::new("t:x"),
            payload: Some(Payload::from(serde_json::json!({ "text": "x".repeat(payload) }))),
            started_at: at(ms),
            end: status.map(|status| Box::new(SpanEnd { status, result: None, at: at(ms) })),
            weight: 1,
        })
    }

    fn finish(instance: InstanceId, status: FinishStatus, ms: u64) -> Op {
        Op::Finish { instance, status, at: at(ms) }
    }

    /// Feeds `ops` and returns the verdicts, each with its number of operations.
    fn feed(hold: &mut TailHold, ops: Vec<Op>) -> Vec<(Verdict, usize)> {
        for op in ops {
            assert!(hold.take(op, Epochs::at(0), || at(0)).is_none(), "held");
        }
        hold.take_decided().into_iter().map(|d| (d.verdict, d.ops.len())).collect()
    }

    fn run(instance: InstanceId, last: Op) -> Vec<Op> {
        vec![
            register(instance),
            Op::Start { instance, at: at(0) },
            span(instance, Some(FinishStatus::Complete), 1, 10),
            span(instance, None, 2, 10),
            last,
        ]
    }

    #[test]
    fn a_failed_run_is_kept_whole_and_a_complete_one_discarded_with_its_late_operations() {
        let mut hold = hold_with(|b| b);
        let (kept, dropped) = (InstanceId::generate(1), InstanceId::generate(1));
        assert_eq!(feed(&mut hold, run(kept, finish(kept, FinishStatus::Failed, 5))), [(Verdict::Failed, 5)]);
        assert_eq!(
            feed(&mut hold, run(dropped, finish(dropped, FinishStatus::Complete, 5))),
            [(Verdict::SampledOut, 5)]
        );
        let late = Op::FinishSpan(SpanFinish {
            instance: Some(dropped),
            id: SpanId::generate(1),
            end: SpanEnd { status: FinishStatus::Complete, result: None, at: at(9) },
        });
        assert_eq!(feed(&mut hold, vec![late]), [(Verdict::Late, 1)]);
        let after = finish(kept, FinishStatus::Failed, 9);
        assert!(hold.take(after, Epochs::at(0), || at(0)).is_some(), "a kept run's later operations pass");
        assert_eq!(hold.held_ops(), 0);
    }

    #[test]
    fn a_failed_span_releases_the_run_at_once() {
        let mut hold = hold_with(|b| b);
        let i = InstanceId::generate(1);
        let ops = vec![register(i), Op::Start { instance: i, at: at(0) }, span(i, Some(FinishStatus::Failed), 1, 1)];
        assert_eq!(feed(&mut hold, ops), [(Verdict::Failed, 3)]);
        assert!(!hold.has_open_runs());
    }

    #[test]
    fn a_slow_run_is_kept_and_an_open_one_is_decided_at_close() {
        let mut hold = hold_with(|b| b.keep_failed_runs(false).keep_slow_runs(Duration::from_millis(100)));
        let (slow, quick, open) = (InstanceId::generate(1), InstanceId::generate(1), InstanceId::generate(1));
        assert_eq!(feed(&mut hold, run(slow, finish(slow, FinishStatus::Complete, 150))), [(Verdict::Slow, 5)]);
        assert_eq!(feed(&mut hold, run(quick, finish(quick, FinishStatus::Failed, 50))), [(Verdict::SampledOut, 5)]);
        assert!(feed(&mut hold, vec![register(open), Op::Start { instance: open, at: at(0) }]).is_empty());
        hold.decide_all(at(50));
        assert_eq!(hold.take_decided().iter().map(|d| d.verdict).collect::<Vec<_>>(), [Verdict::SampledOut]);
        let later = InstanceId::generate(1);
        assert!(feed(&mut hold, vec![register(later), Op::Start { instance: later, at: at(0) }]).is_empty());
        hold.decide_all(at(500));
        assert_eq!(hold.take_decided().iter().map(|d| d.verdict).collect::<Vec<_>>(), [Verdict::Slow]);
    }

    #[test]
    fn a_run_over_its_budget_overflows_as_configured() {
        let budget = HoldBudget::default().per_run(3, 1 << 20);
        for (overflow, verdict) in
            [(SampleOverflow::Keep, Verdict::OverflowKept), (SampleOverflow::Drop, Verdict::OverflowDropped)]
        {
            let mut hold = hold_with(|b| b.sample_hold_budget(budget).sample_overflow(overflow));
            let i = InstanceId::generate(1);
            let ops = vec![register(i), span(i, None, 1, 1), span(i, None, 1, 1), span(i, None, 1, 1)];
            assert_eq!(feed(&mut hold, ops), [(verdict, 4)]);
            let next = span(i, None, 2, 1);
            assert_eq!(hold.take(next, Epochs::at(0), || at(0)).is_some(), overflow == SampleOverflow::Keep);
        }
    }

    #[test]
    fn the_total_budget_decides_the_oldest_run_first() {
        let budget = HoldBudget::default().per_run(1_000, 2 << 20).total(1_000, (3 << 20) + (1 << 19));
        let mut hold = hold_with(|b| b.sample_hold_budget(budget).sample_overflow(SampleOverflow::Drop));
        let runs: Vec<InstanceId> = (0..4).map(|_| InstanceId::generate(1)).collect();
        let mut decided = Vec::new();
        for &i in &runs {
            // Each run holds a little over 1 MiB: the fourth goes over the 3.5 MiB total.
            decided.extend(feed(&mut hold, vec![register(i), span(i, None, 1, 1 << 20)]));
        }
        assert_eq!(decided, [(Verdict::OverflowDropped, 2)]);
        let oldest = span(runs[0], None, 2, 1);
        assert!(hold.take(oldest, Epochs::at(0), || at(0)).is_none(), "the oldest run was dropped");
        assert_eq!(hold.take_decided()[0].verdict, Verdict::Late);
        assert!(hold.held_ops() <= 6);
    }

    #[test]
    fn operations_of_other_runs_pass() {
        let mut hold = hold_with(|b| b);
        let op = finish(InstanceId::generate(1), FinishStatus::Failed, 1);
        let kind = op.kind();
        assert_eq!(hold.take(op, Epochs::at(0), || at(0)).map(|(op, _)| op.kind()), Some(kind));
        assert!(matches!(kind, OpKind::Finish(_)));
    }
}
