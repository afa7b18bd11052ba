//! `PrefactorLayer`: `tracing` spans opened inside an agent run, recorded as Prefactor spans.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

use prefactor_runtime::{Context, ContextGuard, Payload, SpanGuard};
use serde_json::{Map, Value, json};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

use crate::tracing_bridge::field_values::FieldValues;
use crate::tracing_bridge::schema_map::{Mapped, SchemaMap};

/// A [`Layer`](tracing_subscriber::Layer) that records every `tracing` span opened inside an
/// agent run as a Prefactor span of that run, so code instrumented with `#[instrument]` shows
/// up without changes.
///
/// * **Span type**: the first [`map_name`](PrefactorLayer::map_name) rule for the span's name,
///   else the [`map_target`](PrefactorLayer::map_target) rule with the longest matching target
///   prefix, else [`TRACING_SPAN_TYPE`](crate::tracing_bridge::TRACING_SPAN_TYPE). Types you
///   map to must be declared like any other span type (a `#[prefactor::span(schema = ...)]`
///   somewhere in the program, or your [`SchemaRegistry`](crate::SchemaRegistry)): the API
///   rejects undeclared ones.
/// * **Payload**: the span's fields when it opened — as is for a mapped type,
///   `{"name", "target", "fields"}` for the default one. Values recorded later
///   (`Span::record`) and the `return` of `#[instrument(ret)]` go to the result payload.
/// * **Parent**: where the span opened: the current Prefactor span (a `#[prefactor::span]`
///   or another bridged span), or the span named by an explicit `parent:`. While a bridged
///   span is entered it is the current Prefactor span, so `#[prefactor::span]` calls inside an
///   `#[instrument]` function nest under it.
/// * **Status**: `failed` when the span has an `error` field or an `ERROR` event with an
///   `error` field happens in it (what `#[instrument(err)]` emits; the message goes to the
///   result as `{"error": {"message": ..., "type": "tracing"}}`, the shape
///   `#[prefactor::span]` records), else `complete` when it closes.
/// * Spans opened outside any agent run are not recorded (and not counted anywhere), nor
///   are spans of the client's own delivery thread, which runs outside runs.
///
/// Only spans are recorded; events are not (they go to your other layers as usual). Filter
/// what is bridged with `tracing_subscriber`'s per-layer filters (`.with_filter(...)`).
///
/// ```
/// use prefactor::testing::Capture;
/// use prefactor::tracing_bridge::PrefactorLayer;
/// use tracing_subscriber::prelude::*;
///
/// #[tracing::instrument]
/// fn lookup(city: &str) -> u32 {
///     21
/// }
///
/// #[prefactor::agent(name = "weather")]
/// fn forecast(city: &str) -> u32 {
///     lookup(city)
/// }
///
/// let subscriber = tracing_subscriber::registry().with(PrefactorLayer::new());
/// let capture = Capture::new()?;
/// tracing::subscriber::with_default(subscriber, || capture.run(|| forecast("Lisbon")));
///
/// let run = capture.last_run_of("weather").expect("the run was recorded");
/// let span = run.span("tracing:span").expect("the #[instrument] span");
/// assert_eq!(span.payload["name"], "lookup");
/// assert_eq!(span.payload["fields"]["city"], "Lisbon");
/// # Ok::<(), prefactor::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct PrefactorLayer {
    schemas: SchemaMap,
}

impl PrefactorLayer {
    /// A layer recording every bridged span as
    /// [`TRACING_SPAN_TYPE`](crate::tracing_bridge::TRACING_SPAN_TYPE).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records spans named `name` (the function's name for `#[instrument]`) as span type
    /// `schema`, with their fields as the payload. A later rule for the same name replaces it.
    ///
    /// ```
    /// let layer = prefactor::tracing_bridge::PrefactorLayer::new().map_name("search", "agent:tool");
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn map_name(mut self, name: impl Into<String>, schema: impl Into<String>) -> Self {
        self.schemas.add_name(name.into(), schema.into());
        self
    }

    /// Records spans whose target is `prefix` or a module under it (`my_app::llm` covers
    /// `my_app::llm::openai`, not `my_app::llmx`) as span type `schema`, with their fields as
    /// the payload. The longest matching prefix wins.
    ///
    /// ```
    /// let layer = prefactor::tracing_bridge::PrefactorLayer::new().map_target("my_app::llm", "agent:llm");
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn map_target(mut self, prefix: impl Into<String>, schema: impl Into<String>) -> Self {
        self.schemas.add_target(prefix.into(), schema.into());
        self
    }
}

/// What the layer keeps in a bridged span's extensions. Shared through an `Arc` so that no
/// extensions lock is held while the runtime runs (it may log, and logging reaches this
/// layer's `on_event`, which reads the extensions).
struct Bridged {
    /// The Prefactor context with this span as the current span: entered with the span.
    context: Context,
    /// Ends the Prefactor span when the `tracing` span closes. Locked only in `on_close`.
    guard: Mutex<Option<SpanGuard>>,
    /// Result and failure collected while the span is open. Never locked around runtime calls.
    outcome: Mutex<Outcome>,
}

#[derive(Default)]
struct Outcome {
    result: Map<String, Value>,
    error: Option<String>,
}

thread_local! {
    /// The Prefactor contexts entered with bridged spans on this thread, innermost last.
    static ENTERED: RefCell<Vec<(Id, ContextGuard)>> = const { RefCell::new(Vec::new()) };
}

fn bridged_of<S>(ctx: &LayerContext<'_, S>, id: &Id) -> Option<Arc<Bridged>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.span(id)?.extensions().get::<Arc<Bridged>>().cloned()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An error as the `#[prefactor::span]` macro records it, so that span types declared by the
/// macro accept it. A `tracing` field carries no Rust type: `type` says where it came from.
fn error_result(message: &str) -> Value {
    json!({ "message": message, "type": "tracing" })
}

fn error_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl<S> tracing_subscriber::Layer<S> for PrefactorLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        // Where the span opened: an explicit bridged parent, else the thread's run (if any).
        let explicit = attrs.parent().and_then(|parent| bridged_of(&ctx, parent));
        let parent = match explicit {
            Some(parent) => parent.context.clone(),
            None => match Context::with_current(|cx| cx.instance().is_some().then(|| cx.clone())) {
                Some(cx) => cx,
                None => return,
            },
        };
        let Some(instance) = parent.instance() else { return };

        let mut fields = FieldValues::default();
        attrs.record(&mut fields);
        let fields = fields.0;
        let error = fields.get("error").map(error_text);
        let metadata = attrs.metadata();
        let mapped = self.schemas.lookup(metadata);
        let payload = match mapped {
            Mapped::Rule(_) => Value::Object(fields),
            Mapped::Default => json!({ "name": metadata.name(), "target": metadata.target(), "fields": fields }),
        };
        let mut builder = instance.span(mapped.schema()).payload(Payload::from(payload));
        if let Some(parent_span) = parent.span_id() {
            builder = builder.parent(parent_span);
        }
        let guard = builder.start();
        let bridged = Bridged {
            context: parent.with_span(Some(guard.id())),
            guard: Mutex::new(Some(guard)),
            outcome: Mutex::new(Outcome { result: Map::new(), error }),
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Arc::new(bridged));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(bridged) = bridged_of(&ctx, id) else { return };
        let mut recorded = FieldValues::default();
        values.record(&mut recorded);
        let mut outcome = lock(&bridged.outcome);
        if let Some(error) = recorded.0.remove("error") {
            outcome.error = Some(error_text(&error));
        }
        outcome.result.extend(recorded.0);
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        // Only `#[instrument(err)]` / `#[instrument(ret)]`-shaped events change a span.
        let has = |name: &str| event.metadata().fields().field(name).is_some();
        let is_error = *event.metadata().level() == Level::ERROR && has("error");
        if !is_error && !has("return") {
            return;
        }
        let Some(span) = ctx.event_span(event) else { return };
        let Some(bridged) = span.extensions().get::<Arc<Bridged>>().cloned() else { return };
        let mut values = FieldValues::default();
        event.record(&mut values);
        let mut outcome = lock(&bridged.outcome);
        if let Some(returned) = values.0.remove("return") {
            outcome.result.insert("return".to_owned(), returned);
        }
        if is_error && let Some(error) = values.0.remove("error") {
            outcome.error = Some(error_text(&error));
        }
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(bridged) = bridged_of(&ctx, id) else { return };
        let entered = bridged.context.enter();
        let _ = ENTERED.try_with(|stack| stack.borrow_mut().push((id.clone(), entered)));
    }

    fn on_exit(&self, id: &Id, ctx: LayerContext<'_, S>) {
        if bridged_of(&ctx, id).is_none() {
            return;
        }
        // Exits come innermost first; should one come out of order, the contexts entered after
        // it are exited with it, so the thread never keeps a context of a span it left.
        let exited = ENTERED.try_with(|stack| {
            let mut stack = stack.borrow_mut();
            let position = stack.iter().rposition(|(entered, _)| entered == id)?;
            Some(stack.split_off(position))
        });
        // Dropped outside the borrow, innermost first: each guard restores what it replaced.
        if let Ok(Some(exited)) = exited {
            for (_, guard) in exited.into_iter().rev() {
                drop(guard);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(bridged) = ctx.span(&id).and_then(|span| span.extensions_mut().remove::<Arc<Bridged>>()) else {
            return;
        };
        let Some(mut guard) = lock(&bridged.guard).take() else { return };
        let outcome = std::mem::take(&mut *lock(&bridged.outcome));
        let mut result = outcome.result;
        if let Some(message) = &outcome.error {
            result.insert("error".to_owned(), error_result(message));
        }
        if !result.is_empty() {
            guard.set_result(Payload::from(Value::Object(result)));
        }
        match outcome.error {
            Some(_) => guard.fail(),
            None => guard.complete(),
        }
    }
}
