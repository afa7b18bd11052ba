//! On the agent's threads: the client and instance handles, span guards and builders, the
//! current context and how it follows tasks and threads. Everything here only builds
//! operations and puts them in the queue; it never waits for the network.

pub(crate) mod client;
pub(crate) mod context;
pub(crate) mod finish_span;
pub(crate) mod instance;
pub(crate) mod instrument;
pub(crate) mod span_builder;
pub(crate) mod span_guard;
pub(crate) mod span_site;
pub(crate) mod span_stream;
pub(crate) mod testing;
pub mod thread;
