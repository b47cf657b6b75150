//! Registry tests: ids, versions, compatibility on register, deletes, persistence through the log.

use super::*;

const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"email","type":["null","string"],"default":null}]}"#;
const BAD: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"email","type":"string"}]}"#;

#[tokio::test]
async fn register_versions_compatibility_deletes_and_replay() {
    let log: Arc<MemoryLog> = Arc::default();
    let r = Registry::open(log.clone()).await.expect("open");
    let id1 = r.register("users-value", SchemaType::Avro, V1, vec![]).await.expect("v1");
    assert_eq!(r.register("users-value", SchemaType::Avro, &V1.replace(' ', ""), vec![]).await.expect("again"), id1, "same schema, same id");
    let id2 = r.register("users-value", SchemaType::Avro, V2, vec![]).await.expect("v2 is backward compatible");
    assert_ne!(id1, id2);
    let e = r.register("users-value", SchemaType::Avro, BAD, vec![]).await.expect_err("a new required field");
    assert!(matches!(e, SchemaError::Incompatible { .. }), "{e}");
    assert_eq!(r.register("other", SchemaType::Avro, V1, vec![]).await.expect("other subject"), id1, "ids are per schema");
    assert_eq!(r.versions("users-value", false).await.expect("versions"), vec![1, 2]);
    assert_eq!(r.version("users-value", "latest", false).await.expect("latest").schema.id, id2);
    assert!(!r.compatible("users-value", "latest", SchemaType::Avro, BAD, vec![]).await.expect("check").0);
    r.set_level(Some("users-value"), Some(Compatibility::None)).await.expect("level");
    let id3 = r.register("users-value", SchemaType::Avro, BAD, vec![]).await.expect("NONE allows it");
    assert!(matches!(r.delete_subject("users-value", true).await, Err(SchemaError::SubjectNotSoftDeleted(_))));
    assert_eq!(r.delete_subject("users-value", false).await.expect("soft"), vec![1, 2, 3]);
    assert!(matches!(r.versions("users-value", false).await, Err(SchemaError::SubjectNotFound(_))));
    assert_eq!(r.delete_subject("users-value", true).await.expect("hard"), vec![1, 2, 3]);
    // Replay from the log: everything is as it was, and the next id is new.
    let again = Registry::open(log).await.expect("reopen");
    assert_eq!(again.subjects(true).await, vec!["other".to_string()]);
    assert_eq!(
        again.schema(id2).await.expect("by id").schema,
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(V2).expect("json")).expect("json")
    );
    let id4 = again.register("fresh", SchemaType::Avro, r#"{"type":"string"}"#, vec![]).await.expect("new");
    assert!(id4 > id3, "ids are never reused");
    assert!(matches!(again.register("x", SchemaType::Avro, "{nope", vec![]).await, Err(SchemaError::InvalidSchema(_))));
}

#[tokio::test]
async fn references_resolve_named_types_of_other_subjects() {
    let r = Registry::open(Arc::new(MemoryLog::default())).await.expect("open");
    r.register("address", SchemaType::Avro, r#"{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}"#, vec![]).await.expect("address");
    let refs = vec![Reference { name: "Address".into(), subject: "address".into(), version: 1 }];
    let with = r#"{"type":"record","name":"Person","fields":[{"name":"home","type":"Address"}]}"#;
    r.register("person", SchemaType::Avro, with, refs).await.expect("with the reference");
    assert!(r.register("person2", SchemaType::Avro, with, vec![]).await.is_err(), "unknown type without it");
}

#[tokio::test]
async fn protobuf_and_json_schemas_are_checked_on_register() {
    let r = Registry::open(Arc::new(MemoryLog::default())).await.expect("open");
    let proto = "syntax = \"proto3\"; package p; message M { int64 id = 1; }";
    r.register("m", SchemaType::Protobuf, proto, vec![]).await.expect("valid proto");
    assert!(matches!(r.register("bad", SchemaType::Protobuf, "message {", vec![]).await, Err(SchemaError::InvalidSchema(_))));
    r.register("j", SchemaType::Json, r#"{"type":"object"}"#, vec![]).await.expect("valid JSON schema");
    assert!(matches!(r.register("j2", SchemaType::Json, "[1]", vec![]).await, Err(SchemaError::InvalidSchema(_))));
}

#[tokio::test]
async fn protobuf_and_json_compatibility_is_enforced_on_register() {
    let r = Registry::open(Arc::new(MemoryLog::default())).await.expect("open");
    r.register("p", SchemaType::Protobuf, "syntax = \"proto3\"; message M { int64 a = 1; }", vec![]).await.expect("v1");
    r.register("p", SchemaType::Protobuf, "syntax = \"proto3\"; message M { int64 a = 1; string b = 2; }", vec![])
        .await
        .expect("a new field is backward compatible");
    let e = r.register("p", SchemaType::Protobuf, "syntax = \"proto3\"; message M { string a = 1; string b = 2; }", vec![]).await.expect_err("retyped");
    assert!(matches!(e, SchemaError::Incompatible { .. }), "{e}");
    r.register("j", SchemaType::Json, r#"{"type":"object","properties":{"n":{"type":"integer"}}}"#, vec![]).await.expect("v1");
    r.register("j", SchemaType::Json, r#"{"type":"object","properties":{"n":{"type":"number"}}}"#, vec![]).await.expect("widened");
    assert!(r.register("j", SchemaType::Json, r#"{"type":"object","properties":{"n":{"type":"string"}}}"#, vec![]).await.is_err());
}

#[tokio::test]
async fn the_log_is_compacted_and_replays_to_the_same_registry_without_reusing_ids() {
    let log: Arc<MemoryLog> = Arc::default();
    let r = Registry::open(log.clone()).await.expect("open");
    r.set_level(None, Some(Compatibility::None)).await.expect("global level");
    r.set_level(Some("s0-value"), Some(Compatibility::None)).await.expect("subject level");
    let schema = |i: usize| format!(r#"{{"type":"record","name":"R{i}","fields":[{{"name":"f{i}","type":"long"}}]}}"#);
    let mut last = 0;
    for i in 0..2_500 {
        last = r.register(&format!("s{}-value", i % 7), SchemaType::Avro, &schema(i), vec![]).await.expect("register");
    }
    // The newest schema's only version is deleted for good: its id must never come back.
    let subject = format!("s{}-value", 2_499 % 7);
    let v = r.version(&subject, "latest", false).await.expect("latest").version;
    r.delete_version(&subject, &v.to_string(), false).await.expect("soft");
    r.delete_version(&subject, &v.to_string(), true).await.expect("hard");
    assert!(log.len() < 1_200, "{} events kept for 2,503 appended", log.len());

    let again = Registry::open(log.clone()).await.expect("replay");
    for s in 0..7 {
        let subject = format!("s{s}-value");
        assert_eq!(again.versions(&subject, true).await.expect("versions"), r.versions(&subject, true).await.expect("versions"), "{subject}");
    }
    assert_eq!(again.version("s3-value", "1", false).await.expect("v1").schema.id, r.version("s3-value", "1", false).await.expect("v1").schema.id);
    let fresh = again.register("new-value", SchemaType::Avro, &schema(9_999), vec![]).await.expect("register");
    assert!(fresh > last, "id {fresh} after {last}: ids are never reused");
}
