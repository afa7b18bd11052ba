//! `Client`: the entry point. Owns the queue and the worker thread; everything else is cheap
//! handles onto it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::LocalKey;
use std::time::{Duration, Instant};

use prefactor_protocol::{AgentSchemaVersion, FinishStatus, InstancePurpose, Pfid, RegisterInstanceRequest};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use crate::blocking::block_on;
use crate::close_report::CloseReport;
use crate::config::Config;
use crate::context::current_parent;
use crate::error::Error;
use crate::ids::{InstanceId, SpanId};
use crate::instance::{AgentInstanceHandle, InstanceState};
use crate::instance_manager::InstanceManager;
use crate::op_queue::OpQueue;
use crate::operation::{Op, SpanCreate, SpanEnd, SpanFinish};
use crate::payload::Payload;
use crate::schema_document::{self, SchemaDocuments};
use crate::schema_name::SchemaName;
use crate::schema_registry::SchemaRegistry;
use crate::span_guard::SpanGuard;
use crate::stats::{Counters, Stats};
use crate::thread_lease::{LeaseSlot, Lendable};
use crate::timestamp::Timestamp;
use crate::token_check::{self, TokenCheckState};
use crate::transport::Transport;
use crate::unattached::UnattachedSpans;
use crate::worker::{self, Command, Worker};

/// The agent version of an instance (`name`, `external_identifier`, `description`).
pub use prefactor_protocol::AgentVersionSpec as AgentVersion;

/// Options of [`Client::create_agent_instance`]. Unset ids fall back to the config (agent,
/// environment) or are generated (instance id).
///
/// ```
/// use prefactor_runtime::{AgentVersion, CreateInstance, InstancePurpose};
///
/// let options = CreateInstance {
///     agent_version: AgentVersion { name: Some("Support bot".into()), external_identifier: Some("v2".into()), description: None },
///     purpose: Some(InstancePurpose::Eval),
///     ..CreateInstance::default()
/// };
/// assert!(options.instance_id.is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CreateInstance {
    /// The agent; defaults to the config's `agent_id` (omit with deployment-scoped tokens).
    pub agent_id: Option<String>,
    /// The code version of the agent.
    pub agent_version: AgentVersion,
    /// An explicit schema document; by default the client's registry is used.
    pub agent_schema_version: Option<AgentSchemaVersion>,
    /// A caller-chosen instance id; by default a new PFID.
    pub instance_id: Option<InstanceId>,
    /// External identifier of the schema version; by default a content hash.
    pub external_schema_version_id: Option<String>,
    /// The environment; defaults to the config's `environment_id`.
    pub environment_id: Option<String>,
    /// Why this instance runs (`live` by default on the server).
    pub purpose: Option<InstancePurpose>,
}

/// State shared between the callers and the worker.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    latched: AtomicBool,
    auth_failure: OnceLock<Error>,
    first_error: Mutex<Option<Error>>,
    closed: AtomicBool,
    warned_full: AtomicBool,
    /// The background token check (`token_check.rs`).
    pub(crate) token_check: TokenCheckState,
    /// Spans opened outside any agent run (`unattached.rs`).
    unattached: UnattachedSpans,
    /// Instances by id, for handles made from an id and for the worker's termination updates.
    instances: Mutex<HashMap<InstanceId, Weak<InstanceState>>>,
}

impl Shared {
    /// The live state of an instance this client knows.
    pub(crate) fn instance(&self, id: InstanceId) -> Option<Arc<InstanceState>> {
        lock(&self.instances).get(&id).and_then(Weak::upgrade)
    }

    pub(crate) fn is_latched(&self) -> bool {
        self.latched.load(Ordering::Acquire)
    }

    /// Stops all sending after a 401/403 (the token will not become valid by retrying).
    pub(crate) fn latch(&self, error: Error) {
        if self.auth_failure.set(error.clone()).is_ok() {
            tracing::error!(error = %error, "prefactor: the API token was rejected; telemetry is disabled for this client");
        }
        self.latched.store(true, Ordering::Release);
    }

    fn warn_full(&self) {
        if !self.warned_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                capacity = self.config.queue_capacity(),
                "prefactor: queue full, dropping operations (counted in stats().dropped)"
            );
        }
    }

    pub(crate) fn record_error(&self, error: &Error) {
        let mut first = lock(&self.first_error);
        if first.is_none() {
            *first = Some(error.clone());
        }
    }

    /// The close report given how many operations were enqueued and how many of them reached
    /// a final state.
    pub(crate) fn report(&self, enqueued: u64, settled: u64, timed_out: bool) -> CloseReport {
        let stats = self.stats(enqueued);
        let undelivered = stats.enqueued.saturating_sub(settled);
        CloseReport {
            stats,
            delivered: stats.sent,
            confirmed_after_unknown: stats.confirmed_after_unknown,
            failed: stats.failed,
            dropped: stats.dropped,
            undelivered,
            unknown: 0,
            left_in_spool: 0,
            lost: stats.failed + stats.dropped + undelivered,
            timed_out,
            // When nothing failed but the API never answered, why it did not.
            first_error: lock(&self.first_error).clone().or_else(|| self.token_check.unanswered_error()),
            auth_failure: self.auth_failure.get().cloned(),
            failure_reasons: Vec::new(),
            unattached: self.unattached.by_type(),
        }
    }

    fn stats(&self, enqueued: u64) -> Stats {
        Stats { unattached: self.unattached.total(), ..self.counters.snapshot(enqueued) }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of our short critical sections cannot leave the data
    // inconsistent, so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    New,
    Initializing,
    Ready,
    Closed,
}

struct WorkerLink {
    /// Unbounded queue: the bound is enforced by the pending count in `enqueue`, which also
    /// covers what the worker holds. Wakes the worker only when it is parked.
    ops: Arc<OpQueue>,
    commands: mpsc::UnboundedSender<Command>,
}

struct ClientInner {
    shared: Arc<Shared>,
    partition: u32,
    lifecycle: Mutex<Lifecycle>,
    link: OnceLock<WorkerLink>,
    registry: OnceLock<SchemaRegistry>,
    schema_documents: SchemaDocuments,
    open_spans: Mutex<HashMap<SpanId, InstanceId>>,
}

/// The Prefactor client. `Send + Sync`, and cloning is cheap (all clones share one queue and
/// one worker).
///
/// No method waits on the network except `flush`, `close`, `shutdown` and `check_connection`
/// (and their `_blocking` forms); `initialize` returns at once and checks the token in the
/// background. The worker runs on its own thread with its own small runtime, so
/// the client works the same from async code and from plain synchronous code.
///
/// End a client with [`close`](Client::close) (or `shutdown`): dropping every handle also
/// delivers what is queued and stops the worker, but only once the threads that opened spans
/// with it have exited or opened spans with another client, because each thread keeps a lease
/// on the client it used last (so that span guards need not touch its reference count).
///
/// ```no_run
/// use std::time::Duration;
/// use prefactor_runtime::{Client, Config, CreateInstance, FinishStatus};
///
/// # fn main() -> Result<(), prefactor_runtime::Error> {
/// let client = Client::new(Config::from_env()?.build()?)?;
/// client.initialize_blocking()?;
/// let instance = client.create_agent_instance(CreateInstance::default())?;
/// instance.start();
/// drop(instance.span("agent:step", None, None)); // completes on drop
/// instance.finish(FinishStatus::Complete);
/// client.flush_blocking(Duration::from_secs(5))?;
/// let report = client.close_blocking()?;
/// assert!(report.is_clean());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl Client {
    /// Creates a client. Nothing is sent until [`initialize`](Client::initialize).
    pub fn new(config: Config) -> Result<Client, Error> {
        // Ids share the agent's partition when the agent id is a PFID (as the API expects
        // client-supplied ids to), otherwise one random partition per client.
        let partition = config
            .agent_id()
            .and_then(|id| id.parse::<Pfid>().ok())
            .map_or_else(Pfid::random_partition, |pfid| pfid.partition());
        // Validate what the worker will need now, so `new` reports bad header values.
        Transport::new(&config)?;
        let shared = Arc::new(Shared {
            config,
            counters: Counters::default(),
            latched: AtomicBool::new(false),
            auth_failure: OnceLock::new(),
            first_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            warned_full: AtomicBool::new(false),
            token_check: TokenCheckState::default(),
            unattached: UnattachedSpans::default(),
            instances: Mutex::new(HashMap::new()),
        });
        Ok(Client {
            inner: Arc::new(ClientInner {
                shared,
                partition,
                lifecycle: Mutex::new(Lifecycle::New),
                link: OnceLock::new(),
                registry: OnceLock::new(),
                schema_documents: SchemaDocuments::default(),
                open_spans: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Merges the explicit and the statically declared schemas and starts the worker; returns
    /// at once, whatever the network does. The token is checked (`GET /api/v1/ping`) in the
    /// background: operations queue until the API answers it, however long it is unreachable,
    /// and a 401/403 stops all sending (logged once, counted, reported by `close`). Programs
    /// that should rather stop when the API is not there call
    /// [`check_connection`](Client::check_connection) next.
    ///
    /// Errors only for what no network can fix: conflicting schema declarations
    /// ([`Error::SchemaConflict`]), a second call ([`Error::AlreadyInitialized`]), a closed
    /// client. After a failure the client can be initialized again.
    pub async fn initialize(&self) -> Result<(), Error> {
        {
            let mut lifecycle = lock(&self.inner.lifecycle);
            match *lifecycle {
                Lifecycle::New => *lifecycle = Lifecycle::Initializing,
                Lifecycle::Closed => return Err(Error::Closed),
                Lifecycle::Initializing | Lifecycle::Ready => return Err(Error::AlreadyInitialized),
            }
        }
        let result = self.start_worker().await;
        *lock(&self.inner.lifecycle) = if result.is_ok() { Lifecycle::Ready } else { Lifecycle::New };
        if let Err(err) = &result {
            tracing::warn!(error = %err, "prefactor: initialization failed");
        }
        result
    }

    /// [`initialize`](Client::initialize) for synchronous programs (blocks this thread).
    pub fn initialize_blocking(&self) -> Result<(), Error> {
        block_on(self.initialize())
    }

    async fn start_worker(&self) -> Result<(), Error> {
        let config = &self.inner.shared.config;
        let mut registry = config.schema_registry().cloned().unwrap_or_default();
        registry.merge(&SchemaRegistry::from_static()?)?;
        let transport = Transport::new(config)?;
        let ops = Arc::new(OpQueue::default());
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        // The worker starts the token check; nothing here waits for it.
        worker::spawn(Worker::new(self.inner.shared.clone(), transport, ops.clone(), commands_rx))?;
        tracing::debug!(schemas = registry.len(), "prefactor: client initialized");
        let _ = self.inner.registry.set(registry);
        let _ = self.inner.link.set(WorkerLink { ops, commands: commands_tx });
        Ok(())
    }

    fn ready_link(&self) -> Result<&WorkerLink, Error> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner.link.get().ok_or(Error::NotInitialized)
    }

    /// Waits until the API answered the background token check, for at most `timeout`: `Ok`
    /// when it accepted the token, [`Error::Auth`] when it rejected it (the client no longer
    /// sends anything), [`Error::ApiUnreachable`] when it did not answer in time (telemetry
    /// stays queued and goes out once it does), another error when it answered with one.
    ///
    /// For programs that should fail fast (a CLI, a smoke test, a deployment check). An agent
    /// need not call it: it runs and records the same whether the API is up, down or slow.
    /// `Duration::ZERO` reads the current state without waiting.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn run() -> Result<(), prefactor_runtime::Error> {
    /// let guard = prefactor_runtime::init(prefactor_runtime::Config::from_env()?.build()?).await?;
    /// // Stop now, with a clear error, when the token is wrong or the API is not there.
    /// guard.client().check_connection(Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn check_connection(&self, timeout: Duration) -> Result<(), Error> {
        let link = self.ready_link()?;
        let last_error = match token_check::outcome_of(&self.inner.shared.token_check.current()) {
            Ok(answered) => return answered,
            Err(last_error) => last_error,
        };
        if timeout.is_zero() {
            return Err(token_check::unreachable(timeout, last_error));
        }
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        let command = Command::CheckConnection { waited: timeout, deadline, reply };
        link.commands.send(command).map_err(|_| Error::WorkerGone)?;
        answer.await.map_err(|_| Error::WorkerGone)?
    }

    /// [`check_connection`](Client::check_connection) for synchronous programs.
    pub fn check_connection_blocking(&self, timeout: Duration) -> Result<(), Error> {
        block_on(self.check_connection(timeout))
    }

    /// Waits until every operation queued before this call is delivered or has failed, or the
    /// timeout passes ([`Error::Timeout`]). Operations queued after the call (by other threads,
    /// say) do not delay it.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let link = self.ready_link()?;
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        // Sent after this thread's pushes, so the worker (which drains the queue on receiving
        // it) sees every one of them; operations settle out of order, so it answers by epoch,
        // not by count (see `flush_epochs`).
        link.commands.send(Command::Flush { deadline, reply }).map_err(|_| Error::WorkerGone)?;
        answer.await.map_err(|_| Error::WorkerGone)?
    }

    /// [`flush`](Client::flush) for synchronous programs.
    pub fn flush_blocking(&self, timeout: Duration) -> Result<(), Error> {
        block_on(self.flush(timeout))
    }

    /// Delivers everything queued (up to the config's `close_timeout`), stops the worker and
    /// reports. `Ok` when nothing was lost; otherwise [`Error::TelemetryLost`] with the
    /// report (failures, drops, an auth failure, what was still queued at the deadline).
    /// Closing a client that was never initialized is a no-op; closing twice is
    /// [`Error::Closed`].
    pub async fn close(&self) -> Result<CloseReport, Error> {
        self.shutdown(self.inner.shared.config.close_timeout()).await
    }

    /// [`close`](Client::close) for synchronous programs.
    pub fn close_blocking(&self) -> Result<CloseReport, Error> {
        block_on(self.close())
    }

    /// [`close`](Client::close) with an explicit deadline; returns within `timeout` (plus the
    /// time to cancel requests in flight).
    pub async fn shutdown(&self, timeout: Duration) -> Result<CloseReport, Error> {
        {
            let mut lifecycle = lock(&self.inner.lifecycle);
            match *lifecycle {
                Lifecycle::Closed => return Err(Error::Closed),
                Lifecycle::New | Lifecycle::Initializing => {
                    *lifecycle = Lifecycle::Closed;
                    self.inner.shared.closed.store(true, Ordering::Release);
                    return Ok(self.inner.shared.report(self.enqueued(), 0, false));
                }
                Lifecycle::Ready => *lifecycle = Lifecycle::Closed,
            }
        }
        self.inner.shared.closed.store(true, Ordering::Release);
        let report = match self.inner.link.get() {
            Some(link) => {
                let (reply, answer) = oneshot::channel();
                let deadline = Instant::now() + timeout;
                match link.commands.send(Command::Shutdown { deadline, reply }) {
                    Ok(()) => answer.await.ok(),
                    Err(_) => None,
                }
            }
            None => None,
        };
        let report = report.unwrap_or_else(|| self.inner.shared.report(self.enqueued(), 0, false));
        if report.is_clean() {
            Ok(report)
        } else {
            tracing::warn!(%report, "prefactor: client closed with telemetry lost");
            Err(Error::TelemetryLost(Box::new(report)))
        }
    }

    /// [`shutdown`](Client::shutdown) for synchronous programs.
    pub fn shutdown_blocking(&self, timeout: Duration) -> Result<CloseReport, Error> {
        block_on(self.shutdown(timeout))
    }

    /// Whether [`initialize`](Client::initialize) succeeded and the client is not closed.
    pub fn is_initialized(&self) -> bool {
        *lock(&self.inner.lifecycle) == Lifecycle::Ready
    }

    /// Whether the client was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.closed.load(Ordering::Acquire)
    }

    /// The delivery counters.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats(self.enqueued())
    }

    /// Counts a span of `schema` that was opened outside any agent run (logged once per span
    /// type; reported by `close`). Called by `#[prefactor::span]` when no run is current.
    #[doc(hidden)]
    pub fn record_unattached_span(&self, schema: &str) {
        // After a rejected token runs are not registered, so their spans find no run: they
        // are lost to the auth failure (reported as such), not to a missing context.
        if !self.inner.shared.is_latched() {
            self.inner.shared.unattached.record(schema);
        }
    }

    /// Operations accepted into the queue so far.
    fn enqueued(&self) -> u64 {
        self.inner.link.get().map_or(0, |link| link.ops.enqueued())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.shared.config
    }

    /// The PFID partition of ids generated by this client.
    pub fn partition(&self) -> u32 {
        self.inner.partition
    }

    fn ensure_usable(&self) -> Result<(), Error> {
        self.ready_link()?;
        match self.inner.shared.auth_failure.get() {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    /// Registers an agent instance. The register request is queued (the instance id is
    /// generated here), so this returns at once and spans can be opened immediately.
    pub fn create_agent_instance(&self, options: CreateInstance) -> Result<AgentInstanceHandle, Error> {
        self.ensure_usable()?;
        let config = &self.inner.shared.config;
        let id = options.instance_id.unwrap_or_else(|| InstanceId::generate(self.inner.partition));
        let schema = self.schema_document(options.agent_schema_version, options.external_schema_version_id.as_deref());
        let request = RegisterInstanceRequest {
            agent_version: options.agent_version,
            agent_schema_version: None,
            agent_id: options.agent_id.or_else(|| config.agent_id().map(str::to_owned)),
            environment_id: options.environment_id.or_else(|| config.environment_id().map(str::to_owned)),
            id: Some(id.to_string()),
            idempotency_key: Some(format!("register-{id}")),
            update_current_version: None,
            purpose: options.purpose,
            external_identifier: None,
            runtime_environment: None,
        };
        let state = self.instance_state(id);
        self.enqueue(Op::Register { instance: id, request: Box::new(request), schema });
        Ok(AgentInstanceHandle { client: self.clone(), state })
    }

    /// The shared state of an instance, created for ids this client has not seen.
    pub(crate) fn instance_state(&self, id: InstanceId) -> Arc<InstanceState> {
        let mut instances = lock(&self.inner.shared.instances);
        if let Some(state) = instances.get(&id).and_then(Weak::upgrade) {
            return state;
        }
        instances.retain(|_, weak| weak.strong_count() > 0);
        let state = Arc::new(InstanceState::new(id));
        instances.insert(id, Arc::downgrade(&state));
        state
    }

    pub(crate) fn known_instances(&self) -> Vec<Arc<InstanceState>> {
        lock(&self.inner.shared.instances).values().filter_map(Weak::upgrade).collect()
    }

    /// A handle for an instance by id (one created earlier, or registered elsewhere).
    pub fn instance(&self, id: InstanceId) -> AgentInstanceHandle {
        AgentInstanceHandle { client: self.clone(), state: self.instance_state(id) }
    }

    /// Queues a span create (status `active`) and returns its id. `parent_span_id: None` uses
    /// the current context's span when it belongs to this instance. Finish it with
    /// [`finish_span`](Client::finish_span). Prefer [`span`](Client::span), which cannot be
    /// left unfinished.
    pub fn create_span(
        &self,
        instance_id: InstanceId,
        schema_name: &str,
        parent_span_id: Option<SpanId>,
        payload: Option<Payload>,
    ) -> Result<SpanId, Error> {
        self.ensure_usable()?;
        let id = SpanId::generate(self.inner.partition);
        lock(&self.inner.open_spans).insert(id, instance_id);
        self.enqueue(Op::CreateSpan(SpanCreate {
            instance: instance_id,
            id,
            parent: parent_span_id.or_else(|| current_parent(instance_id)),
            schema: SchemaName::new(schema_name),
            payload,
            started_at: Timestamp::now(),
            end: None,
            weight: 1,
        }));
        Ok(id)
    }

    /// Queues the finish (`complete`) of a span made by [`create_span`](Client::create_span).
    pub fn finish_span(&self, span_id: SpanId, result_payload: Option<Payload>) -> Result<(), Error> {
        self.finish_span_with_status(span_id, FinishStatus::Complete, result_payload)
    }

    /// Queues the finish of a span with an explicit status. A 409 (already finished) counts as
    /// done.
    pub fn finish_span_with_status(
        &self,
        span_id: SpanId,
        status: FinishStatus,
        result_payload: Option<Payload>,
    ) -> Result<(), Error> {
        self.ensure_usable()?;
        let instance = lock(&self.inner.open_spans).remove(&span_id);
        let end = SpanEnd { status, result: result_payload, at: Timestamp::now() };
        self.enqueue(Op::FinishSpan(SpanFinish { instance, id: span_id, end }));
        Ok(())
    }

    /// Opens a span (started at once) whose guard finishes it when dropped.
    pub fn span(
        &self,
        instance_id: InstanceId,
        schema_name: &str,
        parent_span_id: Option<SpanId>,
        payload: Option<Payload>,
    ) -> SpanGuard {
        let parent = parent_span_id.or_else(|| current_parent(instance_id));
        SpanGuard::open(self, instance_id, schema_name, parent, payload, true)
    }

    /// Manages instances by id.
    pub fn instance_manager(&self) -> InstanceManager {
        InstanceManager::new(self.clone())
    }

    /// The serialized `agent_schema_version` of a registration: the caller's document, or the
    /// registry's (made once per identifier after initialization; its registry no longer
    /// changes then), or none when no schema is known.
    fn schema_document(
        &self,
        explicit: Option<AgentSchemaVersion>,
        external_identifier: Option<&str>,
    ) -> Option<Arc<RawValue>> {
        if let Some(mut document) = explicit {
            if document.external_identifier.is_none() {
                document.external_identifier = external_identifier.map(str::to_owned);
            }
            return schema_document::serialized(&document);
        }
        match self.inner.registry.get() {
            Some(registry) if !registry.is_empty() => {
                self.inner.schema_documents.of_registry(registry, external_identifier)
            }
            Some(_) => None,
            None => {
                let registry = self.schema_registry();
                (!registry.is_empty())
                    .then(|| schema_document::serialized(&registry.to_agent_schema_version(external_identifier)))
                    .flatten()
            }
        }
    }

    /// The merged registry (explicit + statically declared) once initialized; before that,
    /// the explicit one from the config.
    pub fn schema_registry(&self) -> &SchemaRegistry {
        static EMPTY: OnceLock<SchemaRegistry> = OnceLock::new();
        self.inner
            .registry
            .get()
            .or_else(|| self.inner.shared.config.schema_registry())
            .unwrap_or_else(|| EMPTY.get_or_init(SchemaRegistry::new))
    }

    /// Whether both handles share one client.
    pub(crate) fn same_as(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A span id whose timestamp is `at` (saves a second clock read on the hot path).
    pub(crate) fn span_id_at(&self, at: Timestamp) -> SpanId {
        SpanId::from_pfid(Pfid::generate_at(at.unix_millis(), self.inner.partition))
    }

    /// Puts an operation in the queue without ever waiting. Returns false (and counts a drop)
    /// when the queue is full, the client is not initialized or closed, or the token was
    /// rejected.
    #[inline]
    pub(crate) fn enqueue(&self, op: Op) -> bool {
        let shared = &*self.inner.shared;
        let weight = op.weight();
        if shared.is_latched() || shared.closed.load(Ordering::Relaxed) {
            Counters::add(&shared.counters.dropped, weight);
            return false;
        }
        let Some(link) = self.inner.link.get() else {
            Counters::add(&shared.counters.dropped, weight);
            tracing::debug!("prefactor: operation dropped, the client is not initialized");
            return false;
        };
        // The bound covers everything not yet settled (channel, scheduler, in flight), so a
        // slow server cannot make the worker hold more than `queue_capacity` operations.
        if !shared.counters.has_room(link.ops.enqueued(), shared.config.queue_capacity() as u64) {
            Counters::add(&shared.counters.dropped, weight);
            shared.warn_full();
            return false;
        }
        if link.ops.push(op) {
            return true;
        }
        // The worker stopped (closed client).
        Counters::add(&shared.counters.dropped, weight);
        false
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.shared.config)
            .field("lifecycle", &*lock(&self.inner.lifecycle))
            .field("stats", &self.stats())
            .finish()
    }
}

impl Lendable for Client {
    fn same_as(&self, other: &Client) -> bool {
        Client::same_as(self, other)
    }

    fn lease_slot() -> &'static LocalKey<LeaseSlot<Client>> {
        thread_local! {
            /// This thread's lease on the client it opened spans with last: span guards borrow
            /// it instead of cloning the client's `Arc` (`thread_lease.rs`).
            static LEASE: LeaseSlot<Client> = const { LeaseSlot::new() };
        }
        &LEASE
    }
}
