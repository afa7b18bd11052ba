//! The `agent_spans` table (clustered on the span id: `WITHOUT ROWID` saves the separate
//! primary-key index, one b-tree insert less per span on the hot path).

use prefactor_protocol::{AgentStatus, SpanCounts};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use crate::db::counts;
use crate::db::id_buckets::{self, IdList};
use crate::db::instances::{PageStart, parse_status, sql_count};
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
            stored_updated_at(span)
        ])?;
    if inserted == 1 {
        job_cache::remember_span(&span.id, &span.agent_instance_id);
    }
    Ok(inserted == 1)
}

/// `updated_at` as stored: empty when it equals `inserted_at` (a span created finished, as
/// the SDKs send most spans), 27 bytes a span less; [`span_from_row`] reads it back.
fn stored_updated_at(span: &SpanRow) -> &str {
    if span.updated_at == span.inserted_at { "" } else { &span.updated_at }
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

/// An agent with more spans than this that holds at least 1 % of all spans walks too: the
/// walk passes about 100 spans of others per span of its own, where sorting its 10,000 spans
/// took 160 ms.
pub const WALKED_AGENT_LIST_MIN: u64 = 1_000;

/// Separates the sort value from the id in a span list's page key.
const KEY_SEPARATOR: char = '\u{1f}';

impl SpanOrder {
    /// The page key of `span` in this order (see [`crate::page_keys`]).
    pub fn page_key(self, span: &SpanRow) -> String {
        match self {
            SpanOrder::Id => span.id.clone(),
            SpanOrder::StartedAt => format!("{}{KEY_SEPARATOR}{}", span.started_at, span.id),
            SpanOrder::InsertedAt => format!("{}{KEY_SEPARATOR}{}", span.inserted_at, span.id),
        }
    }

    /// The condition "after page key `?4`(, `?5`)" in direction `op` and its parameters;
    /// `None` for a key that is not one of this order's.
    pub fn after(self, op: &str, key: &str) -> Option<(String, Vec<String>)> {
        match self {
            SpanOrder::Id => Some((format!("s.id {op} ?4"), vec![key.to_string()])),
            SpanOrder::StartedAt | SpanOrder::InsertedAt => {
                let (value, id) = key.split_once(KEY_SEPARATOR)?;
                let column = if self == SpanOrder::StartedAt { "s.started_at" } else { "s.inserted_at" };
                Some((format!("({column}, s.id) {op} (?4, ?5)"), vec![value.to_string(), id.to_string()]))
            }
        }
    }
}

/// One shape of [`list_scoped`]'s statement.
#[derive(Debug, Clone, Copy)]
pub struct ListShape<'a> {
    /// Which spans.
    pub scope: SpanScope<'a>,
    /// Sort order.
    pub order: SpanOrder,
    /// Direction.
    pub ascending: bool,
    /// Walk the span table's primary key (an agent with many spans, id order).
    pub walk_primary_key: bool,
}

impl ListShape<'_> {
    /// The statement, with `after` (the condition of [`SpanOrder::after`]) when the page
    /// starts after a key.
    pub fn sql(&self, after: Option<&str>) -> String {
        let direction = if self.ascending { "ASC" } else { "DESC" };
        let order_by = self.order.sql().replace("{dir}", direction);
        let (filter, _) = self.scope.filter();
        let join = if self.walk_primary_key { "CROSS JOIN" } else { "JOIN" };
        let after = after.map(|condition| format!("AND {condition}")).unwrap_or_default();
        format!(
            "SELECT s.id, s.agent_instance_id, s.parent_span_id, s.schema_name, s.status, s.payload, s.result_payload,
                    s.sensitive_encoding, s.started_at, s.finished_at, s.inserted_at, s.updated_at,
                    i.agent_id, i.purpose, i.schema_version_id
             FROM agent_spans s {join} agent_instances i ON i.id = s.agent_instance_id
             WHERE {filter} {after} ORDER BY {order_by} LIMIT ?2 OFFSET ?3"
        )
    }
}

/// One page of spans in `scope` with their instance columns, and the total count (from the
/// counters). `after` is the page key of the row before the page (see [`crate::page_keys`]):
/// given, the page starts there instead of `offset` rows in.
///
/// An agent's spans come in one of two plans, chosen by how many there are: up to
/// `sorted_up_to` (the server passes [`SORTED_AGENT_LIST_LIMIT`]; [`WALKED_AGENT_LIST_MIN`]
/// for an agent with 1 % of all spans), SQLite collects them through the instance index and
/// sorts them; beyond, for `id` order, it walks the span table's
/// primary key (`CROSS JOIN` keeps the span table outside) and stops after the page, so the
/// dashboard's newest-first pages cost the page, not the agent's million spans; a page at an
/// offset starts that walk at the id bucket the offset falls in ([`id_buckets::seek`]), so
/// it costs the same at any depth.
pub fn list_scoped(
    conn: &Connection,
    scope: SpanScope<'_>,
    order: SpanOrder,
    ascending: bool,
    page: PageStart<'_>,
    sorted_up_to: u64,
) -> Result<(Vec<ListedSpan>, u64), ApiError> {
    let total = count_scoped(conn, scope)?;
    let walk_primary_key = matches!(scope, SpanScope::Agent(_))
        && order == SpanOrder::Id
        && (total > sorted_up_to
            || (total > WALKED_AGENT_LIST_MIN && total.saturating_mul(100) >= counts::all_span_total(conn)?));
    let shape = ListShape { scope, order, ascending, walk_primary_key };
    let op = if ascending { ">" } else { "<" };
    let mut after = page.after.and_then(|key| order.after(op, key));
    let mut offset = if after.is_some() { 0 } else { page.offset };
    // A walk to a deep offset starts at the id bucket the offset falls in (see id_buckets).
    if let (SpanScope::Agent(agent_id), true, None, true) = (scope, walk_primary_key, &after, offset > 0) {
        match id_buckets::seek(conn, IdList::Spans, agent_id, ascending, offset)? {
            Some(seek) => {
                after = Some((format!("s.id {} ?4", seek.op), vec![seek.bound]));
                offset -= seek.skipped;
            }
            None => return Ok((Vec::new(), total)),
        }
    }
    let offset = sql_count(offset);
    let (_, key) = scope.filter();
    let mut bound: Vec<rusqlite::types::Value> =
        vec![key.to_string().into(), sql_count(page.limit).into(), offset.into()];
    let after_filter = match after {
        Some((condition, values)) => {
            bound.extend(values.into_iter().map(rusqlite::types::Value::from));
            Some(condition)
        }
        None => None,
    };
    let mut statement = conn.prepare_cached(&shape.sql(after_filter.as_deref()))?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(bound), |row| {
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

/// How many spans `scope` holds (kept by triggers, see [`crate::db::counts`]).
pub fn count_scoped(conn: &Connection, scope: SpanScope<'_>) -> Result<u64, ApiError> {
    match scope {
        SpanScope::Instance(id) => counts::instance_span_total(conn, id),
        SpanScope::Agent(id) => counts::agent_span_total(conn, id),
    }
}

/// Span counts of an instance by status (kept by triggers, see [`crate::db::counts`]).
pub fn counts(conn: &Connection, instance_id: &str) -> Result<SpanCounts, ApiError> {
    counts::instance_span_counts(conn, instance_id)
}

/// Reads a span from a row of the span columns in their declared order.
pub fn span_from_row(row: &Row<'_>) -> rusqlite::Result<SpanRow> {
    let status: String = row.get(4)?;
    let payload: String = row.get(5)?;
    let result: Option<String> = row.get(6)?;
    let inserted_at: String = row.get(10)?;
    let updated_at: String = row.get(11)?;
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
        updated_at: if updated_at.is_empty() { inserted_at.clone() } else { updated_at },
        inserted_at,
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

    fn page(offset: u64, limit: u64) -> PageStart<'static> {
        PageStart { offset, after: None, limit }
    }

    #[test]
    fn both_agent_list_plans_give_the_same_pages() {
        let conn = database_with_two_agents();
        // The walk starts at the id bucket of the offset (every offset, both directions).
        for agent in ["agent-a", "agent-b"] {
            for ascending in [true, false] {
                for offset in (0..=42).chain([100]) {
                    let scope = SpanScope::Agent(agent);
                    let sorted =
                        list_scoped(&conn, scope, SpanOrder::Id, ascending, page(offset, 7), u64::MAX).unwrap();
                    let walked = list_scoped(&conn, scope, SpanOrder::Id, ascending, page(offset, 7), 0).unwrap();
                    assert_eq!(ids(&sorted.0), ids(&walked.0), "{agent} {ascending} {offset}");
                    assert_eq!(sorted.1, walked.1);
                }
            }
        }
        let (first, total) =
            list_scoped(&conn, SpanScope::Agent("agent-b"), SpanOrder::Id, false, page(0, 3), 0).unwrap();
        assert_eq!((ids(&first), total), (vec!["span-036", "span-032", "span-028"], 10));
        assert!(first.iter().all(|item| item.agent_id == "agent-b" && item.purpose == "live"));
    }

    #[test]
    fn a_page_read_after_the_previous_page_key_is_the_page_at_its_offset() {
        let conn = database_with_two_agents();
        let scopes = [SpanScope::Agent("agent-a"), SpanScope::Instance("run-a"), SpanScope::Instance("run-b")];
        for scope in scopes {
            for order in [SpanOrder::Id, SpanOrder::StartedAt, SpanOrder::InsertedAt] {
                for ascending in [true, false] {
                    for sorted_up_to in [0, u64::MAX] {
                        let mut key: Option<String> = None;
                        for offset in (0..40).step_by(6) {
                            let walked =
                                list_scoped(&conn, scope, order, ascending, page(offset, 6), sorted_up_to).unwrap();
                            let start = PageStart { offset, after: key.as_deref(), limit: 6 };
                            let sought = list_scoped(&conn, scope, order, ascending, start, sorted_up_to).unwrap();
                            assert_eq!(ids(&walked.0), ids(&sought.0), "{scope:?} {order:?} {ascending} {offset}");
                            key = walked.0.last().map(|last| order.page_key(&last.span));
                        }
                    }
                }
            }
        }
    }
}
