//! The broker as a Table Topic record source: durable batches read from the engine and decoded
//! (decompressed) into records; control records left out.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use floe_table_topic::{RecordSource, SourceRead, SourceRecord};
use kafka_protocol::records::RecordBatchDecoder;

use crate::broker::Broker;

/// Reads a node's topics for its Table Topics (weakly held: the broker owns the Table Topics).
pub struct BrokerSource(pub Weak<Broker>);

impl BrokerSource {
    fn broker(&self) -> Result<Arc<Broker>, String> {
        self.0.upgrade().ok_or_else(|| "the broker is shutting down".to_string())
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
        let p = b.topics.partition(topic, partition).map_err(|e| e.to_string())?;
        let info = b.engine.stream_info(p.stream).map_err(|e| e.to_string())?;
        Ok((info.start as i64, info.end as i64))
    }

    async fn read(&self, topic: &str, partition: i32, from: i64, bytes_max: u64) -> Result<SourceRead, String> {
        let b = self.broker()?;
        let p = b.topics.partition(topic, partition).map_err(|e| e.to_string())?;
        let info = b.engine.stream_info(p.stream).map_err(|e| e.to_string())?;
        let batches = b.engine.read(p.stream, from.max(0) as u64, info.end, bytes_max.max(1)).await.map_err(|e| e.to_string())?;
        let mut out = SourceRead { records: Vec::new(), next_offset: from, log_end: info.end as i64 };
        for batch in batches {
            let mut buf = batch.payload.clone();
            let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| format!("{topic}-{partition} batch at offset {}: {e}", batch.base_offset))?;
            for set in sets {
                for r in set.records {
                    if r.control || r.offset < from {
                        continue;
                    }
                    out.records.push(SourceRecord {
                        offset: r.offset,
                        timestamp_ms: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r.headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    });
                }
            }
            out.next_offset = out.next_offset.max((batch.base_offset + u64::from(batch.count)) as i64);
        }
        Ok(out)
    }
}
