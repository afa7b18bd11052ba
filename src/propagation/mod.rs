//! Trace context across processes (feature `propagation`): an agent's call to a tool service
//! carries its run and span in HTTP headers, and the tool service's spans join that run, as
//! children of the caller's span (`docs/propagation.md`).
//!
//! * Calling: [`inject`] writes the current run's context into a [`http::HeaderMap`];
//!   with `propagation-reqwest`, `RequestBuilderExt::with_prefactor_context` does it on a
//!   `reqwest::RequestBuilder`.
//! * Serving: [`extract`] reads it back as a [`RemoteContext`], whose
//!   [`context`](RemoteContext::context) is entered around the handler; with
//!   `propagation-tower`, `PropagationLayer` does it for an axum or tower service.
//!
//! Three headers travel: `prefactor-context` (`00-{instance}-{span}-{flags}`: the run and
//! the caller's span, as PFIDs, and whether sampling sends the run), the W3C `traceparent` of
//! the same call (its trace and span ids derived from those PFIDs, exactly the ids the
//! OpenTelemetry export gives the run and span), and the caller's `tracestate`, passed on
//! unchanged. A malformed header is ignored with a debug log, never a panic.
//!
//! ```
//! use prefactor::propagation::{extract, inject};
//! use prefactor::testing::Capture;
//!
//! #[prefactor::span(schema = "propagation:call", skip_ret)]
//! fn call_tool() -> http::HeaderMap {
//!     let mut headers = http::HeaderMap::new();
//!     inject(&mut headers); // what an HTTP client sends along
//!     headers
//! }
//!
//! #[prefactor::agent(name = "caller")]
//! fn run() -> http::HeaderMap {
//!     call_tool()
//! }
//!
//! let capture = Capture::new()?;
//! let headers = capture.run(run);
//! let sent = capture.last_run_of("caller").expect("the run");
//!
//! // In the tool service: the run and the parent span it joins.
//! let remote = extract(&headers).expect("a Prefactor context");
//! assert_eq!(remote.instance_id(), sent.id);
//! assert_eq!(remote.parent_span_id(), sent.span("propagation:call").map(|span| span.id));
//! assert!(headers.contains_key("traceparent"));
//! # Ok::<(), prefactor::Error>(())
//! ```

mod extract;
mod inject;
mod remote_context;
#[cfg(feature = "propagation-reqwest")]
mod reqwest_ext;
#[cfg(feature = "propagation-tower")]
mod tower_layer;

pub use extract::{extract, extract_with};
pub use inject::{inject, inject_with};
pub use prefactor_protocol::{PREFACTOR_CONTEXT, TRACEPARENT, TRACESTATE};
pub use remote_context::RemoteContext;
#[cfg(feature = "propagation-reqwest")]
pub use reqwest_ext::RequestBuilderExt;
#[cfg(feature = "propagation-tower")]
pub use tower_layer::{PropagationFuture, PropagationLayer, PropagationService};
