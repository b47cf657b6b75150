//! A [`SchemaSource`] over HTTP: an external Schema Registry with the Confluent REST API (or
//! Floe's own, at its URL). Bounded by a request timeout; errors keep the registry's message.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Result, SchemaError};
use crate::registry::{Reference, SchemaType, StoredSchema};
use crate::source::SchemaSource;

/// A registry reached by URL.
pub struct HttpSource {
    base: reqwest::Url,
    client: reqwest::Client,
    /// HTTP Basic credentials (user, password), sent with every request.
    basic: Option<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    id: Option<u32>,
    schema: String,
    #[serde(default)]
    schema_type: Option<SchemaType>,
    #[serde(default)]
    references: Vec<Reference>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<u32>,
    message: Option<String>,
}

impl HttpSource {
    /// A source for the registry at `url` (e.g. `http://127.0.0.1:8081`), with a request timeout.
    pub fn new(url: &str, timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| SchemaError::Store(e.to_string()))?;
        let base = reqwest::Url::parse(url).map_err(|e| SchemaError::Store(format!("registry URL {url}: {e}")))?;
        if base.cannot_be_a_base() {
            return Err(SchemaError::Store(format!("registry URL {url} cannot hold paths")));
        }
        Ok(Self { base, client, basic: None })
    }

    /// Sends HTTP Basic credentials given as Confluent's `basic.auth.user.info` (`user:password`).
    pub fn with_basic_auth(mut self, user_info: &str) -> Result<Self> {
        let (user, password) = user_info.split_once(':').ok_or_else(|| SchemaError::Store("basic auth user info must be user:password".into()))?;
        self.basic = Some((user.to_string(), password.to_string()));
        Ok(self)
    }

    /// GETs the path made of `segments`, each percent-encoded as one path segment.
    async fn get(&self, segments: &[&str]) -> Result<Wire> {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        let path = segments.join("/");
        let mut req = self.client.get(url.clone());
        if let Some((user, password)) = &self.basic {
            req = req.basic_auth(user, Some(password));
        }
        let resp = req.send().await.map_err(|e| SchemaError::Store(format!("GET {url}: {e}")))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| SchemaError::Store(format!("GET {url}: {e}")))?;
        if !status.is_success() {
            let e: Option<ErrorBody> = serde_json::from_slice(&body).ok();
            let message = e.as_ref().and_then(|e| e.message.clone()).unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(match e.and_then(|e| e.error_code) {
                Some(40401) => SchemaError::SubjectNotFound(message),
                Some(40402) => SchemaError::VersionNotFound(path, message),
                Some(40403) => SchemaError::SchemaNotFound(message),
                _ => SchemaError::Store(format!("GET {url}: {status}: {message}")),
            });
        }
        serde_json::from_slice(&body).map_err(|e| SchemaError::Store(format!("GET {url}: unreadable answer: {e}")))
    }

    fn stored(w: Wire, id: u32) -> StoredSchema {
        StoredSchema { id: w.id.unwrap_or(id), schema_type: w.schema_type.unwrap_or_default(), schema: w.schema, references: w.references }
    }
}

#[async_trait::async_trait]
impl SchemaSource for HttpSource {
    async fn by_id(&self, id: u32) -> Result<StoredSchema> {
        Ok(Self::stored(self.get(&["schemas", "ids", &id.to_string()]).await?, id))
    }

    async fn latest(&self, subject: &str) -> Result<StoredSchema> {
        let w = self.get(&["subjects", subject, "versions", "latest"]).await?;
        let id = w.id.ok_or_else(|| SchemaError::Store("the registry's answer has no id".into()))?;
        Ok(Self::stored(w, id))
    }

    async fn reference(&self, r: &Reference) -> Result<StoredSchema> {
        let w = self.get(&["subjects", &r.subject, "versions", &r.version.to_string()]).await?;
        let id = w.id.unwrap_or(0);
        Ok(Self::stored(w, id))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::{MemoryLog, Registry};
    use crate::source::{decode_framed, SchemaCache};
    use crate::{wire, Value};

    #[tokio::test]
    async fn an_external_registry_over_http_serves_the_cache() {
        let registry = Arc::new(Registry::open(Arc::new(MemoryLog::default())).await.expect("registry"));
        let id = registry
            .register("topic a/value", SchemaType::Avro, r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}"#, vec![])
            .await
            .expect("register");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(crate::registry::server::serve(registry, None, listener, std::future::pending()));
        let source = Arc::new(HttpSource::new(&format!("http://{addr}"), Duration::from_secs(10)).expect("client"));
        let cache = SchemaCache::new(source.clone(), Duration::from_secs(60));
        let (got, _, v) = decode_framed(&cache, &wire::frame(id, &[0x04])).await.expect("decode over HTTP");
        assert_eq!((got, v), (id, Value::Record(vec![Value::Long(2)])));
        assert_eq!(source.latest("topic a/value").await.expect("latest, with an escaped subject").id, id);
        assert!(matches!(source.by_id(4242).await, Err(SchemaError::SchemaNotFound(_))));
        let down = HttpSource::new("http://127.0.0.1:1", Duration::from_secs(2)).expect("client");
        assert!(matches!(down.by_id(1).await, Err(SchemaError::Store(_))), "an unreachable registry is a store error");
    }
}
