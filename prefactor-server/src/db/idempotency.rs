//! Idempotency records (see [`crate::idempotency`] for the rules and
//! [`crate::handlers::operation`] for how they are used).
//!
//! A record holds what a replay needs, not the answer: the request's fingerprint, the answer's
//! status, the resource the answer shows (none when it is the span the request itself names)
//! and the control signal the answer carried. A replay rebuilds the answer from that resource
//! (see [`crate::handlers::operation::Replay`]). About 50 bytes a record, where whole answers
//! took ~700 (a register, start or finish) and were half of a database's size. Records from
//! before migration 7 keep their bodies and replay them as before.
//!
//! Records expire: [`prune`] deletes those older than the retention window in small batches
//! (see [`crate::db::maintenance`]).

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::ApiError;
use crate::idempotency::IdempotencyScope;

/// A stored answer: HTTP status and JSON body text.
pub type StoredAnswer = (u16, String);

/// The record of a key's first successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Fingerprint of the request that used the key first.
    pub request_hash: i64,
    /// Its HTTP status.
    pub status: u16,
    /// The whole answer, for records that name no resource (and records written before
    /// migration 7).
    pub body: Option<String>,
    /// The resource the answer shows; `None` for the span the request names (a claimed key).
    pub resource_id: Option<String>,
    /// The control signal of a span answer, as JSON.
    pub control: Option<String>,
}

/// What a new record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// HTTP status.
    pub status: u16,
    /// The whole answer, for answers that name no resource.
    pub body: Option<String>,
    /// The resource the answer shows.
    pub resource_id: Option<String>,
    /// A span answer's control signal, as JSON.
    pub control: Option<String>,
}

/// The record of `scope`'s key, if the key was used before.
pub fn find(conn: &Connection, scope: &IdempotencyScope) -> Result<Option<StoredRecord>, ApiError> {
    Ok(conn
        .prepare_cached(
            "SELECT request_hash, status, body, resource_id, control FROM idempotency_records
             WHERE id = ?1",
        )?
        .query_row(params![scope.record_id()], |row| {
            Ok(StoredRecord {
                request_hash: row.get(0)?,
                status: row.get(1)?,
                body: row.get::<_, Option<String>>(2)?.filter(|body| !body.is_empty()),
                resource_id: row.get(3)?,
                control: row.get(4)?,
            })
        })
        .optional()?)
}

/// The error for a key used before with another request.
pub fn reused(scope: &IdempotencyScope) -> ApiError {
    ApiError::new(
        422,
        "idempotency_key_reused",
        format!(
            "idempotency key '{}' was already used for a different {} {} request",
            scope.key, scope.method, scope.path
        ),
    )
}

/// Stores the record of `scope`'s first successful answer.
pub fn store_resource_or_body(conn: &Connection, scope: &IdempotencyScope, record: &Record) -> Result<(), ApiError> {
    conn.prepare_cached(
        "INSERT INTO idempotency_records (id, request_hash, status, body, resource_id, control, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, unixepoch())",
    )?
    .execute(params![
        scope.record_id(),
        scope.request_hash,
        record.status,
        record.body,
        record.resource_id,
        record.control
    ])?;
    Ok(())
}

/// Claims `scope`'s key for an answer that will be the terminal span the request names (a
/// record without a resource id, written BEFORE the work); `false`, writing nothing, when the
/// key is already taken. One b-tree insert instead of a search for the key followed by the
/// insert: the caller must [`release`] the claim if the work fails, and [`set_control`] or
/// [`store_claimed`] if the answer turns out different.
pub fn claim_span(conn: &Connection, scope: &IdempotencyScope) -> Result<bool, ApiError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO idempotency_records (id, request_hash, status, created)
             VALUES (?1, ?2, 200, unixepoch()) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![scope.record_id(), scope.request_hash])?;
    Ok(inserted == 1)
}

/// Records the control signal of a claimed span answer.
pub fn set_control(conn: &Connection, scope: &IdempotencyScope, control: &str) -> Result<(), ApiError> {
    conn.prepare_cached("UPDATE idempotency_records SET control = ?2 WHERE id = ?1")?
        .execute(params![scope.record_id(), control])?;
    Ok(())
}

/// Replaces a claim by the record of another answer.
pub fn store_claimed(conn: &Connection, scope: &IdempotencyScope, record: &Record) -> Result<(), ApiError> {
    conn.prepare_cached(
        "UPDATE idempotency_records SET status = ?2, body = ?3, resource_id = ?4, control = ?5 WHERE id = ?1",
    )?
    .execute(params![scope.record_id(), record.status, record.body, record.resource_id, record.control])?;
    Ok(())
}

/// Gives up a claim whose work failed (error answers are not stored, so it may be retried).
pub fn release(conn: &Connection, scope: &IdempotencyScope) -> Result<(), ApiError> {
    conn.prepare_cached("DELETE FROM idempotency_records WHERE id = ?1")?.execute(params![scope.record_id()])?;
    Ok(())
}

/// Where a pruning pass stands: the primary key of the last record it looked at.
pub type PruneCursor = Option<Vec<u8>>;

/// One pruning step: looks at the next `batch` records after `cursor` (in primary key order)
/// and deletes those created before `cutoff` (Unix seconds). Returns where the next step
/// starts (`None`: the pass is complete, start again from the first record) and how many were
/// deleted. The records carry no time index (it would cost as much as the record), so expiry
/// is found by walking the table in steps, each a few milliseconds of the writer.
pub fn prune(conn: &Connection, cursor: &PruneCursor, cutoff: i64, batch: u32) -> Result<(PruneCursor, u64), ApiError> {
    // Two statements: an `?1 IS NULL OR` would keep the range from using the primary key.
    let read = |row: &rusqlite::Row<'_>| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?));
    let rows = match cursor {
        None => conn
            .prepare_cached("SELECT id, created FROM idempotency_records ORDER BY id LIMIT ?1")?
            .query_map(params![batch], read)?
            .collect::<Result<Vec<_>, _>>()?,
        Some(id) => conn
            .prepare_cached("SELECT id, created FROM idempotency_records WHERE id > ?1 ORDER BY id LIMIT ?2")?
            .query_map(params![id, batch], read)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    let mut deleted = 0;
    let mut delete = conn.prepare_cached("DELETE FROM idempotency_records WHERE id = ?1")?;
    for (id, created) in &rows {
        if *created < cutoff {
            deleted += delete.execute(params![id])? as u64;
        }
    }
    let next = if rows.len() < batch as usize { None } else { rows.last().map(|(id, _)| id.clone()) };
    Ok((next, deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::migrations::migrate;

    #[test]
    fn pruning_walks_every_record_in_steps_and_deletes_only_expired_ones() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for index in 0..25 {
            let created = if index % 3 == 0 { 1_000 } else { 9_000 };
            conn.execute(
                "INSERT INTO idempotency_records (id, request_hash, status, created) VALUES (?1, 0, 200, ?2)",
                params![crate::idempotency::record_id(index % 2, &format!("key-{index:02}")), created],
            )
            .unwrap();
        }
        let mut cursor: PruneCursor = None;
        let mut steps = 0;
        let mut deleted = 0;
        loop {
            let (next, step_deleted) = prune(&conn, &cursor, 5_000, 4).unwrap();
            deleted += step_deleted;
            steps += 1;
            cursor = next;
            if cursor.is_none() {
                break;
            }
            assert!(steps < 20, "the pass ends");
        }
        assert_eq!(deleted, 9, "keys 0, 3, .., 24 were created before the cutoff");
        assert_eq!(steps, 7, "25 records in steps of 4");
        let left: i64 = conn.query_row("SELECT COUNT(*) FROM idempotency_records", [], |row| row.get(0)).unwrap();
        assert_eq!(left, 16);
    }
}
