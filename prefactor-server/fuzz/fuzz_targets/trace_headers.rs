//! The propagation headers a tool service reads from its callers (`prefactor-context`,
//! `traceparent`, `tracestate`): any bytes are parsed or refused, never a panic, and what
//! parses formats back to a value that parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prefactor_protocol::{PrefactorContext, TraceParent, valid_tracestate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(context) = text.parse::<PrefactorContext>() {
        assert_eq!(context.to_string().parse::<PrefactorContext>(), Ok(context));
        let traceparent = context.traceparent();
        assert_eq!(traceparent.to_string().parse::<TraceParent>(), Ok(traceparent));
    }
    if let Ok(parent) = text.parse::<TraceParent>() {
        assert_eq!(parent.to_string().parse::<TraceParent>(), Ok(parent));
    }
    let _ = valid_tracestate(text);
});
