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
/// newest entry of the agent's time index (no pass over the instances).
pub fn agents(conn: &Connection) -> Result<Vec<AgentOverview>, ApiError> {
    let mut statement = conn.prepare_cached(
        "SELECT a.id, a.name, a.description,
                (SELECT COALESCE(SUM(c.instances), 0) FROM agent_instance_counts c WHERE c.agent_id = a.id),
                (SELECT MAX(i.inserted_at) FROM agent_instances i WHERE i.agent_id = a.id) AS last_run_at
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

/// A filtered list's count stops after this many runs: the page says "1,000+" rather than
/// counting millions of runs on every read.
pub const COUNT_CAP: u64 = 1_000;

/// Spans one text search reads at most (about 1-3 µs each): past it the search stops and says
/// how far it got, and the next page continues from there.
pub const SEARCH_SPAN_BUDGET: u64 = 10_000;

/// Deepest page read by an offset without a page key (the pages' own links carry a key; an
/// offset alone walks the rows before it).
pub const MAX_UNKEYED_OFFSET: u64 = 10_000;

/// Separates the time from the id in an encoded [`RunKey`] (a timestamp has no `~`).
const KEY_SEPARATOR: char = '~';

/// Where a run sits in the runs page's order: newest registration first, then highest id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    /// Registration time (stored form).
    pub inserted_at: String,
    /// Instance id.
    pub id: String,
}

impl RunKey {
    /// The key of `run`.
    pub fn of(run: &RunOverview) -> RunKey {
        RunKey { inserted_at: run.inserted_at.clone(), id: run.id.clone() }
    }

    /// The key as the page's links carry it: `time~id`.
    ///
    /// ```
    /// use prefactor_server::db::runs::RunKey;
    /// let key = RunKey { inserted_at: "2026-12-05T09:00:00.000000Z".into(), id: "run-1".into() };
    /// assert_eq!(RunKey::decode(&key.encode()), Some(key));
    /// assert_eq!(RunKey::decode("no separator"), None);
    /// ```
    pub fn encode(&self) -> String {
        format!("{}{KEY_SEPARATOR}{}", self.inserted_at, self.id)
    }

    /// Reads an encoded key; `None` when it is not one.
    pub fn decode(text: &str) -> Option<RunKey> {
        let (inserted_at, id) = text.split_once(KEY_SEPARATOR)?;
        (!inserted_at.is_empty() && !id.is_empty())
            .then(|| RunKey { inserted_at: inserted_at.to_string(), id: id.to_string() })
    }
}

/// Where a page of runs starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunPageStart {
    /// This many runs in (at most [`MAX_UNKEYED_OFFSET`]).
    Offset(u64),
    /// Right after this run: the next older page.
    Older(RunKey),
    /// Right before this run: the next newer page.
    Newer(RunKey),
}

/// How far a text search read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SearchProgress {
    /// Runs whose spans were read.
    pub runs_examined: u64,
    /// Spans read (a run's first [`MAX_RUN_SPANS`] at most, as the run view shows them).
    pub spans_examined: u64,
    /// The search stopped at [`SEARCH_SPAN_BUDGET`] before it reached the oldest run; the
    /// page's `older` key continues it.
    pub stopped: bool,
    /// Registration time of the oldest run read.
    pub examined_down_to: Option<String>,
}

/// One page of the runs page.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    /// The runs, newest first.
    pub runs: Vec<RunOverview>,
    /// How many runs match: exact, or at least this many when `total_is_lower_bound` (a
    /// search's: the runs it found on this page, plus one if there may be more).
    pub total: u64,
    /// `total` is a lower bound (a capped count, or a search that has not read every run).
    pub total_is_lower_bound: bool,
    /// Where the next older page starts, if there is one.
    pub older: Option<RunKey>,
    /// Where the next newer page starts, unless this is the first page (or a search's: a
    /// search pages toward older runs only).
    pub newer: Option<RunKey>,
    /// With a text filter: how far the search read.
    pub search: Option<SearchProgress>,
}

/// The runs table with the index the runs page reads it by: `(agent_id, status, inserted_at,
/// id)` with a status filter, else `(agent_id, inserted_at, id)`. Named, not left to the
/// planner, which without statistics took the time index for a status filter and walked every
/// run in the time range (SQLite refuses the statement if the index cannot serve it).
fn runs_table(filter: &RunFilter) -> &'static str {
    if filter.status.is_some() {
        "agent_instances i INDEXED BY agent_instances_by_agent_status_time"
    } else {
        "agent_instances i INDEXED BY agent_instances_by_agent_time"
    }
}

/// The WHERE clause of `filter` (without its text search) over [`runs_table`] and its
/// parameters, numbered from 1: only the filters given, so each shape is its own statement and
/// one range of its index, read in the page's order.
fn run_filter(filter: &RunFilter) -> (Vec<String>, Vec<Value>) {
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
    (conditions, values)
}

/// The runs of `filter` in page order from `key` (`>`: newer, read oldest first; `<`: older),
/// with `limit` and `offset` as its last two parameters.
fn page_sql(table: &str, conditions: &[String], parameters: usize, key: Option<&str>) -> String {
    let mut conditions = conditions.to_vec();
    let direction = if key == Some(">") { "ASC" } else { "DESC" };
    let mut next = parameters + 1;
    if let Some(op) = key {
        conditions.push(format!("(i.inserted_at, i.id) {op} (?{next}, ?{})", next + 1));
        next += 2;
    }
    format!(
        "SELECT i.id, i.status, i.purpose, i.inserted_at, i.started_at, i.finished_at, i.termination_reason,
                i.external_identifier,
                (SELECT COALESCE(SUM(c.spans), 0) FROM instance_span_counts c WHERE c.agent_instance_id = i.id),
                (SELECT COALESCE(SUM(c.spans), 0) FROM instance_span_counts c
                    WHERE c.agent_instance_id = i.id AND c.status = 'failed')
         FROM {table} WHERE {} ORDER BY i.inserted_at {direction}, i.id {direction} LIMIT ?{next} OFFSET ?{}",
        conditions.join(" AND "),
        next + 1
    )
}

fn overview_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunOverview> {
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
}

/// Runs `page_sql` from `start`: the rows in page order (up to `limit`, plus one when there
/// are more beyond).
fn read_page(
    conn: &Connection,
    table: &str,
    conditions: &[String],
    values: &[Value],
    start: &RunPageStart,
    limit: u64,
) -> Result<Vec<RunOverview>, ApiError> {
    let mut values = values.to_vec();
    let (op, offset) = match start {
        RunPageStart::Offset(offset) => (None, *offset),
        RunPageStart::Older(key) | RunPageStart::Newer(key) => {
            values.push(key.inserted_at.clone().into());
            values.push(key.id.clone().into());
            (Some(if matches!(start, RunPageStart::Newer(_)) { ">" } else { "<" }), 0)
        }
    };
    let parameters = values.len() - if op.is_some() { 2 } else { 0 };
    values.push(sql_count(limit.saturating_add(1)).into());
    values.push(sql_count(offset).into());
    let mut statement = conn.prepare_cached(&page_sql(table, conditions, parameters, op))?;
    let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), overview_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One page of an agent's runs, newest registration first, and how many match. Every filter
/// shape reads one range of an index in page order and stops after the page; a page starts
/// at an offset (at most [`MAX_UNKEYED_OFFSET`]) or next to a key the previous page gave, so
/// any depth costs the same. Span counts come from the counters; the first failure's result is
/// read only for runs that have one. The total comes from the counters, except with a time
/// filter (counted up to [`COUNT_CAP`]) or a text search (what it found so far, within its
/// span budget).
pub fn runs(conn: &Connection, filter: &RunFilter, start: &RunPageStart, limit: u64) -> Result<RunPage, ApiError> {
    if let RunPageStart::Offset(offset) = start
        && *offset > MAX_UNKEYED_OFFSET
    {
        return Err(ApiError::validation(
            "offset",
            format!("at most {MAX_UNKEYED_OFFSET} without a page key: follow the page's Older link (after=...)"),
        ));
    }
    let mut page = if filter.search.is_some() {
        search_page(conn, filter, start, limit)?
    } else {
        list_page(conn, filter, start, limit)?
    };
    for run in page.runs.iter_mut().filter(|run| run.failed_count > 0) {
        run.first_failure = conn
            .prepare_cached(
                "SELECT COALESCE(result_payload, '{}') FROM agent_spans
                 WHERE agent_instance_id = ?1 AND status = 'failed' ORDER BY started_at LIMIT 1",
            )?
            .query_row(params![run.id], |row| row.get(0))
            .optional()?;
    }
    Ok(page)
}

/// A page without a text search.
fn list_page(conn: &Connection, filter: &RunFilter, start: &RunPageStart, limit: u64) -> Result<RunPage, ApiError> {
    let (conditions, values) = run_filter(filter);
    let mut rows = read_page(conn, runs_table(filter), &conditions, &values, start, limit)?;
    let newer_page = matches!(start, RunPageStart::Newer(_));
    if newer_page && rows.len() as u64 <= limit {
        // Nothing newer beyond this page: it is the first page, read in full.
        return list_page(conn, filter, &RunPageStart::Offset(0), limit);
    }
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    if newer_page {
        rows.reverse();
    }
    let older = (more || newer_page).then(|| rows.last().map(RunKey::of)).flatten();
    let newer = match start {
        RunPageStart::Offset(0) => None,
        RunPageStart::Older(key) => Some(rows.first().map(RunKey::of).unwrap_or_else(|| key.clone())),
        _ => rows.first().map(RunKey::of),
    };
    let (total, total_is_lower_bound) = if filter.since.is_some() || filter.until.is_some() {
        let counted = capped_count(conn, runs_table(filter), &conditions, &values)?;
        (counted.min(COUNT_CAP), counted > COUNT_CAP)
    } else {
        (counts::instance_total(conn, Some(&filter.agent_id), filter.status.as_deref())?, false)
    };
    Ok(RunPage { runs: rows, total, total_is_lower_bound, older, newer, search: None })
}

/// How many runs match, counting up to one more than [`COUNT_CAP`] in the filter's index.
fn capped_count(conn: &Connection, table: &str, conditions: &[String], values: &[Value]) -> Result<u64, ApiError> {
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {} LIMIT {})",
        conditions.join(" AND "),
        COUNT_CAP + 1
    );
    let counted: i64 =
        conn.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(values.iter()), |row| row.get(0))?;
    Ok(u64::try_from(counted).unwrap_or(0))
}

/// A page of runs with a span whose payload or result contains the search text: the runs of
/// the other filters are read newest first (from an older-page key, else from the newest),
/// each run's first [`MAX_RUN_SPANS`] spans in start order, until the page is full or
/// [`SEARCH_SPAN_BUDGET`] spans were read; then the page says how far it got and its `older`
/// key continues from the last run read. A search pages toward older runs only (a newer-page
/// key is refused).
fn search_page(conn: &Connection, filter: &RunFilter, start: &RunPageStart, limit: u64) -> Result<RunPage, ApiError> {
    let from = match start {
        RunPageStart::Older(key) => RunPageStart::Older(key.clone()),
        RunPageStart::Offset(_) => RunPageStart::Offset(0),
        RunPageStart::Newer(_) => {
            return Err(ApiError::validation("before", "a search pages toward older runs only: start from the newest"));
        }
    };
    let pattern = like_pattern(filter.search.as_deref().unwrap_or_default());
    let (conditions, mut values) = run_filter(filter);
    let mut op = None;
    if let RunPageStart::Older(key) = &from {
        values.push(key.inserted_at.clone().into());
        values.push(key.id.clone().into());
        op = Some("<");
    }
    let parameters = values.len() - if op.is_some() { 2 } else { 0 };
    // Every run read costs at least one unit of the budget, so the budget bounds the runs too.
    values.push(sql_count(SEARCH_SPAN_BUDGET.saturating_add(1)).into());
    values.push(0i64.into());
    let mut candidates = conn.prepare_cached(&page_sql(runs_table(filter), &conditions, parameters, op))?;
    let mut matches_text = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM (SELECT payload, result_payload FROM agent_spans
             WHERE agent_instance_id = ?1 ORDER BY started_at, id LIMIT ?3)
         WHERE payload LIKE ?2 ESCAPE '\\' OR result_payload LIKE ?2 ESCAPE '\\')",
    )?;
    let mut rows = candidates.query(rusqlite::params_from_iter(values.iter()))?;
    let mut progress = SearchProgress { runs_examined: 0, spans_examined: 0, stopped: false, examined_down_to: None };
    let mut budget = SEARCH_SPAN_BUDGET;
    let mut found: Vec<RunOverview> = Vec::new();
    let mut last_examined = None;
    while let Some(row) = rows.next()? {
        let run = overview_from_row(row)?;
        let spans = run.span_count.min(MAX_RUN_SPANS as u64);
        if spans.max(1) > budget {
            progress.stopped = true;
            break;
        }
        budget -= spans.max(1);
        progress.runs_examined += 1;
        progress.spans_examined += spans;
        progress.examined_down_to = Some(run.inserted_at.clone());
        last_examined = Some(RunKey::of(&run));
        let matched = spans > 0
            && matches_text.query_row(params![run.id, pattern, MAX_RUN_SPANS], |row| row.get::<_, bool>(0))?;
        if matched {
            found.push(run);
            if found.len() as u64 > limit {
                break;
            }
        }
    }
    let more = found.len() as u64 > limit;
    found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    // Stopped: the rest of the runs are not read yet, so the next page continues after the
    // last one read.
    let older = if more {
        progress.stopped = false;
        found.last().map(RunKey::of)
    } else if progress.stopped {
        last_examined
    } else {
        None
    };
    let total = found.len() as u64 + u64::from(older.is_some());
    Ok(RunPage {
        runs: found,
        total,
        total_is_lower_bound: older.is_some(),
        older,
        newer: None,
        search: Some(progress),
    })
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
/// its span count and its span counts by status (from the counters, so a poll costs the same for a run of
/// 10 spans and of a million: a span is created, or finished with a new status, and no span
/// write leaves the counts as they were). `None` when the run does not exist.
pub fn fingerprint(conn: &Connection, instance_id: &str) -> Result<Option<String>, ApiError> {
    let run: Option<(String, String)> = conn
        .prepare_cached("SELECT status, updated_at FROM agent_instances WHERE id = ?1")?
        .query_row(params![instance_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((status, updated_at)) = run else {
        return Ok(None);
    };
    let mut statement = conn.prepare_cached(
        "SELECT status, spans FROM instance_span_counts WHERE agent_instance_id = ?1 AND spans <> 0 ORDER BY status",
    )?;
    let counts =
        statement.query_map(params![instance_id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
    let counts = counts.collect::<Result<Vec<_>, _>>()?;
    let total: i64 = counts.iter().map(|(_, spans)| spans).sum();
    let by_status: Vec<String> = counts.iter().map(|(status, spans)| format!("{status}={spans}")).collect();
    Ok(Some(format!("{status}|{updated_at}|{total}|{}", by_status.join(","))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::migrations::migrate;

    #[test]
    fn like_wildcards_in_the_search_text_are_literal() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    /// `runs` runs of agent `agent` (run `n` registered at second `n / 3`: three share a time,
    /// so the id breaks ties), every fourth failed, each with `spans` spans whose payload is
    /// `{"n": n}` plus the needle in runs whose `n % 7 == 3`.
    fn database(runs: u32, spans: u32) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute(
            "INSERT INTO agents (id, name, status, inserted_at, updated_at) VALUES ('agent', 'a', 'active', 't', 't')",
            [],
        )
        .unwrap();
        for n in 0..runs {
            let status = if n % 4 == 0 { "failed" } else { "complete" };
            tx.execute(
                "INSERT INTO agent_instances (id, agent_id, agent_version_id, environment_id, status, purpose,
                     update_current_version, inserted_at, updated_at)
                 VALUES (?1, 'agent', 'v', 'e', ?2, 'live', 1, ?3, ?3)",
                params![format!("run-{:05}", (n * 7919) % 100_000), status, time(n / 3)],
            )
            .unwrap();
            for span in 0..spans {
                let payload =
                    if n % 7 == 3 { format!("{{\"n\":{n},\"q\":\"Needle\"}}") } else { format!("{{\"n\":{n}}}") };
                tx.execute(
                    "INSERT INTO agent_spans (id, agent_instance_id, schema_name, status, payload, started_at, inserted_at,
                         updated_at) VALUES (?1, ?2, 'x', 'complete', ?3, ?4, 't', '')",
                    params![format!("span-{n:05}-{span:04}"), format!("run-{:05}", (n * 7919) % 100_000), payload, time(n)],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
        conn
    }

    fn time(second: u32) -> String {
        format!("2026-12-05T{:02}:{:02}:{:02}.000000Z", second / 3600, second / 60 % 60, second % 60)
    }

    /// What the page order is by definition: the filter's runs, newest registration first.
    fn expected(conn: &Connection, filter: &RunFilter) -> Vec<String> {
        let mut sql = "SELECT id FROM agent_instances WHERE agent_id = ?1 AND (?2 IS NULL OR status = ?2)
             AND (?3 IS NULL OR inserted_at >= ?3) AND (?4 IS NULL OR inserted_at <= ?4)"
            .to_string();
        sql.push_str(" ORDER BY inserted_at DESC, id DESC");
        let mut statement = conn.prepare(&sql).unwrap();
        let rows = statement
            .query_map(params![filter.agent_id, filter.status, filter.since, filter.until], |row| row.get(0))
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn ids(page: &RunPage) -> Vec<String> {
        page.runs.iter().map(|run| run.id.clone()).collect()
    }

    fn filters() -> Vec<RunFilter> {
        let base = RunFilter { agent_id: "agent".into(), ..RunFilter::default() };
        vec![
            base.clone(),
            RunFilter { status: Some("failed".into()), ..base.clone() },
            RunFilter { since: Some(time(10)), ..base.clone() },
            RunFilter { until: Some(time(30)), ..base.clone() },
            RunFilter { status: Some("complete".into()), since: Some(time(5)), until: Some(time(33)), ..base },
        ]
    }

    #[test]
    fn pages_by_key_in_both_directions_are_the_pages_by_offset() {
        let conn = database(130, 0);
        for filter in filters() {
            let all = expected(&conn, &filter);
            let limit = 7u64;
            for offset in 0..=all.len() as u64 {
                let page = runs(&conn, &filter, &RunPageStart::Offset(offset), limit).unwrap();
                let want: Vec<String> = all.iter().skip(offset as usize).take(limit as usize).cloned().collect();
                assert_eq!(ids(&page), want, "{filter:?} offset {offset}");
            }
            // Older pages from the first, then newer pages back from the last.
            let mut pages = vec![runs(&conn, &filter, &RunPageStart::Offset(0), limit).unwrap()];
            assert_eq!(pages[0].newer, None);
            while let Some(older) = pages.last().unwrap().older.clone() {
                pages.push(runs(&conn, &filter, &RunPageStart::Older(older), limit).unwrap());
                assert!(pages.len() <= all.len() / limit as usize + 1, "the pages end");
            }
            let walked: Vec<String> = pages.iter().flat_map(ids).collect();
            assert_eq!(walked, all, "{filter:?}");
            for index in (1..pages.len()).rev() {
                let newer = pages[index].newer.clone().expect("a page after the first has a newer key");
                let back = runs(&conn, &filter, &RunPageStart::Newer(newer), limit).unwrap();
                assert_eq!(ids(&back), ids(&pages[index - 1]), "{filter:?} back to page {}", index - 1);
            }
            assert_eq!((pages[0].total, pages[0].total_is_lower_bound), (all.len() as u64, false), "{filter:?}");
        }
    }

    #[test]
    fn a_time_filters_count_stops_at_the_cap() {
        let conn = database(COUNT_CAP as u32 + 60, 0);
        let filter = RunFilter { agent_id: "agent".into(), since: Some(time(0)), ..RunFilter::default() };
        let page = runs(&conn, &filter, &RunPageStart::Offset(0), 50).unwrap();
        assert_eq!((page.total, page.total_is_lower_bound), (COUNT_CAP, true));
        let filter = RunFilter { agent_id: "agent".into(), since: Some(time(340)), ..RunFilter::default() };
        let page = runs(&conn, &filter, &RunPageStart::Offset(0), 50).unwrap();
        assert_eq!((page.total, page.total_is_lower_bound), (expected(&conn, &filter).len() as u64, false));
        let unfiltered = RunFilter { agent_id: "agent".into(), ..RunFilter::default() };
        let page = runs(&conn, &unfiltered, &RunPageStart::Offset(0), 50).unwrap();
        assert_eq!((page.total, page.total_is_lower_bound), (COUNT_CAP + 60, false), "from the counters");
        let deep = runs(&conn, &unfiltered, &RunPageStart::Offset(MAX_UNKEYED_OFFSET + 1), 50).unwrap_err();
        assert_eq!(deep.status, 422);
    }

    /// 40 runs of 700 spans: a search reads at most the budget's spans per page, says so, and
    /// its older keys continue it until every run was read; together the pages hold exactly
    /// the runs with the text (case-insensitive), newest first.
    #[test]
    fn a_search_reads_a_bounded_number_of_spans_and_continues_where_it_stopped() {
        let conn = database(40, 700);
        let filter = RunFilter { agent_id: "agent".into(), search: Some("nEEDLE".into()), ..RunFilter::default() };
        let want: Vec<String> = {
            let all = expected(&conn, &RunFilter { search: None, ..filter.clone() });
            let needle: Vec<String> = conn
                .prepare("SELECT DISTINCT agent_instance_id FROM agent_spans WHERE payload LIKE '%needle%'")
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            all.into_iter().filter(|id| needle.contains(id)).collect()
        };
        assert!(want.len() >= 5, "{want:?}");
        let mut found = Vec::new();
        let mut start = RunPageStart::Offset(0);
        let mut pages = 0;
        loop {
            let page = runs(&conn, &filter, &start, 2).unwrap();
            let search = page.search.clone().unwrap();
            assert!(search.spans_examined <= SEARCH_SPAN_BUDGET, "{search:?}");
            assert_eq!(page.total_is_lower_bound, page.older.is_some());
            found.extend(ids(&page));
            pages += 1;
            assert!(pages <= 40, "the search ends");
            match page.older {
                Some(key) => start = RunPageStart::Older(key),
                None => break,
            }
        }
        assert_eq!(found, want);
        let first = runs(&conn, &filter, &RunPageStart::Offset(0), 50).unwrap();
        let search = first.search.unwrap();
        assert!(search.stopped && search.spans_examined == SEARCH_SPAN_BUDGET / 700 * 700, "{search:?}");
        assert_eq!(first.older.as_ref().map(|key| key.inserted_at.clone()), search.examined_down_to);
        let newer = RunKey { inserted_at: time(1), id: "run-00000".into() };
        assert_eq!(runs(&conn, &filter, &RunPageStart::Newer(newer), 50).unwrap_err().status, 422);
    }
}
