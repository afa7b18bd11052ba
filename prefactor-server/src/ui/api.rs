//! The trace UI's JSON reads and its one action (terminate), all behind a session
//! ([`super::session`]); the terminate also needs the session's CSRF token.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prefactor_protocol::AgentSchemaVersion;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::body::parse;
use crate::db::runs::{self, AgentOverview, RunFilter, RunKey, RunOverview, RunPageStart};
use crate::db::{agents, instances, schema_versions};
use crate::error::ApiError;
use crate::handlers::instances::{compiled_for, terminate_in_tx};
use crate::handlers::listing::{QueryPairs, param};
use crate::ids::{parse_path_id, parse_pfid};
use crate::state::AppState;
use crate::timestamps::normalize_client_timestamp;
use crate::ui::session::{cleared_cookie, content_is_json};
use crate::ui::usage::UsageTotals;

/// Runs per page of the runs page.
pub const RUNS_PAGE_SIZE: u64 = 50;
/// Longest accepted search text and termination reason.
const MAX_TEXT: usize = 2_000;

/// 401 unless the request carries a live session cookie.
pub fn require_session(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    state.sessions.csrf_for(headers).ok_or_else(|| ApiError::unauthorized("log in first"))
}

fn reply<T: Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
struct LoginRequest {
    token: String,
}

/// `POST /ui/api/login {"token"}`: a session for one of the server's tokens.
pub async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = (|| {
        // A JSON body cannot be sent by a plain cross-site form, so no other site can log a
        // browser in to this server.
        if !content_is_json(&headers) {
            return Err(ApiError::new(415, "unsupported_media_type", "send the token as application/json"));
        }
        let request: LoginRequest = parse(&body)?;
        if !state.tokens.accepts(request.token.trim()) {
            return Err(ApiError::unauthorized("that is not this server's token"));
        }
        state.sessions.create().map_err(|error| ApiError::internal(format!("no randomness for a session: {error}")))
    })();
    match result {
        Ok(session) => {
            let mut response = Json(json!({"csrf_token": session.csrf})).into_response();
            response.headers_mut().insert(header::SET_COOKIE, session.cookie);
            response
        }
        Err(error) => error.into_response(),
    }
}

/// `GET /ui/api/session`: the CSRF token of a live session, else 401.
pub async fn session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    reply(require_session(&state, &headers).map(|csrf| json!({"csrf_token": csrf})))
}

/// `POST /ui/api/logout` (CSRF token required).
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.sessions.check_csrf(&headers) {
        return csrf_rejection().into_response();
    }
    state.sessions.end(&headers);
    let mut response = Json(json!({"status": "success"})).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cleared_cookie());
    response
}

fn csrf_rejection() -> ApiError {
    ApiError::new(403, "csrf_failed", "missing or wrong X-CSRF-Token for this session; reload the page")
}

/// `GET /ui/api/agents`.
pub async fn agents_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        require_session(&state, &headers)?;
        let agents: Vec<AgentOverview> = state.db.read(runs::agents).await?;
        Ok(json!({"agents": agents}))
    };
    reply(result.await)
}

/// A row of the runs page: the stored overview plus the first failure's error text.
#[derive(Serialize)]
struct RunRow {
    #[serde(flatten)]
    run: RunOverview,
    error: Option<String>,
}

/// `GET /ui/api/runs?agent_id=&status=&since=&until=&q=&offset=&after=&before=`: a page of an
/// agent's runs, newest registration first. `after` (the page's `older` key) reads the next
/// older page, `before` (its `newer` key) the next newer one, each as cheap as the first;
/// `offset` then only numbers the rows. Without a key, `offset` itself places the page (at
/// most [`runs::MAX_UNKEYED_OFFSET`]). `total` is exact unless `total_is_lower_bound` (a time
/// filter's count stops at [`runs::COUNT_CAP`]; a text search answers how far it read in
/// `search`).
pub async fn runs_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<QueryPairs>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        require_session(&state, &headers)?;
        let Query(query) = query.map_err(|error| ApiError::validation("query", error.body_text()))?;
        let filter = run_filter(&query)?;
        let offset = match param(&query, "offset").filter(|text| !text.is_empty()) {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| ApiError::validation("offset", "must be a number"))?,
        };
        let start = page_start(&query, offset)?;
        // A search always starts from its newest run unless continued from a key.
        let offset = if filter.search.is_some() && matches!(start, RunPageStart::Offset(_)) { 0 } else { offset };
        let newer_page = matches!(start, RunPageStart::Newer(_));
        let agent_id = filter.agent_id.clone();
        let (page, agent) = state
            .db
            .read(move |conn| {
                let agent = agents::find(conn, &filter.agent_id)?
                    .ok_or_else(|| ApiError::not_found(format!("agent {} not found", filter.agent_id)))?;
                Ok((runs::runs(conn, &filter, &start, RUNS_PAGE_SIZE)?, agent))
            })
            .await?;
        // A newer page that reached the newest run is answered as the first page.
        let offset = if newer_page && page.newer.is_none() { 0 } else { offset };
        let shown = page.runs.len() as u64;
        // A lower bound is at least what the reader has paged through.
        let total = if page.total_is_lower_bound {
            page.total.max(offset.saturating_add(shown).saturating_add(u64::from(page.older.is_some())))
        } else {
            page.total
        };
        let rows: Vec<RunRow> = page
            .runs
            .into_iter()
            .map(|run| {
                let error = run.first_failure.as_deref().map(|text| {
                    let result: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                    error_text(&result).unwrap_or_else(|| "failed".to_string())
                });
                RunRow { run, error }
            })
            .collect();
        Ok(json!({
            "agent": {"id": agent_id, "name": agent.name, "description": agent.description},
            "runs": rows, "total": total, "total_is_lower_bound": page.total_is_lower_bound,
            "offset": offset, "page_size": RUNS_PAGE_SIZE,
            "older": page.older.as_ref().map(RunKey::encode), "newer": page.newer.as_ref().map(RunKey::encode),
            "search": page.search,
        }))
    };
    reply(result.await)
}

/// Where the page starts: after the `after` key, before the `before` key, else at `offset`.
fn page_start(query: &QueryPairs, offset: u64) -> Result<RunPageStart, ApiError> {
    let key = |name: &str| {
        param(query, name)
            .filter(|text| !text.is_empty())
            .map(|text| {
                RunKey::decode(text)
                    .filter(|_| text.len() <= MAX_TEXT)
                    .ok_or_else(|| ApiError::validation(name, "is not a page key of this list (time~id)"))
            })
            .transpose()
    };
    match (key("after")?, key("before")?) {
        (Some(_), Some(_)) => Err(ApiError::validation("after", "give after or before, not both")),
        (Some(after), None) => Ok(RunPageStart::Older(after)),
        (None, Some(before)) => Ok(RunPageStart::Newer(before)),
        (None, None) => Ok(RunPageStart::Offset(offset)),
    }
}

fn run_filter(query: &QueryPairs) -> Result<RunFilter, ApiError> {
    let given = |name: &str| param(query, name).map(str::trim).filter(|text| !text.is_empty());
    let agent_id =
        parse_pfid("agent_id", given("agent_id").ok_or_else(|| ApiError::validation("agent_id", "is required"))?)?;
    let status = given("status")
        .map(|status| match status {
            "pending" | "active" | "complete" | "failed" | "cancelled" | "terminated" => Ok(status.to_string()),
            other => Err(ApiError::validation("status", format!("unknown status '{other}'"))),
        })
        .transpose()?;
    let time = |name: &str| {
        given(name)
            .map(|text| normalize_client_timestamp(text).map_err(|message| ApiError::validation(name, message)))
            .transpose()
    };
    let search = given("q").map(str::to_string);
    if search.as_ref().is_some_and(|text| text.len() > MAX_TEXT) {
        return Err(ApiError::validation("q", format!("at most {MAX_TEXT} bytes")));
    }
    Ok(RunFilter { agent_id, status, since: time("since")?, until: time("until")?, search })
}

/// One span of the run view.
#[derive(Serialize)]
struct RunSpan {
    id: String,
    parent_span_id: Option<String>,
    schema_name: String,
    title: Option<String>,
    summary: Option<String>,
    status: String,
    started_at: String,
    finished_at: Option<String>,
    payload: Value,
    result_payload: Option<Value>,
    error: Option<String>,
}

/// A span type's schemas, shown beside its payloads.
#[derive(Serialize, Default)]
struct SpanTypeView {
    title: Option<String>,
    description: Option<String>,
    params_schema: Option<Value>,
    result_schema: Option<Value>,
    data_risk: Option<Value>,
}

/// `GET /ui/api/runs/{id}`: the run, its spans, their span types and the usage totals.
pub async fn run_view(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result = async {
        require_session(&state, &headers)?;
        let id = parse_path_id("agent instance", &id)?;
        let reader = state.clone();
        state.db.read(move |conn| run_view_in(conn, &reader, &id)).await
    };
    reply(result.await)
}

fn run_view_in(conn: &rusqlite::Connection, state: &AppState, id: &str) -> Result<Value, ApiError> {
    let row = instances::get(conn, id)?;
    let agent_name = agents::find(conn, &row.agent_id)?.map(|agent| agent.name);
    let compiled = compiled_for(conn, state, row.schema_version_id.as_deref())?;
    let document = row.schema_version_id.as_deref().map(|id| schema_versions::load(conn, id)).transpose()?;
    let (span_rows, span_total) = runs::run_spans(conn, id)?;
    let mut totals = UsageTotals::default();
    let spans: Vec<RunSpan> = span_rows
        .into_iter()
        .map(|span| {
            totals.add(&span.payload, span.result_payload.as_ref());
            let span_type = compiled.as_ref().and_then(|c| c.span_types.get(&span.schema_name));
            let summary = span_type
                .and_then(|t| t.template.as_ref())
                .and_then(|template| template.render(&span.payload, span.result_payload.as_ref()));
            let error = (span.status.as_str() == "failed")
                .then(|| span.result_payload.as_ref().and_then(error_text).unwrap_or_else(|| "failed".to_string()));
            RunSpan {
                title: span_type.map(|t| t.title.clone()),
                summary,
                error,
                status: span.status.as_str().to_string(),
                id: span.id,
                parent_span_id: span.parent_span_id,
                schema_name: span.schema_name,
                started_at: span.started_at,
                finished_at: span.finished_at,
                payload: span.payload,
                result_payload: span.result_payload,
            }
        })
        .collect();
    let runtime_environment = row.runtime_environment.clone();
    let resource = instances::to_resource(conn, &state.account, row)?;
    Ok(json!({
        "run": resource,
        "agent_name": agent_name,
        "runtime_environment": runtime_environment,
        "spans": spans,
        "span_total": span_total,
        "span_types": document.as_ref().map(span_types).unwrap_or_default(),
        "usage": totals,
    }))
}

fn span_types(document: &AgentSchemaVersion) -> BTreeMap<String, SpanTypeView> {
    let mut types = BTreeMap::new();
    for span_type in document.span_type_schemas.iter().flatten() {
        types.insert(
            span_type.name.clone(),
            SpanTypeView {
                title: span_type.title.clone(),
                description: span_type.description.clone(),
                params_schema: Some(span_type.params_schema.clone()),
                result_schema: span_type.result_schema.clone(),
                data_risk: span_type.data_risk.clone(),
            },
        );
    }
    if types.is_empty() {
        for (name, schema) in document.span_schemas.iter().flatten() {
            let result = document.span_result_schemas.as_ref().and_then(|r| r.get(name)).cloned();
            types.insert(
                name.clone(),
                SpanTypeView { params_schema: Some(schema.clone()), result_schema: result, ..SpanTypeView::default() },
            );
        }
    }
    types
}

/// The error of a failed span's result: `error` (a string, or an object's `message`), else a
/// top-level `message`.
pub fn error_text(result: &Value) -> Option<String> {
    let error = result.get("error");
    let text = match error {
        Some(Value::String(text)) => Some(text.clone()),
        Some(object @ Value::Object(_)) => {
            object.get("message").and_then(Value::as_str).map(str::to_string).or_else(|| Some(object.to_string()))
        }
        _ => result.get("message").and_then(Value::as_str).map(str::to_string),
    };
    text.map(|text| text.chars().take(MAX_TEXT).collect())
}

#[derive(Deserialize)]
struct TerminateRequest {
    #[serde(default)]
    reason: String,
}

/// `POST /ui/api/runs/{id}/terminate {"reason"}`: needs the session's `X-CSRF-Token` and a
/// reason; the agent sees `control.terminate` on its next span answer.
pub async fn terminate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        require_session(&state, &headers)?;
        if !state.sessions.check_csrf(&headers) {
            return Err(csrf_rejection());
        }
        let id = parse_path_id("agent instance", &id)?;
        let request: TerminateRequest = parse(&body)?;
        let reason = request.reason.trim().to_string();
        if reason.is_empty() {
            return Err(ApiError::validation("reason", "is required"));
        }
        if reason.len() > MAX_TEXT {
            return Err(ApiError::validation("reason", format!("at most {MAX_TEXT} bytes")));
        }
        let account = state.account.clone();
        let instance = state.db.write(move |conn| terminate_in_tx(conn, &account, &id, Some(reason))).await?;
        Ok(json!({"run": instance}))
    };
    let mut response = reply(result.await);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
