//! The worker: runs on its own thread with a small tokio runtime, takes operations from the
//! queue, orders them (see `scheduler`), sends them with bounded concurrency, retries transient
//! failures, and answers flush/shutdown requests.
//!
//! Delivery rules: a transient failure (408, 429, 5xx) or an unseen outcome (refused or reset
//! connection, timeout) never drops an operation; it waits with backoff (`retry`) and is sent
//! again with the same idempotency key until delivered or until `close()`'s deadline. Only a
//! permanent answer (another 4xx) fails an operation. A bulk request the server rejects as a
//! whole is not a verdict on its items: they go again one request each.
//!
//! With a spool (`spool.rs`), a shipment still failing after several attempts while every
//! request fails goes to disk instead of waiting in memory, and from then on, while the spool
//! holds anything, new operations follow it there (so order holds); one task sends the spool
//! again, record by record, and once it has caught up sending goes direct again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
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
use crate::retry::{RetryQueue, retry_delay};
use crate::scheduler::{Scheduler, Taken};
use crate::spool::{Spool, SpoolRecord};
use crate::stats::Counters;
use crate::token_check::{self, TokenCheck};
use crate::transport::{Attempt, BulkReply, Transport, termination_signal_of};

/// Requests from the client to the worker.
pub(crate) enum Command {
    /// Answer with the token check's outcome once the API answered it, or at `deadline`.
    CheckConnection { waited: Duration, deadline: std::time::Instant, reply: oneshot::Sender<Result<(), Error>> },
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

/// Bulk requests rejected as a whole in a row after which the client sends one request per
/// operation for good.
const BULK_REJECTIONS_BEFORE_SWITCH: u32 = 3;

/// Failed requests in a row after which the next answer means the server is back: what waits
/// for a retry goes out at once.
const FAILURES_MEANING_OUTAGE: u32 = 3;

/// Retries of one shipment after which the wait is logged as a warning (once).
const RETRIES_BEFORE_WARNING: u32 = 5;

/// Distinct permanent-failure reasons kept for the close report.
const MAX_FAILURE_REASONS: usize = 16;

/// Retries of a shipment after which, during an outage, it goes to the spool.
const RETRIES_BEFORE_SPOOLING: u32 = 3;

/// Failed attempts of one spooled record after which a closing client stops waiting for the
/// replay (the records stay in the spool for the next client).
const REPLAY_FAILURES_BEFORE_GIVING_UP_AT_CLOSE: u32 = 3;

/// What a replay of the spool did.
struct Replayed {
    /// Offset just past the last record settled.
    end: u64,
    delivered: u64,
    /// Permanent failures of spooled records.
    failed: Vec<Error>,
    /// The token was rejected: the replay stopped, the rest stays in the spool.
    auth: Option<Error>,
}

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
    /// An earlier attempt got no answer: the server may already have applied it.
    unseen: bool,
}

impl Shipment {
    fn single(op: Op, epochs: Epochs, unseen: bool) -> Shipment {
        Shipment { items: vec![(op, epochs)], attempt: 0, bulk: false, unseen }
    }

    /// Queue operations this shipment stands for.
    fn weight(&self) -> u64 {
        self.items.iter().map(|(op, _)| op.weight()).sum()
    }
}

/// The answer to a shipment's request.
enum Reply {
    Single(Attempt),
    Bulk(BulkReply),
}

/// How an operation goes again if its outcome is transient or unseen.
#[derive(Clone, Copy)]
struct Resend {
    attempt: u32,
    bulk: bool,
    unseen: bool,
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
    /// Queue operations in the requests of `attempts`.
    in_flight: u64,
    /// Shipments waiting for their retry delay.
    retries: RetryQueue<Shipment>,
    /// Failed requests since the last answer that was not a failure.
    failures_in_a_row: u32,
    /// How operations go out now: the configured delivery until a server without a bulk
    /// endpoint, or one rejecting bulk requests again and again, makes it per-request for good.
    delivery: Delivery,
    /// Keys of the items of rejected bulk requests not yet settled: while any is left,
    /// everything goes one request per operation.
    fallback: HashSet<String>,
    /// Bulk requests rejected as a whole in a row.
    bulk_rejections: u32,
    /// Operations given back to the scheduler after an unseen outcome (key → weight), so the
    /// report still knows they may be on the server.
    unseen_restored: HashMap<String, u64>,
    /// Distinct reasons of permanent failures with their counts (bounded).
    failure_reasons: Vec<(String, u64)>,
    register_failure_logged: bool,
    /// The disk spool, when configured and this process holds its lock.
    spool: Option<Spool>,
    /// The one task sending the spool's records again.
    replay: JoinSet<Replayed>,
    /// Set by the replay task while its current record keeps failing.
    replay_stuck: Arc<std::sync::atomic::AtomicBool>,
    live: HashMap<InstanceId, Arc<InstanceState>>,
    flushes: Vec<FlushWaiter>,
    /// Unsettled operations by flush epoch.
    ledger: FlushLedger,
    closing: Option<Closing>,
    /// Enqueued operations that reached a final state (sent, failed, or discarded).
    settled: u64,
    /// The background token check's state, until the API answered it: operations wait
    /// meanwhile (each failed probe wakes the worker, which may spool what waits).
    token_check: Option<watch::Receiver<TokenCheck>>,
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
            in_flight: 0,
            retries: RetryQueue::default(),
            failures_in_a_row: 0,
            fallback: HashSet::new(),
            bulk_rejections: 0,
            unseen_restored: HashMap::new(),
            failure_reasons: Vec::new(),
            register_failure_logged: false,
            spool: None,
            replay: JoinSet::new(),
            replay_stuck: Arc::default(),
            live: HashMap::new(),
            flushes: Vec::new(),
            ledger: FlushLedger::default(),
            closing: None,
            settled: 0,
            token_check: None,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut poll = tokio::time::interval(self.shared.config.termination_poll_interval());
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        poll.reset();
        self.spool = open_spool(&self.shared.config);
        self.replay_spool(0);
        self.token_check = Some(self.shared.token_check.subscribe());
        tokio::spawn(token_check::run(self.transport.clone(), self.shared.clone()));
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
            let checking = self.token_check.is_some();
            let check = self.token_check.as_mut();
            tokio::select! {
                biased;
                Some(done) = self.attempts.join_next(), if !self.attempts.is_empty() => match done {
                    Ok(attempted) => self.on_attempt(attempted),
                    Err(err) => tracing::error!(error = %err, "prefactor: a send task failed"),
                },
                Some(done) = self.replay.join_next(), if !self.replay.is_empty() => match done {
                    Ok(replayed) => self.on_replayed(replayed),
                    Err(err) => tracing::error!(error = %err, "prefactor: the spool replay failed"),
                },
                changed = async { match check { Some(states) => states.changed().await.is_ok(), None => false } }, if checking => {
                    // Once answered (or latched), what waited is dispatched (or discarded).
                    if !changed || self.shared.token_check.current().is_answered() {
                        self.token_check = None;
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
    /// whose delay passed first, then bulk batches (or single requests). Ready operations that
    /// wait here can still absorb their span's finish (merge).
    fn dispatch(&mut self) {
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
        if self.spool_pending() {
            // Behind what the spool holds: retries and new operations go there too.
            while let Some(shipment) = self.retries.pop_due(now) {
                self.spool_items(shipment.items);
            }
            self.spool_ready();
            return;
        }
        while self.attempts.len() < limit {
            if let Some(shipment) = self.retries.pop_due(now) {
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
    fn sends_bulk(&self) -> bool {
        self.delivery == Delivery::Bulk && self.fallback.is_empty() && !self.shared.is_latched()
    }

    /// Hands out one ready operation as its own request; false when none is ready.
    fn dispatch_one(&mut self) -> bool {
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
    fn take_unseen(&mut self, op: &Op) -> bool {
        !self.unseen_restored.is_empty() && self.unseen_restored.remove(&requests::idempotency_key(op)).is_some()
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
            let mut unseen = false;
            for (op, _) in &items {
                unseen |= self.take_unseen(op);
            }
            let transport = self.transport.clone();
            let body = batch.into_body();
            let shipment = Shipment { items, attempt: 0, bulk: true, unseen };
            self.in_flight += shipment.weight();
            self.attempts.spawn(async move {
                let reply = Reply::Bulk(transport.post_bulk(body).await);
                Attempted { shipment, reply }
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

    fn spawn(&mut self, shipment: Shipment) {
        self.in_flight += shipment.weight();
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
    fn on_result(&mut self, op: Op, epochs: Epochs, resend: Resend, result: Attempt) {
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
                self.fail(op, epochs, error);
            }
        }
    }

    /// Reads a bulk answer item by item, in order. An item without an output after one that
    /// failed was not run: it goes back to the scheduler (a re-send, not a retry). An item the
    /// answer cannot settle (no output although nothing failed before it, or an error code
    /// this SDK does not know) goes once as its own request, whose answer decides.
    fn on_bulk_answer(&mut self, shipment: Shipment, body: &[u8]) {
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
    fn send_alone(&mut self, op: Op, epochs: Epochs, unseen: bool, why: &Error) {
        tracing::debug!(operation = op.kind().label(), reason = %why, "prefactor: sending a bulk item on its own");
        self.spawn(Shipment::single(op, epochs, unseen));
    }

    /// The bulk request as a whole failed: retry it (transient or unseen), or, when the server
    /// rejected it (a 4xx other than 401/403, 408, 409 and 429), send its items again one
    /// request each.
    fn on_bulk_failure(&mut self, shipment: Shipment, result: Attempt) {
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
    fn reject_bulk(&mut self, shipment: Shipment, error: &Error) {
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

    /// An answer arrived that is not a failure: after an outage (several failures in a row),
    /// what waits for a retry goes out now instead of after its backoff.
    fn server_answered(&mut self) {
        if self.failures_in_a_row >= FAILURES_MEANING_OUTAGE {
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
    fn retry_later(&mut self, shipment: Shipment, retry_after: Option<Duration>, error: Error) {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        let outage = self.failures_in_a_row >= FAILURES_MEANING_OUTAGE && shipment.attempt >= RETRIES_BEFORE_SPOOLING;
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

    /// Whether the spool holds records not yet sent again.
    fn spool_pending(&self) -> bool {
        self.spool.as_ref().is_some_and(|spool| spool.len() > 0)
    }

    /// Moves every ready operation to the spool, and what that releases, in dependency order
    /// (one write per round of released operations).
    fn spool_ready(&mut self) {
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
    fn spool_items(&mut self, items: Vec<(Op, Epochs)>) {
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
            tracing::warn!("prefactor: the API is unreachable; operations go to the spool until it answers again");
            self.replay_spool(0);
        }
    }

    /// Starts sending the spool's records from byte `offset`, unless a replay runs already.
    fn replay_spool(&mut self, offset: u64) {
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
        self.replay.spawn(async move { replay(&transport, &shared, &stuck, records, offset).await });
    }

    /// A replay ended: count it, and empty the spool once it caught up with it.
    fn on_replayed(&mut self, replayed: Replayed) {
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

    fn fail_all(&mut self, shipment: Shipment, error: Error) {
        for (op, epochs) in shipment.items {
            self.fail(op, epochs, error.clone());
        }
    }

    /// Fails an operation that cannot be taken because what it needs failed (reported with
    /// that reason, without a log line each: the cause was logged).
    fn fail_doomed(&mut self, op: Op, epochs: Epochs, reason: String) {
        let error = Error::Http { operation: op.kind().label(), status: None, code: None, message: reason };
        self.count_failure(&op, epochs, &error);
    }

    /// Gives operations handed out but not run back to the scheduler, in order; `unseen`: an
    /// earlier attempt of theirs got no answer.
    fn restore(&mut self, items: Vec<(Op, Epochs)>, unseen: bool) {
        for (op, epochs) in items {
            if unseen {
                self.unseen_restored.insert(requests::idempotency_key(&op), op.weight());
            }
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

    /// `unseen`: an earlier attempt got no answer, so this confirms it.
    fn succeed(&mut self, op: Op, epochs: Epochs, unseen: bool) {
        let weight = op.weight();
        Counters::add(&self.shared.counters.sent, weight);
        if unseen {
            Counters::add(&self.shared.counters.confirmed_after_unknown, weight);
        }
        self.forget_fallback(&op);
        self.settle(epochs, weight);
        self.scheduler.complete(op.kind(), true);
    }

    /// A permanent answer: the operation is failed, logged (a register once per client, with
    /// the fix, since everything of its run fails with it) and counted with its reason.
    fn fail(&mut self, op: Op, epochs: Epochs, error: Error) {
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

    fn count_failure(&mut self, op: &Op, epochs: Epochs, error: &Error) {
        let weight = op.weight();
        self.shared.record_error(error);
        self.note_reason(error, weight);
        Counters::add(&self.shared.counters.failed, weight);
        self.forget_fallback(op);
        self.settle(epochs, weight);
        self.scheduler.complete(op.kind(), false);
    }

    /// Counts a permanent failure under its reason (the first `MAX_FAILURE_REASONS` distinct
    /// ones; later ones under the last entry).
    fn note_reason(&mut self, error: &Error, weight: u64) {
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
    fn forget_fallback(&mut self, op: &Op) {
        if !self.fallback.is_empty() {
            self.fallback.remove(&requests::idempotency_key(op));
        }
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
        self.forget_fallback(&op);
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
        // The spool is waited for while its replay makes progress; records a replay cannot
        // send stay for the next client.
        let spool_done = !self.spool_pending() || self.replay_stuck.load(Ordering::Acquire) || self.shared.is_latched();
        let done = self.all_settled() && self.attempts.is_empty() && self.retries.is_empty() && spool_done;
        let timed_out = !done && Instant::now() >= closing.deadline;
        if !done && !timed_out {
            return false;
        }
        if timed_out && self.spool.is_some() {
            // Unsent operations go to the spool for the next client rather than being lost.
            self.scheduler.release_lingering(None);
            let waiting: Vec<Shipment> = self.retries.drain().collect();
            for shipment in waiting {
                self.spool_items(shipment.items);
            }
            self.spool_ready();
        }
        self.attempts.abort_all();
        self.replay.abort_all();
        // Requests in flight now, and operations whose last attempt got no answer, may be on
        // the server: unknown, not undelivered.
        let unknown = self.in_flight
            + self.retries.items().filter(|s| s.unseen).map(Shipment::weight).sum::<u64>()
            + self.unseen_restored.values().sum::<u64>();
        self.retries.drain().for_each(drop);
        self.ops.close();
        // Free what will never be sent now rather than with the client: a client may outlive
        // its worker for long (threads keep a lease on it, `thread_lease.rs`).
        while self.ops.pop().is_some() {}
        let mut report = self.shared.report(self.ops.enqueued(), self.settled, timed_out);
        report.unknown = unknown.min(report.undelivered);
        report.undelivered -= report.unknown;
        report.failure_reasons = std::mem::take(&mut self.failure_reasons);
        if let Some(spool) = self.spool.as_mut() {
            report.left_in_spool = spool.read_from(0).map_or(0, |records| records.len() as u64);
        }
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
        deadlines.chain(self.scheduler.next_linger_due()).chain(self.retries.next_due()).min().unwrap_or(far)
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

/// Opens the configured spool; without one (not configured, held by another process, or
/// unusable) the client works as if it were off, and says why.
fn open_spool(config: &crate::config::Config) -> Option<Spool> {
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

/// Sends spooled records in order, each until it is settled (transient failures wait with
/// backoff, without a count); stops at an auth failure.
async fn replay(
    transport: &Transport,
    shared: &Shared,
    stuck: &std::sync::atomic::AtomicBool,
    records: Vec<(u64, SpoolRecord)>,
    start: u64,
) -> Replayed {
    let mut replayed = Replayed { end: start, delivered: 0, failed: Vec::new(), auth: None };
    for (end, record) in records {
        let mut attempt = 0;
        loop {
            let (retry_after, error) =
                match transport.post("spooled operation", &record.path, record.body.clone(), true).await {
                    Attempt::Done(_) | Attempt::AlreadyDone => {
                        replayed.delivered += 1;
                        break;
                    }
                    Attempt::Permanent(error) => {
                        replayed.failed.push(error);
                        break;
                    }
                    Attempt::Auth(error) => {
                        replayed.auth = Some(error);
                        return replayed;
                    }
                    Attempt::Transient { retry_after, error } => (retry_after, error),
                    Attempt::Unseen(error) => (None, error),
                };
            stuck.store(attempt + 1 >= REPLAY_FAILURES_BEFORE_GIVING_UP_AT_CLOSE, Ordering::Release);
            tracing::debug!(error = %error, attempt, "prefactor: the spool replay waits for the API");
            tokio::time::sleep(retry_delay(&shared.config, attempt, retry_after)).await;
            attempt = attempt.saturating_add(1);
        }
        stuck.store(false, Ordering::Release);
        replayed.end = end;
    }
    replayed
}

async fn send(transport: &Transport, op: &Op) -> Attempt {
    let label = op.kind().label();
    match requests::build(op) {
        Ok(request) => transport.post(label, &request.path, request.body, request.conflict_is_done).await,
        Err(err) => Attempt::Permanent(err.into()),
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
        Attempt::Transient { error, .. }
        | Attempt::Unseen(error)
        | Attempt::Auth(error)
        | Attempt::Permanent(error) => {
            tracing::debug!(instance = %state.id, error = %error, "prefactor: termination poll failed");
        }
    }
}
