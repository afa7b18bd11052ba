//! The `prefactor-context` header (the agent instance a call belongs to, and the caller's
//! span) and the OpenTelemetry ids derived from Prefactor ids, so that every process computes
//! the same trace and span ids for a run without waiting for any of them to be exported.

use std::fmt;
use std::str::FromStr;

use crate::pfid::{PFID_LEN, Pfid};
use crate::traceparent::{SAMPLED, TraceHeaderError, TraceParent, read_version, separator, write_hex};

/// Name of the header carrying a [`PrefactorContext`].
pub const PREFACTOR_CONTEXT: &str = "prefactor-context";

/// Length of `00-{instance}-{flags}`.
const INSTANCE_ONLY_LEN: usize = 3 + PFID_LEN + 3;
/// Length of `00-{instance}-{span}-{flags}`.
#[cfg(test)]
const WITH_SPAN_LEN: usize = 3 + PFID_LEN + 1 + PFID_LEN + 3;
/// Where the field after the instance id starts.
const AFTER_INSTANCE: usize = 3 + PFID_LEN + 1;
/// Longest value read at all (a later version's extra fields included).
const MAX_LEN: usize = 256;

/// What the `prefactor-context` header carries: the agent instance (run) the call belongs
/// to, the caller's span (the parent of the callee's spans), and whether the run is sent
/// (sampling). Its text form is `00-{instance}-{span}-{flags}` (`00-{instance}-{flags}` when
/// the caller has no span open): ids as 32 lowercase base32 characters, flags `01` when the run
/// is sent and `00` when sampling left it out, as W3C's `sampled` flag.
///
/// ```
/// use prefactor_protocol::{Pfid, PrefactorContext};
///
/// let instance = Pfid::from_parts(1_700_000_000_000, 7, [1; 10])?;
/// let span = Pfid::from_parts(1_700_000_000_123, 7, [2; 10])?;
/// let context = PrefactorContext { instance, span: Some(span), sampled: true };
/// let header = context.to_string();
/// assert_eq!(header, format!("00-{instance}-{span}-01"));
/// assert_eq!(header.parse::<PrefactorContext>()?, context);
/// // The W3C header for the same call: the trace and span ids an OTel export uses.
/// let traceparent = context.traceparent();
/// assert_eq!(traceparent.trace_id, prefactor_protocol::otel_trace_id(&instance));
/// assert_eq!(traceparent.parent_id, prefactor_protocol::otel_span_id(&span));
/// assert!(traceparent.sampled());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefactorContext {
    /// The agent instance the call belongs to.
    pub instance: Pfid,
    /// The caller's current span, if any.
    pub span: Option<Pfid>,
    /// Whether the run is sent: `false` when the caller's sampling left it out, so the callee
    /// sends nothing of it either.
    pub sampled: bool,
}

impl PrefactorContext {
    /// The OTel trace id of the instance's run ([`otel_trace_id`]).
    pub fn otel_trace_id(&self) -> [u8; 16] {
        otel_trace_id(&self.instance)
    }

    /// The OTel id of the caller's span: its span's ([`otel_span_id`]), or the run's
    /// `invoke_agent` span's ([`otel_run_span_id`]) when it has none.
    pub fn otel_parent_id(&self) -> [u8; 8] {
        match &self.span {
            Some(span) => otel_span_id(span),
            None => otel_run_span_id(&self.instance),
        }
    }

    /// The W3C `traceparent` of the same call, sampled as the run is.
    pub fn traceparent(&self) -> TraceParent {
        TraceParent { trace_id: self.otel_trace_id(), parent_id: self.otel_parent_id(), flags: self.flags() }
    }

    /// The flags byte: `SAMPLED` or nothing.
    fn flags(&self) -> u8 {
        if self.sampled { SAMPLED } else { 0 }
    }
}

impl fmt::Display for PrefactorContext {
    /// Written once from a stack buffer (this runs on every outgoing call).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [b'-'; 3 + PFID_LEN + 1 + PFID_LEN + 3];
        text[..2].copy_from_slice(b"00");
        text[3..3 + PFID_LEN].copy_from_slice(self.instance.encode().as_bytes());
        let mut end = AFTER_INSTANCE;
        if let Some(span) = &self.span {
            text[end..end + PFID_LEN].copy_from_slice(span.encode().as_bytes());
            end += PFID_LEN + 1;
        }
        write_hex(&mut text[end..end + 2], &[self.flags()]);
        // Only ASCII was written.
        f.write_str(std::str::from_utf8(&text[..end + 2]).unwrap_or_default())
    }
}

impl FromStr for PrefactorContext {
    type Err = TraceHeaderError;

    /// Parses as strictly as `traceparent`: version `00` is exactly `00-{instance}-{flags}` or
    /// `00-{instance}-{span}-{flags}` with flags `00` or `01`; a later version may add fields
    /// after a `-`, which are ignored, and flag bits, of which only `sampled` is kept; ids are
    /// lowercase PFIDs.
    fn from_str(value: &str) -> Result<PrefactorContext, TraceHeaderError> {
        let value = value.trim_matches([' ', '\t']).as_bytes();
        let length = value.len();
        if !(INSTANCE_ONLY_LEN..=MAX_LEN).contains(&length) {
            return Err(TraceHeaderError::Length { length });
        }
        let version = read_version(&value[..2])?;
        separator(value, 2)?;
        let instance = read_pfid(&value[3..AFTER_INSTANCE - 1], "instance id")?;
        separator(value, AFTER_INSTANCE - 1)?;
        // The flags are two characters and then the end or a `-`; a span id is 32.
        let has_span = !matches!(value.get(AFTER_INSTANCE + 2), None | Some(b'-'));
        let (span, flags_at) = if has_span {
            let digits =
                value.get(AFTER_INSTANCE..AFTER_INSTANCE + PFID_LEN).ok_or(TraceHeaderError::Length { length })?;
            separator(value, AFTER_INSTANCE + PFID_LEN)?;
            (Some(read_pfid(digits, "span id")?), AFTER_INSTANCE + PFID_LEN + 1)
        } else {
            (None, AFTER_INSTANCE)
        };
        let flags_digits = value.get(flags_at..flags_at + 2).ok_or(TraceHeaderError::Length { length })?;
        let flags = read_flags(flags_digits)?;
        let end = flags_at + 2;
        let rest_is_ignored = version > 0 && value.get(end) == Some(&b'-');
        if length != end && !rest_is_ignored {
            return Err(TraceHeaderError::Length { length });
        }
        if version == 0 && flags > SAMPLED {
            return Err(TraceHeaderError::Field { field: "flags" });
        }
        Ok(PrefactorContext { instance, span, sampled: flags & SAMPLED != 0 })
    }
}

/// Two lowercase hex digits.
fn read_flags(digits: &[u8]) -> Result<u8, TraceHeaderError> {
    let digit = |byte: u8| match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    };
    match digits {
        [high, low] => digit(*high).zip(digit(*low)).map(|(h, l)| (h << 4) | l),
        _ => None,
    }
    .ok_or(TraceHeaderError::Field { field: "flags" })
}

/// A PFID in its canonical (lowercase) text form.
fn read_pfid(digits: &[u8], field: &'static str) -> Result<Pfid, TraceHeaderError> {
    let canonical = digits.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let text = std::str::from_utf8(digits).ok().filter(|_| canonical).ok_or(TraceHeaderError::Field { field })?;
    text.parse().map_err(|_| TraceHeaderError::Field { field })
}

/// The OTel trace id of an agent instance's run: the PFID's 48-bit timestamp then its 80
/// random bits (so the trace id's right part is random, as W3C's `random` flag expects).
///
/// ```
/// use prefactor_protocol::{Pfid, otel_trace_id};
///
/// let instance = Pfid::from_parts(1, 2, [9; 10])?;
/// assert_eq!(otel_trace_id(&instance), [0, 0, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
/// # Ok::<(), prefactor_protocol::PfidError>(())
/// ```
pub fn otel_trace_id(instance: &Pfid) -> [u8; 16] {
    let bytes = instance.to_bytes();
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&bytes[..6]);
    id[6..].copy_from_slice(&bytes[10..]);
    nonzero(id)
}

/// The OTel span id of a Prefactor span: the last 64 of its PFID's random bits.
///
/// ```
/// use prefactor_protocol::{Pfid, otel_span_id};
///
/// let span = Pfid::from_parts(1, 2, [0, 0, 1, 2, 3, 4, 5, 6, 7, 8])?;
/// assert_eq!(otel_span_id(&span), [1, 2, 3, 4, 5, 6, 7, 8]);
/// # Ok::<(), prefactor_protocol::PfidError>(())
/// ```
pub fn otel_span_id(span: &Pfid) -> [u8; 8] {
    let mut id = [0u8; 8];
    id.copy_from_slice(&span.to_bytes()[12..]);
    nonzero(id)
}

/// The OTel span id of an agent instance's `invoke_agent` span: the first 64 of its PFID's
/// random bits.
///
/// ```
/// use prefactor_protocol::{Pfid, otel_run_span_id};
///
/// let instance = Pfid::from_parts(1, 2, [1, 2, 3, 4, 5, 6, 7, 8, 0, 0])?;
/// assert_eq!(otel_run_span_id(&instance), [1, 2, 3, 4, 5, 6, 7, 8]);
/// # Ok::<(), prefactor_protocol::PfidError>(())
/// ```
pub fn otel_run_span_id(instance: &Pfid) -> [u8; 8] {
    let mut id = [0u8; 8];
    id.copy_from_slice(&instance.to_bytes()[10..18]);
    nonzero(id)
}

/// All-zero ids are invalid in OTel and W3C; a PFID whose bits would give one (only a
/// hand-made PFID can) gets 1 in its last byte instead.
fn nonzero<const N: usize>(mut id: [u8; N]) -> [u8; N] {
    if id.iter().all(|&b| b == 0) {
        id[N - 1] = 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfid(timestamp: u64, seed: u8) -> Pfid {
        Pfid::from_parts(timestamp, 5, [seed; 10]).unwrap()
    }

    #[test]
    fn both_forms_round_trip() {
        let with_span = PrefactorContext {
            instance: pfid(1_700_000_000_000, 1),
            span: Some(pfid(1_700_000_000_001, 2)),
            sampled: true,
        };
        assert_eq!(with_span.to_string().len(), WITH_SPAN_LEN);
        assert_eq!(with_span.to_string().parse::<PrefactorContext>(), Ok(with_span));
        let without = PrefactorContext { span: None, sampled: false, ..with_span };
        assert_eq!(without.to_string().len(), INSTANCE_ONLY_LEN);
        assert!(without.to_string().ends_with("-00"));
        assert_eq!(format!(" {without}\t").parse::<PrefactorContext>(), Ok(without));
        assert_eq!(without.otel_parent_id(), otel_run_span_id(&without.instance));
        assert!(!without.traceparent().sampled(), "an unsampled run is unsampled in W3C terms too");
    }

    #[test]
    fn malformed_values_are_refused() {
        let context = PrefactorContext { instance: pfid(1_700_000_000_000, 1), span: Some(pfid(1, 2)), sampled: true };
        let good = context.to_string();
        let refused = |value: &str| value.parse::<PrefactorContext>().unwrap_err();
        assert_eq!(refused(""), TraceHeaderError::Length { length: 0 });
        assert_eq!(refused(&format!("{good}-x")), TraceHeaderError::Length { length: WITH_SPAN_LEN + 2 });
        assert_eq!(refused(&good[..50]), TraceHeaderError::Length { length: 50 });
        assert_eq!(refused(&good.to_uppercase()), TraceHeaderError::Field { field: "instance id" });
        assert_eq!(refused(&good.replacen("00-", "ff-", 1)), TraceHeaderError::Version("ff".into()));
        assert_eq!(refused(&format!("{}i{}", &good[..40], &good[41..])), TraceHeaderError::Field { field: "span id" });
        assert_eq!(refused(&format!("00-8{}", &good[4..])), TraceHeaderError::Field { field: "instance id" });
        assert_eq!(refused(&good.replace('-', "+")), TraceHeaderError::Field { field: "separator" });
        let without_flags = &good[..good.len() - 2];
        assert_eq!(refused(&format!("{without_flags}02")), TraceHeaderError::Field { field: "flags" }, "00 or 01 only");
        assert_eq!(refused(&format!("{without_flags}0A")), TraceHeaderError::Field { field: "flags" });
        assert_eq!(
            refused(&good[..good.len() - 3]),
            TraceHeaderError::Field { field: "separator" },
            "flags are required"
        );
    }

    #[test]
    fn a_later_version_may_add_fields_and_flags() {
        let good = PrefactorContext { instance: pfid(1, 1), span: Some(pfid(2, 2)), sampled: true };
        let text = good.to_string();
        let later = format!("01{}ff-more-fields", &text[2..text.len() - 2]);
        assert_eq!(later.parse::<PrefactorContext>(), Ok(good));
        let bad = format!("00{}-more-fields", &good.to_string()[2..]);
        assert!(bad.parse::<PrefactorContext>().is_err(), "version 00 has no extra fields");
        let no_span = PrefactorContext { span: None, ..good };
        assert_eq!(format!("01{}-x", &no_span.to_string()[2..]).parse::<PrefactorContext>(), Ok(no_span));
    }

    #[test]
    fn derived_ids_are_never_zero() {
        let zero = Pfid::from_parts(0, 0, [0; 10]).unwrap();
        assert_ne!(otel_trace_id(&zero), [0; 16]);
        assert_ne!(otel_span_id(&zero), [0; 8]);
        assert_ne!(otel_run_span_id(&zero), [0; 8]);
        let context = PrefactorContext { instance: zero, span: Some(zero), sampled: true };
        let traceparent = context.traceparent().to_string();
        assert_eq!(traceparent.parse::<TraceParent>().map(|t| t.trace_id), Ok(otel_trace_id(&zero)));
    }
}
