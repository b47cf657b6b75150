//! Protobuf tests: a message with every mapped feature, encoded by prost-reflect and decoded into
//! Arrow; Confluent message indexes; bad bytes as per-record errors.

use super::*;
use arrow_array::{Array, Int64Array, ListArray, MapArray, StringArray, StructArray, TimestampMicrosecondArray};
use prost::Message;

const PROTO: &str = r#"
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "common.proto";

enum Status { NEW = 0; PAID = 1; }

message Order {
  int64 id = 1;
  string customer = 2;
  Status status = 3;
  repeated Line lines = 4;
  map<string, int64> counts = 5;
  oneof payment { string card = 6; string iban = 7; }
  google.protobuf.Timestamp created = 8;
  google.protobuf.Int64Value discount = 9;
  optional string note = 10;
  common.Money total = 11;
  uint64 big = 12;
  message Line { string sku = 1; int32 qty = 2; }
}
message Other { string x = 1; }
"#;

const COMMON: &str = "syntax = \"proto3\"; package common; message Money { int64 cents = 1; string currency = 2; }";

fn schema() -> ProtoSchema {
    ProtoSchema::from_source("order.proto", PROTO, &[("common.proto".into(), COMMON.into())], None).expect("compiles")
}

fn order(s: &ProtoSchema, id: i64, big: u64) -> Vec<u8> {
    let d = s.message.clone();
    let mut m = DynamicMessage::new(d.clone());
    m.set_field_by_name("id", PValue::I64(id));
    m.set_field_by_name("customer", PValue::String("ann".into()));
    m.set_field_by_name("status", PValue::EnumNumber(1));
    let line_desc = d.child_messages().find(|m| m.name() == "Line").expect("Line");
    let mut line = DynamicMessage::new(line_desc);
    line.set_field_by_name("sku", PValue::String("a".into()));
    line.set_field_by_name("qty", PValue::I32(3));
    m.set_field_by_name("lines", PValue::List(vec![PValue::Message(line)]));
    let mut counts = std::collections::HashMap::new();
    counts.insert(MapKey::String("k".into()), PValue::I64(7));
    m.set_field_by_name("counts", PValue::Map(counts));
    m.set_field_by_name("iban", PValue::String("DE00".into()));
    let ts_desc = d.get_field_by_name("created").and_then(|f| f.kind().as_message().cloned()).expect("ts");
    let mut ts = DynamicMessage::new(ts_desc);
    ts.set_field_by_name("seconds", PValue::I64(1_700_000_000));
    ts.set_field_by_name("nanos", PValue::I32(5_000));
    m.set_field_by_name("created", PValue::Message(ts));
    m.set_field_by_name("big", PValue::U64(big));
    m.encode_to_vec()
}

#[test]
fn a_rich_message_decodes_into_arrow() {
    let s = schema();
    assert_eq!(s.message_name(), "shop.Order");
    let arrow = s.arrow_schema().expect("arrow");
    let f = |n: &str| arrow.field_with_name(n).expect(n).clone();
    assert!(!f("id").is_nullable() && f("note").is_nullable() && f("card").is_nullable() && f("discount").is_nullable());
    assert_eq!(f("discount").data_type(), &DataType::Int64, "a wrapper is a nullable scalar");
    let recs = [order(&s, 1, 5), order(&s, 2, u64::MAX), b"\xff\xff\xff".to_vec()];
    let input: Vec<(i64, &[u8])> = recs.iter().enumerate().map(|(i, r)| (i as i64 + 10, r.as_slice())).collect();
    let (batch, errors) = decode_batch(&s, &input).expect("batch");
    assert_eq!(errors.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![11, 12], "u64 past i64, and garbage");
    assert_eq!(batch.num_rows(), 1);
    let col = |n: &str| batch.column_by_name(n).expect(n).clone();
    assert_eq!(col("id").as_any().downcast_ref::<Int64Array>().expect("i64").value(0), 1);
    assert_eq!(col("status").as_any().downcast_ref::<StringArray>().expect("enum").value(0), "PAID");
    assert!(col("card").is_null(0));
    assert_eq!(col("iban").as_any().downcast_ref::<StringArray>().expect("iban").value(0), "DE00");
    assert!(col("note").is_null(0) && col("discount").is_null(0) && col("total").is_null(0));
    assert_eq!(col("created").as_any().downcast_ref::<TimestampMicrosecondArray>().expect("ts").value(0), 1_700_000_000_000_005);
    let lines = col("lines");
    let lines = lines.as_any().downcast_ref::<ListArray>().expect("list");
    let line = lines.value(0);
    let line = line.as_any().downcast_ref::<StructArray>().expect("struct");
    assert_eq!(line.column(0).as_any().downcast_ref::<StringArray>().expect("sku").value(0), "a");
    assert_eq!(col("counts").as_any().downcast_ref::<MapArray>().expect("map").value(0).len(), 1);
}

#[test]
fn message_indexes_pick_the_message() {
    let s = schema();
    assert_eq!(split_indexes(&[0, 9, 9]).expect("empty"), (vec![0], &[9u8, 9][..]));
    let (ix, rest) = split_indexes(&[4, 2, 0, 7]).expect("two");
    assert_eq!((ix.clone(), rest), (vec![1, 0], &[7u8][..]));
    assert_eq!(s.by_indexes(&[1]).expect("Other").message_name(), "shop.Other");
    // Nested types in descriptor order, map entries included (as Confluent's indexes count them).
    assert_eq!(s.by_indexes(&[0, 0]).expect("entry").message_name(), "shop.Order.CountsEntry");
    assert_eq!(s.by_indexes(&[0, 1]).expect("Line").message_name(), "shop.Order.Line");
    assert!(s.by_indexes(&[5]).is_err());
    assert!(split_indexes(&[]).is_err());
}

#[test]
fn bad_proto_text_and_recursion_are_refused() {
    assert!(matches!(ProtoSchema::from_source("x.proto", "syntax = \"proto3\"; message {", &[], None), Err(SchemaError::InvalidSchema(_))));
    let rec = "syntax = \"proto3\"; message Node { Node next = 1; }";
    assert!(matches!(ProtoSchema::from_source("n.proto", rec, &[], None), Err(SchemaError::Unsupported(_))));
}

#[test]
fn a_base64_file_descriptor_compiles_like_the_text() {
    use prost::Message;
    let text = schema();
    let fdp = text.message.parent_file().file_descriptor_proto().clone();
    let b64 = {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let raw = fdp.encode_to_vec();
        let mut out = String::new();
        for c in raw.chunks(3) {
            let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                out.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
            }
        }
        out
    };
    let from_b64 = ProtoSchema::from_source("ignored.proto", &b64, &[("common.proto".into(), COMMON.into())], None).expect("descriptor");
    assert_eq!(from_b64.message_name(), "shop.Order");
    assert_eq!(from_b64.arrow_schema().expect("arrow"), text.arrow_schema().expect("arrow"));
    let rec = order(&text, 3, 1);
    assert_eq!(from_b64.decode(&rec).expect("decode"), text.decode(&rec).expect("decode"));
}

#[test]
fn text_that_only_looks_like_base64_is_compiled_as_proto_text_and_refused() {
    // "====" panicked the hand-written base64 decoder.
    for text in ["====", "A===", "AB=C", "=", "\u{00e9}\u{00e9}\u{00e9}\u{00e9}"] {
        assert!(ProtoSchema::from_source("x.proto", text, &[], None).is_err(), "{text:?}");
    }
}

#[test]
fn a_message_used_twice_at_every_level_is_refused_by_column_count() {
    // M(i) has two fields of M(i-1): 2^30 columns once expanded.
    let mut text = String::from("syntax = \"proto3\"; message M0 { int64 a = 1; }\n");
    for i in 1..=30 {
        text.push_str(&format!("message M{i} {{ M{} x = 1; M{} y = 2; }}\n", i - 1, i - 1));
    }
    let started = std::time::Instant::now();
    let err = ProtoSchema::from_source("deep.proto", &text, &[], Some("M30")).expect_err("refused when compiled");
    assert!(err.to_string().contains("COLUMNS_MAX"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
