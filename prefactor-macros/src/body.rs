//! Shared pieces of the rewritten function bodies.

use crate::model::FnModel;
use proc_macro2::TokenStream;
use quote::quote;

/// `move || -> Output { body }` (the annotation is left out when the output mentions
/// `impl Trait`, which a closure signature cannot name).
pub(crate) fn body_closure(model: &FnModel, body: &TokenStream) -> TokenStream {
    match (&model.output_type, &model.item.sig.output) {
        (Some(ty), syn::ReturnType::Type(..)) if !model.is_async() => quote! { move || -> #ty { #body } },
        _ => quote! { move || { #body } },
    }
}

/// `async move { fake-return-edge; body }`: the edge fixes the block's output type, so `?`
/// and `.into()` in the body infer exactly as they did in the original function.
pub(crate) fn async_block(model: &FnModel, body: &TokenStream) -> TokenStream {
    let edge = match &model.output_type {
        Some(ty) => quote! {
            #[allow(
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::empty_loop,
                clippy::let_unit_value,
                clippy::let_with_type_underscore,
                clippy::needless_return,
                clippy::unreachable
            )]
            if false {
                let __pf_fake_return: #ty = loop {};
                return __pf_fake_return;
            }
        },
        None => TokenStream::new(),
    };
    quote! { async move { #edge #body } }
}

/// Lints the generated statements may trip in user crates (`clippy::pedantic` included).
pub(crate) fn allow_lints() -> TokenStream {
    quote! {
        #[allow(
            clippy::redundant_closure_call,
            clippy::needless_borrow,
            clippy::needless_borrows_for_generic_args,
            clippy::used_underscore_binding,
            clippy::shadow_unrelated,
            clippy::semicolon_if_nothing_returned,
            clippy::match_same_arms,
            clippy::ignored_unit_patterns,
            clippy::let_underscore_untyped,
            clippy::no_effect_underscore_binding
        )]
    }
}
