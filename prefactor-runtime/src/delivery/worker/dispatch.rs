//! Sending: ready operations go out as bulk batches or single requests, with bounded
//! concurrency, and each request runs as its own task.

use tokio::time::Instant;

use crate::config::delivery::Delivery;
use crate::delivery::bulk_batch::{BulkBatch, MAX_BULK_BYTES, body_of};
use crate::delivery::requests;
use crate::delivery::scheduler::Taken;
use crate::delivery::transport::{Attempt, BulkReply};
use crate::queue::operation::Op;
use crate::report::error::Error;

use super::{Attempted, Outgoing, RETRIES_BEFORE_SPOOLING, Reply, Shipment, Worker};

impl Worker {
    /// Sends ready operations while fewer than `concurrency` requests are in flight: retries
    /// whose delay passed first, then bulk batches (or single requests). Ready operations that
    /// wait here can still absorb their span's finish (merge).
    pub(super) fn dispatch(&mut self) {
        let now = Instant::now();
        self.scheduler.release_lingering(Some(now));
        if self.token_check.is_some() {
            // The API has not answered the token check yet: nothing could be delivered. With a
            // spool, a startup outage sends what waits to disk like any other outage.
            if self.spool.is_some() && self.shared.token_check.failed_probes() >= RETRIES_BEFORE_SPOOLING {
                self.spool_ready();
            }
            return;
        }
        let limit = self.shared.config.concurrency();
        if self.spool.is_some() && !self.spool_pending() && self.nearly_full() {
            // The API does not keep up: what waits goes to disk before the queue's capacity
            // would make the client drop new operations.
            tracing::warn!("prefactor: the queue is nearly full; operations go to the spool until the API catches up");
            self.scheduler.release_lingering(None);
            let waiting: Vec<Shipment> = self.retries.drain().collect();
            for shipment in waiting {
                self.spool_items(shipment.items);
            }
            self.spool_ready();
        }
        if self.spool_pending() {
            // Behind what the spool holds: retries and new operations go there too.
            while let Some(shipment) = self.retries.pop_due(now) {
                self.spool_items(shipment.items);
            }
            self.spool_ready();
            return;
        }
        if self.in_outage() {
            self.probe(now);
            return;
        }
        self.send_up_to(limit, Some(now));
    }

    /// Sends while fewer than `limit` requests are in flight: waiting shipments first (those
    /// due at `due`; with `None`, any, oldest due first), then new operations. A shipment may
    /// settle without a request (discarded, restored, doomed): then the next one goes.
    pub(super) fn send_up_to(&mut self, limit: usize, due: Option<Instant>) {
        while self.attempts.len() < limit {
            let waiting = match due {
                Some(now) => self.retries.pop_due(now),
                None => self.retries.pop_first(),
            };
            if let Some(shipment) = waiting {
                self.send_again(shipment);
                continue;
            }
            let took = if self.sends_bulk() { self.dispatch_batch() } else { self.dispatch_one() };
            if !took {
                break;
            }
        }
    }

    /// Whether new operations go out in bulk requests now.
    pub(super) fn sends_bulk(&self) -> bool {
        self.delivery == Delivery::Bulk && self.fallback.is_empty() && !self.shared.is_latched()
    }

    /// Hands out one ready operation as its own request; false when none is ready.
    pub(super) fn dispatch_one(&mut self) -> bool {
        let Some((op, epochs)) = self.scheduler.next_ready() else { return false };
        if self.shared.is_latched() {
            self.discard_sent(op, epochs);
        } else if let Some(reason) = self.scheduler.doomed(&op) {
            self.fail_doomed(op, epochs, reason);
        } else {
            let unseen = self.take_unseen(&op);
            self.spawn(Shipment::single(op, epochs, unseen));
        }
        true
    }

    /// Whether `op` was given back to the scheduler after an unseen outcome (forgetting it).
    pub(super) fn take_unseen(&mut self, op: &Op) -> bool {
        !self.unseen_restored.is_empty() && self.unseen_restored.remove(&requests::idempotency_key(op)).is_some()
    }

    /// Fills one bulk request with ready operations (whole runs of an instance when they are
    /// queued together) and sends it; false when nothing was ready.
    pub(super) fn dispatch_batch(&mut self) -> bool {
        let mut batch = BulkBatch::new(self.shared.config.bulk_max_items(), MAX_BULK_BYTES);
        let mut items = Vec::new();
        let mut took = false;
        self.scheduler.begin_batch();
        while !batch.is_full() {
            let Some(taken) = self.scheduler.next_for_batch(|op| batch.admits(op)) else { break };
            took = true;
            match taken {
                Taken::Doomed(op, epochs, reason) => self.fail_doomed(op, epochs, reason),
                Taken::Send(op, epochs) => match batch.take_broken() {
                    Some(err) => self.fail(op, epochs, err.into()),
                    None => items.push((op, epochs)),
                },
            }
        }
        self.scheduler.seal_batch();
        if !items.is_empty() {
            let mut unseen = false;
            for (op, _) in &items {
                unseen |= self.take_unseen(op);
            }
            let shipment = Shipment { items, attempt: 0, bulk: true, unseen };
            self.launch(shipment, Outgoing::Bulk(batch.into_body()));
        }
        took
    }

    /// Sends a shipment whose retry delay passed, unless sending stopped or changed meanwhile.
    pub(super) fn send_again(&mut self, shipment: Shipment) {
        if self.shared.is_latched() {
            for (op, epochs) in shipment.items {
                self.discard_sent(op, epochs);
            }
        } else if shipment.bulk && !self.sends_bulk() {
            let unseen = shipment.unseen;
            self.restore(shipment.items, unseen);
        } else if !shipment.bulk
            && let Some(reason) = self.scheduler.doomed(&shipment.items[0].0)
        {
            for (op, epochs) in shipment.items {
                self.fail_doomed(op, epochs, reason.clone());
            }
        } else {
            self.spawn(shipment);
        }
    }

    pub(super) fn spawn(&mut self, shipment: Shipment) {
        let request = if shipment.bulk {
            Outgoing::Bulk(body_of(&shipment.items))
        } else {
            let op = &shipment.items[0].0;
            Outgoing::Single(op.kind().label(), requests::build(op))
        };
        self.launch(shipment, request);
    }

    /// Sends `request` in a task; the shipment waits in `sending` for its reply.
    pub(super) fn launch(&mut self, shipment: Shipment, request: Outgoing) {
        self.in_flight += shipment.weight();
        let transport = self.transport.clone();
        let task = self.attempts.spawn(async move {
            match request {
                Outgoing::Bulk(body) => Reply::Bulk(transport.post_bulk(body).await),
                Outgoing::Single(label, Ok(request)) => {
                    Reply::Single(transport.post(label, &request.path, request.body, request.conflict_is_done).await)
                }
                Outgoing::Single(_, Err(err)) => Reply::Single(Attempt::Permanent(err.into())),
            }
        });
        self.dispatched += 1;
        self.sending.insert(task.id(), (self.dispatched, shipment));
    }

    /// A send task ended: its shipment's reply, or (the task panicked) no answer seen.
    pub(super) fn on_sent(&mut self, done: Result<(tokio::task::Id, Reply), tokio::task::JoinError>) {
        let (id, reply) = match done {
            Ok(done) => done,
            Err(err) => {
                tracing::error!(error = %err, "prefactor: a send task failed");
                let error = Error::Http { operation: "request", status: None, code: None, message: err.to_string() };
                (err.id(), Reply::Single(Attempt::Unseen(error)))
            }
        };
        let Some((_, shipment)) = self.sending.remove(&id) else { return };
        let reply = match (reply, shipment.bulk) {
            (Reply::Single(Attempt::Unseen(error)), true) => Reply::Bulk(BulkReply::Failed(Attempt::Unseen(error))),
            (reply, _) => reply,
        };
        self.on_attempt(Attempted { shipment, reply });
    }
}
