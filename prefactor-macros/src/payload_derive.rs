//! `#[derive(Payload)]`: a JSON schema (title/description from `#[payload(..)]` or doc
//! comments) for a type used as a span argument or return value.
//!
//! The schema is produced by schemars' own derive on a private *shadow* copy of the type that
//! keeps only the attributes schemars understands (`serde`, `schemars`, `doc`, validation), so
//! serde renames, skips, flattening and tagging are read exactly as serde reads them. The
//! user's type then delegates `JsonSchema` to the shadow under its own name.

use crate::args::{OptionKind, OptionSpec, parse_options};
use crate::errors::Errors;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Attribute, Data, DeriveInput, Fields, LitStr};

const PAYLOAD_OPTIONS: &[OptionSpec] =
    &[OptionSpec { name: "title", kind: OptionKind::Str }, OptionSpec { name: "description", kind: OptionKind::Str }];

/// Attributes schemars' derive reads; everything else is dropped from the shadow.
const KEPT_ATTRIBUTES: &[&str] = &["serde", "schemars", "doc", "validate", "garde"];

pub(crate) fn derive_payload(input: DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let (title, description) = payload_options(&input.attrs, &mut errors);
    errors.finish(())?;
    let (doc_title, doc_description) = doc_paragraphs(&input.attrs);
    let title = title.or(doc_title);
    let description = description.or(doc_description);
    let ident = &input.ident;
    let shadow_ident = format_ident!("__PrefactorPayloadShadow{}", ident);
    let shadow = shadow_of(&input, &shadow_ident, title.as_ref(), description.as_ref());
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[allow(non_camel_case_types, non_snake_case, dead_code, clippy::all, clippy::pedantic)]
        const _: () = {
            #shadow

            #[automatically_derived]
            impl #impl_generics ::prefactor::__private::schemars::JsonSchema for #ident #type_generics #where_clause {
                fn schema_name() -> ::prefactor::__private::Cow<'static, str> {
                    <#shadow_ident #type_generics as ::prefactor::__private::schemars::JsonSchema>::schema_name()
                }
                fn schema_id() -> ::prefactor::__private::Cow<'static, str> {
                    <#shadow_ident #type_generics as ::prefactor::__private::schemars::JsonSchema>::schema_id()
                }
                fn inline_schema() -> bool {
                    <#shadow_ident #type_generics as ::prefactor::__private::schemars::JsonSchema>::inline_schema()
                }
                fn json_schema(
                    generator: &mut ::prefactor::__private::SchemaGenerator,
                ) -> ::prefactor::__private::schemars::Schema {
                    <#shadow_ident #type_generics as ::prefactor::__private::schemars::JsonSchema>::json_schema(generator)
                }
            }

            #[automatically_derived]
            impl #impl_generics ::prefactor::__private::PayloadType for #ident #type_generics #where_clause {}
        };
    })
}

fn payload_options(attrs: &[Attribute], errors: &mut Errors) -> (Option<LitStr>, Option<LitStr>) {
    let mut title = None;
    let mut description = None;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("payload")) {
        let tokens = match attr.meta.require_list() {
            Ok(list) => list.tokens.clone(),
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let parsed = parse_options(tokens, PAYLOAD_OPTIONS, errors);
        title = parsed.string("title").or(title);
        description = parsed.string("description").or(description);
    }
    (title, description)
}

fn shadow_of(
    input: &DeriveInput,
    shadow_ident: &syn::Ident,
    title: Option<&LitStr>,
    description: Option<&LitStr>,
) -> TokenStream {
    let mut shadow = input.clone();
    shadow.ident = shadow_ident.clone();
    shadow.vis = syn::Visibility::Inherited;
    // Container docs are turned into title/description explicitly (schemars would put the
    // whole comment into `description`).
    shadow.attrs = kept(&input.attrs).into_iter().filter(|attr| !attr.path().is_ident("doc")).collect();
    match &mut shadow.data {
        Data::Struct(data) => strip_fields(&mut data.fields),
        Data::Enum(data) => {
            for variant in &mut data.variants {
                variant.attrs = kept(&variant.attrs);
                strip_fields(&mut variant.fields);
            }
        }
        Data::Union(_) => {}
    }
    let name = schema_name_template(input);
    let title = title.map(|title| quote! { #[schemars(title = #title)] });
    let description = description.map(|description| quote! { #[schemars(description = #description)] });
    quote! {
        #[derive(::prefactor::__private::schemars::JsonSchema)]
        #[schemars(crate = "::prefactor::__private::schemars", rename = #name)]
        #title
        #description
        #shadow
    }
}

fn strip_fields(fields: &mut Fields) {
    for field in fields.iter_mut() {
        field.attrs = kept(&field.attrs);
        field.vis = syn::Visibility::Inherited;
    }
}

fn kept(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs.iter().filter(|attr| KEPT_ATTRIBUTES.iter().any(|name| attr.path().is_ident(name))).cloned().collect()
}

/// The schema name: the type's name, with `_for_{T}` placeholders for type parameters so each
/// instantiation gets its own name.
fn schema_name_template(input: &DeriveInput) -> LitStr {
    let params: Vec<String> = input.generics.type_params().map(|param| format!("{{{}}}", param.ident)).collect();
    let mut name = input.ident.to_string();
    if !params.is_empty() {
        name.push_str("_for_");
        name.push_str(&params.join("_and_"));
    }
    LitStr::new(&name, input.ident.span())
}

/// The doc comment's first paragraph (title) and the remaining paragraphs (description).
fn doc_paragraphs(attrs: &[Attribute]) -> (Option<LitStr>, Option<LitStr>) {
    let lines: Vec<String> = attrs
        .iter()
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(meta) if meta.path.is_ident("doc") => match &meta.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(lit), .. }) => Some(lit.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let text = lines.join("\n");
    let mut paragraphs =
        text.split("\n\n").map(|paragraph| paragraph.trim().replace('\n', " ")).filter(|p| !p.is_empty());
    let span = proc_macro2::Span::call_site();
    let title = paragraphs.next().map(|title| LitStr::new(&title, span));
    let rest: Vec<String> = paragraphs.collect();
    let description = (!rest.is_empty()).then(|| LitStr::new(&rest.join("\n\n"), span));
    (title, description)
}
