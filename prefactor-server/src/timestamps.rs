//! Timestamps: the server writes UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ` (fixed width, so text order
//! equals time order in SQLite); clients may send RFC 3339 with any offset, or no offset
//! (Python naive datetimes), which is read as UTC.

use std::cell::Cell;

use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

const OUTPUT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

const NAIVE: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");

/// Formats an instant in the server's output form.
///
/// ```
/// use prefactor_server::timestamps::format_utc;
/// let at = time::macros::datetime!(2026-08-04 06:55:41.1234 +02:00);
/// assert_eq!(format_utc(at), "2026-08-04T04:55:41.123400Z");
/// let early = time::macros::datetime!(0987-01-02 03:04:05.000006 UTC);
/// assert_eq!(format_utc(early), "0987-01-02T03:04:05.000006Z");
/// ```
pub fn format_utc(at: OffsetDateTime) -> String {
    // Callers pass instants whose UTC form exists (see `to_utc`); the fallback is never used.
    let at = at.checked_to_offset(UtcOffset::UTC).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    if !(0..=9999).contains(&at.year()) {
        return at.format(OUTPUT).unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_string());
    }
    // Hand-written because this runs several times per request and `time`'s general
    // formatter (format-description interpretation) cost ~2.5k instructions per call. The
    // date and time of day (the calendar arithmetic) are kept per thread for the last second
    // formatted: the timestamps of a burst of requests share it.
    let second = at.unix_timestamp();
    let prefix = LAST_SECOND.with(|last| match last.get() {
        (cached, prefix) if cached == second => prefix,
        _ => {
            let prefix = second_prefix(at);
            last.set((second, prefix));
            prefix
        }
    });
    let mut text = [0u8; 27];
    text[..20].copy_from_slice(&prefix);
    write_digits(&mut text[20..26], at.microsecond());
    text[26] = b'Z';
    // Only ASCII digits and separators were written, so this never falls back.
    std::str::from_utf8(&text).map(str::to_owned).unwrap_or_default()
}

thread_local! {
    /// The Unix second last formatted on this thread and its `YYYY-MM-DDTHH:MM:SS.` text.
    static LAST_SECOND: Cell<(i64, [u8; 20])> = const { Cell::new((i64::MIN, [0; 20])) };
}

/// `YYYY-MM-DDTHH:MM:SS.` of a UTC time whose year has four digits.
fn second_prefix(at: OffsetDateTime) -> [u8; 20] {
    let fields = [
        (at.year() as u32, 4),
        (u32::from(u8::from(at.month())), 2),
        (u32::from(at.day()), 2),
        (u32::from(at.hour()), 2),
        (u32::from(at.minute()), 2),
        (u32::from(at.second()), 2),
    ];
    let separators = [b'-', b'-', b'T', b':', b':', b'.'];
    let mut text = [0u8; 20];
    let mut at_byte = 0;
    for ((value, width), separator) in fields.into_iter().zip(separators) {
        write_digits(&mut text[at_byte..at_byte + width], value);
        text[at_byte + width] = separator;
        at_byte += width + 1;
    }
    text
}

/// Writes `value` as decimal digits filling `slots` (zero-padded on the left).
fn write_digits(slots: &mut [u8], value: u32) {
    let mut rest = value;
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
}

/// The current time in the server's output form.
pub fn now_utc() -> String {
    format_utc(OffsetDateTime::now_utc())
}

/// Parses a client timestamp and renders it in the server's output form.
///
/// ```
/// use prefactor_server::timestamps::normalize_client_timestamp;
/// assert_eq!(normalize_client_timestamp("2026-08-04T06:55:41.123Z").unwrap(), "2026-08-04T06:55:41.123000Z");
/// assert_eq!(normalize_client_timestamp("2026-08-04T08:55:41+02:00").unwrap(), "2026-08-04T06:55:41.000000Z");
/// assert_eq!(normalize_client_timestamp("2026-08-04T06:55:41.5").unwrap(), "2026-08-04T06:55:41.500000Z");
/// assert!(normalize_client_timestamp("yesterday").is_err());
/// // Valid RFC 3339, but its UTC form is in year 10000.
/// assert!(normalize_client_timestamp("9999-12-31T23:59:59-23:59").unwrap_err().contains("range"));
/// assert!(normalize_client_timestamp("0000-01-01T00:00:00+00:01").unwrap_err().contains("range"));
/// // Found by the timestamp fuzz target: a naive time with a negative year.
/// assert!(normalize_client_timestamp("-2026-09-04T06:55:41.1").unwrap_err().contains("range"));
/// ```
pub fn normalize_client_timestamp(text: &str) -> Result<String, String> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        let utc = at.checked_to_offset(UtcOffset::UTC).filter(|utc| (0..=9999).contains(&utc.year()));
        let utc =
            utc.ok_or_else(|| format!("'{text}' is out of range: its UTC time must fall between years 0000 and 9999"))?;
        return Ok(format_utc(utc));
    }
    match PrimitiveDateTime::parse(text, NAIVE) {
        Ok(naive) if !(0..=9999).contains(&naive.year()) => {
            Err(format!("'{text}' is out of range: its UTC time must fall between years 0000 and 9999"))
        }
        Ok(naive) => Ok(format_utc(naive.assume_utc())),
        Err(_) => Err(format!("'{text}' is not an ISO 8601 / RFC 3339 timestamp (e.g. 2026-08-04T06:55:41.123Z)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_second_never_leaks_into_another_second() {
        let base = time::macros::datetime!(2026-12-31 23:59:59.999999 UTC);
        let times = [
            base,
            base + time::Duration::microseconds(1),
            base,
            base - time::Duration::seconds(86_400),
            base + time::Duration::seconds(3_600) + time::Duration::microseconds(7),
            base + time::Duration::seconds(3_600),
        ];
        for at in times {
            assert_eq!(format_utc(at), at.format(OUTPUT).unwrap(), "{at}");
        }
    }
}
