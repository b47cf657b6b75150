//! Where SCRAM users and ACLs are kept: the storage engine's metadata when a node runs alone; in a cluster, etcd (`/floe-security/<cluster>/`), mirrored on every broker and read again when it changed, so every broker knows every user and ACL.

use std::collections::BTreeMap;

use floe_s3stream::Engine;
use parking_lot::{Mutex, RwLock};

use crate::cluster::etcd::{Etcd, Op};
use crate::error::Result;

/// Users' and ACLs' durable keys.
pub enum SecurityStore {
    Engine(Engine),
    Shared(SharedKv),
}

impl SecurityStore {
    pub fn get(&self, key: &str) -> Option<String> {
        match self {
            SecurityStore::Engine(e) => e.kv_get(key),
            SecurityStore::Shared(s) => s.cache.read().get(key).cloned(),
        }
    }

    /// Every entry under `prefix`.
    pub fn scan(&self, prefix: &str) -> Vec<(String, String)> {
        match self {
            SecurityStore::Engine(e) => e.kv_scan(prefix),
            SecurityStore::Shared(s) => {
                s.cache.read().range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect()
            }
        }
    }

    /// Writes (or with `None` removes) entries, all or none.
    pub async fn put(&self, entries: Vec<(String, Option<String>)>) -> Result<()> {
        match self {
            SecurityStore::Engine(e) => Ok(e.kv_put(entries).await?),
            SecurityStore::Shared(s) => s.put(entries).await,
        }
    }
}

/// The cluster's users and ACLs in etcd, with this broker's copy.
pub struct SharedKv {
    etcd: Etcd,
    prefix: String,
    cache: RwLock<BTreeMap<String, String>>,
    /// The prefix's (count, newest change) when last read.
    version: Mutex<Option<(i64, i64)>>,
}

impl SharedKv {
    /// The cluster's entries, read once before the broker serves.
    pub async fn open(etcd: Etcd, cluster: &str) -> Result<SharedKv> {
        let kv = SharedKv { etcd, prefix: format!("/floe-security/{cluster}/"), cache: Default::default(), version: Default::default() };
        kv.refresh().await?;
        Ok(kv)
    }

    /// Reads the entries again if anything changed since; true when it did.
    pub async fn refresh(&self) -> Result<bool> {
        let version = self.etcd.prefix_version(&self.prefix).await?;
        if *self.version.lock() == Some(version) {
            return Ok(false);
        }
        let kvs = self.etcd.prefix(&self.prefix).await?;
        let entries = kvs.into_iter().filter_map(|kv| Some((kv.key.strip_prefix(&self.prefix)?.to_string(), String::from_utf8(kv.value).ok()?))).collect();
        *self.cache.write() = entries;
        *self.version.lock() = Some(version);
        Ok(true)
    }

    async fn put(&self, entries: Vec<(String, Option<String>)>) -> Result<()> {
        let ops: Vec<Op> = entries
            .iter()
            .map(|(k, v)| match v {
                Some(v) => Op::Put(format!("{}{k}", self.prefix), v.clone().into_bytes()),
                None => Op::Delete(format!("{}{k}", self.prefix)),
            })
            .collect();
        self.etcd.txn(&[], &ops).await?;
        let mut cache = self.cache.write();
        for (k, v) in entries {
            match v {
                Some(v) => cache.insert(k, v),
                None => cache.remove(&k),
            };
        }
        Ok(())
    }
}
