//! Tests of the cleaner's verdicts on appends made by kafka-protocol's encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use super::*;

const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

/// A batch of (offset, key, value, timestamp) records, all of producer `pid`.
fn batch(pid: i64, transactional: bool, records: &[(i64, Option<&str>, Option<&str>, i64)]) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .map(|&(offset, key, value, timestamp)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression: Compression::Lz4 }).expect("encode");
    buf.to_vec()
}

fn append(base: u64, count: u32, parts: &[Vec<u8>]) -> Batch {
    Batch { base_offset: base, count, payload: Bytes::from(parts.concat()) }
}

/// (offset, key, value) of every record of an append's payload.
fn rows(payload: &Bytes) -> Vec<(i64, Option<Bytes>, Option<Bytes>)> {
    let mut b = payload.clone();
    let mut out = Vec::new();
    while !b.is_empty() {
        let set = RecordBatchDecoder::decode(&mut b).expect("decodes");
        out.extend(set.records.into_iter().filter(|r| !r.control).map(|r| (r.offset, r.key, r.value)));
    }
    out
}

#[test]
fn the_latest_record_per_key_stays_and_the_rest_goes() {
    let old = NOW - 2 * DAY;
    let a1 = batch(-1, false, &[(0, Some("a"), Some("a1"), old), (1, Some("b"), Some("b1"), old), (2, Some("c"), Some("c1"), old)]);
    let a2 = batch(-1, false, &[(3, Some("a"), Some("a2"), old), (4, Some("b"), None, old), (5, None, Some("keyless"), old)]);
    let aborted = batch(9, true, &[(6, Some("c"), Some("c-aborted"), NOW)]);
    let mut marker = crate::records::control::marker(9, 0, false, 0, NOW).to_vec();
    marker[..8].copy_from_slice(&7i64.to_be_bytes());
    let recent = batch(-1, false, &[(8, Some("d"), None, NOW - 1_000)]);
    let last = batch(-1, false, &[(9, Some("a"), Some("a3"), NOW)]);

    // The map as phase 1 builds it: aborted records left out; "a" at 9 is past the cleaned end.
    let mut map = OffsetMap::with_budget(1 << 20);
    for (k, o) in [("a", 0), ("b", 1), ("c", 2), ("a", 3), ("b", 4), ("d", 8)] {
        assert!(map.put(k.as_bytes(), o));
    }
    let aborted_txns = Aborted::new(&[AbortedTxn { producer_id: 9, first_offset: 6, last_offset: 7 }]);
    let mut f = Filter {
        map: &map,
        aborted: &aborted_txns,
        now_ms: NOW,
        delete_retention_ms: DAY,
        to: 10,
        decompressed_bytes_max: 1 << 20,
        removed: Removed::default(),
        bytes_out: 0,
    };

    let Rewritten::Replace(first) = f.apply(&append(0, 6, &[a1, a2])).expect("apply") else { panic!("the first append is thinned") };
    let s = |v: &str| Some(Bytes::copy_from_slice(v.as_bytes()));
    assert_eq!(rows(&first), vec![(2, s("c"), s("c1")), (3, s("a"), s("a2"))], "superseded, an expired tombstone and a keyless record go");
    let Rewritten::Replace(second) = f.apply(&append(6, 3, &[aborted, marker.clone(), recent])).expect("apply") else { panic!("the aborted batch goes") };
    assert_eq!(rows(&second), vec![(8, s("d"), None)], "a tombstone younger than delete.retention.ms stays");
    assert!(second.windows(marker.len()).any(|w| w == marker.as_slice()), "the marker stays byte for byte");
    assert_eq!(f.apply(&append(9, 1, &[last])).expect("apply"), Rewritten::Keep, "nothing newer: it stays");
    assert_eq!(f.removed, Removed { superseded: 2, tombstones: 1, keyless: 1, aborted_batches: 1, unreadable: 0 });
    // An append at the cleaned end that would go entirely stays whole: the log never ends in a gap.
    let mut f = Filter { to: 11, removed: Removed::default(), ..f };
    let expired = batch(-1, false, &[(10, Some("gone"), None, old)]);
    assert_eq!(f.apply(&append(10, 1, std::slice::from_ref(&expired))).expect("apply"), Rewritten::Keep);
    assert_eq!(f.removed, Removed::default(), "what stays is not counted as removed");
    let mut f = Filter { to: 12, ..f };
    assert_eq!(f.apply(&append(10, 1, &[expired])).expect("apply"), Rewritten::Drop, "below the end it goes");
}

#[test]
fn an_append_of_only_superseded_records_is_dropped_and_a_clean_one_kept() {
    let mut map = OffsetMap::with_budget(1 << 20);
    map.put(b"k", 5);
    let none = Aborted::default();
    let mut f = Filter {
        map: &map,
        aborted: &none,
        now_ms: NOW,
        delete_retention_ms: DAY,
        to: 100,
        decompressed_bytes_max: 1 << 20,
        removed: Removed::default(),
        bytes_out: 0,
    };
    assert_eq!(f.apply(&append(0, 2, &[batch(-1, false, &[(0, Some("k"), Some("x"), NOW), (1, Some("k"), Some("y"), NOW)])])).expect("apply"), Rewritten::Drop);
    assert_eq!(f.apply(&append(5, 1, &[batch(-1, false, &[(5, Some("k"), Some("z"), NOW)])])).expect("apply"), Rewritten::Keep);
    let garbage = Batch { base_offset: 6, count: 1, payload: Bytes::from_static(b"not a batch at all, but long enough to be read as one maybe") };
    assert_eq!(f.apply(&garbage).expect("apply"), Rewritten::Keep, "what cannot be read is kept, never lost");
    assert_eq!(f.removed.unreadable, 1);
}
