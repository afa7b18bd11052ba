//! The typed options of `#[agent(...)]`.

use crate::args::{OptionKind, OptionSpec, parse_options};
use crate::errors::Errors;
use proc_macro2::{Span, TokenStream};
use syn::{Expr, ExprLit, Lit, LitStr};

const AGENT_OPTIONS: &[OptionSpec] = &[
    OptionSpec { name: "id", kind: OptionKind::Str },
    OptionSpec { name: "name", kind: OptionKind::Str },
    OptionSpec { name: "version", kind: OptionKind::Str },
    OptionSpec { name: "description", kind: OptionKind::Str },
    OptionSpec { name: "purpose", kind: OptionKind::Str },
    OptionSpec { name: "stop_on_terminate", kind: OptionKind::Flag },
    OptionSpec { name: "external_id", kind: OptionKind::Expr },
];

/// The instance purposes the API knows (wire names).
const PURPOSES: &[&str] = &["live", "smoke_test", "eval"];

/// Everything `#[agent(...)]` was asked to do.
pub(crate) struct AgentOptions {
    pub(crate) id: Option<LitStr>,
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<LitStr>,
    pub(crate) description: Option<LitStr>,
    pub(crate) purpose: Option<LitStr>,
    pub(crate) stop_on_terminate: Option<Span>,
    /// `external_id = expr`: evaluated at each call, with the arguments in scope.
    pub(crate) external_id: Option<Expr>,
}

impl AgentOptions {
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> AgentOptions {
        let parsed = parse_options(tokens, AGENT_OPTIONS, errors);
        let purpose = parsed.string("purpose");
        if let Some(lit) = purpose.as_ref().filter(|lit| !PURPOSES.contains(&lit.value().as_str())) {
            errors
                .at(lit.span(), format!("unknown purpose `{}`; expected one of: {}", lit.value(), PURPOSES.join(", ")));
        }
        for name in ["id", "name", "version"] {
            if let Some(lit) = parsed.string(name).filter(|lit| lit.value().trim().is_empty()) {
                errors.at(lit.span(), format!("`{name}` must not be empty"));
            }
        }
        let external_id = parsed.expr("external_id");
        if let Some(Expr::Lit(ExprLit { lit: Lit::Str(lit), .. })) = &external_id
            && lit.value().trim().is_empty()
        {
            errors.at(lit.span(), "`external_id` must not be empty");
        }
        AgentOptions {
            external_id,
            id: parsed.string("id"),
            name: parsed.string("name"),
            version: parsed.string("version"),
            description: parsed.string("description"),
            purpose,
            stop_on_terminate: parsed.flag("stop_on_terminate"),
        }
    }
}
