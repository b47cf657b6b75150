//! Brings this broker in line with the cluster's assignments: opens or takes over the partitions it owns, hands over those asked to move, drops deleted topics.
//!
//! A move of a partition A → B: A (its owner) sees `target: B`, seals the stream under the
//! partition's sequencing lock (later produces answer NOT_LEADER_OR_FOLLOWER; queued ones become
//! durable and are uploaded), exports it with the partition's producer state as the attachment,
//! then swaps the assignment to `{owner: B, leader_epoch + 1}`. B sees itself as owner, imports
//! the stream, restores that state (scanning whatever the attachment does not cover) and serves.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use floe_s3stream::{Engine, StreamId};

use super::placement::{self, Assignment, Placement, Versioned};
use super::{membership, Cluster};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::groups::Coordinator;
use crate::partition::Partition;
use crate::state::{PartitionSnapshot, StateStore};
use crate::topics::{Topic, Topics, OFFSETS_TOPIC, TXN_TOPIC};
use crate::txn::coordinator::TxnCoordinator;

/// What applying the placement works on.
pub struct Node<'a> {
    pub engine: &'a Engine,
    /// The durable state, the group and the transaction coordinators, once open (not during
    /// start-up).
    pub state: Option<(&'a StateStore, &'a Coordinator, &'a TxnCoordinator)>,
    pub cluster: &'a Cluster,
    pub now_ms: i64,
}

/// How often a broker looks for users and ACLs changed through another one.
const SECURITY_REFRESH_MS: i64 = 1_000;

/// Reads etcd when anything changed there (or the last round left work undone) and applies it.
pub async fn run_once(b: &Arc<Broker>) {
    let Some(c) = &b.cluster else { return };
    let failed = b.engine.failure().or_else(|| c.taken_over.load(Relaxed).then(|| "the cluster took this node for lost and its storage over".to_string()));
    if let (Some(why), Some(m)) = (failed, b.membership.get()) {
        // Fenced (another broker took this node's storage over) or a failed WAL: this node
        // cannot serve; leaving lets the controller hand its partitions on.
        if m.retire().await {
            tracing::error!(reason = %why, "this node left the cluster; restart it");
        }
        return;
    }
    // Registered again after a lost lease: the placement read below is newer than the
    // registration, so it shows whether anything was taken meanwhile.
    let checking = b.membership.get().filter(|m| m.suspect() && m.registered());
    match refresh(b, c).await {
        Ok(()) => {
            if let Some(m) = checking.filter(|_| !c.taken_over.load(Relaxed)) {
                m.clear_suspicion();
            }
        }
        Err(e) => {
            c.stats.sync_failures.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "reading the cluster's assignments failed; retrying");
        }
    }
    // Users and ACLs another broker changed (looked at once a second: they change seldom).
    let now_ms = b.clock.now_ms();
    let due = now_ms - c.security_checked_ms.load(Relaxed) >= SECURITY_REFRESH_MS;
    if let (crate::security::store::SecurityStore::Shared(kv), true) = (b.security_store.as_ref(), due) {
        c.security_checked_ms.store(now_ms, Relaxed);
        match kv.refresh().await {
            Ok(true) => b.authorizer.reload().await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "reading the cluster's users and ACLs failed; retrying"),
        }
    }
}

async fn refresh(b: &Arc<Broker>, c: &Cluster) -> Result<()> {
    // Only the cluster's own keys count: load reports and other clusters live elsewhere.
    let version = c.etcd.prefix_version(&super::root(&c.name)).await?;
    if *c.applied_version.lock() == Some(version) {
        return Ok(());
    }
    let brokers = membership::list(&c.etcd, &c.name).await?;
    let placement = placement::read(&c.etcd, &c.name).await?;
    *c.brokers.write() = brokers;
    let node = Node { engine: &b.engine, state: Some((&b.state, &b.groups, &b.txn)), cluster: c, now_ms: b.clock.now_ms() };
    let mut settled = apply(&b.topics, &node, &placement).await;
    if b.membership.get().and_then(|m| m.controller_epoch()).is_some() {
        settled &= !super::recovery::run_once(b, c, &placement).await;
    }
    // Settled: nothing more to do until a key changes. If not, read again next round.
    *c.applied_version.lock() = settled.then_some(version);
    *c.placement.write() = placement;
    Ok(())
}

/// Applies `placement` to this node's topics and engine; false when something is left to retry.
/// Without `state` (at start-up, before the state store is open) moves wait and partitions are
/// opened without restoring their state: the state store's own start-up scan does that.
pub async fn apply(topics: &Topics, node: &Node<'_>, placement: &Placement) -> bool {
    let _changes = topics.changes.lock().await;
    let engine = node.engine;
    let mut settled = true;
    let none = Default::default();
    for (name, t) in &placement.topics {
        let assigned = placement.partitions.get(name).unwrap_or(&none);
        let current = topics.get(name);
        let mut changed = current.as_ref().is_none_or(|cur| cur.meta != t.value);
        let mut partitions = Vec::with_capacity(t.value.streams.len().min(crate::topics::PARTITIONS_MAX as usize));
        for (i, &stream) in t.value.streams.iter().enumerate() {
            let index = i as i32;
            let cur = current.as_ref().and_then(|t| t.partitions.get(i)).cloned();
            let next = match assigned.get(&index) {
                Some(a) => {
                    let (p, ok) = settle(node, name, index, stream, a, cur.clone()).await;
                    settled &= ok;
                    p
                }
                None => Arc::new(Partition::led(name.clone(), index, stream, -1, -1, false)),
            };
            changed |= cur.is_none_or(|cur| !Arc::ptr_eq(&cur, &next));
            partitions.push(next);
        }
        if changed {
            topics.install(Topic { meta: t.value.clone(), partitions });
        }
    }
    for t in topics.all() {
        if !placement.topics.contains_key(&t.meta.name) {
            // Created here after that placement was read? Then it is in etcd: keep it.
            match node.cluster.etcd.get(&placement::topic_key(&node.cluster.name, &t.meta.name)).await {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(e) => {
                    tracing::warn!(topic = %t.meta.name, error = %e, "checking a topic gone from the placement failed; retrying");
                    settled = false;
                    continue;
                }
            }
            topics.uninstall(&t.meta.name);
            for p in t.local_partitions() {
                if let Err(e) = engine.delete_stream(p.stream).await {
                    tracing::warn!(topic = %t.meta.name, partition = p.index, error = %e, "deleting a deleted topic's stream failed");
                }
            }
            tracing::info!(topic = %t.meta.name, "topic deleted in the cluster");
        }
    }
    settled
}

/// One partition: what this node should hold of it now, and whether that settled.
async fn settle(node: &Node<'_>, topic: &str, index: i32, stream: StreamId, a: &Versioned<Assignment>, cur: Option<Arc<Partition>>) -> (Arc<Partition>, bool) {
    let (engine, c) = (node.engine, node.cluster);
    let me = c.node_id;
    let Assignment { owner, leader_epoch, target } = a.value;
    let local = cur.as_ref().filter(|p| p.local);
    if owner != me {
        if let Some(p) = local {
            // Taken away without a handoff by us: the controller took this node for lost and
            // opened its storage (fencing it). Stop appending, and leave (see `run_once`).
            tracing::error!(topic, partition = index, owner, "partition reassigned while served here: this node was taken for lost");
            let _ = engine.close_stream(p.stream);
            c.taken_over.store(true, Relaxed);
        }
        let same = cur.filter(|p| !p.local && p.leader_id == owner && p.leader_epoch == leader_epoch);
        return (same.unwrap_or_else(|| Arc::new(Partition::led(topic.to_string(), index, stream, owner, leader_epoch, false))), true);
    }
    match (target.filter(|&t| t != me), local, node.state) {
        (Some(to), Some(p), Some(state)) => match hand_over(node, state, p, a, to).await {
            Ok(()) => (Arc::new(Partition::led(topic.to_string(), index, stream, to, leader_epoch + 1, false)), true),
            Err(e) => {
                tracing::warn!(topic, partition = index, to, error = %e, "handing the partition over failed; it stays here");
                // Still in our chain: serve it again. Already exported: take it back next round.
                let served_again = match engine.open_stream(stream, engine.epoch()).await {
                    Ok(_) => adopt_internal(state, topic, index as u32, stream).await,
                    Err(e) => Err(e.into()),
                };
                match served_again {
                    Ok(()) => (p.clone(), false),
                    Err(_) => (Arc::new(Partition::led(topic.to_string(), index, stream, me, leader_epoch, false)), false),
                }
            }
        },
        (_, Some(p), _) => (p.clone(), target.is_none_or(|t| t == me)),
        (_, None, _) => match take(node, topic, index, stream, leader_epoch).await {
            Ok(p) => (p, target.is_none_or(|t| t == me)),
            Err(e) => {
                tracing::warn!(topic, partition = index, error = %e, "taking the partition over failed; retrying");
                (Arc::new(Partition::led(topic.to_string(), index, stream, me, leader_epoch, false)), false)
            }
        },
    }
}

/// Opens a partition this node owns: from its own chain, or from the giver's handoff.
async fn take(node: &Node<'_>, topic: &str, index: i32, stream: StreamId, leader_epoch: i32) -> Result<Arc<Partition>> {
    let (engine, c) = (node.engine, node.cluster);
    let attachment = match engine.stream_info(stream) {
        Ok(_) => {
            engine.open_stream(stream, engine.epoch()).await?;
            None
        }
        Err(_) => engine.import_stream(stream).await?.1,
    };
    let p = Partition::led(topic.to_string(), index, stream, c.node_id, leader_epoch, true);
    match node.state {
        // Groups' offsets, transactions' states: this node coordinates the partition's keys.
        Some(coordinators) if crate::topics::is_internal(topic) => adopt_internal(coordinators, topic, index as u32, stream).await?,
        Some((state, _, _)) => {
            let given = attachment.filter(|a| !a.is_empty()).and_then(|a| serde_json::from_str::<PartitionSnapshot>(&a).ok());
            state.adopt(&p, given, node.now_ms).await?;
        }
        None => {}
    }
    c.stats.takeovers.fetch_add(1, Relaxed);
    tracing::info!(topic, partition = index, leader_epoch, "serving the partition");
    Ok(Arc::new(p))
}

/// Starts coordinating the keys of a partition of an internal topic, open here: the groups of
/// an offsets partition, the transactional ids of a transaction state partition.
async fn adopt_internal((state, _, txn): (&StateStore, &Coordinator, &TxnCoordinator), topic: &str, index: u32, stream: StreamId) -> Result<()> {
    match topic {
        OFFSETS_TOPIC => state.adopt_offsets(index, stream).await,
        TXN_TOPIC => txn.adopt(index, stream).await,
        _ => Ok(()),
    }
}

/// Hands a partition this node serves over to `to`.
async fn hand_over(
    node: &Node<'_>,
    (state, groups, txn): (&StateStore, &Coordinator, &TxnCoordinator),
    p: &Arc<Partition>,
    a: &Versioned<Assignment>,
    to: i32,
) -> Result<()> {
    let (engine, c) = (node.engine, node.cluster);
    let started = std::time::Instant::now();
    if p.topic == OFFSETS_TOPIC {
        // No more commits for its groups here; their members find the new coordinator.
        groups.forget(&state.release_offsets(p.index as u32).await);
    }
    if p.topic == TXN_TOPIC {
        // Requests under way end first; later ones find the new coordinator.
        txn.release(p.index as u32).await;
    }
    let snapshot = {
        // No produce is between its checks and its append while this is held.
        let _sequencing = p.sequencing.lock().await;
        let end = engine.seal_stream(p.stream).await?;
        StateStore::partition_snapshot(p, end)
    };
    let attachment = serde_json::to_string(&snapshot).map_err(|e| BrokerError::Internal(e.to_string()))?;
    engine.export_stream(p.stream, attachment).await?;
    let next = Assignment { owner: to, leader_epoch: a.value.leader_epoch + 1, target: None };
    if !placement::swap_assignment(&c.etcd, &c.name, &p.topic, p.index, a.mod_revision, &next).await? {
        return Err(BrokerError::Coordination("the assignment changed during the move".into()));
    }
    c.stats.moves_out.fetch_add(1, Relaxed);
    tracing::info!(topic = %p.topic, partition = p.index, to, leader_epoch = next.leader_epoch, ms = started.elapsed().as_millis() as u64, "partition handed over");
    Ok(())
}

/// At start-up in a cluster: creates the internal topics if no broker has yet — the offsets
/// topic with `offsets_partitions`, the transaction state topic with `txn_partitions` — and
/// starts coordinating the groups and transactional ids of the partitions this node leads.
pub async fn open_internal_topics(
    topics: &Topics,
    (state, groups, txn): (&StateStore, &Coordinator, &TxnCoordinator),
    offsets_partitions: u32,
    txn_partitions: u32,
) -> Result<()> {
    for (name, partitions) in [(OFFSETS_TOPIC, offsets_partitions), (TXN_TOPIC, txn_partitions)] {
        if topics.get(name).is_none() {
            let configs = [("retention.ms", "-1"), ("retention.bytes", "-1")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            match topics.create(name, partitions.clamp(1, crate::topics::PARTITIONS_MAX as u32) as i32, configs, false).await {
                Ok(_) | Err(BrokerError::TopicAlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(t) = topics.get(name) {
            // Keys map to partitions by the count: every broker must count the same.
            if t.partitions.len() as u32 != partitions.clamp(1, crate::topics::PARTITIONS_MAX as u32) {
                return Err(BrokerError::Internal(format!(
                    "{name} has {} partitions in this cluster but this node is set for {partitions}: set the same on every broker",
                    t.partitions.len()
                )));
            }
            for p in t.local_partitions() {
                adopt_internal((state, groups, txn), name, p.index as u32, p.stream).await?;
            }
        }
    }
    Ok(())
}
