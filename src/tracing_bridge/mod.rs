//! The `tracing` bridge (feature `tracing-bridge`), both ways.
//!
//! * [`PrefactorLayer`]: a [`tracing_subscriber::Layer`] that records the `tracing` spans opened
//!   inside an agent run (`#[instrument]` in your code, in reqwest middleware, in rig...) as
//!   Prefactor spans of that run, nested where they ran. Spans outside any run are left alone.
//! * [`PrefactorIds`]: an event formatter for [`tracing_subscriber::fmt`](mod@tracing_subscriber::fmt) that starts each log
//!   line written inside a run with the run's instance id and the current Prefactor span id, so
//!   logs and traces join.
//!
//! ```no_run
//! use prefactor::tracing_bridge::{PrefactorIds, PrefactorLayer};
//! use tracing_subscriber::prelude::*;
//!
//! tracing_subscriber::registry()
//!     .with(PrefactorLayer::new().map_target("my_agent::llm", "agent:llm"))
//!     .with(tracing_subscriber::fmt::layer().event_format(PrefactorIds::new(tracing_subscriber::fmt::format())))
//!     .init();
//! ```
//!
//! See `docs/tracing-bridge.md` for the payload shapes, the default span type and the costs.

mod field_values;
mod ids_format;
mod layer;
mod schema_map;
mod span_type;

pub use ids_format::PrefactorIds;
pub use layer::PrefactorLayer;
pub use span_type::TRACING_SPAN_TYPE;
