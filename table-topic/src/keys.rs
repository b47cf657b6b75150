//! Upsert keys: the id columns of a row as one string, the operation of a row, and the index from
//! key to the (data file, position) of its live row — rebuilt from the table, so removals become
//! position deletes every reader applies.
//!
//! Limits: the index holds every live key in memory (key text + an Arc'd file path + a position,
//! roughly 60 bytes + the key); past `KEYS_MAX` the table pauses rather than lose a delete.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use floe_catalog::commit::LiveFile;
use floe_catalog::files::Placement;
use iceberg::io::FileIO;
use iceberg::spec::DataContentType;

use crate::error::{Result, TableTopicError};
use crate::files;

/// Live keys one table may index at most.
pub const KEYS_MAX: usize = 20_000_000;

/// Where the live row of each key is.
#[derive(Default)]
pub struct KeyIndex {
    pub rows: HashMap<String, (Arc<str>, i64)>,
    /// The partition (and spec) of each data file, for the position deletes that hit it.
    pub placements: HashMap<Arc<str>, Placement>,
}

/// The column at a dotted path (`_cdc.op`), if there is one.
pub fn column_at(batch: &RecordBatch, path: &str) -> Option<ArrayRef> {
    let mut parts = path.split('.');
    let mut col = batch.column_by_name(parts.next()?)?.clone();
    for p in parts {
        col = col.as_struct_opt()?.column_by_name(p)?.clone();
    }
    Some(col)
}

/// The key of each row (`None` when an id column is null or missing: that row cannot be keyed).
pub fn row_keys(batch: &RecordBatch, ids: &[String]) -> Result<Vec<Option<String>>> {
    let Some(cols) = ids.iter().map(|c| column_at(batch, c)).collect::<Option<Vec<ArrayRef>>>() else {
        return Ok(vec![None; batch.num_rows()]);
    };
    let options = FormatOptions::default();
    let fmts: Vec<ArrayFormatter> = cols.iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<std::result::Result<_, _>>()?;
    Ok((0..batch.num_rows())
        .map(|i| {
            if cols.iter().any(|c| c.is_null(i)) {
                return None;
            }
            Some(fmts.iter().map(|f| f.value(i).to_string()).collect::<Vec<_>>().join("\u{1f}"))
        })
        .collect())
}

/// True for rows whose operation (at `path`) is a delete (`D`/`d`).
pub fn deletes(batch: &RecordBatch, path: Option<&str>) -> Vec<bool> {
    let Some(col) = path.and_then(|p| column_at(batch, p)) else { return vec![false; batch.num_rows()] };
    let Some(s) = col.as_string_opt::<i32>() else { return vec![false; batch.num_rows()] };
    (0..batch.num_rows()).map(|i| !s.is_null(i) && s.value(i).eq_ignore_ascii_case("d")).collect()
}

/// The key a (JSON) Kafka key names: an object's id fields (Debezium's `payload` if present), or
/// a scalar for a single id column.
pub fn key_of_kafka_key(key: &[u8], ids: &[String]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(key).ok()?;
    let json = match json.get("payload") {
        Some(p) if json.get("schema").is_some() => p.clone(),
        _ => json,
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    };
    match &json {
        serde_json::Value::Object(o) => ids.iter().map(|c| o.get(c).and_then(text)).collect::<Option<Vec<_>>>().map(|v| v.join("\u{1f}")),
        other if ids.len() == 1 => text(other),
        _ => None,
    }
}

/// The field names of a JSON Kafka key (for `[_from_debezium_key_]`).
pub fn key_fields(key: &[u8]) -> Option<Vec<String>> {
    let json: serde_json::Value = serde_json::from_slice(key).ok()?;
    let json = match json.get("payload") {
        Some(p) if json.get("schema").is_some() => p.clone(),
        _ => json,
    };
    Some(json.as_object()?.keys().cloned().collect())
}

impl KeyIndex {
    /// The index of a table's live rows: every data file's id columns, minus rows a position
    /// delete removes; newer files win.
    pub async fn rebuild(io: &FileIO, live: &[LiveFile], ids: &[String]) -> Result<KeyIndex> {
        let delete_files: Vec<&LiveFile> = live.iter().filter(|f| f.file.content_type() == DataContentType::PositionDeletes).collect();
        let hits = files::delete_hits(io, &delete_files).await?;
        let deleted = files::removed_positions(&hits);
        let mut data: Vec<&LiveFile> = live.iter().filter(|f| f.file.content_type() == DataContentType::Data).collect();
        data.sort_by_key(|f| f.sequence_number);
        let top: Vec<&str> = ids.iter().map(|c| c.split('.').next().unwrap_or(c)).collect();
        let mut index = KeyIndex::default();
        for f in data {
            let path: Arc<str> = Arc::from(f.file.file_path());
            index.placements.insert(path.clone(), Placement::of(f.partition_spec_id, &f.file));
            let gone = deleted.get(f.file.file_path());
            let mut pos = 0i64;
            for b in files::read(io, f.file.file_path(), Some(&top)).await? {
                for k in row_keys(&b, ids)? {
                    if let Some(k) = k {
                        if !gone.is_some_and(|g| g.contains(&pos)) {
                            index.rows.insert(k, (path.clone(), pos));
                        }
                    }
                    pos += 1;
                }
            }
            if index.rows.len() > KEYS_MAX {
                return Err(TableTopicError::Config(format!("more than {KEYS_MAX} live keys: the upsert index limit")));
            }
        }
        Ok(index)
    }
}
