//! The object WAL: each group of appends becomes one object under `wal/`, so a node needs no local disk.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use futures::TryStreamExt;
use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::record::{self, Stamp, Stop, Stored, WalRecord};
use super::Recovered;
use crate::{Error, Result};

const PREFIX: &str = "wal";
/// Rounds of recover-then-claim before a new owner gives up (each lost round means the previous
/// owner wrote one more object meanwhile).
const FENCE_ROUNDS_MAX: u32 = 100;

/// A WAL on object storage.
pub struct ObjectWal {
    store: Arc<dyn ObjectStore>,
    /// The engine's node prefix (`""` or `nodes/<id>/`).
    node_prefix: String,
    next_seq: u64,
    live: BTreeSet<u64>,
    linger: Duration,
}

fn path(node_prefix: &str, seq: u64) -> Path {
    Path::from(format!("{node_prefix}{PREFIX}/{seq:020}.wal"))
}

impl ObjectWal {
    /// A WAL that gathers appends for `linger` before writing them as one object.
    pub fn new(store: Arc<dyn ObjectStore>, node_prefix: &str, linger: Duration) -> Self {
        Self { store, node_prefix: node_prefix.to_string(), next_seq: 0, live: BTreeSet::new(), linger }
    }

    /// How long a group gathers.
    pub fn linger(&self) -> Duration {
        self.linger
    }

    /// Writes the group as one object; it is durable once the put returns.
    pub async fn write(&mut self, records: &[WalRecord], stamps: &[Vec<Stamp>]) -> Result<Stored> {
        let seq = self.next_seq;
        let (buf, ranges) = record::encode_group(records, stamps, |_| seq);
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.store.put_opts(&path(&self.node_prefix, seq), PutPayload::from(buf.clone()), opts).await?;
        self.live.insert(seq);
        self.next_seq = seq + 1;
        Ok(Stored { end: self.next_seq, payloads: ranges.into_iter().map(|r| buf.slice(r)).collect(), fsync: None })
    }

    /// Deletes the WAL objects before `pos`.
    pub async fn trim(&mut self, pos: u64) -> Result<()> {
        let dead: Vec<u64> = self.live.range(..pos).copied().collect();
        for seq in dead {
            match self.store.delete(&path(&self.node_prefix, seq)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    self.live.remove(&seq);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Recovers, then writes an empty object at the next name (never below `floor`, the committed
    /// WAL position of the manifest) and never deletes it (one empty object per owner change). Names are claimed with create-if-absent and written in
    /// order, so a previous owner's next write — at that name at the earliest — fails, and it
    /// stops acknowledging; every write of its that did succeed came before, and was recovered
    /// here. If the previous owner took the name first, recovery runs again.
    pub async fn recover_and_fence(&mut self, floor: u64) -> Result<Recovered> {
        for _ in 0..FENCE_ROUNDS_MAX {
            let mut recovered = self.recover().await?;
            let seq = self.next_seq.max(floor);
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            match self.store.put_opts(&path(&self.node_prefix, seq), PutPayload::new(), opts).await {
                Ok(_) => {
                    // The fence is never trimmed: a previous owner paused for any length of time
                    // still finds its next name taken.
                    self.next_seq = seq + 1;
                    recovered.end = self.next_seq;
                    return Ok(recovered);
                }
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Io(std::io::Error::other(format!("the object WAL could not be claimed in {FENCE_ROUNDS_MAX} rounds"))))
    }

    /// Lists and reads every WAL object left; a corrupt one stops recovery with an error.
    pub async fn recover(&mut self) -> Result<Recovered> {
        let prefix = Path::from(format!("{}{PREFIX}", self.node_prefix));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut seqs: Vec<u64> = metas.iter().filter_map(|m| m.location.filename()?.strip_suffix(".wal")?.parse().ok()).collect();
        seqs.sort_unstable();
        let mut records = Vec::new();
        for &seq in &seqs {
            let p = path(&self.node_prefix, seq);
            let mut bytes = match self.store.get(&p).await {
                Ok(got) => got.bytes().await?,
                // Trimmed meanwhile by a previous owner: its records were uploaded and committed.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if bytes.is_empty() {
                continue; // a fence: kept for ever (see `recover_and_fence`)
            }
            while !bytes.is_empty() {
                match record::decode(&bytes, seq, bytes.len()) {
                    Ok(r) => {
                        bytes.advance(r.encoded_len());
                        records.push(r);
                    }
                    Err(Stop::Truncated | Stop::StalePosition | Stop::Checksum { .. }) => {
                        return Err(Error::ChecksumMismatch { object: p.to_string(), offset: 0 });
                    }
                }
            }
            self.live.insert(seq);
        }
        self.next_seq = seqs.last().map_or(0, |s| s + 1);
        tracing::info!(objects = seqs.len(), records = records.len(), "object WAL recovered");
        Ok(Recovered { records, end: self.next_seq })
    }
}
