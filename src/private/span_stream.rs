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

/// `reduce = path` checked against the stream's items where the path is written (so a
/// reducer of the wrong item type is reported on it, not on the return type).
#[inline]
pub fn reducer_for<S, A, F>(_stream: &S, reduce: F) -> F
where
    S: futures_core::Stream,
    A: Default + serde::Serialize,
    F: FnMut(&mut A, &S::Item),
{
    reduce
}

/// [`reducer_for`] for a stream of `Result` items: the reducer takes the `Ok` values.
#[inline]
pub fn try_reducer_for<S, T, E, A, F>(_stream: &S, reduce: F) -> F
where
    S: futures_core::Stream<Item = Result<T, E>>,
    A: Default + serde::Serialize,
    F: FnMut(&mut A, &T),
{
    reduce
}
