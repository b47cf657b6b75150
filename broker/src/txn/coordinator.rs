//! The transaction coordinator: serves InitProducerId (with a transactional id), AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn over the durable per-id states, and ends transactions in two phases (Prepare* durable, markers, Complete*).
//!
//! Each transactional id has an entry: an operation lock, held across a request's durable
//! write (requests of one id apply one at a time), and the current state, read without the
//! lock by produce verification and the admin APIs. A state becomes current only once its
//! record is durable in the id's coordinator partition (`TxnLog`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use floe_s3stream::{Engine, StreamId};

use super::log::{TxnLog, TRANSACTIONAL_ID_BYTES_MAX};
use super::markers;
use super::metadata::{InitOutcome, TxnMetadata, TxnPartition, TxnState, EPOCH_MAX};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::state::Committed;

/// Transactional ids kept at most (an id is forgotten after `transactional_id_expiration_ms`
/// without a transaction).
pub const TRANSACTIONAL_IDS_MAX: usize = 1_000_000;

/// The coordinator's limits, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct TxnLimits {
    /// Longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i64,
    /// An id without a transaction for this long is forgotten.
    pub id_expiration_ms: i64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TxnMetrics {
    pub committed: AtomicU64,
    pub aborted: AtomicU64,
    pub timed_out: AtomicU64,
    pub fenced: AtomicU64,
    pub markers_written: AtomicU64,
    /// Time from the Prepare* record durable to the Complete* one (markers written), summed.
    pub marker_us_sum: AtomicU64,
    pub ended: AtomicU64,
}

#[derive(Default)]
struct Entry {
    op: tokio::sync::Mutex<()>,
    meta: parking_lot::Mutex<Option<TxnMetadata>>,
}

/// The node's transaction coordinator.
pub struct TxnCoordinator {
    log: TxnLog,
    entries: parking_lot::Mutex<HashMap<String, Arc<Entry>>>,
    limits: TxnLimits,
    pub metrics: TxnMetrics,
    /// When the next housekeeping pass is due (the broker's clock).
    pub next_tick_ms: std::sync::atomic::AtomicI64,
}

impl TxnCoordinator {
    /// Opens the coordinator partitions and loads every id's state. Transactions left in a
    /// Prepare* state are finished by the next [`TxnCoordinator::tick`].
    pub async fn open(engine: Engine, partitions: u32, limits: TxnLimits) -> Result<TxnCoordinator> {
        let (log, states) = TxnLog::open(engine, partitions).await?;
        let entries = states.into_iter().map(|(id, m)| (id, Arc::new(Entry { op: Default::default(), meta: parking_lot::Mutex::new(Some(m)) }))).collect();
        Ok(TxnCoordinator { log, entries: parking_lot::Mutex::new(entries), limits, metrics: TxnMetrics::default(), next_tick_ms: Default::default() })
    }

    /// A cluster node's coordinator: it serves the ids of the transaction topic's partitions it
    /// leads, adopted as they come.
    pub fn for_cluster(engine: Engine, partitions: u32, limits: TxnLimits) -> TxnCoordinator {
        let log = TxnLog::for_cluster(engine, partitions);
        TxnCoordinator { log, entries: Default::default(), limits, metrics: TxnMetrics::default(), next_tick_ms: Default::default() }
    }

    /// The number of coordinator partitions.
    pub fn partitions(&self) -> u32 {
        self.log.partitions()
    }

    /// Whether this node coordinates `id` (alone: always); NOT_COORDINATOR otherwise.
    pub fn coordinates(&self, id: &str) -> Result<()> {
        self.log.stream_of(id).map(drop)
    }

    /// Starts coordinating the ids of partition `partition` (stream `stream`, open here): their
    /// states replayed; one left in a Prepare* state is finished by the next tick, one open past
    /// its timeout aborted by it.
    pub async fn adopt(&self, partition: u32, stream: StreamId) -> Result<()> {
        let states = self.log.adopt(partition, stream).await?;
        let n = states.len();
        let mut entries = self.entries.lock();
        for (id, m) in states {
            entries.insert(id, Arc::new(Entry { op: Default::default(), meta: parking_lot::Mutex::new(Some(m)) }));
        }
        tracing::info!(partition, transactional_ids = n, "coordinating the transactions of a partition");
        Ok(())
    }

    /// Stops coordinating the ids of partition `partition`: each one's request under way ends
    /// first; later ones answer NOT_COORDINATOR.
    pub async fn release(&self, partition: u32) {
        let n = self.log.partitions();
        let mine: Vec<(String, Arc<Entry>)> =
            self.entries.lock().iter().filter(|(id, _)| super::log::partition_for(id, n) == partition).map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut held = Vec::with_capacity(mine.len());
        for (_, e) in &mine {
            held.push(e.op.lock().await);
        }
        self.log.release(partition);
        let mut entries = self.entries.lock();
        for (id, e) in &mine {
            *e.meta.lock() = None;
            if entries.get(id).is_some_and(|x| Arc::ptr_eq(x, e)) {
                entries.remove(id);
            }
        }
        drop(held);
    }

    /// The current state of an id.
    pub fn get(&self, id: &str) -> Option<TxnMetadata> {
        let e = self.entries.lock().get(id).cloned()?;
        let m = e.meta.lock().clone();
        m
    }

    /// Every id's current state.
    pub fn all(&self) -> Vec<TxnMetadata> {
        let entries: Vec<Arc<Entry>> = self.entries.lock().values().cloned().collect();
        entries.iter().filter_map(|e| e.meta.lock().clone()).collect()
    }

    fn entry(&self, id: &str) -> Result<Arc<Entry>> {
        if id.is_empty() || id.len() > TRANSACTIONAL_ID_BYTES_MAX {
            return Err(BrokerError::InvalidRequest(format!("a transactional id must be 1..={TRANSACTIONAL_ID_BYTES_MAX} bytes")));
        }
        self.coordinates(id)?;
        let mut entries = self.entries.lock();
        if let Some(e) = entries.get(id) {
            return Ok(e.clone());
        }
        if entries.len() >= TRANSACTIONAL_IDS_MAX {
            return Err(BrokerError::InvalidRequest(format!("this node keeps at most {TRANSACTIONAL_IDS_MAX} transactional ids")));
        }
        Ok(entries.entry(id.to_string()).or_default().clone())
    }

    fn current(&self, e: &Entry, id: &str) -> Result<TxnMetadata> {
        // Released meanwhile (its partition moved away): the new coordinator answers.
        self.coordinates(id)?;
        e.meta.lock().clone().ok_or_else(|| BrokerError::InvalidProducerIdMapping(id.to_string()))
    }

    async fn store(&self, e: &Entry, next: TxnMetadata) -> Result<TxnMetadata> {
        self.log.write(&next).await?;
        *e.meta.lock() = Some(next.clone());
        Ok(next)
    }

    /// InitProducerId with a transactional id: (producer id, epoch). An open transaction is
    /// aborted first (its producer is fenced); `expected` is a KIP-360 client's current id and
    /// epoch.
    pub async fn init_producer_id(&self, b: &Broker, id: &str, timeout_ms: i32, expected: Option<(i64, i16)>) -> Result<(i64, i16)> {
        if timeout_ms <= 0 || i64::from(timeout_ms) > self.limits.max_timeout_ms {
            return Err(BrokerError::InvalidTransactionTimeout { timeout_ms, max_ms: self.limits.max_timeout_ms });
        }
        let e = self.entry(id)?;
        let _op = e.op.lock().await;
        self.coordinates(id)?; // not released while waiting
        let now = b.clock.now_ms();
        let Some(mut m) = e.meta.lock().clone() else {
            let m = TxnMetadata::new(id, b.state.next_producer_id().await?, timeout_ms, now);
            let m = self.store(&e, m).await?;
            return Ok((m.producer_id, m.producer_epoch));
        };
        if m.state.preparing() {
            m = self.finish(b, &e, m).await?;
        }
        // Two bumps may come (a fencing abort, then this producer's): a spare id in case the
        // epoch runs out.
        let spare = if m.producer_epoch >= EPOCH_MAX - 1 { Some(b.state.next_producer_id().await?) } else { None };
        let outcome = m.init_producer_id(expected, timeout_ms, now, || spare.unwrap_or(-1))?;
        let ready = match outcome {
            InitOutcome::Ready(next) => next,
            InitOutcome::AbortFirst(aborting) => {
                self.metrics.fenced.fetch_add(1, Relaxed);
                tracing::info!(transactional_id = id, "a new producer fences the open transaction: it is aborted");
                let aborting = self.store(&e, aborting).await?;
                let done = self.finish(b, &e, aborting).await?;
                let spare = if done.producer_epoch >= EPOCH_MAX { Some(b.state.next_producer_id().await?) } else { None };
                match done.init_producer_id(None, timeout_ms, b.clock.now_ms(), || spare.unwrap_or(-1))? {
                    InitOutcome::Ready(next) => next,
                    InitOutcome::AbortFirst(_) => return Err(BrokerError::ConcurrentTransactions(id.to_string())),
                }
            }
        };
        let m = self.store(&e, ready).await?;
        Ok((m.producer_id, m.producer_epoch))
    }

    /// AddPartitionsToTxn (`verify_only`: only whether they are in, KIP-890).
    pub async fn add_partitions(&self, b: &Broker, id: &str, producer_id: i64, epoch: i16, partitions: &[TxnPartition], verify_only: bool) -> Result<()> {
        let e = self.entry(id)?;
        let m = self.current(&e, id)?;
        if verify_only {
            return partitions.iter().try_for_each(|p| m.verify(producer_id, epoch, p));
        }
        // Already in (the common case of a retry): no write.
        if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.verify(producer_id, epoch, p).is_ok()) {
            return Ok(());
        }
        let _op = e.op.lock().await;
        let m = self.current(&e, id)?;
        let next = m.add_partitions(producer_id, epoch, partitions, b.clock.now_ms())?;
        self.store(&e, next).await.map(drop)
    }

    /// AddOffsetsToTxn.
    pub async fn add_group(&self, b: &Broker, id: &str, producer_id: i64, epoch: i16, group: &str) -> Result<()> {
        let e = self.entry(id)?;
        let _op = e.op.lock().await;
        let m = self.current(&e, id)?;
        if m.state == TxnState::Ongoing && m.groups.contains(group) && m.producer_id == producer_id && m.producer_epoch == epoch {
            return Ok(());
        }
        let next = m.add_group(producer_id, epoch, group, b.clock.now_ms())?;
        self.store(&e, next).await.map(drop)
    }

    /// TxnOffsetCommit: offsets pending in the transaction until it ends.
    pub async fn commit_offsets(&self, b: &Broker, id: &str, producer_id: i64, epoch: i16, group: &str, offsets: Vec<(String, i32, Committed)>) -> Result<()> {
        let e = self.entry(id)?;
        let _op = e.op.lock().await;
        let m = self.current(&e, id)?;
        let next = m.commit_offsets(producer_id, epoch, group, offsets, b.clock.now_ms())?;
        self.store(&e, next).await.map(drop)
    }

    /// EndTxn: the outcome is durable before markers are written; the answer comes once they
    /// are (a failure to write them leaves the outcome to [`TxnCoordinator::tick`] and is not
    /// the client's error).
    pub async fn end_txn(&self, b: &Broker, id: &str, producer_id: i64, epoch: i16, commit: bool) -> Result<()> {
        let e = self.entry(id)?;
        let _op = e.op.lock().await;
        let m = self.current(&e, id)?;
        let Some(prepare) = m.end_txn(producer_id, epoch, commit, b.clock.now_ms())? else {
            return Ok(()); // a retry of an end already complete
        };
        let prepare = self.store(&e, prepare).await?;
        if let Err(err) = self.finish(b, &e, prepare).await {
            tracing::warn!(transactional_id = id, error = %err, "markers not written yet; they are retried");
        }
        Ok(())
    }

    /// Writes the markers of a Prepare* state, applies or drops its pending offsets, then makes
    /// the Complete* state durable. Idempotent: after a crash it runs again on the same state.
    async fn finish(&self, b: &Broker, e: &Entry, m: TxnMetadata) -> Result<TxnMetadata> {
        let started = std::time::Instant::now();
        let commit = m.state == TxnState::PrepareCommit;
        let written = markers::write(b, m.producer_id, m.producer_epoch, commit, &m.partitions).await?;
        self.metrics.markers_written.fetch_add(written as u64, Relaxed);
        if commit {
            let mut by_group: HashMap<&str, crate::state::OffsetEntries> = HashMap::new();
            for o in &m.pending_offsets {
                by_group.entry(&o.group).or_default().push((o.topic.clone(), o.partition, Some(o.committed.clone())));
            }
            for (group, entries) in by_group {
                match b.state.coordinates(group) {
                    Ok(()) => b.state.commit(group, entries).await?,
                    // In a cluster, another broker coordinates the group: the marker for its
                    // offsets partition carries them there.
                    Err(e) => {
                        let partition = b.state.offsets_partition_of(group).ok_or(e)?;
                        let leader = b
                            .topics
                            .get(crate::topics::OFFSETS_TOPIC)
                            .and_then(|t| t.partitions.get(partition as usize).map(|p| p.leader_id))
                            .filter(|&l| l >= 0)
                            .ok_or_else(|| BrokerError::CoordinatorNotAvailable(group.to_string()))?;
                        let marked = super::offsets::MarkedOffsets { group: group.to_string(), entries };
                        super::offsets::apply_remote(b, leader, partition as i32, m.producer_id, m.producer_epoch, &marked).await?;
                    }
                }
            }
        }
        let done = self.store(e, m.complete(b.clock.now_ms())?).await?;
        let counter = if commit { &self.metrics.committed } else { &self.metrics.aborted };
        counter.fetch_add(1, Relaxed);
        self.metrics.ended.fetch_add(1, Relaxed);
        self.metrics.marker_us_sum.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        Ok(done)
    }

    /// The periodic pass: finishes transactions left in a Prepare* state (a failed marker
    /// write, or a restart), aborts those open past their timeout, and forgets idle ids.
    pub async fn tick(&self, b: &Broker) {
        let now = b.clock.now_ms();
        let entries: Vec<(String, Arc<Entry>)> = self.entries.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (id, e) in entries {
            let Some(m) = e.meta.lock().clone() else { continue };
            let idle = matches!(m.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
                && now.saturating_sub(m.update_ms) > self.limits.id_expiration_ms;
            if !(m.state.preparing() || m.expire(now).is_some() || idle) {
                continue;
            }
            let _op = e.op.lock().await;
            let Some(m) = e.meta.lock().clone() else { continue };
            let r = if m.state.preparing() {
                self.finish(b, &e, m).await.map(drop)
            } else if let Some(abort) = m.expire(now) {
                tracing::info!(transactional_id = %id, timeout_ms = m.timeout_ms, "transaction timed out: aborted");
                self.metrics.timed_out.fetch_add(1, Relaxed);
                match self.store(&e, abort).await {
                    Ok(abort) => self.finish(b, &e, abort).await.map(drop),
                    Err(err) => Err(err),
                }
            } else if idle {
                self.forget(&id, &e).await
            } else {
                Ok(())
            };
            if let Err(err) = r {
                tracing::warn!(transactional_id = %id, error = %err, "transaction housekeeping failed; it is retried");
            }
        }
    }

    async fn forget(&self, id: &str, e: &Arc<Entry>) -> Result<()> {
        self.log.remove(id).await?;
        *e.meta.lock() = None;
        let mut entries = self.entries.lock();
        if entries.get(id).is_some_and(|x| Arc::ptr_eq(x, e)) {
            entries.remove(id);
        }
        Ok(())
    }

    /// The partitions whose offsets of `group` are pending in an open transaction (OffsetFetch
    /// answers UNSTABLE_OFFSET_COMMIT for them when asked for stable offsets).
    pub fn pending_offsets(&self, group: &str) -> std::collections::HashSet<(String, i32)> {
        let entries: Vec<Arc<Entry>> = self.entries.lock().values().cloned().collect();
        let mut out = std::collections::HashSet::new();
        for e in entries {
            if let Some(m) = e.meta.lock().as_ref().filter(|m| m.groups.contains(group)) {
                out.extend(m.pending_offsets.iter().filter(|o| o.group == group).map(|o| (o.topic.clone(), o.partition)));
            }
        }
        out
    }

    /// Open transactions now (begun, not yet complete).
    pub fn open_count(&self) -> usize {
        let entries: Vec<Arc<Entry>> = self.entries.lock().values().cloned().collect();
        entries.iter().filter(|e| e.meta.lock().as_ref().is_some_and(|m| matches!(m.state, TxnState::Ongoing) || m.state.preparing())).count()
    }
}
