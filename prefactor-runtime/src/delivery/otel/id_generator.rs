//! `OtelIdGenerator`: the OTel SDK's id generator that gives the mirror's spans the ids derived
//! from their Prefactor ids (`prefactor_protocol::otel_trace_id` and friends) and every other
//! span random ones.
//!
//! Why derived ids: a span's OTel id must be known in the agent's process when it calls a
//! tool service (the `traceparent` it sends), long before the worker exports the span, and in
//! the tool service's process, which never sees the caller's span at all. Derived from the
//! Prefactor ids both already share, every process computes the same ids on its own. The SDK
//! (0.33) takes ids only from its provider's generator, not from the span builder, hence this
//! generator: the mirror pins the ids on its thread just around building a span.

use std::cell::Cell;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

thread_local! {
    /// The ids the next span built on this thread gets (set by [`build_pinned`] only).
    static PINNED: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// The id generator of the OTel export's own tracer provider. A provider passed with
/// [`OtelExport::with_provider`](crate::OtelExport::with_provider) needs it too for traces
/// to join across processes (propagation, `docs/propagation.md`): without it the export
/// still works, but a tool service's spans name parent ids the caller's spans do not have.
/// Spans of the application's own tracers get random ids, exactly as with the SDK's default.
///
/// ```
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use prefactor_runtime::{OtelExport, OtelIdGenerator};
///
/// let provider = SdkTracerProvider::builder().with_id_generator(OtelIdGenerator::default()).build();
/// let export = OtelExport::with_provider(provider);
/// # let _ = export;
/// ```
#[derive(Debug, Default)]
pub struct OtelIdGenerator {
    random: RandomIdGenerator,
}

impl IdGenerator for OtelIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        PINNED.with(Cell::get).map_or_else(|| self.random.new_trace_id(), |(trace, _)| trace)
    }

    fn new_span_id(&self) -> SpanId {
        PINNED.with(Cell::get).map_or_else(|| self.random.new_span_id(), |(_, span)| span)
    }
}

/// Runs `build` (which builds one span) with `trace` and `span` as the ids the generator
/// hands out on this thread.
pub(crate) fn build_pinned<T>(trace: TraceId, span: SpanId, build: impl FnOnce() -> T) -> T {
    struct Unpin;
    impl Drop for Unpin {
        fn drop(&mut self) {
            PINNED.with(|pinned| pinned.set(None));
        }
    }
    PINNED.with(|pinned| pinned.set(Some((trace, span))));
    let _unpin = Unpin;
    build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_ids_only_inside_the_build() {
        let generator = OtelIdGenerator::default();
        let (trace, span) = (TraceId::from_bytes([7; 16]), SpanId::from_bytes([8; 8]));
        let inside = build_pinned(trace, span, || (generator.new_trace_id(), generator.new_span_id()));
        assert_eq!(inside, (trace, span));
        assert_ne!(generator.new_span_id(), span, "random again after");
        assert_ne!(generator.new_trace_id(), TraceId::INVALID);
    }
}
