//! The stream-set object format (version 1): data blocks, an index, a fixed footer, checksums on each.
//!
//! ```text
//! block*   : record* where record = base_offset u64 | count u32 | len u32 | payload[len]
//! index    : entry* where entry = stream u64 | start u64 | end u64 | pos u64 | len u32 | crc32c u32 | records u32
//! footer   : index_pos u64 | index_len u32 | index_crc u32 | version u32 | footer_crc u32 | magic "FLOEOBJ1"
//! ```
//! All integers are big-endian. A block holds one stream's contiguous batches (an object may
//! leave gaps between blocks of a stream after a rewrite); a stream object is
//! a stream-set object with a single stream. The encoder and decoder do no I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Batch, Error, Result, StreamId};

/// Format version written by this code.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"FLOEOBJ1";
/// Bytes in the footer.
pub const FOOTER_BYTES: usize = 32;
const ENTRY_BYTES: usize = 44;
const RECORD_HEADER_BYTES: usize = 16;

/// Where one block of one stream lies in an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub stream: StreamId,
    pub start: u64,
    pub end: u64,
    pub pos: u64,
    pub len: u32,
    pub crc: u32,
    pub records: u32,
}

/// The parsed footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub index_pos: u64,
    pub index_len: u32,
    pub index_crc: u32,
}

/// Builds one object from batches, stream by stream, in offset order.
pub struct ObjectBuilder {
    buf: BytesMut,
    index: Vec<IndexEntry>,
    block_bytes_max: usize,
    open: Option<IndexEntry>,
}

impl ObjectBuilder {
    /// A builder that cuts blocks at about `block_bytes_max`.
    pub fn new(block_bytes_max: usize) -> Self {
        Self::with_capacity(block_bytes_max, 0)
    }

    /// As [`Self::new`], its buffer sized for `bytes` at once (a 64 MiB object grown by
    /// doubling is copied and faulted in about twice over).
    pub fn with_capacity(block_bytes_max: usize, bytes: usize) -> Self {
        Self { buf: BytesMut::with_capacity(bytes), index: Vec::new(), block_bytes_max: block_bytes_max.max(1), open: None }
    }

    /// The bytes an object of `batches` takes, blocks and an index entry a batch at most.
    pub fn bytes_for<'a>(batches: impl IntoIterator<Item = &'a Batch>) -> usize {
        batches.into_iter().map(|b| RECORD_HEADER_BYTES + ENTRY_BYTES + b.payload.len()).sum::<usize>() + FOOTER_BYTES
    }

    /// Adds a batch. Batches of one stream must come in offset order; a gap (a rewrite dropped
    /// batches) starts a new block, so each block stays contiguous.
    pub fn push(&mut self, stream: StreamId, batch: &Batch) {
        let pos = self.buf.len() as u64;
        let cut = match &self.open {
            Some(e) => e.stream != stream || e.end != batch.base_offset || e.len as usize >= self.block_bytes_max,
            None => true,
        };
        if cut {
            self.close_block();
            self.open = Some(IndexEntry { stream, start: batch.base_offset, end: batch.base_offset, pos, len: 0, crc: 0, records: 0 });
        }
        self.buf.put_u64(batch.base_offset);
        self.buf.put_u32(batch.count);
        self.buf.put_u32(batch.payload.len() as u32);
        self.buf.put_slice(&batch.payload);
        if let Some(e) = self.open.as_mut() {
            e.end = batch.end_offset();
            e.len += (RECORD_HEADER_BYTES + batch.payload.len()) as u32;
            e.records += 1;
        }
    }

    fn close_block(&mut self) {
        if let Some(mut e) = self.open.take() {
            let start = e.pos as usize;
            e.crc = crc32c::crc32c(&self.buf[start..start + e.len as usize]);
            self.index.push(e);
        }
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Finishes the object: returns its bytes and its index.
    pub fn finish(mut self) -> (Bytes, Vec<IndexEntry>) {
        self.close_block();
        let index_pos = self.buf.len() as u64;
        for e in &self.index {
            self.buf.put_u64(e.stream);
            self.buf.put_u64(e.start);
            self.buf.put_u64(e.end);
            self.buf.put_u64(e.pos);
            self.buf.put_u32(e.len);
            self.buf.put_u32(e.crc);
            self.buf.put_u32(e.records);
        }
        let index_len = (self.buf.len() as u64 - index_pos) as u32;
        let index_crc = crc32c::crc32c(&self.buf[index_pos as usize..]);
        let footer_start = self.buf.len();
        self.buf.put_u64(index_pos);
        self.buf.put_u32(index_len);
        self.buf.put_u32(index_crc);
        self.buf.put_u32(FORMAT_VERSION);
        let footer_crc = crc32c::crc32c(&self.buf[footer_start..]);
        self.buf.put_u32(footer_crc);
        self.buf.put_slice(MAGIC);
        (self.buf.freeze(), self.index)
    }
}

/// Parses the last [`FOOTER_BYTES`] of an object.
pub fn decode_footer(object: &str, mut b: &[u8]) -> Result<Footer> {
    if b.len() != FOOTER_BYTES {
        return Err(Error::corrupt(object, format!("footer is {} bytes, expected {FOOTER_BYTES}", b.len())));
    }
    if &b[24..32] != MAGIC {
        return Err(Error::corrupt(object, "bad magic: not a Floe object"));
    }
    let crc = crc32c::crc32c(&b[..20]);
    let index_pos = b.get_u64();
    let index_len = b.get_u32();
    let index_crc = b.get_u32();
    let version = b.get_u32();
    let footer_crc = b.get_u32();
    if crc != footer_crc {
        return Err(Error::ChecksumMismatch { object: object.to_string(), offset: index_pos + u64::from(index_len) });
    }
    if version != FORMAT_VERSION {
        return Err(Error::corrupt(object, format!("unsupported object format version {version}")));
    }
    Ok(Footer { index_pos, index_len, index_crc })
}

/// Where the index lies in an object of `size` bytes; an error if the footer points outside it.
pub fn index_range(object: &str, footer: &Footer, size: u64) -> Result<std::ops::Range<u64>> {
    let end = footer.index_pos + u64::from(footer.index_len);
    if end + FOOTER_BYTES as u64 != size {
        return Err(Error::corrupt(object, format!("index ends at {end}, but the footer starts at {}", size.saturating_sub(FOOTER_BYTES as u64))));
    }
    Ok(footer.index_pos..end)
}

/// Parses and checks an index read at `footer.index_pos`.
pub fn decode_index(object: &str, footer: &Footer, b: &[u8]) -> Result<Vec<IndexEntry>> {
    if b.len() != footer.index_len as usize || !b.len().is_multiple_of(ENTRY_BYTES) {
        return Err(Error::corrupt(object, format!("index of {} bytes", b.len())));
    }
    if crc32c::crc32c(b) != footer.index_crc {
        return Err(Error::ChecksumMismatch { object: object.to_string(), offset: footer.index_pos });
    }
    let mut b = b;
    let mut out = Vec::with_capacity(b.len() / ENTRY_BYTES);
    while b.has_remaining() {
        let e = IndexEntry {
            stream: b.get_u64(),
            start: b.get_u64(),
            end: b.get_u64(),
            pos: b.get_u64(),
            len: b.get_u32(),
            crc: b.get_u32(),
            records: b.get_u32(),
        };
        if e.pos + u64::from(e.len) > footer.index_pos || e.end < e.start {
            return Err(Error::corrupt(object, format!("index entry out of bounds: {e:?}")));
        }
        out.push(e);
    }
    Ok(out)
}

/// Checks a block's checksum and splits it into batches (zero-copy slices of `block`).
pub fn decode_block(object: &str, entry: &IndexEntry, block: Bytes) -> Result<Vec<Batch>> {
    if block.len() != entry.len as usize || crc32c::crc32c(&block) != entry.crc {
        return Err(Error::ChecksumMismatch { object: object.to_string(), offset: entry.pos });
    }
    let mut out = Vec::with_capacity(entry.records as usize);
    let mut rest = block;
    while !rest.is_empty() {
        if rest.len() < RECORD_HEADER_BYTES {
            return Err(Error::corrupt(object, "truncated record header in block"));
        }
        let mut h = &rest[..RECORD_HEADER_BYTES];
        let base_offset = h.get_u64();
        let count = h.get_u32();
        let len = h.get_u32() as usize;
        if rest.len() < RECORD_HEADER_BYTES + len {
            return Err(Error::corrupt(object, "truncated record in block"));
        }
        rest.advance(RECORD_HEADER_BYTES);
        let payload = rest.split_to(len);
        out.push(Batch { base_offset, count, payload });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
