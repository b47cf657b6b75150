//! Read-ahead for catch-up reads: after a read served from objects, the stream's next
//! `read_ahead_bytes` are fetched into the block cache in the background, in several ranged
//! requests at once (adjacent blocks of an object coalesced into one), each cached as it arrives;
//! a read that needs a block still in flight waits for it instead of fetching it again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::watch;

use super::Engine;
use crate::manifest::{object_path, Manifest};
use crate::object::IndexEntry;
use crate::{Result, StreamId};

/// A read-ahead is fetched in requests of about this many bytes (at least one block each), so
/// that the reader finds the first blocks cached while the later ones are still coming.
const REQUEST_BYTES: u64 = 2 << 20;
/// Requests of one read-ahead under way at once.
const REQUESTS_MAX: usize = 4;

/// Streams with a read-ahead under way, the bytes those are fetching, and their blocks in flight.
#[derive(Default)]
pub(crate) struct ReadAhead {
    pub(super) streams: HashSet<StreamId>,
    bytes: u64,
    /// Blocks being fetched, by (object, position): the receiver's sender is dropped once the
    /// request ends, whether it cached the blocks or failed.
    pub(super) in_flight: HashMap<(u64, u64), watch::Receiver<()>>,
}

impl ReadAhead {
    /// Of `blocks` of `object`, the ones a read-ahead is fetching, with what to wait on.
    pub(super) fn waits(&self, object: u64, blocks: &[IndexEntry]) -> (Vec<IndexEntry>, Vec<watch::Receiver<()>>) {
        let mut not_in_flight = Vec::new();
        let mut waits = Vec::new();
        for e in blocks {
            match self.in_flight.get(&(object, e.pos)) {
                Some(rx) => waits.push(rx.clone()),
                None => not_in_flight.push(*e),
            }
        }
        (not_in_flight, waits)
    }
}

/// Waits until every request in `waits` has ended.
pub(super) async fn wait_all(waits: Vec<watch::Receiver<()>>) {
    for mut rx in waits {
        // Nothing is ever sent: this returns once the sender is dropped, also if it already was.
        while rx.changed().await.is_ok() {}
    }
}

/// Blocks to fetch in stream order, as runs of one object's blocks.
type Plan = Vec<(u64, Vec<IndexEntry>)>;

/// The planned blocks cut into requests of about `REQUEST_BYTES` (at least one block each), in
/// stream order.
fn requests(plan: Plan) -> Plan {
    let mut out = Vec::new();
    for (object, entries) in plan {
        let mut run: Vec<IndexEntry> = Vec::new();
        let mut bytes = 0u64;
        for e in entries {
            if !run.is_empty() && bytes + u64::from(e.len) > REQUEST_BYTES {
                out.push((object, std::mem::take(&mut run)));
                bytes = 0;
            }
            bytes += u64::from(e.len);
            run.push(e);
        }
        if !run.is_empty() {
            out.push((object, run));
        }
    }
    out
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
            match engine.plan_read_ahead(id, from, &manifest, cache_first, ahead).await {
                Ok(plan) => engine.fetch_read_ahead(plan).await,
                // Only a hint: the read that needs the blocks fetches them itself.
                Err(e) => tracing::debug!(stream = id, from, error = %e, "read-ahead failed"),
            }
            engine.inner.read_ahead.lock().streams.remove(&id);
        });
    }

    /// The blocks of `id` from `from` on, up to `ahead` bytes, that the block cache lacks, in
    /// stream order; nothing when fewer than half of them are missing (the next read-ahead fetches
    /// more at once) or the node's read-ahead budget is spent.
    async fn plan_read_ahead(&self, id: StreamId, from: u64, manifest: &Manifest, cache_first: u64, ahead: u64) -> Result<Plan> {
        let ranges = manifest.streams.get(&id).map(|s| s.ranges.clone()).unwrap_or_default();
        let mut planned = 0u64;
        let mut missing: Plan = Vec::new();
        let mut missing_bytes = 0u64;
        'ranges: for r in ranges.iter().filter(|r| r.end > from && r.start < cache_first) {
            let Some(size) = manifest.objects.get(&r.object).map(|o| o.size) else { continue };
            let index = self.index(r.object, size).await?;
            for e in index.iter().filter(|e| e.stream == id && e.end > from.max(r.start) && e.start < r.end.min(cache_first)) {
                planned += u64::from(e.len);
                if !self.inner.block_cache.lock().contains(r.object, e.pos) {
                    missing_bytes += u64::from(e.len);
                    match missing.last_mut() {
                        Some((object, blocks)) if *object == r.object => blocks.push(*e),
                        _ => missing.push((r.object, vec![*e])),
                    }
                }
                if planned >= ahead {
                    break 'ranges;
                }
            }
        }
        if planned >= ahead && missing_bytes < ahead / 2 {
            return Ok(Vec::new());
        }
        let mut ra = self.inner.read_ahead.lock();
        if ra.bytes + missing_bytes > self.inner.config.block_cache_bytes / 2 {
            return Ok(Vec::new());
        }
        ra.bytes += missing_bytes;
        Ok(missing)
    }

    /// Fetches the planned blocks into the block cache, `REQUESTS_MAX` requests at a time in
    /// stream order. Every block is marked in flight before the first request starts.
    async fn fetch_read_ahead(&self, plan: Plan) {
        let total: u64 = plan.iter().flat_map(|(_, blocks)| blocks).map(|e| u64::from(e.len)).sum();
        let requests = requests(plan);
        let senders: Vec<watch::Sender<()>> = {
            let mut ra = self.inner.read_ahead.lock();
            requests
                .iter()
                .map(|(object, entries)| {
                    let (tx, rx) = watch::channel(());
                    for e in entries {
                        ra.in_flight.insert((*object, e.pos), rx.clone());
                    }
                    tx
                })
                .collect()
        };
        futures::stream::iter(requests.into_iter().zip(senders))
            .map(|((object, entries), done)| async move {
                if let Err(e) = self.fetch_blocks(object, &entries).await {
                    tracing::debug!(object, error = %e, "read-ahead request failed");
                }
                let mut ra = self.inner.read_ahead.lock();
                for e in &entries {
                    ra.in_flight.remove(&(object, e.pos));
                }
                drop(done);
            })
            .buffered(REQUESTS_MAX)
            .collect::<Vec<()>>()
            .await;
        self.inner.read_ahead.lock().bytes -= total;
    }

    /// One ranged request for `entries` of `object` (adjacent blocks coalesce into one GET),
    /// cached as they arrive.
    async fn fetch_blocks(&self, object: u64, entries: &[IndexEntry]) -> Result<()> {
        let ranges: Vec<_> = entries.iter().map(|e| e.pos..e.pos + u64::from(e.len)).collect();
        let got = self.inner.store.get_ranges(&object_path(object), &ranges).await?;
        let mut cache = self.inner.block_cache.lock();
        for (e, block) in entries.iter().zip(got) {
            cache.insert(object, e.pos, block);
        }
        drop(cache);
        self.inner.stats.read_ahead_bytes.fetch_add(ranges.iter().map(|r| r.end - r.start).sum(), Relaxed);
        Ok(())
    }
}
