//! The W3C Trace Context headers: `traceparent` parsed and formatted strictly, `tracestate`
//! checked before it is passed on (<https://www.w3.org/TR/trace-context/>).

use std::fmt;
use std::str::FromStr;

/// Name of the W3C header naming the caller's trace and span.
pub const TRACEPARENT: &str = "traceparent";
/// Name of the W3C header carrying vendors' own trace data, passed on unchanged.
pub const TRACESTATE: &str = "tracestate";

/// The `sampled` bit of the trace flags.
pub const SAMPLED: u8 = 0x01;

/// Length of a version-00 `traceparent` value.
const TRACEPARENT_LEN: usize = 55;
/// Longest `tracestate` passed on: the spec's minimum every platform must propagate (longer
/// values may be cut, and cutting a list member in two would corrupt it, so it is dropped).
pub const MAX_TRACESTATE_LEN: usize = 512;
/// Most list members a `tracestate` may hold.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Why a `traceparent` (or `prefactor-context`) value was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceHeaderError {
    /// Not the length the version requires (or longer than any version may be).
    #[error("length {length} is not valid for this header")]
    Length {
        /// Length in bytes of the rejected value.
        length: usize,
    },
    /// The version is not two lowercase hex digits, or is the forbidden `ff`.
    #[error("invalid version {0:?}")]
    Version(String),
    /// A field is not what its position requires (lowercase hex, a PFID, a `-` separator).
    #[error("invalid {field}")]
    Field {
        /// The field's name.
        field: &'static str,
    },
    /// An id made only of zeros, which the spec reserves as invalid.
    #[error("{field} is all zeros")]
    Zero {
        /// The field's name.
        field: &'static str,
    },
}

/// A parsed W3C `traceparent`: the caller's trace, its current span (`parent_id`) and the
/// trace flags.
///
/// ```
/// use prefactor_protocol::TraceParent;
///
/// let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let parent: TraceParent = value.parse()?;
/// assert_eq!(parent.trace_id[0], 0x4b);
/// assert!(parent.sampled());
/// assert_eq!(parent.to_string(), value);
/// // Uppercase hex, a zero trace id, a bad length: refused, never a panic.
/// assert!("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01".parse::<TraceParent>().is_err());
/// assert!("00-00000000000000000000000000000000-00f067aa0ba902b7-01".parse::<TraceParent>().is_err());
/// assert!("00-4bf9".parse::<TraceParent>().is_err());
/// # Ok::<(), prefactor_protocol::TraceHeaderError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id (16 bytes, never all zero).
    pub trace_id: [u8; 16],
    /// The caller's span id (8 bytes, never all zero).
    pub parent_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Whether the caller recorded its span (the `sampled` flag).
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

impl FromStr for TraceParent {
    type Err = TraceHeaderError;

    /// Parses a value as the spec says a receiver must: version 00 exactly 55 characters;
    /// a later version at least that, its extra fields after a `-` ignored; `ff`, uppercase
    /// hex and all-zero ids refused.
    fn from_str(value: &str) -> Result<TraceParent, TraceHeaderError> {
        let value = value.trim_matches([' ', '\t']).as_bytes();
        let length = value.len();
        if length < TRACEPARENT_LEN {
            return Err(TraceHeaderError::Length { length });
        }
        let version = read_version(&value[..2])?;
        if version == 0 && length != TRACEPARENT_LEN {
            return Err(TraceHeaderError::Length { length });
        }
        if length > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != b'-' {
            return Err(TraceHeaderError::Field { field: "separator after the flags" });
        }
        separator(value, 2)?;
        let trace_id = read_hex::<16>(&value[3..35], "trace-id")?;
        separator(value, 35)?;
        let parent_id = read_hex::<8>(&value[36..52], "parent-id")?;
        separator(value, 52)?;
        let [flags] = read_hex::<1>(&value[53..55], "trace-flags")?;
        if trace_id == [0; 16] {
            return Err(TraceHeaderError::Zero { field: "trace-id" });
        }
        if parent_id == [0; 8] {
            return Err(TraceHeaderError::Zero { field: "parent-id" });
        }
        // A receiver of a later version keeps only the flags it knows.
        let flags = if version == 0 { flags } else { flags & SAMPLED };
        Ok(TraceParent { trace_id, parent_id, flags })
    }
}

impl fmt::Display for TraceParent {
    /// The version-00 form (lowercase hex), written once from a stack buffer (a `write!` per
    /// byte cost five times more: this runs on every outgoing call).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        write_hex(&mut text[3..35], &self.trace_id);
        write_hex(&mut text[36..52], &self.parent_id);
        write_hex(&mut text[53..55], &[self.flags]);
        // Only ASCII was written.
        f.write_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

/// The two version digits: lowercase hex, not `ff`.
pub(crate) fn read_version(digits: &[u8]) -> Result<u8, TraceHeaderError> {
    let invalid = || TraceHeaderError::Version(String::from_utf8_lossy(digits).into_owned());
    let [version] = read_hex::<1>(digits, "version").map_err(|_| invalid())?;
    if version == 0xff {
        return Err(invalid());
    }
    Ok(version)
}

/// Requires a `-` at `at`.
pub(crate) fn separator(value: &[u8], at: usize) -> Result<(), TraceHeaderError> {
    match value.get(at) {
        Some(b'-') => Ok(()),
        _ => Err(TraceHeaderError::Field { field: "separator" }),
    }
}

/// `2 * N` lowercase hex digits as `N` bytes.
fn read_hex<const N: usize>(digits: &[u8], field: &'static str) -> Result<[u8; N], TraceHeaderError> {
    if digits.len() != 2 * N {
        return Err(TraceHeaderError::Field { field });
    }
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let high = hex_digit(pair[0]).ok_or(TraceHeaderError::Field { field })?;
        let low = hex_digit(pair[1]).ok_or(TraceHeaderError::Field { field })?;
        *byte = (high << 4) | low;
    }
    Ok(bytes)
}

/// A lowercase hex digit's value (uppercase is invalid in these headers).
fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// `bytes` as lowercase hex into `out` (twice their length).
pub(crate) fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Whether `value` is a `tracestate` to pass on: at most 512 bytes and 32 list members, each
/// `key=value` as the spec's grammar says (empty members allowed, keys unique). A value that
/// fails is dropped whole, as the spec allows, rather than passed on broken.
///
/// ```
/// use prefactor_protocol::valid_tracestate;
///
/// assert!(valid_tracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
/// assert!(valid_tracestate("tenant@vendor=x"));
/// assert!(!valid_tracestate("Upper=1"));
/// assert!(!valid_tracestate("a=1,a=2"));
/// assert!(!valid_tracestate("a=b=c"));
/// ```
pub fn valid_tracestate(value: &str) -> bool {
    if value.len() > MAX_TRACESTATE_LEN {
        return false;
    }
    // On the stack: this runs on every incoming call that carries a `tracestate`.
    let mut keys: [&str; MAX_TRACESTATE_MEMBERS] = [""; MAX_TRACESTATE_MEMBERS];
    let mut count = 0;
    for member in value.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let Some((key, member_value)) = member.split_once('=') else { return false };
        if count == MAX_TRACESTATE_MEMBERS
            || !valid_key(key)
            || !valid_member_value(member_value)
            || keys[..count].contains(&key)
        {
            return false;
        }
        keys[count] = key;
        count += 1;
    }
    true
}

/// `simple-key` or `tenant-id@system-id` of the spec.
fn valid_key(key: &str) -> bool {
    match key.split_once('@') {
        None => key_part(key, 256, true),
        Some((tenant, system)) => key_part(tenant, 241, false) && key_part(system, 14, true),
    }
}

/// `lcalpha`/digit first (`lcalpha` only where `alpha_first`), then `lcalpha`, digits,
/// `_ - * /`, at most `max` characters in all.
fn key_part(part: &str, max: usize, alpha_first: bool) -> bool {
    let bytes = part.as_bytes();
    let Some(&first) = bytes.first() else { return false };
    let first_ok = first.is_ascii_lowercase() || (!alpha_first && first.is_ascii_digit());
    first_ok
        && bytes.len() <= max
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/'))
}

/// 1 to 256 printable ASCII characters other than `,` and `=`, not ending with a space.
fn valid_member_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 256
        && bytes.last() != Some(&b' ')
        && bytes.iter().all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_round_trips() {
        let parent: TraceParent = EXAMPLE.parse().unwrap();
        assert_eq!(parent.parent_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(parent.to_string(), EXAMPLE);
    }

    #[test]
    fn later_versions_keep_the_known_fields_and_flags() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-comes-next";
        let parent: TraceParent = later.parse().unwrap();
        assert_eq!(parent.flags, SAMPLED, "unknown flags dropped");
        assert_eq!(parent.to_string(), EXAMPLE);
        assert!("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x".parse::<TraceParent>().is_err());
    }

    #[test]
    fn malformed_values_are_refused_with_the_reason() {
        let refused = |value: &str| value.parse::<TraceParent>().unwrap_err();
        assert_eq!(refused(&format!("{EXAMPLE}-")), TraceHeaderError::Length { length: 56 });
        assert_eq!(refused(&EXAMPLE.replacen("00", "ff", 1)), TraceHeaderError::Version("ff".into()));
        assert_eq!(refused(&EXAMPLE.replacen("00", "0g", 1)), TraceHeaderError::Version("0g".into()));
        assert_eq!(refused(&EXAMPLE.replace('-', "_")), TraceHeaderError::Field { field: "separator" });
        assert_eq!(refused(&EXAMPLE.replace("4bf9", "4BF9")), TraceHeaderError::Field { field: "trace-id" });
        assert_eq!(refused(&EXAMPLE.replace("00f0", "00F0")), TraceHeaderError::Field { field: "parent-id" });
        assert_eq!(refused(&EXAMPLE.replace("-01", "-0x")), TraceHeaderError::Field { field: "trace-flags" });
        assert_eq!(
            refused("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            TraceHeaderError::Zero { field: "trace-id" }
        );
        assert_eq!(
            refused("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            TraceHeaderError::Zero { field: "parent-id" }
        );
        assert!(refused("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é").to_string().contains("length"));
    }

    #[test]
    fn tracestate_is_checked_member_by_member() {
        assert!(valid_tracestate(""));
        assert!(valid_tracestate(" a=1 , ,b=2"));
        assert!(valid_tracestate("0tenant@sys=v"));
        assert!(!valid_tracestate("0simple=v"), "a simple key starts with a letter");
        assert!(!valid_tracestate("a="));
        assert!(valid_tracestate("a=1 "), "optional white space around a member");
        assert!(!valid_tracestate("a=\u{7f}"));
        assert!(!valid_tracestate("t@toolongsystemid=1"));
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(!valid_tracestate(&members.join(",")));
        assert!(valid_tracestate(&members[..32].join(",")));
        assert!(!valid_tracestate(&format!("a={}", "v".repeat(MAX_TRACESTATE_LEN))));
    }
}
