//! The disk spool: when shipments go there instead of waiting in memory, and the task that
//! sends them again.

use crate::delivery::flush_epochs::Epochs;
use crate::delivery::requests;
use crate::delivery::spool::{Spool, SpoolRecord};
use crate::delivery::spool_replay::{ReplayPlan, Replayed, replay};
use crate::queue::operation::Op;
use crate::report::stats::Counters;

use super::Worker;

impl Worker {
    /// Whether the operations not settled (queued, waiting, in flight) fill seven eighths of
    /// the queue's capacity.
    pub(super) fn nearly_full(&self) -> bool {
        let capacity = self.shared.config.queue_capacity() as u64;
        let pending = self.ops.enqueued().saturating_sub(self.settled);
        pending >= capacity - capacity / 8
    }

    /// Whether the spool holds records not yet sent again.
    pub(super) fn spool_pending(&self) -> bool {
        self.spool.as_ref().is_some_and(|spool| spool.len() > 0)
    }

    /// Moves every ready operation to the spool, and what that releases, in dependency order
    /// (one write per round of released operations).
    pub(super) fn spool_ready(&mut self) {
        loop {
            let mut ready = Vec::new();
            while let Some((op, epochs)) = self.scheduler.next_ready() {
                match self.scheduler.doomed(&op) {
                    Some(reason) => self.fail_doomed(op, epochs, reason),
                    None => ready.push((op, epochs)),
                }
            }
            if ready.is_empty() {
                return;
            }
            self.spool_items(ready);
        }
    }

    /// Writes operations handed out by the scheduler to the spool, in order, as the single
    /// requests they would be; they are settled (spooled), and what waited for them is
    /// released (to the spool too, behind them). What does not fit is dropped and counted.
    pub(super) fn spool_items(&mut self, items: Vec<(Op, Epochs)>) {
        let mut records = Vec::with_capacity(items.len());
        let mut ready = Vec::with_capacity(items.len());
        for (op, epochs) in items {
            match requests::build(&op) {
                Ok(request) => {
                    records.push(SpoolRecord { path: request.path.into_owned(), body: request.body });
                    ready.push((op, epochs));
                }
                Err(err) => self.fail(op, epochs, err.into()),
            }
        }
        let Some(spool) = self.spool.as_mut() else { return self.restore(ready, false) };
        let was_pending = spool.len() > 0;
        let written = spool.append(&records).unwrap_or_else(|err| {
            tracing::error!(error = %err, "prefactor: could not write to the spool");
            0
        });
        let mut items = ready.into_iter();
        for (op, epochs) in items.by_ref().take(written) {
            let weight = op.weight();
            Counters::add(&self.shared.counters.spooled, weight);
            // On disk now: no longer possibly on the server without an answer.
            self.take_unseen(&op);
            self.forget_fallback(&op);
            self.settle(epochs, weight);
            self.scheduler.complete(op.kind(), true);
        }
        for (op, epochs) in items {
            tracing::warn!(operation = op.kind().label(), "prefactor: the spool is full; dropping the operation");
            self.discard_sent(op, epochs);
        }
        if !was_pending && written > 0 {
            tracing::warn!("prefactor: operations go to the spool until the API answers (and keeps up) again");
            self.replay_spool(0);
        }
    }

    /// Starts sending the spool's records from byte `offset`, unless a replay runs already.
    pub(super) fn replay_spool(&mut self, offset: u64) {
        if !self.replay.is_empty() || self.shared.is_latched() {
            return;
        }
        let Some(spool) = self.spool.as_mut() else { return };
        let records = match spool.read_from(offset) {
            Ok(records) if !records.is_empty() => records,
            Ok(_) => return,
            Err(err) => return tracing::error!(error = %err, "prefactor: could not read the spool"),
        };
        let transport = self.transport.clone();
        let shared = self.shared.clone();
        let stuck = self.replay_stuck.clone();
        // In bulk requests when new operations go in bulk too (else one request each).
        let plan = ReplayPlan { bulk_items: if self.sends_bulk() { self.shared.config.bulk_max_items() } else { 1 } };
        self.replay.spawn(async move { replay(&transport, &shared, &stuck, records, offset, plan).await });
    }

    /// A replay ended: count it, and empty the spool once it caught up with it.
    pub(super) fn on_replayed(&mut self, replayed: Replayed) {
        Counters::add(&self.shared.counters.replayed, replayed.delivered);
        if replayed.delivered > 0 {
            self.server_answered();
        }
        for error in replayed.failed {
            tracing::warn!(error = %error, "prefactor: a spooled operation failed");
            self.shared.record_error(&error);
            self.note_reason(&error, 1);
            Counters::add(&self.shared.counters.failed, 1);
        }
        if let Some(error) = replayed.auth {
            self.shared.latch(error);
            return;
        }
        let Some(spool) = self.spool.as_mut() else { return };
        if replayed.end < spool.len() {
            self.replay_spool(replayed.end);
        } else if let Err(err) = spool.clear() {
            tracing::error!(error = %err, "prefactor: could not empty the spool");
        } else {
            tracing::info!("prefactor: the spool is sent; sending directly again");
        }
    }
}

/// Opens the configured spool; without one (not configured, held by another process, or
/// unusable) the client works as if it were off, and says why.
pub(super) fn open_spool(config: &crate::config::Config) -> Option<Spool> {
    let dir = config.spool_dir()?;
    match Spool::open(dir, config.spool_max_bytes()) {
        Ok(Some(spool)) => Some(spool),
        Ok(None) => {
            tracing::warn!(dir = %dir.display(), "prefactor: another process uses this spool; running without one");
            None
        }
        Err(err) => {
            tracing::error!(dir = %dir.display(), error = %err, "prefactor: cannot open the spool; running without one");
            None
        }
    }
}
