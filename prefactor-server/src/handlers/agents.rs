//! Agent endpoints: `POST /api/v1/agent`, `GET /api/v1/agent`, `GET /api/v1/agent/{id}`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use prefactor_protocol::{CreateAgentRequest, SortDirection, Sorting};

use rusqlite::Connection;

use super::listing::{PageRequest, QueryPairs, list_answer, page_request, sorting};
use super::operation::{Operation, Replay};
use super::{respond, success};
use crate::body::parse;
use crate::db::agents::{self, NewAgent};
use crate::db::idempotency::StoredAnswer;
use crate::error::ApiError;
use crate::idempotency::scope_for;
use crate::ids::{parse_path_id, parse_pfid};
use crate::state::AppState;
use crate::timestamps::now_utc;

/// `POST /api/v1/agent` (wrapped). `external_identifier` is unique per account (422 if taken).
pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(async { prepare_create(&state, &headers, &body)?.run(&state).await }.await)
}

/// Parses and checks an agent create body (bulk item: the same body).
pub fn prepare_create(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Operation, ApiError> {
    let request: CreateAgentRequest = parse(body)?;
    let scope = scope_for("POST", "/api/v1/agent", headers, &request)?;
    let details = request.details;
    if details.name.trim().is_empty() {
        return Err(ApiError::validation("details.name", "must not be empty"));
    }
    let client_id = details.id.as_deref().map(|id| parse_pfid("details.id", id)).transpose()?;
    let account = state.account.clone();
    Ok(Operation::replayed(scope, Replay::AgentCreated, move |conn| {
        let id = match client_id {
            Some(id) if agents::exists(conn, &id)? => {
                return Err(ApiError::conflict(format!("agent {id} already exists")));
            }
            Some(id) => id,
            None => account.new_id(),
        };
        if let Some(external) = &details.external_identifier
            && agents::external_identifier_taken(conn, external)?
        {
            return Err(ApiError::validation(
                "details.external_identifier",
                format!("'{external}' has already been taken by another agent"),
            ));
        }
        let agent = NewAgent {
            id: id.clone(),
            name: details.name,
            description: details.description,
            external_identifier: details.external_identifier,
            owner_person_id: details.owner_person_id,
            risk_profile_id: details.risk_profile_id,
            team_id: details.team_id,
        };
        agents::insert(conn, &agent, &now_utc())?;
        let created = agents::find(conn, &id)?.ok_or_else(|| ApiError::internal("agent vanished after insert"))?;
        success(created, None)
    }))
}

/// `GET /api/v1/agent/{id}`, with `instance_counts`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let result = async {
        let id = parse_path_id("agent", &id)?;
        state.db.read(move |conn| show(conn, &id)).await
    };
    respond(result.await)
}

/// The answer of `agents/show` for agent `id` (bulk item: `agent_id`), read on `conn`.
pub fn prepare_show(id: &str) -> Result<Operation, ApiError> {
    let id = parse_path_id("agent", id)?;
    Ok(Operation::new(None, move |conn| show(conn, &id)))
}

fn show(conn: &Connection, id: &str) -> Result<StoredAnswer, ApiError> {
    let agent = agents::find(conn, id)?.ok_or_else(|| ApiError::not_found(format!("agent {id} not found")))?;
    success(agent, None)
}

/// `GET /api/v1/agent`: newest first by id (`sorting=id` for oldest first).
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<QueryPairs>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let Query(query) = query.map_err(|error| ApiError::validation("query", error.body_text()))?;
        let page = ListQuery::from_query(&query)?;
        state.db.read(move |conn| page.run(conn)).await
    };
    respond(result.await)
}

/// `agents/list` with the list query parameters (bulk item: `pagination`, `sorting`).
pub fn prepare_list(query: &QueryPairs) -> Result<Operation, ApiError> {
    let page = ListQuery::from_query(query)?;
    Ok(Operation::new(None, move |conn| page.run(conn)))
}

/// A checked agent list query.
struct ListQuery {
    page: PageRequest,
    order: Sorting,
}

impl ListQuery {
    fn from_query(query: &QueryPairs) -> Result<ListQuery, ApiError> {
        let page = page_request(query)?;
        let default = Sorting { field: "id".to_string(), direction: SortDirection::Desc };
        let order = sorting(query, &["id"], default)?;
        Ok(ListQuery { page, order })
    }

    fn run(self, conn: &Connection) -> Result<StoredAnswer, ApiError> {
        let ascending = self.order.direction == SortDirection::Asc;
        let (rows, total) = agents::list(conn, self.page.offset, self.page.page_size, ascending)?;
        list_answer(rows, self.page, total, self.order)
    }
}
