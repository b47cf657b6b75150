//! In a cluster, where groups' committed offsets live: partition `partition_for(group, n)` of the offsets topic, served by the node that leads it.
//!
//! The node that takes such a partition over replays its stream into the offsets it serves
//! (`adopt_offsets`); the node that hands it over stops taking commits for its groups first
//! (`release_offsets`, under the commit order, so none is half-written) and forgets them.

use std::collections::HashMap;

use floe_s3stream::StreamId;
use parking_lot::RwLock;

use super::{replay, Committed, OffsetKey, StateStore};
use crate::error::{BrokerError, Result};
use crate::txn::log::partition_for;

/// The offsets topic's partitions this node leads, and their streams.
pub struct OffsetsHomes {
    partitions: u32,
    streams: RwLock<HashMap<u32, StreamId>>,
}

impl OffsetsHomes {
    pub fn new(partitions: u32) -> Self {
        Self { partitions: partitions.max(1), streams: Default::default() }
    }

    /// The partition of the offsets topic that holds `group`'s offsets.
    pub fn partition_of(&self, group: &str) -> u32 {
        partition_for(group, self.partitions)
    }

    /// Splits offsets by the stream that holds them (offsets of groups not led here are dropped).
    pub fn split(&self, offsets: Vec<(OffsetKey, Committed)>) -> Vec<(StreamId, Vec<(OffsetKey, Committed)>)> {
        let streams = self.streams.read();
        let mut out: HashMap<StreamId, Vec<(OffsetKey, Committed)>> = streams.values().map(|&s| (s, Vec::new())).collect();
        for (k, v) in offsets {
            if let Some(s) = streams.get(&self.partition_of(&k.0)) {
                out.entry(*s).or_default().push((k, v));
            }
        }
        out.into_iter().collect()
    }
}

impl StateStore {
    /// The stream a group's offsets go to; NOT_COORDINATOR when another node leads its partition.
    pub(super) fn home_of(&self, group: &str) -> Result<StreamId> {
        let Some(h) = &self.homes else { return Ok(self.stream) };
        h.streams.read().get(&h.partition_of(group)).copied().ok_or_else(|| BrokerError::NotCoordinator(group.to_string()))
    }

    /// Whether this node coordinates `group` (alone: always); NOT_COORDINATOR otherwise.
    pub fn coordinates(&self, group: &str) -> Result<()> {
        self.home_of(group).map(drop)
    }

    /// The offsets topic's partition of `group`, in a cluster.
    pub fn offsets_partition_of(&self, group: &str) -> Option<u32> {
        self.homes.as_ref().map(|h| h.partition_of(group))
    }

    /// Starts coordinating the groups of offsets partition `partition` (stream `stream`, open
    /// here): replays it into the offsets served.
    pub async fn adopt_offsets(&self, partition: u32, stream: StreamId) -> Result<()> {
        let Some(h) = &self.homes else { return Ok(()) };
        let _order = self.commit_order.lock().await;
        let replayed = replay(&self.engine, stream).await?;
        let mut offsets = self.offsets.write();
        offsets.retain(|k, _| h.partition_of(&k.0) != partition);
        offsets.extend(replayed.offsets.into_iter().filter(|(k, _)| h.partition_of(&k.0) == partition));
        h.streams.write().insert(partition, stream);
        Ok(())
    }

    /// Stops coordinating the groups of offsets partition `partition`: later commits for them
    /// answer NOT_COORDINATOR, earlier ones are all queued. Returns the groups that had offsets.
    pub async fn release_offsets(&self, partition: u32) -> Vec<String> {
        let Some(h) = &self.homes else { return Vec::new() };
        let _order = self.commit_order.lock().await;
        h.streams.write().remove(&partition);
        let mut offsets = self.offsets.write();
        let mut groups: Vec<String> = offsets.keys().filter(|k| h.partition_of(&k.0) == partition).map(|k| k.0.clone()).collect();
        groups.sort();
        groups.dedup();
        offsets.retain(|k, _| h.partition_of(&k.0) != partition);
        groups
    }
}
