//! The `agent_instances` table.

use std::collections::BTreeMap;

use prefactor_protocol::{AgentInstance, AgentStatus, InstancePurpose, SpanCounts};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use crate::db::counts;
use crate::db::id_buckets::{self, IdList};
use crate::db::job_cache;
use crate::db::meta::LocalAccount;
use crate::db::spans;
use crate::error::ApiError;

/// One stored instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    /// Instance id.
    pub id: String,
    /// Owning agent.
    pub agent_id: String,
    /// Code version.
    pub agent_version_id: String,
    /// Schema version used to validate its spans.
    pub schema_version_id: Option<String>,
    /// Environment (echoed from register).
    pub environment_id: String,
    /// Lifecycle status.
    pub status: AgentStatus,
    /// live / smoke_test / eval.
    pub purpose: InstancePurpose,
    /// Stored `update_current_version` flag.
    pub update_current_version: bool,
    /// Why it was terminated.
    pub termination_reason: Option<String>,
    /// Quality payloads by name.
    pub quality_payloads: Map<String, Value>,
    /// Rendered quality summaries by name.
    pub quality_summaries: BTreeMap<String, String>,
    /// Creation time.
    pub inserted_at: String,
    /// Last change time.
    pub updated_at: String,
    /// Start time.
    pub started_at: Option<String>,
    /// Finish / termination time.
    pub finished_at: Option<String>,
    /// The run's id in an external system (unique per agent).
    pub external_identifier: Option<String>,
    /// Where the code runs, as the SDK described it.
    pub runtime_environment: Option<Value>,
    /// The legacy single quality payload.
    pub quality_payload: Option<Value>,
    /// Its rendered summary.
    pub quality_summary: Option<String>,
}

const COLUMNS: &str = "id, agent_id, agent_version_id, schema_version_id, environment_id, status, \
    purpose, update_current_version, termination_reason, quality_payloads, quality_summaries, \
    inserted_at, updated_at, started_at, finished_at, external_identifier, runtime_environment, \
    quality_payload, quality_summary";

/// Inserts a new instance row.
pub fn insert(conn: &Connection, row: &InstanceRow) -> Result<(), ApiError> {
    conn.prepare_cached(&format!(
        "INSERT INTO agent_instances ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
    ))?
    .execute(params![
        row.id,
        row.agent_id,
        row.agent_version_id,
        row.schema_version_id,
        row.environment_id,
        row.status.as_str(),
        purpose_str(row.purpose),
        row.update_current_version,
        row.termination_reason,
        Value::Object(row.quality_payloads.clone()).to_string(),
        serde_json::to_string(&row.quality_summaries).map_err(ApiError::internal)?,
        row.inserted_at,
        row.updated_at,
        row.started_at,
        row.finished_at,
        row.external_identifier,
        row.runtime_environment.as_ref().map(Value::to_string),
        row.quality_payload.as_ref().map(Value::to_string),
        row.quality_summary
    ])?;
    Ok(())
}

/// Writes back the mutable columns of `row`.
pub fn update(conn: &Connection, row: &InstanceRow) -> Result<(), ApiError> {
    conn.prepare_cached(
        "UPDATE agent_instances SET status = ?2, termination_reason = ?3, quality_payloads = ?4,
             quality_summaries = ?5, updated_at = ?6, started_at = ?7, finished_at = ?8,
             quality_payload = ?9, quality_summary = ?10
         WHERE id = ?1",
    )?
    .execute(params![
        row.id,
        row.status.as_str(),
        row.termination_reason,
        Value::Object(row.quality_payloads.clone()).to_string(),
        serde_json::to_string(&row.quality_summaries).map_err(ApiError::internal)?,
        row.updated_at,
        row.started_at,
        row.finished_at,
        row.quality_payload.as_ref().map(Value::to_string),
        row.quality_summary
    ])?;
    Ok(())
}

/// Reads one instance.
pub fn find(conn: &Connection, id: &str) -> Result<Option<InstanceRow>, ApiError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM agent_instances WHERE id = ?1"))?
        .query_row(params![id], instance_from_row)
        .optional()?)
}

/// Reads one instance or answers 404.
pub fn get(conn: &Connection, id: &str) -> Result<InstanceRow, ApiError> {
    find(conn, id)?.ok_or_else(|| ApiError::not_found(format!("agent instance {id} not found")))
}

/// Where a page of a list starts: `offset` rows in, or (when the server remembers it, see
/// [`crate::page_keys`]) right after the sort key of the row before, which costs the same
/// however deep the page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageStart<'a> {
    /// Rows to skip (ignored when `after` is given).
    pub offset: u64,
    /// The sort key of the last row of the previous page.
    pub after: Option<&'a str>,
    /// Rows per page.
    pub limit: u64,
}

/// One page of instances (optionally of one agent), newest first by id, and the total (from
/// the counters). One statement per filter shape, so each uses its index: the agent's
/// `(agent_id, id)` index, or the id index for every instance. A page at an offset starts at
/// the id bucket the offset falls in ([`id_buckets::seek`]; the list of every run seeks in
/// the buckets of [`id_buckets::EVERY_AGENT`]), so a jump costs the same at any depth.
pub fn list(
    conn: &Connection,
    agent_id: Option<&str>,
    page: PageStart<'_>,
    ascending: bool,
) -> Result<(Vec<InstanceRow>, u64), ApiError> {
    let total = counts::instance_total(conn, agent_id, None)?;
    let mut after = page.after.map(|key| (if ascending { ">" } else { "<" }, key.to_string()));
    let mut offset = if after.is_some() { 0 } else { page.offset };
    if let (None, true) = (&after, offset > 0) {
        let buckets_of = agent_id.unwrap_or(id_buckets::EVERY_AGENT);
        match id_buckets::seek(conn, IdList::Runs, buckets_of, ascending, offset)? {
            Some(seek) => {
                after = Some((seek.op, seek.bound));
                offset -= seek.skipped;
            }
            None => return Ok((Vec::new(), total)),
        }
    }
    let (op, key) = after.unzip();
    let mut statement = conn.prepare_cached(&list_sql(agent_id.is_some(), op, ascending))?;
    let rows = statement
        .query_map(params![agent_id, sql_count(page.limit), sql_count(offset), key], instance_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, total))
}

/// The statement of one shape of [`list`]: with or without an agent, from an offset or from
/// a key (`after`: the comparison with it), in either direction. Absent filters still name
/// their parameter (a constant test), so every shape binds the same parameters.
pub fn list_sql(by_agent: bool, after: Option<&str>, ascending: bool) -> String {
    let order = if ascending { "ASC" } else { "DESC" };
    let agent_filter = if by_agent { "agent_id = ?1" } else { "?1 IS NULL" };
    let key_filter = match after {
        Some(op) => format!("id {op} ?4"),
        None => "?4 IS NULL".to_string(),
    };
    format!(
        "SELECT {COLUMNS} FROM agent_instances WHERE {agent_filter} AND {key_filter}
         ORDER BY id {order} LIMIT ?2 OFFSET ?3"
    )
}

/// A page bound as SQLite's integer (beyond `i64::MAX`: no bound).
pub fn sql_count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// True when another instance of `agent_id` already carries `external_identifier`.
pub fn external_identifier_taken(
    conn: &Connection,
    agent_id: &str,
    external_identifier: &str,
) -> Result<bool, ApiError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM agent_instances WHERE agent_id = ?1 AND external_identifier = ?2")?
        .query_row(params![agent_id, external_identifier], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The wire resource of `row`, with span counts read from the spans table.
pub fn to_resource(conn: &Connection, account: &LocalAccount, row: InstanceRow) -> Result<AgentInstance, ApiError> {
    let span_counts: SpanCounts = spans::counts(conn, &row.id)?;
    Ok(with_counts(account, row, span_counts))
}

/// Instance `row` as register answered it: what start, finish, quality and terminate change
/// put back as register left it, and no spans (an idempotent replay of the register).
pub fn as_registered(account: &LocalAccount, mut row: InstanceRow) -> AgentInstance {
    row.status = AgentStatus::Pending;
    row.termination_reason = None;
    row.quality_payloads = Map::new();
    row.quality_summaries = BTreeMap::new();
    row.updated_at = row.inserted_at.clone();
    row.started_at = None;
    row.finished_at = None;
    row.quality_payload = None;
    row.quality_summary = None;
    to_new_resource(account, row)
}

/// The resource of an instance just inserted: it has no spans yet (a span needs its instance),
/// so its counts are known without a query.
pub fn to_new_resource(account: &LocalAccount, row: InstanceRow) -> AgentInstance {
    with_counts(account, row, SpanCounts::default())
}

fn with_counts(account: &LocalAccount, row: InstanceRow, span_counts: SpanCounts) -> AgentInstance {
    AgentInstance {
        type_: "agent_instance".to_string(),
        id: row.id,
        account_id: account.account_id.clone(),
        agent_id: row.agent_id,
        agent_version_id: row.agent_version_id,
        environment_id: row.environment_id,
        agent_deployment_id: account.deployment_id.clone(),
        status: row.status,
        purpose: Some(row.purpose),
        inserted_at: row.inserted_at,
        updated_at: row.updated_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        termination_reason: row.termination_reason,
        span_counts: Some(span_counts),
        quality_payloads: Some(row.quality_payloads),
        quality_summaries: Some(row.quality_summaries),
        quality_payload: row.quality_payload,
        quality_summary: row.quality_summary,
        external_identifier: row.external_identifier,
    }
}

fn instance_from_row(row: &Row<'_>) -> rusqlite::Result<InstanceRow> {
    let status: String = row.get(5)?;
    let purpose: String = row.get(6)?;
    let payloads: String = row.get(9)?;
    let summaries: String = row.get(10)?;
    Ok(InstanceRow {
        id: row.get(0)?,
        agent_id: row.get(1)?,
        agent_version_id: row.get(2)?,
        schema_version_id: row.get(3)?,
        environment_id: row.get(4)?,
        status: parse_status(&status),
        purpose: parse_purpose(&purpose),
        update_current_version: row.get(7)?,
        termination_reason: row.get(8)?,
        quality_payloads: serde_json::from_str(&payloads).unwrap_or_default(),
        quality_summaries: serde_json::from_str(&summaries).unwrap_or_default(),
        inserted_at: row.get(11)?,
        updated_at: row.get(12)?,
        started_at: row.get(13)?,
        finished_at: row.get(14)?,
        external_identifier: row.get(15)?,
        runtime_environment: json_column(row.get(16)?),
        quality_payload: json_column(row.get(17)?),
        quality_summary: row.get(18)?,
    })
}

fn json_column(text: Option<String>) -> Option<Value> {
    text.and_then(|text| serde_json::from_str(&text).ok())
}

/// Reads a stored status; unknown text (impossible unless the file was edited) reads as pending.
pub fn parse_status(text: &str) -> AgentStatus {
    match text {
        "active" => AgentStatus::Active,
        "complete" => AgentStatus::Complete,
        "failed" => AgentStatus::Failed,
        "cancelled" => AgentStatus::Cancelled,
        "terminated" => AgentStatus::Terminated,
        _ => AgentStatus::Pending,
    }
}

/// Reads a stored purpose; unknown text reads as live.
pub fn parse_purpose(text: &str) -> InstancePurpose {
    match text {
        "smoke_test" => InstancePurpose::SmokeTest,
        "eval" => InstancePurpose::Eval,
        _ => InstancePurpose::Live,
    }
}

fn purpose_str(purpose: InstancePurpose) -> &'static str {
    match purpose {
        InstancePurpose::Live => "live",
        InstancePurpose::SmokeTest => "smoke_test",
        InstancePurpose::Eval => "eval",
    }
}

/// The instance columns the span hot path needs (a narrow read instead of the whole row).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanOwner {
    /// Owning agent (echoed on spans).
    pub agent_id: String,
    /// Schema version that validates the spans.
    pub schema_version_id: Option<String>,
    /// Instance status (terminated => control signal).
    pub status: AgentStatus,
    /// Reason echoed in the control signal.
    pub termination_reason: Option<String>,
}

/// Reads the [`SpanOwner`] of instance `id`, or answers 404.
pub fn span_owner(conn: &Connection, id: &str) -> Result<SpanOwner, ApiError> {
    if let Some(owner) = job_cache::owner(id) {
        return Ok(owner);
    }
    let owner = conn
        .prepare_cached(
            "SELECT agent_id, schema_version_id, status, termination_reason FROM agent_instances WHERE id = ?1",
        )?
        .query_row(params![id], |row| {
            let status: String = row.get(2)?;
            Ok(SpanOwner {
                agent_id: row.get(0)?,
                schema_version_id: row.get(1)?,
                status: parse_status(&status),
                termination_reason: row.get(3)?,
            })
        })
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("agent instance {id} not found")))?;
    job_cache::remember_owner(id, &owner);
    Ok(owner)
}
