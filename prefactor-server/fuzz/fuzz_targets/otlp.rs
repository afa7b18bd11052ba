//! OTLP trace exports (`POST /v1/traces`) through the server's decoder and span mapping, as
//! protobuf and as OTLP/JSON: any bytes give spans to store (and refused ones) or a 400, never
//! a panic, and every mapped span's payloads serialize.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prefactor_server::otlp::{Encoding, parse_export};

fuzz_target!(|data: &[u8]| {
    for encoding in [Encoding::Protobuf, Encoding::Json] {
        match parse_export(encoding, data) {
            Ok(parsed) => {
                for trace in &parsed.traces {
                    for item in &trace.spans {
                        assert!(item.span.end_unix_nano >= item.span.start_unix_nano);
                        assert!(!item.texts.payload.is_empty());
                    }
                }
            }
            Err(error) => assert_eq!(error.status, 400, "{error}"),
        }
    }
});
