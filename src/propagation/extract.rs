//! Reading a caller's context from an incoming request's headers, strictly: what is malformed
//! is ignored (debug log), never trusted in part.

use std::sync::Arc;

use http::HeaderMap;
use prefactor_protocol::{PREFACTOR_CONTEXT, PrefactorContext, TRACEPARENT, TRACESTATE, TraceParent, valid_tracestate};

use super::remote_context::RemoteContext;

/// The caller's context in `headers`, or `None` when there is no valid `prefactor-context`
/// (a malformed or repeated one is logged at debug level). A `tracestate` is kept only with a
/// valid `traceparent` of the same trace (the one the caller derived from its run); repeated
/// `tracestate` headers are joined, as the W3C spec says.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use prefactor::propagation::extract;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("prefactor-context", HeaderValue::from_static("00-not-a-run"));
/// assert!(extract(&headers).is_none(), "malformed: ignored");
/// ```
pub fn extract(headers: &HeaderMap) -> Option<RemoteContext> {
    let prefactor = single(headers, PREFACTOR_CONTEXT)?;
    let traceparent = single(headers, TRACEPARENT);
    let trace_states: Vec<&str> = headers.get_all(TRACESTATE).iter().filter_map(|v| v.to_str().ok()).collect();
    let trace_state = (!trace_states.is_empty()).then(|| trace_states.join(","));
    extract_with(|name| match name {
        PREFACTOR_CONTEXT => Some(prefactor),
        TRACEPARENT => traceparent,
        TRACESTATE => trace_state.as_deref(),
        _ => None,
    })
}

/// [`extract`] from any carrier: `get` returns the value of a header by its lowercase name.
///
/// ```
/// let remote = prefactor::propagation::extract_with(|_| None);
/// assert!(remote.is_none());
/// ```
pub fn extract_with<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<RemoteContext> {
    let value = get(PREFACTOR_CONTEXT)?;
    let prefactor = match value.parse::<PrefactorContext>() {
        Ok(prefactor) => prefactor,
        Err(error) => {
            tracing::debug!(%error, header = PREFACTOR_CONTEXT, "prefactor: ignoring a malformed propagation header");
            return None;
        }
    };
    let trace_state = get(TRACEPARENT).and_then(|value| trace_state_of(&prefactor, value, get(TRACESTATE)));
    Some(RemoteContext { prefactor, trace_state })
}

/// The `tracestate` to pass on: only with a valid `traceparent` of the run's own trace (one
/// of another trace, the application's own, has a `tracestate` of that trace).
fn trace_state_of(prefactor: &PrefactorContext, traceparent: &str, trace_state: Option<&str>) -> Option<Arc<str>> {
    let traceparent = match traceparent.parse::<TraceParent>() {
        Ok(traceparent) => traceparent,
        Err(error) => {
            tracing::debug!(%error, header = TRACEPARENT, "prefactor: ignoring a malformed propagation header");
            return None;
        }
    };
    let trace_state = trace_state?.trim_matches([' ', '\t']);
    if traceparent.trace_id != prefactor.otel_trace_id() || trace_state.is_empty() {
        return None;
    }
    if !valid_tracestate(trace_state) {
        tracing::debug!(header = TRACESTATE, "prefactor: ignoring a malformed propagation header");
        return None;
    }
    Some(Arc::from(trace_state))
}

/// The value of a header sent once, as text; `None` (logged) when repeated or not text.
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        tracing::debug!(header = name, "prefactor: ignoring a propagation header sent more than once");
        return None;
    }
    match first.to_str() {
        Ok(text) => Some(text),
        Err(_) => {
            tracing::debug!(header = name, "prefactor: ignoring a propagation header that is not text");
            None
        }
    }
}
