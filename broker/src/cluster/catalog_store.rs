//! The Iceberg catalog's pointers in etcd (`/floe-catalog/<cluster>/`), shared by a cluster's brokers: a write lands only when none of its keys changed since this broker read them.

use std::collections::HashMap;

use floe_catalog::store::CatalogStore;
use floe_catalog::CatalogError;
use parking_lot::Mutex;

use super::etcd::{Cmp, Etcd, Op};

/// The prefix of a cluster's catalog keys (apart from `/floe/<c>/`: catalog commits do not
/// wake the placement's readers).
pub fn prefix(cluster: &str) -> String {
    format!("/floe-catalog/{cluster}/")
}

/// What this broker last read.
#[derive(Default)]
struct Seen {
    /// The prefix's (count, newest change) when read; `None`: read again.
    version: Option<(i64, i64)>,
    /// Each key's last change, as read or as written here.
    revisions: HashMap<String, i64>,
}

/// Catalog entries as etcd keys, compare-and-swapped on their last change.
pub struct EtcdCatalogStore {
    etcd: Etcd,
    prefix: String,
    seen: Mutex<Seen>,
}

impl EtcdCatalogStore {
    pub fn new(etcd: Etcd, cluster: &str) -> Self {
        Self { etcd, prefix: prefix(cluster), seen: Mutex::default() }
    }
}

fn failed(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Storage(format!("etcd: {e}"))
}

#[async_trait::async_trait]
impl CatalogStore for EtcdCatalogStore {
    /// Nothing yet: the first `refresh` reads everything.
    fn load(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    async fn put(&self, entries: Vec<(String, Option<String>)>) -> Result<(), CatalogError> {
        let (conditions, ops): (Vec<Cmp>, Vec<Op>) = {
            let seen = self.seen.lock();
            entries
                .iter()
                .map(|(k, v)| {
                    let key = format!("{}{k}", self.prefix);
                    let cmp = match seen.revisions.get(k) {
                        Some(&r) => Cmp::ModRevision(key.clone(), r),
                        None => Cmp::Absent(key.clone()),
                    };
                    let op = match v {
                        Some(v) => Op::Put(key, v.clone().into_bytes()),
                        None => Op::Delete(key),
                    };
                    (cmp, op)
                })
                .unzip()
        };
        let outcome = self.etcd.txn(&conditions, &ops).await;
        let mut seen = self.seen.lock();
        seen.version = None;
        match outcome.map_err(failed)? {
            None => Err(CatalogError::CommitFailed("the catalog changed meanwhile (another broker); retry".into())),
            Some(revision) => {
                for (k, v) in entries {
                    match v {
                        Some(_) => seen.revisions.insert(k, revision),
                        None => seen.revisions.remove(&k),
                    };
                }
                Ok(())
            }
        }
    }

    async fn refresh(&self) -> Result<Option<Vec<(String, String)>>, CatalogError> {
        let version = self.etcd.prefix_version(&self.prefix).await.map_err(failed)?;
        if self.seen.lock().version == Some(version) {
            return Ok(None);
        }
        let kvs = self.etcd.prefix(&self.prefix).await.map_err(failed)?;
        let mut revisions = HashMap::with_capacity(kvs.len());
        let mut entries = Vec::with_capacity(kvs.len());
        for kv in kvs {
            let Some(k) = kv.key.strip_prefix(&self.prefix) else { continue };
            let value = String::from_utf8(kv.value).map_err(|e| failed(format!("{k}: {e}")))?;
            revisions.insert(k.to_string(), kv.mod_revision);
            entries.push((k.to_string(), value));
        }
        *self.seen.lock() = Seen { version: Some(version), revisions };
        Ok(Some(entries))
    }
}
