//! The transactional producer's requests: AddPartitionsToTxn (v0–v3, and v4's batched and verify-only form), AddOffsetsToTxn, TxnOffsetCommit (with KIP-447's group checks) and EndTxn.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnRequest, AddPartitionsToTxnTopic};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequest;
use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};

use super::offsets::committed_entry;
use super::RequestContext;
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};

/// The code of an error for a request of `version`: PRODUCER_FENCED became its own code at
/// `fenced_since`; older clients know it as INVALID_PRODUCER_EPOCH.
fn code(e: &BrokerError, version: i16, fenced_since: i16) -> i16 {
    match e {
        BrokerError::ProducerFenced { .. } if version < fenced_since => ResponseError::InvalidProducerEpoch.code(),
        _ => e.code(),
    }
}

/// Write on the transactional id, the first check of every request here.
fn may_write(b: &Broker, ctx: &RequestContext, id: &str) -> Result<()> {
    match ctx.allowed(b, Operation::Write, ResourceType::TransactionalId, id) {
        true => Ok(()),
        false => Err(BrokerError::TransactionalIdAuthorizationFailed(id.to_string())),
    }
}

/// Whether `topic`-`index` exists (led here or, in a cluster, by another broker).
fn partition_exists(b: &Broker, topic: &str, index: i32) -> Result<()> {
    match b.topics.partition(topic, index) {
        Err(BrokerError::NotLeaderOrFollower { .. }) => Ok(()),
        other => other.map(drop),
    }
}

/// One transaction's partitions: checked (topic exists, Write allowed), then added together.
async fn add_one(
    b: &Broker,
    ctx: &RequestContext,
    id: &str,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut checks: Vec<(&AddPartitionsToTxnTopic, Vec<Result<()>>)> = Vec::with_capacity(topics.len());
    for t in topics {
        let allowed = ctx.allowed(b, Operation::Write, ResourceType::Topic, &t.name);
        let results = t
            .partitions
            .iter()
            .map(|&p| match allowed {
                false => Err(BrokerError::TopicAuthorizationFailed(t.name.to_string())),
                // A partition of the cluster (markers reach the broker that leads it then).
                true => partition_exists(b, &t.name, p),
            })
            .collect();
        checks.push((t, results));
    }
    let failed = checks.iter().any(|(_, r)| r.iter().any(Result::is_err));
    // As Kafka: one bad partition and the others are not attempted.
    let outcome: std::result::Result<(), i16> = if failed {
        Err(ResponseError::OperationNotAttempted.code())
    } else {
        let partitions: Vec<(String, i32)> = topics.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.name.to_string(), p))).collect();
        let r = match may_write(b, ctx, id) {
            Ok(()) => b.txn.add_partitions(b, id, producer_id, epoch, &partitions, verify_only).await,
            Err(e) => Err(e),
        };
        r.map_err(|e| {
            tracing::debug!(transactional_id = id, error = %e, "AddPartitionsToTxn refused");
            code(&e, ctx.version, 2)
        })
    };
    checks
        .into_iter()
        .map(|(t, results)| {
            let mut tr = AddPartitionsToTxnTopicResult::default();
            tr.name = t.name.clone();
            tr.results_by_partition = t
                .partitions
                .iter()
                .zip(results)
                .map(|(&p, r)| {
                    let mut pr = AddPartitionsToTxnPartitionResult::default();
                    pr.partition_index = p;
                    pr.partition_error_code = match (r, &outcome) {
                        (Err(e), _) => e.code(),
                        (Ok(()), Err(c)) => *c,
                        (Ok(()), Ok(())) => 0,
                    };
                    pr
                })
                .collect();
            tr
        })
        .collect()
}

/// AddPartitionsToTxn: v0–v3 carry one transaction; v4 (sent by brokers) several, each
/// possibly verify-only, and needs ClusterAction.
pub async fn add_partitions(b: &Arc<Broker>, req: AddPartitionsToTxnRequest, ctx: &RequestContext) -> AddPartitionsToTxnResponse {
    let mut resp = AddPartitionsToTxnResponse::default();
    if ctx.version <= 3 {
        let id = req.v3_and_below_transactional_id.0.as_str();
        resp.results_by_topic_v3_and_below =
            add_one(b, ctx, id, req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch, false, &req.v3_and_below_topics).await;
        return resp;
    }
    if !ctx.allowed(b, Operation::ClusterAction, ResourceType::Cluster, CLUSTER_NAME) {
        resp.error_code = BrokerError::ClusterAuthorizationFailed.code();
        return resp;
    }
    for t in &req.transactions {
        let mut r = AddPartitionsToTxnResult::default();
        r.transactional_id = t.transactional_id.clone();
        r.topic_results = add_one(b, ctx, t.transactional_id.0.as_str(), t.producer_id.0, t.producer_epoch, t.verify_only, &t.topics).await;
        resp.results_by_transaction.push(r);
    }
    resp
}

/// AddOffsetsToTxn: the group's offsets may be committed in the transaction.
pub async fn add_offsets(b: &Arc<Broker>, req: AddOffsetsToTxnRequest, ctx: &RequestContext) -> AddOffsetsToTxnResponse {
    let mut resp = AddOffsetsToTxnResponse::default();
    let id = req.transactional_id.0.as_str();
    let group = req.group_id.0.as_str();
    let r = match may_write(b, ctx, id) {
        Ok(()) if !ctx.allowed(b, Operation::Read, ResourceType::Group, group) => Err(BrokerError::GroupAuthorizationFailed(group.to_string())),
        Ok(()) => b.txn.add_group(b, id, req.producer_id.0, req.producer_epoch, group).await,
        Err(e) => Err(e),
    };
    if let Err(e) = r {
        tracing::debug!(transactional_id = id, error = %e, "AddOffsetsToTxn refused");
        resp.error_code = code(&e, ctx.version, 2);
    }
    resp
}

/// TxnOffsetCommit: offsets pending in the transaction; from v3 checked against the group's
/// generation and member (KIP-447), so a zombie of an older generation cannot commit.
pub async fn txn_offset_commit(b: &Arc<Broker>, req: TxnOffsetCommitRequest, ctx: &RequestContext) -> TxnOffsetCommitResponse {
    let id = req.transactional_id.0.as_str();
    let group = req.group_id.0.as_str();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    // In a cluster the group's coordinator checks the member and passes the offsets on to the
    // transaction's coordinator, which keeps them with the transaction (`forwarded`).
    let elsewhere = b.cluster.is_some() && b.txn.coordinates(id).is_err();
    let forwarded = b.cluster.is_some()
        && !elsewhere
        && req.generation_id < 0
        && req.member_id.is_empty()
        && b.state.coordinates(group).is_err()
        && ctx.allowed(b, Operation::ClusterAction, ResourceType::Cluster, CLUSTER_NAME);
    let check = may_write(b, ctx, id).and_then(|()| match ctx.allowed(b, Operation::Read, ResourceType::Group, group) {
        false => Err(BrokerError::GroupAuthorizationFailed(group.to_string())),
        true if forwarded => Ok(()),
        // Before v3 (or a client without group metadata) there is nothing to check.
        true if req.generation_id < 0 && req.member_id.is_empty() => b.state.coordinates(group),
        true => b.state.coordinates(group).and_then(|()| b.groups.check_commit(group, req.member_id.as_str(), instance.as_deref(), req.generation_id)),
    });
    let now = b.clock.now_ms();
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(req.topics.len());
    let mut offsets = Vec::new();
    for t in &req.topics {
        let topic_allowed = check.is_err() || ctx.allowed(b, Operation::Read, ResourceType::Topic, &t.name);
        let mut tc = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let c = match &check {
                Err(e) => code(e, ctx.version, 3),
                Ok(()) if !topic_allowed => BrokerError::TopicAuthorizationFailed(t.name.to_string()).code(),
                Ok(()) => {
                    match committed_entry(b, &t.name, p.partition_index, (p.committed_offset, p.committed_leader_epoch), p.committed_metadata.as_ref(), now) {
                        Ok(committed) => {
                            offsets.push((t.name.to_string(), p.partition_index, committed));
                            0
                        }
                        Err(e) => e.code(),
                    }
                }
            };
            tc.push(c);
        }
        codes.push(tc);
    }
    let stored = match (offsets.is_empty(), elsewhere) {
        (true, _) => Ok(()),
        (false, true) => crate::txn::offsets::forward(b, id, req.producer_id.0, req.producer_epoch, group, offsets).await,
        (false, false) => b.txn.commit_offsets(b, id, req.producer_id.0, req.producer_epoch, group, offsets).await,
    };
    if let Err(e) = &stored {
        tracing::debug!(transactional_id = id, error = %e, "TxnOffsetCommit refused");
    }
    let mut resp = TxnOffsetCommitResponse::default();
    for (t, tc) in req.topics.iter().zip(codes) {
        let mut tr = TxnOffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for (p, c) in t.partitions.iter().zip(tc) {
            let mut pr = TxnOffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = match (&stored, c) {
                (Err(e), 0) => code(e, ctx.version, 3),
                _ => c,
            };
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

/// EndTxn: commit or abort.
pub async fn end_txn(b: &Arc<Broker>, req: EndTxnRequest, ctx: &RequestContext) -> EndTxnResponse {
    let mut resp = EndTxnResponse::default();
    let id = req.transactional_id.0.as_str();
    let r = match may_write(b, ctx, id) {
        Ok(()) => b.txn.end_txn(b, id, req.producer_id.0, req.producer_epoch, req.committed).await,
        Err(e) => Err(e),
    };
    if let Err(e) = r {
        tracing::debug!(transactional_id = id, commit = req.committed, error = %e, "EndTxn refused");
        resp.error_code = code(&e, ctx.version, 2);
    }
    resp.producer_id = req.producer_id;
    resp.producer_epoch = req.producer_epoch;
    resp
}
