//! Sampling on the worker: operations of held runs go to the tail hold (`tail_hold.rs`), and
//! each run it decides is sent on or discarded and counted.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use crate::delivery::flush_epochs::Epochs;
use crate::queue::operation::Op;
use crate::record::timestamp::Timestamp;

use super::Worker;

impl Worker {
    /// Accepts an operation while runs are held: it joins its held run, or goes on.
    pub(super) fn accept_sampled(&mut self, op: Op, epochs: Epochs, now: Instant) {
        let weight = op.weight();
        match self.hold.take(op, epochs, Timestamp::now) {
            Some((op, epochs)) => self.admit(op, epochs, now),
            // Held: not deliverable until its run is decided, so a flush does not wait for it
            // (a run kept later joins the epoch open then).
            None => self.ledger.settle(epochs, weight),
        }
        self.apply_decided(now);
    }

    /// Decides every held run (the client closes) by the rule for open runs.
    pub(super) fn decide_held_runs(&mut self) {
        self.hold.decide_all(Timestamp::now());
        self.apply_decided(Instant::now());
    }

    fn apply_decided(&mut self, now: Instant) {
        for decided in self.hold.take_decided() {
            decided.count_into(&self.shared.counters);
            if decided.verdict.keeps() {
                for (op, _) in decided.ops {
                    let epochs = self.ledger.accept(op.weight());
                    self.admit(op, epochs, now);
                }
            } else {
                // Settled, not sent and not lost (they left the flush ledger when held).
                self.settled += decided.weight();
                self.shared.counters.settled.store(self.settled, Ordering::Release);
            }
        }
    }
}
