//! `OpQueue`: the queue from the agent's threads to the worker, with coalesced wake-ups.
//!
//! A lock-free MPSC queue ([`TicketQueue`]: one locked instruction per push) plus the worker's
//! state: running, dozing (it drains the queue on a short tick by itself, because operations kept
//! coming) or parked (idle, it waits to be woken). A push wakes the worker only when it is parked,
//! and only the first push after it parked does (the state is swapped to running), or when a dozing
//! worker let `HIGH_WATER` operations pile up. So while an agent is active its threads pay no
//! wake-up (a futex/eventfd write, about a microsecond) at all, and an idle process has no timer
//! running. The worker drains in batches.
//!
//! No lost wake-ups (a Dekker handshake on sequentially consistent operations): a producer
//! takes its ticket (which counts the operation in `enqueued`), then reads `parked`; the worker
//! sets `parked`, then compares `enqueued` with what it already took. One of the two always
//! sees the other: either the producer sees `parked` and wakes the worker, or the worker sees
//! the count and does not wait (and `pop` waits for a slot whose ticket is taken but whose
//! value is still being written). `Notify` keeps a permit when nobody waits, so a wake that races the worker
//! going to sleep is not lost either.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::operation::Op;
use crate::ticket_queue::TicketQueue;

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
    /// The operations; its ticket count is the client's `enqueued` statistic.
    items: TicketQueue<Op>,
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
    /// Queues `op` (which counts it in [`enqueued`](OpQueue::enqueued)); false (and `op`
    /// dropped) when the worker has stopped.
    #[inline]
    pub(crate) fn push(&self, op: Op) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        debug_assert_eq!(op.weight(), 1, "merged operations are made by the worker, never queued");
        // The ticket is taken with a sequentially consistent `fetch_add`: the count is visible
        // to a worker that parks after this point (see the module docs).
        let count = self.items.push(op);
        let wake = match self.state.0.load(Ordering::SeqCst) {
            RUNNING => false,
            DOZING => count.is_multiple_of(HIGH_WATER),
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

    /// Operations accepted so far (each is one unit of queue weight).
    pub(crate) fn enqueued(&self) -> u64 {
        self.items.pushed()
    }

    /// Marks the worker parked unless operations beyond `taken` were enqueued meanwhile.
    /// Returns whether the worker may wait for [`woken`](OpQueue::woken) alone.
    pub(crate) fn park(&self, taken: u64) -> bool {
        self.state.0.store(PARKED, Ordering::SeqCst);
        if self.items.pushed() > taken {
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
        assert!(queue.park(0));
        assert!(queue.push(op()));
        assert_eq!(queue.state.0.load(Ordering::SeqCst), RUNNING, "the first push wakes the worker");
        assert!(queue.push(op()));
        assert_eq!(queue.enqueued(), 2);
        assert!(!queue.park(0), "operations not taken yet: the worker must not wait");
        assert!(queue.pop().is_some() && queue.pop().is_some() && queue.pop().is_none());
    }

    #[test]
    fn a_dozing_worker_is_woken_only_at_the_high_water_mark() {
        let queue = OpQueue::default();
        queue.doze();
        for _ in 1..HIGH_WATER {
            assert!(queue.push(op()));
        }
        assert_eq!(queue.state.0.load(Ordering::SeqCst), DOZING, "no wake-up below the mark");
        assert!(queue.push(op()));
        assert_eq!(queue.state.0.load(Ordering::SeqCst), RUNNING, "woken at the mark");
    }

    #[test]
    fn a_closed_queue_gives_the_operation_back() {
        let queue = OpQueue::default();
        queue.close();
        assert!(!queue.push(op()));
        assert_eq!(queue.enqueued(), 0);
    }

    /// A producer racing the worker's park never leaves an operation behind a sleeping worker.
    #[test]
    fn no_lost_wake_ups() {
        const N: u64 = 20_000;
        let queue = Arc::new(OpQueue::default());
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for _ in 0..N {
                    assert!(queue.push(op()));
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
