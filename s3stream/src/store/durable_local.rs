//! The local filesystem store made durable: `object_store`'s `LocalFileSystem` renames a written
//! file into place but never fsyncs it, so a power loss could take an object (or a manifest) whose
//! WAL space was already reused. Here a put or copy returns only once the file and its directory
//! are synced — which also writes each object's pages out as it is put, instead of leaving them
//! for the WAL's next fdatasync to wait behind. On Linux the pages go out one chunk at a time
//! (`sync_file_range`), so that a WAL fsync on the same disk queues behind at most one chunk of an
//! object rather than the whole of it. Ranged reads fill buffers straight from the file, without
//! zeroing them first as `LocalFileSystem` does.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::{
    path::Path, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};

/// An object's pages are written back this many bytes at a time, each chunk waited for before
/// the next starts.
const WRITE_BACK_CHUNK_BYTES: u64 = 1 << 20;

/// Writes `file`'s dirty pages back a chunk at a time, then fsyncs it (data and metadata).
fn write_back(file: &std::fs::File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let mut at = 0;
    while at < len {
        let n = WRITE_BACK_CHUNK_BYTES.min(len - at);
        floe_io_sys::write_back_range(file, at, n)?;
        at += n;
    }
    file.sync_all()
}

/// Reads each of `ranges` of the file at `path` into a buffer of its own, the file read straight
/// into the buffers' spare capacity (no zero fill). A range past the file's end (or reversed) is
/// an error before anything is allocated for it: ranges come from stored indexes.
fn read_ranges(path: &std::path::Path, ranges: &[Range<u64>]) -> std::io::Result<Vec<Bytes>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let bad = |r: &Range<u64>| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("range {r:?} outside the {size} bytes of {}", path.display()));
    ranges
        .iter()
        .map(|r| {
            if r.start > r.end || r.end > size {
                return Err(bad(r));
            }
            let len = r.end - r.start;
            file.seek(SeekFrom::Start(r.start))?;
            let mut buf = Vec::with_capacity(usize::try_from(len).map_err(std::io::Error::other)?);
            (&mut file).take(len).read_to_end(&mut buf)?;
            if buf.len() as u64 != len {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("range {r:?} of {} read short", path.display())));
            }
            Ok(Bytes::from(buf))
        })
        .collect()
}

/// A `LocalFileSystem` whose puts and copies are durable when they return.
#[derive(Debug)]
pub struct DurableLocal {
    inner: Arc<LocalFileSystem>,
}

impl DurableLocal {
    pub fn new(inner: LocalFileSystem) -> Self {
        Self { inner: Arc::new(inner) }
    }

    /// Writes back and fsyncs the file behind `location`, then fsyncs its directory (which holds
    /// the rename).
    async fn sync(&self, location: &Path) -> Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        let synced = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            write_back(&std::fs::File::open(&file)?)?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await;
        match synced {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) }),
            Err(e) => Err(object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) }),
        }
    }
}

impl fmt::Display for DurableLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Durable({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for DurableLocal {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.sync(location).await?;
        Ok(r)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        // Floe's engine never puts in parts (its objects are put whole).
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let file = self.inner.path_to_filesystem(location)?;
        let ranges = ranges.to_vec();
        let read = tokio::task::spawn_blocking(move || read_ranges(&file, &ranges)).await;
        match read {
            Ok(Ok(blocks)) => Ok(blocks),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(object_store::Error::NotFound { path: location.to_string(), source: Box::new(e) }),
            Ok(Err(e)) => Err(object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) }),
            Err(e) => Err(object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) }),
        }
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.sync(to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn puts_and_copies_land_as_files_and_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = DurableLocal::new(LocalFileSystem::new_with_prefix(dir.path()).expect("fs").with_automatic_cleanup(true));
        let a = Path::from("data/a.obj");
        store.put(&a, PutPayload::from_static(b"object bytes")).await.expect("put");
        let b = Path::from("other/b.obj");
        store.copy(&a, &b).await.expect("copy");
        for p in [&a, &b] {
            assert_eq!(store.get(p).await.expect("get").bytes().await.expect("bytes"), Bytes::from_static(b"object bytes"));
        }
        assert_eq!(std::fs::read(dir.path().join("other/b.obj")).expect("the file"), b"object bytes");
        // An object of several write-back chunks, the last one partial.
        let big: Bytes = (0..(5 * WRITE_BACK_CHUNK_BYTES / 2)).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
        let c = Path::from("data/c.obj");
        store.put(&c, PutPayload::from(big.clone())).await.expect("put big");
        assert_eq!(store.get(&c).await.expect("get").bytes().await.expect("bytes"), big);
        let ranges = [0..3, 5 * WRITE_BACK_CHUNK_BYTES / 2 - 7..5 * WRITE_BACK_CHUNK_BYTES / 2, 1000..WRITE_BACK_CHUNK_BYTES + 1000];
        let got = store.get_ranges(&c, &ranges).await.expect("ranges");
        for (r, b) in ranges.iter().zip(&got) {
            assert_eq!(b, &big.slice(r.start as usize..r.end as usize), "range {r:?}");
        }
        let past = store.get_ranges(&c, &[0..1, 5 * WRITE_BACK_CHUNK_BYTES / 2 - 1..5 * WRITE_BACK_CHUNK_BYTES / 2 + 1]).await;
        assert!(past.is_err(), "a range past the end is an error: {past:?}");
        let huge = store.get_ranges(&c, &[0..1, 0..u64::from(u32::MAX)]).await;
        assert!(
            huge.as_ref().is_err_and(|e| e.to_string().contains("outside the")),
            "a corrupt index's length is refused before its buffer is allocated: {huge:?}"
        );
        let gone = store.get_ranges(&Path::from("data/none.obj"), &[0..1, 1..2]).await;
        assert!(matches!(gone, Err(object_store::Error::NotFound { .. })), "{gone:?}");
        let missing = store.put_opts(&Path::from("data/a.obj"), PutPayload::from_static(b"x"), object_store::PutMode::Create.into()).await;
        assert!(matches!(missing, Err(object_store::Error::AlreadyExists { .. })), "create-if-absent still holds: {missing:?}");
    }
}
