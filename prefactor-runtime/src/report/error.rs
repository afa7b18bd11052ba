//! The error type of every fallible runtime call.

use crate::report::close_report::CloseReport;

/// Everything that can go wrong in the runtime.
///
/// Telemetry failures never reach the agent's own code paths: they are counted in
/// [`Client::stats`](crate::Client::stats) and reported by [`Client::close`](crate::Client::close).
/// The variants here are returned only by calls that explicitly wait (check_connection, flush, close)
/// or that validate their input (config, schema registry).
///
/// ```
/// use prefactor_runtime::{Config, Error};
///
/// let err = Config::builder().api_url("not a url").api_token("t").build().unwrap_err();
/// assert!(matches!(err, Error::InvalidConfig { field: "api_url", .. }));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing or out of range.
    #[error("invalid configuration for `{field}`: {reason}")]
    InvalidConfig {
        /// The setting (builder method / environment variable suffix) at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `initialize` was called on a client that is already initialized.
    #[error("the client is already initialized")]
    AlreadyInitialized,
    /// The call needs an initialized client.
    #[error("the client is not initialized; call `initialize` first")]
    NotInitialized,
    /// The server rejected the token (401/403). The client stops sending once this happens.
    #[error("authentication failed (HTTP {status}, {code}): {message}")]
    Auth {
        /// HTTP status (401 or 403).
        status: u16,
        /// The server's error code, e.g. `bad_authtoken`.
        code: String,
        /// The server's message.
        message: String,
    },
    /// A request failed permanently, or kept failing after every retry.
    #[error("{operation} failed{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Http {
        /// What was being sent, e.g. `span create`.
        operation: &'static str,
        /// HTTP status, when a response arrived.
        status: Option<u16>,
        /// The server's error code when it sent one.
        code: Option<String>,
        /// The server's message, or the transport error.
        message: String,
    },
    /// Two different schemas were declared for the same span type or quality name.
    #[error("conflicting schemas for `{name}`: declared at {first} and at {second}")]
    SchemaConflict {
        /// The span type or quality schema name.
        name: String,
        /// Where the first declaration came from (`file:line`).
        first: String,
        /// Where the conflicting one came from (`file:line`).
        second: String,
    },
    /// A [`Redaction`](crate::Redaction) path is malformed.
    #[error("invalid redaction path `{path}`: {reason}")]
    InvalidRedactPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model price (of a `prefactor::llm::PriceTable`) is negative, not finite or unnamed.
    #[error("invalid price for model `{model}`: {reason}")]
    InvalidPrice {
        /// The model name of the price entry.
        model: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// A deadline passed before the work finished.
    #[error("the deadline passed before all operations were delivered")]
    Timeout,
    /// A value could not be serialized to JSON.
    #[error("could not serialize to JSON: {0}")]
    Serialize(String),
    /// [`Client::check_connection`](crate::Client::check_connection) waited `waited` and the
    /// API did not answer the token check (refused connections, timeouts, 5xx). Telemetry is
    /// still queued and is sent once the API answers.
    #[error(
        "the Prefactor API did not answer within {waited:?}{}",
        last_error.as_ref().map(|e| format!(" (last attempt: {e})")).unwrap_or_default()
    )]
    ApiUnreachable {
        /// How long the caller waited.
        waited: std::time::Duration,
        /// The last failed attempt, when one finished within the wait.
        last_error: Option<Box<Error>>,
    },
    /// A blocking call could not reach the background worker (it stopped).
    #[error("the background worker is not running")]
    WorkerGone,
    /// `close`/`shutdown` finished but some telemetry was not delivered; the report says what.
    #[error("{0}")]
    TelemetryLost(Box<CloseReport>),
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Serialize(err.to_string())
    }
}
