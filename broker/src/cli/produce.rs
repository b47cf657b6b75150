//! `floe produce TOPIC`: JSON lines from stdin into a topic, acks=all, keyed records placed the
//! way Kafka's Java client places them (murmur2), with progress on stderr for a bulk load.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::{Bytes, BytesMut};
use clap::Args;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::kafka::{check, Client, Conn};
use super::topic::partitions;
use crate::handlers::sb;

/// The longest input line.
const LINE_BYTES_MAX: u64 = 8 << 20;
/// Bytes of records sent in one request at most.
const REQUEST_BYTES_MAX: usize = 4 << 20;

#[derive(Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Take the key from this top-level field of each JSON value.
    #[arg(long, conflicts_with = "envelope")]
    pub key_field: Option<String>,
    /// Each line is `{"key":…, "value":…, "headers":{…}, "partition":N}` (the shape `floe consume`
    /// prints) instead of a bare value; a null value is a tombstone.
    #[arg(long)]
    pub envelope: bool,
    /// Send every record to this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Records per produce request at most.
    #[arg(long, default_value_t = 1000)]
    pub batch_records: usize,
}

/// One record to send.
#[derive(Debug, PartialEq)]
pub struct Draft {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub partition: Option<i32>,
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(b) = rest.first() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for `key` among `n`.
pub fn partition_for(key: &[u8], n: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % n.max(1)
}

/// Bytes of a JSON value in a record: a string as its text, anything else as JSON.
fn json_bytes(v: &Value) -> Option<Bytes> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Bytes::from(s.clone())),
        other => Some(Bytes::from(other.to_string())),
    }
}

/// One input line as a record; an error says what is wrong with it.
pub fn parse_line(line: &[u8], key_field: Option<&str>, envelope: bool) -> anyhow::Result<Draft> {
    let v: Value = serde_json::from_slice(line).map_err(|e| anyhow!("not JSON: {e}"))?;
    if !envelope {
        let key = match key_field {
            None => None,
            Some(f) => Some(json_bytes(v.get(f).ok_or_else(|| anyhow!("no field {f:?} for the key"))?).ok_or_else(|| anyhow!("the key field {f:?} is null"))?),
        };
        return Ok(Draft { key, value: Some(Bytes::copy_from_slice(line)), headers: Vec::new(), partition: None });
    }
    let Value::Object(mut o) = v else { bail!("an envelope must be a JSON object") };
    if let Some(extra) = o.keys().find(|k| !["key", "value", "headers", "partition", "offset", "timestamp"].contains(&k.as_str())) {
        bail!("unknown envelope field {extra:?}");
    }
    let headers = match o.remove("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(h)) => h.into_iter().map(|(k, v)| (k, json_bytes(&v))).collect(),
        Some(_) => bail!("headers must be an object of strings"),
    };
    let partition = match o.get("partition") {
        None | Some(Value::Null) => None,
        Some(p) => Some(p.as_i64().and_then(|p| i32::try_from(p).ok()).filter(|p| *p >= 0).ok_or_else(|| anyhow!("partition must be a non-negative integer"))?),
    };
    Ok(Draft { key: o.get("key").and_then(json_bytes), value: o.get("value").and_then(json_bytes), headers, partition })
}

fn encode(records: &[Draft]) -> anyhow::Result<Bytes> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, d)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: d.key.clone(),
            value: d.value.clone(),
            headers: d.headers.iter().map(|(k, v)| (sb(k), v.clone())).collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, recs.iter(), &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| anyhow!("encoding records: {e}"))?;
    Ok(buf.freeze())
}

/// Records waiting to be sent, by partition.
struct Pending {
    parts: Vec<Vec<Draft>>,
    records: usize,
    bytes: usize,
}

async fn send(c: &mut Client, topic: &str, pending: &mut Pending, timeout_ms: i32) -> anyhow::Result<usize> {
    let mut data = Vec::new();
    for (p, drafts) in pending.parts.iter().enumerate() {
        if !drafts.is_empty() {
            data.push(PartitionProduceData::default().with_index(p as i32).with_records(Some(encode(drafts)?)));
        }
    }
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default().with_name(TopicName(sb(topic))).with_partition_data(data)]);
    let resp = c.call(&req, 9).await?;
    for t in &resp.responses {
        for p in &t.partition_responses {
            let detail = p.record_errors.first().and_then(|e| e.batch_index_error_message.clone()).or(p.error_message.clone());
            check(p.error_code, detail.as_ref(), &format!("producing to {topic}/{}", p.index))?;
        }
    }
    let n = pending.records;
    pending.parts.iter_mut().for_each(Vec::clear);
    pending.records = 0;
    pending.bytes = 0;
    Ok(n)
}

/// Prints progress on stderr once a second after the first second.
struct Progress {
    start: Instant,
    last: Instant,
    tty: bool,
}

impl Progress {
    fn tick(&mut self, topic: &str, n: usize) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            let rate = n as f64 / self.start.elapsed().as_secs_f64().max(1e-3);
            if self.tty {
                eprint!("\rproduced {n} records to {topic} ({rate:.0}/s)");
            } else {
                eprintln!("produced {n} records to {topic} ({rate:.0}/s)");
            }
        }
    }
}

pub async fn run(conn: &Conn, args: ProduceArgs) -> anyhow::Result<()> {
    let mut c = conn.connect().await?;
    let n_parts = partitions(&mut c, &args.topic).await?.len() as i32;
    if n_parts == 0 {
        bail!("{}: no partitions", args.topic);
    }
    if let Some(p) = args.partition.filter(|p| *p < 0 || *p >= n_parts) {
        bail!("{}: no partition {p} (it has {n_parts})", args.topic);
    }
    let mut pending = Pending { parts: (0..n_parts).map(|_| Vec::new()).collect(), records: 0, bytes: 0 };
    let mut reader = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let (mut line_no, mut sent, mut round_robin) = (0usize, 0usize, 0i32);
    let mut progress = Progress { start: Instant::now(), last: Instant::now(), tty: std::io::stderr().is_terminal() };
    let timeout_ms = i32::try_from(conn.timeout_ms).unwrap_or(i32::MAX);
    loop {
        line.clear();
        let got = (&mut reader).take(LINE_BYTES_MAX + 1).read_until(b'\n', &mut line).await.context("reading stdin")?;
        if got == 0 {
            break;
        }
        line_no += 1;
        if line.len() as u64 > LINE_BYTES_MAX {
            bail!("line {line_no}: longer than {LINE_BYTES_MAX} bytes ({sent} records before it were produced)");
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let placed = parse_line(text, args.key_field.as_deref(), args.envelope).and_then(|d| {
            let p = match (args.partition, d.partition, &d.key) {
                (Some(p), _, _) => p,
                (None, Some(p), _) if p < n_parts => p,
                (None, Some(p), _) => bail!("no partition {p} in {}", args.topic),
                (None, None, Some(k)) => partition_for(k, n_parts),
                (None, None, None) => {
                    round_robin = (round_robin + 1) % n_parts;
                    round_robin
                }
            };
            Ok((d, p))
        });
        let (draft, p) = match placed {
            Ok(x) => x,
            Err(e) => {
                // The lines before the bad one are sent, so what the message says was produced was.
                if pending.records > 0 {
                    sent += send(&mut c, &args.topic, &mut pending, timeout_ms).await?;
                }
                bail!("line {line_no}: {e} ({sent} records before it were produced)");
            }
        };
        pending.bytes += draft.key.as_ref().map_or(0, Bytes::len) + draft.value.as_ref().map_or(0, Bytes::len);
        pending.records += 1;
        pending.parts[p as usize].push(draft);
        if pending.records >= args.batch_records.max(1) || pending.bytes >= REQUEST_BYTES_MAX {
            sent += send(&mut c, &args.topic, &mut pending, timeout_ms).await.map_err(|e| anyhow!("{e} ({sent} records before it were produced)"))?;
            progress.tick(&args.topic, sent);
        }
    }
    if pending.records > 0 {
        sent += send(&mut c, &args.topic, &mut pending, timeout_ms).await.map_err(|e| anyhow!("{e} ({sent} records before it were produced)"))?;
    }
    if progress.tty && progress.start.elapsed() >= Duration::from_secs(1) {
        eprintln!();
    }
    eprintln!("produced {sent} records to {}", args.topic);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn lines_become_records_or_a_clear_error() {
        let d = parse_line(br#"{"id": 7, "name": "x"}"#, Some("id"), false).expect("value");
        assert_eq!(d.key.as_deref(), Some(&b"7"[..]));
        assert_eq!(d.value.as_deref(), Some(&br#"{"id": 7, "name": "x"}"#[..]), "the line is sent as written");
        let e = parse_line(br#"{"name": "x"}"#, Some("id"), false).expect_err("no key");
        assert!(e.to_string().contains("\"id\""), "{e}");
        assert!(parse_line(b"{not json", None, false).expect_err("bad").to_string().starts_with("not JSON"));

        let d = parse_line(br#"{"key": "k1", "value": null, "headers": {"h": "v"}, "partition": 1}"#, None, true).expect("envelope");
        assert_eq!(d, Draft { key: Some(Bytes::from("k1")), value: None, headers: vec![("h".into(), Some(Bytes::from("v")))], partition: Some(1) });
        let d = parse_line(br#"{"value": {"a": 1}}"#, None, true).expect("envelope");
        assert_eq!(d.value.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert!(parse_line(br#"{"vale": 1}"#, None, true).expect_err("typo").to_string().contains("vale"));
        assert!(parse_line(br#"{"partition": -1}"#, None, true).is_err());
    }
}
