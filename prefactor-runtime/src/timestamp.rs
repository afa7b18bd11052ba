//! RFC 3339 formatting of `SystemTime`, done in the worker (never on the caller's hot path).

use std::time::SystemTime;

use time::OffsetDateTime;
use time::macros::format_description;

/// `2026-08-04T06:55:41.123456Z` (UTC, microseconds), the form the API documents.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    OffsetDateTime::from(at).format(&format).unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_with_microseconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_785_826_541_123_456);
        assert_eq!(rfc3339(at), "2026-08-04T06:55:41.123456Z");
    }
}
