//! `CapturedRun` and `CapturedSpan`: an agent run and its spans as a capturing client
//! recorded them (`prefactor::testing`), typed for assertions.

use std::time::{Duration, SystemTime};

use prefactor_protocol::{AgentStatus, InstancePurpose};
use serde_json::Value;

use crate::record::ids::{InstanceId, SpanId};
use crate::report::trace_tree::{TreeOptions, render_tree};

/// One agent run (instance) as recorded by a [`Capture`](crate::testing::Capture): what the
/// client would have sent for it, folded into its final state.
///
/// ```
/// use prefactor_runtime::testing::Capture;
/// use prefactor_runtime::{AgentStatus, CreateInstance, FinishStatus};
///
/// let capture = Capture::new()?;
/// let run = capture.client().create_agent_instance(CreateInstance::default())?;
/// run.start();
/// run.span("agent:step").start().complete();
/// run.finish(FinishStatus::Complete);
///
/// let runs = capture.runs();
/// assert_eq!(runs[0].status, AgentStatus::Complete);
/// assert_eq!(runs[0].spans.len(), 1);
/// # Ok::<(), prefactor_runtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CapturedRun {
    /// The instance id.
    pub id: InstanceId,
    /// Whether the client registered the instance (runs of handles made from an id with
    /// [`Client::instance`](crate::Client::instance) are not).
    pub registered: bool,
    /// The agent version's name (`#[agent(name = ..)]`, default the function's name).
    pub agent_name: Option<String>,
    /// The agent version's external identifier (`#[agent(version = ..)]`).
    pub agent_version: Option<String>,
    /// The agent id the register request names.
    pub agent_id: Option<String>,
    /// Why it runs (`#[agent(purpose = ..)]`).
    pub purpose: Option<InstancePurpose>,
    /// `pending` when registered, `active` once started, then how it finished.
    pub status: AgentStatus,
    /// Its spans, in the order they were opened (a parent before its children).
    pub spans: Vec<CapturedSpan>,
    /// Quality records, in the order they were recorded (`None`: the record was cleared).
    pub quality: Vec<(String, Option<Value>)>,
    /// When the run started (`None` when it never did).
    pub started_at: Option<SystemTime>,
    /// When the run finished (`None` while it has not).
    pub finished_at: Option<SystemTime>,
}

/// One span as recorded by a [`Capture`](crate::testing::Capture).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CapturedSpan {
    /// The span id.
    pub id: SpanId,
    /// The parent span (`None` for a top-level span of the run).
    pub parent: Option<SpanId>,
    /// The span type (`schema` of `#[span]`). Empty for a finish of a span this client never
    /// created (an id from elsewhere, finished with
    /// [`AgentInstanceHandle::finish_span`](crate::AgentInstanceHandle::finish_span)).
    pub schema: String,
    /// The payload (`{}` when none was set).
    pub payload: Value,
    /// The result payload, when the span ended with one.
    pub result: Option<Value>,
    /// `active` while open, then `complete`, `failed` or `cancelled`.
    pub status: AgentStatus,
    /// When it started.
    pub started_at: SystemTime,
    /// When it ended (`None` while open).
    pub ended_at: Option<SystemTime>,
}

impl CapturedSpan {
    /// How long it ran (`None` while open).
    pub fn duration(&self) -> Option<Duration> {
        self.ended_at.map(|end| end.duration_since(self.started_at).unwrap_or_default())
    }

    /// The value at a `/`-separated JSON pointer into the payload (`"/messages/0/role"`), or
    /// `None`.
    pub fn payload_at(&self, pointer: &str) -> Option<&Value> {
        self.payload.pointer(pointer)
    }

    /// The value at a JSON pointer into the result (`"/usage/output_tokens"`), or `None`.
    pub fn result_at(&self, pointer: &str) -> Option<&Value> {
        self.result.as_ref().and_then(|result| result.pointer(pointer))
    }
}

impl CapturedRun {
    /// The first span of type `schema` opened in this run.
    pub fn span(&self, schema: &str) -> Option<&CapturedSpan> {
        self.spans.iter().find(|span| span.schema == schema)
    }

    /// Every span of type `schema`, in the order they were opened.
    pub fn spans_of<'a>(&'a self, schema: &'a str) -> impl Iterator<Item = &'a CapturedSpan> + 'a {
        self.spans.iter().filter(move |span| span.schema == schema)
    }

    /// The span with this id.
    pub fn span_by_id(&self, id: SpanId) -> Option<&CapturedSpan> {
        self.spans.iter().find(|span| span.id == id)
    }

    /// The parent of `span` (`None` for a top-level span).
    pub fn parent_of(&self, span: &CapturedSpan) -> Option<&CapturedSpan> {
        span.parent.and_then(|parent| self.span_by_id(parent))
    }

    /// The children of the span `id`, in the order they were opened.
    pub fn children_of(&self, id: SpanId) -> impl Iterator<Item = &CapturedSpan> + '_ {
        self.spans.iter().filter(move |span| span.parent == Some(id))
    }

    /// The top-level spans (no parent, or a parent not recorded in this run), in order.
    pub fn roots(&self) -> impl Iterator<Item = &CapturedSpan> + '_ {
        self.spans.iter().filter(|span| span.parent.is_none_or(|parent| self.span_by_id(parent).is_none()))
    }

    /// The run as a text tree for snapshot tests: the agent, then each span indented under
    /// its parent with its type, status, payload and result; no ids or times, JSON keys
    /// sorted, and the timings the SDK itself records (a stream's time to first item) shown as
    /// `"<duration>"`. So the same code gives the same text on every run.
    ///
    /// ```
    /// use prefactor_runtime::testing::Capture;
    /// use prefactor_runtime::{CreateInstance, FinishSpan, FinishStatus, Payload};
    /// use serde_json::json;
    ///
    /// let capture = Capture::new()?;
    /// let run = capture.client().create_agent_instance(CreateInstance::default())?;
    /// run.start();
    /// let outer = run.span("agent:chain").payload(Payload::from(json!({"q": "hi"}))).start();
    /// {
    ///     let _in_outer = outer.enter();
    ///     run.span("agent:llm").start().finish(FinishSpan::failed());
    /// }
    /// outer.complete();
    /// run.finish(FinishStatus::Failed);
    ///
    /// assert_eq!(
    ///     capture.runs()[0].tree(),
    ///     "run [failed]\n\
    ///      └─ agent:chain [complete] {\"q\":\"hi\"}\n\
    ///      \u{20}  └─ agent:llm [failed]\n"
    /// );
    /// # Ok::<(), prefactor_runtime::Error>(())
    /// ```
    pub fn tree(&self) -> String {
        render_tree(self, &TreeOptions::default())
    }

    /// [`tree`](CapturedRun::tree) with options: more values to normalize (your own times
    /// and ids), payloads or results left out.
    ///
    /// ```
    /// use prefactor_runtime::testing::{Capture, TreeOptions};
    /// use prefactor_runtime::{CreateInstance, Payload};
    /// use serde_json::json;
    ///
    /// let capture = Capture::new()?;
    /// let run = capture.client().create_agent_instance(CreateInstance::default())?;
    /// run.span("agent:tool").payload(Payload::from(json!({"at": "12:00:01", "tool": "clock"}))).start();
    ///
    /// let options = TreeOptions::default().normalize("at");
    /// assert_eq!(capture.runs()[0].tree_with(&options), "run [pending]\n└─ agent:tool [complete] {\"at\":\"<at>\",\"tool\":\"clock\"}\n");
    /// # Ok::<(), prefactor_runtime::Error>(())
    /// ```
    pub fn tree_with(&self, options: &TreeOptions) -> String {
        render_tree(self, options)
    }
}
