//! A transactional id's state and its transitions (Kafka's `TransactionMetadata`): every request computes the next state to write, and only a durable write makes it current.
//!
//! The transitions are pure: `init_producer_id`, `add_partitions`, `end_txn`, `complete` and
//! `expire` each take the current state and return either the next one or the error the client
//! is answered with. Fencing: a request with an older epoch gets PRODUCER_FENCED; one with another
//! producer id gets INVALID_PRODUCER_ID_MAPPING; anything while markers are pending gets
//! CONCURRENT_TRANSACTIONS (the client retries).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::state::Committed;

/// Most partitions plus pending offsets one transaction may hold (its whole state is one record).
pub const TXN_PARTITIONS_MAX: usize = 10_000;

/// The last usable epoch: at it, the next bump takes a new producer id (epoch 0).
pub const EPOCH_MAX: i16 = i16::MAX - 1;

/// A transaction's state (Kafka's `TransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction since the producer id was handed out (or since the last one ended).
    Empty,
    /// Partitions (or a group's offsets) were added.
    Ongoing,
    /// EndTxn(commit) is durable; markers are being written.
    PrepareCommit,
    /// EndTxn(abort), or an abort by timeout or fencing, is durable; markers are being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name of the state (as DescribeTransactions and ListTransactions answer).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Every state, for filters.
    pub const ALL: [TxnState; 6] =
        [TxnState::Empty, TxnState::Ongoing, TxnState::PrepareCommit, TxnState::PrepareAbort, TxnState::CompleteCommit, TxnState::CompleteAbort];

    /// Whether markers are still to be written.
    pub fn preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// A (topic, partition) in a transaction.
pub type TxnPartition = (String, i32);

/// Everything the coordinator keeps about one transactional id (one record in its partition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The producer id before the last change of id (KIP-360), or -1.
    pub prev_producer_id: i64,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the current transaction began (ms), or -1.
    pub start_ms: i64,
    pub update_ms: i64,
    /// Groups whose offsets are in the transaction (AddOffsetsToTxn).
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// Offsets committed in the transaction (TxnOffsetCommit): applied to their group when it
    /// commits, dropped when it aborts.
    #[serde(default)]
    pub pending_offsets: Vec<PendingOffset>,
}

/// An offset committed inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: Committed,
}

/// What InitProducerId asks the coordinator to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Write this state; answer with its producer id and epoch.
    Ready(TxnMetadata),
    /// A transaction is open: abort it first (at a fenced epoch), then the client retries
    /// (it is answered CONCURRENT_TRANSACTIONS meanwhile).
    AbortFirst(TxnMetadata),
}

fn fenced(producer_id: i64, epoch: i16, current: i16) -> BrokerError {
    BrokerError::ProducerFenced { producer_id, epoch, current }
}

impl TxnMetadata {
    /// A transactional id seen for the first time.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: 0,
            prev_producer_id: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now_ms,
            groups: BTreeSet::new(),
            pending_offsets: Vec::new(),
        }
    }

    /// Clears what a transaction holds (when one ends or a new one begins).
    fn clear_transaction(&mut self) {
        self.partitions.clear();
        self.groups.clear();
        self.pending_offsets.clear();
        self.start_ms = -1;
    }

    fn held(&self) -> usize {
        self.partitions.len() + self.groups.len() + self.pending_offsets.len()
    }

    /// InitProducerId for a known transactional id. `expected` is the (producer id, epoch) a
    /// KIP-360 client sends when it bumps its own epoch after an abortable error; `next_id`
    /// hands out a new producer id when the epoch is exhausted.
    pub fn init_producer_id(&self, expected: Option<(i64, i16)>, timeout_ms: i32, now_ms: i64, next_id: impl FnOnce() -> i64) -> Result<InitOutcome> {
        if self.state.preparing() {
            return Err(BrokerError::ConcurrentTransactions(self.transactional_id.clone()));
        }
        if let Some((pid, epoch)) = expected {
            // A retry of a bump that already took effect answers with the current state.
            let retried = self.state == TxnState::Empty
                && ((pid == self.producer_id && epoch == self.producer_epoch - 1) || (pid == self.prev_producer_id && self.producer_epoch == 0));
            let stale = pid != self.producer_id || epoch != self.producer_epoch;
            if retried {
                return Ok(InitOutcome::Ready(self.clone()));
            }
            if stale {
                return Err(fenced(pid, epoch, self.producer_epoch));
            }
        }
        let mut next = self.clone();
        next.update_ms = now_ms;
        next.timeout_ms = timeout_ms;
        if self.producer_epoch >= EPOCH_MAX {
            next.prev_producer_id = self.producer_id;
            next.producer_id = next_id();
            next.producer_epoch = 0;
        } else {
            next.producer_epoch = self.producer_epoch + 1;
        }
        if self.state == TxnState::Ongoing {
            // The open transaction is aborted at the new epoch, which fences its producer.
            next.state = TxnState::PrepareAbort;
            return Ok(InitOutcome::AbortFirst(next));
        }
        next.state = TxnState::Empty;
        next.clear_transaction();
        Ok(InitOutcome::Ready(next))
    }

    fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<()> {
        if producer_id != self.producer_id {
            return Err(BrokerError::InvalidProducerIdMapping(self.transactional_id.clone()));
        }
        if epoch != self.producer_epoch {
            return Err(fenced(producer_id, epoch, self.producer_epoch));
        }
        Ok(())
    }

    /// The state a transaction continues from: this one if open, else a fresh one begun now.
    fn open_transaction(&self, producer_id: i64, epoch: i16, now_ms: i64) -> Result<TxnMetadata> {
        self.check_producer(producer_id, epoch)?;
        if self.state.preparing() {
            return Err(BrokerError::ConcurrentTransactions(self.transactional_id.clone()));
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.clear_transaction();
            next.start_ms = now_ms;
        }
        next.state = TxnState::Ongoing;
        next.update_ms = now_ms;
        Ok(next)
    }

    fn bounded(self) -> Result<TxnMetadata> {
        match self.held() > TXN_PARTITIONS_MAX {
            true => Err(BrokerError::InvalidRequest(format!("a transaction holds at most {TXN_PARTITIONS_MAX} partitions and offsets"))),
            false => Ok(self),
        }
    }

    /// AddPartitionsToTxn.
    pub fn add_partitions(&self, producer_id: i64, epoch: i16, partitions: &[TxnPartition], now_ms: i64) -> Result<TxnMetadata> {
        let mut next = self.open_transaction(producer_id, epoch, now_ms)?;
        next.partitions.extend(partitions.iter().cloned());
        next.bounded()
    }

    /// AddOffsetsToTxn: the group's offsets may now be committed in the transaction.
    pub fn add_group(&self, producer_id: i64, epoch: i16, group: &str, now_ms: i64) -> Result<TxnMetadata> {
        let mut next = self.open_transaction(producer_id, epoch, now_ms)?;
        next.groups.insert(group.to_string());
        next.bounded()
    }

    /// Whether `producer_id` at `epoch` may write to `partition` now (the check a transactional
    /// produce gets, KIP-890's verification).
    pub fn verify(&self, producer_id: i64, epoch: i16, partition: &TxnPartition) -> Result<()> {
        self.check_producer(producer_id, epoch)?;
        match self.state == TxnState::Ongoing && self.partitions.contains(partition) {
            true => Ok(()),
            false => Err(BrokerError::InvalidTxnState(format!("{}-{} is not in the transaction of {}", partition.0, partition.1, self.transactional_id))),
        }
    }

    /// TxnOffsetCommit: offsets of a group added with AddOffsetsToTxn, pending until the end.
    pub fn commit_offsets(&self, producer_id: i64, epoch: i16, group: &str, offsets: Vec<(String, i32, Committed)>, now_ms: i64) -> Result<TxnMetadata> {
        self.check_producer(producer_id, epoch)?;
        if self.state != TxnState::Ongoing || !self.groups.contains(group) {
            return Err(BrokerError::InvalidTxnState(format!("group {group} was not added to the transaction of {}", self.transactional_id)));
        }
        let mut next = self.clone();
        // A later commit of the same partition replaces the pending one (one pass, not one per offset).
        let fresh: std::collections::HashSet<(&str, i32)> = offsets.iter().map(|(t, p, _)| (t.as_str(), *p)).collect();
        next.pending_offsets.retain(|o| !(o.group == group && fresh.contains(&(o.topic.as_str(), o.partition))));
        let mut seen = std::collections::HashSet::new();
        // Within one request the last entry of a partition wins.
        for (topic, partition, committed) in offsets.iter().rev() {
            if seen.insert((topic.as_str(), *partition)) {
                next.pending_offsets.push(PendingOffset {
                    group: group.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    committed: committed.clone(),
                });
            }
        }
        next.update_ms = now_ms;
        next.bounded()
    }

    /// EndTxn: `Ok(None)` when the same end already completed (a retry), else the Prepare*
    /// state to write (markers follow).
    pub fn end_txn(&self, producer_id: i64, epoch: i16, commit: bool, now_ms: i64) -> Result<Option<TxnMetadata>> {
        self.check_producer(producer_id, epoch)?;
        let invalid = |what: &str| Err(BrokerError::InvalidTxnState(format!("{what} while {:?}", self.state)));
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
                next.update_ms = now_ms;
                Ok(Some(next))
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err(BrokerError::ConcurrentTransactions(self.transactional_id.clone())),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (_, true) => invalid("a commit"),
            (_, false) => invalid("an abort"),
        }
    }

    /// After every marker is written: the Complete* state, with no partitions.
    pub fn complete(&self, now_ms: i64) -> Result<TxnMetadata> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => return Err(BrokerError::InvalidTxnState(format!("completing a transaction that is {other:?}"))),
        };
        let mut next = self.clone();
        next.state = state;
        next.clear_transaction();
        next.update_ms = now_ms;
        Ok(next)
    }

    /// A transaction open past its timeout: the abort to write, at a bumped epoch that fences
    /// the producer (which must call InitProducerId again).
    pub fn expire(&self, now_ms: i64) -> Option<TxnMetadata> {
        if self.state != TxnState::Ongoing || now_ms <= self.start_ms.saturating_add(i64::from(self.timeout_ms)) {
            return None;
        }
        let mut next = self.clone();
        next.state = TxnState::PrepareAbort;
        next.producer_epoch = self.producer_epoch.saturating_add(1).min(EPOCH_MAX);
        next.update_ms = now_ms;
        Some(next)
    }
}

#[cfg(test)]
mod tests;
