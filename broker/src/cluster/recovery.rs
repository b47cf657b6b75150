//! Broker loss: the controller takes a lost broker's partitions over — it opens the broker's own storage (fencing it), hands every stream on to a live broker, and reassigns.
//!
//! A broker is lost when its key is gone (its lease expired) while assignments still name it.
//! With the object WAL, opening its chain (`nodes/<id>/`) under a new engine epoch replays its
//! WAL objects and takes the WAL's next name, so the lost broker — should it only have been
//! paused — fails its next WAL write and manifest commit and acknowledges nothing more, while
//! every write it did acknowledge is in what was replayed. Each stream is then sealed (uploaded),
//! exported, and its assignment swapped to a live broker at the next leader epoch.
//!
//! With a file WAL the lost broker's unuploaded tail is on its own disk: its partitions wait for
//! it, unless an operator accepts the loss (`floe broker recover N --accept-loss`, which writes
//! `/floe/<c>/accept-loss/<N>`); then its chain is opened from the bucket alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use floe_s3stream::{Engine, WalKind};

use super::placement::{self, Assignment, Placement, Versioned};
use super::Cluster;
use crate::broker::Broker;
use crate::error::{BrokerError, Result};

/// The key an operator writes to accept losing broker `node`'s unuploaded data (file WAL).
pub fn accept_loss_key(cluster: &str, node: i32) -> String {
    format!("{}accept-loss/{node}", super::root(cluster))
}

/// A partition of a lost broker: (topic, index, stream, assignment).
type Orphan = (String, i32, u64, Versioned<Assignment>);

/// Partitions whose owner is not among `live`, by owner.
fn orphans(placement: &Placement, live: &BTreeSet<i32>) -> BTreeMap<i32, Vec<Orphan>> {
    let mut out: BTreeMap<i32, Vec<Orphan>> = BTreeMap::new();
    for (topic, parts) in &placement.partitions {
        let Some(t) = placement.topics.get(topic) else { continue };
        for (&index, a) in parts {
            let Some(&stream) = usize::try_from(index).ok().and_then(|i| t.value.streams.get(i)) else { continue };
            if !live.contains(&a.value.owner) {
                out.entry(a.value.owner).or_default().push((topic.clone(), index, stream, a.clone()));
            }
        }
    }
    out
}

/// The live broker owning the fewest partitions (ties: the lowest id).
fn least_loaded(owned: &BTreeMap<i32, usize>) -> Option<i32> {
    owned.iter().min_by_key(|(id, n)| (**n, **id)).map(|(id, _)| *id)
}

/// On the controller: takes over the partitions of every lost broker it may recover. Returns
/// whether anything is left waiting.
pub async fn run_once(b: &Arc<Broker>, c: &Cluster, placement: &Placement) -> bool {
    let live: BTreeSet<i32> = c.brokers.read().iter().map(|b| b.record.node_id).collect();
    if live.is_empty() {
        return false;
    }
    let mut waiting = false;
    for (lost, parts) in orphans(placement, &live) {
        let accepted = match c.etcd.get(&accept_loss_key(&c.name, lost)).await {
            Ok(kv) => kv.is_some(),
            Err(e) => {
                tracing::warn!(node = lost, error = %e, "reading the accept-loss key failed");
                waiting = true;
                continue;
            }
        };
        if b.settings.storage.wal != WalKind::Object && !accepted {
            if c.waiting_for.lock().insert(lost) {
                tracing::error!(
                    node = lost,
                    partitions = parts.len(),
                    "broker lost with a file WAL: its partitions wait for it (floe broker recover {lost} --accept-loss gives up its unuploaded data)"
                );
            }
            waiting = true;
            continue;
        }
        let started = std::time::Instant::now();
        match recover(b, c, placement, lost, &parts, &live).await {
            Ok(moved) => {
                c.waiting_for.lock().remove(&lost);
                if accepted {
                    let _ = c.etcd.delete(&accept_loss_key(&c.name, lost)).await;
                }
                c.stats.recoveries.fetch_add(1, Relaxed);
                tracing::info!(node = lost, partitions = moved, ms = started.elapsed().as_millis() as u64, "took over a lost broker's partitions");
            }
            Err(e) => {
                waiting = true;
                tracing::warn!(node = lost, error = %e, "taking over a lost broker's partitions failed; retrying");
            }
        }
    }
    waiting
}

/// Opens `lost`'s chain, hands each of its partitions to the least loaded live broker.
async fn recover(b: &Arc<Broker>, c: &Cluster, placement: &Placement, lost: i32, parts: &[Orphan], live: &BTreeSet<i32>) -> Result<usize> {
    // Not onto a broker being drained (unless only those are left).
    let draining = super::balance::draining(c).await?;
    let targets: BTreeSet<i32> = match live.difference(&draining).count() {
        0 => live.clone(),
        _ => live.difference(&draining).copied().collect(),
    };
    let mut owned: BTreeMap<i32, usize> = targets.iter().map(|&id| (id, 0)).collect();
    for a in placement.partitions.values().flat_map(|p| p.values()) {
        if let Some(n) = owned.get_mut(&a.value.owner) {
            *n += 1;
        }
    }
    let mut config = b.settings.engine_config();
    config.node_prefix = format!("nodes/{lost}/");
    config.wal = WalKind::Object;
    config.epoch_min = placement::next_engine_epoch(&c.etcd, &c.name).await?;
    let engine = Engine::open_with_clock(config, b.object_store.clone(), b.clock.clone()).await?;
    let result = hand_on(&engine, c, parts, &mut owned).await;
    if let Err(e) = engine.close().await {
        tracing::warn!(node = lost, error = %e, "closing the lost broker's storage failed");
    }
    result
}

async fn hand_on(engine: &Engine, c: &Cluster, parts: &[Orphan], owned: &mut BTreeMap<i32, usize>) -> Result<usize> {
    let mut moved = 0;
    for (topic, index, stream, a) in parts {
        // Not in its chain: it was handed over just before the broker was lost (the handoff waits).
        if engine.stream_info(*stream).is_ok() {
            engine.seal_stream(*stream).await?;
            engine.export_stream(*stream, String::new()).await?;
        }
        let to = least_loaded(owned).ok_or_else(|| BrokerError::Coordination("no live broker".into()))?;
        let next = Assignment { owner: to, leader_epoch: a.value.leader_epoch + 1, target: None };
        if placement::swap_assignment(&c.etcd, &c.name, topic, *index, a.mod_revision, &next).await? {
            *owned.entry(to).or_default() += 1;
            moved += 1;
            tracing::info!(topic, partition = index, to, leader_epoch = next.leader_epoch, "reassigned a lost broker's partition");
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::TopicMeta;

    #[test]
    fn orphans_are_the_partitions_of_brokers_not_live_and_go_to_the_least_loaded() {
        let mut p = Placement::default();
        let meta = TopicMeta { name: "t".into(), id: uuid::Uuid::nil(), streams: vec![10, 11, 12], configs: Default::default() };
        p.topics.insert("t".into(), Versioned { value: meta, mod_revision: 1 });
        for (i, owner) in [(0, 1), (1, 2), (2, 2)] {
            p.partitions.entry("t".into()).or_default().insert(i, Versioned { value: Assignment { owner, leader_epoch: 3, target: None }, mod_revision: 2 });
        }
        let got = orphans(&p, &BTreeSet::from([1, 3]));
        let lost: Vec<(i32, Vec<(i32, u64)>)> = got.iter().map(|(n, v)| (*n, v.iter().map(|o| (o.1, o.2)).collect())).collect();
        assert_eq!(lost, vec![(2, vec![(1, 11), (2, 12)])]);
        assert_eq!(least_loaded(&BTreeMap::from([(1, 1), (3, 0)])), Some(3));
        assert_eq!(least_loaded(&BTreeMap::from([(1, 1), (3, 1)])), Some(1));
    }
}
