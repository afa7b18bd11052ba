//! Error recovery: the original item, unchanged, next to the `compile_error!`s, so the rest of
//! the user's code (and rust-analyzer) keeps seeing the function exactly as written.

use proc_macro2::TokenStream;

pub(crate) fn original_with_errors(original: TokenStream, error: &syn::Error) -> TokenStream {
    let mut output = error.to_compile_error();
    output.extend(original);
    output
}
