//! WriteTxnMarkers: a transaction coordinator on another broker of the cluster asks this one to end a transaction in the partitions it leads (ClusterAction).

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_request::WriteTxnMarkersRequest;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult, WriteTxnMarkersResponse,
};

use super::RequestContext;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::topics::OFFSETS_TOPIC;

/// Writes each marker into each partition named, one partition at a time (each answered alone:
/// the coordinator retries what failed, and a marker written twice ends nothing twice).
pub async fn write_txn_markers(b: &Arc<Broker>, req: WriteTxnMarkersRequest, ctx: &RequestContext) -> WriteTxnMarkersResponse {
    // Only brokers of a cluster send it: a node alone writes its own markers and takes none.
    let allowed = b.cluster.is_some() && ctx.allowed(b, Operation::ClusterAction, ResourceType::Cluster, CLUSTER_NAME);
    let mut resp = WriteTxnMarkersResponse::default();
    for m in req.markers {
        let mut mr = WritableTxnMarkerResult::default();
        mr.producer_id = m.producer_id;
        for t in m.topics {
            let mut tr = WritableTxnMarkerTopicResult::default();
            tr.name = t.name.clone();
            for index in t.partition_indexes {
                let outcome = match allowed {
                    false => Err(BrokerError::ClusterAuthorizationFailed),
                    // The group's offsets partition holds state records, not batches: a commit
                    // applies the offsets the marker carries (`txn/offsets.rs`).
                    true if t.name.as_str() == OFFSETS_TOPIC => match m.transaction_result {
                        true => crate::txn::offsets::apply_marked(b, index, &t.unknown_tagged_fields).await,
                        false => Ok(()),
                    },
                    true => {
                        let one = BTreeSet::from([(t.name.to_string(), index)]);
                        crate::txn::markers::write_local(b, m.producer_id.0, m.producer_epoch, m.transaction_result, &one).await.map(drop)
                    }
                };
                let mut pr = WritableTxnMarkerPartitionResult::default();
                pr.partition_index = index;
                pr.error_code = outcome.map_or_else(|e| e.code(), |()| 0);
                tr.partitions.push(pr);
            }
            mr.topics.push(tr);
        }
        resp.markers.push(mr);
    }
    resp
}
