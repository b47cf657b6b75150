//! Produce: validate each partition's batches, check producer sequences and assign offsets in
//! arrival order, then (in the reply future) wait until they are durable.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{NodeEndpoint, PartitionProduceResponse, ProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{BrokerId, ResponseKind, TopicName};

use super::{sb, Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::partition::SeqCheck;
use crate::records;
use crate::security::acl::{Operation, ResourceType};
use crate::topic_config;

enum Pending {
    Done(Result<(i64, i64)>),
    Durable { base: i64, log_start: i64, durable: floe_s3stream::Durable },
}

/// Starts a produce; the reply resolves once every partition's batches are durable.
pub async fn start(b: Arc<Broker>, req: ProduceRequest, ctx: RequestContext) -> Reply {
    let acks = req.acks;
    let mut pending: Vec<(TopicName, Vec<(i32, Pending)>)> = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let mut parts = Vec::with_capacity(t.partition_data.len());
        let allowed = ctx.allowed(&b, Operation::Write, ResourceType::Topic, &t.name);
        let txn_id = req.transactional_id.as_ref().map(|s| s.0.as_str());
        for pd in t.partition_data {
            let p = if !matches!(acks, -1..=1) {
                Pending::Done(Err(BrokerError::InvalidRequiredAcks(acks)))
            } else if !allowed {
                Pending::Done(Err(BrokerError::TopicAuthorizationFailed(t.name.to_string())))
            } else if let Some(id) = txn_id.filter(|id| !ctx.allowed(&b, Operation::Write, ResourceType::TransactionalId, id)) {
                Pending::Done(Err(BrokerError::TransactionalIdAuthorizationFailed(id.to_string())))
            } else {
                match start_partition(&b, &t.name, pd.index, pd.records.unwrap_or_default(), txn_id).await {
                    Ok(p) => p,
                    Err(e) => Pending::Done(Err(e)),
                }
            };
            parts.push((pd.index, p));
        }
        pending.push((t.name, parts));
    }
    let version = ctx.version;
    // KIP-951: a NOT_LEADER_OR_FOLLOWER answer names the leader and how to reach it.
    let addresses = if b.cluster.is_some() && version >= 10 { super::meta::brokers(&b, &ctx) } else { Vec::new() };
    Box::pin(async move {
        let mut resp = ProduceResponse::default();
        let mut any_appended = false;
        for (name, parts) in pending {
            let mut tr = TopicProduceResponse::default();
            tr.name = name;
            for (index, p) in parts {
                let result = match p {
                    Pending::Done(r) => r,
                    Pending::Durable { base, log_start, durable } => {
                        any_appended = true;
                        durable.wait().await.map_err(BrokerError::from).and_then(|()| may_acknowledge(&b, &tr.name, index)).map(|()| (base, log_start))
                    }
                };
                let mut pr = PartitionProduceResponse::default();
                pr.index = index;
                pr.log_append_time_ms = -1;
                match &result {
                    Ok((base, start)) => {
                        pr.base_offset = *base;
                        if version >= 5 {
                            pr.log_start_offset = *start;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, partition = index, "produce refused");
                        pr.error_code = e.code();
                        pr.base_offset = -1;
                        if version >= 8 {
                            pr.error_message = Some(sb(&e.to_string()));
                        }
                        if let BrokerError::NotLeaderOrFollower { leader, leader_epoch, .. } = e {
                            hint_leader(&mut resp, &mut pr, &addresses, *leader, *leader_epoch);
                        }
                    }
                }
                tr.partition_responses.push(pr);
            }
            resp.responses.push(tr);
        }
        if any_appended {
            b.data_appended.notify_waiters();
        }
        (acks != 0).then_some(ResponseKind::Produce(resp))
    })
}

/// In a cluster, a node acknowledges only while it cannot have been taken for lost without its
/// knowing: with the object WAL, whose fence refuses its writes once its storage was taken over,
/// unless its lease is known lost (so etcd being away stops nothing); with a file WAL, while
/// its lease is surely alive. (A durable batch not acknowledged belongs to whoever took the
/// partition, and the producer's retry is recognised there as a duplicate.)
fn may_acknowledge(b: &Broker, topic: &str, partition: i32) -> Result<()> {
    let storage_fences = b.settings.storage.wal == floe_s3stream::WalKind::Object;
    if b.cluster.is_none() || b.membership.get().is_some_and(|m| m.may_acknowledge(storage_fences)) {
        return Ok(());
    }
    Err(BrokerError::NotLeaderOrFollower { topic: topic.to_string(), partition, leader: -1, leader_epoch: -1 })
}

/// Fills KIP-951's current leader of a partition and, once per response, its endpoint.
fn hint_leader(resp: &mut ProduceResponse, pr: &mut PartitionProduceResponse, addresses: &[(i32, String, i32)], leader: i32, leader_epoch: i32) {
    let Some((id, host, port)) = addresses.iter().find(|(id, _, _)| *id == leader && leader >= 0) else { return };
    pr.current_leader.leader_id = BrokerId(*id);
    pr.current_leader.leader_epoch = leader_epoch;
    if !resp.node_endpoints.iter().any(|n| n.node_id.0 == *id) {
        let mut n = NodeEndpoint::default();
        n.node_id = BrokerId(*id);
        n.host = sb(host);
        n.port = *port;
        resp.node_endpoints.push(n);
    }
}

async fn start_partition(b: &Arc<Broker>, topic: &str, index: i32, data: Bytes, txn_id: Option<&str>) -> Result<Pending> {
    if crate::topics::is_internal(topic) {
        return Err(BrokerError::InvalidTopic(topic.to_string(), "an internal topic".into()));
    }
    let t = b.topics.get(topic).ok_or_else(|| BrokerError::UnknownTopicOrPartition(topic.to_string()))?;
    let p = t.partition(index)?;
    let infos = records::validate(&data, b.settings.batch_decompressed_bytes_max.0 as usize).inspect_err(|e| {
        tracing::warn!(topic, partition = index, error = %e, "produce refused: invalid record batch");
    })?;
    let max = topic_config::long(&t.meta.configs, "max.message.bytes").map_or(b.settings.message_max_bytes.0 as usize, |v| v as usize);
    if t.meta.configs.get("cleanup.policy").is_some_and(|p| p.contains("compact")) {
        // As Kafka: log compaction keeps the latest record per key, so every record needs one.
        for i in &infos {
            let mut keyless = false;
            records::records_of(&data[i.position..i.position + i.size], i.records, b.settings.batch_decompressed_bytes_max.0 as usize, |r| {
                keyless |= r.key.is_none()
            })
            .map_err(BrokerError::InvalidRecord)?;
            if keyless {
                return Err(BrokerError::InvalidRecord(format!("compacted topic {topic} cannot take a record without a key")));
            }
        }
    }
    for i in &infos {
        if i.size > max {
            return Err(BrokerError::MessageTooLarge { size: i.size, max });
        }
        if i.transactional && (txn_id.is_none() || i.producer_id != infos[0].producer_id || i.producer_epoch != infos[0].producer_epoch) {
            return Err(BrokerError::InvalidTxnState("a transactional batch needs the request's transactional id and one producer".into()));
        }
        if i.control {
            return Err(BrokerError::InvalidRecord("control batches cannot be produced".into()));
        }
    }
    let transactional = infos.iter().find(|i| i.transactional).copied();
    // In a cluster the transaction's coordinator may be another broker: it is asked, for the
    // transaction's first batch here (later ones find it open already), before taking the order.
    let coordinated_elsewhere = b.cluster.is_some() && txn_id.is_some_and(|id| b.txn.coordinates(id).is_err());
    if let (Some(i), Some(id), true) = (transactional, txn_id, coordinated_elsewhere) {
        if p.txn.lock().open_since(i.producer_id).is_none() {
            crate::txn::verify::verify_remote(b, id, i.producer_id, i.producer_epoch, topic, index).await?;
        }
    }
    let _order = p.sequencing.lock().await;
    if let (Some(i), Some(id)) = (transactional, txn_id) {
        // KIP-890's defence: only a producer whose transaction holds this partition writes here.
        if !coordinated_elsewhere {
            let meta = b.txn.get(id).ok_or_else(|| BrokerError::InvalidProducerIdMapping(id.to_string()))?;
            meta.verify(i.producer_id, i.producer_epoch, &(topic.to_string(), index)).map_err(|e| match e {
                // Produce answers a fenced producer INVALID_PRODUCER_EPOCH, as Kafka does (clients take it as fatal).
                BrokerError::ProducerFenced { producer_id, epoch, current } => BrokerError::InvalidProducerEpoch { producer_id, epoch, current },
                other => other,
            })?;
        }
        let txn = p.txn.lock();
        if txn.open_since(i.producer_id).is_none() && !txn.has_room() {
            return Err(BrokerError::InvalidTxnState(format!("{topic}-{index} holds too many aborted transactions; retention must trim it first")));
        }
    }
    {
        let producers = p.producers.lock();
        let mut verdicts = infos.iter().map(|i| producers.check(i));
        if infos.len() == 1 {
            if let Some(SeqCheck::Duplicate(base)) = verdicts.next().transpose()? {
                let start = b.engine.stream_info(p.stream)?.start as i64;
                return Ok(Pending::Done(Ok((base, start))));
            }
        } else {
            for v in verdicts {
                if let SeqCheck::Duplicate(_) = v? {
                    return Err(BrokerError::InvalidRecord("a retried batch came with new ones in one request".into()));
                }
            }
        }
    }
    let count: u64 = infos.iter().map(|i| u64::from(i.records)).sum();
    let count = u32::try_from(count).map_err(|_| BrokerError::InvalidRecord(format!("{count} records in one request")))?;
    let len = data.len();
    let epoch = b.engine.epoch();
    let (base, durable) = b.engine.append_start(p.stream, epoch, count, data, |base| records::offset_stamps(&infos, base)).await?;
    let base = base as i64;
    {
        let now_ms = b.clock.now_ms();
        let mut producers = p.producers.lock();
        let mut txn = p.txn.lock();
        let mut offset = base;
        for i in &infos {
            producers.record(i, offset, now_ms);
            if i.transactional {
                txn.on_batch(i.producer_id, offset);
            }
            offset += i64::from(i.records);
        }
    }
    let max_ts = infos.iter().map(|i| i.max_timestamp).max().unwrap_or(-1);
    p.time_index.lock().push(base, max_ts, len as u64);
    p.traffic.produced(len);
    let log_start = b.engine.stream_info(p.stream)?.start as i64;
    Ok(Pending::Durable { base, log_start, durable })
}
