//! A partition's transaction index: the open transactions (producer id → first offset) that hold the last stable offset (LSO) back, and the aborted ones a read_committed Fetch reports.
//!
//! Fed in log order: `on_batch` for every transactional data batch, `on_marker` for every
//! COMMIT or ABORT control batch. Rebuilt on start by the same scan that rebuilds producer state.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Aborted transactions remembered per partition (until retention trims them): past it, the
/// partition takes no new transaction.
pub const ABORTED_MAX: usize = 1_000_000;

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
            let a = AbortedTxn { producer_id, first_offset, last_offset: offset };
            // A rescan after a snapshot meets a marker it already holds.
            let known = self.aborted.iter().rev().take_while(|x| x.last_offset >= offset).any(|x| *x == a);
            if !commit && !known {
                self.aborted.push_back(a);
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

    /// Forgets aborted transactions wholly below the log start (trimmed by retention or
    /// DeleteRecords); an open transaction cut by the new start now begins at it.
    pub fn trim(&mut self, log_start: i64) {
        while self.aborted.front().is_some_and(|a| a.last_offset < log_start) {
            self.aborted.pop_front();
        }
        for first in self.open.values_mut() {
            *first = (*first).max(log_start);
        }
    }

    /// Whether a new transaction may begin here (the aborted index is within its bound).
    pub fn has_room(&self) -> bool {
        self.aborted.len() < ABORTED_MAX
    }

    /// The first offset of `producer_id`'s open transaction here.
    pub fn open_since(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }

    /// Splits into pieces of at most `aborted_per_piece` aborted transactions (for snapshot
    /// records of bounded size); the first piece holds the open transactions.
    pub fn split(self, aborted_per_piece: usize) -> Vec<TxnIndex> {
        let mut pieces = vec![TxnIndex { open: self.open, aborted: VecDeque::new() }];
        let aborted: Vec<AbortedTxn> = self.aborted.into();
        for (i, chunk) in aborted.chunks(aborted_per_piece.max(1)).enumerate() {
            if i > 0 {
                pieces.push(TxnIndex::default());
            }
            if let Some(p) = pieces.last_mut() {
                p.aborted.extend(chunk.iter().copied());
            }
        }
        pieces
    }

    /// Adds a later piece of [`TxnIndex::split`].
    pub fn merge(&mut self, piece: TxnIndex) {
        self.open.extend(piece.open);
        self.aborted.extend(piece.aborted);
    }

    /// Transactions open now.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests;
