//! `OpQueue`: the queue from the agent's threads to the worker, with coalesced wake-ups.
//!
//! A lock-free MPSC queue (`crossbeam_queue::SegQueue`) plus the worker's state: running,
//! dozing (it drains the queue on a short tick by itself, because operations kept coming) or
//! parked (idle, it waits to be woken). A push wakes the worker only when it is parked, and
//! only the first push after it parked does (the state is swapped to running), or when a
//! dozing worker let `HIGH_WATER` operations pile up. So while an agent is active its threads
//! pay no wake-up (a futex/eventfd write, about a microsecond) at all, and an idle process has
//! no timer running. The worker drains in batches.
//!
//! No lost wake-ups (a Dekker handshake on sequentially consistent operations): a producer
//! pushes, counts the operation in `enqueued`, then reads `parked`; the worker sets `parked`,
//! then compares `enqueued` with what it already took. One of the two always sees the other:
//! either the producer sees `parked` and wakes the worker, or the worker sees the count and
//! does not wait. `Notify` keeps a permit when nobody waits, so a wake that races the worker
//! going to sleep is not lost either.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use crossbeam_queue::SegQueue;
use tokio::sync::Notify;

use crate::operation::Op;
use crate::stats::Padded;

/// How long a dozing worker lets operations wait before it drains them by itself.
pub(crate) const DOZE_TICK: Duration = Duration::from_millis(1);
/// Operations after which a dozing worker is woken anyway (every `HIGH_WATER`-th push).
const HIGH_WATER: u64 = 1024;

const RUNNING: u8 = 0;
const DOZING: u8 = 1;
const PARKED: u8 = 2;

/// The operation queue shared by every handle of a client and its worker.
#[derive(Default)]
pub(crate) struct OpQueue {
    items: SegQueue<Op>,
    /// `RUNNING`, `DOZING` or `PARKED`, set by the worker before it waits; alone on its cache
    /// line, so the producers' read of it stays a cache hit while the worker keeps its state.
    state: PaddedState,
    /// Set once the worker stopped: later pushes are refused (counted as dropped).
    closed: AtomicBool,
    wake: Notify,
}

#[derive(Default)]
#[repr(align(128))]
struct PaddedState(AtomicU8);

impl OpQueue {
    /// Queues `op` and counts it in `enqueued`; false (and `op` dropped) when the worker has
    /// stopped.
    pub(crate) fn push(&self, op: Op, enqueued: &Padded) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let weight = op.weight();
        self.items.push(op);
        // SeqCst: the count must be visible to a worker that parks after this point (see the
        // module docs); on x86 this is the same locked add as a relaxed one.
        let count = enqueued.fetch_add(weight, Ordering::SeqCst) + weight;
        let wake = match self.state.0.load(Ordering::SeqCst) {
            RUNNING => false,
            DOZING => count % HIGH_WATER < weight,
            _ => true,
        };
        if wake && self.state.0.swap(RUNNING, Ordering::SeqCst) != RUNNING {
            self.wake.notify_one();
        }
        true
    }

    /// Takes the oldest queued operation (worker only).
    pub(crate) fn pop(&self) -> Option<Op> {
        self.items.pop()
    }

    /// Marks the worker parked unless operations beyond `taken` were counted in `enqueued`
    /// meanwhile. Returns whether the worker may wait for [`woken`](OpQueue::woken) alone.
    pub(crate) fn park(&self, taken: u64, enqueued: &Padded) -> bool {
        self.state.0.store(PARKED, Ordering::SeqCst);
        if enqueued.load(Ordering::SeqCst) > taken {
            self.state.0.store(RUNNING, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Marks the worker dozing: it waits for [`woken`](OpQueue::woken) or [`DOZE_TICK`],
    /// whichever comes first, so pushes need not wake it (a push racing this cannot be lost:
    /// the tick drains it).
    pub(crate) fn doze(&self) {
        self.state.0.store(DOZING, Ordering::SeqCst);
    }

    /// The worker is running again: producers need not wake it.
    pub(crate) fn unpark(&self) {
        if self.state.0.load(Ordering::Relaxed) != RUNNING {
            self.state.0.store(RUNNING, Ordering::SeqCst);
        }
    }

    /// Resolves when a producer woke the parked worker (or woke it earlier and the permit was
    /// kept).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Refuses further pushes (the worker stopped).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::ids::InstanceId;
    use crate::timestamp::Timestamp;

    fn op() -> Op {
        Op::Start { instance: InstanceId::generate(1), at: Timestamp::now() }
    }

    #[test]
    fn a_parked_worker_is_woken_once_per_park() {
        let queue = OpQueue::default();
        let enqueued = Padded::default();
        assert!(queue.park(0, &enqueued));
        assert!(queue.push(op(), &enqueued));
        assert_eq!(queue.state.0.load(Ordering::SeqCst), RUNNING, "the first push wakes the worker");
        assert!(queue.push(op(), &enqueued));
        assert_eq!(enqueued.load(Ordering::SeqCst), 2);
        assert!(!queue.park(0, &enqueued), "operations not taken yet: the worker must not wait");
        assert!(queue.pop().is_some() && queue.pop().is_some() && queue.pop().is_none());
    }

    #[test]
    fn a_dozing_worker_is_woken_only_at_the_high_water_mark() {
        let queue = OpQueue::default();
        let enqueued = Padded::default();
        queue.doze();
        for _ in 1..HIGH_WATER {
            assert!(queue.push(op(), &enqueued));
        }
        assert_eq!(queue.state.0.load(Ordering::SeqCst), DOZING, "no wake-up below the mark");
        assert!(queue.push(op(), &enqueued));
        assert_eq!(queue.state.0.load(Ordering::SeqCst), RUNNING, "woken at the mark");
    }

    #[test]
    fn a_closed_queue_gives_the_operation_back() {
        let queue = OpQueue::default();
        let enqueued = Padded::default();
        queue.close();
        assert!(!queue.push(op(), &enqueued));
        assert_eq!(enqueued.load(Ordering::SeqCst), 0);
    }

    /// A producer racing the worker's park never leaves an operation behind a sleeping worker.
    #[test]
    fn no_lost_wake_ups() {
        const N: u64 = 20_000;
        let queue = Arc::new(OpQueue::default());
        let enqueued = Arc::new(Padded::default());
        let producer = {
            let (queue, enqueued) = (queue.clone(), enqueued.clone());
            std::thread::spawn(move || {
                for _ in 0..N {
                    assert!(queue.push(op(), &enqueued));
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
                if taken < N && queue.park(taken, &enqueued) {
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
