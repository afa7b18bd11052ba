//! Rows of `GET /api/v1/agent_spans`: the span resource plus what the live API's list adds and
//! Prefactor's open dashboard reads (`purpose` of the instance, `sensitive_encoding`,
//! `risk_level` / `risk_score`).

use std::collections::HashMap;
use std::sync::Arc;

use prefactor_protocol::{AgentSpan, InstancePurpose};
use rusqlite::Connection;
use serde::Serialize;

use super::instances::compiled_for;
use super::spans::to_resource;
use crate::db::instances::parse_purpose;
use crate::db::spans::ListedSpan;
use crate::error::ApiError;
use crate::state::AppState;
use crate::validation::CompiledSchemaVersion;

/// One list row.
#[derive(Debug, Serialize)]
pub struct SpanListRow {
    /// The span resource.
    #[serde(flatten)]
    pub span: AgentSpan,
    /// The instance's purpose.
    pub purpose: InstancePurpose,
    /// The span's `sensitive_encoding` flag as the SDK sent it.
    pub sensitive_encoding: Option<bool>,
    /// Risk level from the agent's risk profile: always null here, because the local server
    /// has no risk profiles (`GET /api/v1/risk_profile` lists none).
    pub risk_level: Option<String>,
    /// Risk score, null for the same reason.
    pub risk_score: Option<f64>,
}

/// A listed span with its compiled schema version.
pub type VersionedSpan = (ListedSpan, Option<Arc<CompiledSchemaVersion>>);

/// Looks up the schema version of each listed span, compiling each version once per page
/// (runs in the read; rendering does not, see [`list_rows`]).
pub fn with_versions(
    conn: &Connection,
    state: &AppState,
    listed: Vec<ListedSpan>,
) -> Result<Vec<VersionedSpan>, ApiError> {
    let mut versions: HashMap<Option<String>, Option<Arc<CompiledSchemaVersion>>> = HashMap::new();
    let mut versioned = Vec::with_capacity(listed.len());
    for item in listed {
        let compiled = match versions.get(&item.schema_version_id) {
            Some(compiled) => compiled.clone(),
            None => {
                let compiled = compiled_for(conn, state, item.schema_version_id.as_deref())?;
                versions.insert(item.schema_version_id.clone(), compiled.clone());
                compiled
            }
        };
        versioned.push((item, compiled));
    }
    Ok(versioned)
}

/// Builds the rows (rendering summaries when asked). Runs after the read, never inside it:
/// without a read pool (in-memory database) reads run on the writer thread, which must never
/// render a template.
pub fn list_rows(state: &AppState, versioned: Vec<VersionedSpan>, with_summary: bool) -> Vec<SpanListRow> {
    versioned
        .into_iter()
        .map(|(item, compiled)| {
            let sensitive_encoding = item.span.sensitive_encoding;
            let span = to_resource(state, &item.agent_id, compiled.as_deref(), item.span, with_summary);
            SpanListRow {
                span,
                purpose: parse_purpose(&item.purpose),
                sensitive_encoding,
                risk_level: None,
                risk_score: None,
            }
        })
        .collect()
}
