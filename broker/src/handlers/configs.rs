//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs, for topics (and broker, read-only).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_request::AlterConfigsRequest;
use kafka_protocol::messages::alter_configs_response::{AlterConfigsResourceResponse, AlterConfigsResponse};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult};
use kafka_protocol::messages::incremental_alter_configs_request::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_response::{self as iac, IncrementalAlterConfigsResponse};

use super::{message, sb, RequestContext};
use crate::broker::Broker;
use crate::error::{code_of, BrokerError, Result};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::topic_config;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn broker_configs(b: &Broker) -> Vec<(String, String)> {
    let s = &b.settings;
    vec![
        ("auto.create.topics.enable".into(), s.auto_create_topics_enable.to_string()),
        ("num.partitions".into(), s.num_partitions.to_string()),
        ("message.max.bytes".into(), s.message_max_bytes.0.to_string()),
        ("socket.request.max.bytes".into(), s.socket_request_max_bytes.0.to_string()),
        ("broker.id".into(), s.node_id.to_string()),
        ("node.id".into(), s.node_id.to_string()),
        (
            "listeners".into(),
            crate::security::listeners::specs(s)
                .map(|l| l.iter().map(|l| format!("{}://{}", l.name, l.bind)).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
        ),
        ("advertised.listeners".into(), b.listeners().iter().map(|l| l.advertised_url()).collect::<Vec<_>>().join(",")),
        ("sasl.enabled.mechanisms".into(), s.sasl_enabled_mechanisms.join(",")),
        ("default.replication.factor".into(), "1".into()),
        ("offsets.topic.replication.factor".into(), "1".into()),
        ("group.initial.rebalance.delay.ms".into(), s.group_initial_rebalance_delay_ms.0.to_string()),
        ("floe.wal".into(), format!("{:?}", s.storage.wal).to_lowercase()),
    ]
}

/// DescribeConfigs.
pub fn describe_configs(b: &Arc<Broker>, req: DescribeConfigsRequest, ctx: &RequestContext) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let wanted = |k: &str| res.configuration_keys.as_ref().is_none_or(|ks| ks.iter().any(|x| x.as_str() == k));
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let entry = |k: &str, v: Option<String>, source: i8, read_only: bool, doc: &str| {
            let mut c = DescribeConfigsResourceResult::default();
            c.name = sb(k);
            c.value = v.map(|v| sb(&v));
            c.read_only = read_only;
            c.config_source = source;
            if ctx.version >= 3 {
                c.config_type = topic_config::type_code(k);
                if req.include_documentation {
                    c.documentation = Some(sb(doc));
                }
            }
            c
        };
        let denied = match res.resource_type {
            TOPIC if !ctx.allowed(b, Operation::DescribeConfigs, ResourceType::Topic, &res.resource_name) => {
                Some(BrokerError::TopicAuthorizationFailed(res.resource_name.to_string()))
            }
            BROKER if !ctx.allowed(b, Operation::DescribeConfigs, ResourceType::Cluster, CLUSTER_NAME) => Some(BrokerError::ClusterAuthorizationFailed),
            _ => None,
        };
        if let Some(e) = denied {
            out.error_code = e.code();
            out.error_message = Some(sb(&e.to_string()));
            resp.results.push(out);
            continue;
        }
        match res.resource_type {
            TOPIC => match b.topics.get(res.resource_name.as_str()) {
                Some(t) => {
                    for (k, d, doc) in topic_config::defaults() {
                        if !wanted(k) {
                            continue;
                        }
                        let (v, source) = match t.meta.configs.get(k) {
                            Some(v) => (v.clone(), SOURCE_TOPIC),
                            None if k == "max.message.bytes" => (b.settings.message_max_bytes.0.to_string(), SOURCE_STATIC_BROKER),
                            // Unset keys without a default are left out (Kafka sends null only for secrets).
                            None => match d {
                                Some(d) => (d.to_string(), SOURCE_DEFAULT),
                                None => continue,
                            },
                        };
                        out.configs.push(entry(k, Some(v), source, false, doc));
                    }
                }
                None => {
                    let e = BrokerError::UnknownTopicOrPartition(res.resource_name.to_string());
                    out.error_code = e.code();
                    out.error_message = Some(sb(&e.to_string()));
                }
            },
            BROKER => {
                for (k, v) in broker_configs(b) {
                    if wanted(&k) {
                        let mut e = entry(&k, Some(v.clone()), SOURCE_STATIC_BROKER, true, "Set in floe.toml or FLOE_* variables.");
                        if ctx.version >= 3 {
                            e.config_type = match v.as_str() {
                                "true" | "false" => 1,
                                _ if v.parse::<i64>().is_ok() => 5,
                                _ => 2,
                            };
                        }
                        out.configs.push(e);
                    }
                }
            }
            other => {
                let e = BrokerError::InvalidRequest(format!("resource type {other} is not supported"));
                out.error_code = e.code();
                out.error_message = Some(sb(&e.to_string()));
            }
        }
        resp.results.push(out);
    }
    resp
}

fn not_a_topic(kind: i8) -> BrokerError {
    if kind == BROKER {
        BrokerError::InvalidConfig { key: "broker".into(), reason: "broker settings are static: set them in floe.toml or FLOE_* variables".into() }
    } else {
        BrokerError::InvalidRequest(format!("resource type {kind} cannot be altered"))
    }
}

/// AlterConfigs: replaces a topic's whole config.
pub async fn alter_configs(b: &Arc<Broker>, req: AlterConfigsRequest, ctx: &RequestContext) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    for res in req.resources {
        let r: Result<()> = if res.resource_type != TOPIC {
            Err(not_a_topic(res.resource_type))
        } else if !ctx.allowed(b, Operation::AlterConfigs, ResourceType::Topic, &res.resource_name) {
            Err(BrokerError::TopicAuthorizationFailed(res.resource_name.to_string()))
        } else {
            let configs: BTreeMap<String, String> = res.configs.iter().filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string()))).collect();
            b.topics.set_configs(res.resource_name.as_str(), configs, req.validate_only).await
        };
        let mut out = AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        out.error_code = code_of(&r);
        out.error_message = message(&r);
        resp.responses.push(out);
    }
    resp
}

/// IncrementalAlterConfigs: SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) on a topic's config.
pub async fn incremental_alter_configs(b: &Arc<Broker>, req: IncrementalAlterConfigsRequest, ctx: &RequestContext) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let r: Result<()> = async {
            if res.resource_type != TOPIC {
                return Err(not_a_topic(res.resource_type));
            }
            if !ctx.allowed(b, Operation::AlterConfigs, ResourceType::Topic, &res.resource_name) {
                return Err(BrokerError::TopicAuthorizationFailed(res.resource_name.to_string()));
            }
            let name = res.resource_name.as_str();
            let topic = b.topics.get(name).ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
            let mut configs = topic.meta.configs.clone();
            for c in &res.configs {
                let key = c.name.to_string();
                let value = c.value.as_ref().map(|v| v.to_string());
                match (c.config_operation, value) {
                    (0, Some(v)) => {
                        configs.insert(key, v);
                    }
                    (1, _) => {
                        configs.remove(&key);
                    }
                    (2, Some(v)) => {
                        let cur = configs.get(&key).cloned().unwrap_or_default();
                        configs.insert(key, if cur.is_empty() { v } else { format!("{cur},{v}") });
                    }
                    (3, Some(v)) => {
                        let cur = configs.get(&key).cloned().unwrap_or_default();
                        let kept: Vec<&str> = cur.split(',').filter(|x| !x.is_empty() && *x != v).collect();
                        configs.insert(key, kept.join(","));
                    }
                    (op, _) => return Err(BrokerError::InvalidConfig { key, reason: format!("operation {op} needs a value or is unknown") }),
                }
            }
            b.topics.set_configs(name, configs, req.validate_only).await
        }
        .await;
        let mut out = iac::AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        out.error_code = code_of(&r);
        out.error_message = message(&r);
        resp.responses.push(out);
    }
    resp
}
