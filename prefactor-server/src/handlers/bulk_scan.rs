//! The one pass over a bulk body that finds its items and, in each, the top-level fields the
//! bulk endpoint itself reads (`_type`, the key, the id and list parameters).
//!
//! Why: with serde the body was walked three times (the envelope into raw items, each item's
//! head, each item's typed body), the first two through serde's validating skip of every
//! `details` object, about a tenth of a bulk span's cost. This scanner only finds where
//! values end: strings are skipped to their closing quote, objects and arrays by bracket
//! depth outside strings, both with `memchr`'s search for the few bytes that matter. It does
//! not check the JSON inside the items: each item's typed parse does that (serde checks the
//! whole text it parses), and the bulk handler checks the items no typed parse reached
//! before anything runs. Whatever the scanner does not expect (no `items` array, a repeated
//! field, stray bytes), it leaves to the serde path, which explains the problem.

use memchr::{memchr2, memchr3};
use serde::de::IgnoredAny;

/// Raw JSON texts of the head fields (a value is still quoted and escaped, as in the body).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ItemHead<'a> {
    /// `_type`.
    pub action: Option<&'a str>,
    /// `idempotency_key`.
    pub idempotency_key: Option<&'a str>,
    /// `agent_instance_id`.
    pub agent_instance_id: Option<&'a str>,
    /// `agent_span_id`.
    pub agent_span_id: Option<&'a str>,
    /// `agent_id`.
    pub agent_id: Option<&'a str>,
    /// `pagination`.
    pub pagination: Option<&'a str>,
    /// `sorting`.
    pub sorting: Option<&'a str>,
}

impl<'a> ItemHead<'a> {
    /// The head of `item`, a well-formed JSON text; `None` when it is not an object or names
    /// a head field twice (which value would count is not clear).
    ///
    /// ```
    /// use prefactor_server::handlers::bulk_scan::ItemHead;
    /// let item = r#"{"_type":"agent_spans/finish","details":{"a":["}",{"b":"\""}]},"agent_span_id":"s1","idempotency_key":"k-123456"}"#;
    /// let head = ItemHead::scan(item).unwrap();
    /// assert_eq!(head.action, Some(r#""agent_spans/finish""#));
    /// assert_eq!(head.agent_span_id, Some(r#""s1""#));
    /// assert_eq!(head.idempotency_key, Some(r#""k-123456""#));
    /// assert_eq!(ItemHead::scan("[1]"), None);
    /// assert_eq!(ItemHead::scan(r#"{"_type":"a","_type":"b"}"#), None);
    /// ```
    pub fn scan(item: &'a str) -> Option<ItemHead<'a>> {
        ItemHead::scan_at(item, skip_space(item.as_bytes(), 0)).map(|(head, _)| head)
    }

    /// The head of the object starting at byte `at` of `text`, and the index just past it.
    fn scan_at(text: &'a str, at: usize) -> Option<(ItemHead<'a>, usize)> {
        let bytes = text.as_bytes();
        let mut head = ItemHead::default();
        let mut at = match enter_container(bytes, at, b'{', b'}')? {
            Next::Member(first) => first,
            Next::End(end) => return Some((head, end)),
        };
        loop {
            let (key, value_start) = scan_key(text, at)?;
            let value_end = value_end(bytes, value_start)?;
            if let Some(slot) = head.slot(key)
                && slot.replace(text.get(value_start..value_end)?).is_some()
            {
                return None;
            }
            match next_member(bytes, value_end, b'}')? {
                Next::Member(next) => at = next,
                Next::End(end) => return Some((head, end)),
            }
        }
    }

    /// Where the value of the (quoted, raw) key `key` goes, if it is a head field.
    fn slot(&mut self, key: &str) -> Option<&mut Option<&'a str>> {
        let name = key.strip_prefix('"')?.strip_suffix('"')?;
        if name.contains('\\') {
            // An escaped key: decoded the way serde would (rare, so the allocation is fine).
            let decoded: String = serde_json::from_str(key).ok()?;
            return self.named_slot(&decoded);
        }
        self.named_slot(name)
    }

    fn named_slot(&mut self, name: &str) -> Option<&mut Option<&'a str>> {
        match name {
            "_type" => Some(&mut self.action),
            "idempotency_key" => Some(&mut self.idempotency_key),
            "agent_instance_id" => Some(&mut self.agent_instance_id),
            "agent_span_id" => Some(&mut self.agent_span_id),
            "agent_id" => Some(&mut self.agent_id),
            "pagination" => Some(&mut self.pagination),
            "sorting" => Some(&mut self.sorting),
            _ => None,
        }
    }
}

/// The items of a bulk body `{"items": [...], ...}` as (item text, head), in order; `None`
/// when the body is not shaped so (see the module doc). Other top-level fields are checked to
/// be JSON, as the serde path would.
///
/// ```
/// use prefactor_server::handlers::bulk_scan::scan_envelope;
/// let body = r#" {"other": [1, "]"], "items": [ {"_type": "a", "idempotency_key": "k1", "details": {"x": "}"}},{"_type":"b"} ]} "#;
/// let items = scan_envelope(body).unwrap();
/// assert_eq!(items.len(), 2);
/// assert_eq!(items[0].0, r#"{"_type": "a", "idempotency_key": "k1", "details": {"x": "}"}}"#);
/// assert_eq!(items[1].1.action, Some(r#""b""#));
/// assert!(scan_envelope(r#"{"items": [1]}"#).is_none());
/// assert!(scan_envelope(r#"{"items": []} x"#).is_none());
/// assert!(scan_envelope(r#"{"items": [], "other": tru}"#).is_none());
/// ```
pub fn scan_envelope(text: &str) -> Option<Vec<(&str, ItemHead<'_>)>> {
    let bytes = text.as_bytes();
    // An empty envelope has no items.
    let Next::Member(mut at) = enter_container(bytes, skip_space(bytes, 0), b'{', b'}')? else { return None };
    let mut items = None;
    loop {
        let (key, value_start) = scan_key(text, at)?;
        let value_end = if key == r#""items""# {
            let (list, end) = scan_items(text, value_start)?;
            if items.replace(list).is_some() {
                return None;
            }
            end
        } else {
            // Not read, but it must be JSON, key included (the serde path would refuse it).
            let end = value_end(bytes, value_start)?;
            serde_json::from_str::<IgnoredAny>(text.get(value_start..end)?).ok()?;
            serde_json::from_str::<IgnoredAny>(key).ok()?;
            end
        };
        match next_member(bytes, value_end, b'}')? {
            Next::Member(next) => at = next,
            Next::End(end) => {
                (skip_space(bytes, end) == bytes.len()).then_some(())?;
                return items;
            }
        }
    }
}

/// The items of the array starting at `at`, and the index just past it.
fn scan_items(text: &str, at: usize) -> Option<(Vec<(&str, ItemHead<'_>)>, usize)> {
    let bytes = text.as_bytes();
    let mut items = Vec::new();
    let mut at = match enter_container(bytes, at, b'[', b']')? {
        Next::Member(first) => first,
        Next::End(end) => return Some((items, end)),
    };
    loop {
        let (head, end) = ItemHead::scan_at(text, at)?;
        items.push((text.get(at..end)?, head));
        match next_member(bytes, end, b']')? {
            Next::Member(next) => at = next,
            Next::End(end) => return Some((items, end)),
        }
    }
}

/// Where scanning goes on inside an object or array.
enum Next {
    /// A member (an element, or a key) starts at this index.
    Member(usize),
    /// The container ended; the index just past its closing bracket.
    End(usize),
}

/// Enters the object or array that `open` starts at `at`; `None` when nothing opens there.
fn enter_container(bytes: &[u8], at: usize, open: u8, close: u8) -> Option<Next> {
    if bytes.get(at) != Some(&open) {
        return None;
    }
    let at = skip_space(bytes, at + 1);
    Some(if bytes.get(at) == Some(&close) { Next::End(at + 1) } else { Next::Member(at) })
}

/// Steps past the member that ended at `at`: to the next one after a comma, or past `close`;
/// `None` on anything else.
fn next_member(bytes: &[u8], at: usize, close: u8) -> Option<Next> {
    let at = skip_space(bytes, at);
    match *bytes.get(at)? {
        b',' => Some(Next::Member(skip_space(bytes, at + 1))),
        byte if byte == close => Some(Next::End(at + 1)),
        _ => None,
    }
}

/// The (quoted, raw) key starting at `at` and where its value starts after the colon.
fn scan_key(text: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    let key_end = string_end(bytes, at)?;
    let colon = skip_space(bytes, key_end);
    (bytes.get(colon) == Some(&b':')).then_some((text.get(at..key_end)?, skip_space(bytes, colon + 1)))
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The index just past the string starting at `at` (which must be its opening quote).
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let mut at = at + 1;
    loop {
        let found = at + memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes[found] == b'"' {
            return Some(found + 1);
        }
        at = found + 2;
    }
}

/// The index just past the JSON value starting at `at`.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => container_end(bytes, at),
        _ => {
            let mut at = at;
            while !matches!(bytes.get(at), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                at += 1;
            }
            Some(at)
        }
    }
}

/// The index just past the object or array starting at `at`: its own kind of bracket is
/// counted outside strings (in well-formed JSON the other kind nests inside properly, so it
/// cannot end the value early and need not be looked at).
fn container_end(bytes: &[u8], at: usize) -> Option<usize> {
    let open = *bytes.get(at)?;
    let close = if open == b'{' { b'}' } else { b']' };
    let mut depth = 0usize;
    let mut at = at;
    loop {
        let found = at + memchr3(b'"', open, close, bytes.get(at..)?)?;
        match bytes[found] {
            b'"' => {
                at = string_end(bytes, found)?;
                continue;
            }
            byte if byte == open => depth += 1,
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(found + 1);
                }
            }
        }
        at = found + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_head_field_is_found_whatever_the_order_and_spacing() {
        let item = " {\n \"pagination\" : {\"offset\": 0, \"page_size\": [1, {\"x\": \"]\"}]} ,\"sorting\":\"-id\",\
            \"agent_id\":null, \"other\": -1.5e3, \"agent_instance_id\":\"i\\\"d\", \"_t\\u0079pe\" :\"agents/list\",\
            \"agent_span_id\":true,\"idempotency_key\":\"list-0001\" } ";
        let head = ItemHead::scan(item).unwrap();
        assert_eq!(head.pagination, Some(r#"{"offset": 0, "page_size": [1, {"x": "]"}]}"#));
        assert_eq!(head.sorting, Some(r#""-id""#));
        assert_eq!(head.agent_id, Some("null"));
        assert_eq!(head.agent_instance_id, Some(r#""i\"d""#));
        assert_eq!(head.action, Some(r#""agents/list""#), "an escaped key is decoded");
        assert_eq!(head.agent_span_id, Some("true"));
        assert_eq!(head.idempotency_key, Some(r#""list-0001""#));
        assert_eq!(ItemHead::scan("{}"), Some(ItemHead::default()));
        assert_eq!(ItemHead::scan(r#"{"a":"x\\"}"#), Some(ItemHead::default()), "an escaped backslash ends");
    }

    #[test]
    fn non_objects_and_truncated_texts_have_no_head() {
        for text in ["5", "\"x\"", "null", "[{}]", "", "{", r#"{"_type""#, r#"{"_type":"a""#, r#"{"a":{"b":1}"#] {
            assert_eq!(ItemHead::scan(text), None, "{text}");
        }
    }
}
