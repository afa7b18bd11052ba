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
//! With a spool (`delivery/spool.rs`), a shipment still failing after several attempts while every
//! request fails goes to disk instead of waiting in memory, and so does everything waiting once
//! the queue is seven eighths full (before its capacity drops anything); from then on, while the spool
//! holds anything, new operations follow it there (so order holds); one task sends the spool
//! again (`spool_replay`), and once it has caught up sending goes direct again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::delivery::Delivery;
use crate::delivery::flush_epochs::{Epochs, FlushLedger};
use crate::delivery::instance_state::InstanceState;
use crate::delivery::payload_policy;
use crate::delivery::requests;
use crate::delivery::retry::RetryQueue;
use crate::delivery::scheduler::Scheduler;
use crate::delivery::shared::Shared;
use crate::delivery::spool::Spool;
use crate::delivery::spool_replay::Replayed;
use crate::delivery::tail_hold::TailHold;
use crate::delivery::token_check;
use crate::delivery::token_state::TokenCheck;
use crate::delivery::transport::{Attempt, BulkReply, Transport};
use crate::queue::op_queue::{DOZE_TICK, OpQueue};
use crate::queue::operation::{Op, OpKind};
use crate::record::ids::{InstanceId, SpanId};
use crate::report::close_report::CloseReport;
use crate::report::error::Error;

mod dispatch;
mod flush_close;
mod joined_runs;
mod outcomes;
mod retries;
mod sampling;
mod spooling;
mod termination_poll;

use spooling::open_spool;

/// Requests from the client to the worker.
pub(crate) enum Command {
    /// Answer with the token check's outcome once the API answered it, or at `deadline`.
    CheckConnection { waited: Duration, deadline: std::time::Instant, reply: oneshot::Sender<Result<(), Error>> },
    /// Answer once every operation queued before this command was sent is settled, or at
    /// `deadline`.
    Flush { deadline: std::time::Instant, reply: oneshot::Sender<Result<(), Error>> },
    /// Answer once the OTel pipeline exported what it holds, or at `deadline` (after a
    /// `Flush`, so it holds everything queued before).
    #[cfg(feature = "otel")]
    OtelFlush { deadline: std::time::Instant, reply: oneshot::Sender<Result<(), Error>> },
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

/// A request of a shipment, built before it is sent (so the shipment stays with the worker
/// while its request is in flight).
enum Outgoing {
    Bulk(Vec<u8>),
    Single(&'static str, Result<requests::Request, serde_json::Error>),
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
    attempts: JoinSet<Reply>,
    /// The shipments of the requests in `attempts`, by task, with their dispatch order: kept
    /// here so that a close deadline can spool what is still in flight.
    sending: HashMap<tokio::task::Id, (u64, Shipment)>,
    /// Shipments dispatched so far (their order in `sending`).
    dispatched: u64,
    /// Queue operations in the requests of `attempts`.
    in_flight: u64,
    /// Shipments waiting for their retry delay.
    retries: RetryQueue<Shipment>,
    /// Failed requests since the last answer that was not a failure.
    failures_in_a_row: u32,
    /// During an outage: when the next probe may go (one request at a time, with backoff).
    next_probe: Option<Instant>,
    /// Probes failed in this outage (their backoff grows with it).
    probes_failed: u32,
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
    /// Span creates of runs of other processes waiting for the caller's delivery: when the
    /// first "not found" came, and how many came (`joined_runs.rs`).
    waiting_for_caller: HashMap<SpanId, (Instant, u32)>,
    flushes: Vec<FlushWaiter>,
    /// Unsettled operations by flush epoch.
    ledger: FlushLedger,
    closing: Option<Closing>,
    /// Enqueued operations that reached a final state (sent, failed, or discarded).
    settled: u64,
    /// The background token check's state, until the API answered it: operations wait
    /// meanwhile (each failed probe wakes the worker, which may spool what waits).
    token_check: Option<watch::Receiver<TokenCheck>>,
    /// Unsampled runs a tail rule may still keep, until they are decided (`tail_hold.rs`).
    hold: TailHold,
    /// The OpenTelemetry export, when configured.
    #[cfg(feature = "otel")]
    pub(crate) otel: Option<crate::delivery::otel::mirror::OtelMirror>,
}

impl Worker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        transport: Transport,
        ops: Arc<OpQueue>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Worker {
        let hold = TailHold::new(&shared.config);
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
            sending: HashMap::new(),
            dispatched: 0,
            in_flight: 0,
            retries: RetryQueue::default(),
            failures_in_a_row: 0,
            next_probe: None,
            probes_failed: 0,
            fallback: HashSet::new(),
            bulk_rejections: 0,
            unseen_restored: HashMap::new(),
            failure_reasons: Vec::new(),
            register_failure_logged: false,
            spool: None,
            replay: JoinSet::new(),
            replay_stuck: Arc::default(),
            live: HashMap::new(),
            waiting_for_caller: HashMap::new(),
            flushes: Vec::new(),
            ledger: FlushLedger::default(),
            closing: None,
            settled: 0,
            token_check: None,
            hold,
            #[cfg(feature = "otel")]
            otel: None,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut poll = tokio::time::interval(self.shared.config.termination_poll_interval());
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        poll.reset();
        // An OTel-only client sends nothing to the API: no spool, no token check.
        if !self.shared.config.otel_only() {
            self.spool = open_spool(&self.shared.config);
            self.replay_spool(0);
            self.token_check = Some(self.shared.token_check.subscribe());
            tokio::spawn(token_check::run(self.transport.clone(), self.shared.clone()));
        }
        loop {
            let drained = self.accept_batch();
            if self.closing.is_some() && self.hold.has_open_runs() {
                self.decide_held_runs();
            }
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
                Some(done) = self.attempts.join_next_with_id(), if !self.attempts.is_empty() => self.on_sent(done),
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
        if self.hold.is_idle() && !matches!(op, Op::Register { held: true, .. }) {
            self.admit(op, epochs, now);
        } else {
            self.accept_sampled(op, epochs, now);
        }
    }

    /// Sends an accepted operation on its way: payload policy, OTel, scheduler.
    fn admit(&mut self, mut op: Op, epochs: Epochs, now: Instant) {
        // Redactions, scrubbing and the size limit, before the operation can be spooled, sent
        // or exported to OTel.
        payload_policy::apply(&self.shared.config, &mut op).count_into(&self.shared.counters);
        #[cfg(feature = "otel")]
        if let Some(otel) = &mut self.otel {
            otel.observe(&op);
            if self.shared.config.otel_only() {
                self.settle(epochs, op.weight());
                return;
            }
        }
        if self.shared.is_latched() {
            self.discard(op, epochs);
            return;
        }
        if self.in_outage() {
            // It will wait for the API: free the agent thread's memory now (`Op::rehome`).
            op.rehome();
        }
        if let OpKind::Finish(instance) = op.kind() {
            self.live.remove(&instance);
        }
        self.scheduler.push(op, epochs, now);
    }
}

/// A worker that is never run, over a client config pointing at a closed port: its parts are
/// driven directly by their unit tests.
#[cfg(test)]
pub(super) mod test_worker {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::Worker;
    use crate::config::Config;
    use crate::delivery::shared::Shared;
    use crate::delivery::transport::Transport;
    use crate::queue::op_queue::OpQueue;

    pub(crate) fn worker() -> (Worker, Arc<OpQueue>) {
        worker_with(Config::builder().api_url("http://127.0.0.1:9").api_token("t").build().expect("valid config"))
    }

    /// [`worker`] with this config.
    pub(crate) fn worker_with(config: Config) -> (Worker, Arc<OpQueue>) {
        let transport = Transport::new(&config).expect("a transport");
        let shared = Arc::new(Shared::new(config));
        let ops = Arc::new(OpQueue::default());
        let (_commands, receiver) = mpsc::unbounded_channel();
        (Worker::new(shared, transport, ops.clone(), receiver), ops)
    }
}
