//! Built-in seed inputs of each target (the corpus directory adds captured client traffic).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

macro_rules! default_requests {
    ($($api:ident),* $(,)?) => {
        fn default_requests() -> Vec<(ApiKey, RequestKind)> {
            vec![$((ApiKey::$api, RequestKind::$api(Default::default()))),*]
        }
    };
}

floe_broker::served_apis!(default_requests);

/// Every served API in every served version, as its default request.
fn requests() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (api, req) in default_requests() {
        let Some((min, max)) = floe_broker::handlers::supported(api) else { continue };
        for v in min..=max {
            let mut b = BytesMut::new();
            let mut h = RequestHeader::default();
            h.request_api_key = api as i16;
            h.request_api_version = v;
            h.correlation_id = 1;
            if h.encode(&mut b, api.request_header_version(v)).is_ok() && req.encode(&mut b, v).is_ok() {
                out.push(b.to_vec());
            }
        }
    }
    out
}

/// Record batches of each compression, as producers send them.
fn batches() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for compression in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let records: Vec<Record> = (0..3)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 1_700_000_000_000 + i,
                key: (i > 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("{{\"id\":{i}}}"))),
                headers: Default::default(),
            })
            .collect();
        let mut b = BytesMut::new();
        if RecordBatchEncoder::encode(&mut b, records.iter(), &RecordEncodeOptions { version: 2, compression }).is_ok() {
            out.push(b.to_vec());
        }
    }
    out
}

fn zz(v: i64) -> Vec<u8> {
    crate::mutate::zigzag(v)
}

/// One valid datum of the `avro-datum` target's schema.
fn avro_datum() -> Vec<u8> {
    let mut b = zz(42); // id
    b.extend(zz(1));
    b.extend(zz(2));
    b.extend(b"ab"); // name
    b.extend(zz(1));
    b.extend(zz(1));
    b.push(b'x');
    b.extend(zz(0)); // tags
    b.extend(zz(1));
    b.extend(zz(1));
    b.push(b'k');
    b.extend(zz(1));
    b.extend(zz(5));
    b.extend(zz(0)); // attrs
    b.extend([1, 2, 3, 4]); // f
    b.extend(zz(1));
    b.push(0x7b); // d
    b.extend(zz(1_700_000_000_000_000)); // ts
    b.extend(zz(1)); // e
    b.extend(zz(1));
    b.extend(zz(1));
    b.put_f64_le(1.5);
    b.extend(zz(0)); // nested
    b.extend(zz(3));
    b.extend(zz(0)); // nulls
    b
}

const AVRO: &[&str] = &[
    r#"{"type":"record","name":"User","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"email","type":["null","string"],"default":null},{"name":"tags","type":{"type":"array","items":"string"}}]}"#,
    r#"{"type":"record","name":"T1","fields":[{"name":"x","type":{"type":"record","name":"T0","fields":[{"name":"a","type":"int"}]}},{"name":"y","type":"T0"}]}"#,
    r#"{"type":"record","name":"D","fields":[{"name":"d","type":{"type":"fixed","name":"F","size":8,"logicalType":"decimal","precision":12,"scale":2}},{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}},{"name":"m","type":{"type":"map","values":"double"}}]}"#,
];
const PROTO: &[&str] = &[
    "syntax = \"proto3\"; package shop; message Order { int64 id = 1; string item = 2; repeated string tags = 3; map<string, int32> counts = 4; Inner inner = 5; } message Inner { double x = 1; }",
    "syntax = \"proto2\"; message A { optional int32 a = 1; required string b = 2; }",
    "CgtleGFtcGxlLnByb3RvIg0KAU0SCAoBYRgBIAEoAw==",
];
const JSON_SCHEMA: &[&str] = &[
    r#"{"type":"object","required":["id"],"properties":{"id":{"type":"integer"},"at":{"type":"string","format":"date-time"},"tags":{"type":"array","items":{"type":"string"}}}}"#,
    r#"{"type":"object","properties":{"geo":{"type":"object","properties":{"lat":{"type":"number"}}},"day":{"type":"string","format":"date"}}}"#,
];

const TABLE_SCHEMA: &str =
    r#"{"type":"struct","schema-id":0,"fields":[{"id":1,"name":"id","required":true,"type":"long"},{"id":2,"name":"s","required":false,"type":"string"}]}"#;

/// The built-in seeds of `target`.
pub fn builtin(target: &str) -> Vec<Vec<u8>> {
    match target {
        "kafka-request" => requests(),
        "record-batch" | "table-topic-batch" => batches(),
        "avro-datum" => vec![avro_datum(), vec![]],
        "json-record" => vec![
            b"{\"id\":1,\"name\":\"a\",\"tags\":[\"x\"],\"geo\":{\"lat\":1.5}}\n{\"id\":2,\"name\":null}".to_vec(),
            b"{\"a\":[1,2.5,\"x\"]}\n[1]\n\"s\"\n{\"n\":{\"m\":{\"o\":true}}}".to_vec(),
        ],
        "registry-schema" => {
            let mut out = Vec::new();
            for (kind, texts) in [(0u8, AVRO), (1, PROTO), (2, JSON_SCHEMA)] {
                out.extend(texts.iter().map(|t| [&[kind][..], t.as_bytes()].concat()));
            }
            out
        }
        "rest-catalog" => {
            let create = format!(r#"{{"name":"t","schema":{TABLE_SCHEMA},"properties":{{"k":"v"}}}}"#);
            let commit =
                r#"{"requirements":[{"type":"assert-current-schema-id","current-schema-id":0}],"updates":[{"action":"set-properties","updates":{"a":"b"}}]}"#;
            let txn = format!(r#"{{"table-changes":[{{"identifier":{{"namespace":["lake"],"name":"t"}},{}}}]}}"#, &commit[1..commit.len() - 1]);
            let rename = r#"{"source":{"namespace":["lake"],"name":"t"},"destination":{"namespace":["lake"],"name":"u"}}"#;
            let register = r#"{"name":"r","metadata-location":"s3://bucket/warehouse/lake/t/metadata/00000-x.metadata.json"}"#;
            let props = r#"{"removals":["x"],"updates":{"y":"z"}}"#;
            [
                (0u8, r#"{"namespace":["lake"],"properties":{"owner":"floe"}}"#.to_string()),
                (1, create),
                (2, commit.to_string()),
                (3, props.to_string()),
                (4, register.to_string()),
                (5, rename.to_string()),
                (6, txn),
                (7, "{}".to_string()),
                (8, String::new()),
                (9, String::new()),
            ]
            .into_iter()
            .map(|(route, body)| [&[route][..], body.as_bytes()].concat())
            .collect()
        }
        "sasl" => vec![
            [
                &[0u8][..],
                b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
                &[0xff],
                b"c=biws,r=fyko+d2lbbFgONRv9qkxdawLx,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            ]
            .concat(),
            [&[1u8][..], b"n,,\x01auth=Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6ImUifQ.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.c2ln\x01\x01"].concat(),
            [&[2u8][..], b"RULE:^CN=(.*?),O=.*$/$1/L,DEFAULT"].concat(),
            [&[3u8][..], b"r=fyko+d2lbbFgONRv9qkxdawLabc,s=QSXCR+Q6sek8bf92,i=4096"].concat(),
        ],
        _ => vec![],
    }
}
