//! Ordering of queued operations: dependency tracking and create/finish merging (no I/O).
//!
//! Each operation waits only for what it depends on, so independent instances and
//! independent span trees go out concurrently while every instance keeps its order:
//! * everything of an instance waits for its register;
//! * a span create waits for its parent's create (when the parent is still queued here);
//! * a span finish waits for its own create; when that create has not been sent yet, the
//!   finish is merged into it and one create-as-terminal request goes out;
//! * an instance finish waits until every other operation of that instance is done.
//!
//! Only a permanent failure completes an operation as failed (a transient one keeps it out
//! until it is delivered). Then what depends on it still goes where the server can take it:
//! a child of a span whose create was refused is sent as a root span; a span finish whose
//! create was refused, and everything of an instance whose registration was refused, cannot be
//! taken and is reported as failed with that reason.
//!
//! A span create without its finish first lingers (`linger`): its finish usually arrives
//! within microseconds and merges, so one create-as-terminal request replaces two.
//!
//! Bulk delivery builds a batch with `begin_batch` / `next_for_batch` / `seal_batch`. Items of
//! one bulk request run in order on the server, so an operation whose dependency was placed
//! earlier in the same open batch may follow it there ("chained"); what is still chained when
//! the batch is sealed waits for the real completion again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use crate::delivery::flush_epochs::Epochs;
use crate::queue::operation::{Op, OpKind};
use crate::record::ids::{InstanceId, SpanId};

type Key = u64;

/// Keys here are PFIDs (mostly random bits) and sequence numbers, never attacker-chosen, so a
/// multiply-rotate hash (FxHash) is enough and much cheaper than SipHash in the worker loop.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Fx = BuildHasherDefault<FxHasher>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dep {
    Registered(InstanceId),
    Created(SpanId),
    Idle(InstanceId),
}

#[derive(Debug, Clone, Copy)]
enum SpanTrack {
    /// Queued here, not yet handed out: a finish can still merge into it.
    Waiting(Key),
    /// Handed to the worker (in flight or waiting for a retry).
    Sending,
}

#[derive(Debug, Default)]
struct InstanceTrack {
    registering: bool,
    register_failed: bool,
    /// Operations of this instance pushed and not completed.
    outstanding: usize,
    /// Instance finishes among them.
    finishing: usize,
}

/// Whether a pushed operation became its own entry or merged into a queued create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    Merged,
}

/// What `next_for_batch` hands out.
pub(crate) enum Taken {
    /// Placed in the open batch.
    Send(Op, Epochs),
    /// Cannot succeed because something it depends on failed (the reason); not placed.
    Doomed(Op, Epochs, String),
}

#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    /// How long a create without its finish waits for it (zero: not at all).
    linger: Duration,
    /// Lingering creates by due time (arrival order, so due times are ordered); keys no longer
    /// in `lingering_keys` (merged with their finish) are skipped.
    lingering: VecDeque<(Instant, Key)>,
    lingering_keys: HashSet<Key, Fx>,
    /// Ready only within the open batch (a dependency was placed in it), taken first.
    chained: VecDeque<Key>,
    /// Dependencies met by operations placed in the open batch.
    in_batch: HashSet<Dep, Fx>,
    /// Operations other than instance finishes placed in the open batch, by instance.
    placed: HashMap<InstanceId, usize, Fx>,
    /// Ready operations the open batch had no room for; first in line for the next one.
    skipped: Vec<Key>,
    next_key: Key,
    /// Each operation with the flush epochs of the queue operations it stands for.
    ops: HashMap<Key, (Op, Epochs), Fx>,
    ready: VecDeque<Key>,
    parked: HashMap<Dep, Vec<Key>, Fx>,
    spans: HashMap<SpanId, SpanTrack, Fx>,
    /// Spans whose create failed: their finish and their children cannot succeed.
    failed_spans: HashSet<SpanId, Fx>,
    instances: HashMap<InstanceId, InstanceTrack, Fx>,
}

impl Scheduler {
    /// A scheduler whose span creates wait up to `linger` for their finish.
    pub(crate) fn with_linger(linger: Duration) -> Scheduler {
        Scheduler { linger, ..Scheduler::default() }
    }

    /// Operations held here (queued or parked), not counting those handed out.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// Takes an operation accepted `now`.
    pub(crate) fn push(&mut self, op: Op, epochs: Epochs, now: Instant) -> Pushed {
        let Some(op) = self.try_merge(op, epochs) else { return Pushed::Merged };
        let lingers = !self.linger.is_zero() && matches!(&op, Op::CreateSpan(create) if create.end.is_none());
        let key = self.insert(op, epochs);
        if lingers {
            self.lingering.push_back((now + self.linger, key));
            self.lingering_keys.insert(key);
        } else {
            self.schedule(key);
        }
        Pushed::Queued
    }

    /// Takes back operations handed out but not processed (items after a failed one in a bulk
    /// request, or a bulk request a server without bulk refused), in their original order:
    /// each waits again for what it depends on, without lingering.
    pub(crate) fn restore(&mut self, op: Op, epochs: Epochs) {
        let key = self.next_key;
        self.next_key += 1;
        if let OpKind::CreateSpan(span, _) = op.kind() {
            self.spans.insert(span, SpanTrack::Waiting(key));
        }
        self.ops.insert(key, (op, epochs));
        self.schedule(key);
    }

    /// Schedules the lingering creates due at `now` (all of them with `now = None`).
    pub(crate) fn release_lingering(&mut self, now: Option<Instant>) {
        while let Some(&(due, key)) = self.lingering.front() {
            if now.is_some_and(|now| due > now) {
                break;
            }
            self.lingering.pop_front();
            if self.lingering_keys.remove(&key) {
                self.schedule(key);
            }
        }
    }

    /// When the next lingering create is due.
    pub(crate) fn next_linger_due(&mut self) -> Option<Instant> {
        while let Some(&(due, key)) = self.lingering.front() {
            if self.lingering_keys.contains(&key) {
                return Some(due);
            }
            self.lingering.pop_front();
        }
        None
    }

    /// Registers a new operation (instance and span tracking) under a fresh key.
    fn insert(&mut self, op: Op, epochs: Epochs) -> Key {
        let key = self.next_key;
        self.next_key += 1;
        let kind = op.kind();
        if let Some(instance) = kind.instance() {
            let track = self.instances.entry(instance).or_default();
            track.outstanding += 1;
            match kind {
                OpKind::Register(_) => track.registering = true,
                OpKind::Finish(_) => track.finishing += 1,
                _ => {}
            }
        }
        if let OpKind::CreateSpan(span, _) = kind {
            self.spans.insert(span, SpanTrack::Waiting(key));
        }
        self.ops.insert(key, (op, epochs));
        key
    }

    /// A finish whose create is still queued here rides along with it (then `None`).
    fn try_merge(&mut self, op: Op, epochs: Epochs) -> Option<Op> {
        let Op::FinishSpan(finish) = op else { return Some(op) };
        if let Some(SpanTrack::Waiting(key)) = self.spans.get(&finish.id)
            && let Some((Op::CreateSpan(create), create_epochs)) = self.ops.get_mut(key)
            && create.end.is_none()
        {
            create.end = Some(Box::new(finish.end));
            create.weight += 1;
            *create_epochs = create_epochs.merged(epochs);
            // Nothing left to wait for: the create-as-terminal goes out now.
            let key = *key;
            if self.lingering_keys.remove(&key) {
                self.schedule(key);
            }
            return None;
        }
        Some(Op::FinishSpan(finish))
    }

    /// Next operation ready to send (with its flush epochs), in arrival order among the ready
    /// ones.
    pub(crate) fn next_ready(&mut self) -> Option<(Op, Epochs)> {
        while let Some(key) = self.ready.pop_front() {
            self.detach_from_refused_parent(key);
            let Some((op, epochs)) = self.ops.remove(&key) else { continue };
            if let OpKind::CreateSpan(span, _) = op.kind() {
                self.spans.insert(span, SpanTrack::Sending);
            }
            return Some((op, epochs));
        }
        None
    }

    /// Opens a batch: operations placed from now on until `seal_batch` share one bulk request.
    pub(crate) fn begin_batch(&mut self) {
        debug_assert!(self.in_batch.is_empty() && self.chained.is_empty() && self.skipped.is_empty());
    }

    /// The next operation for the open batch: those chained to it first, then the ready ones.
    /// `fits` decides whether the batch takes it (it may keep the operation's bytes); one it
    /// refuses stays first in line for the next batch. `None` when nothing is left to offer.
    pub(crate) fn next_for_batch(&mut self, mut fits: impl FnMut(&Op) -> bool) -> Option<Taken> {
        loop {
            let key = self.chained.pop_front().or_else(|| self.ready.pop_front())?;
            self.detach_from_refused_parent(key);
            let Some((op, _)) = self.ops.get(&key) else { continue };
            if let Some(reason) = self.doomed(op) {
                let (op, epochs) = self.ops.remove(&key)?;
                return Some(Taken::Doomed(op, epochs, reason));
            }
            if !fits(op) {
                self.skipped.push(key);
                continue;
            }
            let (op, epochs) = self.ops.remove(&key)?;
            self.place(op.kind());
            return Some(Taken::Send(op, epochs));
        }
    }

    /// Closes the open batch: what was chained to it waits for the real completions again, and
    /// what it had no room for goes first next time.
    pub(crate) fn seal_batch(&mut self) {
        self.in_batch.clear();
        self.placed.clear();
        for key in std::mem::take(&mut self.chained) {
            self.schedule(key);
        }
        // A skipped operation may have been chained too: it is checked again like the others.
        for key in std::mem::take(&mut self.skipped).into_iter().rev() {
            self.schedule_at(key, true);
        }
    }

    /// Records that an operation of `kind` is placed in the open batch and chains what only
    /// waited for it.
    fn place(&mut self, kind: OpKind) {
        match kind {
            OpKind::CreateSpan(span, _) => {
                self.spans.insert(span, SpanTrack::Sending);
                self.chain(Dep::Created(span));
            }
            OpKind::Register(instance) => self.chain(Dep::Registered(instance)),
            _ => {}
        }
        if matches!(kind, OpKind::Finish(_)) {
            return;
        }
        let Some(instance) = kind.instance() else { return };
        let placed = self.placed.entry(instance).or_default();
        *placed += 1;
        let placed = *placed;
        if self.instances.get(&instance).is_some_and(|t| t.outstanding.saturating_sub(t.finishing) == placed) {
            self.chain(Dep::Idle(instance));
        }
    }

    fn chain(&mut self, dep: Dep) {
        self.in_batch.insert(dep);
        self.release(dep);
    }

    /// A span create whose parent's create was refused goes as a root span: the server cannot
    /// take a parent it does not have, and the span itself is worth keeping.
    fn detach_from_refused_parent(&mut self, key: Key) {
        if let Some((Op::CreateSpan(create), _)) = self.ops.get_mut(&key)
            && let Some(parent) = create.parent.filter(|parent| self.failed_spans.contains(parent))
        {
            tracing::warn!(span = %create.id, %parent, "prefactor: the parent span was refused; sending its child as a root span");
            create.parent = None;
        }
    }

    /// Whether the create of `span` failed here (permanently).
    pub(crate) fn create_failed(&self, span: SpanId) -> bool {
        self.failed_spans.contains(&span)
    }

    /// Why `op` cannot succeed because something it depends on failed, if so.
    pub(crate) fn doomed(&self, op: &Op) -> Option<String> {
        let kind = op.kind();
        if !matches!(kind, OpKind::Register(_))
            && let Some(instance) = kind.instance()
            && self.instances.get(&instance).is_some_and(|t| t.register_failed)
        {
            return Some(format!("the registration of instance {instance} failed"));
        }
        match op {
            Op::FinishSpan(finish) => {
                self.failed_spans.contains(&finish.id).then(|| format!("the create of span {} failed", finish.id))
            }
            _ => None,
        }
    }

    /// Records the final outcome of an operation handed out by `next_ready` and releases what
    /// waited for it.
    pub(crate) fn complete(&mut self, kind: OpKind, succeeded: bool) {
        match kind {
            OpKind::Register(instance) => {
                if let Some(track) = self.instances.get_mut(&instance) {
                    track.registering = false;
                    track.register_failed |= !succeeded;
                }
                self.release(Dep::Registered(instance));
            }
            OpKind::CreateSpan(span, _) => {
                self.spans.remove(&span);
                if !succeeded {
                    self.failed_spans.insert(span);
                }
                self.release(Dep::Created(span));
            }
            OpKind::Finish(instance) => {
                if let Some(track) = self.instances.get_mut(&instance) {
                    track.finishing = track.finishing.saturating_sub(1);
                }
            }
            _ => {}
        }
        let Some(instance) = kind.instance() else { return };
        let Some(track) = self.instances.get_mut(&instance) else { return };
        track.outstanding = track.outstanding.saturating_sub(1);
        let idle = track.outstanding == track.finishing;
        if track.outstanding == 0 && !track.registering {
            self.instances.remove(&instance);
        }
        if idle {
            self.release(Dep::Idle(instance));
        }
    }

    fn release(&mut self, dep: Dep) {
        if let Some(keys) = self.parked.remove(&dep) {
            for key in keys {
                self.schedule(key);
            }
        }
    }

    fn schedule(&mut self, key: Key) {
        self.schedule_at(key, false);
    }

    /// Parks `key` on what it waits for, or queues it as ready (`first`: ahead of the others)
    /// or chained to the open batch.
    fn schedule_at(&mut self, key: Key, first: bool) {
        let Some((op, _)) = self.ops.get(&key) else { return };
        let (registered, ordered) = self.unmet_dependencies(op);
        let mut chained = false;
        for dep in [registered, ordered].into_iter().flatten() {
            if self.in_batch.contains(&dep) {
                chained = true;
            } else {
                self.parked.entry(dep).or_default().push(key);
                return;
            }
        }
        match (chained, first) {
            (true, _) => self.chained.push_back(key),
            (false, true) => self.ready.push_front(key),
            (false, false) => self.ready.push_back(key),
        }
    }

    /// What `op` still waits for: its instance's register, then its parent's or its own create
    /// or its instance's other operations.
    fn unmet_dependencies(&self, op: &Op) -> (Option<Dep>, Option<Dep>) {
        let kind = op.kind();
        let registering = (!matches!(kind, OpKind::Register(_)))
            .then(|| kind.instance())
            .flatten()
            .filter(|instance| self.instances.get(instance).is_some_and(|t| t.registering))
            .map(Dep::Registered);
        (registering, self.unmet_order_dependency(kind, op))
    }

    fn unmet_order_dependency(&self, kind: OpKind, op: &Op) -> Option<Dep> {
        match (kind, op) {
            (OpKind::CreateSpan(..), Op::CreateSpan(create)) => {
                create.parent.filter(|parent| self.spans.contains_key(parent)).map(Dep::Created)
            }
            (OpKind::FinishSpan(span, _), _) => self.spans.contains_key(&span).then_some(Dep::Created(span)),
            (OpKind::Finish(instance), _) => self
                .instances
                .get(&instance)
                .is_some_and(|t| t.outstanding > t.finishing)
                .then_some(Dep::Idle(instance)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::record::timestamp::Timestamp;

    use prefactor_protocol::{FinishStatus, RegisterInstanceRequest};

    use super::*;
    use crate::queue::operation::{SpanCreate, SpanEnd, SpanFinish};
    use crate::record::schema_name::SchemaName;

    struct Instance {
        id: InstanceId,
    }

    fn push(s: &mut Scheduler, op: Op) -> Pushed {
        s.push(op, Epochs::at(0), Instant::now())
    }

    fn next(s: &mut Scheduler) -> Option<Op> {
        s.next_ready().map(|(op, _)| op)
    }

    fn instance() -> Instance {
        Instance { id: InstanceId::generate(1) }
    }

    fn create(i: &Instance, parent: Option<SpanId>) -> (SpanId, Op) {
        let id = SpanId::generate(1);
        let op = Op::CreateSpan(SpanCreate {
            instance: i.id,
            id,
            parent,
            schema: SchemaName::new("t:x"),
            payload: None,
            started_at: Timestamp::now(),
            end: None,
            weight: 1,
        });
        (id, op)
    }

    fn finish(i: &Instance, id: SpanId) -> Op {
        let end = SpanEnd { status: FinishStatus::Complete, result: None, at: Timestamp::now() };
        Op::FinishSpan(SpanFinish { instance: Some(i.id), id, end })
    }

    #[test]
    fn queued_create_and_finish_merge_into_one_request() {
        let i = instance();
        let mut s = Scheduler::default();
        let (id, op) = create(&i, None);
        assert_eq!(s.push(op, Epochs::at(3), Instant::now()), Pushed::Queued);
        assert_eq!(s.push(finish(&i, id), Epochs::at(5), Instant::now()), Pushed::Merged);
        let Some((Op::CreateSpan(c), epochs)) = s.next_ready() else { panic!("expected the create") };
        assert_eq!(c.weight, 2);
        assert_eq!(epochs, Epochs::at(3).merged(Epochs::at(5)), "each half keeps its flush epoch");
        assert!(c.end.is_some());
        assert!(next(&mut s).is_none());
    }

    #[test]
    fn children_and_finish_wait_for_the_create_in_flight() {
        let i = instance();
        let mut s = Scheduler::default();
        let (parent, op) = create(&i, None);
        push(&mut s, op);
        let sent = next(&mut s).map(|op| op.kind());
        assert_eq!(sent, Some(OpKind::CreateSpan(parent, i.id)));
        let (child, op) = create(&i, Some(parent));
        push(&mut s, op);
        push(&mut s, finish(&i, parent));
        assert!(next(&mut s).is_none(), "child and finish must wait for the parent create");
        s.complete(OpKind::CreateSpan(parent, i.id), true);
        assert_eq!(next(&mut s).map(|o| o.kind()), Some(OpKind::CreateSpan(child, i.id)));
        assert_eq!(next(&mut s).map(|o| o.kind()), Some(OpKind::FinishSpan(parent, Some(i.id))));
    }

    #[test]
    fn everything_waits_for_register_and_instance_finish_waits_for_the_rest() {
        let i = instance();
        let mut s = Scheduler::default();
        push(
            &mut s,
            Op::Register {
                instance: i.id,
                request: Box::new(RegisterInstanceRequest::default()),
                schema: None,
                held: false,
            },
        );
        push(&mut s, Op::Start { instance: i.id, at: Timestamp::now() });
        let (span, op) = create(&i, None);
        push(&mut s, op);
        push(&mut s, Op::Finish { instance: i.id, status: FinishStatus::Complete, at: Timestamp::now() });
        assert_eq!(next(&mut s).map(|o| o.kind()), Some(OpKind::Register(i.id)));
        assert!(next(&mut s).is_none());
        s.complete(OpKind::Register(i.id), true);
        assert_eq!(next(&mut s).map(|o| o.kind()), Some(OpKind::Start(i.id)));
        assert_eq!(next(&mut s).map(|o| o.kind()), Some(OpKind::CreateSpan(span, i.id)));
        assert!(next(&mut s).is_none(), "finish waits for start and span");
        s.complete(OpKind::Start(i.id), true);
        assert!(next(&mut s).is_none());
        s.complete(OpKind::CreateSpan(span, i.id), true);
        assert_eq!(next(&mut s).map(|o| o.kind()), Some(OpKind::Finish(i.id)));
        s.complete(OpKind::Finish(i.id), true);
        assert_eq!(s.len(), 0);
        assert!(s.instances.is_empty());
    }

    /// Everything the open batch takes (all of it fits), by kind.
    fn take_batch(s: &mut Scheduler, room: usize) -> Vec<OpKind> {
        let mut taken = Vec::new();
        s.begin_batch();
        let mut left = room;
        while let Some(next) = s.next_for_batch(|_| {
            let fits = left > 0;
            left = left.saturating_sub(1);
            fits
        }) {
            match next {
                Taken::Send(op, _) => taken.push(op.kind()),
                Taken::Doomed(op, ..) => panic!("nothing failed, yet {:?} is doomed", op.kind()),
            }
        }
        s.seal_batch();
        taken
    }

    fn run(i: &Instance, s: &mut Scheduler) -> (SpanId, SpanId) {
        push(
            s,
            Op::Register {
                instance: i.id,
                request: Box::new(RegisterInstanceRequest::default()),
                schema: None,
                held: false,
            },
        );
        push(s, Op::Start { instance: i.id, at: Timestamp::now() });
        let (parent, op) = create(i, None);
        push(s, op);
        let (child, op) = create(i, Some(parent));
        push(s, op);
        push(s, finish(i, child));
        push(s, Op::Finish { instance: i.id, status: FinishStatus::Complete, at: Timestamp::now() });
        (parent, child)
    }

    #[test]
    fn a_whole_run_goes_into_one_batch_in_dependency_order() {
        let i = instance();
        let mut s = Scheduler::default();
        let (parent, child) = run(&i, &mut s);
        let taken = take_batch(&mut s, usize::MAX);
        assert_eq!(
            taken,
            [
                OpKind::Register(i.id),
                OpKind::Start(i.id),
                OpKind::CreateSpan(parent, i.id),
                OpKind::CreateSpan(child, i.id),
                OpKind::Finish(i.id),
            ],
            "the child's finish merged into its create; the instance finish comes last"
        );
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn what_a_full_batch_left_waits_for_the_real_completion() {
        let i = instance();
        let mut s = Scheduler::default();
        let (parent, child) = run(&i, &mut s);
        assert_eq!(take_batch(&mut s, 2), [OpKind::Register(i.id), OpKind::Start(i.id)]);
        assert!(take_batch(&mut s, usize::MAX).is_empty(), "the rest waits for the register in flight");
        s.complete(OpKind::Register(i.id), true);
        assert_eq!(
            take_batch(&mut s, usize::MAX),
            [OpKind::CreateSpan(parent, i.id), OpKind::CreateSpan(child, i.id)],
            "the instance finish still waits for the start in flight"
        );
        s.complete(OpKind::Start(i.id), true);
        assert!(take_batch(&mut s, usize::MAX).is_empty());
        s.complete(OpKind::CreateSpan(parent, i.id), true);
        s.complete(OpKind::CreateSpan(child, i.id), true);
        assert_eq!(take_batch(&mut s, usize::MAX), [OpKind::Finish(i.id)]);
    }

    #[test]
    fn items_not_run_are_restored_and_wait_for_what_failed() {
        let i = instance();
        let mut s = Scheduler::default();
        let (parent, child) = run(&i, &mut s);
        s.begin_batch();
        let mut sent = Vec::new();
        while let Some(Taken::Send(op, epochs)) = s.next_for_batch(|_| true) {
            sent.push((op, epochs));
        }
        s.seal_batch();
        // The server ran register and start, the parent create failed, the rest did not run.
        let mut sent = sent.into_iter();
        for _ in 0..2 {
            let (op, _) = sent.next().unwrap();
            s.complete(op.kind(), true);
        }
        let (failed, _) = sent.next().unwrap();
        assert_eq!(failed.kind(), OpKind::CreateSpan(parent, i.id));
        s.complete(failed.kind(), false);
        for (op, epochs) in sent {
            s.restore(op, epochs);
        }
        let (op, _) = s.next_ready().unwrap();
        assert_eq!(op.kind(), OpKind::CreateSpan(child, i.id));
        assert!(s.doomed(&op).is_none(), "a child of a refused span can still be taken");
        let Op::CreateSpan(create) = &op else { unreachable!() };
        assert_eq!(create.parent, None, "sent as a root span");
        s.complete(op.kind(), true);
        assert_eq!(next(&mut s).map(|o| o.kind()), Some(OpKind::Finish(i.id)));
    }

    #[test]
    fn a_create_lingers_until_its_finish_or_the_deadline() {
        let i = instance();
        let linger = Duration::from_millis(50);
        let mut s = Scheduler::with_linger(linger);
        let at = Instant::now();
        let (merged, op) = create(&i, None);
        s.push(op, Epochs::at(0), at);
        let (open, op) = create(&i, None);
        s.push(op, Epochs::at(0), at);
        assert!(next(&mut s).is_none(), "both creates linger");
        assert_eq!(s.next_linger_due(), Some(at + linger));
        assert_eq!(s.push(finish(&i, merged), Epochs::at(0), at), Pushed::Merged);
        let Some(Op::CreateSpan(create)) = next(&mut s) else { panic!("the finished span goes at once") };
        assert_eq!((create.id, create.end.is_some()), (merged, true));
        s.release_lingering(Some(at + linger / 2));
        assert!(next(&mut s).is_none());
        s.release_lingering(Some(at + linger));
        assert_eq!(next(&mut s).map(|o| o.kind()), Some(OpKind::CreateSpan(open, i.id)), "sent active");
        assert_eq!(s.next_linger_due(), None);
    }

    #[test]
    fn two_instance_finishes_do_not_wait_for_each_other() {
        let i = instance();
        let mut s = Scheduler::default();
        push(&mut s, Op::Finish { instance: i.id, status: FinishStatus::Complete, at: Timestamp::now() });
        push(&mut s, Op::Finish { instance: i.id, status: FinishStatus::Failed, at: Timestamp::now() });
        assert!(next(&mut s).is_some());
        assert!(next(&mut s).is_some());
    }
}
