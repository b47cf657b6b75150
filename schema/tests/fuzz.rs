//! Property tests with arbitrary bytes: no decoder panics; bad input is a per-record error.

use floe_schema::json::{self, JsonInference};
use floe_schema::protobuf::{self, ProtoSchema};
use floe_schema::{debezium, wire};
use proptest::prelude::*;

const PROTO: &str = "syntax = \"proto3\"; message M { int64 a = 1; string b = 2; repeated M2 c = 3; map<string, int32> d = 4; message M2 { bytes x = 1; } }";

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn protobuf_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = ProtoSchema::from_source("m.proto", PROTO, &[], None).expect("schema");
        let (batch, errors) = protobuf::decode_batch(&s, &[(0, &bytes)]).expect("batch");
        prop_assert_eq!(batch.num_rows() + errors.len(), 1);
        let _ = protobuf::split_indexes(&bytes);
    }

    #[test]
    fn json_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut inf = JsonInference::default();
        let (batch, errors) = json::decode_batch(&mut inf, &[(0, &bytes), (1, br#"{"a":1}"#)]).expect("batch");
        prop_assert_eq!(batch.num_rows() + errors.len(), 2);
    }

    #[test]
    fn debezium_and_framing_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = debezium::flatten(Some(&bytes));
        let _ = wire::split(&bytes);
    }
}
