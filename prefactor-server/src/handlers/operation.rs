//! A checked write, ready for the writer: what a request becomes once it has been parsed and
//! validated outside the database. The single endpoints run one [`Operation`] per request; the
//! bulk endpoint runs several in one writer job, in order.
//!
//! Idempotency (rules in [`crate::idempotency`]): an operation with a key first looks for the
//! key's record; the same request replays the answer, rebuilt from the resource the record
//! names (see [`Replay`]), another request is 422 `idempotency_key_reused`; otherwise the work
//! runs and the record of its successful answer is written in the same transaction.
//!
//! Summaries are never rendered on the writer thread (a template is client input and one
//! slow render there would hold up every write): span answers, first or replayed, are
//! serialized with their summary after the commit. (Records written before migration 7 may
//! hold a whole span answer stored without its summary, rendered in the same way.)

use std::borrow::Cow;
use std::sync::Arc;

use prefactor_protocol::{AgentSpan, AgentStatus, SuccessResponse};
use rusqlite::Connection;
use serde::Deserialize;

use super::instances::compiled_for;
use super::prerender::Prerender;
use super::span_answer::SpanAnswer;
use super::success;
use crate::db::idempotency::{self, Record, StoredAnswer};
use crate::db::spans::SpanRow;
use crate::db::{agents, instances};
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
    /// How the key's record answers a repeat.
    pub replay: Replay,
}

/// How the idempotency record of an operation answers a repeat of its request (see
/// [`crate::db::idempotency`]): records name the resource, and a replay rebuilds the answer
/// from it.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// The whole answer is stored (an answer that names no resource).
    Body,
    /// The instance the answer names, as it is at the replay (start, finish, record_quality,
    /// terminate: their answers carry span counts that later spans change, so the replay
    /// shows the instance's current state).
    Instance,
    /// The instance as its register answered it (the same bytes).
    Registered,
    /// The agent as its create answered it (the same bytes).
    AgentCreated,
    /// The span the answer names: a terminal span never changes again, so it is its answer;
    /// an open one is put back as its create left it (the same bytes either way).
    Span(Option<SpanAsCreated>),
}

/// What a span create sets that a later finish changes.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanAsCreated {
    /// The created status.
    pub status: AgentStatus,
    /// The created result payload.
    pub result_payload: Option<serde_json::Value>,
    /// The created flag.
    pub sensitive_encoding: Option<bool>,
}

impl SpanAsCreated {
    /// Puts `span` (read now) back as its create left it, if it was created open.
    fn restore(&self, span: &mut SpanRow) {
        if self.status.is_terminal() {
            return;
        }
        span.status = self.status;
        span.result_payload = self.result_payload.clone();
        span.sensitive_encoding = self.sensitive_encoding;
        span.finished_at = None;
        span.updated_at = span.inserted_at.clone();
    }
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
            replay: Replay::Body,
        }
    }

    /// [`Operation::new`] whose key's record answers a repeat as `replay` says.
    pub fn replayed<F>(scope: Option<IdempotencyScope>, replay: Replay, work: F) -> Operation
    where
        F: FnOnce(&Connection) -> Result<StoredAnswer, ApiError> + Send + 'static,
    {
        Operation::new(scope, work).replayed_as(replay)
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
            replay: Replay::Span(None),
        }
    }

    /// Declares that a success answers with the terminal span `span_id` (a create of a
    /// terminal span with a client id, a finish), so its key is claimed before the work.
    pub fn answering_with_span(mut self, span_id: String) -> Operation {
        self.answer_span = Some(span_id);
        self
    }

    /// Declares how the key's record answers a repeat (default: [`Replay::Body`] for
    /// [`Operation::new`], [`Replay::Span`] for [`Operation::span`]).
    pub fn replayed_as(mut self, replay: Replay) -> Operation {
        self.replay = replay;
        self
    }

    /// Declares a summary to render before the work (see [`super::prerender`]).
    pub fn rendering_first(mut self, prerender: Prerender) -> Operation {
        self.prerender = Some(prerender);
        self
    }

    /// Runs the operation on `conn` at most once per key; the caller provides the transaction.
    pub fn run_on(self, conn: &Connection, state: &AppState) -> Result<Outcome, ApiError> {
        let Operation { scope, work, answer_span, replay, .. } = self;
        let Some(scope) = scope else {
            return work(conn);
        };
        if let Some(span_id) = answer_span {
            return run_claimed(conn, state, &scope, &span_id, &replay, work);
        }
        if let Some(record) = idempotency::find(conn, &scope)? {
            return replay_record(conn, state, &scope, record, None, &replay);
        }
        let outcome = work(conn)?;
        if let Some(record) = record_of(&outcome, &replay)? {
            idempotency::store_resource_or_body(conn, &scope, &record)?;
        }
        Ok(outcome)
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

/// The record of `outcome`; `None` for an answer that is not stored (not a success).
fn record_of(outcome: &Outcome, replay: &Replay) -> Result<Option<Record>, ApiError> {
    let record = match outcome {
        Outcome::Answer(answer) if !(200..300).contains(&answer.0) => return Ok(None),
        Outcome::Answer((status, body)) if *replay == Replay::Body => {
            Record { status: *status, body: Some(body.clone()), resource_id: None, control: None }
        }
        Outcome::Answer((status, body)) => {
            Record { status: *status, body: None, resource_id: Some(answer_resource_id(body)?), control: None }
        }
        Outcome::Span(span) => Record {
            status: 200,
            body: None,
            resource_id: Some(span.span.id.clone()),
            control: span.control.as_ref().map(serde_json::to_string).transpose().map_err(ApiError::internal)?,
        },
        Outcome::StoredSpan(body, _) => {
            Record { status: 200, body: Some(body.clone()), resource_id: None, control: None }
        }
    };
    Ok(Some(record))
}

/// The id of the resource a success answer shows (`details.id`).
fn answer_resource_id(body: &str) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        details: Details<'a>,
    }
    #[derive(Deserialize)]
    struct Details<'a> {
        #[serde(borrow)]
        id: Cow<'a, str>,
    }
    let answer: Answer<'_> = serde_json::from_str(body).map_err(ApiError::internal)?;
    Ok(answer.details.id.into_owned())
}

/// Runs `work` under a key claimed before it (see [`Operation::answering_with_span`]): a
/// taken key replays; a failed work gives the claim up; an answer other than the promised
/// span (not expected) is recorded as any other instead.
fn run_claimed(
    conn: &Connection,
    state: &AppState,
    scope: &IdempotencyScope,
    span_id: &str,
    replay: &Replay,
    work: Work,
) -> Result<Outcome, ApiError> {
    if !idempotency::claim_span(conn, scope)? {
        let record = idempotency::find(conn, scope)?
            .ok_or_else(|| ApiError::internal(format!("idempotency key '{}' is taken but has no record", scope.key)))?;
        return replay_record(conn, state, scope, record, Some(span_id), replay);
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
            match record_of(&other, replay)? {
                Some(record) => idempotency::store_claimed(conn, scope, &record)?,
                None => idempotency::release(conn, scope)?,
            }
            Ok(other)
        }
        Err(error) => {
            idempotency::release(conn, scope)?;
            Err(error)
        }
    }
}

/// The answer to a repeat of a key: rebuilt from the resource its record names (see
/// [`Replay`]), the stored body of an older record, or `idempotency_key_reused`.
/// `claimed_span` is the span a claimed key's record means when it names none.
fn replay_record(
    conn: &Connection,
    state: &AppState,
    scope: &IdempotencyScope,
    record: idempotency::StoredRecord,
    claimed_span: Option<&str>,
    replay: &Replay,
) -> Result<Outcome, ApiError> {
    if record.request_hash != scope.request_hash {
        return Err(idempotency::reused(scope));
    }
    if let Some(body) = record.body {
        if scope.method == "POST" && scope.path == SPAN_CREATE_PATH && record.status == 200 {
            let compiled = compiled_of_stored_span(conn, state, &body)?;
            return Ok(Outcome::StoredSpan(body, compiled));
        }
        return Ok(Outcome::Answer((record.status, body)));
    }
    let resource = record.resource_id.as_deref().or(claimed_span).ok_or_else(|| {
        ApiError::internal(format!("the record of idempotency key '{}' names no resource", scope.key))
    })?;
    let gone = || deleted_since(scope, resource);
    let answer = match replay {
        Replay::Span(as_created) => {
            let mut answer = SpanAnswer::replay(conn, state, resource, record.control.as_deref())?.ok_or_else(gone)?;
            if let Some(as_created) = as_created {
                as_created.restore(&mut answer.span);
            }
            return Ok(Outcome::Span(Box::new(answer)));
        }
        Replay::Instance => {
            let row = instances::find(conn, resource)?.ok_or_else(gone)?;
            success(instances::to_resource(conn, &state.account, row)?, None)?
        }
        Replay::Registered => {
            let row = instances::find(conn, resource)?.ok_or_else(gone)?;
            success(instances::as_registered(&state.account, row), None)?
        }
        Replay::AgentCreated => success(agents::find_as_created(conn, resource)?.ok_or_else(gone)?, None)?,
        Replay::Body => {
            return Err(ApiError::internal(format!("the record of idempotency key '{}' has no body", scope.key)));
        }
    };
    Ok(Outcome::Answer((record.status, answer.1)))
}

/// The answer to a repeat of a key whose request was applied but whose resource is gone:
/// only `--retain` deletes runs (and their spans), so the run was finished and deleted since.
/// 409 `conflict`, as a create of an id that exists answers: the work was done, and the SDKs
/// count a 409 as delivered (a 404 would report a delivered span or run as rejected).
fn deleted_since(scope: &IdempotencyScope, resource: &str) -> ApiError {
    ApiError::conflict(format!(
        "idempotency key '{}' was applied already; {resource}, which it created or changed, was deleted since \
         (finished runs older than --retain are deleted with their spans)",
        scope.key
    ))
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
