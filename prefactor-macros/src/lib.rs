//! Procedural macros of [prefactor](https://docs.rs/prefactor): `#[agent]`, `#[span]` and
//! `#[derive(Payload)]`. Use them through the `prefactor` crate, which documents them and
//! provides the `::prefactor::__private` items the expansions call.
//!
//! Pipeline (one file each): option parsing (`args`, `span_options`, `agent_options`) → the
//! function model (`model`, `types`) → validation (`valid`) → expansion (`expand_span`,
//! `expand_agent`, `capture`, `register`, `body`), with `fallback` on any error.
#![forbid(unsafe_code)]

mod agent_options;
mod args;
mod body;
mod capture;
mod errors;
mod expand_agent;
mod expand_span;
mod fallback;
mod model;
mod payload_derive;
mod redact;
mod register;
mod schema_name;
mod span_options;
mod stream_shape;
mod suggest;
mod types;
mod valid;

use errors::Errors;
use model::{FnModel, ItemFnTokens};
use proc_macro::TokenStream;

/// Records each call of the function as a span of the current agent instance.
///
/// * **payload** — a JSON object of the arguments by name (serde); `self` is never captured.
///   An argument whose type is not `Serialize` is a compile error on that argument.
/// * **result payload** — the return value itself when it serializes to a JSON object, else
///   `{"output": value}`; for `Result`, the `Ok` value (status `complete`) or
///   `{"error": {"message", "type"}}` (status `failed`).
/// * **status** — `complete`; `failed` on `Err` or panic; `cancelled` when an async call's
///   future is dropped before it completes. The function's behaviour, signature, errors and
///   panics are unchanged.
/// * **parent** — the span current when the call starts (async: at first poll), kept across
///   `.await` by polling the body inside the span's context.
/// * **schemas** — the params schema (from the argument types) and the result schema (from the
///   return type) are derived with schemars and registered at compile time.
/// * **streams** — on a function returning a stream (`impl Stream<Item = T>`,
///   `Pin<Box<dyn Stream<Item = T> ..>>` or `BoxStream<'_, T>`) the span lasts as long as the
///   stream: `complete` at its end, `failed` at the first `Err` item (for `Result` items) or a
///   panicking poll, `cancelled` when dropped before its end. Its result is
///   `{"stream": {"items": N, "time_to_first_item_ms": T}}`, merged with the value
///   `reduce = path` folds from the items (`fn(&mut Acc, &Item)`, `Acc: Default + Serialize`;
///   for `Result` items it gets the `Ok` values); no item is kept without it. The span is the
///   current context while the stream is polled, wherever it is polled.
///
/// Options: `schema = "ns:kind"` (required), `title`, `description`, `template`, `name`,
/// `skip(a, b)`, `skip_all`, `fields(key = expr, ...)`, `skip_ret`, `err(Display)` (default) /
/// `err(Debug)`, `data_risk = path::to::function`, a `fn() -> prefactor::DataRisk` that
/// declares what the span type may do and which data it carries (called once, when the client
/// starts), `kind = "chat"`, the span type's OpenTelemetry GenAI operation (`chat`,
/// `text_completion`, `generate_content`, `embeddings`, `execute_tool`, `invoke_agent`,
/// `create_agent`), which names and types its spans in the OTel export (feature `otel`; without
/// it the operation follows from the schema name, `agent:llm` being `chat`), and
/// `reduce = path::to::function` for streams (above).
///
/// `redact(api_key, "messages[*].content", "headers[\"x-api-key\"]")` records values as
/// `"[REDACTED]"`: a bare argument name is never read at all; a path (an argument name, then
/// `.key`, `[*]`, `[index]` or `["quoted key"]`) is redacted by the client's worker thread,
/// before the payload is spooled or sent, and the registered schema accepts `"[REDACTED]"`
/// there. An unknown argument or a malformed path is a compile error on it. Secret-looking
/// values (API keys, bearer tokens, passwords, private keys) are also scrubbed by default,
/// redacted or not (see `prefactor::ConfigBuilder::scrub_secrets`).
///
/// A call made outside any `#[agent]` function, or before a client is installed, runs
/// unrecorded (one warning is logged, once).
///
/// Arguments whose type depends on a generic parameter, `impl Trait` or `Self` (and bindings of
/// destructuring patterns) are captured, with a permissive schema (`{}`); a type that does not
/// implement `JsonSchema` also gets `{}` (derive [`Payload`](derive.Payload.html) for a precise one).
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Message { role: String, text: String }
///
/// #[prefactor::span(schema = "agent:llm", title = "LLM call", redact(api_key, "messages[*].text"), fields(model = "m-1"))]
/// fn complete(messages: &[Message], temperature: f32, api_key: &str) -> Result<String, std::io::Error> {
///     let _ = (temperature, api_key);
///     Ok(format!("{} messages", messages.len()))
/// }
///
/// // Without an installed client (or outside an agent) the function simply runs.
/// let reply = complete(&[Message { role: "user".into(), text: "hi".into() }], 0.2, "secret");
/// assert_eq!(reply.unwrap(), "1 messages");
/// ```
#[proc_macro_attribute]
pub fn span(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match expand_span_attr(attr.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => fallback::original_with_errors(item, &error).into(),
    }
}

/// Runs each call of the function as an agent instance.
///
/// The call registers an instance (with every `#[span]` schema of the program) and starts it,
/// runs the body with the instance as the current context (`prefactor::current_instance()`),
/// then finishes it as `complete`, `failed` (an `Err` return or a panic) or `cancelled` (an
/// async call's future dropped before completion).
///
/// Options: `id` (else `PREFACTOR_AGENT_ID`, else the client's configured agent id), `name`
/// (default: the function's name), `version` (default: the crate's version), `description`,
/// `purpose` (`"live"`, `"smoke_test"` or `"eval"`), and `stop_on_terminate` for an `async fn`
/// returning `Result<_, E>` with `E: From<prefactor::Terminated>`: when the platform terminates
/// the instance the body is dropped and the call returns `Err(E::from(Terminated { .. }))`.
///
/// ```
/// #[derive(Debug)]
/// enum RunError { Stopped(prefactor::Terminated) }
///
/// impl From<prefactor::Terminated> for RunError {
///     fn from(terminated: prefactor::Terminated) -> Self { RunError::Stopped(terminated) }
/// }
///
/// #[prefactor::agent(name = "support-bot", version = "1.2.0", stop_on_terminate)]
/// async fn answer(question: String) -> Result<String, RunError> {
///     prefactor::check_terminated().map_err(RunError::from)?;
///     Ok(format!("you asked: {question}"))
/// }
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// assert_eq!(runtime.block_on(answer("why?".into())).unwrap(), "you asked: why?");
/// ```
#[proc_macro_attribute]
pub fn agent(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match expand_agent_attr(attr.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => fallback::original_with_errors(item, &error).into(),
    }
}

/// Gives a struct or enum a JSON schema for span payloads and results.
///
/// The schema follows serde's attributes (rename, skip, flatten, tagging). Its title and
/// description come from `#[payload(title = "..", description = "..")]` or from the doc
/// comment (first paragraph: title, the rest: description). Derive `Serialize` as well.
/// [`prefactor::schema_for`](https://docs.rs/prefactor) returns the schema.
///
/// ```
/// /// A search request.
/// ///
/// /// Sent by the planner.
/// #[derive(serde::Serialize, prefactor::Payload)]
/// struct Search {
///     #[serde(rename = "q")]
///     query: String,
/// }
///
/// let schema = prefactor::schema_for::<Search>();
/// assert_eq!(schema["title"], "A search request.");
/// assert_eq!(schema["description"], "Sent by the planner.");
/// assert!(schema["properties"].get("q").is_some());
/// ```
#[proc_macro_derive(Payload, attributes(payload))]
pub fn derive_payload(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    match payload_derive::derive_payload(input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn parse_fn(item: proc_macro2::TokenStream, attribute: &str) -> syn::Result<FnModel> {
    let item: ItemFnTokens = syn::parse2(item.clone()).map_err(|error| not_a_function(&item, attribute, error))?;
    Ok(FnModel::new(item))
}

/// A clearer error than "expected `fn`" when the attribute sits on a struct, impl, etc.
fn not_a_function(item: &proc_macro2::TokenStream, attribute: &str, error: syn::Error) -> syn::Error {
    let is_fn_like = syn::parse2::<syn::Item>(item.clone()).map_or(true, |parsed| matches!(parsed, syn::Item::Fn(_)));
    if is_fn_like {
        return error;
    }
    let span = item
        .clone()
        .into_iter()
        .find(|token| !matches!(token, proc_macro2::TokenTree::Punct(_) | proc_macro2::TokenTree::Group(_)));
    let span = span.map_or_else(proc_macro2::Span::call_site, |token| token.span());
    syn::Error::new(span, format!("`#[prefactor::{attribute}]` can only be applied to functions and methods"))
}

fn expand_span_attr(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = Errors::default();
    let options = span_options::SpanOptions::parse(attr, &mut errors);
    let model = match parse_fn(item, "span") {
        Ok(model) => Some(model),
        Err(error) => {
            errors.push(error);
            None
        }
    };
    if let (Some(model), Some(options)) = (&model, &options) {
        valid::check_fn_shape(model, "span", &mut errors);
        valid::check_span_options(model, options, &mut errors);
    }
    match (model, options) {
        (Some(model), Some(options)) => errors.finish(expand_span::expand_span(&model, &options)),
        _ => Err(errors.into_error()),
    }
}

fn expand_agent_attr(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = Errors::default();
    let options = agent_options::AgentOptions::parse(attr, &mut errors);
    let model = parse_fn(item, "agent")?;
    valid::check_fn_shape(&model, "agent", &mut errors);
    expand_agent::check_agent(&model, &options, &mut errors);
    errors.finish(())?;
    Ok(expand_agent::expand_agent(&model, &options))
}
