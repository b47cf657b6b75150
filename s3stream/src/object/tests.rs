//! Tests of the object format: round trips, a byte-exact snapshot, and corruption detection.

use super::*;

fn batch(base: u64, count: u32, payload: &'static [u8]) -> Batch {
    Batch { base_offset: base, count, payload: Bytes::from_static(payload) }
}

fn read_all(obj: &Bytes) -> Vec<(StreamId, Batch)> {
    let footer = decode_footer("t", &obj[obj.len() - FOOTER_BYTES..]).expect("footer");
    let ix = &obj[footer.index_pos as usize..footer.index_pos as usize + footer.index_len as usize];
    let index = decode_index("t", &footer, ix).expect("index");
    let mut out = vec![];
    for e in index {
        let block = obj.slice(e.pos as usize..(e.pos + u64::from(e.len)) as usize);
        for b in decode_block("t", &e, block).expect("block") {
            out.push((e.stream, b));
        }
    }
    out
}

#[test]
fn round_trip_many_streams_and_blocks() {
    let mut b = ObjectBuilder::new(40);
    let input = vec![(1, batch(0, 3, b"abc")), (1, batch(3, 1, b"defghijklmnopqrstuvwxyz0123456789")), (1, batch(4, 2, b"")), (7, batch(100, 5, b"seven"))];
    for (s, bt) in &input {
        b.push(*s, bt);
    }
    let (obj, index) = b.finish();
    assert_eq!(index.len(), 3, "block cut at the size limit and at the stream change");
    assert_eq!(read_all(&obj), input);
}

#[test]
fn snapshot_of_the_byte_format() {
    // A change to the on-object format must show up here as a visible diff.
    let mut b = ObjectBuilder::new(1 << 20);
    b.push(2, &batch(10, 2, b"hi"));
    let (obj, _) = b.finish();
    let hex: String = obj.iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(
        hex,
        concat!(
            "000000000000000a",
            "00000002",
            "00000002",
            "6869",
            "0000000000000002",
            "000000000000000a",
            "000000000000000c",
            "0000000000000000",
            "00000012",
            "d5819416",
            "00000001",
            "0000000000000012",
            "0000002c",
            "c609bafc",
            "00000001",
            "11ddacae",
            "464c4f454f424a31"
        )
    );
}

#[test]
fn corruption_is_detected_not_returned() {
    let mut b = ObjectBuilder::new(1 << 20);
    b.push(1, &batch(0, 1, b"payload"));
    let (obj, index) = b.finish();
    let mut bad = obj.to_vec();
    bad[20] ^= 0xff;
    let bad = Bytes::from(bad);
    let e = index[0];
    let err = decode_block("obj", &e, bad.slice(e.pos as usize..(e.pos + u64::from(e.len)) as usize));
    assert!(matches!(err, Err(Error::ChecksumMismatch { .. })), "{err:?}");
    assert!(decode_footer("obj", &[0u8; FOOTER_BYTES]).is_err());
    let footer = decode_footer("obj", &obj[obj.len() - FOOTER_BYTES..]).expect("footer");
    assert!(index_range("obj", &footer, obj.len() as u64).is_ok());
    assert!(index_range("obj", &footer, obj.len() as u64 + 10).is_err(), "a footer pointing elsewhere is corrupt");
    let mut f = obj[obj.len() - FOOTER_BYTES..].to_vec();
    f[3] ^= 1;
    assert!(matches!(decode_footer("obj", &f), Err(Error::ChecksumMismatch { .. })));
}
