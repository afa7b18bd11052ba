//! A checked write, ready for the writer: what a request becomes once it has been parsed and
//! validated outside the database. The single endpoints run one [`Operation`] per request; the
//! bulk endpoint runs several in one writer job, in order.
//!
//! Idempotency (rules in [`crate::idempotency`]): an operation with a key first looks for the
//! key's record; the same request replays the stored answer, another request is 422
//! `idempotency_key_reused`; otherwise the work runs and its successful answer is recorded in
//! the same transaction.

use rusqlite::Connection;

use super::span_answer::SpanAnswer;
use crate::db::idempotency::{self, StoredAnswer};
use crate::error::ApiError;
use crate::idempotency::IdempotencyScope;
use crate::state::AppState;

/// What a write produced: a finished body, or a span answer still to be serialized (after
/// the commit, off the writer thread).
pub enum Outcome {
    /// Status and body.
    Answer(StoredAnswer),
    /// A span create/finish answer.
    Span(Box<SpanAnswer>),
}

impl Outcome {
    /// The status and body to send.
    pub fn into_answer(self, state: &AppState) -> Result<StoredAnswer, ApiError> {
        match self {
            Outcome::Answer(answer) => Ok(answer),
            Outcome::Span(span) => span.to_body(state),
        }
    }
}

/// The database part of a request: runs on the writer connection, inside a transaction.
pub type Work = Box<dyn FnOnce(&Connection) -> Result<Outcome, ApiError> + Send>;

/// A request's idempotency scope (if it carries a key) and its database work.
pub struct Operation {
    /// Replay/reuse detection for the request's key.
    pub scope: Option<IdempotencyScope>,
    /// The state change and the answer it produces.
    pub work: Work,
    /// False when `work` makes all its checks before its first write, so that a 4xx leaves no
    /// writes behind and no savepoint is needed (see [`crate::db::writer`]).
    pub guarded: bool,
    /// The terminal span whose row will be the answer, when known before the work: the key is
    /// then claimed first (see [`idempotency::claim_span`]).
    pub answer_span: Option<String>,
}

impl Operation {
    /// An operation of `work` under `scope`, run inside a savepoint.
    pub fn new<F>(scope: Option<IdempotencyScope>, work: F) -> Operation
    where
        F: FnOnce(&Connection) -> Result<StoredAnswer, ApiError> + Send + 'static,
    {
        Operation {
            scope,
            work: Box::new(move |conn| work(conn).map(Outcome::Answer)),
            guarded: true,
            answer_span: None,
        }
    }

    /// A span write whose `work` fails with a 4xx only before its first write: it runs without
    /// a savepoint (a 5xx after writing rolls back the whole group commit instead), and its
    /// answer is serialized after the commit.
    pub fn span<F>(scope: Option<IdempotencyScope>, work: F) -> Operation
    where
        F: FnOnce(&Connection) -> Result<SpanAnswer, ApiError> + Send + 'static,
    {
        Operation {
            scope,
            work: Box::new(move |conn| work(conn).map(|answer| Outcome::Span(Box::new(answer)))),
            guarded: false,
            answer_span: None,
        }
    }

    /// Declares that a success answers with the terminal span `span_id` (a create of a
    /// terminal span with a client id, a finish), so its key is claimed before the work.
    pub fn answering_with_span(mut self, span_id: String) -> Operation {
        self.answer_span = Some(span_id);
        self
    }

    /// Runs the operation on `conn` at most once per key; the caller provides the transaction.
    pub fn run_on(self, conn: &Connection, state: &AppState) -> Result<Outcome, ApiError> {
        let Operation { scope, work, answer_span, .. } = self;
        let Some(scope) = scope else {
            return work(conn);
        };
        if let Some(span_id) = answer_span {
            return run_claimed(conn, state, &scope, &span_id, work);
        }
        if let Some(record) = idempotency::find(conn, &scope)? {
            return replay(conn, state, &scope, record);
        }
        match work(conn)? {
            Outcome::Answer(answer) => {
                if (200..300).contains(&answer.0) {
                    idempotency::store_body(conn, &scope, &answer)?;
                }
                Ok(Outcome::Answer(answer))
            }
            Outcome::Span(span) if span.is_final() => {
                let control =
                    span.control.as_ref().map(serde_json::to_string).transpose().map_err(ApiError::internal)?;
                idempotency::store_span(conn, &scope, &span.span.id, control.as_deref())?;
                Ok(Outcome::Span(span))
            }
            Outcome::Span(span) => {
                let answer = span.to_body(state)?;
                idempotency::store_body(conn, &scope, &answer)?;
                Ok(Outcome::Answer(answer))
            }
        }
    }

    /// Runs the operation as its own job on the group-committing writer; resolves after the
    /// commit with the answer to send.
    pub async fn run(self, state: &AppState) -> Result<StoredAnswer, ApiError> {
        let writer_state = state.clone();
        let outcome = if self.guarded {
            state.db.write(move |conn| self.run_on(conn, &writer_state)).await
        } else {
            state.db.write_unguarded(move |conn| self.run_on(conn, &writer_state)).await
        };
        outcome?.into_answer(state)
    }
}

/// Runs `work` under a key claimed before it (see [`Operation::answering_with_span`]): a
/// taken key replays; a failed work gives the claim up; an answer other than the promised
/// span reference (not expected) is stored in full instead.
fn run_claimed(
    conn: &Connection,
    state: &AppState,
    scope: &IdempotencyScope,
    span_id: &str,
    work: Work,
) -> Result<Outcome, ApiError> {
    if !idempotency::claim_span(conn, scope, span_id)? {
        let record = idempotency::find(conn, scope)?
            .ok_or_else(|| ApiError::internal(format!("idempotency key '{}' is taken but has no record", scope.key)))?;
        return replay(conn, state, scope, record);
    }
    match work(conn) {
        Ok(Outcome::Span(span)) if span.is_final() && span.span.id == span_id => {
            if let Some(control) = &span.control {
                let control = serde_json::to_string(control).map_err(ApiError::internal)?;
                idempotency::set_control(conn, scope, &control)?;
            }
            Ok(Outcome::Span(span))
        }
        Ok(other) => {
            let answer = other.into_answer(state)?;
            idempotency::store_claimed_body(conn, scope, &answer)?;
            Ok(Outcome::Answer(answer))
        }
        Err(error) => {
            idempotency::release(conn, scope)?;
            Err(error)
        }
    }
}

/// The answer to a repeat of a key: the stored one, or `idempotency_key_reused`.
fn replay(
    conn: &Connection,
    state: &AppState,
    scope: &IdempotencyScope,
    record: idempotency::StoredRecord,
) -> Result<Outcome, ApiError> {
    if record.request_hash != scope.request_hash {
        return Err(idempotency::reused(scope));
    }
    match record.span_id {
        Some(span_id) => {
            Ok(Outcome::Span(Box::new(SpanAnswer::replay(conn, state, &span_id, record.control.as_deref())?)))
        }
        None => Ok(Outcome::Answer((record.status, record.body))),
    }
}
