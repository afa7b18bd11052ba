//! The trace UI's reads: agents with their run counts, an agent's runs filtered by status,
//! time and payload text, all spans of one run, and a run's change fingerprint (what the live
//! view polls).

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::spans::{SpanRow, span_from_row};
use crate::error::ApiError;

/// Most agents the agents page lists.
pub const MAX_AGENTS: i64 = 500;
/// Most spans one run view loads; a larger run shows its first spans and says it is cut.
pub const MAX_RUN_SPANS: i64 = 5_000;

/// An agent with its run count.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentOverview {
    /// Agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Number of runs.
    pub run_count: u64,
    /// When its newest run was registered.
    pub last_run_at: Option<String>,
}

/// Agents, the most recently run first.
pub fn agents(conn: &Connection) -> Result<Vec<AgentOverview>, ApiError> {
    let mut statement = conn.prepare_cached(
        "SELECT a.id, a.name, a.description, COUNT(i.id), MAX(i.inserted_at)
         FROM agents a LEFT JOIN agent_instances i ON i.agent_id = a.id
         GROUP BY a.id ORDER BY MAX(i.inserted_at) IS NULL, MAX(i.inserted_at) DESC, a.id DESC LIMIT ?1",
    )?;
    let rows = statement.query_map(params![MAX_AGENTS], |row| {
        Ok(AgentOverview {
            id: row.get(0)?,
            name: row.get(1)?,
            description: row.get(2)?,
            run_count: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
            last_run_at: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The filters of the runs page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// The agent whose runs are listed.
    pub agent_id: String,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Only runs registered at or after this time (stored timestamp form).
    pub since: Option<String>,
    /// Only runs registered at or before this time.
    pub until: Option<String>,
    /// Only runs with a span whose payload or result contains this text (ASCII case-insensitive).
    pub search: Option<String>,
}

/// A row of the runs page.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunOverview {
    /// Instance id.
    pub id: String,
    /// Status.
    pub status: String,
    /// Purpose.
    pub purpose: String,
    /// Registration time.
    pub inserted_at: String,
    /// Start time.
    pub started_at: Option<String>,
    /// Finish time.
    pub finished_at: Option<String>,
    /// Operator's reason when terminated.
    pub termination_reason: Option<String>,
    /// Id in an external system.
    pub external_identifier: Option<String>,
    /// Number of spans.
    pub span_count: u64,
    /// Number of failed spans.
    pub failed_count: u64,
    /// The first failed span's result payload (JSON text), for its error.
    #[serde(skip)]
    pub first_failure: Option<String>,
}

const RUN_FILTER: &str = "i.agent_id = ?1 AND (?2 IS NULL OR i.status = ?2)
    AND (?3 IS NULL OR i.inserted_at >= ?3) AND (?4 IS NULL OR i.inserted_at <= ?4)
    AND (?5 IS NULL OR EXISTS (SELECT 1 FROM agent_spans s WHERE s.agent_instance_id = i.id
         AND (s.payload LIKE ?5 ESCAPE '\\' OR s.result_payload LIKE ?5 ESCAPE '\\')))";

/// One page of an agent's runs, newest first, and how many match. Each run's span counts come
/// from one pass over its entries in the instance index (which carries the status); the first
/// failure's result is read only for runs that have one.
pub fn runs(
    conn: &Connection,
    filter: &RunFilter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<RunOverview>, u64), ApiError> {
    let pattern = filter.search.as_deref().map(like_pattern);
    let mut statement = conn.prepare_cached(&format!(
        "SELECT i.id, i.status, i.purpose, i.inserted_at, i.started_at, i.finished_at, i.termination_reason,
                i.external_identifier, COUNT(s.id), COALESCE(SUM(s.status = 'failed'), 0)
         FROM (SELECT * FROM agent_instances i WHERE {RUN_FILTER} ORDER BY i.id DESC LIMIT ?6 OFFSET ?7) i
         LEFT JOIN agent_spans s ON s.agent_instance_id = i.id
         GROUP BY i.id ORDER BY i.id DESC"
    ))?;
    let bound = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let rows = statement.query_map(
        params![filter.agent_id, filter.status, filter.since, filter.until, pattern, bound(limit), bound(offset)],
        |row| {
            Ok(RunOverview {
                id: row.get(0)?,
                status: row.get(1)?,
                purpose: row.get(2)?,
                inserted_at: row.get(3)?,
                started_at: row.get(4)?,
                finished_at: row.get(5)?,
                termination_reason: row.get(6)?,
                external_identifier: row.get(7)?,
                span_count: u64::try_from(row.get::<_, i64>(8)?).unwrap_or(0),
                failed_count: u64::try_from(row.get::<_, i64>(9)?).unwrap_or(0),
                first_failure: None,
            })
        },
    )?;
    let mut rows = rows.collect::<Result<Vec<_>, _>>()?;
    for run in rows.iter_mut().filter(|run| run.failed_count > 0) {
        run.first_failure = conn
            .prepare_cached(
                "SELECT COALESCE(result_payload, '{}') FROM agent_spans
                 WHERE agent_instance_id = ?1 AND status = 'failed' ORDER BY started_at LIMIT 1",
            )?
            .query_row(params![run.id], |row| row.get(0))
            .optional()?;
    }
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM agent_instances i WHERE {RUN_FILTER}"))?
        .query_row(params![filter.agent_id, filter.status, filter.since, filter.until, pattern], |row| row.get(0))?;
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// `%text%` with LIKE's wildcards in `text` escaped.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// The spans of a run in start order (at most [`MAX_RUN_SPANS`]) and how many it has.
pub fn run_spans(conn: &Connection, instance_id: &str) -> Result<(Vec<SpanRow>, u64), ApiError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, agent_instance_id, parent_span_id, schema_name, status, payload, result_payload,
                sensitive_encoding, started_at, finished_at, inserted_at, updated_at
         FROM agent_spans WHERE agent_instance_id = ?1 ORDER BY started_at, id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![instance_id, MAX_RUN_SPANS], span_from_row)?;
    let rows = rows.collect::<Result<Vec<_>, _>>()?;
    let total: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM agent_spans WHERE agent_instance_id = ?1")?
        .query_row(params![instance_id], |row| row.get(0))?;
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// What changes whenever a run or one of its spans changes: the run's status and last change,
/// its span count and their last change. `None` when the run does not exist.
pub fn fingerprint(conn: &Connection, instance_id: &str) -> Result<Option<String>, ApiError> {
    let run: Option<(String, String)> = conn
        .prepare_cached("SELECT status, updated_at FROM agent_instances WHERE id = ?1")?
        .query_row(params![instance_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((status, updated_at)) = run else {
        return Ok(None);
    };
    let (count, last): (i64, Option<String>) = conn
        .prepare_cached("SELECT COUNT(*), MAX(updated_at) FROM agent_spans WHERE agent_instance_id = ?1")?
        .query_row(params![instance_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(Some(format!("{status}|{updated_at}|{count}|{}", last.unwrap_or_default())))
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_wildcards_in_the_search_text_are_literal() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
