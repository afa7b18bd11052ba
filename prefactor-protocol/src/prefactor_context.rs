//! The `prefactor-context` header (the agent instance a call belongs to, and the caller's
//! span) and the OpenTelemetry ids derived from Prefactor ids, so that every process computes
//! the same trace and span ids for a run without waiting for any of them to be exported.

use std::fmt;
use std::str::FromStr;

use crate::pfid::{PFID_LEN, Pfid};
use crate::traceparent::{SAMPLED, TraceHeaderError, TraceParent, read_version, separator};

/// Name of the header carrying a [`PrefactorContext`].
pub const PREFACTOR_CONTEXT: &str = "prefactor-context";

/// Length of `00-{instance}`.
const INSTANCE_ONLY_LEN: usize = 3 + PFID_LEN;
/// Length of `00-{instance}-{span}`.
const WITH_SPAN_LEN: usize = INSTANCE_ONLY_LEN + 1 + PFID_LEN;
/// Longest value read at all (a later version's extra fields included).
const MAX_LEN: usize = 256;

/// What the `prefactor-context` header carries: the agent instance (run) the call belongs
/// to, and the caller's span, the parent of the callee's spans. Its text form is
/// `00-{instance}-{span}` (`00-{instance}` when the caller has no span open), ids as 32
/// lowercase base32 characters.
///
/// ```
/// use prefactor_protocol::{Pfid, PrefactorContext};
///
/// let instance = Pfid::from_parts(1_700_000_000_000, 7, [1; 10])?;
/// let span = Pfid::from_parts(1_700_000_000_123, 7, [2; 10])?;
/// let context = PrefactorContext { instance, span: Some(span) };
/// let header = context.to_string();
/// assert_eq!(header, format!("00-{instance}-{span}"));
/// assert_eq!(header.parse::<PrefactorContext>()?, context);
/// // The W3C header for the same call: the trace and span ids an OTel export uses.
/// let traceparent = context.traceparent();
/// assert_eq!(traceparent.trace_id, prefactor_protocol::otel_trace_id(&instance));
/// assert_eq!(traceparent.parent_id, prefactor_protocol::otel_span_id(&span));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefactorContext {
    /// The agent instance the call belongs to.
    pub instance: Pfid,
    /// The caller's current span, if any.
    pub span: Option<Pfid>,
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

    /// The W3C `traceparent` of the same call (sampled: Prefactor records every span).
    pub fn traceparent(&self) -> TraceParent {
        TraceParent { trace_id: self.otel_trace_id(), parent_id: self.otel_parent_id(), flags: SAMPLED }
    }
}

impl fmt::Display for PrefactorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}", self.instance.encode())?;
        match &self.span {
            Some(span) => write!(f, "-{}", span.encode()),
            None => Ok(()),
        }
    }
}

impl FromStr for PrefactorContext {
    type Err = TraceHeaderError;

    /// Parses as strictly as `traceparent`: version `00` is exactly `00-{instance}` or
    /// `00-{instance}-{span}`; a later version may add fields after a `-`, which are ignored;
    /// ids are lowercase PFIDs.
    fn from_str(value: &str) -> Result<PrefactorContext, TraceHeaderError> {
        let value = value.trim_matches([' ', '\t']).as_bytes();
        let length = value.len();
        if !(INSTANCE_ONLY_LEN..=MAX_LEN).contains(&length) {
            return Err(TraceHeaderError::Length { length });
        }
        let version = read_version(&value[..2])?;
        separator(value, 2)?;
        let instance = read_pfid(&value[3..INSTANCE_ONLY_LEN], "instance id")?;
        if length == INSTANCE_ONLY_LEN {
            return Ok(PrefactorContext { instance, span: None });
        }
        separator(value, INSTANCE_ONLY_LEN)?;
        let span_digits = value.get(INSTANCE_ONLY_LEN + 1..WITH_SPAN_LEN).ok_or(TraceHeaderError::Length { length })?;
        let span = read_pfid(span_digits, "span id")?;
        let rest_is_ignored = version > 0 && value.get(WITH_SPAN_LEN) == Some(&b'-');
        if length != WITH_SPAN_LEN && !rest_is_ignored {
            return Err(TraceHeaderError::Length { length });
        }
        Ok(PrefactorContext { instance, span: Some(span) })
    }
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
        let with_span =
            PrefactorContext { instance: pfid(1_700_000_000_000, 1), span: Some(pfid(1_700_000_000_001, 2)) };
        assert_eq!(with_span.to_string().len(), WITH_SPAN_LEN);
        assert_eq!(with_span.to_string().parse::<PrefactorContext>(), Ok(with_span));
        let without = PrefactorContext { span: None, ..with_span };
        assert_eq!(without.to_string().len(), INSTANCE_ONLY_LEN);
        assert_eq!(format!(" {without}\t").parse::<PrefactorContext>(), Ok(without));
        assert_eq!(without.otel_parent_id(), otel_run_span_id(&without.instance));
    }

    #[test]
    fn malformed_values_are_refused() {
        let good = PrefactorContext { instance: pfid(1_700_000_000_000, 1), span: Some(pfid(1, 2)) }.to_string();
        let refused = |value: &str| value.parse::<PrefactorContext>().unwrap_err();
        assert_eq!(refused(""), TraceHeaderError::Length { length: 0 });
        assert_eq!(refused(&format!("{good}-x")), TraceHeaderError::Length { length: WITH_SPAN_LEN + 2 });
        assert_eq!(refused(&good[..50]), TraceHeaderError::Length { length: 50 });
        assert_eq!(refused(&good.to_uppercase()), TraceHeaderError::Field { field: "instance id" });
        assert_eq!(refused(&good.replacen("00-", "ff-", 1)), TraceHeaderError::Version("ff".into()));
        assert_eq!(refused(&format!("{}i{}", &good[..40], &good[41..])), TraceHeaderError::Field { field: "span id" });
        assert_eq!(refused(&format!("00-8{}", &good[4..])), TraceHeaderError::Field { field: "instance id" });
        assert_eq!(refused(&good.replace('-', "+")), TraceHeaderError::Field { field: "separator" });
    }

    #[test]
    fn a_later_version_may_add_fields() {
        let good = PrefactorContext { instance: pfid(1, 1), span: Some(pfid(2, 2)) };
        let later = format!("01{}-more-fields", &good.to_string()[2..]);
        assert_eq!(later.parse::<PrefactorContext>(), Ok(good));
        let bad = format!("00{}-more-fields", &good.to_string()[2..]);
        assert!(bad.parse::<PrefactorContext>().is_err(), "version 00 has no extra fields");
    }

    #[test]
    fn derived_ids_are_never_zero() {
        let zero = Pfid::from_parts(0, 0, [0; 10]).unwrap();
        assert_ne!(otel_trace_id(&zero), [0; 16]);
        assert_ne!(otel_span_id(&zero), [0; 8]);
        assert_ne!(otel_run_span_id(&zero), [0; 8]);
        let context = PrefactorContext { instance: zero, span: Some(zero) };
        let traceparent = context.traceparent().to_string();
        assert_eq!(traceparent.parse::<TraceParent>().map(|t| t.trace_id), Ok(otel_trace_id(&zero)));
    }
}
