//! The small trait through which Table Topics read a topic's records (the broker implements it).

use async_trait::async_trait;
use bytes::Bytes;

/// One Kafka record, decoded from its batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceRecord {
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Set when the record stands for a stored batch that could not be decoded (a lying record
    /// count, a compression bomb, corrupt bytes): `offset` is the batch's first, `value` its raw
    /// bytes, and the record goes to the dead-letter table with this reason.
    pub undecodable: Option<String>,
}

/// Records read from one partition.
#[derive(Debug, Clone, Default)]
pub struct SourceRead {
    /// Records at or after the requested offset, in offset order (control records left out).
    pub records: Vec<SourceRecord>,
    /// Where the next read starts (past the last record returned, or past skipped ones).
    pub next_offset: i64,
    /// The end of the durable log when the read was made.
    pub log_end: i64,
}

/// A topic's records as the broker stores them. Only durable (acknowledged) data is returned.
#[async_trait]
pub trait RecordSource: Send + Sync + 'static {
    /// Number of partitions of `topic`.
    async fn partitions(&self, topic: &str) -> Result<i32, String>;
    /// (log start, log end) of a partition.
    async fn bounds(&self, topic: &str, partition: i32) -> Result<(i64, i64), String>;
    /// Records from `from` on, about `bytes_max` of them at most (at least one batch).
    async fn read(&self, topic: &str, partition: i32, from: i64, bytes_max: u64) -> Result<SourceRead, String>;
}
