//! What validating every record costs on the produce path, against the CRC-only check it replaced (the baseline, same run).
//!
//! `cargo bench -p floe-broker --bench validate` (set `FLOE_BENCH_SECONDS` for longer runs).
//! Batches of 100-byte JSON values as producers send them (1,000 records, 16 KiB and 1 MiB
//! batches; uncompressed, lz4, zstd, gzip): MB/s of batch bytes through
//! - `crc`: the old validation (header, CRC-32C of the batch);
//! - `validate`: `records::validate` (header, CRC, and every record walked; compressed records
//!   inflated first under the cap);
//!
//! and the ratio of the two.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

fn seconds() -> f64 {
    std::env::var("FLOE_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

fn batch(records: usize, compression: Compression) -> Bytes {
    let recs: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 1,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_767_225_600_000 + i as i64,
            key: Some(Bytes::from(format!("customer-{}", i % 97))),
            value: Some(Bytes::from(format!(r#"{{"id":{i},"customer":"c{}","amount":{}.5,"note":"{}"}}"#, i % 97, i * 7, "x".repeat(40)))),
            headers: Default::default(),
        })
        .collect();
    let mut b = BytesMut::new();
    RecordBatchEncoder::encode(&mut b, recs.iter(), &RecordEncodeOptions { version: 2, compression }).expect("encode");
    b.freeze()
}

/// MB/s of `bytes` through `f`, run for the bench's duration.
fn rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    let budget = seconds();
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < budget {
        f();
        n += 1;
    }
    (n as f64 * bytes as f64) / t.elapsed().as_secs_f64() / 1e6
}

fn main() {
    println!("{:<6} {:>8} {:>10} {:>12} {:>14} {:>8}", "codec", "records", "bytes", "crc MB/s", "validate MB/s", "ratio");
    for (name, c) in [("none", Compression::None), ("lz4", Compression::Lz4), ("zstd", Compression::Zstd), ("gzip", Compression::Gzip)] {
        for records in [130, 8000] {
            let b = batch(records, c);
            let baseline = rate(b.len(), || {
                std::hint::black_box(crc32c::crc32c(&b[21..]));
            });
            let full = rate(b.len(), || {
                std::hint::black_box(floe_broker::records::validate(&b, 64 << 20).expect("valid"));
            });
            println!("{name:<6} {records:>8} {:>10} {baseline:>12.0} {full:>14.0} {:>7.2}x", b.len(), baseline / full);
        }
    }
}
