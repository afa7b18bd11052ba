//! A checked write, ready for the writer: what a request becomes once it has been parsed and
//! validated outside the database. The single endpoints run one [`Operation`] per request; the
//! bulk endpoint runs several in one writer job, in order.
//!
//! Idempotency (rules in [`crate::idempotency`]): an operation with a key first looks for the
//! key's record; the same request replays the stored answer, another request is 422
//! `idempotency_key_reused`; otherwise the work runs and its successful answer is recorded in
//! the same transaction.
//!
//! Summaries are never rendered on the writer thread (a template is client input and one
//! slow render there would hold up every write): a span answer that is stored in full (a
//! keyed create of a span that is still open) is stored without its `summary`, which is
//! rendered after the commit, for the first answer and for every replay alike.

use std::borrow::Cow;
use std::sync::Arc;

use prefactor_protocol::{AgentSpan, SuccessResponse};
use rusqlite::Connection;
use serde::Deserialize;

use super::instances::compiled_for;
use super::prerender::Prerender;
use super::span_answer::SpanAnswer;
use crate::db::idempotency::{self, StoredAnswer};
use crate::db::instances;
use crate::error::ApiError;
use crate::idempotency::IdempotencyScope;
use crate::state::AppState;
use crate::validation::CompiledSchemaVersion;

/// What a write produced: a finished body, or a span answer still to be serialized (after
/// the commit, off the writer thread).
pub enum Outcome {
    /// Status and body.
    Answer(StoredAnswer),
    /// A span create/finish answer.
    Span(Box<SpanAnswer>),
    /// A stored span answer without its summary, and the schema version that renders it.
    StoredSpan(String, Option<Arc<CompiledSchemaVersion>>),
}

impl Outcome {
    /// The status and body to send.
    pub fn into_answer(self, state: &AppState) -> Result<StoredAnswer, ApiError> {
        match self {
            Outcome::Answer(answer) => Ok(answer),
            Outcome::Span(span) => span.to_body(state),
            Outcome::StoredSpan(body, compiled) => Ok((200, with_summary(body, compiled.as_deref()))),
        }
    }

    /// What is stored for a key: the body, a span answer's without its summary.
    fn stored(self, state: &AppState) -> Result<(StoredAnswer, Outcome), ApiError> {
        match self {
            Outcome::Span(span) => {
                let compiled = span.compiled.clone();
                let answer = span.to_stored_body(state)?;
                let outcome = Outcome::StoredSpan(answer.1.clone(), compiled);
                Ok((answer, outcome))
            }
            other => {
                let answer = other.into_answer(state)?;
                Ok((answer.clone(), Outcome::Answer(answer)))
            }
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
    /// A summary to render before the work runs (off the writer thread).
    pub prerender: Option<Prerender>,
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
            prerender: None,
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
            prerender: None,
        }
    }

    /// Declares that a success answers with the terminal span `span_id` (a create of a
    /// terminal span with a client id, a finish), so its key is claimed before the work.
    pub fn answering_with_span(mut self, span_id: String) -> Operation {
        self.answer_span = Some(span_id);
        self
    }

    /// Declares a summary to render before the work (see [`super::prerender`]).
    pub fn rendering_first(mut self, prerender: Prerender) -> Operation {
        self.prerender = Some(prerender);
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
            other => {
                let (answer, outcome) = other.stored(state)?;
                idempotency::store_body(conn, &scope, &answer)?;
                Ok(outcome)
            }
        }
    }

    /// Runs the operation as its own job on the group-committing writer; resolves after the
    /// commit with the answer to send.
    pub async fn run(self, state: &AppState) -> Result<StoredAnswer, ApiError> {
        if let Some(prerender) = &self.prerender {
            prerender.run(state).await;
        }
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
            let (answer, outcome) = other.stored(state)?;
            idempotency::store_claimed_body(conn, scope, &answer)?;
            Ok(outcome)
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
        None if scope.method == "POST" && scope.path == SPAN_CREATE_PATH && record.status == 200 => {
            let compiled = compiled_of_stored_span(conn, state, &record.body)?;
            Ok(Outcome::StoredSpan(record.body, compiled))
        }
        None => Ok(Outcome::Answer((record.status, record.body))),
    }
}

/// The path whose stored answers are span answers without their summary.
const SPAN_CREATE_PATH: &str = "/api/v1/agent_spans";

/// The schema version of the instance of a stored span answer.
fn compiled_of_stored_span(
    conn: &Connection,
    state: &AppState,
    body: &str,
) -> Result<Option<Arc<CompiledSchemaVersion>>, ApiError> {
    #[derive(Deserialize)]
    struct Stored<'a> {
        #[serde(borrow)]
        details: StoredDetails<'a>,
    }
    #[derive(Deserialize)]
    struct StoredDetails<'a> {
        #[serde(borrow)]
        agent_instance_id: Cow<'a, str>,
    }
    let Ok(stored) = serde_json::from_str::<Stored<'_>>(body) else {
        return Ok(None);
    };
    let owner = instances::span_owner(conn, &stored.details.agent_instance_id)?;
    compiled_for(conn, state, owner.schema_version_id.as_deref())
}

/// A stored span answer with its summary rendered in (the body unchanged when it is not one).
fn with_summary(body: String, compiled: Option<&CompiledSchemaVersion>) -> String {
    let Ok(mut answer) = serde_json::from_str::<SuccessResponse<AgentSpan>>(&body) else {
        return body;
    };
    let details = &mut answer.details;
    details.summary = compiled
        .and_then(|compiled| compiled.span_types.get(&details.schema_name))
        .and_then(|span_type| span_type.template.as_ref())
        .and_then(|template| template.render(&details.payload, details.result_payload.as_ref()));
    serde_json::to_string(&answer).unwrap_or(body)
}
