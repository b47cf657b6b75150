//! Floe's own commit path: manifests, manifest list and snapshot written here, then `AddSnapshot` +
//! `SetSnapshotRef` committed against the table as the caller saw it.
//!
//! Operations: append, row-delta (data and position-delete files in one snapshot, all with the new
//! sequence number), replace (files out, files in; added files keep the sequence number the
//! rewrite started from) and snapshot expiry with deletion of files nothing references any more.
//! A conflict is returned to the caller as [`CatalogError::CommitFailed`]: the caller re-reads what
//! is committed before trying again (that is what makes exactly-once possible).

mod expire;
mod orphans;
mod summary;
mod target;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, Manifest, ManifestContentType, ManifestFile, ManifestList, ManifestListWriter, ManifestStatus,
    ManifestWriterBuilder, Operation, Snapshot, SnapshotReference, SnapshotRetention, Summary, TableMetadata,
};
use iceberg::{TableRequirement, TableUpdate};
use summary::Side;

pub use expire::{ExpireReport, Expired, Retention};
pub use target::CommitTarget;

use crate::catalog::{LoadedTable, Namespace};
use crate::error::{CatalogError, Result};
use crate::files::NewFile;

/// Manifests of one kind (data or deletes) carried over before they are merged into one.
pub const MANIFESTS_MERGE_COUNT_MIN: usize = 32;

/// Manifests read at once where a commit reads many (a merge, a replace, the live files).
const MANIFEST_READS_AT_ONCE: usize = 8;

/// What a snapshot changes.
#[derive(Debug, Clone)]
pub enum Change {
    /// New data files.
    Append(Vec<NewFile>),
    /// New data files and position-delete files together, all at the new sequence number.
    RowDelta { data: Vec<NewFile>, deletes: Vec<NewFile> },
    /// Files (data or delete) out by path, files in. Every removed file must still be live.
    Replace { removed: HashSet<String>, data: Vec<NewFile>, deletes: Vec<NewFile> },
}

/// A live file of a snapshot, with the sequence number that orders it against deletes.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub file: DataFile,
    pub sequence_number: i64,
    pub partition_spec_id: i32,
}

/// Commits snapshots to one catalog, reading and writing files through one `FileIO`.
#[derive(Clone)]
pub struct Committer {
    target: Arc<dyn CommitTarget>,
    io: FileIO,
    /// The storage behind `io`, when known: it can list files (orphan removal needs that).
    storage: Option<crate::storage::ObjectStorage>,
}

fn iceberg(context: &str) -> impl Fn(iceberg::Error) -> CatalogError + '_ {
    move |e| CatalogError::Storage(format!("{context}: {e}"))
}

impl Committer {
    /// A committer to `target`, writing through `io`.
    pub fn new(target: Arc<dyn CommitTarget>, io: FileIO) -> Self {
        Committer { target, io, storage: None }
    }

    /// A committer to `target`, writing through `storage` (which can also list files).
    pub fn with_storage(target: Arc<dyn CommitTarget>, storage: crate::storage::ObjectStorage) -> Self {
        Committer { target, io: storage.clone().file_io(), storage: Some(storage) }
    }

    /// The catalog this commits to.
    pub fn target(&self) -> &Arc<dyn CommitTarget> {
        &self.target
    }

    /// The file IO this writes with.
    pub fn io(&self) -> &FileIO {
        &self.io
    }

    /// The manifests of a snapshot (none for a table without one).
    pub async fn manifests(&self, meta: &TableMetadata, snapshot_id: Option<i64>) -> Result<Vec<ManifestFile>> {
        let Some(snapshot) = snapshot_id.and_then(|id| meta.snapshot_by_id(id)) else { return Ok(Vec::new()) };
        let bytes = self.io.new_input(snapshot.manifest_list()).map_err(iceberg("manifest list"))?.read().await.map_err(iceberg("manifest list"))?;
        let list = ManifestList::parse_with_version(&bytes, meta.format_version()).map_err(iceberg(snapshot.manifest_list()))?;
        Ok(list.consume_entries().into_iter().collect())
    }

    /// The manifests' contents, in their order, up to `MANIFEST_READS_AT_ONCE` read at a time.
    async fn load_all(&self, manifests: &[ManifestFile]) -> Result<Vec<Manifest>> {
        // Owned items and IO: a borrowed closure argument would make the future not `Send` for
        // every lifetime, which spawned callers need.
        futures::stream::iter(manifests.iter().cloned())
            .map(|mf| {
                let io = self.io.clone();
                async move { mf.load_manifest(&io).await.map_err(iceberg(&mf.manifest_path)) }
            })
            .buffered(MANIFEST_READS_AT_ONCE)
            .try_collect()
            .await
    }

    /// Every live file (data and deletes) of the table's current snapshot.
    pub async fn live_files(&self, meta: &TableMetadata) -> Result<Vec<LiveFile>> {
        let mut out = Vec::new();
        let manifests = self.manifests(meta, meta.current_snapshot_id()).await?;
        for (mf, manifest) in manifests.iter().zip(self.load_all(&manifests).await?) {
            for e in manifest.entries() {
                if e.is_alive() {
                    out.push(LiveFile {
                        file: e.data_file().clone(),
                        sequence_number: e.sequence_number().unwrap_or(0),
                        partition_spec_id: mf.partition_spec_id,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Commits `change` on top of `base` (the table as the caller last read it), with `properties`
    /// added to the snapshot summary. Returns the table as committed.
    pub async fn commit(&self, ns: &Namespace, name: &str, base: &LoadedTable, change: Change, properties: &HashMap<String, String>) -> Result<LoadedTable> {
        let meta = base.metadata.as_ref();
        if meta.format_version() != FormatVersion::V2 {
            return Err(CatalogError::BadRequest(format!(
                "{}.{name}: Floe commits to format version 2 tables, this one is {:?}",
                ns.join("."),
                meta.format_version()
            )));
        }
        let parent = meta.current_snapshot().cloned();
        let parent_id = parent.as_ref().map(|s| s.snapshot_id());
        let seq = meta.next_sequence_number();
        let snapshot_id = fresh_snapshot_id(meta);
        let mut written: Vec<String> = Vec::new();
        let result = self.write_and_commit(ns, name, base, change, properties, parent_id, seq, snapshot_id, &mut written).await;
        if let Err(CatalogError::CommitFailed(_)) = &result {
            // Definitely not committed: what this attempt wrote is garbage. (Data files belong to
            // the caller, who may commit them on the next attempt.)
            for f in written {
                let _ = self.io.delete(&f).await;
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_and_commit(
        &self,
        ns: &Namespace,
        name: &str,
        base: &LoadedTable,
        change: Change,
        properties: &HashMap<String, String>,
        parent_id: Option<i64>,
        seq: i64,
        snapshot_id: i64,
        written: &mut Vec<String>,
    ) -> Result<LoadedTable> {
        let meta = base.metadata.as_ref();
        let (operation, data, deletes, removed, data_seq) = match change {
            Change::Append(data) => (Operation::Append, data, Vec::new(), HashSet::new(), seq),
            Change::RowDelta { data, deletes } => {
                (if data.is_empty() && !deletes.is_empty() { Operation::Delete } else { Operation::Overwrite }, data, deletes, HashSet::new(), seq)
            }
            Change::Replace { removed, data, deletes } => {
                let start = meta.current_snapshot().map_or(seq, |s| s.sequence_number());
                (Operation::Replace, data, deletes, removed, start)
            }
        };
        for f in &data {
            if f.file.content_type() != DataContentType::Data {
                return Err(CatalogError::BadRequest(format!("{} is not a data file", f.file.file_path())));
            }
        }
        for f in &deletes {
            if f.file.content_type() != DataContentType::PositionDeletes {
                return Err(CatalogError::BadRequest(format!("{} is not a position-delete file", f.file.file_path())));
            }
        }
        let mut added = Side::default();
        let mut gone = Side::default();
        let mut manifests = Vec::new();
        // One manifest per (content, partition spec): a manifest holds files of one spec.
        for (content, files) in [(ManifestContentType::Data, data), (ManifestContentType::Deletes, deletes)] {
            let mut by_spec: BTreeMap<i32, Vec<DataFile>> = BTreeMap::new();
            for f in files {
                by_spec.entry(f.partition_spec_id).or_default().push(f.file);
            }
            for (spec_id, files) in by_spec {
                let mut w = self.manifest_writer(meta, snapshot_id, spec_id, content, written)?;
                for f in files {
                    added.add(&f);
                    w.add_file(f, data_seq).map_err(iceberg("manifest"))?;
                }
                manifests.push(w.write_manifest_file().await.map_err(iceberg("manifest"))?);
            }
        }

        // Carry the parent's manifests over: rewritten where a file leaves, merged when many.
        let mut found = HashSet::new();
        let parents = self.manifests(meta, parent_id).await?;
        // Only a commit that removes files reads the parent's manifests.
        let (mut carried, to_read) = if removed.is_empty() { (parents, Vec::new()) } else { (Vec::new(), parents) };
        let contents = self.load_all(&to_read).await?;
        for (mf, manifest) in to_read.into_iter().zip(contents) {
            if !manifest.entries().iter().any(|e| e.is_alive() && removed.contains(e.file_path())) {
                carried.push(mf);
                continue;
            }
            let mut w = self.manifest_writer(meta, snapshot_id, mf.partition_spec_id, mf.content, written)?;
            for e in manifest.entries() {
                if !e.is_alive() {
                    continue;
                }
                let (eseq, fseq) = (e.sequence_number().unwrap_or(0), e.file_sequence_number);
                if removed.contains(e.file_path()) {
                    found.insert(e.file_path().to_string());
                    gone.add(e.data_file());
                    w.add_delete_file(e.data_file().clone(), eseq, fseq.or(Some(eseq))).map_err(iceberg("manifest"))?;
                } else {
                    w.add_existing_file(e.data_file().clone(), e.snapshot_id().unwrap_or(snapshot_id), eseq, fseq.or(Some(eseq)))
                        .map_err(iceberg("manifest"))?;
                }
            }
            manifests.push(w.write_manifest_file().await.map_err(iceberg("manifest"))?);
        }
        if let Some(missing) = removed.iter().find(|p| !found.contains(*p)) {
            return Err(CatalogError::CommitFailed(format!("{missing} is no longer a live file of {}.{name}", ns.join("."))));
        }
        manifests.extend(self.merge_small(meta, snapshot_id, carried, written).await?);

        let list_location = format!("{}/metadata/snap-{snapshot_id}-1-{}.avro", meta.location().trim_end_matches('/'), uuid::Uuid::new_v4());
        written.push(list_location.clone());
        let out = self.io.new_output(&list_location).map_err(iceberg("manifest list"))?;
        let mut list = ManifestListWriter::v2(out.writer().await.map_err(iceberg("manifest list"))?, snapshot_id, parent_id, seq);
        list.add_manifests(manifests.into_iter()).map_err(iceberg("manifest list"))?;
        list.close().await.map_err(iceberg("manifest list"))?;

        let parent_summary = meta.current_snapshot().map(|s| &s.summary().additional_properties);
        let summary = summary::build(parent_summary, added, gone, properties);
        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(parent_id)
            .with_sequence_number(seq)
            .with_timestamp_ms(now_ms().max(meta.last_updated_ms()))
            .with_manifest_list(list_location)
            .with_summary(Summary { operation, additional_properties: summary })
            .with_schema_id(meta.current_schema_id())
            .build();
        let requirements =
            vec![TableRequirement::UuidMatch { uuid: meta.uuid() }, TableRequirement::RefSnapshotIdMatch { r#ref: "main".into(), snapshot_id: parent_id }];
        let updates = vec![
            TableUpdate::AddSnapshot { snapshot },
            TableUpdate::SetSnapshotRef {
                ref_name: "main".into(),
                reference: SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
            },
        ];
        self.target.commit(ns, name, requirements, updates).await
    }

    fn manifest_writer(
        &self,
        meta: &TableMetadata,
        snapshot_id: i64,
        spec_id: i32,
        content: ManifestContentType,
        written: &mut Vec<String>,
    ) -> Result<iceberg::spec::ManifestWriter> {
        let spec = meta.partition_spec_by_id(spec_id).ok_or_else(|| CatalogError::Storage(format!("partition spec {spec_id} is not in the table")))?;
        let location = format!("{}/metadata/{}-m{}.avro", meta.location().trim_end_matches('/'), uuid::Uuid::new_v4(), written.len());
        written.push(location.clone());
        let out = self.io.new_output(&location).map_err(iceberg("manifest"))?;
        let b = ManifestWriterBuilder::new(out, Some(snapshot_id), meta.current_schema().clone(), spec.as_ref().clone());
        Ok(match content {
            ManifestContentType::Data => b.build_v2_data(),
            ManifestContentType::Deletes => b.build_v2_deletes(),
        })
    }

    /// Merges carried manifests of one (content, spec) into one when there are many of them, so a
    /// table committed every second does not grow a manifest list readers crawl through.
    async fn merge_small(&self, meta: &TableMetadata, snapshot_id: i64, carried: Vec<ManifestFile>, written: &mut Vec<String>) -> Result<Vec<ManifestFile>> {
        let mut groups: HashMap<(bool, i32), Vec<ManifestFile>> = HashMap::new();
        for mf in carried {
            groups.entry((mf.content == ManifestContentType::Data, mf.partition_spec_id)).or_default().push(mf);
        }
        let mut out = Vec::new();
        for ((_, spec_id), group) in groups {
            if group.len() < MANIFESTS_MERGE_COUNT_MIN {
                out.extend(group);
                continue;
            }
            let content = group[0].content;
            let mut w = self.manifest_writer(meta, snapshot_id, spec_id, content, written)?;
            for manifest in self.load_all(&group).await? {
                for e in manifest.entries() {
                    if e.status() == ManifestStatus::Deleted {
                        continue;
                    }
                    let eseq = e.sequence_number().unwrap_or(0);
                    w.add_existing_file(e.data_file().clone(), e.snapshot_id().unwrap_or(snapshot_id), eseq, e.file_sequence_number.or(Some(eseq)))
                        .map_err(iceberg("manifest"))?;
                }
            }
            out.push(w.write_manifest_file().await.map_err(iceberg("manifest"))?);
        }
        Ok(out)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A positive snapshot id the table does not use yet.
fn fresh_snapshot_id(meta: &TableMetadata) -> i64 {
    loop {
        let id = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64;
        if id != 0 && meta.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

#[cfg(test)]
mod tests;
