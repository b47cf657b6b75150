//! `floe topic create|list|describe|alter|delete`: topic administration over the Kafka protocol,
//! so it works against any node (or any Kafka broker) the way `kafka-topics.sh` does.

use anyhow::{anyhow, bail};
use clap::Subcommand;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse,
    TopicName,
};
use serde::Serialize;

use super::kafka::{check, Client, Conn};
use super::render;
use crate::handlers::sb;

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// A topic config, `key=value` (repeatable), e.g. `automq.table.topic.enable=true`.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition counts.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A topic's partitions (offsets) and the configs set on it.
    Describe {
        name: String,
        /// Every config, defaults too.
        #[arg(long)]
        all: bool,
        /// JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Change a topic's configs live.
    Alter {
        name: String,
        /// Set a config, `key=value` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Return a config to its default (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Delete a topic and its data.
    Delete { name: String },
}

/// Resource type of a topic in the config APIs.
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs' config source of a value set on the topic.
const TOPIC_CONFIG_SOURCE: i8 = 1;

/// `key=value` pairs, an error naming the first one without `=`.
pub fn pairs(configs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    configs
        .iter()
        .map(|c| c.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).ok_or_else(|| anyhow!("--config {c:?}: expected KEY=VALUE")))
        .collect()
}

pub async fn run(conn: &Conn, cmd: TopicCommand) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    match cmd {
        TopicCommand::Create { name, partitions, configs } => {
            let configs = pairs(&configs)?.into_iter().map(|(k, v)| CreatableTopicConfig::default().with_name(sb(&k)).with_value(Some(sb(&v)))).collect();
            let topic =
                CreatableTopic::default().with_name(TopicName(sb(&name))).with_num_partitions(partitions).with_replication_factor(-1).with_configs(configs);
            let req = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(conn.timeout_ms as i32);
            let resp = c.call(&req, 7).await?;
            for t in &resp.topics {
                check(t.error_code, t.error_message.as_ref(), &format!("creating {name}"))?;
            }
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicCommand::List { json } => {
            let meta = metadata(&mut c, None).await?;
            let mut rows: Vec<TopicRow> =
                meta.topics.iter().filter_map(|t| Some(TopicRow { name: t.name.as_ref()?.0.to_string(), partitions: t.partitions.len() })).collect();
            rows.sort_by(|a, b| a.name.cmp(&b.name));
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let cells: Vec<Vec<String>> = rows.iter().map(|r| vec![r.name.clone(), r.partitions.to_string()]).collect();
                print!("{}", render::table(&["TOPIC", "PARTITIONS"], &cells));
            }
        }
        TopicCommand::Describe { name, all, json } => {
            let d = describe(&mut c, &name, all).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                let parts: Vec<Vec<String>> = d
                    .partitions
                    .iter()
                    .map(|p| vec![p.partition.to_string(), p.leader.to_string(), p.start_offset.to_string(), p.end_offset.to_string()])
                    .collect();
                println!("topic {name}: {} partition(s)", d.partitions.len());
                print!("{}", render::table(&["PARTITION", "LEADER", "START OFFSET", "END OFFSET"], &parts));
                let confs: Vec<Vec<String>> = d.configs.iter().map(|c| vec![c.name.clone(), c.value.clone().unwrap_or_default(), c.source.into()]).collect();
                println!();
                print!("{}", render::table(&["CONFIG", "VALUE", "SOURCE"], &confs));
            }
        }
        TopicCommand::Alter { name, configs, delete } => {
            if configs.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --config KEY=VALUE or --delete-config KEY");
            }
            let mut alter: Vec<AlterableConfig> = pairs(&configs)?
                .into_iter()
                .map(|(k, v)| AlterableConfig::default().with_name(sb(&k)).with_config_operation(0).with_value(Some(sb(&v))))
                .collect();
            alter.extend(delete.iter().map(|k| AlterableConfig::default().with_name(sb(k)).with_config_operation(1)));
            let res = AlterConfigsResource::default().with_resource_type(TOPIC_RESOURCE).with_resource_name(sb(&name)).with_configs(alter);
            let resp = c.call(&IncrementalAlterConfigsRequest::default().with_resources(vec![res]), 1).await?;
            for r in &resp.responses {
                check(r.error_code, r.error_message.as_ref(), &format!("altering {name}"))?;
            }
            println!("altered topic {name}");
        }
        TopicCommand::Delete { name } => {
            let req = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(sb(&name))]).with_timeout_ms(conn.timeout_ms as i32);
            let resp = c.call(&req, 5).await?;
            for r in &resp.responses {
                check(r.error_code, r.error_message.as_ref(), &format!("deleting {name}"))?;
            }
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct TopicRow {
    name: String,
    partitions: usize,
}

#[derive(Serialize)]
struct PartitionRow {
    partition: i32,
    leader: i32,
    start_offset: i64,
    end_offset: i64,
}

#[derive(Serialize)]
struct ConfigRow {
    name: String,
    value: Option<String>,
    source: &'static str,
}

#[derive(Serialize)]
struct Description {
    name: String,
    partitions: Vec<PartitionRow>,
    configs: Vec<ConfigRow>,
}

/// Metadata of `topics` (all when `None`), without creating any.
pub async fn metadata(c: &mut Client, topics: Option<&[&str]>) -> anyhow::Result<MetadataResponse> {
    let topics = topics.map(|ts| ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(sb(t))))).collect());
    let req = MetadataRequest::default().with_topics(topics).with_allow_auto_topic_creation(false);
    c.call(&req, 12).await
}

/// A topic's partitions and leaders; an error when it does not exist.
pub async fn partitions(c: &mut Client, topic: &str) -> anyhow::Result<Vec<(i32, i32)>> {
    let meta = metadata(c, Some(&[topic])).await?;
    let t = meta.topics.first().ok_or_else(|| anyhow!("{topic}: no metadata"))?;
    check(t.error_code, None, topic)?;
    let mut ps: Vec<(i32, i32)> = t.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
    ps.sort();
    Ok(ps)
}

/// Offsets of `topic`'s `parts` at `timestamp` (-2 earliest, -1 latest).
pub async fn offsets(c: &mut Client, topic: &str, parts: &[i32], timestamp: i64) -> anyhow::Result<Vec<(i32, i64)>> {
    let ps = parts.iter().map(|p| ListOffsetsPartition::default().with_partition_index(*p).with_timestamp(timestamp)).collect();
    let req = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default().with_name(TopicName(sb(topic))).with_partitions(ps)]);
    let resp = c.call(&req, 7).await?;
    let mut out = Vec::new();
    for t in resp.topics {
        for p in t.partitions {
            check(p.error_code, None, &format!("offsets of {topic}/{}", p.partition_index))?;
            out.push((p.partition_index, p.offset));
        }
    }
    out.sort();
    Ok(out)
}

async fn describe(c: &mut Client, name: &str, all: bool) -> anyhow::Result<Description> {
    let parts = partitions(c, name).await?;
    let ids: Vec<i32> = parts.iter().map(|p| p.0).collect();
    let starts = offsets(c, name, &ids, -2).await?;
    let ends = offsets(c, name, &ids, -1).await?;
    let partitions = parts
        .iter()
        .map(|(p, leader)| PartitionRow {
            partition: *p,
            leader: *leader,
            start_offset: starts.iter().find(|s| s.0 == *p).map_or(-1, |s| s.1),
            end_offset: ends.iter().find(|s| s.0 == *p).map_or(-1, |s| s.1),
        })
        .collect();
    let res = DescribeConfigsResource::default().with_resource_type(TOPIC_RESOURCE).with_resource_name(sb(name)).with_configuration_keys(None);
    let resp = c.call(&DescribeConfigsRequest::default().with_resources(vec![res]), 4).await?;
    let mut configs = Vec::new();
    for r in resp.results {
        check(r.error_code, r.error_message.as_ref(), &format!("configs of {name}"))?;
        for cfg in r.configs {
            if !all && cfg.config_source != TOPIC_CONFIG_SOURCE {
                continue;
            }
            let source = match cfg.config_source {
                TOPIC_CONFIG_SOURCE => "topic",
                4 => "broker",
                5 => "default",
                _ => "other",
            };
            let value = if cfg.is_sensitive { Some("(sensitive)".into()) } else { cfg.value.map(|v| v.to_string()) };
            configs.push(ConfigRow { name: cfg.name.to_string(), value, source });
        }
    }
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Description { name: name.to_string(), partitions, configs })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_config_without_equals_is_named_in_the_error() {
        assert_eq!(super::pairs(&["a=1".into(), "b = x=y".into()]).expect("pairs"), vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]);
        let e = super::pairs(&["retention.ms".into()]).expect_err("no =");
        assert!(e.to_string().contains("retention.ms"), "{e}");
    }
}
