//! The topic registry: topics, their partitions' streams and configs, kept in the storage
//! engine's metadata (`topic/<name>` keys) so a fresh node recovers them from the bucket.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use floe_s3stream::Engine;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::topic_config;

const KEY_PREFIX: &str = "topic/";
/// Most partitions one topic may have.
pub const PARTITIONS_MAX: i32 = 10_000;
/// Cluster mode: the internal topic whose partitions hold groups' committed offsets (one
/// coordinator per partition, moved like any partition).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// In a cluster, the transaction coordinators' partitions (each transactional id's state).
pub const TXN_TOPIC: &str = "__transaction_state";

/// Whether a topic is Floe's own (not produced to or deleted by clients).
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TXN_TOPIC
}

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
    /// A partition by index, or UNKNOWN_TOPIC_OR_PARTITION; NOT_LEADER_OR_FOLLOWER when another
    /// broker serves it.
    pub fn partition(&self, index: i32) -> Result<Arc<Partition>> {
        let p = usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i).cloned())
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(format!("{}-{index}", self.meta.name)))?;
        match p.local {
            true => Ok(p),
            false => Err(BrokerError::NotLeaderOrFollower { topic: p.topic.clone(), partition: p.index, leader: p.leader_id, leader_epoch: p.leader_epoch }),
        }
    }

    /// The partitions this node serves.
    pub fn local_partitions(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.partitions.iter().filter(|p| p.local)
    }
}

/// All topics of the node.
pub struct Topics {
    engine: Engine,
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serializes topic changes (create, delete, alter, and applying the cluster's assignments).
    pub(crate) changes: tokio::sync::Mutex<()>,
    /// In cluster mode: topics live in etcd, and changes go there.
    cluster: Option<Arc<Cluster>>,
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
        Ok(Self { engine, by_name: RwLock::new(by_name), changes: Default::default(), cluster: None })
    }

    /// No topics yet: in cluster mode they come from etcd (`cluster::sync`).
    pub fn for_cluster(engine: Engine, cluster: Arc<Cluster>) -> Self {
        Self { engine, by_name: Default::default(), changes: Default::default(), cluster: Some(cluster) }
    }

    /// Puts a topic in place of the one of its name (cluster sync, under `changes`).
    pub(crate) fn install(&self, topic: Topic) {
        self.by_name.write().insert(topic.meta.name.clone(), Arc::new(topic));
    }

    /// Forgets a topic (cluster sync, under `changes`).
    pub(crate) fn uninstall(&self, name: &str) {
        self.by_name.write().remove(name);
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

    /// Whether the partition exists, wherever it is served (UNKNOWN_TOPIC_OR_PARTITION if not):
    /// what a coordinator checks before it records an offset or a transaction's partition.
    pub fn exists(&self, topic: &str, index: i32) -> Result<()> {
        let known = self.get(topic).is_some_and(|t| usize::try_from(index).is_ok_and(|i| i < t.partitions.len()));
        known.then_some(()).ok_or_else(|| BrokerError::UnknownTopicOrPartition(format!("{topic}-{index}")))
    }

    /// A partition served here, or UNKNOWN_TOPIC_OR_PARTITION (NOT_LEADER_OR_FOLLOWER when
    /// another broker serves it).
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
        if let Some(c) = &self.cluster {
            return self.create_in_cluster(c, meta, partitions).await;
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
        if is_internal(name) {
            return Err(BrokerError::InvalidTopic(name.to_string(), "an internal topic".into()));
        }
        let _g = self.changes.lock().await;
        let topic = self.get(name).ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
        if let Some(c) = &self.cluster {
            if !crate::cluster::placement::delete_topic(&c.etcd, &c.name, name).await? {
                return Err(BrokerError::UnknownTopicOrPartition(name.to_string()));
            }
            self.by_name.write().remove(name);
            // The other owners drop their partitions when they next read the cluster.
            for p in topic.local_partitions() {
                if let Err(e) = self.engine.delete_stream(p.stream).await {
                    tracing::warn!(topic = name, stream = p.stream, error = %e, "deleting a partition stream failed; its data stays until collected");
                }
            }
            tracing::info!(topic = name, "topic deleted");
            return Ok(topic.meta.clone());
        }
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
        if let Some(c) = &self.cluster {
            return self.add_in_cluster(c, &topic, count).await;
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
        if let Some(c) = &self.cluster {
            let kv = c
                .etcd
                .get(&crate::cluster::placement::topic_key(&c.name, name))
                .await?
                .ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
            let stored: TopicMeta = serde_json::from_slice(&kv.value).map_err(|e| BrokerError::Coordination(e.to_string()))?;
            let next = TopicMeta { configs: meta.configs.clone(), ..stored };
            if !crate::cluster::placement::update_topic(&c.etcd, &c.name, &next, kv.mod_revision, &[]).await? {
                return Err(BrokerError::Coordination(format!("topic {name} changed meanwhile; retry")));
            }
            let updated = Arc::new(Topic { meta: next, partitions: topic.partitions.clone() });
            self.by_name.write().insert(name.to_string(), updated);
            return Ok(());
        }
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

impl Topics {
    /// Creates the streams of new partitions here and hands those placed on other brokers to
    /// them (each an empty handoff); returns the owners.
    async fn new_partitions(&self, c: &Cluster, topic: &str, streams: &mut Vec<u64>, count: i32) -> Result<Vec<i32>> {
        // Placed on the brokers live now, not as of the last sync.
        *c.brokers.write() = crate::cluster::membership::list(&c.etcd, &c.name).await?;
        let owners = c.place(topic, count, &crate::cluster::balance::draining(c).await?);
        for &owner in &owners {
            let s = self.engine.create_stream().await?;
            streams.push(s);
            if owner != c.node_id {
                self.engine.seal_stream(s).await?;
                self.engine.export_stream(s, String::new()).await?;
            }
        }
        Ok(owners)
    }

    /// Opens what this node owns of new partitions `from..`, and lists the others as theirs.
    async fn open_placed(&self, c: &Cluster, meta: &TopicMeta, from: usize, owners: &[i32]) -> Result<Vec<Arc<Partition>>> {
        let mut out = Vec::with_capacity(owners.len());
        for (k, &owner) in owners.iter().enumerate() {
            let (index, s) = (from + k, meta.streams[from + k]);
            let local = owner == c.node_id;
            if local {
                self.engine.open_stream(s, self.engine.epoch()).await?;
            }
            out.push(Arc::new(Partition::led(meta.name.clone(), index as i32, s, owner, 0, local)));
        }
        Ok(out)
    }

    /// Drops streams created for partitions that did not come to be.
    async fn forget_streams(&self, streams: &[u64]) {
        for &s in streams {
            let _ = self.engine.delete_stream(s).await;
        }
    }

    async fn create_in_cluster(&self, c: &Cluster, mut meta: TopicMeta, partitions: i32) -> Result<Arc<Topic>> {
        let owners = self.new_partitions(c, &meta.name, &mut meta.streams, partitions).await?;
        if let Err(e) = crate::cluster::placement::create_topic(&c.etcd, &c.name, &meta, &owners).await {
            self.forget_streams(&meta.streams).await;
            return Err(e);
        }
        let partitions = self.open_placed(c, &meta, 0, &owners).await?;
        let topic = Arc::new(Topic { meta, partitions });
        self.by_name.write().insert(topic.meta.name.clone(), topic.clone());
        tracing::info!(topic = %topic.meta.name, owners = ?owners, "topic created in the cluster");
        Ok(topic)
    }

    async fn add_in_cluster(&self, c: &Cluster, topic: &Topic, count: i32) -> Result<()> {
        let name = &topic.meta.name;
        let kv =
            c.etcd.get(&crate::cluster::placement::topic_key(&c.name, name)).await?.ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
        let mut meta: TopicMeta = serde_json::from_slice(&kv.value).map_err(|e| BrokerError::Coordination(e.to_string()))?;
        let now = meta.streams.len();
        if count as usize <= now {
            return Err(BrokerError::InvalidPartitions(format!("topic {name} has {now} partitions; asked for {count}")));
        }
        let owners = self.new_partitions(c, name, &mut meta.streams, count - now as i32).await?;
        let placed: Vec<(i32, i32)> = owners.iter().enumerate().map(|(k, &o)| ((now + k) as i32, o)).collect();
        if !crate::cluster::placement::update_topic(&c.etcd, &c.name, &meta, kv.mod_revision, &placed).await? {
            self.forget_streams(&meta.streams[now..]).await;
            return Err(BrokerError::Coordination(format!("topic {name} changed meanwhile; retry")));
        }
        let mut partitions = topic.partitions.clone();
        partitions.extend(self.open_placed(c, &meta, now, &owners).await?);
        self.by_name.write().insert(name.to_string(), Arc::new(Topic { meta, partitions }));
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
