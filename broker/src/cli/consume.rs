//! `floe consume TOPIC`: records as JSON lines on stdout (the shape `floe produce --envelope` reads),
//! from the earliest, the latest or a given offset, until the end of the log or for ever.

use std::io::Write;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::records::RecordBatchDecoder;
use serde_json::{json, Map, Value};

use super::kafka::{check, Conn};
use super::topic::{offsets, partitions};
use crate::handlers::sb;

/// Bytes fetched per partition per request at most.
const PARTITION_BYTES_MAX: i32 = 1 << 20;
/// Bytes fetched per request at most.
const FETCH_BYTES_MAX: i32 = 8 << 20;
/// How long the broker may hold a fetch waiting for data.
const FETCH_WAIT_MS: i32 = 500;

#[derive(Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Where to start: `earliest`, `latest`, or an offset (with --partition).
    #[arg(long, default_value = "earliest")]
    pub from: String,
    /// Stop after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end of the log.
    #[arg(long)]
    pub follow: bool,
    /// Read uncommitted transactional records too.
    #[arg(long)]
    pub read_uncommitted: bool,
}

/// A record's key, value or header as JSON: JSON as itself, other UTF-8 as a string, anything
/// else as `{"hex": "…"}`.
pub fn render(b: Option<&Bytes>) -> Value {
    let Some(b) = b else { return Value::Null };
    if let Ok(v) = serde_json::from_slice::<Value>(b) {
        return v;
    }
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

pub async fn run(conn: &Conn, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let all: Vec<i32> = partitions(&mut c, &args.topic).await?.into_iter().map(|p| p.0).collect();
    let parts = match args.partition {
        Some(p) if all.contains(&p) => vec![p],
        Some(p) => bail!("{}: no partition {p} (it has {})", args.topic, all.len()),
        None => all,
    };
    let mut positions: Vec<(i32, i64)> = match args.from.as_str() {
        "earliest" => offsets(&mut c, &args.topic, &parts, -2).await?,
        "latest" => offsets(&mut c, &args.topic, &parts, -1).await?,
        n => {
            let off: i64 = n.parse().map_err(|_| anyhow!("--from {n:?}: expected earliest, latest or an offset"))?;
            if parts.len() != 1 {
                bail!("--from {off} needs --partition");
            }
            vec![(parts[0], off)]
        }
    };
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    let limit = args.max_messages.unwrap_or(u64::MAX);
    while printed < limit {
        let fetch_parts = positions
            .iter()
            .map(|(p, o)| FetchPartition::default().with_partition(*p).with_fetch_offset(*o).with_partition_max_bytes(PARTITION_BYTES_MAX))
            .collect();
        let req = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(FETCH_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_BYTES_MAX)
            .with_isolation_level(if args.read_uncommitted { 0 } else { 1 })
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(TopicName(sb(&args.topic))).with_partitions(fetch_parts)]);
        let resp = c.call(&req, 12).await?;
        // Taken after the fetch and dropped before the next one: never held across an await.
        let mut out = stdout.lock();
        check(resp.error_code, None, "fetching")?;
        let mut at_end = true;
        for t in resp.responses {
            for pd in t.partitions {
                check(pd.error_code, None, &format!("fetching {}/{}", args.topic, pd.partition_index))?;
                let Some(pos) = positions.iter_mut().find(|(p, _)| *p == pd.partition_index) else { continue };
                // A fetch may end in a partial batch: only the complete ones are read.
                let data = pd.records.unwrap_or_default();
                for (_, info) in crate::records::headers(&data) {
                    let mut b = data.slice(info.position..info.position + info.size);
                    let set = RecordBatchDecoder::decode(&mut b)
                        .map_err(|e| anyhow!("a corrupt batch in {}/{} at {}: {e}", args.topic, pd.partition_index, pos.1))?;
                    let mut next = pos.1;
                    for r in set.records {
                        next = next.max(r.offset + 1);
                        if r.control || r.offset < pos.1 || printed >= limit {
                            continue;
                        }
                        let headers: Map<String, Value> = r.headers.iter().map(|(k, v)| (k.to_string(), render(v.as_ref()))).collect();
                        let line = json!({
                            "partition": pd.partition_index, "offset": r.offset, "timestamp": r.timestamp,
                            "key": render(r.key.as_ref()), "value": render(r.value.as_ref()), "headers": headers,
                        });
                        writeln!(out, "{line}").context("writing stdout")?;
                        printed += 1;
                    }
                    if printed < limit {
                        pos.1 = next;
                    }
                }
                let end = if args.read_uncommitted || pd.last_stable_offset < 0 { pd.high_watermark } else { pd.last_stable_offset };
                if pos.1 < end {
                    at_end = false;
                }
            }
        }
        out.flush().context("writing stdout")?;
        if at_end && !args.follow {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_json_text_or_hex() {
        assert_eq!(render(Some(&Bytes::from(r#"{"a":1}"#))), json!({"a": 1}));
        assert_eq!(render(Some(&Bytes::from("plain"))), json!("plain"));
        assert_eq!(render(Some(&Bytes::from_static(&[0, 0xff]))), json!({"hex": "00ff"}));
        assert_eq!(render(None), Value::Null);
    }
}
