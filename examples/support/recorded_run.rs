// Shared by several examples, each of which uses only part of it.
#![allow(dead_code)]

//! One agent run as the API stores it (instance + spans), with the look-ups the examples'
//! checks need: spans by type, a span's parent, a payload field.

use prefactor_protocol::{AgentInstance, AgentSpan};
use serde_json::Value;

#[path = "trace_tree.rs"]
mod trace_tree;

/// The errors of reading a run back (`Send + Sync`, so they cross `spawn_blocking`).
pub type FetchError = Box<dyn std::error::Error + Send + Sync>;

/// An agent instance and all its spans, read back over the API.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    /// The instance.
    pub instance: AgentInstance,
    /// Its spans, in the order the API listed them.
    pub spans: Vec<AgentSpan>,
}

impl RecordedRun {
    /// Reads run `instance_id` with blocking HTTP (call it from `spawn_blocking` in async code).
    pub fn fetch(api_url: &str, token: &str, instance_id: &str) -> Result<RecordedRun, FetchError> {
        let (instance, spans) = trace_tree::fetch_run(api_url, token, instance_id)?;
        Ok(RecordedRun { instance, spans })
    }

    /// The run as an indented tree (see `trace_tree::render`).
    pub fn render(&self) -> String {
        trace_tree::render(&self.instance, &self.spans)
    }

    /// The instance status as the API names it (`complete`, `terminated`, ...).
    pub fn status(&self) -> &'static str {
        self.instance.status.as_str()
    }

    /// Spans of span type `schema_name`, in start order.
    pub fn named(&self, schema_name: &str) -> Vec<&AgentSpan> {
        let mut spans: Vec<&AgentSpan> = self.spans.iter().filter(|span| span.schema_name == schema_name).collect();
        spans.sort_by(|a, b| (&a.started_at, &a.id).cmp(&(&b.started_at, &b.id)));
        spans
    }

    /// The one span of type `schema_name`, or an error saying how many there are.
    pub fn only(&self, schema_name: &str) -> Result<&AgentSpan, String> {
        match self.named(schema_name).as_slice() {
            [span] => Ok(span),
            other => Err(format!("expected one `{schema_name}` span, found {}", other.len())),
        }
    }

    /// The span's parent, when it has one and it is part of this run.
    pub fn parent_of(&self, span: &AgentSpan) -> Option<&AgentSpan> {
        let parent = span.parent_span_id.as_deref()?;
        self.spans.iter().find(|candidate| candidate.id == parent)
    }

    /// The span's children, in start order.
    pub fn children_of(&self, span: &AgentSpan) -> Vec<&AgentSpan> {
        let mut children: Vec<&AgentSpan> =
            self.spans.iter().filter(|child| child.parent_span_id.as_deref() == Some(span.id.as_str())).collect();
        children.sort_by(|a, b| (&a.started_at, &a.id).cmp(&(&b.started_at, &b.id)));
        children
    }

    /// How many spans ended with `status` (`complete`, `failed`, `cancelled`, ...).
    pub fn count_status(&self, status: &str) -> usize {
        self.spans.iter().filter(|span| span.status.as_str() == status).count()
    }
}

/// Field `key` of a span's payload.
pub fn field<'a>(span: &'a AgentSpan, key: &str) -> Option<&'a Value> {
    span.payload.get(key)
}

/// Field `key` of a span's result payload.
pub fn result_field<'a>(span: &'a AgentSpan, key: &str) -> Option<&'a Value> {
    span.result_payload.as_ref()?.get(key)
}
