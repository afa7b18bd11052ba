//! `FinishSpan`: how a span ends (status, result payload, end time), for
//! [`SpanGuard::finish`](crate::SpanGuard::finish) and
//! [`AgentInstanceHandle::finish_span`](crate::AgentInstanceHandle::finish_span).

use std::time::SystemTime;

use prefactor_protocol::FinishStatus;

use crate::record::payload::Payload;

/// The end of a span: its status, an optional result payload and, when the span ended
/// earlier than now (work measured elsewhere, replayed from a log), its end time.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use prefactor_runtime::{FinishSpan, FinishStatus, Payload};
///
/// let end = FinishSpan::failed()
///     .result(Payload::from(serde_json::json!({"error": "timeout"})))
///     .ended_at(SystemTime::now() - Duration::from_millis(5));
/// assert_eq!(end.status(), FinishStatus::Failed);
/// assert_eq!(FinishSpan::default().status(), FinishStatus::Complete);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a FinishSpan does nothing until passed to `finish` or `finish_span`"]
pub struct FinishSpan {
    pub(crate) status: FinishStatus,
    pub(crate) result: Option<Payload>,
    pub(crate) ended_at: Option<SystemTime>,
}

impl Default for FinishSpan {
    fn default() -> Self {
        FinishSpan::complete()
    }
}

impl FinishSpan {
    /// Ends the span with `status`.
    #[inline]
    pub fn new(status: FinishStatus) -> Self {
        FinishSpan { status, result: None, ended_at: None }
    }

    /// Ends the span as `complete` (the default).
    #[inline]
    pub fn complete() -> Self {
        FinishSpan::new(FinishStatus::Complete)
    }

    /// Ends the span as `failed`.
    #[inline]
    pub fn failed() -> Self {
        FinishSpan::new(FinishStatus::Failed)
    }

    /// Ends the span as `cancelled`.
    #[inline]
    pub fn cancelled() -> Self {
        FinishSpan::new(FinishStatus::Cancelled)
    }

    /// The result payload (merged into one set earlier with
    /// [`SpanGuard::set_result`](crate::SpanGuard::set_result); its keys win).
    #[inline]
    pub fn result(mut self, result: Payload) -> Self {
        self.result = Some(result);
        self
    }

    /// When the span ended (default: when it is finished). Sent as given, with microsecond
    /// resolution; keep it after the span's start.
    pub fn ended_at(mut self, at: SystemTime) -> Self {
        self.ended_at = Some(at);
        self
    }

    /// The status the span ends with.
    pub fn status(&self) -> FinishStatus {
        self.status
    }
}
