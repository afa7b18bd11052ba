//! Expansion of `#[span(...)]`: the original function with a span around its body.

use crate::body::{allow_lints, async_block, body_closure};
use crate::capture::{finish_closure, payload_closure, return_span};
use crate::model::{Execution, FnModel};
use crate::register::registration;
use crate::span_options::{ErrorRendering, SpanOptions};
use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::LitStr;
use syn::spanned::Spanned;

pub(crate) fn expand_span(model: &FnModel, options: &SpanOptions) -> TokenStream {
    let registration = registration(model, options);
    let start = span_start(model, options, !model.is_async());
    let finish = finish_closure(model, options);
    let lints = allow_lints();
    let body = match &model.execution {
        Execution::Sync if model.stream.is_some() => {
            let stream = streaming(model, options);
            quote! { #registration #stream }
        }
        Execution::Sync => {
            let closure = body_closure(model, &model.item.body);
            quote! {
                #registration
                #lints
                let __pf_span = #start;
                #lints
                let __pf_out = ::prefactor::__private::call_once(#closure);
                ::prefactor::__private::finish_sync(__pf_span, &__pf_out, #finish);
                __pf_out
            }
        }
        Execution::Async => {
            let instrumented = instrumented_async(model, &model.item.body, &start, &finish);
            quote! { #registration #instrumented }
        }
        Execution::ReturnsAsyncBlock { prefix, wrap_in_box_pin, block } => {
            let inner: TokenStream = block.stmts.iter().map(ToTokens::to_token_stream).collect();
            let instrumented = instrumented_async(model, &inner, &start, &finish);
            let future = quote! { async move { #instrumented } };
            let future = if *wrap_in_box_pin {
                quote! { ::std::boxed::Box::pin(#future) }
            } else {
                future
            };
            quote! { #registration #(#prefix)* #future }
        }
    };
    rebuild(model, body)
}

fn instrumented_async(model: &FnModel, body: &TokenStream, start: &TokenStream, finish: &TokenStream) -> TokenStream {
    let future = async_block(model, body);
    let lints = allow_lints();
    quote! {
        #lints
        let __pf_span = #start;
        ::prefactor::__private::instrument_span(__pf_span, #future, #finish).await
    }
}

/// A function returning a stream: the span is current while the body makes the stream, then
/// the stream carries it (open until the stream ends, is dropped or yields an `Err`).
fn streaming(model: &FnModel, options: &SpanOptions) -> TokenStream {
    let Some(shape) = &model.stream else { return TokenStream::new() };
    let schema = &options.schema;
    let name = options.name.clone().unwrap_or_else(|| LitStr::new(&model.name().to_string(), model.name().span()));
    let payload = payload_closure(model, options);
    let closure = body_closure(model, &model.item.body);
    let lints = allow_lints();
    let ret_span = return_span(model);
    let recorded = if shape.fallible {
        let render = match options.err {
            ErrorRendering::Display => quote_spanned! {ret_span=> ::prefactor::__private::error_display },
            ErrorRendering::Debug => quote_spanned! {ret_span=> ::prefactor::__private::error_debug },
        };
        quote_spanned! {ret_span=> ::prefactor::__private::try_stream_span(__pf_span, __pf_out, #render) }
    } else {
        quote_spanned! {ret_span=> ::prefactor::__private::stream_span(__pf_span, __pf_out) }
    };
    let (check, recorded) = match &options.reduce {
        Some(path) => {
            let checker = if shape.fallible {
                quote_spanned! {path.span()=> ::prefactor::__private::try_reducer_for }
            } else {
                quote_spanned! {path.span()=> ::prefactor::__private::reducer_for }
            };
            let check = quote_spanned! {path.span()=> let __pf_reduce = #checker(&__pf_out, #path); };
            (check, quote! { #recorded.reduce(__pf_reduce) })
        }
        None => (TokenStream::new(), recorded),
    };
    let recorded = if shape.boxed {
        quote! { ::std::boxed::Box::pin(#recorded) }
    } else {
        recorded
    };
    quote! {
        #lints
        let __pf_span = ::prefactor::__private::enter_stream_span(#schema, #name, #payload);
        #lints
        let __pf_out = ::prefactor::__private::call_once(#closure);
        #check
        #recorded
    }
}

/// `start_span(schema, name, payload-closure)` (`enter_span` for sync bodies): `None`
/// (nothing built) without a client.
fn span_start(model: &FnModel, options: &SpanOptions, enter: bool) -> TokenStream {
    let schema = &options.schema;
    let name = options.name.clone().unwrap_or_else(|| LitStr::new(&model.name().to_string(), model.name().span()));
    let payload = payload_closure(model, options);
    if enter {
        quote! { ::prefactor::__private::enter_span(#schema, #name, #payload) }
    } else {
        quote! { ::prefactor::__private::start_span(#schema, #name, #payload) }
    }
}

/// The function with its body replaced (attributes, visibility and signature untouched).
pub(crate) fn rebuild(model: &FnModel, body: TokenStream) -> TokenStream {
    let attrs = &model.item.attrs;
    let vis = &model.item.vis;
    let sig = &model.item.sig;
    let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, body);
    group.set_span(model.item.brace_span);
    quote! { #(#attrs)* #vis #sig #group }
}
