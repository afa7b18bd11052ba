//! Wire types of the Prefactor HTTP API and PFID identifiers. No I/O.
//!
//! The shapes follow the API notes (part A): envelopes, agent instances, spans, agents, the
//! `agent_schema_version` document and the control signal. Parsing is lenient: unknown fields
//! from a server are ignored, so a newer server never breaks an older SDK.
//!
//! ```
//! use prefactor_protocol::{AgentSpan, SuccessResponse};
//!
//! let body = r#"{"status":"success","details":{"type":"agent_span","id":"s1",
//!     "agent_instance_id":"i1","schema_name":"agent:llm","status":"active","new_field":1},
//!     "control":{"terminate":true,"reason":"stop"}}"#;
//! let response: SuccessResponse<AgentSpan> = serde_json::from_str(body)?;
//! assert_eq!(response.details.schema_name, "agent:llm");
//! assert!(response.control.unwrap().terminate);
//! # Ok::<(), serde_json::Error>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod agent;
mod bulk;
mod envelope;
mod instance;
mod pfid;
mod prefactor_context;
mod schema;
mod span;
mod status;
mod traceparent;

pub use agent::{Agent, AvailableActions, CreateAgentDetails, CreateAgentRequest, InstanceCounts};
pub use bulk::{BULK_KEY_MAX_LEN, BULK_KEY_MIN_LEN, BulkAction, BulkItem, BulkOutput, BulkRequest, BulkResponse};
pub use envelope::{Control, ErrorResponse, ListResponse, Pagination, PingDetails, Sorting, SuccessResponse};
pub use instance::{
    AgentInstance, AgentVersionSpec, FinishInstanceRequest, RecordQualityRequest, RegisterInstanceRequest,
    RuntimeEnvironment, SpanCounts, StartInstanceRequest, TerminateInstanceRequest, UpdateInstanceDetails,
    UpdateInstanceRequest,
};
pub use pfid::{PFID_LEN, Pfid, PfidError, PfidStr};
pub use prefactor_context::{PREFACTOR_CONTEXT, PrefactorContext, otel_run_span_id, otel_span_id, otel_trace_id};
pub use schema::{AgentSchemaVersion, QualitySchema, SingleQualitySchema, SpanTypeSchema};
pub use span::{AgentSpan, CreateSpanDetails, CreateSpanRequest, FinishSpanRequest};
pub use status::{AgentLifecycleStatus, AgentStatus, FinishStatus, InstancePurpose, SortDirection};
pub use traceparent::{
    MAX_TRACESTATE_LEN, SAMPLED, TRACEPARENT, TRACESTATE, TraceHeaderError, TraceParent, valid_tracestate,
};
