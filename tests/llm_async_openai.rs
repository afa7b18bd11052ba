//! The `async-openai` adapter (feature `async-openai`): the real async-openai client talks to an
//! OpenAI-compatible endpoint on 127.0.0.1 (JSON and server-sent events in the `OpenAI` wire
//! format), and its calls are read back from the local server as `agent:llm:openai` spans:
//! request, response, usage with cached tokens, cost, time to first token; a failed call, an
//! abandoned one, a stream dropped early.
#![deny(clippy::pedantic)]

mod common;
#[path = "support/llm_calls.rs"]
mod llm_calls;
#[path = "support/openai_responder.rs"]
mod openai_responder;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::CreateChatCompletionRequest;
use common::{current_instance_id, finished_spans_of, harness, rejected_requests};
use futures_util::StreamExt as _;
use openai_responder::OpenAiResponder;
use prefactor::InstanceId;
use prefactor::llm::async_openai::{SPAN_TYPE, create, create_stream};
use serde_json::{Value, json};

fn request(body: &Value) -> CreateChatCompletionRequest {
    serde_json::from_value(body.clone()).expect("a valid chat-completions request")
}

fn weather_request() -> CreateChatCompletionRequest {
    request(&json!({
        "model": "gpt-4o", "temperature": 0.2, "max_completion_tokens": 256,
        "messages": [{"role": "system", "content": "You are a weather bot."}, {"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    }))
}

fn streamed_request(text: &str) -> CreateChatCompletionRequest {
    request(&json!({
        "model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": text}]
    }))
}

struct Seen {
    run: InstanceId,
    tool_call: Option<String>,
    streamed_text: String,
    failure: Option<String>,
}

#[prefactor::agent(name = "openai-adapter")]
async fn run(client: &Client<OpenAIConfig>) -> Seen {
    let chat = client.chat();
    let answered = create(&chat, weather_request()).await.expect("the tool call");
    let tool_call = serde_json::to_value(&answered.choices[0].message.tool_calls).ok().map(|calls| calls.to_string());

    let mut streamed_text = String::new();
    let mut chunks = create_stream(&chat, streamed_request("hello there")).await.expect("the stream opens");
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("a chunk");
        if let Some(text) = chunk.choices.first().and_then(|choice| choice.delta.content.clone()) {
            streamed_text.push_str(&text);
        }
    }

    // The agent stops reading after two chunks: the span is cancelled with what came.
    let mut cut = create_stream(&chat, streamed_request("one two three four five")).await.expect("the stream opens");
    let _ = cut.next().await;
    let _ = cut.next().await;
    drop(cut);

    let failure =
        create(&chat, request(&json!({"model": "missing-model", "messages": [{"role": "user", "content": "hi"}]})))
            .await
            .err()
            .map(|error| error.to_string());
    // The agent gives up waiting: the call's future is dropped, its span cancelled.
    let slow = request(&json!({"model": "slow-model", "messages": [{"role": "user", "content": "hi"}]}));
    let gave_up = tokio::time::timeout(std::time::Duration::from_millis(50), create(&chat, slow)).await.is_err();
    assert!(gave_up, "the slow call outlived the timeout");
    Seen { run: current_instance_id(), tool_call, streamed_text, failure }
}

#[test]
fn chat_completions_are_recorded_as_llm_spans() {
    let _ = harness();
    let responder = OpenAiResponder::start();
    let client = Client::with_config(OpenAIConfig::new().with_api_base(responder.base_url()).with_api_key("sk-test"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let seen = runtime.block_on(run(&client));

    // The application got the client's answers unchanged.
    assert!(seen.tool_call.as_deref().is_some_and(|calls| calls.contains("get_weather")), "{:?}", seen.tool_call);
    assert_eq!(seen.streamed_text, "You said: hello there");
    assert!(seen.failure.as_deref().is_some_and(|e| e.contains("does not exist")), "{:?}", seen.failure);

    // Items of the complete stream: role, four words, finish, usage.
    llm_calls::assert_five_calls(&finished_spans_of(seen.run, 5), SPAN_TYPE, 7);

    assert_eq!(rejected_requests(), Vec::<String>::new(), "the declared schemas accept every span");
}
