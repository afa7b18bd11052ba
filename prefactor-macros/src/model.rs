//! The model of an annotated function: signature, arguments, return shape and async-ness.
//!
//! The body is kept as raw tokens (never re-printed from a syn tree) so the user's code keeps
//! its spans and rust-analyzer keeps working inside it. It is only parsed to detect the
//! `async-trait` / `fn -> impl Future` shape whose last expression is an `async move` block.

use crate::stream_shape::{StreamShape, stream_shape};
use crate::types::{is_opaque, mentions_impl_trait, single_generic_args, static_lifetimes};
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use std::collections::BTreeSet;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Block, Expr, FnArg, Ident, Pat, ReturnType, Signature, Stmt, Type, Visibility};

/// A function item whose body has not been parsed.
pub(crate) struct ItemFnTokens {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: TokenStream,
    pub(crate) brace_span: Span,
}

impl Parse for ItemFnTokens {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        if input.peek(syn::Token![;]) {
            let semi: syn::Token![;] = input.parse()?;
            return Err(syn::Error::new(
                semi.span,
                "this function has no body; put the attribute on the implementation instead",
            ));
        }
        let content;
        let brace = syn::braced!(content in input);
        let body: TokenStream = content.parse()?;
        Ok(ItemFnTokens { attrs, vis, sig, body, brace_span: brace.span.join() })
    }
}

/// One captured-or-skippable argument binding.
pub(crate) struct ArgModel {
    /// The key in the payload (the binding's name without `r#`).
    pub(crate) name: String,
    /// The binding to read the value from.
    pub(crate) ident: Ident,
    /// The type used for the params schema; `None` means "permissive schema".
    pub(crate) schema_type: Option<Type>,
    /// Where a "does not implement Serialize" error should point.
    pub(crate) span: Span,
}

/// The value a call produces (the future's output for async functions).
pub(crate) enum OutputShape {
    /// `()` — nothing to record.
    Unit,
    /// Any non-`Result` value.
    Value(Option<Type>),
    /// `Result<T, E>` (by the last path segment's name); `ok` is `None` for `Result<(), E>`,
    /// `ok_type` is the schema type (`None` = permissive).
    Result { ok_is_unit: bool, ok_type: Option<Type> },
}

/// How the function runs.
pub(crate) enum Execution {
    Sync,
    Async,
    /// A sync fn whose last expression is an `async move` block (async-trait's
    /// `Box::pin(async move { .. })`, or `fn -> impl Future`): the block is instrumented.
    ReturnsAsyncBlock {
        prefix: Vec<Stmt>,
        wrap_in_box_pin: bool,
        block: Block,
    },
}

pub(crate) struct FnModel {
    pub(crate) item: ItemFnTokens,
    pub(crate) args: Vec<ArgModel>,
    pub(crate) has_receiver: bool,
    pub(crate) output: OutputShape,
    /// The type of the value the body evaluates to, when it can be written (no `impl Trait`).
    pub(crate) output_type: Option<Type>,
    pub(crate) execution: Execution,
    /// Set when the function returns a stream: the span lasts as long as the stream.
    pub(crate) stream: Option<StreamShape>,
}

impl FnModel {
    pub(crate) fn new(item: ItemFnTokens) -> FnModel {
        let generic_names: BTreeSet<String> =
            item.sig.generics.type_params().map(|param| param.ident.to_string()).collect();
        let has_receiver = item.sig.receiver().is_some();
        let args = collect_args(&item.sig, &generic_names);
        let execution = detect_execution(&item);
        let produced = produced_type(&item.sig, &execution);
        let output = shape_of(produced.as_ref(), &generic_names);
        let output_type = produced.filter(|ty| !mentions_impl_trait(ty));
        let stream = match execution {
            Execution::Sync => stream_shape(&item.sig),
            _ => None,
        };
        FnModel { item, args, has_receiver, output, output_type, execution, stream }
    }

    pub(crate) fn name(&self) -> &Ident {
        &self.item.sig.ident
    }

    pub(crate) fn is_async(&self) -> bool {
        !matches!(self.execution, Execution::Sync)
    }
}

fn collect_args(sig: &Signature, generic_names: &BTreeSet<String>) -> Vec<ArgModel> {
    let mut args = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(typed) = input else { continue };
        let whole_type_schema = schema_type(&typed.ty, generic_names);
        match &*typed.pat {
            Pat::Ident(pat) => args.push(ArgModel {
                name: unraw(&pat.ident),
                ident: pat.ident.clone(),
                schema_type: whole_type_schema,
                span: typed.ty.span(),
            }),
            other => collect_pattern_bindings(other, &mut args),
        }
    }
    args
}

/// Bindings inside a destructuring pattern are captured one by one (permissive schema: their
/// types are not written in the signature).
fn collect_pattern_bindings(pat: &Pat, args: &mut Vec<ArgModel>) {
    match pat {
        Pat::Ident(pat) => {
            args.push(ArgModel {
                name: unraw(&pat.ident),
                ident: pat.ident.clone(),
                schema_type: None,
                span: pat.ident.span(),
            });
            if let Some((_, sub)) = &pat.subpat {
                collect_pattern_bindings(sub, args);
            }
        }
        Pat::Tuple(tuple) => tuple.elems.iter().for_each(|elem| collect_pattern_bindings(elem, args)),
        Pat::TupleStruct(tuple) => tuple.elems.iter().for_each(|elem| collect_pattern_bindings(elem, args)),
        Pat::Struct(strukt) => strukt.fields.iter().for_each(|field| collect_pattern_bindings(&field.pat, args)),
        Pat::Reference(reference) => collect_pattern_bindings(&reference.pat, args),
        Pat::Slice(slice) => slice.elems.iter().for_each(|elem| collect_pattern_bindings(elem, args)),
        Pat::Paren(paren) => collect_pattern_bindings(&paren.pat, args),
        Pat::Type(typed) => collect_pattern_bindings(&typed.pat, args),
        _ => {}
    }
}

fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map_or_else(|| name.clone(), str::to_owned)
}

/// The type as it can be named in a schema function outside the annotated fn, or `None` when
/// it depends on the fn's (or its impl's) generics, `Self` or `impl Trait`.
fn schema_type(ty: &Type, generic_names: &BTreeSet<String>) -> Option<Type> {
    if is_opaque(ty, generic_names) { None } else { Some(static_lifetimes(ty)) }
}

fn detect_execution(item: &ItemFnTokens) -> Execution {
    if item.sig.asyncness.is_some() {
        return Execution::Async;
    }
    let Ok(block) = syn::parse2::<BlockBody>(item.body.clone()) else { return Execution::Sync };
    let mut stmts = block.0;
    let Some(Stmt::Expr(last, None)) = stmts.last() else { return Execution::Sync };
    let (wrap_in_box_pin, async_block) = match last {
        Expr::Async(async_block) if async_block.capture.is_some() => (false, async_block.block.clone()),
        Expr::Call(call) if is_box_pin(&call.func) && call.args.len() == 1 => match call.args.first() {
            Some(Expr::Async(async_block)) if async_block.capture.is_some() => (true, async_block.block.clone()),
            _ => return Execution::Sync,
        },
        _ => return Execution::Sync,
    };
    stmts.pop();
    Execution::ReturnsAsyncBlock { prefix: stmts, wrap_in_box_pin, block: async_block }
}

struct BlockBody(Vec<Stmt>);

impl Parse for BlockBody {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        Ok(BlockBody(Block::parse_within(input)?))
    }
}

fn is_box_pin(func: &Expr) -> bool {
    let Expr::Path(path) = func else { return false };
    let segments: Vec<String> = path.path.segments.iter().map(|segment| segment.ident.to_string()).collect();
    segments.ends_with(&["Box".to_owned(), "pin".to_owned()])
}

/// The type the body's value has: the declared return type, or the future's `Output` for
/// functions returning an `async move` block.
fn produced_type(sig: &Signature, execution: &Execution) -> Option<Type> {
    let ReturnType::Type(_, ty) = &sig.output else { return None };
    match execution {
        Execution::ReturnsAsyncBlock { .. } => future_output(ty),
        _ => Some((**ty).clone()),
    }
}

/// Finds `Output = T` inside `Pin<Box<dyn Future<Output = T> + ..>>` / `impl Future<Output = T>`.
fn future_output(ty: &Type) -> Option<Type> {
    struct Finder(Option<Type>);
    impl syn::visit_mut::VisitMut for Finder {
        fn visit_assoc_type_mut(&mut self, assoc: &mut syn::AssocType) {
            if self.0.is_none() && assoc.ident == "Output" {
                self.0 = Some(assoc.ty.clone());
            }
        }
    }
    let mut finder = Finder(None);
    syn::visit_mut::visit_type_mut(&mut finder, &mut ty.clone());
    finder.0
}

fn shape_of(produced: Option<&Type>, generic_names: &BTreeSet<String>) -> OutputShape {
    let Some(ty) = produced else { return OutputShape::Unit };
    if is_unit(ty) {
        return OutputShape::Unit;
    }
    if let Some(args) = result_args(ty) {
        let ok = args.first();
        return OutputShape::Result {
            ok_is_unit: ok.is_some_and(is_unit),
            ok_type: ok.and_then(|ok| schema_type(ok, generic_names)),
        };
    }
    OutputShape::Value(schema_type(ty, generic_names))
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// The generic arguments of a type whose last path segment is `Result`.
fn result_args(ty: &Type) -> Option<Vec<Type>> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    Some(single_generic_args(last))
}

impl ToTokens for ItemFnTokens {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for attr in &self.attrs {
            attr.to_tokens(tokens);
        }
        self.vis.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, self.body.clone());
        group.set_span(self.brace_span);
        tokens.extend(std::iter::once(proc_macro2::TokenTree::Group(group)));
    }
}
