//! Cluster mode on etcd (`etcd_endpoints`): membership, the controller, and topics with their partition assignments.
//!
//! Without `etcd_endpoints` a node runs alone, exactly as before. Keys live under
//! `/floe/<cluster_name>/`: broker keys and the controller (`membership.rs`), topics and
//! assignments (`placement.rs`). Each broker applies the assignments to its own engine
//! (`sync.rs`): it opens what it owns, hands over what is asked to move. The etcd client speaks
//! etcd's JSON gateway (`etcd.rs`), so the build needs neither protoc nor a gRPC stack.

use std::sync::atomic::AtomicU64;

use parking_lot::RwLock;

pub mod balance;
pub mod catalog_store;
pub mod etcd;
pub mod load;
pub mod membership;
pub mod peers;
pub mod placement;
pub mod recovery;
pub mod sync;

/// The key prefix of a cluster.
pub fn root(cluster_name: &str) -> String {
    format!("/floe/{cluster_name}/")
}

/// Counters of the cluster mode, for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Partitions handed over to another broker.
    pub moves_out: AtomicU64,
    /// Partitions taken over (from a handoff or from this broker's own chain).
    pub takeovers: AtomicU64,
    /// Rounds of reading etcd that failed.
    pub sync_failures: AtomicU64,
    /// Lost brokers whose partitions this node (as controller) took over.
    pub recoveries: AtomicU64,
    /// Moves the balancer asked for to empty a draining broker.
    pub drain_moves: AtomicU64,
    /// Moves the balancer asked for to even the partitions out.
    pub balance_moves: AtomicU64,
}

/// This node's view of its cluster.
pub struct Cluster {
    pub etcd: etcd::Etcd,
    pub name: String,
    pub node_id: i32,
    /// Live brokers, as last read.
    pub brokers: RwLock<Vec<membership::LiveBroker>>,
    /// Topics and assignments, as last read.
    pub placement: RwLock<placement::Placement>,
    /// The cluster keys' (count, newest change) when the placement was last applied in full;
    /// `None` when something is left to retry.
    pub applied_version: parking_lot::Mutex<Option<(i64, i64)>>,
    pub stats: ClusterStats,
    /// Set when a partition this node served was reassigned without its handoff: the cluster
    /// took this node for lost and its storage over.
    pub taken_over: std::sync::atomic::AtomicBool,
    /// The controller's balancer (its cooldowns).
    pub balancer: balance::Balancer,
    /// This node's per-partition byte rates, published for the balancer.
    pub load: load::LoadMeter,
    /// Lost brokers (file WAL) whose partitions wait for them; logged once each.
    pub waiting_for: parking_lot::Mutex<std::collections::BTreeSet<i32>>,
    /// Connections to the other brokers.
    pub peers: peers::Peers,
    /// When users and ACLs were last looked for in etcd (the broker's clock).
    pub security_checked_ms: std::sync::atomic::AtomicI64,
}

impl Cluster {
    /// A view of `name` on `etcd`, for node `node_id`; empty until the first sync.
    pub fn new(etcd: etcd::Etcd, name: &str, node_id: i32) -> Self {
        Self {
            etcd,
            name: name.to_string(),
            node_id,
            brokers: Default::default(),
            placement: Default::default(),
            applied_version: Default::default(),
            peers: Default::default(),
            security_checked_ms: Default::default(),
            stats: Default::default(),
            waiting_for: Default::default(),
            taken_over: Default::default(),
            balancer: Default::default(),
            load: Default::default(),
        }
    }

    /// Owners for `count` new partitions: the live brokers not in `draining` in turn, starting
    /// at a place that depends on `topic` (this node alone before any broker is known).
    pub fn place(&self, topic: &str, count: i32, draining: &std::collections::BTreeSet<i32>) -> Vec<i32> {
        let mut ids: Vec<i32> = self.brokers.read().iter().map(|b| b.record.node_id).filter(|id| !draining.contains(id)).collect();
        if ids.is_empty() {
            ids.push(self.node_id);
        }
        let start = topic.bytes().fold(0usize, |h, c| h.wrapping_mul(31).wrapping_add(usize::from(c)));
        (0..count as usize).map(|i| ids[(start + i) % ids.len()]).collect()
    }

    /// The advertised `host:port` of broker `node` for listener `listener` (its first listener
    /// when it has none of that name).
    pub fn address_of(&self, node: i32, listener: &str) -> Option<(String, i32)> {
        let brokers = self.brokers.read();
        let b = brokers.iter().find(|b| b.record.node_id == node)?;
        let pick =
            b.record.listeners.iter().find(|l| l.split("://").next().is_some_and(|n| n.eq_ignore_ascii_case(listener))).or(b.record.listeners.first())?;
        let addr = pick.split("://").nth(1)?;
        Some(crate::broker::split_host_port(addr))
    }

    /// Every live broker with its address for `listener`.
    pub fn addresses(&self, listener: &str) -> Vec<(i32, String, i32)> {
        let ids: Vec<i32> = self.brokers.read().iter().map(|b| b.record.node_id).collect();
        ids.into_iter().filter_map(|id| self.address_of(id, listener).map(|(h, p)| (id, h, p))).collect()
    }

    /// The elected controller's node id, as last read.
    pub fn controller(&self) -> Option<i32> {
        self.brokers.read().iter().find(|b| b.controller_epoch.is_some()).map(|b| b.record.node_id)
    }
}
