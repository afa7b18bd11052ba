//! Flush epochs: which operations a flush waits for, when they settle out of order.
//!
//! Operations settle out of order (independent instances and span trees are sent concurrently,
//! failures are retried), so "as many operations settled as were enqueued before the flush"
//! does not mean "every operation enqueued before the flush settled". Instead the worker
//! counts operations by epoch: each operation it accepts is tagged with the current epoch, and
//! a flush (after the worker drained the queue, so everything pushed before the flush call is
//! accepted) closes the current epoch and waits until no operation of that epoch or an earlier
//! one is unsettled. Operations accepted later belong to later epochs and never delay it.
//!
//! Memory stays O(pending flushes), not O(operations): unsettled weight is kept per bucket of
//! epochs, a bucket ending at each pending flush's epoch plus one for the current epoch. When a
//! flush is answered its bucket is folded into the next one.

use std::collections::BTreeMap;

/// The epochs of the queue operations one scheduled operation stands for: its first unit was
/// accepted in `first`, the others (a span finish merged into its create) in `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epochs {
    first: u64,
    last: u64,
}

impl Epochs {
    /// An operation that has not absorbed another.
    pub(crate) fn at(epoch: u64) -> Epochs {
        Epochs { first: epoch, last: epoch }
    }

    /// The epochs once an operation accepted in `merged` rode along with this one.
    pub(crate) fn merged(self, merged: Epochs) -> Epochs {
        Epochs { first: self.first, last: self.first.max(merged.last) }
    }
}

/// Unsettled weight by epoch bucket (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct FlushLedger {
    /// The epoch operations accepted now belong to.
    current: u64,
    /// Entry `(k, w)`: `w` unsettled units whose epoch is above the previous key and at most
    /// `k`. Keys are pending flushes' epochs and `current`; zero buckets are removed.
    buckets: BTreeMap<u64, u64>,
}

impl FlushLedger {
    /// Counts an accepted operation of `weight` units in the current epoch.
    pub(crate) fn accept(&mut self, weight: u64) -> Epochs {
        *self.buckets.entry(self.current).or_default() += weight;
        Epochs::at(self.current)
    }

    /// Ends the current epoch for a flush; the flush waits for this epoch and the earlier ones.
    pub(crate) fn close_epoch(&mut self) -> u64 {
        let closed = self.current;
        self.current += 1;
        closed
    }

    /// An operation of `weight` units tagged `epochs` reached a final state.
    pub(crate) fn settle(&mut self, epochs: Epochs, weight: u64) {
        if weight == 0 {
            return;
        }
        self.remove_unit(epochs.first, 1);
        self.remove_unit(epochs.last, weight - 1);
    }

    fn remove_unit(&mut self, epoch: u64, units: u64) {
        if units == 0 {
            return;
        }
        let Some((&key, weight)) = self.buckets.range_mut(epoch..).next() else { return };
        *weight = weight.saturating_sub(units);
        if *weight == 0 {
            self.buckets.remove(&key);
        }
    }

    /// Whether every operation accepted in `epoch` or earlier has settled.
    pub(crate) fn settled_through(&self, epoch: u64) -> bool {
        self.buckets.range(..=epoch).next().is_none()
    }

    /// The flush of `epoch` was answered: its bucket joins the next one.
    pub(crate) fn release(&mut self, epoch: u64) {
        let Some(weight) = self.buckets.remove(&epoch) else { return };
        let next = self.buckets.range(epoch + 1..).next().map_or(self.current, |(&key, _)| key);
        *self.buckets.entry(next).or_default() += weight;
    }

    /// Buckets held (bounded by pending flushes + 1).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_waits_for_its_epoch_not_for_a_count() {
        let mut ledger = FlushLedger::default();
        let early = ledger.accept(1);
        let flush = ledger.close_epoch();
        let late: Vec<Epochs> = (0..5).map(|_| ledger.accept(1)).collect();
        for epochs in late {
            ledger.settle(epochs, 1);
        }
        assert!(!ledger.settled_through(flush), "later operations settled, the earlier one did not");
        ledger.settle(early, 1);
        assert!(ledger.settled_through(flush));
    }

    #[test]
    fn a_later_flush_waits_for_earlier_epochs_and_an_earlier_one_not_for_later() {
        let mut ledger = FlushLedger::default();
        let a = ledger.accept(1);
        let first = ledger.close_epoch();
        let b = ledger.accept(1);
        let second = ledger.close_epoch();
        ledger.settle(b, 1);
        assert!(!ledger.settled_through(second), "the second flush also waits for the first epoch");
        assert!(!ledger.settled_through(first));
        ledger.settle(a, 1);
        assert!(ledger.settled_through(first) && ledger.settled_through(second));
    }

    #[test]
    fn a_merged_finish_is_settled_in_its_own_epoch() {
        let mut ledger = FlushLedger::default();
        let create = ledger.accept(1);
        let first = ledger.close_epoch();
        let finish = ledger.accept(1);
        let second = ledger.close_epoch();
        let merged = create.merged(finish);
        ledger.settle(merged, 2);
        assert!(ledger.settled_through(first) && ledger.settled_through(second));
        assert_eq!(ledger.len(), 0);
    }

    #[test]
    fn answered_flushes_fold_their_bucket_forward() {
        let mut ledger = FlushLedger::default();
        let stuck = ledger.accept(1);
        let mut flushes = Vec::new();
        let mut others = Vec::new();
        for _ in 0..100 {
            others.push(ledger.accept(1));
            flushes.push(ledger.close_epoch());
        }
        // Every flush timed out and left: one bucket keeps the weight.
        for epoch in flushes {
            ledger.release(epoch);
        }
        assert_eq!(ledger.len(), 1);
        let flush = ledger.close_epoch();
        ledger.settle(stuck, 1);
        assert!(!ledger.settled_through(flush), "100 operations are still unsettled");
        for epochs in others {
            ledger.settle(epochs, 1);
        }
        assert!(ledger.settled_through(flush));
        assert_eq!(ledger.len(), 0);
    }
}
