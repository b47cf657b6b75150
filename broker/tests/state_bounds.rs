//! Bounded broker state: offsets retention by the broker's (injected) clock (a group's offsets
//! outlive the retention by nothing, their deletion is durable), and a state snapshot larger than
//! one append written in parts and replayed whole.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use floe_broker::state::Committed;
use floe_broker::units::{ByteSize, Millis};
use floe_broker::{Broker, Clock, Settings};
use object_store::memory::InMemory;
use object_store::ObjectStore;

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

const RETENTION_MS: u64 = 60_000;
const T0: i64 = 1_767_225_600_000;

async fn start(dir: &std::path::Path, store: Arc<dyn ObjectStore>, clock: Arc<ManualClock>) -> Arc<Broker> {
    let mut storage = Settings::default().storage;
    storage.wal_capacity_bytes = ByteSize(16 << 20);
    let s = Settings { data_dir: dir.to_path_buf(), storage, offsets_retention_ms: Millis(RETENTION_MS), ..Settings::default() };
    Broker::builder(s).object_store(store).clock(clock).build().await.expect("broker")
}

fn committed(offset: i64, at: i64) -> Option<Committed> {
    Some(Committed { offset, leader_epoch: -1, metadata: None, commit_ms: at })
}

#[tokio::test]
async fn offsets_of_an_inactive_group_expire_after_the_retention_and_stay_gone() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock = Arc::new(ManualClock(AtomicI64::new(T0)));
    let b = start(dir.path(), store.clone(), clock.clone()).await;
    b.state.commit("standalone", vec![("t".into(), 0, committed(5, T0))]).await.expect("commit");
    b.state.commit("later", vec![("t".into(), 0, committed(9, T0 + 30_000))]).await.expect("commit");

    let at_limit = floe_broker::expiry::expire_groups(&b, T0 + RETENTION_MS as i64).await.expect("pass");
    assert!(at_limit.is_empty(), "not past the retention yet: {at_limit:?}");
    let expired = floe_broker::expiry::expire_groups(&b, T0 + RETENTION_MS as i64 + 1).await.expect("pass");
    assert_eq!(expired, vec!["standalone".to_string()]);
    assert!(b.state.group_offsets("standalone").is_empty());
    assert_eq!(b.state.group_offsets("later").len(), 1, "committed 30 s later: still within the retention");
    b.shutdown().await.expect("shutdown");

    let b = start(dir.path(), store, clock).await;
    assert!(b.state.group_offsets("standalone").is_empty(), "the expiry is durable");
    assert_eq!(b.state.committed("later", "t", 0).map(|c| c.offset), Some(9));
    b.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_snapshot_larger_than_one_append_is_written_in_parts_and_replayed_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock = Arc::new(ManualClock(AtomicI64::new(T0)));
    let b = start(dir.path(), store.clone(), clock.clone()).await;
    // 60,000 offsets with 120 bytes of metadata each: ~12 MB of snapshot, past the 8 MiB append limit.
    let meta = "m".repeat(120);
    for g in 0..60 {
        let entries = (0..1000)
            .map(|p| (format!("topic-{g}"), p, Some(Committed { offset: i64::from(p), leader_epoch: -1, metadata: Some(meta.clone()), commit_ms: T0 })))
            .collect();
        b.state.commit(&format!("group-{g}"), entries).await.expect("commit");
    }
    b.state.snapshot(&b.topics).await.expect("a large snapshot is written in parts");
    b.state.commit("after", vec![("t".into(), 0, committed(7, T0))]).await.expect("commit after the snapshot");
    b.shutdown().await.expect("shutdown");

    let b = start(dir.path(), store, clock).await;
    assert_eq!(b.state.groups_with_offsets().len(), 61);
    assert_eq!(b.state.committed("group-59", "topic-59", 999).map(|c| c.offset), Some(999));
    assert_eq!(b.state.committed("after", "t", 0).map(|c| c.offset), Some(7));
    b.shutdown().await.expect("shutdown");
}
