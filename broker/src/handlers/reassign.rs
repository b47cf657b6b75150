//! AlterPartitionReassignments and ListPartitionReassignments: Kafka's tools moving partitions (`kafka-reassign-partitions`, `Admin.alterPartitionReassignments`).
//!
//! Floe keeps one copy of each partition (object storage is the replica), so a reassignment
//! names one broker: the partition moves there by stream handoff (`cluster/sync.rs`). A null
//! replica list cancels a move not yet made. A node running alone accepts only itself.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_request::AlterPartitionReassignmentsRequest;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    AlterPartitionReassignmentsResponse, ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use kafka_protocol::messages::list_partition_reassignments_response::{
    ListPartitionReassignmentsResponse, OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{BrokerId, TopicName};

use super::{sb, RequestContext};
use crate::broker::Broker;
use crate::cluster::placement;
use crate::error::{BrokerError, Result};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};

/// Moves (or with `None` cancels the move of) one partition.
async fn reassign(b: &Broker, topic: &str, index: i32, replicas: Option<&[BrokerId]>) -> Result<()> {
    b.topics.exists(topic, index)?;
    let target = match replicas {
        Some([one]) => Some(one.0),
        Some(other) => {
            return Err(BrokerError::InvalidReplicaAssignment(format!("{} replicas: Floe keeps one copy (object storage is the replica)", other.len())))
        }
        None => None,
    };
    let Some(c) = &b.cluster else {
        return match target {
            Some(t) if t == b.settings.node_id => Ok(()),
            Some(t) => Err(BrokerError::InvalidReplicaAssignment(format!("broker {t} is not this node"))),
            None => Err(BrokerError::NoReassignmentInProgress(format!("{topic}-{index}"))),
        };
    };
    match target {
        Some(t) => {
            if !c.brokers.read().iter().any(|x| x.record.node_id == t) {
                return Err(BrokerError::InvalidReplicaAssignment(format!("broker {t} is not live")));
            }
            placement::request_move(&c.etcd, &c.name, topic, index, t).await.map(drop)
        }
        None => match placement::cancel_move(&c.etcd, &c.name, topic, index).await? {
            true => Ok(()),
            false => Err(BrokerError::NoReassignmentInProgress(format!("{topic}-{index}"))),
        },
    }
}

/// AlterPartitionReassignments (needs Alter on the cluster).
pub async fn alter(b: &Arc<Broker>, req: AlterPartitionReassignmentsRequest, ctx: &RequestContext) -> AlterPartitionReassignmentsResponse {
    let mut resp = AlterPartitionReassignmentsResponse::default();
    if !ctx.allowed(b, Operation::Alter, ResourceType::Cluster, CLUSTER_NAME) {
        let e = BrokerError::ClusterAuthorizationFailed;
        resp.error_code = e.code();
        resp.error_message = Some(sb(&e.to_string()));
        return resp;
    }
    for t in req.topics {
        let mut tr = ReassignableTopicResponse::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = ReassignablePartitionResponse::default();
            pr.partition_index = p.partition_index;
            if let Err(e) = reassign(b, &t.name, p.partition_index, p.replicas.as_deref()).await {
                pr.error_code = e.code();
                pr.error_message = Some(sb(&e.to_string()));
            }
            tr.partitions.push(pr);
        }
        resp.responses.push(tr);
    }
    resp
}

/// ListPartitionReassignments (needs Describe on the cluster): the moves asked for and not yet made.
pub fn list(b: &Arc<Broker>, req: ListPartitionReassignmentsRequest, ctx: &RequestContext) -> ListPartitionReassignmentsResponse {
    let mut resp = ListPartitionReassignmentsResponse::default();
    if !ctx.allowed(b, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        let e = BrokerError::ClusterAuthorizationFailed;
        resp.error_code = e.code();
        resp.error_message = Some(sb(&e.to_string()));
        return resp;
    }
    let Some(c) = &b.cluster else { return resp };
    let placement = c.placement.read().clone();
    let wanted = |topic: &str, index: i32| match &req.topics {
        None => true,
        Some(ts) => ts.iter().any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&index)),
    };
    for (topic, parts) in &placement.partitions {
        let mut tr = OngoingTopicReassignment::default();
        tr.name = TopicName(sb(topic));
        for (&index, a) in parts {
            let (Some(to), true) = (a.value.target, wanted(topic, index)) else { continue };
            let mut op = OngoingPartitionReassignment::default();
            op.partition_index = index;
            op.replicas = vec![BrokerId(a.value.owner), BrokerId(to)];
            op.adding_replicas = vec![BrokerId(to)];
            op.removing_replicas = vec![BrokerId(a.value.owner)];
            tr.partitions.push(op);
        }
        if !tr.partitions.is_empty() {
            resp.topics.push(tr);
        }
    }
    resp
}
