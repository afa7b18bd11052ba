//! The worker: runs on its own thread with a small tokio runtime, takes operations from the
//! queue, orders them (see `scheduler`), sends them with bounded concurrency, retries transient
//! failures, and answers flush/shutdown requests.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::bulk_batch::{BulkBatch, MAX_BULK_BYTES, body_of};
use crate::bulk_outcome::{BulkAnswer, ItemResult, missing_output};
use crate::client::Shared;
use crate::close_report::CloseReport;
use crate::delivery::Delivery;
use crate::error::Error;
use crate::flush_epochs::{Epochs, FlushLedger};
use crate::ids::InstanceId;
use crate::instance::InstanceState;
use crate::op_queue::{DOZE_TICK, OpQueue};
use crate::operation::{Op, OpKind};
use crate::requests;
use crate::retry::retry_delay;
use crate::scheduler::{Scheduler, Taken};
use crate::stats::Counters;
use crate::transport::{Attempt, BulkReply, Transport, termination_signal_of};

/// Requests from the client to the worker.
pub(crate) enum Command {
    /// Validate the token.
    Ping { reply: oneshot::Sender<Result<(), Error>> },
    /// Answer once every operation queued before this command was sent is settled, or at
    /// `deadline`.
    Flush { deadline: std::time::Instant, reply: oneshot::Sender<Result<(), Error>> },
    /// Deliver what is queued until `deadline`, then stop.
    Shutdown { deadline: std::time::Instant, reply: oneshot::Sender<CloseReport> },
}

/// Rests without new operations after which the worker parks instead of dozing.
const IDLE_TICKS_BEFORE_PARKING: u32 = 16;

/// Most operations taken from the queue per wake-up before dispatching.
const BATCH: usize = 4096;

/// Starts the worker thread.
pub(crate) fn spawn(worker: Worker) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("prefactor-worker".into())
        .spawn(move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(worker.run()),
            Err(err) => tracing::error!(error = %err, "prefactor: could not start the worker runtime"),
        })
        .map(drop)
        .map_err(|_| Error::WorkerGone)
}

/// Operations that travel in one request, and how many times that request was retried.
struct Shipment {
    /// One operation (per-request delivery), or a bulk batch in item order.
    items: Vec<(Op, Epochs)>,
    attempt: u32,
    /// Sent as a bulk request (else each item is its own single request; then there is one).
    bulk: bool,
}

impl Shipment {
    fn single(op: Op, epochs: Epochs, attempt: u32) -> Shipment {
        Shipment { items: vec![(op, epochs)], attempt, bulk: false }
    }
}

/// The answer to a shipment's request.
enum Reply {
    Single(Attempt),
    Bulk(BulkReply),
}

struct Attempted {
    shipment: Shipment,
    reply: Reply,
}

struct FlushWaiter {
    /// Answered once every operation accepted in this flush epoch or before is settled.
    epoch: u64,
    deadline: Instant,
    reply: oneshot::Sender<Result<(), Error>>,
}

struct Closing {
    deadline: Instant,
    reply: Option<oneshot::Sender<CloseReport>>,
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    transport: Arc<Transport>,
    ops: Arc<OpQueue>,
    /// Queue weight taken from `ops` so far (compared with `enqueued` before parking).
    taken: u64,
    /// `taken` when the worker last went to rest, and the rests since it last changed.
    taken_at_rest: u64,
    idle_ticks: u32,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    scheduler: Scheduler,
    attempts: JoinSet<Attempted>,
    retry_timers: JoinSet<Shipment>,
    retry_ready: VecDeque<Shipment>,
    /// How operations go out now: the configured delivery until a server without a bulk
    /// endpoint makes it per-request for good.
    delivery: Delivery,
    live: HashMap<InstanceId, Arc<InstanceState>>,
    flushes: Vec<FlushWaiter>,
    /// Unsettled operations by flush epoch.
    ledger: FlushLedger,
    closing: Option<Closing>,
    /// Enqueued operations that reached a final state (sent, failed, or discarded).
    settled: u64,
}

impl Worker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        transport: Transport,
        ops: Arc<OpQueue>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Worker {
        Worker {
            delivery: shared.config.delivery(),
            scheduler: Scheduler::with_linger(shared.config.linger()),
            shared,
            transport: Arc::new(transport),
            ops,
            taken: 0,
            taken_at_rest: 0,
            idle_ticks: IDLE_TICKS_BEFORE_PARKING,
            commands,
            commands_open: true,
            attempts: JoinSet::new(),
            retry_timers: JoinSet::new(),
            retry_ready: VecDeque::new(),
            live: HashMap::new(),
            flushes: Vec::new(),
            ledger: FlushLedger::default(),
            closing: None,
            settled: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut poll = tokio::time::interval(self.shared.config.termination_poll_interval());
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        poll.reset();
        loop {
            let drained = self.accept_batch();
            self.dispatch();
            self.answer_flushes();
            if self.finish_close_if_due() {
                break;
            }
            let wake = self.next_deadline();
            // When the queue is drained: doze (drain again after a short tick, no wake-ups
            // needed) while operations keep coming, park (wait to be woken) once they stopped.
            // Otherwise just give the other branches (completed requests first) a turn.
            let (parked, dozing) = self.rest(drained);
            let ops = self.ops.clone();
            tokio::select! {
                biased;
                Some(done) = self.attempts.join_next(), if !self.attempts.is_empty() => match done {
                    Ok(attempted) => self.on_attempt(attempted),
                    Err(err) => tracing::error!(error = %err, "prefactor: a send task failed"),
                },
                Some(due) = self.retry_timers.join_next(), if !self.retry_timers.is_empty() => {
                    if let Ok(shipment) = due {
                        self.retry_ready.push_back(shipment);
                    }
                }
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => self.on_command(command),
                    None => {
                        // Every client handle is gone: deliver what is left, then stop.
                        self.commands_open = false;
                        let deadline = Instant::now() + self.shared.config.close_timeout();
                        self.closing.get_or_insert(Closing { deadline, reply: None });
                    }
                },
                _ = poll.tick() => self.poll_live(),
                _ = tokio::time::sleep_until(wake) => {}
                _ = ops.woken(), if parked || dozing => {}
                _ = tokio::time::sleep(DOZE_TICK), if dozing => {}
                _ = std::future::ready(()), if !parked && !dozing => {}
            }
            self.ops.unpark();
        }
    }

    /// How the worker waits when nothing else happens: `(parked, dozing)`.
    fn rest(&mut self, drained: bool) -> (bool, bool) {
        if !drained {
            return (false, false);
        }
        if self.taken != self.taken_at_rest {
            self.taken_at_rest = self.taken;
            self.idle_ticks = 0;
        } else {
            self.idle_ticks = self.idle_ticks.saturating_add(1);
        }
        if self.idle_ticks < IDLE_TICKS_BEFORE_PARKING {
            self.ops.doze();
            return (false, true);
        }
        (self.ops.park(self.taken), false)
    }

    /// Takes up to `BATCH` operations from the queue; true when it is drained.
    fn accept_batch(&mut self) -> bool {
        let now = Instant::now();
        for _ in 0..BATCH {
            let Some(op) = self.ops.pop() else { return true };
            self.taken += op.weight();
            self.accept(op, now);
        }
        false
    }

    fn accept(&mut self, op: Op, now: Instant) {
        let epochs = self.ledger.accept(op.weight());
        if self.shared.is_latched() {
            self.discard(op, epochs);
            return;
        }
        if let OpKind::Finish(instance) = op.kind() {
            self.live.remove(&instance);
        }
        self.scheduler.push(op, epochs, now);
    }

    /// Sends ready operations while fewer than `concurrency` requests are in flight: retries
    /// first, then bulk batches (or single requests). Ready operations that wait here can still
    /// absorb their span's finish (merge).
    fn dispatch(&mut self) {
        self.scheduler.release_lingering(Some(Instant::now()));
        let limit = self.shared.config.concurrency();
        while self.attempts.len() < limit {
            if let Some(shipment) = self.retry_ready.pop_front() {
                self.send_again(shipment);
                continue;
            }
            let took = if self.delivery == Delivery::Bulk && !self.shared.is_latched() {
                self.dispatch_batch()
            } else {
                self.dispatch_one()
            };
            if !took {
                break;
            }
        }
    }

    /// Hands out one ready operation as its own request; false when none is ready.
    fn dispatch_one(&mut self) -> bool {
        let Some((op, epochs)) = self.scheduler.next_ready() else { return false };
        if self.shared.is_latched() {
            self.discard_sent(op, epochs);
        } else if let Some(reason) = self.scheduler.doomed(&op) {
            self.fail_doomed(op, epochs, reason);
        } else {
            self.spawn(Shipment::single(op, epochs, 0));
        }
        true
    }

    /// Fills one bulk request with ready operations (whole runs of an instance when they are
    /// queued together) and sends it; false when nothing was ready.
    fn dispatch_batch(&mut self) -> bool {
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
            let transport = self.transport.clone();
            let body = batch.into_body();
            self.attempts.spawn(async move {
                let reply = Reply::Bulk(transport.post_bulk(body).await);
                Attempted { shipment: Shipment { items, attempt: 0, bulk: true }, reply }
            });
        }
        took
    }

    /// Sends a shipment whose retry delay passed, unless sending stopped or changed meanwhile.
    fn send_again(&mut self, shipment: Shipment) {
        if self.shared.is_latched() {
            for (op, epochs) in shipment.items {
                self.discard_sent(op, epochs);
            }
        } else if shipment.bulk && self.delivery != Delivery::Bulk {
            self.restore(shipment.items);
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

    fn spawn(&mut self, shipment: Shipment) {
        let transport = self.transport.clone();
        self.attempts.spawn(async move {
            let reply = if shipment.bulk {
                Reply::Bulk(transport.post_bulk(body_of(&shipment.items)).await)
            } else {
                Reply::Single(send(&transport, &shipment.items[0].0).await)
            };
            Attempted { shipment, reply }
        });
    }

    fn on_attempt(&mut self, Attempted { mut shipment, reply }: Attempted) {
        match reply {
            Reply::Single(result) => {
                let (op, epochs) = shipment.items.remove(0);
                self.on_result(op, epochs, shipment.attempt, result);
            }
            Reply::Bulk(BulkReply::Answered(body)) => self.on_bulk_answer(shipment, &body),
            Reply::Bulk(BulkReply::Unsupported(status)) => {
                if self.delivery == Delivery::Bulk {
                    tracing::warn!(
                        status,
                        "prefactor: the server has no bulk endpoint; sending one request per operation"
                    );
                    self.delivery = Delivery::PerRequest;
                }
                self.restore(shipment.items);
            }
            Reply::Bulk(BulkReply::Failed(result)) => self.on_bulk_failure(shipment, result),
        }
    }

    /// Settles the operation of a request (or bulk item) from its outcome.
    fn on_result(&mut self, op: Op, epochs: Epochs, attempt: u32, result: Attempt) {
        match result {
            Attempt::Done(body) => {
                self.apply_response(&op, body.get("control"));
                self.succeed(op, epochs);
            }
            Attempt::AlreadyDone => self.succeed(op, epochs),
            Attempt::Transient { retry_after, error } => {
                let bulk = self.delivery == Delivery::Bulk;
                let shipment = Shipment { items: vec![(op, epochs)], attempt, bulk };
                self.retry_later(shipment, retry_after, error);
            }
            Attempt::Auth(error) => {
                self.shared.latch(error.clone());
                self.fail(op, epochs, error);
            }
            Attempt::Permanent(error) => self.fail(op, epochs, error),
        }
    }

    /// Reads a bulk answer item by item, in order. An item without an output after one that
    /// failed was not run: it goes back to the scheduler (a re-send, not a retry).
    fn on_bulk_answer(&mut self, shipment: Shipment, body: &[u8]) {
        let Some(answer) = BulkAnswer::parse(body) else {
            let message = "the bulk answer is not `{\"outputs\": {...}}`".to_owned();
            let error = Error::Http { operation: "bulk request", status: None, code: None, message };
            return self.retry_later(shipment, None, error);
        };
        let mut failed_before = false;
        let mut not_run = Vec::new();
        for (op, epochs) in shipment.items {
            let label = op.kind().label();
            let key = requests::idempotency_key(&op);
            let Some(output) = answer.output(&key) else {
                if failed_before {
                    not_run.push((op, epochs));
                } else {
                    failed_before = true;
                    self.on_result(op, epochs, shipment.attempt, missing_output(label));
                }
                continue;
            };
            match output.result(label, requests::conflict_is_done(&op)) {
                ItemResult::Done(control) => {
                    self.apply_response(&op, control);
                    self.succeed(op, epochs);
                }
                ItemResult::Failed(result) => {
                    failed_before = true;
                    self.on_result(op, epochs, shipment.attempt, result);
                }
            }
        }
        self.restore(not_run);
    }

    /// The bulk request as a whole failed: retry it (transient), or fail every item.
    fn on_bulk_failure(&mut self, shipment: Shipment, result: Attempt) {
        match result {
            Attempt::Transient { retry_after, error } => self.retry_later(shipment, retry_after, error),
            Attempt::Auth(error) => {
                self.shared.latch(error.clone());
                self.fail_all(shipment, error);
            }
            Attempt::Permanent(error) => self.fail_all(shipment, error),
            Attempt::Done(_) | Attempt::AlreadyDone => {
                let message = "unexpected bulk answer".to_owned();
                self.fail_all(shipment, Error::Http { operation: "bulk request", status: None, code: None, message });
            }
        }
    }

    /// Sends `shipment` again after the backoff delay (same items, same keys), or fails it once
    /// its retries are used up.
    fn retry_later(&mut self, shipment: Shipment, retry_after: Option<Duration>, error: Error) {
        let attempt = shipment.attempt;
        if attempt >= self.shared.config.max_retries() {
            return self.fail_all(shipment, error);
        }
        // One per request-sized operation retried (a create carrying its finish counts once).
        Counters::add(&self.shared.counters.retried, shipment.items.len() as u64);
        let delay = retry_delay(&self.shared.config, attempt, retry_after);
        let operation = shipment.items.first().map_or("", |(op, _)| op.kind().label());
        tracing::debug!(operation, items = shipment.items.len(), error = %error, ?delay, attempt, "prefactor: retrying");
        self.retry_timers.spawn(async move {
            tokio::time::sleep(delay).await;
            Shipment { attempt: attempt + 1, ..shipment }
        });
    }

    fn fail_all(&mut self, shipment: Shipment, error: Error) {
        for (op, epochs) in shipment.items {
            self.fail(op, epochs, error.clone());
        }
    }

    fn fail_doomed(&mut self, op: Op, epochs: Epochs, reason: String) {
        let error = Error::Http { operation: op.kind().label(), status: None, code: None, message: reason };
        self.fail(op, epochs, error);
    }

    /// Gives operations handed out but not run back to the scheduler, in order.
    fn restore(&mut self, items: Vec<(Op, Epochs)>) {
        for (op, epochs) in items {
            self.scheduler.restore(op, epochs);
        }
    }

    /// Termination signals and instance liveness from a successful response (`control`: the
    /// span actions' control object, when present).
    fn apply_response(&mut self, op: &Op, control: Option<&Value>) {
        match op {
            Op::CreateSpan(_) | Op::FinishSpan(_) => {
                if let Some(reason) = control.and_then(termination_signal_of)
                    && let Some(instance) = op.kind().instance().and_then(|id| self.shared.instance(id))
                    && instance.termination.mark(reason.clone())
                {
                    tracing::info!(instance = %instance.id, ?reason, "prefactor: instance terminated by the platform");
                }
            }
            Op::Start { instance, .. } => {
                if let Some(state) = self.shared.instance(*instance)
                    && !state.finished.load(Ordering::Acquire)
                {
                    self.live.insert(*instance, state);
                }
            }
            _ => {}
        }
    }

    fn succeed(&mut self, op: Op, epochs: Epochs) {
        let weight = op.weight();
        Counters::add(&self.shared.counters.sent, weight);
        self.settle(epochs, weight);
        self.scheduler.complete(op.kind(), true);
    }

    fn fail(&mut self, op: Op, epochs: Epochs, error: Error) {
        let weight = op.weight();
        tracing::warn!(operation = op.kind().label(), error = %error, "prefactor: operation failed");
        self.shared.record_error(&error);
        Counters::add(&self.shared.counters.failed, weight);
        self.settle(epochs, weight);
        self.scheduler.complete(op.kind(), false);
    }

    /// Drops an operation taken from the queue after the token was rejected.
    fn discard(&mut self, op: Op, epochs: Epochs) {
        let weight = op.weight();
        Counters::add(&self.shared.counters.dropped, weight);
        self.settle(epochs, weight);
    }

    /// Drops an operation handed out by the scheduler (so what waits on it is released).
    fn discard_sent(&mut self, op: Op, epochs: Epochs) {
        let kind = op.kind();
        self.discard(op, epochs);
        self.scheduler.complete(kind, false);
    }

    fn settle(&mut self, epochs: Epochs, weight: u64) {
        self.ledger.settle(epochs, weight);
        self.settled += weight;
        self.shared.counters.settled.store(self.settled, Ordering::Release);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Ping { reply } => {
                let transport = self.transport.clone();
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    let _ = reply.send(ping(&transport, &shared).await);
                });
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

    fn all_settled(&self) -> bool {
        self.settled >= self.ops.enqueued()
    }

    fn answer_flushes(&mut self) {
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
    fn finish_close_if_due(&mut self) -> bool {
        let Some(closing) = &self.closing else { return false };
        let done = self.all_settled() && self.attempts.is_empty() && self.retry_timers.is_empty();
        let timed_out = !done && Instant::now() >= closing.deadline;
        if !done && !timed_out {
            return false;
        }
        self.attempts.abort_all();
        self.retry_timers.abort_all();
        self.ops.close();
        // Free what will never be sent now rather than with the client: a client may outlive
        // its worker for long (threads keep a lease on it, `thread_lease.rs`).
        while self.ops.pop().is_some() {}
        let report = self.shared.report(self.ops.enqueued(), self.settled, timed_out);
        if timed_out {
            tracing::warn!(undelivered = report.undelivered, "prefactor: close deadline passed");
        }
        for waiter in self.flushes.drain(..) {
            let _ = waiter.reply.send(Err(Error::Closed));
        }
        if let Some(reply) = self.closing.take().and_then(|c| c.reply) {
            let _ = reply.send(report);
        }
        true
    }

    /// The next flush or close deadline, or when the next lingering create is due.
    fn next_deadline(&mut self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let deadlines = self.flushes.iter().map(|w| w.deadline).chain(self.closing.as_ref().map(|c| c.deadline));
        deadlines.chain(self.scheduler.next_linger_due()).min().unwrap_or(far)
    }

    /// Polls each live instance (started, not finished, not terminated) for termination.
    fn poll_live(&mut self) {
        self.live.retain(|_, state| !state.termination.is_terminated() && !state.finished.load(Ordering::Acquire));
        for state in self.live.values() {
            if state.polling.swap(true, Ordering::AcqRel) {
                continue;
            }
            let transport = self.transport.clone();
            let state = state.clone();
            tokio::spawn(async move {
                poll_instance(&transport, &state).await;
                state.polling.store(false, Ordering::Release);
            });
        }
    }
}

async fn send(transport: &Transport, op: &Op) -> Attempt {
    let label = op.kind().label();
    match requests::build(op) {
        Ok(request) => transport.post(label, &request.path, request.body, request.conflict_is_done).await,
        Err(err) => Attempt::Permanent(err.into()),
    }
}

/// `GET /ping`, retried like any request (auth and other permanent errors are final).
async fn ping(transport: &Transport, shared: &Shared) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        match transport.get("token validation", "/ping").await {
            Attempt::Done(_) | Attempt::AlreadyDone => return Ok(()),
            Attempt::Auth(error) | Attempt::Permanent(error) => return Err(error),
            Attempt::Transient { retry_after, error } => {
                if attempt >= shared.config.max_retries() {
                    return Err(error);
                }
                tokio::time::sleep(retry_delay(&shared.config, attempt, retry_after)).await;
                attempt += 1;
            }
        }
    }
}

/// One termination poll; errors are logged and ignored (the next tick tries again).
async fn poll_instance(transport: &Transport, state: &InstanceState) {
    match transport.get("termination poll", &format!("/agent_instance/{}", state.id)).await {
        Attempt::Done(body) => {
            let details = body.get("details");
            let status = details.and_then(|d| d.get("status")).and_then(Value::as_str);
            if status == Some("terminated") {
                let reason =
                    details.and_then(|d| d.get("termination_reason")).and_then(Value::as_str).map(str::to_owned);
                if state.termination.mark(reason.clone()) {
                    tracing::info!(instance = %state.id, ?reason, "prefactor: instance terminated by the platform (poll)");
                }
            }
        }
        Attempt::AlreadyDone => {}
        Attempt::Transient { error, .. } | Attempt::Auth(error) | Attempt::Permanent(error) => {
            tracing::debug!(instance = %state.id, error = %error, "prefactor: termination poll failed");
        }
    }
}
