//! The functions the hot-path benches measure, and the `tracing` layer they are compared
//! under; shared by `peers_hot_path` (criterion, thread CPU) and `hot_path_calls` (a fixed
//! number of calls, for callgrind), so both measure the same code. Each bench includes it with
//! `#[path = "support/hot_path.rs"] mod hot_path;`.
//!
//! The same function (`user_id: u64, query: &str -> usize`) four ways: `#[prefactor::span]`
//! and `#[tracing::instrument(ret)]`, sync and async. The layer keeps the two arguments and the
//! return value in the span's extensions, the work comparable to what `#[prefactor::span]`
//! captures.

use std::hint::black_box;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::LookupSpan;

#[inline(never)]
#[prefactor::span(schema = "bench:lookup")]
pub fn prefactor_lookup(user_id: u64, query: &str) -> usize {
    query.len() + (user_id & 7) as usize
}

#[inline(never)]
#[tracing::instrument(ret)]
pub fn traced_lookup(user_id: u64, query: &str) -> usize {
    query.len() + (user_id & 7) as usize
}

#[inline(never)]
#[prefactor::span(schema = "bench:lookup_async")]
pub async fn prefactor_lookup_async(user_id: u64, query: &str) -> usize {
    query.len() + (user_id & 7) as usize
}

#[inline(never)]
#[tracing::instrument(ret)]
pub async fn traced_lookup_async(user_id: u64, query: &str) -> usize {
    query.len() + (user_id & 7) as usize
}

/// Runs a future that never waits to completion: one poll, no executor.
pub fn poll_once<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the benchmarked body never waits"),
    }
}

/// The fields a span recorded, kept until the span closes (the registry drops extensions then).
#[derive(Default)]
struct KeptFields(Vec<(&'static str, KeptValue)>);

enum KeptValue {
    U64(u64),
    I64(i64),
    Bool(bool),
    Text(String),
}

impl Visit for KeptFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), KeptValue::U64(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), KeptValue::I64(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), KeptValue::Bool(value)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), KeptValue::Text(value.to_owned())));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name(), KeptValue::Text(format!("{value:?}"))));
    }
}

impl KeptFields {
    /// Sum of the kept numbers and text lengths: lets the bench use the values it kept.
    fn weight(&self) -> u64 {
        self.0
            .iter()
            .map(|(_, value)| match value {
                KeptValue::U64(v) => *v,
                KeptValue::I64(v) => v.unsigned_abs(),
                KeptValue::Bool(v) => u64::from(*v),
                KeptValue::Text(v) => v.len() as u64,
            })
            .sum()
    }
}

/// A layer that keeps every span's fields and the events recorded inside it (`ret`).
pub struct KeepFieldsLayer;

impl<S> Layer<S> for KeepFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut fields = KeptFields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<KeptFields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if let Some(span) = ctx.event_span(event)
            && let Some(fields) = span.extensions_mut().get_mut::<KeptFields>()
        {
            event.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(fields) = span.extensions().get::<KeptFields>()
        {
            black_box(fields.weight());
        }
    }
}
