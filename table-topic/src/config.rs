//! A Table Topic's settings, read from the topic's `automq.table.topic.*` keys, and the checks that
//! refuse a combination that cannot work (the broker answers INVALID_CONFIG with the message).

use std::collections::BTreeMap;

use crate::error::{Result, TableTopicError};
use crate::maintenance::CompactionPolicy;
use crate::partitioning::{self, PartitionBy};

/// The prefix of every Table Topic key.
pub const PREFIX: &str = "automq.table.topic.";

/// How a key or value becomes data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Convert {
    /// Bytes as they are.
    Raw,
    /// UTF-8 text.
    String,
    /// Confluent-framed records, decoded with the schema their id names.
    BySchemaId,
    /// Unframed records, decoded with the latest schema of a subject.
    ByLatestSchema { subject: Option<String>, message: Option<String> },
    /// Schemaless JSON objects; columns inferred and widened.
    Json,
    /// Plain (unframed) Protobuf messages of `message`, described by the `.proto` file at `file`
    /// on the broker's host (imports resolved next to it).
    ProtobufFile { file: String, message: String },
}

/// How a decoded value becomes a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// The value is one column, `_kafka_value`.
    None,
    /// The value's fields are the columns.
    Flatten,
    /// A Debezium change event: the row image's fields are the columns, plus `_cdc`.
    FlattenDebezium,
}

/// What happens to a record that cannot become a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    /// The table pauses at the record until the config changes.
    None,
    /// Bad records go to the dead-letter table.
    InvalidData,
    /// As `InvalidData`, for every per-record failure.
    All,
}

/// Where the identifier columns come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdColumns {
    None,
    Columns(Vec<String>),
    /// `[_from_debezium_key_]`: the fields of the (JSON) record key.
    FromDebeziumKey,
}

/// A Table Topic's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    pub namespace: String,
    /// The table's name in its namespace (default: the topic's name).
    pub table_name: Option<String>,
    pub commit_interval_ms: u64,
    /// Commit early once this many bytes of records are waiting.
    pub commit_bytes_max: u64,
    pub value: Convert,
    pub key: Convert,
    pub transform: Transform,
    pub id_columns: IdColumns,
    pub upsert: bool,
    /// Path of the field holding I/U/D (e.g. `_cdc.op`).
    pub cdc_field: Option<String>,
    pub tolerance: Tolerance,
    pub dlq_table: Option<String>,
    pub expire_enabled: bool,
    pub expire_older_than_hours: u64,
    pub expire_retain_last: usize,
    /// Beyond this many snapshots, younger ones expire too (Floe's own).
    pub expire_retain_max: usize,
    /// How often compaction and expiry run (between commits of the same loop).
    pub maintenance_interval_ms: u64,
    /// `None` when compaction is off.
    pub compaction: Option<CompactionPolicy>,
    /// Files under the table's `data/` that no snapshot reaches are deleted once this old.
    pub orphan_older_than_ms: u64,
    /// The table's partition fields (empty: unpartitioned); a change evolves the spec on the
    /// next commit, and files already written keep theirs.
    pub partition_by: Vec<PartitionBy>,
}

fn get<'a>(c: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    c.get(&format!("{PREFIX}{key}")).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn bad(msg: impl Into<String>) -> TableTopicError {
    TableTopicError::Config(msg.into())
}

fn number(c: &BTreeMap<String, String>, key: &str, default: u64) -> Result<u64> {
    match get(c, key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| bad(format!("{PREFIX}{key}={v} is not a non-negative whole number"))),
    }
}

fn boolean(c: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool> {
    match get(c, key) {
        None => Ok(default),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad(format!("{PREFIX}{key}={v} is not true or false"))),
        },
    }
}

/// `[a, b]` (brackets optional) into its items.
pub fn list(v: &str) -> Vec<String> {
    v.trim().trim_start_matches('[').trim_end_matches(']').split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn convert(c: &BTreeMap<String, String>, side: &str) -> Result<Convert> {
    let kind = get(c, &format!("convert.{side}.type")).unwrap_or("raw");
    Ok(match kind {
        "raw" => Convert::Raw,
        "string" => Convert::String,
        "by_schema_id" => Convert::BySchemaId,
        "by_latest_schema" => Convert::ByLatestSchema {
            subject: get(c, &format!("convert.{side}.by_latest_schema.subject")).map(str::to_string),
            message: get(c, &format!("convert.{side}.by_latest_schema.message.full.name")).map(str::to_string),
        },
        "json" => Convert::Json,
        "protobuf_file" => {
            let file = get(c, &format!("convert.{side}.protobuf.file")).ok_or_else(|| {
                bad(format!("{PREFIX}convert.{side}.type=protobuf_file needs {PREFIX}convert.{side}.protobuf.file (a .proto file on the broker's host)"))
            })?;
            let message = get(c, &format!("convert.{side}.protobuf.message.full.name")).ok_or_else(|| {
                bad(format!("{PREFIX}convert.{side}.type=protobuf_file needs {PREFIX}convert.{side}.protobuf.message.full.name (e.g. shop.Order)"))
            })?;
            Convert::ProtobufFile { file: file.to_string(), message: message.to_string() }
        }
        other => return Err(bad(format!("{PREFIX}convert.{side}.type={other} is unknown (raw, string, by_schema_id, by_latest_schema, json, protobuf_file)"))),
    })
}

/// Compiles a `.proto` file from disk (imports resolved from its directory) and picks `message`.
pub fn compile_proto(file: &str, message: &str) -> std::result::Result<floe_schema::protobuf::ProtoSchema, String> {
    let path = std::path::Path::new(file);
    if !path.is_file() {
        return Err("no such file".into());
    }
    let dir = path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    floe_schema::protobuf::ProtoSchema::from_files(&[dir], &[path.to_path_buf()], message).map_err(|e| e.to_string())
}

impl TableConfig {
    /// The settings of a topic, `None` when it is not a Table Topic; an error names what is wrong.
    pub fn from_topic(configs: &BTreeMap<String, String>) -> Result<Option<TableConfig>> {
        if !boolean(configs, "enable", false)? {
            return Ok(None);
        }
        Self::parse(configs).map(Some)
    }

    /// As [`Self::parse`], and the files the config names are read too (a `protobuf_file`'s `.proto`
    /// must compile): the check for when a config is set. `parse` itself reads nothing, so the
    /// broker's periodic reconcile never touches the disk.
    pub fn validate(configs: &BTreeMap<String, String>) -> Result<TableConfig> {
        let cfg = Self::parse(configs)?;
        for (side, convert) in [("value", &cfg.value), ("key", &cfg.key)] {
            if let Convert::ProtobufFile { file, message } = convert {
                compile_proto(file, message).map_err(|e| bad(format!("{PREFIX}convert.{side}.protobuf.file={file}: {e}")))?;
            }
        }
        Ok(cfg)
    }

    /// The settings the keys describe, whether or not the table is enabled (a topic's config is
    /// checked whole, so enabling it later cannot reveal a bad combination).
    pub fn parse(configs: &BTreeMap<String, String>) -> Result<TableConfig> {
        let transform = match get(configs, "transform.value.type").unwrap_or("none") {
            "none" => Transform::None,
            "flatten" => Transform::Flatten,
            "flatten_debezium" => Transform::FlattenDebezium,
            other => return Err(bad(format!("{PREFIX}transform.value.type={other} is unknown (none, flatten, flatten_debezium)"))),
        };
        let value = convert(configs, "value")?;
        let key = convert(configs, "key")?;
        let tolerance = match get(configs, "errors.tolerance").unwrap_or("invalid_data") {
            "none" => Tolerance::None,
            "invalid_data" => Tolerance::InvalidData,
            "all" => Tolerance::All,
            other => return Err(bad(format!("{PREFIX}errors.tolerance={other} is unknown (none, invalid_data, all)"))),
        };
        let id_columns = match get(configs, "id.columns").map(list) {
            None => IdColumns::None,
            Some(l) if l.is_empty() => IdColumns::None,
            Some(l) if l == ["_from_debezium_key_"] => IdColumns::FromDebeziumKey,
            Some(l) => IdColumns::Columns(l),
        };
        let cfg = TableConfig {
            namespace: get(configs, "namespace").unwrap_or("default").to_string(),
            table_name: get(configs, "table.name").map(str::to_string),
            commit_interval_ms: number(configs, "commit.interval.ms", 60_000)?,
            commit_bytes_max: number(configs, "commit.bytes.max", 256 << 20)?,
            value,
            key,
            transform,
            id_columns,
            upsert: boolean(configs, "upsert.enable", false)?,
            cdc_field: get(configs, "cdc.field").map(str::to_string),
            tolerance,
            dlq_table: get(configs, "dlq.table").map(str::to_string),
            expire_enabled: boolean(configs, "expire.snapshot.enabled", true)?,
            expire_older_than_hours: number(configs, "expire.snapshot.older.than.hours", 1)?,
            expire_retain_last: number(configs, "expire.snapshot.retain.last", 1)?.max(1) as usize,
            expire_retain_max: number(configs, "expire.snapshot.retain.max", 1000)?.max(1) as usize,
            maintenance_interval_ms: number(configs, "maintenance.interval.ms", 300_000)?.max(100),
            compaction: match boolean(configs, "compaction.enable", true)? {
                false => None,
                true => Some(CompactionPolicy {
                    target_file_bytes: number(configs, "compaction.target.file.bytes", 128 << 20)?,
                    files_min: number(configs, "compaction.files.min", 8)?.max(2) as usize,
                    input_bytes_max: number(configs, "compaction.input.bytes.max", 512 << 20)?.max(1),
                    trigger_files: number(configs, "compaction.trigger.files", 64)?.max(2),
                    file_rows_max: crate::table::FILE_ROWS_MAX as u64,
                }),
            },
            orphan_older_than_ms: number(configs, "orphan.older.than.ms", 3_600_000)?,
            partition_by: match get(configs, "partition.by") {
                None => Vec::new(),
                Some(v) => partitioning::parse(v).map_err(|e| bad(format!("{PREFIX}partition.by={v}: {e}")))?,
            },
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<()> {
        if self.commit_interval_ms < 100 {
            return Err(bad(format!("{PREFIX}commit.interval.ms must be at least 100")));
        }
        if self.transform == Transform::FlattenDebezium && matches!(self.value, Convert::Raw | Convert::String | Convert::ProtobufFile { .. }) {
            return Err(bad(format!(
                "{PREFIX}transform.value.type=flatten_debezium needs decoded values: set {PREFIX}convert.value.type to json, by_schema_id or by_latest_schema"
            )));
        }
        if self.transform == Transform::Flatten && matches!(self.value, Convert::Raw | Convert::String) {
            return Err(bad(format!("{PREFIX}transform.value.type=flatten needs decoded values, not {:?}", self.value)));
        }
        let keyed = self.upsert || self.cdc_field.is_some();
        if keyed && self.id_columns == IdColumns::None {
            return Err(bad(format!("{PREFIX}upsert.enable and {PREFIX}cdc.field need {PREFIX}id.columns (e.g. [id])")));
        }
        if self.id_columns == IdColumns::FromDebeziumKey && !matches!(self.key, Convert::Json | Convert::BySchemaId) {
            return Err(bad(format!("{PREFIX}id.columns=[_from_debezium_key_] needs {PREFIX}convert.key.type=json or by_schema_id")));
        }
        Ok(())
    }

    /// True when rows replace the previous row of their key.
    pub fn keyed(&self) -> bool {
        self.upsert || self.cdc_field.is_some() || self.transform == Transform::FlattenDebezium && self.id_columns != IdColumns::None
    }

    /// The dead-letter table of `topic`.
    pub fn dlq_name(&self, topic: &str) -> String {
        self.dlq_table.clone().unwrap_or_else(|| format!("{}_dlq", self.table(topic)))
    }

    /// The table's name in its namespace: `table.name`, else the topic's name (AutoMQ's rule).
    pub fn table<'a>(&'a self, topic: &'a str) -> &'a str {
        self.table_name.as_deref().unwrap_or(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string())).collect();
        m.insert(format!("{PREFIX}enable"), "true".into());
        m
    }

    #[test]
    fn table_name_names_the_table_and_its_dead_letters() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> { pairs.iter().map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string())).collect() };
        let default = TableConfig::from_topic(&m(&[("enable", "true")])).expect("valid").expect("enabled");
        assert_eq!(
            (default.table("pg.public.customers"), default.dlq_name("pg.public.customers").as_str()),
            ("pg.public.customers", "pg.public.customers_dlq")
        );
        let named = TableConfig::from_topic(&m(&[("enable", "true"), ("table.name", "customers")])).expect("valid").expect("enabled");
        assert_eq!((named.table("pg.public.customers"), named.dlq_name("pg.public.customers").as_str()), ("customers", "customers_dlq"));
    }

    #[test]
    fn defaults_and_bad_combinations() {
        assert_eq!(TableConfig::from_topic(&BTreeMap::new()).expect("ok"), None);
        let c = TableConfig::from_topic(&cfg(&[])).expect("ok").expect("on");
        assert_eq!((c.namespace.as_str(), c.commit_interval_ms, c.value.clone(), c.tolerance), ("default", 60_000, Convert::Raw, Tolerance::InvalidData));
        let refused = |pairs: &[(&str, &str)], needle: &str| {
            let e = TableConfig::from_topic(&cfg(pairs)).expect_err("refused").to_string();
            assert!(e.contains(needle), "{e} should name {needle}");
        };
        refused(&[("upsert.enable", "true"), ("transform.value.type", "flatten"), ("convert.value.type", "json")], "id.columns");
        refused(&[("transform.value.type", "flatten_debezium")], "convert.value.type");
        refused(&[("transform.value.type", "explode")], "explode");
        refused(&[("convert.value.type", "xml")], "xml");
        refused(&[("commit.interval.ms", "soon")], "commit.interval.ms");
        refused(&[("partition.by", "[bucket(id)]")], "partition.by=[bucket(id)]");
        refused(
            &[("id.columns", "[_from_debezium_key_]"), ("upsert.enable", "true"), ("transform.value.type", "flatten_debezium"), ("convert.value.type", "json")],
            "convert.key.type",
        );
        let c = TableConfig::from_topic(&cfg(&[
            ("upsert.enable", "true"),
            ("transform.value.type", "flatten"),
            ("convert.value.type", "json"),
            ("id.columns", "[id, region]"),
        ]))
        .expect("ok")
        .expect("on");
        assert_eq!(c.id_columns, IdColumns::Columns(vec!["id".into(), "region".into()]));
        assert!(c.keyed());
    }

    #[test]
    fn protobuf_file_is_compiled_when_the_config_is_set() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("common.proto"), "syntax = \"proto3\"; package shop; message Money { int64 cents = 1; }").expect("write");
        let file = dir.path().join("order.proto");
        std::fs::write(&file, "syntax = \"proto3\"; package shop; import \"common.proto\"; message Order { int64 id = 1; Money total = 2; }").expect("write");
        let file = file.to_string_lossy().to_string();
        let ok = |message: &str| {
            TableConfig::validate(&cfg(&[
                ("convert.value.type", "protobuf_file"),
                ("convert.value.protobuf.file", &file),
                ("convert.value.protobuf.message.full.name", message),
            ]))
        };
        let c = ok("shop.Order").expect("ok");
        assert_eq!(c.value, Convert::ProtobufFile { file: file.clone(), message: "shop.Order".into() });
        assert!(ok("shop.Nope").expect_err("no such message").to_string().contains("shop.Nope"));
        let missing = TableConfig::validate(&cfg(&[
            ("convert.value.type", "protobuf_file"),
            ("convert.value.protobuf.file", "/no/such.proto"),
            ("convert.value.protobuf.message.full.name", "a.B"),
        ]));
        assert!(missing.expect_err("missing").to_string().contains("/no/such.proto: no such file"));
        let unnamed = TableConfig::validate(&cfg(&[("convert.value.type", "protobuf_file"), ("convert.value.protobuf.file", &file)]));
        assert!(unnamed.expect_err("no message").to_string().contains("convert.value.protobuf.message.full.name"));
        std::fs::write(dir.path().join("order.proto"), "syntax = \"proto3\"; message Order { int64 id = 1 }").expect("write");
        assert!(ok("Order").is_err(), "a .proto that does not compile is refused");
        let gone = cfg(&[
            ("convert.value.type", "protobuf_file"),
            ("convert.value.protobuf.file", "/no/such.proto"),
            ("convert.value.protobuf.message.full.name", "a.B"),
        ]);
        assert!(TableConfig::parse(&gone).is_ok(), "parsing alone reads no file");
    }
}
