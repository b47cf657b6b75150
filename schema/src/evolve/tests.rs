//! Evolution tests: Avro versions through the allowed changes, refusals, and a property test that
//! any sequence of compatible versions gives a table that holds every version's records.

use super::*;
use crate::avro::AvroSchema;
use crate::ids::field_id;
use proptest::prelude::*;

fn avro(fields: &str) -> Schema {
    AvroSchema::parse_str(&format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)).expect("avro").arrow_schema().expect("arrow")
}

#[test]
fn four_avro_versions_evolve_the_table() {
    let v1 = avro(r#"{"name":"id","type":"int"},{"name":"name","type":"string"},{"name":"price","type":"float"}"#);
    let v2 = avro(
        r#"{"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"price","type":"float"},{"name":"tags","type":{"type":"array","items":"string"}}"#,
    );
    let v3 = avro(
        r#"{"name":"id","type":"long"},{"name":"name","type":["null","string"]},{"name":"price","type":"double"},{"name":"tags","type":{"type":"array","items":"string"}}"#,
    );
    let v4 = avro(
        r#"{"name":"id","type":"long"},{"name":"price","type":"double"},{"name":"addr","type":{"type":"record","name":"A","fields":[{"name":"city","type":"string"}]}}"#,
    );
    let mut ids = FieldIds::default();
    let mut table = ids.assign(&v1);
    assert!(!fits(&table, &v2), "v1's table cannot hold v2 (longs, tags) before it evolves");
    let first_ids: Vec<Option<i32>> = table.fields().iter().map(|f| field_id(f)).collect();
    for v in [&v2, &v3, &v4] {
        table = evolve(&table, v, &mut ids).expect("compatible");
    }
    let t = |n: &str| table.field_with_name(n).expect(n).clone();
    assert_eq!(t("id").data_type(), &DataType::Int64);
    assert_eq!(t("price").data_type(), &DataType::Float64);
    assert!(t("name").is_nullable(), "dropped in v4: stays, optional");
    assert!(t("tags").is_nullable() && t("addr").is_nullable(), "added columns are optional");
    assert_eq!(table.fields().iter().take(3).map(|f| field_id(f)).collect::<Vec<_>>(), first_ids, "ids kept");
    for v in [&v1, &v2, &v3, &v4] {
        assert!(fits(&table, v), "the table holds every version's records");
    }
}

#[test]
fn incompatible_changes_are_refused_with_the_column() {
    let mut ids = FieldIds::default();
    let table = ids.assign(&avro(r#"{"name":"id","type":"long"},{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}}"#));
    for (bad, column) in [
        (r#"{"name":"id","type":"string"}"#, "id"),
        (r#"{"name":"id","type":"int"},{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":3}}"#, "d"),
    ] {
        match evolve(&table, &avro(bad), &mut ids) {
            Err(SchemaError::Unsupported(m)) => assert!(m.contains(&format!("column {column}")), "{m}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let wider =
        evolve(&table, &avro(r#"{"name":"id","type":"int"},{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":14,"scale":2}}"#), &mut ids)
            .expect("ok");
    assert_eq!(wider.field_with_name("d").expect("d").data_type(), &DataType::Decimal128(14, 2));
    assert_eq!(wider.field_with_name("id").expect("id").data_type(), &DataType::Int64, "never narrowed back to int");
}

#[derive(Debug, Clone)]
enum Change {
    Add(u8),
    Drop(u8),
    Widen(u8),
    Optional(u8),
}

fn apply(fields: &mut Vec<(String, &'static str, bool)>, c: &Change, next: &mut u32) {
    let pick = |n: &u8, len: usize| if len == 0 { None } else { Some(*n as usize % len) };
    match c {
        Change::Add(k) => {
            *next += 1;
            let ty = ["int", "long", "string", "float", "double"][*k as usize % 5];
            fields.push((format!("f{next}"), ty, false));
        }
        Change::Drop(k) => {
            if let Some(i) = pick(k, fields.len()) {
                fields.remove(i);
            }
        }
        Change::Widen(k) => {
            if let Some(i) = pick(k, fields.len()) {
                fields[i].1 = match fields[i].1 {
                    "int" => "long",
                    "float" => "double",
                    t => t,
                };
            }
        }
        Change::Optional(k) => {
            if let Some(i) = pick(k, fields.len()) {
                fields[i].2 = true;
            }
        }
    }
}

fn to_avro(fields: &[(String, &'static str, bool)]) -> Schema {
    let parts: Vec<String> = fields
        .iter()
        .map(|(n, t, opt)| if *opt { format!(r#"{{"name":"{n}","type":["null","{t}"]}}"#) } else { format!(r#"{{"name":"{n}","type":"{t}"}}"#) })
        .collect();
    avro(&parts.join(","))
}

proptest! {
    #[test]
    fn compatible_versions_always_fit_the_evolved_table(changes in proptest::collection::vec(
        prop_oneof![any::<u8>().prop_map(Change::Add), any::<u8>().prop_map(Change::Drop), any::<u8>().prop_map(Change::Widen), any::<u8>().prop_map(Change::Optional)],
        1..25,
    )) {
        let mut fields = vec![("id".to_string(), "int", false)];
        let mut next = 0;
        let mut versions = vec![to_avro(&fields)];
        for c in &changes {
            apply(&mut fields, c, &mut next);
            versions.push(to_avro(&fields));
        }
        let mut ids = FieldIds::default();
        let mut table = ids.assign(&versions[0]);
        for v in &versions[1..] {
            table = evolve(&table, v, &mut ids).expect("compatible changes evolve");
        }
        for v in &versions {
            prop_assert!(fits(&table, v), "a version does not fit the table");
        }
        let mut seen: Vec<i32> = table.fields().iter().filter_map(|f| field_id(f)).collect();
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        prop_assert_eq!(seen.len(), n, "ids are unique");
    }
}

#[test]
fn a_map_fits_whatever_its_keys_nullability_but_not_a_narrower_value() {
    use arrow_schema::{DataType, Field, Fields, Schema};
    use std::sync::Arc;
    let map = |key_nullable: bool, value: DataType| {
        let entries = Fields::from(vec![Field::new("key", DataType::Utf8, key_nullable), Field::new("value", value, true)]);
        Schema::new(vec![Field::new("headers", DataType::Map(Arc::new(Field::new("key_value", DataType::Struct(entries), false)), false), true)])
    };
    // Iceberg holds a map's keys required; a record's entries may say nullable all the same.
    assert!(fits(&map(false, DataType::Int64), &map(true, DataType::Int64)));
    assert!(fits(&map(false, DataType::Int64), &map(true, DataType::Int32)));
    assert!(!fits(&map(false, DataType::Int32), &map(true, DataType::Int64)));
}
