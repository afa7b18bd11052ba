// Shared by several examples, each of which uses only part of it.
#![allow(dead_code)]

//! Fetches one agent run back from the API and prints it as an indented tree.

use std::collections::HashMap;
use std::fmt::Write as _;

use prefactor_protocol::{AgentInstance, AgentSpan, ListResponse, SuccessResponse};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Reads an instance and all its spans over the API.
pub fn fetch_run(
    api_url: &str,
    token: &str,
    instance_id: &str,
) -> Result<(AgentInstance, Vec<AgentSpan>), Box<dyn std::error::Error + Send + Sync>> {
    let http = reqwest::blocking::Client::new();
    let get = |path: String| http.get(format!("{api_url}/api/v1/{path}")).bearer_auth(token).send();
    let instance: SuccessResponse<AgentInstance> =
        get(format!("agent_instance/{instance_id}"))?.error_for_status()?.json()?;
    let mut spans = Vec::new();
    let mut offset = Some(0);
    while let Some(page_offset) = offset {
        let page: ListResponse<AgentSpan> = get(format!(
            "agent_spans?agent_instance_id={instance_id}&include_summaries=true&pagination[offset]={page_offset}&pagination[page_size]=100"
        ))?
        .error_for_status()?
        .json()?;
        spans.extend(page.summaries);
        offset = page.pagination.and_then(|p| p.next_page_offset);
    }
    Ok((instance.details, spans))
}

/// The run as text: the instance line, then each span under its parent, in start order.
pub fn render(instance: &AgentInstance, spans: &[AgentSpan]) -> String {
    let mut children: HashMap<Option<&str>, Vec<&AgentSpan>> = HashMap::new();
    for span in spans {
        let parent = span.parent_span_id.as_deref().filter(|parent| spans.iter().any(|s| s.id == *parent));
        children.entry(parent).or_default().push(span);
    }
    for siblings in children.values_mut() {
        siblings.sort_by(|a, b| (&a.started_at, &a.id).cmp(&(&b.started_at, &b.id)));
    }
    let mut out = format!(
        "agent run {}  {}  {}\n",
        instance.id,
        instance.status.as_str(),
        duration(instance.started_at.as_deref(), instance.finished_at.as_deref())
    );
    // One column for every status, however deep the longest span type name sits.
    let width = spans.iter().map(|span| depth(span, spans) * 3 + span.schema_name.chars().count()).max().unwrap_or(0);
    render_children(&children, None, "", width, &mut out);
    out
}

/// How many ancestors of `span` are part of the run (bounded, in case of a parent cycle).
fn depth(span: &AgentSpan, spans: &[AgentSpan]) -> usize {
    let mut depth = 0;
    let mut parent = span.parent_span_id.as_deref();
    while let Some(id) = parent.filter(|_| depth < spans.len()) {
        let Some(next) = spans.iter().find(|s| s.id == id) else { break };
        depth += 1;
        parent = next.parent_span_id.as_deref();
    }
    depth
}

fn render_children<'a>(
    children: &HashMap<Option<&'a str>, Vec<&'a AgentSpan>>,
    parent: Option<&'a str>,
    indent: &str,
    width: usize,
    out: &mut String,
) {
    let Some(siblings) = children.get(&parent) else { return };
    for (index, span) in siblings.iter().enumerate() {
        let last = index + 1 == siblings.len();
        let (branch, next_indent) = if last { ("└─ ", "   ") } else { ("├─ ", "│  ") };
        let summary =
            span.summary.as_deref().filter(|s| !s.is_empty()).map(|s| format!("  \"{s}\"")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{indent}{branch}{:<width$} {:<9} {:>8}{summary}",
            span.schema_name,
            span.status.as_str(),
            duration(span.started_at.as_deref(), span.finished_at.as_deref()),
            width = width.saturating_sub(indent.chars().count()),
        );
        let (fields, results) = key_fields(&span.payload, span.result_payload.as_ref());
        for line in [fields, results].into_iter().filter(|line| !line.is_empty()) {
            let _ = writeln!(out, "{indent}{next_indent}   {line}");
        }
        render_children(children, Some(span.id.as_str()), &format!("{indent}{next_indent}"), width, out);
    }
}

fn duration(started: Option<&str>, finished: Option<&str>) -> String {
    let parse = |t: Option<&str>| t.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    match (parse(started), parse(finished)) {
        (Some(start), Some(end)) => {
            let micros = (end - start).whole_microseconds().max(0);
            if micros >= 1_000_000 {
                format!("{:.2} s", micros as f64 / 1e6)
            } else if micros >= 1_000 {
                format!("{:.1} ms", micros as f64 / 1e3)
            } else {
                format!("{micros} µs")
            }
        }
        _ => "running".to_owned(),
    }
}

/// Up to three scalar fields of the payload and, on a line of their own, six of the result, as
/// `key=value` (the fields of a nested object as `outer.key=value`: a stream's
/// `stream.time_to_first_item_ms`, say).
fn key_fields(payload: &Value, result: Option<&Value>) -> (String, String) {
    let fields = scalar_fields(Some(payload), "").take(3).collect::<Vec<_>>().join("  ");
    let results = scalar_fields(result, "").take(6).collect::<Vec<_>>().join("  ");
    (fields, if results.is_empty() { results } else { format!("→ {results}") })
}

fn scalar_fields<'a>(value: Option<&'a Value>, arrow: &'static str) -> impl Iterator<Item = String> + 'a {
    value.and_then(Value::as_object).into_iter().flatten().flat_map(move |(key, value)| match value {
        Value::Object(fields) if !fields.contains_key("message") => fields
            .iter()
            .filter_map(|(inner, value)| scalar(value).map(|text| format!("{arrow}{key}.{inner}={text}")))
            .collect::<Vec<_>>(),
        _ => scalar(value).map(|text| format!("{arrow}{key}={text}")).into_iter().collect(),
    })
}

fn scalar(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => format!("{text:?}"),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Array(items) => format!("[{} items]", items.len()),
        Value::Object(fields) => fields.get("message").and_then(scalar)?,
        Value::Null => return None,
    };
    Some(if text.chars().count() > 48 { format!("{}…\"", text.chars().take(46).collect::<String>()) } else { text })
}
