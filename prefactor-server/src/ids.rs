//! Client-supplied ids: accepted when they are valid PFIDs, normalised to lowercase.

use prefactor_protocol::Pfid;

use crate::error::ApiError;

/// Parses `text` as a PFID for the field `field`; 422 naming the field otherwise.
///
/// ```
/// use prefactor_server::ids::parse_pfid;
/// assert_eq!(parse_pfid("id", "013XRZP12G3NQK8N0000000000000000").unwrap(), "013xrzp12g3nqk8n0000000000000000");
/// let error = parse_pfid("details.id", "abc").unwrap_err();
/// assert_eq!(error.status, 422);
/// assert!(error.errors.unwrap().contains_key("details.id"));
/// ```
pub fn parse_pfid(field: &str, text: &str) -> Result<String, ApiError> {
    text.parse::<Pfid>()
        // The encoded form straight into a String (`to_string` would go through the formatter).
        .map(|pfid| pfid.encode().as_str().to_owned())
        .map_err(|error| ApiError::validation(field, format!("'{text}' is not a valid PFID: {error}")))
}

/// Like [`parse_pfid`] for a path segment: an id that cannot exist is reported as 404 would
/// hide the typo, so it is a 422 as well.
pub fn parse_path_id(kind: &str, text: &str) -> Result<String, ApiError> {
    parse_pfid(&format!("{kind} id"), text)
}

/// Server-side id generator: PFIDs in one partition that strictly increase, even within one
/// millisecond (the random part is incremented then), so "newest first by id" and id
/// tie-breaks in span order are exact.
#[derive(Debug)]
pub struct IdGenerator {
    partition: u32,
    last: std::sync::Mutex<(u64, u128)>,
}

impl IdGenerator {
    /// A generator for `partition`.
    pub fn new(partition: u32) -> IdGenerator {
        IdGenerator { partition: partition & Pfid::MAX_PARTITION, last: std::sync::Mutex::new((0, 0)) }
    }

    /// The next id.
    ///
    /// ```
    /// use prefactor_server::ids::IdGenerator;
    /// let ids = IdGenerator::new(5);
    /// let (a, b) = (ids.next(), ids.next());
    /// assert!(a < b);
    /// ```
    pub fn next(&self) -> String {
        const RANDOM_MAX: u128 = (1 << 80) - 1;
        let fresh = Pfid::generate(self.partition);
        let Ok(mut last) = self.last.lock() else {
            return fresh.to_string();
        };
        let mut timestamp = fresh.timestamp_ms();
        let mut random = randomness_value(&fresh);
        if timestamp <= last.0 {
            timestamp = last.0;
            random = last.1 + 1;
            if random > RANDOM_MAX {
                timestamp += 1;
                random = 0;
            }
        }
        *last = (timestamp, random);
        let bytes = random.to_be_bytes();
        let mut randomness = [0u8; 10];
        randomness.copy_from_slice(&bytes[6..]);
        Pfid::from_parts(timestamp, self.partition, randomness).unwrap_or(fresh).to_string()
    }
}

fn randomness_value(pfid: &Pfid) -> u128 {
    let mut bytes = [0u8; 16];
    bytes[6..].copy_from_slice(&pfid.randomness());
    // Keep headroom so increments within one millisecond never overflow in practice.
    u128::from_be_bytes(bytes) >> 1
}
