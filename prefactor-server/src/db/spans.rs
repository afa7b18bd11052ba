//! The `agent_spans` table (clustered on the span id: `WITHOUT ROWID` saves the separate
//! primary-key index, one b-tree insert less per span on the hot path).

use prefactor_protocol::{AgentStatus, SpanCounts};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use crate::db::instances::parse_status;
use crate::db::job_cache;
use crate::error::ApiError;

/// One stored span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    /// Span id.
    pub id: String,
    /// Owning instance.
    pub agent_instance_id: String,
    /// Parent span in the same instance.
    pub parent_span_id: Option<String>,
    /// Span type name.
    pub schema_name: String,
    /// Lifecycle status.
    pub status: AgentStatus,
    /// Inputs.
    pub payload: Value,
    /// Outputs.
    pub result_payload: Option<Value>,
    /// The TS-only flag, stored and echoed nowhere else.
    pub sensitive_encoding: Option<bool>,
    /// Start time.
    pub started_at: String,
    /// End time (set for terminal spans).
    pub finished_at: Option<String>,
    /// Creation time.
    pub inserted_at: String,
    /// Last change time.
    pub updated_at: String,
}

/// The span columns, as a literal so that hot statements are `concat!`ed at compile time
/// (no SQL text formatted per request just to look up the cached statement).
macro_rules! columns {
    () => {
        "id, agent_instance_id, parent_span_id, schema_name, status, payload, \
         result_payload, sensitive_encoding, started_at, finished_at, inserted_at, updated_at"
    };
}

/// The JSON texts of a span's payloads as they are stored. Serialized by the caller, off the
/// writer thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadTexts {
    /// `payload`.
    pub payload: String,
    /// `result_payload`.
    pub result_payload: Option<String>,
}

impl PayloadTexts {
    /// The texts of `span`'s payloads.
    pub fn of(span: &SpanRow) -> PayloadTexts {
        PayloadTexts { payload: json_text(&span.payload), result_payload: span.result_payload.as_ref().map(json_text) }
    }
}

/// The JSON text of a value, written straight into a buffer: `Value`'s `Display` (what
/// `to_string` uses) goes through the formatter once per token, about twice the cost.
pub fn json_text(value: &Value) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings); fall back rather than panic.
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// Inserts a span; `false` (and nothing written) when a span with its id already exists, so
/// the caller needs no existence check first.
pub fn insert(conn: &Connection, span: &SpanRow, texts: &PayloadTexts) -> Result<bool, ApiError> {
    let inserted = conn
        .prepare_cached(concat!(
            "INSERT INTO agent_spans (",
            columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (id) DO NOTHING"
        ))?
        .execute(params![
            span.id,
            span.agent_instance_id,
            span.parent_span_id,
            span.schema_name,
            span.status.as_str(),
            texts.payload,
            texts.result_payload,
            span.sensitive_encoding,
            span.started_at,
            span.finished_at,
            span.inserted_at,
            span.updated_at
        ])?;
    if inserted == 1 {
        job_cache::remember_span(&span.id, &span.agent_instance_id);
    }
    Ok(inserted == 1)
}

/// Writes the finish columns of `span`; `result_payload` is the text of a NEW result payload
/// (`None` keeps the stored one).
pub fn update_finish(conn: &Connection, span: &SpanRow, result_payload: Option<&str>) -> Result<(), ApiError> {
    conn.prepare_cached(
        "UPDATE agent_spans SET status = ?2, result_payload = COALESCE(?3, result_payload), finished_at = ?4,
             updated_at = ?5, sensitive_encoding = ?6
         WHERE id = ?1",
    )?
    .execute(params![
        span.id,
        span.status.as_str(),
        result_payload,
        span.finished_at,
        span.updated_at,
        span.sensitive_encoding
    ])?;
    Ok(())
}

/// Reads one span.
pub fn find(conn: &Connection, id: &str) -> Result<Option<SpanRow>, ApiError> {
    Ok(conn
        .prepare_cached(concat!("SELECT ", columns!(), " FROM agent_spans WHERE id = ?1"))?
        .query_row(params![id], span_from_row)
        .optional()?)
}

/// The instance a span belongs to, if the span exists.
pub fn instance_of(conn: &Connection, id: &str) -> Result<Option<String>, ApiError> {
    if let Some(instance_id) = job_cache::span_instance(id) {
        return Ok(Some(instance_id));
    }
    let instance_id: Option<String> = conn
        .prepare_cached("SELECT agent_instance_id FROM agent_spans WHERE id = ?1")?
        .query_row(params![id], |row| row.get(0))
        .optional()?;
    if let Some(instance_id) = &instance_id {
        job_cache::remember_span(id, instance_id);
    }
    Ok(instance_id)
}

/// Sort orders of span lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanOrder {
    /// `started_at`, then id.
    StartedAt,
    /// id (= creation time order for server ids).
    Id,
    /// `inserted_at`, then id.
    InsertedAt,
}

impl SpanOrder {
    /// The ORDER BY clause, with the span table aliased `s`.
    fn sql(self) -> &'static str {
        match self {
            SpanOrder::StartedAt => "s.started_at {dir}, s.id {dir}",
            SpanOrder::Id => "s.id {dir}",
            SpanOrder::InsertedAt => "s.inserted_at {dir}, s.id {dir}",
        }
    }
}

/// Which spans a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanScope<'a> {
    /// The spans of one instance.
    Instance(&'a str),
    /// The spans of every instance of one agent.
    Agent(&'a str),
}

impl<'a> SpanScope<'a> {
    /// The WHERE clause over `agent_spans s JOIN agent_instances i` and its one parameter.
    fn filter(self) -> (&'static str, &'a str) {
        match self {
            SpanScope::Instance(id) => ("s.agent_instance_id = ?1", id),
            SpanScope::Agent(id) => ("i.agent_id = ?1", id),
        }
    }
}

/// A listed span with the instance columns its list row shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedSpan {
    /// The span.
    pub span: SpanRow,
    /// Its instance's agent.
    pub agent_id: String,
    /// Its instance's purpose (stored text).
    pub purpose: String,
    /// Its instance's schema version.
    pub schema_version_id: Option<String>,
}

/// Agent span lists up to this many spans sort them (a temporary b-tree of at most this many
/// entries); larger ones walk the span table's primary key in order and keep the agent's rows.
pub const SORTED_AGENT_LIST_LIMIT: u64 = 20_000;

/// One page of spans in `scope` with their instance columns, and the total count.
///
/// An agent's spans come in one of two plans, chosen by how many there are (the count is
/// needed for the page anyway): up to `sorted_up_to` (the server passes
/// [`SORTED_AGENT_LIST_LIMIT`]), SQLite collects them through
/// the instance index and sorts them; beyond, for `id` order, it walks the span table's
/// primary key (`CROSS JOIN` keeps the span table outside) and stops after the page, so the
/// dashboard's newest-first pages cost the page, not the agent's million spans.
pub fn list_scoped(
    conn: &Connection,
    scope: SpanScope<'_>,
    order: SpanOrder,
    ascending: bool,
    (offset, limit): (u64, u64),
    sorted_up_to: u64,
    known_total: Option<u64>,
) -> Result<(Vec<ListedSpan>, u64), ApiError> {
    let direction = if ascending { "ASC" } else { "DESC" };
    let order_by = order.sql().replace("{dir}", direction);
    let (filter, key) = scope.filter();
    let total = match known_total {
        Some(total) => total,
        None => count_scoped(conn, scope)?,
    };
    let walk_primary_key = matches!(scope, SpanScope::Agent(_)) && order == SpanOrder::Id && total > sorted_up_to;
    let join = if walk_primary_key { "CROSS JOIN" } else { "JOIN" };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT s.id, s.agent_instance_id, s.parent_span_id, s.schema_name, s.status, s.payload, s.result_payload,
                s.sensitive_encoding, s.started_at, s.finished_at, s.inserted_at, s.updated_at,
                i.agent_id, i.purpose, i.schema_version_id
         FROM agent_spans s {join} agent_instances i ON i.id = s.agent_instance_id
         WHERE {filter} ORDER BY {order_by} LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = statement
        .query_map(params![key, sql_count(limit), sql_count(offset)], |row| {
            Ok(ListedSpan {
                span: span_from_row(row)?,
                agent_id: row.get(12)?,
                purpose: row.get(13)?,
                schema_version_id: row.get(14)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, total))
}

/// How many spans `scope` holds (for an agent with a million spans, a scan of its million
/// entries of the instance index: the server caches it per commit generation).
pub fn count_scoped(conn: &Connection, scope: SpanScope<'_>) -> Result<u64, ApiError> {
    let (filter, key) = scope.filter();
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM agent_spans s JOIN agent_instances i ON i.id = s.agent_instance_id WHERE {filter}"
        ))?
        .query_row(params![key], |row| row.get(0))?;
    Ok(u64::try_from(total).unwrap_or(0))
}

/// A page bound as SQLite's integer; beyond `i64::MAX` means "no bound" (SQLite reads a
/// negative LIMIT that way, and no table has that many rows to skip).
fn sql_count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Span counts of an instance by status.
pub fn counts(conn: &Connection, instance_id: &str) -> Result<SpanCounts, ApiError> {
    let mut counts = SpanCounts::default();
    let mut statement =
        conn.prepare_cached("SELECT status, COUNT(*) FROM agent_spans WHERE agent_instance_id = ?1 GROUP BY status")?;
    let rows = statement
        .query_map(params![instance_id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64)))?;
    for row in rows {
        let (status, count) = row?;
        counts.total += count;
        match parse_status(&status) {
            AgentStatus::Pending => counts.pending += count,
            AgentStatus::Active => counts.active += count,
            AgentStatus::Complete => counts.complete += count,
            AgentStatus::Failed => counts.failed += count,
            AgentStatus::Cancelled | AgentStatus::Terminated => counts.cancelled += count,
        }
    }
    counts.finished = counts.complete + counts.failed + counts.cancelled;
    Ok(counts)
}

/// Reads a span from a row of the span columns in their declared order.
pub fn span_from_row(row: &Row<'_>) -> rusqlite::Result<SpanRow> {
    let status: String = row.get(4)?;
    let payload: String = row.get(5)?;
    let result: Option<String> = row.get(6)?;
    Ok(SpanRow {
        id: row.get(0)?,
        agent_instance_id: row.get(1)?,
        parent_span_id: row.get(2)?,
        schema_name: row.get(3)?,
        status: parse_status(&status),
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        result_payload: result.and_then(|text| serde_json::from_str(&text).ok()),
        sensitive_encoding: row.get(7)?,
        started_at: row.get(8)?,
        finished_at: row.get(9)?,
        inserted_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::db::migrations::migrate;

    fn database_with_two_agents() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for (instance, agent) in [("run-a", "agent-a"), ("run-b", "agent-b")] {
            conn.execute(
                "INSERT INTO agent_instances (id, agent_id, agent_version_id, environment_id, status, purpose,
                     update_current_version, inserted_at, updated_at)
                 VALUES (?1, ?2, 'v', 'e', 'active', 'live', 1, 't', 't')",
                params![instance, agent],
            )
            .unwrap();
        }
        for index in 0..40 {
            let instance = if index % 4 == 0 { "run-b" } else { "run-a" };
            let span = SpanRow {
                id: format!("span-{index:03}"),
                agent_instance_id: instance.to_string(),
                parent_span_id: None,
                schema_name: "t".into(),
                status: AgentStatus::Complete,
                payload: serde_json::json!({"i": index}),
                result_payload: None,
                sensitive_encoding: None,
                started_at: format!("2026-01-01T00:00:{:02}.000000Z", 59 - index),
                finished_at: None,
                inserted_at: "t".into(),
                updated_at: "t".into(),
            };
            insert(&conn, &span, &PayloadTexts::of(&span)).unwrap();
        }
        conn
    }

    fn ids(listed: &[ListedSpan]) -> Vec<&str> {
        listed.iter().map(|item| item.span.id.as_str()).collect()
    }

    #[test]
    fn both_agent_list_plans_give_the_same_pages() {
        let conn = database_with_two_agents();
        for agent in ["agent-a", "agent-b"] {
            for (offset, limit) in [(0, 7), (7, 7), (28, 7), (100, 7)] {
                let page = (offset, limit);
                let sorted =
                    list_scoped(&conn, SpanScope::Agent(agent), SpanOrder::Id, false, page, u64::MAX, None).unwrap();
                let walked =
                    list_scoped(&conn, SpanScope::Agent(agent), SpanOrder::Id, false, page, 0, Some(sorted.1)).unwrap();
                assert_eq!(ids(&sorted.0), ids(&walked.0), "{agent} {page:?}");
                assert_eq!(sorted.1, walked.1);
            }
        }
        let (first, total) =
            list_scoped(&conn, SpanScope::Agent("agent-b"), SpanOrder::Id, false, (0, 3), 0, None).unwrap();
        assert_eq!((ids(&first), total), (vec!["span-036", "span-032", "span-028"], 10));
        assert!(first.iter().all(|item| item.agent_id == "agent-b" && item.purpose == "live"));
    }
}
