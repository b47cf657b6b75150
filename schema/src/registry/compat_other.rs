//! Compatibility of Protobuf and JSON Schema versions: can a reader schema read what a writer
//! schema wrote? (BACKWARD: new reads old; FORWARD: old reads new.)
//!
//! Protobuf: every message the reader knows must still exist; a field number present in both
//! must keep a wire-compatible kind (varint integers and bool; zigzag; 32-bit fixed; 64-bit
//! fixed; string and bytes; the same message or enum) and its repeated-ness; enums may gain
//! values but the reader must know the writer's. JSON Schema: the reader may not require what
//! the writer did not; shared properties keep compatible types (integer widens to number); a
//! reader closed to extra properties must know every property of the writer.

use prost_reflect::{Kind, MessageDescriptor};
use serde_json::Value as Json;

use crate::protobuf::ProtoSchema;

fn kind_class(k: &Kind) -> String {
    match k {
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool => "varint".into(),
        Kind::Sint32 | Kind::Sint64 => "zigzag".into(),
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => "fixed32".into(),
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => "fixed64".into(),
        Kind::String | Kind::Bytes => "bytes".into(),
        Kind::Message(m) => format!("message {}", m.full_name()),
        Kind::Enum(e) => format!("enum {}", e.full_name()),
    }
}

fn messages(m: &MessageDescriptor, out: &mut Vec<MessageDescriptor>) {
    out.push(m.clone());
    for c in m.child_messages() {
        if !c.is_map_entry() {
            messages(&c, out);
        }
    }
}

/// Why a Protobuf reader cannot read a writer, or `Ok`.
pub fn protobuf_can_read(reader: &ProtoSchema, writer: &ProtoSchema) -> Result<(), String> {
    let (r, w) = (reader.descriptor(), writer.descriptor());
    let mut rs = vec![];
    for m in r.parent_file().messages() {
        messages(&m, &mut rs);
    }
    for rm in rs {
        let Some(wm) = w.parent_pool().get_message_by_name(rm.full_name()) else {
            return Err(format!("message {} is gone", rm.full_name()));
        };
        for rf in rm.fields() {
            let Some(wf) = wm.get_field(rf.number()) else { continue };
            if kind_class(&rf.kind()) != kind_class(&wf.kind()) {
                return Err(format!(
                    "field {} (#{}) of {} changed from {} to {}",
                    rf.name(),
                    rf.number(),
                    rm.full_name(),
                    kind_class(&wf.kind()),
                    kind_class(&rf.kind())
                ));
            }
            if rf.is_list() != wf.is_list() || rf.is_map() != wf.is_map() {
                return Err(format!("field {} (#{}) of {} changed between single and repeated", rf.name(), rf.number(), rm.full_name()));
            }
            if let (Kind::Enum(re), Kind::Enum(we)) = (rf.kind(), wf.kind()) {
                if let Some(v) = we.values().find(|v| re.get_value(v.number()).is_none()) {
                    return Err(format!("enum {} lacks value {} the writer has", re.full_name(), v.name()));
                }
            }
        }
    }
    Ok(())
}

fn types(s: &Json) -> Vec<String> {
    match s.get("type") {
        Some(Json::String(t)) => vec![t.clone()],
        Some(Json::Array(ts)) => ts.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

/// Why a JSON Schema reader cannot read a writer, or `Ok`.
pub fn json_can_read(reader: &Json, writer: &Json, path: &str) -> Result<(), String> {
    let (rt, wt) = (types(reader), types(writer));
    if !rt.is_empty() && !wt.is_empty() {
        for t in &wt {
            let ok = rt.contains(t) || (t == "integer" && rt.iter().any(|r| r == "number"));
            if !ok {
                return Err(format!("{}: the writer's {t} is not a {}", if path.is_empty() { "top level" } else { path }, rt.join("|")));
            }
        }
    }
    let empty = serde_json::Map::new();
    let rp = reader.get("properties").and_then(Json::as_object).unwrap_or(&empty);
    let wp = writer.get("properties").and_then(Json::as_object).unwrap_or(&empty);
    let required = |s: &Json| -> Vec<String> {
        s.get("required").and_then(Json::as_array).map(|r| r.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let wreq = required(writer);
    for r in required(reader) {
        if !wreq.contains(&r) {
            return Err(format!("property {r} is required by the reader but not by the writer"));
        }
    }
    if reader.get("additionalProperties") == Some(&Json::Bool(false)) {
        if let Some(k) = wp.keys().find(|k| !rp.contains_key(*k)) {
            return Err(format!("property {k} of the writer is unknown to a reader closed to other properties"));
        }
    }
    for (k, rs) in rp {
        if let Some(ws) = wp.get(k) {
            json_can_read(rs, ws, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") })?;
        }
    }
    if let (Some(ri), Some(wi)) = (reader.get("items"), writer.get("items")) {
        json_can_read(ri, wi, &format!("{path}[]"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> ProtoSchema {
        ProtoSchema::from_source("x.proto", text, &[], None).expect("proto")
    }

    #[test]
    fn protobuf_rules() {
        let v1 = p("syntax = \"proto3\"; message M { int64 a = 1; string b = 2; E e = 3; } enum E { X = 0; }");
        let added = p("syntax = \"proto3\"; message M { int64 a = 1; string b = 2; E e = 3; int32 c = 4; } enum E { X = 0; Y = 1; }");
        let retyped = p("syntax = \"proto3\"; message M { int64 a = 1; double b = 2; E e = 3; } enum E { X = 0; }");
        let widened = p("syntax = \"proto3\"; message M { int32 a = 1; bytes b = 2; E e = 3; } enum E { X = 0; }");
        assert!(protobuf_can_read(&added, &v1).is_ok(), "new fields and enum values are fine");
        assert!(protobuf_can_read(&v1, &added).is_err(), "an old reader does not know enum value Y");
        assert!(protobuf_can_read(&retyped, &v1).is_err(), "string to double is not wire compatible");
        assert!(protobuf_can_read(&widened, &v1).is_ok(), "int64/int32 and string/bytes share a wire type");
    }

    #[test]
    fn json_rules() {
        let v1: Json = serde_json::json!({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]});
        let v2: Json = serde_json::json!({"type":"object","properties":{"n":{"type":"number"},"m":{"type":"string"}}});
        let strict: Json = serde_json::json!({"type":"object","properties":{"n":{"type":"integer"},"m":{"type":"string"}},"required":["n","m"]});
        assert!(json_can_read(&v2, &v1, "").is_ok(), "integer widens to number; m is optional");
        assert!(json_can_read(&v1, &v2, "").is_err(), "number does not narrow to integer");
        assert!(json_can_read(&strict, &v1, "").is_err(), "a new required property");
    }
}
