//! Delivery counters shared by the callers (enqueue side) and the worker (delivery side).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the client's delivery counters.
///
/// * `enqueued`: operations accepted into the queue.
/// * `sent`: operations the server accepted (a create and finish merged into one request count
///   as two).
/// * `confirmed_after_unknown`: of those, operations an attempt of which got no answer (reset
///   connection, timeout), confirmed later by the same idempotency key.
/// * `retried`: retry attempts (one operation retried twice counts 2).
/// * `dropped`: operations refused because the queue was full, the client was closed or the
///   token was rejected, plus queued operations discarded after that.
/// * `failed`: operations the server refused with a permanent answer (a 4xx other than 408,
///   409 and 429), or that could not be sent because what they need was refused (a span of an
///   instance whose registration was refused). Transient failures never count here: those
///   operations wait and are sent again.
/// * `spooled`: operations written to the disk spool (`Config::spool_dir`), not lost: sent
///   again by this client or the next; `replayed`: spooled requests delivered.
/// * `scrubbed`: secret-looking values replaced by `"[REDACTED]"` before sending
///   (`Config::scrub_secrets`, `Config::scrub_patterns`); `truncated`: payloads and results
///   cut down to `Config::max_payload_bytes` (their spans were kept).
/// * `unattached`: `#[span]` calls made outside any agent run (not recorded; not operations):
///   usually work moved to another task or thread without its context.
/// * Sampling (`Config::sample_rate`), never counted as lost: `sampled_out_runs` and
///   `sampled_out_spans`, the runs not sent and their spans; `sampled_out`, the queued
///   operations of held runs discarded (settled, like sent ones); `kept_by_tail_rule`, unsampled
///   runs sent because they failed or were slow; `hold_overflows`, held runs that outgrew the
///   hold budget (then sent or discarded as `Config::sample_overflow` says).
///
/// ```
/// use prefactor_runtime::Stats;
///
/// let stats = Stats::default();
/// assert_eq!(stats.enqueued, 0);
/// assert_eq!(stats.lost(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Operations accepted into the queue.
    pub enqueued: u64,
    /// Operations delivered.
    pub sent: u64,
    /// Operations delivered whose earlier attempt got no answer (part of `sent`).
    pub confirmed_after_unknown: u64,
    /// Retry attempts.
    pub retried: u64,
    /// Operations dropped without being sent.
    pub dropped: u64,
    /// Operations that failed permanently (spooled requests refused when sent again included).
    pub failed: u64,
    /// Operations written to the disk spool (settled there: sent again later, by this client
    /// or the next one with the same spool).
    pub spooled: u64,
    /// Spooled requests this client delivered (its own, or an earlier process's).
    pub replayed: u64,
    /// Spans opened outside any agent run while this client was installed (not recorded:
    /// usually work moved to another task or thread without its context; see
    /// [`CloseReport::unattached`](crate::CloseReport::unattached) for the span types).
    pub unattached: u64,
    /// Secret-looking values replaced by `"[REDACTED]"` by the default scrubbing or custom
    /// patterns (explicit redactions and `Secret` values are not counted).
    pub scrubbed: u64,
    /// Payloads and results over `max_payload_bytes`, cut down and sent (never dropped).
    pub truncated: u64,
    /// Agent runs not sent because sampling left them out (not lost).
    pub sampled_out_runs: u64,
    /// Spans of those runs (each counted once, queued or not).
    pub sampled_out_spans: u64,
    /// Queued operations of held runs discarded once their run was sampled out (settled, not
    /// lost; operations of unsampled runs never queued are not counted here).
    pub sampled_out: u64,
    /// Unsampled runs sent whole because a tail rule kept them (failed or slow).
    pub kept_by_tail_rule: u64,
    /// Held runs that went over the hold budget before they ended.
    pub hold_overflows: u64,
}

impl Stats {
    /// Operations that will never reach the server: `dropped + failed`.
    pub fn lost(&self) -> u64 {
        self.dropped + self.failed
    }
}

/// The live counters, written by callers (enqueue side) and the worker (delivery side).
/// `settled` counts enqueued operations that reached a final state (sent, failed, or discarded
/// by the worker): `enqueued - settled` is what the queue holds, bounded by the capacity.
/// (`enqueued` is the operation queue's own count, checked against `settled` under its lock.)
///
/// Each counter has its own cache line: the agent's threads write `dropped` while the worker
/// writes the others, and sharing a line would make every enqueue wait for it.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: Padded,
    pub(crate) confirmed_after_unknown: Padded,
    pub(crate) retried: Padded,
    pub(crate) dropped: Padded,
    pub(crate) failed: Padded,
    pub(crate) spooled: Padded,
    pub(crate) replayed: Padded,
    pub(crate) settled: Padded,
    pub(crate) scrubbed: Padded,
    pub(crate) truncated: Padded,
    pub(crate) sampled_out_runs: Padded,
    pub(crate) sampled_out_spans: Padded,
    pub(crate) sampled_out: Padded,
    pub(crate) kept_by_tail_rule: Padded,
    pub(crate) hold_overflows: Padded,
}

/// An atomic counter alone on its cache line (128 bytes covers adjacent-line prefetching).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded(AtomicU64);

impl std::ops::Deref for Padded {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

impl Counters {
    pub(crate) fn snapshot(&self, enqueued: u64) -> Stats {
        Stats {
            enqueued,
            sent: self.sent.load(Ordering::Relaxed),
            confirmed_after_unknown: self.confirmed_after_unknown.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            // Filled in by the client (`unattached.rs` keeps them by span type).
            unattached: 0,
            scrubbed: self.scrubbed.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            sampled_out_runs: self.sampled_out_runs.load(Ordering::Relaxed),
            sampled_out_spans: self.sampled_out_spans.load(Ordering::Relaxed),
            sampled_out: self.sampled_out.load(Ordering::Relaxed),
            kept_by_tail_rule: self.kept_by_tail_rule.load(Ordering::Relaxed),
            hold_overflows: self.hold_overflows.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
