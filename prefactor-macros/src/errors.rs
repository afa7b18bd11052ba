//! An accumulator of spanned errors, so one macro call reports every problem at once.

use proc_macro2::Span;
use std::fmt::Display;

/// Collects `syn::Error`s; `finish` combines them into one (each keeps its own span).
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(existing) => existing.combine(error),
            None => self.combined = Some(error),
        }
    }

    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn at_tokens(&mut self, tokens: impl quote::ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// The combined error (a generic one if, unexpectedly, nothing was reported).
    pub(crate) fn into_error(self) -> syn::Error {
        self.combined.unwrap_or_else(|| syn::Error::new(Span::call_site(), "invalid attribute"))
    }

    /// `Ok(value)` when nothing was reported, else every error combined.
    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.combined {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}
