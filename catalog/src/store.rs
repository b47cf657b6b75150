//! Where the catalog keeps its pointers (namespaces and the metadata location of each table):
//! an injected key-value store with atomic multi-key writes. The broker keeps it in the storage
//! engine's metadata; tests in memory. Table metadata itself is JSON files in the object store.

use std::collections::BTreeMap;

use crate::error::CatalogError;

/// Durable catalog pointers.
#[async_trait::async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Every entry.
    fn load(&self) -> Vec<(String, String)>;
    /// Writes (or with `None` removes) entries, all or none. A store shared by several catalogs
    /// writes only when none of the entries changed since this catalog last read them (else
    /// `CommitFailed`, a 409); `Storage` when it could not write.
    async fn put(&self, entries: Vec<(String, Option<String>)>) -> Result<(), CatalogError>;
    /// A store shared with other catalogs: every entry when something changed since the last
    /// read (`None`: nothing did, or the store is this catalog's own).
    async fn refresh(&self) -> Result<Option<Vec<(String, String)>>, CatalogError> {
        Ok(None)
    }
}

/// A store in memory.
#[derive(Default)]
pub struct MemoryStore(std::sync::Mutex<BTreeMap<String, String>>);

impl MemoryStore {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        // A put replaces whole entries: poisoning cannot leave one half-written.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl CatalogStore for MemoryStore {
    fn load(&self) -> Vec<(String, String)> {
        self.map().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    async fn put(&self, entries: Vec<(String, Option<String>)>) -> Result<(), CatalogError> {
        let mut m = self.map();
        for (k, v) in entries {
            match v {
                Some(v) => m.insert(k, v),
                None => m.remove(&k),
            };
        }
        Ok(())
    }
}
