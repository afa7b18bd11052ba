//! genai calls recorded with no code of yours (feature `genai`): a chat that asks for a tool,
//! and a streamed one, each an `agent:llm:genai` span with the request, the response, token
//! usage (cached tokens included), the cost and, streamed, the time to the first token.
//!
//! ```sh
//! cargo run --example llm_genai --features genai
//! ```
//!
//! The client is the real genai client with its OpenAI adapter; a `ServiceTargetResolver`
//! points it at a stand-in OpenAI-compatible endpoint on 127.0.0.1 (the one the tests use), so
//! the example needs no key. With `PREFACTOR_API_URL` and `PREFACTOR_API_TOKEN` set, the run
//! goes to that Prefactor API; otherwise to the local server, in-process.

#[path = "support/backend.rs"]
mod backend;
#[cfg(test)]
#[path = "support/llm_calls.rs"]
mod llm_calls;
#[path = "../tests/support/openai_responder.rs"]
mod openai_responder;
#[path = "support/recorded_run.rs"]
mod recorded_run;

use futures_util::StreamExt as _;
use genai::adapter::AdapterKind;
use genai::chat::{ChatMessage, ChatRequest, ChatStreamEvent, Tool};
use genai::resolver::{AuthData, Endpoint, ServiceTargetResolver};
use genai::{Client, ServiceTarget};
use prefactor::llm::genai::{exec_chat, exec_chat_stream};

#[prefactor::agent(name = "genai-weather", version = "1.0.0")]
async fn forecast(client: &Client) -> Result<(String, prefactor::InstanceId), Box<dyn std::error::Error>> {
    let ask = ChatRequest::new(vec![ChatMessage::user("Weather in Paris?")])
        .with_tools(vec![Tool::new("get_weather").with_schema(serde_json::json!({"type": "object"}))]);
    let calls = exec_chat(client, "gpt-4o", ask, None).await?.tool_calls().len();

    let mut text = String::new();
    let said = ChatRequest::new(vec![ChatMessage::user("sunny and 21 degrees")]);
    let mut events = exec_chat_stream(client, "gpt-4o-mini", said, None).await?;
    while let Some(event) = events.stream.next().await {
        if let ChatStreamEvent::Chunk(chunk) = event? {
            text.push_str(&chunk.content);
        }
    }
    let run = prefactor::current_instance().ok_or("inside the run")?.id();
    Ok((format!("{calls} tool call(s), then: {text}"), run))
}

/// genai with every model served by `base_url` through its OpenAI adapter.
fn client(base_url: &str) -> Result<Client, genai::Error> {
    let endpoint = Endpoint::from_owned(format!("{base_url}/"));
    let resolver = ServiceTargetResolver::from_resolver_fn(
        move |target: ServiceTarget| -> Result<ServiceTarget, genai::resolver::Error> {
            Ok(ServiceTarget {
                endpoint: endpoint.clone(),
                auth: AuthData::from_single("sk-local"),
                model: target.model,
            })
        },
    );
    Client::builder().with_adapter_kind(AdapterKind::OpenAI).with_service_target_resolver(resolver).build()
}

struct Outcome {
    answer: String,
    run: recorded_run::RecordedRun,
    backend: backend::Backend,
}

async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let responder = openai_responder::OpenAiResponder::start();
    let client = client(responder.base_url())?;
    let backend = backend::Backend::from_env_or_embedded("prefactor-llm-genai.db")?;
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
        let span_type = prefactor::llm::genai::SPAN_TYPE;
        super::llm_calls::assert_weather_calls(&outcome.run, span_type, &outcome.answer);
    }
}
