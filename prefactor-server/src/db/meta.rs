//! The single local account: its id, environment, deployment and id partition, generated once
//! per database and stored in the `meta` table.

use prefactor_protocol::Pfid;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::ApiError;
use crate::ids::IdGenerator;

/// Ids of the local account, read once at start and shared by every handler.
#[derive(Debug, Clone)]
pub struct LocalAccount {
    /// Partition used for every server-generated PFID (the account's partition).
    pub partition: u32,
    /// `account_id` on every resource.
    pub account_id: String,
    /// Default `environment_id` when register does not name one.
    pub environment_id: String,
    /// `agent_deployment_id` of every instance.
    pub deployment_id: String,
    /// Generator of new ids in `partition`.
    pub ids: std::sync::Arc<IdGenerator>,
}

impl LocalAccount {
    /// A new server-side id in the account's partition.
    pub fn new_id(&self) -> String {
        self.ids.next()
    }
}

/// Creates the account ids on first start; later starts keep them.
pub fn ensure_local_account(conn: &Connection) -> rusqlite::Result<()> {
    if get(conn, "account_id")?.is_some() {
        return Ok(());
    }
    let partition = Pfid::random_partition();
    let new_id = || Pfid::generate(partition).to_string();
    put(conn, "partition", &partition.to_string())?;
    put(conn, "account_id", &new_id())?;
    put(conn, "environment_id", &new_id())?;
    put(conn, "deployment_id", &new_id())?;
    Ok(())
}

/// Reads the local account ids.
pub fn load_local_account(conn: &Connection) -> Result<LocalAccount, ApiError> {
    let required = |key: &str| -> Result<String, ApiError> {
        get(conn, key)?.ok_or_else(|| ApiError::internal(format!("meta key {key} missing")))
    };
    let partition = required("partition")?.parse().unwrap_or(0);
    Ok(LocalAccount {
        partition,
        ids: std::sync::Arc::new(IdGenerator::new(partition)),
        account_id: required("account_id")?,
        environment_id: required("environment_id")?,
        deployment_id: required("deployment_id")?,
    })
}

/// Reads one meta value.
pub fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?.query_row(params![key], |row| row.get(0)).optional()
}

/// Writes one meta value.
pub fn put(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?.execute(params![key, value])?;
    Ok(())
}
