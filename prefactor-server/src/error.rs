//! Errors: [`ApiError`] is what an HTTP request answers with (always a JSON error envelope);
//! [`ServerError`] is what starting or driving the server from Rust can fail with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An HTTP error answer: `{"status":"error","code":..,"message":..,"errors"?:..}`.
///
/// ```
/// use prefactor_server::ApiError;
/// let error = ApiError::validation("payload/model", "is not a string");
/// assert_eq!(error.status, 422);
/// assert_eq!(error.code, "validation_error");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Machine-readable error code (`not_found`, `validation_error`, ...).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Field path -> list of messages, for 400/422 answers. Boxed: with serde_json's
    /// `preserve_order` (which a dependency such as genai may turn on) a map is several times
    /// larger, and every `Result<_, ApiError>` would carry it.
    pub errors: Option<Box<Map<String, Value>>>,
}

impl ApiError {
    /// An error with a status, code and message and no field errors.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.to_string(), message: message.into(), errors: None }
    }

    /// 400 `invalid_json`: the body is not syntactically valid JSON.
    pub fn bad_json(message: impl Into<String>) -> Self {
        ApiError::new(400, "invalid_json", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(401, "unauthorized", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(409, "conflict", message)
    }

    /// 409 `invalid_action` (e.g. finishing a span twice).
    pub fn invalid_action(message: impl Into<String>) -> Self {
        ApiError::new(409, "invalid_action", message)
    }

    /// 422 `validation_error` with one message for one field path.
    pub fn validation(path: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::validation_map(format!("{path}: {message}"), vec![(path.to_string(), message)])
    }

    /// 422 `validation_error` with several (path, message) pairs; messages for the same path
    /// are collected into one array.
    pub fn validation_map(summary: impl Into<String>, items: Vec<(String, String)>) -> Self {
        let mut errors = Map::new();
        for (path, message) in items {
            let entry = errors.entry(path).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.push(Value::String(message));
            }
        }
        ApiError {
            status: 422,
            code: "validation_error".to_string(),
            message: summary.into(),
            errors: Some(Box::new(errors)),
        }
    }

    /// 500 `internal_error`; the detail is logged, not sent, because it may contain internals.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        ApiError::new(500, "internal_error", "internal server error")
    }

    /// The JSON error envelope.
    pub fn to_json(&self) -> Value {
        let mut body = json!({"status": "error", "code": self.code, "message": self.message});
        if let Some(errors) = &self.errors {
            body["errors"] = Value::Object((**errors).clone());
        }
        body
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(error: rusqlite::Error) -> Self {
        ApiError::internal(format!("database: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, self.to_json().to_string())
    }
}

/// A response with a JSON body that is already serialized.
pub fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Failure to start, drive or stop a [`crate::LocalServer`].
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was requested.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database could not be opened, migrated or written.
    #[error("database error: {0}")]
    Database(String),
    /// The temporary directory or the tokio runtime could not be created.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The server thread stopped before it was ready, or has already stopped.
    #[error("server is not running: {0}")]
    NotRunning(String),
    /// An operation on the running server was rejected (e.g. unknown instance id).
    #[error("request rejected: {0}")]
    Rejected(ApiError),
}

impl From<rusqlite::Error> for ServerError {
    fn from(error: rusqlite::Error) -> Self {
        ServerError::Database(error.to_string())
    }
}
