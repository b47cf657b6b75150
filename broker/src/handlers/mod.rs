//! Request handlers: the version table, and dispatch from a decoded request to its handler.
//!
//! A handler runs in two phases: what must happen in arrival order (a produce's sequence check
//! and offset assignment) runs in `dispatch`, on the connection's reader; the rest (waiting for
//! durability, long-polls) runs in the returned future, so the next request is read meanwhile.

mod acls;
mod admin;
mod configs;
mod fetch;
mod group;
mod markers;
mod meta;
mod offsets;
mod produce;
mod reassign;
mod txn;
mod txn_admin;
mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::security::acl::{Operation, ResourceType};
use crate::security::listeners::Listener;
use crate::security::sasl::Session;

/// The response to come; `None` for a produce with acks=0.
pub type Reply = Pin<Box<dyn Future<Output = Option<ResponseKind>> + Send>>;

/// Versions Floe implements, per API (intersected with what the protocol crate knows).
pub const VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    // v0: the exchange's tokens follow as bare frames; v1: in SaslAuthenticate requests.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // Transactions as KIP-98/447 define them (v5 of EndTxn and TxnOffsetCommit are KIP-890's
    // second part, which needs the transaction.version feature Floe does not announce).
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    // One replica each: a reassignment is a move to one broker (cluster mode).
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    // Between brokers: a transaction coordinator ends a transaction in another broker's partitions.
    (ApiKey::WriteTxnMarkers, 0, 1),
];

/// The supported version range of an API, if Floe implements it.
pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    VERSIONS.iter().find(|(k, _, _)| *k == key).map(|&(k, min, max)| {
        let known = k.valid_versions();
        (min.max(known.min), max.min(known.max))
    })
}

/// What a handler knows of the request besides its body.
pub struct RequestContext {
    pub version: i16,
    pub client_id: String,
    pub peer: SocketAddr,
    /// The listener the request came in on (Metadata answers with its addresses).
    pub listener: Arc<Listener>,
    /// Who sent it: `User:name` once authenticated, else `User:ANONYMOUS`.
    pub principal: Arc<str>,
}

impl RequestContext {
    /// Whether the sender may do `op` on resource `name` of type `t` (a denial is logged and counted).
    pub fn allowed(&self, b: &Broker, op: Operation, t: ResourceType, name: &str) -> bool {
        b.authorizer.authorize(&self.principal, self.peer.ip(), op, t, name)
    }

    /// As [`RequestContext::allowed`], without logging a denial (for listings).
    pub fn may(&self, b: &Broker, op: Operation, t: ResourceType, name: &str) -> bool {
        b.authorizer.permits(&self.principal, self.peer.ip(), op, t, name)
    }
}

/// Whether the sender may create topic `name`: Create on the cluster, or on the topic.
pub fn may_create_topic(b: &Broker, ctx: &RequestContext, name: &str) -> bool {
    ctx.may(b, Operation::Create, ResourceType::Cluster, crate::security::acl::CLUSTER_NAME) || ctx.allowed(b, Operation::Create, ResourceType::Topic, name)
}

fn ready(r: ResponseKind) -> Reply {
    Box::pin(async move { Some(r) })
}

/// Runs the in-order phase of a request and returns the rest as a future.
pub async fn dispatch(b: &Arc<Broker>, header: &RequestHeader, req: RequestKind, peer: SocketAddr, session: &Session) -> Reply {
    let ctx = RequestContext {
        version: header.request_api_version,
        client_id: header.client_id.as_ref().map(|s| s.to_string()).unwrap_or_default(),
        peer,
        listener: session.listener.clone(),
        principal: session.principal(),
    };
    let b = b.clone();
    match req {
        RequestKind::ApiVersions(_) => ready(ResponseKind::ApiVersions(meta::api_versions(0))),
        RequestKind::Metadata(r) => ready(ResponseKind::Metadata(meta::metadata(&b, r, &ctx).await)),
        RequestKind::DescribeCluster(_) => ready(ResponseKind::DescribeCluster(meta::describe_cluster(&b, &ctx))),
        RequestKind::FindCoordinator(r) => ready(ResponseKind::FindCoordinator(meta::find_coordinator(&b, r, &ctx))),
        RequestKind::Produce(r) => produce::start(b, r, ctx).await,
        RequestKind::Fetch(r) => Box::pin(async move { Some(ResponseKind::Fetch(fetch::fetch(&b, r, &ctx).await)) }),
        RequestKind::ListOffsets(r) => Box::pin(async move { Some(ResponseKind::ListOffsets(fetch::list_offsets(&b, r, &ctx).await)) }),
        RequestKind::OffsetForLeaderEpoch(r) => ready(ResponseKind::OffsetForLeaderEpoch(fetch::offset_for_leader_epoch(&b, r, &ctx))),
        RequestKind::DeleteRecords(r) => Box::pin(async move { Some(ResponseKind::DeleteRecords(fetch::delete_records(&b, r, &ctx).await)) }),
        RequestKind::CreateTopics(r) => Box::pin(async move { Some(ResponseKind::CreateTopics(admin::create_topics(&b, r, &ctx).await)) }),
        RequestKind::DeleteTopics(r) => Box::pin(async move { Some(ResponseKind::DeleteTopics(admin::delete_topics(&b, r, &ctx).await)) }),
        RequestKind::CreatePartitions(r) => Box::pin(async move { Some(ResponseKind::CreatePartitions(admin::create_partitions(&b, r, &ctx).await)) }),
        RequestKind::DescribeConfigs(r) => ready(ResponseKind::DescribeConfigs(configs::describe_configs(&b, r, &ctx))),
        RequestKind::AlterConfigs(r) => Box::pin(async move { Some(ResponseKind::AlterConfigs(configs::alter_configs(&b, r, &ctx).await)) }),
        RequestKind::IncrementalAlterConfigs(r) => {
            Box::pin(async move { Some(ResponseKind::IncrementalAlterConfigs(configs::incremental_alter_configs(&b, r, &ctx).await)) })
        }
        RequestKind::InitProducerId(r) => Box::pin(async move { Some(ResponseKind::InitProducerId(group::init_producer_id(&b, r, &ctx).await)) }),
        RequestKind::JoinGroup(r) => Box::pin(async move { Some(ResponseKind::JoinGroup(group::join_group(&b, r, &ctx).await)) }),
        RequestKind::SyncGroup(r) => Box::pin(async move { Some(ResponseKind::SyncGroup(group::sync_group(&b, r, &ctx).await)) }),
        RequestKind::Heartbeat(r) => ready(ResponseKind::Heartbeat(group::heartbeat(&b, r, &ctx))),
        RequestKind::LeaveGroup(r) => ready(ResponseKind::LeaveGroup(group::leave_group(&b, r, &ctx))),
        RequestKind::ListGroups(r) => ready(ResponseKind::ListGroups(group::list_groups(&b, r, &ctx))),
        RequestKind::DescribeGroups(r) => ready(ResponseKind::DescribeGroups(group::describe_groups(&b, r, &ctx))),
        RequestKind::DeleteGroups(r) => Box::pin(async move { Some(ResponseKind::DeleteGroups(group::delete_groups(&b, r, &ctx).await)) }),
        RequestKind::OffsetCommit(r) => offsets::offset_commit(&b, r, &ctx).await,
        RequestKind::OffsetFetch(r) => ready(ResponseKind::OffsetFetch(offsets::offset_fetch(&b, r, &ctx))),
        RequestKind::OffsetDelete(r) => Box::pin(async move { Some(ResponseKind::OffsetDelete(offsets::offset_delete(&b, r, &ctx).await)) }),
        RequestKind::DescribeUserScramCredentials(r) => ready(ResponseKind::DescribeUserScramCredentials(users::describe(&b, r, &ctx))),
        RequestKind::AlterUserScramCredentials(r) => Box::pin(async move { Some(ResponseKind::AlterUserScramCredentials(users::alter(&b, r, &ctx).await)) }),
        RequestKind::CreateAcls(r) => Box::pin(async move { Some(ResponseKind::CreateAcls(acls::create(&b, r, &ctx).await)) }),
        RequestKind::DescribeAcls(r) => ready(ResponseKind::DescribeAcls(acls::describe(&b, r, &ctx))),
        RequestKind::DeleteAcls(r) => Box::pin(async move { Some(ResponseKind::DeleteAcls(acls::delete(&b, r, &ctx).await)) }),
        RequestKind::AddPartitionsToTxn(r) => Box::pin(async move { Some(ResponseKind::AddPartitionsToTxn(txn::add_partitions(&b, r, &ctx).await)) }),
        RequestKind::AddOffsetsToTxn(r) => Box::pin(async move { Some(ResponseKind::AddOffsetsToTxn(txn::add_offsets(&b, r, &ctx).await)) }),
        RequestKind::TxnOffsetCommit(r) => Box::pin(async move { Some(ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(&b, r, &ctx).await)) }),
        RequestKind::EndTxn(r) => Box::pin(async move { Some(ResponseKind::EndTxn(txn::end_txn(&b, r, &ctx).await)) }),
        RequestKind::WriteTxnMarkers(r) => Box::pin(async move { Some(ResponseKind::WriteTxnMarkers(markers::write_txn_markers(&b, r, &ctx).await)) }),
        RequestKind::DescribeTransactions(r) => ready(ResponseKind::DescribeTransactions(txn_admin::describe(&b, r, &ctx))),
        RequestKind::ListTransactions(r) => ready(ResponseKind::ListTransactions(txn_admin::list(&b, r, &ctx))),
        RequestKind::DescribeProducers(r) => ready(ResponseKind::DescribeProducers(txn_admin::describe_producers(&b, r, &ctx))),
        RequestKind::AlterPartitionReassignments(r) => {
            Box::pin(async move { Some(ResponseKind::AlterPartitionReassignments(reassign::alter(&b, r, &ctx).await)) })
        }
        RequestKind::ListPartitionReassignments(r) => ready(ResponseKind::ListPartitionReassignments(reassign::list(&b, r, &ctx))),
        // The connection answers the SASL exchange itself, and refuses APIs outside the version table before dispatch.
        _ => Box::pin(async { None }),
    }
}

/// ApiVersions v0 body with UNSUPPORTED_VERSION, for a client that asked a version we lack.
pub fn meta_api_versions_unsupported() -> kafka_protocol::messages::ApiVersionsResponse {
    meta::api_versions(kafka_protocol::error::ResponseError::UnsupportedVersion.code())
}

/// A `StrBytes` from a `&str`.
pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// An error message for a response, if there is an error.
pub fn message<T>(r: &crate::error::Result<T>) -> Option<StrBytes> {
    r.as_ref().err().map(|e| sb(&e.to_string()))
}
