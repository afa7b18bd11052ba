//! The propagation headers (`traceparent`, `tracestate`, `prefactor-context`): what is
//! formatted parses back to itself, and no input (random text, a valid value with one byte
//! changed) panics or parses to something that does not format back to a canonical value.

use prefactor_protocol::{Pfid, PrefactorContext, TraceParent, otel_trace_id, valid_tracestate};
use proptest::prelude::*;

fn pfid() -> impl Strategy<Value = Pfid> {
    (0..=Pfid::MAX_TIMESTAMP_MS, 0..=Pfid::MAX_PARTITION, any::<[u8; 10]>())
        .prop_map(|(timestamp, partition, randomness)| Pfid::from_parts(timestamp, partition, randomness).unwrap())
}

fn context() -> impl Strategy<Value = PrefactorContext> {
    (pfid(), proptest::option::of(pfid()), any::<bool>()).prop_map(|(instance, span, sampled)| PrefactorContext {
        instance,
        span,
        sampled,
    })
}

proptest! {
    #[test]
    fn prefactor_context_round_trips(context in context()) {
        let text = context.to_string();
        prop_assert_eq!(text.parse::<PrefactorContext>(), Ok(context));
        // Its traceparent is valid and names the same trace.
        let traceparent: TraceParent = context.traceparent().to_string().parse().unwrap();
        prop_assert_eq!(traceparent.trace_id, otel_trace_id(&context.instance));
        prop_assert_eq!(traceparent.sampled(), context.sampled);
    }

    #[test]
    fn traceparent_round_trips(trace_id in any::<[u8; 16]>(), parent_id in any::<[u8; 8]>(), flags in any::<u8>()) {
        prop_assume!(trace_id != [0; 16] && parent_id != [0; 8]);
        let parent = TraceParent { trace_id, parent_id, flags };
        prop_assert_eq!(parent.to_string().parse::<TraceParent>(), Ok(parent));
    }

    /// A value with one byte replaced either is refused or is canonical: it formats back to
    /// exactly what was parsed (so nothing lenient slips through, e.g. uppercase).
    #[test]
    fn a_changed_byte_is_refused_or_canonical(context in context(), at in 0usize..71, byte in any::<u8>()) {
        let mut bytes = context.to_string().into_bytes();
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Ok(text) = String::from_utf8(bytes) {
            // Version 00, the one formatted; white space around a header value is not part of it.
            let canonical = text.trim_matches([' ', '\t']);
            let version_00 = canonical.starts_with("00-");
            if let Ok(parsed) = text.parse::<PrefactorContext>() {
                prop_assert!(!version_00 || parsed.to_string() == canonical, "{text:?} parsed leniently");
            }
            if let Ok(parsed) = text.parse::<TraceParent>() {
                prop_assert!(!version_00 || parsed.to_string() == canonical, "{text:?} parsed leniently");
            }
        }
    }

    #[test]
    fn any_text_is_parsed_without_panicking(text in "\\PC{0,300}") {
        let _ = text.parse::<PrefactorContext>();
        let _ = text.parse::<TraceParent>();
        let _ = valid_tracestate(&text);
    }

    #[test]
    fn header_like_text_is_parsed_without_panicking(text in "[0-9a-zA-Z\\- ]{0,120}") {
        if let Ok(context) = text.parse::<PrefactorContext>()
            && text.trim_matches(' ').starts_with("00-")
        {
            prop_assert_eq!(context.to_string(), text.trim_matches(' '));
        }
        let _ = text.parse::<TraceParent>();
    }
}
