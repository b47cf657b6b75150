//! Writing a transaction's COMMIT or ABORT markers into its partitions: appended in each partition's produce order, the partition's transaction index updated, then all made durable together; in a cluster, partitions other brokers lead get theirs through WriteTxnMarkers.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};

use super::metadata::TxnPartition;
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::records;

/// The coordinator epoch written into markers (always 0: a coordinator is fenced by its
/// partition's storage, not by this number).
pub const COORDINATOR_EPOCH: i32 = 0;
/// WriteTxnMarkers v1: flexible.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// Writes a marker for `producer_id` into every partition in `partitions`: those led here
/// directly, those another broker of the cluster leads through a WriteTxnMarkers request to it.
/// Returns how many were written once all are durable; an error leaves the transaction to be
/// ended again (a marker written twice ends nothing twice).
pub async fn write(b: &Broker, producer_id: i64, epoch: i16, commit: bool, partitions: &BTreeSet<TxnPartition>) -> Result<usize> {
    let mut here = BTreeSet::new();
    let mut elsewhere: BTreeMap<i32, BTreeSet<TxnPartition>> = BTreeMap::new();
    for (topic, index) in partitions {
        match b.topics.partition(topic, *index) {
            Err(BrokerError::NotLeaderOrFollower { leader, .. }) if b.cluster.is_some() && leader >= 0 => {
                elsewhere.entry(leader).or_default().insert((topic.clone(), *index));
            }
            _ => {
                here.insert((topic.clone(), *index));
            }
        }
    }
    let mut n = write_local(b, producer_id, epoch, commit, &here).await?;
    for (node, partitions) in elsewhere {
        n += write_remote(b, node, producer_id, epoch, commit, &partitions).await?;
    }
    Ok(n)
}

/// Asks broker `node` to write the markers of `partitions`, which it leads.
async fn write_remote(b: &Broker, node: i32, producer_id: i64, epoch: i16, commit: bool, partitions: &BTreeSet<TxnPartition>) -> Result<usize> {
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(producer_id);
    marker.producer_epoch = epoch;
    marker.transaction_result = commit;
    marker.coordinator_epoch = COORDINATOR_EPOCH;
    for (topic, index) in partitions {
        match marker.topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partition_indexes.push(*index),
            None => {
                let mut t = WritableTxnMarkerTopic::default();
                t.name = TopicName(crate::handlers::sb(topic));
                t.partition_indexes.push(*index);
                marker.topics.push(t);
            }
        }
    }
    let mut req = WriteTxnMarkersRequest::default();
    req.markers.push(marker);
    let resp = crate::cluster::peers::request(b, node, &req, WRITE_TXN_MARKERS_VERSION).await.map_err(BrokerError::Coordination)?;
    if resp.markers.is_empty() {
        return Err(BrokerError::Coordination(format!("broker {node} answered no marker")));
    }
    let mut written = 0;
    for r in resp.markers.iter().flat_map(|m| &m.topics).flat_map(|t| t.partitions.iter().map(move |p| (t, p))) {
        match ResponseError::try_from_code(r.1.error_code) {
            None => written += 1,
            // Deleted meanwhile: nothing to end there.
            Some(ResponseError::UnknownTopicOrPartition) => {}
            Some(e) => return Err(BrokerError::Coordination(format!("markers in {}-{} at broker {node}: {e}", r.0.name.as_str(), r.1.partition_index))),
        }
    }
    Ok(written)
}

/// Appends a marker for `producer_id` to every partition in `partitions` (led here) and waits
/// until all are durable; a partition whose topic was deleted counts as written. Returns how
/// many were written.
pub async fn write_local(b: &Broker, producer_id: i64, epoch: i16, commit: bool, partitions: &BTreeSet<TxnPartition>) -> Result<usize> {
    let mut pending = Vec::with_capacity(partitions.len());
    for (topic, index) in partitions {
        let p = match b.topics.partition(topic, *index) {
            Ok(p) => p,
            // Led by another broker now (it moved): the coordinator asks again where it is.
            Err(e @ BrokerError::NotLeaderOrFollower { .. }) => return Err(e),
            Err(_) => {
                tracing::info!(topic, partition = index, "no marker for a partition that no longer exists");
                continue;
            }
        };
        let now = b.clock.now_ms();
        let data = records::control::marker(producer_id, epoch, commit, COORDINATOR_EPOCH, now);
        let Some((_, info)) = records::headers(&data).into_iter().next() else { continue };
        let len = data.len();
        let _order = p.sequencing.lock().await;
        let (base, durable) = b.engine.append_start(p.stream, b.engine.epoch(), 1, data, |base| records::offset_stamps(&[info], base)).await?;
        let base = base as i64;
        p.txn.lock().on_marker(producer_id, base, commit);
        p.producers.lock().record(&info, base, now);
        p.time_index.lock().push(base, now, len as u64);
        pending.push(durable);
    }
    let n = pending.len();
    for d in pending {
        d.wait().await?;
    }
    b.data_appended.notify_waiters();
    Ok(n)
}
