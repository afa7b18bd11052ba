//! Agent span endpoints: create, finish, list.
//!
//! State machine: a span is created `pending`, `active`, or already terminal (`complete`,
//! `failed`, `cancelled`, with `finished_at` defaulting to now). Finish moves `active` or
//! `pending` to any finish status: `pending -> complete|failed` is allowed too, because the
//! SDKs deliver create and finish through independent queues and refusing would only lose
//! data. Finishing a terminal span is 409 `invalid_action`. Spans may be created on pending,
//! finished or terminated instances (the SDKs can produce those orders); once the instance is
//! terminated every create/finish answer carries `control: {terminate: true, reason}`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use prefactor_protocol::{
    AgentSpan, AgentStatus, CreateSpanDetails, CreateSpanRequest, FinishSpanRequest, FinishStatus, SortDirection,
    Sorting,
};
use rusqlite::Connection;
use serde_json::{Map, Value};

use super::instances::compiled_for;
use super::listing::{QueryPairs, list_answer, page_request, param, sorting};
use super::operation::{Operation, Replay, SpanAsCreated};
use super::span_answer::SpanAnswer;
use super::span_rows::{list_rows, with_versions};
use super::{ActionRequest, client_time, parse_action, respond};
use crate::body::{json_kind, parse};
use crate::db::instances::{self, PageStart};
use crate::db::spans::{self, PayloadTexts, SpanOrder, SpanRow, SpanScope};
use crate::error::ApiError;
use crate::idempotency::scope_for;
use crate::ids::parse_pfid;
use crate::state::AppState;
use crate::timestamps::now_utc;
use crate::validation::{CompiledSchemaVersion, check};

/// `POST /api/v1/agent_spans` (wrapped body).
pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(async { prepare_create(&state, &headers, &body)?.run(&state).await }.await)
}

/// Parses and checks a span create body (bulk item: the same body); the write is left to run.
pub fn prepare_create(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Operation, ApiError> {
    let request: CreateSpanRequest = parse(body)?;
    let scope = scope_for("POST", "/api/v1/agent_spans", headers, &request)?;
    let checked = CheckedCreate::from_details(request.details)?;
    // A terminal span with a client id: its answer is known to be that span's row.
    let answer_span = (checked.client_id && checked.span.status.is_terminal()).then(|| checked.span.id.clone());
    let as_created = SpanAsCreated {
        status: checked.span.status,
        result_payload: checked.span.result_payload.clone(),
        sensitive_encoding: checked.span.sensitive_encoding,
    };
    let writer_state = state.clone();
    let operation = Operation::span(scope, move |conn| create_in_tx(conn, &writer_state, checked))
        .replayed_as(Replay::Span(Some(as_created)));
    Ok(match answer_span {
        Some(span_id) => operation.answering_with_span(span_id),
        None => operation,
    })
}

/// A create request with ids, timestamps and payload shapes checked.
struct CheckedCreate {
    span: SpanRow,
    texts: PayloadTexts,
    client_id: bool,
}

impl CheckedCreate {
    fn from_details(details: CreateSpanDetails) -> Result<Self, ApiError> {
        let instance_id = parse_pfid("details.agent_instance_id", &details.agent_instance_id)?;
        let id = details.id.as_deref().map(|id| parse_pfid("details.id", id)).transpose()?;
        let parent =
            details.parent_span_id.as_deref().map(|id| parse_pfid("details.parent_span_id", id)).transpose()?;
        if details.status == AgentStatus::Terminated {
            return Err(ApiError::validation(
                "details.status",
                "a span cannot be created as terminated (use pending, active, complete, failed or cancelled)",
            ));
        }
        if details.schema_name.trim().is_empty() {
            return Err(ApiError::validation("details.schema_name", "must not be empty"));
        }
        let payload = object_or_empty("details.payload", details.payload)?;
        let result_payload = match details.result_payload {
            None | Some(Value::Null) => None,
            Some(other) => Some(object_or_empty("details.result_payload", other)?),
        };
        let now = now_utc();
        let started_at = client_time("details.started_at", details.started_at.as_deref())?;
        let finished_at = client_time("details.finished_at", details.finished_at.as_deref())?;
        let finished_at =
            if details.status.is_terminal() { Some(finished_at.unwrap_or_else(|| now.clone())) } else { None };
        let client_id = id.is_some();
        let span = SpanRow {
            id: id.unwrap_or_default(),
            agent_instance_id: instance_id,
            parent_span_id: parent,
            schema_name: details.schema_name,
            status: details.status,
            payload,
            result_payload,
            sensitive_encoding: details.sensitive_encoding,
            started_at: started_at.unwrap_or_else(|| now.clone()),
            finished_at,
            inserted_at: now.clone(),
            updated_at: now,
        };
        let texts = PayloadTexts::of(&span);
        Ok(CheckedCreate { span, texts, client_id })
    }
}

/// Payloads are JSON objects; `null` is read as `{}`.
fn object_or_empty(field: &str, value: Value) -> Result<Value, ApiError> {
    match value {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(map) => Ok(Value::Object(map)),
        other => Err(ApiError::validation(field, format!("must be a JSON object, got {}", json_kind(&other)))),
    }
}

/// Every check (instance, schema, parent) comes before the one write, which itself refuses a
/// taken id without writing, so the create runs without a savepoint.
fn create_in_tx(conn: &Connection, state: &AppState, checked: CheckedCreate) -> Result<SpanAnswer, ApiError> {
    let mut span = checked.span;
    let instance = instances::span_owner(conn, &span.agent_instance_id)?;
    let compiled = compiled_for(conn, state, instance.schema_version_id.as_deref())?;
    validate_create(state, compiled.as_deref(), &span)?;
    if let Some(parent) = &span.parent_span_id
        && spans::instance_of(conn, parent)?.as_deref() != Some(span.agent_instance_id.as_str())
    {
        return Err(ApiError::validation(
            "details.parent_span_id",
            format!("span {parent} does not exist in agent instance {}", span.agent_instance_id),
        ));
    }
    if !checked.client_id {
        span.id = state.account.new_id();
    }
    // A taken id writes nothing: the insert is the last check and the only write.
    if !spans::insert(conn, &span, &checked.texts)? {
        return Err(ApiError::conflict(format!("agent span {} already exists", span.id)));
    }
    Ok(SpanAnswer::new(span, instance, compiled))
}

fn validate_create(state: &AppState, compiled: Option<&CompiledSchemaVersion>, span: &SpanRow) -> Result<(), ApiError> {
    if !state.options.validate_schemas {
        return Ok(());
    }
    let Some(compiled) = compiled.filter(|c| c.declares_span_types()) else {
        return Ok(());
    };
    let Some(span_type) = compiled.span_types.get(&span.schema_name) else {
        let mut known: Vec<&str> = compiled.span_types.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(ApiError::validation(
            "details.schema_name",
            format!(
                "'{}' is not a span type of the instance's schema version (declared: {})",
                span.schema_name,
                known.join(", ")
            ),
        ));
    };
    if let Some(validator) = &span_type.params {
        check(validator, &span.payload, "details.payload")?;
    }
    if let (Some(validator), Some(result)) = (&span_type.result, &span.result_payload) {
        check(validator, result, "details.result_payload")?;
    }
    Ok(())
}

/// The wire resource of a span; `with_summary` renders the span type's template.
pub(super) fn to_resource(
    state: &AppState,
    agent_id: &str,
    compiled: Option<&CompiledSchemaVersion>,
    span: SpanRow,
    with_summary: bool,
) -> AgentSpan {
    let span_type = compiled.and_then(|c| c.span_types.get(&span.schema_name));
    let summary = span_type
        .filter(|_| with_summary)
        .and_then(|t| t.template.as_ref())
        .and_then(|template| template.render(&span.payload, span.result_payload.as_ref()));
    AgentSpan {
        type_: "agent_span".to_string(),
        id: span.id,
        agent_instance_id: span.agent_instance_id,
        schema_name: span.schema_name,
        status: span.status,
        payload: span.payload,
        account_id: Some(state.account.account_id.clone()),
        agent_id: Some(agent_id.to_string()),
        parent_span_id: span.parent_span_id,
        schema_title: span_type.map(|t| t.title.clone()),
        summary,
        result_payload: span.result_payload,
        started_at: Some(span.started_at),
        inserted_at: Some(span.inserted_at),
        updated_at: Some(span.updated_at),
        finished_at: span.finished_at,
    }
}

/// `POST /api/v1/agent_spans/{id}/finish` (flat body).
pub async fn finish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(async { prepare_finish(&state, &id, &headers, &body)?.run(&state).await }.await)
}

/// Parses and checks a span finish body for span `id` (as given in the path or the bulk item).
pub fn prepare_finish(state: &AppState, id: &str, headers: &HeaderMap, body: &[u8]) -> Result<Operation, ApiError> {
    let ActionRequest { id, request, scope } =
        parse_action::<FinishSpanRequest>(("agent span", "agent_spans", "finish"), id, headers, body)?;
    let finished_at = client_time("timestamp", request.timestamp.as_deref())?;
    let result_payload = match request.result_payload {
        None | Some(Value::Null) => None,
        Some(other) => Some(object_or_empty("result_payload", other)?),
    };
    let result_text = result_payload.as_ref().map(spans::json_text);
    let status = AgentStatus::from(request.status.unwrap_or(FinishStatus::Complete));
    let sensitive_encoding = request.sensitive_encoding;
    let writer_state = state.clone();
    // A finish always ends terminal, so its answer is that span's row.
    let answer_span = id.clone();
    // Every check (not found, already finished, result schema) comes before the one write.
    let operation = Operation::span(scope, move |conn| {
        let mut span =
            spans::find(conn, &id)?.ok_or_else(|| ApiError::not_found(format!("agent span {id} not found")))?;
        if span.status.is_terminal() {
            return Err(ApiError::invalid_action(format!("Span is already finished ({})", span.status.as_str())));
        }
        let instance = instances::span_owner(conn, &span.agent_instance_id)?;
        let compiled = compiled_for(conn, &writer_state, instance.schema_version_id.as_deref())?;
        if let Some(result) = &result_payload {
            validate_result(&writer_state, compiled.as_deref(), &span.schema_name, result)?;
        }
        let now = now_utc();
        span.status = status;
        if result_payload.is_some() {
            span.result_payload = result_payload;
        }
        if sensitive_encoding.is_some() {
            span.sensitive_encoding = sensitive_encoding;
        }
        span.finished_at = Some(finished_at.unwrap_or_else(|| now.clone()));
        span.updated_at = now;
        spans::update_finish(conn, &span, result_text.as_deref())?;
        Ok(SpanAnswer::new(span, instance, compiled))
    });
    Ok(operation.answering_with_span(answer_span))
}

fn validate_result(
    state: &AppState,
    compiled: Option<&CompiledSchemaVersion>,
    schema_name: &str,
    result: &Value,
) -> Result<(), ApiError> {
    if !state.options.validate_schemas {
        return Ok(());
    }
    let validator = compiled.and_then(|c| c.span_types.get(schema_name)).and_then(|t| t.result.as_ref());
    match validator {
        Some(validator) => check(validator, result, "result_payload"),
        None => Ok(()),
    }
}

/// `GET /api/v1/agent_spans?agent_instance_id=..` or `?agent_id=..` (every run of an agent),
/// with `include_summaries`, `include_risk_level`, `pagination[..]` and `sorting` /
/// `sorting[field]`+`sorting[direction]`. Default order: `started_at` ascending, then id (a
/// trace reads top to bottom), except for an agent with more spans than an agent's list sorts
/// by time (then id order, and `sorting` says so); the dashboard asks for `id` descending (newest first).
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<QueryPairs>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let Query(query) = query.map_err(|error| ApiError::validation("query", error.body_text()))?;
        let scope = ListScope::from_query(&query)?;
        let include_summaries = flag(&query, "include_summaries")?;
        // Accepted for the dashboard; every row carries risk_level / risk_score anyway.
        flag(&query, "include_risk_level")?;
        let page = page_request(&query)?;
        let default = Sorting { field: "started_at".to_string(), direction: SortDirection::Asc };
        let asked = sorting(&query, &["started_at", "id", "inserted_at"], default)?;
        let explicit = param(&query, "sorting").is_some() || param(&query, "sorting[field]").is_some();
        let reader_state = state.clone();
        // Read before the snapshot: a page key remembered under this generation is current.
        let generation = state.db.commit_generation();
        let (versioned, total, order) = state
            .db
            .read(move |conn| {
                let scope = match &scope {
                    ListScope::Instance(id) => {
                        instances::span_owner(conn, id)?;
                        SpanScope::Instance(id)
                    }
                    ListScope::Agent(id) => SpanScope::Agent(id.as_str()),
                };
                let order = sized_order(conn, scope, asked, explicit)?;
                let span_order = match order.field.as_str() {
                    "id" => SpanOrder::Id,
                    "inserted_at" => SpanOrder::InsertedAt,
                    _ => SpanOrder::StartedAt,
                };
                let ascending = order.direction == SortDirection::Asc;
                let list = format!("spans|{}|{}|{ascending}", label(scope), order.field);
                let after = reader_state.page_keys.get(&list, page.offset, generation);
                let start = PageStart { offset: page.offset, after: after.as_deref(), limit: page.page_size };
                let (listed, total) =
                    spans::list_scoped(conn, scope, span_order, ascending, start, spans::SORTED_AGENT_LIST_LIMIT)?;
                if let Some(last) = listed.last().filter(|_| listed.len() as u64 == page.page_size) {
                    let next = page.offset.saturating_add(page.page_size);
                    reader_state.page_keys.store(&list, next, generation, span_order.page_key(&last.span));
                }
                Ok((with_versions(conn, &reader_state, listed)?, total, order))
            })
            .await?;
        list_answer(list_rows(&state, versioned, include_summaries), page, total, order)
    };
    respond(result.await)
}

/// The order an agent's span list is read in. Sorted by a time, the list is collected and
/// sorted (no index orders an agent's spans by time: it would cost ~60 bytes a span), which
/// is done up to [`spans::SORTED_AGENT_LIST_LIMIT`] spans; beyond, a list asked for by time
/// is refused with the orders that work, and a list that asked for no order is read in id
/// order (span ids are k-sortable: creation order), as its `sorting` answer says, instead of
/// sorting millions of spans on every page.
fn sized_order(conn: &Connection, scope: SpanScope<'_>, asked: Sorting, explicit: bool) -> Result<Sorting, ApiError> {
    if !matches!(scope, SpanScope::Agent(_)) || asked.field == "id" {
        return Ok(asked);
    }
    let total = spans::count_scoped(conn, scope)?;
    if total <= spans::SORTED_AGENT_LIST_LIMIT {
        return Ok(asked);
    }
    if explicit {
        return Err(ApiError::validation(
            "sorting",
            format!(
                "this agent has {total} spans; its spans are sorted by {} up to {} spans: sort by id (creation \
                 order), or list one run's spans (agent_instance_id) in any order",
                asked.field,
                spans::SORTED_AGENT_LIST_LIMIT
            ),
        ));
    }
    Ok(Sorting { field: "id".to_string(), direction: asked.direction })
}

/// The filter of a span list: one instance, or one agent when no instance is named.
enum ListScope {
    Instance(String),
    Agent(String),
}

/// Names a span list's scope in [`crate::page_keys`].
fn label(scope: SpanScope<'_>) -> String {
    match scope {
        SpanScope::Instance(id) => format!("instance:{id}"),
        SpanScope::Agent(id) => format!("agent:{id}"),
    }
}

impl ListScope {
    fn from_query(query: &QueryPairs) -> Result<ListScope, ApiError> {
        match (param(query, "agent_instance_id"), param(query, "agent_id")) {
            (Some(id), _) => Ok(ListScope::Instance(parse_pfid("agent_instance_id", id)?)),
            (None, Some(id)) => Ok(ListScope::Agent(parse_pfid("agent_id", id)?)),
            (None, None) => Err(ApiError::validation("agent_instance_id", "agent_instance_id or agent_id is required")),
        }
    }
}

/// A `true` / `false` query flag (absent = false).
fn flag(query: &QueryPairs, name: &str) -> Result<bool, ApiError> {
    match param(query, name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::validation(name, format!("must be true or false, got '{other}'"))),
    }
}
