//! The current context (client, instance, parent span) of the running code.
//!
//! It lives in a thread-local that is set only for a bounded scope: while a [`ContextGuard`]
//! lives (synchronous code), or during each poll of an [`Instrumented`](crate::Instrumented)
//! future (async code). Nothing is held across `.await`, so concurrent tasks on one thread
//! never see each other's spans.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::capture::client::Client;
use crate::capture::instance::AgentInstanceHandle;
use crate::record::ids::{InstanceId, SpanId};

thread_local! {
    static CURRENT: RefCell<Context> = const { RefCell::new(Context::EMPTY) };
}

/// Where new spans attach: a client, an instance, and the current parent span.
///
/// ```
/// use prefactor_runtime::Context;
///
/// let cx = Context::current();
/// assert!(cx.span_id().is_none()); // nothing entered on this thread
/// ```
#[derive(Clone, Default)]
pub struct Context {
    client: Option<Client>,
    instance: Option<AgentInstanceHandle>,
    span: Option<SpanId>,
    /// The W3C `tracestate` a caller sent with this run's context, passed on to what this code
    /// calls in turn (propagation).
    pub(crate) trace_state: Option<Arc<str>>,
}

impl Context {
    const EMPTY: Context = Context { client: None, instance: None, span: None, trace_state: None };

    /// A context from its parts.
    pub fn new(client: Option<Client>, instance: Option<AgentInstanceHandle>, span: Option<SpanId>) -> Context {
        Context { client, instance, span, trace_state: None }
    }

    /// The context of the running code (a clone of the thread-local).
    pub fn current() -> Context {
        CURRENT.try_with(|cx| cx.borrow().clone()).unwrap_or_default()
    }

    /// Runs `f` with the current context without cloning it.
    ///
    /// ```
    /// let has_span = prefactor_runtime::Context::with_current(|cx| cx.span_id().is_some());
    /// assert!(!has_span);
    /// ```
    pub fn with_current<R>(f: impl FnOnce(&Context) -> R) -> R {
        // During thread teardown the thread-local may be gone: behave as "no context".
        if CURRENT.try_with(|_| ()).is_err() {
            return f(&Context::EMPTY);
        }
        CURRENT.with(|cx| match cx.try_borrow() {
            Ok(cx) => f(&cx),
            Err(_) => f(&Context::EMPTY),
        })
    }

    /// Makes this the current context on this thread until the guard drops (then the previous
    /// one is restored). The guard is `!Send`; do not hold it across `.await` — use
    /// [`FutureExt::in_context`](crate::FutureExt::in_context) for async code.
    pub fn enter(&self) -> ContextGuard {
        self.clone().enter_owned()
    }

    /// Runs `f` with this as the current context on this thread (the previous one is restored
    /// after, also when `f` panics). With [`Context::current`], this carries an agent run
    /// into work that runs elsewhere: a thread pool's jobs, say.
    ///
    /// ```
    /// use prefactor_runtime::Context;
    ///
    /// // In an agent run: capture the context, then enter it in each job of a pool.
    /// let cx = Context::current();
    /// std::thread::scope(|scope| {
    ///     for n in 0..4 {
    ///         let cx = &cx;
    ///         // `rayon`: `items.par_iter().map(|item| cx.in_scope(|| step(item)))`
    ///         scope.spawn(move || cx.in_scope(|| n * 2));
    ///     }
    /// });
    /// ```
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.enter();
        f()
    }

    /// [`enter`](Context::enter) without the clone, for a context made to be entered.
    pub(crate) fn enter_owned(self) -> ContextGuard {
        let previous = swap_current(self);
        ContextGuard { previous: Some(Previous::Whole(previous)), _not_send: PhantomData }
    }

    /// The client: the explicit one, else the instance's.
    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref().or_else(|| self.instance.as_ref().map(|i| i.client()))
    }

    /// The current agent instance.
    pub fn instance(&self) -> Option<&AgentInstanceHandle> {
        self.instance.as_ref()
    }

    /// The current span: the default parent of new spans.
    pub fn span_id(&self) -> Option<SpanId> {
        self.span
    }

    /// A copy with `span` as the current span.
    pub fn with_span(&self, span: Option<SpanId>) -> Context {
        Context { span, ..self.clone() }
    }

    /// The W3C `tracestate` that came with this context from a caller (see
    /// [`with_trace_state`](Context::with_trace_state)).
    pub fn trace_state(&self) -> Option<&str> {
        self.trace_state.as_deref()
    }

    /// This context carrying a caller's W3C `tracestate`, so that calls made from it pass the
    /// value on unchanged (spans opened in it inherit it). Propagation sets it; the value is
    /// not checked here.
    ///
    /// ```
    /// use prefactor_runtime::Context;
    ///
    /// let cx = Context::current().with_trace_state(Some("congo=t61rcWkgMzE".into()));
    /// assert_eq!(cx.trace_state(), Some("congo=t61rcWkgMzE"));
    /// ```
    #[must_use]
    pub fn with_trace_state(self, trace_state: Option<Arc<str>>) -> Context {
        Context { trace_state, ..self }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("client", &self.client.is_some())
            .field("instance", &self.instance.as_ref().map(|i| i.id()))
            .field("span", &self.span)
            .field("trace_state", &self.trace_state)
            .finish()
    }
}

/// Replaces the thread's context, returning the previous one.
pub(crate) fn swap_current(next: Context) -> Context {
    CURRENT
        .try_with(|cx| match cx.try_borrow_mut() {
            Ok(mut cx) => std::mem::replace(&mut *cx, next),
            Err(_) => Context::EMPTY,
        })
        .unwrap_or_default()
}

/// The default parent for a new span of `instance`: the current span when it belongs to it.
pub(crate) fn current_parent(instance: InstanceId) -> Option<SpanId> {
    CURRENT
        .try_with(|cx| {
            let cx = cx.try_borrow().ok()?;
            let span = cx.span?;
            match &cx.instance {
                Some(current) if current.id() != instance => None,
                _ => Some(span),
            }
        })
        .ok()
        .flatten()
}

/// Makes `span` the current span when the thread's context already is `client` and
/// `instance` (the common case: a span opened inside its parent's context). Only the span id
/// changes, so entering costs no reference-count traffic; `None` when the context differs
/// (the caller then enters a whole new context).
pub(crate) fn enter_span_of(client: &Client, instance: InstanceId, span: SpanId) -> Option<ContextGuard> {
    CURRENT
        .try_with(|cx| {
            let mut cx = cx.try_borrow_mut().ok()?;
            let current = cx.instance.as_ref()?;
            let same = current.id() == instance
                && current.client.same_as(client)
                && cx.client.as_ref().is_some_and(|c| c.same_as(client));
            if !same {
                return None;
            }
            let previous = cx.span.replace(span);
            Some(ContextGuard { previous: Some(Previous::Span(previous)), _not_send: PhantomData })
        })
        .ok()
        .flatten()
}

/// What a [`ContextGuard`] puts back.
enum Previous {
    /// The whole previous context.
    Whole(Context),
    /// Only the previous span: the guard changed nothing else (see [`enter_span_of`]). Guards
    /// are dropped in the reverse order of entering, so client and instance are still the
    /// ones it saw, and restoring the span alone restores the whole previous context.
    Span(Option<SpanId>),
}

/// Restores the previous context when dropped. Not `Send`: it belongs to the thread that
/// entered.
#[must_use = "the context is exited as soon as the guard is dropped"]
pub struct ContextGuard {
    previous: Option<Previous>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        match self.previous.take() {
            // The replaced value is dropped here, outside the thread-local borrow.
            Some(Previous::Whole(previous)) => drop(swap_current(previous)),
            Some(Previous::Span(previous)) => {
                let _ = CURRENT.try_with(|cx| {
                    if let Ok(mut cx) = cx.try_borrow_mut() {
                        cx.span = previous;
                    }
                });
            }
            None => {}
        }
    }
}

impl fmt::Debug for ContextGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextGuard").finish_non_exhaustive()
    }
}
