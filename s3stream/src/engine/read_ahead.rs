//! Read-ahead for catch-up reads: after a read served from objects, the stream's next
//! `read_ahead_bytes` are fetched into the block cache in the background — each object's missing
//! blocks in one coalesced ranged GET — so that the reader's next reads find them there.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::Engine;
use crate::manifest::{object_path, Manifest};
use crate::object::IndexEntry;
use crate::{Result, StreamId};

/// Streams with a read-ahead under way, and the bytes those are fetching.
#[derive(Default)]
pub(crate) struct ReadAhead {
    pub(super) streams: std::collections::HashSet<StreamId>,
    bytes: u64,
}

impl Engine {
    /// Starts a read-ahead of stream `id` from offset `from` (where a read from objects ended),
    /// up to `cache_first` (what the log cache serves), unless one is under way for the stream,
    /// the blocks ahead are mostly cached already, or half the block cache is being read ahead.
    pub(super) fn read_ahead(&self, id: StreamId, from: u64, manifest: Arc<Manifest>, cache_first: u64) {
        let ahead = self.inner.config.read_ahead_bytes;
        if ahead == 0 || from >= cache_first || !self.inner.read_ahead.lock().streams.insert(id) {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let result = async {
                let plan = engine.plan_read_ahead(id, from, &manifest, cache_first, ahead).await?;
                engine.fetch_read_ahead(plan).await
            }
            .await;
            if let Err(e) = result {
                // Only a hint: the read that needs the blocks fetches them itself.
                tracing::debug!(stream = id, from, error = %e, "read-ahead failed");
            }
            engine.inner.read_ahead.lock().streams.remove(&id);
        });
    }

    /// The blocks of `id` from `from` on, up to `ahead` bytes, that the block cache lacks, by
    /// object; nothing when fewer than half of them are missing (the next read-ahead fetches
    /// more at once) or the node's read-ahead budget is spent.
    async fn plan_read_ahead(&self, id: StreamId, from: u64, manifest: &Manifest, cache_first: u64, ahead: u64) -> Result<BTreeMap<u64, Vec<IndexEntry>>> {
        let ranges = manifest.streams.get(&id).map(|s| s.ranges.clone()).unwrap_or_default();
        let mut planned = 0u64;
        let mut missing: BTreeMap<u64, Vec<IndexEntry>> = BTreeMap::new();
        let mut missing_bytes = 0u64;
        'ranges: for r in ranges.iter().filter(|r| r.end > from && r.start < cache_first) {
            let Some(size) = manifest.objects.get(&r.object).map(|o| o.size) else { continue };
            let index = self.index(r.object, size).await?;
            for e in index.iter().filter(|e| e.stream == id && e.end > from.max(r.start) && e.start < r.end.min(cache_first)) {
                planned += u64::from(e.len);
                if !self.inner.block_cache.lock().contains(r.object, e.pos) {
                    missing_bytes += u64::from(e.len);
                    missing.entry(r.object).or_default().push(*e);
                }
                if planned >= ahead {
                    break 'ranges;
                }
            }
        }
        if planned >= ahead && missing_bytes < ahead / 2 {
            return Ok(BTreeMap::new());
        }
        let mut ra = self.inner.read_ahead.lock();
        if ra.bytes + missing_bytes > self.inner.config.block_cache_bytes / 2 {
            return Ok(BTreeMap::new());
        }
        ra.bytes += missing_bytes;
        Ok(missing)
    }

    /// Fetches the planned blocks, one ranged request per object (adjacent blocks coalesce
    /// into one GET), into the block cache.
    async fn fetch_read_ahead(&self, plan: BTreeMap<u64, Vec<IndexEntry>>) -> Result<()> {
        let total: u64 = plan.values().flatten().map(|e| u64::from(e.len)).sum();
        let result = async {
            for (object, entries) in &plan {
                let ranges: Vec<_> = entries.iter().map(|e| e.pos..e.pos + u64::from(e.len)).collect();
                let got = self.inner.store.get_ranges(&object_path(*object), &ranges).await?;
                let mut cache = self.inner.block_cache.lock();
                for (e, block) in entries.iter().zip(got) {
                    cache.insert(*object, e.pos, block);
                }
                drop(cache);
                self.inner.stats.read_ahead_bytes.fetch_add(ranges.iter().map(|r| r.end - r.start).sum(), Relaxed);
            }
            Ok(())
        }
        .await;
        self.inner.read_ahead.lock().bytes -= total;
        result
    }
}
