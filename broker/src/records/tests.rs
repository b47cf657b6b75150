//! Tests of batch validation against batches made by kafka-protocol's own encoder.

use super::*;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

fn validate_(b: &[u8]) -> Result<Vec<BatchInfo>> {
    validate(b, 1 << 20)
}

/// Record `i` of a test batch: producer `producer_id` at sequence `sequence + i`, offset
/// `base + i`, timestamp 1_700_000_000_000 + i, key `k{i}` (shared with other test modules).
pub(crate) fn record(base: i64, i: i64, producer_id: i64, sequence: i32, value: Vec<u8>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch: 0,
        timestamp_type: TimestampType::Creation,
        offset: base + i,
        sequence: sequence + i as i32,
        timestamp: 1_700_000_000_000 + i,
        key: Some(Bytes::from(format!("k{i}"))),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    }
}

fn encode(n: i64, producer_id: i64, sequence: i32, magic: i8) -> Bytes {
    let records: Vec<Record> = (0..n).map(|i| record(0, i, producer_id, sequence, format!("value {i}").into_bytes())).collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions { version: magic, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).expect("encode");
    buf.freeze()
}

#[test]
fn valid_batches_are_read_and_offsets_assigned_without_breaking_the_crc() {
    let mut two = BytesMut::new();
    two.extend_from_slice(&encode(3, 42, 7, 2));
    two.extend_from_slice(&encode(2, 42, 10, 2));
    let two = two.freeze();
    let infos = validate_(&two).expect("valid");
    assert_eq!(infos.len(), 2);
    assert_eq!((infos[0].records, infos[0].producer_id, infos[0].base_sequence), (3, 42, 7));
    assert_eq!(infos[0].last_sequence(), 9);
    let mut stored = two.to_vec();
    for s in offset_stamps(&infos, 100) {
        stored[s.at..s.at + 8].copy_from_slice(&s.value.to_be_bytes());
    }
    let stored = Bytes::from(stored);
    validate_(&stored).expect("still valid after the offsets are set");
    let h = headers(&stored);
    assert_eq!(h.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![100, 103]);
}

#[test]
fn a_partial_batch_at_the_end_is_left_for_the_next_fetch() {
    let (a, b) = (encode(3, -1, -1, 2), encode(2, -1, -1, 2));
    let mut data = BytesMut::new();
    data.extend_from_slice(&a);
    data.extend_from_slice(&b);
    data.extend_from_slice(&encode(4, -1, -1, 2)[..30]);
    let got = headers(&data);
    assert_eq!(got.len(), 2);
    assert_eq!(&data[got[1].1.position..got[1].1.position + got[1].1.size], &b[..]);
}

#[test]
fn the_first_record_at_a_timestamp_is_found_inside_a_batch() {
    let b = encode(5, -1, -1, 2);
    let info = validate_(&b).expect("valid")[0];
    assert_eq!(first_record_at_or_after(&b, &info, 1_700_000_000_003), Some((3, 1_700_000_000_003)));
    assert_eq!(first_record_at_or_after(&b, &info, 0), Some((0, 1_700_000_000_000)));
    assert_eq!(first_record_at_or_after(&b, &info, 1_800_000_000_000), None);
}

#[test]
fn corrupt_and_old_format_batches_are_refused() {
    let good = encode(1, -1, -1, 2);
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert!(matches!(validate_(&bad), Err(BrokerError::CorruptMessage(_))));
    assert!(matches!(validate_(&good[..good.len() - 3]), Err(BrokerError::CorruptMessage(_))));
    // An old (magic v1) message: same framing, magic byte 1 at position 16.
    let mut v1 = good.to_vec();
    v1[16] = 1;
    assert!(matches!(validate_(&v1), Err(BrokerError::UnsupportedMessageFormat(1))));
    assert!(validate_(&[]).is_err());
    assert!(validate_(&[0u8; 5]).is_err());
}

fn encode_compressed(n: i64, compression: Compression, value: impl Fn(i64) -> Vec<u8>) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            key: None,
            headers: [(kafka_protocol::protocol::StrBytes::from_static_str("h"), Some(Bytes::from_static(b"v")))].into_iter().collect(),
            ..record(0, i, 1, 0, value(i))
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression }).expect("encode");
    buf.freeze()
}

/// Sets the record count and last offset delta of a batch and recomputes its CRC, as a client
/// that lies about its records would send it.
fn claim_records(batch: &[u8], count: i32) -> Vec<u8> {
    let mut b = batch.to_vec();
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn a_batch_claiming_more_records_than_it_holds_is_refused() {
    let one = encode(1, -1, -1, 2);
    let lying = claim_records(&one, i32::MAX);
    let err = validate_(&lying).expect_err("refused");
    assert!(matches!(err, BrokerError::InvalidRecord(_)), "{err}");
    assert_eq!(err.response_error(), kafka_protocol::error::ResponseError::InvalidRecord);
    // Fewer than it holds: the rest are trailing bytes.
    let three = encode(3, -1, -1, 2);
    assert!(matches!(validate_(&claim_records(&three, 2)), Err(BrokerError::InvalidRecord(_))));
}

#[test]
fn a_record_whose_lengths_lie_is_refused() {
    let one = encode(1, -1, -1, 2);
    // Record layout after the header: length varint, attributes, ts delta, offset delta, key len…
    let mut b = one.to_vec();
    b[HEADER_BYTES + 4] = 0x7f; // key length 63 × 2: past the record's end
    let b = claim_records(&b, 1);
    assert!(matches!(validate_(&b), Err(BrokerError::InvalidRecord(_))));
}

#[test]
fn compressed_batches_are_walked_record_by_record() {
    for c in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let b = encode_compressed(50, c, |i| format!("value {i}").into_bytes());
        let info = validate_(&b).unwrap_or_else(|e| panic!("{c:?}: {e}"))[0];
        assert_eq!(info.records, 50);
        let mut values = Vec::new();
        records_of(&b, info.records, 1 << 20, |r| values.push(r.value.map(<[u8]>::to_vec))).expect("walks");
        assert_eq!(values[49].as_deref(), Some(&b"value 49"[..]), "{c:?}");
        // The same batch claiming one more record than its compressed payload holds.
        assert!(matches!(validate_(&claim_records(&b, 51)), Err(BrokerError::InvalidRecord(_))), "{c:?}");
    }
}

#[test]
fn a_compression_bomb_is_refused_at_the_cap() {
    for c in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        // 4 records of 1 MiB of zeros: a few KiB compressed, 4 MiB inflated, over a 1 MiB cap.
        let b = encode_compressed(4, c, |_| vec![0u8; 1 << 20]);
        assert!(b.len() < 1 << 20, "{c:?} compressed to {}", b.len());
        let err = validate(&b, 1 << 20).expect_err("refused");
        assert!(err.to_string().contains("inflate past"), "{c:?}: {err}");
        validate(&b, 8 << 20).expect("within a larger cap");
    }
}

#[test]
fn stored_headers_with_a_last_offset_delta_of_i32_max_do_not_overflow() {
    // Found by floe-fuzz (table-topic-batch): `last_offset_delta + 1` overflowed in a debug build.
    let mut b = encode(1, -1, -1, 2).to_vec();
    b[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
    let h = headers(&b);
    assert_eq!(h[0].1.records, 1 << 31);
    b[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
    // Read as compaction could leave it — one record left of 2^31 offsets — it is that record,
    // its offset saturating instead of overflowing.
    let records = crate::table_source::decode(&Bytes::from(b), 1 << 20, &[]).expect("one record");
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![i64::MAX]);
}
