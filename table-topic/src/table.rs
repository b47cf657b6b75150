//! One Iceberg table as a Table Topic sees it: created on the first rows, its schema evolved when a
//! record brings new columns (old field ids kept, new ones fresh), Parquet files written for it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use floe_catalog::catalog::{LoadedTable, Namespace};
use floe_catalog::files::{write_data_file, Placement};
use floe_catalog::{CatalogError, Committer};
use floe_schema::ids::FieldIds;
use iceberg::spec::DataFile;
use iceberg::{TableRequirement, TableUpdate};

use crate::error::{Result, TableTopicError};
use crate::rows::all_nullable;

/// Rows per Parquet file written at most in one go (files also roll on commit).
pub const FILE_ROWS_MAX: usize = 4 << 20;

/// Types as the iceberg crate reads them back (timestamps in microseconds with UTC as "+00:00",
/// binary as LargeBinary), so a record's schema compares equal to the table's.
pub fn normalize(dt: &DataType) -> DataType {
    match dt {
        DataType::Timestamp(_, Some(_)) => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        // The iceberg crate reads binary columns back as LargeBinary.
        DataType::Binary => DataType::LargeBinary,
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| normalize_field(f)).collect()),
        DataType::List(f) => DataType::List(Arc::new(normalize_field(f))),
        DataType::Map(f, s) => DataType::Map(Arc::new(normalize_field(f)), *s),
        other => other.clone(),
    }
}

fn normalize_field(f: &Field) -> Field {
    Field::new(f.name(), all_nullable(&normalize(f.data_type())), f.is_nullable()).with_metadata(f.metadata().clone())
}

/// A schema as a table takes it: normalized and nullable throughout.
pub fn table_shape(s: &Schema) -> Schema {
    Schema::new(s.fields().iter().map(|f| normalize_field(f).with_nullable(true)).collect::<Vec<_>>())
}

/// A table being written.
pub struct TableHandle {
    committer: Committer,
    pub ns: Namespace,
    pub name: String,
    pub loaded: LoadedTable,
    /// The current schema in Arrow, with field ids.
    pub arrow: SchemaRef,
}

fn arrow_of(loaded: &LoadedTable) -> Result<SchemaRef> {
    Ok(Arc::new(iceberg::arrow::schema_to_arrow_schema(loaded.metadata.current_schema())?))
}

impl TableHandle {
    /// Opens the table, creating it (and its namespace) with `initial` columns when missing.
    pub async fn open_or_create(committer: Committer, ns: Namespace, name: &str, initial: &Schema, properties: HashMap<String, String>) -> Result<Self> {
        let target = committer.target().clone();
        let loaded = match target.load(&ns, name).await {
            Ok(t) => t,
            Err(CatalogError::NoSuchTable(_) | CatalogError::NoSuchNamespace(_)) => {
                target.ensure_namespace(&ns).await?;
                let with_ids = FieldIds::default().assign(&table_shape(initial));
                let schema = iceberg::arrow::arrow_schema_to_schema(&with_ids)?;
                match target.create(&ns, name, schema, None, properties).await {
                    Ok(t) => t,
                    // Created meanwhile (another node, or a retry after an unclear answer).
                    Err(CatalogError::TableExists(_)) => target.load(&ns, name).await?,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let arrow = arrow_of(&loaded)?;
        Ok(TableHandle { committer, ns, name: name.to_string(), loaded, arrow })
    }

    /// Reads the table back from the catalog.
    pub async fn reload(&mut self) -> Result<()> {
        self.loaded = self.committer.target().load(&self.ns, &self.name).await?;
        self.arrow = arrow_of(&self.loaded)?;
        Ok(())
    }

    /// Makes the table's schema take `record` (a no-op when it already does). A schema that
    /// cannot evolve is [`TableTopicError::Schema`].
    pub async fn evolve(&mut self, record: &Schema) -> Result<()> {
        let record = table_shape(record);
        if floe_schema::evolve::fits(&self.arrow, &record) {
            return Ok(());
        }
        for _ in 0..3 {
            let meta = self.loaded.metadata.clone();
            let mut ids = FieldIds::from_schema(&self.arrow, meta.last_column_id());
            let evolved = floe_schema::evolve::evolve(&self.arrow, &record, &mut ids).map_err(|e| TableTopicError::Schema(e.to_string()))?;
            let schema = iceberg::arrow::arrow_schema_to_schema(&table_shape(&evolved))?;
            let requirements = vec![
                TableRequirement::UuidMatch { uuid: meta.uuid() },
                TableRequirement::CurrentSchemaIdMatch { current_schema_id: meta.current_schema_id() },
                TableRequirement::LastAssignedFieldIdMatch { last_assigned_field_id: meta.last_column_id() },
            ];
            let updates = vec![TableUpdate::AddSchema { schema }, TableUpdate::SetCurrentSchema { schema_id: -1 }];
            match self.committer.target().commit(&self.ns, &self.name, requirements, updates).await {
                Ok(t) => {
                    self.loaded = t;
                    self.arrow = arrow_of(&self.loaded)?;
                    tracing::info!(table = %self.name, schema_id = self.loaded.metadata.current_schema_id(), "table schema evolved");
                    return Ok(());
                }
                Err(CatalogError::CommitFailed(_)) => {
                    self.reload().await?;
                    if floe_schema::evolve::fits(&self.arrow, &record) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(TableTopicError::Catalog(CatalogError::CommitFailed(format!("{}: the schema kept changing under this writer", self.name))))
    }

    /// Where a new data file goes.
    pub fn new_file_location(&self, prefix: &str) -> String {
        format!("{}/data/{prefix}-{}.parquet", self.loaded.metadata.location().trim_end_matches('/'), uuid::Uuid::new_v4())
    }

    /// Writes `batches` (already in the table's schema) as data files of `FILE_ROWS_MAX` rows each
    /// (the last one fewer), in order, without copying them into one batch first.
    pub async fn write(&self, prefix: &str, batches: &[RecordBatch]) -> Result<Vec<DataFile>> {
        let mut out = Vec::new();
        let mut chunk: Vec<RecordBatch> = Vec::new();
        let mut rows = 0;
        for b in batches {
            let mut start = 0;
            while start < b.num_rows() {
                let len = (FILE_ROWS_MAX - rows).min(b.num_rows() - start);
                chunk.push(b.slice(start, len));
                rows += len;
                start += len;
                if rows == FILE_ROWS_MAX {
                    out.extend(self.write_file(prefix, &std::mem::take(&mut chunk)).await?);
                    rows = 0;
                }
            }
        }
        if rows > 0 {
            out.extend(self.write_file(prefix, &chunk).await?);
        }
        Ok(out)
    }

    async fn write_file(&self, prefix: &str, chunk: &[RecordBatch]) -> Result<Option<DataFile>> {
        let schema = self.loaded.metadata.current_schema().clone();
        Ok(write_data_file(self.committer.io(), &self.new_file_location(prefix), schema, chunk, &Placement::unpartitioned()).await?)
    }

    /// The committer.
    pub fn committer(&self) -> &Committer {
        &self.committer
    }
}
