//! The file WAL: a preallocated local file used as a ring, written with positional writes and one fsync per group.
//!
//! Layout: two 512-byte header slots (the newer valid one wins, so a torn header write is
//! survived), then the ring of `capacity` bytes from byte 4096. Logical positions grow forever;
//! a record at position `p` lies at `4096 + p % capacity` and may wrap around the end.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::record::{self, Stamp, Stop, Stored, WalRecord};
use super::Recovered;
use crate::{Error, Result};

const DATA_START: u64 = 4096;
const SLOT_BYTES: u64 = 512;
const HEADER_MAGIC: &[u8; 8] = b"FLOEWAL1";
const HEADER_VERSION: u32 = 1;
const RECOVERY_CHUNK_BYTES: u64 = 8 << 20;

/// A ring-file WAL.
pub struct FileWal {
    file: Arc<File>,
    path: PathBuf,
    capacity: u64,
    /// Everything before `start` is trimmed.
    start: u64,
    /// Where the next record goes.
    end: u64,
    generation: u64,
}

#[derive(Debug, Clone, Copy)]
struct Header {
    capacity: u64,
    generation: u64,
    start: u64,
}

fn encode_header(h: &Header) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(SLOT_BYTES as usize);
    b.put_slice(HEADER_MAGIC);
    b.put_u32(HEADER_VERSION);
    b.put_u64(h.capacity);
    b.put_u64(h.generation);
    b.put_u64(h.start);
    let crc = crc32c::crc32c(&b);
    b.put_u32(crc);
    b.resize(SLOT_BYTES as usize, 0);
    b.to_vec()
}

fn decode_header(mut b: &[u8]) -> Option<Header> {
    if b.len() < 40 || &b[..8] != HEADER_MAGIC || crc32c::crc32c(&b[..36]) != (&b[36..40]).get_u32() {
        return None;
    }
    b.advance(8);
    if b.get_u32() != HEADER_VERSION {
        return None;
    }
    Some(Header { capacity: b.get_u64(), generation: b.get_u64(), start: b.get_u64() })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f).await.map_err(|e| Error::Io(std::io::Error::other(e)))??)
}

impl FileWal {
    /// Opens the WAL in `dir`, creating and preallocating it when missing.
    pub fn open(dir: &Path, capacity: u64) -> Result<Self> {
        if capacity < 1 << 20 {
            return Err(Error::InvalidArgument(format!("wal capacity {capacity} is below 1 MiB")));
        }
        std::fs::create_dir_all(dir)?;
        let path = dir.join("wal.log");
        let exists = path.exists();
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let header = if exists {
            let mut slots = vec![0u8; 2 * SLOT_BYTES as usize];
            file.read_exact_at(&mut slots, 0)?;
            let a = decode_header(&slots[..SLOT_BYTES as usize]);
            let b = decode_header(&slots[SLOT_BYTES as usize..]);
            match (a, b) {
                (Some(a), Some(b)) => {
                    if a.generation >= b.generation {
                        a
                    } else {
                        b
                    }
                }
                (Some(h), None) | (None, Some(h)) => h,
                (None, None) => return Err(Error::corrupt(path.display().to_string(), "no valid WAL header")),
            }
        } else {
            file.set_len(DATA_START + capacity)?;
            let h = Header { capacity, generation: 1, start: 0 };
            file.write_all_at(&encode_header(&h), 0)?;
            file.sync_all()?;
            h
        };
        if header.capacity != capacity {
            tracing::warn!(path = %path.display(), existing = header.capacity, asked = capacity, "WAL keeps the capacity it was created with");
        }
        Ok(Self { file: Arc::new(file), path, capacity: header.capacity, start: header.start, end: header.start, generation: header.generation })
    }

    /// Bytes that can still be written before the ring is full.
    pub fn free_bytes(&self) -> u64 {
        self.capacity - (self.end - self.start)
    }

    /// Writes a group of records with one write per ring segment and one fsync.
    pub async fn write(&mut self, records: &[WalRecord], stamps: &[Vec<Stamp>]) -> Result<Stored> {
        let len = records.iter().map(|r| r.encoded_len() as u64).sum::<u64>();
        if len > self.free_bytes() {
            return Err(Error::InvalidArgument(format!("WAL full: {len} bytes asked, {} free", self.free_bytes())));
        }
        let at = self.end;
        let (buf, ranges) = record::encode_group(records, stamps, |offset| at + offset);
        let (file, capacity, written) = (self.file.clone(), self.capacity, buf.clone());
        let fsync = blocking(move || {
            write_ring(&file, capacity, at, &written)?;
            let started = std::time::Instant::now();
            file.sync_data()?;
            Ok(started.elapsed())
        })
        .await?;
        self.end = at + len;
        Ok(Stored { end: self.end, payloads: ranges.into_iter().map(|r| buf.slice(r)).collect(), fsync: Some(fsync) })
    }

    /// Records in the header that everything before `pos` is free.
    pub async fn trim(&mut self, pos: u64) -> Result<()> {
        if pos <= self.start {
            return Ok(());
        }
        let pos = pos.min(self.end);
        let h = Header { capacity: self.capacity, generation: self.generation + 1, start: pos };
        let slot = (h.generation % 2) * SLOT_BYTES;
        let file = self.file.clone();
        blocking(move || {
            file.write_all_at(&encode_header(&h), slot)?;
            file.sync_data()
        })
        .await?;
        self.generation = h.generation;
        self.start = pos;
        Ok(())
    }

    /// Reads every record from the trim point on; cuts at the first torn or corrupt record.
    pub async fn recover(&mut self) -> Result<Recovered> {
        let mut records = Vec::new();
        let mut pos = self.start;
        let mut read_upto = self.start;
        let mut pending = Bytes::new();
        loop {
            match record::decode(&pending, pos, self.capacity as usize) {
                Ok(r) => {
                    let len = r.encoded_len();
                    pending.advance(len);
                    pos += len as u64;
                    records.push(r);
                }
                Err(Stop::Truncated) if read_upto < self.start + self.capacity => {
                    let n = RECOVERY_CHUNK_BYTES.min(self.start + self.capacity - read_upto);
                    let (file, capacity, at) = (self.file.clone(), self.capacity, read_upto);
                    let chunk = blocking(move || read_ring(&file, capacity, at, n as usize)).await?;
                    let mut joined = BytesMut::with_capacity(pending.len() + chunk.len());
                    joined.put_slice(&pending);
                    joined.put_slice(&chunk);
                    pending = joined.freeze();
                    read_upto += n;
                }
                Err(Stop::Checksum { len }) => {
                    tracing::warn!(path = %self.path.display(), position = pos, cut_bytes = len,
                        "WAL recovery cut a torn or corrupt record; everything before it is kept");
                    break;
                }
                Err(_) => break,
            }
        }
        self.end = pos;
        tracing::info!(records = records.len(), bytes = pos - self.start, "file WAL recovered");
        Ok(Recovered { records, end: pos })
    }
}

fn write_ring(file: &File, capacity: u64, pos: u64, buf: &[u8]) -> std::io::Result<()> {
    let phys = pos % capacity;
    let first = ((capacity - phys) as usize).min(buf.len());
    file.write_all_at(&buf[..first], DATA_START + phys)?;
    if first < buf.len() {
        file.write_all_at(&buf[first..], DATA_START)?;
    }
    Ok(())
}

fn read_ring(file: &File, capacity: u64, pos: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let phys = pos % capacity;
    let first = ((capacity - phys) as usize).min(len);
    file.read_exact_at(&mut buf[..first], DATA_START + phys)?;
    if first < len {
        file.read_exact_at(&mut buf[first..], DATA_START)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests;
