//! Catalog tests: create/load/commit, a stale requirement refused, a multi-table commit that is
//! all-or-nothing, state rebuilt from the store, and catalogs sharing one store.

use super::*;
use crate::store::MemoryStore;
use iceberg::spec::{NestedField, PrimitiveType, Type};
use object_store::memory::InMemory;

fn schema() -> Schema {
    Schema::builder().with_fields(vec![NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into()]).build().expect("schema")
}

fn create(name: &str) -> CreateTable {
    CreateTable { name: name.into(), location: None, schema: schema(), partition_spec: None, sort_order: None, properties: HashMap::new() }
}

fn set_prop(k: &str, v: &str) -> TableUpdate {
    TableUpdate::SetProperties { updates: HashMap::from([(k.to_string(), v.to_string())]) }
}

#[tokio::test]
async fn commits_are_checked_atomic_and_durable() {
    let store: Arc<MemoryStore> = Arc::default();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let cat = Catalog::open(store.clone(), objects.clone(), "memory:///wh", "wh").expect("open");
    let ns = vec!["db".to_string()];
    cat.create_namespace(ns.clone(), HashMap::new()).await.expect("namespace");
    let a = cat.create_table(&ns, create("a")).await.expect("a");
    cat.create_table(&ns, create("b")).await.expect("b");
    assert!(matches!(cat.create_table(&ns, create("a")).await, Err(CatalogError::TableExists(_))));
    let uuid = a.metadata.uuid();
    let ok = cat.commit(vec![(ns.clone(), "a".into(), vec![TableRequirement::UuidMatch { uuid }], vec![set_prop("k", "1")])]).await.expect("commit");
    assert_eq!(ok[0].metadata.properties().get("k").map(String::as_str), Some("1"));
    assert_ne!(ok[0].metadata_location, a.metadata_location, "every commit writes a new metadata file");
    let stale = TableRequirement::UuidMatch { uuid: uuid::Uuid::new_v4() };
    assert!(matches!(cat.commit(vec![(ns.clone(), "a".into(), vec![stale.clone()], vec![set_prop("k", "2")])]).await, Err(CatalogError::CommitFailed(_))));
    // A transaction over a and b where b's requirement fails changes neither.
    let before_b = cat.load_table(&ns, "b").await.expect("b").metadata_location;
    let txn = vec![(ns.clone(), "a".into(), vec![], vec![set_prop("k", "3")]), (ns.clone(), "b".into(), vec![stale], vec![set_prop("k", "3")])];
    assert!(cat.commit(txn).await.is_err());
    assert_eq!(cat.load_table(&ns, "a").await.expect("a").metadata.properties().get("k").map(String::as_str), Some("1"));
    assert_eq!(cat.load_table(&ns, "b").await.expect("b").metadata_location, before_b);
    assert!(matches!(cat.drop_namespace(&ns).await, Err(CatalogError::NamespaceNotEmpty(_))));
    // A new catalog on the same store and objects sees the same tables.
    let again = Catalog::open(store, objects, "memory:///wh", "wh").expect("reopen");
    assert_eq!(again.list_tables(&ns).await.expect("list"), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(again.load_table(&ns, "a").await.expect("a").metadata.properties().get("k").map(String::as_str), Some("1"));
    assert!(matches!(
        again.create_table(&ns, CreateTable { location: Some("s3://elsewhere/t".into()), ..create("c") }).await,
        Err(CatalogError::BadRequest(_))
    ));
}

/// Paths of every object in the store.
async fn object_paths(objects: &Arc<dyn ObjectStore>) -> Vec<String> {
    use futures::TryStreamExt;
    let all: Vec<_> = objects.list(None).try_collect().await.expect("list");
    all.into_iter().map(|m| m.location.to_string()).collect()
}

async fn object_count(objects: &Arc<dyn ObjectStore>) -> usize {
    object_paths(objects).await.len()
}

/// A catalog on in-memory objects, with the namespace `db`.
async fn catalog_with_namespace() -> (Arc<dyn ObjectStore>, Catalog, Namespace) {
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let cat = Catalog::open(Arc::new(MemoryStore::default()), objects.clone(), "memory:///wh", "wh").expect("open");
    let ns = vec!["db".to_string()];
    cat.create_namespace(ns.clone(), HashMap::new()).await.expect("namespace");
    (objects, cat, ns)
}

#[tokio::test]
async fn no_table_can_reach_another_tables_files() {
    let (objects, cat, ns) = catalog_with_namespace().await;
    for bad in ["", "a/b", "..", "x\u{1e}y"] {
        assert!(matches!(cat.create_table(&ns, create(bad)).await, Err(CatalogError::BadRequest(_))), "{bad:?}");
    }
    assert!(matches!(cat.create_namespace(vec!["a/b".into()], HashMap::new()).await, Err(CatalogError::BadRequest(_))));
    // Each table gets a location of its own; a dropped-and-recreated name gets a new one.
    let a = cat.create_table(&ns, create("a")).await.expect("a");
    assert!(a.metadata.location().starts_with("memory:///wh/db/a-"), "{}", a.metadata.location());
    // A client location may not be the warehouse root, hold a table, or lie inside one.
    for location in ["memory:///wh", "memory:///wh/db", a.metadata.location(), &format!("{}/data", a.metadata.location())] {
        let r = cat.create_table(&ns, CreateTable { location: Some(location.to_string()), ..create("b") }).await;
        assert!(matches!(r, Err(CatalogError::BadRequest(_))), "{location}");
    }
    cat.create_table(&ns, CreateTable { location: Some("memory:///wh/elsewhere/b".into()), ..create("b") }).await.expect("a location of its own");
    // Registering a's metadata under another name would alias its files.
    let r = cat.register_table(&ns, "alias", &a.metadata_location).await;
    assert!(matches!(r, Err(CatalogError::BadRequest(_))), "{r:?}");
    // Purging b removes b's files and nothing of a's.
    let before = object_count(&objects).await;
    cat.drop_table(&ns, "b", true).await.expect("purge b");
    assert_eq!(object_count(&objects).await, before - 1, "b's one metadata file went, a's stayed");
    cat.load_table(&ns, "a").await.expect("a is whole");
}

/// A store shared by several catalogs, as the broker's etcd store behaves: each catalog's view
/// remembers the revision of every entry it read, and a write on entries changed since fails.
/// `stale` makes a view skip its refreshes: a write landing elsewhere between a catalog's
/// refresh and its own write.
#[derive(Default)]
struct Shared(parking_lot::Mutex<Entries>);

/// key → (value, revision of its last change), and the store's revision.
type Entries = (BTreeMap<String, (String, u64)>, u64);

struct View {
    shared: Arc<Shared>,
    seen: parking_lot::Mutex<(u64, HashMap<String, u64>)>,
    stale: std::sync::atomic::AtomicBool,
}

impl View {
    fn of(shared: &Arc<Shared>) -> Arc<View> {
        Arc::new(View { shared: shared.clone(), seen: parking_lot::Mutex::new((u64::MAX, HashMap::new())), stale: Default::default() })
    }
}

#[async_trait::async_trait]
impl CatalogStore for View {
    fn load(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    async fn put(&self, entries: Vec<(String, Option<String>)>) -> std::result::Result<(), CatalogError> {
        let mut g = self.shared.0.lock();
        let mut seen = self.seen.lock();
        if entries.iter().any(|(k, _)| g.0.get(k).map(|(_, r)| *r) != seen.1.get(k).copied()) {
            return Err(CatalogError::CommitFailed("changed meanwhile".into()));
        }
        g.1 += 1;
        let rev = g.1;
        for (k, v) in entries {
            match v {
                Some(v) => {
                    g.0.insert(k.clone(), (v, rev));
                    seen.1.insert(k, rev);
                }
                None => {
                    g.0.remove(&k);
                    seen.1.remove(&k);
                }
            }
        }
        Ok(())
    }

    async fn refresh(&self) -> std::result::Result<Option<Vec<(String, String)>>, CatalogError> {
        let g = self.shared.0.lock();
        let mut seen = self.seen.lock();
        if seen.0 == g.1 || self.stale.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
        *seen = (g.1, g.0.iter().map(|(k, (_, r))| (k.clone(), *r)).collect());
        Ok(Some(g.0.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect()))
    }
}

#[tokio::test]
async fn catalogs_sharing_a_store_see_each_others_tables_and_never_both_commit_on_one_version() {
    let shared: Arc<Shared> = Arc::default();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let (store_one, store_two) = (View::of(&shared), View::of(&shared));
    let one = Catalog::open(store_one, objects.clone(), "memory:///wh", "wh").expect("open");
    let two = Catalog::open(store_two.clone(), objects, "memory:///wh", "wh").expect("open");
    let ns = vec!["db".to_string()];
    one.create_namespace(ns.clone(), HashMap::new()).await.expect("namespace");
    let t = one.create_table(&ns, create("t")).await.expect("t");
    assert_eq!(two.list_tables(&ns).await.expect("list"), vec!["t".to_string()], "the other catalog sees the new table");
    assert!(matches!(two.create_table(&ns, create("t")).await, Err(CatalogError::TableExists(_))));
    assert_eq!(two.load_table(&ns, "t").await.expect("t").metadata_location, t.metadata_location);
    // One commits while two still holds the version before it: two's commit is refused.
    store_two.stale.store(true, std::sync::atomic::Ordering::Relaxed);
    let uuid = t.metadata.uuid();
    one.commit(vec![(ns.clone(), "t".into(), vec![TableRequirement::UuidMatch { uuid }], vec![set_prop("by", "one")])]).await.expect("one");
    let refused = two.commit(vec![(ns.clone(), "t".into(), vec![TableRequirement::UuidMatch { uuid }], vec![set_prop("by", "two")])]).await;
    assert!(matches!(refused, Err(CatalogError::CommitFailed(_))), "{refused:?}");
    store_two.stale.store(false, std::sync::atomic::Ordering::Relaxed);
    let now = two.load_table(&ns, "t").await.expect("t");
    assert_eq!(now.metadata.properties().get("by").map(String::as_str), Some("one"), "two reads one's commit, not its own");
    // Committed again on what it now read, two's commit lands.
    two.commit(vec![(ns.clone(), "t".into(), vec![TableRequirement::UuidMatch { uuid }], vec![set_prop("by", "two")])]).await.expect("two");
    assert_eq!(one.load_table(&ns, "t").await.expect("t").metadata.properties().get("by").map(String::as_str), Some("two"));
}

/// The tables' metadata files in the object store.
async fn metadata_files(objects: &Arc<dyn ObjectStore>) -> Vec<String> {
    object_paths(objects).await.into_iter().filter(|p| p.ends_with(".metadata.json")).collect()
}

#[tokio::test]
async fn old_metadata_files_are_deleted_only_when_the_table_asks() {
    let (objects, cat, ns) = catalog_with_namespace().await;
    // Iceberg's default: every metadata file stays.
    cat.create_table(&ns, create("kept")).await.expect("kept");
    for i in 0..5 {
        cat.commit(vec![(ns.clone(), "kept".into(), vec![], vec![set_prop("i", &i.to_string())])]).await.expect("commit");
    }
    assert_eq!(metadata_files(&objects).await.len(), 6);
    // Asked to, with a log of 3: the current file and the 3 it logs stay, older ones go.
    let props = HashMap::from([(DELETE_AFTER_COMMIT.to_string(), "true".to_string()), ("write.metadata.previous-versions-max".to_string(), "3".to_string())]);
    cat.create_table(&ns, CreateTable { properties: props, ..create("trimmed") }).await.expect("trimmed");
    for i in 0..10 {
        cat.commit(vec![(ns.clone(), "trimmed".into(), vec![], vec![set_prop("i", &i.to_string())])]).await.expect("commit");
    }
    let t = cat.load_table(&ns, "trimmed").await.expect("load");
    let mut want: Vec<String> = t.metadata.metadata_log().iter().map(|m| m.metadata_file.clone()).chain([t.metadata_location.clone()]).collect();
    assert_eq!(want.len(), 4);
    let mut have: Vec<String> = metadata_files(&objects).await.into_iter().filter(|p| p.contains("/trimmed")).map(|p| format!("memory:///{p}")).collect();
    want.sort();
    have.sort();
    assert_eq!(have, want, "exactly the current file and those its log names");
    assert_eq!(t.metadata.properties().get("i").map(String::as_str), Some("9"));
}
