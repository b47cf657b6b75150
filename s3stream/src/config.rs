//! Engine settings: plain values with defaults; the broker fills them from its own settings.

use serde::{Deserialize, Serialize};

/// Which write-ahead log the engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WalKind {
    /// A preallocated local ring file, group-committed with one fsync per batch of appends.
    #[default]
    File,
    /// Object storage itself: appends buffered and written as one object (a diskless node).
    Object,
}

/// Settings of the storage engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    pub wal: WalKind,
    /// Directory of the file WAL (ignored by the object WAL).
    pub wal_dir: std::path::PathBuf,
    /// Size of the file WAL ring.
    pub wal_capacity_bytes: u64,
    /// Object WAL: how long appends wait to be written together.
    pub wal_batch_interval_ms: u64,
    /// Object WAL: write as soon as this much is buffered.
    pub wal_batch_bytes: u64,
    /// Largest group of appends written with one fsync (file WAL) or one object.
    pub wal_write_bytes_max: u64,
    /// Upload WAL data to object storage once this much is waiting.
    pub upload_bytes: u64,
    /// Upload at least this often when anything is waiting.
    pub upload_interval_ms: u64,
    /// At upload, a stream with at least this much waiting gets an object of its own.
    pub stream_object_bytes: u64,
    /// Appends wait (back-pressure) while this much is not yet uploaded.
    pub upload_pending_bytes_max: u64,
    /// Recent data kept in memory for tailing reads (beyond what is not uploaded yet).
    pub log_cache_bytes: u64,
    /// Object blocks kept in memory for catch-up reads.
    pub block_cache_bytes: u64,
    /// Catch-up reads: after a read served from objects, this much more of the stream is fetched
    /// into the block cache in the background, in large ranged GETs (0: no read-ahead). At most
    /// half the block cache is being read ahead at once, node-wide.
    pub read_ahead_bytes: u64,
    /// Target size of a data block inside an object.
    pub object_block_bytes: u64,
    /// Bounded queue of appends waiting for the WAL writer.
    pub append_queue_max: usize,
    /// Compaction: merge stream-set objects once this many are live.
    pub compaction_object_count: usize,
    /// Compaction: how often to look for work.
    pub compaction_interval_ms: u64,
    /// Compaction reads and writes at most this many bytes per second (0: unlimited).
    pub compaction_bytes_per_second: u64,
    /// Unreferenced objects are deleted after this grace period.
    pub object_grace_ms: u64,
    /// Prefix of this engine's own manifest chain and object WAL (`""`: the bucket's root, one
    /// engine per bucket). Data objects are always under `data/`, shared by every engine.
    pub node_prefix: String,
    /// The lowest epoch this engine may claim. Engines sharing a bucket take their epochs from one
    /// counter, so object and stream ids (`epoch << 40 | n`) never collide between them.
    pub epoch_min: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            wal: WalKind::File,
            wal_dir: std::path::PathBuf::from("wal"),
            wal_capacity_bytes: 2 << 30,
            wal_batch_interval_ms: 250,
            wal_batch_bytes: 8 << 20,
            wal_write_bytes_max: 8 << 20,
            upload_bytes: 64 << 20,
            upload_interval_ms: 5_000,
            stream_object_bytes: 16 << 20,
            upload_pending_bytes_max: 512 << 20,
            log_cache_bytes: 256 << 20,
            block_cache_bytes: 128 << 20,
            read_ahead_bytes: 8 << 20,
            object_block_bytes: 512 << 10,
            append_queue_max: 4096,
            compaction_object_count: 8,
            compaction_interval_ms: 30_000,
            compaction_bytes_per_second: 64 << 20,
            object_grace_ms: 60_000,
            node_prefix: String::new(),
            epoch_min: 0,
        }
    }
}
