//! `Shared`: the state a client's handles and its worker both see: the configuration, the
//! counters, the auth latch and first error, the token check, unattached spans, and the
//! instances by id (for the worker's termination updates).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::config::Config;
use crate::delivery::instance_state::InstanceState;
use crate::delivery::token_state::TokenCheckState;
use crate::lock::lock;
use crate::record::ids::InstanceId;
use crate::report::close_report::CloseReport;
use crate::report::error::Error;
use crate::report::stats::{Counters, Stats};
use crate::report::unattached::UnattachedSpans;

/// State shared between the callers and the worker.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    pub(crate) latched: AtomicBool,
    pub(crate) auth_failure: OnceLock<Error>,
    pub(crate) first_error: Mutex<Option<Error>>,
    pub(crate) closed: AtomicBool,
    pub(crate) warned_full: AtomicBool,
    /// The background token check (`delivery/token_check.rs`).
    pub(crate) token_check: TokenCheckState,
    /// Spans opened outside any agent run (`report/unattached.rs`).
    pub(crate) unattached: UnattachedSpans,
    /// Instances by id, for handles made from an id and for the worker's termination updates.
    pub(crate) instances: Mutex<HashMap<InstanceId, Weak<InstanceState>>>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Shared {
        Shared {
            config,
            counters: Counters::default(),
            latched: AtomicBool::new(false),
            auth_failure: OnceLock::new(),
            first_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            warned_full: AtomicBool::new(false),
            token_check: TokenCheckState::default(),
            unattached: UnattachedSpans::default(),
            instances: Mutex::new(HashMap::new()),
        }
    }

    /// The live state of an instance this client knows.
    pub(crate) fn instance(&self, id: InstanceId) -> Option<Arc<InstanceState>> {
        lock(&self.instances).get(&id).and_then(Weak::upgrade)
    }

    pub(crate) fn is_latched(&self) -> bool {
        self.latched.load(Ordering::Acquire)
    }

    /// Stops all sending after a 401/403 (the token will not become valid by retrying).
    pub(crate) fn latch(&self, error: Error) {
        if self.auth_failure.set(error.clone()).is_ok() {
            tracing::error!(error = %error, "prefactor: the API token was rejected; telemetry is disabled for this client");
        }
        self.latched.store(true, Ordering::Release);
    }

    pub(crate) fn warn_full(&self) {
        if !self.warned_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                capacity = self.config.queue_capacity(),
                "prefactor: queue full, dropping operations (counted in stats().dropped)"
            );
        }
    }

    pub(crate) fn record_error(&self, error: &Error) {
        let mut first = lock(&self.first_error);
        if first.is_none() {
            *first = Some(error.clone());
        }
    }

    /// The close report given how many operations were enqueued and how many of them reached
    /// a final state.
    pub(crate) fn report(&self, enqueued: u64, settled: u64, timed_out: bool) -> CloseReport {
        let stats = self.stats(enqueued);
        let undelivered = stats.enqueued.saturating_sub(settled);
        CloseReport {
            stats,
            delivered: stats.sent,
            confirmed_after_unknown: stats.confirmed_after_unknown,
            failed: stats.failed,
            dropped: stats.dropped,
            undelivered,
            unknown: 0,
            left_in_spool: 0,
            lost: stats.failed + stats.dropped + undelivered,
            timed_out,
            // When nothing failed but the API never answered, why it did not.
            first_error: lock(&self.first_error).clone().or_else(|| self.token_check.unanswered_error()),
            auth_failure: self.auth_failure.get().cloned(),
            failure_reasons: Vec::new(),
            unattached: self.unattached.by_type(),
        }
    }

    pub(crate) fn stats(&self, enqueued: u64) -> Stats {
        Stats { unattached: self.unattached.total(), ..self.counters.snapshot(enqueued) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared::new(Config::builder().api_url("http://127.0.0.1:9").api_token("t").build().expect("valid config"))
    }

    #[test]
    fn the_report_counts_what_was_not_settled_as_lost_and_keeps_the_first_error() {
        let shared = shared();
        Counters::add(&shared.counters.sent, 5);
        Counters::add(&shared.counters.failed, 1);
        Counters::add(&shared.counters.dropped, 2);
        shared.record_error(&Error::Timeout);
        shared.record_error(&Error::Closed);
        shared.unattached.record("t:orphan");
        // 9 enqueued, 7 settled (5 sent, 1 failed, 1 discarded): 2 never reached a final state.
        let report = shared.report(9, 7, true);
        assert_eq!((report.delivered, report.failed, report.dropped, report.undelivered), (5, 1, 2, 2));
        assert_eq!(report.lost, 5, "failed + dropped + undelivered");
        assert!(report.timed_out && !report.is_clean());
        assert!(matches!(report.first_error, Some(Error::Timeout)), "the first error is kept");
        assert_eq!(report.stats.unattached, 1);
        assert_eq!(report.unattached, [("t:orphan".to_owned(), 1)]);
    }

    #[test]
    fn a_rejected_token_latches_once_and_is_reported() {
        let shared = shared();
        assert!(!shared.is_latched());
        let rejected = Error::Auth { status: 401, code: "bad_authtoken".into(), message: "no".into() };
        shared.latch(rejected);
        shared.latch(Error::Auth { status: 403, code: "other".into(), message: "later".into() });
        assert!(shared.is_latched());
        assert!(matches!(shared.report(0, 0, false).auth_failure, Some(Error::Auth { status: 401, .. })));
    }
}
