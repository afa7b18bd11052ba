//! Spans opened with a client installed but outside any agent run (no current instance):
//! they cannot be recorded, so they are counted per span type, warned about once per type,
//! and reported by `close()`. The usual cause is work that left the run's task or thread
//! (`tokio::spawn`, `spawn_blocking`, `std::thread::spawn`) without its context.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::lock::lock;

/// Most span types listed by name; more are counted under [`OTHER_TYPES`]. Span types come
/// from code (`#[span(schema = ..)]`), so this only bounds a pathological program.
const MAX_TYPES: usize = 64;

/// The entry that counts span types beyond [`MAX_TYPES`].
const OTHER_TYPES: &str = "(other span types)";

/// How to fix it, named in the warning and in the close report.
pub(crate) const FIX: &str = "e.g. in `tokio::spawn`, `spawn_blocking` or `std::thread::spawn`: use \
     `prefactor::spawn`, `prefactor::spawn_blocking`, `prefactor::thread::spawn`, or `.in_current_context()`";

/// Unattached spans by span type.
#[derive(Debug, Default)]
pub(crate) struct UnattachedSpans {
    by_type: Mutex<BTreeMap<String, u64>>,
}

impl UnattachedSpans {
    /// Counts one span of `schema`; logs the warning the first time for this type.
    pub(crate) fn record(&self, schema: &str) {
        let first = {
            let mut by_type = lock(&self.by_type);
            let key = if by_type.contains_key(schema) || by_type.len() < MAX_TYPES { schema } else { OTHER_TYPES };
            let count = by_type.entry(key.to_owned()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first {
            tracing::warn!(
                schema,
                "prefactor: a span of type {schema} was opened outside any agent run ({FIX}); it is not \
                 recorded (counted in stats().unattached and reported by close())"
            );
        }
    }

    /// All unattached spans so far.
    pub(crate) fn total(&self) -> u64 {
        lock(&self.by_type).values().sum()
    }

    /// Counts by span type, in name order.
    pub(crate) fn by_type(&self) -> Vec<(String, u64)> {
        lock(&self.by_type).iter().map(|(schema, count)| (schema.clone(), *count)).collect()
    }
}

/// The report's sentence for `by_type` (empty when there are none).
pub(crate) fn describe(by_type: &[(String, u64)]) -> String {
    let parts: Vec<String> = by_type
        .iter()
        .map(|(schema, count)| {
            let spans = if *count == 1 { "span" } else { "spans" };
            format!("{count} {spans} of type {schema}")
        })
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    let verb = if by_type.len() == 1 && by_type[0].1 == 1 { "was" } else { "were" };
    format!("{} {verb} opened outside any agent run, not recorded ({FIX})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_type_and_bounds_the_number_of_types() {
        let spans = UnattachedSpans::default();
        spans.record("t:child");
        spans.record("t:child");
        spans.record("t:other");
        assert_eq!(spans.by_type(), vec![("t:child".to_owned(), 2), ("t:other".to_owned(), 1)]);
        for i in 0..100 {
            spans.record(&format!("t:many{i}"));
        }
        let by_type = spans.by_type();
        assert_eq!(by_type.len(), MAX_TYPES + 1);
        assert_eq!(by_type.iter().map(|(_, n)| n).sum::<u64>(), 103);
    }

    #[test]
    fn the_sentence_names_counts_types_and_the_fix() {
        assert_eq!(describe(&[]), "");
        let text = describe(&[("t:child".to_owned(), 3)]);
        assert!(text.starts_with("3 spans of type t:child were opened outside any agent run"), "{text}");
        assert!(text.contains("prefactor::spawn") && text.contains("in_current_context"), "{text}");
        assert!(describe(&[("t:x".to_owned(), 1)]).starts_with("1 span of type t:x was opened"));
    }
}
