//! The span type of LLM calls for the explicit API, with the schemas `#[span]` derives for
//! `fn call(inputs: &Request) -> Result<Response, E>`.

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::__private::{ParamsSchema, result_result_schema};
use crate::SpanType;
use crate::llm::request::Request;
use crate::llm::response::Response;

/// A span type named `name` (e.g. `agent:llm`) whose payload is `{"inputs": Request}`
/// ([`Request::to_payload`]) and whose result is a [`Response`] or a failure's
/// `{"error": {"message", "type"}}`: the schemas `#[span]` derives for
/// `fn call(inputs: &Request) -> Result<Response, E>`, for a [`SchemaRegistry`](crate::SchemaRegistry)
/// of the explicit API.
///
/// ```
/// let llm = prefactor::llm::span_type("agent:llm").title("LLM call").template("{{ inputs.model }}");
/// let mut registry = prefactor::SchemaRegistry::new();
/// registry.register_type(llm)?;
/// assert!(registry.contains_type("agent:llm"));
/// # Ok::<(), prefactor::Error>(())
/// ```
#[must_use]
pub fn span_type(name: impl Into<String>) -> SpanType {
    SpanType::new(name, params_schema()).result_schema(result_schema())
}

/// The payload schema: `{"inputs": Request}`.
pub(crate) fn params_schema() -> serde_json::Value {
    let mut params = ParamsSchema::new();
    params.property("inputs", schema::<Request>);
    params.finish()
}

/// The result schema: a [`Response`] or a failure's error.
pub(crate) fn result_schema() -> serde_json::Value {
    result_result_schema(Some(schema::<Response>))
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}
