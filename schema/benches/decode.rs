//! Decode throughput into Arrow for records of ~20 fields, next to a plain copy of the same bytes
//! (the floor of what is possible). Prints figures: `cargo bench -p floe-schema --bench decode`.

use std::hint::black_box;
use std::time::Instant;

use floe_schema::avro::{decode_batch, AvroSchema};
use floe_schema::json::{self, JsonInference};

const RECORDS: usize = 200_000;
const BATCH: usize = 10_000;

fn zz(v: i64, out: &mut Vec<u8>) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8 & 0x7f) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn string(s: &str, out: &mut Vec<u8>) {
    zz(s.len() as i64, out);
    out.extend_from_slice(s.as_bytes());
}

fn schema() -> AvroSchema {
    let mut fields = vec![];
    for i in 0..8 {
        fields.push(format!(r#"{{"name":"l{i}","type":"long"}}"#));
    }
    for i in 0..6 {
        fields.push(format!(r#"{{"name":"s{i}","type":"string"}}"#));
    }
    for i in 0..4 {
        fields.push(format!(r#"{{"name":"d{i}","type":"double"}}"#));
    }
    fields.push(r#"{"name":"flag","type":"boolean"}"#.into());
    fields.push(r#"{"name":"opt","type":["null","string"]}"#.into());
    AvroSchema::parse_str(&format!(r#"{{"type":"record","name":"R","fields":[{}]}}"#, fields.join(","))).expect("schema")
}

fn avro_record(i: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(200);
    for k in 0..8 {
        zz(i * 31 + k, &mut b);
    }
    for k in 0..6 {
        string(&format!("value-{k}-{}", i % 1000), &mut b);
    }
    for k in 0..4 {
        b.extend_from_slice(&((i as f64) * 0.5 + k as f64).to_le_bytes());
    }
    b.push(1);
    zz(1, &mut b);
    string("present", &mut b);
    b
}

fn json_record(i: i64) -> Vec<u8> {
    let mut o = serde_json::Map::new();
    for k in 0..8 {
        o.insert(format!("l{k}"), (i * 31 + k).into());
    }
    for k in 0..6 {
        o.insert(format!("s{k}"), format!("value-{k}-{}", i % 1000).into());
    }
    for k in 0..4 {
        o.insert(format!("d{k}"), ((i as f64) * 0.5 + k as f64 + 0.25).into());
    }
    o.insert("flag".into(), true.into());
    o.insert("opt".into(), "present".into());
    serde_json::to_vec(&o).expect("json")
}

fn report(name: &str, bytes: usize, secs: f64, copy_secs: f64) {
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "{name:>6}: {:>8.1} MiB/s {:>10.0} records/s   (plain copy {:>8.1} MiB/s; decode is {:.1}% of copy speed)",
        mib / secs,
        RECORDS as f64 / secs,
        mib / copy_secs,
        100.0 * copy_secs / secs
    );
}

fn copy_time(records: &[Vec<u8>]) -> f64 {
    let t = Instant::now();
    for chunk in records.chunks(BATCH) {
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(chunk.len());
        for r in chunk {
            out.push(black_box(r.clone()));
        }
        black_box(out);
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    println!("{RECORDS} records of 20 fields, batches of {BATCH}, one core");
    let s = schema();
    let avro: Vec<Vec<u8>> = (0..RECORDS as i64).map(avro_record).collect();
    let bytes: usize = avro.iter().map(Vec::len).sum();
    let copy = copy_time(&avro);
    let t = Instant::now();
    for (n, chunk) in avro.chunks(BATCH).enumerate() {
        let input: Vec<(i64, &[u8])> = chunk.iter().enumerate().map(|(i, r)| ((n * BATCH + i) as i64, r.as_slice())).collect();
        let (batch, errors) = decode_batch(&s, &input).expect("avro");
        assert!(errors.is_empty());
        black_box(batch);
    }
    report("avro", bytes, t.elapsed().as_secs_f64(), copy);
    let js: Vec<Vec<u8>> = (0..RECORDS as i64).map(json_record).collect();
    let bytes: usize = js.iter().map(Vec::len).sum();
    let copy = copy_time(&js);
    let mut inf = JsonInference::default();
    let t = Instant::now();
    for (n, chunk) in js.chunks(BATCH).enumerate() {
        let input: Vec<(i64, &[u8])> = chunk.iter().enumerate().map(|(i, r)| ((n * BATCH + i) as i64, r.as_slice())).collect();
        let (batch, errors) = json::decode_batch(&mut inf, &input).expect("json");
        assert!(errors.is_empty());
        black_box(batch);
    }
    report("json", bytes, t.elapsed().as_secs_f64(), copy);
}
