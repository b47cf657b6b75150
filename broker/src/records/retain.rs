//! Thinning a stored batch to the records a predicate keeps (log compaction): base offset, last offset delta, timestamps and producer fields stay as they were.
//!
//! Kept records are copied byte for byte (their offset and timestamp deltas are relative to the
//! unchanged header), re-framed, compressed again with the batch's codec, and the header's
//! length, record count and CRC rewritten — as Kafka's cleaner does, so a consumer reads the
//! kept records at their original offsets and resumes after the batch's last offset.

use bytes::BufMut;

use super::walk::{self, put_varint, RecordView};
use super::{compress, i16_at, i32_at, i64_at, records_section, stored_count, HEADER_BYTES, LOG_OVERHEAD};

/// What is left of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retained {
    /// Every record: the batch stays as it is.
    All,
    /// Some records: the rewritten batch.
    Some(Vec<u8>),
    /// No record.
    None,
}

/// One record as the predicate sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Keeps the records of batch `b` (starting at its header, stored at offset `base`) for which
/// `keep` says so; compressed records inflate into at most `decompressed_bytes_max`.
pub fn retain(b: &[u8], base: i64, decompressed_bytes_max: usize, mut keep: impl FnMut(&Candidate<'_>) -> bool) -> Result<Retained, String> {
    if b.len() < HEADER_BYTES {
        return Err("a batch is shorter than its header".into());
    }
    let attributes = i16_at(b, 21);
    let log_append_time = attributes & 0x08 != 0;
    let (base_ts, max_ts) = (i64_at(b, 27), i64_at(b, 35));
    let count = stored_count(b);
    let body = records_section(b, decompressed_bytes_max)?;
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut seen = 0u32;
    walk::stored_records(&body, count, i32_at(b, 23), |r: RecordView<'_>| {
        seen += 1;
        let timestamp_ms = if log_append_time { max_ts } else { base_ts.saturating_add(r.timestamp_delta) };
        let c = Candidate { offset: base.saturating_add(i64::from(r.offset_delta)), timestamp_ms, key: r.key, value: r.value };
        if keep(&c) {
            kept.push(r.raw);
        }
    })?;
    if kept.len() as u32 == seen {
        return Ok(Retained::All);
    }
    if kept.is_empty() {
        return Ok(Retained::None);
    }
    let mut plain = Vec::with_capacity(kept.iter().map(|r| r.len() + 5).sum());
    for r in &kept {
        put_varint(&mut plain, r.len() as i64);
        plain.put_slice(r);
    }
    let records = compress::compress(attributes & 0x07, &plain)?;
    let mut out = Vec::with_capacity(HEADER_BYTES + records.len());
    out.extend_from_slice(&b[..HEADER_BYTES]);
    out.extend_from_slice(&records);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| "a rewritten batch is over 2 GiB")?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Retained::Some(out))
}

#[cfg(test)]
mod tests;
