//! The transaction coordinator against the broker's (injected) clock: an open transaction
//! survives a restart, is aborted once past its timeout (a marker in each of its partitions, its
//! producer fenced), and an end retried after it completed is answered the same.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use floe_broker::error::BrokerError;
use floe_broker::txn::metadata::TxnState;
use floe_broker::units::ByteSize;
use floe_broker::{Broker, Clock, Settings};
use object_store::memory::InMemory;
use object_store::ObjectStore;

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

const T0: i64 = 1_767_225_600_000;

async fn start(dir: &std::path::Path, store: Arc<dyn ObjectStore>, clock: Arc<ManualClock>) -> Arc<Broker> {
    let mut storage = Settings::default().storage;
    storage.wal_capacity_bytes = ByteSize(16 << 20);
    let s = Settings { data_dir: dir.to_path_buf(), storage, transaction_state_partitions: 4, ..Settings::default() };
    Broker::builder(s).object_store(store).clock(clock).build().await.expect("broker")
}

fn end_offset(b: &Broker, topic: &str, partition: i32) -> u64 {
    let p = b.topics.partition(topic, partition).expect("partition");
    b.engine.stream_info(p.stream).expect("info").end
}

#[tokio::test]
async fn an_open_transaction_survives_a_restart_and_times_out_into_an_abort() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock = Arc::new(ManualClock(AtomicI64::new(T0)));
    let b = start(dir.path(), store.clone(), clock.clone()).await;
    b.topics.create("out", 2, Default::default(), false).await.expect("topic");
    let (pid, epoch) = b.txn.init_producer_id(&b, "app", 10_000, None).await.expect("init");
    assert_eq!(epoch, 0, "a new transactional id starts at epoch 0");
    assert!(matches!(b.txn.init_producer_id(&b, "app", 1_000_000_000, None).await, Err(BrokerError::InvalidTransactionTimeout { .. })));
    let parts = vec![("out".to_string(), 0), ("out".to_string(), 1)];
    b.txn.add_partitions(&b, "app", pid, epoch, &parts, false).await.expect("add");
    b.txn.add_partitions(&b, "app", pid, epoch, &parts[..1], true).await.expect("verify-only: in");
    b.shutdown().await.expect("shutdown");

    let b = start(dir.path(), store.clone(), clock.clone()).await;
    let m = b.txn.get("app").expect("known after the restart");
    assert_eq!((m.state, m.partitions.len(), m.producer_epoch), (TxnState::Ongoing, 2, epoch));
    clock.0.store(T0 + 10_000, Ordering::SeqCst);
    b.txn.tick(&b).await;
    assert_eq!(b.txn.get("app").expect("app").state, TxnState::Ongoing, "not past its timeout yet");
    clock.0.store(T0 + 10_001, Ordering::SeqCst);
    b.txn.tick(&b).await;
    let m = b.txn.get("app").expect("app");
    assert_eq!((m.state, m.producer_epoch), (TxnState::CompleteAbort, epoch + 1), "aborted at a fencing epoch");
    assert_eq!((end_offset(&b, "out", 0), end_offset(&b, "out", 1)), (1, 1), "an ABORT marker in each partition");
    assert_eq!(b.txn.metrics.timed_out.load(Ordering::Relaxed), 1);
    let late = b.txn.end_txn(&b, "app", pid, epoch, true).await.expect_err("the timed-out producer");
    assert!(matches!(late, BrokerError::ProducerFenced { .. }), "{late}");
    b.shutdown().await.expect("shutdown");

    let b = start(dir.path(), store, clock).await;
    assert_eq!(b.txn.get("app").expect("app").state, TxnState::CompleteAbort, "the outcome is durable");
    let (pid2, epoch2) = b.txn.init_producer_id(&b, "app", 10_000, None).await.expect("a new producer");
    assert_eq!((pid2, epoch2), (pid, epoch + 2));
    b.txn.add_partitions(&b, "app", pid2, epoch2, &parts[1..], false).await.expect("add");
    b.txn.end_txn(&b, "app", pid2, epoch2, true).await.expect("commit");
    b.txn.end_txn(&b, "app", pid2, epoch2, true).await.expect("a retried commit is answered the same");
    assert_eq!((end_offset(&b, "out", 0), end_offset(&b, "out", 1)), (1, 2), "a COMMIT marker in partition 1 only, once");
    b.shutdown().await.expect("shutdown");
}
