//! A node's membership: its broker key `/floe/<cluster>/brokers/<node_id>`, held by an etcd lease that a background task keeps alive (the key's create revision is the broker epoch), and the controller election.
//!
//! Joining fails while another live node holds the id. The controller is the broker that created
//! `/floe/<cluster>/controller` under its own lease; every broker tries at each renewal, so when
//! the controller's lease expires another takes over (the key's create revision is the
//! controller epoch). When the lease is lost (etcd unreachable
//! past the session timeout, or the process paused), the node is not ready until it has
//! registered again under a new lease — a new broker epoch, as Kafka's brokers re-register.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::etcd::Etcd;
use crate::error::{BrokerError, Result};

/// What a broker key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    pub node_id: i32,
    /// The advertised Kafka listeners, `NAME://host:port`.
    pub listeners: Vec<String>,
    /// When the node registered (its clock).
    pub registered_ms: i64,
}

/// A broker as listed: its record, epoch and lease, and whether it is the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveBroker {
    #[serde(flatten)]
    pub record: BrokerRecord,
    /// The revision that created the key: grows with every registration.
    pub epoch: i64,
    pub lease: i64,
    /// The controller's epoch when this broker is the controller.
    pub controller_epoch: Option<i64>,
}

/// What the controller key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerRecord {
    pub node_id: i32,
    /// The controller's broker epoch when it was elected.
    pub broker_epoch: i64,
}

/// The key of broker `node_id` in `cluster`.
pub fn broker_key(cluster: &str, node_id: i32) -> String {
    format!("{}brokers/{node_id}", super::root(cluster))
}

/// The controller key of `cluster`: created by the first broker to find it absent, held by that
/// broker's lease, so it goes with the broker.
pub fn controller_key(cluster: &str) -> String {
    format!("{}controller", super::root(cluster))
}

/// The controller of `cluster` and its epoch (the key's create revision), if one is elected.
pub async fn controller(etcd: &Etcd, cluster: &str) -> Result<Option<(ControllerRecord, i64)>> {
    let Some(kv) = etcd.get(&controller_key(cluster)).await? else { return Ok(None) };
    let record = serde_json::from_slice(&kv.value).map_err(|e| BrokerError::Coordination(format!("the controller key holds no controller record: {e}")))?;
    Ok(Some((record, kv.create_revision)))
}

/// Every live broker of `cluster`, by node id.
pub async fn list(etcd: &Etcd, cluster: &str) -> Result<Vec<LiveBroker>> {
    let prefix = format!("{}brokers/", super::root(cluster));
    let elected = controller(etcd, cluster).await?;
    let mut out = Vec::new();
    for kv in etcd.prefix(&prefix).await? {
        let record: BrokerRecord =
            serde_json::from_slice(&kv.value).map_err(|e| BrokerError::Coordination(format!("broker key {} holds no broker record: {e}", kv.key)))?;
        let controller_epoch = elected.as_ref().filter(|(c, _)| c.node_id == record.node_id && c.broker_epoch == kv.create_revision).map(|(_, e)| *e);
        out.push(LiveBroker { record, epoch: kv.create_revision, lease: kv.lease, controller_epoch });
    }
    out.sort_by_key(|b| b.record.node_id);
    Ok(out)
}

/// This node's membership.
pub struct Membership {
    etcd: Etcd,
    key: String,
    controller_key: String,
    /// The controller epoch while this node is the controller, else 0.
    controller_epoch: AtomicI64,
    record: BrokerRecord,
    ttl_s: i64,
    lease: AtomicI64,
    epoch: AtomicI64,
    registered: AtomicBool,
    /// Set once the node gave up its place for good (shutting down, or its storage failed): no
    /// registering again.
    retired: AtomicBool,
    /// Until when (the clock's ms) the lease is surely alive: the last successful grant or
    /// renewal was *sent* at most a TTL before. Acknowledgements stop past it.
    lease_valid_until_ms: AtomicI64,
    /// Set when the lease was found expired: the cluster may have taken this node for lost.
    /// Cleared by the cluster sync once a placement read after the new registration shows
    /// nothing was taken (`clear_suspicion`); no acknowledgement meanwhile.
    suspect: AtomicBool,
    clock: Arc<dyn crate::broker::Clock>,
}

impl Membership {
    /// Registers `record` in `cluster` under a lease of `session_timeout_ms` (whole seconds, at
    /// least one); fails when a live node holds the id.
    pub async fn join(etcd: Etcd, cluster: &str, record: BrokerRecord, session_timeout_ms: u64, clock: Arc<dyn crate::broker::Clock>) -> Result<Arc<Self>> {
        let ttl_s = session_timeout_ms.div_ceil(1000).max(1) as i64;
        let m = Arc::new(Self {
            etcd,
            key: broker_key(cluster, record.node_id),
            controller_key: controller_key(cluster),
            controller_epoch: AtomicI64::new(0),
            record,
            ttl_s,
            lease: AtomicI64::new(0),
            epoch: AtomicI64::new(0),
            registered: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            lease_valid_until_ms: AtomicI64::new(0),
            suspect: AtomicBool::new(false),
            clock,
        });
        m.register().await?;
        m.campaign().await;
        Ok(m)
    }

    /// Becomes the controller when there is none: creates the controller key under this node's
    /// lease. Run at every renewal, so a controller that left is replaced within a renewal of its
    /// lease expiring.
    async fn campaign(&self) {
        if !self.registered() {
            self.controller_epoch.store(0, Relaxed);
            return;
        }
        let (lease, broker_epoch) = (self.lease.load(Relaxed), self.epoch());
        let ours = ControllerRecord { node_id: self.record.node_id, broker_epoch };
        let value = match serde_json::to_vec(&ours) {
            Ok(v) => v,
            Err(e) => return tracing::error!(error = %e, "encoding the controller record"),
        };
        let epoch = match self.etcd.create(&self.controller_key, &value, lease).await {
            Ok(Some(epoch)) => {
                tracing::info!(node_id = ours.node_id, controller_epoch = epoch, "elected controller");
                epoch
            }
            // Taken: by us earlier (the same broker epoch) or by another broker.
            Ok(None) => match self.etcd.get(&self.controller_key).await {
                Ok(Some(kv)) if serde_json::from_slice::<ControllerRecord>(&kv.value).is_ok_and(|c| c == ours) => kv.create_revision,
                Ok(_) => 0,
                Err(e) => return tracing::warn!(error = %e, "reading the controller key failed"),
            },
            Err(e) => return tracing::warn!(error = %e, "campaigning for controller failed"),
        };
        let before = self.controller_epoch.swap(epoch, Relaxed);
        if before != 0 && epoch != before {
            tracing::warn!(node_id = ours.node_id, controller_epoch = before, "no longer the controller");
        }
    }

    /// The controller epoch while this node is the controller (as of its last renewal).
    pub fn controller_epoch(&self) -> Option<i64> {
        Some(self.controller_epoch.load(Relaxed)).filter(|&e| e > 0)
    }

    async fn register(&self) -> Result<()> {
        let sent_ms = self.clock.now_ms();
        let lease = self.etcd.grant(self.ttl_s).await?;
        let value = serde_json::to_vec(&self.record).map_err(|e| BrokerError::Internal(e.to_string()))?;
        match self.etcd.create(&self.key, &value, lease).await? {
            Some(epoch) => {
                self.lease_valid_until_ms.store(sent_ms + self.ttl_s * 1000, Relaxed);
                self.lease.store(lease, SeqCst);
                self.epoch.store(epoch, Relaxed);
                self.registered.store(true, SeqCst);
                if self.retired.load(SeqCst) {
                    // The node left while this registration was in flight.
                    self.revoke_registration().await;
                    return Ok(());
                }
                tracing::info!(node_id = self.record.node_id, epoch, lease, key = %self.key, "registered in the cluster");
                Ok(())
            }
            None => {
                let _ = self.etcd.revoke(lease).await;
                let holder = self.etcd.get(&self.key).await?.map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                Err(BrokerError::Coordination(format!("node id {} is taken by a live node: {}", self.record.node_id, holder.unwrap_or_default())))
            }
        }
    }

    /// Whether the lease is surely alive now: past its deadline a node that may have been taken
    /// for lost acknowledges nothing (the cluster may be handing its partitions on).
    pub fn lease_alive(&self) -> bool {
        !self.retired.load(Relaxed) && !self.suspect.load(Relaxed) && self.clock.now_ms() < self.lease_valid_until_ms.load(Relaxed)
    }

    /// Whether this node may acknowledge a durable append. `storage_fences`: its WAL refuses
    /// writes once another node took its storage over (the object WAL's fence), so an unknown
    /// lease — etcd unreachable — does not stop it; only a lease known lost or a retirement
    /// does. Otherwise (a file WAL) the lease must be surely alive.
    pub fn may_acknowledge(&self, storage_fences: bool) -> bool {
        if self.retired.load(Relaxed) || self.suspect.load(Relaxed) {
            return false;
        }
        storage_fences || self.lease_alive()
    }

    /// Whether the lease was lost and the node has not yet checked it kept its partitions.
    pub fn suspect(&self) -> bool {
        self.suspect.load(Relaxed)
    }

    /// The cluster sync found, after the new registration, that nothing was taken over.
    pub fn clear_suspicion(&self) {
        if self.suspect.swap(false, Relaxed) {
            tracing::info!(node_id = self.record.node_id, "registered again and kept every partition: acknowledging again");
        }
    }

    /// True while this node's key is held by its live lease.
    pub fn registered(&self) -> bool {
        self.registered.load(Relaxed)
    }

    /// The broker epoch of the current registration (0 before the first).
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Relaxed)
    }

    /// Keeps the lease alive every third of its TTL; registers again after losing it.
    pub fn spawn_keepalive(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let period = Duration::from_millis((self.ttl_s as u64 * 1000 / 3).max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(m) = weak.upgrade() else { break };
                m.keep_alive_once().await;
            }
        })
    }

    async fn keep_alive_once(&self) {
        self.renew().await;
        self.campaign().await;
    }

    async fn renew(&self) {
        if self.retired.load(SeqCst) {
            return;
        }
        if self.registered() {
            let sent_ms = self.clock.now_ms();
            match self.etcd.keep_alive(self.lease.load(Relaxed)).await {
                Ok(ttl) if ttl > 0 => {
                    self.lease_valid_until_ms.store(sent_ms + ttl * 1000, Relaxed);
                    return;
                }
                Ok(_) => {
                    self.suspect.store(true, Relaxed);
                    tracing::error!(node_id = self.record.node_id, "the cluster lease expired: not ready until registered again")
                }
                Err(e) => {
                    // etcd unreachable: the lease may still be alive; it is known lost once it
                    // answers 0 or the next registration finds the key gone.
                    tracing::warn!(node_id = self.record.node_id, error = %e, "cluster lease keep-alive failed");
                    return;
                }
            }
            self.registered.store(false, Relaxed);
        }
        if self.retired.load(SeqCst) {
            return;
        }
        if let Err(e) = self.register().await {
            tracing::warn!(node_id = self.record.node_id, error = %e, "registering in the cluster again failed; retrying");
        }
    }

    /// Leaves the cluster for good (until the process restarts): the lease, and so the key, goes
    /// at once, and the keep-alive task registers no more. True the first time.
    pub async fn retire(&self) -> bool {
        if self.retired.swap(true, SeqCst) {
            return false;
        }
        self.revoke_registration().await;
        true
    }

    /// Revokes the current lease if registered. Runs after `retired` is set — and again from
    /// `register` when a registration raced with the retirement — so whichever of the two sets
    /// `registered` last finds the other's mark and revokes.
    async fn revoke_registration(&self) {
        if self.registered.swap(false, SeqCst) {
            if let Err(e) = self.etcd.revoke(self.lease.load(SeqCst)).await {
                tracing::warn!(error = %e, "leaving the cluster failed; the key goes when its lease expires");
            }
        }
    }
}
