//! Table-driven parsing of attribute options (`key`, `key = "lit"`, `key(a, b)`).
//!
//! Every macro declares its options once in a table of [`OptionSpec`]s; the parser checks each
//! option against that table, so duplicate detection and "did you mean" hints work the same for
//! every option (no per-option copy-paste checks).

use crate::errors::Errors;
use crate::redact::RedactTarget;
use crate::suggest::closest;
use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

/// The value shape an option accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OptionKind {
    /// `key`
    Flag,
    /// `key = "string"`
    Str,
    /// `key(ident, ident)`
    Idents,
    /// `key(name = expr, "name" = expr)`
    Fields,
    /// `key(Ident)` — one identifier among a fixed set
    Choice(&'static [&'static str]),
    /// `key = path::to::item`
    Path,
    /// `key(ident, "path", ...)`
    Redact,
    /// `key = expression`
    Expr,
}

/// One accepted option of a macro.
pub(crate) struct OptionSpec {
    pub(crate) name: &'static str,
    pub(crate) kind: OptionKind,
}

/// One `name = expr` entry of a `fields(...)` option.
pub(crate) struct FieldEntry {
    pub(crate) key: String,
    pub(crate) key_span: Span,
    pub(crate) value: Expr,
}

/// A parsed, shape-checked option value.
pub(crate) enum OptionValue {
    Flag,
    Str(LitStr),
    Idents(Vec<Ident>),
    Fields(Vec<FieldEntry>),
    Choice(Ident),
    Path(syn::Path),
    Redact(Vec<RedactTarget>),
    Expr(Expr),
}

/// An option as written by the user (key span kept for error reporting).
pub(crate) struct ParsedOption {
    pub(crate) key: Ident,
    pub(crate) value: OptionValue,
}

/// All options of one attribute, each name at most once.
#[derive(Default)]
pub(crate) struct ParsedOptions {
    entries: Vec<ParsedOption>,
    written: Vec<String>,
}

impl ParsedOptions {
    /// Whether the user wrote the option at all (even with an ill-shaped value).
    pub(crate) fn was_written(&self, name: &str) -> bool {
        self.written.iter().any(|written| written == name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&ParsedOption> {
        self.entries.iter().find(|entry| entry.key == name)
    }

    pub(crate) fn flag(&self, name: &str) -> Option<Span> {
        self.get(name).map(|entry| entry.key.span())
    }

    pub(crate) fn string(&self, name: &str) -> Option<LitStr> {
        match self.get(name).map(|entry| &entry.value) {
            Some(OptionValue::Str(lit)) => Some(lit.clone()),
            _ => None,
        }
    }

    pub(crate) fn idents(&self, name: &str) -> Vec<Ident> {
        match self.get(name).map(|entry| &entry.value) {
            Some(OptionValue::Idents(idents)) => idents.clone(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn fields(&self, name: &str) -> &[FieldEntry] {
        match self.get(name).map(|entry| &entry.value) {
            Some(OptionValue::Fields(fields)) => fields,
            _ => &[],
        }
    }

    pub(crate) fn path(&self, name: &str) -> Option<syn::Path> {
        match self.get(name).map(|entry| &entry.value) {
            Some(OptionValue::Path(path)) => Some(path.clone()),
            _ => None,
        }
    }

    pub(crate) fn redact_targets(&self, name: &str) -> Vec<RedactTarget> {
        match self.get(name).map(|entry| &entry.value) {
            Some(OptionValue::Redact(targets)) => targets.clone(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn expr(&self, name: &str) -> Option<Expr> {
        match self.get(name).map(|entry| &entry.value) {
            Some(OptionValue::Expr(expr)) => Some(expr.clone()),
            _ => None,
        }
    }

    pub(crate) fn choice(&self, name: &str) -> Option<Ident> {
        match self.get(name).map(|entry| &entry.value) {
            Some(OptionValue::Choice(ident)) => Some(ident.clone()),
            _ => None,
        }
    }
}

/// What follows an option key, before it is checked against the table.
enum RawValue {
    None,
    Eq(Expr),
    Paren(TokenStream, Span),
}

struct RawOption {
    key: Ident,
    value: RawValue,
}

impl Parse for RawOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = Ident::parse_any(input)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            RawValue::Eq(input.parse()?)
        } else if input.peek(syn::token::Paren) {
            let content;
            let paren = syn::parenthesized!(content in input);
            RawValue::Paren(content.parse()?, paren.span.join())
        } else {
            RawValue::None
        };
        Ok(RawOption { key, value })
    }
}

/// Parses `tokens` against `table`, reporting unknown/duplicate/ill-shaped options into `errors`.
pub(crate) fn parse_options(tokens: TokenStream, table: &[OptionSpec], errors: &mut Errors) -> ParsedOptions {
    let raw = match Punctuated::<RawOption, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(raw) => raw,
        Err(error) => {
            errors.push(error);
            return ParsedOptions::default();
        }
    };
    let mut parsed = ParsedOptions::default();
    for option in raw {
        let name = option.key.unraw().to_string();
        let Some(spec) = table.iter().find(|spec| spec.name == name) else {
            errors.at(option.key.span(), unknown_option_message(&name, table));
            continue;
        };
        if parsed.was_written(spec.name) {
            errors.at(option.key.span(), format!("duplicate option `{name}`"));
            continue;
        }
        parsed.written.push(name.clone());
        if let Some(value) = shape_value(spec, &option, errors) {
            parsed.entries.push(ParsedOption { key: option.key, value });
        }
    }
    parsed
}

fn unknown_option_message(name: &str, table: &[OptionSpec]) -> String {
    let names: Vec<&str> = table.iter().map(|spec| spec.name).collect();
    let mut message = format!("unknown option `{name}`");
    match closest(name, &names) {
        Some(hint) => message.push_str(&format!("; did you mean `{hint}`?")),
        None => message.push_str(&format!("; expected one of: {}", names.join(", "))),
    }
    message
}

fn shape_value(spec: &OptionSpec, option: &RawOption, errors: &mut Errors) -> Option<OptionValue> {
    let name = spec.name;
    let key_span = option.key.span();
    match (spec.kind, &option.value) {
        (OptionKind::Flag, RawValue::None) => Some(OptionValue::Flag),
        (OptionKind::Flag, _) => {
            errors.at(key_span, format!("`{name}` takes no value; write just `{name}`"));
            None
        }
        (OptionKind::Str, RawValue::Eq(Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(lit), .. }))) => {
            Some(OptionValue::Str(lit.clone()))
        }
        (OptionKind::Str, RawValue::Eq(other)) => {
            errors.at_tokens(other, format!("`{name}` expects a string literal: `{name} = \"...\"`"));
            None
        }
        (OptionKind::Str, _) => {
            errors.at(key_span, format!("`{name}` expects a string literal: `{name} = \"...\"`"));
            None
        }
        (OptionKind::Idents, RawValue::Paren(tokens, _)) => {
            let parser =
                |input: ParseStream| Punctuated::<Ident, Token![,]>::parse_terminated_with(input, Ident::parse_any);
            match parser.parse2(tokens.clone()) {
                Ok(idents) => Some(OptionValue::Idents(idents.into_iter().collect())),
                Err(error) => {
                    errors.push(error);
                    None
                }
            }
        }
        (OptionKind::Idents, _) => {
            errors.at(key_span, format!("`{name}` expects a list of argument names: `{name}(a, b)`"));
            None
        }
        (OptionKind::Fields, RawValue::Paren(tokens, _)) => {
            match Punctuated::<FieldEntry, Token![,]>::parse_terminated.parse2(tokens.clone()) {
                Ok(fields) => Some(OptionValue::Fields(fields.into_iter().collect())),
                Err(error) => {
                    errors.push(error);
                    None
                }
            }
        }
        (OptionKind::Fields, _) => {
            errors.at(key_span, format!("`{name}` expects entries: `{name}(key = expr, ...)`"));
            None
        }
        (OptionKind::Choice(choices), RawValue::Paren(tokens, span)) => match syn::parse2::<Ident>(tokens.clone()) {
            Ok(ident) if choices.iter().any(|choice| ident == choice) => Some(OptionValue::Choice(ident)),
            Ok(ident) => {
                errors.at(ident.span(), choice_message(name, choices));
                None
            }
            Err(_) => {
                errors.at(*span, choice_message(name, choices));
                None
            }
        },
        (OptionKind::Choice(choices), _) => {
            errors.at(key_span, choice_message(name, choices));
            None
        }
        (OptionKind::Path, RawValue::Eq(Expr::Path(path))) if path.qself.is_none() => {
            Some(OptionValue::Path(path.path.clone()))
        }
        (OptionKind::Path, RawValue::Eq(other)) => {
            errors.at_tokens(other, format!("`{name}` expects the path of a function: `{name} = path::to::function`"));
            None
        }
        (OptionKind::Path, _) => {
            errors.at(key_span, format!("`{name}` expects the path of a function: `{name} = path::to::function`"));
            None
        }
        (OptionKind::Redact, RawValue::Paren(tokens, _)) => {
            match Punctuated::<RedactTarget, Token![,]>::parse_terminated.parse2(tokens.clone()) {
                Ok(targets) => Some(OptionValue::Redact(targets.into_iter().collect())),
                Err(error) => {
                    errors.push(error);
                    None
                }
            }
        }
        (OptionKind::Redact, _) => {
            errors.at(
                key_span,
                format!("`{name}` expects arguments or paths: `{name}(api_key, \"messages[*].content\")`"),
            );
            None
        }
        (OptionKind::Expr, RawValue::Eq(expr)) => Some(OptionValue::Expr(expr.clone())),
        (OptionKind::Expr, _) => {
            errors.at(key_span, format!("`{name}` expects a value: `{name} = expression`"));
            None
        }
    }
}

fn choice_message(name: &str, choices: &[&str]) -> String {
    let written: Vec<String> = choices.iter().map(|choice| format!("`{name}({choice})`")).collect();
    format!("expected {}", written.join(" or "))
}

impl Parse for FieldEntry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let (key, key_span) = if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            (lit.value(), lit.span())
        } else {
            let ident = Ident::parse_any(input)?;
            (ident.unraw().to_string(), ident.span())
        };
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(key_span, format!("expected `{key} = <expression>`")));
        }
        input.parse::<Token![=]>()?;
        let value = input.parse()?;
        Ok(FieldEntry { key, key_span, value })
    }
}
