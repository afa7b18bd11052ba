//! The `agent_versions` table: code versions, found-or-created per agent by external identifier.

use prefactor_protocol::AgentVersionSpec;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::meta::LocalAccount;
use crate::error::ApiError;

/// The id of the version `spec` of `agent_id`, creating it on first use. Versions are
/// immutable once stored (the reference backend behaves the same), so a later register with
/// the same identifier but another name keeps the stored name.
pub fn find_or_create(
    conn: &Connection,
    account: &LocalAccount,
    agent_id: &str,
    spec: &AgentVersionSpec,
    now: &str,
) -> Result<String, ApiError> {
    let existing: Option<String> = conn
        .prepare_cached("SELECT id FROM agent_versions WHERE agent_id = ?1 AND external_identifier IS ?2")?
        .query_row(params![agent_id, spec.external_identifier], |row| row.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = account.new_id();
    conn.prepare_cached(
        "INSERT INTO agent_versions (id, agent_id, name, external_identifier, description, inserted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, agent_id, spec.name, spec.external_identifier, spec.description, now])?;
    Ok(id)
}
