//! Transaction markers: the COMMIT/ABORT control batch a coordinator writes into each partition of a transaction, and reading one back.
//!
//! A control batch has attributes transactional | control, one record, no sequence (-1). Its
//! record's key is version (i16, 0) and type (i16: 0 ABORT, 1 COMMIT); its value is version
//! (i16, 0) and the coordinator epoch (i32), as Kafka's `EndTransactionMarker`.

use bytes::{BufMut, Bytes, BytesMut};

use super::walk::{self, put_varint as varint};
use super::{BatchInfo, HEADER_BYTES};

const ATTRIBUTES: i16 = 0x10 | 0x20;

/// A marker batch (base offset 0, assigned at append) ending `producer_id`'s transaction.
pub fn marker(producer_id: i64, producer_epoch: i16, commit: bool, coordinator_epoch: i32, now_ms: i64) -> Bytes {
    let key = [0u8, 0, 0, u8::from(commit)];
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut rec = BytesMut::new();
    rec.put_i8(0); // attributes
    varint(&mut rec, 0); // timestamp delta
    varint(&mut rec, 0); // offset delta
    varint(&mut rec, key.len() as i64);
    rec.put_slice(&key);
    varint(&mut rec, value.len() as i64);
    rec.put_slice(&value);
    varint(&mut rec, 0); // headers
    let mut body = BytesMut::new();
    varint(&mut body, rec.len() as i64);
    body.put_slice(&rec);

    let mut b = BytesMut::with_capacity(HEADER_BYTES + body.len());
    b.put_i64(0);
    b.put_i32((HEADER_BYTES - 12 + body.len()) as i32);
    b.put_i32(0); // partition leader epoch
    b.put_i8(2);
    b.put_u32(0); // CRC, below
    b.put_i16(ATTRIBUTES);
    b.put_i32(0); // last offset delta
    b.put_i64(now_ms);
    b.put_i64(now_ms);
    b.put_i64(producer_id);
    b.put_i16(producer_epoch);
    b.put_i32(-1);
    b.put_i32(1);
    b.put_slice(&body);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// Whether a stored control batch (`b` starts at its header) is a COMMIT (`Some(true)`) or an
/// ABORT (`Some(false)`); `None` for another control type or a malformed one.
pub fn marker_kind(b: &[u8], info: &BatchInfo) -> Option<bool> {
    if !info.control {
        return None;
    }
    let mut kind = None;
    walk::records(b.get(HEADER_BYTES..)?, info.records, |r| {
        kind = match r.key {
            Some([_, _, 0, 0]) => Some(false),
            Some([_, _, 0, 1]) => Some(true),
            _ => None,
        };
    })
    .ok()?;
    kind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_a_valid_control_batch_that_reads_back() {
        for commit in [true, false] {
            let m = marker(42, 3, commit, 0, 1_700_000_000_000);
            let infos = crate::records::validate(&m, 1 << 20).expect("valid");
            let i = infos[0];
            assert!(i.control && i.transactional);
            assert_eq!((i.producer_id, i.producer_epoch, i.base_sequence, i.records), (42, 3, -1, 1));
            assert_eq!(marker_kind(&m, &i), Some(commit));
        }
    }
}
