//! The worker thread: takes operations from the queue, orders and batches them, sends them
//! over HTTP with retries, spools them to disk, checks the token and polls termination.

pub(crate) mod bulk_batch;
pub(crate) mod bulk_outcome;
pub(crate) mod flush_epochs;
pub(crate) mod instance_state;
#[cfg(feature = "otel")]
pub(crate) mod otel;
pub(crate) mod payload_policy;
pub(crate) mod recorder;
pub(crate) mod requests;
pub(crate) mod retry;
pub(crate) mod scheduler;
pub(crate) mod shared;
pub(crate) mod spool;
pub(crate) mod spool_replay;
pub(crate) mod tail_hold;
pub(crate) mod termination;
pub(crate) mod token_check;
pub(crate) mod token_state;
pub(crate) mod transport;
pub(crate) mod worker;
