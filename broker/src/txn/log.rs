//! Transaction coordinator state in partitioned streams: a transactional id lives in partition `partition_for(id, n)`, each partition its own stream of whole-state records, replayed on open; in a cluster the partitions are those of the `__transaction_state` topic, moved between brokers like any.

use std::collections::HashMap;
use std::ops::ControlFlow;

use bytes::Bytes;
use floe_s3stream::{Engine, StreamId};
use serde::{Deserialize, Serialize};

use super::metadata::TxnMetadata;
use crate::error::{BrokerError, Result};

const PARTITIONS_KEY: &str = "internal/txn/partitions";
/// Bytes read per step when replaying a partition.
const READ_BYTES: u64 = 4 << 20;
/// Most coordinator partitions (a stored count above it is corruption, not a setting).
pub const PARTITIONS_MAX: u32 = 1024;
/// Longest transactional id accepted.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = 1024;
/// Largest state record (a transaction's partitions and pending offsets with their metadata);
/// well under the engine's append limit.
pub const STATE_RECORD_BYTES_MAX: usize = 4 << 20;

/// Java's `String.hashCode` (over UTF-16 code units), as Kafka hashes transactional ids and groups.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The coordinator partition of `key` among `partitions` (Kafka's `partitionFor`: the hash's
/// sign bit cleared, modulo the count).
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    ((java_string_hash(key) & 0x7fff_ffff) as u32) % partitions.max(1)
}

/// One record: a transactional id's whole state, or its removal.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: String,
    meta: Option<TxnMetadata>,
}

/// The coordinator partitions this node serves: all of them when it runs alone; in a cluster,
/// the partitions of the transaction topic it leads (`adopt`, `release`).
pub struct TxnLog {
    engine: Engine,
    partitions: u32,
    streams: parking_lot::RwLock<HashMap<u32, StreamId>>,
}

fn stream_key(n: u32) -> String {
    format!("internal/txn/{n}")
}

impl TxnLog {
    /// Opens (creating on first use) `partitions` coordinator partitions and replays them: the
    /// last state of every transactional id. The count is fixed at the first open (ids would
    /// otherwise change partition); a different `partitions` later is ignored with a warning.
    pub async fn open(engine: Engine, partitions: u32) -> Result<(TxnLog, HashMap<String, TxnMetadata>)> {
        let count = match engine.kv_get(PARTITIONS_KEY).and_then(|v| v.parse::<u32>().ok()) {
            Some(n) if n == 0 || n > PARTITIONS_MAX => {
                return Err(BrokerError::Internal(format!("the stored transaction partition count {n} is outside 1..={PARTITIONS_MAX}")));
            }
            Some(n) => {
                if n != partitions {
                    tracing::warn!(stored = n, configured = partitions, "the transaction coordinator keeps its first partition count");
                }
                n
            }
            None => partitions.clamp(1, PARTITIONS_MAX),
        };
        let mut streams = Vec::with_capacity(count as usize);
        let mut created = Vec::new();
        for n in 0..count {
            let s = match engine.kv_get(&stream_key(n)).and_then(|v| v.parse().ok()) {
                Some(s) => s,
                None => {
                    let s = engine.create_stream().await?;
                    created.push((stream_key(n), Some(s.to_string())));
                    s
                }
            };
            streams.push(s);
        }
        if !created.is_empty() {
            created.push((PARTITIONS_KEY.to_string(), Some(count.to_string())));
            engine.kv_put(created).await?;
        }
        let mut state = HashMap::new();
        for &s in &streams {
            engine.open_stream(s, engine.epoch()).await?;
            state.extend(replay(&engine, s).await?);
        }
        let streams = parking_lot::RwLock::new((0..count).zip(streams).collect());
        Ok((TxnLog { engine, partitions: count, streams }, state))
    }

    /// A cluster node's log: no partition served until it adopts one.
    pub fn for_cluster(engine: Engine, partitions: u32) -> TxnLog {
        TxnLog { engine, partitions: partitions.clamp(1, PARTITIONS_MAX), streams: Default::default() }
    }

    /// The number of coordinator partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The stream of `id`'s partition; NOT_COORDINATOR when another node serves it.
    pub fn stream_of(&self, id: &str) -> Result<StreamId> {
        self.streams.read().get(&partition_for(id, self.partitions)).copied().ok_or_else(|| BrokerError::NotCoordinator(id.to_string()))
    }

    /// Starts serving partition `partition` (stream `stream`, open here): the last state of
    /// each of its transactional ids.
    pub async fn adopt(&self, partition: u32, stream: StreamId) -> Result<HashMap<String, TxnMetadata>> {
        let state = replay(&self.engine, stream).await?;
        self.streams.write().insert(partition, stream);
        Ok(state.into_iter().filter(|(id, _)| partition_for(id, self.partitions) == partition).collect())
    }

    /// Stops serving partition `partition`: its ids' writes answer NOT_COORDINATOR from now on.
    pub fn release(&self, partition: u32) {
        self.streams.write().remove(&partition);
    }

    /// Makes `meta` the durable state of its transactional id.
    pub async fn write(&self, meta: &TxnMetadata) -> Result<()> {
        self.append(&meta.transactional_id, Some(meta.clone())).await
    }

    /// Forgets a transactional id (expired).
    pub async fn remove(&self, id: &str) -> Result<()> {
        self.append(id, None).await
    }

    async fn append(&self, id: &str, meta: Option<TxnMetadata>) -> Result<()> {
        if id.is_empty() || id.len() > TRANSACTIONAL_ID_BYTES_MAX {
            return Err(BrokerError::InvalidRequest(format!("a transactional id must be 1..={TRANSACTIONAL_ID_BYTES_MAX} bytes")));
        }
        let stream = self.stream_of(id)?;
        let json = serde_json::to_vec(&Record { id: id.to_string(), meta }).map_err(|e| BrokerError::Internal(e.to_string()))?;
        if json.len() > STATE_RECORD_BYTES_MAX {
            return Err(BrokerError::InvalidRequest(format!("the transaction's state would take {} bytes; at most {STATE_RECORD_BYTES_MAX}", json.len())));
        }
        self.engine.append(stream, self.engine.epoch(), 1, Bytes::from(json)).await?;
        Ok(())
    }
}

/// The last state of every transactional id recorded in stream `s` (open).
async fn replay(engine: &Engine, s: StreamId) -> Result<HashMap<String, TxnMetadata>> {
    let info = engine.stream_info(s)?;
    let mut state = HashMap::new();
    engine
        .scan(s, info.start, info.end, READ_BYTES, |b| {
            let r: Record = serde_json::from_slice(&b.payload)
                .map_err(|e| BrokerError::Internal(format!("transaction record at offset {} of stream {s} is unreadable: {e}", b.base_offset)))?;
            match r.meta {
                Some(m) => state.insert(r.id, m),
                None => state.remove(&r.id),
            };
            Ok::<_, BrokerError>(ControlFlow::Continue(()))
        })
        .await?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use floe_s3stream::EngineConfig;
    use object_store::memory::InMemory;

    use super::*;

    #[test]
    fn partitions_are_kafkas() {
        // What Java 17 printed for `s.hashCode()` and `(s.hashCode() & 0x7fffffff) % 50`.
        for (s, hash, partition) in [
            ("", 0, 0),
            ("a", 97, 47),
            ("hello", 99_162_322, 22),
            ("my-transactional-id", -959_806_496, 2),
            ("é😀", 1_996_812, 12),
            ("connect-cluster-offsets", -1_742_344_566, 32),
        ] {
            assert_eq!((java_string_hash(s), partition_for(s, 50)), (hash, partition), "{s:?}");
        }
    }

    fn cfg(dir: &std::path::Path) -> EngineConfig {
        EngineConfig { wal_dir: dir.join("wal"), wal_capacity_bytes: 4 << 20, ..Default::default() }
    }

    #[tokio::test]
    async fn states_survive_a_reopen_and_the_partition_count_stays() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Arc::new(InMemory::new());
        let engine = Engine::open(cfg(dir.path()), store.clone()).await.expect("engine");
        let (log, state) = TxnLog::open(engine.clone(), 4).await.expect("open");
        assert!(state.is_empty());
        let a = TxnMetadata::new("app-a", 10, 60_000, 1);
        let mut b = TxnMetadata::new("app-b", 11, 60_000, 1);
        log.write(&a).await.expect("a");
        log.write(&b).await.expect("b");
        b.producer_epoch = 3;
        log.write(&b).await.expect("b again");
        log.write(&TxnMetadata::new("gone", 12, 1, 1)).await.expect("gone");
        log.remove("gone").await.expect("remove");
        assert!(log.write(&TxnMetadata::new(&"x".repeat(TRANSACTIONAL_ID_BYTES_MAX + 1), 1, 1, 1)).await.is_err());
        let mut huge = TxnMetadata::new("huge", 13, 1, 1);
        huge.groups = (0..5_000).map(|i| format!("{i:01000}")).collect();
        assert!(log.write(&huge).await.is_err(), "a state record over STATE_RECORD_BYTES_MAX is refused, not appended");
        engine.close().await.expect("close");
        let engine = Engine::open(cfg(dir.path()), store).await.expect("reopen");
        let (log, state) = TxnLog::open(engine.clone(), 8).await.expect("reopen log");
        assert_eq!(log.partitions(), 4, "the first count stays");
        assert_eq!(state.len(), 2);
        assert_eq!(state["app-a"], a);
        assert_eq!(state["app-b"].producer_epoch, 3, "the last record wins");
        // A stored count no setting could have written is refused, not allocated for.
        engine.kv_put(vec![(PARTITIONS_KEY.into(), Some("4000000000".into()))]).await.expect("corrupt");
        assert!(TxnLog::open(engine.clone(), 4).await.is_err());
        engine.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_cluster_log_serves_only_the_partitions_it_adopted() {
        let dir = tempfile::tempdir().expect("tmp");
        let engine = Engine::open(cfg(dir.path()), Arc::new(InMemory::new())).await.expect("engine");
        let log = TxnLog::for_cluster(engine.clone(), 4);
        let a = TxnMetadata::new("app-a", 10, 60_000, 1);
        let home = partition_for("app-a", 4);
        assert!(matches!(log.write(&a).await, Err(BrokerError::NotCoordinator(_))), "no partition adopted yet");
        let stream = engine.create_stream().await.expect("stream");
        engine.open_stream(stream, engine.epoch()).await.expect("open");
        assert!(log.adopt(home, stream).await.expect("adopt").is_empty());
        log.write(&a).await.expect("written once adopted");
        let other = (0..100).map(|i| format!("id-{i}")).find(|id| partition_for(id, 4) != home).expect("an id elsewhere");
        assert!(matches!(log.write(&TxnMetadata::new(&other, 11, 60_000, 1)).await, Err(BrokerError::NotCoordinator(_))));
        log.release(home);
        assert!(matches!(log.write(&a).await, Err(BrokerError::NotCoordinator(_))), "released");
        // Whoever adopts the partition next finds the state.
        let again = log.adopt(home, stream).await.expect("adopt again");
        assert_eq!(again.get("app-a"), Some(&a));
        engine.close().await.expect("close");
    }
}
