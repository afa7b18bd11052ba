//! async-openai calls recorded with no code of yours (feature `async-openai`): a chat
//! completion that asks for a tool, and a streamed one, each an `agent:llm:openai` span with
//! the request, the response, token usage (cached tokens included), the cost and, streamed,
//! the time to the first token.
//!
//! ```sh
//! cargo run --example llm_async_openai --features async-openai
//! ```
//!
//! The client is the real async-openai client; it talks to a stand-in OpenAI-compatible
//! endpoint on 127.0.0.1 (the one the tests use: JSON and server-sent events in the OpenAI wire
//! format), so the example needs no key. With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set,
//! the run goes to that Prefactor API; otherwise to the local server, in-process.

#[path = "support/backend.rs"]
mod backend;
#[cfg(test)]
#[path = "support/llm_calls.rs"]
mod llm_calls;
#[path = "../tests/support/openai_responder.rs"]
mod openai_responder;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::CreateChatCompletionRequest;
use futures_util::StreamExt as _;
use prefactor::llm::async_openai::{create, create_stream};
use serde_json::json;

#[prefactor::agent(name = "openai-weather", version = "1.0.0")]
async fn forecast(
    client: &Client<OpenAIConfig>,
) -> Result<(String, prefactor::InstanceId), Box<dyn std::error::Error>> {
    let chat = client.chat();
    let ask: CreateChatCompletionRequest = serde_json::from_value(json!({
        "model": "gpt-4o", "temperature": 0.2,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    }))?;
    let asked = create(&chat, ask).await?;
    let calls = asked.choices.first().and_then(|choice| choice.message.tool_calls.as_ref()).map_or(0, Vec::len);

    let stream: CreateChatCompletionRequest = serde_json::from_value(json!({
        "model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "sunny and 21 degrees"}]
    }))?;
    let mut text = String::new();
    let mut chunks = create_stream(&chat, stream).await?;
    while let Some(chunk) = chunks.next().await {
        if let Some(delta) = chunk?.choices.first().and_then(|choice| choice.delta.content.clone()) {
            text.push_str(&delta);
        }
    }
    let run = prefactor::current_instance().ok_or("inside the run")?.id();
    Ok((format!("{calls} tool call(s), then: {text}"), run))
}

struct Outcome {
    answer: String,
    run: recorded_run::RecordedRun,
    backend: backend::Backend,
}

async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let responder = openai_responder::OpenAiResponder::start();
    let client = Client::with_config(OpenAIConfig::new().with_api_base(responder.base_url()).with_api_key("sk-local"));
    let backend = backend::Backend::from_env_or_embedded("prefactor-llm-async-openai.db")?;
    let guard = prefactor::init(backend.config()?.build()?).await?;
    let (answer, run_id) = forecast(&client).await?;
    guard.close().await?;
    let run = backend.fetch_run_async(&run_id).await?;
    Ok(Outcome { answer, run, backend })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let Outcome { answer, run, backend } = run().await?;
    println!("answer: {answer}\n");
    backend.print_trace(&run);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_calls_are_recorded_with_usage_cost_and_ttft() {
        let outcome = super::run().await.expect("the example runs");
        let span_type = prefactor::llm::async_openai::SPAN_TYPE;
        super::llm_calls::assert_weather_calls(&outcome.run, span_type, &outcome.answer);
    }
}
