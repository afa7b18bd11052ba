//! The answer of a span create or finish, kept as data until the commit.
//!
//! Why: serializing the `AgentSpan` answer (and rendering its summary template) is a fifth of
//! a span's cost, and the single writer thread is the server's bottleneck. So span writes
//! hand back a [`SpanAnswer`] and the HTTP task serializes it after the commit. For the same
//! reason the idempotency record of a span answer stores only the span id and the control
//! signal, not the ~1 KB body: a terminal span never changes again (a second finish is
//! refused), so replaying rebuilds exactly the same body from the span row; an open span is
//! put back as its create left it first (see [`super::operation::SpanAsCreated`]).

use std::sync::Arc;

use prefactor_protocol::{AgentStatus, Control};
use rusqlite::Connection;

use super::instances::compiled_for;
use super::spans::to_resource;
use super::success;
use crate::db::idempotency::StoredAnswer;
use crate::db::instances::{self, SpanOwner};
use crate::db::spans::{self, SpanRow};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validation::CompiledSchemaVersion;

/// Everything the success body of a span write is made of.
pub struct SpanAnswer {
    /// The span as written.
    pub span: SpanRow,
    /// Its instance's agent.
    pub agent_id: String,
    /// The instance's schema version (title and summary template of the span type).
    pub compiled: Option<Arc<CompiledSchemaVersion>>,
    /// `control.terminate` once the instance is terminated.
    pub control: Option<Control>,
}

impl SpanAnswer {
    /// The answer for `span` of instance `owner`.
    pub fn new(span: SpanRow, owner: SpanOwner, compiled: Option<Arc<CompiledSchemaVersion>>) -> SpanAnswer {
        let control = (owner.status == AgentStatus::Terminated)
            .then_some(Control { terminate: true, reason: owner.termination_reason });
        SpanAnswer { span, agent_id: owner.agent_id, compiled, control }
    }

    /// True when the body can be rebuilt from the span row later (see the module doc).
    pub fn is_final(&self) -> bool {
        self.span.status.is_terminal()
    }

    /// The success body `{"status":"success","details":{...},"control"?}`.
    pub fn to_body(self, state: &AppState) -> Result<StoredAnswer, ApiError> {
        let resource = to_resource(state, &self.agent_id, self.compiled.as_deref(), self.span, true);
        success(resource, self.control)
    }

    /// Rebuilds the answer of a stored reference: span `span_id` as it is now (terminal, so as
    /// it was then) and the control signal recorded with the answer.
    pub fn replay(
        conn: &Connection,
        state: &AppState,
        span_id: &str,
        control: Option<&str>,
    ) -> Result<Option<SpanAnswer>, ApiError> {
        // Gone only when retention deleted its run (spans are never deleted otherwise).
        let Some(span) = spans::find(conn, span_id)? else {
            return Ok(None);
        };
        let owner = instances::span_owner(conn, &span.agent_instance_id)?;
        let compiled = compiled_for(conn, state, owner.schema_version_id.as_deref())?;
        let control = control.map(serde_json::from_str::<Control>).transpose().map_err(ApiError::internal)?;
        Ok(Some(SpanAnswer { span, agent_id: owner.agent_id, compiled, control }))
    }
}
