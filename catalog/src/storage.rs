//! The iceberg crate's file IO (`Storage`) on `object_store`: one S3 client for the broker and tables.
//!
//! Locations are URLs under the warehouse (`s3://bucket/warehouse/…`, `file:///…/warehouse/…`);
//! they map onto object-store paths under the warehouse path. A location outside the warehouse is
//! an error, never a guess. Writes go through `object_store`'s buffered multipart writer, so a
//! large Parquet file is never held whole in memory.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error, ErrorKind};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// Bytes buffered per multipart part when writing a file.
const WRITE_PART_BYTES: usize = 8 << 20;

/// Stores known to this process, so a serialized `FileIO` (iceberg's storage is serde) can come
/// back to the same client instead of a second one with other settings.
fn registry() -> &'static Mutex<HashMap<String, Arc<dyn ObjectStore>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// How a storage is named when serialized.
#[derive(Clone, Serialize, Deserialize)]
struct StorageName {
    warehouse: String,
    warehouse_path: String,
}

/// Iceberg storage over an object store, rooted at the warehouse.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "StorageName", into = "StorageName")]
pub struct ObjectStorage {
    warehouse: String,
    warehouse_path: String,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStorage({} -> {})", self.warehouse, self.warehouse_path)
    }
}

impl From<ObjectStorage> for StorageName {
    fn from(s: ObjectStorage) -> Self {
        StorageName { warehouse: s.warehouse, warehouse_path: s.warehouse_path }
    }
}

impl TryFrom<StorageName> for ObjectStorage {
    type Error = String;
    fn try_from(n: StorageName) -> Result<Self, String> {
        let store = registry()
            .lock()
            .map_err(|_| "object store registry poisoned".to_string())?
            .get(&n.warehouse)
            .cloned()
            .ok_or_else(|| format!("no object store for warehouse {} in this process", n.warehouse))?;
        Ok(ObjectStorage { warehouse: n.warehouse, warehouse_path: n.warehouse_path, store })
    }
}

impl ObjectStorage {
    /// Storage for locations under `warehouse` (a URL), kept at `warehouse_path` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, warehouse: &str, warehouse_path: &str) -> Self {
        let warehouse = warehouse.trim_end_matches('/').to_string();
        if let Ok(mut r) = registry().lock() {
            r.insert(warehouse.clone(), store.clone());
        }
        ObjectStorage { warehouse, warehouse_path: warehouse_path.trim_end_matches('/').to_string(), store }
    }

    /// A `StorageFactory`, for iceberg catalog clients that build their own `FileIO`.
    pub fn factory(self) -> Arc<dyn StorageFactory> {
        Arc::new(ObjectStorageFactory(self))
    }

    /// A `FileIO` for the iceberg crate's readers and writers.
    pub fn file_io(self) -> FileIO {
        FileIOBuilder::new(Arc::new(ObjectStorageFactory(self))).build()
    }

    /// The object-store path of a location, or an error when it is outside the warehouse.
    pub fn path(&self, location: &str) -> iceberg::Result<Path> {
        let rest = location
            .strip_prefix(&self.warehouse)
            .filter(|r| r.is_empty() || r.starts_with('/'))
            .ok_or_else(|| Error::new(ErrorKind::DataInvalid, format!("location {location} is outside the warehouse {}", self.warehouse)))?;
        let full = if self.warehouse_path.is_empty() { rest.trim_start_matches('/').to_string() } else { format!("{}{rest}", self.warehouse_path) };
        Path::parse(full).map_err(|e| Error::new(ErrorKind::DataInvalid, format!("location {location}: {e}")))
    }

    /// The location of an object-store path under the warehouse (the inverse of [`Self::path`]).
    pub fn location(&self, path: &Path) -> Option<String> {
        let p = path.as_ref();
        let rest = if self.warehouse_path.is_empty() { Some(p) } else { p.strip_prefix(self.warehouse_path.as_str()).and_then(|r| r.strip_prefix('/')) }?;
        Some(format!("{}/{rest}", self.warehouse))
    }

    /// The warehouse URL (no trailing slash).
    pub fn warehouse(&self) -> &str {
        &self.warehouse
    }

    /// The object store underneath.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

fn io_err(location: &str, e: object_store::Error) -> Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => ErrorKind::DataInvalid,
        _ => ErrorKind::Unexpected,
    };
    Error::new(kind, format!("object store, {location}: {e}"))
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        match self.store.head(&self.path(path)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_err(path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let meta = self.store.head(&self.path(path)?).await.map_err(|e| io_err(path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let got = self.store.get(&self.path(path)?).await.map_err(|e| io_err(path, e))?;
        got.bytes().await.map_err(|e| io_err(path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        Ok(Box::new(ObjectRead { store: self.store.clone(), path: self.path(path)?, location: path.to_string() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        self.store.put(&self.path(path)?, bs.into()).await.map_err(|e| io_err(path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let inner = BufWriter::with_capacity(self.store.clone(), self.path(path)?, WRITE_PART_BYTES);
        Ok(Box::new(ObjectWrite { inner: Some(inner), location: path.to_string() }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        match self.store.delete(&self.path(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_err(path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let prefix = self.path(path)?;
        let files: Vec<_> = self.store.list(Some(&prefix)).map_ok(|m| m.location).try_collect().await.map_err(|e| io_err(path, e))?;
        for f in files {
            match self.store.delete(&f).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(io_err(path, e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(p) = paths.next().await {
            self.delete(&p).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        self.path(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        self.path(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Builds the one storage it holds, whatever the configuration says.
#[derive(Debug, Serialize, Deserialize)]
struct ObjectStorageFactory(ObjectStorage);

#[typetag::serde]
impl StorageFactory for ObjectStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.0.clone()))
    }
}

struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    path: Path,
    location: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store.get_range(&self.path, range).await.map_err(|e| io_err(&self.location, e))
    }
}

struct ObjectWrite {
    inner: Option<BufWriter>,
    location: String,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        let w = self.inner.as_mut().ok_or_else(|| Error::new(ErrorKind::Unexpected, format!("{} is closed", self.location)))?;
        w.put(bs).await.map_err(|e| io_err(&self.location, e))
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let mut w = self.inner.take().ok_or_else(|| Error::new(ErrorKind::Unexpected, format!("{} is closed", self.location)))?;
        w.shutdown().await.map_err(|e| Error::new(ErrorKind::Unexpected, format!("object store, {}: {e}", self.location)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn files_round_trip_under_the_warehouse_and_nowhere_else() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let io = ObjectStorage::new(store.clone(), "s3://b/warehouse/", "warehouse").file_io();
        let out = io.new_output("s3://b/warehouse/ns/t/data/a.parquet").expect("test");
        let mut w = out.writer().await.expect("test");
        w.write(Bytes::from_static(b"hello ")).await.expect("test");
        w.write(Bytes::from_static(b"world")).await.expect("test");
        w.close().await.expect("test");
        assert!(w.write(Bytes::from_static(b"x")).await.is_err(), "a closed file takes no more bytes");
        // The object is where the warehouse path says.
        let raw = store.get(&Path::from("warehouse/ns/t/data/a.parquet")).await.expect("test").bytes().await.expect("test");
        assert_eq!(&raw[..], b"hello world");
        let input = io.new_input("s3://b/warehouse/ns/t/data/a.parquet").expect("test");
        assert_eq!(input.metadata().await.expect("test").size, 11);
        assert_eq!(&input.reader().await.expect("test").read(6..11).await.expect("test")[..], b"world");
        assert!(io.exists("s3://b/warehouse/ns/t/data/a.parquet").await.expect("test"));
        assert!(!io.exists("s3://b/warehouse/ns/t/data/b.parquet").await.expect("test"));
        assert!(io.new_input("s3://other/warehouse/x").is_err());
        assert!(io.new_input("s3://b/warehouse2/x").is_err(), "a sibling prefix is not the warehouse");
        io.delete_prefix("s3://b/warehouse/ns").await.expect("test");
        assert!(!io.exists("s3://b/warehouse/ns/t/data/a.parquet").await.expect("test"));
    }

    #[test]
    fn a_serialized_storage_comes_back_to_the_same_store() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let s = ObjectStorage::new(store.clone(), "memory://wh-serde", "wh");
        let json = serde_json::to_string(&s).expect("test");
        let back: ObjectStorage = serde_json::from_str(&json).expect("test");
        assert!(Arc::ptr_eq(&back.store, &store));
        let unknown = json.replace("wh-serde", "wh-unknown");
        assert!(serde_json::from_str::<ObjectStorage>(&unknown).is_err());
    }
}
