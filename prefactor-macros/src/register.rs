//! Code generation for the compile-time registration of a span's schemas through `inventory`.

use crate::capture::redactions;
use crate::model::{FnModel, OutputShape};
use crate::redact::Step;
use crate::span_options::SpanOptions;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{LitStr, Type};

/// A `const _: () = { .. };` item submitting a `StaticSpanType` for this function.
pub(crate) fn registration(model: &FnModel, options: &SpanOptions) -> TokenStream {
    let params = params_schema_fn(model, options);
    let result = result_schema_fn(model, options);
    let schema = &options.schema;
    let title = optional_str(options.title.as_ref());
    let description = optional_str(options.description.as_ref());
    let template = optional_str(options.template.as_ref());
    let gen_ai_operation = optional_str(options.kind.as_ref());
    let data_risk = match &options.data_risk {
        Some(path) => quote_spanned! {path.span()=>
            ::core::option::Option::Some(#path as fn() -> ::prefactor::__private::DataRisk)
        },
        None => quote! { ::core::option::Option::None },
    };
    let (result_field, result_item) = match result {
        Some(item) => (quote! { ::core::option::Option::Some(__pf_result_schema) }, item),
        None => (quote! { ::core::option::Option::None }, TokenStream::new()),
    };
    let location = quote_spanned! {model.name().span()=>
        file: ::core::file!(), line: ::core::line!(), column: ::core::column!(),
    };
    quote! {
        #[allow(clippy::all, clippy::pedantic, non_upper_case_globals)]
        const _: () = {
            #params
            #result_item
            ::prefactor::__private::inventory::submit! {
                ::prefactor::__private::StaticSpanType {
                    name: #schema,
                    params_schema: __pf_params_schema,
                    result_schema: #result_field,
                    title: #title,
                    description: #description,
                    template: #template,
                    data_risk: #data_risk,
                    gen_ai_operation: #gen_ai_operation,
                    #location
                }
            }
        };
    }
}

fn optional_str(lit: Option<&LitStr>) -> TokenStream {
    match lit {
        Some(lit) => quote! { ::core::option::Option::Some(#lit) },
        None => quote! { ::core::option::Option::None },
    }
}

/// `fn __pf_params_schema() -> Value`: an object with one property per captured argument/field.
fn params_schema_fn(model: &FnModel, options: &SpanOptions) -> TokenStream {
    let field_names: Vec<&str> = options.fields.iter().map(|field| field.key.as_str()).collect();
    let (whole, deep) = redactions(options);
    let mut properties = Vec::new();
    if options.skip_all.is_none() {
        for arg in &model.args {
            let skipped = options.skip.iter().any(|ident| *ident == arg.name);
            if skipped || field_names.contains(&arg.name.as_str()) {
                continue;
            }
            let key = LitStr::new(&arg.name, Span::call_site());
            let schema = if whole.contains(&arg.name) {
                quote! { ::prefactor::__private::redacted_schema as ::prefactor::__private::SchemaFn }
            } else {
                schema_fn_expr(arg.schema_type.as_ref())
            };
            properties.push(quote! { __pf_params.property(#key, #schema); });
        }
    }
    // A redacted path may hold `"[REDACTED]"` where its type said otherwise.
    for path in &deep {
        let arg = &path.arg;
        let steps = path.steps.iter().map(|step| match step {
            Step::Key(key) => quote! { ::core::option::Option::Some(#key) },
            Step::Each | Step::Index(_) => quote! { ::core::option::Option::None },
        });
        properties.push(quote! { __pf_params.redacted_at(#arg, &[#(#steps),*]); });
    }
    for field in &options.fields {
        let key = LitStr::new(&field.key, Span::call_site());
        let schema = schema_fn_expr(None);
        properties.push(quote! { __pf_params.property(#key, #schema); });
    }
    quote! {
        fn __pf_params_schema() -> ::prefactor::__private::serde_json::Value {
            let mut __pf_params = ::prefactor::__private::ParamsSchema::new();
            #(#properties)*
            __pf_params.finish()
        }
    }
}

/// `fn __pf_result_schema() -> Value`, or `None` when the span never has a result payload.
fn result_schema_fn(model: &FnModel, options: &SpanOptions) -> Option<TokenStream> {
    let body = match &model.output {
        _ if model.stream.is_some() => quote! { ::prefactor::__private::stream_result_schema() },
        OutputShape::Unit => return None,
        OutputShape::Value(_) if options.skip_ret => return None,
        OutputShape::Value(ty) => {
            let schema = schema_fn_expr(ty.as_ref());
            quote! { ::prefactor::__private::value_result_schema(#schema) }
        }
        OutputShape::Result { ok_is_unit, ok_type } => {
            let ok = if *ok_is_unit || options.skip_ret {
                quote! { ::core::option::Option::None }
            } else {
                let schema = schema_fn_expr(ok_type.as_ref());
                quote! { ::core::option::Option::Some(#schema) }
            };
            quote! { ::prefactor::__private::result_result_schema(#ok) }
        }
    };
    Some(quote! {
        fn __pf_result_schema() -> ::prefactor::__private::serde_json::Value {
            #body
        }
    })
}

/// A `SchemaFn` for `ty`: its `JsonSchema` when it has one, else permissive.
fn schema_fn_expr(ty: Option<&Type>) -> TokenStream {
    match ty {
        Some(ty) => quote! {
            {
                #[allow(unused_imports)]
                use ::prefactor::__private::{SchemaViaFallback as _, SchemaViaJsonSchema as _};
                (|__pf_generator: &mut ::prefactor::__private::SchemaGenerator| {
                    (&::prefactor::__private::SchemaOf::<#ty>::new()).schema(__pf_generator)
                }) as ::prefactor::__private::SchemaFn
            }
        },
        None => quote! { ::prefactor::__private::permissive_schema as ::prefactor::__private::SchemaFn },
    }
}
