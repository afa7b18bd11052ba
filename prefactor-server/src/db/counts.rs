//! Counts kept, not computed: the counter tables that triggers update in the same transaction
//! as every insert, status change and delete of an instance or a span (migration 6). Every
//! total a read answers with comes from here, so a read costs the same at 10 spans and at 10
//! million.

use prefactor_protocol::{AgentStatus, InstanceCounts, SpanCounts};
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::instances::parse_status;
use crate::error::ApiError;

/// Span counts of instance `instance_id` by status.
pub fn instance_span_counts(conn: &Connection, instance_id: &str) -> Result<SpanCounts, ApiError> {
    let mut counts = SpanCounts::default();
    let sql = "SELECT status, spans FROM instance_span_counts WHERE agent_instance_id = ?1";
    for (status, count) in counts_by_status(conn, sql, instance_id)? {
        counts.total += count;
        match status {
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

/// Instance counts of agent `agent_id` by status.
pub fn agent_instance_counts(conn: &Connection, agent_id: &str) -> Result<InstanceCounts, ApiError> {
    let mut counts = InstanceCounts::default();
    let sql = "SELECT status, instances FROM agent_instance_counts WHERE agent_id = ?1";
    for (status, count) in counts_by_status(conn, sql, agent_id)? {
        counts.total += count;
        match status {
            AgentStatus::Pending => counts.pending += count,
            AgentStatus::Active => counts.active += count,
            AgentStatus::Complete => counts.complete += count,
            AgentStatus::Failed => counts.failed += count,
            AgentStatus::Cancelled => counts.cancelled += count,
            AgentStatus::Terminated => counts.terminated += count,
        }
    }
    counts.finished = counts.complete + counts.failed + counts.cancelled + counts.terminated;
    Ok(counts)
}

/// The `(status, count)` rows `sql` selects for `key` from a counter table.
fn counts_by_status(conn: &Connection, sql: &str, key: &str) -> Result<Vec<(AgentStatus, u64)>, ApiError> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params![key], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
    let mut counts = Vec::new();
    for row in rows {
        let (status, count) = row?;
        counts.push((parse_status(&status), non_negative(count)));
    }
    Ok(counts)
}

/// How many instances agent `agent_id` has (every agent's when `None`), optionally only those
/// in `status`.
pub fn instance_total(conn: &Connection, agent_id: Option<&str>, status: Option<&str>) -> Result<u64, ApiError> {
    let total: i64 = match (agent_id, status) {
        (Some(agent_id), Some(status)) => conn
            .prepare_cached("SELECT instances FROM agent_instance_counts WHERE agent_id = ?1 AND status = ?2")?
            .query_row(params![agent_id, status], |row| row.get(0))
            .optional()?
            .unwrap_or(0),
        (Some(agent_id), None) => conn
            .prepare_cached("SELECT COALESCE(SUM(instances), 0) FROM agent_instance_counts WHERE agent_id = ?1")?
            .query_row(params![agent_id], |row| row.get(0))?,
        (None, Some(status)) => conn
            .prepare_cached("SELECT COALESCE(SUM(instances), 0) FROM agent_instance_counts WHERE status = ?1")?
            .query_row(params![status], |row| row.get(0))?,
        (None, None) => conn
            .prepare_cached("SELECT COALESCE(SUM(instances), 0) FROM agent_instance_counts")?
            .query_row([], |row| row.get(0))?,
    };
    Ok(non_negative(total))
}

/// How many spans the instances of agent `agent_id` have.
pub fn agent_span_total(conn: &Connection, agent_id: &str) -> Result<u64, ApiError> {
    let total: Option<i64> = conn
        .prepare_cached("SELECT spans FROM agent_span_counts WHERE agent_id = ?1")?
        .query_row(params![agent_id], |row| row.get(0))
        .optional()?;
    Ok(non_negative(total.unwrap_or(0)))
}

/// How many spans there are (one counter row per agent).
pub fn all_span_total(conn: &Connection) -> Result<u64, ApiError> {
    let total: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(spans), 0) FROM agent_span_counts")?
        .query_row([], |row| row.get(0))?;
    Ok(non_negative(total))
}

/// How many spans instance `instance_id` has.
pub fn instance_span_total(conn: &Connection, instance_id: &str) -> Result<u64, ApiError> {
    let total: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(spans), 0) FROM instance_span_counts WHERE agent_instance_id = ?1")?
        .query_row(params![instance_id], |row| row.get(0))?;
    Ok(non_negative(total))
}

/// A counter as a count: never below zero, even in a file edited by hand.
fn non_negative(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}
