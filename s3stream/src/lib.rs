//! Floe's storage engine: append-only streams of opaque batches, made durable by a WAL and kept on object storage.
//!
//! It knows nothing of Kafka. Modules:
//! - [`engine`]: the [`Engine`] — open, append, read, trim, close, delete streams.
//! - [`wal`]: the write-ahead log, a local ring file or object storage itself.
//! - [`object`]: the self-describing stream-set object format (blocks, index, footer).
//! - [`manifest`]: stream and object metadata, committed to object storage with conditional puts.
//! - [`cache`]: the log cache (tailing reads, un-uploaded data) and the block cache (catch-up reads).
//! - [`store`]: opening object stores and the retrying, instrumented and fault-injecting layers.
//! - [`compaction`]: merging small objects and deleting unreferenced ones.
//! - [`clock`]: the injected wall clock (object ages, the garbage grace period).

pub mod cache;
pub mod clock;
pub mod compaction;
pub mod config;
pub mod engine;
pub mod error;
pub mod manifest;
pub mod metrics;
pub mod object;
pub mod store;
pub mod wal;

pub use clock::{Clock, SystemClock};
pub use config::{EngineConfig, WalKind};
pub use engine::{Durable, Engine, EngineStats, Handoff, RewriteStats, Rewritten, StreamInfo};
pub use error::{Error, ErrorKind, Result};
pub use wal::Stamp;

/// Identifies a stream inside one engine (and one bucket).
pub type StreamId = u64;

/// A batch as stored in a stream: `count` logical records starting at `base_offset`, opaque payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Offset of the first record of the batch.
    pub base_offset: u64,
    /// Number of offsets the batch occupies (at least 1).
    pub count: u32,
    /// The bytes, as appended.
    pub payload: bytes::Bytes,
}

impl Batch {
    /// The offset just past this batch.
    pub fn end_offset(&self) -> u64 {
        self.base_offset + u64::from(self.count)
    }
}
