//! What the LLM client adapters share: the span of one call, opened with its [`Request`] and
//! ended with its [`Response`] or error, whichever client made it.

use std::time::Instant;

use crate::llm::request::Request;
use crate::llm::response::Response;
use crate::{FinishSpan, FinishStatus, Payload, SpanGuard};

/// A `span_type` span started in the current run with `request` as `{"inputs": ..}`, cancelled
/// if dropped before it is finished (a call whose future is dropped did not complete).
pub(crate) fn open(span_type: &str, request: &Request) -> SpanGuard {
    let payload = request.to_payload().map_err(|error| tracing::debug!(%error, "LLM request not recorded")).ok();
    let mut span = prefactor_runtime::start_in_current_run(span_type, payload);
    span.set_drop_status(FinishStatus::Cancelled);
    span
}

/// `complete` with the response (priced when serialized).
pub(crate) fn completed(response: &Response) -> FinishSpan {
    let result = response.to_payload().unwrap_or_else(|error| {
        tracing::debug!(%error, "LLM response not recorded");
        Payload::empty()
    });
    FinishSpan::complete().result(result)
}

/// `failed` with `{"error": {"message", "type"}}`.
pub(crate) fn failed(message: &str, type_name: &str) -> FinishSpan {
    let end = FinishSpan::failed();
    match prefactor_runtime::error_payload(message, type_name) {
        Some(payload) => end.result(payload),
        None => end,
    }
}

/// Sets the time to first token the first time a streamed piece `produced` output.
pub(crate) fn note_first_token(response: &mut Response, produced: bool, started: Instant) {
    if produced && response.time_to_first_token_ms.is_none() {
        response.time_to_first_token_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    }
}
