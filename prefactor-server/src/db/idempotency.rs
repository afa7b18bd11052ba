//! Stored answers of idempotent requests (see [`crate::idempotency`] for the rules).

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::ApiError;
use crate::idempotency::IdempotencyScope;
use crate::timestamps::now_utc;

/// A stored answer: HTTP status and JSON body text.
pub type StoredAnswer = (u16, String);

/// Runs `work` at most once per scope: replays the stored answer of an earlier identical
/// request, rejects a key reused with another body, otherwise runs `work` and stores a 2xx
/// answer in the same transaction.
pub fn run_once(
    conn: &Connection,
    scope: Option<&IdempotencyScope>,
    work: impl FnOnce() -> Result<StoredAnswer, ApiError>,
) -> Result<StoredAnswer, ApiError> {
    let Some(scope) = scope else {
        return work();
    };
    if let Some((hash, status, body)) = find(conn, scope)? {
        if hash != scope.request_hash {
            return Err(ApiError::new(
                422,
                "idempotency_key_reused",
                format!(
                    "idempotency key '{}' was already used for a different {} {} request",
                    scope.key, scope.method, scope.path
                ),
            ));
        }
        return Ok((status, body));
    }
    let answer = work()?;
    if (200..300).contains(&answer.0) {
        conn.prepare_cached(
            "INSERT INTO idempotency_keys (method, path, key, request_hash, status, body, inserted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            scope.method,
            scope.path,
            scope.key,
            scope.request_hash,
            answer.0,
            answer.1,
            now_utc()
        ])?;
    }
    Ok(answer)
}

fn find(conn: &Connection, scope: &IdempotencyScope) -> rusqlite::Result<Option<(i64, u16, String)>> {
    conn.prepare_cached(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE method = ?1 AND path = ?2 AND key = ?3",
    )?
    .query_row(params![scope.method, scope.path, scope.key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
    .optional()
}
