//! Durable broker state in one stream of the engine, as Kafka keeps `__consumer_offsets`:
//! committed offsets as records, plus periodic snapshots of offsets, idempotent-producer tables
//! and time indexes. After a snapshot is durable the stream is trimmed up to it, so the stream
//! stays small. On start the records are replayed, then each partition's log is scanned from the
//! snapshot's end to rebuild what came after.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;
use floe_s3stream::{Engine, StreamId};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::records;
use crate::topics::Topics;

mod homes;
mod snapshot;
pub use homes::OffsetsHomes;
pub use snapshot::PartitionSnapshot;
use snapshot::Snapshot;

const STREAM_KEY: &str = "internal/state_stream";
const PRODUCER_ID_KEY: &str = "internal/next_producer_id";
const PRODUCER_ID_BLOCK: i64 = 1000;
/// Bytes read per step when scanning a partition's log on start.
const SCAN_READ_BYTES: u64 = 4 << 20;

/// A committed offset of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

/// (group, topic, partition)
pub type OffsetKey = (String, String, i32);

/// Offsets of one group to set (`Some`) or delete (`None`): (topic, partition, offset).
pub type OffsetEntries = Vec<(String, i32, Option<Committed>)>;

/// Externally tagged on purpose: an internally tagged enum buffers its content, and buffered
/// JSON cannot give integer map keys (producer ids) back.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    /// Offsets committed (Some) or deleted (None) for one group.
    Offsets {
        group: String,
        entries: Vec<(String, i32, Option<Committed>)>,
    },
    /// A whole snapshot in one record (written by earlier versions; still read).
    Snapshot {
        offsets: Vec<(OffsetKey, Committed)>,
        partitions: Vec<PartitionSnapshot>,
    },
    /// A snapshot in bounded records: it takes effect when its end is read.
    SnapshotBegin {
        id: u64,
    },
    SnapshotPart {
        id: u64,
        part: snapshot::Part,
    },
    SnapshotEnd {
        id: u64,
        parts: u32,
    },
}

/// Replay of the state stream: the live state, and a snapshot being read.
#[derive(Default)]
struct Replay {
    offsets: HashMap<OffsetKey, Committed>,
    partitions: HashMap<StreamId, PartitionSnapshot>,
    /// (id, parts read, what they hold) of a snapshot whose end is not yet read.
    pending: Option<(u64, u32, Snapshot)>,
}

impl Replay {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Offsets { group, entries } => {
                // Not expected inside a snapshot (the commit order is held while one is written),
                // but a commit after an unfinished one applies to both.
                if let Some((_, _, s)) = &mut self.pending {
                    apply(&mut s.offsets, &group, entries.clone());
                }
                apply(&mut self.offsets, &group, entries)
            }
            Record::Snapshot { offsets, partitions } => {
                self.offsets = offsets.into_iter().collect();
                self.partitions = partitions.into_iter().map(|p| (p.stream, p)).collect();
            }
            Record::SnapshotBegin { id } => self.pending = Some((id, 0, Snapshot::default())),
            Record::SnapshotPart { id, part } => {
                if let Some((pid, n, s)) = &mut self.pending {
                    if *pid == id {
                        *n += 1;
                        s.add(part);
                    }
                }
            }
            Record::SnapshotEnd { id, parts } => match self.pending.take() {
                Some((pid, n, s)) if pid == id && n == parts => {
                    self.offsets = s.offsets;
                    self.partitions = s.partitions;
                }
                other => tracing::warn!(id, parts, read = ?other.map(|(i, n, _)| (i, n)), "an incomplete state snapshot is ignored"),
            },
        }
    }
}

/// The broker's durable state.
pub struct StateStore {
    engine: Engine,
    stream: StreamId,
    offsets: RwLock<HashMap<OffsetKey, Committed>>,
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// The lowest producer id handed out: in a cluster `engine epoch << 32`, so brokers (whose
    /// engine epochs differ) never hand out the same id.
    producer_id_floor: i64,
    /// Orders commits (their log position and their effect) and lets a snapshot see all of them.
    commit_order: tokio::sync::Mutex<()>,
    /// Tells one snapshot's records from another's (a crash may leave one unfinished).
    snapshot_id: std::sync::atomic::AtomicU64,
    /// Per partition stream, the end covered by the last durable snapshot: a start-up rescans
    /// only after it, so log compaction stays below it.
    snapshotted: parking_lot::Mutex<HashMap<StreamId, u64>>,
    /// In a cluster: where each group's offsets live (a partition of the offsets topic this
    /// node leads); alone: `None`, every group's in the state stream.
    homes: Option<OffsetsHomes>,
}

impl StateStore {
    /// Opens (or creates) the state stream and replays it; then rebuilds partition state.
    /// Producers found by the scan count as seen at `now_ms`.
    /// In a cluster, `offsets_partitions` is the offsets topic's partition count: groups'
    /// offsets then live in its partitions (`adopt_offsets`), not in the state stream.
    pub async fn open(engine: Engine, topics: &Topics, now_ms: i64, producer_id_floor: i64, offsets_partitions: Option<u32>) -> Result<Arc<Self>> {
        let stream = match engine.kv_get(STREAM_KEY).and_then(|v| v.parse().ok()) {
            Some(s) => s,
            None => {
                let s = engine.create_stream().await?;
                engine.kv_put(vec![(STREAM_KEY.into(), Some(s.to_string()))]).await?;
                s
            }
        };
        engine.open_stream(stream, engine.epoch()).await?;
        let Replay { offsets, partitions: mut snapshots, .. } = replay(&engine, stream).await?;
        let this = Arc::new(Self {
            engine: engine.clone(),
            stream,
            offsets: RwLock::new(offsets),
            producer_ids: Default::default(),
            producer_id_floor,
            commit_order: Default::default(),
            snapshot_id: std::sync::atomic::AtomicU64::new(now_ms.max(0) as u64),
            snapshotted: Default::default(),
            homes: offsets_partitions.map(OffsetsHomes::new),
        });
        // The offsets topic holds state records, not Kafka batches: nothing to rebuild from it.
        for topic in topics.all().into_iter().filter(|t| !crate::topics::is_internal(&t.meta.name)) {
            for p in topic.local_partitions() {
                let mut from = engine.stream_info(p.stream)?.start;
                if let Some(s) = snapshots.remove(&p.stream) {
                    this.snapshotted.lock().insert(p.stream, s.scanned_to);
                    *p.producers.lock() = s.producers;
                    *p.time_index.lock() = s.index;
                    *p.txn.lock() = s.txn;
                    from = from.max(s.scanned_to);
                }
                this.scan_partition(p, from, now_ms).await?;
            }
        }
        Ok(this)
    }

    /// A partition's producer, time and transaction state, covering its log up to `end` (the
    /// caller holds the partition still: sealed, or under its sequencing lock).
    pub fn partition_snapshot(p: &crate::partition::Partition, end: u64) -> PartitionSnapshot {
        PartitionSnapshot {
            topic: p.topic.clone(),
            partition: p.index,
            stream: p.stream,
            scanned_to: end,
            producers: p.producers.lock().clone(),
            index: p.time_index.lock().clone(),
            txn: p.txn.lock().clone(),
        }
    }

    /// Gives a partition taken over from another broker its state: the giver's snapshot, then
    /// a scan of the log after it (the whole log without one).
    pub async fn adopt(&self, p: &crate::partition::Partition, given: Option<PartitionSnapshot>, now_ms: i64) -> Result<()> {
        let mut from = self.engine.stream_info(p.stream)?.start;
        if let Some(s) = given.filter(|s| s.stream == p.stream) {
            *p.producers.lock() = s.producers;
            *p.time_index.lock() = s.index;
            *p.txn.lock() = s.txn;
            from = from.max(s.scanned_to);
        }
        self.scan_partition(p, from, now_ms).await
    }

    async fn scan_partition(&self, p: &crate::partition::Partition, from: u64, now_ms: i64) -> Result<()> {
        let end = self.engine.stream_info(p.stream)?.end;
        self.engine
            .scan(p.stream, from, end, SCAN_READ_BYTES, |b| {
                let mut max_ts = i64::MIN;
                let mut producers = p.producers.lock();
                let mut txn = p.txn.lock();
                for (base, info) in records::headers(&b.payload) {
                    producers.record(&info, base, now_ms);
                    max_ts = max_ts.max(info.max_timestamp);
                    if info.control {
                        let batch = &b.payload[info.position..info.position + info.size];
                        if let Some(commit) = records::control::marker_kind(batch, &info) {
                            txn.on_marker(info.producer_id, base, commit);
                        }
                    } else if info.transactional {
                        txn.on_batch(info.producer_id, base);
                    }
                }
                p.time_index.lock().push(b.base_offset as i64, max_ts, b.payload.len() as u64);
                Ok::<_, BrokerError>(ControlFlow::Continue(()))
            })
            .await
    }

    /// Commits offsets of a group: takes its place in the log and in memory now, in call order
    /// (pipelined commits of one connection apply in the order they came); the returned handle
    /// resolves once the commit is durable.
    pub async fn commit_start(&self, group: &str, entries: OffsetEntries) -> Result<floe_s3stream::Durable> {
        let _order = self.commit_order.lock().await;
        let stream = self.home_of(group)?;
        let record = Record::Offsets { group: group.to_string(), entries };
        let json = Bytes::from(serde_json::to_vec(&record).map_err(|e| BrokerError::Internal(e.to_string()))?);
        let (_, durable) = self.engine.append_start(stream, self.engine.epoch(), 1, json, |_| Vec::new()).await?;
        if let Record::Offsets { group, entries } = record {
            apply(&mut self.offsets.write(), &group, entries);
        }
        Ok(durable)
    }

    /// Commits offsets of a group and waits until they are durable.
    pub async fn commit(&self, group: &str, entries: OffsetEntries) -> Result<()> {
        Ok(self.commit_start(group, entries).await?.wait().await?)
    }

    /// A committed offset.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.offsets.read().get(&(group.to_string(), topic.to_string(), partition)).cloned()
    }

    /// Every committed offset of a group.
    pub fn group_offsets(&self, group: &str) -> Vec<(String, i32, Committed)> {
        let mut v: Vec<_> = self.offsets.read().iter().filter(|((g, _, _), _)| g == group).map(|((_, t, p), c)| (t.clone(), *p, c.clone())).collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    /// Groups that have committed offsets.
    pub fn groups_with_offsets(&self) -> Vec<String> {
        let mut v: Vec<String> = self.offsets.read().keys().map(|(g, _, _)| g.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// A fresh producer id, from durably reserved blocks.
    pub async fn next_producer_id(&self) -> Result<i64> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let start = self.engine.kv_get(PRODUCER_ID_KEY).and_then(|v| v.parse().ok()).unwrap_or(1000i64).max(self.producer_id_floor);
            let limit = start + PRODUCER_ID_BLOCK;
            self.engine.kv_put(vec![(PRODUCER_ID_KEY.into(), Some(limit.to_string()))]).await?;
            *ids = (start, limit);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Writes a snapshot of everything, then trims the stream up to it.
    pub async fn snapshot(&self, topics: &Topics) -> Result<()> {
        let mut partitions = Vec::new();
        let mut covered = Vec::new();
        // The offsets topic holds state records, not Kafka batches: nothing to rebuild from it.
        for topic in topics.all().into_iter().filter(|t| !crate::topics::is_internal(&t.meta.name)) {
            for p in topic.local_partitions() {
                // The end is read before the tables, so the tables cover at least up to it.
                let Ok(info) = self.engine.stream_info(p.stream) else { continue };
                covered.push((p.stream, info.end));
                partitions.push(Self::partition_snapshot(p, info.end));
            }
        }
        // Under the commit order: every commit before the snapshot is in it, every later one
        // after it. The snapshot is a run of bounded records; the stream is trimmed to its begin
        // only once its end is durable (replay ignores a snapshot whose end it does not find).
        // In a cluster, groups' offsets go to their own partitions' streams, each snapshotted alike.
        let written = {
            let _order = self.commit_order.lock().await;
            let offsets = self.offsets.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
            let mut written = Vec::new();
            match &self.homes {
                None => written.push((self.stream, self.write_snapshot(self.stream, offsets, partitions).await?)),
                Some(homes) => {
                    written.push((self.stream, self.write_snapshot(self.stream, Vec::new(), partitions).await?));
                    for (stream, theirs) in homes.split(offsets) {
                        written.push((stream, self.write_snapshot(stream, theirs, Vec::new()).await?));
                    }
                }
            }
            written
        };
        for (stream, (base, durable)) in written {
            durable.wait().await?;
            if stream == self.stream {
                self.snapshotted.lock().extend(covered.iter().copied());
            }
            self.engine.trim(stream, base).await?;
        }
        Ok(())
    }

    /// Appends one snapshot's records to `stream` (the caller holds the commit order); its first
    /// offset and the handle of its last record.
    async fn write_snapshot(
        &self,
        stream: StreamId,
        offsets: Vec<(OffsetKey, Committed)>,
        partitions: Vec<PartitionSnapshot>,
    ) -> Result<(u64, floe_s3stream::Durable)> {
        let parts = snapshot::parts(offsets, partitions);
        let id = self.snapshot_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = parts.len() as u32;
        let records = std::iter::once(Record::SnapshotBegin { id })
            .chain(parts.into_iter().map(|part| Record::SnapshotPart { id, part }))
            .chain(std::iter::once(Record::SnapshotEnd { id, parts: n }));
        let mut first = None;
        let mut last = None;
        for r in records {
            let json = Bytes::from(serde_json::to_vec(&r).map_err(|e| BrokerError::Internal(e.to_string()))?);
            let (base, durable) = self.engine.append_start(stream, self.engine.epoch(), 1, json, |_| Vec::new()).await?;
            first.get_or_insert(base);
            last = Some(durable);
        }
        Ok((first.unwrap_or_default(), last.ok_or_else(|| BrokerError::Internal("an empty snapshot".into()))?))
    }

    /// The end of partition stream `stream` covered by the last durable snapshot.
    pub fn snapshotted_to(&self, stream: StreamId) -> Option<u64> {
        self.snapshotted.lock().get(&stream).copied()
    }
}

/// Reads a state stream (the node's, or a partition of the offsets topic) from its start.
async fn replay(engine: &Engine, stream: StreamId) -> Result<Replay> {
    let info = engine.stream_info(stream)?;
    let mut replay = Replay::default();
    engine
        .scan(stream, info.start, info.end, SCAN_READ_BYTES, |b| {
            let record: Record = serde_json::from_slice(&b.payload)
                .map_err(|e| BrokerError::Internal(format!("state record at offset {} is unreadable: {e}", b.base_offset)))?;
            replay.apply(record);
            Ok::<_, BrokerError>(ControlFlow::Continue(()))
        })
        .await?;
    Ok(replay)
}

fn apply(offsets: &mut HashMap<OffsetKey, Committed>, group: &str, entries: Vec<(String, i32, Option<Committed>)>) {
    for (topic, partition, c) in entries {
        let key = (group.to_string(), topic, partition);
        match c {
            Some(c) => offsets.insert(key, c),
            None => offsets.remove(&key),
        };
    }
}
