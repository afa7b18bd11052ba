//! `OpQueue`: the bounded queue from the agent's threads to the worker, with coalesced
//! wake-ups.
//!
//! A `Mutex<VecDeque>` that the worker empties in one swap: a push is one uncontended lock
//! (the worker holds it only for the swap), and the worker never waits for a producer. The
//! bound is exact: the capacity covers every operation accepted and not yet settled (queued
//! here, waiting in the worker, or in flight), checked under the lock against the worker's
//! `settled` count, so concurrent producers cannot overshoot it.
//!
//! The worker's state is kept under the same lock: running, dozing (it drains the queue on a
//! short tick by itself, because operations kept coming) or parked (idle, it waits to be
//! woken). A push wakes the worker only when it is parked (the first push after it parked), or
//! when a dozing worker let `HIGH_WATER` operations pile up. So while an agent is active its
//! threads pay no wake-up (a futex/eventfd write, about a microsecond), and an idle process has
//! no timer running. A push and a park are ordered by the lock, so no wake-up is lost; `Notify`
//! keeps a permit when nobody waits, so a wake that races the worker going to sleep is not
//! lost either.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::queue::operation::Op;

/// How long a dozing worker lets operations wait before it drains them by itself.
pub(crate) const DOZE_TICK: Duration = Duration::from_millis(1);
/// Queued operations at which a dozing worker is woken anyway.
const HIGH_WATER: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Worker {
    Running,
    Dozing,
    Parked,
}

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `capacity` operations are accepted and not yet settled.
    Full,
    /// The worker stopped.
    Closed,
}

struct Shared {
    ops: VecDeque<Op>,
    /// Operations accepted so far (each is one unit of queue weight).
    enqueued: u64,
    worker: Worker,
    closed: bool,
}

/// The operation queue shared by every handle of a client and its worker.
pub(crate) struct OpQueue {
    shared: Mutex<Shared>,
    /// The worker's side: what it took in its last swap and has not popped yet (only the
    /// worker locks it).
    taken: Mutex<VecDeque<Op>>,
    wake: Notify,
}

impl Default for OpQueue {
    fn default() -> Self {
        OpQueue {
            shared: Mutex::new(Shared { ops: VecDeque::new(), enqueued: 0, worker: Worker::Running, closed: false }),
            taken: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent before anything that could panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl OpQueue {
    /// Queues `op` (which counts it in [`enqueued`](OpQueue::enqueued)) unless `capacity`
    /// operations are accepted and not settled yet (`settled`: the worker's count); on refusal
    /// `op` is dropped.
    #[inline]
    pub(crate) fn push(&self, op: Op, capacity: u64, settled: &AtomicU64) -> Result<(), Refused> {
        debug_assert_eq!(op.weight(), 1, "merged operations are made by the worker, never queued");
        let wake = {
            let mut shared = lock(&self.shared);
            if shared.closed {
                return Err(Refused::Closed);
            }
            // `settled` only grows, and `enqueued` only changes under this lock: the bound holds
            // whatever the other producers do.
            if shared.enqueued.saturating_sub(settled.load(Ordering::Acquire)) >= capacity {
                return Err(Refused::Full);
            }
            shared.enqueued += 1;
            shared.ops.push_back(op);
            let wake = match shared.worker {
                Worker::Running => false,
                Worker::Dozing => shared.ops.len() >= HIGH_WATER,
                Worker::Parked => true,
            };
            if wake {
                shared.worker = Worker::Running;
            }
            wake
        };
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Takes the oldest queued operation (worker only).
    pub(crate) fn pop(&self) -> Option<Op> {
        let mut taken = lock(&self.taken);
        if taken.is_empty() {
            // One swap takes everything queued; the producers get the drained buffer back.
            std::mem::swap(&mut *taken, &mut lock(&self.shared).ops);
        }
        taken.pop_front()
    }

    /// Operations accepted so far (each is one unit of queue weight).
    pub(crate) fn enqueued(&self) -> u64 {
        lock(&self.shared).enqueued
    }

    /// Marks the worker parked unless operations beyond `taken` were enqueued meanwhile.
    /// Returns whether the worker may wait for [`woken`](OpQueue::woken) alone.
    pub(crate) fn park(&self, taken: u64) -> bool {
        let mut shared = lock(&self.shared);
        if shared.enqueued > taken {
            shared.worker = Worker::Running;
            return false;
        }
        shared.worker = Worker::Parked;
        true
    }

    /// Marks the worker dozing: it waits for [`woken`](OpQueue::woken) or [`DOZE_TICK`],
    /// whichever comes first, so pushes need not wake it.
    pub(crate) fn doze(&self) {
        lock(&self.shared).worker = Worker::Dozing;
    }

    /// The worker is running again: producers need not wake it.
    pub(crate) fn unpark(&self) {
        lock(&self.shared).worker = Worker::Running;
    }

    /// Resolves when a producer woke the parked worker (or woke it earlier and the permit was
    /// kept).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Refuses further pushes (the worker stopped).
    pub(crate) fn close(&self) {
        lock(&self.shared).closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::record::ids::InstanceId;
    use crate::record::timestamp::Timestamp;

    fn op() -> Op {
        Op::Start { instance: InstanceId::generate(1), at: Timestamp::now() }
    }

    const ROOMY: u64 = u64::MAX;

    fn worker(queue: &OpQueue) -> Worker {
        lock(&queue.shared).worker
    }

    #[test]
    fn a_parked_worker_is_woken_once_per_park() {
        let (queue, settled) = (OpQueue::default(), AtomicU64::new(0));
        assert!(queue.park(0));
        assert_eq!(queue.push(op(), ROOMY, &settled), Ok(()));
        assert_eq!(worker(&queue), Worker::Running, "the first push wakes the worker");
        assert_eq!(queue.push(op(), ROOMY, &settled), Ok(()));
        assert_eq!(queue.enqueued(), 2);
        assert!(!queue.park(0), "operations not taken yet: the worker must not wait");
        assert!(queue.pop().is_some() && queue.pop().is_some() && queue.pop().is_none());
    }

    #[test]
    fn a_dozing_worker_is_woken_only_at_the_high_water_mark() {
        let (queue, settled) = (OpQueue::default(), AtomicU64::new(0));
        queue.doze();
        for _ in 1..HIGH_WATER {
            assert_eq!(queue.push(op(), ROOMY, &settled), Ok(()));
        }
        assert_eq!(worker(&queue), Worker::Dozing, "no wake-up below the mark");
        assert_eq!(queue.push(op(), ROOMY, &settled), Ok(()));
        assert_eq!(worker(&queue), Worker::Running, "woken at the mark");
    }

    #[test]
    fn a_closed_queue_gives_the_operation_back() {
        let (queue, settled) = (OpQueue::default(), AtomicU64::new(0));
        queue.close();
        assert_eq!(queue.push(op(), ROOMY, &settled), Err(Refused::Closed));
        assert_eq!(queue.enqueued(), 0);
    }

    /// Producers racing at a full queue never get more than `capacity` operations in, and
    /// settled operations make room again.
    #[test]
    fn concurrent_producers_never_overshoot_the_capacity() {
        const CAPACITY: u64 = 1000;
        let queue = Arc::new(OpQueue::default());
        let settled = Arc::new(AtomicU64::new(0));
        let accepted: u64 = (0..4)
            .map(|_| {
                let (queue, settled) = (queue.clone(), settled.clone());
                std::thread::spawn(move || {
                    (0..2000).filter(|_| queue.push(op(), CAPACITY, &settled).is_ok()).count() as u64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|producer| producer.join().expect("producer"))
            .sum();
        assert_eq!(accepted, CAPACITY);
        assert_eq!(queue.enqueued(), CAPACITY);
        assert_eq!(queue.push(op(), CAPACITY, &settled), Err(Refused::Full));
        settled.store(1, Ordering::Release);
        assert_eq!(queue.push(op(), CAPACITY, &settled), Ok(()), "a settled operation frees a place");
    }

    /// A producer racing the worker's park never leaves an operation behind a sleeping worker.
    #[test]
    fn no_lost_wake_ups() {
        const N: u64 = 20_000;
        let queue = Arc::new(OpQueue::default());
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let settled = AtomicU64::new(0);
                for _ in 0..N {
                    assert_eq!(queue.push(op(), ROOMY, &settled), Ok(()));
                    if fastrand::u8(..) == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let taken = runtime.block_on(async {
            let mut taken = 0;
            while taken < N {
                while queue.pop().is_some() {
                    taken += 1;
                }
                if taken < N && queue.park(taken) {
                    tokio::time::timeout(Duration::from_secs(10), queue.woken()).await.expect("woken in time");
                    queue.unpark();
                }
            }
            taken
        });
        producer.join().expect("producer");
        assert_eq!(taken, N);
    }
}
