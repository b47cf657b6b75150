//! The writer task: groups queued appends, makes each group durable with one WAL write, then
//! acknowledges it; a failed or fenced write stops the engine taking appends.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{AppendReq, Inner};
use crate::wal::{Stamp, Stored, Wal, WalRecord};
use crate::{Error, Result};

/// Why the engine stopped taking appends.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub(super) reason: String,
    /// A newer owner took the bucket over: appends are answered `Fenced`.
    pub(super) fenced: bool,
}

impl Failure {
    pub(super) fn error(&self, epoch: u64) -> Error {
        if self.fenced {
            Error::Fenced { ours: epoch, current: epoch + 1 }
        } else {
            Error::Io(std::io::Error::other(self.reason.clone()))
        }
    }
}

/// Stops the engine taking appends; a fenced engine also stops uploading.
pub(super) fn fail(inner: &Inner, e: &Error) -> Error {
    let fenced = matches!(e, Error::Fenced { .. }) || matches!(e, Error::ObjectStore(object_store::Error::AlreadyExists { .. }));
    let failure =
        Failure { reason: if fenced { format!("fenced: a newer owner took the bucket over ({e})") } else { format!("WAL write failed: {e}") }, fenced };
    tracing::error!(reason = %failure.reason, "the engine stops taking appends");
    let err = failure.error(inner.epoch);
    inner.state.lock().failed.get_or_insert(failure);
    err
}

pub(super) async fn writer_loop(inner: Arc<Inner>, mut rx: mpsc::Receiver<AppendReq>) {
    let bytes_max = inner.config.wal_write_bytes_max.max(1);
    let linger_bytes = if inner.wal_linger.is_zero() { 0 } else { inner.config.wal_batch_bytes };
    while let Some(first) = rx.recv().await {
        let mut bytes = first.batch.payload.len() as u64;
        let deadline = first.queued + inner.wal_linger;
        let mut group = vec![first];
        while bytes < bytes_max {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.batch.payload.len() as u64;
                    group.push(r);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if inner.wal_linger.is_zero() || bytes >= linger_bytes {
                break;
            }
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => { bytes += r.batch.payload.len() as u64; group.push(r); }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let mut records: Vec<WalRecord> = group.iter().map(|r| WalRecord { stream: r.stream, batch: r.batch.clone() }).collect();
        let stamps: Vec<Vec<Stamp>> = group.iter_mut().map(|r| std::mem::take(&mut r.stamps)).collect();
        let result = write_group(&inner, &records, &stamps).await;
        match result {
            Ok(stored) => {
                {
                    let mut s = inner.state.lock();
                    // The log cache keeps the payloads as stored: slices of the WAL's buffer.
                    for (r, payload) in records.iter_mut().zip(stored.payloads) {
                        r.batch.payload = payload;
                    }
                    for r in records {
                        if let Some(st) = s.streams.get_mut(&r.stream) {
                            st.confirmed = r.batch.end_offset();
                            s.log_cache.insert(r.stream, r.batch);
                        }
                    }
                    s.wal_end = stored.end;
                    if s.log_cache.pending_bytes() >= inner.config.upload_bytes {
                        inner.upload_wake.notify_one();
                    }
                }
                for r in group {
                    let _ = r.done.send(Ok(()));
                }
            }
            Err(e) => {
                // With the object WAL, a taken name means a newer owner fenced this one (see
                // `ObjectWal::recover_and_fence`): nothing of this group may be acknowledged.
                let err = fail(&inner, &e);
                for r in group {
                    let _ = r.done.send(Err(clone_error(&err)));
                }
            }
        }
    }
}

/// The same error again, for every append of a failed group.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Fenced { ours, current } => Error::Fenced { ours: *ours, current: *current },
        other => Error::Io(std::io::Error::other(other.to_string())),
    }
}

async fn write_group(inner: &Arc<Inner>, records: &[WalRecord], stamps: &[Vec<Stamp>]) -> Result<Stored> {
    let need: u64 = records.iter().map(|r| r.encoded_len() as u64).sum();
    let started = Instant::now();
    let mut wal = loop {
        let wal = inner.wal.lock().await;
        if wal.free_bytes() >= need {
            break wal;
        }
        drop(wal);
        inner.upload_wake.notify_one();
        let _ = tokio::time::timeout(Duration::from_millis(100), inner.space_freed.notified()).await;
    };
    let mut attempt = 0u32;
    let stored = loop {
        match wal.write(records, stamps).await {
            Ok(stored) => break stored,
            // The object WAL may meet a passing store failure: retry a bounded number of times.
            Err(e) if matches!(&*wal, Wal::Object(_)) && attempt < 20 && !matches!(e, Error::ObjectStore(object_store::Error::AlreadyExists { .. })) => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "object WAL write failed, retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    };
    inner.stats.wal_writes.fetch_add(1, Relaxed);
    inner.stats.wal_write_us_sum.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    inner.stats.wal_write_seconds.observe(started.elapsed());
    if let Some(d) = stored.fsync {
        inner.stats.wal_fsync_seconds.observe(d);
    }
    Ok(stored)
}
