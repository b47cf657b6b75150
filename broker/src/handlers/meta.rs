//! ApiVersions, Metadata, DescribeCluster and FindCoordinator.

use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use kafka_protocol::messages::describe_cluster_response::{DescribeClusterBroker, DescribeClusterResponse};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, TopicName};

use super::{sb, RequestContext, VERSIONS};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::topics::{Topic, OFFSETS_TOPIC, TXN_TOPIC};

/// FindCoordinator needs Describe on the group (key type 0) or transactional id (1).
fn coordinator_allowed(b: &Broker, ctx: &RequestContext, key_type: i8, key: &str) -> Result<(), BrokerError> {
    match key_type {
        1 if !ctx.allowed(b, Operation::Describe, ResourceType::TransactionalId, key) => Err(BrokerError::TransactionalIdAuthorizationFailed(key.to_string())),
        0 if !ctx.allowed(b, Operation::Describe, ResourceType::Group, key) => Err(BrokerError::GroupAuthorizationFailed(key.to_string())),
        _ => Ok(()),
    }
}

/// The ApiVersions response: every API Floe implements and its version range.
pub fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = VERSIONS
        .iter()
        .filter_map(|&(k, _, _)| {
            let (min, max) = super::supported(k)?;
            let mut v = ApiVersion::default();
            v.api_key = k as i16;
            v.min_version = min;
            v.max_version = max;
            Some(v)
        })
        .collect();
    r
}

fn topic_entry(b: &Broker, t: &Topic, version: i16) -> MetadataResponseTopic {
    let me = b.settings.node_id;
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(TopicName(sb(&t.meta.name)));
    mt.is_internal = crate::topics::is_internal(&t.meta.name);
    if version >= 10 {
        mt.topic_id = t.meta.id;
    }
    mt.partitions = t
        .partitions
        .iter()
        .map(|p| {
            let mut mp = MetadataResponsePartition::default();
            mp.partition_index = p.index;
            let node = BrokerId(if p.leader_id < 0 && p.local { me } else { p.leader_id });
            mp.leader_id = node;
            if node.0 < 0 {
                // Assigned but not yet placed: clients retry.
                mp.error_code = BrokerError::NotLeaderOrFollower { topic: p.topic.clone(), partition: p.index, leader: -1, leader_epoch: -1 }.code();
            }
            if version >= 7 {
                mp.leader_epoch = p.leader_epoch.max(0);
            }
            mp.replica_nodes = vec![node];
            mp.isr_nodes = vec![node];
            mp
        })
        .collect();
    mt
}

/// Every broker a client should know, with its address on the listener the request came in on:
/// this node alone, or every live broker of its cluster.
pub(crate) fn brokers(b: &Broker, ctx: &RequestContext) -> Vec<(i32, String, i32)> {
    let (host, port) = ctx.listener.advertised.clone();
    let mut all = b.cluster.as_ref().map(|c| c.addresses(&ctx.listener.name)).unwrap_or_default();
    if !all.iter().any(|(id, _, _)| *id == b.settings.node_id) {
        all.push((b.settings.node_id, host, port));
        all.sort_by_key(|(id, _, _)| *id);
    }
    all
}

/// The controller's node id: this node when it runs alone.
fn controller_id(b: &Broker) -> i32 {
    b.cluster.as_ref().and_then(|c| c.controller()).unwrap_or(b.settings.node_id)
}

/// Metadata: the brokers (at the address of the listener asked) and each partition's leader.
pub async fn metadata(b: &Arc<Broker>, req: MetadataRequest, ctx: &RequestContext) -> MetadataResponse {
    let mut r = MetadataResponse::default();
    r.brokers = brokers(b, ctx)
        .into_iter()
        .map(|(id, host, port)| {
            let mut broker = MetadataResponseBroker::default();
            broker.node_id = BrokerId(id);
            broker.host = sb(&host);
            broker.port = port;
            broker
        })
        .collect();
    if ctx.version >= 2 {
        r.cluster_id = Some(sb(&b.settings.cluster_id));
    }
    if ctx.version >= 1 {
        r.controller_id = BrokerId(controller_id(b));
    }
    let auto_create = b.settings.auto_create_topics_enable && (ctx.version < 4 || req.allow_auto_topic_creation);
    match req.topics {
        // Every topic the sender may Describe; the others are left out silently.
        None => {
            r.topics = b
                .topics
                .all()
                .iter()
                .filter(|t| ctx.may(b, Operation::Describe, ResourceType::Topic, &t.meta.name))
                .map(|t| topic_entry(b, t, ctx.version))
                .collect()
        }
        Some(asked) => {
            for t in asked {
                let found = match (&t.name, t.topic_id.is_nil()) {
                    // Refused whether or not it exists, so that existence does not leak.
                    (Some(name), _) if !ctx.allowed(b, Operation::Describe, ResourceType::Topic, name) => {
                        Err(BrokerError::TopicAuthorizationFailed(name.to_string()))
                    }
                    (Some(name), _) => match b.topics.get(name) {
                        Some(topic) => Ok(topic),
                        None if auto_create && !super::may_create_topic(b, ctx, name) => Err(BrokerError::TopicAuthorizationFailed(name.to_string())),
                        None if auto_create => b.topics.create(name, b.settings.num_partitions, Default::default(), false).await.or_else(|e| match e {
                            BrokerError::TopicAlreadyExists(_) => b.topics.get(name).ok_or(e),
                            e => Err(e),
                        }),
                        None => Err(BrokerError::UnknownTopicOrPartition(name.to_string())),
                    },
                    (None, false) => match b.topics.by_id(t.topic_id) {
                        Some(topic) if !ctx.allowed(b, Operation::Describe, ResourceType::Topic, &topic.meta.name) => {
                            Err(BrokerError::TopicAuthorizationFailed(topic.meta.name.clone()))
                        }
                        found => found.ok_or(BrokerError::UnknownTopicId(t.topic_id)),
                    },
                    (None, true) => Err(BrokerError::InvalidRequest("a topic needs a name or an id".into())),
                };
                match found {
                    Ok(topic) => r.topics.push(topic_entry(b, &topic, ctx.version)),
                    Err(e) => {
                        let mut mt = MetadataResponseTopic::default();
                        mt.name = t.name.clone();
                        if ctx.version >= 10 {
                            mt.topic_id = t.topic_id;
                        }
                        mt.error_code = e.code();
                        r.topics.push(mt);
                    }
                }
            }
        }
    }
    r
}

/// DescribeCluster: every broker.
pub fn describe_cluster(b: &Arc<Broker>, ctx: &RequestContext) -> DescribeClusterResponse {
    let version = ctx.version;
    let mut r = DescribeClusterResponse::default();
    r.cluster_id = sb(&b.settings.cluster_id);
    r.controller_id = BrokerId(controller_id(b));
    if version >= 1 {
        r.endpoint_type = 1;
    }
    if !ctx.allowed(b, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        let e = BrokerError::ClusterAuthorizationFailed;
        r.error_code = e.code();
        r.error_message = Some(sb(&e.to_string()));
        return r;
    }
    r.brokers = brokers(b, ctx)
        .into_iter()
        .map(|(id, host, port)| {
            let mut broker = DescribeClusterBroker::default();
            broker.broker_id = BrokerId(id);
            broker.host = sb(&host);
            broker.port = port;
            broker
        })
        .collect();
    r
}

/// FindCoordinator: this node coordinates every group and transactional id when it runs alone;
/// in a cluster, the leader of the key's partition of `__consumer_offsets` (groups) or
/// `__transaction_state` (transactional ids).
pub fn find_coordinator(b: &Arc<Broker>, req: FindCoordinatorRequest, ctx: &RequestContext) -> FindCoordinatorResponse {
    let key_type = req.key_type;
    let all = brokers(b, ctx);
    let at = |id: i32| all.iter().find(|(n, _, _)| *n == id).map(|(_, h, p)| (h.clone(), *p));
    let coordinator_of = |key: &str| -> Result<(BrokerId, String, i32), BrokerError> {
        let home = match (key_type, &b.cluster) {
            (_, None) => None,
            (0, Some(_)) => Some((OFFSETS_TOPIC, crate::txn::log::partition_for(key, b.settings.offsets_topic_num_partitions))),
            (_, Some(_)) => Some((TXN_TOPIC, crate::txn::log::partition_for(key, b.txn.partitions()))),
        };
        let id = match home {
            None => b.settings.node_id,
            Some((topic, p)) => {
                let leader = b.topics.get(topic).and_then(|t| t.partitions.get(p as usize).map(|x| x.leader_id)).unwrap_or(-1);
                if leader < 0 {
                    return Err(BrokerError::CoordinatorNotAvailable(key.to_string()));
                }
                leader
            }
        };
        let (host, port) = at(id).ok_or_else(|| BrokerError::CoordinatorNotAvailable(key.to_string()))?;
        Ok((BrokerId(id), host, port))
    };
    let mut r = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        r.coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let mut c = Coordinator::default();
                match coordinator_allowed(b, ctx, key_type, &key).and_then(|()| coordinator_of(&key)) {
                    Err(e) => {
                        c.error_code = e.code();
                        c.error_message = Some(sb(&e.to_string()));
                        c.node_id = BrokerId(-1);
                    }
                    Ok((node, host, port)) => {
                        c.node_id = node;
                        c.host = sb(&host);
                        c.port = port;
                    }
                }
                c.key = key;
                c
            })
            .collect();
    } else {
        match coordinator_allowed(b, ctx, key_type, &req.key).and_then(|()| coordinator_of(&req.key)) {
            Err(e) => {
                r.error_code = e.code();
                if ctx.version >= 1 {
                    r.error_message = Some(sb(&e.to_string()));
                }
                r.node_id = BrokerId(-1);
            }
            Ok((node, host, port)) => {
                r.node_id = node;
                r.host = sb(&host);
                r.port = port;
            }
        }
    }
    r
}
