//! Cross-checks between the options and the function, all reported together.

use crate::errors::Errors;
use crate::model::FnModel;
use crate::span_options::SpanOptions;
use crate::suggest::closest;
use std::collections::BTreeSet;

/// Checks that apply to any function a prefactor attribute is put on.
pub(crate) fn check_fn_shape(model: &FnModel, attribute: &str, errors: &mut Errors) {
    let sig = &model.item.sig;
    if let Some(constness) = &sig.constness {
        errors.at(constness.span, format!("`#[prefactor::{attribute}]` cannot be used on a `const fn`"));
    }
    if let Some(variadic) = &sig.variadic {
        errors.at_tokens(variadic, format!("`#[prefactor::{attribute}]` cannot be used on a variadic function"));
    }
}

/// Checks `skip(...)` and `fields(...)` against the function's arguments.
pub(crate) fn check_span_options(model: &FnModel, options: &SpanOptions, errors: &mut Errors) {
    let arg_names: Vec<&str> = model.args.iter().map(|arg| arg.name.as_str()).collect();
    let mut seen = BTreeSet::new();
    for ident in &options.skip {
        let name = ident.to_string();
        if !seen.insert(name.clone()) {
            errors.at(ident.span(), format!("`{name}` is listed twice in `skip`"));
            continue;
        }
        if name == "self" {
            if !model.has_receiver {
                errors.at(ident.span(), "this function has no `self` argument");
            }
            continue;
        }
        if !arg_names.contains(&name.as_str()) {
            let mut message = format!("cannot skip `{name}`: the function has no argument with that name");
            if let Some(hint) = closest(&name, &arg_names) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            }
            errors.at(ident.span(), message);
        }
    }
    if let Some(reduce) = &options.reduce
        && model.stream.is_none()
    {
        let message = if model.item.sig.asyncness.is_some() {
            "`reduce` needs a function that returns a stream; on an `async fn` the span covers the future: \
             return `impl Stream<Item = T>` from a plain `fn`, or wrap the stream with `prefactor::stream(..)`"
        } else {
            "`reduce` needs a function that returns a stream: `impl Stream<Item = T>`, \
             `Pin<Box<dyn Stream<Item = T>>>` or `BoxStream<'_, T>`"
        };
        errors.at_tokens(reduce, message);
    }
    let mut field_keys = BTreeSet::new();
    for field in &options.fields {
        if !field_keys.insert(field.key.clone()) {
            errors.at(field.key_span, format!("duplicate field `{}`", field.key));
        }
    }
    check_redact(options, &arg_names, errors);
}

/// Checks `redact(...)`: well-formed paths, each starting at a recorded argument.
fn check_redact(options: &SpanOptions, arg_names: &[&str], errors: &mut Errors) {
    let mut whole = BTreeSet::new();
    for target in &options.redact {
        let redacted = match target.resolve() {
            Ok(redacted) => redacted,
            Err(message) => {
                errors.at(target.span(), message);
                continue;
            }
        };
        let name = redacted.arg.as_str();
        let is_field = options.fields.iter().any(|field| field.key == name);
        let problem = if !arg_names.contains(&name) || is_field {
            let mut message = format!("cannot redact `{name}`: the function has no argument with that name");
            if is_field {
                message = format!(
                    "cannot redact `{name}`: it is a `fields(...)` entry; wrap its value in `prefactor::Secret` instead"
                );
            } else if let Some(hint) = closest(name, arg_names) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            }
            Some(message)
        } else if options.skip_all.is_some() || options.skip.iter().any(|ident| *ident == name) {
            Some(format!("`{name}` is skipped, so it is never recorded: nothing to redact"))
        } else if redacted.steps.is_empty() && !whole.insert(name.to_owned()) {
            Some(format!("`{name}` is listed twice in `redact`"))
        } else {
            None
        };
        if let Some(message) = problem {
            errors.at(redacted.span, message);
        }
    }
}
