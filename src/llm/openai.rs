//! The OpenAI chat-completions wire format (also spoken by vLLM, Ollama, LiteLLM, OpenRouter,
//! Groq, Together...) read into [`Request`] and [`Response`]: from the JSON, so it works with
//! any client, typed or not, and whatever its Rust types look like.
//!
//! ```
//! use prefactor::llm::openai;
//! use serde_json::json;
//!
//! let request = openai::request_from_json(&json!({
//!     "model": "gpt-4o-mini", "temperature": 0, "max_completion_tokens": 64,
//!     "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
//! }));
//! assert_eq!((request.model.as_str(), request.max_tokens), ("gpt-4o-mini", Some(64)));
//! assert_eq!(request.messages[0].role, prefactor::llm::Role::System);
//!
//! let response = openai::response_from_json(&json!({
//!     "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
//!     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
//!     "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
//!               "prompt_tokens_details": {"cached_tokens": 0}}
//! }));
//! assert_eq!(response.content, "Hello!");
//! assert_eq!(response.usage.unwrap().input_tokens, 12);
//! ```

use serde_json::Value;

use crate::llm::message::{Message, Part, Role};
use crate::llm::request::Request;
use crate::llm::response::Response;
use crate::llm::tool::{Tool, ToolCall};
use crate::llm::usage::Usage;

/// The provider name recorded for requests read from this format.
const PROVIDER: &str = "openai";

/// A chat-completions request body as a [`Request`] (provider `openai`). Unknown fields are
/// ignored; content parts other than text and images are left out.
#[must_use]
pub fn request_from_json(body: &Value) -> Request {
    let mut request = Request::new(text_at(body, "model").unwrap_or_default()).provider(PROVIDER);
    request.temperature = body.get("temperature").and_then(Value::as_f64);
    request.top_p = body.get("top_p").and_then(Value::as_f64);
    request.max_tokens = ["max_completion_tokens", "max_tokens"].iter().find_map(|key| body.get(*key)?.as_u64());
    request.frequency_penalty = body.get("frequency_penalty").and_then(Value::as_f64);
    request.presence_penalty = body.get("presence_penalty").and_then(Value::as_f64);
    request.seed = body.get("seed").and_then(Value::as_i64);
    request.stop_sequences = match body.get("stop") {
        Some(Value::String(stop)) => vec![stop.clone()],
        Some(Value::Array(stops)) => stops.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    request.stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    request.messages = array_at(body, "messages").iter().map(message_from_json).collect();
    request.tools = array_at(body, "tools").iter().filter_map(tool_from_json).collect();
    request
}

/// A chat-completions response body as a [`Response`]: its first choice (the one asked for
/// unless `n` > 1), usage with cached and reasoning tokens.
#[must_use]
pub fn response_from_json(body: &Value) -> Response {
    let mut response = Response::default();
    add_chunk_json(&mut response, body);
    if let Some(message) = first_choice(body).and_then(|choice| choice.get("message")) {
        response.content = content_text(message.get("content"));
        response.tool_calls = array_at(message, "tool_calls").iter().filter_map(tool_call_from_json).collect();
    }
    response
}

/// Folds one streamed chunk (`chat.completion.chunk`) into `response`: text deltas appended,
/// tool-call deltas joined by index (their argument text parsed once the finish reason
/// arrives), model, id, finish reason and usage (the last chunk's, sent with
/// `stream_options.include_usage`) taken as they come.
///
/// ```
/// use prefactor::llm::{Response, openai};
/// use serde_json::json;
///
/// let mut response = Response::default();
/// for chunk in [
///     json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
///     json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
///     json!({"id": "c1", "model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
/// ] {
///     openai::add_chunk_json(&mut response, &chunk);
/// }
/// assert_eq!((response.content.as_str(), response.finish_reason.as_deref()), ("Hello", Some("stop")));
/// assert_eq!(response.usage.unwrap().output_tokens, 2);
/// ```
pub fn add_chunk_json(response: &mut Response, chunk: &Value) {
    if response.id.is_none() {
        response.id = text_at(chunk, "id");
    }
    if response.model.is_none() {
        response.model = text_at(chunk, "model");
    }
    if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
        response.usage = Some(usage_from_json(usage));
    }
    let Some(choice) = first_choice(chunk) else { return };
    if let Some(delta) = choice.get("delta") {
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            response.push_text(text);
        }
        for call in array_at(delta, "tool_calls") {
            add_tool_call_delta(response, call);
        }
    }
    if let Some(reason) = text_at(choice, "finish_reason") {
        response.finish_reason = Some(reason);
        parse_streamed_arguments(response);
    }
}

/// OpenAI's usage: `prompt_tokens` (cached ones included, as ours), `completion_tokens`
/// (reasoning included), and their details.
fn usage_from_json(usage: &Value) -> Usage {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let detail = |details: &str, key: &str| usage.get(details)?.get(key)?.as_u64();
    let mut parsed = Usage::new(count("prompt_tokens"), count("completion_tokens"));
    parsed.cache_read_input_tokens = detail("prompt_tokens_details", "cached_tokens");
    parsed.reasoning_output_tokens = detail("completion_tokens_details", "reasoning_tokens");
    parsed
}

fn message_from_json(message: &Value) -> Message {
    let role = match message.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Role::System,
        Some("assistant") => Role::Assistant,
        Some("tool" | "function") => Role::Tool,
        _ => Role::User,
    };
    let mut parts = Vec::new();
    if role == Role::Tool {
        let id = text_at(message, "tool_call_id");
        parts.push(Part::ToolCallResponse { id, response: Value::String(content_text(message.get("content"))) });
    } else {
        parts.extend(content_parts(message.get("content")));
    }
    parts.extend(array_at(message, "tool_calls").iter().filter_map(tool_call_from_json).map(Part::ToolCall));
    let mut parsed = Message::new(role, parts);
    parsed.name = text_at(message, "name");
    parsed
}

/// `content` as parts: a string, or a list of `text` and `image_url` parts.
fn content_parts(content: Option<&Value>) -> Vec<Part> {
    match content {
        Some(Value::String(text)) => vec![Part::text(text.clone())],
        Some(Value::Array(parts)) => parts.iter().filter_map(content_part).collect(),
        _ => Vec::new(),
    }
}

fn content_part(part: &Value) -> Option<Part> {
    match part.get("type").and_then(Value::as_str)? {
        "text" => Some(Part::text(text_at(part, "text")?)),
        "image_url" => {
            let uri = part.get("image_url")?.get("url")?.as_str()?.to_owned();
            Some(Part::Uri { modality: "image".to_owned(), uri, mime_type: None })
        }
        _ => None,
    }
}

/// The text of a `content` that is a string or a list of text parts.
fn content_text(content: Option<&Value>) -> String {
    content_parts(content).iter().filter_map(Part::as_text).collect()
}

fn tool_from_json(tool: &Value) -> Option<Tool> {
    let function = tool.get("function")?;
    let mut parsed = Tool::function(text_at(function, "name")?);
    parsed.description = text_at(function, "description");
    parsed.parameters = function.get("parameters").cloned();
    Some(parsed)
}

fn tool_call_from_json(call: &Value) -> Option<ToolCall> {
    let function = call.get("function")?;
    let arguments = function.get("arguments").and_then(Value::as_str).unwrap_or_default();
    let mut parsed = ToolCall::from_json_text(text_at(function, "name")?, arguments);
    parsed.id = text_at(call, "id");
    Some(parsed)
}

/// A streamed tool call's piece: the first piece of an index opens the call (id, name), the
/// others append to its argument text.
fn add_tool_call_delta(response: &mut Response, delta: &Value) {
    let index = delta.get("index").and_then(Value::as_u64).and_then(|i| usize::try_from(i).ok()).unwrap_or(0);
    let function = delta.get("function");
    let piece = function.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or_default();
    if index >= response.tool_calls.len() {
        // Indexes come in order; a gap (a broken stream) is not filled with invented calls.
        if index > response.tool_calls.len() {
            return;
        }
        let name = function.and_then(|f| text_at(f, "name")).unwrap_or_default();
        let mut call = ToolCall::new(name, Value::String(String::new()));
        call.id = text_at(delta, "id");
        response.tool_calls.push(call);
    }
    if let Some(Value::String(arguments)) = response.tool_calls.get_mut(index).map(|call| &mut call.arguments) {
        arguments.push_str(piece);
    }
}

/// Once a streamed response is finished, its tool calls' argument texts become JSON.
fn parse_streamed_arguments(response: &mut Response) {
    for call in &mut response.tool_calls {
        if let Value::String(text) = &call.arguments
            && let Ok(parsed) = serde_json::from_str::<Value>(text)
        {
            call.arguments = parsed;
        }
    }
}

fn first_choice(body: &Value) -> Option<&Value> {
    let choices = body.get("choices")?.as_array()?;
    choices.iter().find(|choice| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
}

fn text_at(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn array_at<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_exchanges_read_both_ways() {
        let request = request_from_json(&json!({
            "model": "gpt-4o", "stop": "END", "seed": 4,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Look: "}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "21 °C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        }));
        assert_eq!(request.stop_sequences, ["END"]);
        assert_eq!(
            request.messages[0].parts[1],
            Part::Uri { modality: "image".into(), uri: "https://x/y.png".into(), mime_type: None }
        );
        assert_eq!(
            request.messages[1].parts,
            [Part::ToolCall(ToolCall::new("get_weather", json!({"city": "Paris"})).id("call_1"))]
        );
        assert_eq!(request.messages[2].parts, [Part::tool_response("call_1", json!("21 °C"))]);
        assert_eq!(request.tools[0].parameters, Some(json!({"type": "object"})));
    }

    #[test]
    fn streamed_tool_calls_join_their_pieces_and_parse_at_the_end() {
        let mut response = Response::default();
        let delta = |calls: Value, finish: Value| json!({"choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": finish}]});
        add_chunk_json(
            &mut response,
            &delta(
                json!([{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{\"a\""}}]),
                Value::Null,
            ),
        );
        add_chunk_json(&mut response, &delta(json!([{"index": 0, "function": {"arguments": ":1}"}}]), Value::Null));
        add_chunk_json(
            &mut response,
            &delta(json!([{"index": 5, "function": {"arguments": "x"}}]), json!("tool_calls")),
        );
        assert_eq!(response.tool_calls, [ToolCall::new("f", json!({"a": 1})).id("call_1")]);
        assert_eq!(response.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn hostile_shapes_give_empty_fields_not_panics() {
        for body in [
            json!(null),
            json!([]),
            json!({"choices": "x", "usage": 3, "messages": {}}),
            json!({"choices": [{"delta": 1}]}),
        ] {
            let _ = request_from_json(&body);
            let mut response = response_from_json(&body);
            add_chunk_json(&mut response, &body);
        }
        let usage = usage_from_json(&json!({"prompt_tokens": -1, "completion_tokens": 1e300}));
        assert_eq!((usage.input_tokens, usage.output_tokens), (0, 0));
    }
}
