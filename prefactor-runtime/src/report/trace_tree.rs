//! The text tree of a captured run ([`CapturedRun::tree`]): stable across runs of the same
//! code, for snapshot tests.

use std::fmt::Write as _;

use serde_json::Value;

use crate::report::captured_run::{CapturedRun, CapturedSpan};

/// The key under which a streaming span's result records its time to first item: a time,
/// so the tree shows it normalized.
pub(crate) const TIME_TO_FIRST_ITEM_KEY: &str = "time_to_first_item_ms";

/// How [`CapturedRun::tree_with`] renders a run.
///
/// ```
/// use prefactor_runtime::testing::TreeOptions;
///
/// // Your own timestamps and request ids shown as "<at>" and "<request_id>"; no results.
/// let options = TreeOptions::default().normalize("at").normalize("request_id").results(false);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct TreeOptions {
    normalized: Vec<String>,
    payloads: bool,
    results: bool,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions { normalized: vec![TIME_TO_FIRST_ITEM_KEY.to_owned()], payloads: true, results: true }
    }
}

impl TreeOptions {
    /// Shows the value of every object entry named `key` (at any depth of payloads and
    /// results) as `"<key>"`: for times, ids and other values that differ between runs.
    #[must_use]
    pub fn normalize(mut self, key: impl Into<String>) -> Self {
        self.normalized.push(key.into());
        self
    }

    /// Whether payloads are shown (default: yes).
    #[must_use]
    pub fn payloads(mut self, show: bool) -> Self {
        self.payloads = show;
        self
    }

    /// Whether results are shown, after `->` (default: yes).
    #[must_use]
    pub fn results(mut self, show: bool) -> Self {
        self.results = show;
        self
    }
}

/// `run NAME [status]`, then one line a span: `TYPE [status] PAYLOAD -> RESULT`, children
/// indented under their parent in the order they were opened.
pub(crate) fn render_tree(run: &CapturedRun, options: &TreeOptions) -> String {
    let mut out = String::from("run");
    if let Some(name) = &run.agent_name {
        out.push(' ');
        out.push_str(name);
    }
    let _ = writeln!(out, " [{}]", run.status.as_str());
    let roots: Vec<&CapturedSpan> = run.roots().collect();
    render_children(run, &roots, "", options, &mut out);
    out
}

fn render_children(run: &CapturedRun, spans: &[&CapturedSpan], indent: &str, options: &TreeOptions, out: &mut String) {
    for (index, span) in spans.iter().enumerate() {
        let last = index + 1 == spans.len();
        out.push_str(indent);
        out.push_str(if last { "└─ " } else { "├─ " });
        render_span(span, options, out);
        out.push('\n');
        let children: Vec<&CapturedSpan> = run.children_of(span.id).collect();
        let child_indent = format!("{indent}{}", if last { "   " } else { "│  " });
        render_children(run, &children, &child_indent, options, out);
    }
}

fn render_span(span: &CapturedSpan, options: &TreeOptions, out: &mut String) {
    let schema = if span.schema.is_empty() { "(finish of an unknown span)" } else { &span.schema };
    let _ = write!(out, "{schema} [{}]", span.status.as_str());
    if options.payloads && !is_empty_object(&span.payload) {
        out.push(' ');
        write_json(&span.payload, options, out);
    }
    if options.results
        && let Some(result) = &span.result
    {
        out.push_str(" -> ");
        write_json(result, options, out);
    }
}

fn is_empty_object(value: &Value) -> bool {
    matches!(value, Value::Object(map) if map.is_empty())
}

/// Compact JSON with object keys sorted (whatever order the payload was built in) and the
/// normalized keys' values replaced.
fn write_json(value: &Value, options: &TreeOptions, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if options.normalized.iter().any(|normalized| normalized == key) {
                    out.push_str(&Value::String(format!("<{key}>")).to_string());
                } else {
                    write_json(value, options, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json(item, options, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
