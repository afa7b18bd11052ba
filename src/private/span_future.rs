//! The future of an annotated `async fn`: its body, polled inside the span's context.

use super::span::Started;
use pin_project_lite::pin_project;
use prefactor_runtime::{Context, ContextGuard, EnteredInPlace, FinishStatus, SpanGuard, enter_in_place};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

/// Everything a recorded call adds to its body, kept out of line: without a client the
/// future is the body plus one null pointer, small enough to be moved with a few register
/// copies instead of a `memcpy` call (an executor moves every future it is given).
///
/// Usually no `Context` is kept: each poll enters the span with [`SpanGuard::enter`], which,
/// inside its instance's context (the caller's, as usual), only swaps the current span id; a
/// whole context (two handles cloned, three reference counts up and down) is built only for a
/// poll made elsewhere.
struct Recorded<Fin> {
    span: SpanGuard,
    /// The span's whole context, kept only when the caller's context carries a `tracestate`
    /// (a run joined from another process), which a context built later could not know.
    cx: Option<Context>,
    finish: Fin,
}

/// The span's scope during one poll (or the body's drop): left when dropped.
struct Entered<'a> {
    _span: Option<ContextGuard>,
    _whole: Option<EnteredInPlace<'a>>,
}

impl<Fin> Recorded<Fin> {
    fn enter(&mut self) -> Entered<'_> {
        match &mut self.cx {
            Some(cx) => Entered { _span: None, _whole: Some(enter_in_place(cx)) },
            None => Entered { _span: Some(self.span.enter()), _whole: None },
        }
    }
}

/// Wraps an async body: polled inside the span's context, finished from its output, failed
/// when a poll panics, cancelled when dropped before completion. Without a span (no client)
/// the body is polled as is.
#[inline]
pub fn instrument_span<F, Fin>(span: Started, future: F, finish: Fin) -> SpanFuture<F, Fin>
where
    F: Future,
    Fin: FnOnce(SpanGuard, &F::Output),
{
    let recorded = span.map(|span| record(span, finish));
    SpanFuture { body: Some(future), recorded }
}

/// The out-of-line part of a recorded call (kept out of the no-client path's code).
#[inline(never)]
fn record<Fin>(mut span: SpanGuard, finish: Fin) -> Box<Recorded<Fin>> {
    span.set_drop_status(FinishStatus::Cancelled);
    let cx = Context::with_current(|current| current.trace_state().is_some()).then(|| span.context());
    Box::new(Recorded { span, cx, finish })
}

pin_project! {
    /// The future of an instrumented async span (see [`instrument_span`]).
    pub struct SpanFuture<F, Fin> {
        // `None` only once dropped (inside the span's context, in `drop`).
        #[pin]
        body: Option<F>,
        recorded: Option<Box<Recorded<Fin>>>,
    }

    impl<F, Fin> PinnedDrop for SpanFuture<F, Fin> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // The body is dropped inside the span's context (spans ending in its destructors
            // still find their parent), then the span ends as `cancelled` if it is still open.
            let _entered = this.recorded.as_deref_mut().map(Recorded::enter);
            this.body.set(None);
        }
    }
}

impl<F, Fin> Future for SpanFuture<F, Fin>
where
    F: Future,
    Fin: FnOnce(SpanGuard, &F::Output),
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Only `drop` empties it: no poll can see that.
        let Some(body) = this.body.as_pin_mut() else { return Poll::Pending };
        if this.recorded.is_none() {
            return body.poll(cx);
        }
        let poll = {
            let watch = FailOnPanic(this.recorded);
            let _entered = watch.0.as_deref_mut().map(Recorded::enter);
            body.poll(cx)
        };
        if let Poll::Ready(output) = &poll
            && let Some(recorded) = this.recorded.take()
        {
            let Recorded { span, cx, finish } = *recorded;
            drop(cx);
            finish(span, output);
        }
        poll
    }
}

/// Fails the span if the poll it watches unwinds (the executor may drop the future much later,
/// when a drop would read as a cancellation).
struct FailOnPanic<'a, Fin>(&'a mut Option<Box<Recorded<Fin>>>);

impl<Fin> Drop for FailOnPanic<'_, Fin> {
    fn drop(&mut self) {
        if self.0.is_some()
            && std::thread::panicking()
            && let Some(recorded) = self.0.take()
        {
            recorded.span.fail();
        }
    }
}
