//! Thread leases ([`Held`]): how a span guard keeps its client alive without touching the
//! client's shared reference count.
//!
//! Every span guard must keep its client alive until it ends (it queues the span's finish then).
//! Cloning the client's `Arc` for that costs two locked instructions per span (the clone and
//! the drop), 16 % of the agent thread's cost of a span on the benchmark machine. Instead, each
//! thread holds one *lease*: one clone of the client it used last, lent to the guards it opens.
//! This is biased reference counting (Choi, Shull and Torrellas, PACT 2018), cut down to what
//! guards need:
//!
//! * The thread that made the lease (its owner) counts the guards lent and not returned in a
//!   plain counter: lending and returning on the owner thread cost no atomic operation.
//! * A guard that ends on another thread (guards are `Send`), or after its owner replaced the
//!   lease, subtracts one from the lease's atomic `shared` count instead.
//! * When the owner lets go of the lease (at thread exit, or to lease another client while no
//!   guard of this one is open on it), it adds its own count to `shared`. `shared` then holds
//!   exactly the guards still out; whoever brings it to zero frees the lease, and with it the
//!   client's clone. Before that merge `shared` is never positive, so no one frees early.
//!
//! A thread that has guards of one client open and opens a span of another gets a plain clone of
//! the other client (the cost of before) rather than churning leases. One consequence to know: a
//! thread keeps the last client it opened a span with alive until it exits or uses another
//! client, so dropping every handle of a client stops its worker only once those threads are
//! gone; `Client::close` stops it at once in every case.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread::LocalKey;

/// What a lease can hold: a cheap handle with an identity (`Client` compares its `Arc`), and
/// the thread-local slot of its leases.
pub(crate) trait Lendable: Clone + 'static {
    fn same_as(&self, other: &Self) -> bool;
    fn lease_slot() -> &'static LocalKey<LeaseSlot<Self>>;
}

/// A thread's slot for its lease (a `thread_local!`); lets go of the lease at thread exit.
pub(crate) struct LeaseSlot<T: Lendable>(Cell<*mut Lease<T>>);

impl<T: Lendable> LeaseSlot<T> {
    pub(crate) const fn new() -> Self {
        LeaseSlot(Cell::new(ptr::null_mut()))
    }
}

impl<T: Lendable> Drop for LeaseSlot<T> {
    fn drop(&mut self) {
        let current = self.0.replace(ptr::null_mut());
        if let Some(lease) = NonNull::new(current) {
            // SAFETY: the slot's lease is alive and this thread owns it.
            unsafe { let_go(lease) };
        }
    }
}

struct Lease<T> {
    value: T,
    /// Guards lent and not returned on the owner thread. Only the owner reads or writes it, and
    /// only until it lets go of the lease.
    owner_count: Cell<u64>,
    /// Minus the guards returned elsewhere; plus `owner_count` once the owner let go.
    shared: AtomicI64,
}

/// A value kept alive for one guard: lent by the thread's lease, or a clone of its own.
pub(crate) enum Held<T: Lendable> {
    Leased(Loan<T>),
    Owned(T),
}

/// One guard's share of a lease.
pub(crate) struct Loan<T: Lendable> {
    lease: NonNull<Lease<T>>,
}

// SAFETY: a loan gives out `&T` only (`T: Sync`); the owner-only counter is touched only on
// the thread whose slot holds the lease (checked in `drop`), and the lease is freed exactly
// once, by whoever brings `shared` to zero (`T: Send`: that may be any thread).
unsafe impl<T: Lendable + Send + Sync> Send for Loan<T> {}
// SAFETY: see `Send`; `&Loan` only reads the value.
unsafe impl<T: Lendable + Send + Sync> Sync for Loan<T> {}

impl<T: Lendable> Held<T> {
    /// Keeps `value` alive for a guard: through this thread's lease when it holds `value` (or
    /// can be made to), otherwise as a clone.
    #[inline]
    pub(crate) fn new(value: &T) -> Held<T> {
        match T::lease_slot().try_with(|slot| lend(slot, value)) {
            Ok(Some(lease)) => Held::Leased(Loan { lease }),
            // No slot (the thread is exiting) or another value's guards are open on it.
            _ => Held::Owned(value.clone()),
        }
    }

    pub(crate) fn get(&self) -> &T {
        match self {
            // SAFETY: the loan keeps its lease alive.
            Held::Leased(loan) => unsafe { &loan.lease.as_ref().value },
            Held::Owned(value) => value,
        }
    }
}

#[inline]
fn lend<T: Lendable>(slot: &LeaseSlot<T>, value: &T) -> Option<NonNull<Lease<T>>> {
    if let Some(current) = NonNull::new(slot.0.get()) {
        // SAFETY: the slot's lease is alive and this thread owns it.
        let lease = unsafe { current.as_ref() };
        if lease.value.same_as(value) {
            lease.owner_count.set(lease.owner_count.get() + 1);
            return Some(current);
        }
        if lease.owner_count.get() != 0 {
            return None;
        }
        slot.0.set(ptr::null_mut());
        // SAFETY: as above; the slot no longer holds it.
        unsafe { let_go(current) };
    }
    let fresh = Box::new(Lease { value: value.clone(), owner_count: Cell::new(1), shared: AtomicI64::new(0) });
    let fresh = NonNull::from(Box::leak(fresh));
    slot.0.set(fresh.as_ptr());
    Some(fresh)
}

/// The owner's side: merges its count into `shared`, and frees the lease if no guard is out.
///
/// # Safety
/// `lease` is alive, owned by the calling thread, and no longer in its slot.
unsafe fn let_go<T>(lease: NonNull<Lease<T>>) {
    // SAFETY: alive (caller); the owner count is this thread's to read.
    let owner_count = unsafe { lease.as_ref() }.owner_count.get();
    // Every guard lent came back on this thread: no one else can know of the lease.
    let free = owner_count == 0 || {
        let owner_count = i64::try_from(owner_count).unwrap_or(i64::MAX);
        // SAFETY: alive until `shared` reaches zero, which only this merge can allow.
        let before = unsafe { lease.as_ref() }.shared.fetch_add(owner_count, Ordering::AcqRel);
        before + owner_count == 0
    };
    if free {
        // SAFETY: `shared` is zero after the merge: no loan is left, so no one else frees it.
        drop(unsafe { Box::from_raw(lease.as_ptr()) });
    }
}

impl<T: Lendable> Drop for Loan<T> {
    fn drop(&mut self) {
        let lease = self.lease;
        let at_home = T::lease_slot()
            .try_with(|slot| {
                if slot.0.get() != lease.as_ptr() {
                    return false;
                }
                // SAFETY: this thread's slot holds the lease: this thread owns it.
                let owner_count = unsafe { &lease.as_ref().owner_count };
                owner_count.set(owner_count.get() - 1);
                true
            })
            .unwrap_or(false);
        if at_home {
            return;
        }
        // SAFETY: this loan keeps the lease alive until the subtraction below.
        let before = unsafe { lease.as_ref() }.shared.fetch_sub(1, Ordering::AcqRel);
        if before == 1 {
            // SAFETY: the owner merged its count (`shared` was positive) and this was the last
            // loan: nobody else can reach the lease.
            drop(unsafe { Box::from_raw(lease.as_ptr()) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    /// A value that counts how many of its clones are alive.
    #[derive(Clone)]
    struct Tracked(Arc<AtomicUsize>);

    impl Lendable for Tracked {
        fn same_as(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.0, &other.0)
        }

        fn lease_slot() -> &'static LocalKey<LeaseSlot<Self>> {
            thread_local! {
                static SLOT: LeaseSlot<Tracked> = const { LeaseSlot::new() };
            }
            &SLOT
        }
    }

    fn tracked() -> Tracked {
        Tracked(Arc::new(AtomicUsize::new(0)))
    }

    /// Clones of `value` alive besides `value` itself.
    fn clones_alive(value: &Tracked) -> usize {
        Arc::strong_count(&value.0) - 1
    }

    /// Runs `body` on a new thread with its own clone of `value`, and waits until that thread
    /// is gone (its thread-locals included: `join` waits for the thread's exit, unlike a scope).
    fn on_a_thread(value: &Tracked, body: impl FnOnce(Tracked) + Send + 'static) {
        let value = value.clone();
        std::thread::spawn(move || body(value)).join().expect("no panic");
    }

    #[test]
    fn guards_on_the_owner_thread_share_one_clone() {
        let value = tracked();
        on_a_thread(&value, |value| {
            let first = Held::new(&value);
            let second = Held::new(&value);
            assert!(matches!((&first, &second), (Held::Leased(_), Held::Leased(_))));
            assert!(first.get().same_as(&value));
            assert_eq!(clones_alive(&value), 2, "this thread's clone, and one lease for both guards");
            drop((first, second));
            for _ in 0..3 {
                drop(Held::new(&value));
            }
            assert_eq!(clones_alive(&value), 2, "the lease stays for the next guards");
        });
        assert_eq!(clones_alive(&value), 0, "the owner's exit freed the lease");
    }

    #[test]
    fn a_guard_may_end_on_another_thread_after_its_owner_exited() {
        let value = tracked();
        let (send, receive) = mpsc::channel();
        on_a_thread(&value, move |value| {
            send.send(Held::new(&value)).expect("receiver alive");
            drop(Held::new(&value));
        });
        let moved = receive.recv().expect("a guard");
        assert_eq!(clones_alive(&value), 1, "the lease outlives its owner while a guard is out");
        assert!(moved.get().same_as(&value));
        drop(moved);
        assert_eq!(clones_alive(&value), 0, "the last guard out freed it");
    }

    #[test]
    fn guards_ending_on_other_threads_race_the_owners_exit() {
        let value = tracked();
        for _ in 0..if cfg!(miri) { 4 } else { 200 } {
            let (send, receive) = mpsc::channel::<Held<Tracked>>();
            let owner = {
                let value = value.clone();
                std::thread::spawn(move || {
                    for _ in 0..4 {
                        send.send(Held::new(&value)).expect("receiver alive");
                    }
                })
            };
            let other = std::thread::spawn(move || receive.iter().count());
            owner.join().expect("no panic");
            assert_eq!(other.join().expect("no panic"), 4);
            assert_eq!(clones_alive(&value), 0);
        }
    }

    #[test]
    fn another_value_replaces_the_lease_only_when_no_guard_of_the_first_is_open() {
        let (a, b) = (tracked(), tracked());
        let b_outside = b.clone();
        on_a_thread(&a, move |a| {
            let open_a = Held::new(&a);
            let nested_b = Held::new(&b);
            assert!(matches!(nested_b, Held::Owned(_)), "a's guard is open: b gets a clone");
            drop((nested_b, open_a));
            let only_b = Held::new(&b);
            assert!(matches!(only_b, Held::Leased(_)));
            assert_eq!((clones_alive(&a), clones_alive(&b)), (1, 2), "a's lease was let go");
        });
        assert_eq!((clones_alive(&a), clones_alive(&b_outside)), (0, 0));
    }

    #[test]
    fn a_guard_returned_home_after_its_lease_was_replaced_still_counts() {
        let (a, b) = (tracked(), tracked());
        let b_outside = b.clone();
        on_a_thread(&a, move |a| {
            let (send, receive) = mpsc::channel();
            on_a_thread(&a, move |a| send.send(Held::new(&a)).expect("receiver alive"));
            let from_elsewhere = receive.recv().expect("a guard");
            // This thread leases `a` too, then replaces that lease with one of `b` while the
            // other thread's lease of `a` is still out through `from_elsewhere`.
            drop(Held::new(&a));
            drop(Held::new(&b));
            assert_eq!(clones_alive(&a), 2, "the test's `a` and the other thread's lease");
            drop(from_elsewhere);
            assert_eq!(clones_alive(&a), 1, "the last guard out freed the other thread's lease");
        });
        assert_eq!((clones_alive(&a), clones_alive(&b_outside)), (0, 0));
    }
}
