//! Reading a table's own Parquet files back: the rows (or some columns) of a data file, and the
//! positions each position-delete file removes — for the key index and for compaction.

use std::collections::{HashMap, HashSet};

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use floe_catalog::commit::LiveFile;
use iceberg::io::FileIO;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use crate::error::{Result, TableTopicError};

/// Per delete file (by path): the positions it removes, per data file (by path).
pub type Hits = HashMap<String, HashMap<String, HashSet<i64>>>;

/// The batches of the Parquet file at `path`: every column, or only the top-level `columns`
/// that the file has.
pub async fn read(io: &FileIO, path: &str, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
    reader(io, path, columns).await?.collect::<std::result::Result<Vec<_>, _>>().map_err(TableTopicError::Arrow)
}

/// The batches of the Parquet file at `path`, every column, decoded one at a time as they are
/// taken: the file's bytes are in memory, its rows one batch at a time (compaction's input).
pub async fn read_batches(io: &FileIO, path: &str) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
    Ok(reader(io, path, None).await?.map(|b| b.map_err(TableTopicError::Arrow)))
}

async fn reader(io: &FileIO, path: &str, columns: Option<&[&str]>) -> Result<ParquetRecordBatchReader> {
    let bytes = io.new_input(path)?.read().await?;
    let bad = |e: parquet::errors::ParquetError| TableTopicError::Source(format!("{path}: {e}"));
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(bad)?;
    if let Some(names) = columns {
        let schema = builder.schema().clone();
        let roots: Vec<usize> = names.iter().filter_map(|n| schema.index_of(n).ok()).collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    builder.build().map_err(bad)
}

/// What each of `deletes` (position-delete files) removes.
pub async fn delete_hits(io: &FileIO, deletes: &[&LiveFile]) -> Result<Hits> {
    let mut out: Hits = HashMap::new();
    for f in deletes {
        let hits = out.entry(f.file.file_path().to_string()).or_default();
        for b in read(io, f.file.file_path(), Some(&["file_path", "pos"])).await? {
            let (Some(paths), Some(pos)) = (
                b.column_by_name("file_path").and_then(|c| c.as_string_opt::<i32>()),
                b.column_by_name("pos").and_then(|c| c.as_primitive_opt::<arrow_array::types::Int64Type>()),
            ) else {
                return Err(TableTopicError::Source(format!("{}: not a position-delete file", f.file.file_path())));
            };
            for i in 0..b.num_rows() {
                let path = paths.value(i);
                match hits.get_mut(path) {
                    Some(set) => set.insert(pos.value(i)),
                    None => hits.entry(path.to_string()).or_default().insert(pos.value(i)),
                };
            }
        }
    }
    Ok(out)
}

/// The positions removed from each data file, whichever delete file removes them.
pub fn removed_positions(hits: &Hits) -> HashMap<&str, HashSet<i64>> {
    let mut gone: HashMap<&str, HashSet<i64>> = HashMap::new();
    for per_file in hits.values() {
        for (path, positions) in per_file {
            gone.entry(path.as_str()).or_default().extend(positions);
        }
    }
    gone
}
