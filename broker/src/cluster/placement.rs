//! Topics and partition assignments in etcd: the keys, their values and every change to them, each a compare-and-swap.
//!
//! - `/floe/<c>/topics/<name>`: the topic ([`TopicMeta`]: id, partition streams, configs).
//! - `/floe/<c>/partitions/<name>/<index>`: its [`Assignment`] — the owner, the leader epoch, and
//!   while a move is asked for, its target.
//! - `/floe/<c>/epoch`: the last storage-engine epoch handed out (see [`next_engine_epoch`]).
//!
//! A topic and its assignments are created and deleted in one transaction. A move is asked for
//! by setting `target` (CAS on the key's revision); the owner completes it by handing the stream
//! over and then swapping in `{owner: target, leader_epoch + 1}` (CAS again).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::etcd::{Cmp, Etcd, Op};
use crate::error::{BrokerError, Result};
use crate::topics::TopicMeta;

/// Attempts of a compare-and-swap loop before giving up (each lost one means a concurrent change).
const CAS_ATTEMPTS_MAX: u32 = 64;

/// Who serves a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The broker that serves it.
    pub owner: i32,
    /// Bumped on every change of owner (Kafka's leader epoch).
    pub leader_epoch: i32,
    /// A move asked for: the broker it goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<i32>,
}

/// A value read from etcd with the revision it was last changed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub mod_revision: i64,
}

/// Every topic and assignment of the cluster, as of one revision.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// etcd's revision when it was read.
    pub revision: i64,
    pub topics: BTreeMap<String, Versioned<TopicMeta>>,
    /// By topic, then partition index.
    pub partitions: BTreeMap<String, BTreeMap<i32, Versioned<Assignment>>>,
}

fn topics_prefix(cluster: &str) -> String {
    format!("{}topics/", super::root(cluster))
}

fn partitions_prefix(cluster: &str) -> String {
    format!("{}partitions/", super::root(cluster))
}

/// The key of a topic.
pub fn topic_key(cluster: &str, topic: &str) -> String {
    format!("{}{topic}", topics_prefix(cluster))
}

/// The key of a partition's assignment.
pub fn partition_key(cluster: &str, topic: &str, index: i32) -> String {
    format!("{}{topic}/{index}", partitions_prefix(cluster))
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| BrokerError::Internal(e.to_string()))
}

fn bad(key: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Coordination(format!("{key} is unreadable: {e}"))
}

/// Reads every topic and assignment. Keys that do not parse are errors: a cluster never
/// writes them.
pub async fn read(etcd: &Etcd, cluster: &str) -> Result<Placement> {
    let root = super::root(cluster);
    let (kvs, revision) = etcd.prefix_at(&root).await?;
    let mut p = Placement { revision, ..Default::default() };
    let (tp, pp) = (topics_prefix(cluster), partitions_prefix(cluster));
    for kv in kvs {
        if let Some(name) = kv.key.strip_prefix(&tp) {
            let meta: TopicMeta = serde_json::from_slice(&kv.value).map_err(|e| bad(&kv.key, e))?;
            p.topics.insert(name.to_string(), Versioned { value: meta, mod_revision: kv.mod_revision });
        } else if let Some(rest) = kv.key.strip_prefix(&pp) {
            let (topic, index) = rest.rsplit_once('/').ok_or_else(|| bad(&kv.key, "no partition index"))?;
            let index: i32 = index.parse().map_err(|e| bad(&kv.key, e))?;
            let a: Assignment = serde_json::from_slice(&kv.value).map_err(|e| bad(&kv.key, e))?;
            p.partitions.entry(topic.to_string()).or_default().insert(index, Versioned { value: a, mod_revision: kv.mod_revision });
        }
    }
    Ok(p)
}

/// Creates a topic and its assignments (`owners[i]` serves partition `i`) in one transaction;
/// TOPIC_ALREADY_EXISTS when the key is there.
pub async fn create_topic(etcd: &Etcd, cluster: &str, meta: &TopicMeta, owners: &[i32]) -> Result<()> {
    let key = topic_key(cluster, &meta.name);
    let mut ops = vec![Op::Put(key.clone(), json(meta)?)];
    for (i, &owner) in owners.iter().enumerate() {
        let a = Assignment { owner, leader_epoch: 0, target: None };
        ops.push(Op::Put(partition_key(cluster, &meta.name, i as i32), json(&a)?));
    }
    match etcd.txn(&[Cmp::Absent(key)], &ops).await.map_err(|e| too_many(e, ops.len()))? {
        Some(_) => Ok(()),
        None => Err(BrokerError::TopicAlreadyExists(meta.name.clone())),
    }
}

/// etcd refuses a transaction of more writes than its `--max-txn-ops` (128 by default): a topic
/// and its assignments are one, so that limit bounds a topic's partitions.
fn too_many(e: BrokerError, ops: usize) -> BrokerError {
    match e {
        BrokerError::Coordination(m) if m.contains("too many operations in txn request") => BrokerError::InvalidPartitions(format!(
            "etcd refused writing {ops} keys at once: run it with --max-txn-ops of at least {ops} (default 128) for this many partitions"
        )),
        e => e,
    }
}

/// Replaces a topic's metadata read at `mod_revision`, adding assignments for new partitions.
pub async fn update_topic(etcd: &Etcd, cluster: &str, meta: &TopicMeta, mod_revision: i64, new_owners: &[(i32, i32)]) -> Result<bool> {
    let key = topic_key(cluster, &meta.name);
    let mut ops = vec![Op::Put(key.clone(), json(meta)?)];
    for &(index, owner) in new_owners {
        let a = Assignment { owner, leader_epoch: 0, target: None };
        ops.push(Op::Put(partition_key(cluster, &meta.name, index), json(&a)?));
    }
    Ok(etcd.txn(&[Cmp::ModRevision(key, mod_revision)], &ops).await.map_err(|e| too_many(e, ops.len()))?.is_some())
}

/// Deletes a topic and its assignments; false when it is not there.
pub async fn delete_topic(etcd: &Etcd, cluster: &str, topic: &str) -> Result<bool> {
    let key = topic_key(cluster, topic);
    let Some(kv) = etcd.get(&key).await? else { return Ok(false) };
    let ops = [Op::Delete(key.clone()), Op::DeletePrefix(format!("{}{topic}/", partitions_prefix(cluster)))];
    Ok(etcd.txn(&[Cmp::ModRevision(key, kv.mod_revision)], &ops).await?.is_some())
}

/// Swaps a partition's assignment read at `mod_revision` for `next`; false when it changed meanwhile.
pub async fn swap_assignment(etcd: &Etcd, cluster: &str, topic: &str, index: i32, mod_revision: i64, next: &Assignment) -> Result<bool> {
    let key = partition_key(cluster, topic, index);
    Ok(etcd.txn(&[Cmp::ModRevision(key.clone(), mod_revision)], &[Op::Put(key, json(next)?)]).await?.is_some())
}

/// Asks for a move of `topic`-`index` to `to`: sets the target (or, when `to` already owns it,
/// does nothing). Returns the assignment as it now stands.
pub async fn request_move(etcd: &Etcd, cluster: &str, topic: &str, index: i32, to: i32) -> Result<Assignment> {
    let key = partition_key(cluster, topic, index);
    for _ in 0..CAS_ATTEMPTS_MAX {
        let kv = etcd.get(&key).await?.ok_or_else(|| BrokerError::UnknownTopicOrPartition(format!("{topic}-{index}")))?;
        let mut a: Assignment = serde_json::from_slice(&kv.value).map_err(|e| bad(&key, e))?;
        if a.owner == to && a.target.is_none() {
            return Ok(a);
        }
        a.target = (a.owner != to).then_some(to);
        if etcd.txn(&[Cmp::ModRevision(key.clone(), kv.mod_revision)], &[Op::Put(key.clone(), json(&a)?)]).await?.is_some() {
            return Ok(a);
        }
    }
    Err(BrokerError::Coordination(format!("{key} kept changing; the move was not asked for")))
}

/// Cancels a move of `topic`-`index` not yet made; false when none was asked for.
pub async fn cancel_move(etcd: &Etcd, cluster: &str, topic: &str, index: i32) -> Result<bool> {
    let key = partition_key(cluster, topic, index);
    for _ in 0..CAS_ATTEMPTS_MAX {
        let kv = etcd.get(&key).await?.ok_or_else(|| BrokerError::UnknownTopicOrPartition(format!("{topic}-{index}")))?;
        let mut a: Assignment = serde_json::from_slice(&kv.value).map_err(|e| bad(&key, e))?;
        if a.target.take().is_none() {
            return Ok(false);
        }
        if etcd.txn(&[Cmp::ModRevision(key.clone(), kv.mod_revision)], &[Op::Put(key.clone(), json(&a)?)]).await?.is_some() {
            return Ok(true);
        }
    }
    Err(BrokerError::Coordination(format!("{key} kept changing; the move was not cancelled")))
}

/// Takes the next storage-engine epoch from the cluster's counter: every engine on the bucket
/// gets its own, so the ids they write (`epoch << 40 | n`) never collide.
pub async fn next_engine_epoch(etcd: &Etcd, cluster: &str) -> Result<u64> {
    let key = format!("{}epoch", super::root(cluster));
    for _ in 0..CAS_ATTEMPTS_MAX {
        let (last, rev) = match etcd.get(&key).await? {
            Some(kv) => {
                let n: u64 = std::str::from_utf8(&kv.value).ok().and_then(|s| s.parse().ok()).ok_or_else(|| bad(&key, "not a number"))?;
                (n, kv.mod_revision)
            }
            None => (0, 0),
        };
        let next = last + 1;
        if etcd.txn(&[Cmp::ModRevision(key.clone(), rev)], &[Op::Put(key.clone(), next.to_string().into_bytes())]).await?.is_some() {
            return Ok(next);
        }
    }
    Err(BrokerError::Coordination(format!("{key} kept changing; no engine epoch taken")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_assignments_read_back_as_written() {
        assert_eq!(partition_key("c", "orders", 3), "/floe/c/partitions/orders/3");
        assert_eq!(topic_key("c", "orders"), "/floe/c/topics/orders");
        let a = Assignment { owner: 2, leader_epoch: 5, target: None };
        let text = String::from_utf8(json(&a).expect("json")).expect("utf8");
        assert_eq!(text, r#"{"owner":2,"leader_epoch":5}"#, "no target while none is asked for");
        let moving: Assignment = serde_json::from_str(r#"{"owner":2,"leader_epoch":5,"target":3}"#).expect("parse");
        assert_eq!(moving.target, Some(3));
    }
}
