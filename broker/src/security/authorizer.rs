//! The authorizer: ACL bindings durable in the security store (`security/acl/<digest>`; the engine's metadata, or etcd in a cluster), decisions for every request, denials logged and counted.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::store::SecurityStore;
use parking_lot::RwLock;

use super::acl::{decide, AclBinding, AclFilter, Operation, Permission, ResourceType};
use crate::error::{BrokerError, Result};
use crate::settings::Settings;

const PREFIX: &str = "security/acl/";
/// Most bindings kept (they live in the engine's manifest).
pub const BINDINGS_MAX: usize = 10_000;

/// Decides who may do what; off (`authorizer = false`), everything is allowed.
pub struct Authorizer {
    store: Arc<SecurityStore>,
    enabled: bool,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    bindings: RwLock<Arc<Vec<AclBinding>>>,
    writes: tokio::sync::Mutex<()>,
    /// Requests (or parts of them) refused.
    pub denials: AtomicU64,
}

fn key(b: &AclBinding) -> Result<String> {
    let json = serde_json::to_string(b).map_err(|e| BrokerError::Internal(e.to_string()))?;
    let d = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
    Ok(format!("{PREFIX}{}", d.as_ref().iter().map(|x| format!("{x:02x}")).collect::<String>()))
}

/// An address as ACL hosts name it (IPv4-mapped IPv6 as IPv4).
pub fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}

/// The bindings in `store`, sorted (one that does not parse is logged and left out).
fn stored(store: &SecurityStore) -> Vec<AclBinding> {
    let mut bindings: Vec<AclBinding> = Vec::new();
    for (k, v) in store.scan(PREFIX) {
        match serde_json::from_str(&v) {
            Ok(b) => bindings.push(b),
            Err(e) => tracing::error!(key = %k, error = %e, "a stored ACL does not parse and is ignored"),
        }
    }
    bindings.sort();
    bindings
}

impl Authorizer {
    /// The bindings stored in `store`, with the settings' switches.
    pub fn open(store: Arc<SecurityStore>, s: &Settings) -> Authorizer {
        let bindings = stored(&store);
        Authorizer {
            store,
            enabled: s.authorizer,
            super_users: s.super_users.clone(),
            allow_if_no_acl: s.allow_everyone_if_no_acl_found,
            bindings: RwLock::new(Arc::new(bindings)),
            writes: tokio::sync::Mutex::new(()),
            denials: AtomicU64::new(0),
        }
    }

    /// Reads the bindings again (another broker of the cluster changed them).
    pub async fn reload(&self) {
        let _order = self.writes.lock().await;
        *self.bindings.write() = Arc::new(stored(&self.store));
    }

    /// Whether ACLs are enforced.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `principal` at `ip` may do `op` on resource `name` of type `t`, without logging
    /// a denial (for listings that show only what may be seen).
    pub fn permits(&self, principal: &str, ip: IpAddr, op: Operation, t: ResourceType, name: &str) -> bool {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let bindings = self.bindings.read().clone();
        decide(bindings.iter(), principal, Some(&host_of(ip)), op, t, name, self.allow_if_no_acl)
    }

    /// As [`Authorizer::authorize`] for a caller whose address is not known (the REST catalog):
    /// denials for any host apply, allowances only for every host.
    pub fn authorize_from_anywhere(&self, principal: &str, op: Operation, t: ResourceType, name: &str) -> bool {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let bindings = self.bindings.read().clone();
        let ok = decide(bindings.iter(), principal, None, op, t, name, self.allow_if_no_acl);
        if !ok {
            self.denials.fetch_add(1, Relaxed);
            tracing::info!(principal, operation = ?op, resource_type = t.name(), resource = name, "authorization denied (catalog)");
        }
        ok
    }

    /// Whether `principal` may do `op` on some resource of type `t` (Kafka's authorization by
    /// resource type: InitProducerId for a producer with Write on any topic).
    pub fn permits_any(&self, principal: &str, ip: IpAddr, op: Operation, t: ResourceType) -> bool {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let host = host_of(ip);
        let bindings = self.bindings.read().clone();
        let of_type = || bindings.iter().filter(|b| b.resource_type == t);
        if self.allow_if_no_acl && of_type().next().is_none() {
            return true;
        }
        of_type().any(|b| b.permission == Permission::Allow && b.applies_to(principal, &host) && op.granted_by().contains(&b.operation))
    }

    /// As [`Authorizer::permits`], and a denial is logged and counted.
    pub fn authorize(&self, principal: &str, ip: IpAddr, op: Operation, t: ResourceType, name: &str) -> bool {
        let ok = self.permits(principal, ip, op, t, name);
        if !ok {
            self.denials.fetch_add(1, Relaxed);
            tracing::info!(principal, host = %host_of(ip), operation = ?op, resource_type = t.name(), resource = name, "authorization denied");
        }
        ok
    }

    /// The bindings that pass `filter`.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.bindings.read().iter().filter(|b| filter.matches(b)).cloned().collect()
    }

    /// Stores bindings (each checked on its own; one durable write for those that pass).
    pub async fn create(&self, bindings: Vec<AclBinding>) -> Vec<Result<()>> {
        if !self.enabled {
            return bindings.iter().map(|_| Err(BrokerError::SecurityDisabled)).collect();
        }
        let _order = self.writes.lock().await;
        let current = self.bindings.read().clone();
        let mut next: Vec<AclBinding> = current.as_ref().clone();
        let mut results = Vec::with_capacity(bindings.len());
        let mut entries = Vec::new();
        for b in bindings {
            let r = b.check().map_err(BrokerError::InvalidRequest).and_then(|()| {
                if next.contains(&b) {
                    return Ok(None);
                }
                if next.len() >= BINDINGS_MAX {
                    return Err(BrokerError::InvalidRequest(format!("at most {BINDINGS_MAX} ACLs are kept")));
                }
                let json = serde_json::to_string(&b).map_err(|e| BrokerError::Internal(e.to_string()))?;
                Ok(Some((key(&b)?, json, b)))
            });
            results.push(r.map(|new| {
                if let Some((k, json, b)) = new {
                    entries.push((k, Some(json)));
                    next.push(b);
                }
            }));
        }
        if !entries.is_empty() {
            if let Err(e) = self.store.put(entries).await {
                let msg = e.to_string();
                return results.into_iter().map(|r| r.and(Err(BrokerError::Internal(format!("storing ACLs: {msg}"))))).collect();
            }
            next.sort();
            *self.bindings.write() = Arc::new(next);
        }
        results
    }

    /// Removes the bindings each filter matches; returns them per filter.
    pub async fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>> {
        if !self.enabled {
            return Err(BrokerError::SecurityDisabled);
        }
        let _order = self.writes.lock().await;
        let current = self.bindings.read().clone();
        let per_filter: Vec<Vec<AclBinding>> = filters.iter().map(|f| current.iter().filter(|b| f.matches(b)).cloned().collect()).collect();
        let gone: std::collections::BTreeSet<&AclBinding> = per_filter.iter().flatten().collect();
        if !gone.is_empty() {
            let entries = gone.iter().map(|b| key(b).map(|k| (k, None))).collect::<Result<Vec<_>>>()?;
            self.store.put(entries).await?;
            let next: Vec<AclBinding> = current.iter().filter(|b| !gone.contains(b)).cloned().collect();
            *self.bindings.write() = Arc::new(next);
        }
        Ok(per_filter)
    }
}
