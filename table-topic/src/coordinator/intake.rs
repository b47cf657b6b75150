//! Phases 1 and 2 of a cycle, per partition on a task of its own: read the partition from the
//! table's committed offset (taking from the cycle's shared byte budget), then decode what was
//! read — so partitions are read and decoded at once, up to the cores the runtime has.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use floe_schema::RecordError;

use super::READ_BYTES_MAX;
use crate::error::{Result, TableTopicError};
use crate::rows::{DecodeOutput, Decoder};
use crate::source::{RecordSource, SourceRecord};

/// One partition, read and decoded.
pub(super) struct Intake {
    /// The log's end when it was read.
    pub end: i64,
    /// Where the table's offset for the partition stood (the log start if it was trimmed past).
    pub from: i64,
    /// Where the records read end: the partition's next committed offset if this cycle commits.
    pub next: i64,
    pub records: Arc<Vec<SourceRecord>>,
    pub decoded: DecodeOutput,
    /// Stored batches that could not be decoded (dead letters).
    pub undecodable: Vec<RecordError>,
}

/// What a partition's task needs, shared by the cycle's tasks.
pub(super) struct Shared {
    pub source: Arc<dyn RecordSource>,
    pub decoder: Arc<Decoder>,
    pub topic: String,
    /// Bytes the cycle may still read, across partitions (the commit's memory bound).
    pub budget: AtomicU64,
}

/// Takes up to `want` bytes of the shared budget; 0 when it is spent.
fn take(budget: &AtomicU64, want: u64) -> u64 {
    let mut left = budget.load(Relaxed);
    loop {
        let got = left.min(want);
        match budget.compare_exchange_weak(left, left - got, Relaxed, Relaxed) {
            Ok(_) => return got,
            Err(now) => left = now,
        }
    }
}

/// Reads partition `p` from `committed` (its start when `None`) and decodes the records.
pub(super) async fn intake(shared: Arc<Shared>, p: i32, committed: Option<i64>) -> Result<Intake> {
    let (start, end) = shared.source.bounds(&shared.topic, p).await.map_err(TableTopicError::Source)?;
    let wanted = committed.unwrap_or(start);
    if wanted < start {
        tracing::warn!(topic = %shared.topic, partition = p, committed = wanted, log_start = start, "records the table never committed were trimmed from the log");
    }
    let from = wanted.max(start);
    let mut next = from;
    let mut records = Vec::new();
    while next < end {
        let granted = take(&shared.budget, READ_BYTES_MAX);
        if granted == 0 {
            break;
        }
        let read = shared.source.read(&shared.topic, p, next, granted).await.map_err(TableTopicError::Source)?;
        let bytes: u64 = read.records.iter().map(|r| (r.value.as_ref().map_or(0, |v| v.len()) + r.key.as_ref().map_or(0, |k| k.len()) + 64) as u64).sum();
        // Return what this read did not use; a read over its grant (one large batch) spends more.
        let unused = granted.saturating_sub(bytes.max(1));
        shared.budget.fetch_add(unused, Relaxed);
        if bytes > granted {
            take(&shared.budget, bytes - granted);
        }
        if read.next_offset <= next {
            break;
        }
        records.extend(read.records.into_iter().filter(|r| r.offset < end));
        next = read.next_offset.min(end);
    }
    let (decoded, undecodable) = if records.is_empty() { (DecodeOutput::default(), Vec::new()) } else { decode(&shared.decoder, &records).await };
    Ok(Intake { end, from, next, records: Arc::new(records), decoded, undecodable })
}

/// One partition's records decoded, and the stored batches that could not be (dead letters).
async fn decode(decoder: &Decoder, records: &[SourceRecord]) -> (DecodeOutput, Vec<RecordError>) {
    if !records.iter().any(|r| r.undecodable.is_some()) {
        return (decoder.decode(records).await, Vec::new());
    }
    let undecodable = records.iter().filter_map(|r| r.undecodable.as_ref().map(|reason| RecordError { offset: r.offset, reason: reason.clone() })).collect();
    let clean: Vec<SourceRecord> = records.iter().filter(|r| r.undecodable.is_none()).cloned().collect();
    (decoder.decode(&clean).await, undecodable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_taken_until_spent_never_below_zero() {
        let b = AtomicU64::new(10);
        assert_eq!(take(&b, 4), 4);
        assert_eq!(take(&b, 8), 6);
        assert_eq!(take(&b, 1), 0);
        assert_eq!(b.load(Relaxed), 0);
    }
}
