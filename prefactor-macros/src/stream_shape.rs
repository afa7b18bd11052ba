//! Whether an annotated function returns a stream, and of what: such a function gets a
//! streaming span (open until the stream ends) instead of one around the call.

use crate::types::single_generic_args;
use syn::punctuated::Punctuated;
use syn::{GenericArgument, PathArguments, ReturnType, Signature, Token, Type, TypeParamBound};

/// A function returning a stream.
pub(crate) struct StreamShape {
    /// `Result` items: the first `Err` fails the span.
    pub(crate) fallible: bool,
    /// Declared as a boxed stream (`Pin<Box<dyn Stream ..>>`, `BoxStream`): the recorded
    /// stream is boxed again to keep the declared type.
    pub(crate) boxed: bool,
}

/// The stream a synchronous function returns: `impl Stream<Item = T>`,
/// `Pin<Box<dyn Stream<Item = T> ..>>`, or futures' `BoxStream<'_, T>` / `LocalBoxStream`.
pub(crate) fn stream_shape(sig: &Signature) -> Option<StreamShape> {
    if sig.asyncness.is_some() {
        return None;
    }
    let ReturnType::Type(_, ty) = &sig.output else { return None };
    let (item, boxed) = match &**ty {
        Type::ImplTrait(impl_trait) => (stream_item(&impl_trait.bounds)?, false),
        Type::Path(path) => {
            let last = path.path.segments.last()?;
            if last.ident == "BoxStream" || last.ident == "LocalBoxStream" {
                (single_generic_args(last).into_iter().next()?, true)
            } else if last.ident == "Pin" {
                (boxed_dyn_stream_item(single_generic_args(last).first()?)?, true)
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(StreamShape { fallible: is_result(&item), boxed })
}

/// `T` of `Box<dyn Stream<Item = T> + ..>`.
fn boxed_dyn_stream_item(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Box" {
        return None;
    }
    match single_generic_args(last).first()? {
        Type::TraitObject(object) => stream_item(&object.bounds),
        _ => None,
    }
}

/// `T` of a `Stream<Item = T>` bound among `bounds`.
fn stream_item(bounds: &Punctuated<TypeParamBound, Token![+]>) -> Option<Type> {
    bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else { return None };
        let last = bound.path.segments.last()?;
        if last.ident != "Stream" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Item" => Some(assoc.ty.clone()),
            _ => None,
        })
    })
}

fn is_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.path.segments.last().is_some_and(|last| last.ident == "Result"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sig: &str) -> Option<(bool, bool)> {
        let sig: Signature = syn::parse_str(sig).expect("a signature");
        stream_shape(&sig).map(|shape| (shape.fallible, shape.boxed))
    }

    #[test]
    fn streams_are_recognised_by_their_declared_type() {
        assert_eq!(shape("fn f() -> impl Stream<Item = u8>"), Some((false, false)));
        assert_eq!(shape("fn f() -> impl futures::Stream<Item = Result<u8, E>> + Send"), Some((true, false)));
        assert_eq!(shape("fn f() -> Pin<Box<dyn Stream<Item = io::Result<u8>> + Send>>"), Some((true, true)));
        assert_eq!(shape("fn f<'a>() -> BoxStream<'a, String>"), Some((false, true)));
        assert_eq!(shape("fn f() -> impl Iterator<Item = u8>"), None);
        assert_eq!(shape("async fn f() -> impl Stream<Item = u8>"), None);
        assert_eq!(shape("fn f() -> Pin<Box<dyn Future<Output = u8>>>"), None);
    }
}
