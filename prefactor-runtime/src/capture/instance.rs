//! `AgentInstanceHandle`: a registered agent instance, as the agent holds it.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use prefactor_protocol::FinishStatus;

use crate::capture::client::Client;
use crate::capture::context::Context;
use crate::capture::finish_span::FinishSpan;
use crate::capture::span_builder::SpanBuilder;
use crate::delivery::instance_state::InstanceState;
use crate::queue::operation::{Op, SpanEnd, SpanFinish};
use crate::record::ids::{InstanceId, SpanId};
use crate::record::payload::Payload;
use crate::record::sample_decision::SampleDecision;
use crate::record::timestamp::Timestamp;
use crate::report::error::Error;

/// A registered agent instance. Cheap to clone; every method returns at once (the work is
/// queued) and never fails in a way the agent must handle.
///
/// ```no_run
/// use prefactor_runtime::{Client, Config, CreateInstance, FinishSpan, FinishStatus, Payload};
///
/// # async fn run() -> Result<(), prefactor_runtime::Error> {
/// let client = Client::new(Config::builder().api_url("http://127.0.0.1:8080").api_token("t").build()?)?;
/// client.initialize().await?;
/// let instance = client.create_agent_instance(CreateInstance::default())?;
/// instance.start();
/// {
///     let span = instance.span("agent:llm").payload(Payload::from(serde_json::json!({"model": "m"}))).start();
///     span.finish(FinishSpan::complete().result(Payload::from(serde_json::json!({"tokens": 12}))));
/// }
/// if instance.is_terminated() {
///     println!("stopped: {:?}", instance.termination_reason());
/// }
/// instance.finish(FinishStatus::Complete);
/// client.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AgentInstanceHandle {
    pub(crate) client: Client,
    pub(crate) state: Arc<InstanceState>,
}

impl AgentInstanceHandle {
    /// The instance id (generated on the client, known at once).
    pub fn id(&self) -> InstanceId {
        self.state.id
    }

    /// What sampling decided for this run when it was created ([`SampleDecision`]): its code
    /// runs the same either way, only what is sent differs.
    ///
    /// ```
    /// use prefactor_runtime::{CreateInstance, SampleDecision, testing::Capture};
    ///
    /// // A capture sends every run; with `Config::sample_rate` some would not be.
    /// let capture = Capture::new()?;
    /// let run = capture.client().create_agent_instance(CreateInstance::default())?;
    /// assert_eq!(run.sampling(), SampleDecision::Sampled);
    /// # Ok::<(), prefactor_runtime::Error>(())
    /// ```
    pub fn sampling(&self) -> SampleDecision {
        self.state.sampling
    }

    /// Whether nothing of this run is queued (unsampled, no tail rule).
    #[inline]
    fn is_unsampled(&self) -> bool {
        self.state.sampling == SampleDecision::Unsampled
    }

    /// Queues the start (only the first call counts).
    pub fn start(&self) {
        if !self.state.started.swap(true, Ordering::AcqRel) && !self.is_unsampled() {
            self.client.enqueue(Op::Start { instance: self.state.id, at: Timestamp::now() });
        }
    }

    /// Queues the finish with `status` (only the first call counts). It is sent after every
    /// other queued operation of this instance. A 409 (already terminated) counts as done.
    pub fn finish(&self, status: FinishStatus) {
        if !self.state.finished.swap(true, Ordering::AcqRel) && !self.is_unsampled() {
            self.client.enqueue(Op::Finish { instance: self.state.id, status, at: Timestamp::now() });
        }
    }

    /// A new span of type `schema_name` in this instance: set its parent, payload or start
    /// time on the [`SpanBuilder`], then open it (`.start()` for a guard that ends it).
    ///
    /// ```no_run
    /// # fn step(instance: &prefactor_runtime::AgentInstanceHandle) {
    /// let span = instance.span("agent:llm").start();
    /// // ... the call ...
    /// span.complete();
    /// # }
    /// ```
    #[inline]
    pub fn span<'a>(&'a self, schema_name: &'a str) -> SpanBuilder<'a> {
        SpanBuilder::new(&self.client, self.state.id, schema_name, self.is_unsampled())
    }

    /// Queues the finish of a span made by [`SpanBuilder::create`] (the Python SDK's
    /// `finish_span`, with any status and an optional end time). A span already finished is
    /// left as it is (the server's 409 counts as done).
    ///
    /// Fails when the client is not initialized, closed, or its token was rejected.
    pub fn finish_span(&self, span_id: SpanId, end: FinishSpan) -> Result<(), Error> {
        self.client.ensure_usable()?;
        if self.is_unsampled() {
            return Ok(());
        }
        let at = end.ended_at.map_or_else(Timestamp::now, Timestamp::from_system_time);
        let end = SpanEnd { status: end.status, result: end.result, at };
        self.client.enqueue(Op::FinishSpan(SpanFinish { instance: Some(self.state.id), id: span_id, end }));
        Ok(())
    }

    /// Queues a quality payload for the quality schema `name`.
    pub fn record_quality(&self, name: &str, payload: Payload) {
        self.enqueue_quality(name, Some(payload));
    }

    /// Queues the removal of the quality payload recorded under `name`.
    pub fn clear_quality(&self, name: &str) {
        self.enqueue_quality(name, None);
    }

    fn enqueue_quality(&self, name: &str, payload: Option<Payload>) {
        if self.is_unsampled() {
            return;
        }
        let key = format!("quality-{}", prefactor_protocol::Pfid::generate(self.state.id.pfid().partition()));
        self.client.enqueue(Op::Quality { instance: self.state.id, name: name.to_owned(), payload, key });
    }

    /// Whether the platform asked this instance to stop. Never true for a run sampling kept
    /// from the platform ([`sampling`](AgentInstanceHandle::sampling) not `Sampled`): the
    /// platform does not know it, so nobody can stop it there (a held run is known, and can be
    /// stopped, only once the tail rule kept it).
    pub fn is_terminated(&self) -> bool {
        self.state.termination.is_terminated()
    }

    /// The reason given by the platform, once terminated.
    pub fn termination_reason(&self) -> Option<String> {
        self.state.termination.reason()
    }

    /// Resolves with the reason once the platform terminates this instance (through the
    /// `control` signal of a span response or the periodic poll).
    pub fn terminated(&self) -> impl Future<Output = Option<String>> + Send + 'static {
        self.state.termination.wait(self.state.clone())
    }

    /// Calls `callback` with the platform's reason once this instance is terminated (the
    /// Python SDK's `subscribe`). Callbacks run once, in the order they were registered, on
    /// the client's worker thread: keep them short and non-blocking (cancel a token, send on a
    /// channel). A panicking callback is logged and does not stop the others. When the
    /// instance is already terminated, `callback` runs at once, on this thread.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// # fn run(instance: &prefactor_runtime::AgentInstanceHandle) {
    /// let stop = Arc::new(AtomicBool::new(false));
    /// let flag = stop.clone();
    /// let subscription = instance.on_terminated(move |reason| {
    ///     eprintln!("stopping: {}", reason.unwrap_or("no reason given"));
    ///     flag.store(true, Ordering::Relaxed);
    /// });
    /// while !stop.load(Ordering::Relaxed) {
    ///     // ... one step of the agent ...
    /// #   break;
    /// }
    /// subscription.unsubscribe();
    /// # }
    /// ```
    pub fn on_terminated(&self, callback: impl FnOnce(Option<&str>) + Send + 'static) -> TerminationSubscription {
        let number = self.state.termination.subscribe(Box::new(callback));
        TerminationSubscription { state: Arc::downgrade(&self.state), number }
    }

    /// A context whose current instance is this one, with no current span.
    pub fn context(&self) -> Context {
        Context::new(Some(self.client.clone()), Some(self.clone()), None)
    }

    /// The client this instance belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl fmt::Debug for AgentInstanceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentInstanceHandle")
            .field("id", &self.state.id)
            .field("terminated", &self.is_terminated())
            .finish()
    }
}

/// A callback registered with [`AgentInstanceHandle::on_terminated`]. Dropping it keeps the
/// callback registered; [`unsubscribe`](TerminationSubscription::unsubscribe) removes it.
#[derive(Debug)]
pub struct TerminationSubscription {
    state: Weak<InstanceState>,
    /// `None` when the callback already ran at subscription.
    number: Option<u64>,
}

impl TerminationSubscription {
    /// Removes the callback; returns whether it was removed before it ran.
    pub fn unsubscribe(self) -> bool {
        match (self.state.upgrade(), self.number) {
            (Some(state), Some(number)) => state.termination.unsubscribe(number),
            _ => false,
        }
    }
}
