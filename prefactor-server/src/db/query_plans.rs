//! Every statement the list reads run, checked with `EXPLAIN QUERY PLAN`: none may scan the
//! span or instance table (or a whole index of one) — on an empty database and after
//! `ANALYZE` has given the planner statistics. The walks allowed are the two declared ones (see
//! [`is_declared_walk`]), in list order and stopped by the page's LIMIT.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::trace::{TraceEvent, TraceEventCodes};

use crate::db::instances::PageStart;
use crate::db::runs::{RunFilter, RunKey, RunPageStart};
use crate::db::spans::{SpanOrder, SpanScope};
use crate::db::{agents, counts, instances, migrations, runs, spans};

fn filled_database() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    migrations::migrate(&mut conn).unwrap();
    let statuses = ["pending", "active", "complete", "failed", "cancelled", "terminated"];
    for agent in 0..4 {
        conn.execute(
            "INSERT INTO agents (id, name, status, inserted_at, updated_at) VALUES (?1, 'a', 'active', 't', 't')",
            [format!("agent-{agent}")],
        )
        .unwrap();
    }
    for instance in 0..400 {
        conn.execute(
            "INSERT INTO agent_instances (id, agent_id, agent_version_id, environment_id, status, purpose,
                 update_current_version, inserted_at, updated_at)
             VALUES (?1, ?2, 'v', 'e', ?3, 'live', 1, ?1, ?1)",
            rusqlite::params![format!("run-{instance:04}"), format!("agent-{}", instance % 4), statuses[instance % 6]],
        )
        .unwrap();
    }
    for span in 0..4_000 {
        conn.execute(
            "INSERT INTO agent_spans (id, agent_instance_id, schema_name, status, payload, started_at, inserted_at,
                 updated_at)
             VALUES (?1, ?2, 'x', ?3, '{}', ?1, ?1, ?1)",
            rusqlite::params![format!("span-{span:05}"), format!("run-{:04}", span % 400), statuses[span % 5]],
        )
        .unwrap();
    }
    conn
}

/// Runs every list read in every shape (filters, orders, directions, from an offset or after
/// a page key) and returns the statements they ran, with their parameters expanded.
fn statements_of_every_list_read(conn: &mut Connection) -> Vec<String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    conn.trace_v2(
        TraceEventCodes::SQLITE_TRACE_STMT,
        Some(move |event: TraceEvent<'_>| {
            if let TraceEvent::Stmt(statement, _) = event
                && let Some(sql) = statement.expanded_sql()
            {
                sink.lock().unwrap().push(sql);
            }
        }),
    )
    .unwrap();
    run_every_list_read(conn);
    conn.trace_v2(TraceEventCodes::empty(), None::<fn(TraceEvent<'_>)>).unwrap();
    let mut statements = seen.lock().unwrap().clone();
    statements.sort();
    statements.dedup();
    statements
}

fn run_every_list_read(conn: &Connection) {
    for ascending in [true, false] {
        for agent in [None, Some("agent-1")] {
            for after in [None, Some("run-0200")] {
                instances::list(conn, agent, PageStart { offset: 10, after, limit: 5 }, ascending).unwrap();
            }
        }
        for scope in [SpanScope::Instance("run-0001"), SpanScope::Agent("agent-1")] {
            for order in [SpanOrder::Id, SpanOrder::StartedAt, SpanOrder::InsertedAt] {
                for sorted_up_to in [0, u64::MAX] {
                    let key = order.page_key(&spans::find(conn, "span-00401").unwrap().unwrap());
                    for after in [None, Some(key.as_str())] {
                        let page = PageStart { offset: 10, after, limit: 5 };
                        spans::list_scoped(conn, scope, order, ascending, page, sorted_up_to).unwrap();
                    }
                }
            }
        }
        agents::list(conn, 0, 5, ascending).unwrap();
    }
    agents::find(conn, "agent-1").unwrap();
    counts::instance_span_counts(conn, "run-0001").unwrap();
    runs::agents(conn).unwrap();
    let key = RunKey { inserted_at: "run-0201".into(), id: "run-0201".into() };
    let starts =
        [RunPageStart::Offset(0), RunPageStart::Offset(10), RunPageStart::Older(key.clone()), RunPageStart::Newer(key)];
    for status in [None, Some("failed")] {
        for (since, until) in
            [(None, None), (Some("run-0100"), Some("run-0300")), (Some("run-0100"), None), (None, Some("run-0300"))]
        {
            for search in [None, Some("x")] {
                let filter = RunFilter {
                    agent_id: "agent-1".into(),
                    status: status.map(str::to_string),
                    since: since.map(str::to_string),
                    until: until.map(str::to_string),
                    search: search.map(str::to_string),
                };
                for start in &starts {
                    let searched_newer = search.is_some() && matches!(start, RunPageStart::Newer(_));
                    assert_eq!(runs::runs(conn, &filter, start, 5).is_err(), searched_newer);
                }
            }
        }
    }
    runs::run_spans(conn, "run-0001").unwrap();
    runs::fingerprint(conn, "run-0001").unwrap();
}

/// The plan of `sql`, one detail line per step.
fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    statement.query_map([], |row| row.get::<_, String>(3)).unwrap().collect::<Result<Vec<_>, _>>().unwrap()
}

/// A step that reads every row of the span or instance table or of one of their indexes.
fn is_full_scan(step: &str) -> bool {
    let scanned = ["SCAN s", "SCAN i", "SCAN agent_spans", "SCAN agent_instances"];
    scanned.iter().any(|prefix| step == *prefix || step.starts_with(&format!("{prefix} ")))
}

/// The declared walks, in list order (no sort) and stopped by LIMIT: the span table's primary
/// key for an agent with many spans, and the id index for the first page of every instance
/// (a deeper page starts at its id bucket: a range).
fn is_declared_walk(sql: &str, steps: &[String]) -> bool {
    let in_order = sql.contains("LIMIT") && !steps.iter().any(|step| step.contains("TEMP B-TREE"));
    let agent_spans = sql.contains("CROSS JOIN agent_instances i")
        && sql.contains("ORDER BY s.id")
        && steps.iter().any(|step| step == "SCAN s");
    let every_instance = sql.contains("FROM agent_instances WHERE NULL IS NULL AND NULL IS NULL")
        && steps == ["SCAN agent_instances USING INDEX sqlite_autoindex_agent_instances_1"];
    in_order && (agent_spans || every_instance)
}

/// The trace UI's runs of an agent (its pages, its capped counts, a search's runs) must be one
/// range of a time index read in page order: a plan that reads the agent's runs through
/// another index and filters or sorts them walks every run of the agent, which is no full scan
/// of the table but grows with it all the same (0.9 s at 3M spans for a time filter).
fn walks_an_agents_runs(sql: &str, steps: &[String]) -> bool {
    // An agent named by a parameter (expanded to a literal): the runs of one agent.
    if !(sql.contains("FROM agent_instances i ") && sql.contains("i.agent_id = '")) {
        return false;
    }
    let by_time = |step: &&String| {
        step.starts_with("SEARCH i USING INDEX agent_instances_by_agent_time (agent_id=?")
            || step.starts_with("SEARCH i USING INDEX agent_instances_by_agent_status_time (agent_id=? AND status=?")
            || step.starts_with("SEARCH i USING COVERING INDEX agent_instances_by_agent_time (agent_id=?")
            || step.starts_with(
                "SEARCH i USING COVERING INDEX agent_instances_by_agent_status_time (agent_id=? AND status=?",
            )
    };
    let Some(search) = steps.iter().find(by_time) else {
        return true;
    };
    let time_bounded =
        sql.contains("i.inserted_at >=") || sql.contains("i.inserted_at <=") || sql.contains("(i.inserted_at, i.id)");
    let unsorted = !steps.iter().any(|step| step.contains("TEMP B-TREE"));
    let status_used = !sql.contains("i.status =") || search.contains("status=?");
    !(unsorted && status_used && (!time_bounded || search.contains("inserted_at")))
}

fn check_plans(conn: &Connection, statements: &[String]) {
    let mut failures = Vec::new();
    for sql in statements {
        let steps = plan(conn, sql);
        let scans = steps.iter().any(|step| is_full_scan(step)) && !is_declared_walk(sql, &steps);
        if scans || walks_an_agents_runs(sql, &steps) {
            failures.push(format!("{sql}\n  => {steps:?}"));
        }
    }
    assert!(failures.is_empty(), "full scans:\n{}", failures.join("\n"));
}

#[test]
fn no_list_read_scans_the_span_or_instance_table() {
    let mut conn = filled_database();
    let statements = statements_of_every_list_read(&mut conn);
    assert!(statements.len() > 60, "every shape was run: {}", statements.len());
    assert!(statements.iter().any(|sql| sql.contains("CROSS JOIN")), "the walk was run too");
    assert!(statements.iter().any(|sql| sql.contains("FROM agent_span_buckets")), "and a seek to its offset");
    let ran = |text: &str| statements.iter().any(|sql| sql.contains(text));
    assert!(ran("SELECT EXISTS (SELECT 1 FROM (SELECT payload"), "the search's check of a run's spans");
    assert!(ran("SELECT COUNT(*) FROM (SELECT 1 FROM agent_instances i"), "a time filter's capped count");
    assert!(ran("(i.inserted_at, i.id) >") && ran("(i.inserted_at, i.id) <"), "runs pages by key both ways");
    assert!(ran("FROM agent_instance_buckets WHERE agent_id = ''"), "a seek in every run's buckets");
    check_plans(&conn, &statements);
    conn.execute_batch("ANALYZE").unwrap();
    check_plans(&conn, &statements);
}

#[test]
fn the_check_finds_a_full_scan() {
    let conn = filled_database();
    let scan = "SELECT id FROM agent_instances WHERE purpose = 'live' ORDER BY id LIMIT 5".to_string();
    let steps = plan(&conn, &scan);
    assert!(steps.iter().any(|step| is_full_scan(step)), "{steps:?}");
    let unbounded = "SELECT s.id FROM agent_spans s CROSS JOIN agent_instances i ON i.id = s.agent_instance_id
        WHERE i.agent_id = 'agent-1' ORDER BY s.started_at";
    assert!(!is_declared_walk(unbounded, &plan(&conn, unbounded)));
    // The time filter as it was: the agent's id index, every run of the agent filtered.
    let filtered = "SELECT i.id FROM agent_instances i INDEXED BY agent_instances_by_agent
        WHERE i.agent_id = 'agent-1' AND i.inserted_at >= 'run-0100' ORDER BY i.id DESC LIMIT 5";
    let steps = plan(&conn, filtered);
    assert!(!steps.iter().any(|step| is_full_scan(step)) && walks_an_agents_runs(filtered, &steps), "{steps:?}");
    let sorted = "SELECT i.id FROM agent_instances i WHERE i.agent_id = 'agent-1' AND i.inserted_at >= 'run-0100'
        ORDER BY i.id DESC LIMIT 5";
    assert!(walks_an_agents_runs(sorted, &plan(&conn, sorted)), "{:?}", plan(&conn, sorted));
}
