//! CreateTopics, DeleteTopics, CreatePartitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsRequest;
use kafka_protocol::messages::create_partitions_response::{CreatePartitionsResponse, CreatePartitionsTopicResult};
use kafka_protocol::messages::create_topics_request::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{DeletableTopicResult, DeleteTopicsResponse};
use kafka_protocol::messages::TopicName;

use super::{message, sb, RequestContext};
use crate::broker::Broker;
use crate::error::{code_of, BrokerError, Result};
use crate::security::acl::{Operation, ResourceType};
use crate::topic_config;

/// The topic config that turns a topic into a Table Topic.
pub const TABLE_TOPIC_KEY: &str = "automq.table.topic.enable";

/// CreateTopics.
pub async fn create_topics(b: &Arc<Broker>, req: CreateTopicsRequest, ctx: &RequestContext) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let partitions = if t.num_partitions == -1 { b.settings.num_partitions } else { t.num_partitions };
        let r: Result<_> = async {
            if !super::may_create_topic(b, ctx, &name) {
                return Err(BrokerError::TopicAuthorizationFailed(name.clone()));
            }
            let table_topic = t.configs.iter().any(|c| c.name.as_str() == TABLE_TOPIC_KEY && c.value.as_ref().is_some_and(|v| v.eq_ignore_ascii_case("true")));
            if table_topic && !ctx.allowed(b, Operation::AlterConfigs, ResourceType::Topic, &name) {
                return Err(BrokerError::TopicAuthorizationFailed(format!("{name} (a Table Topic needs AlterConfigs on it)")));
            }
            if !matches!(t.replication_factor, -1 | 1) {
                return Err(BrokerError::InvalidReplicationFactor(t.replication_factor));
            }
            let node = b.settings.node_id;
            if t.assignments.iter().any(|a| a.broker_ids.iter().any(|id| id.0 != node)) {
                return Err(BrokerError::InvalidRequest(format!("replica assignment names brokers other than {node}")));
            }
            let partitions = if t.assignments.is_empty() { partitions } else { t.assignments.len() as i32 };
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                if let Some(v) = &c.value {
                    configs.insert(c.name.to_string(), v.to_string());
                }
            }
            let topic = b.topics.create(&name, partitions, configs, req.validate_only).await?;
            Ok((topic.meta.id, partitions, topic.meta.configs.clone()))
        }
        .await;
        let mut tr = CreatableTopicResult::default();
        tr.name = TopicName(sb(&name));
        tr.error_code = code_of(&r);
        tr.error_message = message(&r);
        match r {
            Ok((id, n, configs)) => {
                if ctx.version >= 7 {
                    tr.topic_id = id;
                }
                if ctx.version >= 5 {
                    tr.num_partitions = n;
                    tr.replication_factor = 1;
                    tr.configs = Some(
                        topic_config::defaults()
                            .filter_map(|(k, d, _)| {
                                let value = configs.get(k).cloned().or(d.map(str::to_string))?;
                                let mut c = CreatableTopicConfigs::default();
                                c.name = sb(k);
                                c.value = Some(sb(&value));
                                c.config_source = if configs.contains_key(k) { 1 } else { 5 };
                                Some(c)
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => {
                tracing::info!(topic = %name, error = %e, "topic not created");
            }
        }
        resp.topics.push(tr);
    }
    resp
}

/// DeleteTopics (by name, or by id from v6).
pub async fn delete_topics(b: &Arc<Broker>, req: DeleteTopicsRequest, ctx: &RequestContext) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics.into_iter().map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        req.topic_names.into_iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    for (name, id) in targets {
        let name = name.or_else(|| b.topics.by_id(id).map(|t| t.meta.name.clone()));
        let r = match &name {
            Some(n) if !ctx.allowed(b, Operation::Delete, ResourceType::Topic, n) => Err(BrokerError::TopicAuthorizationFailed(n.clone())),
            Some(n) => b.topics.delete(n).await.map(|m| m.id),
            None => Err(BrokerError::UnknownTopicId(id)),
        };
        let mut tr = DeletableTopicResult::default();
        tr.name = name.map(|n| TopicName(sb(&n)));
        if ctx.version >= 6 {
            tr.topic_id = r.as_ref().copied().unwrap_or(id);
        }
        tr.error_code = code_of(&r);
        if ctx.version >= 5 {
            tr.error_message = message(&r);
        }
        resp.responses.push(tr);
    }
    resp
}

/// CreatePartitions.
pub async fn create_partitions(b: &Arc<Broker>, req: CreatePartitionsRequest, ctx: &RequestContext) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    for t in req.topics {
        let r = match ctx.allowed(b, Operation::Alter, ResourceType::Topic, &t.name) {
            true => b.topics.add_partitions(t.name.0.as_str(), t.count, req.validate_only).await,
            false => Err(BrokerError::TopicAuthorizationFailed(t.name.to_string())),
        };
        let mut tr = CreatePartitionsTopicResult::default();
        tr.name = t.name;
        tr.error_code = code_of(&r);
        tr.error_message = message(&r);
        resp.results.push(tr);
    }
    resp
}
