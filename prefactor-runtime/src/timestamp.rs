//! `Timestamp`: the wall-clock instants carried by queued operations, and their RFC 3339
//! form (formatted in the worker, never on the caller's hot path).

use prefactor_protocol::clock;
use time::OffsetDateTime;
use time::macros::format_description;

/// Microseconds since the Unix epoch: the API's timestamp resolution, in 8 bytes (a
/// `SystemTime` takes 16, and every queued span operation carries one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timestamp(u64);

impl Timestamp {
    /// The current wall-clock time, from the protocol's cheap clock (a time-stamp-counter
    /// extrapolation, a few ns instead of ~25 ns for `SystemTime::now()`; readings on one
    /// thread never go backwards, so a span never ends before it started).
    pub(crate) fn now() -> Timestamp {
        Timestamp(clock::unix_micros())
    }

    #[cfg(test)]
    pub(crate) const fn from_micros(micros: u64) -> Timestamp {
        Timestamp(micros)
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
    fn now_agrees_with_the_system_clock() {
        let before = Timestamp::now();
        let system = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
        let after = Timestamp::now();
        assert!(before.0 <= system + 2_000 && system <= after.0 + 2_000, "{before:?} {system} {after:?}");
    }
}
