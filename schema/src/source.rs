//! `by_schema_id` and `by_latest_schema`: schemas fetched from a [`SchemaSource`] (the built-in
//! registry, or an external one), compiled once and cached — by id for good, the latest version
//! of a subject for `refresh` — and records decoded with them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::avro::{self, AvroSchema};
use crate::error::{Result, SchemaError};
use crate::protobuf::{split_indexes, ProtoSchema};
use crate::registry::{Reference, Registry, SchemaType, StoredSchema};
use crate::value::Value;
use crate::{jsonschema, wire};

/// Schemas compiled at most this many are kept; past it the cache starts over.
pub const CACHE_ENTRIES_MAX: usize = 10_000;

/// Where schemas come from.
#[async_trait::async_trait]
pub trait SchemaSource: Send + Sync + 'static {
    /// A schema by id.
    async fn by_id(&self, id: u32) -> Result<StoredSchema>;
    /// The latest live version of a subject, with its id.
    async fn latest(&self, subject: &str) -> Result<StoredSchema>;
    /// The schema a reference points to.
    async fn reference(&self, r: &Reference) -> Result<StoredSchema>;
}

#[async_trait::async_trait]
impl SchemaSource for Registry {
    async fn by_id(&self, id: u32) -> Result<StoredSchema> {
        self.schema(id).await
    }
    async fn latest(&self, subject: &str) -> Result<StoredSchema> {
        Ok(self.version(subject, "latest", false).await?.schema)
    }
    async fn reference(&self, r: &Reference) -> Result<StoredSchema> {
        Ok(self.version(&r.subject, &r.version.to_string(), true).await?.schema)
    }
}

/// A schema ready to decode with.
#[derive(Debug, Clone)]
pub enum Compiled {
    Avro(AvroSchema),
    Protobuf(ProtoSchema),
    Json(arrow_schema::Schema),
}

impl Compiled {
    /// The Arrow schema of the rows this schema decodes to.
    pub fn arrow_schema(&self) -> Result<arrow_schema::Schema> {
        match self {
            Compiled::Avro(a) => a.arrow_schema(),
            Compiled::Protobuf(p) => p.arrow_schema(),
            Compiled::Json(s) => Ok(s.clone()),
        }
    }
}

/// A cache of compiled schemas over a source.
pub struct SchemaCache {
    source: Arc<dyn SchemaSource>,
    refresh: Duration,
    by_id: tokio::sync::Mutex<HashMap<u32, Arc<Compiled>>>,
    latest: tokio::sync::Mutex<HashMap<LatestKey, Fetched>>,
}

/// (subject, Protobuf message name)
type LatestKey = (String, Option<String>);
/// (when fetched, schema id, compiled schema)
type Fetched = (Instant, u32, Arc<Compiled>);

impl SchemaCache {
    /// A cache that re-reads a subject's latest version after `refresh`.
    pub fn new(source: Arc<dyn SchemaSource>, refresh: Duration) -> Self {
        Self { source, refresh, by_id: Default::default(), latest: Default::default() }
    }

    async fn compile(&self, s: &StoredSchema, message: Option<&str>) -> Result<Compiled> {
        let mut refs = Vec::new();
        for r in &s.references {
            refs.push((r.name.clone(), self.source.reference(r).await?));
        }
        match s.schema_type {
            SchemaType::Avro => {
                let mut named = Vec::new();
                for (_, r) in &refs {
                    named.push(AvroSchema::parse_str(&r.schema)?);
                }
                let json: serde_json::Value = serde_json::from_str(&s.schema).map_err(|e| SchemaError::InvalidSchema(e.to_string()))?;
                Ok(Compiled::Avro(AvroSchema::parse_with(&json, &named)?))
            }
            SchemaType::Protobuf => {
                let imports: Vec<(String, String)> = refs.into_iter().map(|(n, r)| (n, r.schema)).collect();
                Ok(Compiled::Protobuf(ProtoSchema::from_source("schema.proto", &s.schema, &imports, message)?))
            }
            SchemaType::Json => {
                let json: serde_json::Value = serde_json::from_str(&s.schema).map_err(|e| SchemaError::InvalidSchema(e.to_string()))?;
                Ok(Compiled::Json(jsonschema::arrow_schema(&json)?))
            }
        }
    }

    /// The compiled schema of an id.
    pub async fn by_id(&self, id: u32) -> Result<Arc<Compiled>> {
        if let Some(c) = self.by_id.lock().await.get(&id) {
            return Ok(c.clone());
        }
        let s = self.source.by_id(id).await?;
        let c = Arc::new(self.compile(&s, None).await?);
        let mut cache = self.by_id.lock().await;
        if cache.len() >= CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(id, c.clone());
        Ok(c)
    }

    /// The latest schema of a subject (and, for Protobuf, the message to use), refreshed after
    /// the refresh interval.
    pub async fn latest(&self, subject: &str, message: Option<&str>) -> Result<(u32, Arc<Compiled>)> {
        let key = (subject.to_string(), message.map(str::to_string));
        if let Some((at, id, c)) = self.latest.lock().await.get(&key) {
            if at.elapsed() < self.refresh {
                return Ok((*id, c.clone()));
            }
        }
        let s = self.source.latest(subject).await?;
        let c = Arc::new(self.compile(&s, message).await?);
        let mut cache = self.latest.lock().await;
        if cache.len() >= CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), s.id, c.clone()));
        Ok((s.id, c))
    }
}

/// The subject `by_latest_schema` reads by default: `<topic>-value` or `<topic>-key`
/// (Confluent's TopicNameStrategy).
pub fn default_subject(topic: &str, key: bool) -> String {
    format!("{topic}-{}", if key { "key" } else { "value" })
}

/// Decodes `payload` (no framing) with a compiled schema.
pub fn decode_payload(c: &Compiled, payload: &[u8], framed_protobuf: bool) -> Result<Value> {
    match c {
        Compiled::Avro(a) => avro::decode(a, payload),
        Compiled::Protobuf(p) => {
            if framed_protobuf {
                let (indexes, rest) = split_indexes(payload)?;
                p.by_indexes(&indexes)?.decode(rest)
            } else {
                p.decode(payload)
            }
        }
        Compiled::Json(s) => {
            let json: serde_json::Value = serde_json::from_slice(payload).map_err(|e| SchemaError::Decode(format!("not JSON: {e}")))?;
            jsonschema::convert(&json, &arrow_schema::DataType::Struct(s.fields().clone()), "")
        }
    }
}

/// The schema a Confluent-framed record names, and its payload (still encoded).
pub async fn resolve_framed<'a>(cache: &SchemaCache, record: &'a [u8]) -> Result<(u32, Arc<Compiled>, &'a [u8])> {
    let (id, payload) = wire::split(record)?;
    let c = cache.by_id(id).await?;
    Ok((id, c, payload))
}

/// `by_schema_id`: a Confluent-framed record, decoded with the schema its id names.
pub async fn decode_framed(cache: &SchemaCache, record: &[u8]) -> Result<(u32, Arc<Compiled>, Value)> {
    let (id, c, payload) = resolve_framed(cache, record).await?;
    let v = decode_payload(&c, payload, true)?;
    Ok((id, c, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MemoryLog;

    #[tokio::test]
    async fn framed_records_of_every_language_decode_through_the_cache() {
        let r = Arc::new(Registry::open(Arc::new(MemoryLog::default())).await.expect("registry"));
        let avro_id = r.register("a", SchemaType::Avro, r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}"#, vec![]).await.expect("avro");
        let json_id = r.register("j", SchemaType::Json, r#"{"type":"object","properties":{"n":{"type":"integer"}}}"#, vec![]).await.expect("json");
        let proto = "syntax = \"proto3\"; message A { int64 n = 1; } message B { string s = 1; }";
        let proto_id = r.register("p", SchemaType::Protobuf, proto, vec![]).await.expect("proto");
        let cache = SchemaCache::new(r.clone(), Duration::from_secs(60));
        let (_, _, v) = decode_framed(&cache, &wire::frame(avro_id, &[0x0e])).await.expect("avro");
        assert_eq!(v, Value::Record(vec![Value::Long(7)]));
        let (_, _, v) = decode_framed(&cache, &wire::frame(json_id, br#"{"n": 5}"#)).await.expect("json");
        assert_eq!(v, Value::Record(vec![Value::Long(5)]));
        // Message index [1] (count 1 → zigzag 2, index 1 → zigzag 2) selects B; field 1 = "hi".
        let mut payload = vec![2, 2];
        payload.extend([0x0a, 2, b'h', b'i']);
        let (_, _, v) = decode_framed(&cache, &wire::frame(proto_id, &payload)).await.expect("proto");
        assert_eq!(v, Value::Record(vec![Value::String("hi".into())]));
        assert!(matches!(decode_framed(&cache, &wire::frame(999, b"x")).await, Err(SchemaError::SchemaNotFound(_))));
        let (id, _) = cache.latest("a", None).await.expect("latest");
        assert_eq!(id, avro_id);
        assert_eq!(default_subject("orders", false), "orders-value");
        assert_eq!(default_subject("orders", true), "orders-key");
    }
}
