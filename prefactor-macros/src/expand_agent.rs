//! Expansion of `#[agent(...)]`: register + start an instance around the function body.

use crate::agent_options::AgentOptions;
use crate::body::{allow_lints, async_block, body_closure};
use crate::errors::Errors;
use crate::expand_span::rebuild;
use crate::model::{Execution, FnModel, OutputShape};
use proc_macro2::{Delimiter, Group, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::LitStr;
use syn::spanned::Spanned;

/// Checks that need both the options and the function.
pub(crate) fn check_agent(model: &FnModel, options: &AgentOptions, errors: &mut Errors) {
    if let Some(span) = options.stop_on_terminate {
        if !model.is_async() {
            errors.at(span, "`stop_on_terminate` needs an `async fn` (a sync body cannot be interrupted)");
        } else if !matches!(model.output, OutputShape::Result { .. }) {
            errors.at(
                span,
                "`stop_on_terminate` needs a `Result<_, E>` return type with `E: From<prefactor::Terminated>`",
            );
        }
    }
}

pub(crate) fn expand_agent(model: &FnModel, options: &AgentOptions) -> TokenStream {
    let site = agent_site(model, options);
    let status = status_closure(model);
    let lints = allow_lints();
    let external_id = match &options.external_id {
        Some(expr) => external_id_of(expr),
        None => quote! { ::core::option::Option::None },
    };
    let start = quote! { let __pf_agent = ::prefactor::__private::start_agent(&#site, #external_id); };
    let body = match &model.execution {
        Execution::Sync => {
            let closure = body_closure(model, &model.item.body);
            quote! {
                #start
                let __pf_enter = ::prefactor::__private::enter_agent(&__pf_agent);
                #lints
                let __pf_out = ::prefactor::__private::call_once(#closure);
                ::prefactor::__private::finish_agent_sync(__pf_agent, __pf_enter, &__pf_out, #status);
                __pf_out
            }
        }
        Execution::Async => async_agent(model, options, &model.item.body, &start, &status),
        Execution::ReturnsAsyncBlock { prefix, wrap_in_box_pin, block } => {
            let inner: TokenStream = block.stmts.iter().map(ToTokens::to_token_stream).collect();
            let instrumented = async_agent(model, options, &inner, &start, &status);
            let future = quote! { async move { #instrumented } };
            let future = if *wrap_in_box_pin {
                quote! { ::std::boxed::Box::pin(#future) }
            } else {
                future
            };
            quote! { #(#prefix)* #future }
        }
    };
    rebuild(model, body)
}

fn async_agent(
    model: &FnModel,
    options: &AgentOptions,
    body: &TokenStream,
    start: &TokenStream,
    status: &TokenStream,
) -> TokenStream {
    let future = async_block(model, body);
    let run = if options.stop_on_terminate.is_some() {
        quote! {
            ::prefactor::__private::run_agent_until_terminated(__pf_agent, __pf_future, #status, |__pf_reason| {
                ::core::result::Result::Err(::core::convert::From::from(::prefactor::__private::terminated(__pf_reason)))
            })
        }
    } else {
        quote! { ::prefactor::__private::run_agent(__pf_agent, __pf_future, #status) }
    };
    quote! {
        #start
        let __pf_future = #future;
        match __pf_agent {
            ::core::option::Option::Some(__pf_agent) => #run.await,
            ::core::option::Option::None => __pf_future.await,
        }
    }
}

/// `|output| FinishStatus`: `Err` → failed, anything else → complete.
fn status_closure(model: &FnModel) -> TokenStream {
    match model.output {
        OutputShape::Result { .. } => quote! {
            |__pf_out| if __pf_out.is_ok() {
                ::prefactor::__private::FinishStatus::Complete
            } else {
                ::prefactor::__private::FinishStatus::Failed
            }
        },
        _ => quote! { |_| ::prefactor::__private::FinishStatus::Complete },
    }
}

fn agent_site(model: &FnModel, options: &AgentOptions) -> TokenStream {
    let fn_name = LitStr::new(&model.name().to_string(), model.name().span());
    let name = options.name.clone().unwrap_or(fn_name);
    let id = optional(options.id.as_ref());
    let description = optional(options.description.as_ref());
    let purpose = optional(options.purpose.as_ref());
    let version = match &options.version {
        Some(version) => quote! { #version },
        None => quote! { ::core::env!("CARGO_PKG_VERSION") },
    };
    quote! {
        ::prefactor::__private::AgentSite {
            id: #id,
            name: #name,
            version: #version,
            description: #description,
            purpose: #purpose,
        }
    }
}

fn optional(lit: Option<&LitStr>) -> TokenStream {
    match lit {
        Some(lit) => quote! { ::core::option::Option::Some(#lit) },
        None => quote! { ::core::option::Option::None },
    }
}

/// `external_id(&expr)`: by reference, as the expression may name an argument the body uses
/// afterwards. The expression goes in an invisible group (its precedence kept, no parentheses
/// of the macro's), so that a type error spans the whole expression the user wrote.
fn external_id_of(expr: &syn::Expr) -> TokenStream {
    let group = Group::new(Delimiter::None, expr.to_token_stream());
    quote_spanned! {expr.span()=> ::prefactor::__private::external_id(&#group) }
}
