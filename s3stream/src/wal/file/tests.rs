//! Tests of the ring-file WAL: round trip, wrap-around, trim, and a torn tail.

use super::*;
use crate::Batch;

fn rec(stream: u64, base: u64, n: usize) -> WalRecord {
    WalRecord { stream, batch: Batch { base_offset: base, count: 1, payload: Bytes::from(vec![base as u8; n]) } }
}

#[tokio::test]
async fn records_survive_reopen_and_wrap_around_the_ring() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = 1 << 20;
    let mut wal = FileWal::open(dir.path(), cap).expect("open");
    let mut written = vec![];
    // Write ~2.5 laps, trimming behind us, so records wrap around the end of the ring.
    for i in 0..100u64 {
        let group = vec![rec(1, i * 2, 9000), rec(2, i * 2 + 1, 4000)];
        let end = wal.write(&group, &[]).await.expect("write").end;
        written.extend(group);
        if i % 10 == 9 {
            wal.trim(end).await.expect("trim");
            written.clear();
        }
    }
    for i in 100..103u64 {
        let group = vec![rec(3, i, 7777)];
        wal.write(&group, &[]).await.expect("write");
        written.extend(group);
    }
    drop(wal);
    let mut wal = FileWal::open(dir.path(), cap).expect("reopen");
    let rec = wal.recover().await.expect("recover");
    assert_eq!(rec.records, written);
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_the_last_good_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = FileWal::open(dir.path(), 1 << 20).expect("open");
    wal.write(&[rec(1, 0, 100)], &[]).await.expect("write");
    let end = wal.write(&[rec(1, 1, 100)], &[]).await.expect("write").end;
    wal.write(&[rec(1, 2, 100)], &[]).await.expect("write");
    drop(wal);
    // Tear the third record: flip a byte in its payload.
    let f = OpenOptions::new().write(true).open(dir.path().join("wal.log")).expect("file");
    f.write_all_at(&[0xAB], DATA_START + end + 50).expect("tear");
    let mut wal = FileWal::open(dir.path(), 1 << 20).expect("reopen");
    let r = wal.recover().await.expect("recover");
    assert_eq!(r.records, vec![rec(1, 0, 100), rec(1, 1, 100)]);
    assert_eq!(r.end, end);
    // Writing resumes where the good data ended.
    wal.write(&[rec(1, 2, 50)], &[]).await.expect("write");
    drop(wal);
    let r = FileWal::open(dir.path(), 1 << 20).expect("reopen").recover().await.expect("recover");
    assert_eq!(r.records.len(), 3);
}

#[tokio::test]
async fn a_full_ring_refuses_instead_of_overwriting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = FileWal::open(dir.path(), 1 << 20).expect("open");
    for i in 0..10 {
        wal.write(&[rec(1, i, 100_000)], &[]).await.expect("fits");
    }
    assert!(wal.write(&[rec(1, 10, 100_000)], &[]).await.is_err());
}
