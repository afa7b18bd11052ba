//! Type inspection helpers: which types can be named outside the annotated fn.

use std::collections::BTreeSet;
use syn::visit_mut::VisitMut;
use syn::{GenericArgument, Lifetime, PathArguments, PathSegment, Type};

/// True when `ty` cannot be named in an item outside the fn: it mentions `impl Trait`, `Self`,
/// one of the fn's type parameters, or something that looks like an impl's type parameter
/// (a single uppercase letter, optionally followed by digits, e.g. `T`, `K2`).
pub(crate) fn is_opaque(ty: &Type, generic_names: &BTreeSet<String>) -> bool {
    struct Finder<'a> {
        generic_names: &'a BTreeSet<String>,
        opaque: bool,
    }
    impl VisitMut for Finder<'_> {
        fn visit_type_impl_trait_mut(&mut self, _: &mut syn::TypeImplTrait) {
            self.opaque = true;
        }
        fn visit_type_path_mut(&mut self, path: &mut syn::TypePath) {
            if path.qself.is_some() {
                self.opaque = true;
            }
            if let Some(first) = path.path.segments.first() {
                let name = first.ident.to_string();
                if name == "Self" || self.generic_names.contains(&name) || looks_like_type_param(&name) {
                    self.opaque = true;
                }
            }
            syn::visit_mut::visit_type_path_mut(self, path);
        }
        fn visit_type_macro_mut(&mut self, _: &mut syn::TypeMacro) {
            self.opaque = true;
        }
    }
    let mut finder = Finder { generic_names, opaque: false };
    finder.visit_type_mut(&mut ty.clone());
    finder.opaque
}

fn looks_like_type_param(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_digit())
}

/// True when `ty` contains `impl Trait` (cannot be written as a closure/let annotation).
pub(crate) fn mentions_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl VisitMut for Finder {
        fn visit_type_impl_trait_mut(&mut self, _: &mut syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type_mut(&mut ty.clone());
    finder.0
}

/// `ty` with every named lifetime replaced by `'static` (the fn's lifetimes are not in scope
/// in the schema function; the schema does not depend on lifetimes).
pub(crate) fn static_lifetimes(ty: &Type) -> Type {
    struct Staticize;
    impl VisitMut for Staticize {
        fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
            if lifetime.ident != "static" {
                *lifetime = Lifetime::new("'static", lifetime.span());
            }
        }
    }
    let mut ty = ty.clone();
    Staticize.visit_type_mut(&mut ty);
    ty
}

/// The type arguments of one path segment (`Result<A, B>` → `[A, B]`).
pub(crate) fn single_generic_args(segment: &PathSegment) -> Vec<Type> {
    let PathArguments::AngleBracketed(args) = &segment.arguments else { return Vec::new() };
    args.args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty.clone()),
            _ => None,
        })
        .collect()
}
