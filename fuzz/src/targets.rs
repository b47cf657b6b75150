//! The fuzz targets: each takes bytes the way the node takes them from the network or from storage.

use std::sync::Arc;

use bytes::Bytes;
use floe_schema::avro::AvroSchema;
use floe_schema::protobuf::ProtoSchema;
use floe_schema::registry::{MemoryLog, Registry, SchemaType};

/// Decompressed bytes a batch may inflate to in the targets (the node's default is larger).
const DECOMPRESSED_BYTES_MAX: usize = 1 << 20;

/// A fuzz target: its name and what it does with one input.
pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "kafka-request",
        about: "a request frame (after the size prefix), decoded as the connection does: API and version checked, header and body under the allocation guard",
    },
    Target { name: "record-batch", about: "a produce payload validated record by record (compressed batches inflated under a cap)" },
    Target { name: "table-topic-batch", about: "a stored append decoded into Table Topic records" },
    Target { name: "avro-datum", about: "an Avro datum decoded with a rich record schema" },
    Target { name: "json-record", about: "schemaless JSON values decoded into one Arrow batch" },
    Target { name: "registry-schema", about: "Avro, Protobuf and JSON Schema text registered as the Schema Registry does (parse, compile, compatibility)" },
    Target { name: "rest-catalog", about: "a REST catalog request body sent to each route of the Iceberg REST API" },
];

/// Per-target state kept across inputs (a registry and a catalog that live for a while).
pub struct State {
    rt: tokio::runtime::Runtime,
    registry: Option<(Arc<Registry>, u32)>,
    catalog: Option<(axum::Router, u32)>,
}

/// Inputs a registry or catalog sees before it is replaced by a fresh one (bounds their growth).
const STATE_INPUTS_MAX: u32 = 200;

const AVRO_DATUM_SCHEMA: &str = r#"{"type":"record","name":"R","fields":[
  {"name":"id","type":"long"},{"name":"name","type":["null","string"]},{"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"attrs","type":{"type":"map","values":["null","int"]}},{"name":"f","type":{"type":"fixed","name":"F","size":4}},
  {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},{"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},{"name":"nested","type":{"type":"array","items":{"type":"record","name":"N","fields":[{"name":"x","type":["null","double"]}]}}},
  {"name":"nulls","type":{"type":"array","items":"null"}}]}"#;

impl State {
    pub fn new() -> anyhow::Result<Self> {
        Ok(State { rt: tokio::runtime::Builder::new_current_thread().enable_all().build()?, registry: None, catalog: None })
    }

    /// Runs target `name` on `data`; returns the outcome's class (an error's text without its
    /// numbers), so that inputs reaching a new class can join the corpus.
    pub fn run(&mut self, name: &str, data: &[u8]) -> String {
        match name {
            "kafka-request" => outcome(floe_broker::decode::frame(Bytes::copy_from_slice(data)).map(|f| format!("{f:?}").chars().take(40).collect::<String>())),
            // Most mutants break the CRC: each input also runs with its CRCs made right again, so
            // that the record walk behind the CRC check is explored too.
            "record-batch" => {
                let _ = floe_broker::records::validate(data, DECOMPRESSED_BYTES_MAX);
                outcome(floe_broker::records::validate(&fix_crcs(data), DECOMPRESSED_BYTES_MAX).map(|b| b.len()))
            }
            "table-topic-batch" => outcome(floe_broker::table_source::decode(&Bytes::from(fix_crcs(data)), DECOMPRESSED_BYTES_MAX).map(|r| r.len().min(3))),
            "avro-datum" => match AvroSchema::parse_str(AVRO_DATUM_SCHEMA) {
                Ok(s) => outcome(floe_schema::avro::decode(&s, data).map(|v| format!("{v:?}").len().min(8))),
                Err(e) => panic!("the datum schema: {e}"),
            },
            "json-record" => {
                let records: Vec<(i64, &[u8])> = data.split(|&b| b == b'\n').enumerate().map(|(i, r)| (i as i64, r)).collect();
                outcome(floe_schema::json::decode_batch(&mut Default::default(), &records).map(|(b, errors)| (b.num_columns().min(4), errors.len().min(2))))
            }
            "registry-schema" => self.registry_schema(data),
            "rest-catalog" => self.rest_catalog(data),
            // A target with a bug planted on purpose: the harness's own test finds it.
            "planted" => {
                if data.windows(2).any(|w| w == [0xde, 0xad]) {
                    panic!("planted bug reached");
                }
                "ok".into()
            }
            other => panic!("no target {other}"),
        }
    }

    fn registry_schema(&mut self, data: &[u8]) -> String {
        let Some((&kind, text)) = data.split_first() else { return "empty".into() };
        let text = String::from_utf8_lossy(text);
        let schema_type = match kind % 3 {
            0 => SchemaType::Avro,
            1 => SchemaType::Protobuf,
            _ => SchemaType::Json,
        };
        let rt = &self.rt;
        if self.registry.as_ref().is_none_or(|(_, n)| *n >= STATE_INPUTS_MAX) {
            let log: Arc<MemoryLog> = Arc::default();
            self.registry = rt.block_on(Registry::open(log)).ok().map(|r| (Arc::new(r), 0));
        }
        let Some((registry, n)) = self.registry.as_mut() else { return "no registry".into() };
        *n += 1;
        let subject = format!("s{}-value", kind / 3 % 4);
        let registered = outcome(rt.block_on(registry.register(&subject, schema_type, &text, vec![])));
        // What a Table Topic does with a registered schema: its table form.
        match schema_type {
            SchemaType::Avro => {
                let _ = AvroSchema::parse_str(&text).and_then(|s| s.arrow_schema());
            }
            SchemaType::Protobuf => {
                let _ = ProtoSchema::from_source("fuzz.proto", &text, &[], None).and_then(|s| s.arrow_schema());
            }
            SchemaType::Json => {
                if let Ok(j) = serde_json::from_str(&text) {
                    let _ = floe_schema::jsonschema::arrow_schema(&j);
                }
            }
        }
        format!("{schema_type:?} {registered}")
    }

    fn rest_catalog(&mut self, data: &[u8]) -> String {
        use tower::ServiceExt;
        let Some((&route, body)) = data.split_first() else { return "empty".into() };
        if self.catalog.as_ref().is_none_or(|(_, n)| *n >= STATE_INPUTS_MAX) {
            let store = Arc::new(object_store::memory::InMemory::new());
            let catalog = floe_catalog::Catalog::open(Arc::new(floe_catalog::store::MemoryStore::default()), store, "s3://bucket/warehouse", "warehouse");
            self.catalog = catalog.ok().map(|c| {
                let config = floe_catalog::server::ServerConfig {
                    client_properties: Default::default(),
                    vended_credentials: Default::default(),
                    token: None,
                    oauth: None,
                };
                (floe_catalog::server::router(Arc::new(c), config), 0)
            });
        }
        let Some((router, n)) = self.catalog.as_mut() else { return "no catalog".into() };
        *n += 1;
        let (method, uri) = ROUTES[usize::from(route) % ROUTES.len()];
        let Ok(req) =
            axum::http::Request::builder().method(method).uri(uri).header("content-type", "application/json").body(axum::body::Body::from(body.to_vec()))
        else {
            return "bad request".into();
        };
        let router = router.clone();
        let status = self.rt.block_on(async move {
            let resp = router.oneshot(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            axum::body::to_bytes(resp.into_body(), 16 << 20).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(status)
        });
        outcome(status.map(|s| format!("{method} {uri} {s}")))
    }
}

/// The routes the REST catalog target sends bodies to (namespace `lake`, table `t`, as seeded).
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/namespaces"),
    ("POST", "/v1/namespaces/lake/tables"),
    ("POST", "/v1/namespaces/lake/tables/t"),
    ("POST", "/v1/namespaces/lake/properties"),
    ("POST", "/v1/namespaces/lake/register"),
    ("POST", "/v1/tables/rename"),
    ("POST", "/v1/transactions/commit"),
    ("POST", "/v1/namespaces/lake/tables/t/metrics"),
    ("GET", "/v1/namespaces/lake/tables/t"),
    ("DELETE", "/v1/namespaces/lake/tables/t?purgeRequested=true"),
];

/// An outcome's class: `ok` with a small summary, or the error's text with digits dropped.
fn outcome<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => e.to_string().chars().filter(|c| !c.is_ascii_digit()).take(60).collect(),
    }
}

/// `data` with the CRC of every batch whose framing holds recomputed.
fn fix_crcs(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while let Some(len) = out.get(pos + 8..pos + 12).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])) {
        let end = pos + 12 + len.max(0) as usize;
        if len < 9 || end > out.len() {
            break;
        }
        let crc = crc32c::crc32c(&out[pos + 21..end]);
        out[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
    out
}
