//! OffsetCommit, OffsetFetch (single group, and batched from v8) and OffsetDelete.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_request::OffsetDeleteRequest;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::TopicName;

use kafka_protocol::messages::ResponseKind;

use super::{sb, Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{code_of, BrokerError, Result};
use crate::security::acl::{Operation, ResourceType};
use crate::state::Committed;

/// (partition, error code) per partition of a topic.
type PartitionResults = Vec<(i32, i16)>;
/// (topic, [(partition, committed)]) as OffsetFetch answers.
type TopicOffsets = Vec<(String, Vec<(i32, std::result::Result<Option<Committed>, i16>)>)>;

/// Longest metadata string kept with an offset.
const METADATA_BYTES_MAX: usize = 4096;

/// OffsetCommit: checked against the group's generation and put in line now (pipelined commits
/// apply in arrival order); the reply comes once the commit is durable.
pub async fn offset_commit(b: &Arc<Broker>, req: OffsetCommitRequest, ctx: &RequestContext) -> Reply {
    let group = req.group_id.0.to_string();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let check = match ctx.allowed(b, Operation::Read, ResourceType::Group, &group) {
        true => b
            .state
            .coordinates(&group)
            .and_then(|()| b.groups.check_commit(&group, req.member_id.as_str(), instance.as_deref(), req.generation_id_or_member_epoch)),
        false => Err(BrokerError::GroupAuthorizationFailed(group.clone())),
    };
    let now = b.clock.now_ms();
    let mut results: Vec<(TopicName, PartitionResults)> = Vec::new();
    let mut entries = Vec::new();
    for t in &req.topics {
        let mut parts = Vec::new();
        let topic_allowed = check.is_err() || ctx.allowed(b, Operation::Read, ResourceType::Topic, &t.name);
        for p in &t.partitions {
            let code = match &check {
                Err(e) => e.code(),
                Ok(()) if !topic_allowed => BrokerError::TopicAuthorizationFailed(t.name.to_string()).code(),
                Ok(()) => {
                    match committed_entry(b, &t.name, p.partition_index, (p.committed_offset, p.committed_leader_epoch), p.committed_metadata.as_ref(), now) {
                        Ok(c) => {
                            entries.push((t.name.0.to_string(), p.partition_index, Some(c)));
                            0
                        }
                        Err(e) => e.code(),
                    }
                }
            };
            parts.push((p.partition_index, code));
        }
        results.push((t.name.clone(), parts));
    }
    let started = if entries.is_empty() { None } else { Some(b.state.commit_start(&group, entries).await) };
    Box::pin(async move {
        let stored: Result<()> = match started {
            None => Ok(()),
            Some(Ok(durable)) => durable.wait().await.map_err(BrokerError::from),
            Some(Err(e)) => Err(e),
        };
        Some(ResponseKind::OffsetCommit(commit_response(results, stored)))
    })
}

/// One partition's offset to commit, checked (the partition exists, its metadata is within
/// `METADATA_BYTES_MAX`): OffsetCommit's and TxnOffsetCommit's rule.
pub(super) fn committed_entry(
    b: &Broker,
    topic: &str,
    partition: i32,
    (offset, leader_epoch): (i64, i32),
    metadata: Option<&kafka_protocol::protocol::StrBytes>,
    now_ms: i64,
) -> Result<Committed> {
    if metadata.is_some_and(|m| m.len() > METADATA_BYTES_MAX) {
        return Err(BrokerError::InvalidRequest("offset metadata is too large".into()));
    }
    b.topics.exists(topic, partition)?;
    Ok(Committed { offset, leader_epoch, metadata: metadata.map(|m| m.to_string()), commit_ms: now_ms })
}

fn commit_response(results: Vec<(TopicName, PartitionResults)>, stored: Result<()>) -> OffsetCommitResponse {
    let mut resp = OffsetCommitResponse::default();
    for (name, parts) in results {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = name;
        for (index, code) in parts {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = index;
            pr.error_code = if code != 0 { code } else { code_of(&stored) };
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

/// (topic, partition, committed) for a group, for the asked topics or all; a topic the sender
/// may not Describe is left out of "all", and answered TOPIC_AUTHORIZATION_FAILED when asked for.
/// With `stable`, offsets pending in an open transaction are answered UNSTABLE_OFFSET_COMMIT
/// (the consumer retries once the transaction ends).
fn lookup(b: &Broker, ctx: &RequestContext, group: &str, topics: Option<Vec<(String, Vec<i32>)>>, stable: bool) -> TopicOffsets {
    let pending = if stable { b.txn.pending_offsets(group) } else { Default::default() };
    let mut out = lookup_all(b, ctx, group, topics);
    if !pending.is_empty() {
        for (t, parts) in &mut out {
            for (p, c) in parts.iter_mut() {
                if pending.contains(&(t.clone(), *p)) {
                    *c = Err(BrokerError::UnstableOffsetCommit.code());
                }
            }
        }
    }
    out
}

fn lookup_all(b: &Broker, ctx: &RequestContext, group: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> TopicOffsets {
    match topics {
        Some(ts) => ts
            .into_iter()
            .map(|(t, ps)| {
                let allowed = ctx.allowed(b, Operation::Describe, ResourceType::Topic, &t);
                let v = ps
                    .into_iter()
                    .map(|p| match allowed {
                        true => (p, Ok(b.state.committed(group, &t, p))),
                        false => (p, Err(BrokerError::TopicAuthorizationFailed(t.clone()).code())),
                    })
                    .collect();
                (t, v)
            })
            .collect(),
        None => {
            let mut out: TopicOffsets = Vec::new();
            for (t, p, c) in b.state.group_offsets(group).into_iter().filter(|(t, _, _)| ctx.may(b, Operation::Describe, ResourceType::Topic, t)) {
                let c = Ok(Some(c));
                match out.last_mut() {
                    Some((last, v)) if *last == t => v.push((p, c)),
                    _ => out.push((t, vec![(p, c)])),
                }
            }
            out
        }
    }
}

/// OffsetFetch.
pub fn offset_fetch(b: &Arc<Broker>, req: OffsetFetchRequest, ctx: &RequestContext) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if ctx.version >= 8 {
        for g in req.groups {
            let topics = g.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
            let mut og = OffsetFetchResponseGroup::default();
            og.group_id = g.group_id.clone();
            if !ctx.allowed(b, Operation::Describe, ResourceType::Group, &g.group_id) {
                og.error_code = BrokerError::GroupAuthorizationFailed(g.group_id.to_string()).code();
                resp.groups.push(og);
                continue;
            }
            if let Err(e) = b.state.coordinates(&g.group_id) {
                og.error_code = e.code();
                resp.groups.push(og);
                continue;
            }
            for (t, parts) in lookup(b, ctx, g.group_id.0.as_str(), topics, req.require_stable) {
                let mut ot = OffsetFetchResponseTopics::default();
                ot.name = TopicName(sb(&t));
                for (p, c) in parts {
                    let mut op = OffsetFetchResponsePartitions::default();
                    op.partition_index = p;
                    op.error_code = c.as_ref().err().copied().unwrap_or(0);
                    fill(&mut op.committed_offset, &mut op.committed_leader_epoch, &mut op.metadata, c.unwrap_or(None), true);
                    ot.partitions.push(op);
                }
                og.topics.push(ot);
            }
            resp.groups.push(og);
        }
    } else {
        if !ctx.allowed(b, Operation::Describe, ResourceType::Group, &req.group_id) {
            resp.error_code = BrokerError::GroupAuthorizationFailed(req.group_id.to_string()).code();
            return resp;
        }
        if let Err(e) = b.state.coordinates(&req.group_id) {
            resp.error_code = e.code();
            return resp;
        }
        let topics = req.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
        for (t, parts) in lookup(b, ctx, req.group_id.0.as_str(), topics, ctx.version >= 7 && req.require_stable) {
            let mut ot = OffsetFetchResponseTopic::default();
            ot.name = TopicName(sb(&t));
            for (p, c) in parts {
                let mut op = OffsetFetchResponsePartition::default();
                op.partition_index = p;
                op.error_code = c.as_ref().err().copied().unwrap_or(0);
                fill(&mut op.committed_offset, &mut op.committed_leader_epoch, &mut op.metadata, c.unwrap_or(None), ctx.version >= 5);
                ot.partitions.push(op);
            }
            resp.topics.push(ot);
        }
    }
    resp
}

fn fill(offset: &mut i64, epoch: &mut i32, metadata: &mut Option<kafka_protocol::protocol::StrBytes>, c: Option<Committed>, with_epoch: bool) {
    match c {
        Some(c) => {
            *offset = c.offset;
            if with_epoch {
                *epoch = c.leader_epoch;
            }
            *metadata = Some(sb(c.metadata.as_deref().unwrap_or("")));
        }
        None => {
            *offset = -1;
            *epoch = -1;
            *metadata = Some(sb(""));
        }
    }
}

/// OffsetDelete: only for a group without active members (Floe does not read subscriptions).
pub async fn offset_delete(b: &Arc<Broker>, req: OffsetDeleteRequest, ctx: &RequestContext) -> OffsetDeleteResponse {
    let group = req.group_id.0.to_string();
    let mut resp = OffsetDeleteResponse::default();
    if !ctx.allowed(b, Operation::Delete, ResourceType::Group, &group) {
        resp.error_code = BrokerError::GroupAuthorizationFailed(group).code();
        return resp;
    }
    if let Err(e) = b.state.coordinates(&group) {
        resp.error_code = e.code();
        return resp;
    }
    if b.state.group_offsets(&group).is_empty() && b.groups.describe(&group).is_none() {
        resp.error_code = BrokerError::GroupIdNotFound(group).code();
        return resp;
    }
    let active = b.groups.has_members(&group);
    let mut entries = Vec::new();
    for t in req.topics {
        let mut tr = OffsetDeleteResponseTopic::default();
        tr.name = t.name.clone();
        let topic_allowed = ctx.allowed(b, Operation::Read, ResourceType::Topic, &t.name);
        for p in t.partitions {
            let mut pr = OffsetDeleteResponsePartition::default();
            pr.partition_index = p.partition_index;
            if !topic_allowed {
                pr.error_code = BrokerError::TopicAuthorizationFailed(t.name.to_string()).code();
            } else if active {
                pr.error_code = BrokerError::GroupSubscribedToTopic.code();
            } else {
                entries.push((t.name.0.to_string(), p.partition_index, None));
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    if !entries.is_empty() {
        if let Err(e) = b.state.commit(&group, entries).await {
            resp.error_code = e.code();
        }
    }
    resp
}
