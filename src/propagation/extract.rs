//! Reading a caller's context from an incoming request's headers, strictly: what is malformed
//! is ignored (debug log), never trusted in part.

use std::sync::Arc;

use http::HeaderMap;
use prefactor_protocol::{
    MAX_TRACESTATE_LEN, PREFACTOR_CONTEXT, PrefactorContext, TRACEPARENT, TRACESTATE, TraceParent, valid_tracestate,
};

use super::remote_context::RemoteContext;

/// The caller's context in `headers`, or `None` when there is no valid `prefactor-context`
/// (a malformed or repeated one is logged at debug level). A `tracestate` is kept only with a
/// valid `traceparent` of the same trace (the one the caller derived from its run); repeated
/// `tracestate` headers are joined, as the W3C spec says, and dropped together past 512 bytes.
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
    let trace_state = joined_trace_state(headers);
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

/// Every `tracestate` header joined with `,` (the spec's way to read several), or `None` when
/// there is none, one is not text, or together they exceed what is passed on (then dropped
/// without being copied: a caller cannot make this allocate more than the limit).
fn joined_trace_state(headers: &HeaderMap) -> Option<String> {
    let values = headers.get_all(TRACESTATE);
    let length: usize = values.iter().map(|value| value.len() + 1).sum();
    if length == 0 || length > MAX_TRACESTATE_LEN + 1 {
        return None;
    }
    let texts: Option<Vec<&str>> = values.iter().map(|value| value.to_str().ok()).collect();
    Some(texts?.join(","))
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

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use prefactor_protocol::Pfid;

    use super::*;

    fn headers_of(context: &PrefactorContext, traceparent: &str, trace_states: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(PREFACTOR_CONTEXT, HeaderValue::try_from(context.to_string()).unwrap());
        headers.insert(TRACEPARENT, HeaderValue::try_from(traceparent).unwrap());
        for value in trace_states {
            headers.append(TRACESTATE, HeaderValue::try_from(*value).unwrap());
        }
        headers
    }

    fn context() -> PrefactorContext {
        let instance = Pfid::from_parts(1_700_000_000_000, 3, [7; 10]).unwrap();
        PrefactorContext {
            instance,
            span: Some(Pfid::from_parts(1_700_000_000_001, 3, [8; 10]).unwrap()),
            sampled: true,
        }
    }

    #[test]
    fn repeated_tracestate_headers_are_joined_and_kept_with_the_runs_own_trace() {
        let context = context();
        let ours = context.traceparent().to_string();
        let remote = extract(&headers_of(&context, &ours, &["a=1", "b=2"])).unwrap();
        assert_eq!(remote.trace_state(), Some("a=1,b=2"));
        assert_eq!(remote.instance_id().pfid(), context.instance);
        assert!(remote.sampled());
    }

    #[test]
    fn a_tracestate_of_another_trace_or_too_long_or_malformed_is_dropped() {
        let context = context();
        let ours = context.traceparent().to_string();
        let theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(extract(&headers_of(&context, theirs, &["a=1"])).unwrap().trace_state(), None);
        let long = format!("a={}", "v".repeat(250));
        let over = [long.as_str(), long.as_str(), long.as_str()];
        assert_eq!(extract(&headers_of(&context, &ours, &over)).unwrap().trace_state(), None);
        assert_eq!(extract(&headers_of(&context, &ours, &["A=1"])).unwrap().trace_state(), None);
        let remote = extract(&headers_of(&context, "garbage", &["a=1"])).expect("the run is still joined");
        assert_eq!(remote.trace_state(), None);
    }

    #[test]
    fn a_repeated_prefactor_context_is_ignored() {
        let context = context();
        let mut headers = headers_of(&context, &context.traceparent().to_string(), &[]);
        headers.append(PREFACTOR_CONTEXT, HeaderValue::try_from(context.to_string()).unwrap());
        assert!(extract(&headers).is_none());
    }
}
