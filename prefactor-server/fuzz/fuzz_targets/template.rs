//! Summary templates and payloads, both hostile: parsing and rendering end with a summary or
//! none, within the budget, never a panic, an abort or a hang. The input is a template, a NUL
//! byte, and a JSON payload.
#![no_main]

use std::sync::Once;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use prefactor_server::template::{SummaryTemplate, TemplateLimits};

/// libfuzzer-sys aborts on every panic, even a caught one. The server catches panics inside
/// `liquid` (its parser panics on an integer literal past i64) and answers no summary, so
/// those are not findings; a panic anywhere else (the server's own budget, loop and filter
/// code included) still aborts and is reported.
fn abort_on_panics_outside_liquid() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let in_liquid = info.location().is_some_and(|location| location.file().contains("/liquid-"));
            if !in_liquid {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    abort_on_panics_outside_liquid();
    let (source, payload) = match data.iter().position(|byte| *byte == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let payload: serde_json::Value = serde_json::from_slice(payload).unwrap_or_else(|_| serde_json::json!({"n": 3}));
    let limits = TemplateLimits { max_render_time: Duration::from_millis(20), ..TemplateLimits::default() };
    let Ok(template) = SummaryTemplate::parse(source, &limits) else {
        return;
    };
    let started = Instant::now();
    if let Some(summary) = template.render(&payload, None) {
        assert!(summary.len() <= limits.max_output_bytes, "summary over the output limit");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "a render ran {:?}", started.elapsed());
});
