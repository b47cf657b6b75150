//! Snapshot expiry: snapshots older than a time (or beyond the newest M), beyond the last N of
//! `main` and not named by any ref, are removed in one commit; then every file only they reached
//! (manifest lists, manifests, data and delete files) is deleted.

use std::collections::HashSet;
use std::sync::Arc;

use iceberg::spec::TableMetadata;
use iceberg::{TableRequirement, TableUpdate};

use super::Committer;
use crate::catalog::{LoadedTable, Namespace};
use crate::error::{CatalogError, Result};

/// What an expiry did.
#[derive(Debug, Default, Clone)]
pub struct ExpireReport {
    pub expired_snapshot_ids: Vec<i64>,
    pub deleted_files: usize,
}

/// Snapshot ids named by a ref (branch or tag). The metadata type keeps refs private; its JSON form
/// has them.
fn ref_heads(meta: &TableMetadata) -> HashSet<i64> {
    let mut out = HashSet::new();
    if let Ok(v) = serde_json::to_value(meta) {
        if let Some(refs) = v.get("refs").and_then(|r| r.as_object()) {
            out.extend(refs.values().filter_map(|r| r.get("snapshot-id").and_then(|s| s.as_i64())));
        }
    }
    out.extend(meta.current_snapshot_id());
    out
}

/// Which snapshots an expiry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Snapshots older than this (ms since the epoch) expire...
    pub older_than_ms: i64,
    /// ...except the newest `retain_last` of `main`'s history (at least one)...
    pub retain_last: usize,
    /// ...and beyond the newest `retain_max` snapshots, younger ones expire too: a table
    /// committing every 250 ms would otherwise keep 14,400 snapshots an hour, listed in a
    /// metadata file rewritten by every commit.
    pub retain_max: usize,
}

/// The snapshots that expire under `r`; a ref's head never does.
pub fn to_expire(meta: &TableMetadata, r: Retention) -> Vec<i64> {
    let mut keep = ref_heads(meta);
    let mut cursor = meta.current_snapshot();
    let mut n = 0;
    while let Some(s) = cursor {
        if n >= r.retain_last.max(1) {
            break;
        }
        keep.insert(s.snapshot_id());
        n += 1;
        cursor = s.parent_snapshot_id().and_then(|p| meta.snapshot_by_id(p));
    }
    let mut newest: Vec<(i64, i64)> = meta.snapshots().map(|s| (s.sequence_number(), s.snapshot_id())).collect();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    let recent: HashSet<i64> = newest.into_iter().take(r.retain_max.max(1)).map(|(_, id)| id).collect();
    let mut out: Vec<i64> = meta
        .snapshots()
        .filter(|s| (s.timestamp_ms() < r.older_than_ms || !recent.contains(&s.snapshot_id())) && !keep.contains(&s.snapshot_id()))
        .map(|s| s.snapshot_id())
        .collect();
    out.sort_unstable();
    out
}

/// Snapshots removed from a table whose files are not deleted yet: the table as it was before,
/// which still reaches them.
#[derive(Debug, Clone)]
pub struct Expired {
    pub before: Arc<TableMetadata>,
    pub snapshot_ids: Vec<i64>,
}

impl Committer {
    /// Expires snapshots of `base` (see [`to_expire`]) and deletes the files only they reached.
    pub async fn expire_snapshots(&self, ns: &Namespace, name: &str, base: &LoadedTable, retention: Retention) -> Result<(LoadedTable, ExpireReport)> {
        let (after, expired) = self.remove_snapshots(ns, name, base, retention).await?;
        let Some(expired) = expired else { return Ok((after, ExpireReport::default())) };
        let deleted_files = self.delete_expired(&expired, &after.metadata).await?;
        Ok((after, ExpireReport { expired_snapshot_ids: expired.snapshot_ids, deleted_files }))
    }

    /// The commit half of an expiry: removes the snapshots of `base` that expire (one metadata
    /// update, no file read). Their files go with [`Self::delete_expired`], which may run later
    /// and beside further commits.
    pub async fn remove_snapshots(&self, ns: &Namespace, name: &str, base: &LoadedTable, retention: Retention) -> Result<(LoadedTable, Option<Expired>)> {
        let meta = base.metadata.as_ref();
        let expired = to_expire(meta, retention);
        if expired.is_empty() {
            return Ok((base.clone(), None));
        }
        let requirements = vec![
            TableRequirement::UuidMatch { uuid: meta.uuid() },
            TableRequirement::RefSnapshotIdMatch { r#ref: "main".into(), snapshot_id: meta.current_snapshot_id() },
        ];
        let updates = vec![TableUpdate::RemoveSnapshots { snapshot_ids: expired.clone() }];
        let after = self.target.commit(ns, name, requirements, updates).await?;
        Ok((after, Some(Expired { before: base.metadata.clone(), snapshot_ids: expired })))
    }

    /// The file half of an expiry: deletes every file only the expired snapshots reached, as read
    /// from the table before they went, that no snapshot of `after` (the table as committed by
    /// the removal, or any later version: later snapshots only add files or drop those the
    /// current one holds) reaches. Returns how many files went.
    pub async fn delete_expired(&self, expired: &Expired, after: &TableMetadata) -> Result<usize> {
        let candidates = self.reachable(&expired.before, expired.snapshot_ids.iter().copied()).await?;
        let still = self.reachable(after, after.snapshots().map(|s| s.snapshot_id())).await?;
        let mut deleted = 0;
        for f in candidates.difference(&still) {
            match self.io.delete(f).await {
                Ok(()) => deleted += 1,
                Err(e) => tracing::warn!(file = %f, error = %e, "expired file not deleted; it is unreferenced and can be removed by hand"),
            }
        }
        Ok(deleted)
    }

    /// Every file the given snapshots reach: manifest lists, manifests, data and delete files.
    pub(super) async fn reachable(&self, meta: &TableMetadata, snapshots: impl Iterator<Item = i64>) -> Result<HashSet<String>> {
        let mut files = HashSet::new();
        let mut seen_manifests = HashSet::new();
        for id in snapshots {
            let Some(s) = meta.snapshot_by_id(id) else { continue };
            files.insert(s.manifest_list().to_string());
            for mf in self.manifests(meta, Some(id)).await? {
                if !seen_manifests.insert(mf.manifest_path.clone()) {
                    continue;
                }
                let manifest = mf.load_manifest(&self.io).await.map_err(|e| CatalogError::Storage(format!("{}: {e}", mf.manifest_path)))?;
                files.insert(mf.manifest_path.clone());
                // A `Deleted` entry still names its file: the file stays while an older snapshot that
                // had it alive stays, and that snapshot's own manifests reach it.
                files.extend(manifest.entries().iter().filter(|e| e.is_alive()).map(|e| e.file_path().to_string()));
            }
        }
        Ok(files)
    }
}
