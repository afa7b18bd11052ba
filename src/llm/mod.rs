//! LLM calls as first-class data: the payload and result types of `agent:llm` spans, and
//! their cost.
//!
//! * [`Request`]: model, provider, sampling parameters, [`Message`]s of typed [`Part`]s,
//!   [`Tool`]s.
//! * [`Response`]: the answer's text and [`ToolCall`]s, finish reason, [`Usage`] (input,
//!   output, cache-read, cache-write and reasoning tokens), time to first token, and the
//!   [`Cost`] computed from the [`PriceTable`].
//!
//! Their schemas are derived like any `#[derive(Payload)]` type's, so the platform validates
//! what is sent. Their JSON follows the OpenTelemetry GenAI conventions (the OTel export reads
//! model, parameters, usage and finish reasons from them), and puts the model and finish reason
//! where the Prefactor dashboard reads them: `payload.inputs.model` when the request is the
//! argument `inputs`, and `result_payload.ai.finishReason`.
//!
//! ```standalone_crate
//! use prefactor::llm::{Message, Request, Response, Usage};
//! use prefactor::testing::Capture;
//! use prefactor::{agent, span};
//!
//! #[derive(Debug)]
//! struct ModelError;
//! impl std::fmt::Display for ModelError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("model unavailable") }
//! }
//!
//! #[span(schema = "agent:llm", template = "{{ inputs.model }}")]
//! fn call(inputs: &Request) -> Result<Response, ModelError> {
//!     // ... your client's call; then what it answered:
//!     Ok(Response::text("Paris.").model("gpt-4o-mini-2024-07-18").finish_reason("stop").usage(Usage::new(1_000, 5)))
//! }
//!
//! #[agent(name = "geography")]
//! fn ask(question: &str) -> Result<String, ModelError> {
//!     let request = Request::new("gpt-4o-mini").message(Message::user(question));
//!     Ok(call(&request)?.content)
//! }
//!
//! let capture = Capture::new()?;
//! capture.run(|| ask("Capital of France?")).unwrap();
//! let llm = capture.last_run_of("geography").unwrap().span("agent:llm").cloned().unwrap();
//! assert_eq!(llm.payload["inputs"]["model"], "gpt-4o-mini");
//! assert_eq!(llm.result_at("/usage/cost/priced_as").unwrap(), "gpt-4o-mini");
//! assert_eq!(llm.result_at("/ai/finishReason/unified").unwrap(), "stop");
//! # Ok::<(), prefactor::Error>(())
//! ```
//!
//! The cost is computed when the [`Response`] is recorded (serialized on the thread that
//! finishes the span): one lookup in the process's [`price_table`] and a few multiplications,
//! about 0.7 µs per response (`cargo bench --bench llm_cost`, `BENCHMARKS.md`), next to a model
//! call of hundreds of milliseconds; no thread hop, and the recorded result is final.
//! Extend the table with [`add_price`] for custom, fine-tuned and self-hosted models, or
//! replace it with [`set_price_table`].

#[cfg(feature = "async-openai")]
pub mod async_openai;
mod builtin_prices;
mod finish_reason;
#[cfg(feature = "genai")]
pub mod genai;
mod message;
mod model_name;
pub mod openai;
mod price_table;
#[cfg(any(feature = "async-openai", feature = "genai"))]
mod recorded_call;
mod request;
mod response;
mod span_type;
mod tool;
mod usage;

pub use finish_reason::unified_finish_reason;
pub use message::{Message, Part, Role};
pub use price_table::{ModelPrice, PriceTable, add_price, price_table, set_price_table};
pub use request::Request;
pub use response::Response;
pub use span_type::span_type;
pub use tool::{Tool, ToolCall, ToolKind};
pub use usage::{Cost, Usage};
