//! Byte mutations in the style of AFL's havoc stage: flips, interesting integers, deletes, copies, splices.

use rand::rngs::SmallRng;
use rand::Rng;

/// Values that sit on the edges decoders get wrong: signs, widths, lengths and counts.
const INTERESTING_32: &[u32] = &[0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x1_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];

/// Longest input a mutation may grow to.
pub const INPUT_BYTES_MAX: usize = 64 << 10;

/// Applies 1–8 random mutations to `data`, some of them splicing in bytes from `other`.
pub fn mutate(rng: &mut SmallRng, data: &mut Vec<u8>, other: &[u8]) {
    let rounds = 1 << rng.random_range(0..4u32);
    for _ in 0..rounds {
        one(rng, data, other);
    }
    data.truncate(INPUT_BYTES_MAX);
}

fn one(rng: &mut SmallRng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    let at = |rng: &mut SmallRng| if len == 0 { 0 } else { rng.random_range(0..len) };
    match rng.random_range(0..10u32) {
        0 if len > 0 => {
            let i = at(rng);
            data[i] ^= 1 << rng.random_range(0..8u32);
        }
        1 if len > 0 => {
            let i = at(rng);
            data[i] = rng.random();
        }
        2 => {
            // An interesting integer, big-endian (Kafka) or as a zig-zag varint (records, Avro).
            let v = INTERESTING_32[rng.random_range(0..INTERESTING_32.len())];
            let bytes: Vec<u8> = if rng.random_bool(0.5) { v.to_be_bytes()[rng.random_range(0..4)..].to_vec() } else { zigzag(i64::from(v)) };
            let i = at(rng).min(len);
            let end = (i + bytes.len()).min(len);
            if rng.random_bool(0.5) && end > i {
                data.splice(i..end, bytes);
            } else {
                data.splice(i..i, bytes);
            }
        }
        3 if len > 1 => {
            let i = at(rng);
            let n = rng.random_range(1..=(len - i).min(64));
            data.drain(i..i + n);
        }
        4 if len > 1 => {
            let (from, to) = (at(rng), at(rng));
            let n = rng.random_range(1..=(len - from).min(64));
            let chunk: Vec<u8> = data[from..from + n].to_vec();
            data.splice(to..to, chunk);
        }
        5 if !other.is_empty() => {
            let from = rng.random_range(0..other.len());
            let n = rng.random_range(1..=(other.len() - from).min(256));
            let i = at(rng).min(len);
            data.splice(i..i, other[from..from + n].iter().copied());
        }
        6 if len > 0 => data.truncate(at(rng)),
        7 => {
            let n = rng.random_range(1..16);
            let i = at(rng).min(len);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            data.splice(i..i, bytes);
        }
        8 if len > 0 => {
            let i = at(rng);
            data[i] = data[i].wrapping_add(rng.random_range(1..35u8)).wrapping_sub(17);
        }
        _ => {
            if len > 0 {
                let i = at(rng);
                data[i] = [0x00, 0xff, 0x7f, 0x80, b'"', b'{', b'}', b'[', b']', b','][rng.random_range(0..10)];
            }
        }
    }
}

/// `v` as a zig-zag varint (Kafka record fields, Avro longs).
pub fn zigzag(v: i64) -> Vec<u8> {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return out;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// A seeded generator (the run is reproducible from its seed).
pub fn rng(seed: u64) -> SmallRng {
    rand::SeedableRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_within_the_size_cap_and_change_the_input() {
        let mut r = rng(7);
        let seed = b"{\"type\":\"record\"}".to_vec();
        let mut changed = 0;
        for _ in 0..10_000 {
            let mut d = seed.clone();
            mutate(&mut r, &mut d, b"other bytes");
            assert!(d.len() <= INPUT_BYTES_MAX);
            changed += usize::from(d != seed);
        }
        assert!(changed > 9_000, "{changed}");
    }
}
