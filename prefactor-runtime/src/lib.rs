//! The Prefactor client runtime: typed spans of AI agents, shipped to the Prefactor API
//! without ever blocking the agent.
//!
//! * [`Client`] owns one bounded queue and one worker thread (with its own small tokio
//!   runtime). Creating an instance, opening and closing spans only put an operation in the
//!   queue, never waiting; when `queue_capacity` operations are pending (queued, held by the
//!   worker or in flight) the new one is dropped and counted in [`Client::stats`]. Only
//!   `flush`, `close`, `shutdown` and `check_connection` wait; `initialize` returns at once,
//!   whatever the network does (the token is checked in the background).
//! * Ids are PFIDs generated on the client ([`SpanId`], [`InstanceId`]), so a span's id is
//!   known at once and the first span of an instance needs no round trip.
//! * The worker keeps each instance's order (register, then everything else; a span's create
//!   before its finish and before its children; the instance finish last), sends independent
//!   work concurrently, and merges a span's create and finish into one create-as-terminal
//!   request when both are waiting.
//! * Transient failures (429, 5xx, network) are retried with exponential backoff and jitter,
//!   honouring `Retry-After`, with the same idempotency key every time. A 401/403 stops all
//!   sending (reported by `close`); any other permanent error fails only that operation.
//! * Parents are found from the current [`Context`]: entered with [`SpanGuard::enter`] in
//!   synchronous code, carried by [`FutureExt::in_context`] / [`StreamExt::in_context`] in
//!   async code, and into other tasks and threads by [`spawn`], [`spawn_blocking`],
//!   [`thread::spawn`] and [`Context::in_scope`]. A `#[span]` opened outside any run is
//!   counted in [`Stats::unattached`] and reported by `close`.
//! * Termination: the `control` signal of span responses and a periodic poll set
//!   [`AgentInstanceHandle::is_terminated`] and wake [`AgentInstanceHandle::terminated`].
//!
//! Deviations from the shared API contract, on purpose:
//! * `close`/`shutdown` return `Err(Error::TelemetryLost(report))` when anything was lost
//!   (instead of `Ok` with a non-empty report), so `?` cannot hide lost telemetry.
//! * `span(name).start()` starts the span at once (its create is queued);
//!   `span(name).deferred()` makes a guard that is sent on `start`, when used as a context, or
//!   at its end. `set_payload` only affects a span not yet started.
//! * Keyword arguments are builders: [`SpanBuilder`] (parent, payload, start time),
//!   [`FinishSpan`] (status, result, end time), [`CreateInstance`], [`SpanType`],
//!   [`QualityType`]. `create_span`/`finish_span` live on the instance handle
//!   ([`SpanBuilder::create`], [`AgentInstanceHandle::finish_span`]), which knows the instance,
//!   so the client keeps no map of open spans. `finish_span` takes any status.
//! * Termination callbacks ([`AgentInstanceHandle::on_terminated`]) get the reason, run once
//!   even when registered after the signal, and a panicking one is logged, not propagated.
//! * Extra items: `Context::with_current`, `SpanGuard::noop`, `Client::instance`,
//!   `Config::close_timeout`, `ConfigBuilder::from_env_with`, `InitGuard::close`.
//!
//! ```no_run
//! use std::time::Duration;
//! use prefactor_runtime::{Client, Config, CreateInstance, FinishStatus, Payload};
//!
//! # async fn run() -> Result<(), prefactor_runtime::Error> {
//! let client = Client::new(Config::builder().api_url("http://127.0.0.1:8080").api_token("token").build()?)?;
//! client.initialize().await?;
//! let instance = client.create_agent_instance(CreateInstance::default())?;
//! instance.start();
//! let span = instance.span("agent:llm").payload(Payload::from_serialize(&serde_json::json!({"model": "m"}))?).start();
//! span.complete();
//! instance.finish(FinishStatus::Complete);
//! client.flush(Duration::from_secs(5)).await?;
//! client.close().await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

// The way a span travels, one folder per stage; each imports only the stages after it (and the
// data types below them): capture -> queue -> delivery -> report.
mod capture;
mod delivery;
mod queue;
mod report;
// What travels: the parts of a span, and the schemas of its types. Configuration.
mod config;
// Support.
mod lock;
mod record;
mod schema;

pub use capture::client::global::{
    DEFAULT_DROP_TIMEOUT, InitGuard, Terminated, check_terminated, current_instance, init, init_blocking, terminated,
};
pub use capture::client::instance_manager::InstanceManager;
pub use capture::client::{AgentVersion, Client, CreateInstance};
pub use capture::context::{Context, ContextGuard};
pub use capture::finish_span::FinishSpan;
pub use capture::instance::{AgentInstanceHandle, TerminationSubscription};
pub use capture::instrument::{FutureExt, Instrumented, StreamExt, spawn, spawn_blocking};
pub use capture::span_builder::SpanBuilder;
pub use capture::span_guard::SpanGuard;
pub use capture::span_stream::{SpanStream, stream, try_stream};
pub use capture::thread;
pub use config::delivery::Delivery;
#[cfg(feature = "otel")]
pub use config::otel::{ContentCapture, GenAiOperation, OtelExport, SemconvStability};
pub use config::sampling::{HoldBudget, SampleOverflow};
pub use config::{
    Config, ConfigBuilder, MAX_BULK_ITEMS, MAX_LINGER, MAX_PAYLOAD_BYTES, MIN_PAYLOAD_BYTES, RUNTIME, SDK_HEADER_ENTRY,
};
#[cfg(feature = "otel")]
pub use delivery::otel::id_generator::OtelIdGenerator;
pub use prefactor_protocol::{
    AgentSchemaVersion, AgentStatus, FinishStatus, InstancePurpose, Pfid, RuntimeEnvironment,
};
pub use record::ids::{InstanceId, SpanId};
pub use record::payload::Payload;
pub use record::redaction::{PathStep, Redaction};
pub use record::sample_decision::SampleDecision;
pub use record::secret::{REDACTED, Secret};
pub use record::sensitive::Sensitive;
pub use report::close_report::CloseReport;
pub use report::error::Error;
pub use report::stats::Stats;
pub use schema::data_risk::{ActionProfile, Classification, DataCategories, DataRisk, Inclusion, Permission};
pub use schema::registry::SchemaRegistry;
pub use schema::span_type::{QualityType, SpanType};

/// Streaming spans: the types of a [`SpanStream`], a span open as
/// long as a stream (made by [`stream`], [`try_stream`] and `#[prefactor::span]` on a
/// function returning `impl Stream`).
pub mod streaming {
    pub use crate::capture::span_stream::{Fold, ItemPolicy, Items, KeepNothing, Reduce, SpanStream, TryItems};
}

/// Testing your instrumentation: run code under a [`Capture`](testing::Capture) (no server)
/// and assert on the runs and spans it would have sent, or snapshot them as text trees.
pub mod testing {
    pub use crate::capture::testing::Capture;
    pub use crate::report::captured_run::{CapturedRun, CapturedSpan};
    pub use crate::report::trace_tree::TreeOptions;
}

// Support for the `prefactor` crate's macros (reached through `prefactor::__private`), not a
// public API.
#[doc(hidden)]
pub use capture::client::global::global_client;
#[doc(hidden)]
pub use capture::client::{record_sampled_out_span, record_unattached_span};
#[doc(hidden)]
pub use capture::instrument::{EnteredInPlace, enter_in_place};
#[doc(hidden)]
pub use capture::span_site::SpanSite;
#[doc(hidden)]
pub use capture::span_stream::start_in_current_run;
#[doc(hidden)]
pub use capture::testing::capturing_client;
#[doc(hidden)]
pub use delivery::payload_policy::apply_to_payload;
#[doc(hidden)]
pub use inventory;
#[doc(hidden)]
pub use record::payload::error_payload;
#[doc(hidden)]
pub use schema::static_schema::StaticSpanType;
