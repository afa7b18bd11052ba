//! Agent instance endpoints: register, start, finish, get, list, record_quality, terminate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use prefactor_protocol::{
    AgentInstance, AgentStatus, FinishInstanceRequest, FinishStatus, RecordQualityRequest, RegisterInstanceRequest,
    SortDirection, Sorting, StartInstanceRequest, TerminateInstanceRequest,
};
use rusqlite::Connection;
use serde_json::Value;

use super::listing::{QueryPairs, list_answer, page_request, param, sorting};
use super::operation::{Operation, Replay};
use super::prerender::Prerender;
use super::{ActionRequest, client_time, parse_action, respond, success};
use crate::body::parse;
use crate::db::instances::{self, InstanceRow, PageStart};
use crate::db::{agent_versions, agents, meta, schema_versions};
use crate::error::ApiError;
use crate::idempotency::scope_for;
use crate::ids::{parse_path_id, parse_pfid};
use crate::state::AppState;
use crate::timestamps::now_utc;
use crate::validation::{CompiledSchemaVersion, check};

/// `POST /api/v1/agent_instance/register`.
pub async fn register(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(async { prepare_register(&state, &headers, &body)?.run(&state).await }.await)
}

/// Parses and checks a register body (bulk item: the same body).
pub fn prepare_register(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Operation, ApiError> {
    let request: RegisterInstanceRequest = parse(body)?;
    let scope = scope_for("POST", "/api/v1/agent_instance/register", headers, &request)?;
    let mut checked = CheckedRegister::from_request(state, request)?;
    // A second, narrow parse, only for bodies that carry the field.
    if memchr::memmem::find(body, b"runtime_environment").is_some() {
        checked.runtime_environment = parse::<VersionEnvironment>(body)?.agent_version.runtime_environment;
    }
    let writer_state = state.clone();
    Ok(Operation::replayed(scope, Replay::Registered, move |conn| {
        let instance = register_in_tx(conn, &writer_state, checked)?;
        success(instance, None)
    }))
}

/// A register request whose ids and schema document have been checked.
struct CheckedRegister {
    request: RegisterInstanceRequest,
    agent_id: Option<String>,
    environment_id: Option<String>,
    instance_id: Option<String>,
    /// `agent_version.runtime_environment` (prefactor-core 0.5.2+).
    runtime_environment: Option<Value>,
}

/// The part of a register body that [`RegisterInstanceRequest`] does not model:
/// `agent_version.runtime_environment`.
#[derive(serde::Deserialize)]
struct VersionEnvironment {
    #[serde(default)]
    agent_version: RuntimeEnvironment,
}

#[derive(Default, serde::Deserialize)]
struct RuntimeEnvironment {
    #[serde(default)]
    runtime_environment: Option<Value>,
}

impl CheckedRegister {
    fn from_request(state: &AppState, request: RegisterInstanceRequest) -> Result<Self, ApiError> {
        let pfid = |field: &str, value: &Option<String>| value.as_deref().map(|id| parse_pfid(field, id)).transpose();
        let agent_id = pfid("agent_id", &request.agent_id)?;
        if agent_id.is_none() && state.options.strict_agents {
            return Err(ApiError::validation("agent_id", "is required (the server runs with --strict-agents)"));
        }
        let environment_id = pfid("environment_id", &request.environment_id)?;
        let instance_id = pfid("id", &request.id)?;
        if let Some(document) = &request.agent_schema_version {
            // Reject an unusable document before touching the database.
            state.schemas.check_document(document, state.options.validate_schemas)?;
        }
        Ok(CheckedRegister { request, agent_id, environment_id, instance_id, runtime_environment: None })
    }
}

fn register_in_tx(conn: &Connection, state: &AppState, checked: CheckedRegister) -> Result<AgentInstance, ApiError> {
    let now = now_utc();
    let account = &state.account;
    let request = &checked.request;
    let agent_id = resolve_agent(conn, state, checked.agent_id.as_deref(), request, &now)?;
    agents::mark_active(conn, &agent_id, &now)?;
    let agent_version_id = agent_versions::find_or_create(conn, account, &agent_id, &request.agent_version, &now)?;
    let schema_version_id = request
        .agent_schema_version
        .as_ref()
        .map(|document| schema_versions::find_or_create(conn, account, &agent_id, document, &now))
        .transpose()?;
    let id = match checked.instance_id {
        Some(id) if instances::find(conn, &id)?.is_some() => {
            return Err(ApiError::conflict(format!("agent instance {id} already exists")));
        }
        Some(id) => id,
        None => account.new_id(),
    };
    let row = InstanceRow {
        id,
        agent_id,
        agent_version_id,
        schema_version_id,
        environment_id: checked.environment_id.unwrap_or_else(|| account.environment_id.clone()),
        status: AgentStatus::Pending,
        purpose: request.purpose.unwrap_or_default(),
        update_current_version: request.update_current_version.unwrap_or(true),
        termination_reason: None,
        quality_payloads: Default::default(),
        quality_summaries: Default::default(),
        inserted_at: now.clone(),
        updated_at: now,
        started_at: None,
        finished_at: None,
        external_identifier: request.external_identifier.clone(),
        runtime_environment: checked.runtime_environment.or_else(|| request.runtime_environment.clone()),
        quality_payload: None,
        quality_summary: None,
    };
    // 422, not 409: SDKs read a 409 to a register as "this instance exists already" (a
    // replay), so a conflict here would make them send the run to an instance never made.
    // The agent's own `external_identifier` is a 422 when taken as well.
    if let Some(external) = &row.external_identifier
        && instances::external_identifier_taken(conn, &row.agent_id, external)?
    {
        return Err(ApiError::validation(
            "external_identifier",
            format!("another run of agent {} already has external_identifier '{external}'", row.agent_id),
        ));
    }
    instances::insert(conn, &row)?;
    Ok(instances::to_new_resource(account, row))
}

/// The agent of a register: the named one (created unless strict), or a default local agent.
fn resolve_agent(
    conn: &Connection,
    state: &AppState,
    agent_id: Option<&str>,
    request: &RegisterInstanceRequest,
    now: &str,
) -> Result<String, ApiError> {
    let name = request.agent_version.name.clone().unwrap_or_else(|| "Agent".to_string());
    match agent_id {
        Some(id) if agents::exists(conn, id)? => Ok(id.to_string()),
        Some(id) if state.options.strict_agents => Err(ApiError::not_found(format!("agent {id} not found"))),
        Some(id) => {
            tracing::info!(agent_id = id, "register with unknown agent id: creating the agent");
            let agent = agents::NewAgent { id: id.to_string(), name, ..Default::default() };
            agents::insert(conn, &agent, now)?;
            Ok(id.to_string())
        }
        None => default_agent(conn, state, request.agent_version.name.as_deref(), now),
    }
}

/// The agent of registers without `agent_id`: one per `agent_version.name` (so the trace UI
/// lists `#[prefactor::agent(name = "..")]` functions as separate agents), "Local agent" for
/// unnamed versions. Created on first use; the meta table remembers each one.
fn default_agent(
    conn: &Connection,
    state: &AppState,
    version_name: Option<&str>,
    now: &str,
) -> Result<String, ApiError> {
    let version_name = version_name.map(str::trim).filter(|name| !name.is_empty());
    let key = match version_name {
        Some(name) => format!("default_agent_id:{name}"),
        None => "default_agent_id".to_string(),
    };
    if let Some(id) = meta::get(conn, &key)? {
        return Ok(id);
    }
    let id = state.account.new_id();
    let agent = agents::NewAgent {
        id: id.clone(),
        name: version_name.unwrap_or("Local agent").to_string(),
        description: Some("Made by the local server for registers without agent_id".to_string()),
        ..Default::default()
    };
    agents::insert(conn, &agent, now)?;
    meta::put(conn, &key, &id)?;
    Ok(id)
}

/// `POST /api/v1/agent_instance/{id}/start`: pending -> active. Start on an instance that is
/// no longer pending changes nothing and answers 200, because the SDKs may deliver a start
/// after spans or even after the finish (Python runs three queue workers).
pub async fn start(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    respond(async { prepare_start(&state, &id, &headers, &body)?.run(&state).await }.await)
}

/// Parses and checks a start body for instance `id`.
pub fn prepare_start(state: &AppState, id: &str, headers: &HeaderMap, body: &[u8]) -> Result<Operation, ApiError> {
    let ActionRequest { id, request, scope } =
        parse_action::<StartInstanceRequest>(("agent instance", "agent_instance", "start"), id, headers, body)?;
    let started_at = client_time("timestamp", request.timestamp.as_deref())?;
    let account = state.account.clone();
    Ok(Operation::replayed(scope, Replay::Instance, move |conn| {
        let mut row = instances::get(conn, &id)?;
        if row.status == AgentStatus::Pending {
            let now = now_utc();
            row.status = AgentStatus::Active;
            row.started_at = Some(started_at.unwrap_or_else(|| now.clone()));
            row.updated_at = now;
            instances::update(conn, &row)?;
        }
        success(instances::to_resource(conn, &account, row)?, None)
    }))
}

/// `POST /api/v1/agent_instance/{id}/finish`: pending|active -> complete|failed|cancelled
/// (default complete); 409 `conflict` when already terminal.
pub async fn finish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(async { prepare_finish(&state, &id, &headers, &body)?.run(&state).await }.await)
}

/// Parses and checks an instance finish body for instance `id`.
pub fn prepare_finish(state: &AppState, id: &str, headers: &HeaderMap, body: &[u8]) -> Result<Operation, ApiError> {
    let ActionRequest { id, request, scope } =
        parse_action::<FinishInstanceRequest>(("agent instance", "agent_instance", "finish"), id, headers, body)?;
    let finished_at = client_time("timestamp", request.timestamp.as_deref())?;
    let status = AgentStatus::from(request.status.unwrap_or(FinishStatus::Complete));
    let account = state.account.clone();
    Ok(Operation::replayed(scope, Replay::Instance, move |conn| {
        let mut row = instances::get(conn, &id)?;
        if row.status.is_terminal() {
            return Err(ApiError::conflict(format!("Agent instance is already {}", row.status.as_str())));
        }
        let now = now_utc();
        row.status = status;
        row.finished_at = Some(finished_at.unwrap_or_else(|| now.clone()));
        row.updated_at = now;
        instances::update(conn, &row)?;
        success(instances::to_resource(conn, &account, row)?, None)
    }))
}

/// `GET /api/v1/agent_instance/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let result = async {
        let id = parse_path_id("agent instance", &id)?;
        let account = state.account.clone();
        state
            .db
            .read(move |conn| {
                let row = instances::get(conn, &id)?;
                success(instances::to_resource(conn, &account, row)?, None)
            })
            .await
    };
    respond(result.await)
}

/// `GET /api/v1/agent_instance?agent_id=`: newest first by id (`sorting=id` for oldest first).
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<QueryPairs>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let Query(query) = query.map_err(|error| ApiError::validation("query", error.body_text()))?;
        let agent_id = param(&query, "agent_id").map(|id| parse_pfid("agent_id", id)).transpose()?;
        let page = page_request(&query)?;
        let default = Sorting { field: "id".to_string(), direction: SortDirection::Desc };
        let order = sorting(&query, &["id"], default)?;
        let ascending = order.direction == SortDirection::Asc;
        let account = state.account.clone();
        let reader_state = state.clone();
        // Read before the snapshot: a key remembered under this generation is current.
        let generation = state.db.commit_generation();
        let list = format!("instances|{}|{ascending}", agent_id.as_deref().unwrap_or("*"));
        state
            .db
            .read(move |conn| {
                let after = reader_state.page_keys.get(&list, page.offset, generation);
                let start = PageStart { offset: page.offset, after: after.as_deref(), limit: page.page_size };
                let (rows, total) = instances::list(conn, agent_id.as_deref(), start, ascending)?;
                if let Some(last) = rows.last().filter(|_| rows.len() as u64 == page.page_size) {
                    let next = page.offset.saturating_add(page.page_size);
                    reader_state.page_keys.store(&list, next, generation, last.id.clone());
                }
                let resources = rows
                    .into_iter()
                    .map(|row| instances::to_resource(conn, &account, row))
                    .collect::<Result<Vec<_>, _>>()?;
                list_answer(resources, page, total, order)
            })
            .await
    };
    respond(result.await)
}

/// `POST /api/v1/agent_instance/{id}/record_quality`: stores (or, with a null payload,
/// removes) the payload of one declared quality schema and renders its summary.
pub async fn record_quality(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(async { prepare_record_quality(&state, &id, &headers, &body)?.run(&state).await }.await)
}

/// Parses and checks a record_quality body for instance `id`.
pub fn prepare_record_quality(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Operation, ApiError> {
    let ActionRequest { id, request, scope } = parse_action::<RecordQualityRequest>(
        ("agent instance", "agent_instance", "record_quality"),
        id,
        headers,
        body,
    )?;
    let payload = match request.payload {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(Value::Object(map)),
        Some(_) => return Err(ApiError::validation("payload", "must be an object or null")),
    };
    let prerender = payload.as_ref().map(|payload| Prerender::new(&id, Some(&request.name), payload.clone()));
    let rendered = prerender.clone();
    let writer_state = state.clone();
    let operation = Operation::replayed(scope, Replay::Instance, move |conn| {
        let mut row = instances::get(conn, &id)?;
        let compiled = compiled_for(conn, &writer_state, row.schema_version_id.as_deref())?;
        let quality = compiled.as_ref().and_then(|c| c.quality.get(&request.name)).ok_or_else(|| {
            ApiError::validation(
                "name",
                format!("'{}' is not a quality schema declared by the instance's schema version", request.name),
            )
        })?;
        match payload {
            None => {
                row.quality_payloads.remove(&request.name);
                row.quality_summaries.remove(&request.name);
            }
            Some(payload) => {
                if let Some(validator) = &quality.schema {
                    check(validator, &payload, "payload")?;
                }
                let summary = match (&quality.template, &rendered) {
                    (Some(_), Some(rendered)) => rendered.summary_for(row.schema_version_id.as_deref()),
                    _ => None,
                };
                match summary {
                    Some(summary) => row.quality_summaries.insert(request.name.clone(), summary),
                    None => row.quality_summaries.remove(&request.name),
                };
                row.quality_payloads.insert(request.name.clone(), payload);
            }
        }
        row.updated_at = now_utc();
        instances::update(conn, &row)?;
        success(instances::to_resource(conn, &writer_state.account, row)?, None)
    });
    Ok(match prerender {
        Some(prerender) => operation.rendering_first(prerender),
        None => operation,
    })
}

/// The compiled schema version `id` (None when the instance has none).
pub fn compiled_for(
    conn: &Connection,
    state: &AppState,
    schema_version_id: Option<&str>,
) -> Result<Option<Arc<CompiledSchemaVersion>>, ApiError> {
    schema_version_id
        .map(|id| state.schemas.get_or_compile(id, state.options.validate_schemas, || schema_versions::load(conn, id)))
        .transpose()
}

/// `POST /api/v1/agent_instance/{id}/terminate {"reason"}`: the operator's stop. From then on
/// span responses carry `control.terminate`; 409 `conflict` when already terminal.
pub async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(async { prepare_terminate(&state, &id, &headers, &body)?.run(&state).await }.await)
}

fn prepare_terminate(state: &AppState, id: &str, headers: &HeaderMap, body: &[u8]) -> Result<Operation, ApiError> {
    let ActionRequest { id, request, scope } =
        parse_action::<TerminateInstanceRequest>(("agent instance", "agent_instance", "terminate"), id, headers, body)?;
    let account = state.account.clone();
    Ok(Operation::replayed(scope, Replay::Instance, move |conn| {
        let instance = terminate_in_tx(conn, &account, &id, request.reason)?;
        success(instance, None)
    }))
}

/// Terminates instance `id` inside a write transaction (shared with `LocalServer`).
pub fn terminate_in_tx(
    conn: &Connection,
    account: &meta::LocalAccount,
    id: &str,
    reason: Option<String>,
) -> Result<AgentInstance, ApiError> {
    let mut row = instances::get(conn, id)?;
    if row.status.is_terminal() {
        return Err(ApiError::conflict(format!("Agent instance is already {}", row.status.as_str())));
    }
    let now = now_utc();
    row.status = AgentStatus::Terminated;
    row.termination_reason = reason;
    row.finished_at = Some(now.clone());
    row.updated_at = now;
    instances::update(conn, &row)?;
    instances::to_resource(conn, account, row)
}
