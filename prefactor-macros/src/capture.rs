//! Code generation for what a span records: the payload (arguments + fields) and the
//! result (return value, error, status).

use crate::model::{FnModel, OutputShape};
use crate::redact::{Redacted, redaction_static};
use crate::span_options::{ErrorRendering, SpanOptions};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::LitStr;

/// The `redact(...)` entries (checked by `valid.rs`): whole arguments and deep paths.
pub(crate) fn redactions(options: &SpanOptions) -> (Vec<String>, Vec<Redacted>) {
    let (whole, deep): (Vec<Redacted>, Vec<Redacted>) =
        options.redact.iter().filter_map(|target| target.resolve().ok()).partition(|r| r.steps.is_empty());
    (whole.into_iter().map(|r| r.arg).collect(), deep)
}

/// A closure `|| -> Result<Payload, Error>` serializing the captured arguments and fields.
/// A redacted argument is written as `"[REDACTED]"` without being read; deep paths are
/// attached to the payload and redacted by the client's worker thread.
pub(crate) fn payload_closure(model: &FnModel, options: &SpanOptions) -> TokenStream {
    let field_names: Vec<&str> = options.fields.iter().map(|field| field.key.as_str()).collect();
    let (whole, deep) = redactions(options);
    let mut entries = Vec::new();
    let mut bindings = Vec::new();
    if options.skip_all.is_none() {
        for arg in &model.args {
            let skipped = options.skip.iter().any(|ident| *ident == arg.name);
            if skipped || field_names.contains(&arg.name.as_str()) {
                continue;
            }
            let key = LitStr::new(&json_key(&arg.name), arg.span);
            let ident = &arg.ident;
            if whole.contains(&arg.name) {
                entries.push(quote! { ::prefactor::__private::redacted(#key) });
                continue;
            }
            entries.push(quote_spanned! {arg.span=> ::prefactor::__private::arg(#key, &#ident) });
        }
    }
    for (index, field) in options.fields.iter().enumerate() {
        let binding = syn::Ident::new(&format!("__pf_field_{index}"), Span::mixed_site());
        let value = &field.value;
        let key = LitStr::new(&json_key(&field.key), field.key_span);
        bindings.push(quote! { let #binding = #value; });
        entries.push(quote_spanned! {field.key_span=> ::prefactor::__private::field(#key, &#binding) });
    }
    let deep: Vec<&Redacted> = deep.iter().collect();
    let payload = quote! { ::prefactor::__private::payload_of(&[#(#entries),*]) };
    let payload = match redaction_static(&deep) {
        Some(statics) => quote! {
            {
                #statics
                #payload.map(|__pf_payload| __pf_payload.with_redaction(&__PF_REDACTION))
            }
        },
        None => payload,
    };
    quote! {
        || {
            #(#bindings)*
            #payload
        }
    }
}

/// `key` as a JSON string followed by a colon (`"user_id":`): encoded here, once, so calls
/// write it as it is.
fn json_key(key: &str) -> String {
    let mut json = String::with_capacity(key.len() + 3);
    json.push('"');
    for c in key.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            c if u32::from(c) < 0x20 => json.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => json.push(c),
        }
    }
    json.push_str("\":");
    json
}

/// A closure `|span: SpanGuard, output: &Output|` that finishes the span from the output.
pub(crate) fn finish_closure(model: &FnModel, options: &SpanOptions) -> TokenStream {
    let ret_span = return_span(model);
    let body = match &model.output {
        OutputShape::Unit => quote! { ::prefactor::__private::complete(__pf_span, ::core::option::Option::None) },
        OutputShape::Value(_) if options.skip_ret => {
            quote! { ::prefactor::__private::complete(__pf_span, ::core::option::Option::None) }
        }
        OutputShape::Value(_) => {
            let value = quote_spanned! {ret_span=> ::prefactor::__private::result_value(__pf_out) };
            quote! { ::prefactor::__private::complete(__pf_span, #value) }
        }
        OutputShape::Result { ok_is_unit, .. } => {
            let ok_payload = if *ok_is_unit || options.skip_ret {
                quote! { ::core::option::Option::None }
            } else {
                quote_spanned! {ret_span=> ::prefactor::__private::result_value(__pf_ok) }
            };
            let error_payload = match options.err {
                ErrorRendering::Display => quote_spanned! {ret_span=> ::prefactor::__private::error_display(__pf_err) },
                ErrorRendering::Debug => quote_spanned! {ret_span=> ::prefactor::__private::error_debug(__pf_err) },
            };
            quote! {
                match __pf_out {
                    ::core::result::Result::Ok(__pf_ok) => ::prefactor::__private::complete(__pf_span, #ok_payload),
                    ::core::result::Result::Err(__pf_err) => ::prefactor::__private::fail(__pf_span, #error_payload),
                }
            }
        }
    };
    quote! {
        |__pf_span: ::prefactor::__private::SpanGuard, __pf_out| {
            let _ = &__pf_out;
            #body
        }
    }
}

/// Where errors about the return value point: the declared return type.
pub(crate) fn return_span(model: &FnModel) -> Span {
    match &model.item.sig.output {
        syn::ReturnType::Type(_, ty) => syn::spanned::Spanned::span(&**ty),
        syn::ReturnType::Default => model.item.sig.ident.span(),
    }
}

#[cfg(test)]
mod tests {
    use super::json_key;

    #[test]
    fn keys_are_encoded_as_json_strings() {
        assert_eq!(json_key("user_id"), r#""user_id":"#);
        assert_eq!(json_key("naïve"), r#""naïve":"#);
        assert_eq!(json_key(r#"say "hi" \ bye"#), r#""say \"hi\" \\ bye":"#);
        assert_eq!(json_key("tab\there\n"), r#""tab\u0009here\u000a":"#);
    }
}
