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
//! * `span(...)` starts the span at once (its create is queued); `span_deferred(...)` makes a
//!   guard that is sent on `start`, when used as a context, or at its end. `set_payload` only
//!   affects a span not yet started.
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
//! let span = instance.span("agent:llm", None, Some(Payload::from_serialize(&serde_json::json!({"model": "m"}))?));
//! span.complete(None);
//! instance.finish(FinishStatus::Complete);
//! client.flush(Duration::from_secs(5)).await?;
//! client.close().await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod blocking;
mod bulk_batch;
mod bulk_outcome;
mod client;
mod close_report;
mod config;
mod context;
mod delivery;
mod error;
mod flush_epochs;
mod global;
mod ids;
mod instance;
mod instance_manager;
mod instrument;
mod op_queue;
mod operation;
mod payload;
mod payload_arena;
mod requests;
mod retry;
mod scheduler;
mod schema_document;
mod schema_name;
mod schema_registry;
mod span_guard;
mod spool;
mod static_schema;
mod stats;
mod termination;
pub mod thread;
mod thread_lease;
mod ticket_queue;
mod timestamp;
mod token_check;
mod transport;
mod unattached;
mod worker;

pub use client::{AgentVersion, Client, CreateInstance};
pub use close_report::CloseReport;
pub use config::{Config, ConfigBuilder, MAX_BULK_ITEMS, MAX_LINGER, SDK_HEADER_ENTRY};
pub use context::{Context, ContextGuard};
pub use delivery::Delivery;
pub use error::Error;
pub use global::{
    DEFAULT_DROP_TIMEOUT, InitGuard, Terminated, check_terminated, current_instance, global_client, init,
    init_blocking, install, set_global_client, terminated,
};
pub use ids::{InstanceId, SpanId};
pub use instance::AgentInstanceHandle;
pub use instance_manager::InstanceManager;
pub use instrument::{EnteredInPlace, FutureExt, Instrumented, StreamExt, enter_in_place, spawn, spawn_blocking};
pub use payload::Payload;
pub use prefactor_protocol::{AgentSchemaVersion, AgentStatus, FinishStatus, InstancePurpose, Pfid};
pub use schema_registry::SchemaRegistry;
pub use span_guard::SpanGuard;
pub use static_schema::StaticSpanType;
pub use stats::Stats;

#[doc(hidden)]
pub use inventory;
