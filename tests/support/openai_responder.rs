//! An OpenAI-compatible chat-completions endpoint on 127.0.0.1 for tests: real HTTP, answers in
//! the `OpenAI` wire format (a JSON `chat.completion`, or `chat.completion.chunk` server-sent
//! events ending with `[DONE]`), made from the request:
//! * tools offered and no tool result yet: a `get_weather` call (`finish_reason: tool_calls`);
//! * otherwise the text `You said: <last user text>`, streamed a word per event, the first
//!   after `FIRST_TOKEN_DELAY`;
//! * model `missing-model`: a 404 with `OpenAI`'s error body;
//! * model `slow-model`: the answer after `SLOW_ANSWER`.
//!
//! Usage: 1200 prompt tokens of which 1000 cached, one completion token per word (and the
//! last streamed event carries it only when `stream_options.include_usage` is asked).
#![allow(dead_code)]

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt as _;
use futures_util::stream;
use serde_json::{Value, json};

pub const FIRST_TOKEN_DELAY: Duration = Duration::from_millis(30);
/// How long model `slow-model` takes to answer.
pub const SLOW_ANSWER: Duration = Duration::from_secs(2);
const PROMPT_TOKENS: u64 = 1_200;
const CACHED_TOKENS: u64 = 1_000;

/// The endpoint, served on its own thread until dropped.
pub struct OpenAiResponder {
    base_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OpenAiResponder {
    pub fn start() -> OpenAiResponder {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("bound"));
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = Router::new().route("/v1/chat/completions", post(chat_completions));
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.await;
                    })
                    .await
                    .expect("the responder serves");
            });
        });
        OpenAiResponder { base_url, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT/v1`, the API base for a client.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

impl Drop for OpenAiResponder {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn chat_completions(Json(request): Json<Value>) -> Response {
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    if model == "missing-model" {
        let error = json!({"error": {"message": "The model `missing-model` does not exist", "type": "invalid_request_error", "param": null, "code": "model_not_found"}});
        return (StatusCode::NOT_FOUND, Json(error)).into_response();
    }
    if model == "slow-model" {
        // Longer than any test waits: the client gives up first.
        tokio::time::sleep(SLOW_ANSWER).await;
    }
    let answer = Answer::to(&request);
    if request["stream"].as_bool() == Some(true) {
        let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
        stream_answer(&answer, &model, include_usage).into_response()
    } else {
        Json(answer.completion(&model)).into_response()
    }
}

/// What the model answers.
enum Answer {
    Text(Vec<String>),
    WeatherCall,
}

impl Answer {
    fn to(request: &Value) -> Answer {
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let has_tool_result = messages.iter().any(|m| m["role"] == "tool");
        if request["tools"].as_array().is_some_and(|tools| !tools.is_empty()) && !has_tool_result {
            return Answer::WeatherCall;
        }
        let last_user = messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str());
        let text = format!("You said: {}", last_user.unwrap_or_default());
        Answer::Text(text.split_inclusive(' ').map(str::to_owned).collect())
    }

    fn completion_tokens(&self) -> u64 {
        match self {
            Answer::Text(words) => words.len() as u64,
            Answer::WeatherCall => 12,
        }
    }

    fn completion(&self, model: &str) -> Value {
        let (message, finish_reason) = match self {
            Answer::Text(words) => (json!({"role": "assistant", "content": words.concat(), "refusal": null}), "stop"),
            Answer::WeatherCall => (
                json!({"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
                "tool_calls",
            ),
        };
        json!({
            "id": "chatcmpl-test-1", "object": "chat.completion", "created": 1_764_900_000,
            "model": answered_model(model),
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": null}],
            "usage": usage(self.completion_tokens()),
        })
    }
}

/// The dated model that answers, as `OpenAI` reports it.
fn answered_model(model: &str) -> String {
    format!("{model}-2024-08-06")
}

fn usage(completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": PROMPT_TOKENS, "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

fn chunk(model: &str, choices: Value, usage: Option<Value>) -> Value {
    let mut chunk = json!({
        "id": "chatcmpl-test-2", "object": "chat.completion.chunk", "created": 1_764_900_000,
        "model": answered_model(model),
    });
    chunk["choices"] = choices;
    if let Some(usage) = usage {
        chunk["usage"] = usage;
    }
    chunk
}

fn stream_answer(
    answer: &Answer,
    model: &str,
    include_usage: bool,
) -> Sse<impl futures_core::Stream<Item = Result<Event, Infallible>> + use<>> {
    let words = match answer {
        Answer::Text(words) => words.clone(),
        Answer::WeatherCall => Vec::new(),
    };
    let mut events = vec![chunk(
        model,
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        None,
    )];
    events.extend(
        words
            .iter()
            .map(|word| chunk(model, json!([{"index": 0, "delta": {"content": word}, "finish_reason": null}]), None)),
    );
    events.push(chunk(model, json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]), None));
    if include_usage {
        events.push(chunk(model, json!([]), Some(usage(answer.completion_tokens()))));
    }
    let data: Vec<String> = events.iter().map(Value::to_string).chain(["[DONE]".to_owned()]).collect();
    let events = stream::iter(data.into_iter().enumerate()).then(|(index, data)| async move {
        // The model "thinks" before its first word, then streams quickly.
        let pause = if index == 1 { FIRST_TOKEN_DELAY } else { Duration::from_millis(2) };
        tokio::time::sleep(pause).await;
        Ok(Event::default().data(data))
    });
    Sse::new(events)
}
