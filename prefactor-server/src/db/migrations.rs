//! Schema migrations, applied in order at start; `PRAGMA user_version` records how many ran.

use rusqlite::Connection;

/// Each entry is one migration; never edit a released entry, append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE agents (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    description         TEXT,
    external_identifier TEXT UNIQUE,
    status              TEXT NOT NULL,
    owner_person_id     TEXT,
    risk_profile_id     TEXT,
    team_id             TEXT,
    inserted_at         TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE agent_versions (
    id                  TEXT PRIMARY KEY,
    agent_id            TEXT NOT NULL,
    name                TEXT,
    external_identifier TEXT,
    description         TEXT,
    inserted_at         TEXT NOT NULL
);
CREATE INDEX agent_versions_by_identifier ON agent_versions (agent_id, external_identifier);

CREATE TABLE schema_versions (
    id                  TEXT PRIMARY KEY,
    agent_id            TEXT NOT NULL,
    external_identifier TEXT,
    document            TEXT NOT NULL,
    inserted_at         TEXT NOT NULL
);
CREATE INDEX schema_versions_by_identifier ON schema_versions (agent_id, external_identifier);

CREATE TABLE agent_instances (
    id                     TEXT PRIMARY KEY,
    agent_id               TEXT NOT NULL,
    agent_version_id       TEXT NOT NULL,
    schema_version_id      TEXT,
    environment_id         TEXT NOT NULL,
    status                 TEXT NOT NULL,
    purpose                TEXT NOT NULL,
    update_current_version INTEGER NOT NULL,
    termination_reason     TEXT,
    quality_payloads       TEXT NOT NULL DEFAULT '{}',
    quality_summaries      TEXT NOT NULL DEFAULT '{}',
    inserted_at            TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    started_at             TEXT,
    finished_at            TEXT
);
CREATE INDEX agent_instances_by_agent ON agent_instances (agent_id, id);

CREATE TABLE agent_spans (
    id                 TEXT PRIMARY KEY,
    agent_instance_id  TEXT NOT NULL,
    parent_span_id     TEXT,
    schema_name        TEXT NOT NULL,
    status             TEXT NOT NULL,
    payload            TEXT NOT NULL,
    result_payload     TEXT,
    sensitive_encoding INTEGER,
    started_at         TEXT NOT NULL,
    finished_at        TEXT,
    inserted_at        TEXT NOT NULL,
    updated_at         TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX agent_spans_by_instance ON agent_spans (agent_instance_id, started_at, id);

CREATE TABLE idempotency_keys (
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    inserted_at  TEXT NOT NULL,
    PRIMARY KEY (method, path, key)
) WITHOUT ROWID;
"#,
    r#"
-- Answers of terminal spans are stored as a reference (the span id and the control signal)
-- instead of a ~1 KB body: see handlers/span_answer.rs.
ALTER TABLE idempotency_keys ADD COLUMN span_id TEXT;
ALTER TABLE idempotency_keys ADD COLUMN control TEXT;
"#,
    r#"
-- The client's key first in the primary key: method and path are the same for most rows
-- (every span create), so with them first every b-tree comparison went through all three
-- fields; with the key first it is almost always decided by the first.
CREATE TABLE idempotency_keys_by_key (
    key          TEXT NOT NULL,
    path         TEXT NOT NULL,
    method       TEXT NOT NULL,
    request_hash INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    inserted_at  TEXT NOT NULL,
    span_id      TEXT,
    control      TEXT,
    PRIMARY KEY (key, path, method)
) WITHOUT ROWID;
INSERT INTO idempotency_keys_by_key (key, path, method, request_hash, status, body, inserted_at, span_id, control)
    SELECT key, path, method, request_hash, status, body, inserted_at, span_id, control FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_by_key RENAME TO idempotency_keys;
"#,
    r#"
-- What prefactor-core 0.5.3 and the live API's read side carry: an instance's id in an
-- external system (unique per agent), its runtime environment, and the legacy single quality
-- payload with its rendered summary.
ALTER TABLE agent_instances ADD COLUMN external_identifier TEXT;
ALTER TABLE agent_instances ADD COLUMN runtime_environment TEXT;
ALTER TABLE agent_instances ADD COLUMN quality_payload TEXT;
ALTER TABLE agent_instances ADD COLUMN quality_summary TEXT;
CREATE UNIQUE INDEX agent_instances_by_external_identifier
    ON agent_instances (agent_id, external_identifier) WHERE external_identifier IS NOT NULL;
"#,
    r#"
-- The instance index also carries each span's status, so an instance's span counts by status
-- (every instance answer, every row of an instance list) read the index alone instead of
-- every span row: with 1,000-span runs a page of 100 runs went from ~100 ms to a few ms. Still
-- one index per span insert; a finish that changes the status now rewrites its entry.
CREATE INDEX agent_spans_by_instance_status ON agent_spans (agent_instance_id, started_at, id, status);
DROP INDEX agent_spans_by_instance;
"#,
    r#"
-- Counts kept, not computed: span counts of each instance by status, instance counts of each
-- agent by status and span counts of each agent, kept by triggers in the same transaction as
-- every insert, status change and delete (so also by retention), instead of COUNT(*) over an
-- index on every read (an agent's instance counts took 486-600 ms at 10M spans).
CREATE TABLE instance_span_counts (
    agent_instance_id TEXT NOT NULL,
    status            TEXT NOT NULL,
    spans             INTEGER NOT NULL,
    PRIMARY KEY (agent_instance_id, status)
) WITHOUT ROWID;
CREATE TABLE agent_instance_counts (
    agent_id  TEXT NOT NULL,
    status    TEXT NOT NULL,
    instances INTEGER NOT NULL,
    PRIMARY KEY (agent_id, status)
) WITHOUT ROWID;
CREATE TABLE agent_span_counts (
    agent_id TEXT PRIMARY KEY,
    spans    INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO instance_span_counts (agent_instance_id, status, spans)
    SELECT agent_instance_id, status, COUNT(*) FROM agent_spans GROUP BY agent_instance_id, status;
INSERT INTO agent_instance_counts (agent_id, status, instances)
    SELECT agent_id, status, COUNT(*) FROM agent_instances GROUP BY agent_id, status;
INSERT INTO agent_span_counts (agent_id, spans)
    SELECT i.agent_id, SUM(c.spans) FROM instance_span_counts c JOIN agent_instances i ON i.id = c.agent_instance_id
    GROUP BY i.agent_id;

CREATE TRIGGER agent_spans_counted_on_insert AFTER INSERT ON agent_spans BEGIN
    INSERT INTO instance_span_counts (agent_instance_id, status, spans) VALUES (NEW.agent_instance_id, NEW.status, 1)
        ON CONFLICT (agent_instance_id, status) DO UPDATE SET spans = spans + 1;
    INSERT INTO agent_span_counts (agent_id, spans)
        SELECT agent_id, 1 FROM agent_instances WHERE id = NEW.agent_instance_id
        ON CONFLICT (agent_id) DO UPDATE SET spans = spans + 1;
END;
CREATE TRIGGER agent_spans_counted_on_status AFTER UPDATE OF status ON agent_spans
    WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE instance_span_counts SET spans = spans - 1
        WHERE agent_instance_id = OLD.agent_instance_id AND status = OLD.status;
    INSERT INTO instance_span_counts (agent_instance_id, status, spans) VALUES (NEW.agent_instance_id, NEW.status, 1)
        ON CONFLICT (agent_instance_id, status) DO UPDATE SET spans = spans + 1;
END;
CREATE TRIGGER agent_spans_counted_on_delete AFTER DELETE ON agent_spans BEGIN
    UPDATE instance_span_counts SET spans = spans - 1
        WHERE agent_instance_id = OLD.agent_instance_id AND status = OLD.status;
    UPDATE agent_span_counts SET spans = spans - 1
        WHERE agent_id = (SELECT agent_id FROM agent_instances WHERE id = OLD.agent_instance_id);
END;
CREATE TRIGGER agent_instances_counted_on_insert AFTER INSERT ON agent_instances BEGIN
    INSERT INTO agent_instance_counts (agent_id, status, instances) VALUES (NEW.agent_id, NEW.status, 1)
        ON CONFLICT (agent_id, status) DO UPDATE SET instances = instances + 1;
END;
CREATE TRIGGER agent_instances_counted_on_status AFTER UPDATE OF status ON agent_instances
    WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE agent_instance_counts SET instances = instances - 1 WHERE agent_id = OLD.agent_id AND status = OLD.status;
    INSERT INTO agent_instance_counts (agent_id, status, instances) VALUES (NEW.agent_id, NEW.status, 1)
        ON CONFLICT (agent_id, status) DO UPDATE SET instances = instances + 1;
END;
CREATE TRIGGER agent_instances_counted_on_delete AFTER DELETE ON agent_instances BEGIN
    UPDATE agent_instance_counts SET instances = instances - 1 WHERE agent_id = OLD.agent_id AND status = OLD.status;
    DELETE FROM instance_span_counts WHERE agent_instance_id = OLD.id;
END;

-- The trace UI's runs filtered by status walk only the matching runs of the agent.
CREATE INDEX agent_instances_by_agent_status ON agent_instances (agent_id, status, id);
"#,
    r#"
-- Compact, expiring idempotency records (see db/idempotency.rs): what a replay needs instead of
-- whole answers, (method, path) as one 64-bit hash, and the creation time in Unix seconds for
-- the retention window. The rows of idempotency_keys are copied over by `copy_idempotency_keys`
-- (the hash is computed in Rust) before that table is dropped.
CREATE TABLE idempotency_records (
    key          TEXT NOT NULL,
    scope        INTEGER NOT NULL,
    request_hash INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT,
    resource_id  TEXT,
    control      TEXT,
    created      INTEGER NOT NULL,
    PRIMARY KEY (key, scope)
) WITHOUT ROWID;
"#,
    r#"
-- Where the n-th span of an agent is in id order without walking the n before it (see
-- db/id_buckets.rs): span counts per agent and id prefix, at two prefix widths (6
-- characters of a PFID: about 17 minutes of its time; 8: about one second), kept by the span
-- triggers in the same transaction as every insert and delete.
CREATE TABLE agent_span_buckets (
    agent_id TEXT NOT NULL,
    width    INTEGER NOT NULL,
    bucket   TEXT NOT NULL,
    spans    INTEGER NOT NULL,
    PRIMARY KEY (agent_id, width, bucket)
) WITHOUT ROWID;

INSERT INTO agent_span_buckets (agent_id, width, bucket, spans)
    SELECT i.agent_id, w.width, substr(s.id, 1, w.width), COUNT(*)
    FROM agent_spans s JOIN agent_instances i ON i.id = s.agent_instance_id, (SELECT 6 AS width UNION ALL SELECT 8) w
    GROUP BY 1, 2, 3;

DROP TRIGGER agent_spans_counted_on_insert;
CREATE TRIGGER agent_spans_counted_on_insert AFTER INSERT ON agent_spans BEGIN
    INSERT INTO instance_span_counts (agent_instance_id, status, spans) VALUES (NEW.agent_instance_id, NEW.status, 1)
        ON CONFLICT (agent_instance_id, status) DO UPDATE SET spans = spans + 1;
    INSERT INTO agent_span_counts (agent_id, spans)
        SELECT agent_id, 1 FROM agent_instances WHERE id = NEW.agent_instance_id
        ON CONFLICT (agent_id) DO UPDATE SET spans = spans + 1;
    INSERT INTO agent_span_buckets (agent_id, width, bucket, spans)
        SELECT i.agent_id, w.width, substr(NEW.id, 1, w.width), 1
        FROM agent_instances i, (SELECT 6 AS width UNION ALL SELECT 8) w WHERE i.id = NEW.agent_instance_id
        ON CONFLICT (agent_id, width, bucket) DO UPDATE SET spans = spans + 1;
END;
DROP TRIGGER agent_spans_counted_on_delete;
CREATE TRIGGER agent_spans_counted_on_delete AFTER DELETE ON agent_spans BEGIN
    UPDATE instance_span_counts SET spans = spans - 1
        WHERE agent_instance_id = OLD.agent_instance_id AND status = OLD.status;
    UPDATE agent_span_counts SET spans = spans - 1
        WHERE agent_id = (SELECT agent_id FROM agent_instances WHERE id = OLD.agent_instance_id);
    UPDATE agent_span_buckets SET spans = spans - 1
        WHERE agent_id = (SELECT agent_id FROM agent_instances WHERE id = OLD.agent_instance_id)
            AND width = 6 AND bucket = substr(OLD.id, 1, 6);
    UPDATE agent_span_buckets SET spans = spans - 1
        WHERE agent_id = (SELECT agent_id FROM agent_instances WHERE id = OLD.agent_instance_id)
            AND width = 8 AND bucket = substr(OLD.id, 1, 8);
    -- Emptied buckets go, so a seek never passes a run of them (retention empties old ones).
    DELETE FROM agent_span_buckets
        WHERE agent_id = (SELECT agent_id FROM agent_instances WHERE id = OLD.agent_instance_id)
            AND width = 6 AND bucket = substr(OLD.id, 1, 6) AND spans <= 0;
    DELETE FROM agent_span_buckets
        WHERE agent_id = (SELECT agent_id FROM agent_instances WHERE id = OLD.agent_instance_id)
            AND width = 8 AND bucket = substr(OLD.id, 1, 8) AND spans <= 0;
END;

-- The same for an agent's runs (the dashboard's runs list jumps to offsets too).
CREATE TABLE agent_instance_buckets (
    agent_id  TEXT NOT NULL,
    width     INTEGER NOT NULL,
    bucket    TEXT NOT NULL,
    instances INTEGER NOT NULL,
    PRIMARY KEY (agent_id, width, bucket)
) WITHOUT ROWID;

INSERT INTO agent_instance_buckets (agent_id, width, bucket, instances)
    SELECT i.agent_id, w.width, substr(i.id, 1, w.width), COUNT(*)
    FROM agent_instances i, (SELECT 6 AS width UNION ALL SELECT 8) w
    GROUP BY 1, 2, 3;

DROP TRIGGER agent_instances_counted_on_insert;
CREATE TRIGGER agent_instances_counted_on_insert AFTER INSERT ON agent_instances BEGIN
    INSERT INTO agent_instance_counts (agent_id, status, instances) VALUES (NEW.agent_id, NEW.status, 1)
        ON CONFLICT (agent_id, status) DO UPDATE SET instances = instances + 1;
    INSERT INTO agent_instance_buckets (agent_id, width, bucket, instances)
        VALUES (NEW.agent_id, 6, substr(NEW.id, 1, 6), 1), (NEW.agent_id, 8, substr(NEW.id, 1, 8), 1)
        ON CONFLICT (agent_id, width, bucket) DO UPDATE SET instances = instances + 1;
END;
DROP TRIGGER agent_instances_counted_on_delete;
CREATE TRIGGER agent_instances_counted_on_delete AFTER DELETE ON agent_instances BEGIN
    UPDATE agent_instance_counts SET instances = instances - 1 WHERE agent_id = OLD.agent_id AND status = OLD.status;
    DELETE FROM instance_span_counts WHERE agent_instance_id = OLD.id;
    UPDATE agent_instance_buckets SET instances = instances - 1
        WHERE agent_id = OLD.agent_id AND width = 6 AND bucket = substr(OLD.id, 1, 6);
    UPDATE agent_instance_buckets SET instances = instances - 1
        WHERE agent_id = OLD.agent_id AND width = 8 AND bucket = substr(OLD.id, 1, 8);
    DELETE FROM agent_instance_buckets
        WHERE agent_id = OLD.agent_id AND width = 6 AND bucket = substr(OLD.id, 1, 6) AND instances <= 0;
    DELETE FROM agent_instance_buckets
        WHERE agent_id = OLD.agent_id AND width = 8 AND bucket = substr(OLD.id, 1, 8) AND instances <= 0;
END;
"#,
    r#"
-- Idempotency records keyed by 28 or 16 bytes instead of the key's text and the scope (see
-- idempotency::record_id); `copy_idempotency_records` moves the rows over (the id is computed
-- in Rust) and puts the new table in the old one's place.
CREATE TABLE idempotency_records_by_id (
    id           BLOB PRIMARY KEY,
    request_hash INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT,
    resource_id  TEXT,
    control      TEXT,
    created      INTEGER NOT NULL
) WITHOUT ROWID;

-- Span counts by status come from the counters now (migration 6), so the instance index no
-- longer carries each span's status (9 bytes a span, and a finish no longer rewrites its
-- entry); the runs page's first failure of a run reads a small index of failed spans only.
CREATE INDEX agent_spans_by_instance ON agent_spans (agent_instance_id, started_at, id);
DROP INDEX agent_spans_by_instance_status;
CREATE INDEX agent_spans_failed ON agent_spans (agent_instance_id, started_at) WHERE status = 'failed';
"#,
    r#"
-- The trace UI lists an agent's runs newest first by registration time, filtered by status and
-- by a time range (see db/runs.rs): with the time in its indexes every filter shape is one
-- range of an index read in list order and stopped by the page's LIMIT, where the time filter
-- used to read every run of the agent (0.9 s at 3M spans). The status index gains the time in
-- place of nothing else (the id stays as the tie-break of equal times).
CREATE INDEX agent_instances_by_agent_time ON agent_instances (agent_id, inserted_at, id);
CREATE INDEX agent_instances_by_agent_status_time ON agent_instances (agent_id, status, inserted_at, id);
DROP INDEX agent_instances_by_agent_status;

-- The id buckets of every run, whichever its agent, under the agent id '' (no agent has it:
-- agent ids are PFIDs), so a deep page of the list of every run seeks like an agent's does.
INSERT INTO agent_instance_buckets (agent_id, width, bucket, instances)
    SELECT '', width, bucket, SUM(instances) FROM agent_instance_buckets GROUP BY width, bucket;

DROP TRIGGER agent_instances_counted_on_insert;
CREATE TRIGGER agent_instances_counted_on_insert AFTER INSERT ON agent_instances BEGIN
    INSERT INTO agent_instance_counts (agent_id, status, instances) VALUES (NEW.agent_id, NEW.status, 1)
        ON CONFLICT (agent_id, status) DO UPDATE SET instances = instances + 1;
    INSERT INTO agent_instance_buckets (agent_id, width, bucket, instances)
        VALUES (NEW.agent_id, 6, substr(NEW.id, 1, 6), 1), (NEW.agent_id, 8, substr(NEW.id, 1, 8), 1),
               ('', 6, substr(NEW.id, 1, 6), 1), ('', 8, substr(NEW.id, 1, 8), 1)
        ON CONFLICT (agent_id, width, bucket) DO UPDATE SET instances = instances + 1;
END;
DROP TRIGGER agent_instances_counted_on_delete;
CREATE TRIGGER agent_instances_counted_on_delete AFTER DELETE ON agent_instances BEGIN
    UPDATE agent_instance_counts SET instances = instances - 1 WHERE agent_id = OLD.agent_id AND status = OLD.status;
    DELETE FROM instance_span_counts WHERE agent_instance_id = OLD.id;
    UPDATE agent_instance_buckets SET instances = instances - 1
        WHERE agent_id IN (OLD.agent_id, '') AND width = 6 AND bucket = substr(OLD.id, 1, 6);
    UPDATE agent_instance_buckets SET instances = instances - 1
        WHERE agent_id IN (OLD.agent_id, '') AND width = 8 AND bucket = substr(OLD.id, 1, 8);
    DELETE FROM agent_instance_buckets
        WHERE agent_id IN (OLD.agent_id, '') AND width = 6 AND bucket = substr(OLD.id, 1, 6) AND instances <= 0;
    DELETE FROM agent_instance_buckets
        WHERE agent_id IN (OLD.agent_id, '') AND width = 8 AND bucket = substr(OLD.id, 1, 8) AND instances <= 0;
END;
"#,
];

/// The migration that creates `idempotency_records`.
const COMPACT_IDEMPOTENCY: usize = 7;

/// Copies the records of `idempotency_keys` into `idempotency_records` and drops the old
/// table. Old records keep their body (replayed as before) or span reference; times in the
/// old text form become Unix seconds (unparsable ones count as now, so they live one window).
fn copy_idempotency_keys(conn: &Connection) -> rusqlite::Result<()> {
    let mut read = conn.prepare(
        "SELECT key, method, path, request_hash, status, body, span_id, control, COALESCE(unixepoch(inserted_at), unixepoch())
         FROM idempotency_keys",
    )?;
    let mut write = conn.prepare(
        "INSERT OR IGNORE INTO idempotency_records (key, scope, request_hash, status, body, resource_id, control, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let (method, path): (String, String) = (row.get(1)?, row.get(2)?);
        let body: String = row.get(5)?;
        write.execute(rusqlite::params![
            row.get::<_, String>(0)?,
            crate::idempotency::stored_scope(&method, &path),
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            Some(body).filter(|body| !body.is_empty()),
            row.get::<_, Option<String>>(6)?,
            row.get::<_, Option<String>>(7)?,
            row.get::<_, i64>(8)?
        ])?;
    }
    conn.execute_batch("DROP TABLE idempotency_keys;")
}

/// The migration that keys idempotency records by `idempotency::record_id`.
const HASHED_IDEMPOTENCY: usize = 9;

/// Moves the records of `idempotency_records` (keyed by the key's text and the scope) into
/// `idempotency_records_by_id` and renames that table to `idempotency_records`.
fn copy_idempotency_records(conn: &Connection) -> rusqlite::Result<()> {
    let mut read = conn.prepare(
        "SELECT key, scope, request_hash, status, body, resource_id, control, created FROM idempotency_records",
    )?;
    let mut write = conn.prepare(
        "INSERT OR IGNORE INTO idempotency_records_by_id (id, request_hash, status, body, resource_id, control, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        write.execute(rusqlite::params![
            crate::idempotency::record_id(row.get(1)?, &key),
            row.get::<_, i64>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, Option<String>>(4)?,
            row.get::<_, Option<String>>(5)?,
            row.get::<_, Option<String>>(6)?,
            row.get::<_, i64>(7)?
        ])?;
    }
    conn.execute_batch(
        "DROP TABLE idempotency_records; ALTER TABLE idempotency_records_by_id RENAME TO idempotency_records;",
    )
}

/// Brings the database schema up to date inside one transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied >= MIGRATIONS.len() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tracing::info!(migration = index + 1, "applying database migration");
        tx.execute_batch(sql)?;
        if index + 1 == COMPACT_IDEMPOTENCY {
            copy_idempotency_keys(&tx)?;
        }
        if index + 1 == HASHED_IDEMPOTENCY {
            copy_idempotency_records(&tx)?;
        }
    }
    tx.execute_batch(&format!("PRAGMA user_version = {}", MIGRATIONS.len()))?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_idempotency_answers_survive_the_key_first_rebuild_the_compaction_and_the_hashed_ids() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.execute_batch("PRAGMA user_version = 2").unwrap();
        conn.execute(
            "INSERT INTO idempotency_keys (method, path, key, request_hash, status, body, inserted_at, span_id)
             VALUES ('POST', '/api/v1/agent_spans', 'k-1', 7, 200, '', '2026-12-05T01:02:03.000000Z', 's-1'),
                    ('POST', '/api/v1/agent', 'k-2', 8, 200, '{\"status\":\"success\"}', 't', NULL)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row = |path: &str, key: &str| -> (i64, Option<String>, Option<String>, i64) {
            let id = crate::idempotency::record_id(crate::idempotency::stored_scope("POST", path), key);
            conn.query_row(
                "SELECT request_hash, resource_id, body, created FROM idempotency_records WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap()
        };
        let span = row("/api/v1/agent_spans", "k-1");
        assert_eq!(span, (7, Some("s-1".to_string()), None, 1_796_432_523));
        let agent = row("/api/v1/agent", "k-2");
        assert_eq!(agent.2.as_deref(), Some(r#"{"status":"success"}"#), "old bodies are kept");
        assert!(agent.3 > 1_796_432_523, "an unreadable time counts as now");
        let old_table: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'idempotency_keys'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(old_table, 0);
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    /// A database file (in a temporary directory, kept while the returned guard lives) with the
    /// schema of the first `migrations` migrations, as a build of then left it.
    fn file_of_schema(migrations: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("schema-{migrations}.db"));
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..migrations] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(&format!("PRAGMA user_version = {migrations}")).unwrap();
        (dir, path)
    }

    /// A database file made by the previous schema (5 migrations) with runs and spans in
    /// every status: the upgrade fills the counters from the rows, and the triggers keep them
    /// from then on.
    #[test]
    fn an_existing_database_file_gets_counters_that_match_its_rows() {
        let (_dir, path) = file_of_schema(5);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("BEGIN").unwrap();
            let statuses = ["pending", "active", "complete", "failed", "cancelled", "terminated"];
            for index in 0..30 {
                conn.execute(
                    "INSERT INTO agent_instances (id, agent_id, agent_version_id, environment_id, status, purpose,
                         update_current_version, inserted_at, updated_at)
                     VALUES (?1, ?2, 'v', 'e', ?3, 'live', 1, 't', 't')",
                    rusqlite::params![format!("run-{index:02}"), format!("agent-{}", index % 2), statuses[index % 6]],
                )
                .unwrap();
            }
            for index in 0..300 {
                conn.execute(
                    "INSERT INTO agent_spans (id, agent_instance_id, schema_name, status, payload, started_at,
                         inserted_at, updated_at) VALUES (?1, ?2, 'x', ?3, '{}', 't', 't', 't')",
                    rusqlite::params![
                        format!("span-{index:03}"),
                        format!("run-{:02}", index % 30),
                        statuses[index % 5]
                    ],
                )
                .unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
        }
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert_counters_match_rows(&conn);

        // The triggers keep them: inserts, status changes and deletes of both tables.
        conn.execute_batch(
            "INSERT INTO agent_spans (id, agent_instance_id, schema_name, status, payload, started_at, inserted_at,
                 updated_at) VALUES ('span-new', 'run-01', 'x', 'active', '{}', 't', 't', 't');
             UPDATE agent_spans SET status = 'failed' WHERE id IN ('span-new', 'span-001', 'span-002');
             UPDATE agent_spans SET status = status WHERE id = 'span-003';
             DELETE FROM agent_spans WHERE id IN ('span-004', 'span-005');
             UPDATE agent_instances SET status = 'complete' WHERE id IN ('run-00', 'run-01');
             DELETE FROM agent_spans WHERE agent_instance_id = 'run-02';
             DELETE FROM agent_instances WHERE id = 'run-02';",
        )
        .unwrap();
        assert_counters_match_rows(&conn);
    }

    /// A database file of the schema before the UI's time indexes (9 migrations), with runs of
    /// two agents: the upgrade builds the time indexes (the runs page reads them), drops the
    /// status index they replace, and counts every run's id buckets, which the triggers keep.
    #[test]
    fn an_existing_database_file_gets_the_time_indexes_and_every_runs_buckets() {
        let (_dir, path) = file_of_schema(9);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("BEGIN").unwrap();
            for index in 0..60 {
                conn.execute(
                    "INSERT INTO agent_instances (id, agent_id, agent_version_id, environment_id, status, purpose,
                         update_current_version, inserted_at, updated_at)
                     VALUES (?1, ?2, 'v', 'e', ?3, 'live', 1, ?4, ?4)",
                    rusqlite::params![
                        format!("{:04}{:02}{index:03}", index / 20, index % 5),
                        format!("agent-{}", index % 2),
                        ["complete", "failed"][index % 3 / 2],
                        format!("2026-12-05T00:00:{:02}.000000Z", index)
                    ],
                )
                .unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
        }
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn).unwrap();
        assert_counters_match_rows(&conn);
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'agent_instances' ORDER BY name",
            )
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(indexes.contains(&"agent_instances_by_agent_time".to_string()), "{indexes:?}");
        assert!(indexes.contains(&"agent_instances_by_agent_status_time".to_string()), "{indexes:?}");
        assert!(!indexes.contains(&"agent_instances_by_agent_status".to_string()), "{indexes:?}");
        let filter = crate::db::runs::RunFilter {
            agent_id: "agent-1".into(),
            status: Some("failed".into()),
            since: Some("2026-12-05T00:00:10.000000Z".into()),
            ..Default::default()
        };
        let page = crate::db::runs::runs(&conn, &filter, &crate::db::runs::RunPageStart::Offset(0), 100).unwrap();
        let expected = (10..60).filter(|index| index % 2 == 1 && index % 3 == 2).count();
        assert_eq!((page.runs.len(), page.total), (expected, expected as u64));

        conn.execute_batch(
            "INSERT INTO agent_instances (id, agent_id, agent_version_id, environment_id, status, purpose,
                 update_current_version, inserted_at, updated_at)
             VALUES ('000400new', 'agent-0', 'v', 'e', 'active', 'live', 1, 't', 't'),
                    ('999999new', 'agent-2', 'v', 'e', 'active', 'live', 1, 't', 't');
             DELETE FROM agent_instances WHERE id LIKE '0001%' OR id = '000004004';",
        )
        .unwrap();
        assert_counters_match_rows(&conn);
    }

    fn assert_counters_match_rows(conn: &Connection) {
        let differences = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        let span_counts = "SELECT COUNT(*) FROM (
                SELECT agent_instance_id, status, COUNT(*) AS n FROM agent_spans GROUP BY 1, 2
                EXCEPT SELECT agent_instance_id, status, spans FROM instance_span_counts WHERE spans <> 0)";
        let counter_rows = "SELECT COUNT(*) FROM (
                SELECT agent_instance_id, status, spans FROM instance_span_counts WHERE spans <> 0
                EXCEPT SELECT agent_instance_id, status, COUNT(*) FROM agent_spans GROUP BY 1, 2)";
        let instance_counts = "SELECT COUNT(*) FROM (
                SELECT agent_id, status, COUNT(*) FROM agent_instances GROUP BY 1, 2
                EXCEPT SELECT agent_id, status, instances FROM agent_instance_counts WHERE instances <> 0)";
        let agent_spans = "SELECT COUNT(*) FROM (
                SELECT i.agent_id, COUNT(*) FROM agent_spans s JOIN agent_instances i ON i.id = s.agent_instance_id
                GROUP BY 1 EXCEPT SELECT agent_id, spans FROM agent_span_counts)";
        let buckets = "SELECT COUNT(*) FROM (
                SELECT i.agent_id, w.width, substr(s.id, 1, w.width), COUNT(*) FROM agent_spans s
                    JOIN agent_instances i ON i.id = s.agent_instance_id, (SELECT 6 AS width UNION ALL SELECT 8) w
                GROUP BY 1, 2, 3
                EXCEPT SELECT agent_id, width, bucket, spans FROM agent_span_buckets)";
        let bucket_rows = "SELECT COUNT(*) FROM (
                SELECT agent_id, width, bucket, spans FROM agent_span_buckets
                EXCEPT SELECT i.agent_id, w.width, substr(s.id, 1, w.width), COUNT(*) FROM agent_spans s
                    JOIN agent_instances i ON i.id = s.agent_instance_id, (SELECT 6 AS width UNION ALL SELECT 8) w
                GROUP BY 1, 2, 3)";
        // Each agent's run buckets, and every run's under the agent id '' (migration 10).
        let counted_run_buckets = "SELECT i.agent_id, w.width, substr(i.id, 1, w.width), COUNT(*)
                    FROM agent_instances i, (SELECT 6 AS width UNION ALL SELECT 8) w GROUP BY 1, 2, 3
                UNION ALL SELECT '', w.width, substr(i.id, 1, w.width), COUNT(*)
                    FROM agent_instances i, (SELECT 6 AS width UNION ALL SELECT 8) w GROUP BY 2, 3";
        let run_buckets = format!(
            "SELECT COUNT(*) FROM (SELECT * FROM ({counted_run_buckets})
                EXCEPT SELECT agent_id, width, bucket, instances FROM agent_instance_buckets)"
        );
        let run_bucket_rows = format!(
            "SELECT COUNT(*) FROM (SELECT agent_id, width, bucket, instances FROM agent_instance_buckets
                EXCEPT SELECT * FROM ({counted_run_buckets}))"
        );
        let checks = [
            span_counts,
            counter_rows,
            instance_counts,
            agent_spans,
            buckets,
            bucket_rows,
            run_buckets.as_str(),
            run_bucket_rows.as_str(),
        ];
        for sql in checks {
            assert_eq!(differences(sql), 0, "{sql}");
        }
        let orphans: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM instance_span_counts WHERE agent_instance_id NOT IN (SELECT id FROM agent_instances)",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0, "a deleted instance's counters go with it");
    }
}
