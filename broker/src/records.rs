//! Kafka record batches (magic v2) as the broker sees them: validated record by record, stored as received.
//!
//! Header layout (big-endian): base_offset i64 @0, batch_length i32 @8, partition_leader_epoch
//! i32 @12, magic i8 @16, crc u32 @17 (CRC-32C of bytes 21..), attributes i16 @21,
//! last_offset_delta i32 @23, base_timestamp i64 @27, max_timestamp i64 @35, producer_id i64 @43,
//! producer_epoch i16 @51, base_sequence i32 @53, records_count i32 @57, records @61.

use std::borrow::Cow;

use crate::error::{BrokerError, Result};

pub mod compress;
pub mod control;
pub mod decompress;
pub mod retain;
pub mod walk;

/// Bytes in a v2 batch header.
pub const HEADER_BYTES: usize = 61;
const LOG_OVERHEAD: usize = 12;

/// What the broker needs to know of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// Where the batch starts in the buffer it was parsed from.
    pub position: usize,
    /// Total bytes of the batch.
    pub size: usize,
    /// Offsets the batch spans (last offset delta + 1): its record count as produced, more than
    /// its records once compaction has thinned it (see [`stored_count`]).
    pub records: u32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub max_timestamp: i64,
    pub base_timestamp: i64,
    pub transactional: bool,
    pub control: bool,
    /// Timestamp type LogAppendTime: every record's timestamp is the batch's max timestamp.
    pub log_append_time: bool,
}

impl BatchInfo {
    /// The last offset delta (offsets spanned − 1), within `i32`.
    pub fn last_offset_delta(&self) -> i32 {
        self.records.saturating_sub(1).min(i32::MAX as u32) as i32
    }

    /// The sequence number of the last record.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        ((i64::from(self.base_sequence) + i64::from(self.records) - 1) % (i64::from(i32::MAX) + 1)) as i32
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

/// Validates every batch in a produce payload: framing, magic, CRC, and every record (count,
/// lengths, varints, offset deltas), compressed ones decompressed into at most
/// `decompressed_bytes_max` bytes.
pub fn validate(buf: &[u8], decompressed_bytes_max: usize) -> Result<Vec<BatchInfo>> {
    validate_for(buf, decompressed_bytes_max, false)
}

/// [`validate`], and with `keys_required` (a compacted topic) every record must have a key, as
/// Kafka asks: checked in the same walk.
pub fn validate_for(buf: &[u8], decompressed_bytes_max: usize, keys_required: bool) -> Result<Vec<BatchInfo>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < LOG_OVERHEAD + 5 {
            return Err(BrokerError::CorruptMessage(format!("{} trailing bytes are not a batch", rest.len())));
        }
        let magic = rest[16] as i8;
        if magic != 2 {
            return Err(BrokerError::UnsupportedMessageFormat(magic));
        }
        let batch_length = i32_at(rest, 8);
        if batch_length < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
            return Err(BrokerError::CorruptMessage(format!("batch length {batch_length} is below the header size")));
        }
        let size = LOG_OVERHEAD + batch_length as usize;
        if size > rest.len() {
            return Err(BrokerError::CorruptMessage(format!("batch of {size} bytes is cut at {}", rest.len())));
        }
        let b = &rest[..size];
        let crc = u32::from_be_bytes([b[17], b[18], b[19], b[20]]);
        if crc32c::crc32c(&b[21..]) != crc {
            return Err(BrokerError::CorruptMessage("CRC mismatch".into()));
        }
        let attributes = i16_at(b, 21);
        let last_offset_delta = i32_at(b, 23);
        let records_count = i32_at(b, 57);
        if records_count <= 0 || last_offset_delta != records_count - 1 {
            return Err(BrokerError::InvalidRecord(format!("batch declares {records_count} records and last offset delta {last_offset_delta}")));
        }
        let mut keyless = false;
        records_of(b, records_count as u32, decompressed_bytes_max, |r| keyless |= r.key.is_none()).map_err(BrokerError::InvalidRecord)?;
        if keys_required && keyless {
            return Err(BrokerError::InvalidRecord("a compacted topic cannot take a record without a key".into()));
        }
        out.push(BatchInfo {
            position: pos,
            size,
            records: records_count as u32,
            producer_id: i64_at(b, 43),
            producer_epoch: i16_at(b, 51),
            base_sequence: i32_at(b, 53),
            base_timestamp: i64_at(b, 27),
            max_timestamp: i64_at(b, 35),
            transactional: attributes & 0x10 != 0,
            control: attributes & 0x20 != 0,
            log_append_time: attributes & 0x08 != 0,
        });
        pos += size;
    }
    if out.is_empty() {
        return Err(BrokerError::InvalidRecord("no record batch in the request".into()));
    }
    Ok(out)
}

/// Walks the records of one batch (`b` starts at its header), decompressing them first if they
/// are compressed; `f` sees each record.
pub fn records_of(b: &[u8], count: u32, decompressed_bytes_max: usize, f: impl FnMut(walk::RecordView<'_>)) -> std::result::Result<(), String> {
    walk::records(&records_section(b, decompressed_bytes_max)?, count, f)
}

/// The records section of one batch (`b` starts at its header): borrowed when uncompressed,
/// inflated into at most `decompressed_bytes_max` bytes otherwise.
pub fn records_section(b: &[u8], decompressed_bytes_max: usize) -> std::result::Result<Cow<'_, [u8]>, String> {
    let body = b.get(HEADER_BYTES..).ok_or("a batch is shorter than its header")?;
    match i16_at(b, 21) & 0x07 {
        0 => Ok(Cow::Borrowed(body)),
        codec => decompress::decompress(codec, body, decompressed_bytes_max).map(Cow::Owned),
    }
}

/// How many records a stored batch holds (`b` starts at its header): fewer than its offsets
/// once compaction has thinned it.
pub fn stored_count(b: &[u8]) -> u32 {
    if b.len() < HEADER_BYTES {
        return 0;
    }
    i32_at(b, 57).max(0) as u32
}

/// Parses the headers of stored batches (already validated when produced).
pub fn headers(buf: &[u8]) -> Vec<(i64, BatchInfo)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + HEADER_BYTES <= buf.len() {
        let b = &buf[pos..];
        let size = LOG_OVERHEAD + i32_at(b, 8).max(0) as usize;
        if size < HEADER_BYTES || pos + size > buf.len() {
            break;
        }
        out.push((
            i64_at(b, 0),
            BatchInfo {
                position: pos,
                size,
                records: (i64::from(i32_at(b, 23)) + 1).clamp(0, i64::from(u32::MAX)) as u32,
                producer_id: i64_at(b, 43),
                producer_epoch: i16_at(b, 51),
                base_sequence: i32_at(b, 53),
                base_timestamp: i64_at(b, 27),
                max_timestamp: i64_at(b, 35),
                transactional: i16_at(b, 21) & 0x10 != 0,
                control: i16_at(b, 21) & 0x20 != 0,
                log_append_time: i16_at(b, 21) & 0x08 != 0,
            },
        ));
        pos += size;
    }
    out
}

/// The first record of an uncompressed batch (starting at `b[0]`) whose timestamp is at least
/// `ts`: (offset delta, timestamp). `None` for a compressed batch, or if no record qualifies.
pub fn first_record_at_or_after(b: &[u8], info: &BatchInfo, ts: i64) -> Option<(i64, i64)> {
    if i16_at(b, 21) & 0x07 != 0 || info.log_append_time {
        return None; // compressed, or log-append time
    }
    let mut found = None;
    walk::stored_records(b.get(HEADER_BYTES..)?, stored_count(b), info.last_offset_delta(), |r| {
        let at = info.base_timestamp.saturating_add(r.timestamp_delta);
        if found.is_none() && at >= ts {
            found = Some((i64::from(r.offset_delta), at));
        }
    })
    .ok()?;
    found
}

/// The base offsets of the batches, assigned from `base` consecutively, as stamps the engine
/// writes on the batches' one copy into the WAL. The CRC does not cover the base offset, so the
/// batches stay valid; nothing else is touched.
pub fn offset_stamps(batches: &[BatchInfo], base: u64) -> Vec<floe_s3stream::Stamp> {
    let mut offset = base;
    let mut stamps = Vec::with_capacity(batches.len());
    for b in batches {
        stamps.push(floe_s3stream::Stamp { at: b.position, value: offset });
        offset += u64::from(b.records);
    }
    stamps
}

#[cfg(test)]
pub(crate) mod tests;
