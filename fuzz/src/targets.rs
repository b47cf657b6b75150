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
    Target {
        name: "sasl",
        about: "SASL messages as a connection receives them: SCRAM's two client messages, an OAUTHBEARER token, a client certificate's subject and mapping rules, SCRAM's server-first as the CLI reads it",
    },
];

/// Per-target state kept across inputs (a registry and a catalog that live for a while).
pub struct State {
    rt: tokio::runtime::Runtime,
    registry: Option<(Arc<Registry>, u32)>,
    catalog: Option<(axum::Router, u32)>,
    oauth: Option<floe_broker::security::oauth::OAuthValidator>,
}

/// Keys the `sasl` target's tokens are checked against (an RSA and an EC key; no input signs with them).
const FUZZ_JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"r","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},{"kty":"EC","crv":"P-256","kid":"e","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

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
        Ok(State { rt: tokio::runtime::Builder::new_current_thread().enable_all().build()?, registry: None, catalog: None, oauth: None })
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
            "table-topic-batch" => {
                outcome(floe_broker::table_source::decode(&Bytes::from(fix_crcs(data)), DECOMPRESSED_BYTES_MAX, &[]).map(|r| r.len().min(3)))
            }
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
            "sasl" => self.sasl(data),
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

    fn sasl(&mut self, data: &[u8]) -> String {
        // Messages quote the input: the class is the text before the first quote.
        let class = self.sasl_outcome(data);
        class.split('"').next().unwrap_or_default().to_string()
    }

    fn sasl_outcome(&mut self, data: &[u8]) -> String {
        use floe_broker::security::scram::{ScramClient, ScramMechanism, ScramServer};
        let Some((&mode, rest)) = data.split_first() else { return "empty".into() };
        match mode % 4 {
            0 => {
                let (first, last) = rest.iter().position(|&b| b == 0xff).map_or((rest, &[][..]), |i| (&rest[..i], &rest[i + 1..]));
                let cred = ScramMechanism::Sha256.credential(b"salted-password", b"salt", 4096);
                match ScramServer::start(ScramMechanism::Sha256, first, |_| Some(cred.clone()), b"decoy") {
                    Ok((server, _)) => outcome(server.finish(last).map(|(u, _)| u.len().min(3)).map_err(|e| e.0)),
                    Err(e) => format!("first: {}", e.0),
                }
            }
            1 => match self.oauth() {
                Ok(v) => outcome(v.authenticate(rest, 1_800_000_000_000).map(|g| g.subject.len().min(3))),
                Err(e) => panic!("the fuzz JWKS: {e}"),
            },
            2 => {
                let dn = floe_broker::security::principal::subject(rest);
                let rules = floe_broker::security::principal::PrincipalRules::parse(&String::from_utf8_lossy(rest));
                format!("{} {}", dn.is_some(), outcome(rules.map(|r| r.apply("CN=a,O=b").len().min(3))))
            }
            _ => {
                let (mut client, _) = ScramClient::start(ScramMechanism::Sha512, "user", "pw");
                outcome(client.respond(rest).map(|m| m.len().min(3)).map_err(|e| e.0))
            }
        }
    }

    /// An OAUTHBEARER validator over a fixed JWKS (written once to a temporary file).
    fn oauth(&mut self) -> anyhow::Result<&floe_broker::security::oauth::OAuthValidator> {
        if self.oauth.is_none() {
            let path = std::env::temp_dir().join(format!("floe-fuzz-jwks-{}.json", std::process::id()));
            std::fs::write(&path, FUZZ_JWKS)?;
            let s = floe_broker::Settings { sasl_oauthbearer_jwks_file: Some(path), ..Default::default() };
            self.oauth = floe_broker::security::oauth::OAuthValidator::from_settings(&s).map_err(anyhow::Error::msg)?;
        }
        self.oauth.as_ref().ok_or_else(|| anyhow::anyhow!("no validator"))
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
                    access: None,
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
