//! `CloseReport`: what `close`/`shutdown` delivered and what was lost.

use std::fmt;

use crate::report::error::Error;
use crate::report::stats::Stats;
use crate::report::unattached;

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
#[non_exhaustive]
pub struct CloseReport {
    /// The counters at the end.
    pub stats: Stats,
    /// Operations delivered (same as `stats.sent`).
    pub delivered: u64,
    /// Of those, operations confirmed by their idempotency key after an attempt that got no
    /// answer (same as `stats.confirmed_after_unknown`).
    pub confirmed_after_unknown: u64,
    /// Operations the server refused with a permanent answer, or not sent because what they
    /// need was refused (see `failure_reasons`).
    pub failed: u64,
    /// Operations dropped (queue full, after close, after an auth failure).
    pub dropped: u64,
    /// Operations not sent, or sent and refused for now (5xx, 429), when the deadline passed:
    /// not on the server.
    pub undelivered: u64,
    /// Operations whose last attempt got no answer, or still in flight, when the deadline
    /// passed: they may or may not be on the server.
    pub unknown: u64,
    /// Requests left in the disk spool, sent by the next client started with the same
    /// `spool_dir` (not lost: not counted in `lost`).
    pub left_in_spool: u64,
    /// Everything not confirmed delivered: `failed + dropped + undelivered + unknown`.
    pub lost: u64,
    /// The distinct reasons of the permanent failures (the server's message, or what was
    /// refused first), with how many operations each (at most 16; later ones are counted
    /// under the last entry, "other reasons").
    pub failure_reasons: Vec<(String, u64)>,
    /// Whether the deadline passed before the queue drained.
    pub timed_out: bool,
    /// The first failure, with the server's message.
    pub first_error: Option<Error>,
    /// Set when the token was rejected (401/403) and the client stopped sending.
    pub auth_failure: Option<Error>,
    /// Spans opened outside any agent run, by span type (name order): not recorded, usually
    /// because work moved to another task or thread without its context (`tokio::spawn`
    /// instead of `prefactor::spawn`, say). Their total is `stats.unattached`.
    pub unattached: Vec<(String, u64)>,
}

impl CloseReport {
    /// True when nothing was lost: everything enqueued was delivered, or (after a deadline
    /// passed with the spool on) written to the spool for the next client.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.auth_failure.is_none() && self.unattached.is_empty()
    }
}

impl fmt::Display for CloseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lost == 0 && self.auth_failure.is_none() && !self.unattached.is_empty() {
            return f.write_str(&unattached::describe(&self.unattached));
        }
        write!(
            f,
            "telemetry lost: {} of {} operations ({} failed, {} dropped, {} undelivered, {} unknown{})",
            self.lost,
            self.stats.enqueued + self.stats.dropped,
            self.failed,
            self.dropped,
            self.undelivered,
            self.unknown,
            if self.timed_out { ", deadline passed" } else { "" }
        )?;
        if let Some(err) = &self.auth_failure {
            write!(f, "; sending stopped: {err}")?;
        } else if let Some(err) = &self.first_error {
            write!(f, "; first error: {err}")?;
        }
        if !self.unattached.is_empty() {
            write!(f, "; {}", unattached::describe(&self.unattached))?;
        }
        Ok(())
    }
}
