//! The stream returned by an annotated function that returns one: its span stays open until
//! the stream ends.

use super::span::{EnteredSpan, enter_span};
use prefactor_runtime::streaming::{Items, KeepNothing, SpanStream, TryItems};
use prefactor_runtime::{Error, Payload, SpanGuard};
use std::time::Instant;

/// The span of a call that returns a stream, current while the function body makes the
/// stream, and when the call started (the time to the first item counts from there).
pub struct StreamStart {
    entered: Option<EnteredSpan>,
    at: Instant,
}

/// Starts the span of a call returning a stream and makes it current for the body.
#[inline]
pub fn enter_stream_span(
    schema: &'static str,
    name: &'static str,
    payload: impl FnOnce() -> Result<Payload, Error>,
) -> StreamStart {
    let at = Instant::now();
    StreamStart { entered: enter_span(schema, name, payload), at }
}

fn leave(start: StreamStart) -> (SpanGuard, Instant) {
    (start.entered.map_or_else(SpanGuard::noop, EnteredSpan::leave), start.at)
}

/// The body's stream, recorded by the span (every item a success).
#[inline]
pub fn stream_span<S: futures_core::Stream>(start: StreamStart, stream: S) -> SpanStream<S, Items<KeepNothing>> {
    let (span, at) = leave(start);
    SpanStream::new(span, stream).started_at(at)
}

/// The body's stream of `Result` items, recorded by the span (the first `Err` fails it, with
/// the error rendered by `render`: `err(Display)` or `err(Debug)`).
#[inline]
pub fn try_stream_span<S, T, E>(
    start: StreamStart,
    stream: S,
    render: fn(&E) -> Option<Payload>,
) -> SpanStream<S, TryItems<KeepNothing, E>>
where
    S: futures_core::Stream<Item = Result<T, E>>,
{
    let (span, at) = leave(start);
    SpanStream::new_try_rendered(span, stream, render).started_at(at)
}
