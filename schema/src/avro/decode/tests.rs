//! Avro decoding tests: known byte vectors from the spec, every logical type, bad input, and a
//! property test that random bytes never panic.

use super::*;
use crate::avro::schema::FIXED_BYTES_MAX;
use arrow_array::{Array, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray};
use proptest::prelude::*;

fn zz(v: i64) -> Vec<u8> {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = vec![];
    loop {
        if u < 0x80 {
            out.push(u as u8);
            return out;
        }
        out.push((u as u8 & 0x7f) | 0x80);
        u >>= 7;
    }
}

fn s(v: &str) -> Vec<u8> {
    let mut out = zz(v.len() as i64);
    out.extend_from_slice(v.as_bytes());
    out
}

const SCHEMA: &str = r#"{
  "type": "record", "name": "Order", "namespace": "shop",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "customer", "type": ["null", "string"], "default": null},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "created", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [
        {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
    {"name": "attrs", "type": {"type": "map", "values": "string"}},
    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "next", "type": ["null", "Line"]}
  ]}"#;

fn order(id: i64) -> Vec<u8> {
    let mut b = zz(id);
    b.extend(zz(1));
    b.extend(s("ann"));
    b.extend(zz(1)); // PAID
    b.extend(zz(2));
    b.extend([0x30, 0x39]); // 12345 -> 123.45
    b.extend(zz(1_700_000_000_123));
    b.extend(zz(19_000));
    b.extend(zz(2)); // a block of two lines
    b.extend(s("a"));
    b.extend(zz(3));
    b.extend(s("b"));
    b.extend(zz(-4));
    b.extend(zz(0));
    b.extend(zz(-1)); // a block of one entry, with its size
    b.extend(zz(6));
    b.extend(s("k"));
    b.extend(s("v"));
    b.extend(zz(0));
    b.extend(s("123e4567-e89b-12d3-a456-426614174000"));
    b.extend(zz(0)); // next = null
    b
}

#[test]
fn a_full_record_decodes_into_arrow() {
    let schema = AvroSchema::parse_str(SCHEMA).expect("schema");
    let recs = [order(7), order(8)];
    let input: Vec<(i64, &[u8])> = recs.iter().enumerate().map(|(i, r)| (i as i64, r.as_slice())).collect();
    let (batch, errors) = decode_batch(&schema, &input).expect("batch");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(batch.num_rows(), 2);
    let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().expect("ids");
    assert_eq!(ids.values().to_vec(), vec![7, 8]);
    let status = batch.column(2).as_any().downcast_ref::<StringArray>().expect("status");
    assert_eq!(status.value(0), "PAID");
    let amount = batch.column(3).as_any().downcast_ref::<Decimal128Array>().expect("decimal");
    assert_eq!(amount.value_as_string(0), "123.45");
    let created = batch.column(4).as_any().downcast_ref::<TimestampMicrosecondArray>().expect("ts");
    assert_eq!(created.value(0), 1_700_000_000_123_000);
    assert!(batch.column(9).is_null(0));
    let Value::Record(fields) = decode(&schema, &order(1)).expect("decode") else { panic!("not a record") };
    assert_eq!(
        fields[6],
        Value::Array(vec![Value::Record(vec![Value::String("a".into()), Value::Int(3)]), Value::Record(vec![Value::String("b".into()), Value::Int(-4)]),])
    );
    assert_eq!(fields[7], Value::Map(vec![("k".into(), Value::String("v".into()))]));
    assert_eq!(fields[8], Value::Fixed(vec![0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00]));
}

#[test]
fn bad_records_are_errors_with_their_offsets_and_the_rest_goes_on() {
    let schema = AvroSchema::parse_str(SCHEMA).expect("schema");
    let good = order(1);
    let mut trailing = order(2);
    trailing.push(0);
    let mut bad_enum = zz(3);
    bad_enum.extend(zz(0));
    bad_enum.extend(zz(9));
    let input: Vec<(i64, &[u8])> = vec![(10, &good), (11, &good[..good.len() - 3]), (12, &trailing), (13, &bad_enum), (14, &good)];
    let (batch, errors) = decode_batch(&schema, &input).expect("batch");
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(errors.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![11, 12, 13]);
    assert!(errors[2].reason.contains("no symbol 9"), "{}", errors[2].reason);
}

#[test]
fn schemas_that_cannot_be_tables_are_refused_with_a_reason() {
    let recursive = r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#;
    assert!(matches!(AvroSchema::parse_str(recursive), Err(SchemaError::Unsupported(_))));
    let multi = r#"{"type":"record","name":"R","fields":[{"name":"x","type":["int","string"]}]}"#;
    let s = AvroSchema::parse_str(multi).expect("parses");
    assert!(matches!(s.arrow_schema(), Err(SchemaError::Unsupported(m)) if m.contains("field x")));
    assert!(AvroSchema::parse_str(r#"{"type":"record","name":"R"}"#).is_err());
    assert!(AvroSchema::parse_str("{").is_err());
}

#[test]
fn spec_vectors() {
    assert_eq!(decode(&AvroSchema::Long, &[0x02]), Ok(Value::Long(1)));
    assert_eq!(decode(&AvroSchema::Long, &[0x01]), Ok(Value::Long(-1)));
    assert_eq!(decode(&AvroSchema::Long, &[0x80, 0x01]), Ok(Value::Long(64)));
    assert_eq!(decode(&AvroSchema::String, &[0x06, b'f', b'o', b'o']), Ok(Value::String("foo".into())));
    assert!(decode(&AvroSchema::String, &[0x06, 0xff, 0xfe, 0xfd]).is_err(), "invalid UTF-8");
    assert!(decode(&AvroSchema::Int, &zz(1 << 40)).is_err(), "an int out of range");
    let nulls = AvroSchema::Array(Box::new(AvroSchema::Null));
    assert!(decode(&nulls, &zz(1 << 40)).is_err(), "a huge count of zero-byte items is refused");
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let schema = AvroSchema::parse_str(SCHEMA).expect("schema");
        let _ = decode(&schema, &bytes);
    }
}

#[test]
fn named_types_that_double_at_each_level_are_refused_by_size_not_expanded() {
    // T(i) has two fields of type T(i-1): 2^40 nodes once expanded, from a few KB of JSON.
    let mut schema = serde_json::json!({"type": "record", "name": "T0", "fields": [{"name": "a", "type": "int"}]});
    for i in 1..=40 {
        schema = serde_json::json!({"type": "record", "name": format!("T{i}"), "fields": [{"name": "x", "type": schema}, {"name": "y", "type": format!("T{}", i - 1)}]});
    }
    let started = std::time::Instant::now();
    let err = AvroSchema::parse(&schema).expect_err("refused");
    assert!(err.to_string().contains("SCHEMA_NODES_MAX"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    // Ten levels (2^10 nodes) are a legitimate, shared schema.
    let mut ok = serde_json::json!({"type": "record", "name": "T0", "fields": [{"name": "a", "type": "int"}]});
    for i in 1..=10 {
        ok =
            serde_json::json!({"type": "record", "name": format!("T{i}"), "fields": [{"name": "x", "type": ok}, {"name": "y", "type": format!("T{}", i - 1)}]});
    }
    let parsed = AvroSchema::parse(&ok).expect("within the limits");
    assert_eq!(parsed.arrow_schema().expect("arrow").fields().len(), 2);
}

#[test]
fn a_chain_of_named_types_deeper_than_the_limit_is_refused() {
    let mut schema = serde_json::json!({"type": "record", "name": "T0", "fields": [{"name": "a", "type": "int"}]});
    for i in 1..=80 {
        schema = serde_json::json!({"type": "record", "name": format!("T{i}"), "fields": [{"name": "x", "type": schema}]});
    }
    let err = AvroSchema::parse(&schema).expect_err("refused");
    assert!(err.to_string().contains("SCHEMA_DEPTH_MAX"), "{err}");
}

#[test]
fn a_fixed_size_past_the_limit_is_refused() {
    for size in [u64::from(u32::MAX) + 1, 1 << 40, (FIXED_BYTES_MAX + 1) as u64] {
        let err = AvroSchema::parse_str(&format!(r#"{{"type":"fixed","name":"F","size":{size}}}"#)).expect_err("refused");
        assert!(err.to_string().contains("FIXED_BYTES_MAX"), "{err}");
    }
    assert!(AvroSchema::parse_str(r#"{"type":"fixed","name":"F","size":16}"#).is_ok());
}

#[test]
fn five_bytes_cannot_make_millions_of_null_items() {
    let schema = AvroSchema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"xs","type":{"type":"array","items":"null"}}]}"#).expect("schema");
    // One block of 4,000,000 null items (no bytes each), then the end of the array.
    let mut bytes = zz(4_000_000);
    bytes.extend(zz(0));
    let err = decode(&schema, &bytes).expect_err("refused");
    assert!(err.to_string().contains("items of no bytes"), "{err}");
    let mut few = zz(100);
    few.extend(zz(0));
    assert!(decode(&schema, &few).is_ok());
}
