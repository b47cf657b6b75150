//! The Iceberg catalog's pointers in the storage engine's metadata (atomic across keys).

use floe_catalog::store::CatalogStore;
use floe_catalog::CatalogError;
use floe_s3stream::Engine;

/// Catalog entries as `catalog/…` keys of the engine's key-value metadata.
pub struct EngineCatalogStore(pub Engine);

#[async_trait::async_trait]
impl CatalogStore for EngineCatalogStore {
    fn load(&self) -> Vec<(String, String)> {
        self.0.kv_scan("catalog/")
    }

    async fn put(&self, entries: Vec<(String, Option<String>)>) -> Result<(), CatalogError> {
        self.0.kv_put(entries).await.map_err(|e| CatalogError::Storage(e.to_string()))
    }
}
