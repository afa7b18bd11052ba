//! `Redaction`: paths into a payload whose values are replaced by `"[REDACTED]"` on the worker
//! thread, before anything is spooled or sent.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::record::secret::REDACTED;
use crate::report::error::Error;

/// One step of a [`Redaction`] path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// An object key: `name`, `.name` or `["any key"]`.
    Key(Cow<'static, str>),
    /// Every element of an array (or every value of an object): `[*]`.
    Each,
    /// One element of an array: `[3]`.
    Index(usize),
}

/// Paths into a span payload whose values are replaced by `"[REDACTED]"` (what
/// `#[span(redact(...))]` makes). A path starts with a top-level key (an argument name, for
/// the macro) and goes on with `.key`, `["key"]`, `[3]` or `[*]`:
/// `api_key`, `messages[*].content`, `headers["x-api-key"]`, `history[0].text`.
///
/// Applied on the client's worker thread, before the payload is written to the spool or
/// sent; a path that is not in a payload changes nothing; `null` stays `null`. Attach one to a
/// payload with [`Payload::with_redaction`](crate::Payload::with_redaction).
///
/// ```
/// use prefactor_runtime::{Error, Redaction};
///
/// let redaction = Redaction::new(["api_key", "messages[*].content"])?;
/// assert_eq!(redaction.to_string(), "api_key, messages[*].content");
/// assert!(matches!(Redaction::new(["messages[*"]), Err(Error::InvalidRedactPath { .. })));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    paths: Cow<'static, [Cow<'static, [PathStep]>]>,
}

impl Redaction {
    /// Parses `paths`; the first malformed one is an [`Error::InvalidRedactPath`].
    pub fn new<I>(paths: I) -> Result<Redaction, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let steps = parse_path(path)
                .map_err(|reason| Error::InvalidRedactPath { path: path.to_owned(), reason: reason.to_owned() })?;
            parsed.push(Cow::Owned(steps));
        }
        Ok(Redaction { paths: Cow::Owned(parsed) })
    }

    /// A redaction built at compile time (by `#[span(redact(...))]`, which checked the paths).
    #[doc(hidden)]
    pub const fn from_static(paths: &'static [Cow<'static, [PathStep]>]) -> Redaction {
        Redaction { paths: Cow::Borrowed(paths) }
    }

    /// Replaces the values at every path of `value` by `"[REDACTED]"`; the number replaced.
    pub(crate) fn apply(&self, value: &mut Value) -> u64 {
        self.paths.iter().map(|path| redact_at(value, path)).sum()
    }
}

impl fmt::Display for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, path) in self.paths.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&display_path(path))?;
        }
        Ok(())
    }
}

/// `steps` written back in the path syntax.
pub(crate) fn display_path(steps: &[PathStep]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            PathStep::Key(key) if is_plain_key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            PathStep::Key(key) => {
                out.push('[');
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push(']');
            }
            PathStep::Each => out.push_str("[*]"),
            PathStep::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

fn is_plain_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn redact_at(value: &mut Value, path: &[PathStep]) -> u64 {
    let Some((step, rest)) = path.split_first() else {
        if value.is_null() {
            return 0;
        }
        *value = Value::String(REDACTED.to_owned());
        return 1;
    };
    match (step, value) {
        (PathStep::Key(key), Value::Object(map)) => map.get_mut(&**key).map_or(0, |inner| redact_at(inner, rest)),
        (PathStep::Index(index), Value::Array(items)) => {
            items.get_mut(*index).map_or(0, |inner| redact_at(inner, rest))
        }
        (PathStep::Each, Value::Array(items)) => items.iter_mut().map(|inner| redact_at(inner, rest)).sum(),
        (PathStep::Each, Value::Object(map)) => map.values_mut().map(|inner| redact_at(inner, rest)).sum(),
        _ => 0,
    }
}

/// Parses `messages[*].content`-style paths (the grammar of [`Redaction`]).
///
/// The same grammar is checked at compile time by `#[span(redact(...))]`.
pub(crate) fn parse_path(path: &str) -> Result<Vec<PathStep>, &'static str> {
    let bytes = path.as_bytes();
    let mut steps = Vec::new();
    let mut at = 0;
    let mut expect_key = true;
    while at < bytes.len() {
        match bytes[at] {
            b'.' if !expect_key && at + 1 < bytes.len() => {
                at += 1;
                expect_key = true;
            }
            b'.' => return Err("a `.` must be followed by a key, and cannot start a path"),
            b'[' => {
                if steps.is_empty() {
                    return Err("a path starts with a key (an argument name), not `[`");
                }
                let close = path[at..].find(']').map(|offset| at + offset).ok_or("`[` without its `]`")?;
                let inner = path[at + 1..close].trim();
                let step = if inner == "*" {
                    PathStep::Each
                } else if let Ok(index) = inner.parse::<usize>() {
                    PathStep::Index(index)
                } else if inner.starts_with('"') {
                    let key: String = serde_json::from_str(inner).map_err(|_| "a quoted key must be a JSON string")?;
                    PathStep::Key(Cow::Owned(key))
                } else {
                    return Err("inside `[...]` write `*`, an index or a quoted key such as `[\"x-api-key\"]`");
                };
                steps.push(step);
                at = close + 1;
                expect_key = false;
                continue;
            }
            _ if expect_key => {
                let end = path[at..].find(['.', '[']).map_or(path.len(), |offset| at + offset);
                let key = &path[at..end];
                if !is_plain_key(key) {
                    return Err(
                        "a key is letters, digits and `_` (not starting with a digit); quote others: `[\"key\"]`",
                    );
                }
                steps.push(PathStep::Key(Cow::Owned(key.to_owned())));
                at = end;
                expect_key = false;
                continue;
            }
            _ => return Err("expected `.key`, `[*]`, `[index]` or `[\"key\"]` after a step"),
        }
    }
    if steps.is_empty() || expect_key {
        return Err("a path must not be empty or end with `.`");
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_keys_elements_and_every_element() {
        let redaction =
            Redaction::new(["api_key", "messages[*].content", "headers[\"x-api-key\"]", "history[1]", "missing.x"])
                .unwrap();
        let mut payload = json!({
            "api_key": "sk-1", "messages": [{"role": "user", "content": "hi"}, {"role": "a", "content": null}],
            "headers": {"x-api-key": "k", "accept": "json"}, "history": ["a", "b", "c"]
        });
        assert_eq!(redaction.apply(&mut payload), 4);
        assert_eq!(
            payload,
            json!({
                "api_key": "[REDACTED]", "messages": [{"role": "user", "content": "[REDACTED]"}, {"role": "a", "content": null}],
                "headers": {"x-api-key": "[REDACTED]", "accept": "json"}, "history": ["a", "[REDACTED]", "c"]
            })
        );
        assert_eq!(
            redaction.to_string(),
            r#"api_key, messages[*].content, headers["x-api-key"], history[1], missing.x"#
        );
    }

    #[test]
    fn malformed_paths_are_refused_with_a_reason() {
        for bad in ["", ".a", "a.", "a..b", "[*]", "a[", "a[x]", "a[*", "1a", "a b", "a[\"x]", "a]"] {
            assert!(parse_path(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_path("a[ 2 ]").unwrap(), vec![PathStep::Key("a".into()), PathStep::Index(2)]);
    }
}
