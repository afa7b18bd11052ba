//! What the LLM client adapter examples record: a chat that asks for the `get_weather` tool
//! (`gpt-4o`), then a streamed answer to "sunny and 21 degrees" (`gpt-4o-mini`), both against
//! the tests' OpenAI-compatible responder.

use serde_json::json;

use super::recorded_run::{RecordedRun, result_field};

/// Asserts the run and its two `span_type` spans, and the example's `answer`.
pub fn assert_weather_calls(run: &RecordedRun, span_type: &str, answer: &str) {
    assert_eq!(run.status(), "complete", "{}", run.render());
    let calls = run.named(span_type);
    assert_eq!(calls.len(), 2, "{}", run.render());
    assert_eq!(result_field(calls[0], "finish_reason"), Some(&json!("tool_calls")));
    assert_eq!(result_field(calls[0], "usage").map(|u| &u["cost"]["priced_as"]), Some(&json!("gpt-4o")));
    assert_eq!(result_field(calls[1], "content"), Some(&json!("You said: sunny and 21 degrees")));
    assert!(result_field(calls[1], "time_to_first_token_ms").and_then(serde_json::Value::as_f64).is_some());
    assert!(answer.starts_with("1 tool call(s)"), "{answer}");
}
