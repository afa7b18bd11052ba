//! Compile-time validation of span schema names (`namespace:kind[:sub]`).

/// Why a schema name is rejected, or `None` when it is valid.
///
/// A name is two or more `:`-separated segments, each made of lowercase ASCII letters, digits,
/// `_`, `-` or `.` (for example `agent:llm`, `ai-sdk:tool:search`).
pub(crate) fn schema_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("schema name is empty; expected `namespace:kind`, e.g. `agent:llm`".into());
    }
    let segments: Vec<&str> = name.split(':').collect();
    if segments.len() < 2 {
        return Some(format!("schema name `{name}` has no namespace; expected `namespace:kind`, e.g. `agent:llm`"));
    }
    if segments.iter().any(|segment| segment.is_empty()) {
        return Some(format!("schema name `{name}` has an empty segment; expected `namespace:kind[:sub]`"));
    }
    let bad =
        name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.' | ':')));
    bad.map(|c| {
        format!(
            "schema name `{name}` contains {c:?}; segments may use lowercase ASCII letters, digits, `_`, `-` and `.`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::schema_name_problem;

    #[test]
    fn accepts_conventional_names() {
        for name in ["agent:llm", "ai-sdk:tool:search", "agent:tool_call", "a.b:c2"] {
            assert_eq!(schema_name_problem(name), None, "{name}");
        }
    }

    #[test]
    fn rejects_malformed_names() {
        for name in ["", "llm", "agent:", ":llm", "agent::llm", "Agent:LLM", "agent:l lm"] {
            assert!(schema_name_problem(name).is_some(), "{name}");
        }
    }
}
