//! Size limits that keep the span: a payload over the limit is cut down, not dropped, and says
//! what was cut. Run by the worker thread, on payloads over the limit only.
//!
//! The JSON keeps its shape, so it still matches the span type's schema: long strings are
//! shortened (all to the same length, the longest first, each ending with a marker such as
//! `…[truncated 48211 bytes]`), then, if that is not enough, the largest arrays lose their
//! last elements. A `"$truncated"` key at the top says what was cut:
//! `{"limit_bytes":…,"original_bytes":…,"strings_cut":…,"items_dropped":…,"paths":[…]}`.
//! Only a payload whose structure alone is over the limit (say, an object of a million keys) is
//! replaced by that marker.

use std::io;

use serde_json::{Map, Value, json};

use crate::record::redaction::{PathStep, display_path};

/// The key of the marker added to a truncated payload.
pub(crate) const MARKER_KEY: &str = "$truncated";

/// Room kept for the marker (at most `MAX_PATHS` paths of at most `MAX_PATH_BYTES` each).
const MARKER_ROOM: usize = 1536;
const MAX_PATHS: usize = 8;
const MAX_PATH_BYTES: usize = 120;

/// The smallest limit a payload may be given.
pub(crate) const MIN_LIMIT: usize = 4096;

/// Bytes kept of any string that is cut.
const MIN_KEPT: usize = 32;

/// Room for the marker that ends a cut string (`…[truncated 1234567 bytes]`).
const STRING_MARKER: usize = 32;

/// What [`truncate`] cut.
#[derive(Debug, Default)]
struct Cuts {
    strings: u64,
    items: u64,
    paths: Vec<String>,
}

impl Cuts {
    fn note(&mut self, path: &[PathStep]) {
        if self.paths.len() < MAX_PATHS {
            let mut shown = display_path(path);
            if shown.len() > MAX_PATH_BYTES {
                let mut end = MAX_PATH_BYTES;
                while !shown.is_char_boundary(end) {
                    end -= 1;
                }
                shown.truncate(end);
                shown.push('…');
            }
            self.paths.push(shown);
        }
    }
}

/// Cuts `value` (a payload object whose JSON text is `len` bytes, over `limit`) down to at most
/// `limit` bytes of JSON, marker included.
pub(crate) fn truncate(value: &mut Value, len: usize, limit: usize) {
    let limit = limit.max(MIN_LIMIT);
    let target = limit - MARKER_ROOM;
    let original = std::mem::take(value);
    let mut lengths = Vec::new();
    string_lengths(&original, &mut lengths);
    let mut cap = string_cap(&mut lengths, len.saturating_sub(target));
    let mut cuts;
    let mut candidate;
    // Escapes make JSON longer than the strings it holds, so the first cap can fall short:
    // each retry shrinks it in proportion to the overshoot.
    let mut attempts = 0;
    loop {
        cuts = Cuts::default();
        candidate = original.clone();
        cut_strings(&mut candidate, cap, &mut Vec::new(), &mut cuts);
        let size = json_len(&candidate);
        attempts += 1;
        if size <= target || cap == MIN_KEPT || attempts == 6 {
            break;
        }
        cap = MIN_KEPT.max((cap as u128 * target as u128 / size as u128) as usize * 9 / 10);
    }
    drop_items(&mut candidate, target, &mut cuts);
    let marker = json!({
        "limit_bytes": limit,
        "original_bytes": len,
        "strings_cut": cuts.strings,
        "items_dropped": cuts.items,
        "paths": cuts.paths,
    });
    if json_len(&candidate) <= target
        && let Value::Object(map) = &mut candidate
    {
        map.insert(MARKER_KEY.to_owned(), marker);
        *value = candidate;
    } else {
        // The structure alone is over the limit: only the marker is left.
        let mut map = Map::new();
        map.insert(MARKER_KEY.to_owned(), json!({"limit_bytes": limit, "original_bytes": len, "replaced": true}));
        *value = Value::Object(map);
    }
}

/// The byte lengths of every string in `value`.
fn string_lengths(value: &Value, out: &mut Vec<usize>) {
    match value {
        Value::String(text) => out.push(text.len()),
        Value::Array(items) => items.iter().for_each(|item| string_lengths(item, out)),
        Value::Object(map) => map.values().for_each(|item| string_lengths(item, out)),
        _ => {}
    }
}

/// The longest length strings may keep so that cutting every longer one saves `excess` bytes
/// (each cut string gains a marker); `MIN_KEPT` when no length saves enough.
fn string_cap(lengths: &mut [usize], excess: usize) -> usize {
    let saved = |cap: usize| -> usize {
        lengths.iter().filter(|&&len| len > cap + STRING_MARKER).map(|&len| len - cap - STRING_MARKER).sum()
    };
    let (mut low, mut high) = (MIN_KEPT, lengths.iter().copied().max().unwrap_or(MIN_KEPT).max(MIN_KEPT));
    if saved(low) < excess {
        return MIN_KEPT;
    }
    // The largest cap in [low, high] that still saves enough (`saved` falls as `cap` grows).
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if saved(middle) >= excess { low = middle } else { high = middle - 1 }
    }
    low
}

fn cut_strings(value: &mut Value, cap: usize, path: &mut Vec<PathStep>, cuts: &mut Cuts) {
    match value {
        Value::String(text) if text.len() > cap + STRING_MARKER => {
            let mut end = cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let cut = text.len() - end;
            text.truncate(end);
            text.push_str(&format!("…[truncated {cut} bytes]"));
            cuts.strings += 1;
            cuts.note(path);
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                path.push(PathStep::Index(index));
                cut_strings(item, cap, path, cuts);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                path.push(PathStep::Key(key.clone().into()));
                cut_strings(item, cap, path, cuts);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Drops the last elements of the largest arrays until `value` fits `target` (a few rounds).
fn drop_items(value: &mut Value, target: usize, cuts: &mut Cuts) {
    for _ in 0..16 {
        let size = json_len(value);
        if size <= target {
            return;
        }
        let mut largest = None;
        largest_array(value, &mut Vec::new(), &mut largest);
        let Some((path, _)) = largest else { return };
        let Some(Value::Array(items)) = at_path(value, &path) else { return };
        let mut excess = size - target;
        let mut dropped = 0;
        // Keep the first element: the array still shows what it held.
        while items.len() > 1 && excess > 0 {
            let Some(last) = items.pop() else { break };
            excess = excess.saturating_sub(json_len(&last) + 1);
            dropped += 1;
        }
        if dropped == 0 {
            return;
        }
        cuts.items += dropped;
        cuts.note(&path);
    }
}

/// Finds the array with the longest JSON among those with more than one element.
fn largest_array(value: &Value, path: &mut Vec<PathStep>, best: &mut Option<(Vec<PathStep>, usize)>) -> usize {
    match value {
        Value::Array(items) => {
            let mut size = 2 + items.len().saturating_sub(1);
            for (index, item) in items.iter().enumerate() {
                path.push(PathStep::Index(index));
                size += largest_array(item, path, best);
                path.pop();
            }
            if items.len() > 1 && best.as_ref().is_none_or(|(_, best_size)| size > *best_size) {
                *best = Some((path.clone(), size));
            }
            size
        }
        Value::Object(map) => {
            let mut size = 2 + map.len().saturating_sub(1);
            for (key, item) in map {
                path.push(PathStep::Key(key.clone().into()));
                size += json_len(&Value::String(key.clone())) + 1 + largest_array(item, path, best);
                path.pop();
            }
            size
        }
        other => json_len(other),
    }
}

fn at_path<'a>(value: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    let Some((step, rest)) = path.split_first() else { return Some(value) };
    let inner = match (step, value) {
        (PathStep::Key(key), Value::Object(map)) => map.get_mut(&**key)?,
        (PathStep::Index(index), Value::Array(items)) => items.get_mut(*index)?,
        _ => return None,
    };
    at_path(inner, rest)
}

/// The length of `value`'s JSON, counted without keeping the text.
pub(crate) fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(mut value: Value, limit: usize) -> Value {
        let len = json_len(&value);
        truncate(&mut value, len, limit);
        assert!(json_len(&value) <= limit, "{} > {limit}", json_len(&value));
        value
    }

    #[test]
    fn long_strings_are_shortened_evenly_and_small_fields_kept() {
        let big = "x".repeat(50_000);
        let medium = "é".repeat(3_000);
        let original = json!({"model": "m", "messages": [{"content": big}, {"content": medium}], "temperature": 0.2});
        let original_len = json_len(&original);
        let value = cut(original, 8192);
        assert_eq!(value["model"], "m");
        assert_eq!(value["temperature"], 0.2);
        let first = value["messages"][0]["content"].as_str().unwrap();
        assert!(first.starts_with("xxx") && first.ends_with(" bytes]"), "{first}");
        let marker = &value[MARKER_KEY];
        assert_eq!(marker["original_bytes"].as_u64().unwrap() as usize, original_len);
        assert_eq!(marker["strings_cut"], 2);
        assert_eq!(marker["paths"], json!(["messages[0].content", "messages[1].content"]));
        let cut_bytes: usize = first.rsplit("truncated ").next().unwrap().trim_end_matches(" bytes]").parse().unwrap();
        assert_eq!(cut_bytes + first.find('…').unwrap(), 50_000, "the marker says exactly what was cut");
    }

    #[test]
    fn escaped_text_and_huge_arrays_still_fit() {
        let escaped = "\u{1}\"\\".repeat(20_000);
        assert!(cut(json!({"text": escaped}), 4096)["text"].as_str().unwrap().contains("truncated"));
        let items: Vec<u32> = (0..100_000).collect();
        let value = cut(json!({"ids": items, "name": "n"}), 4096);
        assert_eq!(value["ids"][0], 0);
        assert!(value[MARKER_KEY]["items_dropped"].as_u64().unwrap() > 99_000);
        assert_eq!(value[MARKER_KEY]["paths"], json!(["ids"]));
    }

    #[test]
    fn a_structure_over_the_limit_leaves_only_the_marker() {
        let map: Map<String, Value> = (0..5_000).map(|i| (format!("k{i}"), Value::from(i))).collect();
        let value = cut(Value::Object(map), 4096);
        assert_eq!(value.as_object().unwrap().len(), 1);
        assert_eq!(value[MARKER_KEY]["replaced"], true);
    }
}
