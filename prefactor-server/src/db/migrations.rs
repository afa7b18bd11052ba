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
];

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
    }
    tx.execute_batch(&format!("PRAGMA user_version = {}", MIGRATIONS.len()))?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_idempotency_answers_survive_the_key_first_rebuild() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.execute_batch("PRAGMA user_version = 2").unwrap();
        conn.execute(
            "INSERT INTO idempotency_keys (method, path, key, request_hash, status, body, inserted_at, span_id)
             VALUES ('POST', '/api/v1/agent_spans', 'k-1', 7, 200, '', 't', 's-1')",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (String, i64, Option<String>) = conn
            .query_row(
                "SELECT path, request_hash, span_id FROM idempotency_keys WHERE key = 'k-1' AND method = 'POST'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("/api/v1/agent_spans".to_string(), 7, Some("s-1".to_string())));
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }
}
