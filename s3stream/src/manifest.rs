//! Stream and object metadata, kept in object storage as a chain of versioned manifests.
//!
//! Version `v` lives at `meta/manifest-{v:020}.json` and is written with `PutMode::Create`: of two
//! writers that both try version `v`, exactly one succeeds (local filesystem and S3 alike). The
//! loser re-reads; if the winner's epoch is newer, the loser is [`Error::Fenced`]. A node that
//! starts reads the newest version and claims the next epoch by writing `v + 1`.
//!
//! Engines sharing a bucket (a cluster) each keep their own chain under a node prefix; an object
//! one of them handed to another (a stream handoff) is `pinned` in both chains: neither deletes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, StreamId};

const PREFIX: &str = "meta";
/// Older manifest versions kept for inspection after a commit.
const VERSIONS_KEPT: u64 = 4;

/// A contiguous offset range of one stream stored in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRef {
    pub object: u64,
    pub start: u64,
    pub end: u64,
}

/// What the manifest knows of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// Epoch of the last owner that opened the stream.
    pub epoch: u64,
    /// First offset still readable (retention moves it).
    pub start: u64,
    /// Offset just past the last uploaded batch.
    pub end: u64,
    /// Uploaded ranges, in offset order.
    pub ranges: Vec<RangeRef>,
}

/// What the manifest knows of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size: u64,
    /// One stream only (a stream object) or many (a stream-set object).
    pub stream_object: bool,
    pub created_ms: u64,
}

/// One version of the engine's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    /// Epoch of the node that owns the bucket.
    pub epoch: u64,
    pub next_stream_id: StreamId,
    pub next_object_id: u64,
    /// WAL position up to which every record is uploaded (the WAL is trimmed to here once this
    /// version is committed). A new owner of an object WAL never writes below it.
    #[serde(default)]
    pub wal_committed_pos: u64,
    pub streams: BTreeMap<StreamId, StreamMeta>,
    pub objects: BTreeMap<u64, ObjectMeta>,
    /// Objects no longer referenced, with the time they became so; deleted after a grace period.
    pub garbage: BTreeMap<u64, u64>,
    /// Small key-value metadata for the engine's users.
    pub kv: BTreeMap<String, String>,
    /// Objects another engine on the bucket may also reference (a handed-over stream's): once
    /// unreferenced here they are forgotten, never deleted.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub pinned: BTreeSet<u64>,
}

impl Manifest {
    /// Object ids that no stream range references.
    pub fn unreferenced_objects(&self) -> Vec<u64> {
        let mut live: std::collections::BTreeSet<u64> = self.objects.keys().copied().collect();
        for s in self.streams.values() {
            for r in &s.ranges {
                live.remove(&r.object);
            }
        }
        live.into_iter().collect()
    }

    /// Moves unreferenced objects from `objects` to `garbage`, stamped `now_ms` (pinned ones are
    /// only forgotten).
    pub fn collect_garbage(&mut self, now_ms: u64) {
        for id in self.unreferenced_objects() {
            self.objects.remove(&id);
            if !self.pinned.remove(&id) {
                self.garbage.insert(id, now_ms);
            }
        }
    }
}

/// Path of a data object.
pub fn object_path(id: u64) -> Path {
    Path::from(format!("data/{id:020}.obj"))
}

fn manifest_path(node_prefix: &str, version: u64) -> Path {
    Path::from(format!("{node_prefix}{PREFIX}/manifest-{version:020}.json"))
}

/// Reads and commits manifests.
pub struct ManifestStore {
    store: Arc<dyn ObjectStore>,
    /// The chain's prefix in the bucket (`""` or `nodes/<id>/`).
    node_prefix: String,
    current: Manifest,
}

impl ManifestStore {
    /// Loads the newest manifest under `node_prefix` and claims a new epoch (at least
    /// `epoch_min`) for this node.
    ///
    /// A version written meanwhile by an older epoch (the owner being taken over, still
    /// committing) is read and the claim tried again on top of it, up to `CLAIM_ATTEMPTS_MAX`
    /// times; a version of the same or a newer epoch fences this node.
    pub async fn open(store: Arc<dyn ObjectStore>, node_prefix: &str, epoch_min: u64) -> Result<Self> {
        // The epoch of the last claim that lost its race.
        let mut lost: Option<u64> = None;
        for _ in 0..CLAIM_ATTEMPTS_MAX {
            let current = newest(&store, node_prefix).await?;
            if let Some(ours) = lost.filter(|ours| current.epoch >= *ours) {
                return Err(Error::Fenced { ours, current: current.epoch });
            }
            let mut this = Self { store: store.clone(), node_prefix: node_prefix.to_string(), current };
            let mut next = this.current.clone();
            next.epoch = (next.epoch + 1).max(epoch_min);
            let claim = next.epoch;
            match this.commit_as_owner(next, false).await {
                Ok(()) => {
                    tracing::info!(epoch = this.current.epoch, version = this.current.version, "claimed the bucket");
                    return Ok(this);
                }
                Err(Error::Fenced { .. }) => lost = Some(claim),
                Err(e) => return Err(e),
            }
        }
        let ours = lost.unwrap_or(epoch_min);
        Err(Error::Fenced { ours, current: ours })
    }

    /// The last committed manifest.
    pub fn current(&self) -> &Manifest {
        &self.current
    }

    /// Commits `next` as version `current.version + 1`, if nobody else committed meanwhile.
    pub async fn commit(&mut self, next: Manifest) -> Result<()> {
        self.commit_as_owner(next, true).await
    }

    async fn commit_as_owner(&mut self, mut next: Manifest, same_epoch: bool) -> Result<()> {
        let ours = if same_epoch { self.current.epoch } else { next.epoch };
        next.version = self.current.version + 1;
        let body = serde_json::to_vec(&next)?;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&manifest_path(&self.node_prefix, next.version), PutPayload::from(body), opts).await {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Someone wrote this version: the same bytes (our own retried put) or a rival.
                let theirs = read(&self.store, &self.node_prefix, next.version).await?;
                if theirs != next {
                    return Err(Error::Fenced { ours, current: theirs.epoch.max(ours + 1) });
                }
            }
            Err(e) => return Err(e.into()),
        }
        let old = next.version.saturating_sub(VERSIONS_KEPT);
        self.current = next;
        if old > 0 {
            let _ = self.store.delete(&manifest_path(&self.node_prefix, old)).await;
        }
        Ok(())
    }
}

/// Claims of a bucket tried before an open gives up on an older owner that keeps committing.
const CLAIM_ATTEMPTS_MAX: u32 = 16;

/// The newest manifest under `node_prefix` (an empty one when there is none).
async fn newest(store: &Arc<dyn ObjectStore>, node_prefix: &str) -> Result<Manifest> {
    let prefix = Path::from(format!("{node_prefix}{PREFIX}"));
    let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    let newest = metas.iter().filter_map(|m| m.location.filename()?.strip_prefix("manifest-")?.strip_suffix(".json")?.parse::<u64>().ok()).max();
    match newest {
        Some(v) => read(store, node_prefix, v).await,
        None => Ok(Manifest::default()),
    }
}

async fn read(store: &Arc<dyn ObjectStore>, node_prefix: &str, version: u64) -> Result<Manifest> {
    let path = manifest_path(node_prefix, version);
    let bytes = store.get(&path).await?.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(path.to_string(), e.to_string()))
}
