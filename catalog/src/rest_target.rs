//! An external Iceberg REST catalog as a commit target: tables loaded, created and committed over
//! HTTP with the spec's requests (`CommitTableRequest` with requirements and updates), its error
//! model mapped back to [`CatalogError`] — a 409 is `CommitFailed`, an unclear answer is not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use iceberg::spec::{Schema, TableMetadata, UnboundPartitionSpec};
use iceberg::{TableRequirement, TableUpdate};
use reqwest::Url;
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
    root: Url,
    warehouse: Option<String>,
    /// `{uri}/v1[/{prefix}]`, once `/v1/config` answered.
    base: tokio::sync::OnceCell<Url>,
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

/// The calls made, for messages and for reading a 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Config,
    Load,
    Commit,
    CreateNamespace,
    CreateTable,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Call::Config => "config",
            Call::Load => "load table",
            Call::Commit => "commit table",
            Call::CreateNamespace => "create namespace",
            Call::CreateTable => "create table",
        })
    }
}

fn unavailable(what: impl std::fmt::Display, e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Storage(format!("REST catalog, {what}: {e}"))
}

impl RestTarget {
    /// A target for the catalog at `uri`, with an optional bearer token; `warehouse` is passed to
    /// the config call as the spec says. Nothing is asked until the first call.
    pub fn new(uri: &str, token: Option<String>, warehouse: Option<String>) -> Result<Arc<Self>> {
        let client = reqwest::Client::builder().timeout(Duration::from_millis(REQUEST_TIMEOUT_MS)).build().map_err(|e| unavailable("client", e))?;
        let root = Url::parse(uri).map_err(|e| CatalogError::BadRequest(format!("catalog URI {uri}: {e}")))?;
        if root.cannot_be_a_base() {
            return Err(CatalogError::BadRequest(format!("catalog URI {uri} cannot hold paths")));
        }
        Ok(Arc::new(RestTarget { client, root, warehouse, base: tokio::sync::OnceCell::new(), token }))
    }

    /// `root` with `segments` appended, each percent-encoded as one path segment.
    fn join(root: &Url, segments: &[&str]) -> Url {
        let mut url = root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `{uri}/v1[/{prefix}]/{segments…}`, asking `/v1/config` for the prefix the first time (again
    /// after a failure).
    async fn url(&self, segments: &[&str]) -> Result<Url> {
        let base = self
            .base
            .get_or_try_init(|| async {
                let mut url = Self::join(&self.root, &["v1", "config"]);
                if let Some(w) = &self.warehouse {
                    url.query_pairs_mut().append_pair("warehouse", w);
                }
                let config: ConfigResult = self.send(self.client.get(url), Call::Config).await?;
                let prefix = config.overrides.get("prefix").or(config.defaults.get("prefix")).map(|p| p.trim_matches('/')).filter(|p| !p.is_empty());
                let mut base = vec!["v1"];
                base.extend(prefix.map(|p| p.split('/')).into_iter().flatten());
                Ok::<_, CatalogError>(Self::join(&self.root, &base))
            })
            .await?;
        Ok(Self::join(base, segments))
    }

    /// The URL of a table.
    async fn table_url(&self, ns: &Namespace, name: &str) -> Result<Url> {
        self.url(&["namespaces", &ns.join("\u{1f}"), "tables", name]).await
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder, what: Call) -> Result<T> {
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
            (409, _) if what == Call::CreateNamespace => CatalogError::NamespaceExists(message),
            (409, _) if what == Call::CreateTable => CatalogError::TableExists(message),
            (409, _) => CatalogError::CommitFailed(message),
            (400 | 422, _) => CatalogError::BadRequest(message),
            (401 | 403, _) => CatalogError::Unauthorized,
            // 5xx, including CommitStateUnknown: whether it landed is unknown; callers re-read.
            _ => unavailable(what, format!("HTTP {status} {kind}: {message}")),
        })
    }

    fn post_json(&self, url: Url, body: &serde_json::Value) -> reqwest::RequestBuilder {
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
        let r: TableResult = self.send(self.client.get(self.table_url(ns, name).await?), Call::Load).await?;
        Self::loaded(name, r)
    }

    async fn commit(&self, ns: &Namespace, name: &str, requirements: Vec<TableRequirement>, updates: Vec<TableUpdate>) -> Result<LoadedTable> {
        let body = json!({"identifier": {"namespace": ns, "name": name}, "requirements": requirements, "updates": updates});
        let r: TableResult = self.send(self.post_json(self.table_url(ns, name).await?, &body), Call::Commit).await?;
        Self::loaded(name, r)
    }

    async fn ensure_namespace(&self, ns: &Namespace) -> Result<()> {
        let body = json!({"namespace": ns, "properties": {}});
        match self.send::<serde_json::Value>(self.post_json(self.url(&["namespaces"]).await?, &body), Call::CreateNamespace).await {
            Ok(_) | Err(CatalogError::NamespaceExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create(
        &self,
        ns: &Namespace,
        name: &str,
        schema: Schema,
        spec: Option<UnboundPartitionSpec>,
        properties: HashMap<String, String>,
    ) -> Result<LoadedTable> {
        let mut properties = properties;
        properties.entry("format-version".into()).or_insert_with(|| "2".into());
        let mut body = json!({"name": name, "schema": schema, "properties": properties, "stage-create": false});
        if let Some(spec) = spec {
            body["partition-spec"] = serde_json::to_value(spec).map_err(|e| CatalogError::BadRequest(e.to_string()))?;
        }
        let url = self.url(&["namespaces", &ns.join("\u{1f}"), "tables"]).await?;
        let r: TableResult = self.send(self.post_json(url, &body), Call::CreateTable).await?;
        Self::loaded(name, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_names_are_path_safe() {
        let root = Url::parse("http://127.0.0.1:8181/catalog/").expect("url");
        let url = RestTarget::join(&root, &["v1", "namespaces", &["a", "b c"].join("\u{1f}"), "tables", "t/1"]);
        assert_eq!(url.as_str(), "http://127.0.0.1:8181/catalog/v1/namespaces/a%1Fb%20c/tables/t%2F1");
    }
}
