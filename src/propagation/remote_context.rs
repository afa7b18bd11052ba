//! `RemoteContext`: a caller's run and span as a tool service received them.

use std::sync::Arc;

use prefactor_protocol::{PrefactorContext, TraceParent};
use prefactor_runtime::{Client, Context, InstanceId, SampleDecision, SpanId};

/// The context a caller sent (see [`extract`](super::extract)): the agent instance (run) to
/// join, the caller's span to put new spans under, and the W3C trace context.
///
/// ```
/// use prefactor::propagation::extract_with;
///
/// let remote = extract_with(|name| match name {
///     "prefactor-context" => Some("00-01jf6k8fm30000050000000000000001-01jf6k8fm30000050000000000000002-01"),
///     _ => None,
/// })
/// .expect("a valid header");
/// assert_eq!(remote.instance_id().to_string(), "01jf6k8fm30000050000000000000001");
/// // The ids the caller's OpenTelemetry export gives that run and span:
/// assert_eq!(remote.traceparent().to_string().len(), 55);
/// ```
#[derive(Debug, Clone)]
pub struct RemoteContext {
    pub(super) prefactor: PrefactorContext,
    pub(super) trace_state: Option<Arc<str>>,
}

impl RemoteContext {
    /// The caller's agent instance: the run the new spans join.
    pub fn instance_id(&self) -> InstanceId {
        InstanceId::from_pfid(self.prefactor.instance)
    }

    /// The caller's span, the parent of the new spans (`None`: they are top-level spans of
    /// the run).
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.prefactor.span.map(SpanId::from_pfid)
    }

    /// Whether the caller's run is sent: `false` when the caller's sampling left it out (or
    /// holds it for a tail rule), and then the tool's spans in it are counted, not sent.
    pub fn sampled(&self) -> bool {
        self.prefactor.sampled
    }

    /// The W3C trace context of the call: the run's OTel trace id, the caller's span's OTel
    /// id, sampled as the run is.
    pub fn traceparent(&self) -> TraceParent {
        self.prefactor.traceparent()
    }

    /// The caller's `tracestate`, when it sent a valid one for this trace.
    pub fn trace_state(&self) -> Option<&str> {
        self.trace_state.as_deref()
    }

    /// The context to run the tool's code in: spans opened in it through the explicit API
    /// (`current_instance()`, [`Context::instance`]) are created by `client` in the caller's
    /// run, under the caller's span; `#[span]` functions record through the installed client
    /// only, so use [`installed_context`](RemoteContext::installed_context) for them. Enter it with
    /// [`Context::in_scope`]/[`Context::enter`] (synchronous code) or
    /// [`FutureExt::in_context`](crate::FutureExt::in_context) (a future: kept across
    /// `.await`). The tool service never starts or finishes the caller's run: leave
    /// [`current_instance`](crate::current_instance)'s `start`/`finish` to the caller.
    pub fn context(&self, client: &Client) -> Context {
        let sampling = if self.sampled() { SampleDecision::Sampled } else { SampleDecision::Unsampled };
        let instance = client.instance_with_sampling(self.instance_id(), sampling);
        Context::new(Some(client.clone()), Some(instance), self.parent_span_id())
            .with_trace_state(self.trace_state.clone())
    }

    /// [`context`](RemoteContext::context) with the installed client (`init`), or the
    /// client of a test [`Capture`](crate::testing::Capture) running on this thread; `None`
    /// without either.
    pub fn installed_context(&self) -> Option<Context> {
        if let Some(client) = prefactor_runtime::global_client() {
            return Some(self.context(client));
        }
        prefactor_runtime::capturing_client().map(|client| self.context(&client))
    }
}
