//! `POST /api/v1/bulk` (section A8.10, the Python form): several actions in one request.
//!
//! Each item names its action in `_type`, carries an `idempotency_key` (8–64 characters,
//! unique in the request) that is also the key of its answer in `outputs`, and has the
//! action's normal request body at the top level, plus the id of the resource it acts on
//! (`agent_instance_id` for instance actions, `agent_span_id` for span finish, `agent_id` for
//! `agents/show`). Items run in order; processing stops at the first item that fails, whose
//! error is its output; later items have no output.
//!
//! ```
//! use prefactor_protocol::{BulkAction, BulkItem, BulkRequest, BulkResponse, FinishSpanRequest};
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! struct Finish<'a> {
//!     agent_span_id: &'a str,
//!     #[serde(flatten)]
//!     body: FinishSpanRequest,
//! }
//! let body = FinishSpanRequest { result_payload: Some(serde_json::json!({"ok": true})), ..Default::default() };
//! let item = BulkItem::new(BulkAction::AgentSpansFinish, "finish-0001", Finish { agent_span_id: "s1", body });
//! let json = serde_json::to_value(BulkRequest { items: vec![item] }).unwrap();
//! assert_eq!(json["items"][0]["_type"], "agent_spans/finish");
//! assert_eq!(json["items"][0]["agent_span_id"], "s1");
//!
//! let answer = r#"{"status":"success","outputs":{"finish-0001":{"status":"error",
//!     "code":"invalid_action","message":"Span is already finished (complete)"}}}"#;
//! let answer: BulkResponse = serde_json::from_str(answer).unwrap();
//! assert!(!answer.outputs["finish-0001"].is_success());
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::envelope::{Control, Pagination, Sorting};

/// Shortest accepted item idempotency key.
pub const BULK_KEY_MIN_LEN: usize = 8;
/// Longest accepted item idempotency key.
pub const BULK_KEY_MAX_LEN: usize = 64;

/// The actions a bulk item can name in `_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BulkAction {
    /// `agents/create`: the body of `POST /api/v1/agent` (`{"details": {...}}`).
    #[serde(rename = "agents/create")]
    AgentsCreate,
    /// `agents/show`: `agent_id`.
    #[serde(rename = "agents/show")]
    AgentsShow,
    /// `agents/list`: optional `pagination` (`{"offset", "page_size"}`) and `sorting`.
    #[serde(rename = "agents/list")]
    AgentsList,
    /// `agent_instances/register`: the body of `POST /api/v1/agent_instance/register`.
    #[serde(rename = "agent_instances/register")]
    AgentInstancesRegister,
    /// `agent_instances/start`: `agent_instance_id` plus the start body.
    #[serde(rename = "agent_instances/start")]
    AgentInstancesStart,
    /// `agent_instances/finish`: `agent_instance_id` plus the finish body.
    #[serde(rename = "agent_instances/finish")]
    AgentInstancesFinish,
    /// `agent_instances/record_quality`: `agent_instance_id` plus the record_quality body.
    #[serde(rename = "agent_instances/record_quality")]
    AgentInstancesRecordQuality,
    /// `agent_spans/create`: the body of `POST /api/v1/agent_spans` (`{"details": {...}}`).
    #[serde(rename = "agent_spans/create")]
    AgentSpansCreate,
    /// `agent_spans/finish`: `agent_span_id` plus the finish body.
    #[serde(rename = "agent_spans/finish")]
    AgentSpansFinish,
}

impl BulkAction {
    /// Every action, in declaration order.
    pub const ALL: [BulkAction; 9] = [
        BulkAction::AgentsCreate,
        BulkAction::AgentsShow,
        BulkAction::AgentsList,
        BulkAction::AgentInstancesRegister,
        BulkAction::AgentInstancesStart,
        BulkAction::AgentInstancesFinish,
        BulkAction::AgentInstancesRecordQuality,
        BulkAction::AgentSpansCreate,
        BulkAction::AgentSpansFinish,
    ];

    /// The `_type` text.
    ///
    /// ```
    /// use prefactor_protocol::BulkAction;
    /// assert_eq!(BulkAction::AgentSpansCreate.as_str(), "agent_spans/create");
    /// assert_eq!(BulkAction::parse("agent_spans/create"), Some(BulkAction::AgentSpansCreate));
    /// assert_eq!(BulkAction::parse("agent_spans/delete"), None);
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::AgentsCreate => "agents/create",
            BulkAction::AgentsShow => "agents/show",
            BulkAction::AgentsList => "agents/list",
            BulkAction::AgentInstancesRegister => "agent_instances/register",
            BulkAction::AgentInstancesStart => "agent_instances/start",
            BulkAction::AgentInstancesFinish => "agent_instances/finish",
            BulkAction::AgentInstancesRecordQuality => "agent_instances/record_quality",
            BulkAction::AgentSpansCreate => "agent_spans/create",
            BulkAction::AgentSpansFinish => "agent_spans/finish",
        }
    }

    /// The action named by a `_type` text, if it is one.
    pub fn parse(text: &str) -> Option<BulkAction> {
        BulkAction::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

/// Body of `POST /api/v1/bulk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkRequest<P = Map<String, Value>> {
    /// The actions, run in order.
    pub items: Vec<BulkItem<P>>,
}

/// One bulk item: `_type`, `idempotency_key` and the action's parameters at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkItem<P = Map<String, Value>> {
    /// The action.
    #[serde(rename = "_type")]
    pub action: BulkAction,
    /// The item's idempotency key (8–64 characters, unique in the request); also the key of
    /// its output.
    pub idempotency_key: String,
    /// The action's parameters (flattened into the item).
    #[serde(flatten)]
    pub params: P,
}

impl<P> BulkItem<P> {
    /// An item of `action` with key `idempotency_key`.
    pub fn new(action: BulkAction, idempotency_key: impl Into<String>, params: P) -> Self {
        BulkItem { action, idempotency_key: idempotency_key.into(), params }
    }
}

/// Answer of `POST /api/v1/bulk`: `{"status": "success", "outputs": {key: output}}`.
/// `D` is the type of each output's `details` (`serde::de::IgnoredAny` skips them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
pub struct BulkResponse<D = Value> {
    /// Always `"success"` (a bad request as a whole is an error envelope instead).
    pub status: String,
    /// The output of each processed item, by idempotency key.
    pub outputs: std::collections::BTreeMap<String, BulkOutput<D>>,
}

/// The output of one item: the single endpoint's success envelope fields, or its error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
pub struct BulkOutput<D = Value> {
    /// `"success"` or `"error"`.
    pub status: String,
    /// The resource (single-resource actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<D>,
    /// The rows (list actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summaries: Option<Vec<Value>>,
    /// Paging of a list action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// Sorting of a list action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorting: Option<Sorting>,
    /// The control signal of span actions once the instance is terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
    /// Error code (errors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Error message (errors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Field errors (validation errors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Map<String, Value>>,
}

impl<D> BulkOutput<D> {
    /// True for a successful item.
    pub fn is_success(&self) -> bool {
        self.status == "success"
    }
}
