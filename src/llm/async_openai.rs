//! [`async-openai`](https://docs.rs/async-openai) chat completions recorded as LLM spans
//! (feature `async-openai`): [`create`] and [`create_stream`] call the client as it would be
//! called, and record the request, the response, token usage with cached and reasoning tokens,
//! the cost and (streamed) the time to the first token, with no code of yours.
//!
//! ```no_run
//! use async_openai::types::chat::{ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs};
//! use prefactor::llm::async_openai as recorded;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = async_openai::Client::new();
//! let request = CreateChatCompletionRequestArgs::default()
//!     .model("gpt-4o-mini")
//!     .messages([ChatCompletionRequestUserMessage::from("Capital of France?").into()])
//!     .build()?;
//! // Inside an agent run: an `agent:llm:openai` span, child of the current span.
//! let response = recorded::create(&client.chat(), request).await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```
//!
//! The span type is [`SPAN_TYPE`], declared with the schemas of [`llm::span_type`](crate::llm::span_type)
//! (payload `{"inputs": Request}`, result [`Response`] or error), so it never conflicts with
//! `agent:llm` functions of your own; the OTel export maps it to a `chat` span. Requests and
//! responses are read from their JSON ([`llm::openai`](crate::llm::openai)), so every field
//! async-openai sends is seen, whatever its Rust types. A streamed response has usage only when
//! the request asks for it (`stream_options.include_usage`); the span then records it with
//! its cost.

use std::time::Instant;

use ::async_openai::Chat;
use ::async_openai::config::Config;
use ::async_openai::error::OpenAIError;
use ::async_openai::types::chat::{
    CreateChatCompletionRequest, CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
};
use futures_core::Stream;
use serde::Serialize;
use serde_json::Value;

use crate::llm::openai::{add_chunk_json, request_from_json, response_from_json};
use crate::llm::recorded_call::{completed, note_first_token, open};
use crate::llm::response::Response;
use crate::llm::span_type::{params_schema, result_schema};
use crate::{FinishSpan, SpanGuard, SpanStream};

/// The span type of calls made through this adapter.
pub const SPAN_TYPE: &str = "agent:llm:openai";

prefactor_runtime::inventory::submit! {
    prefactor_runtime::StaticSpanType {
        name: SPAN_TYPE,
        params_schema,
        result_schema: Some(result_schema),
        title: Some("LLM call (OpenAI)"),
        description: Some("A chat completion through async-openai"),
        template: Some("{{ inputs.model }}"),
        data_risk: None,
        gen_ai_operation: Some("chat"),
        file: file!(),
        line: line!(),
        column: column!(),
    }
}

/// `chat.create(request)`, recorded as an [`SPAN_TYPE`] span of the current run: `complete`
/// with the [`Response`] (priced), `failed` with the error, `cancelled` if the future is
/// dropped. Outside a run the call is made all the same, unrecorded.
///
/// # Errors
/// The client's own error, unchanged.
pub async fn create<C: Config>(
    chat: &Chat<'_, C>,
    request: CreateChatCompletionRequest,
) -> Result<CreateChatCompletionResponse, OpenAIError> {
    let span = open_span(&request, false);
    match chat.create(request).await {
        Ok(response) => {
            let recorded = response_from_json(&json_of(&response));
            span.finish(completed(&recorded));
            Ok(response)
        }
        Err(error) => {
            span.finish(failed(&error));
            Err(error)
        }
    }
}

/// `chat.create_stream(request)`, recorded as an [`SPAN_TYPE`] span open as long as the
/// stream (see [`SpanStream`]): its chunks are folded into one [`Response`] with the time to
/// the first token (from this call to the first chunk with content or a tool call), and the
/// result also has the stream's chunk count and time to its first chunk. `complete` at the
/// end, `failed` at the first error, `cancelled` when dropped before the end.
///
/// # Errors
/// The client's own error when the stream cannot be opened (the span is then `failed`).
pub async fn create_stream<C: Config>(
    chat: &Chat<'_, C>,
    request: CreateChatCompletionRequest,
) -> Result<
    impl Stream<Item = Result<CreateChatCompletionStreamResponse, OpenAIError>> + Send + Unpin + 'static,
    OpenAIError,
> {
    let span = open_span(&request, true);
    let started = Instant::now();
    match chat.create_stream(request).await {
        Ok(stream) => {
            let fold = move |response: &mut Response, chunk: &CreateChatCompletionStreamResponse| {
                add_chunk(response, chunk, started);
            };
            Ok(SpanStream::new_try(span, stream).started_at(started).reduce(fold))
        }
        Err(error) => {
            span.finish(failed(&error));
            Err(error)
        }
    }
}

/// Folds a chunk; the first one that carries text or a tool call sets the time to first token.
fn add_chunk(response: &mut Response, chunk: &CreateChatCompletionStreamResponse, started: Instant) {
    let before = (response.content.len(), response.tool_calls.len());
    add_chunk_json(response, &json_of(chunk));
    let produced = (response.content.len(), response.tool_calls.len()) != before;
    note_first_token(response, produced, started);
}

/// The span, started in the current run with the request as `{"inputs": ..}`.
fn open_span(request: &CreateChatCompletionRequest, streamed: bool) -> SpanGuard {
    let mut recorded = request_from_json(&json_of(request));
    recorded.stream |= streamed;
    open(SPAN_TYPE, &recorded)
}

fn failed(error: &OpenAIError) -> FinishSpan {
    crate::llm::recorded_call::failed(&error.to_string(), "async_openai::error::OpenAIError")
}

/// The JSON async-openai sends or received (its types are plain serde types).
fn json_of<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
