//! PFID behaviour: errors, ordering, serde, and property-based round trips.

use prefactor_protocol::{Pfid, PfidError};
use proptest::prelude::*;

#[test]
fn reference_vectors_from_the_notes() {
    let cases = [
        (0, 0, "00000000000000000000", "00000000000000000000000000000000"),
        (1_234_567_890_000, 123_456_789, "00000000000000000000", "013xrzp12g3nqk8n0000000000000000"),
        (211_106_355_004_229, 786_718_108, "6c68bce8edd51c6b9343", "60003msgt5qe8qcwdhmbst7dtme6q4t3"),
        (Pfid::MAX_TIMESTAMP_MS, Pfid::MAX_PARTITION, "ffffffffffffffffffff", "7zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"),
    ];
    for (timestamp, partition, hex, text) in cases {
        let mut randomness = [0u8; 10];
        for (i, byte) in randomness.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap();
        }
        assert_eq!(Pfid::from_parts(timestamp, partition, randomness).unwrap().to_string(), text);
    }
}

#[test]
fn out_of_range_parts_are_rejected() {
    assert_eq!(Pfid::from_parts(1 << 48, 0, [0; 10]), Err(PfidError::TimestampOutOfRange { timestamp_ms: 1 << 48 }));
    assert_eq!(Pfid::from_parts(0, 1 << 30, [0; 10]), Err(PfidError::PartitionOutOfRange { partition: 1 << 30 }));
}

#[test]
fn invalid_text_gets_a_precise_error() {
    assert_eq!("".parse::<Pfid>(), Err(PfidError::InvalidLength { length: 0 }));
    assert_eq!("0".repeat(33).parse::<Pfid>(), Err(PfidError::InvalidLength { length: 33 }));
    for (bad, position) in [('i', 5), ('l', 0), ('o', 31), ('u', 12), ('-', 20), ('I', 3)] {
        let mut text: Vec<char> = "0".repeat(32).chars().collect();
        text[position] = bad;
        let text: String = text.into_iter().collect();
        assert_eq!(text.parse::<Pfid>(), Err(PfidError::InvalidCharacter { character: bad, position }), "{text}");
    }
    assert_eq!(
        "8zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz".parse::<Pfid>(),
        Err(PfidError::TimestampOverflow { character: '8' })
    );
    let with_unicode = format!("é{}", "0".repeat(31));
    assert_eq!(with_unicode.parse::<Pfid>(), Err(PfidError::InvalidCharacter { character: 'é', position: 0 }));
}

#[test]
fn errors_explain_themselves() {
    let message = "0000000000000000000000000000000u".parse::<Pfid>().unwrap_err().to_string();
    assert!(message.contains("position 31") && message.contains("'u'"), "{message}");
}

#[test]
fn generate_uses_now_and_the_partition() {
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let id = Pfid::generate(42);
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert_eq!(id.partition(), 42);
    assert!((before..=after).contains(&id.timestamp_ms()));
    assert_eq!(Pfid::generate(u32::MAX).partition(), Pfid::MAX_PARTITION);
    assert!(Pfid::random_partition() <= Pfid::MAX_PARTITION);
}

#[test]
fn serde_uses_the_text_form() {
    let id = Pfid::from_parts(1_234_567_890_000, 123_456_789, [0; 10]).unwrap();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, "\"013xrzp12g3nqk8n0000000000000000\"");
    assert_eq!(serde_json::from_str::<Pfid>(&json).unwrap(), id);
    let error = serde_json::from_str::<Pfid>("\"nope\"").unwrap_err().to_string();
    assert!(error.contains("32 characters"), "{error}");
    assert!(serde_json::from_str::<Pfid>("12").is_err());
}

proptest! {
    #[test]
    fn text_round_trip(timestamp in 0..=Pfid::MAX_TIMESTAMP_MS, partition in 0..=Pfid::MAX_PARTITION, randomness in any::<[u8; 10]>()) {
        let id = Pfid::from_parts(timestamp, partition, randomness).unwrap();
        let text = id.to_string();
        prop_assert_eq!(text.len(), 32);
        prop_assert!(text.bytes().all(|b| b"0123456789abcdefghjkmnpqrstvwxyz".contains(&b)));
        let parsed: Pfid = text.parse().unwrap();
        prop_assert_eq!(parsed, id);
        prop_assert_eq!(text.to_uppercase().parse::<Pfid>().unwrap(), id);
        prop_assert_eq!((parsed.timestamp_ms(), parsed.partition(), parsed.randomness()), (timestamp, partition, randomness));
    }

    #[test]
    fn order_of_ids_is_order_of_text(a in any::<(u64, u32, [u8; 10])>(), b in any::<(u64, u32, [u8; 10])>()) {
        let make = |(t, p, r): (u64, u32, [u8; 10])| Pfid::from_parts(t & Pfid::MAX_TIMESTAMP_MS, p & Pfid::MAX_PARTITION, r).unwrap();
        let (a, b) = (make(a), make(b));
        prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
        prop_assert_eq!(a.timestamp_ms() < b.timestamp_ms(), a.timestamp_ms() < b.timestamp_ms() && a < b);
    }
}
