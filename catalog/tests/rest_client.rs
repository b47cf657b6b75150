//! The iceberg-rust `RestCatalog` client against the built-in REST catalog server on loopback:
//! namespace and table created, a data file fast-appended through the client's own transaction,
//! the table loaded back and scanned.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use floe_catalog::files::{write_data_file, Placement};
use floe_catalog::server::{serve, ServerConfig};
use floe_catalog::store::MemoryStore;
use floe_catalog::{Catalog, ObjectStorage};
use futures::TryStreamExt;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog as _, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::RestCatalogBuilder;
use object_store::memory::InMemory;
use object_store::ObjectStore;

const WH: &str = "s3://bucket/warehouse";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iceberg_rust_rest_client_creates_appends_and_loads() {
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let catalog = Arc::new(Catalog::open(Arc::new(MemoryStore::default()), objects.clone(), WH, "warehouse").expect("catalog"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        catalog,
        ServerConfig { client_properties: HashMap::new(), vended_credentials: HashMap::new(), token: None, oauth: None, access: None },
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    let client = RestCatalogBuilder::default()
        .with_storage_factory(ObjectStorage::new(objects.clone(), WH, "warehouse").factory())
        .load("floe", HashMap::from([("uri".to_string(), format!("http://{addr}"))]))
        .await
        .expect("client");
    let ns = NamespaceIdent::new("shop".into());
    client.create_namespace(&ns, HashMap::new()).await.expect("namespace");
    assert!(client.namespace_exists(&ns).await.expect("exists"));
    let schema = Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "item", Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .expect("schema");
    let table = client.create_table(&ns, TableCreation::builder().name("orders".into()).schema(schema).build()).await.expect("create");
    assert!(table.metadata().location().starts_with(WH), "{}", table.metadata().location());

    // Write one data file through the client's FileIO, then commit it with the client's own transaction.
    let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema()).expect("arrow"));
    let batch = RecordBatch::try_new(arrow, vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(StringArray::from(vec!["a", "b", "c"]))]).expect("batch");
    let location = format!("{}/data/client-1.parquet", table.metadata().location());
    let file = write_data_file(table.file_io(), &location, table.metadata().current_schema().clone(), &[batch], &Placement::unpartitioned())
        .await
        .expect("write")
        .expect("a file")
        .file;
    let tx = Transaction::new(&table);
    let tx = tx.fast_append().add_data_files(vec![file]).apply(tx).expect("apply");
    tx.commit(&client).await.expect("commit");

    let ident = TableIdent::new(ns.clone(), "orders".into());
    let loaded = client.load_table(&ident).await.expect("load");
    assert_eq!(loaded.metadata().snapshots().count(), 1);
    let batches: Vec<RecordBatch> = loaded.scan().build().expect("scan").to_arrow().await.expect("stream").try_collect().await.expect("rows");
    let mut rows: Vec<(i64, String)> = Vec::new();
    for b in &batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().expect("ids");
        let items = b.column(1).as_any().downcast_ref::<StringArray>().expect("items");
        rows.extend((0..b.num_rows()).map(|i| (ids.value(i), items.value(i).to_string())));
        assert_eq!(ids.null_count(), 0);
    }
    rows.sort();
    assert_eq!(rows, vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]);
    assert!(client.table_exists(&ident).await.expect("exists"));
    assert!(!client.table_exists(&TableIdent::new(ns, "nope".into())).await.expect("exists"));
    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}
