//! Finish reasons of every provider in one vocabulary: the Vercel AI SDK's unified values,
//! which the Prefactor dashboard groups calls by.

/// The unified value of a provider's finish reason: `stop`, `length`, `tool-calls`,
/// `content-filter`, `error` or `other`.
///
/// ```
/// use prefactor::llm::unified_finish_reason;
///
/// assert_eq!(unified_finish_reason("end_turn"), "stop"); // Anthropic
/// assert_eq!(unified_finish_reason("MAX_TOKENS"), "length"); // Gemini
/// assert_eq!(unified_finish_reason("tool_calls"), "tool-calls"); // OpenAI
/// assert_eq!(unified_finish_reason("pause_turn"), "other");
/// ```
#[must_use]
pub fn unified_finish_reason(raw: &str) -> &'static str {
    match raw.to_ascii_lowercase().as_str() {
        "stop" | "end_turn" | "stop_sequence" | "eos" | "finish_reason_unspecified" => "stop",
        "length" | "max_tokens" | "model_length" | "model_context_window_exceeded" => "length",
        "tool_calls" | "tool_use" | "function_call" | "tool-calls" | "tool_call" => "tool-calls",
        "content_filter" | "content-filter" | "safety" | "recitation" | "refusal" | "blocklist"
        | "prohibited_content" | "spii" => "content-filter",
        "error" | "malformed_function_call" => "error",
        _ => "other",
    }
}
