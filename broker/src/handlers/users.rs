//! DescribeUserScramCredentials and AlterUserScramCredentials: SCRAM users over the Kafka protocol (as `kafka-configs --alter --add-config 'SCRAM-SHA-256=[…]'` sends them).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::{message, sb, RequestContext};
use crate::broker::Broker;
use crate::error::{code_of, BrokerError, Result};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::security::users::check_name;

fn describe_result(user: &str, r: Result<Vec<(ScramMechanism, u32)>>) -> DescribeUserScramCredentialsResult {
    let mut out = DescribeUserScramCredentialsResult::default();
    out.user = sb(user);
    out.error_code = code_of(&r);
    out.error_message = message(&r);
    out.credential_infos = r
        .unwrap_or_default()
        .into_iter()
        .map(|(m, i)| {
            let mut c = CredentialInfo::default();
            c.mechanism = m.kafka_code();
            c.iterations = i as i32;
            c
        })
        .collect();
    out
}

/// DescribeUserScramCredentials: every user, or those asked (each unknown one RESOURCE_NOT_FOUND).
pub fn describe(b: &Arc<Broker>, req: DescribeUserScramCredentialsRequest, ctx: &RequestContext) -> DescribeUserScramCredentialsResponse {
    let mut r = DescribeUserScramCredentialsResponse::default();
    if !ctx.allowed(b, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        let e = BrokerError::ClusterAuthorizationFailed;
        r.error_code = e.code();
        r.error_message = Some(sb(&e.to_string()));
        return r;
    }
    let all = b.users.list();
    r.results = match req.users {
        None => all.into_iter().map(|(u, c)| describe_result(&u, Ok(c))).collect(),
        Some(asked) => {
            let mut seen = BTreeMap::new();
            for u in &asked {
                *seen.entry(u.name.to_string()).or_insert(0) += 1;
            }
            seen.into_iter()
                .map(|(u, n)| {
                    let found = match all.get(&u) {
                        _ if n > 1 => Err(BrokerError::DuplicateResource(format!("user {u:?}"))),
                        Some(c) => Ok(c.clone()),
                        None => Err(BrokerError::ResourceNotFound(format!("user {u:?} has no SCRAM credential"))),
                    };
                    describe_result(&u, found)
                })
                .collect()
        }
    };
    r
}

/// One user's part of an alter request.
#[derive(Default)]
struct Change {
    deletions: Vec<ScramMechanism>,
    upserts: Vec<(ScramMechanism, ScramCredential)>,
    /// The first problem found, if any.
    refused: Option<BrokerError>,
    ops: usize,
}

fn mechanism(code: i8) -> Result<ScramMechanism> {
    ScramMechanism::from_kafka(code).ok_or_else(|| BrokerError::UnsupportedSaslMechanism(format!("mechanism {code}")))
}

/// AlterUserScramCredentials: each user's deletions and upserts apply together or not at all; a
/// user named twice in one request is refused (DUPLICATE_RESOURCE), as Kafka does.
pub async fn alter(b: &Arc<Broker>, req: AlterUserScramCredentialsRequest, ctx: &RequestContext) -> AlterUserScramCredentialsResponse {
    let mut changes: BTreeMap<String, Change> = BTreeMap::new();
    for d in req.deletions {
        let c = changes.entry(d.name.to_string()).or_default();
        c.ops += 1;
        match mechanism(d.mechanism) {
            Ok(m) => c.deletions.push(m),
            Err(e) => c.refused = c.refused.take().or(Some(e)),
        }
    }
    for u in req.upsertions {
        let c = changes.entry(u.name.to_string()).or_default();
        c.ops += 1;
        let cred = mechanism(u.mechanism).and_then(|m| {
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err(BrokerError::UnacceptableCredential("an empty salt or salted password".into()));
            }
            let iterations = u32::try_from(u.iterations).map_err(|_| BrokerError::UnacceptableCredential(format!("{} iterations", u.iterations)))?;
            Ok((m, m.credential(&u.salted_password, &u.salt, iterations)))
        });
        match cred {
            Ok(x) => c.upserts.push(x),
            Err(e) => c.refused = c.refused.take().or(Some(e)),
        }
    }
    let mut r = AlterUserScramCredentialsResponse::default();
    let allowed = ctx.allowed(b, Operation::Alter, ResourceType::Cluster, CLUSTER_NAME);
    for (user, c) in changes {
        let outcome = match c.refused {
            _ if !allowed => Err(BrokerError::ClusterAuthorizationFailed),
            _ if c.ops > 1 => Err(BrokerError::DuplicateResource(format!("user {user:?}"))),
            Some(e) => Err(e),
            None => match check_name(&user) {
                Err(e) => Err(e),
                Ok(()) => {
                    let deletions: Vec<_> = c.deletions.into_iter().map(|m| (user.clone(), m)).collect();
                    let upserts: Vec<_> = c.upserts.into_iter().map(|(m, cred)| (user.clone(), m, cred)).collect();
                    b.users.alter(&deletions, upserts).await
                }
            },
        };
        match &outcome {
            Ok(()) => tracing::info!(user = %user, by = %ctx.principal, "SCRAM credentials altered"),
            Err(e) => tracing::info!(user = %user, by = %ctx.principal, error = %e, "SCRAM credentials not altered"),
        }
        let mut res = AlterUserScramCredentialsResult::default();
        res.user = sb(&user);
        res.error_code = code_of(&outcome);
        res.error_message = message(&outcome);
        r.results.push(res);
    }
    r
}
