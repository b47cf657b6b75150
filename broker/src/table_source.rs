//! The broker as a Table Topic record source, read_committed: durable batches up to the LSO, decoded (decompressed under a cap) into records; control records and aborted transactions left out; a batch that cannot be decoded becomes one dead-letter record instead of an error retried forever.

use std::borrow::Cow;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use floe_table_topic::{RecordSource, SourceRead, SourceRecord};

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::records::{self, walk};
use crate::txn::index::AbortedTxn;

/// Reads a node's topics for its Table Topics (weakly held: the broker owns the Table Topics);
/// in a cluster, partitions other brokers lead are read from them.
pub struct BrokerSource {
    broker: Weak<Broker>,
}

impl BrokerSource {
    pub fn new(broker: Weak<Broker>) -> Self {
        Self { broker }
    }

    fn broker(&self) -> Result<Arc<Broker>, String> {
        self.broker.upgrade().ok_or_else(|| "the broker is shutting down".to_string())
    }
}

/// Where a partition is read: here, or at the broker leading it.
enum Where {
    Here(Arc<crate::partition::Partition>),
    At(i32),
}

fn locate(b: &Broker, topic: &str, partition: i32) -> Result<Where, String> {
    match b.topics.partition(topic, partition) {
        Ok(p) => Ok(Where::Here(p)),
        Err(BrokerError::NotLeaderOrFollower { leader, .. }) if b.cluster.is_some() && leader >= 0 => Ok(Where::At(leader)),
        Err(e) => Err(e.to_string()),
    }
}

#[async_trait]
impl RecordSource for BrokerSource {
    async fn partitions(&self, topic: &str) -> Result<i32, String> {
        let b = self.broker()?;
        let t = b.topics.get(topic).ok_or_else(|| format!("no topic {topic}"))?;
        Ok(t.partitions.len() as i32)
    }

    async fn bounds(&self, topic: &str, partition: i32) -> Result<(i64, i64), String> {
        let b = self.broker()?;
        let p = match locate(&b, topic, partition)? {
            Where::Here(p) => p,
            Where::At(node) => return remote::bounds(&b, node, topic, partition).await,
        };
        let info = b.engine.stream_info(p.stream).map_err(|e| e.to_string())?;
        // A table reads read_committed: it ends at the LSO.
        let lso = p.txn.lock().lso(info.end as i64);
        Ok((info.start as i64, lso))
    }

    async fn read(&self, topic: &str, partition: i32, from: i64, bytes_max: u64) -> Result<SourceRead, String> {
        let b = self.broker()?;
        let cap = b.settings.batch_decompressed_bytes_max.0 as usize;
        let p = match locate(&b, topic, partition)? {
            Where::Here(p) => p,
            Where::At(node) => {
                let f = remote::fetch(&b, node, topic, partition, from, bytes_max).await?;
                let mut out = SourceRead { records: Vec::new(), next_offset: from, log_end: f.lso };
                let batches = records::headers(&f.batches)
                    .into_iter()
                    .map(|(base, i)| (base.max(0) as u64, base.max(0) as u64 + u64::from(i.records), f.batches.slice(i.position..i.position + i.size)));
                collect(&mut out, (topic, partition), batches, cap, &f.aborted);
                return Ok(out);
            }
        };
        let info = b.engine.stream_info(p.stream).map_err(|e| e.to_string())?;
        let lso = p.txn.lock().lso(info.end as i64);
        let batches = b.engine.read(p.stream, from.max(0) as u64, lso.max(0) as u64, bytes_max.max(1)).await.map_err(|e| e.to_string())?;
        let upto = batches.last().map_or(from, |x| (x.base_offset + u64::from(x.count)) as i64);
        let aborted = p.txn.lock().aborted_between(from, upto);
        let mut out = SourceRead { records: Vec::new(), next_offset: from, log_end: lso };
        let batches = batches.into_iter().map(|x| (x.base_offset, x.base_offset + u64::from(x.count), x.payload));
        collect(&mut out, (topic, partition), batches, cap, &aborted);
        Ok(out)
    }
}

/// Adds the records at or past `out.next_offset` of `batches` (base offset, end offset, bytes:
/// one stored append or one batch each) to `out`, and moves `next_offset` past them; a batch
/// that cannot be decoded becomes one dead-letter record.
fn collect(out: &mut SourceRead, (topic, partition): (&str, i32), batches: impl Iterator<Item = (u64, u64, Bytes)>, cap: usize, aborted: &[AbortedTxn]) {
    let from = out.next_offset;
    for (base, end, payload) in batches {
        match decode(&payload, cap, aborted) {
            Ok(recs) => out.records.extend(recs.into_iter().filter(|r| r.offset >= from)),
            Err(reason) if end as i64 > from => {
                let reason = format!("batch at offsets {base}..{end} cannot be decoded: {reason}");
                tracing::warn!(topic, partition, %reason, "undecodable batch sent to the dead-letter table");
                out.records.push(SourceRecord {
                    // Where the table stands inside the batch, if it stood there already.
                    offset: (base as i64).max(from),
                    value: Some(payload.clone()),
                    undecodable: Some(reason),
                    ..SourceRecord::default()
                });
            }
            Err(_) => {}
        }
        out.next_offset = out.next_offset.max(end as i64);
    }
}

/// The records of one stored append (one or more v2 batches), control records and the batches
/// of `aborted` transactions left out.
pub fn decode(payload: &Bytes, decompressed_bytes_max: usize, aborted: &[AbortedTxn]) -> Result<Vec<SourceRecord>, String> {
    let mut out = Vec::new();
    let batches = records::headers(payload);
    let covered = batches.last().map_or(0, |(_, i)| i.position + i.size);
    if covered != payload.len() {
        return Err(format!("{} of {} bytes are not whole batches", payload.len() - covered, payload.len()));
    }
    for (base, info) in batches {
        let of_aborted = || info.transactional && aborted.iter().any(|a| a.producer_id == info.producer_id && (a.first_offset..=a.last_offset).contains(&base));
        if info.control || of_aborted() {
            continue;
        }
        let b = payload.slice(info.position..info.position + info.size);
        let plain = match records::records_section(&b, decompressed_bytes_max)? {
            Cow::Borrowed(s) => b.slice_ref(s),
            Cow::Owned(v) => Bytes::from(v),
        };
        let own = |s: &[u8]| plain.slice_ref(s);
        walk::stored_records(&plain, records::stored_count(&b), info.last_offset_delta(), |r| {
            out.push(SourceRecord {
                offset: base.saturating_add(i64::from(r.offset_delta)),
                timestamp_ms: if info.log_append_time { info.max_timestamp } else { info.base_timestamp.saturating_add(r.timestamp_delta) },
                key: r.key.map(own),
                value: r.value.map(own),
                headers: walk::headers(&r).into_iter().map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.map(own))).collect(),
                undecodable: None,
            })
        })?;
    }
    Ok(out)
}

mod remote;
#[cfg(test)]
mod tests;
