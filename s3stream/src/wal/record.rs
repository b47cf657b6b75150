//! The WAL record format, shared by both kinds: a checksum, a length and a position on every record.
//!
//! `crc32c u32 | len u32 | pos u64 | stream u64 | base_offset u64 | count u32 | payload[len]`,
//! big-endian; the checksum covers everything after itself. `pos` is the record's own logical
//! position, so a stale record left from an earlier lap of the ring is told from a fresh one.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Batch, StreamId};

/// Bytes before the payload.
pub const HEADER_BYTES: usize = 36;

/// One appended batch as the WAL stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    pub stream: StreamId,
    pub batch: Batch,
}

impl WalRecord {
    /// Bytes this record takes in the WAL.
    pub fn encoded_len(&self) -> usize {
        HEADER_BYTES + self.batch.payload.len()
    }

    /// Appends the encoding of this record, at logical position `pos`, to `out`: the payload is
    /// copied once, with `stamps` written over it, and the checksum covers it as stamped.
    pub fn encode(&self, pos: u64, stamps: &[Stamp], out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0);
        out.put_u32(self.batch.payload.len() as u32);
        out.put_u64(pos);
        out.put_u64(self.stream);
        out.put_u64(self.batch.base_offset);
        out.put_u32(self.batch.count);
        out.put_slice(&self.batch.payload);
        let payload = start + HEADER_BYTES;
        for s in stamps {
            // Checked by the engine when the append was taken (`Stamp::fits`).
            if let Some(word) = out.get_mut(payload + s.at..payload + s.at + 8) {
                word.copy_from_slice(&s.value.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[start + 4..]);
        out[start..start + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A word written over a payload as it is copied into the WAL: `value`, 8 bytes big-endian, at
/// byte `at` of the payload. What the caller learns only once offsets are assigned (a Kafka
/// batch's base offset) is stamped on the one copy instead of costing a copy of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub at: usize,
    pub value: u64,
}

impl Stamp {
    /// Whether the word lies inside a payload of `len` bytes.
    pub fn fits(&self, len: usize) -> bool {
        self.at.checked_add(8).is_some_and(|end| end <= len)
    }
}

/// A group as written: the WAL position just past it, and each record's payload as stored
/// (stamped), sharing the written buffer, for the log cache.
pub struct Stored {
    pub end: u64,
    pub payloads: Vec<Bytes>,
    /// How long the file WAL's fsync took (the object WAL has none: its put is the write).
    pub fsync: Option<std::time::Duration>,
}

/// Encodes a group into one buffer, each payload copied once and stamped (`stamps[i]` for
/// `records[i]`; missing entries stamp nothing). Record `i` is at `pos(i, offset in the buffer)`.
pub fn encode_group(records: &[WalRecord], stamps: &[Vec<Stamp>], pos: impl Fn(u64) -> u64) -> (Bytes, Vec<std::ops::Range<usize>>) {
    let mut buf = BytesMut::with_capacity(records.iter().map(WalRecord::encoded_len).sum());
    let mut ranges = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let start = buf.len();
        r.encode(pos(start as u64), stamps.get(i).map_or(&[][..], Vec::as_slice), &mut buf);
        ranges.push(start + HEADER_BYTES..buf.len());
    }
    (buf.freeze(), ranges)
}

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Not enough bytes for a header or the payload it announces.
    Truncated,
    /// A header for another position: the end of what was written in this lap.
    StalePosition,
    /// A record whose checksum does not match: a torn or corrupt write of `len` bytes.
    Checksum { len: usize },
}

/// Decodes the record expected at `pos` from the front of `buf`.
pub fn decode(buf: &Bytes, pos: u64, len_max: usize) -> Result<WalRecord, Stop> {
    if buf.len() < HEADER_BYTES {
        return Err(Stop::Truncated);
    }
    if buf[..HEADER_BYTES].iter().all(|&b| b == 0) {
        return Err(Stop::StalePosition); // never written: a fresh ring reads as zeros
    }
    let mut h = &buf[..HEADER_BYTES];
    let crc = h.get_u32();
    let len = h.get_u32() as usize;
    let at = h.get_u64();
    if at != pos {
        return Err(Stop::StalePosition);
    }
    if len > len_max {
        return Err(Stop::Checksum { len: HEADER_BYTES });
    }
    if buf.len() < HEADER_BYTES + len {
        return Err(Stop::Truncated);
    }
    if crc32c::crc32c(&buf[4..HEADER_BYTES + len]) != crc {
        return Err(Stop::Checksum { len: HEADER_BYTES + len });
    }
    let stream = h.get_u64();
    let base_offset = h.get_u64();
    let count = h.get_u32();
    let payload = buf.slice(HEADER_BYTES..HEADER_BYTES + len);
    Ok(WalRecord { stream, batch: Batch { base_offset, count, payload } })
}
