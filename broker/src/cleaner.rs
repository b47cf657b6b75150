//! Log compaction for `cleanup.policy=compact` topics (Kafka's log cleaner over s3stream's rewrite): the latest record per key, tombstones until `delete.retention.ms`, offsets unchanged.
//!
//! A pass over one partition has Kafka's two phases:
//! 1. **Map**: the dirty part `[first_dirty, to)` is scanned into an [`keymap::OffsetMap`] (key →
//!    latest offset), bounded by `log_cleaner_dedupe_buffer_bytes`; when it fills, `to` stops
//!    there and the next pass goes on.
//! 2. **Rewrite**: `Engine::rewrite` hands every stored append of `[start, to)` to
//!    [`policy::Filter`], which keeps a record only if no later one of its key is in the map.
//!
//! `to` never passes what is uploaded, the LSO (no open transaction is cleaned), what the
//! topic's table has committed, the last durable state snapshot (producer state is rebuilt from
//! the log after it, never from cleaned batches), nor records younger than
//! `min.compaction.lag.ms`. A pass runs when the dirty bytes are at least
//! `min.cleanable.dirty.ratio` of the partition, or the oldest dirty record is older than
//! `max.compaction.lag.ms`.

pub mod keymap;
pub mod policy;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use floe_s3stream::RewriteStats;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::records;
use crate::topic_config;
use keymap::OffsetMap;
use policy::{Aborted, Filter, Removed};

/// Bytes read per step by both phases.
const STEP_BYTES: u64 = 4 << 20;

/// Where cleaning of one partition stands (in memory: a restart cleans from the start again).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanMark {
    /// Offsets below this are clean (no two records of a key).
    pub first_dirty: u64,
    /// Bytes of the clean part after its last pass.
    pub clean_bytes: u64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct CleanerStats {
    pub passes: AtomicU64,
    pub records_removed: AtomicU64,
    pub tombstones_removed: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub failures: AtomicU64,
}

/// A topic's compaction settings.
#[derive(Debug, Clone, Copy)]
struct Policy {
    dirty_ratio: f64,
    min_lag_ms: i64,
    max_lag_ms: i64,
    delete_retention_ms: i64,
    table_topic: bool,
}

impl Policy {
    fn of(configs: &std::collections::BTreeMap<String, String>) -> Option<Self> {
        let compact = configs.get("cleanup.policy").is_some_and(|p| p.contains("compact"));
        let long = |k: &str| topic_config::long(configs, k).unwrap_or(0);
        compact.then(|| Self {
            dirty_ratio: configs.get("min.cleanable.dirty.ratio").and_then(|v| v.trim().parse().ok()).unwrap_or(0.5),
            min_lag_ms: long("min.compaction.lag.ms"),
            max_lag_ms: long("max.compaction.lag.ms"),
            delete_retention_ms: long("delete.retention.ms"),
            table_topic: configs.get("automq.table.topic.enable").is_some_and(|v| v == "true"),
        })
    }
}

/// One pass over every partition of every compacted topic.
pub async fn clean_all(b: &Broker) {
    let now = b.clock.now_ms();
    for topic in b.topics.all() {
        let Some(policy) = Policy::of(&topic.meta.configs) else { continue };
        for p in topic.local_partitions() {
            match clean_partition(b, &policy, p, now).await {
                Ok(_) => {}
                Err(e) => {
                    b.cleaner.failures.fetch_add(1, Relaxed);
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "log compaction failed; it will be retried");
                }
            }
        }
    }
}

/// Cleans one partition if it is due; what the rewrite did, if it ran.
async fn clean_partition(b: &Broker, policy: &Policy, p: &Partition, now: i64) -> Result<Option<RewriteStats>> {
    let Some(to) = cleanable_end(b, policy, p, now)? else { return Ok(None) };
    let start = b.engine.stream_info(p.stream)?.start;
    let mark = *p.cleaned.lock();
    let first_dirty = mark.first_dirty.max(start);
    if to <= first_dirty || !due(policy, p, mark.clean_bytes, first_dirty, to, now) {
        return Ok(None);
    }
    let aborted = Aborted::new(&p.txn.lock().aborted_between(start as i64, to as i64));
    let (map, to) = build_map(b, p, first_dirty, to, &aborted).await?;
    if to <= first_dirty {
        tracing::warn!(topic = %p.topic, partition = p.index, "one append holds more keys than log_cleaner_dedupe_buffer_bytes maps; raise it");
        return Ok(None);
    }
    let mut filter = Filter {
        map: &map,
        aborted: &aborted,
        now_ms: now,
        delete_retention_ms: policy.delete_retention_ms,
        to,
        decompressed_bytes_max: b.settings.batch_decompressed_bytes_max.0 as usize,
        removed: Removed::default(),
        bytes_out: 0,
    };
    let stats = b.engine.rewrite(p.stream, to, STEP_BYTES, |append| filter.apply(append)).await?;
    *p.cleaned.lock() = CleanMark { first_dirty: stats.to, clean_bytes: filter.bytes_out };
    let r = filter.removed;
    let c = &b.cleaner;
    c.passes.fetch_add(1, Relaxed);
    c.records_removed.fetch_add(r.superseded + r.tombstones + r.keyless, Relaxed);
    c.tombstones_removed.fetch_add(r.tombstones, Relaxed);
    c.bytes_read.fetch_add(stats.bytes_read, Relaxed);
    c.bytes_written.fetch_add(filter.bytes_out, Relaxed);
    tracing::info!(
        topic = %p.topic, partition = p.index, cleaned_to = stats.to, keys = map.len(),
        superseded = r.superseded, tombstones = r.tombstones, keyless = r.keyless, aborted_batches = r.aborted_batches,
        unreadable = r.unreadable, bytes_before = stats.bytes_read, bytes_after = filter.bytes_out,
        "log compaction"
    );
    Ok(Some(stats))
}

/// The end of what may be cleaned now, if anything may.
fn cleanable_end(b: &Broker, policy: &Policy, p: &Partition, now: i64) -> Result<Option<u64>> {
    let info = b.engine.stream_info(p.stream)?;
    let mut to = b.engine.uploaded_end(p.stream)?;
    to = to.min(p.txn.lock().lso(info.end as i64).max(0) as u64);
    to = to.min(b.state.snapshotted_to(p.stream).unwrap_or(0));
    if policy.table_topic {
        let Some(committed) = b.table_topics.committed(&p.topic, p.index) else { return Ok(None) };
        to = to.min(committed.max(0) as u64);
    }
    if policy.min_lag_ms > 0 {
        if let Some(young) = p.time_index.lock().first_newer_than(now.saturating_sub(policy.min_lag_ms)) {
            to = to.min(young.max(0) as u64);
        }
    }
    Ok((to > info.start).then_some(to))
}

/// Whether `[first_dirty, to)` is worth a pass: dirty bytes at least the ratio of the whole, or
/// dirty records older than `max.compaction.lag.ms`.
fn due(policy: &Policy, p: &Partition, clean_bytes: u64, first_dirty: u64, to: u64, now: i64) -> bool {
    let ix = p.time_index.lock();
    let dirty = ix.bytes_at(to as i64).saturating_sub(ix.bytes_at(first_dirty as i64));
    let ratio = dirty as f64 / (dirty + clean_bytes).max(1) as f64;
    let overdue = ix.max_ts_at(first_dirty as i64).is_some_and(|ts| now.saturating_sub(ts) > policy.max_lag_ms);
    dirty > 0 && (ratio >= policy.dirty_ratio || overdue)
}

/// Phase 1: the latest offset of every key in `[from, to)`; returns the map and the end it
/// covers (earlier than `to` when the map filled).
async fn build_map(b: &Broker, p: &Partition, from: u64, to: u64, aborted: &Aborted) -> Result<(OffsetMap, u64)> {
    let mut map = OffsetMap::with_budget(b.settings.log_cleaner_dedupe_buffer_bytes.0);
    let mut end = to;
    let cap = b.settings.batch_decompressed_bytes_max.0 as usize;
    b.engine
        .scan(p.stream, from, to, STEP_BYTES, |append| {
            if append.end_offset() > to {
                return Ok::<_, BrokerError>(ControlFlow::Break(()));
            }
            let mut full = false;
            for (base, info) in records::headers(&append.payload) {
                if info.control || (info.transactional && aborted.contains(info.producer_id, base)) {
                    continue;
                }
                let batch = &append.payload[info.position..info.position + info.size];
                let count = records::stored_count(batch);
                let walked = records::records_section(batch, cap).and_then(|body| {
                    records::walk::stored_records(&body, count, info.last_offset_delta(), |r| {
                        if let Some(key) = r.key {
                            full |= !map.put(key, base + i64::from(r.offset_delta));
                        }
                    })
                });
                if let Err(e) = walked {
                    // Its records stay (the filter keeps what it cannot read), so they need no entry.
                    tracing::warn!(topic = %p.topic, partition = p.index, offset = base, error = %e, "the cleaner cannot read a stored batch");
                }
            }
            if full {
                end = append.base_offset;
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    Ok((map, end))
}
