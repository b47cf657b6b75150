//! Avro schema compatibility, by the Avro resolution rules: can a reader schema read data written
//! with a writer schema? BACKWARD = new reads old, FORWARD = old reads new, FULL = both.

use crate::avro::{AvroField, AvroSchema};

/// Why a reader cannot read a writer, or `Ok` when it can.
pub fn can_read(reader: &AvroSchema, writer: &AvroSchema) -> Result<(), String> {
    use AvroSchema::*;
    match (reader, writer) {
        (Union(rs), Union(ws)) => {
            for w in ws {
                if !rs.iter().any(|r| can_read(r, w).is_ok()) {
                    return Err(format!("the reader's union has no branch for the writer's {}", name(w)));
                }
            }
            Ok(())
        }
        (Union(rs), w) => {
            if rs.iter().any(|r| can_read(r, w).is_ok()) {
                Ok(())
            } else {
                Err(format!("the reader's union has no branch for {}", name(w)))
            }
        }
        (r, Union(ws)) => {
            for w in ws {
                can_read(r, w).map_err(|e| format!("a writer union branch: {e}"))?;
            }
            Ok(())
        }
        (Record { name: rn, fields: rf }, Record { name: wn, fields: wf }) => {
            if short(rn) != short(wn) {
                return Err(format!("record {rn} cannot read record {wn}"));
            }
            for f in rf.iter() {
                match wf.iter().find(|w| w.name == f.name) {
                    Some(w) => can_read(&f.schema, &w.schema).map_err(|e| format!("field {}: {e}", f.name))?,
                    None if has_default(f) => {}
                    None => return Err(format!("field {} is new in the reader and has no default", f.name)),
                }
            }
            Ok(())
        }
        (Enum { symbols: rs, .. }, Enum { symbols: ws, .. }) => match ws.iter().find(|s| !rs.contains(s)) {
            Some(s) => Err(format!("enum symbol {s} is unknown to the reader")),
            None => Ok(()),
        },
        (Array(r), Array(w)) => can_read(r, w).map_err(|e| format!("array items: {e}")),
        (Map(r), Map(w)) => can_read(r, w).map_err(|e| format!("map values: {e}")),
        (Fixed { size: rs, .. }, Fixed { size: ws, .. }) if rs == ws => Ok(()),
        (Decimal { precision: rp, scale: rs, .. }, Decimal { precision: wp, scale: ws, .. }) if rs == ws && rp >= wp => Ok(()),
        (r, w) if base(r) == base(w) => Ok(()),
        (r, w) if promotes(base(w), base(r)) => Ok(()),
        (r, w) => Err(format!("{} cannot read {}", name(r), name(w))),
    }
}

fn has_default(f: &AvroField) -> bool {
    f.default.is_some()
}

fn short(n: &str) -> &str {
    n.rsplit('.').next().unwrap_or(n)
}

/// The primitive an Avro type is written as (logical types by their base).
fn base(s: &AvroSchema) -> &'static str {
    use AvroSchema::*;
    match s {
        Null => "null",
        Boolean => "boolean",
        Int | Date | TimeMillis => "int",
        Long | TimeMicros | TimestampMillis | TimestampMicros | LocalTimestampMillis | LocalTimestampMicros => "long",
        Float => "float",
        Double => "double",
        Bytes | Decimal { fixed: None, .. } => "bytes",
        String | Uuid => "string",
        Decimal { fixed: Some(_), .. } | Fixed { .. } => "fixed",
        Record { .. } => "record",
        Enum { .. } => "enum",
        Array(_) => "array",
        Map(_) => "map",
        Union(_) => "union",
    }
}

fn promotes(writer: &str, reader: &str) -> bool {
    matches!(
        (writer, reader),
        ("int", "long" | "float" | "double") | ("long", "float" | "double") | ("float", "double") | ("string", "bytes") | ("bytes", "string")
    )
}

fn name(s: &AvroSchema) -> String {
    match s {
        AvroSchema::Record { name, .. } | AvroSchema::Enum { name, .. } | AvroSchema::Fixed { name, .. } => format!("{} {name}", base(s)),
        other => base(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: &str) -> AvroSchema {
        AvroSchema::parse_str(&format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)).expect("schema")
    }

    #[test]
    fn resolution_rules() {
        let v1 = rec(r#"{"name":"a","type":"int"}"#);
        let with_default = rec(r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}"#);
        let without_default = rec(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
        let widened = rec(r#"{"name":"a","type":"long"}"#);
        assert!(can_read(&with_default, &v1).is_ok(), "a new field with a default reads old data");
        assert!(can_read(&without_default, &v1).is_err(), "a new field without a default does not");
        assert!(can_read(&v1, &with_default).is_ok(), "old readers ignore new fields");
        assert!(can_read(&widened, &v1).is_ok(), "int promotes to long");
        assert!(can_read(&v1, &widened).is_err(), "long does not narrow to int");
        let nullable = rec(r#"{"name":"a","type":["null","int"],"default":null}"#);
        assert!(can_read(&nullable, &v1).is_ok());
        assert!(can_read(&v1, &nullable).is_err(), "a null cannot be read as int");
        let e1 = AvroSchema::parse_str(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#).expect("enum");
        let e2 = AvroSchema::parse_str(r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#).expect("enum");
        assert!(can_read(&e2, &e1).is_ok() && can_read(&e1, &e2).is_err());
    }
}
