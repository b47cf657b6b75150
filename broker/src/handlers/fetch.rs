//! Fetch (long-poll with min_bytes/max_wait_ms and byte limits), ListOffsets, OffsetForLeaderEpoch, DeleteRecords.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult};
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchResponse, FetchableTopicResponse, NodeEndpoint, PartitionData};
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};

use super::{sb, RequestContext};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::records;
use crate::security::acl::{Operation, ResourceType};
use crate::txn::index::AbortedTxn;

/// Bytes read per step when looking for a timestamp.
const TIMESTAMP_SCAN_BYTES: u64 = 1 << 20;

struct Slot {
    topic: TopicName,
    topic_id: uuid::Uuid,
    partition: i32,
    offset: i64,
    max_bytes: u64,
    /// The leader epoch the sender believes in (-1: none given).
    leader_epoch: i32,
    /// The sender may not Read the topic.
    denied: bool,
}

/// A Fetch: waits up to max_wait_ms for min_bytes, within the response and partition limits.
pub async fn fetch(b: &Arc<Broker>, req: FetchRequest, ctx: &RequestContext) -> FetchResponse {
    let mut resp = FetchResponse::default();
    if req.session_id != 0 {
        resp.error_code = kafka_protocol::error::ResponseError::FetchSessionIdNotFound.code();
        return resp;
    }
    let mut slots = Vec::new();
    for t in &req.topics {
        let (name, id) = if ctx.version >= 13 {
            match b.topics.by_id(t.topic_id) {
                Some(topic) => (TopicName(sb(&topic.meta.name)), t.topic_id),
                None => (TopicName(sb("")), t.topic_id),
            }
        } else {
            let id = b.topics.get(&t.topic).map(|x| x.meta.id).unwrap_or_default();
            (t.topic.clone(), id)
        };
        let denied = !ctx.allowed(b, Operation::Read, ResourceType::Topic, &name);
        for p in &t.partitions {
            slots.push(Slot {
                denied,
                topic: name.clone(),
                topic_id: id,
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: (p.partition_max_bytes.max(0) as u64).min(b.settings.fetch_max_bytes.0),
                leader_epoch: if ctx.version >= 9 { p.current_leader_epoch } else { -1 },
            });
        }
    }
    let wait_ms = (req.max_wait_ms.max(0) as u64).min(b.settings.fetch_max_wait_ms.0);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    // Never more than the broker's `fetch_max_bytes`, whatever the client asks (up to 2 GiB).
    let response_max = if req.max_bytes > 0 { req.max_bytes as u64 } else { u64::MAX }.min(b.settings.fetch_max_bytes.0);
    let min_bytes = req.min_bytes.max(0) as u64;
    let read_committed = req.isolation_level == 1;
    let results = loop {
        let notified = b.data_appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut total = 0u64;
        let mut any_error = false;
        let mut results = Vec::with_capacity(slots.len());
        for s in &slots {
            let budget = s.max_bytes.min(response_max.saturating_sub(total));
            let r = match s.denied {
                // Refused partitions do not end the wait for the others.
                true => Err((BrokerError::TopicAuthorizationFailed(s.topic.to_string()), -1, -1)),
                false => read_partition(b, s, budget, total == 0, read_committed).await,
            };
            match &r {
                Ok(read) => total += read.records.len() as u64,
                Err(_) => any_error |= !s.denied,
            }
            results.push(r);
        }
        if total >= min_bytes || any_error || tokio::time::Instant::now() >= deadline {
            break results;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    };
    let addresses = if b.cluster.is_some() && ctx.version >= 12 { super::meta::brokers(b, ctx) } else { Vec::new() };
    for (s, r) in slots.into_iter().zip(results) {
        let i = resp.responses.iter().position(|t| t.topic == s.topic && (ctx.version < 13 || t.topic_id == s.topic_id)).unwrap_or_else(|| {
            let mut t = FetchableTopicResponse::default();
            t.topic = s.topic.clone();
            if ctx.version >= 13 {
                t.topic_id = s.topic_id;
            }
            resp.responses.push(t);
            resp.responses.len() - 1
        });
        let mut pd = PartitionData::default();
        pd.partition_index = s.partition;
        match r {
            Ok(read) => {
                pd.high_watermark = read.hw;
                pd.last_stable_offset = read.lso;
                if ctx.version >= 5 {
                    pd.log_start_offset = read.start;
                }
                pd.records = Some(read.records);
                pd.aborted_transactions = read_committed.then(|| {
                    read.aborted
                        .iter()
                        .map(|a| {
                            let mut x = AbortedTransaction::default();
                            x.producer_id = ProducerId(a.producer_id);
                            x.first_offset = a.first_offset;
                            x
                        })
                        .collect()
                });
            }
            Err((e, start, hw)) => {
                pd.error_code = e.code();
                // KIP-951 (v12+): where the partition is now, so the client need not ask Metadata.
                if let (BrokerError::NotLeaderOrFollower { leader, leader_epoch, .. }, true) = (&e, ctx.version >= 12) {
                    if let Some((_, host, port)) = addresses.iter().find(|(id, _, _)| id == leader) {
                        pd.current_leader.leader_id = BrokerId(*leader);
                        pd.current_leader.leader_epoch = *leader_epoch;
                        if ctx.version >= 16 && !resp.node_endpoints.iter().any(|n| n.node_id.0 == *leader) {
                            let mut n = NodeEndpoint::default();
                            n.node_id = BrokerId(*leader);
                            n.host = sb(host);
                            n.port = *port;
                            resp.node_endpoints.push(n);
                        }
                    }
                }
                pd.high_watermark = hw;
                pd.last_stable_offset = hw;
                if ctx.version >= 5 {
                    pd.log_start_offset = start;
                }
                pd.records = Some(Bytes::new());
            }
        }
        resp.responses[i].partitions.push(pd);
    }
    resp
}

/// What one partition's read gives a Fetch.
struct PartitionRead {
    start: i64,
    hw: i64,
    lso: i64,
    records: Bytes,
    /// Aborted transactions with records in what is returned (read_committed only).
    aborted: Vec<AbortedTxn>,
}

type Read = std::result::Result<PartitionRead, (BrokerError, i64, i64)>;

async fn read_partition(b: &Arc<Broker>, s: &Slot, budget: u64, first: bool, read_committed: bool) -> Read {
    let name = s.topic.0.as_str();
    let p = b.topics.partition(name, s.partition).map_err(|e| (e, -1, -1))?;
    check_epoch(s.leader_epoch, p.leader_epoch).map_err(|e| (e, -1, -1))?;
    let info = b.engine.stream_info(p.stream).map_err(|e| (e.into(), -1, -1))?;
    let (start, hw) = (info.start as i64, info.end as i64);
    let lso = p.txn.lock().lso(hw);
    if s.offset < start || s.offset > hw {
        return Err((BrokerError::OffsetOutOfRange(s.offset), start, hw));
    }
    // read_committed reads stop at the LSO: nothing of an open transaction is returned.
    let end = if read_committed { lso } else { hw };
    let mut read = PartitionRead { start, hw, lso, records: Bytes::new(), aborted: Vec::new() };
    if s.offset >= end || (budget == 0 && !first) {
        return Ok(read);
    }
    let batches = b.engine.read(p.stream, s.offset as u64, end as u64, budget.max(1)).await.map_err(|e| (e.into(), start, hw))?;
    if read_committed {
        let upto = batches.last().map_or(s.offset, |x| (x.base_offset + u64::from(x.count)) as i64);
        read.aborted = p.txn.lock().aborted_between(s.offset, upto);
    }
    let records = match batches.len() {
        0 => Bytes::new(),
        1 => batches.into_iter().next().map(|b| b.payload).unwrap_or_default(),
        _ => {
            let mut buf = BytesMut::with_capacity(batches.iter().map(|b| b.payload.len()).sum());
            for x in &batches {
                buf.extend_from_slice(&x.payload);
            }
            buf.freeze()
        }
    };
    p.traffic.fetched(records.len());
    read.records = records;
    Ok(read)
}

/// ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or the first offset at a timestamp.
pub async fn list_offsets(b: &Arc<Broker>, req: ListOffsetsRequest, ctx: &RequestContext) -> ListOffsetsResponse {
    let version = ctx.version;
    let mut resp = ListOffsetsResponse::default();
    for t in req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        let allowed = ctx.allowed(b, Operation::Describe, ResourceType::Topic, &t.name);
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            let found = match allowed {
                true => lookup(b, t.name.0.as_str(), p.partition_index, p.timestamp, req.isolation_level == 1).await,
                false => Err(BrokerError::TopicAuthorizationFailed(t.name.to_string())),
            };
            match found {
                Ok((offset, ts)) => {
                    pr.offset = offset;
                    pr.timestamp = ts;
                    if version >= 4 {
                        pr.leader_epoch = 0;
                    }
                }
                Err(e) => {
                    pr.error_code = e.code();
                    pr.offset = -1;
                    pr.timestamp = -1;
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

async fn lookup(b: &Arc<Broker>, topic: &str, partition: i32, ts: i64, read_committed: bool) -> Result<(i64, i64)> {
    let p = b.topics.partition(topic, partition)?;
    let info = b.engine.stream_info(p.stream)?;
    let (start, end) = (info.start as i64, info.end as i64);
    match ts {
        -2 | -4 => return Ok((start, -1)),
        // Latest, for read_committed, is the LSO.
        -1 if read_committed => return Ok((p.txn.lock().lso(end), -1)),
        -1 | -5 => return Ok((end, -1)),
        -3 => {
            let ix = p.time_index.lock();
            return Ok(ix.entries.iter().filter(|e| e.offset >= start).max_by_key(|e| e.max_ts).map_or((end, -1), |e| (e.offset, e.max_ts)));
        }
        t if t < 0 => return Err(BrokerError::InvalidRequest(format!("unknown special timestamp {t}"))),
        _ => {}
    }
    let from = p.time_index.lock().scan_start_for(ts);
    let Some(from) = from else { return Ok((-1, -1)) };
    let mut found = (-1, -1);
    b.engine
        .scan(p.stream, from.max(start) as u64, info.end, TIMESTAMP_SCAN_BYTES, |x| {
            for (base, h) in records::headers(&x.payload) {
                if h.max_timestamp >= ts {
                    // Exact for uncompressed batches; a compressed one answers with its first offset.
                    let at = records::first_record_at_or_after(&x.payload[h.position..h.position + h.size], &h, ts);
                    let (offset, t) = at.map_or((base, h.max_timestamp), |(delta, t)| (base + delta, t));
                    found = (offset.max(start), t);
                    return Ok::<_, BrokerError>(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    Ok(found)
}

/// KIP-320: a client that names a leader epoch must name the partition's current one —
/// FENCED_LEADER_EPOCH when its is older (it refreshes its metadata), UNKNOWN_LEADER_EPOCH when
/// newer (this broker has not caught up yet).
fn check_epoch(asked: i32, current: i32) -> Result<()> {
    match asked {
        a if a < 0 || a == current => Ok(()),
        a if a < current => Err(BrokerError::FencedLeaderEpoch { asked: a, current }),
        a => Err(BrokerError::UnknownLeaderEpoch { asked: a, current }),
    }
}

/// OffsetForLeaderEpoch: logs are never truncated (a move keeps every offset), so the end of
/// any epoch up to the current one is the log end: a client never finds its position diverged.
pub fn offset_for_leader_epoch(b: &Arc<Broker>, req: OffsetForLeaderEpochRequest, ctx: &RequestContext) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        let allowed = ctx.allowed(b, Operation::Describe, ResourceType::Topic, &t.topic);
        for p in t.partitions {
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            let found = match allowed {
                true => b.topics.partition(t.topic.0.as_str(), p.partition).and_then(|x| {
                    check_epoch(if ctx.version >= 2 { p.current_leader_epoch } else { -1 }, x.leader_epoch)?;
                    Ok((b.engine.stream_info(x.stream)?, x.leader_epoch.max(0)))
                }),
                false => Err(BrokerError::TopicAuthorizationFailed(t.topic.to_string())),
            };
            match found {
                Ok((info, current)) if p.leader_epoch <= current => {
                    e.leader_epoch = p.leader_epoch.max(0);
                    e.end_offset = info.end as i64;
                }
                Ok(_) => {
                    e.leader_epoch = -1;
                    e.end_offset = -1;
                }
                Err(err) => e.error_code = err.code(),
            }
            tr.partitions.push(e);
        }
        resp.topics.push(tr);
    }
    resp
}

/// DeleteRecords: moves the log start up (-1: to the high watermark).
pub async fn delete_records(b: &Arc<Broker>, req: DeleteRecordsRequest, ctx: &RequestContext) -> DeleteRecordsResponse {
    let mut resp = DeleteRecordsResponse::default();
    for t in req.topics {
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        let allowed = ctx.allowed(b, Operation::Delete, ResourceType::Topic, &t.name);
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            let r: Result<i64> = async {
                if !allowed {
                    return Err(BrokerError::TopicAuthorizationFailed(t.name.to_string()));
                }
                let part = b.topics.partition(t.name.0.as_str(), p.partition_index)?;
                let info = b.engine.stream_info(part.stream)?;
                let to = if p.offset == -1 { info.end as i64 } else { p.offset };
                if to < 0 || to > info.end as i64 {
                    return Err(BrokerError::OffsetOutOfRange(p.offset));
                }
                b.engine.trim(part.stream, to as u64).await?;
                part.time_index.lock().trim(to);
                part.txn.lock().trim(to);
                Ok(b.engine.stream_info(part.stream)?.start as i64)
            }
            .await;
            match r {
                Ok(low) => pr.low_watermark = low,
                Err(e) => {
                    pr.error_code = e.code();
                    pr.low_watermark = -1;
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
