//! The upload task: everything acknowledged but not yet uploaded becomes stream objects and one
//! stream-set object, committed in one manifest version; only then is the WAL trimmed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::{PutMode, PutOptions, PutPayload};

use super::writer::fail;
use super::Inner;
use crate::manifest::{object_path, ObjectMeta, RangeRef};
use crate::object::{IndexEntry, ObjectBuilder};
use crate::{Batch, Error, Result, StreamId};

pub(super) async fn upload_loop(inner: Arc<Inner>) {
    let interval = Duration::from_millis(inner.config.upload_interval_ms.max(10));
    loop {
        tokio::select! {
            _ = inner.upload_wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
        if inner.state.lock().failed.as_ref().is_some_and(|f| f.fenced) {
            return;
        }
        if let Err(e) = upload_once(&inner).await {
            if matches!(e, Error::Fenced { .. }) {
                fail(&inner, &e);
                return;
            }
            tracing::warn!(error = %e, "upload failed; the data stays in the WAL and is retried");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Uploads everything not yet uploaded — a stream object for each stream with at least
/// `stream_object_bytes` waiting, one stream-set object for the rest — commits them in one
/// manifest version, then trims the WAL.
///
/// One upload runs at a time (`upload_turn`). The engine's metadata is locked only to take the
/// objects' ids and to commit them, not while they are built and put: a catalog commit, a trim or
/// a new stream does not wait for an upload's hundreds of MiB.
pub(crate) async fn upload_once(inner: &Arc<Inner>) -> Result<bool> {
    let _turn = inner.upload_turn.lock().await;
    let started = std::time::Instant::now();
    let (pending, wal_pos) = {
        let s = inner.state.lock();
        (s.log_cache.pending(), s.wal_end)
    };
    if pending.is_empty() {
        return Ok(false);
    }
    // The objects are built (hundreds of MiB copied and checksummed) on a blocking thread: on
    // an async worker they stall every request that worker holds.
    let (block, own_min) = (inner.config.object_block_bytes as usize, inner.config.stream_object_bytes);
    let ends: Vec<(StreamId, u64)> = pending.iter().filter_map(|(s, b)| Some((*s, b.last()?.end_offset()))).collect();
    let streams = pending.len();
    let objects = tokio::task::spawn_blocking(move || build(&pending, block, own_min)).await.map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let first_id = inner.reserve_object_ids(objects.len() as u64).await?;
    let mut uploaded_objects = Vec::with_capacity(objects.len());
    for (id, (stream_object, (bytes, index))) in (first_id..).zip(objects) {
        let size = bytes.len() as u64;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        inner.store.put_opts(&object_path(id), PutPayload::from(bytes), opts).await?;
        uploaded_objects.push((id, ObjectMeta { size, stream_object, created_ms: inner.now_ms() }, ranges_of(&index)));
    }
    let mut meta = inner.meta.lock().await;
    let mut next = meta.current().clone();
    let (mut total, mut ids) = (0u64, Vec::new());
    for (id, object, ranges) in uploaded_objects {
        total += object.size;
        ids.push(id);
        next.objects.insert(id, object);
        for (stream, start, end) in ranges {
            // A stream deleted meanwhile takes no range (its object becomes garbage); one trimmed
            // meanwhile keeps only what is above its new start.
            if let Some(s) = next.streams.get_mut(&stream).filter(|s| end > s.start) {
                s.ranges.push(RangeRef { object: id, start, end });
                s.end = s.end.max(end);
            }
        }
    }
    next.wal_committed_pos = wal_pos;
    let uploaded: Vec<(StreamId, u64)> = ends.into_iter().filter(|(s, _)| next.streams.contains_key(s)).collect();
    next.collect_garbage(inner.now_ms());
    meta.commit(next).await?;
    {
        let committed = Arc::new(meta.current().clone());
        let mut s = inner.state.lock();
        s.committed = committed;
        for (stream, end) in uploaded {
            s.log_cache.mark_uploaded(stream, end);
        }
    }
    drop(meta);
    inner.wal.lock().await.trim(wal_pos).await?;
    inner.stats.uploads.fetch_add(1, Relaxed);
    inner.stats.upload_bytes.fetch_add(total, Relaxed);
    inner.stats.upload_seconds.observe(started.elapsed());
    inner.space_freed.notify_waiters();
    tracing::debug!(objects = ?ids, bytes = total, streams, "uploaded");
    Ok(true)
}

/// One range per stream of an object, from its index.
fn ranges_of(index: &[IndexEntry]) -> Vec<(StreamId, u64, u64)> {
    let mut ranges: Vec<(StreamId, u64, u64)> = Vec::new();
    for e in index {
        match ranges.last_mut() {
            Some((s, _, end)) if *s == e.stream => *end = e.end,
            _ => ranges.push((e.stream, e.start, e.end)),
        }
    }
    ranges
}

/// The objects of one upload: a stream object for each stream with at least `own_min` bytes
/// pending, one stream-set object for the rest; each built in a buffer of its final size.
fn build(pending: &[(StreamId, Vec<Batch>)], block: usize, own_min: u64) -> Vec<(bool, (Bytes, Vec<IndexEntry>))> {
    let bytes_of = |batches: &[Batch]| batches.iter().map(|b| b.payload.len() as u64).sum::<u64>();
    let (own, shared): (Vec<_>, Vec<_>) = pending.iter().partition(|(_, batches)| bytes_of(batches) >= own_min);
    let mut out = Vec::new();
    for (stream, batches) in own {
        let mut single = ObjectBuilder::with_capacity(block, ObjectBuilder::bytes_for(batches));
        batches.iter().for_each(|b| single.push(*stream, b));
        out.push((true, single.finish()));
    }
    if !shared.is_empty() {
        let mut builder = ObjectBuilder::with_capacity(block, ObjectBuilder::bytes_for(shared.iter().flat_map(|(_, b)| b)));
        for (stream, batches) in shared {
            batches.iter().for_each(|b| builder.push(*stream, b));
        }
        out.push((false, builder.finish()));
    }
    out
}
