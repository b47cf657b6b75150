//! Compaction: the oldest stream-set objects are merged and split into one stream object per
//! stream; then a stream's small stream objects, contiguous in its offsets, are merged into one
//! (as AutoMQ's stream object compaction); objects no longer referenced are deleted after a grace
//! period.
//!
//! Memory and bandwidth are bounded: one pass reads at most [`COMPACTION_BYTES_MAX`] of objects,
//! and reads and writes at most `compaction_bytes_per_second` (`throttle.rs`), so compaction never
//! takes the I/O the produce path needs. The objects are read and written without holding the
//! manifest lock; the commit then replaces, stream by stream, the run of ranges that pointed at the
//! compacted objects, keeping whatever a trim or delete changed meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::engine::Inner;
use crate::manifest::{object_path, Manifest, ObjectMeta, RangeRef};
use crate::object::{self, ObjectBuilder};
use crate::{Batch, Result, StreamId};

mod streams;
mod throttle;

/// Most bytes of objects read by one compaction pass.
pub const COMPACTION_BYTES_MAX: u64 = 256 << 20;

pub(crate) async fn run(inner: Arc<Inner>) {
    let interval = Duration::from_millis(inner.config.compaction_interval_ms.max(100));
    loop {
        tokio::time::sleep(interval).await;
        if let Err(e) = compact_once(&inner).await {
            tracing::warn!(error = %e, "compaction failed; it will be retried");
        }
        if let Err(e) = delete_garbage(&inner).await {
            tracing::warn!(error = %e, "deleting unreferenced objects failed; it will be retried");
        }
    }
}

/// One compaction pass — stream-set objects first, else a stream's small stream objects; true
/// when something was compacted.
pub(crate) async fn compact_once(inner: &Arc<Inner>) -> Result<bool> {
    let _only_pass = inner.compaction_lock.lock().await;
    let manifest = inner.state.lock().committed.clone();
    let count = inner.config.compaction_object_count.max(2);
    let mut chosen = Vec::new();
    let mut bytes = 0u64;
    for (&id, o) in manifest.objects.iter().filter(|(_, o)| !o.stream_object) {
        if !chosen.is_empty() && bytes + o.size > COMPACTION_BYTES_MAX {
            break;
        }
        bytes += o.size;
        chosen.push(id);
    }
    if chosen.len() >= count {
        merge(inner, &manifest, chosen, bytes).await?;
        tracing::info!(bytes, "compacted stream-set objects into stream objects");
        return Ok(true);
    }
    if let Some((chosen, bytes)) = streams::choose(&manifest, count) {
        merge(inner, &manifest, chosen, bytes).await?;
        tracing::info!(bytes, "merged small stream objects");
        return Ok(true);
    }
    Ok(false)
}

/// Reads the chosen objects, writes one stream object per stream with their batches, and swaps
/// the ranges the chosen objects served for the new objects' runs.
async fn merge(inner: &Arc<Inner>, manifest: &Manifest, chosen: Vec<u64>, bytes: u64) -> Result<()> {
    let mut pace = throttle::Throttle::new(inner.config.compaction_bytes_per_second);
    // Read every chosen object whole, and group its batches by stream, in object (= offset) order.
    let mut per_stream: BTreeMap<StreamId, Vec<Batch>> = BTreeMap::new();
    for &id in &chosen {
        let path = object_path(id);
        let name = path.to_string();
        let data = inner.store.get(&path).await?.bytes().await?;
        inner.stats.compaction_read_bytes.fetch_add(data.len() as u64, Relaxed);
        pace.spent(data.len() as u64).await;
        if data.len() < object::FOOTER_BYTES {
            return Err(crate::Error::corrupt(name, "object shorter than its footer"));
        }
        let footer = object::decode_footer(&name, &data[data.len() - object::FOOTER_BYTES..])?;
        let range = object::index_range(&name, &footer, data.len() as u64)?;
        let ix = &data[range.start as usize..range.end as usize];
        for e in object::decode_index(&name, &footer, ix)? {
            let block = data.slice(e.pos as usize..(e.pos + u64::from(e.len)) as usize);
            per_stream.entry(e.stream).or_default().extend(object::decode_block(&name, &e, block)?);
        }
    }
    // Write one stream object per stream still alive; it may hold several contiguous runs
    // when the stream had other objects (e.g. its own stream objects) between the chosen ones.
    // (stream, object id, contiguous runs, object size)
    type Written = (StreamId, u64, Vec<(u64, u64)>, u64);
    let mut written: Vec<Written> = Vec::new();
    let first_id = inner.reserve_object_ids(per_stream.len() as u64).await?;
    for (i, (stream, batches)) in per_stream.iter().enumerate() {
        if !manifest.streams.contains_key(stream) || batches.is_empty() {
            continue;
        }
        let id = first_id + i as u64;
        let mut b = ObjectBuilder::new(inner.config.object_block_bytes as usize);
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for batch in batches {
            b.push(*stream, batch);
            match runs.last_mut() {
                Some((_, end)) if *end == batch.base_offset => *end = batch.end_offset(),
                _ => runs.push((batch.base_offset, batch.end_offset())),
            }
        }
        let (data, _) = b.finish();
        let size = data.len() as u64;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        inner.store.put_opts(&object_path(id), PutPayload::from(data), opts).await?;
        inner.stats.compaction_written_bytes.fetch_add(size, Relaxed);
        pace.spent(size).await;
        written.push((*stream, id, runs, size));
    }
    // Commit: swap the ranges of the chosen objects for the new stream objects' runs.
    // Only what the chosen objects still serve is swapped: a trim meanwhile has cut ranges.
    let chosen_set: BTreeSet<u64> = chosen.iter().copied().collect();
    let mut meta = inner.meta.lock().await;
    let mut next = meta.current().clone();
    let mut served: BTreeMap<StreamId, Vec<(u64, u64)>> = BTreeMap::new();
    for (&id, s) in next.streams.iter_mut() {
        served.insert(id, s.ranges.iter().filter(|r| chosen_set.contains(&r.object)).map(|r| (r.start, r.end)).collect());
        s.ranges.retain(|r| !chosen_set.contains(&r.object));
    }
    for (stream, id, runs, size) in written {
        next.objects.insert(id, ObjectMeta { size, stream_object: true, created_ms: inner.now_ms() });
        let Some(s) = next.streams.get_mut(&stream) else { continue };
        let served = served.get(&stream).map_or(&[][..], Vec::as_slice);
        for (start, end) in runs {
            for &(a, b) in served {
                let (lo, hi) = (start.max(a).max(s.start), end.min(b));
                if hi > lo {
                    s.ranges.push(RangeRef { object: id, start: lo, end: hi });
                }
            }
        }
        s.ranges.sort_by_key(|r| r.start);
    }
    next.collect_garbage(inner.now_ms());
    meta.commit(next).await?;
    inner.state.lock().committed = Arc::new(meta.current().clone());
    inner.stats.compactions.fetch_add(1, Relaxed);
    tracing::debug!(objects = chosen.len(), bytes, "compaction committed");
    Ok(())
}

/// Deletes garbage objects older than the grace period; returns how many.
pub(crate) async fn delete_garbage(inner: &Arc<Inner>) -> Result<usize> {
    let now = inner.now_ms();
    let due: Vec<u64> = {
        let m = inner.state.lock().committed.clone();
        m.garbage.iter().filter(|(_, &t)| now.saturating_sub(t) >= inner.config.object_grace_ms).map(|(&id, _)| id).collect()
    };
    if due.is_empty() {
        return Ok(0);
    }
    for &id in &due {
        match inner.store.delete(&object_path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        inner.block_cache.lock().forget_object(id);
    }
    let mut meta = inner.meta.lock().await;
    let mut next = meta.current().clone();
    for id in &due {
        next.garbage.remove(id);
    }
    meta.commit(next).await?;
    inner.state.lock().committed = Arc::new(meta.current().clone());
    inner.stats.objects_deleted.fetch_add(due.len() as u64, Relaxed);
    Ok(due.len())
}
