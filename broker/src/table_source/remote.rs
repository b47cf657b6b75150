//! Table Topic reads of partitions another broker leads (cluster mode): read_committed ListOffsets and Fetch, through `cluster::peers`.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};

use crate::broker::Broker;
use crate::cli::kafka::check;
use crate::cluster::peers::request;
use crate::handlers::sb;
use crate::records;
use crate::txn::index::AbortedTxn;

/// Fetch v12: topics by name, KIP-951 hints; ListOffsets v5: read_committed offsets.
const FETCH_VERSION: i16 = 12;
const LIST_OFFSETS_VERSION: i16 = 5;
/// read_committed.
const READ_COMMITTED: i8 = 1;

/// What a Fetch of one partition gave: whole batches from the offset asked for, the last stable
/// offset, and the aborted transactions among the batches (each up to its abort marker).
pub struct Fetched {
    pub batches: Bytes,
    pub lso: i64,
    pub aborted: Vec<AbortedTxn>,
}

/// (log start, last stable offset) of a partition `node` leads.
pub async fn bounds(b: &Broker, node: i32, topic: &str, partition: i32) -> Result<(i64, i64), String> {
    let start = list_offset(b, node, topic, partition, -2).await?;
    let lso = list_offset(b, node, topic, partition, -1).await?;
    Ok((start, lso))
}

async fn list_offset(b: &Broker, node: i32, topic: &str, partition: i32, timestamp: i64) -> Result<i64, String> {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.current_leader_epoch = -1;
    p.timestamp = timestamp;
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(sb(topic));
    t.partitions.push(p);
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.isolation_level = READ_COMMITTED;
    req.topics.push(t);
    let resp = request(b, node, &req, LIST_OFFSETS_VERSION).await?;
    let p = resp.topics.first().and_then(|t| t.partitions.first()).ok_or_else(|| format!("broker {node} answered ListOffsets with no partition"))?;
    check(p.error_code, None, &format!("ListOffsets of {topic}-{partition} at broker {node}")).map_err(|e| e.to_string())?;
    Ok(p.offset)
}

/// Reads a partition `node` leads from `from`, up to about `bytes_max`, read_committed.
pub async fn fetch(b: &Broker, node: i32, topic: &str, partition: i32, from: i64, bytes_max: u64) -> Result<Fetched, String> {
    let bytes_max = i32::try_from(bytes_max).unwrap_or(i32::MAX).max(1);
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.current_leader_epoch = -1;
    p.fetch_offset = from;
    p.last_fetched_epoch = -1;
    p.log_start_offset = -1;
    p.partition_max_bytes = bytes_max;
    let mut t = FetchTopic::default();
    t.topic = TopicName(sb(topic));
    t.partitions.push(p);
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = 0;
    req.max_bytes = bytes_max;
    req.isolation_level = READ_COMMITTED;
    req.topics.push(t);
    let resp = request(b, node, &req, FETCH_VERSION).await?;
    let what = format!("Fetch of {topic}-{partition} at broker {node}");
    check(resp.error_code, None, &what).map_err(|e| e.to_string())?;
    let pd = resp.responses.into_iter().flat_map(|t| t.partitions).next().ok_or_else(|| format!("{what}: no partition in the answer"))?;
    check(pd.error_code, None, &what).map_err(|e| e.to_string())?;
    let records = pd.records.unwrap_or_default();
    // Whole batches only (a broker may end an answer inside one).
    let headers = records::headers(&records);
    let whole = headers.last().map_or(0, |(_, i)| i.position + i.size);
    if whole == 0 && !records.is_empty() {
        return Err(format!("{what}: {} bytes without one whole batch", records.len()));
    }
    let aborted = pd
        .aborted_transactions
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let producer_id = a.producer_id.0;
            // An aborted transaction runs up to its producer's abort marker.
            let last_offset =
                headers.iter().find(|(base, i)| i.control && i.producer_id == producer_id && *base >= a.first_offset).map_or(i64::MAX, |(base, _)| *base);
            AbortedTxn { producer_id, first_offset: a.first_offset, last_offset }
        })
        .collect();
    Ok(Fetched { batches: records.slice(..whole), lso: pd.last_stable_offset, aborted })
}
