//! `Instrumented`: carries a [`Context`] into a future or a stream, across `.await` and
//! `tokio::spawn`; [`spawn`] and [`spawn_blocking`] carry it into tokio tasks.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::capture::context::{Context, swap_current};

pin_project! {
    /// A future (or stream) that runs inside a [`Context`]: the context is current during
    /// every poll and while the inner value is dropped (so spans that end in destructors of a
    /// cancelled future still find their parent). Made by [`FutureExt::in_context`] and
    /// [`StreamExt::in_context`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Instrumented<F> {
        // `None` only once dropped (inside the context, in `drop`).
        #[pin]
        inner: Option<F>,
        cx: Context,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _entered = enter_in_place(this.cx);
            this.inner.set(None);
        }
    }
}

/// A context entered in place: swapped into the thread-local, and back out when this guard
/// drops (no clone, no reference counting). Made by [`enter_in_place`].
#[must_use = "the context is left when the guard drops"]
pub struct EnteredInPlace<'a> {
    slot: &'a mut Context,
}

/// Makes the context held in `slot` current until the guard drops, by swapping it with the
/// thread's (the slot holds the previous context meanwhile). For futures that own their
/// context and enter it on every poll, as [`Instrumented`] does; cheaper than
/// [`Context::enter`], which clones.
///
/// ```
/// use prefactor_runtime::{Context, enter_in_place};
///
/// let mut cx = Context::default();
/// {
///     let _entered = enter_in_place(&mut cx);
///     assert!(Context::with_current(|current| current.span_id().is_none()));
/// }
/// ```
pub fn enter_in_place(slot: &mut Context) -> EnteredInPlace<'_> {
    let previous = swap_current(std::mem::take(slot));
    *slot = previous;
    EnteredInPlace { slot }
}

impl Drop for EnteredInPlace<'_> {
    fn drop(&mut self) {
        // Put the previous context back and keep ours (possibly changed by nobody) in the slot.
        let previous = std::mem::take(self.slot);
        *self.slot = swap_current(previous);
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = enter_in_place(this.cx);
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(task),
            // Only `drop` empties it: no poll can see that.
            None => Poll::Pending,
        }
    }
}

/// Adds context propagation to every future.
///
/// ```no_run
/// use prefactor_runtime::{AgentInstanceHandle, FutureExt};
///
/// async fn handle(instance: AgentInstanceHandle) {
///     let span = instance.span("agent:request").start();
///     let cx = span.context();
///     // The spawned task's spans nest under `span`, on whatever thread it runs.
///     let child = tokio::spawn(
///         async move {
///             let inner = instance.span("agent:lookup").start();
///             inner.complete();
///         }
///         .in_context(cx),
///     );
///     let _ = child.await;
///     span.complete();
/// }
/// ```
pub trait FutureExt: Future + Sized {
    /// Runs this future inside `cx`.
    fn in_context(self, cx: Context) -> Instrumented<Self> {
        Instrumented { inner: Some(self), cx }
    }

    /// Runs this future inside the context current at this call (use before `tokio::spawn`).
    fn in_current_context(self) -> Instrumented<Self> {
        self.in_context(Context::current())
    }
}

impl<F: Future> FutureExt for F {}

impl<S: Stream> Stream for Instrumented<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let _entered = enter_in_place(this.cx);
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll_next(task),
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.as_ref().map_or((0, Some(0)), Stream::size_hint)
    }
}

/// Adds context propagation to every stream ([`futures_core::Stream`]): each item is produced
/// inside the context, so spans opened while producing it nest under the context's span.
/// When `futures::StreamExt` is imported too, import this one as `prefactor::StreamExt as _`.
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context as TaskContext, Poll, Waker};
/// use futures_core::Stream;
/// use prefactor_runtime::{Context, StreamExt};
///
/// /// Yields, for each item, whether a span was current while it was made.
/// struct Probe(u8);
///
/// impl Stream for Probe {
///     type Item = bool;
///     fn poll_next(mut self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<Option<bool>> {
///         if self.0 == 0 {
///             return Poll::Ready(None);
///         }
///         self.0 -= 1;
///         Poll::Ready(Some(Context::with_current(|cx| cx.span_id().is_some())))
///     }
/// }
///
/// // In an agent run, `Context::current()` (or a span's `context()`) is the run's context; the
/// // stream then makes every item inside it, whichever task polls it.
/// let mut stream = Box::pin(Probe(1).in_current_context());
/// let mut task = TaskContext::from_waker(Waker::noop());
/// assert_eq!(stream.as_mut().poll_next(&mut task), Poll::Ready(Some(false))); // no run here
/// ```
pub trait StreamExt: Stream + Sized {
    /// Runs this stream inside `cx`.
    fn in_context(self, cx: Context) -> Instrumented<Self> {
        Instrumented { inner: Some(self), cx }
    }

    /// Runs this stream inside the context current at this call.
    fn in_current_context(self) -> Instrumented<Self> {
        self.in_context(Context::current())
    }
}

impl<S: Stream> StreamExt for S {}

/// `tokio::spawn` that carries the current context into the task.
///
/// ```no_run
/// # async fn run() {
/// let handle = prefactor_runtime::spawn(async { 1 + 1 });
/// assert_eq!(handle.await.unwrap(), 2);
/// # }
/// ```
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_context())
}

/// `tokio::task::spawn_blocking` that carries the current context into the closure: spans
/// opened on the blocking thread nest under the current span of the current run.
///
/// ```no_run
/// # async fn run() {
/// let handle = prefactor_runtime::spawn_blocking(|| 1 + 1);
/// assert_eq!(handle.await.unwrap(), 2);
/// # }
/// ```
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let cx = Context::current();
    tokio::task::spawn_blocking(move || cx.in_scope(f))
}
