//! Quality summaries rendered before the write, so that the writer thread never renders.
//!
//! Why: a summary template is client input and its payload end-user input; the single
//! SQLite writer thread commits every client's writes, so a render there (even a bounded
//! one) would hold all of them up. A `record_quality` therefore looks up the instance's
//! schema version with a read, renders the summary in the request's task, and hands the
//! writer the result together with the schema version it was rendered for. The writer uses
//! it only if the instance still has that version (versions of an instance never change, so
//! it does unless the instance did not exist at the read); otherwise the summary is left
//! out (logged), never rendered on the writer.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::instances::compiled_for;
use crate::db::instances;
use crate::state::AppState;

/// A summary to render before the write, and its result once rendered.
#[derive(Clone)]
pub struct Prerender {
    instance_id: String,
    /// The quality schema's name; None for the legacy single `quality_schema`.
    quality: Option<String>,
    payload: Value,
    rendered: Arc<OnceLock<Rendered>>,
}

/// A rendered summary and the schema version it was rendered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The instance's schema version at the render.
    pub schema_version_id: Option<String>,
    /// The summary (None: no template, or over its budget).
    pub summary: Option<String>,
}

impl Prerender {
    /// The summary of quality schema `quality` (None: the legacy single `quality_schema`) of
    /// instance `instance_id` for `payload`.
    pub fn new(instance_id: &str, quality: Option<&str>, payload: Value) -> Prerender {
        Prerender {
            instance_id: instance_id.to_string(),
            quality: quality.map(str::to_string),
            payload,
            rendered: Arc::default(),
        }
    }

    /// Looks the instance up and renders; false when the instance was not found (it may be
    /// registered by an earlier item of the same bulk request).
    pub async fn run(&self, state: &AppState) -> bool {
        let id = self.instance_id.clone();
        let reader_state = state.clone();
        let looked_up = state
            .db
            .read(move |conn| {
                let owner = instances::span_owner(conn, &id)?;
                let compiled = compiled_for(conn, &reader_state, owner.schema_version_id.as_deref())?;
                Ok((owner.schema_version_id, compiled))
            })
            .await;
        let Ok((schema_version_id, compiled)) = looked_up else {
            return false;
        };
        let summary = compiled
            .as_ref()
            .and_then(|compiled| match &self.quality {
                Some(name) => compiled.quality.get(name),
                None => compiled.single_quality.as_ref(),
            })
            .and_then(|quality| quality.template.as_ref())
            .and_then(|template| template.render(&self.payload, None));
        let _ = self.rendered.set(Rendered { schema_version_id, summary });
        true
    }

    /// The summary for an instance of schema version `schema_version_id`, if it was rendered
    /// for that version.
    pub fn summary_for(&self, schema_version_id: Option<&str>) -> Option<String> {
        match self.rendered.get() {
            Some(rendered) if rendered.schema_version_id.as_deref() == schema_version_id => rendered.summary.clone(),
            _ => {
                tracing::warn!(
                    instance = %self.instance_id,
                    quality = self.quality.as_deref().unwrap_or("quality_schema"),
                    "quality summary not rendered before the write (instance unknown at the read); left out"
                );
                None
            }
        }
    }
}
