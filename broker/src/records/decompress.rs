//! Bounded decompression of a batch's records (gzip, snappy, lz4, zstd): nothing inflates past the cap.
//!
//! Compression codes are Kafka's (attributes & 7). Snappy comes either in the xerial framing the
//! Java client writes (magic, version, then length-prefixed raw blocks) or as one raw block; each
//! raw block's declared length is checked against the room left before anything is allocated.

use std::io::Read;

/// Decompresses `data` (compression code `codec`) into at most `cap_bytes`.
pub fn decompress(codec: i16, data: &[u8], cap_bytes: usize) -> Result<Vec<u8>, String> {
    match codec {
        0 => Ok(data.to_vec()),
        1 => read_capped(flate2::read::GzDecoder::new(data), cap_bytes, "gzip"),
        2 => snappy(data, cap_bytes),
        3 => read_capped(lz4::Decoder::new(data).map_err(|e| format!("lz4: {e}"))?, cap_bytes, "lz4"),
        4 => read_capped(zstd::stream::read::Decoder::new(data).map_err(|e| format!("zstd: {e}"))?, cap_bytes, "zstd"),
        c => Err(format!("unknown compression code {c}")),
    }
}

fn read_capped(r: impl Read, cap_bytes: usize, codec: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(cap_bytes as u64 + 1).read_to_end(&mut out).map_err(|e| format!("{codec}: {e}"))?;
    if out.len() > cap_bytes {
        return Err(format!("{codec} records inflate past {cap_bytes} bytes"));
    }
    Ok(out)
}

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;

fn snappy(data: &[u8], cap_bytes: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        raw_block(data, &mut out, cap_bytes)?;
        return Ok(out);
    }
    let mut rest = data.get(XERIAL_HEADER_BYTES..).ok_or("snappy: cut in its header")?;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or("snappy: a block length is cut")?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail.get(..len).ok_or("snappy: a block is cut")?;
        raw_block(block, &mut out, cap_bytes)?;
        rest = &tail[len..];
    }
    Ok(out)
}

fn raw_block(block: &[u8], out: &mut Vec<u8>, cap_bytes: usize) -> Result<(), String> {
    let n = snap::raw::decompress_len(block).map_err(|e| format!("snappy: {e}"))?;
    if n > cap_bytes.saturating_sub(out.len()) {
        return Err(format!("snappy records inflate past {cap_bytes} bytes"));
    }
    let at = out.len();
    out.resize(at + n, 0);
    snap::raw::Decoder::new().decompress(block, &mut out[at..]).map_err(|e| format!("snappy: {e}"))?;
    Ok(())
}
