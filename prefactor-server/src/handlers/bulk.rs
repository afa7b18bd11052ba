//! `POST /api/v1/bulk` (the Python form of API notes A8.10): several actions in one request.
//!
//! The body is read in one pass by [`super::bulk_scan`] (items and the fields this endpoint
//! reads), each item's JSON then by its typed parse; a body the scanner does not read cleanly
//! goes through serde instead, which explains what is wrong with it.
//!
//! The request is checked as a whole first (422 with the normal error envelope when `items`
//! is missing or empty, has more than [`MAX_BULK_ITEMS`] entries, an entry that is not an
//! object, an unknown `_type`, or a missing, too short, too long or repeated
//! `idempotency_key`). Then each item is parsed and checked exactly as its single endpoint
//! would check its body, outside the database. The checked items run in order as ONE job of
//! the group-committing writer; an item that fails leaves no trace while the items before it
//! stay (span creates and finishes make every check before their only write and need no
//! rollback; the other actions run inside their own savepoint); processing stops at the first
//! failing item. The
//! answer is sent after the commit: `{"status":"success","outputs":{key: output}}`, where a
//! successful output is the single endpoint's success body (`details`, `control`, ...) and a
//! failed one its error body (`status`, `code`, `message`, `errors`). With `Prefer:
//! return=minimal` a successful output is only `{"status":"success"}` plus its `control`
//! ([`super::minimal_output`]); error outputs are the same either way.
//!
//! Each item's key is the idempotency key of its operation, scoped like the single endpoint
//! (method and path of that endpoint), so a bulk item and a single request with the same key
//! and body are the same operation: a replay answers with the stored output, a key reused
//! with another body fails that item with `idempotency_key_reused`.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use prefactor_protocol::{BULK_KEY_MAX_LEN, BULK_KEY_MIN_LEN, BulkAction};
use rusqlite::Connection;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use super::bulk_scan::{ItemHead, scan_envelope};
use super::listing::QueryPairs;
use super::minimal_output::minimal_output;
use super::operation::{Operation, Outcome};
use super::prerender::Prerender;
use super::{agents, instances, respond, spans};
use crate::body::{json_kind, parse};
use crate::db::idempotency::StoredAnswer;
use crate::db::job_cache;
use crate::error::ApiError;
use crate::prefer::{MINIMAL_APPLIED, ReturnMinimal};
use crate::state::AppState;

/// Most items accepted in one request (the body limit, 2 MiB by default, may bind first).
pub const MAX_BULK_ITEMS: usize = 1000;

/// `POST /api/v1/bulk`; `Prefer: return=minimal` asks for minimal outputs (see
/// [`crate::prefer`]), which the answer confirms with `Preference-Applied: return=minimal`.
pub async fn bulk(State(state): State<AppState>, ReturnMinimal(minimal): ReturnMinimal, body: Bytes) -> Response {
    let mut response = respond(run(&state, &body, minimal).await);
    if minimal && response.status().is_success() {
        response.headers_mut().insert("preference-applied", HeaderValue::from_static(MINIMAL_APPLIED));
    }
    response
}

async fn run(state: &AppState, body: &[u8], minimal: bool) -> Result<StoredAnswer, ApiError> {
    let CheckedItems { items, scanned } = checked_items(body)?;
    let mut keys = Vec::with_capacity(items.len());
    let mut operations = Vec::with_capacity(items.len());
    let mut rejected = None;
    for (index, item) in items.iter().enumerate() {
        match prepare_item(state, item) {
            Ok(operation) => {
                keys.push(item.key.to_string());
                operations.push(operation);
            }
            Err(error) => {
                if scanned {
                    // This item's typed parse stopped at its first error and later items are
                    // not parsed: a malformed body must still be a 400 with nothing run.
                    ensure_json(&items[index..])?;
                }
                rejected = Some((item.key.to_string(), Err(error)));
                break;
            }
        }
    }
    let results = run_segments(state, operations).await?;
    let mut outputs: Vec<(String, Result<StoredAnswer, ApiError>)> = keys
        .into_iter()
        .zip(results.into_iter().map(|result| {
            result.and_then(|outcome| if minimal { minimal_output(outcome) } else { outcome.into_answer(state) })
        }))
        .collect();
    let all_ran = outputs.iter().all(|(_, result)| result.is_ok());
    if all_ran && let Some(rejected) = rejected {
        outputs.push(rejected);
    }
    Ok((200, response_body(&outputs)))
}

/// One item that passed the whole-request checks (borrowing the request body).
struct Item<'a> {
    action: BulkAction,
    key: Cow<'a, str>,
    head: ItemHead<'a>,
    /// The item's JSON text.
    raw: &'a str,
}

/// The checked items, and whether they came from the scanner: their JSON is then checked by
/// their typed parse, not yet.
struct CheckedItems<'a> {
    items: Vec<Item<'a>>,
    scanned: bool,
}

/// 400 `invalid_json` unless every item is JSON (the scanner does not check it).
fn ensure_json(items: &[Item<'_>]) -> Result<(), ApiError> {
    for item in items {
        serde_json::from_str::<IgnoredAny>(item.raw)
            .map_err(|error| ApiError::bad_json(format!("request body is not valid JSON: {error}")))?;
    }
    Ok(())
}

/// The items of a body the scanner reads cleanly and in which every item passes the
/// whole-request checks; `None` for anything else, which the serde path then explains.
fn scanned_items(body: &[u8]) -> Option<Vec<Item<'_>>> {
    let text = std::str::from_utf8(body).ok()?;
    let scanned = scan_envelope(text)?;
    if scanned.is_empty() || scanned.len() > MAX_BULK_ITEMS {
        return None;
    }
    let mut seen: HashSet<Cow<'_, str>> = HashSet::with_capacity(scanned.len());
    let mut items = Vec::with_capacity(scanned.len());
    for (raw, head) in scanned {
        let action = BulkAction::parse(&raw_str(head.action?).ok()?)?;
        let key = raw_str(head.idempotency_key?).ok()?;
        if !(BULK_KEY_MIN_LEN..=BULK_KEY_MAX_LEN).contains(&key.chars().count()) || !seen.insert(key.clone()) {
            return None;
        }
        items.push(Item { action, key, head, raw });
    }
    Some(items)
}

/// The request envelope; items stay raw (slices of the body) until their action is known.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
}

/// The same envelope owning its items: only parsed to explain a body the fast path refused.
#[derive(Deserialize)]
struct OwnedEnvelope {
    items: Option<Vec<Box<RawValue>>>,
}

/// A raw field read as a string, or the kind of JSON it is instead.
fn raw_str(raw: &str) -> Result<Cow<'_, str>, &'static str> {
    match serde_json::from_str::<Cow<'_, str>>(raw) {
        Ok(text) => Ok(text),
        Err(_) => Err(serde_json::from_str::<Value>(raw).map_or("invalid JSON", |value| json_kind(&value))),
    }
}

/// Parses the envelope and applies the whole-request checks; every problem found is
/// reported in one 422, keyed by the item's path (`items[3]._type`).
fn checked_items(body: &[u8]) -> Result<CheckedItems<'_>, ApiError> {
    if let Some(items) = scanned_items(body) {
        return Ok(CheckedItems { items, scanned: true });
    }
    let raw_items = match serde_json::from_slice::<Envelope<'_>>(body) {
        Ok(envelope) => envelope.items,
        Err(_) => {
            // Borrowing raw items cannot fail by itself, so this path explains a bad body
            // (400/422 with the field path); an empty body reads as `{}` (no items).
            let owned: OwnedEnvelope = parse(body)?;
            match owned.items {
                None => None,
                Some(_) => return Err(ApiError::validation("items", "must be an array of objects")),
            }
        }
    };
    let Some(raw_items) = raw_items else {
        return Err(ApiError::validation("items", "is required"));
    };
    if raw_items.is_empty() {
        return Err(ApiError::validation("items", "must contain at least one item"));
    }
    if raw_items.len() > MAX_BULK_ITEMS {
        return Err(ApiError::validation(
            "items",
            format!("must contain at most {MAX_BULK_ITEMS} items (got {})", raw_items.len()),
        ));
    }
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut items = Vec::with_capacity(raw_items.len());
    let mut seen: HashMap<Cow<'_, str>, usize> = HashMap::with_capacity(raw_items.len());
    for (index, raw) in raw_items.into_iter().enumerate() {
        let head = match ItemHead::scan(raw.get()) {
            Some(head) => head,
            None => {
                let message = match serde_json::from_str::<Value>(raw.get()).map_or("JSON", |value| json_kind(&value)) {
                    "an object" => "must name _type, idempotency_key and each parameter at most once".to_string(),
                    kind => format!("must be an object, got {kind}"),
                };
                problems.push((format!("items[{index}]"), message));
                continue;
            }
        };
        let action = match head.action.map(raw_str) {
            Some(Ok(text)) => BulkAction::parse(&text).ok_or_else(|| {
                let known: Vec<&str> = BulkAction::ALL.iter().map(|action| action.as_str()).collect();
                format!("unknown action '{text}' (supported: {})", known.join(", "))
            }),
            Some(Err(kind)) => Err(format!("must be a string, got {kind}")),
            None => Err("is required".to_string()),
        };
        let key = match head.idempotency_key.map(raw_str) {
            Some(Ok(key)) if (BULK_KEY_MIN_LEN..=BULK_KEY_MAX_LEN).contains(&key.chars().count()) => {
                match seen.get(&key) {
                    Some(first) => Err(format!("'{key}' is already the key of items[{first}]")),
                    None => {
                        seen.insert(key.clone(), index);
                        Ok(key)
                    }
                }
            }
            Some(Ok(key)) => Err(format!(
                "must be {BULK_KEY_MIN_LEN} to {BULK_KEY_MAX_LEN} characters (got {})",
                key.chars().count()
            )),
            Some(Err(kind)) => Err(format!("must be a string, got {kind}")),
            None => Err("is required".to_string()),
        };
        match (action, key) {
            (Ok(action), Ok(key)) => items.push(Item { action, key, head, raw: raw.get() }),
            (action, key) => {
                if let Err(message) = action {
                    problems.push((format!("items[{index}]._type"), message));
                }
                if let Err(message) = key {
                    problems.push((format!("items[{index}].idempotency_key"), message));
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(CheckedItems { items, scanned: false });
    }
    let summary = problems.iter().map(|(path, message)| format!("{path}: {message}")).collect::<Vec<_>>().join("; ");
    Err(ApiError::validation_map(summary, problems))
}

/// Parses and checks one item as its single endpoint would (no database access yet).
fn prepare_item(state: &AppState, item: &Item<'_>) -> Result<Operation, ApiError> {
    static NO_HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);
    let headers = &*NO_HEADERS;
    let body = item.raw.as_bytes();
    let head = &item.head;
    match item.action {
        BulkAction::AgentsCreate => agents::prepare_create(state, headers, body),
        BulkAction::AgentsShow => agents::prepare_show(&required_id("agent_id", head.agent_id)?),
        BulkAction::AgentsList => agents::prepare_list(&list_query(head)?),
        BulkAction::AgentInstancesRegister => instances::prepare_register(state, headers, body),
        BulkAction::AgentInstancesStart => {
            instances::prepare_start(state, &required_id("agent_instance_id", head.agent_instance_id)?, headers, body)
        }
        BulkAction::AgentInstancesFinish => {
            instances::prepare_finish(state, &required_id("agent_instance_id", head.agent_instance_id)?, headers, body)
        }
        BulkAction::AgentInstancesRecordQuality => instances::prepare_record_quality(
            state,
            &required_id("agent_instance_id", head.agent_instance_id)?,
            headers,
            body,
        ),
        BulkAction::AgentSpansCreate => spans::prepare_create(state, headers, body),
        BulkAction::AgentSpansFinish => {
            spans::prepare_finish(state, &required_id("agent_span_id", head.agent_span_id)?, headers, body)
        }
    }
}

/// The id parameter `field` of an item (a string; its PFID form is checked by the action).
fn required_id<'a>(field: &str, value: Option<&'a str>) -> Result<Cow<'a, str>, ApiError> {
    match value.map(raw_str) {
        Some(Ok(id)) => Ok(id),
        Some(Err(kind)) => Err(ApiError::validation(field, format!("must be a string, got {kind}"))),
        None => Err(ApiError::validation(field, "is required")),
    }
}

/// An optional raw parameter as a JSON value (list parameters are rare and small).
fn raw_value(raw: Option<&str>) -> Option<Value> {
    raw.and_then(|raw| serde_json::from_str(raw).ok())
}

/// `agents/list` parameters as the query pairs of `GET /api/v1/agent`:
/// `pagination: {offset, page_size}` and `sorting: "id" | "-id"`.
fn list_query(head: &ItemHead<'_>) -> Result<QueryPairs, ApiError> {
    let mut query = QueryPairs::new();
    match &raw_value(head.pagination) {
        None | Some(Value::Null) => {}
        Some(Value::Object(fields)) => {
            for (name, value) in fields {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    other => {
                        return Err(ApiError::validation(
                            &format!("pagination.{name}"),
                            format!("must be a number, got {}", json_kind(other)),
                        ));
                    }
                };
                query.push((format!("pagination[{name}]"), text));
            }
        }
        Some(other) => {
            return Err(ApiError::validation("pagination", format!("must be an object, got {}", json_kind(other))));
        }
    }
    match &raw_value(head.sorting) {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => query.push(("sorting".to_string(), text.clone())),
        Some(other) => {
            return Err(ApiError::validation("sorting", format!("must be a string, got {}", json_kind(other))));
        }
    }
    Ok(query)
}

/// Runs the operations in order, as few writer jobs as possible: one, unless a summary to
/// render first (see [`super::prerender`]) is for an instance that an earlier item of the
/// request may create; the items before it are then committed first. Stops at the first
/// failing item.
async fn run_segments(
    state: &AppState,
    mut operations: Vec<Operation>,
) -> Result<Vec<Result<Outcome, ApiError>>, ApiError> {
    let mut results = Vec::with_capacity(operations.len());
    while !operations.is_empty() {
        let mut end = operations.len();
        // Clones: the operations (their boxed work) cannot be held across an await.
        let prerenders: Vec<Option<Prerender>> = operations.iter().map(|op| op.prerender.clone()).collect();
        for (index, prerender) in prerenders.into_iter().enumerate() {
            if let Some(prerender) = prerender
                && !prerender.run(state).await
                && index > 0
            {
                end = index;
                break;
            }
        }
        let rest = operations.split_off(end);
        let segment = std::mem::replace(&mut operations, rest);
        let count = segment.len();
        let writer_state = state.clone();
        let done = state
            .db
            .write_unguarded(move |conn| job_cache::with_job_cache(|| run_in_order(conn, &writer_state, segment)))
            .await?;
        let stopped = done.len() < count || done.last().is_some_and(Result::is_err);
        results.extend(done);
        if stopped {
            break;
        }
    }
    Ok(results)
}

/// Runs the items in order until one fails. Items whose checks all come before their writes
/// run bare; the others inside their own savepoint. An error of a bare item after it may have
/// written (5xx) ends the job with that error, which rolls back the group commit.
fn run_in_order(
    conn: &Connection,
    state: &AppState,
    operations: Vec<Operation>,
) -> Result<Vec<Result<Outcome, ApiError>>, ApiError> {
    let mut results = Vec::with_capacity(operations.len());
    for operation in operations {
        let result = if operation.guarded {
            // Any action but a span write may change an instance.
            job_cache::forget_instances();
            let result = run_in_savepoint(conn, state, operation)?;
            job_cache::forget_instances();
            result
        } else {
            match operation.run_on(conn, state) {
                Err(error) if error.status >= 500 => return Err(error),
                other => other,
            }
        };
        let failed = result.is_err();
        results.push(result);
        if failed {
            break;
        }
    }
    Ok(results)
}

/// Runs a guarded item; the outer error is a failure of the savepoint itself.
fn run_in_savepoint(
    conn: &Connection,
    state: &AppState,
    operation: Operation,
) -> Result<Result<Outcome, ApiError>, ApiError> {
    conn.prepare_cached("SAVEPOINT item")?.execute([])?;
    let result = operation.run_on(conn, state);
    if result.is_err() {
        conn.prepare_cached("ROLLBACK TO item")?.execute([])?;
    }
    conn.prepare_cached("RELEASE item")?.execute([])?;
    Ok(result)
}

/// Appends `text` as a JSON string: as is between quotes when nothing in it needs escaping
/// (the usual key), else through serde_json.
fn push_json_string(body: &mut String, text: &str) {
    if text.bytes().all(|byte| byte >= 0x20 && byte != b'"' && byte != b'\\') {
        body.push('"');
        body.push_str(text);
        body.push('"');
    } else {
        body.push_str(&Value::String(text.to_owned()).to_string());
    }
}

/// `{"status":"success","outputs":{...}}` from the stored bodies, without re-parsing them.
fn response_body(outputs: &[(String, Result<StoredAnswer, ApiError>)]) -> String {
    let size: usize =
        outputs.iter().map(|(key, result)| key.len() + result.as_ref().map_or(128, |(_, body)| body.len()) + 4).sum();
    let mut body = String::with_capacity(size + 32);
    body.push_str(r#"{"status":"success","outputs":{"#);
    for (index, (key, result)) in outputs.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        push_json_string(&mut body, key);
        body.push(':');
        match result {
            Ok((_, answer)) => body.push_str(answer),
            Err(error) => {
                tracing::debug!(key = %key, code = %error.code, "bulk item failed: {}", error.message);
                body.push_str(&error.to_json().to_string());
            }
        }
    }
    body.push_str("}}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_and_escaped_only_when_needed() {
        for key in ["create-0001", "quote\"and\\slash", "tab\there", "é-ünïcode"] {
            let mut body = String::new();
            push_json_string(&mut body, key);
            assert_eq!(serde_json::from_str::<String>(&body).unwrap(), key, "{body}");
        }
    }
}
