//! Procedural macros of [prefactor](https://docs.rs/prefactor): `#[agent]`, `#[span]` and
//! `#[derive(Payload)]`. Use them through the `prefactor` crate, which documents them and
//! provides the `::prefactor::__private` items the expansions call.
//!
//! Pipeline (one file each): option parsing (`args`, `span_options`, `agent_options`) → the
//! function model (`model`, `types`) → validation (`valid`) → expansion (`expand_span`,
//! `expand_agent`, `capture`, `register`, `body`), with `fallback` on any error.

mod agent_options;
mod args;
mod body;
mod capture;
mod errors;
mod expand_agent;
mod expand_span;
mod fallback;
mod model;
mod payload_derive;
mod register;
mod schema_name;
mod span_options;
mod suggest;
mod types;
mod valid;

use errors::Errors;
use model::{FnModel, ItemFnTokens};
use proc_macro::TokenStream;

/// Records a call of the function as a span (see the `prefactor` crate docs).
#[proc_macro_attribute]
pub fn span(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match expand_span_attr(attr.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => fallback::original_with_errors(item, &error).into(),
    }
}

/// Runs the function as an agent instance (see the `prefactor` crate docs).
#[proc_macro_attribute]
pub fn agent(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match expand_agent_attr(attr.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => fallback::original_with_errors(item, &error).into(),
    }
}

/// Derives a span payload schema for a struct or enum (see the `prefactor` crate docs).
#[proc_macro_derive(Payload, attributes(payload))]
pub fn derive_payload(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    match payload_derive::derive_payload(input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn parse_fn(item: proc_macro2::TokenStream, attribute: &str) -> syn::Result<FnModel> {
    let item: ItemFnTokens = syn::parse2(item.clone()).map_err(|error| not_a_function(&item, attribute, error))?;
    Ok(FnModel::new(item))
}

/// A clearer error than "expected `fn`" when the attribute sits on a struct, impl, etc.
fn not_a_function(item: &proc_macro2::TokenStream, attribute: &str, error: syn::Error) -> syn::Error {
    let is_fn_like = syn::parse2::<syn::Item>(item.clone()).map_or(true, |parsed| matches!(parsed, syn::Item::Fn(_)));
    if is_fn_like {
        return error;
    }
    let span = item
        .clone()
        .into_iter()
        .find(|token| !matches!(token, proc_macro2::TokenTree::Punct(_) | proc_macro2::TokenTree::Group(_)));
    let span = span.map_or_else(proc_macro2::Span::call_site, |token| token.span());
    syn::Error::new(span, format!("`#[prefactor::{attribute}]` can only be applied to functions and methods"))
}

fn expand_span_attr(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = Errors::default();
    let options = span_options::SpanOptions::parse(attr, &mut errors);
    let model = match parse_fn(item, "span") {
        Ok(model) => Some(model),
        Err(error) => {
            errors.push(error);
            None
        }
    };
    if let (Some(model), Some(options)) = (&model, &options) {
        valid::check_fn_shape(model, "span", &mut errors);
        valid::check_span_options(model, options, &mut errors);
    }
    match (model, options) {
        (Some(model), Some(options)) => errors.finish(expand_span::expand_span(&model, &options)),
        _ => Err(errors.into_error()),
    }
}

fn expand_agent_attr(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = Errors::default();
    let options = agent_options::AgentOptions::parse(attr, &mut errors);
    let model = parse_fn(item, "agent")?;
    valid::check_fn_shape(&model, "agent", &mut errors);
    expand_agent::check_agent(&model, &options, &mut errors);
    errors.finish(())?;
    Ok(expand_agent::expand_agent(&model, &options))
}
