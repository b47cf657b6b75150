//! What the cleaner keeps of each stored append: the latest record per key, tombstones until `delete.retention.ms`, nothing of aborted transactions or without a key.
//!
//! Pure: the offset map, the aborted transactions and the time are handed in, so the decisions
//! are unit-tested without a broker.

use std::borrow::Cow;
use std::collections::HashMap;

use floe_s3stream::{Batch, Rewritten};

use super::keymap::OffsetMap;
use crate::records::{self, retain::Retained};
use crate::txn::index::AbortedTxn;

/// Aborted transactions of the cleaned range, by producer.
#[derive(Default)]
pub struct Aborted(HashMap<i64, Vec<(i64, i64)>>);

impl Aborted {
    pub fn new(list: &[AbortedTxn]) -> Self {
        let mut m: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for a in list {
            m.entry(a.producer_id).or_default().push((a.first_offset, a.last_offset));
        }
        Self(m)
    }

    /// Whether producer `pid`'s batch at `offset` belongs to an aborted transaction.
    pub fn contains(&self, pid: i64, offset: i64) -> bool {
        self.0.get(&pid).is_some_and(|v| v.iter().any(|&(a, b)| (a..=b).contains(&offset)))
    }
}

/// What the filter removed and kept, for the log line and `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub superseded: u64,
    pub tombstones: u64,
    pub keyless: u64,
    pub aborted_batches: u64,
    /// Stored batches the filter could not read, kept whole.
    pub unreadable: u64,
}

impl Removed {
    fn add(&mut self, o: &Removed) {
        self.superseded += o.superseded;
        self.tombstones += o.tombstones;
        self.keyless += o.keyless;
        self.aborted_batches += o.aborted_batches;
        self.unreadable += o.unreadable;
    }
}

/// The rewrite filter of one cleaning pass.
pub struct Filter<'a> {
    pub map: &'a OffsetMap,
    pub aborted: &'a Aborted,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    /// The cleaned end: an append ending there that would go entirely is kept whole instead.
    pub to: u64,
    pub decompressed_bytes_max: usize,
    pub removed: Removed,
    /// Bytes of the cleaned range after cleaning.
    pub bytes_out: u64,
}

impl Filter<'_> {
    /// The verdict on one stored append (one or more Kafka batches).
    pub fn apply(&mut self, append: &Batch) -> Result<Rewritten, crate::error::BrokerError> {
        let (mut verdict, removed) = self.thin(append);
        if verdict == Rewritten::Drop && append.end_offset() >= self.to {
            verdict = Rewritten::Keep; // the log never ends in a gap a consumer would wait in
        } else {
            self.removed.add(&removed);
        }
        self.bytes_out += match &verdict {
            Rewritten::Keep => append.payload.len() as u64,
            Rewritten::Replace(p) => p.len() as u64,
            Rewritten::Drop => 0,
        };
        Ok(verdict)
    }

    fn thin(&self, append: &Batch) -> (Rewritten, Removed) {
        let mut removed = Removed::default();
        let payload = &append.payload;
        let batches = records::headers(payload);
        if batches.last().map_or(0, |(_, i)| i.position + i.size) != payload.len() {
            removed.unreadable += 1;
            return (Rewritten::Keep, removed);
        }
        let mut pieces: Vec<Cow<'_, [u8]>> = Vec::with_capacity(batches.len());
        let mut changed = false;
        for (base, info) in batches {
            let b = &payload[info.position..info.position + info.size];
            if info.control {
                pieces.push(Cow::Borrowed(b));
                continue;
            }
            if info.transactional && self.aborted.contains(info.producer_id, base) {
                removed.aborted_batches += 1;
                changed = true;
                continue;
            }
            let (map, now, horizon) = (self.map, self.now_ms, self.delete_retention_ms);
            let kept = records::retain::retain(b, base, self.decompressed_bytes_max, |c| {
                let Some(key) = c.key else {
                    removed.keyless += 1;
                    return false;
                };
                if map.latest(key).is_some_and(|latest| latest > c.offset) {
                    removed.superseded += 1;
                    return false;
                }
                if c.value.is_none() && now.saturating_sub(c.timestamp_ms) > horizon {
                    removed.tombstones += 1;
                    return false;
                }
                true
            });
            match kept {
                Ok(Retained::All) => pieces.push(Cow::Borrowed(b)),
                Ok(Retained::Some(v)) => {
                    changed = true;
                    pieces.push(Cow::Owned(v));
                }
                Ok(Retained::None) => changed = true,
                Err(e) => {
                    tracing::warn!(offset = base, error = %e, "the cleaner cannot read a stored batch; it is kept whole");
                    removed.unreadable += 1;
                    pieces.push(Cow::Borrowed(b));
                }
            }
        }
        let verdict = match (changed, pieces.is_empty()) {
            (false, _) => Rewritten::Keep,
            (true, true) => Rewritten::Drop,
            (true, false) => Rewritten::Replace(pieces.concat().into()),
        };
        (verdict, removed)
    }
}

#[cfg(test)]
mod tests;
