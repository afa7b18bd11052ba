//! Stored answers of idempotent requests (see [`crate::idempotency`] for the rules and
//! [`crate::handlers::operation`] for how they are used).

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::ApiError;
use crate::idempotency::IdempotencyScope;
use crate::timestamps::now_utc;

/// A stored answer: HTTP status and JSON body text.
pub type StoredAnswer = (u16, String);

/// The record of a key's first successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Fingerprint of the request that used the key first.
    pub request_hash: i64,
    /// Its HTTP status.
    pub status: u16,
    /// Its body, or empty when the answer is a span reference.
    pub body: String,
    /// The (terminal) span whose row rebuilds the body, instead of `body`.
    pub span_id: Option<String>,
    /// The control signal of a span reference, as JSON.
    pub control: Option<String>,
}

/// The record of `scope`'s key, if the key was used before.
pub fn find(conn: &Connection, scope: &IdempotencyScope) -> Result<Option<StoredRecord>, ApiError> {
    Ok(conn
        .prepare_cached(
            "SELECT request_hash, status, body, span_id, control FROM idempotency_keys
             WHERE key = ?3 AND path = ?2 AND method = ?1",
        )?
        .query_row(params![scope.method, scope.path, scope.key], |row| {
            Ok(StoredRecord {
                request_hash: row.get(0)?,
                status: row.get(1)?,
                body: row.get(2)?,
                span_id: row.get(3)?,
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

/// Stores a full answer body for `scope`.
pub fn store_body(conn: &Connection, scope: &IdempotencyScope, answer: &StoredAnswer) -> Result<(), ApiError> {
    insert(conn, scope, answer.0, &answer.1, None, None)
}

/// Stores a span reference (status 200) for `scope`.
pub fn store_span(
    conn: &Connection,
    scope: &IdempotencyScope,
    span_id: &str,
    control: Option<&str>,
) -> Result<(), ApiError> {
    insert(conn, scope, 200, "", Some(span_id), control)
}

fn insert(
    conn: &Connection,
    scope: &IdempotencyScope,
    status: u16,
    body: &str,
    span_id: Option<&str>,
    control: Option<&str>,
) -> Result<(), ApiError> {
    conn.prepare_cached(
        "INSERT INTO idempotency_keys (method, path, key, request_hash, status, body, span_id, control, inserted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        scope.method,
        scope.path,
        scope.key,
        scope.request_hash,
        status,
        body,
        span_id,
        control,
        now_utc()
    ])?;
    Ok(())
}

/// Claims `scope`'s key for an answer that will be the terminal span `span_id` (a span
/// reference record, written BEFORE the work); `false`, writing nothing, when the key is
/// already taken. One b-tree insert instead of a search for the key followed by the insert:
/// the caller must [`release`] the claim if the work fails, and [`set_control`] or
/// [`store_claimed_body`] if the answer turns out different.
pub fn claim_span(conn: &Connection, scope: &IdempotencyScope, span_id: &str) -> Result<bool, ApiError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO idempotency_keys (method, path, key, request_hash, status, body, span_id, control, inserted_at)
             VALUES (?1, ?2, ?3, ?4, 200, '', ?5, NULL, ?6) ON CONFLICT (key, path, method) DO NOTHING",
        )?
        .execute(params![scope.method, scope.path, scope.key, scope.request_hash, span_id, now_utc()])?;
    Ok(inserted == 1)
}

/// Records the control signal of a claimed span answer.
pub fn set_control(conn: &Connection, scope: &IdempotencyScope, control: &str) -> Result<(), ApiError> {
    conn.prepare_cached("UPDATE idempotency_keys SET control = ?4 WHERE key = ?3 AND path = ?2 AND method = ?1")?
        .execute(params![scope.method, scope.path, scope.key, control])?;
    Ok(())
}

/// Replaces a claimed span reference by a full answer body.
pub fn store_claimed_body(conn: &Connection, scope: &IdempotencyScope, answer: &StoredAnswer) -> Result<(), ApiError> {
    conn.prepare_cached(
        "UPDATE idempotency_keys SET status = ?4, body = ?5, span_id = NULL, control = NULL
         WHERE key = ?3 AND path = ?2 AND method = ?1",
    )?
    .execute(params![scope.method, scope.path, scope.key, answer.0, answer.1])?;
    Ok(())
}

/// Gives up a claim whose work failed (error answers are not stored, so it may be retried).
pub fn release(conn: &Connection, scope: &IdempotencyScope) -> Result<(), ApiError> {
    conn.prepare_cached("DELETE FROM idempotency_keys WHERE key = ?3 AND path = ?2 AND method = ?1")?
        .execute(params![scope.method, scope.path, scope.key])?;
    Ok(())
}
