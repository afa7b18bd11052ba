//! `SpanSite`: where a `#[prefactor::span]` call's span attaches, read once from the thread's
//! context (support for the macros, reached through `prefactor::__private`; not a public API).

use crate::capture::client::Client;
use crate::capture::context::Context;
use crate::capture::span_guard::{Holder, Opening, Site, SpanGuard};
use crate::record::payload::Payload;
use crate::record::sample_decision::SampleDecision;
use crate::record::schema_name::SchemaName;

/// The current context's instance, its client, its sampling decision and the current span (the
/// new span's parent), taken in one borrow of the thread's context, before the call's payload
/// is serialized.
///
/// ```
/// use prefactor_runtime::SpanSite;
///
/// // Outside any agent run there is nowhere to attach a span.
/// assert!(SpanSite::current(None).is_none());
/// ```
pub struct SpanSite {
    site: Site,
    sampling: SampleDecision,
}

impl SpanSite {
    /// The current context's site; `None` outside an agent instance. The span is queued to the
    /// instance's client, held without a reference count when it is `installed` (the
    /// process-wide client, which lives as long as the process).
    #[inline]
    pub fn current(installed: Option<&'static Client>) -> Option<SpanSite> {
        Context::with_current(|cx| {
            let instance = cx.instance()?;
            let client = match installed {
                Some(installed) if installed.same_as(instance.client()) => Holder::Global(installed),
                _ => Holder::Owned(instance.client().clone()),
            };
            // The current span is the parent: it belongs to this same context's instance.
            let site = Site { client, instance: instance.id(), parent: cx.span_id() };
            Some(SpanSite { site, sampling: instance.sampling() })
        })
    }

    /// Whether nothing of this run is sent (unsampled, no tail rule): the caller then
    /// serializes nothing and opens no span.
    #[inline]
    pub fn is_unsampled(&self) -> bool {
        self.sampling == SampleDecision::Unsampled
    }

    /// Opens a span of type `schema` here, started now (its create is queued at once), as
    /// [`SpanBuilder::start`](crate::SpanBuilder::start) does.
    #[inline]
    pub fn open(self, schema: &'static str, payload: Payload) -> SpanGuard {
        let opening = if self.is_unsampled() { Opening::SampledOut } else { Opening::Start };
        SpanGuard::open_at(self.site, SchemaName::from_static(schema), Some(payload), None, opening)
    }
}
