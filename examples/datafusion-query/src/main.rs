//! Example: opens a Floe Table Topic through the Iceberg REST catalog and runs SQL on it with DataFusion.
//!
//! ```text
//! cargo run -p floe-example-datafusion-query -- --sql "SELECT count(*) FROM orders"
//! ```
//!
//! Tables are registered as catalog `floe`, one schema per namespace; `--namespace` (default
//! `default`) is the schema unqualified names resolve in. Deletes written by Floe (position delete
//! files) are applied by iceberg-rust's reader, so an upsert table reads as its latest state.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use datafusion::arrow::json::ArrayWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{SessionConfig, SessionContext};
use floe_catalog::ObjectStorage;
use iceberg::CatalogBuilder;
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_datafusion::IcebergCatalogProvider;
use object_store::local::LocalFileSystem;

/// How results are printed.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// A human table.
    Table,
    /// One JSON array of row objects.
    Json,
}

#[derive(Parser)]
#[command(about = "SQL with DataFusion on Floe's Iceberg tables, through the REST catalog")]
struct Args {
    /// The Iceberg REST catalog (Floe's built-in one by default).
    #[arg(long, default_value = "http://127.0.0.1:8181")]
    catalog: String,
    /// Bearer token for the catalog, when it asks for one.
    #[arg(long, env = "FLOE_CATALOG_TOKEN")]
    token: Option<String>,
    /// The object store holding the warehouse, written as Floe's `--object-store`
    /// (`s3://bucket?endpoint=http://127.0.0.1:9000`; credentials from `AWS_*`). Default: local files.
    #[arg(long)]
    object_store: Option<String>,
    /// The namespace unqualified table names resolve in.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The query.
    #[arg(long)]
    sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("datafusion-query: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<String, Box<dyn std::error::Error>> {
    let storage = storage(args.object_store.as_deref())?;
    let mut props = HashMap::from([("uri".to_string(), args.catalog.clone())]);
    if let Some(t) = &args.token {
        props.insert("token".into(), t.clone());
    }
    let client = RestCatalogBuilder::default().with_storage_factory(storage.factory()).load("floe", props).await?;
    let provider = IcebergCatalogProvider::try_new(Arc::new(client)).await?;
    let config = SessionConfig::new().with_default_catalog_and_schema("floe", &args.namespace);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_catalog("floe", Arc::new(provider));
    let batches = ctx.sql(&args.sql).await?.collect().await?;
    Ok(match args.format {
        Format::Table => pretty_format_batches(&batches)?.to_string(),
        Format::Json => json(&batches)?,
    })
}

/// Floe's file IO over the named object store: locations `s3://bucket/…` map into that bucket,
/// `file:///…` onto the local filesystem.
fn storage(url: Option<&str>) -> Result<ObjectStorage, Box<dyn std::error::Error>> {
    match url {
        None => Ok(ObjectStorage::new(Arc::new(LocalFileSystem::new()), "file://", "")),
        Some(u) => {
            let parsed = url::Url::parse(u)?;
            let root = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or_default());
            Ok(ObjectStorage::new(floe_s3stream::store::open_raw(u)?, &root, ""))
        }
    }
}

fn json(batches: &[RecordBatch]) -> Result<String, Box<dyn std::error::Error>> {
    let mut w = ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    w.write_batches(&refs)?;
    w.finish()?;
    let out = w.into_inner();
    Ok(if out.is_empty() { "[]".to_string() } else { String::from_utf8(out)? })
}
