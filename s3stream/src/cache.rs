//! The two read caches, kept apart so catch-up reads never evict what tailing reads need.
//!
//! - [`LogCache`]: the most recent batches of every stream, in append order. Batches not yet
//!   uploaded cannot be evicted (they are the upload's source); uploaded ones are evicted oldest
//!   first once the cache is over `log_cache_bytes`.
//! - [`BlockCache`]: object blocks fetched for catch-up reads, least recently used out first.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::{Batch, StreamId};

/// Recent batches, per stream, in offset order.
#[derive(Default)]
pub struct LogCache {
    streams: HashMap<StreamId, VecDeque<Batch>>,
    /// Insertion order across streams: (stream, end offset of the batch).
    order: VecDeque<(StreamId, u64)>,
    bytes: u64,
    /// Bytes not yet uploaded.
    pending_bytes: u64,
    /// Per stream: offsets below this are uploaded.
    uploaded_end: HashMap<StreamId, u64>,
    bytes_max: u64,
}

impl LogCache {
    /// A cache that keeps up to `bytes_max` of uploaded data besides all pending data.
    pub fn new(bytes_max: u64) -> Self {
        Self { bytes_max, ..Default::default() }
    }

    /// Adds a durable batch.
    pub fn insert(&mut self, stream: StreamId, batch: Batch) {
        let len = batch.payload.len() as u64;
        self.bytes += len;
        self.pending_bytes += len;
        self.order.push_back((stream, batch.end_offset()));
        self.streams.entry(stream).or_default().push_back(batch);
    }

    /// Bytes waiting for upload.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Total bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Declares where a stream's uploaded data ends (e.g. after recovery).
    pub fn set_uploaded(&mut self, stream: StreamId, end: u64) {
        self.uploaded_end.insert(stream, end);
    }

    /// The batches not yet uploaded, per stream, in offset order.
    pub fn pending(&self) -> Vec<(StreamId, Vec<Batch>)> {
        let mut out: Vec<(StreamId, Vec<Batch>)> = self
            .streams
            .iter()
            .filter_map(|(&s, q)| {
                let up = self.uploaded_end.get(&s).copied().unwrap_or(0);
                let v: Vec<Batch> = q.iter().filter(|b| b.end_offset() > up).cloned().collect();
                (!v.is_empty()).then_some((s, v))
            })
            .collect();
        out.sort_by_key(|(s, _)| *s);
        out
    }

    /// Marks everything of `stream` below `end` as uploaded.
    pub fn mark_uploaded(&mut self, stream: StreamId, end: u64) {
        let up = self.uploaded_end.entry(stream).or_insert(0);
        let before = *up;
        if end <= before {
            return;
        }
        *up = end;
        if let Some(q) = self.streams.get(&stream) {
            let newly: u64 = q.iter().filter(|b| b.end_offset() > before && b.end_offset() <= end).map(|b| b.payload.len() as u64).sum();
            self.pending_bytes -= newly.min(self.pending_bytes);
        }
        self.evict();
    }

    fn evict(&mut self) {
        while self.bytes > self.bytes_max {
            let Some(&(stream, end)) = self.order.front() else { break };
            let up = self.uploaded_end.get(&stream).copied().unwrap_or(0);
            if end > up {
                break; // not uploaded yet: pending data stays
            }
            self.order.pop_front();
            if let Some(q) = self.streams.get_mut(&stream) {
                if q.front().is_some_and(|b| b.end_offset() == end) {
                    if let Some(b) = q.pop_front() {
                        self.bytes -= b.payload.len() as u64;
                    }
                }
            }
        }
    }

    /// First offset the cache holds for `stream`, if any.
    pub fn first_offset(&self, stream: StreamId) -> Option<u64> {
        self.streams.get(&stream)?.front().map(|b| b.base_offset)
    }

    /// Batches of `stream` overlapping `[from, to)`, up to `bytes_max` (at least one batch).
    pub fn read(&self, stream: StreamId, from: u64, to: u64, bytes_max: u64) -> Vec<Batch> {
        let Some(q) = self.streams.get(&stream) else { return vec![] };
        let i = q.partition_point(|b| b.end_offset() <= from);
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for b in q.iter().skip(i) {
            if b.base_offset >= to || (!out.is_empty() && bytes + b.payload.len() as u64 > bytes_max) {
                break;
            }
            bytes += b.payload.len() as u64;
            out.push(b.clone());
        }
        out
    }

    /// Drops batches of `stream` entirely below `start` (trimmed).
    pub fn trim(&mut self, stream: StreamId, start: u64) {
        if let Some(q) = self.streams.get_mut(&stream) {
            let up = self.uploaded_end.get(&stream).copied().unwrap_or(0);
            while q.front().is_some_and(|b| b.end_offset() <= start) {
                if let Some(b) = q.pop_front() {
                    self.bytes -= b.payload.len() as u64;
                    if b.end_offset() > up {
                        self.pending_bytes -= (b.payload.len() as u64).min(self.pending_bytes);
                    }
                }
            }
        }
        self.order.retain(|&(s, end)| s != stream || end > start);
    }

    /// Forgets a stream entirely.
    pub fn remove(&mut self, stream: StreamId) {
        self.trim(stream, u64::MAX);
        self.streams.remove(&stream);
        self.uploaded_end.remove(&stream);
    }
}

/// Object blocks by (object, block position), least recently used evicted first.
pub struct BlockCache {
    map: HashMap<(u64, u64), (Bytes, u64)>,
    tick: u64,
    bytes: u64,
    bytes_max: u64,
    hits: u64,
    misses: u64,
}

impl BlockCache {
    /// A cache of at most `bytes_max`.
    pub fn new(bytes_max: u64) -> Self {
        Self { map: HashMap::new(), tick: 0, bytes: 0, bytes_max, hits: 0, misses: 0 }
    }

    /// A cached block, if present.
    pub fn get(&mut self, object: u64, pos: u64) -> Option<Bytes> {
        self.tick += 1;
        let tick = self.tick;
        match self.map.get_mut(&(object, pos)) {
            Some((b, t)) => {
                *t = tick;
                self.hits += 1;
                Some(b.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Whether a block is cached (no hit or miss counted, its age untouched).
    pub fn contains(&self, object: u64, pos: u64) -> bool {
        self.map.contains_key(&(object, pos))
    }

    /// Caches a block, evicting the least recently used ones to stay in bounds.
    pub fn insert(&mut self, object: u64, pos: u64, block: Bytes) {
        if block.len() as u64 > self.bytes_max {
            return;
        }
        self.tick += 1;
        self.bytes += block.len() as u64;
        if let Some((old, _)) = self.map.insert((object, pos), (block, self.tick)) {
            self.bytes -= old.len() as u64;
        }
        while self.bytes > self.bytes_max {
            let Some((&k, _)) = self.map.iter().min_by_key(|(_, (_, t))| *t) else { break };
            if let Some((b, _)) = self.map.remove(&k) {
                self.bytes -= b.len() as u64;
            }
        }
    }

    /// Drops every block of an object (it was deleted).
    pub fn forget_object(&mut self, object: u64) {
        let before = self.bytes;
        let mut freed = 0;
        self.map.retain(|&(o, _), (b, _)| {
            let keep = o != object;
            if !keep {
                freed += b.len() as u64;
            }
            keep
        });
        self.bytes = before - freed;
    }

    /// (hits, misses) so far.
    pub fn hit_counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(base: u64, n: usize) -> Batch {
        Batch { base_offset: base, count: 1, payload: Bytes::from(vec![0; n]) }
    }

    #[test]
    fn pending_data_is_never_evicted_and_uploaded_data_is() {
        let mut c = LogCache::new(100);
        for i in 0..5 {
            c.insert(1, b(i, 50));
        }
        assert_eq!(c.bytes(), 250, "over the cap, but all pending");
        assert_eq!(c.pending()[0].1.len(), 5);
        c.mark_uploaded(1, 3);
        assert_eq!(c.pending_bytes(), 100);
        assert_eq!(c.first_offset(1), Some(3), "uploaded batches evicted down to the cap");
        assert_eq!(c.read(1, 0, 10, u64::MAX).len(), 2);
    }

    #[test]
    fn read_respects_range_and_byte_limit() {
        let mut c = LogCache::new(1 << 20);
        for i in 0..10 {
            c.insert(7, b(i * 2, 10));
        }
        let r = c.read(7, 5, 12, 25);
        assert_eq!(r.iter().map(|b| b.base_offset).collect::<Vec<_>>(), vec![6, 8], "batch 4 holds offset 4 only; 25 bytes fit two batches");
        assert_eq!(c.read(7, 5, 12, 0).len(), 1, "at least one batch");
    }

    #[test]
    fn block_cache_evicts_least_recently_used() {
        let mut c = BlockCache::new(30);
        c.insert(1, 0, Bytes::from(vec![0; 10]));
        c.insert(1, 10, Bytes::from(vec![0; 10]));
        c.insert(1, 20, Bytes::from(vec![0; 10]));
        assert!(c.get(1, 0).is_some());
        c.insert(2, 0, Bytes::from(vec![0; 10]));
        assert!(c.get(1, 10).is_none(), "least recently used went first");
        assert!(c.get(1, 0).is_some());
    }
}
