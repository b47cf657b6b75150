//! Compression of a rewritten batch's records in the codec it came with (gzip, snappy, lz4, zstd), in the framings Kafka's clients read.
//!
//! Snappy is written in the xerial framing the Java client writes (and librdkafka reads), in
//! 32 KiB blocks; lz4 as a standard frame of independent 64 KiB blocks without a content
//! checksum, which Kafka's `KafkaLZ4BlockInputStream` requires.

use std::io::Write;

const XERIAL_HEADER: &[u8] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const SNAPPY_BLOCK_BYTES: usize = 32 << 10;

/// Compresses `plain` with Kafka compression code `codec` (0 returns it as it is).
pub fn compress(codec: i16, plain: &[u8]) -> Result<Vec<u8>, String> {
    match codec {
        0 => Ok(plain.to_vec()),
        1 => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(plain).and_then(|_| w.finish()).map_err(|e| format!("gzip: {e}"))
        }
        2 => snappy(plain),
        3 => {
            let mut w = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())
                .map_err(|e| format!("lz4: {e}"))?;
            w.write_all(plain).map_err(|e| format!("lz4: {e}"))?;
            let (out, done) = w.finish();
            done.map(|_| out).map_err(|e| format!("lz4: {e}"))
        }
        4 => zstd::stream::encode_all(plain, 3).map_err(|e| format!("zstd: {e}")),
        c => Err(format!("unknown compression code {c}")),
    }
}

fn snappy(plain: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = XERIAL_HEADER.to_vec();
    let mut encoder = snap::raw::Encoder::new();
    for chunk in plain.chunks(SNAPPY_BLOCK_BYTES) {
        let block = encoder.compress_vec(chunk).map_err(|e| format!("snappy: {e}"))?;
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::decompress::decompress;

    #[test]
    fn every_codec_round_trips_through_the_bounded_decompressor() {
        let plain: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for codec in 0..=4 {
            let packed = compress(codec, &plain).expect("compress");
            assert_eq!(decompress(codec, &packed, plain.len()).expect("decompress"), plain, "codec {codec}");
            if codec > 0 {
                assert!(packed.len() < plain.len(), "codec {codec} shrinks repetitive bytes");
            }
        }
        assert!(compress(5, &plain).is_err());
    }
}
