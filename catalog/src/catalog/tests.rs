//! Catalog tests: create/load/commit, a stale requirement refused, a multi-table commit that is
//! all-or-nothing, and state rebuilt from the store.

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

async fn object_count(objects: &Arc<dyn ObjectStore>) -> usize {
    use futures::TryStreamExt;
    objects.list(None).try_collect::<Vec<_>>().await.expect("list").len()
}

#[tokio::test]
async fn no_table_can_reach_another_tables_files() {
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let cat = Catalog::open(Arc::new(MemoryStore::default()), objects.clone(), "memory:///wh", "wh").expect("open");
    let ns = vec!["db".to_string()];
    cat.create_namespace(ns.clone(), HashMap::new()).await.expect("namespace");
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
