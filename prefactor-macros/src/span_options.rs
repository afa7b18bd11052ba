//! The typed options of `#[span(...)]`.

use crate::args::{FieldEntry, OptionKind, OptionSpec, parse_options};
use crate::errors::Errors;
use crate::redact::RedactTarget;
use crate::schema_name::schema_name_problem;
use crate::suggest::closest;
use proc_macro2::{Span, TokenStream};
use syn::{Ident, LitStr};

const SPAN_OPTIONS: &[OptionSpec] = &[
    OptionSpec { name: "schema", kind: OptionKind::Str },
    OptionSpec { name: "name", kind: OptionKind::Str },
    OptionSpec { name: "title", kind: OptionKind::Str },
    OptionSpec { name: "description", kind: OptionKind::Str },
    OptionSpec { name: "template", kind: OptionKind::Str },
    OptionSpec { name: "skip", kind: OptionKind::Idents },
    OptionSpec { name: "skip_all", kind: OptionKind::Flag },
    OptionSpec { name: "fields", kind: OptionKind::Fields },
    OptionSpec { name: "skip_ret", kind: OptionKind::Flag },
    OptionSpec { name: "err", kind: OptionKind::Choice(&["Display", "Debug"]) },
    OptionSpec { name: "data_risk", kind: OptionKind::Path },
    OptionSpec { name: "redact", kind: OptionKind::Redact },
    OptionSpec { name: "kind", kind: OptionKind::Str },
    OptionSpec { name: "reduce", kind: OptionKind::Path },
];

/// The operations of the OpenTelemetry GenAI conventions a span type may declare with `kind`
/// (the runtime's `GenAiOperation`).
const GEN_AI_OPERATIONS: &[&str] =
    &["chat", "text_completion", "generate_content", "embeddings", "execute_tool", "invoke_agent", "create_agent"];

/// How an `Err` value is rendered into the failed span's `error.message`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ErrorRendering {
    Display,
    Debug,
}

/// Everything `#[span(...)]` was asked to do.
pub(crate) struct SpanOptions {
    pub(crate) schema: LitStr,
    pub(crate) name: Option<LitStr>,
    pub(crate) title: Option<LitStr>,
    pub(crate) description: Option<LitStr>,
    pub(crate) template: Option<LitStr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) skip_all: Option<Span>,
    pub(crate) fields: Vec<FieldEntry>,
    pub(crate) skip_ret: bool,
    pub(crate) err: ErrorRendering,
    /// `data_risk = path`: a `fn() -> prefactor::DataRisk` declaring the span type's risk.
    pub(crate) data_risk: Option<syn::Path>,
    /// `redact(arg, "arg.path[*].key")`: recorded as `"[REDACTED]"` (checked in `valid.rs`).
    pub(crate) redact: Vec<RedactTarget>,
    /// `kind = "chat"`: the span type's OpenTelemetry GenAI operation (one of
    /// `GEN_AI_OPERATIONS`).
    pub(crate) kind: Option<LitStr>,
    /// `reduce = path`: a `fn(&mut Acc, &Item)` folding a stream's items into its result.
    pub(crate) reduce: Option<syn::Path>,
}

impl SpanOptions {
    /// Parses and checks the options on their own (checks against the fn are in `valid.rs`).
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Option<SpanOptions> {
        let attr_span = tokens_span(&tokens);
        let parsed = parse_options(tokens, SPAN_OPTIONS, errors);
        let schema = parsed.string("schema");
        match &schema {
            Some(lit) => {
                if let Some(problem) = schema_name_problem(&lit.value()) {
                    errors.at(lit.span(), problem);
                }
            }
            None if !parsed.was_written("schema") => {
                errors.at(
                    attr_span,
                    "missing required option `schema`, e.g. `#[prefactor::span(schema = \"agent:llm\")]`",
                );
            }
            None => {}
        }
        if let (Some(all), Some(skip)) = (parsed.flag("skip_all"), parsed.get("skip")) {
            errors.at(skip.key.span(), "`skip` is redundant with `skip_all`; keep one of them");
            let _ = all;
        }
        let kind = parsed.string("kind");
        if let Some(lit) = &kind
            && !GEN_AI_OPERATIONS.contains(&lit.value().as_str())
        {
            let hint = match closest(&lit.value(), GEN_AI_OPERATIONS) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => String::new(),
            };
            errors.at(
                lit.span(),
                format!(
                    "`kind` is an OpenTelemetry GenAI operation, one of {}{hint}",
                    GEN_AI_OPERATIONS.iter().map(|op| format!("`{op}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if let (Some(skip_ret), Some(_)) = (parsed.flag("skip_ret"), parsed.get("reduce")) {
            errors.at(skip_ret, "`skip_ret` conflicts with `reduce`, which records a result reduced from the items");
        }
        let err = match parsed.choice("err") {
            Some(ident) if ident == "Debug" => ErrorRendering::Debug,
            _ => ErrorRendering::Display,
        };
        Some(SpanOptions {
            schema: schema?,
            name: parsed.string("name"),
            title: parsed.string("title"),
            description: parsed.string("description"),
            template: parsed.string("template"),
            skip: parsed.idents("skip"),
            skip_all: parsed.flag("skip_all"),
            fields: take_fields(&parsed),
            skip_ret: parsed.flag("skip_ret").is_some(),
            err,
            data_risk: parsed.path("data_risk"),
            redact: parsed.redact_targets("redact"),
            kind,
            reduce: parsed.path("reduce"),
        })
    }
}

fn take_fields(parsed: &crate::args::ParsedOptions) -> Vec<FieldEntry> {
    parsed
        .fields("fields")
        .iter()
        .map(|field| FieldEntry { key: field.key.clone(), key_span: field.key_span, value: field.value.clone() })
        .collect()
}

/// The span errors about the attribute as a whole should point at.
pub(crate) fn tokens_span(tokens: &TokenStream) -> Span {
    tokens.clone().into_iter().next().map_or_else(Span::call_site, |token| token.span())
}
