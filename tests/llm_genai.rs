//! The `genai` adapter (feature `genai`): the real genai client, its `OpenAI` adapter pointed by a
//! `ServiceTargetResolver` at an OpenAI-compatible endpoint on 127.0.0.1 (JSON and server-sent
//! events), and its calls read back from the local server as `agent:llm:genai` spans: request,
//! response, usage with cached tokens, cost, time to first token; a failed call, an abandoned
//! one, a stream dropped early.
#![deny(clippy::pedantic)]

mod common;
#[path = "support/llm_calls.rs"]
mod llm_calls;
#[path = "support/openai_responder.rs"]
mod openai_responder;

use common::{current_instance_id, finished_spans_of, harness, rejected_requests};
use futures_util::StreamExt as _;
use genai::adapter::AdapterKind;
use genai::chat::{ChatMessage, ChatOptions, ChatRequest, ChatStreamEvent, Tool};
use genai::resolver::{AuthData, Endpoint, ServiceTargetResolver};
use genai::{Client, ServiceTarget};
use openai_responder::OpenAiResponder;
use prefactor::InstanceId;
use prefactor::llm::genai::{SPAN_TYPE, exec_chat, exec_chat_stream};
use serde_json::json;

/// A genai client whose every model is served by `base_url` through genai's `OpenAI` adapter.
fn client(base_url: &str) -> Client {
    let endpoint = Endpoint::from_owned(format!("{base_url}/"));
    let resolver = ServiceTargetResolver::from_resolver_fn(
        move |target: ServiceTarget| -> Result<ServiceTarget, genai::resolver::Error> {
            Ok(ServiceTarget {
                endpoint: endpoint.clone(),
                auth: AuthData::from_single("sk-test"),
                model: target.model,
            })
        },
    );
    Client::builder()
        .with_adapter_kind(AdapterKind::OpenAI)
        .with_service_target_resolver(resolver)
        .build()
        .expect("a genai client")
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user(text)])
}

struct Seen {
    run: InstanceId,
    tool_calls: usize,
    streamed_text: String,
    failure: Option<String>,
}

#[prefactor::agent(name = "genai-adapter")]
async fn run(client: &Client) -> Seen {
    let weather = ask("Weather in Paris?")
        .with_system("You are a weather bot.")
        .with_tools(vec![Tool::new("get_weather").with_schema(json!({"type": "object"}))]);
    let options = ChatOptions::default().with_temperature(0.2).with_max_tokens(256);
    let answered = exec_chat(client, "gpt-4o", weather, Some(&options)).await.expect("the tool call");
    let tool_calls = answered.tool_calls().len();

    let mut streamed_text = String::new();
    let mut events = exec_chat_stream(client, "gpt-4o-mini", ask("hello there"), None).await.expect("the stream opens");
    while let Some(event) = events.stream.next().await {
        if let ChatStreamEvent::Chunk(chunk) = event.expect("an event") {
            streamed_text.push_str(&chunk.content);
        }
    }

    // The agent stops reading after two events (the start and a word): the span is cancelled
    // with what came.
    let mut cut =
        exec_chat_stream(client, "gpt-4o-mini", ask("one two three four five"), None).await.expect("the stream opens");
    let _ = cut.stream.next().await;
    let _ = cut.stream.next().await;
    drop(cut);

    let failure = exec_chat(client, "missing-model", ask("hi"), None).await.err().map(|error| error.to_string());
    // The agent gives up waiting: the call's future is dropped, its span cancelled.
    let slow = exec_chat(client, "slow-model", ask("hi"), None);
    let gave_up = tokio::time::timeout(std::time::Duration::from_millis(50), slow).await.is_err();
    assert!(gave_up, "the slow call outlived the timeout");
    Seen { run: current_instance_id(), tool_calls, streamed_text, failure }
}

#[test]
fn genai_chats_are_recorded_as_llm_spans() {
    let _ = harness();
    let responder = OpenAiResponder::start();
    let client = client(responder.base_url());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let seen = runtime.block_on(run(&client));

    // The application got genai's answers unchanged.
    assert_eq!(seen.tool_calls, 1);
    assert_eq!(seen.streamed_text, "You said: hello there");
    assert!(seen.failure.as_deref().is_some_and(|e| e.contains("does not exist")), "{:?}", seen.failure);

    // Items of the complete stream: start, four words, end.
    let spans = finished_spans_of(seen.run, 5);
    llm_calls::assert_five_calls(&spans, SPAN_TYPE, 6);
    // The call's options are its parameters.
    assert_eq!(spans[0]["payload"]["inputs"]["temperature"], 0.2);

    assert_eq!(rejected_requests(), Vec::<String>::new(), "the declared schemas accept every span");
}
