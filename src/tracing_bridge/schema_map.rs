//! Which Prefactor span type a `tracing` span becomes: rules by span name and by target.

use tracing::Metadata;

use crate::tracing_bridge::span_type::TRACING_SPAN_TYPE;

/// The user's rules. A name rule wins over a target rule; among target rules the longest
/// matching prefix wins (`a::b` over `a`); no rule means [`TRACING_SPAN_TYPE`].
#[derive(Debug, Clone, Default)]
pub(crate) struct SchemaMap {
    /// `(span name, schema)`.
    names: Vec<(String, String)>,
    /// `(target prefix, schema)`, longest prefix first.
    targets: Vec<(String, String)>,
}

/// Where a span's schema came from: it decides the payload's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapped<'a> {
    /// A user rule: the payload is the span's fields, to validate against the user's schema.
    Rule(&'a str),
    /// No rule: [`TRACING_SPAN_TYPE`], whose payload also names the span.
    Default,
}

impl Mapped<'_> {
    pub(crate) fn schema(&self) -> &str {
        match self {
            Mapped::Rule(schema) => schema,
            Mapped::Default => TRACING_SPAN_TYPE,
        }
    }
}

impl SchemaMap {
    pub(crate) fn add_name(&mut self, name: String, schema: String) {
        self.names.retain(|(existing, _)| *existing != name);
        self.names.push((name, schema));
    }

    pub(crate) fn add_target(&mut self, prefix: String, schema: String) {
        self.targets.retain(|(existing, _)| *existing != prefix);
        self.targets.push((prefix, schema));
        self.targets.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    }

    pub(crate) fn lookup(&self, metadata: &Metadata<'_>) -> Mapped<'_> {
        if let Some((_, schema)) = self.names.iter().find(|(name, _)| name == metadata.name()) {
            return Mapped::Rule(schema);
        }
        let target = metadata.target();
        self.targets
            .iter()
            .find(|(prefix, _)| target_matches(target, prefix))
            .map_or(Mapped::Default, |(_, schema)| Mapped::Rule(schema))
    }
}

/// `prefix` matches the target itself and the modules under it (`a::b` matches `a::b` and
/// `a::b::c`, not `a::bc`).
fn target_matches(target: &str, prefix: &str) -> bool {
    match target.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with("::") || prefix.is_empty(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::target_matches;

    #[test]
    fn a_target_prefix_matches_whole_path_segments_only() {
        assert!(target_matches("app::llm", "app::llm"));
        assert!(target_matches("app::llm::openai", "app::llm"));
        assert!(!target_matches("app::llmx", "app::llm"));
        assert!(!target_matches("other", "app"));
        assert!(target_matches("anything", ""));
    }
}
