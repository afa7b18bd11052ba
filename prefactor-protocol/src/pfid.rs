//! PFID, the Prefactor identifier (section A5 of the API notes).
//!
//! A PFID is 160 bits: a 48-bit Unix timestamp in milliseconds, two zero bits, a 30-bit
//! partition and 80 random bits. Its text form is 32 lowercase Crockford base32 characters
//! (10 for the timestamp, 6 for the partition, 16 for the randomness), so string order is
//! time order. The binary form (big-endian timestamp, partition, randomness) has the same
//! order, which is what [`Ord`] compares.

use std::fmt;
use std::str::FromStr;

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Marks bytes that are not base32 digits in [`DECODE`].
const INVALID: u8 = 0xff;
/// Byte → digit value, case-insensitive; built at compile time so decoding is a table lookup.
const DECODE: [u8; 256] = build_decode_table();

const fn build_decode_table() -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut value = 0;
    while value < 32 {
        let lower = ALPHABET[value];
        table[lower as usize] = value as u8;
        table[lower.to_ascii_uppercase() as usize] = value as u8;
        value += 1;
    }
    table
}

/// Length of the text form.
pub const PFID_LEN: usize = 32;
const TIMESTAMP_CHARS: usize = 10;
const PARTITION_CHARS: usize = 6;
const RANDOM_CHARS: usize = 16;
const _: () = assert!(TIMESTAMP_CHARS + PARTITION_CHARS + RANDOM_CHARS == PFID_LEN);

/// A Prefactor id: time-ordered, partitioned, 160 bits.
///
/// ```
/// use prefactor_protocol::Pfid;
///
/// let id = Pfid::from_parts(1_234_567_890_000, 123_456_789, [0; 10])?;
/// assert_eq!(id.to_string(), "013xrzp12g3nqk8n0000000000000000");
/// assert_eq!(id, "013XRZP12G3NQK8N0000000000000000".parse()?);
/// assert_eq!(id.partition(), 123_456_789);
/// # Ok::<(), prefactor_protocol::PfidError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfid([u8; 20]);

/// Why a PFID could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PfidError {
    /// The timestamp does not fit in 48 bits.
    #[error("timestamp {timestamp_ms} ms does not fit in 48 bits (max {max})", max = Pfid::MAX_TIMESTAMP_MS)]
    TimestampOutOfRange {
        /// The rejected timestamp.
        timestamp_ms: u64,
    },
    /// The partition does not fit in 30 bits.
    #[error("partition {partition} does not fit in 30 bits (max {max})", max = Pfid::MAX_PARTITION)]
    PartitionOutOfRange {
        /// The rejected partition.
        partition: u32,
    },
    /// The text is not 32 characters long.
    #[error("a PFID is {PFID_LEN} characters long, got {length}")]
    InvalidLength {
        /// Length of the rejected text, in bytes.
        length: usize,
    },
    /// A character outside the Crockford base32 alphabet.
    #[error("invalid character {character:?} at position {position}: a PFID uses only 0-9 and a-z without i, l, o, u")]
    InvalidCharacter {
        /// The rejected character.
        character: char,
        /// Its 0-based character position.
        position: usize,
    },
    /// The first character encodes more than 48 bits of timestamp.
    #[error("invalid first character {character:?}: a PFID starts with 0-7")]
    TimestampOverflow {
        /// The rejected first character.
        character: char,
    },
}

impl Pfid {
    /// Largest timestamp that fits in 48 bits.
    pub const MAX_TIMESTAMP_MS: u64 = (1 << 48) - 1;
    /// Largest partition that fits in 30 bits.
    pub const MAX_PARTITION: u32 = (1 << 30) - 1;

    /// Builds a PFID from its three parts.
    ///
    /// ```
    /// use prefactor_protocol::{Pfid, PfidError};
    /// assert!(Pfid::from_parts(0, 0, [0; 10]).is_ok());
    /// assert_eq!(
    ///     Pfid::from_parts(0, 1 << 30, [0; 10]),
    ///     Err(PfidError::PartitionOutOfRange { partition: 1 << 30 })
    /// );
    /// ```
    pub fn from_parts(timestamp_ms: u64, partition: u32, randomness: [u8; 10]) -> Result<Pfid, PfidError> {
        if timestamp_ms > Self::MAX_TIMESTAMP_MS {
            return Err(PfidError::TimestampOutOfRange { timestamp_ms });
        }
        if partition > Self::MAX_PARTITION {
            return Err(PfidError::PartitionOutOfRange { partition });
        }
        Ok(Self::from_valid_parts(timestamp_ms, partition, randomness))
    }

    #[inline]
    fn from_valid_parts(timestamp_ms: u64, partition: u32, randomness: [u8; 10]) -> Pfid {
        let mut bytes = [0u8; 20];
        bytes[..6].copy_from_slice(&timestamp_ms.to_be_bytes()[2..]);
        bytes[6..10].copy_from_slice(&partition.to_be_bytes());
        bytes[10..].copy_from_slice(&randomness);
        Pfid(bytes)
    }

    /// A new PFID for the current time (`SystemTime`, never earlier than the last id this
    /// thread generated, so its ids never go back in time) in `partition` (masked to its low 30 bits), with 80
    /// bits from a fast thread-local generator. Does not allocate or lock.
    ///
    /// ```
    /// use prefactor_protocol::Pfid;
    /// let a = Pfid::generate(7);
    /// assert_eq!(a.partition(), 7);
    /// assert_ne!(a, Pfid::generate(7));
    /// ```
    pub fn generate(partition: u32) -> Pfid {
        Self::generate_at(unix_millis_never_backwards(), partition)
    }

    /// A new PFID for `timestamp_ms` (masked to 48 bits) in `partition` (masked to 30 bits),
    /// with 80 random bits: [`generate`](Pfid::generate) for a clock reading the caller already
    /// has, so one reading can time a span and name it.
    ///
    /// ```
    /// use prefactor_protocol::Pfid;
    /// let id = Pfid::generate_at(1_234_567_890_000, 7);
    /// assert_eq!((id.timestamp_ms(), id.partition()), (1_234_567_890_000, 7));
    /// ```
    #[inline]
    pub fn generate_at(timestamp_ms: u64, partition: u32) -> Pfid {
        // One draw of 128 bits: one thread-local access for all 80 random bits.
        let mut randomness = [0u8; 10];
        randomness.copy_from_slice(&fastrand::u128(..).to_ne_bytes()[..10]);
        Self::from_valid_parts(timestamp_ms & Self::MAX_TIMESTAMP_MS, partition & Self::MAX_PARTITION, randomness)
    }

    /// A random 30-bit partition.
    pub fn random_partition() -> u32 {
        fastrand::u32(..=Self::MAX_PARTITION)
    }

    /// Milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> u64 {
        let mut be = [0u8; 8];
        be[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(be)
    }

    /// The 30-bit partition.
    pub fn partition(&self) -> u32 {
        u32::from_be_bytes([self.0[6], self.0[7], self.0[8], self.0[9]])
    }

    /// The 80 random bits.
    pub fn randomness(&self) -> [u8; 10] {
        let mut randomness = [0u8; 10];
        randomness.copy_from_slice(&self.0[10..]);
        randomness
    }

    /// The 20-byte binary form.
    pub fn to_bytes(&self) -> [u8; 20] {
        self.0
    }

    /// The text form in a stack buffer (no allocation).
    ///
    /// ```
    /// use prefactor_protocol::Pfid;
    /// let id = Pfid::from_parts(0, 0, [0; 10]).unwrap();
    /// assert_eq!(&*id.encode(), "00000000000000000000000000000000");
    /// ```
    pub fn encode(&self) -> PfidStr {
        let mut buf = [0u8; PFID_LEN];
        write_base32(&mut buf[..TIMESTAMP_CHARS], u128::from(self.timestamp_ms()));
        write_base32(&mut buf[TIMESTAMP_CHARS..TIMESTAMP_CHARS + PARTITION_CHARS], u128::from(self.partition()));
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&self.0[10..]);
        write_base32(&mut buf[TIMESTAMP_CHARS + PARTITION_CHARS..], u128::from_be_bytes(random));
        PfidStr(buf)
    }
}

/// Writes `value` as `out.len()` base32 digits, most significant first.
fn write_base32(out: &mut [u8], mut value: u128) {
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
}

/// Reads base32 digits; `offset` is the position of `digits[0]` in the whole id, for errors.
fn read_base32(digits: &[u8], offset: usize) -> Result<u128, PfidError> {
    let mut value = 0u128;
    for (index, &byte) in digits.iter().enumerate() {
        let digit = DECODE[byte as usize];
        if digit == INVALID {
            return Err(PfidError::InvalidCharacter { character: char::from(byte), position: offset + index });
        }
        value = (value << 5) | u128::from(digit);
    }
    Ok(value)
}

impl FromStr for Pfid {
    type Err = PfidError;

    fn from_str(text: &str) -> Result<Pfid, PfidError> {
        if let Some((position, character)) = text.char_indices().find(|(_, c)| !c.is_ascii()) {
            let position = text[..position].chars().count();
            return Err(PfidError::InvalidCharacter { character, position });
        }
        let bytes = text.as_bytes();
        if bytes.len() != PFID_LEN {
            return Err(PfidError::InvalidLength { length: bytes.len() });
        }
        let timestamp = read_base32(&bytes[..TIMESTAMP_CHARS], 0)?;
        let partition = read_base32(&bytes[TIMESTAMP_CHARS..TIMESTAMP_CHARS + PARTITION_CHARS], TIMESTAMP_CHARS)?;
        let random = read_base32(&bytes[TIMESTAMP_CHARS + PARTITION_CHARS..], TIMESTAMP_CHARS + PARTITION_CHARS)?;
        let timestamp_ms =
            u64::try_from(timestamp).map_err(|_| PfidError::TimestampOverflow { character: char::from(bytes[0]) })?;
        if timestamp_ms > Self::MAX_TIMESTAMP_MS {
            return Err(PfidError::TimestampOverflow { character: char::from(bytes[0]) });
        }
        // Six base32 digits hold exactly 30 bits, so the partition always fits.
        let partition = partition as u32;
        let mut randomness = [0u8; 10];
        randomness.copy_from_slice(&random.to_be_bytes()[6..]);
        Ok(Self::from_valid_parts(timestamp_ms, partition, randomness))
    }
}

impl fmt::Display for Pfid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl fmt::Debug for Pfid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfid({})", &*self.encode())
    }
}

impl serde::Serialize for Pfid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for Pfid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Pfid, D::Error> {
        struct PfidVisitor;
        impl serde::de::Visitor<'_> for PfidVisitor {
            type Value = Pfid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 32-character PFID string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Pfid, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(PfidVisitor)
    }
}

/// The text form of a [`Pfid`], held on the stack.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PfidStr([u8; PFID_LEN]);

impl PfidStr {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        // Every byte comes from ALPHABET, so this is always valid ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for PfidStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for PfidStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PfidStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

thread_local! {
    /// The last timestamp `Pfid::generate` used on this thread.
    static LAST_MILLIS: Cell<u64> = const { Cell::new(0) };
}

/// Milliseconds since the Unix epoch from `SystemTime` (0 before it), never less than the last
/// reading on this thread (a clock set back holds still until it catches up).
fn unix_millis_never_backwards() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis());
    let now = u64::try_from(now).unwrap_or(u64::MAX);
    LAST_MILLIS
        .try_with(|last| {
            let kept = now.max(last.get());
            last.set(kept);
            kept
        })
        .unwrap_or(now)
}
