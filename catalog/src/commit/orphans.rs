//! Orphan files: data files under a table's `data/` folder, and manifests and manifest lists
//! (`.avro`) under its `metadata/` folder, that no snapshot reaches — written for a commit that
//! never happened (a crash between upload and commit) — deleted once old enough that no writer can
//! still be about to commit them. Metadata JSON files are never touched.

use futures::TryStreamExt;
use iceberg::spec::TableMetadata;

use super::Committer;
use crate::error::{CatalogError, Result};

impl Committer {
    /// Deletes files under `{table location}/data/` that no snapshot of `meta` reaches and that were
    /// last modified before `older_than_ms` (ms since the epoch). Returns how many went; without a
    /// storage that can list, none.
    pub async fn remove_orphans(&self, meta: &TableMetadata, older_than_ms: i64) -> Result<usize> {
        let Some(storage) = &self.storage else { return Ok(0) };
        let root = meta.location().trim_end_matches('/');
        let mut old: Vec<object_store::ObjectMeta> = Vec::new();
        // Every file under data/; only manifests and manifest lists (.avro) under metadata/.
        for (folder, avro_only) in [("data", false), ("metadata", true)] {
            let candidate = |name: &str| !avro_only || name.ends_with(".avro");
            let dir = format!("{root}/{folder}");
            let prefix = storage.path(&dir)?;
            let listed: Vec<object_store::ObjectMeta> =
                storage.store().list(Some(&prefix)).try_collect().await.map_err(|e| CatalogError::Storage(format!("listing {dir}: {e}")))?;
            old.extend(listed.into_iter().filter(|o| o.last_modified.timestamp_millis() < older_than_ms && o.location.filename().is_some_and(candidate)));
        }
        if old.is_empty() {
            return Ok(0);
        }
        // Compared as object paths, so two spellings of one location cannot make a live file look orphaned.
        let reachable: std::collections::HashSet<object_store::path::Path> =
            self.reachable(meta, meta.snapshots().map(|s| s.snapshot_id())).await?.iter().filter_map(|l| storage.path(l).ok()).collect();
        let mut deleted = 0;
        for f in old.iter().filter(|o| !reachable.contains(&o.location)).filter_map(|o| storage.location(&o.location)) {
            match self.io.delete(&f).await {
                Ok(()) => deleted += 1,
                Err(e) => tracing::warn!(file = %f, error = %e, "orphan file not deleted; tried again later"),
            }
        }
        if deleted > 0 {
            tracing::info!(table = %meta.location(), files = deleted, "orphan files removed");
        }
        Ok(deleted)
    }
}
