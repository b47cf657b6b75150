//! One partition: its stream, waiters for new data, idempotent-producer state and a time/size index.
//!
//! The producer table and the index are updated while the partition's sequencing lock is held,
//! in request arrival order; both are bounded and both are snapshotted (see `state`).

use std::collections::{HashMap, VecDeque};

use floe_s3stream::StreamId;
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::records::BatchInfo;

/// Batches remembered per producer for duplicate detection (as Kafka: the last five).
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// Index entries kept per partition; past this, neighbours are merged.
pub const INDEX_ENTRIES_MAX: usize = 8192;

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqEntry {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
}

/// What a partition knows of one idempotent producer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<SeqEntry>,
    /// When the broker last stored a batch of this producer (the broker's clock, never the
    /// client's record timestamps), for expiry.
    #[serde(default, alias = "last_ts")]
    pub last_seen_ms: i64,
}

/// The verdict on a produced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Append it.
    Append,
    /// A retry of a batch already stored at this base offset: acknowledge, do not store.
    Duplicate(i64),
}

/// Idempotent producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerTable {
    pub producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(s: i32) -> i32 {
    if s == i32::MAX {
        0
    } else {
        s + 1
    }
}

impl ProducerTable {
    /// Checks a batch's producer id, epoch and sequence against what was stored before.
    pub fn check(&self, b: &BatchInfo) -> Result<SeqCheck> {
        if b.producer_id < 0 {
            return Ok(SeqCheck::Append);
        }
        let Some(p) = self.producers.get(&b.producer_id) else {
            return Ok(SeqCheck::Append);
        };
        if b.producer_epoch < p.epoch {
            return Err(BrokerError::InvalidProducerEpoch { producer_id: b.producer_id, epoch: b.producer_epoch, current: p.epoch });
        }
        if b.producer_epoch > p.epoch {
            return if b.base_sequence == 0 {
                Ok(SeqCheck::Append)
            } else {
                Err(BrokerError::OutOfOrderSequence { producer_id: b.producer_id, expected: 0, got: b.base_sequence })
            };
        }
        if let Some(d) = p.batches.iter().find(|e| e.first_seq == b.base_sequence && e.last_seq == b.last_sequence()) {
            return Ok(SeqCheck::Duplicate(d.base_offset));
        }
        let expected = p.batches.back().map_or(0, |e| next_seq(e.last_seq));
        if b.base_sequence != expected {
            return Err(BrokerError::OutOfOrderSequence { producer_id: b.producer_id, expected, got: b.base_sequence });
        }
        Ok(SeqCheck::Append)
    }

    /// Records a batch stored at `now_ms` (the broker's clock).
    pub fn record(&mut self, b: &BatchInfo, base_offset: i64, now_ms: i64) {
        if b.producer_id < 0 {
            return;
        }
        let p = self.producers.entry(b.producer_id).or_default();
        if b.control {
            // A transaction marker: no sequence (the producer's next batch continues its own),
            // but an epoch bumped by the coordinator fences the producer's older epoch here.
            if b.producer_epoch > p.epoch {
                p.epoch = b.producer_epoch;
                p.batches.clear();
            }
            return;
        }
        if p.batches.iter().any(|e| e.base_offset == base_offset) {
            return; // already recorded (a rescan after a snapshot)
        }
        if b.producer_epoch != p.epoch {
            p.epoch = b.producer_epoch;
            p.batches.clear();
        }
        p.last_seen_ms = p.last_seen_ms.max(now_ms);
        p.batches.push_back(SeqEntry { first_seq: b.base_sequence, last_seq: b.last_sequence(), base_offset });
        while p.batches.len() > PRODUCER_BATCHES_KEPT {
            p.batches.pop_front();
        }
    }
}

impl ProducerTable {
    /// Forgets producers not heard from since `before_ms` (Kafka's `producer.id.expiration.ms`).
    pub fn expire(&mut self, before_ms: i64) -> usize {
        let n = self.producers.len();
        self.producers.retain(|_, p| p.last_seen_ms >= before_ms);
        n - self.producers.len()
    }
}

/// One span of the partition: offsets from `offset`, newest timestamp `max_ts`, and the bytes
/// stored before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub offset: i64,
    pub max_ts: i64,
    pub bytes_before: u64,
}

/// A sparse, bounded index of timestamps and sizes, for ListOffsets and retention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeIndex {
    pub entries: Vec<IndexEntry>,
    /// Bytes stored in total (the value `bytes_before` of the next entry).
    pub bytes_end: u64,
}

impl TimeIndex {
    /// Adds a stored span.
    pub fn push(&mut self, offset: i64, max_ts: i64, bytes: u64) {
        if self.entries.last().is_some_and(|e| e.offset >= offset) {
            return; // already indexed (a replay after a snapshot)
        }
        self.entries.push(IndexEntry { offset, max_ts, bytes_before: self.bytes_end });
        self.bytes_end += bytes;
        if self.entries.len() > INDEX_ENTRIES_MAX {
            let merged: Vec<IndexEntry> = self
                .entries
                .chunks(2)
                .map(|c| IndexEntry { offset: c[0].offset, max_ts: c.iter().map(|e| e.max_ts).max().unwrap_or(c[0].max_ts), bytes_before: c[0].bytes_before })
                .collect();
            self.entries = merged;
        }
    }

    /// Forgets spans that end at or before `start`.
    pub fn trim(&mut self, start: i64) {
        let keep_from = self.entries.partition_point(|e| e.offset <= start).saturating_sub(1);
        self.entries.drain(..keep_from);
    }

    /// The first offset from which a scan for timestamp `ts` must start.
    pub fn scan_start_for(&self, ts: i64) -> Option<i64> {
        self.entries.iter().find(|e| e.max_ts >= ts).map(|e| e.offset)
    }

    /// The start of the first span holding a record newer than `ts`.
    pub fn first_newer_than(&self, ts: i64) -> Option<i64> {
        self.entries.iter().find(|e| e.max_ts > ts).map(|e| e.offset)
    }

    /// Bytes stored before offset `offset`, to the precision of the spans (rounded up to a span start).
    pub fn bytes_at(&self, offset: i64) -> u64 {
        self.entries.iter().find(|e| e.offset >= offset).map_or(self.bytes_end, |e| e.bytes_before)
    }

    /// The newest timestamp of the span holding `offset`.
    pub fn max_ts_at(&self, offset: i64) -> Option<i64> {
        self.entries.iter().rev().find(|e| e.offset <= offset).map(|e| e.max_ts)
    }

    /// Where retention may cut: the start of the first span to keep, given the log start.
    pub fn retention_cut(&self, log_start: i64, end: i64, now_ms: i64, retention_ms: i64, retention_bytes: i64) -> Option<i64> {
        let mut cut = log_start;
        for (i, e) in self.entries.iter().enumerate() {
            let next = self.entries.get(i + 1).map_or(end, |n| n.offset);
            if next <= log_start {
                continue;
            }
            let too_old = retention_ms >= 0 && e.max_ts < now_ms - retention_ms;
            // As Kafka: drop a span while what is left after it still reaches retention.bytes.
            let left_after = self.bytes_end - self.entries.get(i + 1).map_or(self.bytes_end, |n| n.bytes_before);
            let too_big = retention_bytes >= 0 && left_after >= retention_bytes as u64;
            // Only whole spans are cut; the last span (the active one) is never cut.
            if (too_old || too_big) && i + 1 < self.entries.len() {
                cut = next;
            } else {
                break;
            }
        }
        (cut > log_start).then_some(cut)
    }
}

/// A partition of a topic.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub stream: StreamId,
    /// Held while a produce is checked and queued, so batches keep their arrival order.
    pub sequencing: tokio::sync::Mutex<()>,
    pub producers: parking_lot::Mutex<ProducerTable>,
    pub time_index: parking_lot::Mutex<TimeIndex>,
    /// Open and aborted transactions (the LSO, and what read_committed skips).
    pub txn: parking_lot::Mutex<crate::txn::index::TxnIndex>,
    /// How far log compaction has cleaned the partition.
    pub cleaned: parking_lot::Mutex<crate::cleaner::CleanMark>,
    /// What clients moved through it here (the load a cluster's balancer weighs).
    pub traffic: Traffic,
    /// The broker that leads the partition (`-1`: this node, running alone) and its leader epoch.
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// Whether this node serves the partition (its stream is open here).
    pub local: bool,
}

impl Partition {
    /// A partition of a node that runs alone: served here.
    pub fn new(topic: String, index: i32, stream: StreamId) -> Self {
        Self::led(topic, index, stream, -1, 0, true)
    }

    /// A partition led by `leader_id` at `leader_epoch`; `local` when that is this node.
    pub fn led(topic: String, index: i32, stream: StreamId, leader_id: i32, leader_epoch: i32, local: bool) -> Self {
        Self {
            leader_id,
            leader_epoch,
            local,
            topic,
            index,
            stream,
            sequencing: tokio::sync::Mutex::new(()),
            producers: Default::default(),
            time_index: Default::default(),
            txn: Default::default(),
            cleaned: Default::default(),
            traffic: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: i64, epoch: i16, seq: i32, records: u32) -> BatchInfo {
        BatchInfo {
            position: 0,
            size: 100,
            records,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            max_timestamp: 0,
            base_timestamp: 0,
            transactional: false,
            control: false,
            log_append_time: false,
        }
    }

    #[test]
    fn retries_are_duplicates_and_gaps_are_out_of_order() {
        let mut t = ProducerTable::default();
        let b0 = info(7, 0, 0, 3);
        assert_eq!(t.check(&b0).expect("ok"), SeqCheck::Append);
        t.record(&b0, 100, 0);
        assert_eq!(t.check(&b0).expect("ok"), SeqCheck::Duplicate(100));
        assert!(matches!(t.check(&info(7, 0, 5, 1)), Err(BrokerError::OutOfOrderSequence { expected: 3, got: 5, .. })));
        let b1 = info(7, 0, 3, 2);
        assert_eq!(t.check(&b1).expect("ok"), SeqCheck::Append);
        t.record(&b1, 103, 0);
        for i in 0..6 {
            t.record(&info(7, 0, 5 + i, 1), 105 + i64::from(i), 0);
        }
        assert_eq!(t.producers[&7].batches.len(), PRODUCER_BATCHES_KEPT);
        assert!(matches!(t.check(&info(7, 0, 11, 1)), Ok(SeqCheck::Append)), "the next sequence after the kept window");
        t.record(&info(7, 1, 0, 1), 200, 0);
        assert!(matches!(t.check(&info(7, 0, 12, 1)), Err(BrokerError::InvalidProducerEpoch { .. })));
        assert_eq!(t.check(&info(-1, -1, -1, 1)).expect("ok"), SeqCheck::Append, "non-idempotent batches pass");
        // Producer 8 writes records stamped far in the future: the broker's clock decides.
        t.record(&BatchInfo { max_timestamp: i64::MAX, ..info(8, 0, 0, 1) }, 300, 5_000);
        assert_eq!(t.expire(1_000), 1, "producer 7 (last seen at 0) expires, 8 (seen at 5,000) stays");
        assert!(t.producers.contains_key(&8));
        assert_eq!(t.expire(6_000), 1, "and 8 expires by the broker's clock, whatever its timestamps say");
    }

    #[test]
    fn index_cuts_whole_old_or_oversized_spans_only() {
        let mut ix = TimeIndex::default();
        for i in 0..10 {
            ix.push(i * 10, 1000 + i * 100, 50);
        }
        assert_eq!(ix.scan_start_for(1250), Some(30));
        assert_eq!(ix.retention_cut(0, 100, 1600, 300, -1), Some(30), "spans whose newest record is older than 1300 go");
        assert_eq!(ix.retention_cut(0, 100, 1600, -1, 120), Some(70), "150 bytes left: dropping 50 more would go under 120");
        assert_eq!(ix.retention_cut(0, 100, 100_000, 1, -1), Some(90), "the active span stays");
        ix.trim(30);
        assert_eq!(ix.entries[0].offset, 30);
    }
}

/// Counters of what clients moved through a partition served here, since it was opened here.
#[derive(Debug, Default)]
pub struct Traffic {
    pub bytes_in: std::sync::atomic::AtomicU64,
    pub bytes_out: std::sync::atomic::AtomicU64,
    /// Produce and fetch reads of the partition.
    pub requests: std::sync::atomic::AtomicU64,
}

impl Traffic {
    pub fn produced(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn fetched(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// (bytes in, bytes out, requests).
    pub fn totals(&self) -> [u64; 3] {
        use std::sync::atomic::Ordering::Relaxed;
        [self.bytes_in.load(Relaxed), self.bytes_out.load(Relaxed), self.requests.load(Relaxed)]
    }
}
