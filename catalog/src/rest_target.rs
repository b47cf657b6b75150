//! An external Iceberg REST catalog as a commit target: tables loaded, created and committed over
//! HTTP with the spec's requests (`CommitTableRequest` with requirements and updates), its error
//! model mapped back to [`CatalogError`] — a 409 is `CommitFailed`, an unclear answer is not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use iceberg::spec::{Schema, TableMetadata, UnboundPartitionSpec};
use iceberg::{TableRequirement, TableUpdate};
use serde::Deserialize;
use serde_json::json;

use crate::catalog::{LoadedTable, Namespace};
use crate::commit::CommitTarget;
use crate::error::{CatalogError, Result};

/// How long one request to the catalog may take.
const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// A REST catalog at `uri`.
pub struct RestTarget {
    client: reqwest::Client,
    root: String,
    warehouse: Option<String>,
    /// `{uri}/v1[/{prefix}]`, once `/v1/config` answered.
    base: tokio::sync::OnceCell<String>,
    token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorModel {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct TableResult {
    #[serde(rename = "metadata-location")]
    metadata_location: Option<String>,
    metadata: TableMetadata,
}

#[derive(Deserialize, Default)]
struct ConfigResult {
    #[serde(default)]
    overrides: HashMap<String, String>,
    #[serde(default)]
    defaults: HashMap<String, String>,
}

/// A namespace as a path segment: levels joined by the unit separator, percent-encoded.
fn ns_path(ns: &Namespace) -> String {
    ns.iter().map(|l| encode(l)).collect::<Vec<_>>().join("%1F")
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Storage(format!("REST catalog, {what}: {e}"))
}

impl RestTarget {
    /// A target for the catalog at `uri`, with an optional bearer token; `warehouse` is passed to
    /// the config call as the spec says. Nothing is asked until the first call.
    pub fn new(uri: &str, token: Option<String>, warehouse: Option<String>) -> Result<Arc<Self>> {
        let client = reqwest::Client::builder().timeout(Duration::from_millis(REQUEST_TIMEOUT_MS)).build().map_err(|e| unavailable("client", e))?;
        Ok(Arc::new(RestTarget { client, root: uri.trim_end_matches('/').to_string(), warehouse, base: tokio::sync::OnceCell::new(), token }))
    }

    /// `{uri}/v1[/{prefix}]`, asking `/v1/config` for the prefix the first time (again after a failure).
    async fn base(&self) -> Result<&str> {
        let base = self
            .base
            .get_or_try_init(|| async {
                let url = match &self.warehouse {
                    Some(w) => format!("{}/v1/config?warehouse={}", self.root, encode(w)),
                    None => format!("{}/v1/config", self.root),
                };
                let config: ConfigResult = self.send(self.client.get(url), "config").await?;
                Ok::<_, CatalogError>(match config.overrides.get("prefix").or(config.defaults.get("prefix")).filter(|p| !p.is_empty()) {
                    Some(prefix) => format!("{}/v1/{}", self.root, prefix.trim_matches('/')),
                    None => format!("{}/v1", self.root),
                })
            })
            .await?;
        Ok(base)
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder, what: &str) -> Result<T> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| unavailable(what, e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| unavailable(what, e))?;
        if (200..300).contains(&status) {
            let body = if body.is_empty() { &b"null"[..] } else { &body[..] };
            return serde_json::from_slice(body).map_err(|e| unavailable(what, format!("unexpected answer: {e}")));
        }
        let (kind, message) = match serde_json::from_slice::<ErrorModel>(&body) {
            Ok(m) => (m.error.kind, m.error.message),
            Err(_) => (String::new(), String::from_utf8_lossy(&body).into_owned()),
        };
        Err(match (status, kind.as_str()) {
            (404, "NoSuchNamespaceException") => CatalogError::NoSuchNamespace(message),
            (404, _) => CatalogError::NoSuchTable(message),
            (409, "CommitFailedException") => CatalogError::CommitFailed(message),
            (409, "NamespaceNotEmptyException") => CatalogError::NamespaceNotEmpty(message),
            (409, _) if what.starts_with("create namespace") => CatalogError::NamespaceExists(message),
            (409, _) if what.starts_with("create table") => CatalogError::TableExists(message),
            (409, _) => CatalogError::CommitFailed(message),
            (400 | 422, _) => CatalogError::BadRequest(message),
            (401 | 403, _) => CatalogError::Unauthorized,
            // 5xx, including CommitStateUnknown: whether it landed is unknown; callers re-read.
            _ => unavailable(what, format!("HTTP {status} {kind}: {message}")),
        })
    }

    fn post_json(&self, url: String, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string())
    }

    fn loaded(name: &str, r: TableResult) -> Result<LoadedTable> {
        let metadata_location = r.metadata_location.ok_or_else(|| unavailable(name, "no metadata-location in the answer"))?;
        Ok(LoadedTable { metadata_location, metadata: Arc::new(r.metadata) })
    }
}

#[async_trait]
impl CommitTarget for RestTarget {
    async fn load(&self, ns: &Namespace, name: &str) -> Result<LoadedTable> {
        let url = format!("{}/namespaces/{}/tables/{}", self.base().await?, ns_path(ns), encode(name));
        let r: TableResult = self.send(self.client.get(url), &format!("load table {name}")).await?;
        Self::loaded(name, r)
    }

    async fn commit(&self, ns: &Namespace, name: &str, requirements: Vec<TableRequirement>, updates: Vec<TableUpdate>) -> Result<LoadedTable> {
        let url = format!("{}/namespaces/{}/tables/{}", self.base().await?, ns_path(ns), encode(name));
        let body = json!({"identifier": {"namespace": ns, "name": name}, "requirements": requirements, "updates": updates});
        let r: TableResult = self.send(self.post_json(url, &body), &format!("commit table {name}")).await?;
        Self::loaded(name, r)
    }

    async fn ensure_namespace(&self, ns: &Namespace) -> Result<()> {
        let url = format!("{}/namespaces", self.base().await?);
        let body = json!({"namespace": ns, "properties": {}});
        match self.send::<serde_json::Value>(self.post_json(url, &body), "create namespace").await {
            Ok(_) | Err(CatalogError::NamespaceExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create(&self, ns: &Namespace, name: &str, schema: Schema, spec: Option<UnboundPartitionSpec>, properties: HashMap<String, String>) -> Result<LoadedTable> {
        let url = format!("{}/namespaces/{}/tables", self.base().await?, ns_path(ns));
        let mut properties = properties;
        properties.entry("format-version".into()).or_insert_with(|| "2".into());
        let mut body = json!({"name": name, "schema": schema, "properties": properties, "stage-create": false});
        if let Some(spec) = spec {
            body["partition-spec"] = serde_json::to_value(spec).map_err(|e| CatalogError::BadRequest(e.to_string()))?;
        }
        let r: TableResult = self.send(self.post_json(url, &body), &format!("create table {name}")).await?;
        Self::loaded(name, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_names_are_path_safe() {
        assert_eq!(ns_path(&vec!["a".into(), "b c".into()]), "a%1Fb%20c");
        assert_eq!(encode("t/1"), "t%2F1");
    }
}
