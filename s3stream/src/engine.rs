//! The engine: streams of batches, durable in the WAL on append, uploaded to objects in the background.
//!
//! Appends to a stream are ordered by a per-stream lock held while an offset is assigned and the
//! batch is queued for the single WAL writer task; the writer makes a whole group durable at once
//! (group commit), then puts it in the log cache and acknowledges it. The upload task turns
//! everything not yet uploaded into one stream-set object, commits the manifest, and only then
//! trims the WAL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::cache::{BlockCache, LogCache};
use crate::manifest::{object_path, Manifest, ManifestStore};
use crate::metrics::Latency;
use crate::object::{self, IndexEntry};
use crate::wal::{file::FileWal, object::ObjectWal, Stamp, Wal};
use crate::{Batch, EngineConfig, Error, Result, StreamId, WalKind};

/// Index entries of this many objects are kept in memory.
const INDEX_CACHE_OBJECTS_MAX: usize = 4096;
/// A tail read of this size usually holds an object's whole index and footer.
const TAIL_READ_BYTES: u64 = 64 << 10;

/// What a caller can see of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    pub id: StreamId,
    /// First readable offset.
    pub start: u64,
    /// Offset just past the last durable batch.
    pub end: u64,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub appends: AtomicU64,
    pub append_bytes: AtomicU64,
    pub wal_writes: AtomicU64,
    pub wal_write_us_sum: AtomicU64,
    /// A WAL group's write, from taking the WAL to durable (fsync or object put included).
    pub wal_write_seconds: Latency,
    /// The file WAL's fsync of a group alone.
    pub wal_fsync_seconds: Latency,
    pub uploads: AtomicU64,
    /// An upload: its objects built and put, the manifest committed, the WAL trimmed.
    pub upload_seconds: Latency,
    pub upload_bytes: AtomicU64,
    pub object_reads: AtomicU64,
    /// Bytes of object blocks fetched ahead of catch-up readers.
    pub read_ahead_bytes: AtomicU64,
    pub cache_reads: AtomicU64,
    pub compactions: AtomicU64,
    /// Bytes compaction read and wrote (its read and write amplification, against uploads).
    pub compaction_read_bytes: AtomicU64,
    pub compaction_written_bytes: AtomicU64,
    /// Rewrites committed (log compaction of one stream's prefix).
    pub rewrites: AtomicU64,
    pub objects_deleted: AtomicU64,
}

struct StreamState {
    epoch: u64,
    start: u64,
    /// Next offset to assign.
    next: u64,
    /// Offset just past the last durable batch.
    confirmed: u64,
    open: bool,
    append_lock: Arc<tokio::sync::Mutex<()>>,
}

pub(crate) struct State {
    streams: HashMap<StreamId, StreamState>,
    pub(crate) log_cache: LogCache,
    /// The last committed manifest, for reads.
    pub(crate) committed: Arc<Manifest>,
    /// WAL position just past the last durable group.
    wal_end: u64,
    failed: Option<Failure>,
}

struct AppendReq {
    stream: StreamId,
    /// The payload as the caller gave it; `stamps` are written over it on its copy into the WAL.
    batch: Batch,
    stamps: Vec<Stamp>,
    done: oneshot::Sender<Result<()>>,
    /// When it was queued: a group's linger counts from its first request's arrival, not from
    /// when the writer got to it (which may be a whole WAL write later).
    queued: tokio::time::Instant,
}

pub(crate) struct Inner {
    pub(crate) config: EngineConfig,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) state: Mutex<State>,
    pub(crate) meta: tokio::sync::Mutex<ManifestStore>,
    /// Held for a whole compaction pass or rewrite: each replaces ranges it read earlier.
    pub(crate) compaction_lock: tokio::sync::Mutex<()>,
    /// Held for a whole upload: each uploads what no earlier one took (`meta` is held only to
    /// take object ids and to commit).
    upload_turn: tokio::sync::Mutex<()>,
    wal: tokio::sync::Mutex<Wal>,
    wal_linger: Duration,
    append_tx: Mutex<Option<mpsc::Sender<AppendReq>>>,
    upload_wake: Notify,
    space_freed: Notify,
    shutting_down: AtomicBool,
    pub(crate) block_cache: Mutex<BlockCache>,
    index_cache: Mutex<HashMap<u64, Arc<Vec<IndexEntry>>>>,
    read_ahead: Mutex<read_ahead::ReadAhead>,
    pub(crate) stats: EngineStats,
    epoch: u64,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    writer_done: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    clock: Arc<dyn crate::Clock>,
}

/// Resolves once an appended batch is durable.
pub struct Durable(oneshot::Receiver<Result<()>>);

impl Durable {
    /// Waits until the batch is durable (or failed).
    pub async fn wait(self) -> Result<()> {
        self.0.await.map_err(|_| Error::ShuttingDown)?
    }
}

/// The storage engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Inner {
    /// Takes `n` object ids no one else will use, committed before any object is put under them
    /// (so that the metadata is not held while objects are written); returns the first.
    pub(crate) async fn reserve_object_ids(&self, n: u64) -> Result<u64> {
        let mut meta = self.meta.lock().await;
        let mut next = meta.current().clone();
        let first = next.next_object_id;
        next.next_object_id += n;
        meta.commit(next).await?;
        Ok(first)
    }

    /// The injected clock's time, in ms.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms().max(0) as u64
    }
}

impl Engine {
    /// Opens the engine on `store`: claims the bucket (fencing the previous owner), replays the
    /// WAL, and starts the writer, upload and compaction tasks.
    pub async fn open(config: EngineConfig, store: Arc<dyn ObjectStore>) -> Result<Self> {
        Self::open_with_clock(config, store, Arc::new(crate::SystemClock)).await
    }

    /// [`Engine::open`] with the wall clock that dates objects and ends grace periods.
    pub async fn open_with_clock(config: EngineConfig, store: Arc<dyn ObjectStore>, clock: Arc<dyn crate::Clock>) -> Result<Self> {
        let mut meta = ManifestStore::open(store.clone(), &config.node_prefix, config.epoch_min).await?;
        let epoch = meta.current().epoch;
        // Engines sharing a bucket hand streams to each other: their stream ids must not collide.
        let stream_floor = if config.node_prefix.is_empty() { 0 } else { epoch << 40 };
        if meta.current().next_object_id < epoch << 40 || meta.current().next_stream_id < stream_floor {
            let mut next = meta.current().clone();
            next.next_object_id = next.next_object_id.max(epoch << 40);
            next.next_stream_id = next.next_stream_id.max(stream_floor);
            meta.commit(next).await?;
        }
        let mut wal = match config.wal {
            WalKind::File => Wal::File(FileWal::open(&config.wal_dir, config.wal_capacity_bytes)?),
            WalKind::Object => Wal::Object(ObjectWal::new(store.clone(), &config.node_prefix, Duration::from_millis(config.wal_batch_interval_ms))),
        };
        // The object WAL is also fenced here: the previous owner's next write finds its name taken.
        let recovered = wal.recover_and_fence(meta.current().wal_committed_pos).await?;
        let manifest = meta.current().clone();
        let mut streams = HashMap::new();
        let mut log_cache = LogCache::new(config.log_cache_bytes);
        for (&id, s) in &manifest.streams {
            streams.insert(id, StreamState { epoch: s.epoch, start: s.start, next: s.end, confirmed: s.end, open: false, append_lock: Arc::default() });
            log_cache.set_uploaded(id, s.end);
        }
        let (mut replayed, mut skipped) = (0u64, 0u64);
        for r in recovered.records {
            let Some(st) = streams.get_mut(&r.stream) else {
                skipped += 1; // the stream was deleted after this append
                continue;
            };
            let end = r.batch.end_offset();
            if end <= st.confirmed || end <= st.start {
                skipped += 1; // already uploaded, or trimmed
                continue;
            }
            if r.batch.base_offset != st.confirmed {
                tracing::error!(
                    stream = r.stream,
                    expected = st.confirmed,
                    found = r.batch.base_offset,
                    "WAL replay found a gap in a stream; keeping the data after it"
                );
            }
            st.confirmed = end;
            st.next = end;
            log_cache.insert(r.stream, r.batch);
            replayed += 1;
        }
        tracing::info!(replayed, skipped, epoch, "storage engine recovered");
        let wal_linger = wal.linger();
        let (tx, rx) = mpsc::channel(config.append_queue_max.max(1));
        let inner = Arc::new(Inner {
            block_cache: Mutex::new(BlockCache::new(config.block_cache_bytes)),
            state: Mutex::new(State { streams, log_cache, committed: Arc::new(manifest), wal_end: recovered.end, failed: None }),
            meta: tokio::sync::Mutex::new(meta),
            compaction_lock: tokio::sync::Mutex::new(()),
            upload_turn: tokio::sync::Mutex::new(()),
            wal: tokio::sync::Mutex::new(wal),
            wal_linger,
            append_tx: Mutex::new(Some(tx)),
            upload_wake: Notify::new(),
            space_freed: Notify::new(),
            shutting_down: AtomicBool::new(false),
            index_cache: Mutex::new(HashMap::new()),
            read_ahead: Mutex::new(Default::default()),
            stats: EngineStats::default(),
            epoch,
            tasks: Mutex::new(Vec::new()),
            writer_done: tokio::sync::Mutex::new(None),
            clock,
            config,
            store,
        });
        let writer = tokio::spawn(writer_loop(inner.clone(), rx));
        *inner.writer_done.lock().await = Some(writer);
        let uploader = tokio::spawn(upload_loop(inner.clone()));
        let compactor = tokio::spawn(crate::compaction::run(inner.clone()));
        inner.tasks.lock().extend([uploader, compactor]);
        Ok(Self { inner })
    }

    /// The epoch this engine claimed on the bucket.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// Counters.
    pub fn stats(&self) -> &EngineStats {
        &self.inner.stats
    }

    /// Live objects in the committed manifest: (stream-set objects, stream objects).
    pub fn object_counts(&self) -> (usize, usize) {
        let m = self.inner.state.lock().committed.clone();
        let stream = m.objects.values().filter(|o| o.stream_object).count();
        (m.objects.len() - stream, stream)
    }

    /// Why the engine stopped taking appends, if it did (a failed WAL write).
    pub fn failure(&self) -> Option<String> {
        self.inner.state.lock().failed.as_ref().map(|f| f.reason.clone())
    }

    /// (log cache bytes, pending upload bytes, block cache hits, block cache misses).
    pub fn cache_stats(&self) -> (u64, u64, u64, u64) {
        let (lc, pending) = {
            let s = self.inner.state.lock();
            (s.log_cache.bytes(), s.log_cache.pending_bytes())
        };
        let (h, m) = self.inner.block_cache.lock().hit_counts();
        (lc, pending, h, m)
    }

    /// Creates a stream; returns its id.
    pub async fn create_stream(&self) -> Result<StreamId> {
        let mut meta = self.inner.meta.lock().await;
        let mut next = meta.current().clone();
        let id = next.next_stream_id;
        next.next_stream_id += 1;
        next.streams.insert(id, Default::default());
        meta.commit(next).await?;
        let committed = Arc::new(meta.current().clone());
        let mut s = self.inner.state.lock();
        s.committed = committed;
        s.streams.insert(id, StreamState { epoch: 0, start: 0, next: 0, confirmed: 0, open: false, append_lock: Arc::default() });
        s.log_cache.set_uploaded(id, 0);
        Ok(id)
    }

    /// Opens a stream for appends with `epoch`; a later epoch fences an earlier owner.
    pub async fn open_stream(&self, id: StreamId, epoch: u64) -> Result<StreamInfo> {
        let mut meta = self.inner.meta.lock().await;
        let current = meta.current().streams.get(&id).ok_or(Error::StreamNotFound(id))?.epoch;
        if current > epoch {
            return Err(Error::Fenced { ours: epoch, current });
        }
        if current < epoch {
            let mut next = meta.current().clone();
            if let Some(s) = next.streams.get_mut(&id) {
                s.epoch = epoch;
            }
            meta.commit(next).await?;
        }
        let committed = Arc::new(meta.current().clone());
        let mut s = self.inner.state.lock();
        s.committed = committed;
        let st = s.streams.get_mut(&id).ok_or(Error::StreamNotFound(id))?;
        st.epoch = epoch;
        st.open = true;
        Ok(StreamInfo { id, start: st.start, end: st.confirmed })
    }

    /// Closes a stream: further appends fail until it is opened again.
    pub fn close_stream(&self, id: StreamId) -> Result<()> {
        let mut s = self.inner.state.lock();
        s.streams.get_mut(&id).ok_or(Error::StreamNotFound(id))?.open = false;
        Ok(())
    }

    /// Ids of every stream.
    pub fn stream_ids(&self) -> Vec<StreamId> {
        let mut v: Vec<_> = self.inner.state.lock().streams.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Offsets of a stream.
    pub fn stream_info(&self, id: StreamId) -> Result<StreamInfo> {
        let s = self.inner.state.lock();
        let st = s.streams.get(&id).ok_or(Error::StreamNotFound(id))?;
        Ok(StreamInfo { id, start: st.start, end: st.confirmed })
    }

    /// Appends a batch of `count` offsets; returns its base offset once it is durable.
    pub async fn append(&self, id: StreamId, epoch: u64, count: u32, payload: Bytes) -> Result<u64> {
        let (base, durable) = self.append_start(id, epoch, count, payload, |_| Vec::new()).await?;
        durable.wait().await?;
        Ok(base)
    }

    /// Assigns the next `count` offsets and queues the batch for the WAL, in call order per
    /// stream; returns the base offset and a handle that resolves once the batch is durable.
    /// `stamp(base_offset)` names words to write over the payload as it is copied into the WAL
    /// (its one copy): what is stored, read back and uploaded is the stamped payload.
    pub async fn append_start(&self, id: StreamId, epoch: u64, count: u32, payload: Bytes, stamp: impl FnOnce(u64) -> Vec<Stamp>) -> Result<(u64, Durable)> {
        let inner = &self.inner;
        let len = payload.len();
        if count == 0 {
            return Err(Error::InvalidArgument("a batch must hold at least one offset".into()));
        }
        if len as u64 > inner.config.wal_write_bytes_max.min(inner.config.upload_pending_bytes_max) {
            return Err(Error::InvalidArgument(format!("batch of {len} bytes is over the engine's limit")));
        }
        let lock = {
            let s = inner.state.lock();
            s.streams.get(&id).ok_or(Error::StreamNotFound(id))?.append_lock.clone()
        };
        let _guard = lock.lock().await;
        self.wait_for_upload_room(len as u64).await?;
        let (tx, rx) = oneshot::channel();
        let base = {
            let s = inner.state.lock();
            if let Some(f) = &s.failed {
                return Err(f.error(inner.epoch));
            }
            let st = s.streams.get(&id).ok_or(Error::StreamNotFound(id))?;
            if !st.open {
                return Err(Error::StreamNotOpen(id));
            }
            if st.epoch > epoch {
                return Err(Error::Fenced { ours: epoch, current: st.epoch });
            }
            st.next
        };
        // Only this task can move `next` while the stream's append lock is held.
        let stamps = stamp(base);
        if let Some(s) = stamps.iter().find(|s| !s.fits(len)) {
            return Err(Error::InvalidArgument(format!("a stamp at byte {} does not fit a payload of {len} bytes", s.at)));
        }
        let batch = Batch { base_offset: base, count, payload };
        let sender = inner.append_tx.lock().clone().ok_or(Error::ShuttingDown)?;
        if sender.send(AppendReq { stream: id, batch, stamps, done: tx, queued: tokio::time::Instant::now() }).await.is_err() {
            return Err(Error::ShuttingDown);
        }
        if let Some(st) = inner.state.lock().streams.get_mut(&id) {
            st.next = base + u64::from(count);
        }
        inner.stats.appends.fetch_add(1, Relaxed);
        inner.stats.append_bytes.fetch_add(len as u64, Relaxed);
        Ok((base, Durable(rx)))
    }

    async fn wait_for_upload_room(&self, len: u64) -> Result<()> {
        let inner = &self.inner;
        loop {
            let pending = inner.state.lock().log_cache.pending_bytes();
            if pending == 0 || pending + len <= inner.config.upload_pending_bytes_max {
                return Ok(());
            }
            if inner.shutting_down.load(Relaxed) {
                return Err(Error::ShuttingDown);
            }
            inner.upload_wake.notify_one();
            let _ = tokio::time::timeout(Duration::from_millis(100), inner.space_freed.notified()).await;
        }
    }

    /// Reads batches overlapping `[from, to)`, about `bytes_max` at most (always at least one batch
    /// when any is there). Reading at the end returns nothing; outside the stream is an error.
    /// Offsets a rewrite dropped are skipped: the first batch may start after `from`.
    pub async fn read(&self, id: StreamId, from: u64, to: u64, bytes_max: u64) -> Result<Vec<Batch>> {
        let inner = &self.inner;
        let (cached, committed) = {
            let s = inner.state.lock();
            let st = s.streams.get(&id).ok_or(Error::StreamNotFound(id))?;
            if from < st.start || from > st.confirmed {
                return Err(Error::OffsetOutOfRange { stream: id, offset: from, start: st.start, end: st.confirmed });
            }
            let to = to.min(st.confirmed);
            if from >= to {
                return Ok(vec![]);
            }
            let first = s.log_cache.first_offset(id);
            let cached = s.log_cache.read(id, from, to, bytes_max);
            let need_objects = first.is_none_or(|f| from < f);
            (cached, need_objects.then(|| (s.committed.clone(), to, first.unwrap_or(to))))
        };
        let Some((manifest, to, cache_first)) = committed else {
            inner.stats.cache_reads.fetch_add(1, Relaxed);
            return Ok(cached);
        };
        inner.stats.object_reads.fetch_add(1, Relaxed);
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut pos = from;
        let ranges = manifest.streams.get(&id).map(|s| s.ranges.clone()).unwrap_or_default();
        let from_ranges = from;
        // Whether the byte budget stopped the walk over the objects before their last range.
        let mut budget_spent = false;
        for r in ranges.iter().filter(|r| r.end > from_ranges && r.start < to.min(cache_first)) {
            if pos >= cache_first || bytes >= bytes_max {
                budget_spent = pos < cache_first;
                break;
            }
            if r.end <= pos {
                continue;
            }
            let size = manifest
                .objects
                .get(&r.object)
                .map(|o| o.size)
                .ok_or_else(|| Error::corrupt(format!("stream {id}"), format!("range refers to unknown object {}", r.object)))?;
            // Bounded by the range: one object may hold several runs of a stream (after compaction).
            for b in self.read_object(r.object, size, id, pos, to.min(r.end), bytes_max.saturating_sub(bytes), !out.is_empty()).await? {
                pos = b.end_offset();
                bytes += b.payload.len() as u64;
                out.push(b);
            }
            if pos < r.end.min(to) {
                budget_spent = true;
                break; // the byte budget ran out inside this object
            }
        }
        self.read_ahead(id, pos, manifest, cache_first);
        // A rewrite may leave a gap (dropped batches) between the last range and the cache.
        if !budget_spent && pos < cache_first {
            pos = cache_first;
        }
        // The cached part continues the result only if the objects brought us up to it.
        if bytes < bytes_max && pos < to && pos >= cache_first {
            out.extend(cached.into_iter().filter(|b| b.base_offset >= pos));
        }
        Ok(out)
    }

    /// Reads `[from, to)` in steps of about `step_bytes`, handing each batch to `f` in offset order
    /// until `to` or until `f` breaks; memory stays bounded by one step.
    pub async fn scan<E: From<Error>>(
        &self,
        id: StreamId,
        from: u64,
        to: u64,
        step_bytes: u64,
        mut f: impl FnMut(Batch) -> std::result::Result<std::ops::ControlFlow<()>, E>,
    ) -> std::result::Result<(), E> {
        let mut pos = from;
        while pos < to {
            let batches = self.read(id, pos, to, step_bytes).await?;
            let Some(last) = batches.last() else { break };
            pos = last.end_offset();
            for b in batches {
                if f(b)?.is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn read_object(&self, object: u64, size: u64, id: StreamId, from: u64, to: u64, bytes_max: u64, have_some: bool) -> Result<Vec<Batch>> {
        let index = self.index(object, size).await?;
        let name = object_path(object).to_string();
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let wanted: Vec<IndexEntry> = index.iter().filter(|e| e.stream == id && e.end > from && e.start < to).copied().collect();
        // Read ahead: fetch up to the byte budget (at least one block) in one go.
        let mut fetch = Vec::new();
        let mut budget = 0u64;
        for e in &wanted {
            if !fetch.is_empty() && budget >= bytes_max {
                break;
            }
            budget += u64::from(e.len);
            fetch.push(*e);
        }
        let mut blocks = Vec::with_capacity(fetch.len());
        let not_cached: Vec<IndexEntry> = {
            let mut cache = self.inner.block_cache.lock();
            fetch.iter().filter(|e| cache.get(object, e.pos).is_none()).copied().collect()
        };
        // Blocks a read-ahead is fetching are waited for, the others fetched here meanwhile
        // (looked up again: a read-ahead may have cached them since).
        let (missing, waits) = self.inner.read_ahead.lock().waits(object, &not_cached);
        let missing: Vec<IndexEntry> = {
            let cache = self.inner.block_cache.lock();
            missing.into_iter().filter(|e| !cache.contains(object, e.pos)).collect()
        };
        let fetch_missing = async {
            if missing.is_empty() {
                return Ok(());
            }
            let ranges: Vec<_> = missing.iter().map(|e| e.pos..e.pos + u64::from(e.len)).collect();
            let got = self.inner.store.get_ranges(&object_path(object), &ranges).await?;
            let mut cache = self.inner.block_cache.lock();
            for (e, b) in missing.iter().zip(got) {
                cache.insert(object, e.pos, b);
            }
            Ok::<_, Error>(())
        };
        let (fetched, ()) = tokio::join!(fetch_missing, read_ahead::wait_all(waits));
        fetched?;
        {
            let mut cache = self.inner.block_cache.lock();
            for e in &fetch {
                blocks.push((*e, cache.get(object, e.pos)));
            }
        }
        for (e, block) in blocks {
            let block = match block {
                Some(b) => b,
                None => self.inner.store.get_range(&object_path(object), e.pos..e.pos + u64::from(e.len)).await?,
            };
            for b in object::decode_block(&name, &e, block)? {
                if b.end_offset() <= from || b.base_offset >= to {
                    continue;
                }
                if (have_some || !out.is_empty()) && bytes + b.payload.len() as u64 > bytes_max {
                    return Ok(out);
                }
                bytes += b.payload.len() as u64;
                out.push(b);
            }
        }
        Ok(out)
    }

    async fn index(&self, object: u64, size: u64) -> Result<Arc<Vec<IndexEntry>>> {
        if let Some(ix) = self.inner.index_cache.lock().get(&object) {
            return Ok(ix.clone());
        }
        let path = object_path(object);
        let name = path.to_string();
        let tail_start = size.saturating_sub(TAIL_READ_BYTES);
        let tail = self.inner.store.get_range(&path, tail_start..size).await?;
        if tail.len() < object::FOOTER_BYTES {
            return Err(Error::corrupt(name, "object shorter than its footer"));
        }
        let footer = object::decode_footer(&name, &tail[tail.len() - object::FOOTER_BYTES..])?;
        let range = object::index_range(&name, &footer, size)?;
        let index_bytes = if range.start >= tail_start {
            tail.slice((range.start - tail_start) as usize..(range.end - tail_start) as usize)
        } else {
            self.inner.store.get_range(&path, range).await?
        };
        let index = Arc::new(object::decode_index(&name, &footer, &index_bytes)?);
        let mut cache = self.inner.index_cache.lock();
        if cache.len() >= INDEX_CACHE_OBJECTS_MAX {
            cache.clear();
        }
        cache.insert(object, index.clone());
        Ok(index)
    }

    /// Makes offsets below `start` unreadable and frees the objects that held only them.
    pub async fn trim(&self, id: StreamId, start: u64) -> Result<()> {
        let mut meta = self.inner.meta.lock().await;
        let confirmed = self.stream_info(id)?.end;
        let start = start.min(confirmed);
        let mut next = meta.current().clone();
        let s = next.streams.get_mut(&id).ok_or(Error::StreamNotFound(id))?;
        if start <= s.start {
            return Ok(());
        }
        s.start = start;
        s.ranges.retain(|r| r.end > start);
        next.collect_garbage(self.inner.now_ms());
        meta.commit(next).await?;
        let committed = Arc::new(meta.current().clone());
        let mut st = self.inner.state.lock();
        st.committed = committed;
        if let Some(ss) = st.streams.get_mut(&id) {
            ss.start = start;
        }
        st.log_cache.trim(id, start);
        Ok(())
    }

    /// Deletes a stream and, after the grace period, its data.
    pub async fn delete_stream(&self, id: StreamId) -> Result<()> {
        let mut meta = self.inner.meta.lock().await;
        let mut next = meta.current().clone();
        if next.streams.remove(&id).is_none() {
            return Err(Error::StreamNotFound(id));
        }
        next.collect_garbage(self.inner.now_ms());
        meta.commit(next).await?;
        let committed = Arc::new(meta.current().clone());
        let mut s = self.inner.state.lock();
        s.committed = committed;
        s.streams.remove(&id);
        s.log_cache.remove(id);
        Ok(())
    }

    /// Reads a small metadata value.
    pub fn kv_get(&self, key: &str) -> Option<String> {
        self.inner.state.lock().committed.kv.get(key).cloned()
    }

    /// Keys starting with `prefix`, with their values.
    pub fn kv_scan(&self, prefix: &str) -> Vec<(String, String)> {
        let m = self.inner.state.lock().committed.clone();
        m.kv.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Writes (or with `None` removes) small metadata values, atomically, durably.
    pub async fn kv_put(&self, entries: Vec<(String, Option<String>)>) -> Result<()> {
        let mut meta = self.inner.meta.lock().await;
        let mut next = meta.current().clone();
        for (k, v) in entries {
            match v {
                Some(v) => next.kv.insert(k, v),
                None => next.kv.remove(&k),
            };
        }
        meta.commit(next).await?;
        self.inner.state.lock().committed = Arc::new(meta.current().clone());
        Ok(())
    }

    /// Uploads everything waiting now (tests, shutdown).
    pub async fn flush(&self) -> Result<()> {
        upload_once(&self.inner).await.map(|_| ())
    }

    /// Offset just past the last batch uploaded to objects (what a rewrite may reach).
    pub fn uploaded_end(&self, id: StreamId) -> Result<u64> {
        self.inner.state.lock().committed.streams.get(&id).map(|s| s.end).ok_or(Error::StreamNotFound(id))
    }

    /// Runs one compaction pass now (tests).
    pub async fn compact(&self) -> Result<bool> {
        crate::compaction::compact_once(&self.inner).await
    }

    /// Deletes garbage objects whose grace period has passed (tests use a zero grace).
    pub async fn collect_garbage(&self) -> Result<usize> {
        crate::compaction::delete_garbage(&self.inner).await
    }

    /// Simulates the death of the process: stops every task at once, flushing nothing.
    #[doc(hidden)]
    pub fn crash(&self) {
        self.inner.shutting_down.store(true, Relaxed);
        drop(self.inner.append_tx.lock().take());
        if let Ok(mut w) = self.inner.writer_done.try_lock() {
            if let Some(w) = w.take() {
                w.abort();
            }
        }
        for t in self.inner.tasks.lock().drain(..) {
            t.abort();
        }
    }

    /// Stops taking appends, finishes queued ones, uploads what is pending, stops the tasks.
    pub async fn close(&self) -> Result<()> {
        self.inner.shutting_down.store(true, Relaxed);
        drop(self.inner.append_tx.lock().take());
        if let Some(w) = self.inner.writer_done.lock().await.take() {
            let _ = w.await;
        }
        let r = upload_once(&self.inner).await;
        for t in self.inner.tasks.lock().drain(..) {
            t.abort();
        }
        r.map(|_| ())
    }
}

mod handoff;
mod read_ahead;
mod rewrite;
mod upload;
mod writer;

pub use handoff::{handoff_path, Handoff};
pub use rewrite::{RewriteStats, Rewritten};

use upload::upload_loop;
pub(crate) use upload::upload_once;
use writer::{writer_loop, Failure};

#[cfg(test)]
mod tests;
