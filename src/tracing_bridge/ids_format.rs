//! `PrefactorIds`: log lines that name the Prefactor run and span they were written in.

use std::fmt;

use prefactor_runtime::Context;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// An event formatter for [`tracing_subscriber::fmt`](mod@tracing_subscriber::fmt) that starts each line written inside an
/// agent run with `prefactor.instance_id=<id>` and, inside a span, `prefactor.span_id=<id>`,
/// then writes the line as the wrapped formatter does. Lines outside runs are unchanged.
///
/// The ids are those of the code that logs: `#[prefactor::span]`, spans of the explicit API
/// entered as the context, and `tracing` spans bridged by
/// [`PrefactorLayer`](crate::tracing_bridge::PrefactorLayer). It reads a thread-local, so
/// it costs nothing where nothing is logged; it emits no spans, so it never feeds the layer.
/// The ids come first so that the wrapped formatter's output stays untouched; with a JSON
/// formatter the line is then no longer JSON, so wrap only text formats.
///
/// ```
/// use prefactor::tracing_bridge::PrefactorIds;
///
/// let subscriber = tracing_subscriber::fmt()
///     .event_format(PrefactorIds::new(tracing_subscriber::fmt::format().compact()))
///     .finish();
/// # let _ = subscriber;
/// ```
#[derive(Debug, Clone, Default)]
pub struct PrefactorIds<F> {
    inner: F,
}

impl<F> PrefactorIds<F> {
    /// Wraps `inner`, the formatter that writes the rest of each line.
    pub fn new(inner: F) -> Self {
        PrefactorIds { inner }
    }
}

impl<S, N, F> FormatEvent<S, N> for PrefactorIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        Context::with_current(|cx| {
            let Some(instance) = cx.instance() else { return Ok(()) };
            write!(writer, "prefactor.instance_id={} ", instance.id())?;
            match cx.span_id() {
                Some(span) => write!(writer, "prefactor.span_id={span} "),
                None => Ok(()),
            }
        })?;
        self.inner.format_event(ctx, writer, event)
    }
}
