//! Parquet data files and position-delete files, written through the iceberg crate's Parquet writer
//! (so column statistics and field ids are what every reader expects).

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use iceberg::io::FileIO;
use iceberg::spec::{DataContentType, DataFile, NestedField, PrimitiveType, Schema, SchemaRef, Struct, Type};
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriter, ParquetWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{CatalogError, Result};

/// Field id of `file_path` in a position-delete file (reserved by the spec).
pub const DELETE_FILE_PATH_ID: i32 = 2_147_483_546;
/// Field id of `pos` in a position-delete file (reserved by the spec).
pub const DELETE_POS_ID: i32 = 2_147_483_545;

/// Where a file goes in the table's partitioning.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Placement {
    pub partition_spec_id: i32,
    pub partition: Struct,
}

impl Placement {
    /// An unpartitioned file (spec 0).
    pub fn unpartitioned() -> Self {
        Placement { partition_spec_id: 0, partition: Struct::empty() }
    }

    /// Where `file`, written for spec `partition_spec_id`, is.
    pub fn of(partition_spec_id: i32, file: &DataFile) -> Self {
        Placement { partition_spec_id, partition: file.partition().clone() }
    }
}

/// A file just written, with the partition spec it was written for (a `DataFile` does not say,
/// and a commit puts each file in a manifest of its own spec).
#[derive(Debug, Clone)]
pub struct NewFile {
    pub file: DataFile,
    pub partition_spec_id: i32,
}

fn err(location: &str) -> impl Fn(iceberg::Error) -> CatalogError + '_ {
    move |e| CatalogError::Storage(format!("{location}: {e}"))
}

/// The Parquet writer properties Floe writes `batches` with: zstd, and a dictionary only for the
/// columns whose values repeat (`dictionary.rs`).
fn props(batches: &[RecordBatch]) -> WriterProperties {
    crate::dictionary::adapt(WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())), batches).build()
}

/// Writes `batches` (their Arrow fields carry the schema's field ids) as one Parquet data file at
/// `location`. `None` when there are no rows (nothing is left behind).
pub async fn write_data_file(io: &FileIO, location: &str, schema: SchemaRef, batches: &[RecordBatch], placement: &Placement) -> Result<Option<NewFile>> {
    write(io, location, schema, batches, DataContentType::Data, placement, None).await
}

/// The schema of a position-delete file.
pub fn position_delete_schema() -> Result<SchemaRef> {
    let schema = Schema::builder()
        .with_fields(vec![
            Arc::new(NestedField::required(DELETE_FILE_PATH_ID, "file_path", Type::Primitive(PrimitiveType::String))),
            Arc::new(NestedField::required(DELETE_POS_ID, "pos", Type::Primitive(PrimitiveType::Long))),
        ])
        .build()
        .map_err(err("position delete schema"))?;
    Ok(Arc::new(schema))
}

/// Writes a position-delete file: `rows` are (data file path, row position) and are sorted here,
/// as the spec asks. `None` when there are no rows.
pub async fn write_position_deletes(io: &FileIO, location: &str, mut rows: Vec<(String, i64)>, placement: &Placement) -> Result<Option<NewFile>> {
    if rows.is_empty() {
        return Ok(None);
    }
    rows.sort_unstable();
    rows.dedup();
    let schema = position_delete_schema()?;
    let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).map_err(err(location))?);
    let referenced = (rows.first().map(|r| &r.0) == rows.last().map(|r| &r.0)).then(|| rows[0].0.clone());
    let paths: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str())));
    let positions: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1)));
    let batch = RecordBatch::try_new(arrow_schema, vec![paths, positions]).map_err(|e| CatalogError::Storage(format!("{location}: {e}")))?;
    write(io, location, schema, &[batch], DataContentType::PositionDeletes, placement, referenced).await
}

async fn write(
    io: &FileIO,
    location: &str,
    schema: SchemaRef,
    batches: &[RecordBatch],
    content: DataContentType,
    placement: &Placement,
    referenced: Option<String>,
) -> Result<Option<NewFile>> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(None);
    }
    let mut file = FileStream::open(io, location, schema, batches, content, placement.clone(), referenced).await?;
    for b in batches {
        file.write(b).await?;
    }
    file.close().await
}

/// Opens a Parquet data file at `location` to be written a batch at a time, with the writer
/// properties `sample` (the first rows) calls for.
pub async fn open_data_file(io: &FileIO, location: &str, schema: SchemaRef, sample: &[RecordBatch], placement: Placement) -> Result<FileStream> {
    FileStream::open(io, location, schema, sample, DataContentType::Data, placement, None).await
}

/// A file written a batch at a time: the Parquet writer holds only the row group in progress,
/// so the file's rows need not all be in memory at once (compaction's output).
pub struct FileStream {
    location: String,
    writer: ParquetWriter,
    content: DataContentType,
    placement: Placement,
    referenced: Option<String>,
    rows: usize,
}

impl FileStream {
    async fn open(
        io: &FileIO,
        location: &str,
        schema: SchemaRef,
        sample: &[RecordBatch],
        content: DataContentType,
        placement: Placement,
        referenced: Option<String>,
    ) -> Result<Self> {
        let out = io.new_output(location).map_err(err(location))?;
        let writer = ParquetWriterBuilder::new(props(sample), schema).build(out).await.map_err(err(location))?;
        Ok(FileStream { location: location.to_string(), writer, content, placement, referenced, rows: 0 })
    }

    /// Appends `batch` (its Arrow fields carry the schema's field ids).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).await.map_err(err(&self.location))?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Where the file goes.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Finishes the file; `None` when it holds no rows.
    pub async fn close(self) -> Result<Option<NewFile>> {
        let FileStream { location, writer, content, placement, referenced, .. } = self;
        let mut built = writer.close().await.map_err(err(&location))?;
        let Some(mut b) = built.pop() else { return Ok(None) };
        b.content(content).partition_spec_id(placement.partition_spec_id).partition(placement.partition);
        if let Some(r) = referenced {
            b.referenced_data_file(Some(r));
        }
        let file = b.build().map_err(|e| CatalogError::Storage(format!("{location}: {e}")))?;
        Ok(Some(NewFile { file, partition_spec_id: placement.partition_spec_id }))
    }
}
