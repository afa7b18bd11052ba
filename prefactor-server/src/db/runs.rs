//! The trace UI's reads: agents with their run counts, an agent's runs filtered by status,
//! time and payload text, all spans of one run, and a run's change fingerprint (what the live
//! view polls).

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::counts;
use crate::db::instances::sql_count;
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

/// Agents, the most recently run first: run counts from the counters, the last run from the
/// newest entry of the agent's instance index (no pass over the instances).
pub fn agents(conn: &Connection) -> Result<Vec<AgentOverview>, ApiError> {
    let mut statement = conn.prepare_cached(
        "SELECT a.id, a.name, a.description,
                (SELECT COALESCE(SUM(c.instances), 0) FROM agent_instance_counts c WHERE c.agent_id = a.id),
                (SELECT i.inserted_at FROM agent_instances i WHERE i.agent_id = a.id ORDER BY i.id DESC LIMIT 1)
                    AS last_run_at
         FROM agents a ORDER BY last_run_at IS NULL, last_run_at DESC, a.id DESC LIMIT ?1",
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

/// The WHERE clause of `filter` over `agent_instances i` and its parameters, numbered from 1:
/// only the filters given, so each shape is its own statement and uses its index (the
/// agent's `(agent_id, id)` index, or `(agent_id, status, id)` with a status).
fn run_filter(filter: &RunFilter) -> (String, Vec<Value>) {
    let mut conditions = vec!["i.agent_id = ?1".to_string()];
    let mut values: Vec<Value> = vec![filter.agent_id.clone().into()];
    let mut add = |condition: &str, value: String| {
        values.push(value.into());
        conditions.push(condition.replace("?N", &format!("?{}", values.len())));
    };
    if let Some(status) = &filter.status {
        add("i.status = ?N", status.clone());
    }
    if let Some(since) = &filter.since {
        add("i.inserted_at >= ?N", since.clone());
    }
    if let Some(until) = &filter.until {
        add("i.inserted_at <= ?N", until.clone());
    }
    if let Some(search) = &filter.search {
        add(
            "EXISTS (SELECT 1 FROM agent_spans s WHERE s.agent_instance_id = i.id
                AND (s.payload LIKE ?N ESCAPE '\\' OR s.result_payload LIKE ?N ESCAPE '\\'))",
            like_pattern(search),
        );
    }
    (conditions.join(" AND "), values)
}

/// One page of an agent's runs, newest first, and how many match. Span counts come from the
/// counters; the first failure's result is read only for runs that have one. The total comes
/// from the counters too, unless a time or text filter is given (then it is counted).
pub fn runs(
    conn: &Connection,
    filter: &RunFilter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<RunOverview>, u64), ApiError> {
    let (condition, mut values) = run_filter(filter);
    let parameters = values.len();
    values.push(sql_count(limit).into());
    values.push(sql_count(offset).into());
    let mut statement = conn.prepare_cached(&format!(
        "SELECT i.id, i.status, i.purpose, i.inserted_at, i.started_at, i.finished_at, i.termination_reason,
                i.external_identifier,
                (SELECT COALESCE(SUM(c.spans), 0) FROM instance_span_counts c WHERE c.agent_instance_id = i.id),
                (SELECT COALESCE(SUM(c.spans), 0) FROM instance_span_counts c
                    WHERE c.agent_instance_id = i.id AND c.status = 'failed')
         FROM agent_instances i WHERE {condition} ORDER BY i.id DESC LIMIT ?{} OFFSET ?{}",
        parameters + 1,
        parameters + 2
    ))?;
    let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), |row| {
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
    })?;
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
    let counted_filters = filter.since.is_some() || filter.until.is_some() || filter.search.is_some();
    let total = if counted_filters {
        let total: i64 = conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM agent_instances i WHERE {condition}"))?
            .query_row(rusqlite::params_from_iter(values[..parameters].iter()), |row| row.get(0))?;
        u64::try_from(total).unwrap_or(0)
    } else {
        counts::instance_total(conn, Some(&filter.agent_id), filter.status.as_deref())?
    };
    Ok((rows, total))
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
    Ok((rows, counts::instance_span_total(conn, instance_id)?))
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
        .prepare_cached(
            "SELECT COUNT(*), MAX(CASE updated_at WHEN '' THEN inserted_at ELSE updated_at END)
                 FROM agent_spans WHERE agent_instance_id = ?1",
        )?
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
