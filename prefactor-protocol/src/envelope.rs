//! Response envelopes (section A2) and the control signal (A12).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::status::SortDirection;

/// `{"status": "success", "details": ...}`, with the optional `control` sibling of span responses.
///
/// ```
/// use prefactor_protocol::SuccessResponse;
/// let body = serde_json::to_value(SuccessResponse::new(serde_json::json!({"id": "x"}))).unwrap();
/// assert_eq!(body, serde_json::json!({"status": "success", "details": {"id": "x"}}));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccessResponse<T> {
    /// Always `"success"`.
    pub status: String,
    /// The resource.
    pub details: T,
    /// Present on span responses once the instance is terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
}

impl<T> SuccessResponse<T> {
    /// A success envelope around `details`.
    pub fn new(details: T) -> Self {
        SuccessResponse { status: "success".to_owned(), details, control: None }
    }

    /// The same envelope carrying a control signal.
    pub fn with_control(mut self, control: Option<Control>) -> Self {
        self.control = control;
        self
    }
}

/// `{"status": "success", "summaries": [...], "pagination": ..., "sorting": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListResponse<T> {
    /// Always `"success"`.
    pub status: String,
    /// The rows of this page.
    pub summaries: Vec<T>,
    /// Paging information; always serialized (null when absent), as the Python SDK requires.
    #[serde(default)]
    pub pagination: Option<Pagination>,
    /// Sorting information; always serialized (null when absent).
    #[serde(default)]
    pub sorting: Option<Sorting>,
}

/// Paging of a list response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pagination {
    /// Total number of items.
    pub item_count: u64,
    /// 1-based index of the first item on this page.
    pub item_start: u64,
    /// 1-based index of the last item on this page.
    pub item_end: u64,
    /// Number of pages.
    pub page_count: u64,
    /// 1-based index of this page.
    pub page_index: u64,
    /// 0-based offset of the first item on this page.
    pub page_offset: u64,
    /// Requested page size.
    pub page_size: u64,
    /// Offset of the next page, null on the last one.
    pub next_page_offset: Option<u64>,
    /// Offset of the previous page, null on the first one.
    pub previous_page_offset: Option<u64>,
}

/// Sorting of a list response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sorting {
    /// Field sorted on.
    pub field: String,
    /// Direction.
    pub direction: SortDirection,
}

/// `{"status": "error", "code": ..., "message": ..., "errors": {...}}`.
///
/// ```
/// use prefactor_protocol::ErrorResponse;
/// let error = ErrorResponse::new("not_found", "Agent instance not found");
/// assert_eq!(serde_json::to_value(&error).unwrap()["code"], "not_found");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Always `"error"`.
    #[serde(default = "error_status")]
    pub status: String,
    /// Machine-readable code (`validation_error`, `not_found`, `invalid_action`, ...).
    #[serde(default = "unknown_code")]
    pub code: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Field errors: path → list of messages (or nested objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Map<String, Value>>,
}

fn error_status() -> String {
    "error".to_owned()
}

fn unknown_code() -> String {
    "unknown".to_owned()
}

impl ErrorResponse {
    /// An error envelope.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorResponse { status: error_status(), code: code.into(), message: message.into(), errors: None }
    }

    /// The same error with field errors.
    pub fn with_errors(mut self, errors: Map<String, Value>) -> Self {
        self.errors = Some(errors);
        self
    }
}

/// The control signal on span responses: the platform asks the agent to stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// Whether the instance was terminated.
    #[serde(default)]
    pub terminate: bool,
    /// Why, when the operator said.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `details` of `GET /api/v1/ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingDetails {
    /// Kind of the presented token (`api`).
    pub token_type: String,
}
