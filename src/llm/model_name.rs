//! Model names as providers report them, reduced to the names of price entries:
//! `openai/gpt-4o-2024-08-06` → `gpt-4o`, `us.anthropic.claude-3-5-sonnet-20241022-v2:0` →
//! `claude-3-5-sonnet`, `models/gemini-2.0-flash-001` → `gemini-2.0-flash`.

/// How many version suffixes are taken off at most (`-preview-05-06` is two).
const MAX_SUFFIXES: usize = 6;

/// Vendor prefixes of cloud model ids (Bedrock `anthropic.claude-...`), possibly after a
/// region prefix (`us.anthropic.claude-...`).
const VENDOR_PREFIXES: &[&str] = &["anthropic.", "openai.", "meta.", "mistral.", "cohere.", "amazon.", "google."];

/// The name a price entry is looked up by: trimmed, lower case, without the path of a router
/// or API (`openai/`, `models/`) or the vendor prefix of a cloud id.
pub(crate) fn normalized(model: &str) -> String {
    let lower = model.trim().to_ascii_lowercase();
    let last = lower.rsplit('/').next().unwrap_or(&lower);
    let unprefixed = VENDOR_PREFIXES.iter().find_map(|vendor| {
        let at = last.find(vendor)?;
        // At the start, or after a region (`us.`, `eu.`, `apac.`, `global.`).
        let region = &last[..at];
        (region.is_empty() || (region.ends_with('.') && !region.contains('-'))).then(|| &last[at + vendor.len()..])
    });
    unprefixed.unwrap_or(last).to_owned()
}

/// The names to try for `normalized`, most specific first: itself, then with one more version
/// suffix taken off each time (a date, a revision number, `-latest`, `-preview`, a Vertex
/// `@version` or a Bedrock `-v2:0`).
pub(crate) fn candidates(normalized: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(normalized);
    std::iter::from_fn(move || {
        let current = next?;
        next = without_version_suffix(current);
        Some(current)
    })
    .take(MAX_SUFFIXES + 1)
}

fn without_version_suffix(name: &str) -> Option<&str> {
    if let Some(at) = name.rfind(['@', ':']) {
        return (at > 0).then(|| &name[..at]);
    }
    for word in ["-latest", "-preview", "-exp"] {
        if let Some(stripped) = name.strip_suffix(word).filter(|rest| !rest.is_empty()) {
            return Some(stripped);
        }
    }
    // Digit groups after the last dashes: `-2024-08-06`, `-05-06`, `-20241022`, `-0613`, `-001`.
    for shape in [&[4, 2, 2][..], &[2, 2], &[8], &[4], &[3]] {
        if let Some(stripped) = strip_digit_groups(name, shape) {
            return Some(stripped);
        }
    }
    strip_bedrock_revision(name)
}

/// `name` without a trailing `-d..d` group for each width of `shape`, if it ends so.
fn strip_digit_groups<'a>(name: &'a str, shape: &[usize]) -> Option<&'a str> {
    let mut rest = name;
    for width in shape.iter().rev() {
        let (head, group) = rest.rsplit_once('-')?;
        if group.len() != *width || !group.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest = head;
    }
    (!rest.is_empty()).then_some(rest)
}

/// Bedrock's `-v1`/`-v2` revision (its `:0` is already gone), only after a date, so that
/// model names such as `deepseek-v3` keep their version.
fn strip_bedrock_revision(name: &str) -> Option<&str> {
    let (head, revision) = name.rsplit_once('-')?;
    let is_revision =
        revision.len() > 1 && revision.starts_with('v') && revision[1..].bytes().all(|b| b.is_ascii_digit());
    (is_revision && strip_digit_groups(head, &[8]).is_some()).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(model: &str) -> Vec<String> {
        let name = normalized(model);
        candidates(&name).map(str::to_owned).collect()
    }

    #[test]
    fn dated_and_revised_names_reduce_to_their_family() {
        assert_eq!(chain("gpt-4o-2024-08-06"), ["gpt-4o-2024-08-06", "gpt-4o"]);
        assert_eq!(chain("claude-3-5-sonnet-20241022"), ["claude-3-5-sonnet-20241022", "claude-3-5-sonnet"]);
        assert_eq!(chain("models/gemini-2.0-flash-001"), ["gemini-2.0-flash-001", "gemini-2.0-flash"]);
        assert_eq!(
            chain("gemini-2.5-pro-preview-05-06"),
            ["gemini-2.5-pro-preview-05-06", "gemini-2.5-pro-preview", "gemini-2.5-pro"]
        );
        assert_eq!(chain("gpt-3.5-turbo-0125"), ["gpt-3.5-turbo-0125", "gpt-3.5-turbo"]);
        assert_eq!(chain("claude-3-5-sonnet@20240620"), ["claude-3-5-sonnet@20240620", "claude-3-5-sonnet"]);
        assert_eq!(chain("Claude-3-5-Haiku-Latest"), ["claude-3-5-haiku-latest", "claude-3-5-haiku"]);
    }

    #[test]
    fn cloud_and_router_prefixes_are_dropped() {
        assert_eq!(
            chain("us.anthropic.claude-3-5-sonnet-20241022-v2:0"),
            [
                "claude-3-5-sonnet-20241022-v2:0",
                "claude-3-5-sonnet-20241022-v2",
                "claude-3-5-sonnet-20241022",
                "claude-3-5-sonnet"
            ]
        );
        assert_eq!(chain(" openai/gpt-4o-mini "), ["gpt-4o-mini"]);
    }

    #[test]
    fn family_names_are_never_cut_into_others() {
        assert_eq!(chain("gpt-4o-mini"), ["gpt-4o-mini"]);
        assert_eq!(chain("o3-mini"), ["o3-mini"]);
        assert_eq!(chain("claude-sonnet-4-5"), ["claude-sonnet-4-5"]);
        assert_eq!(chain("deepseek-v3"), ["deepseek-v3"]);
        assert_eq!(chain("llama-3.1-405b"), ["llama-3.1-405b"]);
        assert_eq!(chain("-2024"), ["-2024"]);
        assert_eq!(chain("@x"), ["@x"]);
    }
}
