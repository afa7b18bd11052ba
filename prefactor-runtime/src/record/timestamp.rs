//! `Timestamp`: the wall-clock instants carried by queued operations, and their RFC 3339
//! form (formatted in the worker, never on the caller's hot path).

use crate::record::clock;
use time::OffsetDateTime;
use time::macros::format_description;

/// Microseconds since the Unix epoch: the API's timestamp resolution, in 8 bytes (a
/// `SystemTime` takes 16, and every queued span operation carries one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timestamp(u64);

impl Timestamp {
    /// The current wall-clock time (`SystemTime`; readings on one thread never go backwards,
    /// so a span never ends before it started).
    pub(crate) fn now() -> Timestamp {
        Timestamp(clock::unix_micros())
    }

    /// A caller-given instant (a span started or ended elsewhere, or replayed from a log).
    /// Instants before the Unix epoch are clamped to it; the API has no earlier time.
    pub(crate) fn from_system_time(at: std::time::SystemTime) -> Timestamp {
        let since_epoch = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX))
    }

    /// The Unix epoch itself: the time of what is never sent (a span of an unsampled run).
    pub(crate) const EPOCH: Timestamp = Timestamp(0);

    #[cfg(test)]
    pub(crate) const fn from_micros(micros: u64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub(crate) const fn unix_micros(self) -> u64 {
        self.0
    }

    /// The instant as a `SystemTime` (the OTel export's times).
    #[cfg(feature = "otel")]
    pub(crate) fn to_system_time(self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_micros(self.0)
    }

    /// Milliseconds since the Unix epoch (a PFID's timestamp).
    pub(crate) const fn unix_millis(self) -> u64 {
        self.0 / 1_000
    }
}

/// `2026-08-04T06:55:41.123456Z` (UTC, microseconds), the form the API documents.
pub(crate) fn rfc3339(at: Timestamp) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.0) * 1_000)
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| String::from("1970-01-01T00:00:00.000000Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn formats_utc_with_microseconds() {
        let at = Timestamp::from_micros(1_785_826_541_123_456);
        assert_eq!(rfc3339(at), "2026-08-04T06:55:41.123456Z");
        assert_eq!(at.unix_millis(), 1_785_826_541_123);
    }

    #[test]
    fn system_times_keep_microseconds_and_clamp_before_the_epoch() {
        let at = UNIX_EPOCH + std::time::Duration::from_nanos(1_785_826_541_123_456_789);
        assert_eq!(Timestamp::from_system_time(at), Timestamp::from_micros(1_785_826_541_123_456));
        let before = UNIX_EPOCH - std::time::Duration::from_secs(1);
        assert_eq!(Timestamp::from_system_time(before), Timestamp::from_micros(0));
    }

    #[test]
    fn now_agrees_with_the_system_clock() {
        let before = Timestamp::now();
        let system = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
        let after = Timestamp::now();
        // The clock is `SystemTime`: exact (monotonic per thread), see `record/clock.rs`.
        assert!(before.0 <= system && system <= after.0, "{before:?} {system} {after:?}");
    }
}
