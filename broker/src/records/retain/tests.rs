//! Tests of batch thinning, checked with kafka-protocol's own decoder (CRC, framing, codecs).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

use super::*;
use crate::records::tests::record;

fn batch(compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..10).map(|i| record(100, i, 7, 0, format!("value {i} {}", "x".repeat(40)).into_bytes())).collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression }).expect("encode");
    buf.freeze()
}

#[test]
fn kept_records_keep_their_offsets_timestamps_and_producer_in_every_codec() {
    for compression in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let b = batch(compression);
        let mut seen = Vec::new();
        let Retained::Some(out) = retain(&b, 100, 1 << 20, |c| {
            seen.push((c.offset, c.timestamp_ms, c.key.map(<[u8]>::to_vec)));
            c.offset % 3 == 0
        })
        .expect("retain") else {
            panic!("{compression:?}: some records are kept")
        };
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[4], (104, 1_700_000_000_004, Some(b"k4".to_vec())), "the predicate sees real offsets and times");
        let decoded = RecordBatchDecoder::decode(&mut Bytes::from(out.clone())).expect("kafka-protocol reads the rewritten batch");
        let got: Vec<(i64, i64, Option<Bytes>, i32)> = decoded.records.iter().map(|r| (r.offset, r.timestamp, r.key.clone(), r.sequence)).collect();
        let want: Vec<(i64, i64, Option<Bytes>, i32)> =
            [102i64, 105, 108].iter().map(|&o| (o, 1_700_000_000_000 + o - 100, Some(Bytes::from(format!("k{}", o - 100))), (o - 100) as i32)).collect();
        assert_eq!(got, want, "{compression:?}");
        assert!(decoded.records.iter().all(|r| r.producer_id == 7));
        // The batch still spans offsets 100..=109 and counts its three records.
        let (base, info) = crate::records::headers(&out)[0];
        assert_eq!((base, info.records, stored_count(&out)), (100, 10, 3));
        // Thinning again is stable.
        assert_eq!(retain(&out, 100, 1 << 20, |_| true).expect("again"), Retained::All);
    }
}

#[test]
fn all_or_nothing_is_reported_without_rewriting() {
    let b = batch(Compression::None);
    assert_eq!(retain(&b, 100, 1 << 20, |_| true).expect("all"), Retained::All);
    assert_eq!(retain(&b, 100, 1 << 20, |_| false).expect("none"), Retained::None);
    assert!(retain(&b[..40], 100, 1 << 20, |_| true).is_err(), "a cut batch is an error, not a panic");
}
