//! Waiting out transient failures: the retry queue, the count of failures in a row that
//! means an outage, and the wake-up when the server answers again.

use std::time::Duration;

use tokio::time::Instant;

use crate::delivery::retry::retry_delay;
use crate::report::error::Error;
use crate::report::stats::Counters;

use super::{FAILURES_MEANING_OUTAGE, RETRIES_BEFORE_SPOOLING, RETRIES_BEFORE_WARNING, Shipment, Worker};

impl Worker {
    /// Whether the API is taken to be down: several requests in a row failed. Then one request
    /// at a time probes it (see [`Worker::probe`]).
    pub(super) fn in_outage(&self) -> bool {
        self.failures_in_a_row >= FAILURES_MEANING_OUTAGE
    }

    /// Sends during an outage: nothing while a request is in flight or before the probe's
    /// backoff passed, then one shipment, the oldest waiting (else new operations).
    ///
    /// Each waiting shipment retrying on its own timer made the worker rebuild and send every
    /// one of them, again and again, for the whole outage: the more it held, the more work per
    /// second, on a core the agent's threads share. One probe keeps an outage's cost flat; its
    /// answer wakes everything else.
    pub(super) fn probe(&mut self, now: Instant) {
        if !self.attempts.is_empty() || self.next_probe.is_some_and(|at| at > now) {
            return;
        }
        self.send_up_to(1, None);
        if self.attempts.is_empty() {
            // Nothing waits: the next operation probes at once.
            self.next_probe = None;
        }
    }

    /// When the worker must wake for the next retry: the probe's time during an outage (none
    /// while the probe is in flight), else the first waiting shipment's.
    pub(super) fn next_retry_due(&self) -> Option<Instant> {
        if !self.in_outage() {
            return self.retries.next_due();
        }
        if !self.attempts.is_empty() {
            return None;
        }
        self.next_probe
    }

    /// An answer arrived that is not a failure: after an outage (several failures in a row),
    /// what waits for a retry goes out now instead of after its backoff.
    pub(super) fn server_answered(&mut self) {
        self.next_probe = None;
        self.probes_failed = 0;
        if self.in_outage() {
            tracing::info!(
                failures = self.failures_in_a_row,
                "prefactor: the API answers again; resending what waited"
            );
            self.retries.wake(Instant::now());
        }
        self.failures_in_a_row = 0;
    }

    /// Sends `shipment` again after the backoff delay (same items, same keys). There is no
    /// retry count: it waits until delivered or until `close()`'s deadline. With a spool, a
    /// shipment failing again and again during an outage goes to disk instead, with what
    /// waits beside it.
    pub(super) fn retry_later(&mut self, shipment: Shipment, retry_after: Option<Duration>, error: Error) {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        if self.in_outage() {
            self.next_probe = Some(Instant::now() + retry_delay(&self.shared.config, self.probes_failed, retry_after));
            // The requests in flight when the API went away fail together: the backoff grows
            // once per probe (the last request in flight), not once per request, so a short
            // blip is not followed by a long wait.
            if self.attempts.is_empty() {
                self.probes_failed = self.probes_failed.saturating_add(1);
            }
        }
        let outage = self.in_outage() && shipment.attempt >= RETRIES_BEFORE_SPOOLING;
        if self.spool.is_some() && (self.spool_pending() || outage) {
            tracing::debug!(error = %error, "prefactor: the API is unreachable; spooling what waits");
            self.spool_items(shipment.items);
            let waiting: Vec<Shipment> = self.retries.drain().collect();
            for shipment in waiting {
                self.spool_items(shipment.items);
            }
            return;
        }
        let attempt = shipment.attempt;
        let mut shipment = shipment;
        if attempt == 0 {
            // It waits now: free the agent thread's memory (`Op::rehome`).
            shipment.items.iter_mut().for_each(|(op, _)| op.rehome());
        }
        // One per request-sized operation retried (a create carrying its finish counts once).
        Counters::add(&self.shared.counters.retried, shipment.items.len() as u64);
        let delay = retry_delay(&self.shared.config, attempt, retry_after);
        let operation = shipment.items.first().map_or("", |(op, _)| op.kind().label());
        if attempt == RETRIES_BEFORE_WARNING {
            tracing::warn!(operation, items = shipment.items.len(), error = %error, ?delay, attempt, "prefactor: still retrying; operations wait (nothing is dropped before close() or a full queue)");
        } else {
            tracing::debug!(operation, items = shipment.items.len(), error = %error, ?delay, attempt, "prefactor: retrying");
        }
        let due = Instant::now() + delay;
        self.retries.push(due, Shipment { attempt: attempt.saturating_add(1), ..shipment }, retry_after.is_some());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::test_worker::worker;
    use super::*;
    use crate::delivery::flush_epochs::Epochs;
    use crate::queue::operation::Op;
    use crate::record::ids::InstanceId;
    use crate::record::timestamp::Timestamp;

    fn shipment() -> Shipment {
        Shipment::single(Op::Start { instance: InstanceId::generate(0), at: Timestamp::now() }, Epochs::at(0), false)
    }

    #[test]
    fn failures_wait_in_the_retry_queue_counted_and_an_answer_after_an_outage_wakes_them() {
        let (mut worker, _ops) = worker();
        let before = Instant::now();
        for _ in 0..FAILURES_MEANING_OUTAGE {
            worker.retry_later(shipment(), None, Error::Timeout);
        }
        assert_eq!(worker.failures_in_a_row, FAILURES_MEANING_OUTAGE);
        assert_eq!(worker.shared.counters.retried.load(Ordering::Relaxed), u64::from(FAILURES_MEANING_OUTAGE));
        assert_eq!(worker.retries.items().count(), 3, "nothing dropped, nothing failed");
        assert!(worker.retries.next_due().is_some_and(|due| due > before), "each waits for its backoff");
        worker.server_answered();
        assert_eq!(worker.failures_in_a_row, 0);
        assert!(worker.retries.pop_due(Instant::now()).is_some(), "after the outage they go at once");
    }

    #[tokio::test]
    async fn during_an_outage_one_request_at_a_time_probes_the_api() {
        let (mut worker, _ops) = worker();
        for _ in 0..5 {
            worker.retry_later(shipment(), None, Error::Timeout);
        }
        assert!(worker.in_outage());
        let probe_at = worker.next_retry_due().expect("a probe is due");
        assert!(probe_at > Instant::now(), "after a backoff");
        worker.dispatch();
        assert!(worker.attempts.is_empty(), "nothing goes before the probe's time");

        worker.next_probe = Some(Instant::now());
        worker.dispatch();
        assert_eq!(worker.attempts.len(), 1, "one probe");
        assert_eq!(worker.retries.items().count(), 4, "the others wait for its answer");
        assert_eq!(worker.next_retry_due(), None, "no retry timer while the probe is in flight");
        worker.dispatch();
        assert_eq!(worker.attempts.len(), 1, "still one");

        worker.server_answered();
        assert!(!worker.in_outage());
        assert_eq!(worker.next_retry_due().map(|due| due <= Instant::now()), Some(true), "its answer wakes the rest");
    }

    /// Requests in flight when the API goes away fail together: the first probe still goes
    /// after the first backoff (at most `initial_retry_delay`), not after one grown per request.
    #[tokio::test]
    async fn requests_failing_together_grow_the_probe_backoff_once() {
        let (mut worker, _ops) = worker();
        worker.attempts.spawn(std::future::pending());
        for _ in 0..10 {
            worker.retry_later(shipment(), None, Error::Timeout);
        }
        assert!(worker.in_outage());
        let initial = worker.shared.config.initial_retry_delay();
        let probe_at = worker.next_probe.expect("a probe is planned");
        assert!(probe_at <= Instant::now() + initial, "{:?}", probe_at - Instant::now());
        assert_eq!(worker.probes_failed, 0, "no probe has failed yet");
        worker.attempts.abort_all();
    }

    #[test]
    fn a_retry_after_from_the_server_sets_the_delay() {
        let (mut worker, _ops) = worker();
        let before = Instant::now();
        worker.retry_later(shipment(), Some(Duration::from_secs(30)), Error::Timeout);
        let due = worker.retries.next_due().expect("waiting");
        assert!(due >= before + Duration::from_secs(30), "{:?}", due - before);
        assert_eq!(worker.retries.items().next().map(|s| s.attempt), Some(1));
    }
}
