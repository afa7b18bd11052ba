//! The body of one `POST /api/v1/bulk` request (A8.10, Python form) and its size limits.
//!
//! Each item is the operation's single-request body with `_type` (and the id of the resource
//! it acts on, which the single request carries in its path) spliced in front:
//! `{"_type":"agent_spans/finish","agent_span_id":"…","status":"complete",…,"idempotency_key":"…"}`.
//! Every single body already carries its top-level `idempotency_key` (8–64 characters, derived
//! from the ids it concerns), which is also the item's key, so a retried batch repeats every
//! key and the server replays the items it already ran.

use std::collections::HashSet;

use crate::delivery::flush_epochs::Epochs;
use crate::delivery::requests;
use crate::queue::operation::Op;

/// Most bytes of one bulk body (the local server accepts 2 MiB); a single item larger than
/// this still goes, alone.
pub(crate) const MAX_BULK_BYTES: usize = 1 << 20;

const OPEN: &[u8] = br#"{"items":["#;
const CLOSE: &[u8] = b"]}";

/// A bulk body being filled item by item.
pub(crate) struct BulkBatch {
    body: Vec<u8>,
    items: usize,
    max_items: usize,
    max_bytes: usize,
    /// Keys of the instance-level items (span items have keys unique by construction; an
    /// instance finish can be queued twice with the same key, and keys must be unique in a
    /// request).
    instance_keys: HashSet<String>,
    /// The operation just admitted has no body (serialization failed): its error.
    broken: Option<serde_json::Error>,
    /// An operation was refused for lack of bytes: take no more.
    closed: bool,
}

impl BulkBatch {
    pub(crate) fn new(max_items: usize, max_bytes: usize) -> BulkBatch {
        let mut body = Vec::with_capacity(max_bytes.min(64 * 1024));
        body.extend_from_slice(OPEN);
        BulkBatch { body, items: 0, max_items, max_bytes, instance_keys: HashSet::new(), broken: None, closed: false }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items
    }

    pub(crate) fn is_full(&self) -> bool {
        self.closed || self.items >= self.max_items || self.body.len() >= self.max_bytes
    }

    /// Appends `op` when it fits (count, bytes, unique key); false leaves the batch unchanged.
    /// An operation whose body cannot be built is admitted without bytes; `take_broken` then
    /// returns why.
    pub(crate) fn admits(&mut self, op: &Op) -> bool {
        if self.is_full() {
            return false;
        }
        let instance_key = match op {
            Op::CreateSpan(_) | Op::FinishSpan(_) => None,
            _ => Some(requests::idempotency_key(op)),
        };
        if instance_key.as_ref().is_some_and(|key| self.instance_keys.contains(key)) {
            return false;
        }
        let request = match requests::build(op) {
            Ok(request) => request,
            Err(err) => {
                self.broken = Some(err);
                return true;
            }
        };
        let header = header(op);
        let added = header.len() + request.body.len() + 1;
        if self.items > 0 && self.body.len() + added + CLOSE.len() > self.max_bytes {
            self.closed = true;
            return false;
        }
        if self.items > 0 {
            self.body.push(b',');
        }
        append_item(&mut self.body, &header, &request.body);
        self.items += 1;
        if let Some(key) = instance_key {
            self.instance_keys.insert(key);
        }
        true
    }

    /// Why the operation just admitted has no bytes, if so.
    pub(crate) fn take_broken(&mut self) -> Option<serde_json::Error> {
        self.broken.take()
    }

    /// The finished body.
    pub(crate) fn into_body(mut self) -> Vec<u8> {
        self.body.extend_from_slice(CLOSE);
        self.body
    }
}

/// The body of a bulk request carrying `items` again (a retry: same items, same keys).
pub(crate) fn body_of(items: &[(Op, Epochs)]) -> Vec<u8> {
    let mut batch = BulkBatch::new(usize::MAX, usize::MAX);
    for (op, _) in items {
        // Bodies that could not be built were failed when first placed, never retried.
        batch.admits(op);
    }
    batch.into_body()
}

/// The bulk item header of a single request given by its path (a spooled request): the same
/// `_type` and id field [`header`] writes for the operation; `None` for a path no operation has.
pub(crate) fn header_of_path(path: &str) -> Option<String> {
    let (action, id) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "agent_instance", "register"] => ("agent_instances/register", None),
        ["", "agent_instance", id, "start"] => ("agent_instances/start", Some(("agent_instance_id", *id))),
        ["", "agent_instance", id, "finish"] => ("agent_instances/finish", Some(("agent_instance_id", *id))),
        ["", "agent_instance", id, "record_quality"] => {
            ("agent_instances/record_quality", Some(("agent_instance_id", *id)))
        }
        ["", "agent_spans"] => ("agent_spans/create", None),
        ["", "agent_spans", id, "finish"] => ("agent_spans/finish", Some(("agent_span_id", *id))),
        _ => return None,
    };
    // Ids in spooled paths were written by this SDK (PFIDs); anything else is not spliced in.
    if id.is_some_and(|(_, id)| id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) {
        return None;
    }
    Some(match id {
        Some((field, id)) => format!(r#""_type":"{action}","{field}":"{id}""#),
        None => format!(r#""_type":"{action}""#),
    })
}

/// A bulk body of already built single requests: `(item header, single body)` in order.
pub(crate) fn body_of_requests<'a>(items: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut body = OPEN.to_vec();
    for (index, (header, single)) in items.into_iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        append_item(&mut body, header, single);
    }
    body.extend_from_slice(CLOSE);
    body
}

/// `"_type":"…",` plus the id field the single request carries in its path.
fn header(op: &Op) -> String {
    let (action, id) = match op {
        Op::Register { .. } => ("agent_instances/register", None),
        Op::Start { instance, .. } => ("agent_instances/start", Some(("agent_instance_id", instance.to_string()))),
        Op::Finish { instance, .. } => ("agent_instances/finish", Some(("agent_instance_id", instance.to_string()))),
        Op::Quality { instance, .. } => {
            ("agent_instances/record_quality", Some(("agent_instance_id", instance.to_string())))
        }
        Op::CreateSpan(_) => ("agent_spans/create", None),
        Op::FinishSpan(finish) => ("agent_spans/finish", Some(("agent_span_id", finish.id.to_string()))),
    };
    // Actions, field names and PFIDs are plain ASCII: nothing needs escaping.
    match id {
        Some((field, id)) => format!(r#""_type":"{action}","{field}":"{id}""#),
        None => format!(r#""_type":"{action}""#),
    }
}

/// Writes `{header,rest-of-body}`: the single body is a JSON object, so its opening brace is
/// replaced by the item's own fields.
fn append_item(out: &mut Vec<u8>, header: &str, body: &[u8]) {
    out.push(b'{');
    out.extend_from_slice(header.as_bytes());
    let rest = body.strip_prefix(b"{").unwrap_or(b"}");
    if !rest.trim_ascii_start().starts_with(b"}") {
        out.push(b',');
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use crate::record::timestamp::Timestamp;

    use prefactor_protocol::FinishStatus;
    use serde_json::Value;

    use super::*;
    use crate::queue::operation::{SpanEnd, SpanFinish};
    use crate::record::ids::{InstanceId, SpanId};

    fn finish(instance: InstanceId) -> Op {
        Op::Finish { instance, status: FinishStatus::Complete, at: Timestamp::now() }
    }

    #[test]
    fn items_carry_type_id_and_the_single_body() {
        let instance = InstanceId::generate(1);
        let span = SpanId::generate(1);
        let end = SpanEnd { status: FinishStatus::Failed, result: None, at: Timestamp::now() };
        let mut batch = BulkBatch::new(10, MAX_BULK_BYTES);
        assert!(batch.admits(&Op::Start { instance, at: Timestamp::now() }));
        assert!(batch.admits(&Op::FinishSpan(SpanFinish { instance: Some(instance), id: span, end })));
        let body: Value = serde_json::from_slice(&batch.into_body()).unwrap();
        let items = body["items"].as_array().unwrap();
        assert_eq!(items[0]["_type"], "agent_instances/start");
        assert_eq!(items[0]["agent_instance_id"], instance.to_string());
        assert_eq!(items[0]["idempotency_key"], format!("start-{instance}"));
        assert_eq!(items[1]["_type"], "agent_spans/finish");
        assert_eq!(items[1]["agent_span_id"], span.to_string());
        assert_eq!(items[1]["status"], "failed");
        assert_eq!(items[1]["idempotency_key"], format!("span-end-{span}"));
    }

    #[test]
    fn limits_count_bytes_and_duplicate_keys() {
        let instance = InstanceId::generate(1);
        let mut batch = BulkBatch::new(2, MAX_BULK_BYTES);
        assert!(batch.admits(&finish(instance)));
        assert!(!batch.admits(&finish(instance)), "an instance finish queued twice has the same key");
        assert!(batch.admits(&Op::Start { instance, at: Timestamp::now() }));
        assert!(batch.is_full());
        assert!(!batch.admits(&finish(InstanceId::generate(1))));

        let mut small = BulkBatch::new(10, 200);
        assert!(small.admits(&finish(instance)), "the first item goes even when larger than the limit");
        assert!(!small.admits(&finish(InstanceId::generate(1))));
        assert_eq!(small.len(), 1);
        let body: Value = serde_json::from_slice(&small.into_body()).unwrap();
        assert_eq!(body["items"].as_array().unwrap().len(), 1);
    }

    /// A spooled request (path and body) becomes the same bulk item as its operation.
    #[test]
    fn a_spooled_request_makes_the_item_of_its_operation() {
        let instance = InstanceId::generate(1);
        let span = SpanId::generate(1);
        let at = Timestamp::now();
        let end = || SpanEnd { status: FinishStatus::Complete, result: None, at };
        let ops = [
            Op::Start { instance, at },
            finish(instance),
            Op::Quality { instance, name: "q".into(), payload: None, key: "quality-key-1".into() },
            Op::CreateSpan(crate::queue::operation::SpanCreate {
                instance,
                id: span,
                parent: None,
                schema: crate::record::schema_name::SchemaName::new("t:x"),
                payload: None,
                started_at: at,
                end: None,
                weight: 1,
            }),
            Op::FinishSpan(SpanFinish { instance: Some(instance), id: span, end: end() }),
        ];
        for op in &ops {
            let request = requests::build(op).unwrap();
            let header = header_of_path(&request.path).unwrap_or_else(|| panic!("{}", request.path));
            let mut batch = BulkBatch::new(10, MAX_BULK_BYTES);
            assert!(batch.admits(op));
            assert_eq!(body_of_requests([(header.as_str(), request.body.as_slice())]), batch.into_body());
        }
        assert_eq!(
            header_of_path("/agent_instance/register").as_deref(),
            Some(r#""_type":"agent_instances/register""#)
        );
        assert_eq!(header_of_path("/agent_spans/x\"y/finish"), None, "nothing to escape is spliced in");
        assert_eq!(header_of_path("/elsewhere"), None);
    }

    #[test]
    fn a_retry_body_repeats_the_items() {
        let instance = InstanceId::generate(1);
        let items = vec![(finish(instance), Epochs::at(0))];
        let mut batch = BulkBatch::new(10, MAX_BULK_BYTES);
        batch.admits(&items[0].0);
        assert_eq!(body_of(&items), batch.into_body());
    }
}
