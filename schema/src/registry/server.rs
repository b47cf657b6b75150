//! The Confluent Schema Registry REST API over [`Registry`]: a thin axum layer, with Confluent's
//! error bodies (`error_code`, `message`) mapped from the crate's errors in one place.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::{Compatibility, Reference, Registry, SchemaType, SubjectVersion};
use crate::error::SchemaError;

pub(crate) const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Params = Query<HashMap<String, String>>;
type Reply = Result<Response, ApiError>;

/// An error as the registry's clients expect it.
pub struct ApiError(SchemaError);

impl From<SchemaError> for ApiError {
    fn from(e: SchemaError) -> Self {
        ApiError(e)
    }
}

/// HTTP status and Confluent error code of an error.
pub fn status_of(e: &SchemaError) -> (StatusCode, u32) {
    match e {
        SchemaError::SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
        SchemaError::VersionNotFound(..) => (StatusCode::NOT_FOUND, 40402),
        SchemaError::SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
        SchemaError::SubjectSoftDeleted(_) => (StatusCode::NOT_FOUND, 40404),
        SchemaError::SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
        SchemaError::InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
        SchemaError::InvalidCompatibility(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
        SchemaError::Incompatible { .. } => (StatusCode::CONFLICT, 409),
        SchemaError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        SchemaError::InvalidSchema(_)
        | SchemaError::Unsupported(_)
        | SchemaError::Decode(_)
        | SchemaError::KeylessDelete(_)
        | SchemaError::Mismatch { .. }
        | SchemaError::WireFormat(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self.0);
        reply(status, json!({"error_code": code, "message": self.0.to_string()}))
    }
}

fn reply(status: StatusCode, body: Json) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

fn ok(body: Json) -> Reply {
    Ok(reply(StatusCode::OK, body))
}

fn flag(q: &Params, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: String,
    #[serde(default)]
    schema_type: Option<SchemaType>,
    #[serde(default)]
    references: Vec<Reference>,
}

fn body(raw: &Bytes) -> Result<SchemaBody, ApiError> {
    serde_json::from_slice(raw).map_err(|e| ApiError(SchemaError::InvalidSchema(format!("request body: {e}"))))
}

fn version_json(v: &SubjectVersion) -> Json {
    let mut o = json!({"subject": v.subject, "version": v.version, "id": v.schema.id, "schema": v.schema.schema});
    if v.schema.schema_type != SchemaType::Avro {
        o["schemaType"] = json!(v.schema.schema_type);
    }
    if !v.schema.references.is_empty() {
        o["references"] = json!(v.schema.references);
    }
    o
}

/// The router serving the registry API, open to anyone who reaches it.
pub fn router(registry: Arc<Registry>) -> Router {
    routes(registry)
}

/// The router, with every request checked by `auth` (when given).
pub fn router_with_auth(registry: Arc<Registry>, auth: Option<Arc<dyn super::auth::Authenticator>>) -> Router {
    match auth {
        None => routes(registry),
        Some(a) => routes(registry).layer(axum::middleware::from_fn_with_state(a, super::auth::layer)),
    }
}

fn routes(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { ok(json!({})) }))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(get_version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(get_version_schema))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/schemas/types", get(|| async { ok(json!(["JSON", "PROTOBUF", "AVRO"])) }))
        .route("/config", get(get_global).put(put_global))
        .route("/config/{subject}", get(get_config).put(put_config).delete(delete_config))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility))
        .route("/mode", get(|| async { ok(json!({"mode": "READWRITE"})) }))
        .with_state(registry)
}

/// Serves the API on `listener` until `shutdown` resolves.
/// (`listener` is plain TCP, or TLS.)
pub async fn serve<L>(
    registry: Arc<Registry>,
    auth: Option<Arc<dyn super::auth::Authenticator>>,
    listener: L,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router_with_auth(registry, auth)).with_graceful_shutdown(shutdown).await
}

async fn subjects(State(r): State<Arc<Registry>>, q: Params) -> Reply {
    ok(json!(r.subjects(flag(&q, "deleted")).await))
}

async fn versions(State(r): State<Arc<Registry>>, Path(subject): Path<String>, q: Params) -> Reply {
    ok(json!(r.versions(&subject, flag(&q, "deleted")).await?))
}

async fn register(State(r): State<Arc<Registry>>, Path(subject): Path<String>, raw: Bytes) -> Reply {
    let b = body(&raw)?;
    let id = r.register(&subject, b.schema_type.unwrap_or_default(), &b.schema, b.references).await?;
    ok(json!({"id": id}))
}

async fn lookup(State(r): State<Arc<Registry>>, Path(subject): Path<String>, raw: Bytes) -> Reply {
    let b = body(&raw)?;
    let v = r.lookup(&subject, b.schema_type.unwrap_or_default(), &b.schema, &b.references).await?;
    ok(version_json(&v))
}

async fn get_version(State(r): State<Arc<Registry>>, Path((subject, version)): Path<(String, String)>, q: Params) -> Reply {
    ok(version_json(&r.version(&subject, &version, flag(&q, "deleted")).await?))
}

async fn get_version_schema(State(r): State<Arc<Registry>>, Path((subject, version)): Path<(String, String)>) -> Reply {
    let v = r.version(&subject, &version, false).await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], v.schema.schema).into_response())
}

async fn delete_subject(State(r): State<Arc<Registry>>, Path(subject): Path<String>, q: Params) -> Reply {
    ok(json!(r.delete_subject(&subject, flag(&q, "permanent")).await?))
}

async fn delete_version(State(r): State<Arc<Registry>>, Path((subject, version)): Path<(String, String)>, q: Params) -> Reply {
    ok(json!(r.delete_version(&subject, &version, flag(&q, "permanent")).await?))
}

async fn schema_by_id(State(r): State<Arc<Registry>>, Path(id): Path<u32>) -> Reply {
    let s = r.schema(id).await?;
    let mut o = json!({"schema": s.schema});
    if s.schema_type != SchemaType::Avro {
        o["schemaType"] = json!(s.schema_type);
    }
    if !s.references.is_empty() {
        o["references"] = json!(s.references);
    }
    ok(o)
}

async fn raw_schema_by_id(State(r): State<Arc<Registry>>, Path(id): Path<u32>) -> Reply {
    let s = r.schema(id).await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], s.schema).into_response())
}

async fn id_versions(State(r): State<Arc<Registry>>, Path(id): Path<u32>) -> Reply {
    let v: Vec<Json> = r.id_versions(id).await?.into_iter().map(|(s, v)| json!({"subject": s, "version": v})).collect();
    ok(json!(v))
}

fn level_body(raw: &Bytes) -> Result<Compatibility, ApiError> {
    #[derive(Deserialize)]
    struct Body {
        compatibility: String,
    }
    let b: Body = serde_json::from_slice(raw).map_err(|e| ApiError(SchemaError::InvalidCompatibility(e.to_string())))?;
    serde_json::from_value(json!(b.compatibility)).map_err(|_| ApiError(SchemaError::InvalidCompatibility(b.compatibility)))
}

async fn get_global(State(r): State<Arc<Registry>>) -> Reply {
    ok(json!({"compatibilityLevel": r.level(None, true).await?}))
}

async fn put_global(State(r): State<Arc<Registry>>, raw: Bytes) -> Reply {
    let level = level_body(&raw)?;
    r.set_level(None, Some(level)).await?;
    ok(json!({"compatibility": level}))
}

async fn get_config(State(r): State<Arc<Registry>>, Path(subject): Path<String>, q: Params) -> Reply {
    ok(json!({"compatibilityLevel": r.level(Some(&subject), flag(&q, "defaultToGlobal")).await?}))
}

async fn put_config(State(r): State<Arc<Registry>>, Path(subject): Path<String>, raw: Bytes) -> Reply {
    let level = level_body(&raw)?;
    r.set_level(Some(&subject), Some(level)).await?;
    ok(json!({"compatibility": level}))
}

async fn delete_config(State(r): State<Arc<Registry>>, Path(subject): Path<String>) -> Reply {
    let level = r.level(Some(&subject), false).await?;
    r.set_level(Some(&subject), None).await?;
    ok(json!({"compatibilityLevel": level}))
}

async fn compatibility(State(r): State<Arc<Registry>>, Path((subject, version)): Path<(String, String)>, q: Params, raw: Bytes) -> Reply {
    let b = body(&raw)?;
    let (is, messages) = r.compatible(&subject, &version, b.schema_type.unwrap_or_default(), &b.schema, b.references).await?;
    if flag(&q, "verbose") {
        ok(json!({"is_compatible": is, "messages": messages}))
    } else {
        ok(json!({"is_compatible": is}))
    }
}
