//! Starting, scoping and finishing the span of one annotated call.

use super::warn_once::warn_no_client;
use prefactor_runtime::{Client, ContextGuard, Error, FinishSpan, Payload, SpanGuard, SpanSite, global_client};

/// The started span of an async call (`instrument_span` moves it into its boxed state).
pub type Started = Option<SpanGuard>;

/// Starts the span of a call: `None` (and nothing serialized) when no client is installed or
/// no agent instance is current. The no-client path is one atomic load (plus the relaxed
/// loads of the live-captures count and the warn-once flag).
#[inline]
pub fn start_span(
    schema: &'static str,
    name: &'static str,
    payload: impl FnOnce() -> Result<Payload, Error>,
) -> Started {
    let Some(client) = global_client() else {
        return start_captured_span(schema, name, payload);
    };
    open_recorded_span(Some(client), client, schema, name, payload)
}

/// Without an installed client: the span of a test capture's run (`prefactor::testing`),
/// else nothing (warned once).
#[cold]
#[inline(never)]
fn start_captured_span(
    schema: &'static str,
    name: &'static str,
    payload: impl FnOnce() -> Result<Payload, Error>,
) -> Started {
    match prefactor_runtime::capturing_client() {
        Some(client) => open_recorded_span(None, &client, schema, name, payload),
        None => {
            warn_no_client(name);
            None
        }
    }
}

/// Opens the span of a call in the current context's instance (queued to its client; the
/// `installed` one is held without a reference count), or counts it to `client` as unattached
/// (outside any instance) or sampled out.
fn open_recorded_span(
    installed: Option<&'static Client>,
    client: &Client,
    schema: &'static str,
    name: &'static str,
    payload: impl FnOnce() -> Result<Payload, Error>,
) -> Option<SpanGuard> {
    // One read of the thread's context, in place (cloning it would cost three reference
    // counts up and down per call).
    let Some(site) = SpanSite::current(installed) else {
        // Counted, warned once per span type and reported by `close()`, with the fix.
        // Inside a test capture's `run`, the capture counts it (not the installed client).
        let capture = prefactor_runtime::capturing_client();
        prefactor_runtime::record_unattached_span(capture.as_ref().unwrap_or(client), schema);
        return None;
    };
    // Nothing of an unsampled run is sent: neither its arguments nor its return value are
    // serialized, no guard is made (the nested spans find the run in the context as before).
    if site.is_unsampled() {
        prefactor_runtime::record_sampled_out_span(client);
        return None;
    }
    // Serialized outside the context borrow: user `Serialize` code runs here.
    let payload = payload().unwrap_or_else(|error| {
        tracing::warn!(span = name, schema, %error, "prefactor: could not serialize the span payload; recording `{{}}`");
        Payload::empty()
    });
    // Sent at once as an `active` create (parent: the current context's span, if any).
    Some(site.open(schema, payload))
}

/// A span made current on this thread for a synchronous body (the context is restored before
/// the span ends, also when the body panics). Held by value on the caller's stack: no
/// allocation per recorded call (`None` is all the no-client path writes).
pub struct EnteredSpan {
    // Field order is drop order: leave the context, then end the span.
    entered: ContextGuard,
    span: SpanGuard,
}

/// Starts the span of a synchronous call and makes it current (see [`start_span`]).
#[inline]
pub fn enter_span(
    schema: &'static str,
    name: &'static str,
    payload: impl FnOnce() -> Result<Payload, Error>,
) -> Option<EnteredSpan> {
    let span = match global_client() {
        Some(client) => open_recorded_span(Some(client), client, schema, name, payload),
        None => start_captured_span(schema, name, payload),
    };
    span.map(|span| EnteredSpan { entered: span.enter(), span })
}

impl EnteredSpan {
    /// Leaves the span's scope and hands over the span (still open).
    pub(crate) fn leave(self) -> SpanGuard {
        let EnteredSpan { entered, span } = self;
        drop(entered);
        span
    }
}

/// Calls `body` once (an `FnOnce` expectation lets the body move out of and return borrows of
/// its captures, exactly like the original function body).
#[inline]
pub fn call_once<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Leaves the span's scope and finishes it from the call's output.
#[inline]
pub fn finish_sync<R: ?Sized, F: FnOnce(SpanGuard, &R)>(entered: Option<EnteredSpan>, output: &R, finish: F) {
    if let Some(EnteredSpan { entered, span }) = entered {
        drop(entered);
        finish(span, output);
    }
}

/// Finishes as `complete` with an optional result payload.
pub fn complete(span: SpanGuard, result: Option<Payload>) {
    match result {
        Some(result) => span.finish(FinishSpan::complete().result(result)),
        None => span.complete(),
    }
}

/// Finishes as `failed` with an optional result payload.
pub fn fail(span: SpanGuard, result: Option<Payload>) {
    match result {
        Some(result) => span.finish(FinishSpan::failed().result(result)),
        None => span.fail(),
    }
}
