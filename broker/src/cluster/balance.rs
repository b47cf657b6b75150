//! The controller's balancer: drains brokers asked to empty (`floe broker drain N`) and evens the partitions out over the live brokers, a bounded number of moves at a time.
//!
//! Every `cluster_balance_interval_ms` the controller looks at the assignments it last read:
//! - a draining broker's partitions move to the least loaded other brokers;
//! - while the heaviest broker weighs more than one idle partition more than the lightest, the
//!   partition of its that brings the two closest moves there (a new broker receives
//!   partitions this way);
//! - at most `cluster_concurrent_moves_max` moves are under way at once (assignments with a
//!   target), and a partition moved by the balancer stays put for `cluster_move_cooldown_ms`.
//!
//! A partition weighs 1 plus its bytes per second produced and fetched over
//! `cluster_balance_bytes_per_weight` plus its reads and writes per second over
//! `cluster_balance_requests_per_weight` (from the brokers' load reports, `load.rs`): idle, the
//! balancer evens partition counts; under load, traffic. Each decision is logged and counted in
//! `/metrics`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering::Relaxed;

use super::placement::{self, Placement};
use super::Cluster;
use crate::error::Result;

/// The key that marks broker `node` as draining.
pub fn drain_key(cluster: &str, node: i32) -> String {
    format!("{}drain/{node}", super::root(cluster))
}

/// Brokers marked as draining.
pub async fn draining(c: &Cluster) -> Result<BTreeSet<i32>> {
    let prefix = format!("{}drain/", super::root(&c.name));
    Ok(c.etcd.prefix(&prefix).await?.iter().filter_map(|kv| kv.key.strip_prefix(&prefix)?.parse().ok()).collect())
}

/// Why the balancer moved a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Drain,
    Balance,
}

/// One move the balancer decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub topic: String,
    pub partition: i32,
    pub from: i32,
    pub to: i32,
    pub reason: Reason,
}

/// The weight of each partition: 1 (every partition counts), plus its traffic in units of
/// [`PerWeight`] (a partition taking that much counts as one more).
pub type Weights = HashMap<(String, i32), f64>;

/// The moves to make now: pure, so that it can be tested alone. `cooling` partitions are not
/// moved for balance (a drain moves them anyway). Brokers are evened out by weight: a move
/// happens while the heaviest and the lightest differ by more than one idle partition, taking
/// from the heaviest the partition that brings the two closest.
pub fn plan(
    placement: &Placement,
    live: &BTreeSet<i32>,
    draining: &BTreeSet<i32>,
    cooling: &BTreeSet<(String, i32)>,
    weights: &Weights,
    moves_max: usize,
) -> Vec<Decision> {
    let targets: BTreeSet<i32> = live.difference(draining).copied().collect();
    if targets.is_empty() {
        return Vec::new();
    }
    let weight = |t: &str, i: i32| weights.get(&(t.to_string(), i)).copied().unwrap_or(1.0);
    let mut in_flight = 0;
    let mut load: BTreeMap<i32, f64> = targets.iter().map(|&b| (b, 0.0)).collect();
    // (topic, partition, weight) of every partition that may move now, by owner.
    let mut movable: BTreeMap<i32, Vec<(String, i32, f64)>> = BTreeMap::new();
    for (topic, parts) in &placement.partitions {
        for (&i, a) in parts {
            let (a, w) = (&a.value, weight(topic, i));
            if let Some(to) = a.target {
                in_flight += 1;
                if let Some(n) = load.get_mut(&to) {
                    *n += w;
                }
                continue;
            }
            if let Some(n) = load.get_mut(&a.owner) {
                *n += w;
            }
            if live.contains(&a.owner) {
                movable.entry(a.owner).or_default().push((topic.clone(), i, w));
            }
        }
    }
    let mut out = Vec::new();
    let budget = moves_max.saturating_sub(in_flight);
    // (lightest, heaviest) target; ties go to the lowest id.
    let ends = |load: &BTreeMap<i32, f64>| {
        let mut it = load.iter();
        let (&first, &w) = it.next()?;
        let (mut light, mut heavy) = ((first, w), (first, w));
        for (&b, &w) in it {
            if w < light.1 {
                light = (b, w);
            }
            if w > heavy.1 {
                heavy = (b, w);
            }
        }
        Some((light, heavy))
    };
    // Drains first.
    for &from in draining {
        for (topic, partition, w) in movable.remove(&from).unwrap_or_default() {
            if out.len() >= budget {
                return out;
            }
            let Some(((to, _), _)) = ends(&load) else { return out };
            *load.entry(to).or_default() += w;
            out.push(Decision { topic, partition, from, to, reason: Reason::Drain });
        }
    }
    // Then evening out.
    while out.len() < budget {
        let Some(((to, light), (from, heavy))) = ends(&load) else { break };
        let gap = heavy - light;
        if gap <= 1.0 + 1e-9 {
            break;
        }
        let Some(candidates) = movable.get_mut(&from) else { break };
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(_, (t, i, w))| *w < gap && !cooling.contains(&(t.clone(), *i)))
            .min_by(|(_, a), (_, b)| (a.2 - gap / 2.0).abs().total_cmp(&(b.2 - gap / 2.0).abs()))
            .map(|(k, _)| k);
        let Some(k) = best else { break };
        let (topic, partition, w) = candidates.remove(k);
        *load.entry(from).or_default() -= w;
        *load.entry(to).or_default() += w;
        out.push(Decision { topic, partition, from, to, reason: Reason::Balance });
    }
    out
}

/// How much traffic weighs as much as one more idle partition.
#[derive(Debug, Clone, Copy)]
pub struct PerWeight {
    /// Bytes per second, produced and fetched together.
    pub bytes: f64,
    /// Produce and fetch reads per second.
    pub requests: f64,
}

impl PerWeight {
    /// A partition's weight: 1, plus its traffic in units of `self`.
    pub fn weight(&self, r: &super::load::Rates) -> f64 {
        1.0 + (r.bytes_in_per_s + r.bytes_out_per_s) / self.bytes.max(1.0) + r.requests_per_s / self.requests.max(1.0)
    }
}

/// The balancer's memory: when it last moved each partition (the controller's clock).
#[derive(Default)]
pub struct Balancer {
    moved_ms: parking_lot::Mutex<HashMap<(String, i32), i64>>,
}

impl Balancer {
    /// One round on the controller: plans and asks for the moves.
    pub async fn run_once(&self, c: &Cluster, now_ms: i64, cooldown_ms: i64, moves_max: usize, per_weight: PerWeight) -> Result<usize> {
        let placement = c.placement.read().clone();
        let live: BTreeSet<i32> = c.brokers.read().iter().map(|b| b.record.node_id).collect();
        let draining = draining(c).await?;
        let cooling: BTreeSet<(String, i32)> = {
            let mut moved = self.moved_ms.lock();
            moved.retain(|_, at| now_ms - *at < cooldown_ms);
            moved.keys().cloned().collect()
        };
        let weights: Weights = super::load::read(c).await?.into_iter().map(|(k, rates)| (k, per_weight.weight(&rates))).collect();
        let decisions = plan(&placement, &live, &draining, &cooling, &weights, moves_max);
        let mut asked = 0;
        for d in decisions {
            placement::request_move(&c.etcd, &c.name, &d.topic, d.partition, d.to).await?;
            self.moved_ms.lock().insert((d.topic.clone(), d.partition), now_ms);
            let counter = match d.reason {
                Reason::Drain => &c.stats.drain_moves,
                Reason::Balance => &c.stats.balance_moves,
            };
            counter.fetch_add(1, Relaxed);
            tracing::info!(topic = %d.topic, partition = d.partition, from = d.from, to = d.to, reason = ?d.reason, "balancer: moving a partition");
            asked += 1;
        }
        Ok(asked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::placement::{Assignment, Versioned};

    fn placed(owners: &[(i32, Option<i32>)]) -> Placement {
        let mut p = Placement::default();
        for (i, &(owner, target)) in owners.iter().enumerate() {
            let a = Assignment { owner, leader_epoch: 0, target };
            p.partitions.entry("t".into()).or_default().insert(i as i32, Versioned { value: a, mod_revision: 1 });
        }
        p
    }

    fn set(v: &[i32]) -> BTreeSet<i32> {
        v.iter().copied().collect()
    }

    #[test]
    fn a_new_broker_receives_partitions_until_the_spread_is_at_most_one() {
        let p = placed(&[(1, None); 12].iter().copied().chain([(2, None); 12]).collect::<Vec<_>>());
        let moves = plan(&p, &set(&[1, 2, 3]), &set(&[]), &BTreeSet::new(), &Weights::new(), 100);
        assert_eq!(moves.len(), 8, "{moves:?}");
        assert!(moves.iter().all(|d| d.to == 3 && d.reason == Reason::Balance));
        assert_eq!(moves.iter().filter(|d| d.from == 1).count(), 4);
        assert_eq!(plan(&p, &set(&[1, 2, 3]), &set(&[]), &BTreeSet::new(), &Weights::new(), 3).len(), 3, "bounded by the concurrent moves");
    }

    #[test]
    fn moves_under_way_count_against_the_bound_and_cooling_partitions_stay() {
        let p = placed(&[(1, Some(2)), (1, None), (1, None), (1, None)]);
        let moves = plan(&p, &set(&[1, 2]), &set(&[]), &BTreeSet::new(), &Weights::new(), 2);
        assert_eq!(moves.len(), 1, "one move is under way already: {moves:?}");
        let cooling: BTreeSet<(String, i32)> = (1..4).map(|i| ("t".to_string(), i)).collect();
        assert!(plan(&p, &set(&[1, 2]), &set(&[]), &cooling, &Weights::new(), 4).is_empty(), "every candidate moved recently");
    }

    #[test]
    fn a_draining_broker_is_emptied_and_receives_nothing() {
        let p = placed(&[(1, None), (1, None), (2, None), (3, None)]);
        let moves = plan(&p, &set(&[1, 2, 3]), &set(&[3]), &BTreeSet::new(), &Weights::new(), 10);
        assert_eq!(moves.iter().filter(|d| d.reason == Reason::Drain).map(|d| (d.from, d.to)).collect::<Vec<_>>(), vec![(3, 2)]);
        assert!(moves.iter().all(|d| d.to != 3));
        let balanced = placed(&[(1, None), (2, None), (3, None)]);
        assert!(plan(&balanced, &set(&[1, 2, 3]), &set(&[]), &BTreeSet::new(), &Weights::new(), 10).is_empty(), "even: nothing to do");
    }

    #[test]
    fn hot_partitions_are_spread_even_when_the_counts_are_even() {
        // Two partitions each; broker 1 has both hot ones (weight 11 each).
        let p = placed(&[(1, None), (1, None), (2, None), (2, None)]);
        let weights: Weights = [(("t".to_string(), 0), 11.0), (("t".to_string(), 1), 11.0)].into_iter().collect();
        let moves = plan(&p, &set(&[1, 2]), &set(&[]), &BTreeSet::new(), &weights, 10);
        let hot_moved: Vec<_> = moves.iter().filter(|d| d.partition < 2).collect();
        assert_eq!(hot_moved.len(), 1, "one hot partition goes to broker 2: {moves:?}");
        assert_eq!((hot_moved[0].from, hot_moved[0].to), (1, 2));
        assert!(moves.iter().all(|d| d.reason == Reason::Balance));
        assert!(moves.len() <= 2, "and at most an idle one comes back: {moves:?}");
    }
}
