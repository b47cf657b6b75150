//! Tests of batch validation against batches made by kafka-protocol's own encoder.

use super::*;
use bytes::BytesMut;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

fn encode(n: i64, producer_id: i64, sequence: i32, magic: i8) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: sequence + i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value {i}"))),
            headers: Default::default(),
        })
        .collect();
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
    let infos = validate(&two).expect("valid");
    assert_eq!(infos.len(), 2);
    assert_eq!((infos[0].records, infos[0].producer_id, infos[0].base_sequence), (3, 42, 7));
    assert_eq!(infos[0].last_sequence(), 9);
    let stored = assign_offsets(&two, &infos, 100);
    validate(&stored).expect("still valid after the offsets are set");
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
    let info = validate(&b).expect("valid")[0];
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
    assert!(matches!(validate(&bad), Err(BrokerError::CorruptMessage(_))));
    assert!(matches!(validate(&good[..good.len() - 3]), Err(BrokerError::CorruptMessage(_))));
    // An old (magic v1) message: same framing, magic byte 1 at position 16.
    let mut v1 = good.to_vec();
    v1[16] = 1;
    assert!(matches!(validate(&v1), Err(BrokerError::UnsupportedMessageFormat(1))));
    assert!(validate(&[]).is_err());
    assert!(validate(&[0u8; 5]).is_err());
}
