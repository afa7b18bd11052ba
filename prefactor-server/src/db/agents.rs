//! The `agents` table.

use prefactor_protocol::{Agent, AgentLifecycleStatus, AvailableActions};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::db::counts;
use crate::error::ApiError;

/// Values for a new agent row.
#[derive(Debug, Clone, Default)]
pub struct NewAgent {
    /// Id (server-generated or a validated client PFID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Unique (per account) external identifier.
    pub external_identifier: Option<String>,
    /// Optional owner.
    pub owner_person_id: Option<String>,
    /// Optional risk profile.
    pub risk_profile_id: Option<String>,
    /// Optional team.
    pub team_id: Option<String>,
}

const COLUMNS: &str = "id, name, description, external_identifier, status, owner_person_id, \
                       risk_profile_id, team_id, inserted_at, updated_at";

/// Inserts an agent in status `pending` (it becomes `active` with its first instance).
pub fn insert(conn: &Connection, agent: &NewAgent, now: &str) -> Result<(), ApiError> {
    conn.prepare_cached(
        "INSERT INTO agents (id, name, description, external_identifier, status, owner_person_id,
                             risk_profile_id, team_id, inserted_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?8)",
    )?
    .execute(params![
        agent.id,
        agent.name,
        agent.description,
        agent.external_identifier,
        agent.owner_person_id,
        agent.risk_profile_id,
        agent.team_id,
        now
    ])?;
    Ok(())
}

/// True when an agent with this id exists.
pub fn exists(conn: &Connection, id: &str) -> Result<bool, ApiError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM agents WHERE id = ?1")?
        .query_row(params![id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// True when another agent already uses this external identifier.
pub fn external_identifier_taken(conn: &Connection, external: &str) -> Result<bool, ApiError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM agents WHERE external_identifier = ?1")?
        .query_row(params![external], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Marks an agent `active` (it has at least one instance).
pub fn mark_active(conn: &Connection, id: &str, now: &str) -> Result<(), ApiError> {
    conn.prepare_cached("UPDATE agents SET status = 'active', updated_at = ?2 WHERE id = ?1 AND status = 'pending'")?
        .execute(params![id, now])?;
    Ok(())
}

/// Reads one agent with its instance counts and available actions.
pub fn find(conn: &Connection, id: &str) -> Result<Option<Agent>, ApiError> {
    let agent = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM agents WHERE id = ?1"))?
        .query_row(params![id], agent_from_row)
        .optional()?;
    match agent {
        Some(mut agent) => {
            agent.instance_counts = Some(counts::agent_instance_counts(conn, id)?);
            Ok(Some(agent))
        }
        None => Ok(None),
    }
}

/// Agent `id` as its create answered it: the stored row with what has changed since (its
/// status, last change time and instances) put back as they were (an idempotent replay).
pub fn find_as_created(conn: &Connection, id: &str) -> Result<Option<Agent>, ApiError> {
    let agent = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM agents WHERE id = ?1"))?
        .query_row(params![id], agent_from_row)
        .optional()?;
    Ok(agent.map(|mut agent| {
        agent.status = AgentLifecycleStatus::Pending;
        agent.available_actions = Some(available_actions(agent.status));
        agent.updated_at = agent.inserted_at.clone();
        agent.instance_counts = Some(Default::default());
        agent
    }))
}

/// One page of agents, newest first by id, and the total count.
pub fn list(conn: &Connection, offset: u64, limit: u64, ascending: bool) -> Result<(Vec<Agent>, u64), ApiError> {
    let order = if ascending { "ASC" } else { "DESC" };
    let mut statement =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM agents ORDER BY id {order} LIMIT ?1 OFFSET ?2"))?;
    let rows =
        statement.query_map(params![limit as i64, offset as i64], agent_from_row)?.collect::<Result<Vec<_>, _>>()?;
    let total: i64 = conn.prepare_cached("SELECT COUNT(*) FROM agents")?.query_row([], |row| row.get(0))?;
    Ok((rows, total as u64))
}

fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<Agent> {
    let status: String = row.get(4)?;
    let status = lifecycle_status(&status);
    Ok(Agent {
        type_: "agent".to_string(),
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        external_identifier: row.get(3)?,
        status,
        owner_person_id: row.get(5)?,
        risk_profile_id: row.get(6)?,
        team_id: row.get(7)?,
        instance_counts: None,
        available_actions: Some(available_actions(status)),
        inserted_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

fn available_actions(status: AgentLifecycleStatus) -> AvailableActions {
    AvailableActions {
        update: status != AgentLifecycleStatus::Retired,
        retire: status != AgentLifecycleStatus::Retired,
        reinstate: status == AgentLifecycleStatus::Retired,
        delete: true,
    }
}

fn lifecycle_status(text: &str) -> AgentLifecycleStatus {
    match text {
        "active" => AgentLifecycleStatus::Active,
        "dormant" => AgentLifecycleStatus::Dormant,
        "retired" => AgentLifecycleStatus::Retired,
        _ => AgentLifecycleStatus::Pending,
    }
}
