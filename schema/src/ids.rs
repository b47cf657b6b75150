//! Iceberg field ids on Arrow fields (metadata `PARQUET:field_id`), stable across schema versions:
//! a field keeps its id as long as its path (`a.b`, `l.element`, `m.key`, `m.value`) is the same,
//! and ids are never reused.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};
use serde::{Deserialize, Serialize};

/// The metadata key iceberg-rust and Parquet writers read field ids from.
pub const FIELD_ID_KEY: &str = "PARQUET:field_id";

/// The ids given so far, by path; persisted with the table so restarts keep them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldIds {
    by_path: HashMap<String, i32>,
    last_id: i32,
}

impl FieldIds {
    /// The largest id given so far.
    pub fn last_id(&self) -> i32 {
        self.last_id
    }

    /// The id of a path, if it has one.
    pub fn get(&self, path: &str) -> Option<i32> {
        self.by_path.get(path).copied()
    }

    /// The ids an existing schema carries (a table's, read back), so new columns get fresh ones.
    /// `last_id` is the table's last assigned id, which may exceed every id still in the schema.
    pub fn from_schema(schema: &Schema, last_id: i32) -> Self {
        fn walk(ids: &mut FieldIds, f: &Field, parent: &str) {
            let path = if parent.is_empty() { f.name().clone() } else { format!("{parent}.{}", f.name()) };
            if let Some(id) = field_id(f) {
                ids.by_path.insert(path.clone(), id);
                ids.last_id = ids.last_id.max(id);
            }
            match f.data_type() {
                DataType::Struct(children) => children.iter().for_each(|c| walk(ids, c, &path)),
                DataType::List(item) => walk(ids, &item.as_ref().clone().with_name("element"), &path),
                DataType::Map(entries, _) => {
                    if let DataType::Struct(kv) = entries.data_type() {
                        kv.iter().for_each(|c| walk(ids, c, &path));
                    }
                }
                _ => {}
            }
        }
        let mut ids = FieldIds { by_path: HashMap::new(), last_id };
        schema.fields().iter().for_each(|f| walk(&mut ids, f, ""));
        ids
    }

    /// Returns `schema` with an id on every field (nested ones too), giving new paths new ids.
    pub fn assign(&mut self, schema: &Schema) -> Schema {
        let fields: Vec<Field> = schema.fields().iter().map(|f| self.field(f, "")).collect();
        Schema::new_with_metadata(fields, schema.metadata().clone())
    }

    fn id_for(&mut self, path: &str) -> i32 {
        if let Some(&id) = self.by_path.get(path) {
            return id;
        }
        self.last_id += 1;
        self.by_path.insert(path.to_string(), self.last_id);
        self.last_id
    }

    fn field(&mut self, f: &Field, parent: &str) -> Field {
        let path = if parent.is_empty() { f.name().clone() } else { format!("{parent}.{}", f.name()) };
        let id = self.id_for(&path);
        let data_type = match f.data_type() {
            DataType::Struct(children) => DataType::Struct(Fields::from(children.iter().map(|c| self.field(c, &path)).collect::<Vec<_>>())),
            DataType::List(item) => DataType::List(Arc::new(self.field(&item.as_ref().clone().with_name("element"), &path))),
            DataType::Map(entries, sorted) => {
                let DataType::Struct(kv) = entries.data_type() else { return f.clone() };
                let kv: Vec<Field> = kv.iter().map(|c| self.field(c, &path)).collect();
                DataType::Map(Arc::new(Field::new(entries.name(), DataType::Struct(Fields::from(kv)), false)), *sorted)
            }
            other => other.clone(),
        };
        let mut meta = f.metadata().clone();
        meta.insert(FIELD_ID_KEY.to_string(), id.to_string());
        Field::new(f.name(), data_type, f.is_nullable()).with_metadata(meta)
    }
}

/// A field's id, if it has one.
pub fn field_id(f: &Field) -> Option<i32> {
    f.metadata().get(FIELD_ID_KEY)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_from_a_schema_continue_where_it_left() {
        let mut first = FieldIds::default();
        let v1 = first.assign(&Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
        ]));
        let mut back = FieldIds::from_schema(&v1, 10);
        assert_eq!(back.get("tags.element"), first.get("tags.element"));
        let v2 = back.assign(&Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("extra", DataType::Utf8, true)]));
        assert_eq!(field_id(v2.field(0)), Some(1));
        assert_eq!(field_id(v2.field(1)), Some(11), "new ids start after the table's last id");
    }

    #[test]
    fn ids_stay_with_their_paths_across_versions() {
        let v1 = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
        ]);
        let mut ids = FieldIds::default();
        let a = ids.assign(&v1);
        let id_of = |s: &Schema, n: &str| field_id(s.field_with_name(n).expect("field"));
        assert_eq!((id_of(&a, "id"), id_of(&a, "tags")), (Some(1), Some(2)));
        assert_eq!(ids.get("tags.element"), Some(3));
        // v2 drops nothing, adds a field before the others: old ids stay, the new one is fresh.
        let v2 = Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
            Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
        ]);
        let b = ids.assign(&v2);
        assert_eq!((id_of(&b, "id"), id_of(&b, "tags"), id_of(&b, "name")), (Some(1), Some(2), Some(4)));
    }
}
