//! The `schema_versions` table: `agent_schema_version` documents, found-or-created per agent
//! by external identifier and stored as canonical JSON text.

use prefactor_protocol::AgentSchemaVersion;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::meta::LocalAccount;
use crate::error::ApiError;

/// The id of `document` for `agent_id`. The same identifier with different content is a 422,
/// because silently keeping either version would validate spans against the wrong schema.
pub fn find_or_create(
    conn: &Connection,
    account: &LocalAccount,
    agent_id: &str,
    document: &AgentSchemaVersion,
    now: &str,
) -> Result<String, ApiError> {
    let text = serde_json::to_value(document).map_err(ApiError::internal)?.to_string();
    let existing: Option<(String, String)> = conn
        .prepare_cached("SELECT id, document FROM schema_versions WHERE agent_id = ?1 AND external_identifier IS ?2")?
        .query_row(params![agent_id, document.external_identifier], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    match existing {
        Some((id, stored)) if stored == text => Ok(id),
        Some(_) => Err(ApiError::validation(
            "agent_schema_version.external_identifier",
            format!(
                "schema version '{}' already exists for this agent with different content; \
                 use a new external_identifier for changed schemas",
                document.external_identifier.as_deref().unwrap_or("")
            ),
        )),
        None => {
            let id = account.new_id();
            conn.prepare_cached(
                "INSERT INTO schema_versions (id, agent_id, external_identifier, document, inserted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, agent_id, document.external_identifier, text, now])?;
            Ok(id)
        }
    }
}

/// Loads a stored document.
pub fn load(conn: &Connection, id: &str) -> Result<AgentSchemaVersion, ApiError> {
    let text: String = conn
        .prepare_cached("SELECT document FROM schema_versions WHERE id = ?1")?
        .query_row(params![id], |row| row.get(0))?;
    serde_json::from_str(&text).map_err(ApiError::internal)
}
