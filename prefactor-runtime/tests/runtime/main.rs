//! Integration tests of the runtime against the local server over real HTTP on 127.0.0.1.
//! One binary (one link step) with one module per area.

mod common;

mod bulk;
mod config;
mod context;
mod deadlines;
mod flush;
mod global;
mod headers;
mod initialize;
mod instances;
mod ordering;
mod queue;
mod redaction;
mod retries;
mod sampling;
mod schema;
mod soak;
mod spans;
mod spool;
mod sync_usage;
mod termination;
mod upstream_fields;
