//! The bulk endpoint's one-pass scanner: any text is scanned or refused (the endpoint then
//! falls back to serde), never a panic or an out-of-bounds slice, and what it finds agrees
//! with serde_json.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prefactor_server::handlers::bulk_scan::{ItemHead, scan_envelope};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ItemHead::scan(text);
    if let Some(items) = scan_envelope(text) {
        // What the scanner accepts, serde_json reads as an object with an `items` array of
        // as many entries (when it is JSON at all).
        if let Ok(serde_json::Value::Object(envelope)) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(serde_json::Value::Array(listed)) = envelope.get("items")
        {
            assert_eq!(listed.len(), items.len(), "scanner and serde disagree on the item count");
        }
    }
});
