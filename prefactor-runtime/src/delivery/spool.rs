//! The disk spool (`Config::spool_dir`): operations that cannot reach the API during an outage,
//! or are still unsent when the client closes, are appended here as the single requests they
//! would have been (path and body, idempotency key included), and sent again in order, by this
//! client once the API answers or by the next client started with the same directory.
//!
//! File format (`spool.log`): records one after another, each `len: u32 LE`, `crc32: u32 LE` of
//! the payload, then the payload: the request path, a newline, the JSON body. A write torn by a
//! crash leaves a short or mismatched last record: reading stops there, and opening the spool
//! cuts the file back to the last whole record before anything is appended, so a torn write
//! loses at most the record being written. Each append is flushed to disk (`sync_data`) before
//! the operations count as spooled.
//!
//! One process at a time: `spool.lock` is held with an exclusive lock for the spool's life; a
//! second client finds it taken and runs without a spool (logged).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes before each payload: length and checksum.
const HEADER: usize = 8;

/// Largest payload accepted when reading: a longer length field is a torn or foreign file.
const MAX_RECORD: u32 = 64 << 20;

/// One spooled request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpoolRecord {
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
}

impl SpoolRecord {
    fn payload(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(self.path.len() + 1 + self.body.len());
        payload.extend_from_slice(self.path.as_bytes());
        payload.push(b'\n');
        payload.extend_from_slice(&self.body);
        payload
    }

    fn from_payload(payload: &[u8]) -> Option<SpoolRecord> {
        let split = payload.iter().position(|b| *b == b'\n')?;
        let path = std::str::from_utf8(&payload[..split]).ok()?.to_owned();
        Some(SpoolRecord { path, body: payload[split + 1..].to_vec() })
    }
}

/// An open spool, locked for this process.
pub(crate) struct Spool {
    log: File,
    /// Held for the spool's life: the exclusive lock is released when it is dropped.
    _lock: File,
    /// Bytes of whole records in `log`.
    len: u64,
    max_bytes: u64,
}

impl Spool {
    /// Opens (creating) the spool in `dir`; `Ok(None)` when another process holds it.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> io::Result<Option<Spool>> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("spool.lock"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(err)) => return Err(err),
        }
        let mut log =
            OpenOptions::new().create(true).truncate(false).read(true).write(true).open(dir.join("spool.log"))?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes)?;
        let (_, whole) = decode(&bytes);
        if whole < bytes.len() {
            tracing::warn!(
                dropped_bytes = bytes.len() - whole,
                "prefactor: the spool ends with a torn record (a crash while writing); it is cut off"
            );
            log.set_len(whole as u64)?;
            log.sync_data()?;
        }
        Ok(Some(Spool { log, _lock: lock, len: whole as u64, max_bytes }))
    }

    /// Bytes of whole records.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends `records` in order and flushes them to disk; returns how many fit under
    /// `max_bytes` (the first that does not fit and all after it are not written).
    pub(crate) fn append(&mut self, records: &[SpoolRecord]) -> io::Result<usize> {
        let mut out = Vec::new();
        let mut taken = 0;
        for record in records {
            let payload = record.payload();
            let Ok(len) = u32::try_from(payload.len()) else { break };
            if self.len + (out.len() + HEADER + payload.len()) as u64 > self.max_bytes || len > MAX_RECORD {
                break;
            }
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
            taken += 1;
        }
        if out.is_empty() {
            return Ok(taken);
        }
        self.log.seek(SeekFrom::Start(self.len))?;
        self.log.write_all(&out)?;
        self.log.sync_data()?;
        self.len += out.len() as u64;
        Ok(taken)
    }

    /// The whole records from byte `offset` on, each with the offset just past it.
    pub(crate) fn read_from(&mut self, offset: u64) -> io::Result<Vec<(u64, SpoolRecord)>> {
        let mut bytes = Vec::new();
        self.log.seek(SeekFrom::Start(offset))?;
        (&mut self.log).take(self.len.saturating_sub(offset)).read_to_end(&mut bytes)?;
        let (records, _) = decode(&bytes);
        Ok(records.into_iter().map(|(end, record)| (offset + end as u64, record)).collect())
    }

    /// Empties the spool (every record was delivered or settled).
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        self.log.set_len(0)?;
        self.log.sync_data()?;
        self.len = 0;
        Ok(())
    }
}

/// The whole, intact records of `bytes` (each with the offset just past it), and how many
/// bytes they cover: reading stops at the first short, oversized or corrupt record.
fn decode(bytes: &[u8]) -> (Vec<(usize, SpoolRecord)>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            break;
        }
        let start = at + HEADER;
        let Some(payload) = bytes.get(start..start + len as usize) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(record) = SpoolRecord::from_payload(payload) else { break };
        at = start + len as usize;
        records.push((at, record));
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u32) -> SpoolRecord {
        SpoolRecord {
            path: format!("/agent_spans/{n}/finish"),
            body: format!(r#"{{"idempotency_key":"k{n}"}}"#).into(),
        }
    }

    #[test]
    fn records_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap().unwrap();
        assert_eq!(spool.append(&[record(1), record(2)]).unwrap(), 2);
        assert_eq!(spool.append(&[record(3)]).unwrap(), 1);
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap().unwrap();
        let read: Vec<SpoolRecord> = spool.read_from(0).unwrap().into_iter().map(|(_, r)| r).collect();
        assert_eq!(read, [record(1), record(2), record(3)]);
        let (after_first, _) = spool.read_from(0).unwrap()[0].clone();
        let rest: Vec<SpoolRecord> = spool.read_from(after_first).unwrap().into_iter().map(|(_, r)| r).collect();
        assert_eq!(rest, [record(2), record(3)]);
        spool.clear().unwrap();
        assert!(spool.read_from(0).unwrap().is_empty());
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_off_and_loses_only_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap().unwrap();
        spool.append(&[record(1), record(2)]).unwrap();
        let whole = spool.len();
        drop(spool);
        let path = dir.path().join("spool.log");
        // A crash in the middle of writing the third record.
        let mut torn = std::fs::read(&path).unwrap();
        let third = {
            let payload = record(3).payload();
            let mut out = (payload.len() as u32).to_le_bytes().to_vec();
            out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
            out
        };
        torn.extend_from_slice(&third[..third.len() - 5]);
        std::fs::write(&path, &torn).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap().unwrap();
        assert_eq!(spool.len(), whole, "cut back to the whole records");
        spool.append(&[record(4)]).unwrap();
        let read: Vec<SpoolRecord> = spool.read_from(0).unwrap().into_iter().map(|(_, r)| r).collect();
        assert_eq!(read, [record(1), record(2), record(4)], "what follows the cut is readable");
        drop(spool);

        // A flipped byte inside the second record: the checksum stops reading there.
        let mut bytes = std::fs::read(&path).unwrap();
        let second_payload = HEADER + record(1).payload().len() + HEADER + 2;
        bytes[second_payload] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap().unwrap();
        let read: Vec<SpoolRecord> = spool.read_from(0).unwrap().into_iter().map(|(_, r)| r).collect();
        assert_eq!(read, [record(1)]);
    }

    #[test]
    fn one_process_at_a_time_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 200).unwrap().unwrap();
        assert!(Spool::open(dir.path(), 200).unwrap().is_none(), "the lock is held");
        let taken = spool.append(&[record(1), record(2), record(3), record(4), record(5)]).unwrap();
        assert!((1..5).contains(&taken), "{taken} records fit in 200 bytes");
        assert!(spool.len() <= 200);
        drop(spool);
        assert!(Spool::open(dir.path(), 200).unwrap().is_some(), "released with the spool");
    }
}
