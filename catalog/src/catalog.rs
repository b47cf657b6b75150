//! The catalog: namespaces and tables, commits checked against every requirement, metadata JSON
//! written to the object store (a new file per commit, created, never overwritten), and pointers
//! kept in the injected [`CatalogStore`] — all under one lock, so commits are atomic and a stale
//! one fails with a conflict instead of overwriting.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use iceberg::spec::{FormatVersion, Schema, SortOrder, TableMetadata, TableMetadataBuilder, UnboundPartitionSpec};
use iceberg::{ErrorKind, TableCreation, TableRequirement, TableUpdate};
use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{CatalogError, Result};
use crate::names;
use crate::storage::ObjectStorage;
use crate::store::CatalogStore;

/// A namespace: its levels.
pub type Namespace = Vec<String>;

const NS_PREFIX: &str = "catalog/ns/";
/// Table metadata kept in memory at most (the current version of each table is what is cached).
const CACHE_ENTRIES_MAX: usize = 10_000;
const TABLE_PREFIX: &str = "catalog/table/";
/// Iceberg's table property: on commit, delete the metadata files that fell off the metadata log
/// (which keeps `write.metadata.previous-versions-max` entries, 100 by default). Off unless set.
pub const DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";

/// The metadata files a commit from `before` (the metadata at `before_location`) to `after`
/// dropped from the log, when `after` asks for them to be deleted.
fn dropped_metadata(before_location: &str, before: &TableMetadata, after: &TableMetadata) -> Vec<String> {
    if after.properties().get(DELETE_AFTER_COMMIT).is_none_or(|v| !v.eq_ignore_ascii_case("true")) {
        return Vec::new();
    }
    let kept: HashSet<&str> = after.metadata_log().iter().map(|m| m.metadata_file.as_str()).collect();
    let logged = before.metadata_log().iter().map(|m| m.metadata_file.as_str());
    logged.chain([before_location]).filter(|f| !kept.contains(f)).map(str::to_string).collect()
}

fn ns_key(ns: &[String]) -> String {
    format!("{NS_PREFIX}{}", ns.join("\u{1f}"))
}

fn table_key(ns: &[String], name: &str) -> String {
    format!("{TABLE_PREFIX}{}\u{1e}{name}", ns.join("\u{1f}"))
}

fn show(ns: &[String]) -> String {
    ns.join(".")
}

/// A table as the REST API answers for it.
#[derive(Clone, Debug)]
pub struct LoadedTable {
    pub metadata_location: String,
    pub metadata: Arc<TableMetadata>,
}

/// What a create asks for.
pub struct CreateTable {
    pub name: String,
    pub location: Option<String>,
    pub schema: Schema,
    pub partition_spec: Option<UnboundPartitionSpec>,
    pub sort_order: Option<SortOrder>,
    pub properties: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    namespaces: BTreeMap<Namespace, HashMap<String, String>>,
    tables: BTreeMap<(Namespace, String), String>,
    cache: HashMap<String, Arc<TableMetadata>>,
}

impl State {
    /// Namespaces and tables as the store's `entries` hold them (the metadata cache stays: its
    /// files never change).
    fn replace(&mut self, entries: Vec<(String, String)>) -> Result<()> {
        let (mut namespaces, mut tables) = (BTreeMap::new(), BTreeMap::new());
        for (k, v) in entries {
            if let Some(ns) = k.strip_prefix(NS_PREFIX) {
                let props = serde_json::from_str(&v).map_err(|e| CatalogError::Storage(format!("namespace {ns}: {e}")))?;
                namespaces.insert(ns.split('\u{1f}').map(str::to_string).collect(), props);
            } else if let Some(t) = k.strip_prefix(TABLE_PREFIX) {
                let Some((ns, name)) = t.split_once('\u{1e}') else { continue };
                tables.insert((ns.split('\u{1f}').map(str::to_string).collect(), name.to_string()), v);
            }
        }
        (self.namespaces, self.tables) = (namespaces, tables);
        Ok(())
    }
}

/// The catalog.
pub struct Catalog {
    store: Arc<dyn CatalogStore>,
    /// The warehouse (`file:///…/warehouse`, `s3://bucket/warehouse`) and where it lives in the object store.
    storage: ObjectStorage,
    state: tokio::sync::Mutex<State>,
}

impl Catalog {
    /// A catalog whose pointers live in `store`, with metadata files written to `objects` under
    /// `warehouse_path`, which readers know as `warehouse` (a URL).
    pub fn open(store: Arc<dyn CatalogStore>, objects: Arc<dyn ObjectStore>, warehouse: &str, warehouse_path: &str) -> Result<Self> {
        let mut state = State::default();
        state.replace(store.load())?;
        Ok(Self { store, storage: ObjectStorage::new(objects, warehouse, warehouse_path), state: tokio::sync::Mutex::new(state) })
    }

    /// The state, with what other catalogs sharing the store changed read in.
    async fn state(&self) -> Result<tokio::sync::MutexGuard<'_, State>> {
        let mut state = self.state.lock().await;
        if let Some(entries) = self.store.refresh().await? {
            state.replace(entries)?;
        }
        Ok(state)
    }

    /// The warehouse URL.
    pub fn warehouse(&self) -> &str {
        self.storage.warehouse()
    }

    /// The warehouse's storage: a `FileIO` over it reads and writes tables with the catalog's client.
    pub fn storage(&self) -> &ObjectStorage {
        &self.storage
    }

    fn object_path(&self, url: &str) -> Result<Path> {
        self.storage.path(url).map_err(|e| CatalogError::BadRequest(e.message().to_string()))
    }

    async fn put(&self, entries: Vec<(String, Option<String>)>) -> Result<()> {
        self.store.put(entries).await
    }

    async fn read_metadata(&self, state: &mut State, location: &str) -> Result<Arc<TableMetadata>> {
        if let Some(m) = state.cache.get(location) {
            return Ok(m.clone());
        }
        let path = self.object_path(location)?;
        let bytes = self
            .storage
            .store()
            .get(&path)
            .await
            .map_err(|e| CatalogError::Storage(format!("{location}: {e}")))?
            .bytes()
            .await
            .map_err(|e| CatalogError::Storage(e.to_string()))?;
        let m: TableMetadata = serde_json::from_slice(&bytes).map_err(|e| CatalogError::Storage(format!("{location}: {e}")))?;
        let m = Arc::new(m);
        if state.cache.len() >= CACHE_ENTRIES_MAX {
            state.cache.clear();
        }
        state.cache.insert(location.to_string(), m.clone());
        Ok(m)
    }

    /// Writes `metadata` as the next version after `previous` and caches it (shared, not copied:
    /// a table's metadata grows with its snapshots, and every commit writes it).
    async fn write_metadata(&self, state: &mut State, metadata: &Arc<TableMetadata>, previous: Option<&str>) -> Result<String> {
        let version = previous.and_then(|p| p.rsplit('/').next()).and_then(|f| f.split('-').next()).and_then(|n| n.parse::<u64>().ok()).map_or(0, |n| n + 1);
        let location = format!("{}/metadata/{version:05}-{}.metadata.json", metadata.location().trim_end_matches('/'), uuid::Uuid::new_v4());
        let json = serde_json::to_vec(metadata.as_ref()).map_err(|e| CatalogError::Storage(e.to_string()))?;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.storage.store().put_opts(&self.object_path(&location)?, PutPayload::from(json), opts).await.map_err(|e| CatalogError::Storage(e.to_string()))?;
        state.cache.insert(location.clone(), metadata.clone());
        Ok(location)
    }

    /// Namespaces directly under `parent` (top-level ones without it).
    pub async fn list_namespaces(&self, parent: Option<Namespace>) -> Result<Vec<Namespace>> {
        let state = self.state().await?;
        if let Some(p) = &parent {
            if !state.namespaces.contains_key(p) {
                return Err(CatalogError::NoSuchNamespace(show(p)));
            }
        }
        let depth = parent.as_ref().map_or(0, Vec::len);
        Ok(state.namespaces.keys().filter(|ns| ns.len() == depth + 1 && parent.as_ref().is_none_or(|p| ns.starts_with(p))).cloned().collect())
    }

    /// Creates a namespace.
    pub async fn create_namespace(&self, ns: Namespace, properties: HashMap<String, String>) -> Result<HashMap<String, String>> {
        if ns.is_empty() {
            return Err(CatalogError::BadRequest("a namespace needs at least one level".into()));
        }
        for level in &ns {
            names::check("namespace level", level)?;
        }
        let mut state = self.state().await?;
        if state.namespaces.contains_key(&ns) {
            return Err(CatalogError::NamespaceExists(show(&ns)));
        }
        let json = serde_json::to_string(&properties).map_err(|e| CatalogError::Storage(e.to_string()))?;
        self.put(vec![(ns_key(&ns), Some(json))]).await?;
        state.namespaces.insert(ns, properties.clone());
        Ok(properties)
    }

    /// A namespace's properties.
    pub async fn load_namespace(&self, ns: &Namespace) -> Result<HashMap<String, String>> {
        let state = self.state().await?;
        state.namespaces.get(ns).cloned().ok_or_else(|| CatalogError::NoSuchNamespace(show(ns)))
    }

    /// Drops an empty namespace.
    pub async fn drop_namespace(&self, ns: &Namespace) -> Result<()> {
        let mut state = self.state().await?;
        if !state.namespaces.contains_key(ns) {
            return Err(CatalogError::NoSuchNamespace(show(ns)));
        }
        if state.tables.keys().any(|(n, _)| n == ns) || state.namespaces.keys().any(|n| n.len() > ns.len() && n.starts_with(ns)) {
            return Err(CatalogError::NamespaceNotEmpty(show(ns)));
        }
        self.put(vec![(ns_key(ns), None)]).await?;
        state.namespaces.remove(ns);
        Ok(())
    }

    /// Updates properties; returns (updated, removed, missing).
    pub async fn update_namespace(
        &self,
        ns: &Namespace,
        removals: Vec<String>,
        updates: HashMap<String, String>,
    ) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
        if removals.iter().any(|r| updates.contains_key(r)) {
            return Err(CatalogError::BadRequest("a key is both removed and updated".into()));
        }
        let mut state = self.state().await?;
        let mut props = state.namespaces.get(ns).cloned().ok_or_else(|| CatalogError::NoSuchNamespace(show(ns)))?;
        let (mut removed, mut missing) = (vec![], vec![]);
        for r in removals {
            if props.remove(&r).is_some() {
                removed.push(r)
            } else {
                missing.push(r)
            }
        }
        let updated: Vec<String> = updates.keys().cloned().collect();
        props.extend(updates);
        let json = serde_json::to_string(&props).map_err(|e| CatalogError::Storage(e.to_string()))?;
        self.put(vec![(ns_key(ns), Some(json))]).await?;
        state.namespaces.insert(ns.clone(), props);
        Ok((updated, removed, missing))
    }

    /// Table names in a namespace.
    pub async fn list_tables(&self, ns: &Namespace) -> Result<Vec<String>> {
        let state = self.state().await?;
        if !state.namespaces.contains_key(ns) {
            return Err(CatalogError::NoSuchNamespace(show(ns)));
        }
        Ok(state.tables.keys().filter(|(n, _)| n == ns).map(|(_, t)| t.clone()).collect())
    }

    /// Creates a table (format version 2).
    pub async fn create_table(&self, ns: &Namespace, req: CreateTable) -> Result<LoadedTable> {
        let mut state = self.state().await?;
        if !state.namespaces.contains_key(ns) {
            return Err(CatalogError::NoSuchNamespace(show(ns)));
        }
        let key = (ns.clone(), req.name.clone());
        if state.tables.contains_key(&key) {
            return Err(CatalogError::TableExists(format!("{}.{}", show(ns), req.name)));
        }
        names::check("table name", &req.name)?;
        // A table of its own location: `<ns>/<name>-<uuid>` unless the client names one, which
        // may then overlap no other table's (nor hold the warehouse root).
        let location = match req.location {
            Some(l) => {
                let l = l.trim_end_matches('/').to_string();
                names::check_location(&l, self.warehouse(), Self::locations(&state))?;
                l
            }
            None => format!("{}/{}/{}-{}", self.warehouse().trim_end_matches('/'), ns.join("/"), req.name, uuid::Uuid::new_v4().simple()),
        };
        self.object_path(&location)?;
        // `format-version` chooses the format, as Java's catalogs take it; it is not kept as a property.
        let mut properties = req.properties;
        let format_version = match properties.remove("format-version").as_deref() {
            None | Some("2") => FormatVersion::V2,
            Some("1") => FormatVersion::V1,
            Some(v) => return Err(CatalogError::BadRequest(format!("format-version {v} is not supported (1 or 2)"))),
        };
        let creation = TableCreation {
            name: req.name.clone(),
            location: Some(location),
            schema: req.schema,
            partition_spec: req.partition_spec,
            sort_order: req.sort_order,
            properties,
            format_version,
        };
        let metadata = Arc::new(TableMetadataBuilder::from_table_creation(creation)?.build()?.metadata);
        let metadata_location = self.write_metadata(&mut state, &metadata, None).await?;
        self.put(vec![(table_key(ns, &req.name), Some(metadata_location.clone()))]).await?;
        state.tables.insert(key, metadata_location.clone());
        Ok(LoadedTable { metadata_location, metadata })
    }

    /// (name, location) of every table, locations read off their metadata file paths.
    fn locations(state: &State) -> impl Iterator<Item = (String, &str)> {
        state.tables.iter().map(|((ns, name), loc)| (format!("{}.{name}", show(ns)), names::table_location(loc)))
    }

    /// Loads a table.
    pub async fn load_table(&self, ns: &Namespace, name: &str) -> Result<LoadedTable> {
        let mut state = self.state().await?;
        let loc = state.tables.get(&(ns.clone(), name.to_string())).cloned().ok_or_else(|| CatalogError::NoSuchTable(format!("{}.{name}", show(ns))))?;
        let metadata = self.read_metadata(&mut state, &loc).await?;
        Ok(LoadedTable { metadata_location: loc, metadata })
    }

    /// Drops a table; with `purge`, deletes its files too.
    pub async fn drop_table(&self, ns: &Namespace, name: &str, purge: bool) -> Result<()> {
        let mut state = self.state().await?;
        let key = (ns.clone(), name.to_string());
        let loc = state.tables.get(&key).cloned().ok_or_else(|| CatalogError::NoSuchTable(format!("{}.{name}", show(ns))))?;
        let metadata = if purge { Some(self.read_metadata(&mut state, &loc).await?) } else { None };
        self.put(vec![(table_key(ns, name), None)]).await?;
        state.tables.remove(&key);
        state.cache.remove(&loc);
        if let Some(m) = metadata {
            // Only a location no other table shares is emptied (tables registered before
            // locations were checked may share one): their files must stay.
            if let Some((other, _)) = Self::locations(&state).find(|(_, l)| names::overlap(l, m.location())) {
                tracing::warn!(location = m.location(), table = %other, "purge skipped: another table's location overlaps this one");
                return Ok(());
            }
            // The table is gone already; files left behind are unreferenced.
            if let Err(e) = iceberg::io::Storage::delete_prefix(&self.storage, m.location()).await {
                tracing::warn!(location = m.location(), error = %e, "purge left files behind");
            }
        }
        Ok(())
    }

    /// Renames (and possibly moves) a table.
    pub async fn rename_table(&self, from: (&Namespace, &str), to: (&Namespace, &str)) -> Result<()> {
        let mut state = self.state().await?;
        names::check("table name", to.1)?;
        let src = (from.0.clone(), from.1.to_string());
        let dst = (to.0.clone(), to.1.to_string());
        let loc = state.tables.get(&src).cloned().ok_or_else(|| CatalogError::NoSuchTable(format!("{}.{}", show(from.0), from.1)))?;
        if !state.namespaces.contains_key(to.0) {
            return Err(CatalogError::NoSuchNamespace(show(to.0)));
        }
        if state.tables.contains_key(&dst) {
            return Err(CatalogError::TableExists(format!("{}.{}", show(to.0), to.1)));
        }
        self.put(vec![(table_key(from.0, from.1), None), (table_key(to.0, to.1), Some(loc.clone()))]).await?;
        state.tables.remove(&src);
        state.tables.insert(dst, loc);
        Ok(())
    }

    /// Registers an existing metadata file as a table.
    pub async fn register_table(&self, ns: &Namespace, name: &str, metadata_location: &str) -> Result<LoadedTable> {
        let mut state = self.state().await?;
        if !state.namespaces.contains_key(ns) {
            return Err(CatalogError::NoSuchNamespace(show(ns)));
        }
        let key = (ns.clone(), name.to_string());
        if state.tables.contains_key(&key) {
            return Err(CatalogError::TableExists(format!("{}.{name}", show(ns))));
        }
        names::check("table name", name)?;
        let metadata = self.read_metadata(&mut state, metadata_location).await?;
        // A registered table may not alias another table's files.
        names::check_location(metadata.location(), self.warehouse(), Self::locations(&state))?;
        self.put(vec![(table_key(ns, name), Some(metadata_location.to_string()))]).await?;
        state.tables.insert(key, metadata_location.to_string());
        Ok(LoadedTable { metadata_location: metadata_location.to_string(), metadata })
    }

    /// Commits changes to several tables at once: every requirement of every table is checked
    /// first; then all new metadata files are written and all pointers move in one store write.
    pub async fn commit(&self, changes: Vec<(Namespace, String, Vec<TableRequirement>, Vec<TableUpdate>)>) -> Result<Vec<LoadedTable>> {
        let mut state = self.state().await?;
        let mut staged = Vec::with_capacity(changes.len());
        for (ns, name, requirements, updates) in changes {
            let loc = state.tables.get(&(ns.clone(), name.clone())).cloned().ok_or_else(|| CatalogError::NoSuchTable(format!("{}.{name}", show(&ns))))?;
            let current = self.read_metadata(&mut state, &loc).await?;
            for r in &requirements {
                r.check(Some(&current)).map_err(|e| match e.kind() {
                    ErrorKind::CatalogCommitConflicts => CatalogError::CommitFailed(e.message().to_string()),
                    _ => CatalogError::CommitFailed(e.to_string()),
                })?;
            }
            let mut builder = TableMetadataBuilder::new_from_metadata(current.as_ref().clone(), Some(loc.clone()));
            for u in updates {
                builder = u.apply(builder)?;
            }
            let metadata = Arc::new(builder.build()?.metadata);
            let dropped = dropped_metadata(&loc, &current, &metadata);
            staged.push((ns, name, loc, metadata, dropped));
        }
        let mut entries = Vec::with_capacity(staged.len());
        let mut out = Vec::with_capacity(staged.len());
        let mut dropped = Vec::new();
        for (ns, name, previous, metadata, gone) in staged {
            let new_loc = self.write_metadata(&mut state, &metadata, Some(&previous)).await?;
            entries.push((table_key(&ns, &name), Some(new_loc.clone())));
            out.push((ns, name, LoadedTable { metadata_location: new_loc, metadata }));
            dropped.extend(gone);
        }
        self.put(entries).await?;
        // Committed: a file that cannot be deleted now is only left behind.
        for location in dropped {
            state.cache.remove(&location);
            let deleted = match self.object_path(&location) {
                Ok(path) => self.storage.store().delete(&path).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = deleted {
                tracing::warn!(%location, error = %e, "an old metadata file could not be deleted");
            }
        }
        // Only current versions stay cached.
        for (ns, name, _) in &out {
            if let Some(previous) = state.tables.get(&(ns.clone(), name.clone())).cloned() {
                state.cache.remove(&previous);
            }
        }
        Ok(out
            .into_iter()
            .map(|(ns, name, t)| {
                state.tables.insert((ns, name), t.metadata_location.clone());
                t
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
