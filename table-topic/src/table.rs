//! One Iceberg table as a Table Topic sees it: created on the first rows, its schema evolved when a
//! record brings new columns (old field ids kept, new ones fresh), Parquet files written for it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_select::interleave::interleave_record_batch;
use floe_catalog::catalog::{LoadedTable, Namespace, DELETE_AFTER_COMMIT};
use floe_catalog::files::{write_data_file, NewFile, Placement};
use floe_catalog::{CatalogError, Committer};
use floe_schema::ids::FieldIds;
use iceberg::arrow::{arrow_struct_to_literal, PartitionValueCalculator};
use iceberg::spec::{Literal, Struct};
use iceberg::{TableRequirement, TableUpdate};

use crate::error::{Result, TableTopicError};
use crate::partitioning::{self, PartitionBy};
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

/// Files written from rows, and where each row went: (index into `files`, position in that file),
/// in the order the rows were given.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<NewFile>,
    pub rows: Vec<(usize, i64)>,
}

/// Where the `i`th row of a run of files starting at file `first` lands: (file, position).
fn position(first: usize, i: usize) -> (usize, i64) {
    (first + i / FILE_ROWS_MAX, (i % FILE_ROWS_MAX) as i64)
}

/// A run of rows below this is written as one file: splitting it across writers would make
/// small files for little gain.
const SPLIT_ROWS_MIN: usize = 65_536;

/// How many files an unpartitioned run of `rows` is written as at once: one per core the runtime
/// may use, each of at least `SPLIT_ROWS_MIN` rows.
fn writers_for(rows: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.min(rows / SPLIT_ROWS_MIN).max(1)
}

/// The rows of `batches`, in order, cut into chunks of `rows_max` rows (slices, no copy).
fn split_rows(batches: &[RecordBatch], rows_max: usize) -> Vec<Vec<RecordBatch>> {
    let rows_max = rows_max.max(1);
    let mut chunks = Vec::new();
    let (mut chunk, mut rows) = (Vec::new(), 0);
    for b in batches {
        let mut start = 0;
        while start < b.num_rows() {
            let len = (rows_max - rows).min(b.num_rows() - start);
            chunk.push(b.slice(start, len));
            rows += len;
            start += len;
            if rows == rows_max {
                chunks.push(std::mem::take(&mut chunk));
                rows = 0;
            }
        }
    }
    if rows > 0 {
        chunks.push(chunk);
    }
    chunks
}

/// Rows grouped by their partition value: the partitions in the order first seen, each with its
/// rows in the order added.
pub(crate) struct PartitionGroups<T> {
    pub groups: Vec<(Struct, Vec<T>)>,
    index: HashMap<Struct, usize>,
}

impl<T> Default for PartitionGroups<T> {
    fn default() -> Self {
        PartitionGroups { groups: Vec::new(), index: HashMap::new() }
    }
}

impl<T> PartitionGroups<T> {
    /// Adds `row` under its partition `value`; returns (its group, its place in the group).
    pub fn add(&mut self, value: Option<Literal>, row: T) -> Result<(usize, usize)> {
        let Some(Literal::Struct(key)) = value else {
            return Err(TableTopicError::Schema("a row has no partition value".into()));
        };
        let g = match self.index.get(&key) {
            Some(g) => *g,
            None => {
                self.index.insert(key.clone(), self.groups.len());
                self.groups.push((key, Vec::new()));
                self.groups.len() - 1
            }
        };
        self.groups[g].1.push(row);
        Ok((g, self.groups[g].1.len() - 1))
    }
}

/// Property of a table Floe created for a topic (its value: the topic). Floe manages only
/// tables that carry it: it never adopts a same-named table someone else made.
pub const OWNER_KEY: &str = "floe.topic";
/// The same, for a topic's dead-letter table.
pub const DLQ_OWNER_KEY: &str = "floe.dead-letters-of";

/// A table being written (a clone is a view of the table as loaded, for work beside the loop).
#[derive(Clone)]
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
    /// Opens the table, creating it (and its namespace) with `initial` columns when missing,
    /// partitioned by `partition_by` when those columns are among them.
    pub async fn open_or_create(
        committer: Committer,
        ns: Namespace,
        name: &str,
        initial: &Schema,
        partition_by: &[PartitionBy],
        properties: HashMap<String, String>,
    ) -> Result<Self> {
        let owner = properties.iter().next().map(|(k, v)| (k.clone(), v.clone()));
        let owned = |t: Self| match &owner {
            Some((k, v)) => t.owned_by(k, v),
            None => Ok(t),
        };
        if let Some(t) = Self::open_any(committer.clone(), ns.clone(), name).await? {
            let mut t = owned(t)?;
            t.clean_old_metadata().await?;
            return Ok(t);
        }
        let target = committer.target().clone();
        target.ensure_namespace(&ns).await?;
        let with_ids = FieldIds::default().assign(&table_shape(initial));
        let schema = iceberg::arrow::arrow_schema_to_schema(&with_ids)?;
        let spec = partitioning::spec(partition_by, &schema).ok().filter(|s| !s.fields().is_empty());
        let mut properties = properties;
        properties.insert(DELETE_AFTER_COMMIT.to_string(), "true".to_string());
        let loaded = match target.create(&ns, name, schema, spec, properties).await {
            Ok(t) => t,
            // Created meanwhile (another node, or a retry after an unclear answer).
            Err(CatalogError::TableExists(_)) => target.load(&ns, name).await?,
            Err(e) => return Err(e.into()),
        };
        owned(Self::of(committer, ns, name, loaded)?)
    }

    /// Sets `write.metadata.delete-after-commit.enabled` on a table made before Floe set it at
    /// creation: a table committing every few hundred milliseconds otherwise leaves a metadata
    /// file per commit behind, each the size of its snapshot history (gigabytes within minutes).
    async fn clean_old_metadata(&mut self) -> Result<()> {
        if self.loaded.metadata.properties().contains_key(DELETE_AFTER_COMMIT) {
            return Ok(());
        }
        let updates = HashMap::from([(DELETE_AFTER_COMMIT.to_string(), "true".to_string())]);
        let uuid = self.loaded.metadata.uuid();
        // Refused (changed meanwhile): set on a later open.
        self.commit_metadata(vec![TableRequirement::UuidMatch { uuid }], vec![TableUpdate::SetProperties { updates }]).await?;
        Ok(())
    }

    /// The table, if it carries `key = value` (the property Floe sets when it creates a table
    /// for a topic); an error naming the table otherwise: Floe never writes to, expires or
    /// cleans a table it does not own.
    fn owned_by(self, key: &str, value: &str) -> Result<Self> {
        match self.loaded.metadata.properties().get(key) {
            Some(v) if v == value => Ok(self),
            found => Err(TableTopicError::NotOwned(format!(
                "table {}.{} exists but was not created by Floe for {value} ({key} is {found:?}): Floe leaves it alone; drop or rename it, or set another table name",
                self.ns.join("."),
                self.name
            ))),
        }
    }

    fn of(committer: Committer, ns: Namespace, name: &str, loaded: LoadedTable) -> Result<Self> {
        let arrow = arrow_of(&loaded)?;
        Ok(TableHandle { committer, ns, name: name.to_string(), loaded, arrow })
    }

    /// Opens the table when it exists and carries `owner` (key, value).
    pub async fn open(committer: Committer, ns: Namespace, name: &str, owner: (&str, &str)) -> Result<Option<Self>> {
        match Self::open_any(committer, ns, name).await? {
            Some(t) => t.owned_by(owner.0, owner.1).map(Some),
            None => Ok(None),
        }
    }

    async fn open_any(committer: Committer, ns: Namespace, name: &str) -> Result<Option<Self>> {
        let loaded = match committer.target().load(&ns, name).await {
            Ok(t) => t,
            Err(CatalogError::NoSuchTable(_) | CatalogError::NoSuchNamespace(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Self::of(committer, ns, name, loaded).map(Some)
    }

    /// Reads the table back from the catalog.
    pub async fn reload(&mut self) -> Result<()> {
        self.loaded = self.committer.target().load(&self.ns, &self.name).await?;
        self.arrow = arrow_of(&self.loaded)?;
        Ok(())
    }

    /// Commits a metadata change; the handle then holds the table as committed. `false` when
    /// another writer changed the table first: the handle is reloaded, for the caller to look again.
    async fn commit_metadata(&mut self, requirements: Vec<TableRequirement>, updates: Vec<TableUpdate>) -> Result<bool> {
        match self.committer.target().commit(&self.ns, &self.name, requirements, updates).await {
            Ok(t) => {
                self.loaded = t;
                self.arrow = arrow_of(&self.loaded)?;
                Ok(true)
            }
            Err(CatalogError::CommitFailed(_)) => {
                self.reload().await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
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
            if self.commit_metadata(requirements, updates).await? {
                tracing::info!(table = %self.name, schema_id = self.loaded.metadata.current_schema_id(), "table schema evolved");
                return Ok(());
            }
            if floe_schema::evolve::fits(&self.arrow, &record) {
                return Ok(());
            }
        }
        Err(TableTopicError::Catalog(CatalogError::CommitFailed(format!("{}: the schema kept changing under this writer", self.name))))
    }

    /// Makes the table's default partition spec the one `partition_by` asks for (a no-op when it
    /// is). Files already written keep their spec. An error names a column the table lacks.
    pub async fn evolve_spec(&mut self, partition_by: &[PartitionBy]) -> Result<()> {
        for _ in 0..3 {
            let meta = self.loaded.metadata.clone();
            let want = partitioning::spec(partition_by, meta.current_schema()).map_err(TableTopicError::Config)?;
            if partitioning::same(meta.default_partition_spec(), &want) {
                return Ok(());
            }
            let requirements = vec![
                TableRequirement::UuidMatch { uuid: meta.uuid() },
                TableRequirement::DefaultSpecIdMatch { default_spec_id: meta.default_partition_spec_id() },
                TableRequirement::LastAssignedPartitionIdMatch { last_assigned_partition_id: meta.last_partition_id() },
            ];
            let updates = vec![TableUpdate::AddSpec { spec: want }, TableUpdate::SetDefaultSpec { spec_id: -1 }];
            if self.commit_metadata(requirements, updates).await? {
                tracing::info!(table = %self.name, spec_id = self.loaded.metadata.default_partition_spec_id(), "table partition spec evolved");
                return Ok(());
            }
        }
        Err(TableTopicError::Catalog(CatalogError::CommitFailed(format!("{}: the partition spec kept changing under this writer", self.name))))
    }

    /// Where a new data file goes.
    pub fn new_file_location(&self, prefix: &str) -> String {
        format!("{}/data/{prefix}-{}.parquet", self.loaded.metadata.location().trim_end_matches('/'), uuid::Uuid::new_v4())
    }

    /// Writes rows (already in the table's schema) as data files of the default partition spec:
    /// one run of files per partition, `FILE_ROWS_MAX` rows each at most. The rows are those of
    /// `batches` in order, or the (batch, row) pairs `select` picks; unpartitioned and unpicked,
    /// they are written as they are, without a copy.
    pub async fn write(&self, prefix: &str, batches: &[RecordBatch], select: Option<&[(usize, usize)]>) -> Result<Written> {
        let meta = &self.loaded.metadata;
        let spec = meta.default_partition_spec();
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        let mut out = Written::default();
        if spec.is_unpartitioned() {
            let placement = Placement { partition_spec_id: spec.spec_id(), partition: Struct::empty() };
            let rows = match select {
                None => {
                    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
                    let writers = writers_for(total);
                    if writers > 1 {
                        let sizes = self.write_split(prefix, batches, &placement, writers, &mut out.files).await?;
                        out.rows = sizes.iter().enumerate().flat_map(|(f, n)| (0..*n).map(move |i| (f, i as i64))).collect();
                        return Ok(out);
                    }
                    self.write_run(prefix, batches, &placement, &mut out.files).await?;
                    total
                }
                Some(at) => {
                    let picked = interleave_record_batch(&refs, at)?;
                    self.write_run(prefix, std::slice::from_ref(&picked), &placement, &mut out.files).await?;
                    at.len()
                }
            };
            out.rows = (0..rows).map(|i| position(0, i)).collect();
            return Ok(out);
        }
        // Each row's partition, then the rows of each partition in their order.
        let calc = PartitionValueCalculator::try_new(spec, meta.current_schema())?;
        let mut values = batches.iter().map(|b| Ok(arrow_struct_to_literal(&calc.calculate(b)?, calc.partition_type())?)).collect::<Result<Vec<_>>>()?;
        let every: Vec<(usize, usize)>;
        let at = match select {
            Some(at) => at,
            None => {
                every = batches.iter().enumerate().flat_map(|(bi, b)| (0..b.num_rows()).map(move |ri| (bi, ri))).collect();
                &every
            }
        };
        let mut groups = PartitionGroups::default();
        let mut row_group: Vec<(usize, usize)> = Vec::with_capacity(at.len());
        for &(bi, ri) in at {
            row_group.push(groups.add(values.get_mut(bi).and_then(|v| v.get_mut(ri)).and_then(Option::take), (bi, ri))?);
        }
        let mut first_file = Vec::with_capacity(groups.groups.len());
        for (key, rows) in groups.groups {
            let picked = interleave_record_batch(&refs, &rows)?;
            let placement = Placement { partition_spec_id: spec.spec_id(), partition: key };
            first_file.push(out.files.len());
            self.write_run(prefix, std::slice::from_ref(&picked), &placement, &mut out.files).await?;
        }
        out.rows = row_group.into_iter().map(|(g, i)| position(first_file[g], i)).collect();
        Ok(out)
    }

    /// Writes one partition's rows as files of `FILE_ROWS_MAX` rows (the last one fewer), in
    /// order, without copying them into one batch first.
    async fn write_run(&self, prefix: &str, batches: &[RecordBatch], placement: &Placement, files: &mut Vec<NewFile>) -> Result<()> {
        for chunk in split_rows(batches, FILE_ROWS_MAX) {
            files.extend(self.write_file(prefix, &chunk, placement).await?);
        }
        Ok(())
    }

    /// Writes the rows of `batches` as files of about equal rows (at most `FILE_ROWS_MAX`), up to
    /// `writers` encoded and uploaded at once, each on a task of its own so that they take the
    /// runtime's cores; returns each file's rows, in order.
    async fn write_split(&self, prefix: &str, batches: &[RecordBatch], placement: &Placement, writers: usize, files: &mut Vec<NewFile>) -> Result<Vec<usize>> {
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let count = writers.max(total.div_ceil(FILE_ROWS_MAX));
        let chunks = split_rows(batches, total.div_ceil(count));
        let sizes: Vec<usize> = chunks.iter().map(|c| c.iter().map(RecordBatch::num_rows).sum()).collect();
        let schema = self.loaded.metadata.current_schema().clone();
        let mut chunks = chunks.into_iter();
        loop {
            let wave: Vec<_> = chunks
                .by_ref()
                .take(writers)
                .map(|chunk| {
                    let (io, location, schema, placement) = (self.committer.io().clone(), self.new_file_location(prefix), schema.clone(), placement.clone());
                    tokio::spawn(async move { write_data_file(&io, &location, schema, &chunk, &placement).await })
                })
                .collect();
            if wave.is_empty() {
                break;
            }
            for task in wave {
                let file = task.await.map_err(|e| TableTopicError::Internal(format!("a data file writer failed: {e}")))??;
                files.extend(file);
            }
        }
        Ok(sizes)
    }

    async fn write_file(&self, prefix: &str, chunk: &[RecordBatch], placement: &Placement) -> Result<Option<NewFile>> {
        let schema = self.loaded.metadata.current_schema().clone();
        Ok(write_data_file(self.committer.io(), &self.new_file_location(prefix), schema, chunk, placement).await?)
    }

    /// The committer.
    pub fn committer(&self) -> &Committer {
        &self.committer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array};

    #[test]
    fn split_rows_cuts_runs_into_equal_chunks_keeping_every_row_in_order() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = |from: i64, n: i64| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(from..from + n))]).expect("batch");
        let batches = [batch(0, 7), batch(7, 1), batch(8, 12)];
        let chunks = split_rows(&batches, 6);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.iter().map(RecordBatch::num_rows).sum()).collect();
        assert_eq!(sizes, vec![6, 6, 6, 2]);
        let rows: Vec<i64> = chunks
            .iter()
            .flatten()
            .flat_map(|b| {
                let col = b.column(0).as_any().downcast_ref::<Int64Array>().expect("ints").clone();
                (0..col.len()).map(move |i| col.value(i))
            })
            .collect();
        assert_eq!(rows, (0..20).collect::<Vec<_>>());
        assert!(split_rows(&[], 6).is_empty());
    }

    #[test]
    fn small_runs_are_one_file_and_large_ones_one_per_core() {
        assert_eq!(writers_for(SPLIT_ROWS_MIN - 1), 1);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(writers_for(SPLIT_ROWS_MIN * 64), cores.min(64));
    }
}

#[cfg(test)]
mod evolve_tests {
    use super::*;
    use floe_catalog::catalog::Catalog;
    use floe_catalog::store::MemoryStore;
    use floe_catalog::ObjectStorage;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn a_run_the_table_already_takes_commits_no_schema() {
        let objects: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
        let wh = "memory:///wh";
        let catalog = Arc::new(Catalog::open(Arc::new(MemoryStore::default()), objects.clone(), wh, "wh").expect("catalog"));
        let committer = Committer::new(catalog, ObjectStorage::new(objects, wh, "wh").file_io());
        let mut inference = floe_schema::json::JsonInference::default();
        let doc = floe_schema::json_doc::Doc::parse(br#"{"id": 1, "s": "x", "l": 1700000000000, "d": 0.5, "b": true, "tags": ["a"]}"#).expect("doc");
        inference.observe_doc(&doc).expect("fits");
        // A run as the coordinator fits it: the system columns (a header map among them), then the values.
        let mut fields = crate::system::fields();
        fields.extend(inference.schema().fields().iter().map(|f| f.as_ref().clone()));
        let run = Schema::new(fields);
        let owner = HashMap::from([(OWNER_KEY.to_string(), "t".to_string())]);
        let mut t =
            TableHandle::open_or_create(committer, vec!["default".into()], "t", &Schema::new(crate::system::fields()), &[], owner).await.expect("table");
        t.evolve(&run).await.expect("evolve");
        let evolved = t.loaded.metadata_location.clone();
        for _ in 0..3 {
            t.evolve(&run).await.expect("evolve again");
        }
        assert_eq!(t.loaded.metadata_location, evolved, "the same run again is no metadata commit");
    }
}
