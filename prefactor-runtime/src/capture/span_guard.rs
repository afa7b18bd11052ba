//! `SpanGuard`: an open span that finishes itself when dropped.

use std::fmt;
use std::sync::Mutex;

use prefactor_protocol::FinishStatus;

use crate::capture::client::Client;
use crate::capture::client::global::global_client;
use crate::capture::context::{Context, ContextGuard, enter_span_of};
use crate::capture::finish_span::FinishSpan;
use crate::lock::lock;
use crate::queue::operation::{Op, SpanCreate, SpanEnd, SpanFinish};
use crate::record::ids::{InstanceId, SpanId};
use crate::record::payload::Payload;
use crate::record::schema_name::SchemaName;
use crate::record::timestamp::Timestamp;

/// How a guard keeps its client alive until it ends.
pub(crate) enum Holder {
    /// The installed process-wide client, which lives as long as the process (`global.rs`):
    /// spans of `#[prefactor::span]` touch no reference count.
    Global(&'static Client),
    /// A clone of the client's handle (one reference count up, one down per span).
    Owned(Client),
}

impl Holder {
    #[inline]
    pub(crate) fn new(client: &Client) -> Holder {
        match global_client() {
            Some(global) if global.same_as(client) => Holder::Global(global),
            _ => Holder::Owned(client.clone()),
        }
    }

    #[inline]
    fn get(&self) -> &Client {
        match self {
            Holder::Global(client) => client,
            Holder::Owned(client) => client,
        }
    }
}

/// Where a span attaches: the client it is queued to, its instance and its parent.
pub(crate) struct Site {
    pub(crate) client: Holder,
    pub(crate) instance: InstanceId,
    pub(crate) parent: Option<SpanId>,
}

/// A span create that has not been queued yet (deferred guards only).
struct Unstarted {
    schema: SchemaName,
    payload: Option<Payload>,
    /// The caller's start time; `None` reads the clock when the span starts.
    started_at: Option<Timestamp>,
}

struct Live {
    /// The client the span is queued to at its end.
    client: Holder,
    /// An id, not the shared `Arc<InstanceState>`, which would cost a reference count per
    /// guard; [`SpanGuard::context`] finds the state when needed.
    instance: InstanceId,
    parent: Option<SpanId>,
    /// A mutex (not a `RefCell`) keeps the guard `Sync`, so `&SpanGuard` may be held across
    /// `.await` in `Send` futures; the hot path never locks it (`into_inner` at the end).
    /// Boxed: only deferred guards have one, and a smaller guard is cheaper to move.
    unstarted: Mutex<Option<Box<Unstarted>>>,
    /// Made by `span_deferred`: only then can `unstarted` hold something, so started guards
    /// never lock it.
    deferred: bool,
    /// Its run is unsampled (no tail rule): nothing of the span is queued.
    sampled_out: bool,
    started_at: Timestamp,
    result: Option<Payload>,
    drop_status: FinishStatus,
}

/// How [`SpanGuard::open`] opens a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// Its create is queued now.
    Start,
    /// Its create is queued when started, entered, or at its end.
    Defer,
    /// Nothing is queued, ever (an unsampled run): only counted.
    SampledOut,
}

/// An open span, made by [`SpanBuilder::start`](crate::SpanBuilder::start) or
/// [`SpanBuilder::deferred`](crate::SpanBuilder::deferred). Its id is known at once. It ends
/// exactly once: through [`complete`](SpanGuard::complete), [`fail`](SpanGuard::fail),
/// [`cancel`](SpanGuard::cancel), [`finish`](SpanGuard::finish), or when dropped — with
/// `complete` (or the status set by [`set_drop_status`](SpanGuard::set_drop_status)), and with
/// `failed` when dropped while the thread panics.
///
/// Started guards have queued their create. Deferred guards are sent when
/// [`start`](SpanGuard::start) is called, when used as a context, or at their end as one
/// create-as-terminal request. Payload updates after the start are ignored (the API has no
/// payload update).
///
/// ```no_run
/// use prefactor_runtime::{AgentInstanceHandle, Payload};
/// use serde_json::json;
///
/// fn step(instance: &AgentInstanceHandle) {
///     let mut span = instance.span("agent:tool").payload(Payload::from(json!({"tool": "search"}))).start();
///     let _entered = span.enter(); // spans opened on this thread now nest under it
///     let child = instance.span("agent:llm").start();
///     assert!(child.id() != span.id());
///     child.complete();
///     span.set_result(Payload::from(json!({"hits": 3})));
/// } // `span` completes here with {"hits": 3}
/// ```
pub struct SpanGuard {
    id: SpanId,
    live: Option<Live>,
}

impl SpanGuard {
    pub(crate) fn open(
        client: &Client,
        instance: InstanceId,
        schema: &str,
        parent: Option<SpanId>,
        payload: Option<Payload>,
        explicit_start: Option<Timestamp>,
        opening: Opening,
    ) -> SpanGuard {
        let site = Site { client: Holder::new(client), instance, parent };
        Self::open_at(site, SchemaName::new(schema), payload, explicit_start, opening)
    }

    /// Opens a span where `site` says, as `opening` says (started now unless `explicit_start`).
    #[inline]
    pub(crate) fn open_at(
        site: Site,
        schema: SchemaName,
        payload: Option<Payload>,
        explicit_start: Option<Timestamp>,
        opening: Opening,
    ) -> SpanGuard {
        let Site { client, instance, parent } = site;
        // One clock read gives both the id's timestamp and `started_at`; a span that is never
        // sent needs neither, and its id only has to be unique (the random bits of a PFID at
        // the epoch), so it skips the clock.
        let started_at = match opening {
            Opening::SampledOut => explicit_start.unwrap_or(Timestamp::EPOCH),
            _ => explicit_start.unwrap_or_else(Timestamp::now),
        };
        let id = client.get().span_id_at(started_at);
        let unstarted = match opening {
            Opening::Start => {
                client.get().enqueue(Op::CreateSpan(SpanCreate {
                    instance,
                    id,
                    parent,
                    schema,
                    payload,
                    started_at,
                    end: None,
                    weight: 1,
                }));
                None
            }
            Opening::Defer => Some(Box::new(Unstarted { schema, payload, started_at: explicit_start })),
            Opening::SampledOut => {
                client.get().count_sampled_out_span();
                None
            }
        };
        let live = Live {
            client,
            instance,
            parent,
            unstarted: Mutex::new(unstarted),
            deferred: opening == Opening::Defer,
            sampled_out: opening == Opening::SampledOut,
            started_at,
            result: None,
            drop_status: FinishStatus::Complete,
        };
        SpanGuard { id, live: Some(live) }
    }

    /// A guard that records nothing (for code paths without a client). Its id is still unique.
    ///
    /// ```
    /// let guard = prefactor_runtime::SpanGuard::noop();
    /// assert!(guard.is_noop());
    /// guard.complete();
    /// ```
    pub fn noop() -> SpanGuard {
        SpanGuard { id: SpanId::generate(0), live: None }
    }

    /// Whether this guard records nothing.
    pub fn is_noop(&self) -> bool {
        self.live.is_none()
    }

    /// The span id (client-generated PFID).
    pub fn id(&self) -> SpanId {
        self.id
    }

    /// Starts a deferred span (queues its create as `active`, with the payload set so far).
    /// No-op when already started.
    pub fn start(&mut self) {
        let Some(live) = &self.live else { return };
        Self::start_live(self.id, live);
    }

    /// Queues the create of a deferred span not started yet (the clock is read only then).
    fn start_live(id: SpanId, live: &Live) {
        if !live.deferred {
            return;
        }
        let Some(unstarted) = lock(&live.unstarted).take() else { return };
        let at = unstarted.started_at.unwrap_or_else(Timestamp::now);
        live.client.get().enqueue(Op::CreateSpan(SpanCreate {
            instance: live.instance,
            id,
            parent: live.parent,
            schema: unstarted.schema,
            payload: unstarted.payload,
            started_at: at,
            end: None,
            weight: 1,
        }));
    }

    /// Sets the payload of a span not started yet; ignored (logged at debug) afterwards.
    pub fn set_payload(&mut self, payload: Payload) {
        let Some(live) = self.live.as_ref().filter(|live| !live.sampled_out) else { return };
        match lock(&live.unstarted).as_mut() {
            Some(unstarted) => unstarted.payload = Some(payload),
            None => tracing::debug!(span = %self.id, "prefactor: set_payload after start is ignored"),
        }
    }

    /// Merges `result` into the result payload sent at the end (keys of `result` win).
    pub fn set_result(&mut self, result: Payload) {
        let Some(live) = &mut self.live else { return };
        match &mut live.result {
            Some(existing) => existing.merge(&result),
            None => live.result = Some(result),
        }
    }

    /// Ends the span as `complete` (with the result set by [`set_result`](SpanGuard::set_result)).
    pub fn complete(self) {
        self.end(FinishStatus::Complete, None, None);
    }

    /// Ends the span as `failed`.
    pub fn fail(self) {
        self.end(FinishStatus::Failed, None, None);
    }

    /// Ends the span as `cancelled`.
    pub fn cancel(self) {
        self.end(FinishStatus::Cancelled, None, None);
    }

    /// Ends the span as `end` says: its status, a result payload (merged into the one set
    /// before; its keys win) and, optionally, the end time.
    ///
    /// ```
    /// use prefactor_runtime::{FinishSpan, Payload, SpanGuard};
    ///
    /// let span = SpanGuard::noop();
    /// span.finish(FinishSpan::failed().result(Payload::from(serde_json::json!({"error": "timeout"}))));
    /// ```
    #[inline]
    pub fn finish(self, end: FinishSpan) {
        let ended_at = end.ended_at.map(Timestamp::from_system_time);
        self.end(end.status, end.result, ended_at);
    }

    /// The status used when the guard is dropped without an explicit end (default
    /// `complete`; a drop during a panic is always `failed`).
    pub fn set_drop_status(&mut self, status: FinishStatus) {
        if let Some(live) = &mut self.live {
            live.drop_status = status;
        }
    }

    /// A context in which this span is the current parent. Starts a deferred span, so that
    /// children are always sent after it.
    pub fn context(&self) -> Context {
        let Some(live) = &self.live else { return Context::current() };
        Self::start_live(self.id, live);
        Self::live_context(self.id, live)
    }

    fn live_context(id: SpanId, live: &Live) -> Context {
        // The current context's handle (and a caller's `tracestate`) when it is this instance
        // (no lookup), else the client's.
        let current = Context::with_current(|cx| {
            let instance =
                cx.instance().filter(|i| i.id() == live.instance && i.client().same_as(live.client.get())).cloned()?;
            Some((instance, cx.trace_state.clone()))
        });
        let (instance, trace_state) = current.unwrap_or_else(|| (live.client.get().instance(live.instance), None));
        Context::new(Some(live.client.get().clone()), Some(instance), Some(id)).with_trace_state(trace_state)
    }

    /// Makes this span the current parent on this thread until the returned guard drops.
    /// For async code use [`FutureExt::in_context`](crate::FutureExt::in_context) with
    /// [`context`](SpanGuard::context) instead: a `ContextGuard` must not be held across `.await`.
    pub fn enter(&self) -> ContextGuard {
        let Some(live) = &self.live else { return Context::current().enter_owned() };
        Self::start_live(self.id, live);
        // Inside its own instance's context (the usual nesting) only the span id changes.
        enter_span_of(live.client.get(), live.instance, self.id)
            .unwrap_or_else(|| Self::live_context(self.id, live).enter_owned())
    }

    fn end(mut self, status: FinishStatus, result: Option<Payload>, ended_at: Option<Timestamp>) {
        if let Some(live) = &mut self.live {
            Self::finish_live(self.id, live, status, result, ended_at);
        }
        // Ended: the drop that follows only releases the client.
        self.live = None;
    }

    /// Queues the end of the span, with `result` merged into the one set before (its keys
    /// win). Works on the guard in place (moving the whole `Live` out first costs a copy of it
    /// on every span); the caller then drops it.
    fn finish_live(
        id: SpanId,
        live: &mut Live,
        status: FinishStatus,
        result: Option<Payload>,
        ended_at: Option<Timestamp>,
    ) {
        if live.sampled_out {
            return;
        }
        let at = ended_at.unwrap_or_else(Timestamp::now);
        // The result given at the end goes straight into the operation (`#[span]`'s return
        // value): it is stored in the guard only to be merged with one set before.
        let result = match (live.result.take(), result) {
            (Some(mut set), Some(given)) => {
                set.merge(&given);
                Some(set)
            }
            (set, given) => given.or(set),
        };
        let end = SpanEnd { status, result, at };
        let unstarted = match live.deferred {
            true => live.unstarted.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).take(),
            false => None,
        };
        let op = match unstarted {
            // Never started: one create-as-terminal request, started when the guard was made.
            Some(unstarted) => Op::CreateSpan(SpanCreate {
                instance: live.instance,
                id,
                parent: live.parent,
                schema: unstarted.schema,
                payload: unstarted.payload,
                started_at: live.started_at,
                end: Some(Box::new(end)),
                weight: 1,
            }),
            None => Op::FinishSpan(SpanFinish { instance: Some(live.instance), id, end }),
        };
        live.client.get().enqueue(op);
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(live) = &mut self.live {
            let status = if std::thread::panicking() { FinishStatus::Failed } else { live.drop_status };
            Self::finish_live(self.id, live, status, None, None);
        }
    }
}

impl fmt::Debug for SpanGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanGuard").field("id", &self.id).field("noop", &self.is_noop()).finish()
    }
}
