//! Stored batches into Table Topic records: honest ones decode (compressed too), lying ones are one dead letter.

use bytes::BytesMut;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

use super::*;

fn batch(values: &[Vec<u8>], compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            headers: [(kafka_protocol::protocol::StrBytes::from_static_str("h"), Some(Bytes::from_static(b"v")))].into_iter().collect(),
            ..crate::records::tests::record(100, i as i64, 1, 0, v.clone())
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression }).expect("encode");
    buf.freeze()
}

#[test]
fn stored_batches_decode_into_records_with_offsets_timestamps_and_headers() {
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let b = batch(&[b"a".to_vec(), b"bb".to_vec()], c);
        let recs = decode(&b, 1 << 20, &[]).expect("decodes");
        assert_eq!(recs.len(), 2, "{c:?}");
        assert_eq!((recs[1].offset, recs[1].timestamp_ms), (101, 1_700_000_000_001));
        assert_eq!(recs[1].value.as_deref(), Some(&b"bb"[..]));
        assert_eq!(recs[0].key.as_deref(), Some(&b"k0"[..]));
        assert_eq!(recs[0].headers, vec![("h".to_string(), Some(Bytes::from_static(b"v")))]);
    }
}

#[test]
fn a_stored_bomb_or_lying_count_is_an_error_for_the_dead_letter_table_not_an_allocation() {
    let bomb = batch(&vec![vec![0u8; 1 << 20]; 8], Compression::Gzip);
    let err = decode(&bomb, 1 << 20, &[]).expect_err("over the cap");
    assert!(err.contains("inflate past"), "{err}");
    let mut lying = batch(&[b"one".to_vec()], Compression::None).to_vec();
    lying[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    lying[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let err = decode(&Bytes::from(lying), 1 << 20, &[]).expect_err("lying count");
    assert!(err.contains("record 1"), "{err}");
    let mut cut = batch(&[b"one".to_vec()], Compression::None).to_vec();
    cut.truncate(cut.len() - 2);
    assert!(decode(&Bytes::from(cut), 1 << 20, &[]).is_err());
}

#[test]
fn log_append_time_batches_take_the_batch_time() {
    let mut b = batch(&[b"a".to_vec(), b"b".to_vec()], Compression::None).to_vec();
    b[22] |= 0x08; // timestamp type: log append time (the low byte of the attributes)
    b[35..43].copy_from_slice(&1_800_000_000_000i64.to_be_bytes()); // max timestamp
    let recs = decode(&Bytes::from(b), 1 << 20, &[]).expect("decodes");
    assert!(recs.iter().all(|r| r.timestamp_ms == 1_800_000_000_000), "{recs:?}");
}
