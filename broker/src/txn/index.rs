//! A partition's transaction index: the open transactions (producer id → first offset) that hold the last stable offset (LSO) back, and the aborted ones a read_committed Fetch reports.
//!
//! Fed in log order: `on_batch` for every transactional data batch, `on_marker` for every
//! COMMIT or ABORT control batch. Rebuilt on start by the same scan that rebuilds producer state.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// An aborted transaction: its producer and the offsets from its first batch to its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// One partition's transaction index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnIndex {
    open: BTreeMap<i64, i64>,
    /// In marker order (so by `last_offset`).
    aborted: VecDeque<AbortedTxn>,
}

impl TxnIndex {
    /// A transactional data batch of `producer_id` at `base_offset`: opens its transaction if
    /// none is open.
    pub fn on_batch(&mut self, producer_id: i64, base_offset: i64) {
        self.open.entry(producer_id).or_insert(base_offset);
    }

    /// A control batch of `producer_id` at `offset` ends its open transaction (a marker with
    /// nothing open — a retried marker, or a transaction with no data here — changes nothing).
    pub fn on_marker(&mut self, producer_id: i64, offset: i64, commit: bool) {
        if let Some(first_offset) = self.open.remove(&producer_id) {
            if !commit {
                self.aborted.push_back(AbortedTxn { producer_id, first_offset, last_offset: offset });
            }
        }
    }

    /// The last stable offset: the first offset of the oldest open transaction, or the high
    /// watermark when none is open. read_committed reads stop here.
    pub fn lso(&self, high_watermark: i64) -> i64 {
        self.open.values().copied().min().map_or(high_watermark, |o| o.min(high_watermark))
    }

    /// The aborted transactions a Fetch of `[from, to)` reports: those with records in it.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // `aborted` is ordered by last offset: skip those that ended before `from`.
        let skip = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted.iter().skip(skip).filter(|a| a.first_offset < to).copied().collect()
    }

    /// Forgets aborted transactions wholly below the log start (trimmed by retention).
    pub fn trim(&mut self, log_start: i64) {
        while self.aborted.front().is_some_and(|a| a.last_offset < log_start) {
            self.aborted.pop_front();
        }
    }

    /// Transactions open now.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests;
