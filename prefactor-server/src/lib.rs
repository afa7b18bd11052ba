//! A local Prefactor-compatible API server on SQLite, for development, examples and tests.
//!
//! Start it in-process with [`LocalServer::start`] (own thread, own tokio runtime, ephemeral
//! port, temporary database by default), or run the `prefactor-server` binary.
//!
//! ```
//! use prefactor_server::{LocalServer, ServerConfig};
//! let server = LocalServer::start(ServerConfig::default())?;
//! let url = format!("{}/api/v1/ping", server.base_url());
//! assert!(url.starts_with("http://127.0.0.1:"));
//! # Ok::<(), prefactor_server::ServerError>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod connections;
pub mod db;
pub mod error;
pub mod faults;
pub mod handlers;
pub mod idempotency;
pub mod ids;
pub mod inflight;
pub mod liquid_context;
pub mod otlp;
pub mod page_keys;
pub mod pipeline;
pub mod prefer;
pub mod recorder;
pub mod router;
pub mod server;
pub mod state;
pub mod template;
pub mod timestamps;
pub mod ui;
pub mod validation;

pub use config::{DbLocation, ServerConfig};
pub use error::{ApiError, ServerError};
pub use faults::FaultRule;
pub use recorder::RecordedRequest;
pub use server::LocalServer;
