//! `CloseReport`: what `close`/`shutdown` delivered and what was lost.

use std::fmt;

use crate::error::Error;
use crate::stats::Stats;

/// The outcome of [`Client::close`](crate::Client::close) or
/// [`Client::shutdown`](crate::Client::shutdown).
///
/// `close` returns `Ok(report)` when nothing was lost, and `Err(Error::TelemetryLost(report))`
/// otherwise, so `?` never hides lost telemetry.
///
/// ```
/// use prefactor_runtime::CloseReport;
///
/// let report = CloseReport::default();
/// assert!(report.is_clean());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CloseReport {
    /// The counters at the end.
    pub stats: Stats,
    /// Operations delivered (same as `stats.sent`).
    pub delivered: u64,
    /// Operations that failed permanently or ran out of retries.
    pub failed: u64,
    /// Operations dropped (queue full, after close, after an auth failure).
    pub dropped: u64,
    /// Operations still queued or in flight when the deadline passed.
    pub undelivered: u64,
    /// Everything that never reached the server: `failed + dropped + undelivered`.
    pub lost: u64,
    /// Whether the deadline passed before the queue drained.
    pub timed_out: bool,
    /// The first failure, with the server's message.
    pub first_error: Option<Error>,
    /// Set when the token was rejected (401/403) and the client stopped sending.
    pub auth_failure: Option<Error>,
}

impl CloseReport {
    /// True when everything enqueued was delivered.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && !self.timed_out && self.auth_failure.is_none()
    }
}

impl fmt::Display for CloseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "telemetry lost: {} of {} operations ({} failed, {} dropped, {} undelivered{})",
            self.lost,
            self.stats.enqueued + self.stats.dropped,
            self.failed,
            self.dropped,
            self.undelivered,
            if self.timed_out { ", deadline passed" } else { "" }
        )?;
        if let Some(err) = &self.auth_failure {
            write!(f, "; sending stopped: {err}")?;
        } else if let Some(err) = &self.first_error {
            write!(f, "; first error: {err}")?;
        }
        Ok(())
    }
}
