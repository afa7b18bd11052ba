//! What an answer settles: delivered, failed for good (with the reason), given back to the
//! scheduler, or sent again alone; the bulk answer item by item.

use std::sync::atomic::Ordering;

use crate::config::delivery::Delivery;
use crate::delivery::bulk_outcome::{BulkAnswer, ItemResult, missing_output};
use crate::delivery::flush_epochs::Epochs;
use crate::delivery::requests;
use crate::delivery::transport::{Attempt, BulkReply};
use crate::queue::operation::Op;
use crate::report::error::Error;
use crate::report::stats::Counters;

use super::{Attempted, BULK_REJECTIONS_BEFORE_SWITCH, MAX_FAILURE_REASONS, Reply, Resend, Shipment, Worker};

impl Worker {
    pub(super) fn on_attempt(&mut self, Attempted { mut shipment, reply }: Attempted) {
        self.in_flight = self.in_flight.saturating_sub(shipment.weight());
        match reply {
            Reply::Single(result) => {
                let (op, epochs) = shipment.items.remove(0);
                let Shipment { attempt, bulk, unseen, .. } = shipment;
                self.on_result(op, epochs, Resend { attempt, bulk, unseen }, result);
            }
            Reply::Bulk(BulkReply::Answered(body)) => self.on_bulk_answer(shipment, &body),
            Reply::Bulk(BulkReply::Unsupported(status)) => {
                self.server_answered();
                if self.delivery == Delivery::Bulk {
                    tracing::warn!(
                        status,
                        "prefactor: the server has no bulk endpoint; sending one request per operation"
                    );
                    self.delivery = Delivery::PerRequest;
                }
                let unseen = shipment.unseen;
                self.restore(shipment.items, unseen);
            }
            Reply::Bulk(BulkReply::Failed(result)) => self.on_bulk_failure(shipment, result),
        }
    }

    /// Settles the operation of a request (or bulk item) from its outcome; `resend` says how
    /// it goes again if the outcome is transient or unseen.
    pub(super) fn on_result(&mut self, op: Op, epochs: Epochs, resend: Resend, result: Attempt) {
        let Resend { attempt, bulk, unseen } = resend;
        let again = |op, epochs, unseen| Shipment { items: vec![(op, epochs)], attempt, bulk, unseen };
        match result {
            Attempt::Done(body) => {
                self.server_answered();
                self.apply_response(&op, body.get("control"));
                self.succeed(op, epochs, unseen);
            }
            Attempt::AlreadyDone => {
                self.server_answered();
                self.succeed(op, epochs, unseen);
            }
            Attempt::Transient { retry_after, error } => {
                self.retry_later(again(op, epochs, unseen), retry_after, error)
            }
            Attempt::Unseen(error) => self.retry_later(again(op, epochs, true), None, error),
            Attempt::Auth(error) => {
                self.shared.latch(error.clone());
                self.fail(op, epochs, error);
            }
            Attempt::Permanent(error) => {
                self.server_answered();
                if let Some((op, epochs, error)) = self.wait_for_caller(op, epochs, resend, error) {
                    self.fail(op, epochs, error);
                }
            }
        }
    }

    /// Reads a bulk answer item by item, in order. An item without an output after one that
    /// failed was not run: it goes back to the scheduler (a re-send, not a retry). An item the
    /// answer cannot settle (no output although nothing failed before it, or an error code
    /// this SDK does not know) goes once as its own request, whose answer decides.
    pub(super) fn on_bulk_answer(&mut self, shipment: Shipment, body: &[u8]) {
        let Some(answer) = BulkAnswer::parse(body) else {
            // A 2xx that is not a bulk answer: the items may have run, so they go again one
            // request each with their keys (a replay where they did).
            let message = "the bulk answer is not `{\"outputs\": {...}}`".to_owned();
            let error = Error::Http { operation: "bulk request", status: None, code: None, message };
            return self.reject_bulk(Shipment { unseen: true, ..shipment }, &error);
        };
        self.server_answered();
        self.bulk_rejections = 0;
        let Shipment { items, attempt, unseen, .. } = shipment;
        let resend = Resend { attempt, bulk: true, unseen };
        let mut failed_before = false;
        let mut not_run = Vec::new();
        for (op, epochs) in items {
            let label = op.kind().label();
            let key = requests::idempotency_key(&op);
            let Some(output) = answer.output(&key) else {
                if failed_before {
                    not_run.push((op, epochs));
                } else {
                    failed_before = true;
                    self.send_alone(op, epochs, true, &missing_output(label));
                }
                continue;
            };
            match output.result(label, requests::conflict_is_done(&op)) {
                ItemResult::Done(control) => {
                    self.apply_response(&op, control);
                    self.succeed(op, epochs, unseen);
                }
                ItemResult::Failed(result) => {
                    failed_before = true;
                    self.on_result(op, epochs, resend, result);
                }
                ItemResult::Unrecognized(error) => {
                    failed_before = true;
                    self.send_alone(op, epochs, unseen, &error);
                }
            }
        }
        self.restore(not_run, unseen);
    }

    /// Sends an operation a bulk answer could not settle as its own request now.
    pub(super) fn send_alone(&mut self, op: Op, epochs: Epochs, unseen: bool, why: &Error) {
        tracing::debug!(operation = op.kind().label(), reason = %why, "prefactor: sending a bulk item on its own");
        self.spawn(Shipment::single(op, epochs, unseen));
    }

    /// The bulk request as a whole failed: retry it (transient or unseen), or, when the server
    /// rejected it (a 4xx other than 401/403, 408, 409 and 429), send its items again one
    /// request each.
    pub(super) fn on_bulk_failure(&mut self, shipment: Shipment, result: Attempt) {
        match result {
            Attempt::Transient { retry_after, error } => self.retry_later(shipment, retry_after, error),
            Attempt::Unseen(error) => self.retry_later(Shipment { unseen: true, ..shipment }, None, error),
            Attempt::Auth(error) => {
                self.shared.latch(error.clone());
                self.fail_all(shipment, error);
            }
            Attempt::Permanent(error) => {
                self.server_answered();
                self.reject_bulk(shipment, &error);
            }
            Attempt::Done(_) | Attempt::AlreadyDone => {
                let message = "unexpected bulk answer".to_owned();
                let error = Error::Http { operation: "bulk request", status: None, code: None, message };
                self.reject_bulk(shipment, &error);
            }
        }
    }

    /// The server refused a bulk request as a whole, which says nothing about its items: they
    /// go back to the scheduler and out one request each, and so does everything else until
    /// they are settled. After a few rejections in a row the client stops using bulk.
    pub(super) fn reject_bulk(&mut self, shipment: Shipment, error: &Error) {
        self.bulk_rejections += 1;
        if self.bulk_rejections >= BULK_REJECTIONS_BEFORE_SWITCH && self.delivery == Delivery::Bulk {
            tracing::warn!(error = %error, "prefactor: the server keeps rejecting bulk requests; sending one request per operation from now on");
            self.delivery = Delivery::PerRequest;
        } else {
            tracing::warn!(error = %error, items = shipment.items.len(), "prefactor: a bulk request was rejected as a whole; sending its items one request each");
        }
        if self.delivery == Delivery::Bulk {
            self.fallback.extend(shipment.items.iter().map(|(op, _)| requests::idempotency_key(op)));
        }
        let unseen = shipment.unseen;
        self.restore(shipment.items, unseen);
    }

    pub(super) fn fail_all(&mut self, shipment: Shipment, error: Error) {
        for (op, epochs) in shipment.items {
            self.fail(op, epochs, error.clone());
        }
    }

    /// Fails an operation that cannot be taken because what it needs failed (reported with
    /// that reason, without a log line each: the cause was logged).
    pub(super) fn fail_doomed(&mut self, op: Op, epochs: Epochs, reason: String) {
        let error = Error::Http { operation: op.kind().label(), status: None, code: None, message: reason };
        self.count_failure(&op, epochs, &error);
    }

    /// Gives operations handed out but not run back to the scheduler, in order; `unseen`: an
    /// earlier attempt of theirs got no answer.
    pub(super) fn restore(&mut self, items: Vec<(Op, Epochs)>, unseen: bool) {
        for (op, epochs) in items {
            if unseen {
                self.unseen_restored.insert(requests::idempotency_key(&op), op.weight());
            }
            self.scheduler.restore(op, epochs);
        }
    }

    /// `unseen`: an earlier attempt got no answer, so this confirms it.
    pub(super) fn succeed(&mut self, op: Op, epochs: Epochs, unseen: bool) {
        let weight = op.weight();
        Counters::add(&self.shared.counters.sent, weight);
        if unseen {
            Counters::add(&self.shared.counters.confirmed_after_unknown, weight);
        }
        self.forget_fallback(&op);
        self.forget_waits(&op);
        self.settle(epochs, weight);
        self.scheduler.complete(op.kind(), true);
    }

    /// A permanent answer: the operation is failed, logged (a register once per client, with
    /// the fix, since everything of its run fails with it) and counted with its reason.
    pub(super) fn fail(&mut self, op: Op, epochs: Epochs, error: Error) {
        // Refused because something it needs failed earlier in the same bulk request (its
        // instance's registration, its span's create): reported under that cause, exactly as
        // if it had waited for it, not under the server's "not found".
        if let Some(reason) = self.scheduler.doomed(&op) {
            self.fail_doomed(op, epochs, reason);
            return;
        }
        if !matches!(op, Op::Register { .. }) {
            tracing::warn!(operation = op.kind().label(), error = %error, "prefactor: operation failed");
        } else if !std::mem::replace(&mut self.register_failure_logged, true) {
            tracing::error!(
                error = %error,
                "prefactor: the server rejected an agent instance registration, so nothing of that run is stored \
                 (its spans and finish are counted as failed). Check the agent id (`PREFACTOR_AGENT_ID`, \
                 `Config::agent_id` or `#[agent(id = ..)]`: an agent that exists, or none at all; an empty \
                 value counts as none) and the environment id; the server's message says which field"
            );
        }
        self.count_failure(&op, epochs, &error);
    }

    pub(super) fn count_failure(&mut self, op: &Op, epochs: Epochs, error: &Error) {
        let weight = op.weight();
        self.shared.record_error(error);
        self.note_reason(error, weight);
        Counters::add(&self.shared.counters.failed, weight);
        self.forget_fallback(op);
        self.forget_waits(op);
        self.settle(epochs, weight);
        self.scheduler.complete(op.kind(), false);
    }

    /// Counts a permanent failure under its reason (the first `MAX_FAILURE_REASONS` distinct
    /// ones; later ones under the last entry).
    pub(super) fn note_reason(&mut self, error: &Error, weight: u64) {
        let reason = error.to_string();
        if let Some(entry) = self.failure_reasons.iter_mut().find(|(known, _)| *known == reason) {
            entry.1 += weight;
        } else if self.failure_reasons.len() < MAX_FAILURE_REASONS {
            self.failure_reasons.push((reason, weight));
        } else if let Some(entry) = self.failure_reasons.last_mut() {
            entry.0 = "other reasons".to_owned();
            entry.1 += weight;
        }
    }

    /// Settling an item of a rejected bulk request brings bulk delivery back once all are.
    pub(super) fn forget_fallback(&mut self, op: &Op) {
        if !self.fallback.is_empty() {
            self.fallback.remove(&requests::idempotency_key(op));
        }
    }

    /// Drops an operation taken from the queue after the token was rejected.
    pub(super) fn discard(&mut self, op: Op, epochs: Epochs) {
        let weight = op.weight();
        Counters::add(&self.shared.counters.dropped, weight);
        self.settle(epochs, weight);
    }

    /// Drops an operation handed out by the scheduler (so what waits on it is released).
    pub(super) fn discard_sent(&mut self, op: Op, epochs: Epochs) {
        let kind = op.kind();
        self.forget_fallback(&op);
        self.forget_waits(&op);
        self.discard(op, epochs);
        self.scheduler.complete(kind, false);
    }

    pub(super) fn settle(&mut self, epochs: Epochs, weight: u64) {
        self.ledger.settle(epochs, weight);
        self.settled += weight;
        self.shared.counters.settled.store(self.settled, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_worker::worker;
    use super::*;

    fn refused(message: &str) -> Error {
        Error::Http { operation: "span create", status: Some(422), code: None, message: message.to_owned() }
    }

    #[test]
    fn failure_reasons_are_counted_by_reason_and_bounded() {
        let (mut worker, _ops) = worker();
        worker.note_reason(&refused("bad payload"), 2);
        worker.note_reason(&refused("bad payload"), 1);
        assert_eq!(worker.failure_reasons, [(refused("bad payload").to_string(), 3)]);
        for i in 0..100 {
            worker.note_reason(&refused(&format!("reason {i}")), 1);
        }
        assert_eq!(worker.failure_reasons.len(), MAX_FAILURE_REASONS);
        assert_eq!(worker.failure_reasons.last().map(|(reason, _)| reason.as_str()), Some("other reasons"));
        let total: u64 = worker.failure_reasons.iter().map(|(_, count)| count).sum();
        assert_eq!(total, 103, "every failure is counted somewhere");
    }
}
