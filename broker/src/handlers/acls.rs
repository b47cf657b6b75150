//! CreateAcls, DescribeAcls and DeleteAcls (Alter, Describe and Alter on the cluster), as `kafka-acls.sh` and every admin client send them.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest, DescribeAclsResponse};

use super::{message, sb, RequestContext};
use crate::broker::Broker;
use crate::error::{code_of, BrokerError, Result};
use crate::security::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME};

fn binding(c: &kafka_protocol::messages::create_acls_request::AclCreation) -> Result<AclBinding> {
    let bad = |what: String| BrokerError::InvalidRequest(format!("unknown {what}"));
    Ok(AclBinding {
        resource_type: ResourceType::from_code(c.resource_type).ok_or_else(|| bad(format!("resource type {}", c.resource_type)))?,
        pattern_type: match c.resource_pattern_type {
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            p => return Err(bad(format!("pattern type {p} for a new ACL"))),
        },
        resource_name: c.resource_name.to_string(),
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation).ok_or_else(|| bad(format!("operation {}", c.operation)))?,
        permission: match c.permission_type {
            2 => Permission::Deny,
            3 => Permission::Allow,
            p => return Err(bad(format!("permission type {p}"))),
        },
    })
}

/// Whether the caller may change (`Alter`) or read (`Describe`) ACLs.
fn cluster_allowed(b: &Broker, ctx: &RequestContext, op: Operation) -> Result<()> {
    if b.authorizer.enabled() && !ctx.allowed(b, op, ResourceType::Cluster, CLUSTER_NAME) {
        return Err(BrokerError::ClusterAuthorizationFailed);
    }
    Ok(())
}

/// CreateAcls: each binding checked and stored; one result per creation.
pub async fn create(b: &Arc<Broker>, req: CreateAclsRequest, ctx: &RequestContext) -> CreateAclsResponse {
    let mut r = CreateAclsResponse::default();
    let outcomes: Vec<Result<()>> = match cluster_allowed(b, ctx, Operation::Alter) {
        Err(_) => req.creations.iter().map(|_| Err(BrokerError::ClusterAuthorizationFailed)).collect(),
        Ok(()) => {
            let parsed: Vec<Result<AclBinding>> = req.creations.iter().map(binding).collect();
            let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
            let mut stored = b.authorizer.create(valid).await.into_iter();
            parsed.into_iter().map(|p| p.and_then(|_| stored.next().unwrap_or(Err(BrokerError::Internal("a lost ACL result".into()))))).collect()
        }
    };
    for (c, o) in req.creations.iter().zip(&outcomes) {
        match o {
            Ok(()) => tracing::info!(by = %ctx.principal, principal = %c.principal.as_str(), resource = %c.resource_name.as_str(), "ACL created"),
            Err(e) => tracing::info!(by = %ctx.principal, error = %e, "ACL not created"),
        }
    }
    r.results = outcomes
        .iter()
        .map(|o| {
            let mut x = AclCreationResult::default();
            x.error_code = code_of(o);
            x.error_message = message(o);
            x
        })
        .collect();
    r
}

fn filter_of(
    t: i8,
    name: Option<&kafka_protocol::protocol::StrBytes>,
    p: i8,
    who: Option<&kafka_protocol::protocol::StrBytes>,
    host: Option<&kafka_protocol::protocol::StrBytes>,
    op: i8,
    perm: i8,
) -> Result<AclFilter> {
    AclFilter::from_codes(t, name.map(|s| s.as_str()), p, who.map(|s| s.as_str()), host.map(|s| s.as_str()), op, perm)
        .map_err(|e| BrokerError::InvalidRequest(format!("unknown {e} in an ACL filter")))
}

/// DescribeAcls: the bindings that pass the filter, grouped by resource pattern.
pub fn describe(b: &Arc<Broker>, req: DescribeAclsRequest, ctx: &RequestContext) -> DescribeAclsResponse {
    let mut r = DescribeAclsResponse::default();
    let found = match (b.authorizer.enabled(), cluster_allowed(b, ctx, Operation::Describe)) {
        (false, _) => Err(BrokerError::SecurityDisabled),
        (true, Err(e)) => Err(e),
        (true, Ok(())) => filter_of(
            req.resource_type_filter,
            req.resource_name_filter.as_ref(),
            req.pattern_type_filter,
            req.principal_filter.as_ref(),
            req.host_filter.as_ref(),
            req.operation,
            req.permission_type,
        )
        .map(|f| b.authorizer.describe(&f)),
    };
    r.error_code = code_of(&found);
    r.error_message = message(&found);
    let mut grouped: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> = BTreeMap::new();
    for a in found.unwrap_or_default() {
        let mut d = AclDescription::default();
        d.principal = sb(&a.principal);
        d.host = sb(&a.host);
        d.operation = a.operation.code();
        d.permission_type = a.permission.code();
        grouped.entry((a.resource_type, a.resource_name, a.pattern_type)).or_default().push(d);
    }
    r.resources = grouped
        .into_iter()
        .map(|((t, name, p), acls)| {
            let mut res = DescribeAclsResource::default();
            res.resource_type = t.code();
            res.resource_name = sb(&name);
            res.pattern_type = p.code();
            res.acls = acls;
            res
        })
        .collect();
    r
}

/// DeleteAcls: per filter, the bindings it matched and removed.
pub async fn delete(b: &Arc<Broker>, req: DeleteAclsRequest, ctx: &RequestContext) -> DeleteAclsResponse {
    let mut r = DeleteAclsResponse::default();
    let filters: Vec<Result<AclFilter>> = req
        .filters
        .iter()
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = filters.iter().filter_map(|f| f.as_ref().ok().cloned()).collect();
    let deleted = match cluster_allowed(b, ctx, Operation::Alter) {
        Err(e) => Err(e),
        Ok(()) => b.authorizer.delete(&valid).await,
    };
    let mut per_valid = match &deleted {
        Ok(d) => d.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    for f in filters {
        let mut res = DeleteAclsFilterResult::default();
        let outcome: Result<Vec<AclBinding>> = match (&deleted, f) {
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(match e {
                BrokerError::SecurityDisabled => BrokerError::SecurityDisabled,
                BrokerError::ClusterAuthorizationFailed => BrokerError::ClusterAuthorizationFailed,
                other => BrokerError::Internal(other.to_string()),
            }),
            (Ok(_), Ok(_)) => Ok(per_valid.next().unwrap_or_default()),
        };
        res.error_code = code_of(&outcome);
        res.error_message = message(&outcome);
        res.matching_acls = outcome
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                let mut m = DeleteAclsMatchingAcl::default();
                m.resource_type = a.resource_type.code();
                m.resource_name = sb(&a.resource_name);
                m.pattern_type = a.pattern_type.code();
                m.principal = sb(&a.principal);
                m.host = sb(&a.host);
                m.operation = a.operation.code();
                m.permission_type = a.permission.code();
                m
            })
            .collect();
        r.filter_results.push(res);
    }
    if let Ok(d) = &deleted {
        tracing::info!(by = %ctx.principal, removed = d.iter().map(Vec::len).sum::<usize>(), "ACLs deleted");
    }
    r
}
