//! Writing the current run's context into an outgoing request's headers.

use http::{HeaderMap, HeaderName, HeaderValue};
use prefactor_protocol::{PREFACTOR_CONTEXT, PrefactorContext, TRACEPARENT, TRACESTATE};
use prefactor_runtime::Context;

/// Writes the current run's context into `headers`: `prefactor-context` (the run, the
/// current span and whether sampling sends the run), `traceparent` (the same call in W3C terms) and the `tracestate` a caller
/// sent this run, if any. Returns whether it wrote anything: outside a run (no current
/// instance) it writes nothing. A `traceparent` already in `headers` (the application's own
/// OpenTelemetry propagation) is kept, and so is its `tracestate`.
///
/// ```
/// use prefactor::propagation::inject;
///
/// let mut headers = http::HeaderMap::new();
/// assert!(!inject(&mut headers), "outside a run: nothing to send");
/// assert!(headers.is_empty());
/// ```
pub fn inject(headers: &mut HeaderMap) -> bool {
    let keep_traceparent = headers.contains_key(TRACEPARENT);
    inject_with(|name, value| {
        if keep_traceparent && (name == TRACEPARENT || name == TRACESTATE) {
            return;
        }
        // Every value written is ASCII made here (ids) or a `tracestate` checked on receipt.
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    })
}

/// [`inject`] for any carrier (gRPC metadata, a message queue's attributes...): calls `set`
/// with each header name (lowercase) and value.
///
/// ```
/// let mut sent = Vec::new();
/// prefactor::propagation::inject_with(|name, value| sent.push((name, value)));
/// assert!(sent.is_empty(), "outside a run");
/// ```
pub fn inject_with(mut set: impl FnMut(&'static str, String)) -> bool {
    let current = Context::with_current(|cx| {
        let instance = cx.instance()?;
        let prefactor = PrefactorContext {
            instance: instance.id().pfid(),
            span: cx.span_id().map(|span| span.pfid()),
            // A held run may still be kept, but only at its end: the callee cannot wait that
            // long, so it sends nothing of it (as for a run sampling left out).
            sampled: instance.sampling().is_sent(),
        };
        Some((prefactor, cx.trace_state().map(str::to_owned)))
    });
    let Some((prefactor, trace_state)) = current else { return false };
    set(PREFACTOR_CONTEXT, prefactor.to_string());
    set(TRACEPARENT, prefactor.traceparent().to_string());
    if let Some(trace_state) = trace_state {
        set(TRACESTATE, trace_state);
    }
    true
}
