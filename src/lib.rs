//! Observe and control AI agents with [Prefactor](https://prefactorai.com): annotate functions,
//! get typed, schema-checked spans shipped to the Prefactor API without blocking your agent.
//!
//! * [`macro@agent`] runs a function as an *agent instance* (registered, started, finished as
//!   `complete`, `failed` or `cancelled`).
//! * [`macro@span`] records a call as a *span* of the current instance: the arguments become
//!   the payload, the return value the result payload, and `Err`/panic/drop the status.
//! * [`macro@Payload`] gives a type a documented JSON schema.
//!
//! Every span's schemas are derived from the Rust types at compile time and registered with the
//! client when it starts, so the platform validates what your agent sends.
//!
//! ```no_run
//! use prefactor::{Config, agent, span};
//!
//! #[span(schema = "agent:llm", title = "LLM call", template = "{{ prompt }}")]
//! fn complete(prompt: &str, temperature: f32) -> String {
//!     format!("echo: {prompt} at {temperature}")
//! }
//!
//! #[agent(name = "echo-bot")]
//! fn run(question: &str) -> String {
//!     complete(question, 0.2)
//! }
//!
//! fn main() -> Result<(), prefactor::Error> {
//!     let config = Config::from_env()?.build()?;
//!     // Returns at once, API up or down; flushes and closes on drop.
//!     let _guard = prefactor::init_blocking(config)?;
//!     println!("{}", run("hello"));
//!     Ok(())
//! }
//! ```
//!
//! Without an installed client, annotated functions simply run (two atomic loads of extra
//! work: the installed client, and whether a test capture is alive) and a single warning is
//! logged.

//!
//! # Where things are
//!
//! * Starting: [`init`] (async) or [`init_blocking`] with a [`Config`] returns the
//!   [`InitGuard`] that flushes and closes the client when dropped.
//! * Inside a run: [`current_instance`], [`check_terminated`], [`terminated`], and
//!   [`AgentInstanceHandle::on_terminated`] for the platform's stop signal.
//! * Streams: `#[span]` on a function returning a stream keeps the span open until the stream
//!   ends ([`SpanStream`]); [`stream`] and [`try_stream`] do it for streams made elsewhere.
//! * Testing your instrumentation without a server: [`testing`].
//! * Keeping the run's context across tasks and threads: [`spawn`], [`spawn_blocking`],
//!   [`thread::spawn`], [`FutureExt`], [`StreamExt`], [`Context`].
//! * The explicit API (no macros): [`Client`], [`CreateInstance`], [`AgentInstanceHandle`],
//!   [`SpanBuilder`], [`SpanGuard`], [`FinishSpan`], [`Payload`](struct@Payload), [`SchemaRegistry`] with
//!   [`SpanType`] / [`QualityType`] / [`DataRisk`].
//! * Keeping secrets out: [`Secret`], [`Sensitive`], `#[span(redact(...))]`, [`Redaction`],
//!   and the default scrubbing and size limit of [`ConfigBuilder::scrub_secrets`] and
//!   [`ConfigBuilder::max_payload_bytes`].
//! * LLM calls: [`llm`] has the request, response, usage and cost types of `agent:llm` spans,
//!   and the price table costs are computed from; `llm::async_openai` (feature
//!   `async-openai`) records async-openai's chat completions with them, `llm::genai` (feature
//!   `genai`) genai's chats with any of its providers.
//! * Outcomes: [`Error`], [`Stats`], [`CloseReport`].
//! * `tracing` both ways (feature `tracing-bridge`): `tracing_bridge::PrefactorLayer` records
//!   `#[instrument]` spans inside runs, `tracing_bridge::PrefactorIds` puts Prefactor ids in
//!   log lines.
//! * Across processes (feature `propagation`): `propagation::inject` / `propagation::extract`
//!   carry a run in HTTP headers (`traceparent` and `prefactor-context`) so a tool service's
//!   spans join the calling agent's run; `propagation::RequestBuilderExt` (reqwest) and
//!   `propagation::PropagationLayer` (axum/tower) do it for you.
//!
//! # Schemas of your own types
//!
//! `#[derive(Payload)]` is all a payload type needs; you do not depend on `schemars`. To
//! write a type's schema by hand instead, add `schemars = "1"` to your dependencies and
//! implement `schemars::JsonSchema` for it: `#[span]` uses that implementation for arguments
//! and return values of that type.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

// `#[derive(Payload)]` names this crate `::prefactor`, also inside it (the `llm` types).
extern crate self as prefactor;

pub use prefactor_macros::{Payload, agent, span};

/// The JSON Schema of a payload type (one with `#[derive(Payload)]`, or a hand-written
/// `schemars::JsonSchema`), made as `#[span]` makes the schemas of arguments and results:
/// JSON Schema 2020-12, subschemas inlined, no `additionalProperties: false`. Use it to
/// register a quality schema, or a span type of the explicit API, from a Rust type.
///
/// ```
/// /// A survey answer.
/// #[derive(serde::Serialize, prefactor::Payload)]
/// struct Satisfaction {
///     score: u8,
/// }
///
/// let schema = prefactor::schema_for::<Satisfaction>();
/// assert_eq!(schema["title"], "A survey answer.");
/// assert_eq!(schema["properties"]["score"]["type"], "integer");
/// let quality = prefactor::QualityType::new("csat", schema);
/// # let _ = quality;
/// ```
#[must_use]
pub fn schema_for<T: ?Sized + schemars::JsonSchema>() -> serde_json::Value {
    __private::schema_of::<T>()
}
pub use prefactor_runtime::{
    ActionProfile, AgentInstanceHandle, AgentSchemaVersion, AgentStatus, AgentVersion, Classification, Client,
    CloseReport, Config, ConfigBuilder, Context, ContextGuard, CreateInstance, DEFAULT_DROP_TIMEOUT, DataCategories,
    DataRisk, Delivery, Error, FinishSpan, FinishStatus, FutureExt, HoldBudget, Inclusion, InitGuard, InstanceId,
    InstanceManager, InstancePurpose, Instrumented, MAX_BULK_ITEMS, MAX_LINGER, MAX_PAYLOAD_BYTES, MIN_PAYLOAD_BYTES,
    Payload, Permission, Pfid, QualityType, REDACTED, RUNTIME, Redaction, RuntimeEnvironment, SDK_HEADER_ENTRY,
    SampleDecision, SampleOverflow, SchemaRegistry, Secret, Sensitive, SpanBuilder, SpanGuard, SpanId, SpanStream,
    SpanType, Stats, StreamExt, Terminated, TerminationSubscription, check_terminated, current_instance, init,
    init_blocking, spawn, spawn_blocking, stream, streaming, terminated, thread, try_stream,
};

/// Testing your instrumentation the way Logfire's `capfire` does: run code under a
/// [`Capture`](testing::Capture) (a client that records instead of sending: no server, no
/// thread) and get back the runs and spans it would have sent, as typed values to assert on
/// or as a stable text tree for snapshot tests.
///
/// ```
/// use prefactor::testing::Capture;
/// use prefactor::{AgentStatus, agent, span};
///
/// #[span(schema = "agent:tool")]
/// fn lookup(city: &str) -> Result<u32, String> {
///     if city == "Atlantis" { Err(format!("no such city: {city}")) } else { Ok(21) }
/// }
///
/// #[agent(name = "weather")]
/// fn forecast(city: &str) -> Result<u32, String> {
///     lookup(city)
/// }
///
/// let capture = Capture::new()?;
/// let _ = capture.run(|| forecast("Atlantis"));
///
/// let run = capture.last_run_of("weather").expect("the run was recorded");
/// assert_eq!(run.status, AgentStatus::Failed);
/// let tool = run.span("agent:tool").expect("the tool span");
/// assert_eq!(tool.payload["city"], "Atlantis");
/// assert_eq!(tool.result_at("/error/message").and_then(|m| m.as_str()), Some("no such city: Atlantis"));
/// assert_eq!(
///     run.tree(),
///     "run weather [failed]\n\
///      └─ agent:tool [failed] {\"city\":\"Atlantis\"} -> {\"error\":{\"message\":\"no such city: Atlantis\",\"type\":\"alloc::string::String\"}}\n"
/// );
/// # Ok::<(), prefactor::Error>(())
/// ```
///
/// With [`insta`](https://docs.rs/insta): `insta::assert_snapshot!(run.tree())`.
pub mod testing {
    pub use prefactor_runtime::testing::{Capture, CapturedRun, CapturedSpan, TreeOptions};
}

/// The OpenTelemetry export (feature `otel`): see [`OtelExport`] and `docs/otel.md`.
#[cfg(feature = "otel")]
pub use prefactor_runtime::{ContentCapture, GenAiOperation, OtelExport, OtelIdGenerator, SemconvStability};

pub mod llm;

#[cfg(feature = "tracing-bridge")]
pub mod tracing_bridge;

#[cfg(feature = "propagation")]
pub mod propagation;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
