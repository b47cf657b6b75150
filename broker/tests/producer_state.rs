//! An idempotent producer's retry after a broker restart is acknowledged with its first offset
//! and stored once; a gap in sequences is refused. Driven over TCP with raw protocol messages.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use floe_broker::{Broker, Settings};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ListOffsetsResponse, ProduceResponse, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

struct Node {
    broker: Arc<Broker>,
    addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(dir: &std::path::Path, store: Arc<dyn ObjectStore>) -> Node {
    let mut storage = Settings::default().storage;
    storage.wal_capacity_bytes = floe_broker::units::ByteSize(16 << 20);
    let s = Settings { data_dir: dir.to_path_buf(), storage, kafka_listen: "127.0.0.1:0".into(), ..Settings::default() };
    let (bound, tls) = floe_broker::listen::bind(&s).await.expect("bind");
    let addr = bound[0].addr;
    let broker = Broker::builder(s).object_store(store).build().await.expect("broker");
    let (stop, rx) = watch::channel(false);
    let mut tasks = floe_broker::listen::start(&broker, bound, tls, &rx);
    let task = tasks.remove(0);
    Node { broker, addr, stop, task }
}

async fn stop(n: Node) {
    let _ = n.stop.send(true);
    let _ = n.task.await;
    n.broker.shutdown().await.expect("shutdown");
}

async fn call<Req: Encodable, Resp: Decodable>(addr: std::net::SocketAddr, key: ApiKey, version: i16, req: &Req) -> Resp {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 42;
    header.client_id = Some(StrBytes::from_static_str("raw-test"));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, key.request_header_version(version)).expect("header");
    req.encode(&mut buf, version).expect("body");
    s.write_all(&(buf.len() as i32).to_be_bytes()).await.expect("write");
    s.write_all(&buf).await.expect("write");
    let size = s.read_i32().await.expect("size");
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body).await.expect("body");
    let mut body = Bytes::from(body);
    let h = ResponseHeader::decode(&mut body, key.response_header_version(version)).expect("response header");
    assert_eq!(h.correlation_id, 42);
    Resp::decode(&mut body, version).expect("response")
}

fn batch(producer_id: i64, first_seq: i32, n: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: first_seq + i,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("v{}", first_seq + i))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression: Compression::None }).expect("encode");
    buf.freeze()
}

async fn produce(addr: std::net::SocketAddr, topic: &str, records: Bytes) -> (i16, i64) {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(records);
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.to_string()));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 30_000;
    req.topic_data = vec![td];
    let resp: ProduceResponse = call(addr, ApiKey::Produce, 9, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn latest(addr: std::net::SocketAddr, topic: &str) -> i64 {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.topics = vec![t];
    let resp: ListOffsetsResponse = call(addr, ApiKey::ListOffsets, 7, &req).await;
    resp.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_restart_is_acknowledged_once_and_gaps_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let node = start(dir.path(), store.clone()).await;
    node.broker.topics.create("idem", 1, Default::default(), false).await.expect("topic");
    assert_eq!(produce(node.addr, "idem", batch(-1, -1, 2)).await, (0, 0), "a plain batch");
    assert_eq!(produce(node.addr, "idem", batch(5000, 0, 3)).await, (0, 2));
    assert_eq!(produce(node.addr, "idem", batch(5000, 3, 2)).await, (0, 5));
    assert_eq!(produce(node.addr, "idem", batch(5000, 3, 2)).await, (0, 5), "a retry gets its first offset");
    assert_eq!(latest(node.addr, "idem").await, 7, "and is not stored twice");
    stop(node).await;
    // SIGTERM-like restart: state comes back from the snapshot.
    let node = start(dir.path(), store.clone()).await;
    assert_eq!(produce(node.addr, "idem", batch(5000, 3, 2)).await, (0, 5), "after a restart too");
    let (code, _) = produce(node.addr, "idem", batch(5000, 9, 1)).await;
    assert_eq!(code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER for a gap");
    assert_eq!(produce(node.addr, "idem", batch(5000, 5, 1)).await, (0, 7));
    // A crash (no snapshot after the last batch): state is rebuilt by scanning the log.
    let Node { broker, stop: stop_tx, task, .. } = node;
    let _ = stop_tx.send(true);
    let _ = task.await;
    broker.engine.crash();
    drop(broker);
    let node = start(dir.path(), store).await;
    assert_eq!(produce(node.addr, "idem", batch(5000, 5, 1)).await, (0, 7), "rebuilt from the log after a crash");
    assert_eq!(latest(node.addr, "idem").await, 8);
    stop(node).await;
}
