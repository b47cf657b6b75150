//! Commit-path tests, read back with the iceberg crate's own scan (which applies position deletes):
//! append, row-delta, a stale commit refused and cleaned up, replace, manifest merging, expiry.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use iceberg::table::Table;
use iceberg::TableIdent;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

use super::*;
use crate::catalog::{Catalog, CreateTable};
use crate::files::{write_data_file, write_position_deletes, NewFile, Placement};
use crate::storage::ObjectStorage;
use crate::store::MemoryStore;

const WH: &str = "s3://bucket/warehouse";

struct Fixture {
    objects: Arc<dyn ObjectStore>,
    catalog: Arc<Catalog>,
    committer: Committer,
    ns: Namespace,
}

async fn fixture() -> Fixture {
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let catalog = Arc::new(Catalog::open(Arc::new(MemoryStore::default()), objects.clone(), WH, "warehouse").expect("open"));
    let io = ObjectStorage::new(objects.clone(), WH, "warehouse").file_io();
    let ns = vec!["db".to_string()];
    catalog.create_namespace(ns.clone(), HashMap::new()).await.expect("ns");
    let schema = Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .expect("schema");
    catalog
        .create_table(&ns, CreateTable { name: "t".into(), location: None, schema, partition_spec: None, sort_order: None, properties: HashMap::new() })
        .await
        .expect("table");
    Fixture { objects, committer: Committer::new(catalog.clone(), io), catalog, ns }
}

impl Fixture {
    async fn load(&self) -> LoadedTable {
        self.catalog.load_table(&self.ns, "t").await.expect("load")
    }

    async fn data_file(&self, name: &str, ids: &[i64]) -> NewFile {
        let t = self.load().await;
        let schema = t.metadata.current_schema().clone();
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).expect("arrow schema"));
        let batch = RecordBatch::try_new(
            arrow,
            vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from_iter_values(ids.iter().map(|i| format!("n{i}"))))],
        )
        .expect("batch");
        let loc = format!("{}/data/{name}.parquet", t.metadata.location());
        write_data_file(self.committer.io(), &loc, schema, &[batch], &Placement::unpartitioned()).await.expect("write").expect("rows")
    }

    async fn deletes(&self, name: &str, rows: Vec<(String, i64)>) -> NewFile {
        let t = self.load().await;
        let loc = format!("{}/data/{name}-deletes.parquet", t.metadata.location());
        write_position_deletes(self.committer.io(), &loc, rows, &Placement::unpartitioned()).await.expect("write").expect("rows")
    }

    async fn commit(&self, change: Change) -> Result<LoadedTable> {
        let base = self.load().await;
        self.committer.commit(&self.ns, "t", &base, change, &HashMap::from([("floe.test".to_string(), "1".to_string())])).await
    }

    /// The ids a reader sees.
    async fn ids(&self) -> BTreeSet<i64> {
        let t = self.load().await;
        let table = Table::builder()
            .metadata(t.metadata.clone())
            .metadata_location(t.metadata_location.clone())
            .identifier(TableIdent::from_strs(["db", "t"]).expect("ident"))
            .file_io(self.committer.io().clone())
            .runtime(iceberg::Runtime::current())
            .build()
            .expect("table");
        let batches: Vec<RecordBatch> = table.scan().select(["id"]).build().expect("scan").to_arrow().await.expect("arrow").try_collect().await.expect("read");
        let mut out = BTreeSet::new();
        for b in batches {
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().expect("long");
            out.extend((0..col.len()).map(|i| col.value(i)));
        }
        out
    }

    async fn exists(&self, location: &str) -> bool {
        let path = ObjectStorage::new(self.objects.clone(), WH, "warehouse").path(location).expect("path");
        self.objects.head(&path).await.is_ok()
    }
}

fn summary(t: &LoadedTable) -> HashMap<String, String> {
    t.metadata.current_snapshot().expect("snapshot").summary().additional_properties.clone()
}

#[tokio::test]
async fn append_row_delta_replace_and_expire_read_back_right() {
    let f = fixture().await;
    let a = f.data_file("a", &[1, 2, 3, 4, 5]).await;
    let a_path = a.file.file_path().to_string();
    let t1 = f.commit(Change::Append(vec![a])).await.expect("append");
    assert_eq!(f.ids().await, BTreeSet::from([1, 2, 3, 4, 5]));
    let s1 = summary(&t1);
    assert_eq!(s1["total-records"], "5");
    assert_eq!(s1["floe.test"], "1");
    assert_eq!(t1.metadata.current_snapshot().expect("s").sequence_number(), 1);

    // Row-delta: rows 2 and 4 of `a` (ids 3, 5) go, 6 and 7 come, in one snapshot.
    let b = f.data_file("b", &[6, 7]).await;
    let d = f.deletes("d1", vec![(a_path.clone(), 4), (a_path.clone(), 2)]).await;
    let d_path = d.file.file_path().to_string();
    let t2 = f.commit(Change::RowDelta { data: vec![b], deletes: vec![d] }).await.expect("row delta");
    assert_eq!(f.ids().await, BTreeSet::from([1, 2, 4, 6, 7]));
    let s2 = summary(&t2);
    assert_eq!(s2["total-records"], "7");
    assert_eq!(s2["total-data-files"], "2");
    assert_eq!(s2["total-delete-files"], "1");
    assert_eq!(s2["total-position-deletes"], "2");
    let live = f.committer.live_files(&t2.metadata).await.expect("live");
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|l| l.sequence_number == if l.file.file_path() == a_path { 1 } else { 2 }));

    // Compaction: everything into one file; the delete file leaves with the data it applied to.
    let c = f.data_file("c", &[1, 2, 4, 6, 7]).await;
    let b_path = live.iter().find(|l| l.file.file_path().ends_with("b.parquet")).expect("b").file.file_path().to_string();
    let removed = HashSet::from([a_path.clone(), b_path.clone(), d_path.clone()]);
    let t3 = f.commit(Change::Replace { removed: removed.clone(), data: vec![c], deletes: vec![] }).await.expect("replace");
    assert_eq!(f.ids().await, BTreeSet::from([1, 2, 4, 6, 7]));
    let s3 = summary(&t3);
    assert_eq!(t3.metadata.current_snapshot().expect("s").summary().operation, Operation::Replace);
    assert_eq!(s3["total-records"], "5");
    assert_eq!(s3["total-data-files"], "1");
    assert_eq!(s3["total-delete-files"], "0");
    let live = f.committer.live_files(&t3.metadata).await.expect("live");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].sequence_number, 2, "a rewrite keeps the sequence number it started from");

    // Replacing a file that is gone is a conflict.
    let again = f.commit(Change::Replace { removed: HashSet::from([a_path.clone()]), data: vec![], deletes: vec![] }).await;
    assert!(matches!(again, Err(CatalogError::CommitFailed(_))), "{again:?}");

    // Expiry: only the current snapshot stays; files only older snapshots reached are deleted.
    let old_list = t1.metadata.current_snapshot().expect("s").manifest_list().to_string();
    assert!(f.exists(&a_path).await && f.exists(&old_list).await);
    let (t4, report) =
        f.committer.expire_snapshots(&f.ns, "t", &t3, Retention { older_than_ms: now_ms() + 1, retain_last: 1, retain_max: 100 }).await.expect("expire");
    assert_eq!(report.expired_snapshot_ids.len(), 2);
    assert_eq!(t4.metadata.snapshots().count(), 1);
    for gone in [&a_path, &b_path, &d_path, &old_list] {
        assert!(!f.exists(gone).await, "{gone} should be deleted");
    }
    assert!(f.exists(live[0].file.file_path()).await);
    assert_eq!(f.ids().await, BTreeSet::from([1, 2, 4, 6, 7]));
}

#[tokio::test]
async fn a_stale_commit_is_refused_and_leaves_no_metadata_behind() {
    let f = fixture().await;
    let base = f.load().await;
    let a = f.data_file("a", &[1]).await;
    f.commit(Change::Append(vec![a])).await.expect("first");
    let before: BTreeSet<_> = f.objects.list(None).map_ok(|m| m.location.to_string()).try_collect().await.expect("list");
    let b = f.data_file("b", &[2]).await;
    let b_path = b.file.file_path().to_string();
    let stale = f.committer.commit(&f.ns, "t", &base, Change::Append(vec![b]), &HashMap::new()).await;
    assert!(matches!(stale, Err(CatalogError::CommitFailed(_))), "{stale:?}");
    let after: BTreeSet<_> = f.objects.list(None).map_ok(|m| m.location.to_string()).try_collect().await.expect("list");
    let new: Vec<_> = after.difference(&before).collect();
    assert_eq!(new.len(), 1, "only the caller's data file is new: {new:?}");
    assert!(new[0].ends_with("b.parquet") && f.exists(&b_path).await);
    assert_eq!(f.ids().await, BTreeSet::from([1]));
}

#[tokio::test]
async fn many_commits_keep_few_manifests_and_every_row() {
    let f = fixture().await;
    let n = MANIFESTS_MERGE_COUNT_MIN as i64 + 8;
    for i in 0..n {
        let file = f.data_file(&format!("f{i}"), &[i]).await;
        f.commit(Change::Append(vec![file])).await.expect("append");
    }
    let t = f.load().await;
    let manifests = f.committer.manifests(&t.metadata, t.metadata.current_snapshot_id()).await.expect("manifests");
    assert!(manifests.len() < MANIFESTS_MERGE_COUNT_MIN, "{} manifests", manifests.len());
    assert_eq!(f.ids().await, (0..n).collect());
    assert_eq!(summary(&t)["total-records"], n.to_string());
}

#[tokio::test]
async fn orphans_go_and_committed_files_stay() {
    let f = fixture().await;
    let kept = f.data_file("kept", &[1, 2]).await;
    let kept_path = kept.file.file_path().to_string();
    let t = f.commit(Change::Append(vec![kept])).await.expect("append");
    // Written for a commit that never happened.
    let orphan = f.data_file("orphan", &[9]).await.file.file_path().to_string();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let lister = Committer::with_storage(f.catalog.clone(), ObjectStorage::new(f.objects.clone(), WH, "warehouse"));
    assert_eq!(lister.remove_orphans(&t.metadata, now_ms - 60_000).await.expect("young files"), 0, "files inside the grace period stay");
    assert!(f.exists(&orphan).await);
    // A manifest written for that commit, and the metadata JSON files (never candidates).
    let loc = t.metadata.location().trim_end_matches('/').to_string();
    let stray_manifest = format!("{loc}/metadata/{}-m0.avro", uuid::Uuid::new_v4());
    f.catalog.storage().clone().file_io().new_output(&stray_manifest).expect("out").write(bytes::Bytes::from_static(b"avro")).await.expect("write");
    let live = [t.metadata.current_snapshot().expect("snapshot").manifest_list().to_string(), t.metadata_location.clone()];
    assert_eq!(lister.remove_orphans(&t.metadata, now_ms + 1_000).await.expect("orphans"), 2);
    assert!(!f.exists(&orphan).await, "the orphan is gone");
    assert!(!f.exists(&stray_manifest).await, "the stray manifest is gone");
    for l in &live {
        assert!(f.exists(l).await, "{l} is live and stays");
    }
    assert!(f.exists(&kept_path).await, "the committed file stays");
    assert_eq!(f.ids().await, BTreeSet::from([1, 2]));
    assert_eq!(f.committer.remove_orphans(&t.metadata, now_ms + 1_000).await.expect("no lister"), 0, "a committer that cannot list removes nothing");
}

#[tokio::test]
async fn an_expiry_whose_files_are_deleted_after_later_commits_deletes_only_what_the_expired_snapshots_reached() {
    let f = fixture().await;
    let a = f.data_file("a", &[1]).await;
    let a_path = a.file.file_path().to_string();
    let t1 = f.commit(Change::Append(vec![a])).await.expect("a");
    let b = f.data_file("b", &[2]).await;
    let b_path = b.file.file_path().to_string();
    f.commit(Change::Append(vec![b])).await.expect("b");
    let c = f.data_file("c", &[1, 2]).await;
    let t3 = f.commit(Change::Replace { removed: HashSet::from([a_path.clone(), b_path.clone()]), data: vec![c], deletes: vec![] }).await.expect("c");
    let (after, expired) =
        f.committer.remove_snapshots(&f.ns, "t", &t3, Retention { older_than_ms: now_ms() + 1, retain_last: 1, retain_max: 100 }).await.expect("remove");
    let expired = expired.expect("two snapshots expire");
    assert_eq!(expired.snapshot_ids.len(), 2);
    assert!(f.exists(&a_path).await, "the removal alone deletes nothing");
    // The loop commits on before the files go.
    let d = f.data_file("d", &[3]).await;
    let t5 = f.commit(Change::Append(vec![d])).await.expect("d");
    let deleted = f.committer.delete_expired(&expired, &after.metadata).await.expect("delete");
    let old_list = t1.metadata.current_snapshot().expect("s").manifest_list().to_string();
    for gone in [&a_path, &b_path, &old_list] {
        assert!(!f.exists(gone).await, "{gone} should be deleted");
    }
    assert!(deleted >= 3);
    for kept in f.committer.live_files(&t5.metadata).await.expect("live") {
        assert!(f.exists(kept.file.file_path()).await, "{} is live", kept.file.file_path());
    }
    for mf in f.committer.manifests(&t5.metadata, t5.metadata.current_snapshot_id()).await.expect("manifests") {
        assert!(f.exists(&mf.manifest_path).await, "{} is live", mf.manifest_path);
    }
    assert_eq!(f.ids().await, BTreeSet::from([1, 2, 3]));
}

#[tokio::test]
async fn beyond_the_newest_retain_max_snapshots_young_ones_expire_too() {
    let f = fixture().await;
    let mut last = None;
    for i in 0..5 {
        let d = f.data_file(&format!("f{i}"), &[i]).await;
        last = Some(f.commit(Change::Append(vec![d])).await.expect("append"));
    }
    let t = last.expect("five commits");
    let ids: Vec<i64> = {
        let mut s: Vec<(i64, i64)> = t.metadata.snapshots().map(|s| (s.sequence_number(), s.snapshot_id())).collect();
        s.sort_unstable();
        s.into_iter().map(|(_, id)| id).collect()
    };
    let young = Retention { older_than_ms: 0, retain_last: 1, retain_max: 100 };
    assert!(expire::to_expire(&t.metadata, young).is_empty(), "all younger than the cut-off, fewer than retain_max");
    let capped = Retention { retain_max: 3, ..young };
    assert_eq!(
        expire::to_expire(&t.metadata, capped),
        {
            let mut v = ids[..2].to_vec();
            v.sort_unstable();
            v
        },
        "the two oldest go"
    );
    let last_kept = Retention { retain_max: 1, retain_last: 2, ..young };
    assert_eq!(expire::to_expire(&t.metadata, last_kept).len(), 3, "retain.last wins over retain.max");
    let (after, report) = f.committer.expire_snapshots(&f.ns, "t", &t, capped).await.expect("expire");
    assert_eq!(report.expired_snapshot_ids.len(), 2);
    assert_eq!(after.metadata.snapshots().count(), 3);
    assert_eq!(f.ids().await, BTreeSet::from([0, 1, 2, 3, 4]), "expiry drops history, never rows");
}
