//! `SpanStream`: a span that lasts as long as a stream. It ends `complete` when the stream
//! ends, `failed` on the first `Err` item (of a [`try_stream`]) or when a poll panics, and
//! `cancelled` when the stream is dropped before its end; it records the item count, the time
//! to the first item and a result reduced from the items.

use std::fmt::{self, Display};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use pin_project_lite::pin_project;
use prefactor_protocol::FinishStatus;
use serde::Serialize;

use crate::capture::client::global::global_client;
use crate::capture::client::record_unattached_span;
use crate::capture::context::Context;
use crate::capture::finish_span::FinishSpan;
use crate::capture::instrument::enter_in_place;
use crate::capture::span_guard::SpanGuard;
use crate::capture::testing::capturing_client;
use crate::record::payload::{Payload, error_payload};
use crate::report::trace_tree::TIME_TO_FIRST_ITEM_KEY;

/// What a streaming span keeps of the items for its result.
pub trait Reduce<T> {
    /// Takes one item into account.
    fn add(&mut self, item: &T);
    /// The reduced result (`None`: nothing to record).
    fn result(&self) -> Option<Payload>;
}

/// Keeps nothing of the items (the default: only their count and the time to the first one
/// are recorded).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepNothing;

impl<T> Reduce<T> for KeepNothing {
    #[inline]
    fn add(&mut self, _item: &T) {}

    fn result(&self) -> Option<Payload> {
        None
    }
}

/// Folds the items into an accumulator (`A::default()` first) with `fold(&mut acc, &item)`;
/// the accumulator is the span's result: itself when it serializes to an object, otherwise
/// `{"output": acc}`. Made by [`SpanStream::reduce`].
pub struct Fold<A, F> {
    acc: A,
    fold: F,
}

impl<T, A: Serialize, F: FnMut(&mut A, &T)> Reduce<T> for Fold<A, F> {
    #[inline]
    fn add(&mut self, item: &T) {
        (self.fold)(&mut self.acc, item);
    }

    fn result(&self) -> Option<Payload> {
        let value = serde_json::to_value(&self.acc)
            .inspect_err(|error| tracing::warn!(%error, "prefactor: could not serialize a stream's reduced result"))
            .ok()?;
        Some(Payload::from(match value {
            object @ serde_json::Value::Object(_) => object,
            other => serde_json::json!({ "output": other }),
        }))
    }
}

/// How a stream's items are recorded: every item is a success ([`Items`], made by
/// [`stream`]), or `Result` items whose first `Err` fails the span ([`TryItems`], made by
/// [`try_stream`]).
pub trait ItemPolicy<I> {
    /// Takes one item into account; `Err(result)` fails the span with that result.
    fn item(&mut self, item: &I) -> Result<(), Option<Payload>>;
    /// The result reduced from the items so far.
    fn result(&self) -> Option<Payload>;
}

/// Every item counts as a success and is handed to the reducer `R`.
#[derive(Debug, Default)]
pub struct Items<R>(R);

impl<I, R: Reduce<I>> ItemPolicy<I> for Items<R> {
    #[inline]
    fn item(&mut self, item: &I) -> Result<(), Option<Payload>> {
        self.0.add(item);
        Ok(())
    }

    fn result(&self) -> Option<Payload> {
        self.0.result()
    }
}

/// `Ok` items are handed to the reducer `R`; the first `Err` fails the span with
/// `{"error": {"message", "type"}}` (rendered by `render`).
pub struct TryItems<R, E: ?Sized> {
    reduce: R,
    render: fn(&E) -> Option<Payload>,
}

impl<T, E, R: Reduce<T>> ItemPolicy<Result<T, E>> for TryItems<R, E> {
    #[inline]
    fn item(&mut self, item: &Result<T, E>) -> Result<(), Option<Payload>> {
        match item {
            Ok(value) => {
                self.reduce.add(value);
                Ok(())
            }
            Err(error) => Err((self.render)(error)),
        }
    }

    fn result(&self) -> Option<Payload> {
        self.reduce.result()
    }
}

/// `{"error": {"message": <Display>, "type": <type name>}}`.
fn display_error<E: Display>(error: &E) -> Option<Payload> {
    error_payload(&error.to_string(), std::any::type_name::<E>())
}

/// The open span of a stream and what it counted so far (boxed: a stream without a span
/// carries one null pointer).
struct Open<P> {
    span: SpanGuard,
    cx: Context,
    policy: P,
    /// `P`'s [`ItemPolicy::result`], kept here so that `drop` (which cannot name the item
    /// type) can end the span with it.
    result_of: fn(&P) -> Option<Payload>,
    started: Instant,
    items: u64,
    first_item: Option<Duration>,
}

impl<P> Open<P> {
    /// Ends the span with the counts and the reduced result (then `extra`'s keys).
    fn finish(self, status: FinishStatus, extra: Option<Payload>) {
        let Open { span, cx, policy, result_of, items, first_item, .. } = self;
        drop(cx);
        let mut result = result_of(&policy).unwrap_or_else(Payload::empty);
        let mut stats = serde_json::Map::new();
        stats.insert("items".to_owned(), items.into());
        if let Some(first) = first_item {
            // Milliseconds to the microsecond: the resolution of the span's own times.
            let millis = (first.as_secs_f64() * 1e6).round() / 1e3;
            stats.insert(TIME_TO_FIRST_ITEM_KEY.to_owned(), millis.into());
        }
        result.merge(&Payload::from(serde_json::json!({ "stream": stats })));
        if let Some(extra) = extra {
            result.merge(&extra);
        }
        span.finish(FinishSpan::new(status).result(result));
    }
}

pin_project! {
    /// A stream whose span stays open until it ends: made by [`stream`] and [`try_stream`]
    /// (a span of the current run), [`SpanStream::new`] / [`SpanStream::new_try`] (a span
    /// of your own), and `#[prefactor::span]` on a function returning `impl Stream`.
    ///
    /// The span ends `complete` when the stream ends, `failed` at the first `Err` item of a
    /// `try` stream (or when a poll panics), and `cancelled` when the stream is dropped before
    /// its end. The span's context is current while the stream is polled (spans opened by the
    /// stream's code are its children) and while it is dropped. Its result is
    /// `{"stream": {"items": N, "time_to_first_item_ms": T}}` (no `time_to_first_item_ms`
    /// when no item came) merged into the reduced result, if any (see
    /// [`reduce`](SpanStream::reduce)), and the error of a failing item.
    #[must_use = "streams do nothing unless polled"]
    pub struct SpanStream<S, P> {
        // `None` only once dropped (inside the span's context, in `drop`).
        #[pin]
        inner: Option<S>,
        open: Option<Box<Open<P>>>,
    }

    impl<S, P> PinnedDrop for SpanStream<S, P> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            {
                let _entered = this.open.as_deref_mut().map(|open| enter_in_place(&mut open.cx));
                this.inner.set(None);
            }
            // Dropped before its end: cancelled, with what it counted.
            if let Some(open) = this.open.take() {
                (*open).finish(FinishStatus::Cancelled, None);
            }
        }
    }
}

impl<S: Stream> SpanStream<S, Items<KeepNothing>> {
    /// `stream` recorded as `span` (which it ends): every item is a success.
    ///
    /// ```
    /// use prefactor_runtime::testing::Capture;
    /// use prefactor_runtime::{CreateInstance, SpanStream};
    ///
    /// let capture = Capture::new()?;
    /// let run = capture.client().create_agent_instance(CreateInstance::default())?;
    /// let tokens = SpanStream::new(run.span("agent:llm").start(), futures_util::stream::iter(["a", "b"]));
    /// # let _ = tokens;
    /// # Ok::<(), prefactor_runtime::Error>(())
    /// ```
    pub fn new(span: SpanGuard, stream: S) -> Self {
        SpanStream::with_policy(span, stream, Items(KeepNothing))
    }
}

impl<S, T, E> SpanStream<S, TryItems<KeepNothing, E>>
where
    S: Stream<Item = Result<T, E>>,
    E: Display,
{
    /// `stream` of `Result` items recorded as `span` (which it ends): the first `Err` fails
    /// it, with `{"error": {"message": <Display>, "type": <type name>}}`.
    pub fn new_try(span: SpanGuard, stream: S) -> Self {
        SpanStream::new_try_rendered(span, stream, display_error::<E>)
    }
}

impl<S, T, E> SpanStream<S, TryItems<KeepNothing, E>>
where
    S: Stream<Item = Result<T, E>>,
{
    /// [`new_try`](SpanStream::new_try) with the error payload made by `render` (for
    /// `#[span(err(Debug))]`).
    #[doc(hidden)]
    pub fn new_try_rendered(span: SpanGuard, stream: S, render: fn(&E) -> Option<Payload>) -> Self {
        SpanStream::with_policy(span, stream, TryItems { reduce: KeepNothing, render })
    }
}

impl<S: Stream, P: ItemPolicy<S::Item>> SpanStream<S, P> {
    fn with_policy(span: SpanGuard, stream: S, policy: P) -> Self {
        let open = match span.is_noop() {
            true => None,
            false => {
                let mut span = span;
                span.set_drop_status(FinishStatus::Cancelled);
                let cx = span.context();
                let result_of = <P as ItemPolicy<S::Item>>::result;
                Some(Box::new(Open {
                    span,
                    cx,
                    policy,
                    result_of,
                    started: Instant::now(),
                    items: 0,
                    first_item: None,
                }))
            }
        };
        SpanStream { inner: Some(stream), open }
    }

    /// Measures the time to the first item from `at` (default: when the stream was wrapped),
    /// for a span opened earlier than that.
    pub fn started_at(mut self, at: Instant) -> Self {
        if let Some(open) = &mut self.open {
            open.started = at;
        }
        self
    }

    fn map_policy<Q>(mut self, change: impl FnOnce(P) -> Q) -> SpanStream<S, Q>
    where
        Q: ItemPolicy<S::Item>,
    {
        let open = self.open.take().map(|open| {
            let Open { span, cx, policy, started, items, first_item, .. } = *open;
            let policy = change(policy);
            let result_of = <Q as ItemPolicy<S::Item>>::result;
            Box::new(Open { span, cx, policy, result_of, started, items, first_item })
        });
        // The shell left behind has neither stream nor span: its drop records nothing.
        let inner = self.inner.take();
        SpanStream { inner, open }
    }
}

impl<S: Stream> SpanStream<S, Items<KeepNothing>> {
    /// Records a result reduced from the items: `fold(&mut acc, &item)` for each item, from
    /// `A::default()`; the span's result is `acc` (see [`Fold`]) with the stream's counts.
    ///
    /// ```
    /// use futures_util::StreamExt as _;
    /// use prefactor_runtime::testing::Capture;
    /// use prefactor_runtime::{CreateInstance, SpanStream};
    ///
    /// #[derive(Default, serde::Serialize)]
    /// struct Reply {
    ///     text: String,
    /// }
    ///
    /// let capture = Capture::new()?;
    /// let run = capture.client().create_agent_instance(CreateInstance::default())?;
    /// let chunks = futures_util::stream::iter(["Hel", "lo"]);
    /// let chunks = SpanStream::new(run.span("agent:llm").start(), chunks)
    ///     .reduce(|reply: &mut Reply, chunk: &&str| reply.text.push_str(chunk));
    /// let text: Vec<&str> = futures_executor::block_on(chunks.collect());
    ///
    /// let span = capture.runs()[0].spans[0].clone();
    /// assert_eq!(span.result_at("/text"), Some(&serde_json::json!("Hello")));
    /// assert_eq!(span.result_at("/stream/items"), Some(&serde_json::json!(2)));
    /// # assert_eq!(text, ["Hel", "lo"]);
    /// # Ok::<(), prefactor_runtime::Error>(())
    /// ```
    pub fn reduce<A, F>(self, fold: F) -> SpanStream<S, Items<Fold<A, F>>>
    where
        A: Default + Serialize,
        F: FnMut(&mut A, &S::Item),
    {
        self.map_policy(|_| Items(Fold { acc: A::default(), fold }))
    }
}

impl<S, T, E> SpanStream<S, TryItems<KeepNothing, E>>
where
    S: Stream<Item = Result<T, E>>,
{
    /// Records a result reduced from the `Ok` items (see
    /// [`SpanStream::<S, Items<KeepNothing>>::reduce`](SpanStream::reduce)).
    pub fn reduce<A, F>(self, fold: F) -> SpanStream<S, TryItems<Fold<A, F>, E>>
    where
        A: Default + Serialize,
        F: FnMut(&mut A, &T),
    {
        self.map_policy(|policy| TryItems { reduce: Fold { acc: A::default(), fold }, render: policy.render })
    }
}

impl<S: Stream, P: ItemPolicy<S::Item>> Stream for SpanStream<S, P> {
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        // Only `drop` empties it: no poll can see that.
        let Some(inner) = this.inner.as_pin_mut() else { return Poll::Ready(None) };
        if this.open.is_none() {
            return inner.poll_next(task);
        }
        let poll = {
            let watch = FailOnPanic(this.open);
            let _entered = watch.0.as_deref_mut().map(|open| enter_in_place(&mut open.cx));
            inner.poll_next(task)
        };
        match &poll {
            Poll::Ready(Some(item)) => {
                if let Some(open) = this.open.as_deref_mut() {
                    open.items += 1;
                    if open.first_item.is_none() {
                        open.first_item = Some(open.started.elapsed());
                    }
                    if let Err(error) = open.policy.item(item)
                        && let Some(open) = this.open.take()
                    {
                        (*open).finish(FinishStatus::Failed, error);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(open) = this.open.take() {
                    (*open).finish(FinishStatus::Complete, None);
                }
            }
            Poll::Pending => {}
        }
        poll
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.as_ref().map_or((0, Some(0)), Stream::size_hint)
    }
}

impl<S, P> fmt::Debug for SpanStream<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanStream").field("span", &self.open.as_ref().map(|open| open.span.id())).finish()
    }
}

/// Fails the span if the poll it watches unwinds (the stream may be dropped much later, when
/// a drop would read as a cancellation).
struct FailOnPanic<'a, P>(&'a mut Option<Box<Open<P>>>);

impl<P> Drop for FailOnPanic<'_, P> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(open) = self.0.take()
        {
            (*open).finish(FinishStatus::Failed, None);
        }
    }
}

/// A span of type `schema` in the current run, or a no-op guard outside any run (counted
/// as unattached when a client is installed).
fn current_span(schema: &str) -> SpanGuard {
    start_in_current_run(schema, None)
}

/// A span of type `schema` with `payload`, started in the current run (a child of the
/// current span), or a no-op guard outside any run (counted as unattached when a client is
/// installed). For instrumentation that records spans of its own (the `prefactor` crate's LLM
/// client adapters).
#[doc(hidden)]
pub fn start_in_current_run(schema: &str, payload: Option<Payload>) -> SpanGuard {
    let span = Context::with_current(|cx| {
        cx.instance().map(|instance| {
            let builder = instance.span(schema);
            match payload {
                Some(payload) => builder.payload(payload).start(),
                None => builder.start(),
            }
        })
    });
    span.unwrap_or_else(|| {
        if let Some(client) = capturing_client().or_else(|| global_client().cloned()) {
            record_unattached_span(&client, schema);
        }
        SpanGuard::noop()
    })
}

/// `stream` recorded as a span of type `schema` in the current run, open until the stream
/// ends (`complete`) or is dropped (`cancelled`); see [`SpanStream`]. For streams made
/// elsewhere (an LLM client's, say); `#[prefactor::span]` on a function returning
/// `impl Stream` does the same for your own.
///
/// ```
/// use futures_util::StreamExt as _;
/// use prefactor_runtime::testing::Capture;
/// use prefactor_runtime::{AgentStatus, CreateInstance};
///
/// let capture = Capture::new()?;
/// let run = capture.client().create_agent_instance(CreateInstance::default())?;
/// let tokens = run.context().in_scope(|| prefactor_runtime::stream("agent:llm", futures_util::stream::iter(1..=3)));
/// let sum: i32 = futures_executor::block_on(tokens.fold(0, |sum, n| async move { sum + n }));
///
/// let span = capture.runs()[0].spans[0].clone();
/// assert_eq!((sum, span.status), (6, AgentStatus::Complete));
/// assert_eq!(span.result_at("/stream/items"), Some(&serde_json::json!(3)));
/// # Ok::<(), prefactor_runtime::Error>(())
/// ```
pub fn stream<S: Stream>(schema: &str, stream: S) -> SpanStream<S, Items<KeepNothing>> {
    SpanStream::new(current_span(schema), stream)
}

/// [`stream`] for `Result` items: the first `Err` ends the span as `failed`, with
/// `{"error": {"message": <Display>, "type": <type name>}}`.
///
/// ```
/// use futures_util::StreamExt as _;
/// use prefactor_runtime::testing::Capture;
/// use prefactor_runtime::{AgentStatus, CreateInstance};
///
/// let capture = Capture::new()?;
/// let run = capture.client().create_agent_instance(CreateInstance::default())?;
/// let items = futures_util::stream::iter([Ok(1), Err("rate limited"), Ok(2)]);
/// let items = run.context().in_scope(|| prefactor_runtime::try_stream("agent:llm", items));
/// let seen: Vec<Result<i32, &str>> = futures_executor::block_on(items.collect());
///
/// let span = capture.runs()[0].spans[0].clone();
/// assert_eq!((seen.len(), span.status), (3, AgentStatus::Failed));
/// assert_eq!(span.result_at("/error/message"), Some(&serde_json::json!("rate limited")));
/// assert_eq!(span.result_at("/stream/items"), Some(&serde_json::json!(2)));
/// # Ok::<(), prefactor_runtime::Error>(())
/// ```
pub fn try_stream<S, T, E>(schema: &str, stream: S) -> SpanStream<S, TryItems<KeepNothing, E>>
where
    S: Stream<Item = Result<T, E>>,
    E: Display,
{
    SpanStream::new_try(current_span(schema), stream)
}
