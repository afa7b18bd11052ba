//! Answering `flush` and `close`: by flush epoch, at the deadline, and the final report.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::delivery::token_check;
use crate::report::error::Error;

use super::{Closing, Command, FlushWaiter, Shipment, Worker};

impl Worker {
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::CheckConnection { waited, deadline, reply } => {
                let deadline = Instant::from_std(deadline);
                tokio::spawn(token_check::answer_when_known(self.shared.clone(), waited, deadline, reply));
            }
            Command::Flush { deadline, reply } => {
                // What the caller pushed before sending this command is in the queue now:
                // take all of it so it belongs to the epoch this flush closes.
                while !self.accept_batch() {}
                // The caller waits: creates still open go out now instead of lingering.
                self.scheduler.release_lingering(None);
                let epoch = self.ledger.close_epoch();
                self.flushes.push(FlushWaiter { epoch, deadline: Instant::from_std(deadline), reply });
            }
            #[cfg(feature = "otel")]
            Command::OtelFlush { deadline, reply } => {
                let Some(pipeline) = self.otel.as_ref().map(|otel| otel.pipeline().clone()) else {
                    let _ = reply.send(Ok(()));
                    return;
                };
                // The SDK's flush blocks until its exporter answered: off the worker's thread.
                tokio::spawn(async move {
                    let flush = tokio::task::spawn_blocking(move || pipeline.flush());
                    let answer = match tokio::time::timeout_at(Instant::from_std(deadline), flush).await {
                        Ok(Ok(result)) => result,
                        Ok(Err(_)) => Err(Error::WorkerGone),
                        Err(_) => Err(Error::Timeout),
                    };
                    let _ = reply.send(answer);
                });
            }
            Command::Shutdown { deadline, reply } => {
                self.scheduler.release_lingering(None);
                let deadline = Instant::from_std(deadline);
                match &mut self.closing {
                    Some(closing) => {
                        closing.deadline = closing.deadline.min(deadline);
                        closing.reply = Some(reply);
                    }
                    None => self.closing = Some(Closing { deadline, reply: Some(reply) }),
                }
            }
        }
    }

    pub(super) fn all_settled(&self) -> bool {
        self.settled >= self.ops.enqueued()
    }

    pub(super) fn answer_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut pending = Vec::with_capacity(self.flushes.len());
        for waiter in std::mem::take(&mut self.flushes) {
            let answer = if self.ledger.settled_through(waiter.epoch) {
                Ok(())
            } else if now >= waiter.deadline {
                Err(Error::Timeout)
            } else {
                pending.push(waiter);
                continue;
            };
            self.ledger.release(waiter.epoch);
            let _ = waiter.reply.send(answer);
        }
        self.flushes = pending;
    }

    /// When closing and everything is delivered (or the deadline passed): abort what is in
    /// flight, count what is left, answer, and stop.
    pub(super) fn finish_close_if_due(&mut self) -> bool {
        let Some(closing) = &self.closing else { return false };
        #[cfg(feature = "otel")]
        let closing_deadline = closing.deadline;
        // The spool is waited for while its replay makes progress; records a replay cannot
        // send stay for the next client.
        let spool_done = !self.spool_pending() || self.replay_stuck.load(Ordering::Acquire) || self.shared.is_latched();
        let done = self.all_settled() && self.sending.is_empty() && self.retries.is_empty() && spool_done;
        let timed_out = !done && Instant::now() >= closing.deadline;
        if !done && !timed_out {
            return false;
        }
        self.attempts.abort_all();
        if timed_out && self.spool.is_some() {
            // Unsent operations go to the spool for the next client rather than being lost, and
            // so do requests still in flight (the server may have applied them: the replay
            // sends them with the same keys, so it confirms them instead of duplicating).
            self.scheduler.release_lingering(None);
            let waiting: Vec<Shipment> = self.retries.drain().collect();
            for shipment in waiting {
                self.spool_items(shipment.items);
            }
            let mut in_flight: Vec<(u64, Shipment)> = self.sending.drain().map(|(_, sent)| sent).collect();
            in_flight.sort_unstable_by_key(|(order, _)| *order);
            for (_, shipment) in in_flight {
                self.in_flight = self.in_flight.saturating_sub(shipment.weight());
                self.spool_items(shipment.items);
            }
            self.spool_ready();
        }
        self.replay.abort_all();
        // Requests in flight now, and operations whose last attempt got no answer, may be on
        // the server: unknown, not undelivered.
        let unknown = self.in_flight
            + self.retries.items().filter(|s| s.unseen).map(Shipment::weight).sum::<u64>()
            + self.unseen_restored.values().sum::<u64>();
        self.retries.drain().for_each(drop);
        self.ops.close();
        // Free what will never be sent now rather than with the client: a client may outlive
        // its worker for long (a guard or handle kept somewhere).
        while self.ops.pop().is_some() {}
        let mut report = self.shared.report(self.ops.enqueued(), self.settled, timed_out);
        report.unknown = unknown.min(report.undelivered);
        report.undelivered -= report.unknown;
        report.failure_reasons = std::mem::take(&mut self.failure_reasons);
        if let Some(mut spool) = self.spool.take() {
            report.left_in_spool = spool.read_from(0).map_or(0, |records| records.len() as u64);
            // Its lock is released before `close` returns: a client started right after (the
            // next run of a job, a test, a restart in the same process) must find the spool
            // free, not run without it and leave these records unsent.
            drop(spool);
        }
        if timed_out {
            tracing::warn!(undelivered = report.undelivered, "prefactor: close deadline passed");
        }
        for waiter in self.flushes.drain(..) {
            let _ = waiter.reply.send(Err(Error::Closed));
        }
        #[cfg(feature = "otel")]
        if let Some(otel) = &mut self.otel {
            // The worker stops now: blocking its thread for the last export is fine, and the
            // close answers only once the OTel spans are out too (or its deadline passed).
            let left = closing_deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
            otel.close(left);
        }
        if let Some(reply) = self.closing.take().and_then(|c| c.reply) {
            let _ = reply.send(report);
        }
        true
    }

    /// The next flush or close deadline, or when the next lingering create is due.
    pub(super) fn next_deadline(&mut self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let deadlines = self.flushes.iter().map(|w| w.deadline).chain(self.closing.as_ref().map(|c| c.deadline));
        deadlines.chain(self.scheduler.next_linger_due()).chain(self.next_retry_due()).min().unwrap_or(far)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::super::test_worker::worker;
    use super::*;
    use crate::queue::operation::Op;
    use crate::record::ids::InstanceId;
    use crate::record::timestamp::Timestamp;

    fn flush(worker: &mut Worker, within: Duration) -> oneshot::Receiver<Result<(), Error>> {
        let (reply, answer) = oneshot::channel();
        worker.on_command(Command::Flush { deadline: std::time::Instant::now() + within, reply });
        worker.answer_flushes();
        answer
    }

    /// `close` answering while the worker still held the spool's lock made a client started
    /// right after it run without the spool, leaving its records unsent (the wait the spool
    /// tests once needed before their second client).
    #[test]
    fn close_is_answered_after_the_spool_is_released() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = crate::config::Config::builder()
            .api_url("http://127.0.0.1:9")
            .api_token("t")
            .spool_dir(dir.path())
            .build()
            .expect("valid config");
        let (mut worker, _ops) = super::super::test_worker::worker_with(config);
        worker.spool = super::super::spooling::open_spool(&worker.shared.config);
        assert!(worker.spool.is_some(), "this worker holds the spool");
        let (reply, mut answer) = oneshot::channel();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        worker.on_command(Command::Shutdown { deadline, reply });
        assert!(worker.finish_close_if_due(), "nothing to deliver: it closes at once");
        assert!(answer.try_recv().is_ok(), "close is answered");
        // The worker is not dropped yet (its thread ends a moment after answering).
        let next = crate::delivery::spool::Spool::open(dir.path(), 1 << 20).expect("the spool opens");
        assert!(next.is_some(), "the next client gets the spool as soon as close returned");
        drop(worker);
    }

    #[test]
    fn a_flush_with_nothing_queued_is_answered_at_once() {
        let (mut worker, _ops) = worker();
        assert!(matches!(flush(&mut worker, Duration::from_secs(60)).try_recv(), Ok(Ok(()))));
        assert!(worker.flushes.is_empty());
    }

    #[test]
    fn a_flush_waits_for_what_was_queued_before_it_until_its_deadline() {
        let (mut worker, ops) = worker();
        let settled = std::sync::atomic::AtomicU64::new(0);
        let op = Op::Start { instance: InstanceId::generate(0), at: Timestamp::now() };
        assert!(ops.push(op, u64::MAX, &settled).is_ok());
        let mut answer = flush(&mut worker, Duration::from_secs(60));
        assert_eq!(worker.taken, 1, "the flush took what was queued before it");
        assert!(answer.try_recv().is_err(), "not settled: no answer yet");
        // The deadline passes with the operation still unsettled.
        worker.flushes[0].deadline = Instant::now();
        worker.answer_flushes();
        assert!(matches!(answer.try_recv(), Ok(Err(Error::Timeout))));
        assert!(worker.flushes.is_empty());
    }
}
