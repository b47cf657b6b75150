//! Where a commit goes: the built-in catalog directly, or an external REST catalog over HTTP.

use std::collections::HashMap;

use async_trait::async_trait;
use iceberg::spec::{Schema, UnboundPartitionSpec};
use iceberg::{TableRequirement, TableUpdate};

use crate::catalog::{Catalog, CreateTable, LoadedTable, Namespace};
use crate::error::Result;

/// A catalog Floe commits to. A requirement that no longer holds is
/// [`CatalogError::CommitFailed`](crate::CatalogError::CommitFailed), never a silent overwrite.
#[async_trait]
pub trait CommitTarget: Send + Sync {
    /// The table as committed now.
    async fn load(&self, ns: &Namespace, name: &str) -> Result<LoadedTable>;
    /// Applies `updates` when every requirement holds.
    async fn commit(&self, ns: &Namespace, name: &str, requirements: Vec<TableRequirement>, updates: Vec<TableUpdate>) -> Result<LoadedTable>;
    /// Creates the namespace when missing (no error when it exists).
    async fn ensure_namespace(&self, ns: &Namespace) -> Result<()>;
    /// Creates a table (format version 2).
    async fn create(
        &self,
        ns: &Namespace,
        name: &str,
        schema: Schema,
        spec: Option<UnboundPartitionSpec>,
        properties: HashMap<String, String>,
    ) -> Result<LoadedTable>;
}

#[async_trait]
impl CommitTarget for Catalog {
    async fn load(&self, ns: &Namespace, name: &str) -> Result<LoadedTable> {
        self.load_table(ns, name).await
    }

    async fn commit(&self, ns: &Namespace, name: &str, requirements: Vec<TableRequirement>, updates: Vec<TableUpdate>) -> Result<LoadedTable> {
        let mut out = Catalog::commit(self, vec![(ns.clone(), name.to_string(), requirements, updates)]).await?;
        out.pop().ok_or_else(|| crate::CatalogError::Storage("commit returned no table".into()))
    }

    async fn ensure_namespace(&self, ns: &Namespace) -> Result<()> {
        match self.create_namespace(ns.clone(), HashMap::new()).await {
            Ok(_) | Err(crate::CatalogError::NamespaceExists(_)) => Ok(()),
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
        self.create_table(ns, CreateTable { name: name.to_string(), location: None, schema, partition_spec: spec, sort_order: None, properties }).await
    }
}
