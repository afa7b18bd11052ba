//! Every vector of the PFID reference implementation's fixtures (`tests/fixtures/pfid_fixtures.csv`;
//! where they come from: `tests/fixtures/README.md`).

use prefactor_protocol::Pfid;

const FIXTURES: &str = include_str!("fixtures/pfid_fixtures.csv");

struct Vector {
    timestamp_ms: u64,
    partition: u32,
    randomness: [u8; 10],
    text: String,
}

fn parse_hex(hex: &str) -> [u8; 10] {
    let mut bytes = [0u8; 10];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).expect("fixture hex");
    }
    bytes
}

fn vectors() -> Vec<Vector> {
    let mut lines = FIXTURES.lines();
    assert_eq!(lines.next(), Some("timestamp,partition,randomness_hex,pfid"));
    lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.trim().split(',').collect();
            assert_eq!(fields.len(), 4, "fixture line {line:?}");
            Vector {
                timestamp_ms: fields[0].parse().expect("fixture timestamp"),
                partition: fields[1].parse().expect("fixture partition"),
                randomness: parse_hex(fields[2]),
                text: fields[3].to_owned(),
            }
        })
        .collect()
}

#[test]
fn fixture_file_has_all_vectors() {
    assert!(vectors().len() > 1000, "expected the full fixture set");
}

#[test]
fn encoding_matches_every_fixture() {
    for vector in vectors() {
        let id = Pfid::from_parts(vector.timestamp_ms, vector.partition, vector.randomness).expect("valid parts");
        assert_eq!(id.to_string(), vector.text, "encoding of {:?}", vector.text);
    }
}

#[test]
fn decoding_matches_every_fixture_in_any_case() {
    for vector in vectors() {
        for text in [vector.text.clone(), vector.text.to_uppercase()] {
            let id: Pfid = text.parse().expect("fixture parses");
            assert_eq!(id.timestamp_ms(), vector.timestamp_ms, "{text}");
            assert_eq!(id.partition(), vector.partition, "{text}");
            assert_eq!(id.randomness(), vector.randomness, "{text}");
        }
    }
}

#[test]
fn fixture_order_by_text_is_order_by_id() {
    let mut vectors = vectors();
    vectors.sort_by(|a, b| a.text.cmp(&b.text));
    let ids: Vec<Pfid> = vectors.iter().map(|v| v.text.parse().expect("fixture parses")).collect();
    assert!(ids.windows(2).all(|pair| pair[0] <= pair[1]));
}
