//! Writes mapped OTel spans: each trace is one agent instance of the agent named by its
//! service (`service.name`), each OTel span one span of it, parents kept.
//!
//! Ids are derived, so a span exported twice (an exporter's retry, a collector replaying) is
//! stored once: a trace's instance is found again through the `meta` key
//! `otel_trace:<trace id>`, and a span's PFID is its instance's timestamp, the account's
//! partition, and its 8-byte OTel span id with two bytes of the trace id as randomness. A
//! parent's PFID is computed the same way, so a child may arrive before its parent (OTel ends
//! and exports children first). A new instance takes the earliest start time among its
//! trace's spans in the first request that mentions it, and the trace id's first ten bytes.
//! The instance is `active` until the trace's root span (no parent) arrives, which finishes
//! it `complete` or `failed` with the root's times.

use prefactor_protocol::{AgentStatus, AgentVersionSpec, Pfid};
use rusqlite::Connection;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::mapping::{MappedSpan, hex};
use crate::db::instances::{self, InstanceRow};
use crate::db::meta::LocalAccount;
use crate::db::spans::{self, PayloadTexts, SpanRow};
use crate::db::{agent_versions, agents, meta};
use crate::error::ApiError;
use crate::timestamps::{format_utc, now_utc};

/// The OTel resource of a batch of spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// `service.name` (OTel's `unknown_service` when absent).
    pub name: String,
    /// `service.version`, when given.
    pub version: Option<String>,
    /// Every resource attribute (kept as the instance's runtime environment).
    pub resource: Value,
}

/// One span ready to write: the mapping and its payload texts (serialized before the write,
/// off the writer thread).
pub struct SpanToStore {
    /// The mapped span.
    pub span: MappedSpan,
    /// Its payload texts.
    pub texts: PayloadTexts,
}

/// The spans of one trace from one request, with the service that sent them.
pub struct TraceToStore {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The resource of the first span of this trace in the request.
    pub service: Service,
    /// Its spans.
    pub spans: Vec<SpanToStore>,
}

/// Writes `traces` (one writer job); returns how many spans were new.
pub fn store(conn: &Connection, account: &LocalAccount, traces: Vec<TraceToStore>) -> Result<u64, ApiError> {
    let now = now_utc();
    let mut stored = 0u64;
    for trace in traces {
        let mut instance = instance_for(conn, account, &trace, &now)?;
        let timestamp_ms = instance_timestamp(&instance.id)?;
        for item in trace.spans {
            let span = &item.span;
            let row = SpanRow {
                id: span_pfid(timestamp_ms, account.partition, &trace.trace_id, &span.span_id)?,
                agent_instance_id: instance.id.clone(),
                parent_span_id: span
                    .parent_span_id
                    .map(|parent| span_pfid(timestamp_ms, account.partition, &trace.trace_id, &parent))
                    .transpose()?,
                schema_name: span.schema_name.clone(),
                status: if span.failed { AgentStatus::Failed } else { AgentStatus::Complete },
                // The insert writes the texts; the values are not needed again.
                payload: Value::Null,
                result_payload: None,
                sensitive_encoding: None,
                started_at: nanos_utc(span.start_unix_nano),
                finished_at: Some(nanos_utc(span.end_unix_nano)),
                inserted_at: now.clone(),
                updated_at: now.clone(),
            };
            if spans::insert(conn, &row, &item.texts)? {
                stored += 1;
            }
            if span.parent_span_id.is_none() {
                instance.status = row.status;
                instance.started_at = Some(row.started_at.clone());
                instance.finished_at = row.finished_at.clone();
                instance.updated_at = now.clone();
                instances::update(conn, &instance)?;
            }
        }
    }
    Ok(stored)
}

/// The instance of a trace: found through its meta key, else created (with the id the key
/// names when its instance was deleted since).
fn instance_for(
    conn: &Connection,
    account: &LocalAccount,
    trace: &TraceToStore,
    now: &str,
) -> Result<InstanceRow, ApiError> {
    let trace_hex = hex(&trace.trace_id);
    let key = format!("otel_trace:{trace_hex}");
    let known = meta::get(conn, &key)?;
    if let Some(id) = &known
        && let Some(row) = instances::find(conn, id)?
    {
        return Ok(row);
    }
    let earliest = trace.spans.iter().map(|item| item.span.start_unix_nano).min().unwrap_or(0);
    let id = match known {
        Some(id) => id,
        None => {
            let mut randomness = [0u8; 10];
            randomness.copy_from_slice(&trace.trace_id[..10]);
            Pfid::from_parts(earliest / 1_000_000, account.partition, randomness)
                .map_err(|error| ApiError::internal(format!("instance id of trace {trace_hex}: {error}")))?
                .to_string()
        }
    };
    let agent_id = service_agent(conn, account, &trace.service.name, now)?;
    agents::mark_active(conn, &agent_id, now)?;
    let version = AgentVersionSpec {
        name: Some(trace.service.name.clone()),
        external_identifier: Some(trace.service.version.clone().unwrap_or_else(|| "otel".to_string())),
        description: Some("Sent over OpenTelemetry (OTLP)".to_string()),
        runtime_environment: None,
    };
    let agent_version_id = agent_versions::find_or_create(conn, account, &agent_id, &version, now)?;
    let row = InstanceRow {
        id,
        agent_id,
        agent_version_id,
        schema_version_id: None,
        environment_id: account.environment_id.clone(),
        status: AgentStatus::Active,
        purpose: Default::default(),
        update_current_version: true,
        termination_reason: None,
        quality_payloads: Default::default(),
        quality_summaries: Default::default(),
        inserted_at: now.to_string(),
        updated_at: now.to_string(),
        started_at: Some(nanos_utc(earliest)),
        finished_at: None,
        external_identifier: Some(format!("otel:{trace_hex}")),
        runtime_environment: Some(json!({"otel_resource": trace.service.resource})),
        quality_payload: None,
        quality_summary: None,
    };
    instances::insert(conn, &row)?;
    meta::put(conn, &key, &row.id)?;
    Ok(row)
}

/// The agent of an OTel service, created on first use (the meta key `otel_agent:<name>`
/// remembers it).
fn service_agent(conn: &Connection, account: &LocalAccount, name: &str, now: &str) -> Result<String, ApiError> {
    let key = format!("otel_agent:{name}");
    if let Some(id) = meta::get(conn, &key)?
        && agents::exists(conn, &id)?
    {
        return Ok(id);
    }
    let id = account.new_id();
    let agent = agents::NewAgent {
        id: id.clone(),
        name: name.to_string(),
        description: Some("An OpenTelemetry service (spans received on /v1/traces)".to_string()),
        ..Default::default()
    };
    agents::insert(conn, &agent, now)?;
    meta::put(conn, &key, &id)?;
    Ok(id)
}

fn instance_timestamp(id: &str) -> Result<u64, ApiError> {
    id.parse::<Pfid>()
        .map(|pfid| pfid.timestamp_ms())
        .map_err(|error| ApiError::internal(format!("stored instance id {id}: {error}")))
}

/// The PFID of an OTel span of a trace whose instance has `timestamp_ms`.
///
/// ```
/// use prefactor_server::otlp::store::span_pfid;
/// let a = span_pfid(1_700_000_000_000, 7, &[1; 16], &[2; 8]).unwrap();
/// assert_eq!(a, span_pfid(1_700_000_000_000, 7, &[1; 16], &[2; 8]).unwrap(), "derived, not random");
/// assert_ne!(a, span_pfid(1_700_000_000_000, 7, &[1; 16], &[3; 8]).unwrap());
/// ```
pub fn span_pfid(
    timestamp_ms: u64,
    partition: u32,
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
) -> Result<String, ApiError> {
    let mut randomness = [0u8; 10];
    randomness[..8].copy_from_slice(span_id);
    randomness[8..].copy_from_slice(&trace_id[14..]);
    Pfid::from_parts(timestamp_ms, partition, randomness)
        .map(|pfid| pfid.to_string())
        .map_err(|error| ApiError::internal(format!("span id: {error}")))
}

/// Unix nanoseconds in the server's timestamp form (every u64 is a valid instant: year 2554
/// at most).
fn nanos_utc(nanos: u64) -> String {
    format_utc(OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}
