//! Client timestamps: any text is normalised to the server's fixed-width UTC form or refused,
//! never a panic, and a normalised timestamp normalises to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prefactor_server::timestamps::normalize_client_timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(normalized) = normalize_client_timestamp(text) {
        assert_eq!(normalized.len(), 27, "fixed width: {normalized}");
        assert_eq!(normalize_client_timestamp(&normalized).as_deref(), Ok(normalized.as_str()));
    }
});
