//! Agent instances: the shared per-instance state and the user's `AgentInstanceHandle`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prefactor_protocol::FinishStatus;

use crate::client::Client;
use crate::context::{Context, current_parent};
use crate::ids::{InstanceId, SpanId};
use crate::operation::Op;
use crate::payload::Payload;
use crate::span_guard::SpanGuard;
use crate::termination::Termination;
use crate::timestamp::Timestamp;

/// State of one instance shared by its handles, its queued operations and the worker.
#[derive(Debug)]
pub(crate) struct InstanceState {
    pub(crate) id: InstanceId,
    pub(crate) termination: Termination,
    pub(crate) started: AtomicBool,
    pub(crate) finished: AtomicBool,
    /// A termination poll is in flight (at most one per instance).
    pub(crate) polling: AtomicBool,
}

impl InstanceState {
    pub(crate) fn new(id: InstanceId) -> Self {
        InstanceState {
            id,
            termination: Termination::default(),
            started: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            polling: AtomicBool::new(false),
        }
    }
}

/// A registered agent instance. Cheap to clone; every method returns at once (the work is
/// queued) and never fails in a way the agent must handle.
///
/// ```no_run
/// use prefactor_runtime::{Client, Config, CreateInstance, FinishStatus, Payload};
///
/// # async fn run() -> Result<(), prefactor_runtime::Error> {
/// let client = Client::new(Config::builder().api_url("http://127.0.0.1:8080").api_token("t").build()?)?;
/// client.initialize().await?;
/// let instance = client.create_agent_instance(CreateInstance::default())?;
/// instance.start();
/// {
///     let span = instance.span("agent:llm", None, Some(Payload::from(serde_json::json!({"model": "m"}))));
///     span.complete(Some(Payload::from(serde_json::json!({"tokens": 12}))));
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

    /// Queues the start (only the first call counts).
    pub fn start(&self) {
        if !self.state.started.swap(true, Ordering::AcqRel) {
            self.client.enqueue(Op::Start { instance: self.state.id, at: Timestamp::now() });
        }
    }

    /// Queues the finish with `status` (only the first call counts). It is sent after every
    /// other queued operation of this instance. A 409 (already terminated) counts as done.
    pub fn finish(&self, status: FinishStatus) {
        if !self.state.finished.swap(true, Ordering::AcqRel) {
            self.client.enqueue(Op::Finish { instance: self.state.id, status, at: Timestamp::now() });
        }
    }

    /// Opens a span, started at once. `parent_span_id: None` uses the current context's span
    /// when it belongs to this instance.
    pub fn span(&self, schema_name: &str, parent_span_id: Option<SpanId>, payload: Option<Payload>) -> SpanGuard {
        let parent = parent_span_id.or_else(|| current_parent(self.state.id));
        SpanGuard::open(&self.client, self.state.id, schema_name, parent, payload, true)
    }

    /// Opens a span that is sent only when [`SpanGuard::start`] is called, when it is entered
    /// or used as a context, or when it ends (then as one create-as-terminal request).
    pub fn span_deferred(&self, schema_name: &str, parent_span_id: Option<SpanId>) -> SpanGuard {
        let parent = parent_span_id.or_else(|| current_parent(self.state.id));
        SpanGuard::open(&self.client, self.state.id, schema_name, parent, None, false)
    }

    /// Queues a quality payload for the quality schema `name` (`None` clears it).
    pub fn record_quality(&self, name: &str, payload: Option<Payload>) {
        let key = format!("quality-{}", prefactor_protocol::Pfid::generate(self.state.id.pfid().partition()));
        self.client.enqueue(Op::Quality { instance: self.state.id, name: name.to_owned(), payload, key });
    }

    /// Whether the platform asked this instance to stop.
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
