//! A transaction's consumer offsets in a cluster whose group and transaction are coordinated by different brokers: the group's coordinator checks the member and passes TxnOffsetCommit on to the transaction's, which keeps the offsets with the transaction; at commit they go back in the marker for the group's `__consumer_offsets` partition (a Floe tagged field of WriteTxnMarkers), applied there.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{GroupId, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest, WriteTxnMarkersRequest};
use serde::{Deserialize, Serialize};

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::handlers::sb;
use crate::state::{Committed, OffsetEntries};
use crate::topics::OFFSETS_TOPIC;

/// The tag of the offsets a transaction commits, in a WriteTxnMarkers topic entry for
/// `__consumer_offsets` (unknown to Kafka's brokers and clients, which skip tagged fields).
pub const OFFSETS_TAG: i32 = 70_000;
/// TxnOffsetCommit v3 (KIP-447's fields), WriteTxnMarkers v1 (flexible: tagged fields).
const TXN_OFFSET_COMMIT_VERSION: i16 = 3;
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// What the marker carries for the group's coordinator.
#[derive(Debug, Serialize, Deserialize)]
pub struct MarkedOffsets {
    pub group: String,
    pub entries: OffsetEntries,
}

/// On the group's coordinator: passes offsets checked here on to the transaction's coordinator.
pub async fn forward(b: &Broker, id: &str, producer_id: i64, epoch: i16, group: &str, offsets: Vec<(String, i32, Committed)>) -> Result<()> {
    let node = super::verify::coordinator_of(b, id)?;
    let mut topics: BTreeMap<String, TxnOffsetCommitRequestTopic> = BTreeMap::new();
    for (topic, partition, c) in offsets {
        let t = topics.entry(topic.clone()).or_insert_with(|| {
            let mut t = TxnOffsetCommitRequestTopic::default();
            t.name = TopicName(sb(&topic));
            t
        });
        let mut p = TxnOffsetCommitRequestPartition::default();
        p.partition_index = partition;
        p.committed_offset = c.offset;
        p.committed_leader_epoch = c.leader_epoch;
        p.committed_metadata = c.metadata.as_deref().map(sb);
        t.partitions.push(p);
    }
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = TransactionalId(sb(id));
    req.group_id = GroupId(sb(group));
    req.producer_id = ProducerId(producer_id);
    req.producer_epoch = epoch;
    req.generation_id = -1;
    req.topics = topics.into_values().collect();
    let resp = crate::cluster::peers::request(b, node, &req, TXN_OFFSET_COMMIT_VERSION).await.map_err(|e| {
        tracing::warn!(transactional_id = id, coordinator = node, error = %e, "passing a transaction's offsets on failed");
        BrokerError::RequestTimedOut
    })?;
    let code = resp.topics.iter().flat_map(|t| &t.partitions).map(|p| p.error_code).find(|&c| c != 0).unwrap_or(0);
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch) => Err(BrokerError::ProducerFenced { producer_id, epoch, current: -1 }),
        // Retriable: the client asks again (its transaction's coordinator is moving).
        Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable | ResponseError::CoordinatorLoadInProgress) => {
            Err(BrokerError::CoordinatorNotAvailable(group.to_string()))
        }
        Some(e) => Err(BrokerError::InvalidTxnState(format!("the coordinator of {id} refused the offsets: {e}"))),
    }
}

/// On the transaction's coordinator, as the transaction commits: the group's offsets, applied by
/// the broker leading its `__consumer_offsets` partition.
pub async fn apply_remote(b: &Broker, node: i32, partition: i32, producer_id: i64, epoch: i16, marked: &MarkedOffsets) -> Result<()> {
    let json = serde_json::to_vec(marked).map_err(|e| BrokerError::Internal(e.to_string()))?;
    let mut t = WritableTxnMarkerTopic::default();
    t.name = TopicName(sb(OFFSETS_TOPIC));
    t.partition_indexes.push(partition);
    t.unknown_tagged_fields.insert(OFFSETS_TAG, Bytes::from(json));
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(producer_id);
    marker.producer_epoch = epoch;
    marker.transaction_result = true;
    marker.coordinator_epoch = super::markers::COORDINATOR_EPOCH;
    marker.topics.push(t);
    let mut req = WriteTxnMarkersRequest::default();
    req.markers.push(marker);
    let resp = crate::cluster::peers::request(b, node, &req, WRITE_TXN_MARKERS_VERSION).await.map_err(BrokerError::Coordination)?;
    let code = resp.markers.iter().flat_map(|m| &m.topics).flat_map(|t| &t.partitions).map(|p| p.error_code).next();
    match code.map(ResponseError::try_from_code) {
        Some(None) => Ok(()),
        Some(Some(e)) => Err(BrokerError::Coordination(format!("offsets of group {} at broker {node}: {e}", marked.group))),
        None => Err(BrokerError::Coordination(format!("broker {node} answered no marker"))),
    }
}

/// On the group's coordinator: applies the offsets a commit marker for its partition carries.
pub async fn apply_marked(b: &Broker, partition: i32, tagged: &BTreeMap<i32, Bytes>) -> Result<()> {
    let Some(json) = tagged.get(&OFFSETS_TAG) else { return Ok(()) };
    let marked: MarkedOffsets = serde_json::from_slice(json).map_err(|e| BrokerError::InvalidRequest(format!("marked offsets: {e}")))?;
    if b.state.offsets_partition_of(&marked.group) != Some(partition as u32) {
        return Err(BrokerError::InvalidRequest(format!("group {} is not in partition {partition}", marked.group)));
    }
    b.state.commit(&marked.group, marked.entries).await
}
