//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups, DescribeGroups, DeleteGroups, InitProducerId.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::{DeletableGroupResult, DeleteGroupsResponse};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::{DescribeGroupsResponse, DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::join_group_request::JoinGroupRequest;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_request::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::ProducerId;

use super::{sb, RequestContext};
use crate::broker::Broker;
use crate::error::{code_of, BrokerError};
use crate::groups::{GroupState, JoinRequest};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};

/// JoinGroup.
pub async fn join_group(b: &Arc<Broker>, req: JoinGroupRequest, ctx: &RequestContext) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default();
    let jr = JoinRequest {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if ctx.version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        require_known_member_id: ctx.version >= 4,
    };
    if !ctx.allowed(b, Operation::Read, ResourceType::Group, &req.group_id) {
        resp.error_code = BrokerError::GroupAuthorizationFailed(req.group_id.to_string()).code();
        resp.generation_id = -1;
        return resp;
    }
    if let Err(e) = b.state.coordinates(&req.group_id) {
        resp.error_code = e.code();
        resp.generation_id = -1;
        return resp;
    }
    match b.groups.join(jr).await {
        Ok(o) => {
            resp.generation_id = o.generation;
            if ctx.version >= 7 {
                resp.protocol_type = Some(sb(&o.protocol_type));
            }
            resp.protocol_name = Some(sb(&o.protocol));
            resp.leader = sb(&o.leader);
            resp.member_id = sb(&o.member_id);
            resp.members = o
                .members
                .into_iter()
                .map(|(id, instance, meta)| {
                    let mut m = JoinGroupResponseMember::default();
                    m.member_id = sb(&id);
                    if ctx.version >= 5 {
                        m.group_instance_id = instance.map(|i| sb(&i));
                    }
                    m.metadata = meta;
                    m
                })
                .collect();
        }
        Err(e) => {
            resp.error_code = e.code();
            resp.generation_id = -1;
            if let BrokerError::MemberIdRequired(id) = &e {
                resp.member_id = sb(id);
            }
        }
    }
    resp
}

/// SyncGroup.
pub async fn sync_group(b: &Arc<Broker>, req: SyncGroupRequest, ctx: &RequestContext) -> SyncGroupResponse {
    let version = ctx.version;
    let mut resp = SyncGroupResponse::default();
    if !ctx.allowed(b, Operation::Read, ResourceType::Group, &req.group_id) {
        resp.error_code = BrokerError::GroupAuthorizationFailed(req.group_id.to_string()).code();
        return resp;
    }
    if let Err(e) = b.state.coordinates(&req.group_id) {
        resp.error_code = e.code();
        return resp;
    }
    let assignments = req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    match b.groups.sync(req.group_id.0.as_str(), req.member_id.as_str(), instance.as_deref(), req.generation_id, assignments).await {
        Ok((ptype, proto, assignment)) => {
            if version >= 5 {
                resp.protocol_type = Some(sb(&ptype));
                resp.protocol_name = Some(sb(&proto));
            }
            resp.assignment = assignment;
        }
        Err(e) => resp.error_code = e.code(),
    }
    resp
}

/// Heartbeat.
pub fn heartbeat(b: &Arc<Broker>, req: HeartbeatRequest, ctx: &RequestContext) -> HeartbeatResponse {
    let mut resp = HeartbeatResponse::default();
    if !ctx.allowed(b, Operation::Read, ResourceType::Group, &req.group_id) {
        resp.error_code = BrokerError::GroupAuthorizationFailed(req.group_id.to_string()).code();
        return resp;
    }
    if let Err(e) = b.state.coordinates(&req.group_id) {
        resp.error_code = e.code();
        return resp;
    }
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    resp.error_code = code_of(&b.groups.heartbeat(req.group_id.0.as_str(), req.member_id.as_str(), instance.as_deref(), req.generation_id));
    resp
}

/// LeaveGroup (one member before v3, a batch after).
pub fn leave_group(b: &Arc<Broker>, req: LeaveGroupRequest, ctx: &RequestContext) -> LeaveGroupResponse {
    let mut resp = LeaveGroupResponse::default();
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string()))).collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    if !ctx.allowed(b, Operation::Read, ResourceType::Group, &req.group_id) {
        resp.error_code = BrokerError::GroupAuthorizationFailed(req.group_id.to_string()).code();
        return resp;
    }
    if let Err(e) = b.state.coordinates(&req.group_id) {
        resp.error_code = e.code();
        return resp;
    }
    match b.groups.leave(req.group_id.0.as_str(), members) {
        Ok(results) => {
            if ctx.version < 3 {
                resp.error_code = results.first().map_or(0, |(_, _, r)| code_of(r));
                return resp;
            }
            resp.members = results
                .into_iter()
                .map(|(id, instance, r)| {
                    let mut m = MemberResponse::default();
                    m.member_id = sb(&id);
                    m.group_instance_id = instance.map(|i| sb(&i));
                    m.error_code = code_of(&r);
                    m
                })
                .collect();
        }
        Err(e) => resp.error_code = e.code(),
    }
    resp
}

/// ListGroups: groups with members, and groups known only by their committed offsets; with
/// the authorizer on, only those the sender may Describe (all of them with Describe on the cluster).
pub fn list_groups(b: &Arc<Broker>, req: ListGroupsRequest, ctx: &RequestContext) -> ListGroupsResponse {
    let version = ctx.version;
    let all = ctx.may(b, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME);
    let mut resp = ListGroupsResponse::default();
    let mut groups: Vec<(String, String, GroupState)> = b.groups.list();
    for g in b.state.groups_with_offsets() {
        if !groups.iter().any(|(x, _, _)| *x == g) {
            groups.push((g, "consumer".into(), GroupState::Empty));
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, ptype, state) in groups {
        if !req.states_filter.is_empty() && !req.states_filter.iter().any(|s| s.as_str().eq_ignore_ascii_case(state.name())) {
            continue;
        }
        if !req.types_filter.is_empty() && !req.types_filter.iter().any(|s| s.as_str().eq_ignore_ascii_case("classic")) {
            continue;
        }
        if !all && !ctx.may(b, Operation::Describe, ResourceType::Group, &id) {
            continue;
        }
        let mut g = ListedGroup::default();
        g.group_id = kafka_protocol::messages::GroupId(sb(&id));
        g.protocol_type = sb(&ptype);
        if version >= 4 {
            g.group_state = sb(state.name());
        }
        if version >= 5 {
            g.group_type = sb("classic");
        }
        resp.groups.push(g);
    }
    resp
}

/// DescribeGroups.
pub fn describe_groups(b: &Arc<Broker>, req: DescribeGroupsRequest, ctx: &RequestContext) -> DescribeGroupsResponse {
    let version = ctx.version;
    let mut resp = DescribeGroupsResponse::default();
    for gid in req.groups {
        let mut d = DescribedGroup::default();
        d.group_id = gid.clone();
        if !ctx.allowed(b, Operation::Describe, ResourceType::Group, &gid) {
            d.error_code = BrokerError::GroupAuthorizationFailed(gid.to_string()).code();
            resp.groups.push(d);
            continue;
        }
        if let Err(e) = b.state.coordinates(&gid) {
            d.error_code = e.code();
            resp.groups.push(d);
            continue;
        }
        match b.groups.describe(gid.0.as_str()) {
            Some(v) => {
                d.group_state = sb(v.state.name());
                d.protocol_type = sb(&v.protocol_type);
                d.protocol_data = sb(&v.protocol);
                d.members = v
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut x = DescribedGroupMember::default();
                        x.member_id = sb(&m.member_id);
                        if version >= 4 {
                            x.group_instance_id = m.instance_id.map(|i| sb(&i));
                        }
                        x.client_id = sb(&m.client_id);
                        x.client_host = sb(&m.client_host);
                        x.member_metadata = m.metadata;
                        x.member_assignment = m.assignment;
                        x
                    })
                    .collect();
            }
            None if !b.state.group_offsets(gid.0.as_str()).is_empty() => {
                d.group_state = sb("Empty");
                d.protocol_type = sb("consumer");
            }
            None => d.group_state = sb("Dead"),
        }
        resp.groups.push(d);
    }
    resp
}

/// DeleteGroups: empty groups only; their committed offsets go too.
pub async fn delete_groups(b: &Arc<Broker>, req: DeleteGroupsRequest, ctx: &RequestContext) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for gid in req.groups_names {
        let name = gid.0.to_string();
        let r: crate::error::Result<()> = async {
            if !ctx.allowed(b, Operation::Delete, ResourceType::Group, &name) {
                return Err(BrokerError::GroupAuthorizationFailed(name.clone()));
            }
            b.state.coordinates(&name)?;
            let offsets = b.state.group_offsets(&name);
            if b.groups.has_members(&name) {
                return Err(BrokerError::NonEmptyGroup(name.clone()));
            }
            if offsets.is_empty() && b.groups.describe(&name).is_none() {
                return Err(BrokerError::GroupIdNotFound(name.clone()));
            }
            b.groups.delete(&name)?;
            if !offsets.is_empty() {
                b.state.commit(&name, offsets.into_iter().map(|(t, p, _)| (t, p, None)).collect()).await?;
            }
            Ok(())
        }
        .await;
        let mut out = DeletableGroupResult::default();
        out.group_id = gid;
        out.error_code = code_of(&r);
        resp.results.push(out);
    }
    resp
}

/// InitProducerId: a new idempotent producer id, or the next epoch of a known one.
pub async fn init_producer_id(b: &Arc<Broker>, req: InitProducerIdRequest, ctx: &RequestContext) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    // IdempotentWrite on the cluster, or Write on any topic (KIP-679).
    let idempotent = ctx.may(b, Operation::IdempotentWrite, ResourceType::Cluster, CLUSTER_NAME)
        || b.authorizer.permits_any(&ctx.principal, ctx.peer.ip(), Operation::Write, ResourceType::Topic);
    if req.transactional_id.is_none() && !idempotent {
        b.authorizer.authorize(&ctx.principal, ctx.peer.ip(), Operation::IdempotentWrite, ResourceType::Cluster, CLUSTER_NAME);
        resp.error_code = BrokerError::ClusterAuthorizationFailed.code();
        resp.producer_id = ProducerId(-1);
        resp.producer_epoch = -1;
        return resp;
    }
    if let Some(id) = &req.transactional_id {
        let r = match ctx.allowed(b, Operation::Write, ResourceType::TransactionalId, id) {
            true => {
                let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
                b.txn.init_producer_id(b, id, req.transaction_timeout_ms, expected).await
            }
            false => Err(BrokerError::TransactionalIdAuthorizationFailed(id.to_string())),
        };
        match r {
            Ok((pid, epoch)) => {
                resp.producer_id = ProducerId(pid);
                resp.producer_epoch = epoch;
            }
            Err(e) => {
                tracing::debug!(transactional_id = %id.0, error = %e, "InitProducerId refused");
                // Clients before v4 know INVALID_PRODUCER_EPOCH, not PRODUCER_FENCED.
                resp.error_code = match (&e, ctx.version) {
                    (BrokerError::ProducerFenced { .. }, v) if v < 4 => kafka_protocol::error::ResponseError::InvalidProducerEpoch.code(),
                    _ => e.code(),
                };
                resp.producer_id = ProducerId(-1);
                resp.producer_epoch = -1;
            }
        }
        return resp;
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX {
        resp.producer_id = req.producer_id;
        resp.producer_epoch = req.producer_epoch + 1;
        return resp;
    }
    match b.state.next_producer_id().await {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            resp.error_code = e.code();
            resp.producer_id = ProducerId(-1);
            resp.producer_epoch = -1;
        }
    }
    resp
}
