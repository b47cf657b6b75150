//! The Iceberg REST catalog API over [`Catalog`]: config, namespaces, tables, commits, renames,
//! registration and multi-table transactions; errors as the spec's `ErrorModel`; an optional
//! bearer token.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use iceberg::spec::{Schema, SortOrder, UnboundPartitionSpec};
use iceberg::{TableRequirement, TableUpdate};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::access::{Caller, TableAccess};
use crate::catalog::{Catalog, CreateTable, LoadedTable, Namespace};
use crate::error::CatalogError;
use crate::tokens::TokenIssuer;

/// What the server needs besides the catalog.
pub struct ServerConfig {
    /// Properties handed to clients by `/v1/config` and with every table (e.g. S3 endpoint and
    /// region: never credentials).
    pub client_properties: HashMap<String, String>,
    /// Credentials handed with a table only to a caller that presented the token and asked for
    /// them (`X-Iceberg-Access-Delegation: vended-credentials`); empty: never vended.
    pub vended_credentials: HashMap<String, String>,
    /// When set, every call needs `Authorization: Bearer <token>` (compared in constant time).
    pub token: Option<String>,
    /// When set, `POST /v1/oauth/tokens` issues short-lived tokens for good client credentials,
    /// and every other call needs one (or the static token).
    pub oauth: Option<Arc<TokenIssuer>>,
    /// Table permissions for callers with an issued token; unset: any authenticated caller may
    /// do anything.
    pub access: Option<Arc<dyn TableAccess>>,
}

impl ServerConfig {
    /// Whether callers must authenticate.
    fn secured(&self) -> bool {
        self.token.is_some() || self.oauth.is_some()
    }
}

/// The header through which a client asks for credentials (Iceberg REST spec).
const ACCESS_DELEGATION: &str = "x-iceberg-access-delegation";

struct Ctx {
    catalog: Arc<Catalog>,
    config: ServerConfig,
}

type Shared = State<Arc<Ctx>>;

/// An error in the spec's shape.
pub struct ApiError(CatalogError);

impl<E: Into<CatalogError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, kind) = self.0.rest();
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": {"message": self.0.to_string(), "type": kind, "code": code}});
        (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

type Reply = Result<Response, ApiError>;

fn ok(body: Json) -> Reply {
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

fn no_content() -> Reply {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn parse<T: for<'de> Deserialize<'de>>(raw: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(raw).map_err(|e| ApiError(CatalogError::BadRequest(format!("request body: {e}"))))
}

fn ns(path: &str) -> Namespace {
    path.split('\u{1f}').map(str::to_string).collect()
}

#[derive(Deserialize, Serialize)]
struct Ident {
    namespace: Namespace,
    name: String,
}

/// A table's load result; credentials only for an authenticated caller that asked for them.
fn load_result(t: &LoadedTable, config: &ServerConfig, headers: &HeaderMap) -> Json {
    let mut props = config.client_properties.clone();
    let asked = headers.get_all(ACCESS_DELEGATION).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|v| v.trim() == "vended-credentials");
    if asked && config.secured() {
        props.extend(config.vended_credentials.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    json!({"metadata-location": t.metadata_location, "metadata": t.metadata.as_ref(), "config": props})
}

/// The router serving the REST API.
pub fn router(catalog: Arc<Catalog>, config: ServerConfig) -> Router {
    let ctx = Arc::new(Ctx { catalog, config });
    Router::new()
        .route("/v1/namespaces", get(list_namespaces).post(create_namespace))
        .route("/v1/namespaces/{ns}", get(load_namespace).head(namespace_exists).delete(drop_namespace))
        .route("/v1/namespaces/{ns}/properties", post(update_namespace))
        .route("/v1/namespaces/{ns}/tables", get(list_tables).post(create_table))
        .route("/v1/namespaces/{ns}/tables/{table}", get(load_table).head(table_exists).delete(drop_table).post(commit_table))
        .route("/v1/namespaces/{ns}/tables/{table}/metrics", post(report_metrics))
        .route("/v1/namespaces/{ns}/register", post(register_table))
        .route("/v1/tables/rename", post(rename_table))
        .route("/v1/transactions/commit", post(commit_transaction))
        .route("/v1/config", get(get_config))
        .route("/v1/oauth/tokens", post(issue_token))
        .layer(middleware::from_fn_with_state(ctx.clone(), auth))
        .with_state(ctx)
}

/// Serves the API on `listener` until `shutdown` resolves.
/// (`listener` is plain TCP, or TLS.)
pub async fn serve<L>(
    catalog: Arc<Catalog>,
    config: ServerConfig,
    listener: L,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(catalog, config)).with_graceful_shutdown(shutdown).await
}

async fn auth(State(ctx): Shared, mut req: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq;
    let config = &ctx.config;
    // The token endpoint is how a caller gets in.
    if !config.secured() || (config.oauth.is_some() && req.uri().path() == "/v1/oauth/tokens") {
        req.extensions_mut().insert(Caller(None));
        return next.run(req).await;
    }
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer ")).unwrap_or_default();
    let caller = if config.token.as_ref().is_some_and(|t| bool::from(given.ct_eq(t.as_bytes()))) {
        Caller(None)
    } else {
        match config.oauth.as_ref().zip(std::str::from_utf8(given).ok()).and_then(|(o, t)| o.client_of(t)) {
            Some(client) => Caller(Some(format!("User:{client}"))),
            None => return ApiError(CatalogError::Unauthorized).into_response(),
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Refuses the caller a table it may not read (`change` false) or change.
fn permit(ctx: &Ctx, caller: &Caller, t: &LoadedTable, change: bool, what: &str) -> Result<(), ApiError> {
    match (&caller.0, &ctx.config.access) {
        (Some(p), Some(access)) if !access.allowed(p, change, t.metadata.properties()) => {
            Err(ApiError(CatalogError::Forbidden(format!("{p} may not {} table {what}", if change { "change" } else { "read" }))))
        }
        _ => Ok(()),
    }
}

/// Loads a table to check the caller may change it.
async fn permit_change(ctx: &Ctx, caller: &Caller, namespace: &Namespace, table: &str) -> Result<(), ApiError> {
    if caller.0.is_none() || ctx.config.access.is_none() {
        return Ok(());
    }
    let t = ctx.catalog.load_table(namespace, table).await?;
    permit(ctx, caller, &t, true, table)
}

/// OAuth2 client credentials (RFC 6749 §4.4): `grant_type=client_credentials` with `client_id`
/// and `client_secret` in the form body (or HTTP Basic), answered with a bearer token.
async fn issue_token(State(ctx): Shared, headers: HeaderMap, raw: Bytes) -> Response {
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        let body = json!({"error": error, "error_description": description});
        (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    };
    let Some(issuer) = &ctx.config.oauth else {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "this catalog issues no tokens");
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&raw).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only client_credentials is supported");
    }
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic ")).and_then(basic_pair);
    let (id, secret) = match (form.get("client_id"), form.get("client_secret"), basic) {
        (Some(i), Some(s), _) => (i.clone(), s.clone()),
        (_, _, Some(pair)) => pair,
        _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client_id and client_secret are needed"),
    };
    match issuer.issue(&id, &secret) {
        Some((token, expires_in)) => {
            let body = json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"});
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        None => {
            tracing::info!(client_id = %id, "catalog token refused: bad client credentials");
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "the client credentials are not valid")
        }
    }
}

/// `id:secret` from HTTP Basic.
fn basic_pair(b64: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (i, s) = text.split_once(':')?;
    Some((i.to_string(), s.to_string()))
}

async fn get_config(State(ctx): Shared) -> Reply {
    let mut defaults = ctx.config.client_properties.clone();
    defaults.insert("warehouse".into(), ctx.catalog.warehouse().to_string());
    ok(json!({"defaults": defaults, "overrides": {}}))
}

async fn list_namespaces(State(ctx): Shared, Query(q): Query<HashMap<String, String>>) -> Reply {
    let parent = q.get("parent").filter(|p| !p.is_empty()).map(|p| ns(p));
    ok(json!({"namespaces": ctx.catalog.list_namespaces(parent).await?}))
}

async fn create_namespace(State(ctx): Shared, raw: Bytes) -> Reply {
    #[derive(Deserialize)]
    struct Body {
        namespace: Namespace,
        #[serde(default)]
        properties: HashMap<String, String>,
    }
    let b: Body = parse(&raw)?;
    let props = ctx.catalog.create_namespace(b.namespace.clone(), b.properties).await?;
    ok(json!({"namespace": b.namespace, "properties": props}))
}

async fn load_namespace(State(ctx): Shared, Path(n): Path<String>) -> Reply {
    let namespace = ns(&n);
    let props = ctx.catalog.load_namespace(&namespace).await?;
    ok(json!({"namespace": namespace, "properties": props}))
}

async fn namespace_exists(State(ctx): Shared, Path(n): Path<String>) -> Reply {
    ctx.catalog.load_namespace(&ns(&n)).await?;
    no_content()
}

async fn drop_namespace(State(ctx): Shared, Path(n): Path<String>) -> Reply {
    ctx.catalog.drop_namespace(&ns(&n)).await?;
    no_content()
}

async fn update_namespace(State(ctx): Shared, Path(n): Path<String>, raw: Bytes) -> Reply {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        removals: Vec<String>,
        #[serde(default)]
        updates: HashMap<String, String>,
    }
    let b: Body = parse(&raw)?;
    let (updated, removed, missing) = ctx.catalog.update_namespace(&ns(&n), b.removals, b.updates).await?;
    ok(json!({"updated": updated, "removed": removed, "missing": missing}))
}

async fn list_tables(State(ctx): Shared, Path(n): Path<String>) -> Reply {
    let namespace = ns(&n);
    let ids: Vec<Ident> = ctx.catalog.list_tables(&namespace).await?.into_iter().map(|name| Ident { namespace: namespace.clone(), name }).collect();
    ok(json!({"identifiers": ids}))
}

async fn create_table(State(ctx): Shared, Path(n): Path<String>, headers: HeaderMap, raw: Bytes) -> Reply {
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct Body {
        name: String,
        location: Option<String>,
        schema: Schema,
        partition_spec: Option<UnboundPartitionSpec>,
        write_order: Option<SortOrder>,
        #[serde(default)]
        stage_create: bool,
        #[serde(default)]
        properties: HashMap<String, String>,
    }
    let b: Body = parse(&raw)?;
    if b.stage_create {
        return Err(ApiError(CatalogError::BadRequest("staged creates are not supported yet".into())));
    }
    let req = CreateTable {
        name: b.name,
        location: b.location,
        schema: b.schema,
        partition_spec: b.partition_spec,
        sort_order: b.write_order,
        properties: b.properties,
    };
    let t = ctx.catalog.create_table(&ns(&n), req).await?;
    ok(load_result(&t, &ctx.config, &headers))
}

async fn load_table(State(ctx): Shared, Extension(caller): Extension<Caller>, Path((n, table)): Path<(String, String)>, headers: HeaderMap) -> Reply {
    let t = ctx.catalog.load_table(&ns(&n), &table).await?;
    permit(&ctx, &caller, &t, false, &table)?;
    ok(load_result(&t, &ctx.config, &headers))
}

async fn table_exists(State(ctx): Shared, Extension(caller): Extension<Caller>, Path((n, table)): Path<(String, String)>) -> Reply {
    let t = ctx.catalog.load_table(&ns(&n), &table).await?;
    permit(&ctx, &caller, &t, false, &table)?;
    no_content()
}

/// Scan and commit reports engines send (Spark does after each scan): taken and not kept.
async fn report_metrics(State(ctx): Shared, Path((n, table)): Path<(String, String)>) -> Reply {
    ctx.catalog.load_table(&ns(&n), &table).await?;
    no_content()
}

async fn drop_table(
    State(ctx): Shared,
    Extension(caller): Extension<Caller>,
    Path((n, table)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    permit_change(&ctx, &caller, &ns(&n), &table).await?;
    let purge = q.get("purgeRequested").is_some_and(|v| v == "true");
    ctx.catalog.drop_table(&ns(&n), &table, purge).await?;
    no_content()
}

#[derive(Deserialize)]
struct CommitBody {
    identifier: Option<Ident>,
    #[serde(default)]
    requirements: Vec<TableRequirement>,
    #[serde(default)]
    updates: Vec<TableUpdate>,
}

async fn commit_table(State(ctx): Shared, Extension(caller): Extension<Caller>, Path((n, table)): Path<(String, String)>, raw: Bytes) -> Reply {
    let b: CommitBody = parse(&raw)?;
    permit_change(&ctx, &caller, &ns(&n), &table).await?;
    let mut done = ctx.catalog.commit(vec![(ns(&n), table, b.requirements, b.updates)]).await?;
    let t = done.pop().ok_or_else(|| ApiError(CatalogError::Storage("commit returned nothing".into())))?;
    ok(json!({"metadata-location": t.metadata_location, "metadata": t.metadata.as_ref()}))
}

async fn commit_transaction(State(ctx): Shared, Extension(caller): Extension<Caller>, raw: Bytes) -> Reply {
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct Body {
        table_changes: Vec<CommitBody>,
    }
    let b: Body = parse(&raw)?;
    let mut changes = Vec::with_capacity(b.table_changes.len());
    for c in b.table_changes {
        let id = c.identifier.ok_or_else(|| ApiError(CatalogError::BadRequest("a transaction's table change needs an identifier".into())))?;
        permit_change(&ctx, &caller, &id.namespace, &id.name).await?;
        changes.push((id.namespace, id.name, c.requirements, c.updates));
    }
    ctx.catalog.commit(changes).await?;
    no_content()
}

async fn rename_table(State(ctx): Shared, Extension(caller): Extension<Caller>, raw: Bytes) -> Reply {
    #[derive(Deserialize)]
    struct Body {
        source: Ident,
        destination: Ident,
    }
    let b: Body = parse(&raw)?;
    permit_change(&ctx, &caller, &b.source.namespace, &b.source.name).await?;
    ctx.catalog.rename_table((&b.source.namespace, &b.source.name), (&b.destination.namespace, &b.destination.name)).await?;
    no_content()
}

async fn register_table(State(ctx): Shared, Path(n): Path<String>, headers: HeaderMap, raw: Bytes) -> Reply {
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    struct Body {
        name: String,
        metadata_location: String,
    }
    let b: Body = parse(&raw)?;
    let t = ctx.catalog.register_table(&ns(&n), &b.name, &b.metadata_location).await?;
    ok(load_result(&t, &ctx.config, &headers))
}
