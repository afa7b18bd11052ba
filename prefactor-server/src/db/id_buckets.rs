//! Where the n-th span or run of an agent is in id order, without walking the n before it.
//!
//! SQLite answers `OFFSET n` by stepping over n rows, and an agent's spans have no index of
//! their own (the span table is clustered on the id; an `(agent, id)` index would cost ~70
//! bytes a span), so a cold jump to offset 450,000 of an agent's spans took 0.3–0.5 s at 1M
//! spans and grew with the depth (its runs, walking their index, ~10 times less). Instead,
//! triggers (migration 8) keep the number of spans and of runs of each agent per id prefix at
//! two widths: [`COARSE`] characters (about 17 minutes of a PFID's time) and [`FINE`] (about a
//! second). A seek sums the coarse buckets from the list's end until the offset falls inside
//! one, does the same with the fine buckets inside it, and the page is then read from that
//! fine bucket's edge with the remaining offset: it walks at most the rows in one fine bucket
//! (for spans, of every agent). The counts are exact (kept in the same transaction as the
//! rows, read in the same snapshot), so the page is exactly the one `OFFSET` would give,
//! whatever the ids look like; only the cost depends on how many ids share a prefix, which
//! for PFIDs is bounded by the ingest rate.

use rusqlite::{Connection, params};

use crate::error::ApiError;

/// Width of the coarse buckets, in characters of the id.
pub const COARSE: usize = 6;
/// Width of the fine buckets.
pub const FINE: usize = 8;

/// Sorts after every character an id can hold, so `prefix + END` bounds the ids with `prefix`
/// from above (text compares as UTF-8 bytes: U+10FFFF starts with 0xF4).
const END: char = '\u{10FFFF}';

/// Where a page starts: the condition on `s.id` that begins at the bucket the offset falls
/// in, its bound, and how many of the agent's spans come before that bucket in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seek {
    /// `>=` (ascending) or `<` (descending).
    pub op: &'static str,
    /// The id bound the page is read from.
    pub bound: String,
    /// The agent's spans before the bound, in list order.
    pub skipped: u64,
}

/// The agent id whose run buckets count every agent's runs (migration 10): no agent has it,
/// agent ids being PFIDs. A seek in [`IdList::Runs`] with it places an offset of the list of
/// every run.
pub const EVERY_AGENT: &str = "";

/// Which of an agent's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdList {
    /// Its spans (`agent_span_buckets`).
    Spans,
    /// Its runs (`agent_instance_buckets`).
    Runs,
}

/// The bucket that holds the row `offset` rows into agent `agent_id`'s `list` in id order
/// (`ascending` or not); `None` when the list has no more than `offset` rows.
pub fn seek(
    conn: &Connection,
    list: IdList,
    agent_id: &str,
    ascending: bool,
    offset: u64,
) -> Result<Option<Seek>, ApiError> {
    let Some((coarse, before_coarse)) = find(conn, list, agent_id, ascending, None, offset)? else {
        return Ok(None);
    };
    // The fine buckets inside the coarse one add up to it (same triggers, same snapshot).
    let (bucket, before_fine) =
        find(conn, list, agent_id, ascending, Some(&coarse), offset - before_coarse)?.unwrap_or((coarse, 0));
    let skipped = before_coarse + before_fine;
    Ok(Some(if ascending {
        Seek { op: ">=", bound: bucket, skipped }
    } else {
        Seek { op: "<", bound: format!("{bucket}{END}"), skipped }
    }))
}

/// Walks the buckets of one width (the coarse ones, or the fine ones inside `within`) in list
/// order and returns the one the row `offset` rows in falls in, with the count before it.
fn find(
    conn: &Connection,
    list: IdList,
    agent_id: &str,
    ascending: bool,
    within: Option<&str>,
    offset: u64,
) -> Result<Option<(String, u64)>, ApiError> {
    let mut statement = conn.prepare_cached(sql(list, within.is_some(), ascending))?;
    let width = if within.is_some() { FINE } else { COARSE } as i64;
    let upper = within.map(|prefix| format!("{prefix}{END}"));
    let mut rows = statement.query(params![agent_id, width, within, upper])?;
    let mut before = 0u64;
    while let Some(row) = rows.next()? {
        let count = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
        if before + count > offset {
            return Ok(Some((row.get(0)?, before)));
        }
        before += count;
    }
    Ok(None)
}

/// The statement of [`find`]: one per list, range and direction (each a range of the primary
/// key; an absent range still names its parameters).
fn sql(list: IdList, within: bool, ascending: bool) -> &'static str {
    macro_rules! shapes {
        ($table:literal, $count:literal) => {
            match (within, ascending) {
                (false, true) => concat!(
                    "SELECT bucket, ",
                    $count,
                    " FROM ",
                    $table,
                    " WHERE agent_id = ?1 AND width = ?2 AND ?3 IS NULL AND ?4 IS NULL ORDER BY bucket ASC"
                ),
                (false, false) => concat!(
                    "SELECT bucket, ",
                    $count,
                    " FROM ",
                    $table,
                    " WHERE agent_id = ?1 AND width = ?2 AND ?3 IS NULL AND ?4 IS NULL ORDER BY bucket DESC"
                ),
                (true, true) => concat!(
                    "SELECT bucket, ",
                    $count,
                    " FROM ",
                    $table,
                    " WHERE agent_id = ?1 AND width = ?2 AND bucket >= ?3 AND bucket < ?4 ORDER BY bucket ASC"
                ),
                (true, false) => concat!(
                    "SELECT bucket, ",
                    $count,
                    " FROM ",
                    $table,
                    " WHERE agent_id = ?1 AND width = ?2 AND bucket >= ?3 AND bucket < ?4 ORDER BY bucket DESC"
                ),
            }
        };
    }
    match list {
        IdList::Spans => shapes!("agent_span_buckets", "spans"),
        IdList::Runs => shapes!("agent_instance_buckets", "instances"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::migrations::migrate;

    /// Spans of two agents whose ids share prefixes unevenly; every seek's bucket holds the
    /// span at its offset, the count before it is exact, and deletes keep the counts.
    #[test]
    fn a_seek_lands_in_the_bucket_of_the_offset_and_counts_what_comes_before() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for (run, agent) in [("run-a", "agent-a"), ("run-b", "agent-b")] {
            conn.execute(
                "INSERT INTO agent_instances (id, agent_id, agent_version_id, environment_id, status, purpose,
                     update_current_version, inserted_at, updated_at)
                 VALUES (?1, ?2, 'v', 'e', 'active', 'live', 1, 't', 't')",
                params![run, agent],
            )
            .unwrap();
        }
        let mut ids = Vec::new();
        for index in 0..300u32 {
            // Prefixes of 6 and 8 characters shared by 1 to 40 spans.
            let id = format!("{:04}{:02}{:02}{index:05}", index / 40, index % 7, index % 3);
            let run = if index % 5 == 0 { "run-b" } else { "run-a" };
            conn.execute(
                "INSERT INTO agent_spans (id, agent_instance_id, schema_name, status, payload, started_at,
                     inserted_at, updated_at) VALUES (?1, ?2, 'x', 'complete', '{}', 't', 't', 't')",
                params![id, run],
            )
            .unwrap();
            ids.push((id, run));
        }
        conn.execute("DELETE FROM agent_spans WHERE id IN (SELECT id FROM agent_spans WHERE id LIKE '0003%')", [])
            .unwrap();
        ids.retain(|(id, _)| !id.starts_with("0003"));
        for (agent, run) in [("agent-a", "run-a"), ("agent-b", "run-b")] {
            let mut own: Vec<&str> = ids.iter().filter(|(_, r)| *r == run).map(|(id, _)| id.as_str()).collect();
            own.sort_unstable();
            for ascending in [true, false] {
                let ordered: Vec<&str> = if ascending { own.clone() } else { own.iter().rev().copied().collect() };
                for (offset, id) in ordered.iter().enumerate() {
                    let found = seek(&conn, IdList::Spans, agent, ascending, offset as u64).unwrap().unwrap();
                    let before = ordered
                        .iter()
                        .filter(|other| {
                            if ascending { **other < found.bound.as_str() } else { **other >= found.bound.as_str() }
                        })
                        .count() as u64;
                    assert_eq!(found.skipped, before, "{agent} {ascending} {offset}");
                    assert!(found.skipped <= offset as u64);
                    assert!(id.starts_with(found.bound.trim_end_matches(END)), "{id} in {}", found.bound);
                }
                assert_eq!(seek(&conn, IdList::Spans, agent, ascending, own.len() as u64).unwrap(), None);
            }
        }
        let empty: i64 =
            conn.query_row("SELECT COUNT(*) FROM agent_span_buckets WHERE spans <= 0", [], |row| row.get(0)).unwrap();
        assert_eq!(empty, 0, "emptied buckets are deleted");
    }

    /// An agent's runs page (and a page of every run) from a seek is the page `OFFSET` gives,
    /// at every offset, both directions, after deletes too.
    #[test]
    fn a_runs_page_from_a_seek_is_the_offset_page() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for index in 0..120u32 {
            conn.execute(
                "INSERT INTO agent_instances (id, agent_id, agent_version_id, environment_id, status, purpose,
                     update_current_version, inserted_at, updated_at)
                 VALUES (?1, ?2, 'v', 'e', 'complete', 'live', 1, 't', 't')",
                params![
                    format!("{:04}{:02}{:02}{index:05}", index / 25, index % 6, index % 4),
                    format!("agent-{}", index % 3)
                ],
            )
            .unwrap();
        }
        conn.execute("DELETE FROM agent_instances WHERE id LIKE '0002%'", []).unwrap();
        // `None`: the list of every run, which seeks in the buckets of EVERY_AGENT.
        for agent in [Some("agent-0"), Some("agent-1"), Some("agent-2"), None] {
            for ascending in [true, false] {
                let order = if ascending { "ASC" } else { "DESC" };
                for offset in 0..110u64 {
                    let expected: Vec<String> = conn
                        .prepare(&format!(
                            "SELECT id FROM agent_instances WHERE ?1 IS NULL OR agent_id = ?1
                             ORDER BY id {order} LIMIT 4 OFFSET ?2"
                        ))
                        .unwrap()
                        .query_map(params![agent, offset as i64], |row| row.get(0))
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    let page = crate::db::instances::PageStart { offset, after: None, limit: 4 };
                    let (rows, _) = crate::db::instances::list(&conn, agent, page, ascending).unwrap();
                    let got: Vec<String> = rows.into_iter().map(|row| row.id).collect();
                    assert_eq!(got, expected, "{agent:?} {ascending} {offset}");
                }
            }
        }
    }
}
