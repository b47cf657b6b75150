//! A state snapshot as a run of bounded records — begin, parts, end — so that no record nears the
//! engine's append limit however many offsets and producers there are; replay takes a snapshot
//! only once its end is read.

use std::collections::HashMap;

use floe_s3stream::StreamId;
use serde::{Deserialize, Serialize};

use super::{Committed, OffsetKey};
use crate::partition::{ProducerTable, TimeIndex};
use crate::txn::index::TxnIndex;

/// Bytes of JSON one snapshot part holds at most (the engine takes up to `wal_write_bytes_max`,
/// 8 MiB by default).
pub const PART_BYTES_MAX: usize = 1 << 20;
/// Producers of one partition per part.
const PRODUCERS_PER_PART: usize = 2_000;
/// Aborted transactions of one partition per part.
const ABORTED_PER_PART: usize = 10_000;

/// One partition's state; a partition with many producers spans several parts (the first holds
/// its index, the others only producers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub stream: StreamId,
    pub scanned_to: u64,
    pub producers: ProducerTable,
    pub index: TimeIndex,
    /// Open and aborted transactions (a partition with many aborted ones spans several pieces).
    #[serde(default)]
    pub txn: TxnIndex,
}

/// What a snapshot holds, whole.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub offsets: HashMap<OffsetKey, Committed>,
    pub partitions: HashMap<StreamId, PartitionSnapshot>,
}

/// A snapshot's records' payloads, in order, between a begin and an end record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    pub offsets: Vec<(OffsetKey, Committed)>,
    pub partitions: Vec<PartitionSnapshot>,
}

/// Splits a snapshot into parts of about `PART_BYTES_MAX` of JSON each.
pub fn parts(offsets: Vec<(OffsetKey, Committed)>, partitions: Vec<PartitionSnapshot>) -> Vec<Part> {
    let mut out = Vec::new();
    let mut cur = Part { offsets: Vec::new(), partitions: Vec::new() };
    let mut size = 0usize;
    let flush = |cur: &mut Part, size: &mut usize, out: &mut Vec<Part>| {
        if !cur.offsets.is_empty() || !cur.partitions.is_empty() {
            out.push(std::mem::replace(cur, Part { offsets: Vec::new(), partitions: Vec::new() }));
        }
        *size = 0;
    };
    for o in offsets {
        let n = o.0 .0.len() + o.0 .1.len() + o.1.metadata.as_ref().map_or(0, String::len) + 80;
        if size + n > PART_BYTES_MAX {
            flush(&mut cur, &mut size, &mut out);
        }
        size += n;
        cur.offsets.push(o);
    }
    for p in partitions.into_iter().flat_map(split) {
        let n = serde_json::to_vec(&p).map_or(PART_BYTES_MAX, |v| v.len());
        if size + n > PART_BYTES_MAX {
            flush(&mut cur, &mut size, &mut out);
        }
        size += n;
        cur.partitions.push(p);
    }
    flush(&mut cur, &mut size, &mut out);
    out
}

/// One partition as several pieces of at most `PRODUCERS_PER_PART` producers and
/// `ABORTED_PER_PART` aborted transactions (the first piece holds the time index).
fn split(p: PartitionSnapshot) -> Vec<PartitionSnapshot> {
    let mut producers: Vec<_> = p.producers.producers.into_iter().collect();
    producers.sort_by_key(|(id, _)| *id);
    let mut producer_chunks = producers.chunks(PRODUCERS_PER_PART).map(|c| ProducerTable { producers: c.iter().cloned().collect() });
    let mut txn_pieces = p.txn.split(ABORTED_PER_PART).into_iter();
    let mut out = Vec::new();
    loop {
        let (producers, txn) = (producer_chunks.next(), txn_pieces.next());
        if !out.is_empty() && producers.is_none() && txn.is_none() {
            break;
        }
        out.push(PartitionSnapshot {
            topic: p.topic.clone(),
            partition: p.partition,
            stream: p.stream,
            scanned_to: p.scanned_to,
            producers: producers.unwrap_or_default(),
            index: if out.is_empty() { p.index.clone() } else { TimeIndex::default() },
            txn: txn.unwrap_or_default(),
        });
    }
    out
}

impl Snapshot {
    /// Adds a part (pieces of one partition are merged).
    pub fn add(&mut self, part: Part) {
        self.offsets.extend(part.offsets);
        for p in part.partitions {
            match self.partitions.get_mut(&p.stream) {
                Some(have) => {
                    have.producers.producers.extend(p.producers.producers);
                    have.txn.merge(p.txn);
                }
                None => {
                    self.partitions.insert(p.stream, p);
                }
            }
        }
    }
}
