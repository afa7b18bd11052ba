//! `PUT /api/v1/agent_instance/{id}`: the live API's legacy single quality payload.
//! `{"details": {"quality_payload": {..}}}` replaces the stored one (null clears it), is
//! validated against the schema version's `quality_schema` when it declares one, renders its
//! template into `quality_summary` (before the write, see [`super::prerender`]), and records a `prefactor:quality` span, as the live API
//! does on every publish.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use prefactor_protocol::{AgentStatus, UpdateInstanceRequest};
use rusqlite::Connection;
use serde_json::Value;

use super::instances::compiled_for;
use super::operation::Operation;
use super::prerender::Prerender;
use super::{respond, success};
use crate::body::parse;
use crate::db::instances::{self, InstanceRow};
use crate::db::spans::{self, PayloadTexts, SpanRow};
use crate::error::ApiError;
use crate::ids::parse_path_id;
use crate::state::AppState;
use crate::timestamps::now_utc;
use crate::validation::check;

/// The span type recorded for each quality publish.
pub const QUALITY_SPAN_TYPE: &str = "prefactor:quality";

/// `PUT /api/v1/agent_instance/{id}`.
pub async fn update(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    respond(async { prepare_update(&state, &id, &body)?.run(&state).await }.await)
}

fn prepare_update(state: &AppState, id: &str, body: &[u8]) -> Result<Operation, ApiError> {
    let id = parse_path_id("agent instance", id)?;
    let request: UpdateInstanceRequest = parse(body)?;
    let payload = match request.details.quality_payload {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(Value::Object(map)),
        Some(_) => return Err(ApiError::validation("details.quality_payload", "must be an object or null")),
    };
    let prerender = payload.as_ref().map(|payload| Prerender::new(&id, None, payload.clone()));
    let rendered = prerender.clone();
    let writer_state = state.clone();
    let operation = Operation::new(None, move |conn| {
        let mut row = instances::get(conn, &id)?;
        replace_quality(conn, &writer_state, &mut row, payload, rendered.as_ref())?;
        success(instances::to_resource(conn, &writer_state.account, row)?, None)
    });
    Ok(match prerender {
        Some(prerender) => operation.rendering_first(prerender),
        None => operation,
    })
}

fn replace_quality(
    conn: &Connection,
    state: &AppState,
    row: &mut InstanceRow,
    payload: Option<Value>,
    rendered: Option<&Prerender>,
) -> Result<(), ApiError> {
    let compiled = compiled_for(conn, state, row.schema_version_id.as_deref())?;
    let quality = compiled.as_ref().and_then(|c| c.single_quality.as_ref());
    let now = now_utc();
    row.quality_summary = match (&payload, quality) {
        (Some(payload), Some(quality)) => {
            if let Some(validator) = &quality.schema {
                check(validator, payload, "details.quality_payload")?;
            }
            // Rendered before the write (see super::prerender), never here on the writer.
            quality.template.as_ref().and(rendered).and_then(|r| r.summary_for(row.schema_version_id.as_deref()))
        }
        _ => None,
    };
    if let Some(payload) = &payload {
        record_quality_span(conn, state, &row.id, payload, &now)?;
    }
    row.quality_payload = payload;
    row.updated_at = now;
    instances::update(conn, row)
}

fn record_quality_span(
    conn: &Connection,
    state: &AppState,
    instance_id: &str,
    payload: &Value,
    now: &str,
) -> Result<(), ApiError> {
    let span = SpanRow {
        id: state.account.new_id(),
        agent_instance_id: instance_id.to_string(),
        parent_span_id: None,
        schema_name: QUALITY_SPAN_TYPE.to_string(),
        status: AgentStatus::Complete,
        payload: payload.clone(),
        result_payload: None,
        sensitive_encoding: None,
        started_at: now.to_string(),
        finished_at: Some(now.to_string()),
        inserted_at: now.to_string(),
        updated_at: now.to_string(),
    };
    spans::insert(conn, &span, &PayloadTexts::of(&span))?;
    Ok(())
}
