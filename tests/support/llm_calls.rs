//! What an LLM client adapter records for the calls every adapter test makes against the
//! OpenAI-compatible responder (`openai_responder.rs`), in this order: a chat that asks for a
//! tool (`gpt-4o`, a system and a user message, `max_tokens` 256), a stream of "hello there"
//! with usage (`gpt-4o-mini`), a stream dropped after its first two items, a call to
//! `missing-model` (404) and one to `slow-model` given up on.

use serde_json::{Value, json};

use super::openai_responder::FIRST_TOKEN_DELAY;

fn close(actual: &Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|actual| (actual - expected).abs() < 1e-12)
}

/// Asserts the five spans (in start order) of `span_type`; `stream_items` is how many items
/// the client's complete stream has.
pub fn assert_five_calls(spans: &[Value], span_type: &str, stream_items: u64) {
    assert_eq!(spans.len(), 5, "{spans:#?}");
    assert!(spans.iter().all(|span| span["schema_name"] == span_type), "{spans:#?}");
    let [tool, streamed, cut, failed, abandoned] = [&spans[0], &spans[1], &spans[2], &spans[3], &spans[4]];

    assert_eq!(tool["status"], "complete");
    let inputs = &tool["payload"]["inputs"];
    assert_eq!((inputs["model"].as_str(), inputs["provider"].as_str()), (Some("gpt-4o"), Some("openai")));
    assert_eq!(inputs["max_tokens"], 256);
    assert_eq!(inputs["messages"][0]["role"], "system");
    assert_eq!(inputs["messages"][1]["parts"][0]["content"], "Weather in Paris?");
    assert_eq!(inputs["tools"][0]["name"], "get_weather");
    let result = &tool["result_payload"];
    assert_eq!(result["model"], "gpt-4o-2024-08-06");
    assert_eq!(result["tool_calls"][0], json!({"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}));
    assert_eq!(result["ai"]["finishReason"]["unified"], "tool-calls");
    assert_eq!(result["usage"]["cache_read_input_tokens"], 1_000);
    // gpt-4o: 200 fresh input tokens at $2.50/M, 1000 cached at $1.25/M, 12 output at $10/M.
    assert!(close(&result["usage"]["cost"]["total"], (200.0 * 2.5 + 1000.0 * 1.25 + 12.0 * 10.0) / 1e6), "{result}");

    assert_eq!(streamed["status"], "complete");
    assert_eq!(streamed["payload"]["inputs"]["stream"], true);
    let result = &streamed["result_payload"];
    assert_eq!(result["content"], "You said: hello there");
    assert_eq!(result["finish_reason"], "stop");
    assert_eq!(result["usage"]["output_tokens"], 4, "a token per word");
    assert_eq!(result["usage"]["cost"]["priced_as"], "gpt-4o-mini");
    let ttft = result["time_to_first_token_ms"].as_f64().expect("a time to first token");
    assert!(ttft >= FIRST_TOKEN_DELAY.as_secs_f64() * 1000.0, "{ttft}");
    assert_eq!(result["stream"]["items"], stream_items);

    assert_eq!(cut["status"], "cancelled");
    assert_eq!(cut["result_payload"]["stream"]["items"], 2);
    assert_eq!(cut["result_payload"]["content"], "You ");

    assert_eq!(failed["status"], "failed");
    let message = failed["result_payload"]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("does not exist"), "{message}");
    assert_eq!(failed["payload"]["inputs"]["model"], "missing-model");

    assert_eq!(abandoned["status"], "cancelled");
    assert_eq!(abandoned["payload"]["inputs"]["model"], "slow-model");
}
