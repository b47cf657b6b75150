//! Handing a stream from one engine to another on the same bucket, copying no data.
//!
//! The giver seals the stream (no more appends; everything durable is uploaded), writes its
//! metadata — ranges, start, end, the objects they point at, and the caller's attachment — to
//! `streams/<id>/handoff.json`, and only then drops the stream from its own chain. The taker
//! reads that file, adds the stream to its chain and deletes the file. Both chains pin the
//! handed-over objects: neither deletes an object the other may still read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::{path::Path, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::{upload_once, Engine, StreamInfo, StreamState};
use crate::manifest::{ObjectMeta, StreamMeta};
use crate::{Error, Result, StreamId};

/// How long sealing waits for the stream's queued appends to become durable.
const SEAL_DURABLE_WAIT_MS: u64 = 30_000;
/// Upload rounds sealing tries before it gives up (each uploads everything pending).
const SEAL_UPLOAD_ROUNDS_MAX: u32 = 20;

/// A stream in transit between two engines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub stream: StreamId,
    /// The giver's epoch.
    pub from_epoch: u64,
    pub meta: StreamMeta,
    /// Every object the stream's ranges point at.
    pub objects: BTreeMap<u64, ObjectMeta>,
    /// The caller's own state for the stream (the broker's producer state), opaque here.
    pub attachment: String,
}

/// Where a stream's pending handoff is kept.
pub fn handoff_path(id: StreamId) -> Path {
    Path::from(format!("streams/{id:020}/handoff.json"))
}

impl Engine {
    /// Stops appends to a stream and uploads everything durable in it; returns its end offset.
    /// Appends that already have an offset finish first; later ones fail with `StreamNotOpen`.
    pub async fn seal_stream(&self, id: StreamId) -> Result<u64> {
        let inner = &self.inner;
        let lock = inner.state.lock().streams.get(&id).ok_or(Error::StreamNotFound(id))?.append_lock.clone();
        {
            // Under the append lock no append is between taking its offset and being queued.
            let _appends = lock.lock().await;
            inner.state.lock().streams.get_mut(&id).ok_or(Error::StreamNotFound(id))?.open = false;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(SEAL_DURABLE_WAIT_MS);
        let end = loop {
            {
                let s = inner.state.lock();
                if let Some(f) = &s.failed {
                    return Err(f.error(inner.epoch));
                }
                let st = s.streams.get(&id).ok_or(Error::StreamNotFound(id))?;
                if st.confirmed >= st.next {
                    break st.confirmed;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::InvalidArgument(format!("stream {id}: queued appends did not become durable in {SEAL_DURABLE_WAIT_MS} ms")));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        for _ in 0..SEAL_UPLOAD_ROUNDS_MAX {
            if self.uploaded_end(id)? >= end {
                return Ok(end);
            }
            upload_once(inner).await?;
        }
        Err(Error::InvalidArgument(format!("stream {id}: not uploaded after {SEAL_UPLOAD_ROUNDS_MAX} rounds")))
    }

    /// Hands a sealed stream over: writes its handoff (with `attachment`), then removes it from
    /// this engine's chain, pinning its objects.
    pub async fn export_stream(&self, id: StreamId, attachment: String) -> Result<Handoff> {
        let inner = &self.inner;
        let _no_rewrite = inner.compaction_lock.lock().await;
        let mut meta = inner.meta.lock().await;
        {
            let s = inner.state.lock();
            let st = s.streams.get(&id).ok_or(Error::StreamNotFound(id))?;
            let uploaded = meta.current().streams.get(&id).map_or(0, |m| m.end);
            if st.open || st.next != st.confirmed || uploaded < st.confirmed {
                return Err(Error::InvalidArgument(format!("stream {id} must be sealed before it is handed over")));
            }
        }
        let current = meta.current();
        let stream_meta = current.streams.get(&id).cloned().ok_or(Error::StreamNotFound(id))?;
        let mut objects = BTreeMap::new();
        for r in &stream_meta.ranges {
            let o =
                current.objects.get(&r.object).ok_or_else(|| Error::corrupt(format!("stream {id}"), format!("range refers to unknown object {}", r.object)))?;
            objects.insert(r.object, o.clone());
        }
        let handoff = Handoff { stream: id, from_epoch: inner.epoch, meta: stream_meta, objects, attachment };
        inner.store.put(&handoff_path(id), PutPayload::from(serde_json::to_vec(&handoff)?)).await?;
        let mut next = current.clone();
        next.streams.remove(&id);
        next.pinned.extend(handoff.objects.keys().copied());
        next.collect_garbage(inner.now_ms());
        meta.commit(next).await?;
        let committed = Arc::new(meta.current().clone());
        let mut s = inner.state.lock();
        s.committed = committed;
        s.streams.remove(&id);
        s.log_cache.remove(id);
        tracing::info!(stream = id, end = handoff.meta.end, objects = handoff.objects.len(), "stream handed over");
        Ok(handoff)
    }

    /// Takes over a stream from its handoff and opens it for appends; returns its offsets and
    /// the giver's attachment. A stream already in this chain (a retried take-over) is opened as
    /// it is, with the attachment if the handoff is still there.
    pub async fn import_stream(&self, id: StreamId) -> Result<(StreamInfo, Option<String>)> {
        let inner = &self.inner;
        let handoff = match inner.store.get(&handoff_path(id)).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                Some(serde_json::from_slice::<Handoff>(&bytes).map_err(|e| Error::corrupt(handoff_path(id).to_string(), e.to_string()))?)
            }
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let ours = inner.state.lock().streams.contains_key(&id);
        if !ours {
            let h = handoff.as_ref().ok_or(Error::StreamNotFound(id))?;
            if h.stream != id {
                return Err(Error::corrupt(handoff_path(id).to_string(), format!("holds stream {}", h.stream)));
            }
            let mut meta = inner.meta.lock().await;
            let mut next = meta.current().clone();
            for (&oid, o) in &h.objects {
                next.objects.entry(oid).or_insert_with(|| o.clone());
                next.pinned.insert(oid);
            }
            next.streams.insert(id, StreamMeta { epoch: inner.epoch, ..h.meta.clone() });
            meta.commit(next).await?;
            let committed = Arc::new(meta.current().clone());
            let mut s = inner.state.lock();
            s.committed = committed;
            let m = &h.meta;
            s.streams.insert(id, StreamState { epoch: inner.epoch, start: m.start, next: m.end, confirmed: m.end, open: false, append_lock: Arc::default() });
            s.log_cache.set_uploaded(id, m.end);
            tracing::info!(stream = id, end = m.end, from_epoch = h.from_epoch, "stream taken over");
        }
        let info = self.open_stream(id, inner.epoch).await?;
        // A handoff left over from an earlier take-over no longer describes the stream.
        let handoff = handoff.filter(|h| h.meta.end == info.end);
        if handoff.is_some() {
            if let Err(e) = inner.store.delete(&handoff_path(id)).await {
                tracing::warn!(stream = id, error = %e, "could not delete a used handoff; the next take-over ignores it");
            }
        }
        Ok((info, handoff.map(|h| h.attachment)))
    }
}

#[cfg(test)]
mod tests;
