//! The write-ahead log: a durable buffer for appends until they are uploaded to object storage.
//!
//! Two kinds share one record format ([`record`]): a local ring file ([`file`]) and object
//! storage itself ([`object`]). Group commit is the engine's writer task: it hands a whole group
//! of records to [`Wal::write`], which makes them durable with one fsync or one object.

pub mod file;
pub mod object;
pub mod record;

use crate::Result;
pub use record::{Stamp, Stored, WalRecord};

/// Either kind of WAL.
pub enum Wal {
    File(file::FileWal),
    Object(object::ObjectWal),
}

/// What recovery found in the WAL.
pub struct Recovered {
    pub records: Vec<WalRecord>,
    /// Position just past the last good record: where writing resumes.
    pub end: u64,
}

impl Wal {
    /// Makes `records` durable, each stamped with `stamps[i]` on its one copy into the WAL's
    /// buffer; returns the WAL position just past them and the payloads as stored.
    pub async fn write(&mut self, records: &[WalRecord], stamps: &[Vec<Stamp>]) -> Result<Stored> {
        match self {
            Wal::File(w) => w.write(records, stamps).await,
            Wal::Object(w) => w.write(records, stamps).await,
        }
    }

    /// Frees everything before `pos`: it has been uploaded and committed.
    pub async fn trim(&mut self, pos: u64) -> Result<()> {
        match self {
            Wal::File(w) => w.trim(pos).await,
            Wal::Object(w) => w.trim(pos).await,
        }
    }

    /// Reads back every record not yet trimmed, cutting a torn or corrupt tail.
    pub async fn recover(&mut self) -> Result<Recovered> {
        match self {
            Wal::File(w) => w.recover().await,
            Wal::Object(w) => w.recover().await,
        }
    }

    /// Recovers, then (object WAL) claims the next object name so that a previous owner's next
    /// write fails: see [`object::ObjectWal::recover_and_fence`]. The file WAL is local to its
    /// node and only recovers.
    pub async fn recover_and_fence(&mut self, floor: u64) -> Result<Recovered> {
        match self {
            Wal::File(w) => w.recover().await,
            Wal::Object(w) => w.recover_and_fence(floor).await,
        }
    }

    /// Bytes that fit before the WAL is full (`u64::MAX` for the object WAL).
    pub fn free_bytes(&self) -> u64 {
        match self {
            Wal::File(w) => w.free_bytes(),
            Wal::Object(_) => u64::MAX,
        }
    }

    /// How long the writer waits to gather a group (zero: write as soon as anything is queued).
    pub fn linger(&self) -> std::time::Duration {
        match self {
            Wal::File(_) => std::time::Duration::ZERO,
            Wal::Object(w) => w.linger(),
        }
    }
}
