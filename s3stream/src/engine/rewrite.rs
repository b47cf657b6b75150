//! Rewriting a stream's uploaded prefix through the caller's filter (the broker's log compaction): new stream objects replace the old ranges, offsets never move, dropped batches leave gaps.
//!
//! The rewrite reads `[start, to)` in bounded steps without blocking appends or reads, writes the
//! batches the filter keeps into stream objects of at most [`REWRITE_OBJECT_BYTES_MAX`], and then
//! swaps, in one manifest commit, every range below the rewritten end for the new ones. It holds
//! the compaction lock throughout, so the stream-set compaction never replaces the same ranges
//! at the same time; a trim or a delete meanwhile wins (the new ranges are clipped to the stream's
//! start, or become garbage with the stream).

use std::sync::atomic::Ordering::Relaxed;

use object_store::{PutMode, PutOptions, PutPayload};

use super::Engine;
use crate::manifest::{object_path, ObjectMeta, RangeRef};
use crate::object::ObjectBuilder;
use crate::{Batch, Error, StreamId};

/// Bytes of one object a rewrite writes (larger outputs are cut into several objects).
pub const REWRITE_OBJECT_BYTES_MAX: u64 = 64 << 20;

/// What a rewrite does with one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewritten {
    /// Keep it as it is.
    Keep,
    /// Keep its offsets (`base_offset`, `count`) with these bytes instead.
    Replace(bytes::Bytes),
    /// Drop it: its offsets become a gap that reads skip.
    Drop,
}

/// What one rewrite did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RewriteStats {
    /// Offset just past the last batch rewritten (the start when nothing was).
    pub to: u64,
    pub batches_read: u64,
    pub bytes_read: u64,
    pub batches_dropped: u64,
    pub batches_replaced: u64,
    pub bytes_written: u64,
    pub objects_written: u64,
}

/// One object written by the rewrite: id, contiguous runs, size.
struct Written {
    id: u64,
    runs: Vec<(u64, u64)>,
    size: u64,
}

/// The object being filled.
struct Pending {
    builder: ObjectBuilder,
    runs: Vec<(u64, u64)>,
    bytes: u64,
}

impl Pending {
    fn new(block_bytes: usize) -> Self {
        Self { builder: ObjectBuilder::new(block_bytes), runs: Vec::new(), bytes: 0 }
    }

    fn push(&mut self, stream: StreamId, b: &Batch) {
        self.builder.push(stream, b);
        self.bytes += b.payload.len() as u64;
        match self.runs.last_mut() {
            Some((_, end)) if *end == b.base_offset => *end = b.end_offset(),
            _ => self.runs.push((b.base_offset, b.end_offset())),
        }
    }
}

impl Engine {
    /// Rewrites stream `id` from its start up to `to` (clamped to what is uploaded; batches are
    /// whole, so it stops before a batch that crosses `to`), handing `f` each batch in offset
    /// order, reading about `step_bytes` at a time. Returns how far it got and what it did.
    pub async fn rewrite<E: From<Error>>(
        &self,
        id: StreamId,
        to: u64,
        step_bytes: u64,
        mut f: impl FnMut(&Batch) -> std::result::Result<Rewritten, E>,
    ) -> std::result::Result<RewriteStats, E> {
        let _only_pass = self.inner.compaction_lock.lock().await;
        let (start, uploaded) = {
            let m = self.inner.state.lock().committed.clone();
            let s = m.streams.get(&id).ok_or(Error::StreamNotFound(id))?;
            (s.start, s.end)
        };
        let to = to.min(uploaded);
        let mut stats = RewriteStats { to: start, ..Default::default() };
        if to <= start {
            return Ok(stats);
        }
        let written = self.rewrite_objects(id, start, to, step_bytes, &mut f, &mut stats).await?;
        self.commit_rewrite(id, stats.to, written).await?;
        Ok(stats)
    }

    /// Phase 1: reads, filters and writes the new objects (nothing is visible yet).
    async fn rewrite_objects<E: From<Error>>(
        &self,
        id: StreamId,
        start: u64,
        to: u64,
        step_bytes: u64,
        f: &mut impl FnMut(&Batch) -> std::result::Result<Rewritten, E>,
        stats: &mut RewriteStats,
    ) -> std::result::Result<Vec<Written>, E> {
        let block_bytes = self.inner.config.object_block_bytes as usize;
        let mut written = Vec::new();
        let mut pending = Pending::new(block_bytes);
        let mut pos = start;
        'read: while pos < to {
            let batches = self.read(id, pos, to, step_bytes.max(1)).await?;
            if batches.is_empty() {
                break;
            }
            for b in batches {
                if b.end_offset() > to {
                    break 'read;
                }
                pos = b.end_offset();
                stats.to = pos;
                stats.batches_read += 1;
                stats.bytes_read += b.payload.len() as u64;
                match f(&b)? {
                    Rewritten::Keep => pending.push(id, &b),
                    Rewritten::Replace(payload) => {
                        stats.batches_replaced += 1;
                        pending.push(id, &Batch { payload, ..b });
                    }
                    Rewritten::Drop => stats.batches_dropped += 1,
                }
                if pending.bytes >= REWRITE_OBJECT_BYTES_MAX {
                    let full = std::mem::replace(&mut pending, Pending::new(block_bytes));
                    written.push(self.put_rewritten(full, stats).await?);
                }
            }
        }
        if !pending.builder.is_empty() {
            written.push(self.put_rewritten(pending, stats).await?);
        }
        Ok(written)
    }

    async fn put_rewritten(&self, p: Pending, stats: &mut RewriteStats) -> crate::Result<Written> {
        let id = self.inner.reserve_object_ids(1).await?;
        let (data, _) = p.builder.finish();
        let size = data.len() as u64;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.inner.store.put_opts(&object_path(id), PutPayload::from(data), opts).await?;
        stats.objects_written += 1;
        stats.bytes_written += size;
        Ok(Written { id, runs: p.runs, size })
    }

    /// Phase 2: below `done_to`, the stream's ranges become the new objects' runs.
    async fn commit_rewrite(&self, id: StreamId, done_to: u64, written: Vec<Written>) -> crate::Result<()> {
        let inner = &self.inner;
        let now = inner.now_ms();
        let mut meta = inner.meta.lock().await;
        let mut next = meta.current().clone();
        for w in &written {
            next.objects.insert(w.id, ObjectMeta { size: w.size, stream_object: true, created_ms: now });
        }
        if let Some(s) = next.streams.get_mut(&id) {
            // A range crossing `done_to` keeps its upper part: reads filter an object by offsets.
            let mut ranges: Vec<RangeRef> = s.ranges.iter().filter(|r| r.end > done_to).map(|r| RangeRef { start: r.start.max(done_to), ..*r }).collect();
            for w in &written {
                for &(a, b) in &w.runs {
                    let a = a.max(s.start);
                    if b > a {
                        ranges.push(RangeRef { object: w.id, start: a, end: b });
                    }
                }
            }
            ranges.sort_by_key(|r| r.start);
            s.ranges = ranges;
        }
        // Old objects no range needs any more, and new ones of a stream deleted meanwhile.
        next.collect_garbage(now);
        meta.commit(next).await?;
        let mut st = inner.state.lock();
        st.committed = std::sync::Arc::new(meta.current().clone());
        // Readers below `done_to` now go to the new objects, not to the old batches still cached.
        st.log_cache.trim(id, done_to);
        drop(st);
        inner.stats.rewrites.fetch_add(1, Relaxed);
        Ok(())
    }
}
