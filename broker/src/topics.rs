//! The topic registry: topics, their partitions' streams and configs, kept in the storage
//! engine's metadata (`topic/<name>` keys) so a fresh node recovers them from the bucket.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use floe_s3stream::Engine;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::topic_config;

const KEY_PREFIX: &str = "topic/";
/// Most partitions one topic may have.
pub const PARTITIONS_MAX: i32 = 10_000;

/// A topic as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub id: uuid::Uuid,
    /// Stream of each partition, by index.
    pub streams: Vec<u64>,
    pub configs: BTreeMap<String, String>,
}

/// A live topic.
pub struct Topic {
    pub meta: TopicMeta,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// A partition by index, or UNKNOWN_TOPIC_OR_PARTITION.
    pub fn partition(&self, index: i32) -> Result<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i).cloned())
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(format!("{}-{index}", self.meta.name)))
    }
}

/// All topics of the node.
pub struct Topics {
    engine: Engine,
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serializes topic changes (create, delete, alter).
    changes: tokio::sync::Mutex<()>,
}

/// Checks a topic name as Kafka does.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(BrokerError::InvalidTopic(name.to_string(), why.to_string()));
    if name.is_empty() || name == "." || name == ".." {
        return bad("empty, '.' or '..'");
    }
    if name.len() > 249 {
        return bad("longer than 249 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-') {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

impl Topics {
    /// Loads every topic from the engine's metadata and opens its streams.
    pub async fn load(engine: Engine) -> Result<Self> {
        let mut by_name = HashMap::new();
        for (key, value) in engine.kv_scan(KEY_PREFIX) {
            let meta: TopicMeta = serde_json::from_str(&value).map_err(|e| BrokerError::Internal(format!("topic metadata {key} is unreadable: {e}")))?;
            let topic = open(&engine, meta).await?;
            by_name.insert(topic.meta.name.clone(), Arc::new(topic));
        }
        tracing::info!(topics = by_name.len(), "topics loaded");
        Ok(Self { engine, by_name: RwLock::new(by_name), changes: Default::default() })
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.by_name.read().get(name).cloned()
    }

    /// A topic by id.
    pub fn by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        self.by_name.read().values().find(|t| t.meta.id == id).cloned()
    }

    /// Every topic, by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.by_name.read().values().cloned().collect();
        v.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        v
    }

    /// A partition, or UNKNOWN_TOPIC_OR_PARTITION.
    pub fn partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>> {
        self.get(topic).ok_or_else(|| BrokerError::UnknownTopicOrPartition(format!("{topic}-{index}")))?.partition(index)
    }

    /// Creates a topic (or only checks it, with `validate_only`).
    pub async fn create(&self, name: &str, partitions: i32, configs: BTreeMap<String, String>, validate_only: bool) -> Result<Arc<Topic>> {
        validate_name(name)?;
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(BrokerError::InvalidPartitions(format!("{partitions} partitions: 1 to {PARTITIONS_MAX} allowed")));
        }
        topic_config::validate(&configs)?;
        let _g = self.changes.lock().await;
        if self.get(name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(name.to_string()));
        }
        let meta = TopicMeta { name: name.to_string(), id: uuid::Uuid::new_v4(), streams: vec![], configs };
        if validate_only {
            return Ok(Arc::new(Topic { meta, partitions: vec![] }));
        }
        let mut meta = meta;
        for _ in 0..partitions {
            meta.streams.push(self.engine.create_stream().await?);
        }
        self.save(&meta).await?;
        let topic = Arc::new(open(&self.engine, meta).await?);
        self.by_name.write().insert(name.to_string(), topic.clone());
        tracing::info!(topic = name, partitions, "topic created");
        Ok(topic)
    }

    /// Deletes a topic and its streams.
    pub async fn delete(&self, name: &str) -> Result<TopicMeta> {
        let _g = self.changes.lock().await;
        let topic = self.get(name).ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
        self.engine.kv_put(vec![(format!("{KEY_PREFIX}{name}"), None)]).await?;
        self.by_name.write().remove(name);
        for &s in &topic.meta.streams {
            if let Err(e) = self.engine.delete_stream(s).await {
                tracing::warn!(topic = name, stream = s, error = %e, "deleting a partition stream failed; its data stays until collected");
            }
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(topic.meta.clone())
    }

    /// Raises a topic's partition count.
    pub async fn add_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<()> {
        let _g = self.changes.lock().await;
        let topic = self.get(name).ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
        let now = topic.partitions.len() as i32;
        if count <= now || count > PARTITIONS_MAX {
            return Err(BrokerError::InvalidPartitions(format!("topic {name} has {now} partitions; asked for {count}")));
        }
        if validate_only {
            return Ok(());
        }
        let mut meta = topic.meta.clone();
        for _ in now..count {
            meta.streams.push(self.engine.create_stream().await?);
        }
        self.save(&meta).await?;
        let mut partitions = topic.partitions.clone();
        for (i, &s) in meta.streams.iter().enumerate().skip(now as usize) {
            self.engine.open_stream(s, self.engine.epoch()).await?;
            partitions.push(Arc::new(Partition::new(name.to_string(), i as i32, s)));
        }
        self.by_name.write().insert(name.to_string(), Arc::new(Topic { meta, partitions }));
        Ok(())
    }

    /// Replaces a topic's configs (after checking them).
    pub async fn set_configs(&self, name: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<()> {
        topic_config::validate(&configs)?;
        let _g = self.changes.lock().await;
        let topic = self.get(name).ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let meta = TopicMeta { configs, ..topic.meta.clone() };
        self.save(&meta).await?;
        let updated = Arc::new(Topic { meta, partitions: topic.partitions.clone() });
        self.by_name.write().insert(name.to_string(), updated);
        Ok(())
    }

    async fn save(&self, meta: &TopicMeta) -> Result<()> {
        let json = serde_json::to_string(meta).map_err(|e| BrokerError::Internal(e.to_string()))?;
        self.engine.kv_put(vec![(format!("{KEY_PREFIX}{}", meta.name), Some(json))]).await?;
        Ok(())
    }
}

async fn open(engine: &Engine, meta: TopicMeta) -> Result<Topic> {
    let mut partitions = Vec::with_capacity(meta.streams.len());
    for (i, &s) in meta.streams.iter().enumerate() {
        engine.open_stream(s, engine.epoch()).await?;
        partitions.push(Arc::new(Partition::new(meta.name.clone(), i as i32, s)));
    }
    Ok(Topic { meta, partitions })
}
