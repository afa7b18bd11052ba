//! `SpanBuilder`: the options of a new span (parent, payload, start time), then how to open
//! it: guarded and started now, guarded and deferred, or as a bare id.

use std::time::SystemTime;

use crate::capture::client::Client;
use crate::capture::context::current_parent;
use crate::capture::span_guard::{Opening, SpanGuard};
use crate::record::ids::{InstanceId, SpanId};
use crate::record::payload::Payload;
use crate::record::timestamp::Timestamp;
use crate::report::error::Error;

/// A span about to be opened, made by
/// [`AgentInstanceHandle::span`](crate::AgentInstanceHandle::span). Set what differs from the
/// defaults, then open it with [`start`](SpanBuilder::start) (the usual way),
/// [`deferred`](SpanBuilder::deferred) or [`create`](SpanBuilder::create).
///
/// Defaults: the parent is the current context's span when it belongs to the same instance
/// (none otherwise), the payload is `{}`, the start time is now.
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
/// use prefactor_runtime::{AgentInstanceHandle, FinishSpan, Payload};
/// use serde_json::json;
///
/// fn record(instance: &AgentInstanceHandle) -> Result<(), prefactor_runtime::Error> {
///     // Guarded: ends (as `complete`) when dropped.
///     let tool = instance.span("agent:tool").payload(Payload::from(json!({"tool": "search"}))).start();
///
///     // A child that ran earlier, recorded after the fact with its own times.
///     let began = SystemTime::now() - Duration::from_millis(40);
///     let child = instance.span("agent:llm").parent(tool.id()).started_at(began).start();
///     child.finish(FinishSpan::complete().ended_at(began + Duration::from_millis(25)));
///
///     // No guard (the Python SDK's `create_span` / `finish_span`): you must finish it.
///     let id = instance.span("agent:step").create()?;
///     instance.finish_span(id, FinishSpan::failed())?;
///     Ok(())
/// }
/// ```
#[derive(Debug)]
#[must_use = "a SpanBuilder opens nothing until `start`, `deferred` or `create` is called"]
pub struct SpanBuilder<'a> {
    client: &'a Client,
    instance: InstanceId,
    schema: &'a str,
    parent: Option<SpanId>,
    payload: Option<Payload>,
    started_at: Option<SystemTime>,
    /// The run is unsampled (no tail rule): nothing is queued.
    unsampled: bool,
}

impl<'a> SpanBuilder<'a> {
    #[inline]
    pub(crate) fn new(client: &'a Client, instance: InstanceId, schema: &'a str, unsampled: bool) -> Self {
        SpanBuilder { client, instance, schema, parent: None, payload: None, started_at: None, unsampled }
    }

    /// The parent span (default: the current context's span of this instance).
    #[inline]
    pub fn parent(mut self, span: SpanId) -> Self {
        self.parent = Some(span);
        self
    }

    /// The span's payload (default: `{}`), validated against the span type's params schema.
    #[inline]
    pub fn payload(mut self, payload: Payload) -> Self {
        self.payload = Some(payload);
        self
    }

    /// When the span started (default: when it is started). For work that began before it
    /// was recorded; pair it with [`FinishSpan::ended_at`](crate::FinishSpan::ended_at).
    #[inline]
    pub fn started_at(mut self, at: SystemTime) -> Self {
        self.started_at = Some(at);
        self
    }

    /// Opens the span now (its create is queued) and returns its guard, which ends it exactly
    /// once: explicitly, or as `complete` when dropped (`failed` during a panic).
    #[inline]
    pub fn start(self) -> SpanGuard {
        let parent = self.parent_or_current();
        let started_at = self.started_at.map(Timestamp::from_system_time);
        let opening = self.opening(Opening::Start);
        SpanGuard::open(self.client, self.instance, self.schema, parent, self.payload, started_at, opening)
    }

    /// A guard whose span is sent only when [`SpanGuard::start`] is called, when it is entered
    /// or used as a context, or at its end (then as one create-as-terminal request, saving a
    /// request for short spans). Its payload can still change until then.
    pub fn deferred(self) -> SpanGuard {
        let parent = self.parent_or_current();
        let started_at = self.started_at.map(Timestamp::from_system_time);
        let opening = self.opening(Opening::Defer);
        SpanGuard::open(self.client, self.instance, self.schema, parent, self.payload, started_at, opening)
    }

    /// Queues the span's create (status `active`) and returns its id, with no guard: finish it
    /// with [`AgentInstanceHandle::finish_span`](crate::AgentInstanceHandle::finish_span).
    /// A span never finished stays `active` on the platform, so prefer
    /// [`start`](SpanBuilder::start) unless the span must outlive any scope you hold (a
    /// callback-driven framework, say).
    ///
    /// Fails when the client is not initialized, closed, or its token was rejected.
    #[doc(alias = "create_span")]
    pub fn create(self) -> Result<SpanId, Error> {
        self.client.ensure_usable()?;
        let parent = self.parent_or_current();
        let started_at = self.started_at.map_or_else(Timestamp::now, Timestamp::from_system_time);
        if self.unsampled {
            self.client.count_sampled_out_span();
            return Ok(self.client.span_id_at(started_at));
        }
        Ok(self.client.enqueue_span_create(self.instance, self.schema, parent, self.payload, started_at))
    }

    /// `wanted`, unless the run is unsampled.
    #[inline]
    fn opening(&self, wanted: Opening) -> Opening {
        if self.unsampled { Opening::SampledOut } else { wanted }
    }

    #[inline]
    fn parent_or_current(&self) -> Option<SpanId> {
        self.parent.or_else(|| current_parent(self.instance))
    }
}
