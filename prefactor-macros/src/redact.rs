//! `redact(...)` of `#[span]`: argument names and paths into arguments, checked here so a
//! misspelled argument or a malformed path is a compile error at its token.
//!
//! The path grammar is the runtime's (`prefactor::Redaction`): a key, then `.key`, `[*]`,
//! `[index]` or `["quoted key"]` steps.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr};

/// One entry of `redact(...)` as written.
#[derive(Clone)]
pub(crate) enum RedactTarget {
    /// `api_key`: the whole argument.
    Arg(Ident),
    /// `"messages[*].content"`: a path whose first key is an argument.
    Path(LitStr),
}

impl Parse for RedactTarget {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return Ok(RedactTarget::Path(input.parse()?));
        }
        let ident = Ident::parse_any(input).map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected an argument name or a path string, e.g. `redact(api_key, \"messages[*].content\")`",
            )
        })?;
        if input.peek(syn::token::Bracket) || input.peek(syn::Token![.]) {
            let rest: TokenStream = input.parse()?;
            let written = format!("{ident}{rest}").replace(' ', "");
            return Err(syn::Error::new_spanned(
                rest,
                format!("write a path into an argument as a string: `redact(\"{written}\")`"),
            ));
        }
        Ok(RedactTarget::Arg(ident))
    }
}

/// One step of a checked path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Each,
    Index(usize),
}

/// A checked entry: the argument it starts at and the steps after it (none: the whole
/// argument).
pub(crate) struct Redacted {
    pub(crate) arg: String,
    pub(crate) span: Span,
    pub(crate) steps: Vec<Step>,
}

impl RedactTarget {
    pub(crate) fn span(&self) -> Span {
        match self {
            RedactTarget::Arg(ident) => ident.span(),
            RedactTarget::Path(lit) => lit.span(),
        }
    }

    /// The argument and the steps into it, or why the path is malformed.
    pub(crate) fn resolve(&self) -> Result<Redacted, String> {
        match self {
            RedactTarget::Arg(ident) => {
                Ok(Redacted { arg: ident.unraw().to_string(), span: ident.span(), steps: Vec::new() })
            }
            RedactTarget::Path(lit) => {
                let mut steps =
                    parse_path(&lit.value()).map_err(|reason| format!("malformed redaction path: {reason}"))?;
                let Step::Key(arg) = steps.remove(0) else {
                    return Err("malformed redaction path: it must start with an argument name".into());
                };
                Ok(Redacted { arg, span: lit.span(), steps })
            }
        }
    }
}

/// Splits `path` into steps (same grammar as the runtime's `Redaction::new`).
pub(crate) fn parse_path(path: &str) -> Result<Vec<Step>, &'static str> {
    let mut steps = Vec::new();
    let mut rest = path;
    let mut need_key = true;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            if steps.is_empty() {
                return Err("a path starts with an argument name, not `[`");
            }
            let close = after.find(']').ok_or("`[` without its `]`")?;
            let inside = after[..close].trim();
            steps.push(match inside {
                "*" => Step::Each,
                quoted if quoted.starts_with('"') => Step::Key(unquote(quoted)?),
                index => Step::Index(index.parse().map_err(|_| "inside `[...]` write `*`, an index or a quoted key")?),
            });
            rest = &after[close + 1..];
            need_key = false;
        } else if let Some(after) = rest.strip_prefix('.') {
            if need_key {
                return Err("a `.` must follow a step and be followed by a key");
            }
            rest = after;
            need_key = true;
            if rest.is_empty() {
                break;
            }
        } else if need_key {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            if !is_plain_key(key) {
                return Err("a key is letters, digits and `_`, not starting with a digit (quote others: `[\"key\"]`)");
            }
            steps.push(Step::Key(key.to_owned()));
            rest = &rest[end..];
            need_key = false;
        } else {
            return Err("expected `.key`, `[*]`, `[index]` or `[\"key\"]`");
        }
    }
    if steps.is_empty() || need_key {
        return Err("a path must not be empty or end with `.`");
    }
    Ok(steps)
}

fn is_plain_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// The text of a `"..."` key (escapes `\"` and `\\` only).
fn unquote(quoted: &str) -> Result<String, &'static str> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .filter(|inner| !inner.is_empty())
        .ok_or("a quoted key is a non-empty `\"...\"`")?;
    let mut key = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => key.push(chars.next().filter(|e| matches!(e, '"' | '\\')).ok_or("only `\\\"` and `\\\\` escapes")?),
            '"' => return Err("a quoted key is a non-empty `\"...\"`"),
            other => key.push(other),
        }
    }
    Ok(key)
}

/// `Redaction::from_static(..)` of the deep paths, as statics (`None` when there are none).
pub(crate) fn redaction_static(paths: &[&Redacted]) -> Option<TokenStream> {
    if paths.is_empty() {
        return None;
    }
    let mut items = Vec::new();
    let mut names = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let name = Ident::new(&format!("__PF_REDACT_PATH_{index}"), Span::mixed_site());
        let arg = &path.arg;
        let steps = path.steps.iter().map(|step| match step {
            Step::Key(key) => quote! { ::prefactor::__private::PathStep::Key(::std::borrow::Cow::Borrowed(#key)) },
            Step::Each => quote! { ::prefactor::__private::PathStep::Each },
            Step::Index(index) => quote! { ::prefactor::__private::PathStep::Index(#index) },
        });
        let count = path.steps.len() + 1;
        items.push(quote! {
            static #name: [::prefactor::__private::PathStep; #count] = [
                ::prefactor::__private::PathStep::Key(::std::borrow::Cow::Borrowed(#arg)),
                #(#steps),*
            ];
        });
        names.push(name);
    }
    let count = names.len();
    Some(quote! {
        #(#items)*
        static __PF_REDACT_PATHS: [::std::borrow::Cow<'static, [::prefactor::__private::PathStep]>; #count] =
            [#(::std::borrow::Cow::Borrowed(&#names)),*];
        static __PF_REDACTION: ::prefactor::__private::Redaction =
            ::prefactor::__private::Redaction::from_static(&__PF_REDACT_PATHS);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_matches_the_runtimes() {
        assert_eq!(
            parse_path(r#"messages[*].content"#).unwrap(),
            vec![Step::Key("messages".into()), Step::Each, Step::Key("content".into())]
        );
        assert_eq!(
            parse_path(r#"headers["x-api-key"][ 2 ]"#).unwrap(),
            vec![Step::Key("headers".into()), Step::Key("x-api-key".into()), Step::Index(2)]
        );
        for bad in ["", ".a", "a.", "a..b", "[*]", "a[", "a[x]", "a[*", "1a", "a b", "a[\"x]", "a]", "a[\"\"]"] {
            assert!(parse_path(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
