//! [`genai`](https://docs.rs/genai) chat calls recorded as LLM spans (feature `genai`):
//! [`exec_chat`] and [`exec_chat_stream`] call `client.exec_chat(..)` and
//! `client.exec_chat_stream(..)` as they would be called, for any provider genai speaks, and
//! record the request, the response, token usage with cached and reasoning tokens, the cost
//! and (streamed) the time to the first token, with no code of yours.
//!
//! ```no_run
//! use genai::chat::{ChatMessage, ChatRequest};
//! use prefactor::llm::genai as recorded;
//!
//! # async fn run() -> Result<(), genai::Error> {
//! let client = genai::Client::builder().build()?;
//! let request = ChatRequest::new(vec![ChatMessage::user("Capital of France?")]);
//! // Inside an agent run: an `agent:llm:genai` span, child of the current span.
//! let response = recorded::exec_chat(&client, "gpt-4o-mini", request, None).await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```
//!
//! The span type is [`SPAN_TYPE`], declared with the schemas of
//! [`llm::span_type`](crate::llm::span_type) (payload `{"inputs": Request}`, result
//! [`Response`] or error), so it never conflicts with `agent:llm` functions of your own; the
//! OTel export maps it to a `chat` span.
//!
//! What is recorded comes from genai's types, which are the same for every provider:
//! * the request: the model as asked for, the provider (`openai`, `anthropic`, `gcp.gemini`,
//!   ... from the client's bound adapter kind, the `ModelIden` or `ServiceTarget` passed, else
//!   genai's inference from the model name; bind the client with
//!   `ClientBuilder::with_adapter_kind` when a `ServiceTargetResolver` changes the adapter),
//!   the call's [`ChatOptions`] (temperature, max tokens, top-p, stop sequences, seed; those
//!   set on the client are private to genai), the system prompt and messages (text, tool calls
//!   and results, binaries by URL; inline base64 data is left out), the tools;
//! * the response: the model that answered (the provider's dated name when it reports one:
//!   the key to its price), text, tool calls, stop reason, usage.
//!
//! A stream's usage arrives with its `End` event only when genai captures it: unless the call's
//! options say otherwise, [`exec_chat_stream`] turns on `capture_usage` (for OpenAI-compatible
//! providers genai then asks for `stream_options.include_usage`); your `End` event carries the
//! usage too, the other events are unchanged. Its tool calls are those genai captures
//! (`ChatOptions::with_capture_tool_calls(true)`, as genai's own examples do).

use std::time::Instant;

use ::genai::adapter::AdapterKind;
use ::genai::chat::{
    BinarySource, ChatMessage, ChatOptions, ChatRequest, ChatResponse, ChatRole, ChatStreamEvent, ContentPart,
    MessageContent, StopReason,
};
use ::genai::{Client, Error, ModelIden, ModelSpec};
use futures_core::Stream;
use serde_json::Value;

use crate::SpanStream;
use crate::llm::message::{Message, Part, Role};
use crate::llm::recorded_call::{completed, note_first_token, open};
use crate::llm::request::Request;
use crate::llm::response::Response;
use crate::llm::span_type::{params_schema, result_schema};
use crate::llm::tool::{Tool, ToolCall};
use crate::llm::usage::Usage;

/// The span type of calls made through this adapter.
pub const SPAN_TYPE: &str = "agent:llm:genai";

prefactor_runtime::inventory::submit! {
    prefactor_runtime::StaticSpanType {
        name: SPAN_TYPE,
        params_schema,
        result_schema: Some(result_schema),
        title: Some("LLM call (genai)"),
        description: Some("A chat call through genai, to any of its providers"),
        template: Some("{{ inputs.model }}"),
        data_risk: None,
        gen_ai_operation: Some("chat"),
        file: file!(),
        line: line!(),
        column: column!(),
    }
}

/// `client.exec_chat(model, chat_req, options)`, recorded as an [`SPAN_TYPE`] span of the
/// current run: `complete` with the [`Response`] (priced), `failed` with the error,
/// `cancelled` if the future is dropped. Outside a run the call is made all the same,
/// unrecorded.
///
/// # Errors
/// The client's own error, unchanged.
pub async fn exec_chat(
    client: &Client,
    model: impl Into<ModelSpec>,
    chat_req: ChatRequest,
    options: Option<&ChatOptions>,
) -> Result<ChatResponse, Error> {
    let model = model.into();
    let span = open(SPAN_TYPE, &request_of(client, &model, &chat_req, options, false));
    match client.exec_chat(model, chat_req, options).await {
        Ok(response) => {
            span.finish(completed(&response_of(&response)));
            Ok(response)
        }
        Err(error) => {
            span.finish(failed(&error));
            Err(error)
        }
    }
}

/// genai's `ChatStreamResponse` with the stream recorded: `stream` yields genai's events
/// unchanged.
#[derive(Debug)]
#[non_exhaustive]
pub struct ChatStreamResponse<S> {
    /// The events, as genai's `ChatStream` yields them.
    pub stream: S,
    /// The model used for the request (after genai's mapping).
    pub model_iden: ModelIden,
}

/// `client.exec_chat_stream(model, chat_req, options)`, recorded as an [`SPAN_TYPE`] span open
/// as long as the stream (see [`SpanStream`]): its events are folded into one [`Response`]
/// with the time to the first token (from this call to the first text, reasoning or tool-call
/// chunk), and the result also has the stream's event count and time to its first event.
/// `complete` at the end, `failed` at the first error, `cancelled` when dropped before the end.
/// Turns on `capture_usage` unless `options` set it (see the [module](self) docs).
///
/// # Errors
/// The client's own error when the stream cannot be opened (the span is then `failed`).
pub async fn exec_chat_stream(
    client: &Client,
    model: impl Into<ModelSpec>,
    chat_req: ChatRequest,
    options: Option<&ChatOptions>,
) -> Result<ChatStreamResponse<impl Stream<Item = Result<ChatStreamEvent, Error>> + Send + Unpin + 'static>, Error> {
    let model = model.into();
    let span = open(SPAN_TYPE, &request_of(client, &model, &chat_req, options, true));
    let mut options = options.cloned().unwrap_or_default();
    options.capture_usage.get_or_insert(true);
    let started = Instant::now();
    match client.exec_chat_stream(model, chat_req, Some(&options)).await {
        Ok(response) => {
            let answered = response.model_iden.model_name.to_string();
            let fold = move |recorded: &mut Response, event: &ChatStreamEvent| {
                if recorded.model.is_none() {
                    recorded.model = Some(answered.clone());
                }
                add_event(recorded, event, started);
            };
            let stream = SpanStream::new_try(span, response.stream).started_at(started).reduce(fold);
            Ok(ChatStreamResponse { stream, model_iden: response.model_iden })
        }
        Err(error) => {
            span.finish(failed(&error));
            Err(error)
        }
    }
}

/// Folds one stream event: text appended, the first text, reasoning or tool-call chunk sets the
/// time to first token, the end brings the stop reason, usage, tool calls and response id.
fn add_event(response: &mut Response, event: &ChatStreamEvent, started: Instant) {
    match event {
        ChatStreamEvent::Chunk(chunk) => {
            response.push_text(&chunk.content);
            note_first_token(response, !chunk.content.is_empty(), started);
        }
        ChatStreamEvent::ReasoningChunk(chunk) => note_first_token(response, !chunk.content.is_empty(), started),
        ChatStreamEvent::ToolCallChunk(_) => note_first_token(response, true, started),
        ChatStreamEvent::End(end) => {
            response.finish_reason = end.captured_stop_reason.as_ref().map(|reason| reason.raw().to_owned());
            response.usage = end.captured_usage.as_ref().map(usage_of);
            if let Some(content) = &end.captured_content {
                response.tool_calls = content.tool_calls().into_iter().map(tool_call_of).collect();
            }
            if response.id.is_none() {
                response.id.clone_from(&end.captured_response_id);
            }
        }
        ChatStreamEvent::Start | ChatStreamEvent::ThoughtSignatureChunk(_) | ChatStreamEvent::Heartbeat => {}
    }
}

/// The request as recorded: genai's request and the call's options, for the model as asked.
fn request_of(
    client: &Client,
    model: &ModelSpec,
    chat_req: &ChatRequest,
    options: Option<&ChatOptions>,
    streamed: bool,
) -> Request {
    let (name, kind) = match model {
        ModelSpec::Name(name) => {
            (name.to_string(), client.adapter_kind().or_else(|| AdapterKind::from_model(name).ok()))
        }
        ModelSpec::Iden(iden) => (iden.model_name.to_string(), Some(iden.adapter_kind)),
        ModelSpec::Target(target) => (target.model.model_name.to_string(), Some(target.model.adapter_kind)),
    };
    let mut request = Request::new(name);
    request.provider = kind.map(|kind| provider_name(kind).to_owned());
    request.stream = streamed;
    if let Some(options) = options {
        request.temperature = options.temperature;
        request.max_tokens = options.max_tokens.map(u64::from);
        request.top_p = options.top_p;
        request.stop_sequences.clone_from(&options.stop_sequences);
        request.seed = options.seed.and_then(|seed| i64::try_from(seed).ok());
    }
    request.messages = chat_req.system.iter().map(Message::system).collect();
    request.messages.extend(chat_req.messages.iter().map(message_of));
    request.tools = chat_req.tools.iter().flatten().map(tool_of).collect();
    request
}

/// The OpenTelemetry `gen_ai.provider.name` of an adapter: the conventions' well-known names,
/// else genai's own lower-case name.
fn provider_name(kind: AdapterKind) -> &'static str {
    match kind {
        AdapterKind::OpenAI | AdapterKind::OpenAIResp => "openai",
        AdapterKind::Anthropic => "anthropic",
        AdapterKind::Gemini | AdapterKind::GeminiIx => "gcp.gemini",
        AdapterKind::Vertex => "gcp.vertex_ai",
        AdapterKind::BedrockApi => "aws.bedrock",
        AdapterKind::Mistral => "mistral_ai",
        AdapterKind::Xai => "x_ai",
        other => other.as_lower_str(),
    }
}

fn message_of(message: &ChatMessage) -> Message {
    let role = match message.role {
        ChatRole::System => Role::System,
        ChatRole::User => Role::User,
        ChatRole::Assistant => Role::Assistant,
        ChatRole::Tool => Role::Tool,
    };
    Message::new(role, parts_of(&message.content))
}

fn parts_of(content: &MessageContent) -> Vec<Part> {
    content
        .parts()
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text(text) => Some(Part::text(text.clone())),
            ContentPart::ReasoningContent(text) => Some(Part::Reasoning { content: text.clone() }),
            ContentPart::ToolCall(call) => Some(Part::ToolCall(tool_call_of(call))),
            ContentPart::ToolResponse(response) => {
                let result =
                    serde_json::from_str(&response.content).unwrap_or_else(|_| Value::String(response.content.clone()));
                Some(Part::tool_response(response.call_id.clone(), result))
            }
            ContentPart::Binary(binary) => match &binary.source {
                BinarySource::Url(url) => Some(Part::Uri {
                    modality: modality_of(&binary.content_type).to_owned(),
                    uri: url.clone(),
                    mime_type: Some(binary.content_type.clone()),
                }),
                // Inline data can be megabytes: not telemetry.
                BinarySource::Base64(_) => None,
            },
            ContentPart::ThoughtSignature(_) | ContentPart::Custom(_) => None,
        })
        .collect()
}

/// `image`, `audio` or `video` from a media type, `document` for anything else.
fn modality_of(content_type: &str) -> &'static str {
    match content_type.split('/').next() {
        Some("image") => "image",
        Some("audio") => "audio",
        Some("video") => "video",
        _ => "document",
    }
}

fn tool_of(tool: &::genai::chat::Tool) -> Tool {
    Tool {
        kind: crate::llm::tool::ToolKind::Function,
        name: tool.name.as_str().to_owned(),
        description: tool.description.clone(),
        parameters: tool.schema.clone(),
    }
}

/// A tool call; arguments genai left as text (a stream's, unparsed) are parsed when valid JSON.
fn tool_call_of(call: &::genai::chat::ToolCall) -> ToolCall {
    let recorded = match &call.fn_arguments {
        Value::String(text) => ToolCall::from_json_text(call.fn_name.clone(), text),
        arguments => ToolCall::new(call.fn_name.clone(), arguments.clone()),
    };
    recorded.id(call.call_id.clone())
}

fn response_of(response: &ChatResponse) -> Response {
    let mut recorded = Response::text(response.content.joined_texts().unwrap_or_default());
    recorded.model = Some(response.provider_model_iden.model_name.to_string());
    recorded.id.clone_from(&response.response_id);
    recorded.tool_calls = response.content.tool_calls().into_iter().map(tool_call_of).collect();
    recorded.finish_reason = response.stop_reason.as_ref().map(StopReason::raw).map(str::to_owned);
    recorded.usage = Some(usage_of(&response.usage));
    recorded
}

/// genai's normalized usage: `prompt_tokens` and `completion_tokens` are totals (cache and
/// reasoning included, as ours), details break them down.
fn usage_of(usage: &::genai::chat::Usage) -> Usage {
    let count = |tokens: Option<i32>| tokens.and_then(|tokens| u64::try_from(tokens).ok());
    let prompt = usage.prompt_tokens_details.as_ref();
    let completion = usage.completion_tokens_details.as_ref();
    let mut recorded = Usage::new(count(usage.prompt_tokens).unwrap_or(0), count(usage.completion_tokens).unwrap_or(0));
    recorded.cache_read_input_tokens = count(prompt.and_then(|details| details.cached_tokens));
    recorded.cache_creation_input_tokens = count(prompt.and_then(|details| details.cache_creation_tokens));
    recorded.reasoning_output_tokens = count(completion.and_then(|details| details.reasoning_tokens));
    recorded
}

fn failed(error: &Error) -> crate::FinishSpan {
    crate::llm::recorded_call::failed(&error.to_string(), "genai::Error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::genai::chat::{Binary, ToolResponse};
    use serde_json::json;

    #[test]
    fn requests_keep_system_tools_calls_results_and_options() {
        let client = Client::builder().with_adapter_kind(AdapterKind::Anthropic).build().expect("a client");
        let call = ::genai::chat::ToolCall {
            call_id: "call_1".into(),
            fn_name: "get_weather".into(),
            fn_arguments: json!({"city": "Paris"}),
            thought_signatures: None,
        };
        let chat = ChatRequest::new(vec![
            ChatMessage::user(MessageContent::from_parts(vec![
                ContentPart::from_text("Look: "),
                ContentPart::Binary(Binary::from_url("image/png", "https://x/y.png", None)),
                ContentPart::Binary(Binary::from_base64("image/png", "AAAA", None)),
            ])),
            ChatMessage::assistant(MessageContent::from_tool_calls(vec![call])),
            ChatMessage::from(ToolResponse::new("call_1", "{\"temp_c\": 21}")),
        ])
        .with_system("Be brief.")
        .with_tools(vec![::genai::chat::Tool::new("get_weather").with_schema(json!({"type": "object"}))]);
        let options = ChatOptions::default().with_temperature(0.2).with_max_tokens(64).with_seed(u64::MAX);
        let request = request_of(&client, &ModelSpec::from("claude-sonnet-4-5"), &chat, Some(&options), false);

        assert_eq!((request.model.as_str(), request.provider.as_deref()), ("claude-sonnet-4-5", Some("anthropic")));
        assert_eq!((request.temperature, request.max_tokens, request.seed), (Some(0.2), Some(64), None));
        assert_eq!(request.messages[0], Message::system("Be brief."));
        assert_eq!(
            request.messages[1].parts,
            [
                Part::text("Look: "),
                Part::Uri {
                    modality: "image".into(),
                    uri: "https://x/y.png".into(),
                    mime_type: Some("image/png".into())
                }
            ],
            "inline data left out"
        );
        assert_eq!(
            request.messages[2].parts,
            [Part::ToolCall(ToolCall::new("get_weather", json!({"city": "Paris"})).id("call_1"))]
        );
        assert_eq!(request.messages[3].parts, [Part::tool_response("call_1", json!({"temp_c": 21}))]);
        assert_eq!(request.tools[0].parameters, Some(json!({"type": "object"})));
    }

    #[test]
    fn usage_counts_are_totals_and_negative_counts_are_not_trusted() {
        let usage: ::genai::chat::Usage = serde_json::from_value(json!({
            "prompt_tokens": 1200, "completion_tokens": -3,
            "prompt_tokens_details": {"cached_tokens": 1000, "cache_creation_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 7}
        }))
        .expect("genai's usage");
        let recorded = usage_of(&usage);
        assert_eq!((recorded.input_tokens, recorded.output_tokens), (1200, 0));
        assert_eq!(recorded.cache_read_input_tokens, Some(1000));
        assert_eq!(recorded.cache_creation_input_tokens, Some(100));
        assert_eq!(recorded.reasoning_output_tokens, Some(7));
    }
}
