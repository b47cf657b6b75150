//! Writing a transaction's COMMIT or ABORT markers into its partitions: appended in each partition's produce order, the partition's transaction index updated, then all made durable together.

use std::collections::BTreeSet;

use super::metadata::TxnPartition;
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::records;

/// The coordinator epoch written into markers (one node: always 0; the cluster makes it the
/// coordinator partition's leader epoch).
pub const COORDINATOR_EPOCH: i32 = 0;

/// Appends a marker for `producer_id` to every partition in `partitions` and waits until all
/// are durable; a partition whose topic was deleted counts as written. Returns how many were
/// written.
pub async fn write(b: &Broker, producer_id: i64, epoch: i16, commit: bool, partitions: &BTreeSet<TxnPartition>) -> Result<usize> {
    let mut pending = Vec::with_capacity(partitions.len());
    for (topic, index) in partitions {
        let p = match b.topics.partition(topic, *index) {
            Ok(p) => p,
            // Served by another broker now (cluster mode: it moved during the transaction): the
            // marker cannot be written from here; the transaction stays in Prepare* and the next
            // round tries again (markers across brokers are the next step, issue 18).
            Err(e @ BrokerError::NotLeaderOrFollower { .. }) => return Err(e),
            Err(_) => {
                tracing::info!(topic, partition = index, "no marker for a partition that no longer exists");
                continue;
            }
        };
        let now = b.clock.now_ms();
        let data = records::control::marker(producer_id, epoch, commit, COORDINATOR_EPOCH, now);
        let Some((_, info)) = records::headers(&data).into_iter().next() else { continue };
        let len = data.len();
        let _order = p.sequencing.lock().await;
        let (base, durable) = b.engine.append_start(p.stream, b.engine.epoch(), 1, len, |base| records::assign_offsets(&data, &[info], base as i64)).await?;
        let base = base as i64;
        p.txn.lock().on_marker(producer_id, base, commit);
        p.producers.lock().record(&info, base, now);
        p.time_index.lock().push(base, now, len as u64);
        pending.push(durable);
    }
    let n = pending.len();
    for d in pending {
        d.wait().await?;
    }
    b.data_appended.notify_waiters();
    Ok(n)
}
