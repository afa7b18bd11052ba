//! The limits a summary template works within, and the register-time check of its shape.
//!
//! Why a lexical scan: `liquid`'s parser recurses once per nested block, so a template of a
//! few thousand nested `{% if %}` overflows the stack of whatever thread parses it. The scan
//! counts block nesting without recursion and refuses the template before the parser sees it.

use std::time::Duration;

/// Limits of one template: its size and nesting (checked at register) and the budget of
/// one render (checked while rendering; over budget the summary is `null`).
///
/// ```
/// use prefactor_server::template::TemplateLimits;
/// let limits = TemplateLimits::default();
/// assert_eq!(limits.max_nesting, 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Largest template source in bytes.
    pub max_template_bytes: usize,
    /// Deepest nesting of blocks (`if`, `for`, `case`, ...).
    pub max_nesting: usize,
    /// Loop iterations of one render, all loops together (a range longer than what is left
    /// is refused before it is built).
    pub max_iterations: u64,
    /// Largest rendered summary in bytes.
    pub max_output_bytes: usize,
    /// Bytes one render may produce in intermediate values (filter results, captures).
    pub max_work_bytes: usize,
    /// Wall-clock time of one render.
    pub max_render_time: Duration,
}

/// Default largest template: 16 KiB.
pub const DEFAULT_MAX_TEMPLATE_BYTES: usize = 16 * 1024;
/// Default deepest block nesting.
pub const DEFAULT_MAX_NESTING: usize = 32;
/// Default loop iterations per render.
pub const DEFAULT_MAX_ITERATIONS: u64 = 10_000;
/// Default largest summary: 64 KiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Default intermediate bytes per render: 4 MiB.
pub const DEFAULT_MAX_WORK_BYTES: usize = 4 * 1024 * 1024;
/// Default render time: 50 ms.
pub const DEFAULT_MAX_RENDER_TIME: Duration = Duration::from_millis(50);

impl Default for TemplateLimits {
    fn default() -> Self {
        TemplateLimits {
            max_template_bytes: DEFAULT_MAX_TEMPLATE_BYTES,
            max_nesting: DEFAULT_MAX_NESTING,
            max_iterations: DEFAULT_MAX_ITERATIONS,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_work_bytes: DEFAULT_MAX_WORK_BYTES,
            max_render_time: DEFAULT_MAX_RENDER_TIME,
        }
    }
}

/// Tags that open a block closed by `end<name>`.
const BLOCK_TAGS: &[&str] = &["if", "unless", "for", "tablerow", "case", "capture", "ifchanged", "comment", "raw"];

/// Tags whose content is not parsed (so not counted) until their end tag.
const VERBATIM_TAGS: &[&str] = &["comment", "raw"];

/// Checks a template's size and block nesting without parsing it; the error says which
/// limit it is over.
///
/// ```
/// use prefactor_server::template::{TemplateLimits, check_shape};
/// let limits = TemplateLimits::default();
/// assert!(check_shape("{% if a %}{% for i in x %}{{ i }}{% endfor %}{% endif %}", &limits).is_ok());
/// let deep = "{% if a %}".repeat(100);
/// assert!(check_shape(&deep, &limits).unwrap_err().contains("nest"));
/// ```
pub fn check_shape(source: &str, limits: &TemplateLimits) -> Result<(), String> {
    if source.len() > limits.max_template_bytes {
        return Err(format!("template is {} bytes; the limit is {}", source.len(), limits.max_template_bytes));
    }
    let mut depth = 0usize;
    let mut verbatim: Option<&str> = None;
    for name in tag_names(source) {
        if let Some(open) = verbatim {
            if name.strip_prefix("end") == Some(open) {
                verbatim = None;
                depth = depth.saturating_sub(1);
            }
            continue;
        }
        if BLOCK_TAGS.contains(&name) {
            depth += 1;
            if depth > limits.max_nesting {
                return Err(format!("template nests blocks deeper than {} levels", limits.max_nesting));
            }
            verbatim = VERBATIM_TAGS.iter().copied().find(|tag| *tag == name);
        } else if name.strip_prefix("end").is_some_and(|open| BLOCK_TAGS.contains(&open)) {
            depth = depth.saturating_sub(1);
        }
    }
    Ok(())
}

/// The name (first word) of every `{% ... %}` tag, in order.
fn tag_names(source: &str) -> impl Iterator<Item = &str> {
    source.split("{%").skip(1).map(|tag| {
        let tag = tag.strip_prefix('-').unwrap_or(tag).trim_start();
        let end = tag.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tag.len());
        &tag[..end]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_open_blocks_not_tags() {
        let limits = TemplateLimits { max_nesting: 2, ..TemplateLimits::default() };
        let flat = "{% if a %}x{% endif %}".repeat(100);
        assert!(check_shape(&flat, &limits).is_ok());
        assert!(check_shape("{%- if a -%}{% for i in x %}{% endfor %}{% else %}{% endif %}", &limits).is_ok());
        assert!(check_shape("{% if a %}{% unless b %}{% case c %}", &limits).is_err());
        let raw = "{% raw %}{% if a %}{% if b %}{% if c %}{% endraw %}";
        assert!(check_shape(raw, &limits).is_ok(), "raw content is not parsed");
        let big = "x".repeat(limits.max_template_bytes + 1);
        assert!(check_shape(&big, &limits).unwrap_err().contains("bytes"));
    }
}
