//! Wire bodies of queued operations (built in the worker, never on the caller's thread).

use std::borrow::Cow;

use prefactor_protocol::{AgentStatus, FinishInstanceRequest, RegisterInstanceRequest, StartInstanceRequest};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::queue::operation::{Op, SpanCreate, SpanFinish};
use crate::record::payload::Payload;
use crate::record::sensitive::has_sensitive_values;
use crate::record::timestamp::rfc3339;

/// One HTTP request of an operation. Built again for each attempt from the same operation,
/// so every retry carries the same body and idempotency key.
pub(crate) struct Request {
    pub(crate) path: Cow<'static, str>,
    pub(crate) body: Vec<u8>,
    /// A 409 means "already done": finishes (already finished or terminated), and creates of
    /// client-chosen ids (an earlier attempt whose answer was lost created it).
    pub(crate) conflict_is_done: bool,
}

#[derive(Serialize)]
struct CreateSpanBody<'a> {
    details: CreateSpanDetails<'a>,
    idempotency_key: &'a str,
}

/// Same shape as `prefactor_protocol::CreateSpanDetails`, borrowing the pre-serialized payloads.
#[derive(Serialize)]
struct CreateSpanDetails<'a> {
    id: &'a str,
    agent_instance_id: &'a str,
    schema_name: &'a str,
    status: AgentStatus,
    payload: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_payload: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<&'a str>,
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    /// `true` when a payload carries `Sensitive` values (`{"$sensitive": ..}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitive_encoding: Option<bool>,
    idempotency_key: &'a str,
}

#[derive(Serialize)]
struct FinishSpanBody<'a> {
    status: prefactor_protocol::FinishStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_payload: Option<&'a RawValue>,
    timestamp: String,
    /// `true` when the result carries `Sensitive` values; left out otherwise, so the create's
    /// flag stays.
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitive_encoding: Option<bool>,
    idempotency_key: &'a str,
}

/// `Some(true)` when any of `payloads` carries a sensitive-value envelope.
fn sensitive(payloads: &[Option<&RawValue>]) -> Option<bool> {
    payloads.iter().flatten().any(|payload| has_sensitive_values(payload.get())).then_some(true)
}

/// Same shape as `prefactor_protocol::RecordQualityRequest`, borrowing the pre-serialized payload
/// (`payload` is always written, `null` removing the stored one).
#[derive(Serialize)]
struct RecordQualityBody<'a> {
    name: &'a str,
    payload: Option<&'a RawValue>,
    idempotency_key: &'a str,
}

/// Room for a span body's fixed part (keys, ids, timestamps, schema name): the body buffer is
/// sized once from the payloads' lengths instead of growing (and copying) as it is written.
const SPAN_BODY_OVERHEAD: usize = 512;

/// `value` as JSON, written into a buffer of `capacity` bytes.
fn to_body<T: Serialize>(value: &T, capacity: usize) -> Result<Vec<u8>, serde_json::Error> {
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, value)?;
    Ok(body)
}

/// The serialized length of an optional payload.
fn raw_len(payload: Option<&RawValue>) -> usize {
    payload.map_or(0, |p| p.get().len())
}

thread_local! {
    static EMPTY_OBJECT: Box<RawValue> = RawValue::from_string("{}".to_owned()).expect("`{}` is valid JSON");
}

/// The idempotency key of an operation: derived from the ids it concerns, so it is the same on
/// every retry (and cannot collide with another operation's key).
pub(crate) fn idempotency_key(op: &Op) -> String {
    match op {
        Op::Register { instance, .. } => format!("register-{instance}"),
        Op::Start { instance, .. } => format!("start-{instance}"),
        Op::Finish { instance, .. } => format!("finish-{instance}"),
        Op::Quality { key, .. } => key.clone(),
        Op::CreateSpan(create) => format!("span-{}", create.id),
        Op::FinishSpan(finish) => format!("span-end-{}", finish.id),
    }
}

/// Whether a 409 answer to `op` means its work was already done (see [`Request`]): always.
/// Every operation either creates a resource under a client-chosen id or moves one to a state,
/// so a conflict says the server already has that resource or is past that state: an earlier
/// attempt whose answer was lost applied it, or the platform terminated the instance. Sending
/// it again cannot change the answer, and counting it failed would report a loss that is not
/// one.
pub(crate) fn conflict_is_done(_op: &Op) -> bool {
    true
}

pub(crate) fn build(op: &Op) -> Result<Request, serde_json::Error> {
    let key = idempotency_key(op);
    match op {
        Op::Register { request, schema, .. } => Ok(Request {
            path: Cow::Borrowed("/agent_instance/register"),
            body: register_body(request, schema.as_deref())?,
            conflict_is_done: true,
        }),
        Op::Start { instance, at } => {
            let body = StartInstanceRequest { timestamp: Some(rfc3339(*at)), idempotency_key: Some(key) };
            Ok(Request {
                path: format!("/agent_instance/{instance}/start").into(),
                body: serde_json::to_vec(&body)?,
                conflict_is_done: true,
            })
        }
        Op::Finish { instance, status, at } => {
            let body = FinishInstanceRequest {
                status: Some(*status),
                timestamp: Some(rfc3339(*at)),
                idempotency_key: Some(key),
            };
            Ok(Request {
                path: format!("/agent_instance/{instance}/finish").into(),
                body: serde_json::to_vec(&body)?,
                conflict_is_done: true,
            })
        }
        Op::Quality { instance, name, payload, .. } => {
            let payload = payload.as_ref().map(Payload::raw).transpose()?;
            let body = RecordQualityBody { name, payload, idempotency_key: &key };
            Ok(Request {
                path: format!("/agent_instance/{instance}/record_quality").into(),
                body: serde_json::to_vec(&body)?,
                conflict_is_done: true,
            })
        }
        Op::CreateSpan(create) => create_span(create, &key),
        Op::FinishSpan(finish) => finish_span(finish, &key),
    }
}

fn create_span(create: &SpanCreate, key: &str) -> Result<Request, serde_json::Error> {
    let id = create.id.pfid().encode();
    let instance = create.instance.pfid().encode();
    let parent = create.parent.map(|p| p.pfid().encode());
    let status = create.end.as_ref().map_or(AgentStatus::Active, |end| end.status.into());
    EMPTY_OBJECT.with(|empty| {
        let payload = create.payload.as_ref().map_or(Ok(&**empty), Payload::raw)?;
        let result_payload = create.end.as_ref().and_then(|end| end.result.as_ref()).map(Payload::raw).transpose()?;
        let details = CreateSpanDetails {
            id: &id,
            agent_instance_id: &instance,
            schema_name: &create.schema,
            status,
            payload,
            result_payload,
            parent_span_id: parent.as_deref(),
            started_at: rfc3339(create.started_at),
            finished_at: create.end.as_ref().map(|end| rfc3339(end.at)),
            sensitive_encoding: sensitive(&[Some(payload), result_payload]),
            idempotency_key: key,
        };
        let capacity = SPAN_BODY_OVERHEAD + details.payload.get().len() + raw_len(details.result_payload);
        let body = to_body(&CreateSpanBody { details, idempotency_key: key }, capacity)?;
        Ok(Request { path: Cow::Borrowed("/agent_spans"), body, conflict_is_done: true })
    })
}

fn finish_span(finish: &SpanFinish, key: &str) -> Result<Request, serde_json::Error> {
    let result_payload = finish.end.result.as_ref().map(Payload::raw).transpose()?;
    let body = FinishSpanBody {
        status: finish.end.status,
        result_payload,
        timestamp: rfc3339(finish.end.at),
        sensitive_encoding: sensitive(&[result_payload]),
        idempotency_key: key,
    };
    let capacity = SPAN_BODY_OVERHEAD + raw_len(body.result_payload);
    Ok(Request {
        path: format!("/agent_spans/{}/finish", finish.id).into(),
        body: to_body(&body, capacity)?,
        conflict_is_done: true,
    })
}

/// The register body: `request` (which has no `agent_schema_version`) with the serialized
/// schema document inserted before its closing brace, so the document is copied, not serialized
/// again for every instance.
fn register_body(request: &RegisterInstanceRequest, schema: Option<&RawValue>) -> Result<Vec<u8>, serde_json::Error> {
    let mut body = serde_json::to_vec(request)?;
    let Some(schema) = schema else { return Ok(body) };
    debug_assert!(request.agent_schema_version.is_none(), "the document travels in `schema` only");
    if body.pop() != Some(b'}') {
        return Err(serde::ser::Error::custom("a register request serializes as a JSON object"));
    }
    if body != b"{" {
        body.push(b',');
    }
    body.extend_from_slice(br#""agent_schema_version":"#);
    body.extend_from_slice(schema.get().as_bytes());
    body.push(b'}');
    Ok(body)
}
