//! `TicketQueue`: the unbounded multi-producer, single-consumer queue under `OpQueue`.
//!
//! Why not `crossbeam_queue::SegQueue`: its push takes two locked instructions (the tail CAS and
//! the `fetch_or` that publishes the slot), a third was needed on top to count the operation,
//! and it frees every drained block, so a steady stream of spans kept allocating and
//! page-faulting fresh blocks on the agent's thread. Here a push is **one** locked instruction,
//! and blocks are reused.
//!
//! The scheme is the block list of tokio's `mpsc` channel, with a ready flag per slot instead of
//! a shared bit field (publishing a slot is then a plain release store, not a `fetch_or`):
//! * A producer takes a ticket with one `fetch_add` on `tickets`; that count is also the number
//!   of values ever pushed. Ticket `t` is slot `t % BLOCK` of the block whose `start` is
//!   `t - t % BLOCK`. The producer finds that block by walking `next` from `tail_block` (almost
//!   always `tail_block` itself), appending a block when the chain ends, writes the value and
//!   sets the slot's `ready` flag with a release store.
//! * The consumer reads slots in ticket order. A slot whose ticket is taken but whose value is
//!   not written yet is waited for (its producer is between two instructions), as `SegQueue`
//!   does.
//! * Reuse: a drained block goes back to the end of the chain, where the producers will find it
//!   instead of allocating (beyond `SPARE_BLOCKS` spare blocks it is freed, so memory follows
//!   the queue's depth). A drained block may be reused only once no producer can still be
//!   walking through it. Producers move `tail_block` past a block only when all its slots are
//!   written, and then record the ticket count (`released_at`). A producer that may still hold
//!   the old `tail_block` took its ticket before that count was read (tickets are taken before
//!   `tail_block` is loaded, both sequentially consistent), so once the consumer has taken
//!   every ticket below `released_at`, each such producer has written its value: it is done
//!   with the chain.

use std::alloc::{self, Layout};
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Slots per block: 128 operations of 128 bytes make a 17 KB block. Moving to a new block is
/// the producers' slow path (a compare-and-swap on the chain, and an allocation while the
/// queue grows), so blocks are made big enough that a burst of spans rarely takes it.
const BLOCK: u64 = 128;
/// Drained blocks kept ahead of the producers for reuse; more are freed.
const SPARE_BLOCKS: usize = 2;

/// The queue. `T` values move from the producers' threads to the consumer's.
pub(crate) struct TicketQueue<T> {
    /// Tickets taken: the number of values pushed so far.
    tickets: CacheLine<AtomicU64>,
    /// Where producers start looking for their block: never a block that may be reused.
    tail_block: CacheLine<AtomicPtr<Block<T>>>,
    /// The consumer's position. A mutex, so that `pop` is safe to call from anywhere; only the
    /// worker calls it, so it is never contended.
    cursor: Mutex<Cursor<T>>,
}

#[repr(align(128))]
struct CacheLine<A>(A);

struct Block<T> {
    /// Ticket of the first slot. Written only while no producer can see the block.
    start: AtomicU64,
    next: AtomicPtr<Block<T>>,
    /// Set once `tail_block` moved past this block (all its slots were written by then).
    released: AtomicBool,
    /// The ticket count read just after `tail_block` moved past this block.
    released_at: AtomicU64,
    slots: [Slot<T>; BLOCK as usize],
}

struct Slot<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    ready: AtomicBool,
}

struct Cursor<T> {
    /// The next ticket to take.
    head: u64,
    /// The block holding `head` (or the block just before it, when `head` starts a block that
    /// is not linked yet).
    head_block: *mut Block<T>,
    /// The oldest block still in the chain: blocks from here to `head_block` are drained and
    /// wait until they may be reused.
    oldest: *mut Block<T>,
}

// SAFETY: values of `T` are moved in on producer threads and out on the consumer's thread (so
// `T: Send`); the blocks are shared through atomics as described in the module docs, and the
// cursor's pointers are only used under its mutex.
unsafe impl<T: Send> Send for TicketQueue<T> {}
// SAFETY: see `Send`; no `&T` is ever handed out.
unsafe impl<T: Send> Sync for TicketQueue<T> {}
// SAFETY: the cursor's pointers are owned by the queue, which is `Send`.
unsafe impl<T: Send> Send for Cursor<T> {}

impl<T> Default for TicketQueue<T> {
    fn default() -> Self {
        let first = Block::allocate(0);
        TicketQueue {
            tickets: CacheLine(AtomicU64::new(0)),
            tail_block: CacheLine(AtomicPtr::new(first)),
            cursor: Mutex::new(Cursor { head: 0, head_block: first, oldest: first }),
        }
    }
}

impl<T> TicketQueue<T> {
    /// Appends `value`; returns the number of values pushed so far, this one included.
    pub(crate) fn push(&self, value: T) -> u64 {
        self.push_pausing(value, || {})
    }

    /// [`push`](TicketQueue::push), calling `pause` between loading `tail_block` and walking
    /// from it: the window in which the consumer must not reuse that block (tests only; an
    /// empty closure inlines away).
    #[inline(always)]
    fn push_pausing(&self, value: T, pause: impl FnOnce()) -> u64 {
        // SeqCst: orders the ticket before the load of `tail_block` (see the module docs) and
        // lets the caller use the count in its own Dekker handshake with the consumer.
        let ticket = self.tickets.0.fetch_add(1, Ordering::SeqCst);
        let tail = self.tail_block.0.load(Ordering::SeqCst);
        pause();
        // SAFETY: `tail_block` is never a block that may be reused or freed while the queue
        // lives, and this producer's unwritten slot keeps it (or a later block) there.
        let block = unsafe { &*tail };
        let block = if block.start.load(Ordering::Relaxed) == block_start(ticket) {
            block
        } else {
            self.find_block(ticket, tail)
        };
        let slot = &block.slots[(ticket % BLOCK) as usize];
        // SAFETY: the ticket is this producer's alone, so nobody else touches the slot until
        // `ready` is set; the block cannot be reused before the consumer took this ticket.
        unsafe { (*slot.value.get()).write(value) };
        slot.ready.store(true, Ordering::Release);
        ticket + 1
    }

    /// Values pushed so far.
    pub(crate) fn pushed(&self) -> u64 {
        self.tickets.0.load(Ordering::SeqCst)
    }

    /// Walks from `from` to the block of `ticket`, appending blocks where the chain ends and
    /// moving `tail_block` past blocks whose slots are all written.
    #[cold]
    fn find_block(&self, ticket: u64, from: *mut Block<T>) -> &Block<T> {
        let start = block_start(ticket);
        let mut current = from;
        let mut may_advance = true;
        loop {
            // SAFETY: `current` is `tail_block` as loaded after this producer took its ticket,
            // or reached from it through `next`: none of these can be reused before the
            // consumer takes this ticket (module docs).
            let block = unsafe { &*current };
            if block.start.load(Ordering::Relaxed) == start {
                return block;
            }
            let next = block.next_or_append();
            may_advance = may_advance && block.is_full();
            if may_advance {
                may_advance =
                    self.tail_block.0.compare_exchange(current, next, Ordering::SeqCst, Ordering::Relaxed).is_ok();
                if may_advance {
                    // Every producer that took a ticket before this count may still hold the
                    // old `tail_block`; later ones will load `next` or a later block.
                    block.released_at.store(self.tickets.0.fetch_add(0, Ordering::SeqCst), Ordering::Relaxed);
                    block.released.store(true, Ordering::Release);
                }
            }
            current = next;
        }
    }

    /// Takes the oldest value, waiting for it if its producer took the ticket but has not
    /// written it yet; `None` when every pushed value was taken.
    pub(crate) fn pop(&self) -> Option<T> {
        let mut cursor = self.lock_cursor();
        let (block, offset) = loop {
            if let Some(found) = self.head_slot(&mut cursor) {
                break found;
            }
            if self.pushed() == cursor.head {
                return None;
            }
            wait_for_producer();
        };
        // SAFETY: `block` is the cursor's, which only the consumer reuses.
        let slot = unsafe { &(*block).slots[offset] };
        while !slot.ready.load(Ordering::Acquire) {
            if self.pushed() == cursor.head {
                return None;
            }
            wait_for_producer();
        }
        cursor.head += 1;
        // SAFETY: `ready` (acquire) shows the producer's write; the slot's ticket is taken
        // once, so the value is read once, and the slot is not written again before the block
        // is reused.
        Some(unsafe { (*slot.value.get()).assume_init_read() })
    }

    /// The block and offset of the cursor's ticket, moving to the next block (and reclaiming
    /// drained ones) at a block's end; `None` when the next block is not linked yet.
    fn head_slot(&self, cursor: &mut Cursor<T>) -> Option<(*mut Block<T>, usize)> {
        // SAFETY: the cursor's blocks stay allocated until the consumer reclaims them.
        let start = unsafe { (*cursor.head_block).start.load(Ordering::Relaxed) };
        let offset = cursor.head - start;
        if offset < BLOCK {
            return Some((cursor.head_block, offset as usize));
        }
        // SAFETY: as above.
        let next = unsafe { (*cursor.head_block).next.load(Ordering::Acquire) };
        if next.is_null() {
            return None;
        }
        cursor.head_block = next;
        self.reclaim(cursor);
        Some((next, 0))
    }

    /// Reuses or frees the drained blocks that no producer can still reach (module docs).
    fn reclaim(&self, cursor: &mut Cursor<T>) {
        while cursor.oldest != cursor.head_block {
            // SAFETY: blocks from `oldest` to `head_block` are drained and still allocated.
            let block = unsafe { &*cursor.oldest };
            if !block.released.load(Ordering::Acquire) || block.released_at.load(Ordering::Relaxed) > cursor.head {
                return;
            }
            let reusable = cursor.oldest;
            cursor.oldest = block.next.load(Ordering::Acquire);
            self.recycle(reusable);
        }
    }

    /// Appends a drained, unreachable block at the end of the chain for reuse, or frees it when
    /// enough spare blocks are there already.
    fn recycle(&self, reusable: *mut Block<T>) {
        // SAFETY: no producer can reach `reusable` any more (see `reclaim`), and the consumer
        // holds the cursor lock: this thread owns it.
        let block = unsafe { &*reusable };
        block.reset();
        // `tail_block` is never reclaimed, so the chain from it is alive.
        let mut last = self.tail_block.0.load(Ordering::SeqCst);
        let mut spares = 0;
        loop {
            // SAFETY: reached from `tail_block` (see above).
            let end = unsafe { &*last };
            let next = end.next.load(Ordering::Acquire);
            if !next.is_null() {
                last = next;
                spares += 1;
                if spares >= SPARE_BLOCKS {
                    break;
                }
                continue;
            }
            block.start.store(end.start.load(Ordering::Relaxed) + BLOCK, Ordering::Relaxed);
            // Release: producers that load `next` see the reset slots and the new start.
            match end.next.compare_exchange(ptr::null_mut(), reusable, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(appended) => last = appended,
            }
        }
        // SAFETY: owned by this thread (see above) and not linked anywhere.
        drop(unsafe { Box::from_raw(reusable) });
    }

    fn lock_cursor(&self) -> MutexGuard<'_, Cursor<T>> {
        // The cursor is consistent after every statement that could panic, so a poisoned lock
        // (a panic while holding it) leaves nothing half-done.
        self.cursor.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Drop for TicketQueue<T> {
    fn drop(&mut self) {
        let cursor = self.cursor.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut current = cursor.oldest;
        while !current.is_null() {
            // SAFETY: `&mut self`: no producer or consumer is left, and every block is reachable
            // once from `oldest` (reclaimed ones are relinked at the end or freed).
            let block = unsafe { Box::from_raw(current) };
            let start = block.start.load(Ordering::Relaxed);
            for (ticket, slot) in (start..).zip(&block.slots) {
                if ticket >= cursor.head && slot.ready.load(Ordering::Relaxed) {
                    // SAFETY: written and never taken.
                    unsafe { (*slot.value.get()).assume_init_drop() };
                }
            }
            current = block.next.load(Ordering::Relaxed);
        }
    }
}

impl<T> Block<T> {
    /// A block with no value (all slots not ready), as a raw pointer. Only the flags are
    /// written: zeroing the values too (`alloc_zeroed`) cost the agent's thread a `memset` of
    /// 17 KB per block, 7 % of a span while the queue grows.
    fn allocate(start: u64) -> *mut Block<T> {
        let layout = Layout::new::<Block<T>>();
        // SAFETY: the layout is not zero-sized (a block holds atomics).
        let block = unsafe { alloc::alloc(layout) }.cast::<Block<T>>();
        if block.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // SAFETY: allocated above with the layout of a block, so every field's place is valid
        // for writes; each field but the values (`MaybeUninit`) is written before the block is
        // used, and the global allocator's memory with this layout is what `Box::from_raw` frees.
        unsafe {
            ptr::addr_of_mut!((*block).start).write(AtomicU64::new(start));
            ptr::addr_of_mut!((*block).next).write(AtomicPtr::new(ptr::null_mut()));
            ptr::addr_of_mut!((*block).released).write(AtomicBool::new(false));
            ptr::addr_of_mut!((*block).released_at).write(AtomicU64::new(0));
            let slots = ptr::addr_of_mut!((*block).slots).cast::<Slot<T>>();
            for index in 0..BLOCK as usize {
                ptr::addr_of_mut!((*slots.add(index)).ready).write(AtomicBool::new(false));
            }
        }
        block
    }

    /// The next block, appending a new one when this is the last.
    fn next_or_append(&self) -> *mut Block<T> {
        let next = self.next.load(Ordering::Acquire);
        if !next.is_null() {
            return next;
        }
        let fresh = Block::allocate(self.start.load(Ordering::Relaxed) + BLOCK);
        match self.next.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => fresh,
            Err(appended) => {
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                appended
            }
        }
    }

    /// Whether every slot was written (no producer still needs this block).
    fn is_full(&self) -> bool {
        self.slots.iter().all(|slot| slot.ready.load(Ordering::Acquire))
    }

    /// Back to a block with no value and no successor (its owner relinks it).
    fn reset(&self) {
        for slot in &self.slots {
            slot.ready.store(false, Ordering::Relaxed);
        }
        self.released.store(false, Ordering::Relaxed);
        self.next.store(ptr::null_mut(), Ordering::Relaxed);
    }
}

fn block_start(ticket: u64) -> u64 {
    ticket - ticket % BLOCK
}

/// A producer took a ticket and is about to write it: let it run.
fn wait_for_producer() {
    for _ in 0..64 {
        std::hint::spin_loop();
    }
    std::thread::yield_now();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// Sizes for a normal run, and smaller ones under Miri, which checks every access of these
    /// tests for undefined behaviour and data races (`bash bench/miri/run.sh`); still several
    /// blocks each, so that blocks are appended, drained and reused.
    const fn scaled(n: u64) -> u64 {
        if cfg!(miri) { n / 25 } else { n }
    }
    const BURST_BLOCKS: u64 = if cfg!(miri) { 4 } else { 100 };

    fn blocks_in_chain<T>(queue: &TicketQueue<T>) -> usize {
        let cursor = queue.lock_cursor();
        let mut count = 0;
        let mut current = cursor.oldest;
        while !current.is_null() {
            count += 1;
            // SAFETY: test-only walk while no producer runs.
            current = unsafe { (*current).next.load(Ordering::Acquire) };
        }
        count
    }

    #[test]
    fn values_come_out_in_push_order_across_blocks() {
        let queue = TicketQueue::default();
        for round in 0..5u64 {
            for i in 0..100 {
                assert_eq!(queue.push(round * 1000 + i), round * 100 + i + 1);
            }
            for i in 0..100 {
                assert_eq!(queue.pop(), Some(round * 1000 + i));
            }
            assert_eq!(queue.pop(), None);
        }
        assert_eq!(queue.pushed(), 500);
    }

    #[test]
    fn a_steady_stream_reuses_blocks_and_a_burst_is_given_back() {
        let queue = TicketQueue::default();
        for i in 0..scaled(10_000) {
            queue.push(i);
            assert_eq!(queue.pop(), Some(i));
        }
        assert!(blocks_in_chain(&queue) <= 2 + SPARE_BLOCKS, "{} blocks", blocks_in_chain(&queue));
        for i in 0..(BLOCK * BURST_BLOCKS) {
            queue.push(i);
        }
        assert!(blocks_in_chain(&queue) >= BURST_BLOCKS as usize);
        for i in 0..(BLOCK * BURST_BLOCKS) {
            assert_eq!(queue.pop(), Some(i));
        }
        // The burst's blocks are freed as it drains, but for the spares (and blocks waiting
        // for the producers to move past them).
        for i in 0..(BLOCK * 4) {
            queue.push(i);
            assert_eq!(queue.pop(), Some(i));
        }
        assert!(blocks_in_chain(&queue) <= 3 + SPARE_BLOCKS, "{} blocks", blocks_in_chain(&queue));
    }

    /// Counts live values, to check that every value is dropped exactly once.
    struct Tracked(Arc<AtomicUsize>);

    impl Tracked {
        fn new(live: &Arc<AtomicUsize>) -> Tracked {
            live.fetch_add(1, Ordering::SeqCst);
            Tracked(live.clone())
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn values_left_in_the_queue_are_dropped_with_it() {
        let live = Arc::new(AtomicUsize::new(0));
        let queue = TicketQueue::default();
        for _ in 0..(BLOCK * 3 + 5) {
            queue.push(Tracked::new(&live));
        }
        for _ in 0..(BLOCK + 7) {
            drop(queue.pop());
        }
        assert_eq!(live.load(Ordering::SeqCst), (BLOCK * 2 - 2) as usize);
        drop(queue);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    /// A producer that loaded `tail_block` and stalled before walking from it while the other
    /// producers moved past that block and the consumer drained it: the block must not be reused
    /// under the stalled producer (it would walk a relinked block and never find its slot).
    #[test]
    fn a_block_is_not_reused_under_a_stalled_producer() {
        let queue = Arc::new(TicketQueue::default());
        for i in 0..BLOCK {
            queue.push(i);
        }
        let (stalled_tx, stalled) = std::sync::mpsc::channel();
        let (resume, resume_rx) = std::sync::mpsc::channel::<()>();
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                queue.push_pausing(BLOCK, || {
                    stalled_tx.send(()).expect("test thread");
                    resume_rx.recv().expect("test thread");
                })
            })
        };
        stalled.recv().expect("producer");
        for i in (BLOCK + 1)..(BLOCK * 3) {
            queue.push(i);
        }
        for i in 0..BLOCK {
            assert_eq!(queue.pop(), Some(i));
        }
        let (taken_tx, taken) = std::sync::mpsc::channel();
        let consumer = {
            let queue = queue.clone();
            // Moves to the next block (reclaiming the drained one if allowed), then waits
            // for the stalled producer's ticket.
            std::thread::spawn(move || {
                let values: Vec<u64> = std::iter::from_fn(|| queue.pop()).collect();
                taken_tx.send(values).expect("test thread");
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        resume.send(()).expect("producer");
        let values = taken.recv_timeout(std::time::Duration::from_secs(20)).expect("the stalled value arrives");
        assert_eq!(values, (BLOCK..(BLOCK * 3)).collect::<Vec<_>>());
        assert_eq!(producer.join().expect("producer"), BLOCK + 1);
        consumer.join().expect("consumer");
    }

    /// Producers on several threads, a consumer racing them: nothing lost, nothing duplicated,
    /// each producer's values in its order, and the chain stays short when drained.
    #[test]
    fn concurrent_producers_keep_their_order() {
        const PRODUCERS: u64 = 4;
        const PER_PRODUCER: u64 = scaled(50_000);
        let queue = Arc::new(TicketQueue::default());
        let live = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let (queue, live) = (queue.clone(), live.clone());
                std::thread::spawn(move || {
                    for sequence in 0..PER_PRODUCER {
                        queue.push((producer, sequence, Tracked::new(&live)));
                        if sequence % 97 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u64; PRODUCERS as usize];
        let mut taken = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while taken < PRODUCERS * PER_PRODUCER {
            assert!(std::time::Instant::now() < deadline, "values missing: {taken} taken");
            match queue.pop() {
                Some((producer, sequence, _tracked)) => {
                    assert_eq!(sequence, next[producer as usize], "producer {producer} out of order");
                    next[producer as usize] += 1;
                    taken += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        for producer in producers {
            producer.join().expect("producer");
        }
        assert!(queue.pop().is_none());
        assert_eq!(live.load(Ordering::SeqCst), 0);
        assert!(blocks_in_chain(&queue) <= 3 + SPARE_BLOCKS, "{} blocks", blocks_in_chain(&queue));
    }

    /// Producers racing each other with no consumer, then a drop: every value freed once.
    #[test]
    fn concurrent_pushes_then_drop_free_everything() {
        let live = Arc::new(AtomicUsize::new(0));
        let queue = Arc::new(TicketQueue::default());
        let producers: Vec<_> = (0..4)
            .map(|_| {
                let (queue, live) = (queue.clone(), live.clone());
                std::thread::spawn(move || {
                    for _ in 0..scaled(10_000) {
                        queue.push(Tracked::new(&live));
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.join().expect("producer");
        }
        assert_eq!(queue.pushed(), 4 * scaled(10_000));
        assert_eq!(live.load(Ordering::SeqCst), 4 * scaled(10_000) as usize);
        drop(queue);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }
}
