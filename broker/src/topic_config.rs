//! Topic configuration keys: which exist, their defaults, and the check of every value.
//!
//! Unknown keys and bad values are refused with the key named, never ignored.

use std::collections::BTreeMap;

use crate::error::{BrokerError, Result};

/// How a key's value is checked.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Long {
        min: i64,
    },
    Bool,
    OneOf(&'static [&'static str]),
    Text,
    /// A fraction from 0 to 1.
    Ratio,
    /// A bracketed list such as `[id, name]`.
    List,
}

/// A known key: name, kind, default shown by DescribeConfigs (None: unset).
struct Key {
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    doc: &'static str,
}

const TT: &str = "automq.table.topic.";

static KEYS: &[Key] = &[
    Key { name: "retention.ms", kind: Kind::Long { min: -1 }, default: Some("604800000"), doc: "Delete data older than this (-1: keep forever)." },
    Key { name: "retention.bytes", kind: Kind::Long { min: -1 }, default: Some("-1"), doc: "Delete the oldest data past this size per partition (-1: no limit)." },
    Key { name: "cleanup.policy", kind: Kind::OneOf(&["delete", "compact", "compact,delete", "delete,compact"]), default: Some("delete"), doc: "delete: retention applies. compact: log compaction keeps the latest record of each key (records need keys). Both: both apply." },
    Key { name: "delete.retention.ms", kind: Kind::Long { min: 0 }, default: Some("86400000"), doc: "Compacted topics: a tombstone (null value) is kept this long past its timestamp, so consumers that catch up within it see the delete." },
    Key { name: "min.compaction.lag.ms", kind: Kind::Long { min: 0 }, default: Some("0"), doc: "Compacted topics: records younger than this (by timestamp) are not compacted yet." },
    Key { name: "max.compaction.lag.ms", kind: Kind::Long { min: 1 }, default: Some("9223372036854775807"), doc: "Compacted topics: a partition whose oldest uncompacted record is older than this is compacted whatever its dirty ratio." },
    Key { name: "min.cleanable.dirty.ratio", kind: Kind::Ratio, default: Some("0.5"), doc: "Compacted topics: compact once uncompacted bytes are this share of the partition." },
    Key { name: "segment.ms", kind: Kind::Long { min: 1 }, default: Some("604800000"), doc: "Accepted for compatibility: Floe stores partitions as streams, not segments." },
    Key { name: "max.message.bytes", kind: Kind::Long { min: 0 }, default: None, doc: "Largest record batch accepted (defaults to the broker's message_max_bytes)." },
    Key { name: "segment.bytes", kind: Kind::Long { min: 14 }, default: Some("1073741824"), doc: "Accepted for compatibility: Floe stores partitions as streams, not segments." },
    Key { name: "min.insync.replicas", kind: Kind::Long { min: 1 }, default: Some("1"), doc: "Accepted for compatibility: acknowledged data is durable in the WAL, replicated by object storage." },
    Key { name: "compression.type", kind: Kind::OneOf(&["producer"]), default: Some("producer"), doc: "Floe stores batches as produced, never recompressed." },
    Key { name: "message.timestamp.type", kind: Kind::OneOf(&["CreateTime"]), default: Some("CreateTime"), doc: "Only producer timestamps: batches are never rewritten." },
    Key { name: "automq.table.topic.enable", kind: Kind::Bool, default: Some("false"), doc: "Materialize the topic into an Iceberg table." },
    Key { name: "automq.table.topic.commit.interval.ms", kind: Kind::Long { min: 100 }, default: Some("60000"), doc: "How often the table is committed." },
    Key { name: "automq.table.topic.commit.bytes.max", kind: Kind::Long { min: 1 }, default: Some("268435456"), doc: "Commit early once this many bytes of records wait (Floe's own)." },
    Key { name: "automq.table.topic.dlq.table", kind: Kind::Text, default: None, doc: "Dead-letter table name (default <topic>_dlq; Floe's own)." },
    Key { name: "automq.table.topic.namespace", kind: Kind::Text, default: Some("default"), doc: "Iceberg namespace of the table." },
    Key { name: "automq.table.topic.table.name", kind: Kind::Text, default: None, doc: "The table's name in its namespace (Floe's own; default: the topic's name). Set it for topics with dots, such as Debezium's prefix.schema.table, to get a name engines read without quoting." },
    Key { name: "automq.table.topic.convert.value.type", kind: Kind::OneOf(&["raw", "string", "by_schema_id", "by_latest_schema", "json", "protobuf_file"]), default: Some("raw"), doc: "How record values are decoded." },
    Key { name: "automq.table.topic.convert.key.type", kind: Kind::OneOf(&["raw", "string", "by_schema_id", "by_latest_schema", "json", "protobuf_file"]), default: Some("raw"), doc: "How record keys are decoded." },
    Key { name: "automq.table.topic.convert.value.by_latest_schema.subject", kind: Kind::Text, default: None, doc: "Subject for by_latest_schema values." },
    Key { name: "automq.table.topic.convert.value.by_latest_schema.message.full.name", kind: Kind::Text, default: None, doc: "Protobuf message of by_latest_schema values." },
    Key { name: "automq.table.topic.convert.key.by_latest_schema.subject", kind: Kind::Text, default: None, doc: "Subject for by_latest_schema keys." },
    Key { name: "automq.table.topic.convert.key.by_latest_schema.message.full.name", kind: Kind::Text, default: None, doc: "Protobuf message of by_latest_schema keys." },
    Key { name: "automq.table.topic.convert.value.protobuf.file", kind: Kind::Text, default: None, doc: "protobuf_file values: the .proto file on the broker's host, imports resolved next to it (Floe's own)." },
    Key { name: "automq.table.topic.convert.value.protobuf.message.full.name", kind: Kind::Text, default: None, doc: "protobuf_file values: the message, e.g. shop.Order (Floe's own)." },
    Key { name: "automq.table.topic.convert.key.protobuf.file", kind: Kind::Text, default: None, doc: "protobuf_file keys: the .proto file on the broker's host (Floe's own)." },
    Key { name: "automq.table.topic.convert.key.protobuf.message.full.name", kind: Kind::Text, default: None, doc: "protobuf_file keys: the message (Floe's own)." },
    Key { name: "automq.table.topic.transform.value.type", kind: Kind::OneOf(&["none", "flatten", "flatten_debezium"]), default: Some("none"), doc: "How decoded values become rows." },
    Key { name: "automq.table.topic.id.columns", kind: Kind::List, default: None, doc: "Identifier columns, e.g. [id]." },
    Key { name: "automq.table.topic.partition.by", kind: Kind::List, default: None, doc: "Partition fields: identity (a bare column), year, month, day, hour, bucket(col, N), truncate(col, W); e.g. [bucket(id, 16), day(ts)]. Changing it evolves the spec with the next commit; written files keep theirs." },
    Key { name: "automq.table.topic.upsert.enable", kind: Kind::Bool, default: Some("false"), doc: "Each record replaces the row of its key." },
    Key { name: "automq.table.topic.cdc.field", kind: Kind::Text, default: None, doc: "Field holding the I/U/D operation." },
    Key { name: "automq.table.topic.errors.tolerance", kind: Kind::OneOf(&["none", "invalid_data", "all"]), default: Some("invalid_data"), doc: "What happens to a record that cannot be converted." },
    Key { name: "automq.table.topic.expire.snapshot.enabled", kind: Kind::Bool, default: Some("true"), doc: "Expire old snapshots." },
    Key { name: "automq.table.topic.expire.snapshot.older.than.hours", kind: Kind::Long { min: 0 }, default: Some("1"), doc: "Snapshots older than this expire (0: all but the retained ones)." },
    Key { name: "automq.table.topic.expire.snapshot.retain.last", kind: Kind::Long { min: 1 }, default: Some("1"), doc: "Snapshots always kept." },
    Key {
        name: "automq.table.topic.expire.snapshot.retain.max",
        kind: Kind::Long { min: 1 },
        default: Some("1000"),
        doc: "Beyond this many snapshots, younger ones expire too: every commit rewrites a metadata file listing them all (Floe's own).",
    },
    Key { name: "automq.table.topic.maintenance.interval.ms", kind: Kind::Long { min: 100 }, default: Some("300000"), doc: "How often compaction and snapshot expiry run (Floe's own)." },
    Key { name: "automq.table.topic.compaction.enable", kind: Kind::Bool, default: Some("true"), doc: "Rewrite small data files and position deletes into larger files (Floe's own)." },
    Key { name: "automq.table.topic.compaction.target.file.bytes", kind: Kind::Long { min: 1 }, default: Some("134217728"), doc: "Data files below this size are compacted (Floe's own)." },
    Key { name: "automq.table.topic.compaction.files.min", kind: Kind::Long { min: 2 }, default: Some("8"), doc: "Compact once this many small data files, or delete files, are live (Floe's own)." },
    Key {
        name: "automq.table.topic.compaction.trigger.files",
        kind: Kind::Long { min: 2 },
        default: Some("64"),
        doc: "Run compaction (and expiry) before maintenance.interval.ms is up once the loop has written this many data files since it last ran (Floe's own).",
    },
    Key { name: "automq.table.topic.orphan.older.than.ms", kind: Kind::Long { min: 0 }, default: Some("3600000"), doc: "Data files no snapshot reaches (a commit that never happened) are deleted once this old (Floe's own)." },
    Key { name: "automq.table.topic.compaction.input.bytes.max", kind: Kind::Long { min: 1 }, default: Some("536870912"), doc: "Bytes one compaction reads at most (Floe's own)." },
];

/// Every key with its default and documentation, as DescribeConfigs reports them.
pub fn defaults() -> impl Iterator<Item = (&'static str, Option<&'static str>, &'static str)> {
    KEYS.iter().map(|k| (k.name, k.default, k.doc))
}

/// Every key with its default, the values it takes, and its documentation, for the reference.
pub fn reference() -> impl Iterator<Item = (&'static str, Option<&'static str>, String, &'static str)> {
    KEYS.iter().map(|k| {
        let values = match k.kind {
            Kind::Long { min } => format!("integer ≥ {min}"),
            Kind::Bool => "true, false".into(),
            Kind::OneOf(vs) => vs.join(", "),
            Kind::Text => "text".into(),
            Kind::Ratio => "0 to 1".into(),
            Kind::List => "[a, b, …]".into(),
        };
        (k.name, k.default, values, k.doc)
    })
}

/// The DescribeConfigs type code of a key (BOOLEAN 1, STRING 2, LONG 5, LIST 7; 0 unknown).
pub fn type_code(key: &str) -> i8 {
    match KEYS.iter().find(|k| k.name == key).map(|k| k.kind) {
        Some(Kind::Bool) => 1,
        Some(Kind::Text | Kind::OneOf(_)) if key == "cleanup.policy" => 7,
        Some(Kind::Text | Kind::OneOf(_)) => 2,
        Some(Kind::Long { .. }) => 5,
        Some(Kind::Ratio) => 6,
        Some(Kind::List) => 7,
        None => 0,
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::InvalidConfig { key: key.to_string(), reason: reason.into() }
}

/// Checks one key and value.
pub fn validate_entry(key: &str, value: &str) -> Result<()> {
    let k = KEYS.iter().find(|k| k.name == key).ok_or_else(|| {
        if key.starts_with(TT) {
            invalid(key, "unknown table topic key")
        } else {
            invalid(key, "unknown topic config key")
        }
    })?;
    match k.kind {
        Kind::Long { min } => match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            Ok(v) => Err(invalid(key, format!("{v} is below the minimum {min}"))),
            Err(_) => Err(invalid(key, format!("{value:?} is not a whole number"))),
        },
        Kind::Bool => match value.trim() {
            "true" | "false" => Ok(()),
            _ => Err(invalid(key, format!("{value:?} is not true or false"))),
        },
        Kind::OneOf(allowed) => {
            if allowed.contains(&value.trim()) {
                Ok(())
            } else {
                Err(invalid(key, format!("{value:?} is not one of {}", allowed.join(", "))))
            }
        }
        Kind::Text => Ok(()),
        Kind::Ratio => match value.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => Err(invalid(key, format!("{value:?} is not a number from 0 to 1"))),
        },
        Kind::List => {
            let v = value.trim();
            if v.starts_with('[') && v.ends_with(']') {
                Ok(())
            } else {
                Err(invalid(key, format!("{value:?} is not a bracketed list such as [id]")))
            }
        }
    }
}

/// Checks a whole config: every entry, then the combinations.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in configs {
        validate_entry(k, v)?;
    }
    // The combinations are the Table Topic's to judge (its message names the key).
    if let Err(e) = floe_table_topic::TableConfig::validate(configs) {
        let msg = e.to_string();
        let key = msg.split(|c: char| c == '=' || c.is_whitespace()).find(|w| w.starts_with(TT)).unwrap_or("automq.table.topic.enable").to_string();
        return Err(invalid(&key, msg));
    }
    Ok(())
}

/// A key's effective value as a number, from the topic or its default.
pub fn long(configs: &BTreeMap<String, String>, key: &str) -> Option<i64> {
    configs.get(key).map(String::as_str).or_else(|| KEYS.iter().find(|k| k.name == key).and_then(|k| k.default)).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn good_configs_pass_and_bad_ones_name_the_key() {
        validate(&m(&[("retention.ms", "1000"), ("cleanup.policy", "delete"), ("automq.table.topic.enable", "true")])).expect("valid");
        for (kv, key) in [
            (vec![("retention.ms", "soon")], "retention.ms"),
            (vec![("retention.ms", "-5")], "retention.ms"),
            (vec![("no.such.key", "1")], "no.such.key"),
            (vec![("automq.table.topic.transform.value.type", "explode")], "automq.table.topic.transform.value.type"),
            (vec![("automq.table.topic.upsert.enable", "true")], "automq.table.topic.upsert.enable"),
            (vec![("automq.table.topic.transform.value.type", "flatten_debezium")], "automq.table.topic.transform.value.type"),
        ] {
            match validate(&m(&kv)) {
                Err(BrokerError::InvalidConfig { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{kv:?}: {other:?}"),
            }
        }
        validate(&m(&[("automq.table.topic.upsert.enable", "true"), ("automq.table.topic.id.columns", "[id]")])).expect("valid");
    }
}
